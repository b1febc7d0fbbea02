//! One shard's task in memory mode: takes inputs off its bounded queue in batches, fires its
//! timers on time, hands re-routed events to their shards, publishes what it decided, and on
//! stop drains its queue and either publishes what is still waiting or, with a state
//! directory, saves it for the next start (also every `snapshot_interval` while running).
//!
//! Publishing runs beside the shard, in a task of its own ([`publish_all`]): the shard hands
//! each turn's messages over and goes on taking input while they are stamped, handed to the
//! producer and read into the incidents view, in order. At most [`IN_FLIGHT`] turns' messages
//! wait there; past that the shard waits for them, so a producer that cannot take messages
//! still holds the shard (and its queue then refuses input, 503). At the end of
//! `group_wait` a storm's incidents open together (200 messages of 50 alerts in the load
//! test): handing them to the producer and the view took about 40 % of that turn, during
//! which nothing was taken off the queue. The shard's task ends once its publisher has handed
//! the last message to the sink.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::queue::QueueRx;
use super::state_dir::StateDir;
use super::{hand_to_sink, Dequeued, Input, PartitionFn, TimedShard};
use crate::clock::Clock;
use crate::config::CorrelateConfig;
use crate::event::Event;
use crate::publish::encode::OutboundMessage;
use crate::publish::Sink;

/// What every shard's worker shares.
pub(super) struct Parts {
    pub clock: Clock,
    pub sink: Arc<dyn Sink>,
    pub partition: PartitionFn,
    pub dequeued: Option<Arc<dyn Dequeued>>,
    /// Memory mode with `pipeline.state_dir`: where the shard is saved.
    pub state: Option<Arc<StateDir>>,
}

pub(super) struct Worker {
    timed: TimedShard,
    rx: QueueRx,
    /// Events other shards' event rules re-routed to this one.
    routed: mpsc::UnboundedReceiver<Event>,
    /// Every shard's `routed`, in shard order.
    peers: Arc<[mpsc::UnboundedSender<Event>]>,
    index: usize,
    partition: PartitionFn,
    /// Passed by every shard once its own queue is drained on stop: nothing is re-routed after.
    drained: Arc<tokio::sync::Barrier>,
    dequeued: Option<Arc<dyn Dequeued>>,
    clock: Clock,
    /// Each turn's messages, to [`publish_all`].
    to_publisher: mpsc::Sender<Vec<OutboundMessage>>,
    publisher: tokio::task::JoinHandle<()>,
    stop: watch::Receiver<bool>,
    state: Option<Arc<StateDir>>,
    /// New rules from a hot reload.
    rules: watch::Receiver<Arc<CorrelateConfig>>,
}

/// Inputs applied between two hand-overs to the sink.
const BATCH: usize = 256;

