//! Restoring a partition the group assigned, before any of its records is processed: its last
//! snapshot from the state topic (see `state`), then the events after it up to the group's
//! committed offset, replayed with their output discarded (it was published before). Without
//! a snapshot, or when it cannot be read, the partition's whole retained history is replayed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::CorrelateConfig;
use crate::correlate::{self, TimedShard};
use crate::metrics as m;

use super::{state, Owned, Run};

/// How long one partition's replay may take before the correlator goes on without the rest
/// (logged as an error).
const REPLAY_LIMIT: Duration = Duration::from_secs(300);

impl Run {
    /// Partition `p`'s state as of the group's committed offset. An error (the broker cannot
    /// be read) leaves nothing half restored: the caller tries again later.
    pub(super) fn restore(&self, p: i32) -> Result<Owned, String> {
        let started = Instant::now();
        let restorer = Restorer {
            reader: &self.restore,
            events_topic: &self.topic,
            state_topic: self.state.writer.topic(),
            correlate: &self.correlate,
            partitions: self.partitions,
            rules: &self.rules,
        };
        let (mut owned, restored) = tokio::task::block_in_place(|| {
            let (until, state_at) = self.committed(p)?;
            restorer.restore(p, until, state_at)
        })?;
        // What it re-routed before `until` was delivered before `until` was committed.
        owned.floor = owned.next;
        m::counter(m::RESTORE_RECORDS).increment(restored.records);
        m::restores(restored.source).increment(1);
        m::histogram(m::RESTORE_DURATION).record(started.elapsed().as_secs_f64());
        tracing::info!(
            partition = p,
            source = restored.source,
            records = restored.records,
            until = owned.next,
            epoch = owned.epoch,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "partition restored"
        );
        Ok(owned)
    }

    /// The group's committed offsets of events partition `p` (0 when none) and of state
    /// partition `p` (the header of its last snapshot, if any).
    fn committed(&self, p: i32) -> Result<(i64, Option<i64>), String> {
        committed(&self.consumer, &self.topic, self.state.writer.topic(), p)
    }
}

/// A group's committed offsets of events partition `p` (0 when none) and of state partition
/// `p` (the header of its last snapshot, if any), as `consumer`'s group has them.
pub(super) fn committed<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl Consumer<C>,
    events_topic: &str,
    state_topic: &str,
    p: i32,
) -> Result<(i64, Option<i64>), String> {
    let mut tpl = TopicPartitionList::new();
    let _ = tpl.add_partition(events_topic, p);
    let _ = tpl.add_partition(state_topic, p);
    match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
        Ok(tpl) => {
            let offset = |topic: &str| {
                tpl.find_partition(topic, p).and_then(|e| match e.offset() {
                    Offset::Offset(n) if n >= 0 => Some(n),
                    _ => None,
                })
            };
            Ok((offset(events_topic).unwrap_or(0), offset(state_topic)))
        }
        Err(e) => Err(format!("cannot read the committed offsets: {e}")),
    }
}

/// The config of a reader of the events and state topics: it assigns partitions itself (its
/// `group`'s offsets are never committed) and reads only committed transactions.
pub(super) fn reader_config(
    kafka: &crate::config::KafkaConfig,
    bootstrap: &str,
    group: &str,
) -> rdkafka::ClientConfig {
    let mut config = crate::publish::kafka::client_config(kafka, bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    config
}

/// How a partition was restored.
pub(super) struct Restored {
    /// "snapshot" or "history".
    pub source: &'static str,
    /// Events-topic records replayed.
    pub records: u64,
}

/// Restores partitions of one events topic and its state topic: what a correlator does when
/// the group assigns it a partition, and what `sluice migrate` does to every partition.
pub(super) struct Restorer<'a> {
    /// A consumer config for reading (no group of its own matters: it assigns partitions).
    pub reader: &'a rdkafka::ClientConfig,
    pub events_topic: &'a str,
    pub state_topic: &'a str,
    pub correlate: &'a CorrelateConfig,
    pub partitions: usize,
    pub rules: &'a Arc<str>,
}

