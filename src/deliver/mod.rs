//! `sluice forward`: delivery for teams without a Kafka consumer of their own. The forwarder
//! reads the incidents topic (`kafka.topic`) as its own consumer group (`deliver.group_id`,
//! `read_committed`, no auto-commit) and delivers each incident message to the receivers
//! (`[[receivers]]`) whose types and matchers select it: a generic JSON webhook, a Slack
//! incoming webhook, PagerDuty's Events API v2.
//!
//! ```text
//! incidents topic ──▶ consumer ──▶ partition p ──┬─▶ lane (p, receiver A) ──▶ HTTP ──▶ A
//!   (own group)        (dispatch)                ├─▶ lane (p, receiver B) ──▶ HTTP ──▶ B
//!                                                └─▶ ...        │ refused / gave up
//!                                                               ▼
//!                      commit p up to the slowest lane    dead-letter topic
//! ```
//!
//! Each (partition, receiver) pair is a [`lane::Lane`] that delivers in offset order, so each
//! receiver sees an incident's messages in `seq` order, and a receiver that fails or stalls
//! holds back only its own lanes (until it is `deliver.max_pending` messages behind on a
//! partition: then reading waits, so memory stays bounded). A partition's offset is
//! committed (every second, on a rebalance and at shutdown) only up to the messages every lane
//! has delivered, skipped or dead-lettered: delivery is at least once, and a message delivered
//! again after a crash carries the same `Idempotency-Key` (webhook) or `dedup_key`
//! (PagerDuty). Records that are not incident messages are passed over.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Brokers, Config, ReceiverConfig, StartFrom};
use crate::ingest::confirm::SystemTls;
use crate::metrics as m;

mod dead_letter;
mod http;
mod lane;
mod message;
mod pagerduty;
mod render;
mod serve;
mod slack;

pub use message::Incident;
pub use serve::until_signal;

/// The "Examples" of `sluice forward --help`.
pub const EXAMPLES: &str = "\
Examples:
  sluice forward --config /etc/sluice/forward.toml   # its [kafka], [deliver] and [[receivers]]
  SLUICE_KAFKA_BROKERS=kafka-1:9092 sluice forward --config forward.toml
  sluice forward --config forward.toml & curl -s 127.0.0.1:9466/metrics | grep sluice_deliveries";

/// How often done offsets are committed.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Every this many commits, the lag of each partition is measured.
const LAG_EVERY: u32 = 10;
/// How far before its committed offset a partition is fetched (the records before it are
/// passed over): tansu 0.6 answers a fetch that starts inside a record batch with nothing from
/// that batch, and sluice's producers write at most this many records a batch (as
/// `pipeline::kafka` reads the events topic).
const SEEK_BACK: i64 = 1000;
/// Bound on the broker calls made while partitions are assigned or revoked.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the forwarder could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no [[receivers]] in the configuration: nothing to deliver to")]
    NoReceivers,
    #[error("kafka.brokers is \"embedded\": that broker lives inside `sluice serve`; name the cluster's brokers (SLUICE_KAFKA_BROKERS)")]
    EmbeddedBroker,
    #[error("deliver.listen {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("no CA certificates to verify https receivers with: {0}")]
    NoRoots(String),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("dead-letter topic: {0}")]
    DeadLetterTopic(String),
}

/// One record read from the topic, shared by its partition's lanes.
pub struct Item {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Bytes,
    pub headers: Vec<(String, Vec<u8>)>,
    /// `None` when the record is not an incident message.
    pub incident: Option<Incident>,
}

impl Item {
    fn read(msg: &BorrowedMessage<'_>) -> Item {
        let payload = Bytes::copy_from_slice(msg.payload().unwrap_or_default());
        Item {
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(<[u8]>::to_vec),
            headers: msg
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            incident: Incident::parse(&payload),
            payload,
        }
    }
}

/// What every lane shares.
pub struct Shared {
    dead_letters: dead_letter::DeadLetters,
    receivers: Vec<(Arc<ReceiverConfig>, lane::ReceiverMetrics, http::Target)>,
    tls: Option<Result<Arc<rustls::ClientConfig>, String>>,
    max_pending: usize,
}

/// An owned partition.
struct Partition {
    /// The next offset to hand to the lanes; records before it are passed over.
    next: i64,
    /// The offset committed last (the next one to read after a restart).
    committed: i64,
    lanes: Vec<LaneHandle>,
}