/// Turns' messages that may wait for the publisher before the shard waits for it.
const IN_FLIGHT: usize = 2;

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        timed: TimedShard,
        rx: QueueRx,
        routed: mpsc::UnboundedReceiver<Event>,
        peers: Arc<[mpsc::UnboundedSender<Event>]>,
        index: usize,
        drained: Arc<tokio::sync::Barrier>,
        parts: &Parts,
        stop: watch::Receiver<bool>,
        rules: watch::Receiver<Arc<CorrelateConfig>>,
    ) -> Worker {
        let (to_publisher, messages) = mpsc::channel(IN_FLIGHT);
        let publisher = tokio::spawn(publish_all(
            Arc::clone(&parts.sink),
            parts.clock.clone(),
            messages,
        ));
        Worker {
            timed,
            rx,
            routed,
            peers,
            index,
            partition: parts.partition,
            drained,
            dequeued: parts.dequeued.clone(),
            clock: parts.clock.clone(),
            to_publisher,
            publisher,
            stop,
            state: parts.state.clone(),
            rules,
        }
    }

    pub(super) async fn run(mut self) {
        let mut out = Vec::with_capacity(BATCH);
        let mut batches = Vec::new();
        let mut routed = Vec::new();
        let mut saves = self.state.as_ref().map(|s| {
            let mut every = tokio::time::interval(s.every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        });
        loop {
            let sleep = self
                .timed
                .shard
                .next_deadline()
                .map(|at| tokio::time::sleep(at.saturating_sub(self.clock.now())));
            tokio::select! {
                biased;
                n = self.routed.recv_many(&mut routed, BATCH) => {
                    debug_assert!(n > 0, "this worker holds a sender of its own");
                    for event in routed.drain(..) {
                        self.timed.apply_routed(event, None, &mut out);
                    }
                }
                n = self.rx.recv_many(&mut batches, BATCH) => {
                    if n == 0 {
                        // Every sender is gone (the server has shut down): finish as on stop.
                        self.finish(&mut out).await;
                        break;
                    }
                    for batch in batches.drain(..) {
                        if let Some(d) = &self.dequeued {
                            d.taken(self.index, &batch);
                        }
                        for input in batch {
                            self.apply(input, &mut out);
                        }
                    }
                }
                _ = async { sleep.expect("guarded").await }, if sleep.is_some() => {
                    self.timed.advance_to(self.clock.now(), &mut out);
                }
                _ = async { saves.as_mut().expect("guarded").tick().await }, if saves.is_some() => {
                    self.save().await;
                }
                Ok(()) = self.rules.changed() => {
                    let config = Arc::clone(&self.rules.borrow_and_update());
                    self.take_rules(&config);
                }
                _ = self.stop.changed() => {
                    self.finish(&mut out).await;
                    break;
                }
            }
            self.publish(&mut out).await;
        }
        let Worker {
            to_publisher,
            publisher,
            ..
        } = self;
        drop(to_publisher);
        if let Err(e) = publisher.await {
            tracing::error!(error = %e, "a shard's publisher failed");
        }
    }

    /// Applies one input; hands a re-routed event to its shard (applied here when it is this
    /// one).
    fn apply(&mut self, input: Input, out: &mut Vec<OutboundMessage>) {
        let Some(event) = self.timed.apply(input, || self.clock.now(), out) else {
            return;
        };
        let to = (self.partition)(&event.routing_key, self.peers.len());
        if to == self.index {
            self.timed.apply_routed(event, None, out);
        } else if self.peers[to].send(event).is_err() {
            tracing::error!(shard = to, "re-routed event lost: its shard has stopped");
        }
    }

    /// Refuses new input, applies what is queued (and, once every shard has done so, what
    /// they re-routed here), publishes what is waiting.
    async fn finish(&mut self, out: &mut Vec<OutboundMessage>) {
        self.rx.close();
        while let Some(batch) = self.rx.recv().await {
            if let Some(d) = &self.dequeued {
                d.taken(self.index, &batch);
            }
            for input in batch {
                self.apply(input, out);
            }
        }
        self.drained.wait().await;
        while let Ok(event) = self.routed.try_recv() {
            self.timed.apply_routed(event, None, out);
        }
        let now = self.timed.advance_to(self.clock.now(), out);
        match self.state.is_some() {
            // Kept for the next start instead of published early (a deploy would page).
            true => self.save().await,
            false => self.timed.shard.flush(now, out),
        }
        self.publish(out).await;
    }

    /// Carries the shard's state over to `config`'s rules and caps, as a restore from its own
    /// snapshot would (incidents of a rule that is gone fall to the rule of the same name, else
    /// the last one; see `shard::snapshot`). A snapshot that cannot be read back under the new
    /// rules keeps the old ones, logged.
    fn take_rules(&mut self, config: &CorrelateConfig) {
        let of = self.peers.len();
        match TimedShard::restore(
            config,
            super::Part {
                index: self.index,
                of,
            },
            &self.timed.snapshot(),
        ) {
            Ok(mut timed) => {
                timed.shard.rules_reloaded();
                self.timed = timed;
                tracing::info!(shard = self.index, "shard took the reloaded rules");
            }
            Err(e) => tracing::error!(
                shard = self.index,
                error = %e,
                "shard keeps its rules: its state does not carry over to the reloaded ones"
            ),
        }
    }

    /// Saves the shard to the state directory (off the async threads).
    async fn save(&self) {
        let Some(state) = self.state.clone() else {
            return;
        };
        let bytes = self.timed.snapshot();
        let (index, of) = (self.index, self.peers.len());
        let saved = tokio::task::spawn_blocking(move || state.save(index, of, &bytes)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(shard = index, error = %e, "shard state not saved"),
            Err(e) => tracing::error!(shard = index, error = %e, "shard state not saved"),
        }
    }

    /// Hands this turn's messages to the publisher, waiting while [`IN_FLIGHT`] turns' wait.
    async fn publish(&self, out: &mut Vec<OutboundMessage>) {
        if out.is_empty() {
            return;
        }
        if self.to_publisher.send(std::mem::take(out)).await.is_err() {
            tracing::error!(
                shard = self.index,
                "messages lost: the shard's publisher has stopped"
            );
        }
    }
}

