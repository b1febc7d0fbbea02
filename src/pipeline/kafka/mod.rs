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
//!   assigns a partition, its state is restored before any of its records is processed
//!   (`restore.rs`): its last snapshot from the state topic (`state.rs`), then the events after
//!   it up to the group's committed offset, replayed with the output discarded; `/readyz` is
//!   false until every assigned partition is restored. Every `commit_interval`, delivered work
//!   is committed (`commit.rs`, after a producer flush), so a crash repeats at most the messages since the
//!   last commit, each with the same `(incident_id, seq)` and body: at-least-once with
//!   identical repeats. One partition due for a snapshot (records since its last one, at least
//!   `snapshot_interval` ago) is snapshotted in that commit: its header's offset in the state
//!   topic is committed with the events offset it covers. Incident messages that fail
//!   delivery are not committed past: every partition is processed again from its last commit.
//! - **Ownership** (`ownership.rs`): a correlator paused long enough to lose its partitions
//!   drops their state and pending output until the group confirms what it owns; a partition
//!   left without a live owner (a coordinator that keeps a dead leader's assignment) makes the
//!   correlator that sees it rejoin the group; the lag of owned partitions is a metric.
//! - **Silences** come from the silences topic (`ingest::silence_log`) through a watch channel;
//!   a restored partition takes the silences in force.
//! - **Event rules** run in the partition of the sender's routing key (`correlate::shard::door`);
//!   an event they give another partition's key is written there as a `routed` record
//!   (`forward.rs`) before the offset that routed it is committed.
//!
//! - **Transactions** (`pipeline.transactions`, `txn.rs`): each commit interval's output and
//!   offsets are one transaction, for brokers that have them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::Counter;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::Config;
use crate::correlate::silence::Silence;
use crate::correlate::{self, TimedShard};
use crate::metrics as m;
use crate::publish::encode::OutboundMessage;
use crate::publish::kafka::{client_config, KafkaSetupError};
use crate::publish::renew::Renewing;
use crate::publish::Sink;

mod commit;
mod forward;
mod group;
mod migrate;
mod ownership;
mod produce;
mod records;
mod restore;
mod state;
mod txn;

use group::Rebalances;
pub use migrate::{migrate, MigrateError};
pub use produce::EventsProducer;
use produce::DELIVERY_TIMEOUT;
pub use records::{apply_message, MessageAt, Routed};
use records::{consume, Owned};

