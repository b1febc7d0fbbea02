//! A shard's input queue in memory mode: a request's inputs for one shard go over in one send
//! (a batch), and the queue is bounded in inputs (`correlate.queue_capacity`), not in sends.
//! Room is reserved for a whole batch before it is sent, so a full queue refuses a request
//! (503) and never half of it, and a reservation not sent gives its room back.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore, SemaphorePermit};

use super::Input;

/// The sending end: ingest's side (`pipeline::local`).
pub struct QueueTx {
    batches: mpsc::Sender<Vec<Input>>,
    /// Free places, in inputs.
    room: Arc<Semaphore>,
    capacity: usize,
}

/// The receiving end: the shard's worker.
pub struct QueueRx {
    batches: mpsc::Receiver<Vec<Input>>,
    room: Arc<Semaphore>,
}

/// A queue for `capacity` inputs (at least one).
pub fn queue(capacity: usize) -> (QueueTx, QueueRx) {
    let capacity = capacity.max(1);
    // Every batch holds at least one input, so the batch channel is never fuller than `room`
    // says; it is bounded only for its close, which lets a reserved batch still be sent.
    let (tx, rx) = mpsc::channel(capacity);
    let room = Arc::new(Semaphore::new(capacity));
    (
        QueueTx {
            batches: tx,
            room: Arc::clone(&room),
            capacity,
        },
        QueueRx { batches: rx, room },
    )
}

/// Room for `n` inputs, held until sent or dropped.
pub struct Reserved<'a> {
    room: SemaphorePermit<'a>,
    slot: mpsc::Permit<'a, Vec<Input>>,
    n: usize,
}

impl Reserved<'_> {
    /// Sends the batch the room was reserved for (`inputs.len()` is what was reserved).
    pub fn send(self, inputs: Vec<Input>) {
        debug_assert_eq!(inputs.len(), self.n, "a batch fills its reservation");
        // The receiver gives the room back as it takes the batch.
        self.room.forget();
        self.slot.send(inputs);
    }
}

impl QueueTx {
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Inputs queued (or reserved).
    pub fn queued(&self) -> usize {
        self.capacity.saturating_sub(self.room.available_permits())
    }

    /// Room for `n` inputs now, or none (full, or closed: the shard is stopping).
    pub fn try_reserve(&self, n: usize) -> Option<Reserved<'_>> {
        let room = self.room.try_acquire_many(u32::try_from(n).ok()?).ok()?;
        let slot = self.batches.try_reserve().ok()?;
        Some(Reserved { room, slot, n })
    }

    /// Sends one input, waiting for room; false when the shard has stopped.
    pub async fn send(&self, input: Input) -> bool {
        let Ok(room) = self.room.acquire().await else {
            return false;
        };
        let Ok(slot) = self.batches.reserve().await else {
            return false;
        };
        room.forget();
        slot.send(vec![input]);
        true
    }
}

/// A queue whose shard is gone wakes whoever waits for room in it ([`QueueTx::send`]).
impl Drop for QueueRx {
    fn drop(&mut self) {
        self.room.close();
    }
}

impl QueueRx {
    /// Takes batches into `into`, waiting for the first, until they hold `inputs` inputs or
    /// none is left queued (a batch is never split); 0 once every sender is gone (or the queue
    /// is closed) and nothing is left.
    pub async fn recv_many(&mut self, into: &mut Vec<Vec<Input>>, inputs: usize) -> usize {
        let Some(first) = self.batches.recv().await else {
            return 0;
        };
        let mut taken = first.len();
        into.push(first);
        let mut batches = 1;
        while taken < inputs {
            let Ok(batch) = self.batches.try_recv() else {
                break;
            };
            taken += batch.len();
            into.push(batch);
            batches += 1;
        }
        self.room.add_permits(taken);
        batches
    }

    /// One batch, waiting for it; none once every sender is gone (or the queue is closed) and
    /// nothing is left.
    pub async fn recv(&mut self) -> Option<Vec<Input>> {
        let batch = self.batches.recv().await?;
        self.room.add_permits(batch.len());
        Some(batch)
    }

    /// A batch if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Vec<Input>> {
        let batch = self.batches.try_recv().ok()?;
        self.room.add_permits(batch.len());
        Some(batch)
    }

    /// Refuses new batches; those queued and reserved can still be taken.
    pub fn close(&mut self) {
        self.batches.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::silence::Silence;

    fn silences() -> Input {
        Input::Silences(Arc::<[Silence]>::from(Vec::new()))
    }

    #[tokio::test]
    async fn room_is_counted_in_inputs_and_given_back_as_batches_are_taken() {
        let (tx, mut rx) = queue(4);
        let three = tx.try_reserve(3).expect("room for 3");
        assert_eq!(tx.queued(), 3);
        assert!(tx.try_reserve(2).is_none(), "1 place left");
        three.send(vec![silences(), silences(), silences()]);
        // A reservation dropped unsent gives its room back.
        drop(tx.try_reserve(1).expect("the last place"));
        assert_eq!(tx.queued(), 3);
        assert!(tx.send(silences()).await);
        assert_eq!(tx.queued(), 4);
        let mut taken = Vec::new();
        assert_eq!(
            rx.recv_many(&mut taken, 3).await,
            1,
            "enough inputs in the first"
        );
        assert_eq!(rx.recv_many(&mut taken, 8).await, 1);
        assert_eq!(taken.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
        assert_eq!(tx.queued(), 0);
        assert!(tx.try_reserve(4).is_some());
        assert!(tx.try_reserve(5).is_none(), "never more than the capacity");
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_new_batches_but_delivers_reserved_ones() {
        let (tx, mut rx) = queue(4);
        let reserved = tx.try_reserve(2).expect("room");
        rx.close();
        assert!(tx.try_reserve(1).is_none(), "closed");
        reserved.send(vec![silences(), silences()]);
        assert_eq!(rx.recv().await.map(|b| b.len()), Some(2));
        drop(tx);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_sender_waiting_for_room_hears_that_the_shard_is_gone() {
        let (tx, rx) = queue(1);
        assert!(tx.send(silences()).await, "the one place");
        let waiting = tokio::spawn(async move { tx.send(silences()).await });
        tokio::task::yield_now().await;
        drop(rx);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        assert!(
            !woken.expect("woken, not left waiting").expect("joins"),
            "no room will ever come"
        );
    }
}