/// A running lane: where its messages go, what it has done, its task.
struct LaneHandle {
    tx: mpsc::Sender<Arc<Item>>,
    /// The offset of the last message it handled.
    done: Arc<AtomicI64>,
    task: JoinHandle<()>,
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

    fn stop(&self) {
        for lane in &self.lanes {
            lane.task.abort();
        }
    }
}

type Table = Arc<Mutex<HashMap<i32, Partition>>>;

/// The consumer's context: assigns partitions from before their committed offset (see
/// [`SEEK_BACK`]) and commits what is done of partitions it loses.
struct Rebalances {
    table: Table,
    topic: String,
    start_from: StartFrom,
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
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assignment = self.assign(consumer, tpl);
                if let Err(e) = consumer.assign(&assignment) {
                    tracing::error!(error = %e, "cannot take the assigned partitions");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                let mut table = self.table.lock().expect("partition table lock");
                let mut done = TopicPartitionList::new();
                for p in &revoked {
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
                tracing::info!(?revoked, "partitions handed over");
                let _ = consumer.unassign();
            }
            other => tracing::error!(error = ?other, "rebalance failed"),
        }
    }
}

impl Rebalances {
    /// The assignment `tpl` with each partition starting [`SEEK_BACK`] records before its
    /// committed offset (not before the log's start); the partitions enter the table.
    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> TopicPartitionList {
        let committed = consumer.committed_offsets(tpl.clone(), BROKER_TIMEOUT);
        let committed = committed.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "committed offsets unknown; reading from them as the group says");
            tpl.clone()
        });
        let mut out = TopicPartitionList::new();
        let mut table = self.table.lock().expect("partition table lock");
        for e in committed.elements() {
            let p = e.partition();
            let (from, next) = match e.offset() {
                Offset::Offset(n) => {
                    let low = consumer
                        .fetch_watermarks(&self.topic, p, BROKER_TIMEOUT)
                        .map_or(0, |(low, _)| low);
                    (Offset::Offset((n - SEEK_BACK).max(low).min(n)), n)
                }
                _ if self.start_from == StartFrom::Beginning => (Offset::Beginning, 0),
                _ => (Offset::End, 0),
            };
            let _ = out.add_partition_offset(&self.topic, p, from);
            if let Some(old) = table.insert(
                p,
                Partition {
                    next,
                    committed: next,
                    lanes: Vec::new(),
                },
            ) {
                old.stop();
            }
        }
        tracing::info!(partitions = ?table.keys().collect::<Vec<_>>(), "partitions assigned");
        out
    }
}

