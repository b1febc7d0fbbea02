//! The forwarder's partitions: which it owns (the consumer group's assignment), how far every
//! receiver is done with each, and the offsets committed from that.
//!
//! An assigned partition is fetched from [`SEEK_BACK`] records before its committed offset,
//! the records before that offset passed over: tansu 0.6 answers a fetch that starts inside a
//! record batch with nothing from that batch, and sluice's producers write at most that many
//! records a batch (as `pipeline::kafka` reads the events topic). A revoked partition's lanes
//! are stopped and what they finished is committed before the group moves it. A partition
//! whose slowest lane is more than `deliver.max_pending` messages behind is paused (the other
//! partitions go on) and resumed, fetched again from before where it stopped, once that lane
//! is down to half.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Item;
use crate::config::StartFrom;
use crate::metrics as m;

/// How far before the offset it needs a partition is fetched (see the module doc).
const SEEK_BACK: i64 = 1000;
/// Bound on the broker calls made while partitions are assigned or revoked.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// An owned partition.
pub(super) struct Partition {
    /// The next offset to hand to the lanes; records before it are passed over.
    pub(super) next: i64,
    /// The offset committed last (the next one to read after a restart).
    pub(super) committed: i64,
    pub(super) lanes: Vec<LaneHandle>,
    /// Fetching is paused: its slowest lane is too far behind.
    paused: bool,
}

/// A running lane: where its messages go, what it has done, its task.
pub(super) struct LaneHandle {
    pub(super) tx: mpsc::UnboundedSender<Arc<Item>>,
    /// The offset of the last message it handled.
    pub(super) done: Arc<AtomicI64>,
    pub(super) task: JoinHandle<()>,
}

impl Partition {
    /// The offset every lane is done up to (exclusive).
    fn position(&self) -> i64 {
        self.lanes
            .iter()
            .map(|lane| lane.done.load(Ordering::Acquire) + 1)
            .min()
            .unwrap_or(self.committed)
            .max(self.committed)
    }

    /// Messages handed to the lanes that the slowest one has not handled yet.
    fn behind(&self) -> i64 {
        self.next - self.position()
    }

    pub(super) fn stop(&self) {
        for lane in &self.lanes {
            lane.task.abort();
        }
    }
}

pub(super) type Table = Arc<Mutex<HashMap<i32, Partition>>>;

/// The consumer's context: assigns partitions from before their committed offset (see
/// [`SEEK_BACK`]) and commits what is done of partitions it loses.
pub(super) struct Rebalances {
    pub(super) table: Table,
    pub(super) topic: String,
    pub(super) start_from: StartFrom,
}

impl ClientContext for Rebalances {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "forwarder consumer");
    }
}

impl ConsumerContext for Rebalances {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assignment = self.assign(consumer, tpl);
                let taken = if cooperative {
                    consumer.incremental_assign(&assignment)
                } else {
                    consumer.assign(&assignment)
                };
                if let Err(e) = taken {
                    tracing::error!(error = %e, "cannot take the assigned partitions");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                self.revoke(consumer, &revoked);
                let _ = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
            }
            other => {
                // librdkafka asks for the assignment to be dropped.
                tracing::error!(error = ?other, "rebalance failed; every partition dropped");
                let all: Vec<i32> = self
                    .table
                    .lock()
                    .expect("partition table lock")
                    .keys()
                    .copied()
                    .collect();
                self.revoke(consumer, &all);
                let _ = consumer.unassign();
            }
        }
    }
}

impl Rebalances {
    /// Stops the lanes of `partitions`, commits what they finished and forgets them.
    fn revoke(&self, consumer: &BaseConsumer<Self>, partitions: &[i32]) {
        let mut table = self.table.lock().expect("partition table lock");
        let mut done = TopicPartitionList::new();
        for p in partitions {
            if let Some(part) = table.remove(p) {
                part.stop();
                let at = part.position();
                if at > part.committed {
                    let _ = done.add_partition_offset(&self.topic, *p, Offset::Offset(at));
                }
                forward_lag(*p).set(0.0);
            }
        }
        drop(table);
        if done.count() > 0 {
            if let Err(e) = consumer.commit(&done, CommitMode::Sync) {
                tracing::warn!(error = %e, "offsets of revoked partitions not committed (their messages are delivered again)");
            }
        }
        tracing::info!(revoked = ?partitions, "partitions handed over");
    }

    /// The assignment `tpl` with each partition starting [`SEEK_BACK`] records before its
    /// committed offset (not before the log's start); the partitions enter the table.
    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> TopicPartitionList {
        let committed = consumer
            .committed_offsets(tpl.clone(), BROKER_TIMEOUT)
            .map_err(|e| tracing::warn!(error = %e, "committed offsets unknown; reading from them as the group keeps them"))
            .ok();
        let mut out = TopicPartitionList::new();
        let mut table = self.table.lock().expect("partition table lock");
        for e in tpl.elements() {
            let p = e.partition();
            let offset = committed.as_ref().map(|c| {
                c.find_partition(&self.topic, p)
                    .map_or(Offset::Invalid, |e| e.offset())
            });
            let (from, next) = match offset {
                Some(Offset::Offset(n)) => {
                    // Not before the log's start (what retention deleted is gone).
                    let low = consumer
                        .fetch_watermarks(&self.topic, p, BROKER_TIMEOUT)
                        .map_or(0, |(low, _)| low);
                    (Offset::Offset((n - SEEK_BACK).max(low)), n.max(low))
                }
                // The broker did not say: its committed offset, else the earliest record.
                None => (Offset::Stored, 0),
                Some(_) if self.start_from == StartFrom::Beginning => (Offset::Beginning, 0),
                Some(_) => (Offset::End, 0),
            };
            let _ = out.add_partition_offset(&self.topic, p, from);
            if let Some(old) = table.insert(
                p,
                Partition {
                    next,
                    committed: next,
                    lanes: Vec::new(),
                    paused: false,
                },
            ) {
                old.stop();
            }
        }
        tracing::info!(partitions = ?table.keys().collect::<Vec<_>>(), "partitions assigned");
        out
    }
}