/// A shard's publisher: stamps each message and hands it to the sink, in the order the shard
/// decided them, waiting while the producer's queue is full; ends once the shard has dropped
/// its sender and everything sent is handed over.
async fn publish_all(
    sink: Arc<dyn Sink>,
    clock: Clock,
    mut messages: mpsc::Receiver<Vec<OutboundMessage>>,
) {
    while let Some(mut batch) = messages.recv().await {
        hand_to_sink(&*sink, &mut batch, clock.now()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::IN_FLIGHT;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::correlate::{partition, Correlator, Input};
    use crate::event::{Action, Event};
    use crate::integration::Integration;
    use crate::publish::encode::OutboundMessage;
    use crate::publish::{SendError, Sink};
    use crate::time::UnixMillis;

    /// Takes messages only while open, refusing them as a full producer queue does; keeps the
    /// first alert's dedup key of each message taken.
    #[derive(Default)]
    struct Gate {
        open: AtomicBool,
        taken: Mutex<Vec<String>>,
    }

    impl Sink for Gate {
        fn send(&self, msg: &OutboundMessage) -> Result<(), SendError> {
            if !self.open.load(Ordering::SeqCst) {
                return Err(SendError::QueueFull);
            }
            let body: serde_json::Value = serde_json::from_slice(&msg.body).expect("JSON");
            let key = body["alerts"][0]["dedup_key"].as_str().unwrap_or_default();
            self.taken.lock().expect("lock").push(key.to_string());
            Ok(())
        }
        fn ready(&self) -> bool {
            true
        }
        fn flush(&self, _: Duration) -> i32 {
            0
        }
    }

    fn trigger(key: &str) -> Input {
        Input::Event(Event::new(
            Integration::PagerDuty,
            Action::Trigger,
            "rk".into(),
            key.into(),
            UnixMillis(0),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_producer_holds_the_shard_after_two_turns_and_nothing_is_lost_or_reordered() {
        let config = Config::from_toml(
            "[correlate]\nshards = 1\nqueue_capacity = 1\n[[correlate.rules]]\n\
             group_by = [\"dedup_key\"]\ngroup_wait = \"0s\"\npause_transient = \"0s\"",
            Vec::new(),
        )
        .expect("config");
        let gate = Arc::new(Gate::default());
        let sink: Arc<dyn Sink> = gate.clone();
        let (correlator, queues) = Correlator::spawn(
            &config.correlate,
            Clock::manual(UnixMillis(0)),
            sink,
            partition,
            None,
        );
        // One trigger at a time (the queue holds one), each a turn with one opened message,
        // until the queue stays full.
        let mut sent = Vec::new();
        'feed: for i in 0..20 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                if let Some(room) = queues[0].try_reserve(1) {
                    let key = format!("k{i}");
                    room.send(vec![trigger(&key)]);
                    sent.push(key);
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    break 'feed;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // The publisher holds one turn, IN_FLIGHT wait for it, the shard holds its own, and
        // the queue one more trigger.
        assert_eq!(sent.len(), 1 + IN_FLIGHT + 1 + 1, "{sent:?}");
        assert!(gate.taken.lock().expect("lock").is_empty());
        // Shutting down waits for the publisher, which waits for the producer.
        let shutdown = tokio::spawn(correlator.shutdown());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !shutdown.is_finished(),
            "the shard's messages are not handed over yet"
        );
        gate.open.store(true, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(10), shutdown)
            .await
            .expect("shutdown ends once the producer takes messages")
            .expect("no panic");
        assert_eq!(
            *gate.taken.lock().expect("lock"),
            sent,
            "every message, in order"
        );
    }
}