/// Runs the forwarder until `stop` fires; commits what was done and returns.
pub async fn run(config: Config, mut stop: watch::Receiver<bool>) -> Result<(), ForwardError> {
    let deliver = &config.deliver;
    if deliver.receivers.is_empty() {
        return Err(ForwardError::NoReceivers);
    }
    let Brokers::List(bootstrap) = &config.kafka.brokers else {
        return Err(ForwardError::EmbeddedBroker);
    };
    let metrics = m::install();
    let listener = tokio::net::TcpListener::bind(deliver.listen)
        .await
        .map_err(|e| ForwardError::Listen(deliver.listen, e))?;
    let mut receivers = Vec::new();
    for r in &deliver.receivers {
        let target = http::Target::parse(&r.url).expect("receiver URLs were checked");
        receivers.push((Arc::new(r.clone()), lane::ReceiverMetrics::new(r), target));
    }
    let tls = if receivers.iter().any(|(_, _, t)| t.is_https()) {
        let tls = tokio::task::spawn_blocking(|| SystemTls::default().get())
            .await
            .expect("loading the CA store does not panic");
        Some(Ok(tls.map_err(ForwardError::NoRoots)?))
    } else {
        None
    };
    let kafka = &config.kafka;
    crate::publish::kafka::ensure_topic(
        kafka,
        bootstrap,
        &deliver.dead_letter_topic,
        kafka.partitions,
        &[],
    )
    .await
    .or_else(|e| match e {
        // A topic of another partition count serves as well.
        crate::publish::kafka::KafkaSetupError::Partitions { .. } => Ok(()),
        e => Err(ForwardError::DeadLetterTopic(e.to_string())),
    })?;
    let producer = crate::publish::kafka::idempotent_producer_config(
        kafka,
        bootstrap,
        Duration::from_secs(30),
    )
    .create()?;
    let shared = Arc::new(Shared {
        dead_letters: dead_letter::DeadLetters::new(
            producer,
            deliver.dead_letter_topic.clone(),
            kafka.topic.clone(),
        ),
        receivers,
        tls,
        max_pending: deliver.max_pending,
    });
    let table: Table = Arc::default();
    let context = Rebalances {
        table: Arc::clone(&table),
        topic: kafka.topic.clone(),
        start_from: deliver.start_from,
    };
    let consumer: StreamConsumer<Rebalances> =
        crate::publish::kafka::client_config(kafka, bootstrap)
            .set("group.id", &deliver.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                match deliver.start_from {
                    StartFrom::Beginning => "earliest",
                    StartFrom::End => "latest",
                },
            )
            .create_with_context(context)?;
    consumer.subscribe(&[&kafka.topic])?;
    let consumer = Arc::new(consumer);
    tracing::info!(
        topic = kafka.topic,
        group_id = deliver.group_id,
        receivers = deliver.receivers.len(),
        listen = %deliver.listen,
        "forwarding incident messages"
    );
    let server = tokio::spawn(serve::metrics(listener, metrics, stop.clone()));
    let committer = tokio::spawn(commit_loop(
        Arc::clone(&consumer),
        Arc::clone(&table),
        kafka.topic.clone(),
        stop.clone(),
    ));
    loop {
        let received = tokio::select! {
            r = consumer.recv() => r,
            _ = stop.changed() => break,
        };
        match received {
            Ok(msg) => {
                let item = Item::read(&msg);
                drop(msg);
                if !dispatch(&table, &shared, item, &mut stop).await {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the incidents topic failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let _ = committer.await;
    let _ = server.await;
    for part in table.lock().expect("partition table lock").values() {
        part.stop();
    }
    let consumer2 = Arc::clone(&consumer);
    let topic = kafka.topic.clone();
    tokio::task::spawn_blocking(move || commit(&consumer2, &table, &topic))
        .await
        .expect("the last commit does not panic");
    consumer.unsubscribe();
    tracing::info!("forwarder stopped; done offsets committed");
    Ok(())
}

/// Hands `item` to its partition's lanes (made on its first record); `false` when `stop`
/// fired while a lane was full.
async fn dispatch(
    table: &Table,
    shared: &Arc<Shared>,
    item: Item,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let senders: Vec<mpsc::Sender<Arc<Item>>> = {
        let mut table = table.lock().expect("partition table lock");
        // Not owned (fetched before a revocation), or read early (see SEEK_BACK) or again.
        let Some(part) = table.get_mut(&item.partition) else {
            return true;
        };
        if item.offset < part.next {
            return true;
        }
        part.next = item.offset + 1;
        if part.lanes.is_empty() {
            part.lanes = shared
                .receivers
                .iter()
                .map(|(receiver, metrics, target)| {
                    let (tx, rx) = mpsc::channel(shared.max_pending);
                    let done = Arc::new(AtomicI64::new(part.committed - 1));
                    let lane = lane::Lane {
                        receiver: Arc::clone(receiver),
                        metrics: metrics.clone(),
                        client: http::Client::new(target.clone(), shared.tls.clone()),
                        shared: Arc::clone(shared),
                        done: Arc::clone(&done),
                        triggered: Default::default(),
                    };
                    LaneHandle {
                        tx,
                        done,
                        task: tokio::spawn(lane.run(rx)),
                    }
                })
                .collect();
        }
        part.lanes.iter().map(|lane| lane.tx.clone()).collect()
    };
    let item = Arc::new(item);
    for tx in senders {
        tokio::select! {
            // A closed lane belongs to a partition revoked meanwhile.
            _ = tx.send(Arc::clone(&item)) => {}
            _ = stop.changed() => return false,
        }
    }
    true
}

/// Commits every partition's done offsets each [`COMMIT_INTERVAL`] until `stop` fires.
async fn commit_loop(
    consumer: Arc<StreamConsumer<Rebalances>>,
    table: Table,
    topic: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(COMMIT_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        ticks = ticks.wrapping_add(1);
        let (c, t, topic) = (Arc::clone(&consumer), Arc::clone(&table), topic.clone());
        let measure = ticks % LAG_EVERY == 0;
        let _ = tokio::task::spawn_blocking(move || {
            commit(&c, &t, &topic);
            if measure {
                measure_lag(&c, &t, &topic);
            }
        })
        .await;
    }
}

/// Commits the partitions whose done offset moved (blocking).
fn commit(consumer: &StreamConsumer<Rebalances>, table: &Table, topic: &str) {
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
fn measure_lag(consumer: &StreamConsumer<Rebalances>, table: &Table, topic: &str) {
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