/// Commits the partitions whose done offset moved (blocking).
pub(super) fn commit(consumer: &StreamConsumer<Rebalances>, table: &Table, topic: &str) {
    let moved: Vec<(i32, i64)> = table
        .lock()
        .expect("partition table lock")
        .iter()
        .map(|(p, part)| (*p, part.position(), part.committed))
        .filter(|(_, at, committed)| at > committed)
        .map(|(p, at, _)| (p, at))
        .collect();
    if moved.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (p, at) in &moved {
        let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*at));
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            let mut table = table.lock().expect("partition table lock");
            for (p, at) in moved {
                if let Some(part) = table.get_mut(&p) {
                    part.committed = part.committed.max(at);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "offsets not committed; trying again"),
    }
}

/// Sets `sluice_forward_lag` of each owned partition: its high watermark less the offset every
/// receiver is done up to (blocking).
pub(super) fn measure_lag(consumer: &StreamConsumer<Rebalances>, table: &Table, topic: &str) {
    let owned: Vec<(i32, i64)> = table
        .lock()
        .expect("partition table lock")
        .iter()
        .map(|(p, part)| (*p, part.position()))
        .collect();
    for (p, at) in owned {
        if let Ok((_, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(2)) {
            forward_lag(p).set((high - at).max(0) as f64);
        }
    }
}

fn forward_lag(partition: i32) -> metrics::Gauge {
    metrics::gauge!(m::FORWARD_LAG, "partition" => partition.to_string())
}

/// Pauses partition `p` when its slowest lane is more than `max` messages behind.
pub(super) fn pause_if_behind(
    consumer: &StreamConsumer<Rebalances>,
    table: &Table,
    p: i32,
    max: usize,
) {
    let behind = {
        let mut table = table.lock().expect("partition table lock");
        match table.get_mut(&p) {
            Some(part) if !part.paused && part.behind() > max as i64 => {
                part.paused = true;
                part.behind()
            }
            _ => return,
        }
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&consumer.context().topic, p);
    match consumer.pause(&tpl) {
        Ok(()) => tracing::debug!(
            partition = p,
            behind,
            "partition paused: a receiver is behind"
        ),
        Err(e) => tracing::warn!(partition = p, error = %e, "cannot pause the partition"),
    }
}

/// Resumes the paused partitions whose slowest lane is down to `max / 2` messages behind,
/// fetching them again from [`SEEK_BACK`] records before where they stopped (a position that
/// retention has deleted restarts at the earliest record: `auto.offset.reset`).
pub(super) fn resume_caught_up(consumer: &StreamConsumer<Rebalances>, table: &Table, max: usize) {
    let ready: Vec<(i32, i64)> = table
        .lock()
        .expect("partition table lock")
        .iter_mut()
        .filter(|(_, part)| part.paused && part.behind() <= (max / 2) as i64)
        .map(|(p, part)| {
            part.paused = false;
            (*p, part.next)
        })
        .collect();
    let topic = &consumer.context().topic;
    for (p, next) in ready {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, p);
        let from = Offset::Offset((next - SEEK_BACK).max(0));
        // A zero timeout: the seek is done by the fetcher, not waited for here.
        let resumed = consumer
            .resume(&tpl)
            .and_then(|()| consumer.seek(topic, p, from, Duration::ZERO));
        match resumed {
            Ok(()) => tracing::debug!(partition = p, "partition resumed"),
            Err(e) => tracing::warn!(partition = p, error = %e, "cannot resume the partition"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(done: i64) -> LaneHandle {
        let (tx, _rx) = mpsc::unbounded_channel();
        LaneHandle {
            tx,
            done: Arc::new(AtomicI64::new(done)),
            task: tokio::spawn(async {}),
        }
    }

    #[tokio::test]
    async fn a_partition_is_done_up_to_its_slowest_lane_never_below_its_commit() {
        let mut part = Partition {
            next: 10,
            committed: 3,
            lanes: vec![lane(8), lane(5), lane(9)],
            paused: false,
        };
        assert_eq!((part.position(), part.behind()), (6, 4));
        part.lanes[1].done.store(9, Ordering::Release);
        assert_eq!((part.position(), part.behind()), (9, 1));
        // Lanes made at the commit have done nothing yet.
        part.lanes = vec![lane(2), lane(2)];
        assert_eq!(part.position(), 3);
        part.lanes.clear();
        assert_eq!(part.position(), 3);
    }
}
