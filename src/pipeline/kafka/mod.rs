//! Kafka mode (`[pipeline] mode = "kafka"`): the events topic is the pipeline, and the
//! correlators are one consumer group on it.
//!
//! - **Ingest** ([`EventsProducer`]) encodes each request's events in the wire format
//!   (`event::wire`) and produces them, one record per partition touched (the partition from
//!   the one [`partition`] function; records of one Kafka message are separated by newlines),
//!   with `acks=all` and idempotence. The sender is answered only after every delivery report
//!   is in: a failed or timed-out delivery answers 503. Every `watermark_interval` it writes a
//!   watermark record (its clock) to each partition it has not written to since, so an idle
//!   partition's time still moves and its timers fire.
//! - **Correlation** ([`spawn_correlator`]): an assigned partition is a shard. Its time is
//!   partition time: the highest `received_at` or watermark of its records, never a local
//!   clock, so the shard's output is a function of the partition's records. When the group
//!   assigns a partition, its state is restored before any of its records is processed, by
//!   replaying the partition from its start up to the group's committed offset with the
//!   output discarded; `/readyz` is false until every assigned partition is restored. Delivered work is committed every `commit_interval` (after a
//!   producer flush), so a crash repeats at most the messages since the last commit, each
//!   with the same `(incident_id, seq)` and body: at-least-once with identical repeats.
//!
//! Not yet: snapshots (restore reads the partition's whole retained history), ownership
//! checks before each produce, silences shared through a topic (a silence applies to the
//! partitions of the instance whose API made it), re-routed events forwarded between
//! partitions (event rules run at ingest, before the partition is chosen).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::Counter;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::correlate::silence::Silence;
use crate::correlate::{self, Input, TimedShard};
use crate::event::wire::{self, Record};
use crate::metrics as m;
use crate::publish::encode::OutboundMessage;
use crate::publish::kafka::{client_config, KafkaSetupError};
use crate::publish::Sink;
use crate::time::UnixMillis;

mod group;
mod produce;

use group::Rebalances;
pub use produce::EventsProducer;
use produce::DELIVERY_TIMEOUT;

/// One owned partition: its shard on partition time, and the next offset to commit.
struct Owned {
    timed: TimedShard,
    next: i64,
}