/// Makes sure the state topic exists (compacted: one snapshot per partition is all a restore
/// reads) with the events topic's partition count.
pub async fn ensure_state_topic(
    kafka: &crate::config::KafkaConfig,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Result<(), KafkaSetupError> {
    crate::publish::kafka::ensure_topic(
        kafka,
        bootstrap,
        topic,
        partitions,
        &[("cleanup.policy", "compact")],
    )
    .await
}

/// How far before the offset it needs a reader of the events topic starts (skipping what it
/// has): tansu 0.6 answers a fetch that starts inside a record batch with nothing from that
/// batch, so reading from the exact offset (a commit or a snapshot lands anywhere) would skip
/// the rest of the batch. sluice's producers write at most this many records a batch
/// (`batch.num.messages`, `publish::kafka::idempotent_producer_config`), so a batch that holds
/// the offset starts within it. On brokers without the flaw it costs re-reading that many
/// records on a restore.
pub(super) const SEEK_BACK: i64 = 1000;

/// The running correlator of Kafka mode.
pub struct KafkaCorrelator {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    /// The correlation rules; a new value is taken up by every owned partition (a reload).
    rules: watch::Sender<Arc<crate::config::CorrelateConfig>>,
}

impl KafkaCorrelator {
    /// Where a reload hands new correlation rules.
    pub fn rules(&self) -> watch::Sender<Arc<crate::config::CorrelateConfig>> {
        self.rules.clone()
    }

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
    clock: Clock,
) -> Result<KafkaCorrelator, KafkaSetupError> {
    let pipeline = &config.pipeline;
    let session_ms = pipeline.session_timeout.as_millis();
    let mut cc = client_config(&config.kafka, bootstrap);
    cc.set("group.id", &pipeline.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Routed events and snapshots of aborted transactions are never read.
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", session_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (session_ms / 6).max(100).to_string(),
        )
        // The group waits this long for a member to rejoin a rebalance: kept short, so a dead
        // correlator's partitions move about a session timeout after it died.
        .set("max.poll.interval.ms", (session_ms + 5000).to_string());
    // librdkafka's own log reaches sluice's at the level sluice logs at (with
    // `kafka.properties.debug`, e.g. "cgrp", for the consumer group's story).
    if tracing::enabled!(tracing::Level::DEBUG) {
        cc.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    // Not ready until the group has said what this correlator owns (see `Rebalances`).
    restoring.fetch_add(1, Ordering::Relaxed);
    let consumer: StreamConsumer<Rebalances> = cc
        .create_with_context(Rebalances {
            assigned: Mutex::new(Vec::new()),
            revoked: Mutex::new(Vec::new()),
            restoring,
            joined: std::sync::atomic::AtomicBool::new(false),
        })
        .map_err(KafkaSetupError::Consumer)?;
    consumer
        .subscribe(&[&pipeline.events_topic])
        .map_err(KafkaSetupError::Consumer)?;
    let restore = restore::reader_config(
        &config.kafka,
        bootstrap,
        &format!("{}.restore", pipeline.group_id),
    );
    // One producer writes snapshots and routed events (and, with transactions, the messages).
    let (output, txn) = if pipeline.transactions {
        let id = format!("{}.{}", pipeline.group_id, config.instance);
        let producer = Arc::new(Renewing::transactional(
            "correlator",
            &config.kafka,
            bootstrap,
            DELIVERY_TIMEOUT,
            &id,
        )?);
        let sink = Arc::new(txn::TxnSink::new(
            Arc::clone(&producer),
            &config.kafka,
            &config.instance,
        ));
        let txn = txn::Transactions {
            producer: Arc::clone(&producer),
            sink,
        };
        (producer, Some(txn))
    } else {
        let producer =
            Renewing::idempotent("correlator", &config.kafka, bootstrap, DELIVERY_TIMEOUT)?;
        (Arc::new(producer), None)
    };
    let sink: Arc<dyn Sink> = match &txn {
        Some(txn) => Arc::clone(&txn.sink) as Arc<dyn Sink>,
        None => sink,
    };
    let rules: Arc<str> = super::rules_hash(config).into();
    let (stop, stop_rx) = watch::channel(false);
    let (rules_tx, rules_rx) = watch::channel(Arc::new(config.correlate.clone()));
    let sink_failures = sink.failures();
    let run = Run {
        consumer,
        restore,
        topic: pipeline.events_topic.clone(),
        correlate: config.correlate.clone(),
        partitions: pipeline.partitions as usize,
        sink,
        owned: HashMap::new(),
        silences,
        rules_rx,
        consumed: m::counter(m::EVENT_RECORDS_CONSUMED),
        state: Snapshots {
            writer: state::StateWriter::new(Arc::clone(&output), pipeline.state_topic.clone()),
            every: pipeline.snapshot_interval,
            writer_id: format!(
                "{}.{}",
                config.instance,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            ),
            made: 0,
        },
        rules,
        failures_seen: sink_failures,
        fence: ownership::Fence::new(pipeline.session_timeout),
        group_watch: ownership::GroupWatch::new(pipeline.session_timeout),
        routed: Vec::new(),
        forward: forward::Forwarder::new(output, &pipeline.events_topic),
        clock,
        txn,
    };
    let task = tokio::spawn(run.run(pipeline.commit_interval, stop_rx));
    Ok(KafkaCorrelator {
        task,
        stop,
        rules: rules_tx,
    })
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
    /// New correlation rules from a reload.
    rules_rx: watch::Receiver<Arc<crate::config::CorrelateConfig>>,
    consumed: Counter,
    state: Snapshots,
    /// The fingerprint of this instance's rules (hex, [`super::rules_hash`]).
    rules: Arc<str>,
    /// The sink's failures as of the last commit ([`Sink::failures`]).
    failures_seen: u64,
    fence: ownership::Fence,
    group_watch: ownership::GroupWatch,
    /// Events re-routed to other partitions, to hand to `forward`.
    routed: Vec<Routed>,
    forward: forward::Forwarder,
    /// Stamps messages with their send time (partition time is not wall time).
    clock: Clock,
    /// Transactions mode: the open transaction (its sink is `sink`).
    txn: Option<txn::Transactions>,
}

/// Where and how often partitions are snapshotted.
struct Snapshots {
    writer: state::StateWriter,
    every: Duration,
    /// This process among the partition's writers: its instance name and start time.
    writer_id: String,
    /// Snapshots made by this process, for their ids.
    made: u64,
}

impl Run {
    async fn run(mut self, commit_every: Duration, mut stop: watch::Receiver<bool>) {
        let mut out = Vec::with_capacity(256);
        let mut commit = tokio::time::interval(commit_every);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut silences_open = true;
        let mut rules_open = true;
        // Often enough to tell a pause from an idle wait (see `ownership`).
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // (A pause is checked for before each hand-over below and on every tick.)
            self.sync_assignment(&mut out);
            tokio::select! {
                msg = self.consumer.recv() => match msg {
                    Ok(msg) if self.consumer.context().has_news() => {
                        // The group changed during this poll: take that in before the record.
                        let (p, offset) = (msg.partition(), msg.offset());
                        let payload = msg.payload().unwrap_or_default().to_vec();
                        drop(msg);
                        self.sync_assignment(&mut out);
                        let at = self.at(p, offset);
                        consume(&mut self.owned, &self.consumed, at, &payload, &mut out, &mut self.routed);
                    }
                    Ok(msg) => {
                        let at = self.at(msg.partition(), msg.offset());
                        let payload = msg.payload().unwrap_or_default();
                        consume(
                            &mut self.owned,
                            &self.consumed,
                            at,
                            payload,
                            &mut out,
                            &mut self.routed,
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
                _ = tick.tick() => {
                    self.fence(&mut out);
                    self.take_back(&mut out);
                    self.watch_group();
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
                changed = self.rules_rx.changed(), if rules_open => {
                    match changed {
                        Ok(()) => self.take_rules(&mut out),
                        Err(_) => rules_open = false,
                    }
                }
                _ = stop.changed() => {
                    self.commit_then(true).await;
                    self.consumer.unsubscribe();
                    return;
                }
            }
            // Nothing goes out for partitions that may have moved during a pause.
            self.fence(&mut out);
            correlate::hand_to_sink(&*self.sink, &mut out, self.clock.now()).await;
            self.forward.send(&mut self.routed).await;
            self.fence.mark_alive();
        }
    }

    /// Fetches partition `p` again from `next` (from [`SEEK_BACK`] records before it: the
    /// records before `next` are skipped by [`consume`]).
    fn fetch_from(&self, p: i32, next: i64) -> rdkafka::error::KafkaResult<()> {
        let from = (next - SEEK_BACK).max(0);
        self.consumer.seek(
            &self.topic,
            p,
            rdkafka::Offset::Offset(from),
            Duration::from_secs(10),
        )
    }

    fn at(&self, partition: i32, offset: i64) -> MessageAt {
        MessageAt {
            partition,
            offset,
            partitions: self.partitions,
            floor: self.owned.get(&partition).map_or(0, |o| o.floor),
        }
    }

    /// Forgets the partitions the group took away (their next owner restores them), then
    /// restores every partition it gave, before any of their records is processed.
    fn sync_assignment(&mut self, out: &mut Vec<OutboundMessage>) {
        let context = self.consumer.context();
        let revoked = std::mem::take(&mut *context.revoked.lock().expect("rebalance lock"));
        let assigned = std::mem::take(&mut *context.assigned.lock().expect("rebalance lock"));
        let restoring = Arc::clone(&context.restoring);
        if revoked.is_empty() && assigned.is_empty() {
            return;
        }
        if !revoked.is_empty() && self.txn.is_some() {
            // The open transaction holds output of the revoked partitions' records since the
            // last commit, which their next owner makes again: abort it, and process the
            // partitions kept again from their last commit too.
            self.abort_transaction("partitions revoked");
            if self.owned.keys().any(|p| !revoked.contains(p)) {
                self.process_again();
            }
        }
        for p in revoked {
            if self.owned.remove(&p).is_some() {
                m::consumer_lag(p).set(0.0);
                tracing::info!(partition = p, "partition handed over");
            }
        }
        for p in assigned {
            if !self.owned.contains_key(&p) {
                let Some(restored) = self.restore_owned(p, out) else {
                    // Still counted as restoring; tried again by `take_back`.
                    self.retry_restore_soon();
                    continue;
                };
                let next = restored.next;
                self.owned.insert(p, restored);
                // The group's fetch starts at the committed offset, which may be inside a
                // batch (see `SEEK_BACK`).
                if let Err(e) = self.fetch_from(p, next) {
                    tracing::warn!(partition = p, error = %e, "cannot fetch the partition from before its committed offset; taking it back in a second");
                    self.owned.remove(&p);
                    self.retry_restore_soon();
                    continue;
                }
            }
            restoring.fetch_sub(1, Ordering::Relaxed);
        }
        m::gauge(m::PARTITIONS_OWNED).set(self.owned.len() as f64);
    }

    /// Partition `p` restored, with the silences in force; `None` when it could not be (logged).
    /// A reload's rules: every owned partition carries its state over to them as a restore
    /// from its own snapshot would (what a restart under them would do, without the replay),
    /// and partitions restored later take them. A partition whose state does not carry over
    /// keeps the old rules, logged.
    fn take_rules(&mut self, out: &mut Vec<OutboundMessage>) {
        let config = self.rules_rx.borrow_and_update().clone();
        let hash: Arc<str> = super::rules_hash_of(&config).into();
        let silences = self.silences.borrow().clone();
        for (&p, owned) in self.owned.iter_mut() {
            let part = correlate::Part {
                index: p as usize,
                of: self.partitions,
            };
            match TimedShard::restore(&config, part, &owned.timed.snapshot()) {
                Ok(mut timed) => {
                    timed.shard.rules_reloaded();
                    let now = timed.time();
                    timed.shard.set_silences(Arc::clone(&silences), now, out);
                    owned.timed = timed;
                    owned.rules = Arc::clone(&hash);
                }
                Err(error) => tracing::error!(
                    partition = p,
                    %error,
                    "partition keeps its rules: its state does not carry over to the reloaded ones"
                ),
            }
        }
        tracing::info!(partitions = self.owned.len(), rules = %hash, "correlator took the reloaded rules");
        self.correlate = (*config).clone();
        self.rules = hash;
    }

    fn restore_owned(&mut self, p: i32, out: &mut Vec<OutboundMessage>) -> Option<Owned> {
        let restored = self.restore(p);
        self.fence.mark_alive();
        let mut restored = match restored {
            Ok(restored) => restored,
            Err(error) => {
                tracing::error!(partition = p, %error, "partition not restored; trying again in a second");
                return None;
            }
        };
        let silences = self.silences.borrow().clone();
        if !silences.is_empty() {
            let now = restored.timed.time();
            restored.timed.shard.set_silences(silences, now, out);
        }
        Some(restored)
    }
}