impl Restorer<'_> {
    /// Partition `p` as of events offset `until`: its snapshot at `state_at` in the state
    /// topic (if any, and readable), then the events after it up to `until`, their output
    /// discarded (it was published before). Blocking. An error (the broker cannot be read)
    /// leaves nothing half restored.
    pub fn restore(
        &self,
        p: i32,
        until: i64,
        state_at: Option<i64>,
    ) -> Result<(Owned, Restored), String> {
        let (mut owned, source) = match state_at {
            Some(at) => match self.read_snapshot(p, at) {
                Ok(owned) => (owned, "snapshot"),
                Err(Unreadable::Kafka(e)) => return Err(e),
                Err(Unreadable::Invalid(error)) => {
                    tracing::error!(partition = p, %error, "snapshot not restored; replaying the partition's retained history instead");
                    (self.fresh(p), "history")
                }
            },
            None => (self.fresh(p), "history"),
        };
        let mut records = 0;
        if owned.next < until {
            self.replay(p, until, &mut owned, &mut records)
                .map_err(|e| e.to_string())?;
        }
        owned.next = owned.next.max(until);
        Ok((owned, Restored { source, records }))
    }

    /// Partition `p` of the events topic's.
    fn part(&self, p: i32) -> correlate::Part {
        correlate::Part {
            index: p as usize,
            of: self.partitions,
        }
    }

    /// An empty partition, for its first owner.
    fn fresh(&self, p: i32) -> Owned {
        let shard = correlate::build_shard(self.correlate, self.part(p));
        Owned::new(TimedShard::new(shard), 0, 1, Arc::clone(self.rules))
    }

    /// The partition as its snapshot at `at` in the state topic holds it.
    fn read_snapshot(&self, p: i32, at: i64) -> Result<Owned, Unreadable> {
        let (header, bytes) =
            state::read(self.reader, self.state_topic, p, at).map_err(|e| match e {
                state::StateError::Kafka(e) => Unreadable::Kafka(e.to_string()),
                other => Unreadable::Invalid(other.to_string()),
            })?;
        let timed = TimedShard::restore(self.correlate, self.part(p), &bytes)
            .map_err(|e| Unreadable::Invalid(e.to_string()))?;
        if *header.rules != **self.rules {
            tracing::warn!(
                partition = p,
                snapshot_rules = %header.rules,
                rules = %self.rules,
                "RULES DIFFER: the partition's snapshot was written under other grouping or inhibition rules; its incidents keep their rules by name"
            );
        }
        let mut owned = Owned::new(
            timed,
            header.events_offset,
            header.epoch + 1,
            Arc::clone(self.rules),
        );
        owned.snapshot = Some((header, at));
        Ok(owned)
    }

    /// Applies the partition's records from `owned.next` up to `until`, output discarded.
    fn replay(
        &self,
        p: i32,
        until: i64,
        owned: &mut Owned,
        records: &mut u64,
    ) -> Result<(), ReplayError> {
        let reader: BaseConsumer = self.reader.create()?;
        let mut tpl = TopicPartitionList::new();
        // From before `next`, skipping what it has (see `SEEK_BACK`).
        let from = match owned.next - super::SEEK_BACK {
            n if n <= 0 => Offset::Beginning,
            n => Offset::Offset(n),
        };
        tpl.add_partition_offset(self.events_topic, p, from)?;
        reader.assign(&tpl)?;
        let (mut discard, mut discard_routed) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + REPLAY_LIMIT;
        let mut first = true;
        while owned.next < until && Instant::now() < deadline {
            match reader.poll(Duration::from_millis(500)) {
                Some(Ok(msg)) => {
                    if msg.offset() >= until {
                        break;
                    }
                    if msg.offset() < owned.next {
                        continue;
                    }
                    if std::mem::take(&mut first) && msg.offset() > owned.next {
                        tracing::error!(
                            partition = p,
                            from = owned.next,
                            first = msg.offset(),
                            "EVENTS LOST TO RETENTION: the events topic no longer holds every record the restore needs; raise its retention.ms"
                        );
                    }
                    // Its routed events were delivered before its offset was committed.
                    let at = super::MessageAt {
                        partition: p,
                        offset: msg.offset(),
                        partitions: self.partitions,
                        floor: 0,
                    };
                    owned.apply(
                        at,
                        msg.payload().unwrap_or_default(),
                        &mut discard,
                        &mut discard_routed,
                    );
                    discard.clear();
                    discard_routed.clear();
                    owned.next = msg.offset() + 1;
                    *records += 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        if owned.next < until {
            return Err(ReplayError::Short {
                at: owned.next,
                until,
            });
        }
        Ok(())
    }
}

/// Why a snapshot was not restored: the broker could not be read (try again later), or what
/// it holds is not a snapshot this version can restore (replay the history instead).
enum Unreadable {
    Kafka(String),
    Invalid(String),
}

#[derive(Debug, thiserror::Error)]
enum ReplayError {
    #[error("replay: {0}")]
    Kafka(#[from] KafkaError),
    #[error("replay reached offset {at}, not the committed {until}, within {REPLAY_LIMIT:?}")]
    Short { at: i64, until: i64 },
}