impl Owned {
    /// Applies one Kafka message's records; their output goes to `out`.
    /// Records that are not the wire format are skipped, counted, and logged once per message.
    fn apply(&mut self, payload: &[u8], out: &mut Vec<OutboundMessage>) {
        let mut skipped = 0u64;
        let mut first_error = None;
        for line in payload.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match wire::decode(line) {
                Ok(Record::Event(e)) => self.timed.apply(Input::Event(e), no_time, out),
                Ok(Record::Change(c)) => self.timed.apply(Input::Change(c), no_time, out),
                Ok(Record::Watermark { at }) => {
                    self.timed.advance_to(at, out);
                }
                Err(e) => {
                    skipped += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(error) = first_error {
            m::counter(m::EVENTS_UNDECODABLE).increment(skipped);
            tracing::error!(%error, skipped, "events topic records skipped");
        }
    }
}

/// Every record of the events topic brings its own time; none falls back to a clock.
fn no_time() -> UnixMillis {
    UnixMillis(0)
}

/// Applies the message at `offset` of partition `p` if this correlator owns `p` and has not
/// applied it yet (a message fetched before its partition moved belongs to the next owner).
fn consume(
    owned: &mut HashMap<i32, Owned>,
    consumed: &Counter,
    p: i32,
    offset: i64,
    payload: &[u8],
    out: &mut Vec<OutboundMessage>,
) {
    if let Some(owned) = owned.get_mut(&p).filter(|o| offset >= o.next) {
        owned.apply(payload, out);
        owned.next = offset + 1;
        consumed.increment(1);
    }
}

/// The running correlator of Kafka mode.
pub struct KafkaCorrelator {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl KafkaCorrelator {
    /// Stops consuming, delivers and commits what was processed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "kafka correlator task failed");
        }
    }
}

/// Joins the correlators' consumer group on the events topic and correlates every assigned
/// partition, publishing to `sink`.
pub fn spawn_correlator(
    config: &Config,
    bootstrap: &str,
    sink: Arc<dyn Sink>,
    silences: watch::Receiver<Arc<[Silence]>>,
    restoring: Arc<AtomicUsize>,
) -> Result<KafkaCorrelator, KafkaSetupError> {
    let pipeline = &config.pipeline;
    let session_ms = pipeline.session_timeout.as_millis();
    let mut cc = client_config(&config.kafka, bootstrap);
    cc.set("group.id", &pipeline.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (session_ms / 6).max(100).to_string(),
        )
        // The group waits this long for a member to rejoin a rebalance: kept short, so a dead
        // correlator's partitions move about a session timeout after it died.
        .set("max.poll.interval.ms", (session_ms + 5000).to_string());
    let consumer: StreamConsumer<Rebalances> = cc
        .create_with_context(Rebalances {
            assigned: Mutex::new(Vec::new()),
            revoked: Mutex::new(Vec::new()),
            restoring,
        })
        .map_err(KafkaSetupError::Consumer)?;
    consumer
        .subscribe(&[&pipeline.events_topic])
        .map_err(KafkaSetupError::Consumer)?;
    let mut restore = client_config(&config.kafka, bootstrap);
    restore
        .set("group.id", format!("{}.restore", pipeline.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let (stop, stop_rx) = watch::channel(false);
    let run = Run {
        consumer,
        restore,
        topic: pipeline.events_topic.clone(),
        correlate: config.correlate.clone(),
        partitions: pipeline.partitions as usize,
        sink,
        owned: HashMap::new(),
        silences,
        consumed: m::counter(m::EVENT_RECORDS_CONSUMED),
    };
    let task = tokio::spawn(run.run(pipeline.commit_interval, stop_rx));
    Ok(KafkaCorrelator { task, stop })
}

struct Run {
    consumer: StreamConsumer<Rebalances>,
    restore: rdkafka::ClientConfig,
    topic: String,
    correlate: crate::config::CorrelateConfig,
    partitions: usize,
    sink: Arc<dyn Sink>,
    owned: HashMap<i32, Owned>,
    silences: watch::Receiver<Arc<[Silence]>>,
    consumed: Counter,
}

impl Run {
    async fn run(mut self, commit_every: Duration, mut stop: watch::Receiver<bool>) {
        let mut out = Vec::with_capacity(256);
        let mut commit = tokio::time::interval(commit_every);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut silences_open = true;
        loop {
            self.sync_assignment(&mut out);
            tokio::select! {
                msg = self.consumer.recv() => match msg {
                    Ok(msg) if self.consumer.context().has_news() => {
                        // The group changed during this poll: take that in before the record.
                        let (p, offset) = (msg.partition(), msg.offset());
                        let payload = msg.payload().unwrap_or_default().to_vec();
                        drop(msg);
                        self.sync_assignment(&mut out);
                        consume(&mut self.owned, &self.consumed, p, offset, &payload, &mut out);
                    }
                    Ok(msg) => {
                        let payload = msg.payload().unwrap_or_default();
                        consume(
                            &mut self.owned,
                            &self.consumed,
                            msg.partition(),
                            msg.offset(),
                            payload,
                            &mut out,
                        );
                    }
                    Err(e) => {
                        // Broker outages repeat this every poll: one line a second at most.
                        tracing::warn!(error = %e, "events topic consumer error");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                _ = commit.tick() => {
                    self.commit().await;
                }
                changed = self.silences.changed(), if silences_open => {
                    if changed.is_err() {
                        silences_open = false;
                        continue;
                    }
                    let silences = self.silences.borrow_and_update().clone();
                    for owned in self.owned.values_mut() {
                        let now = owned.timed.time();
                        owned.timed.shard.set_silences(Arc::clone(&silences), now, &mut out);
                    }
                }
                _ = stop.changed() => {
                    self.commit().await;
                    self.consumer.unsubscribe();
                    return;
                }
            }
            correlate::hand_to_sink(&*self.sink, &mut out).await;
        }
    }

    /// Forgets the partitions the group took away (their next owner restores them), then
    /// restores every partition it gave, before any of their records is processed.
    fn sync_assignment(&mut self, out: &mut Vec<OutboundMessage>) {
        let context = self.consumer.context();
        let revoked = std::mem::take(&mut *context.revoked.lock().expect("rebalance lock"));
        let assigned = std::mem::take(&mut *context.assigned.lock().expect("rebalance lock"));
        if revoked.is_empty() && assigned.is_empty() {
            return;
        }
        for p in revoked {
            if self.owned.remove(&p).is_some() {
                tracing::info!(partition = p, "partition handed over");
            }
        }
        for p in assigned {
            if !self.owned.contains_key(&p) {
                let mut restored = self.restore(p);
                let silences = self.silences.borrow().clone();
                if !silences.is_empty() {
                    let now = restored.timed.time();
                    restored.timed.shard.set_silences(silences, now, out);
                }
                self.owned.insert(p, restored);
            }
            context.restoring.fetch_sub(1, Ordering::Relaxed);
        }
        m::gauge(m::PARTITIONS_OWNED).set(self.owned.len() as f64);
    }

    /// Delivers everything produced so far, then commits what produced it.
    async fn commit(&mut self) {
        if self.owned.is_empty() {
            return;
        }
        let sink = Arc::clone(&self.sink);
        let undelivered = tokio::task::spawn_blocking(move || sink.flush(DELIVERY_TIMEOUT))
            .await
            .unwrap_or(-1);
        if undelivered != 0 {
            tracing::warn!(undelivered, "not committing: messages still undelivered");
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, owned) in &self.owned {
            let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(owned.next));
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit failed");
        }
    }

    /// Rebuilds partition `p`'s state by replaying it from its start up to the group's
    /// committed offset, with the output discarded.
    fn restore(&self, p: i32) -> Owned {
        let started = std::time::Instant::now();
        let mut owned = Owned {
            timed: TimedShard::new(correlate::build_shard(&self.correlate, self.partitions)),
            next: 0,
        };
        let mut records = 0u64;
        let until = tokio::task::block_in_place(|| {
            let until = self.committed(p);
            if until > 0 {
                if let Err(e) = self.replay(p, until, &mut owned, &mut records) {
                    tracing::error!(partition = p, error = %e, "restore failed; the partition starts from its committed offset with what was restored");
                }
            }
            until
        });
        owned.next = owned.next.max(until);
        m::counter(m::RESTORE_RECORDS).increment(records);
        m::histogram(m::RESTORE_DURATION).record(started.elapsed().as_secs_f64());
        tracing::info!(
            partition = p,
            records,
            until,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "partition restored"
        );
        owned
    }

    /// The group's committed offset of partition `p` (0 when none).
    fn committed(&self, p: i32) -> i64 {
        let mut tpl = TopicPartitionList::new();
        let _ = tpl.add_partition(&self.topic, p);
        match self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(10))
        {
            Ok(tpl) => tpl
                .elements()
                .first()
                .and_then(|e| match e.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                })
                .unwrap_or(0),
            Err(e) => {
                tracing::error!(partition = p, error = %e, "cannot read the committed offset; replaying from the start");
                0
            }
        }
    }

    fn replay(
        &self,
        p: i32,
        until: i64,
        owned: &mut Owned,
        records: &mut u64,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let reader: BaseConsumer = self.restore.create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, p, Offset::Beginning)?;
        reader.assign(&tpl)?;
        let mut discard = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while owned.next < until && std::time::Instant::now() < deadline {
            match reader.poll(Duration::from_millis(500)) {
                Some(Ok(msg)) => {
                    if msg.offset() >= until {
                        break;
                    }
                    owned.apply(msg.payload().unwrap_or_default(), &mut discard);
                    discard.clear();
                    owned.next = msg.offset() + 1;
                    *records += 1;
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok(())
    }
}
