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
//! partition: then that partition is paused, so memory stays bounded; see [`group`]). A
//! partition's offset is
//! committed (every second, on a rebalance and at shutdown) only up to the messages every lane
//! has delivered, skipped or dead-lettered: delivery is at least once, and a message delivered
//! again after a crash carries the same `Idempotency-Key` (webhook) or `dedup_key`
//! (PagerDuty). Records that are not incident messages are passed over.

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio::sync::{mpsc, watch};

use crate::config::{Brokers, Config, ReceiverConfig};
use crate::ingest::confirm::SystemTls;
use crate::metrics as m;

mod dead_letter;
mod group;
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
/// How often paused partitions are looked at for resuming.
const RESUME_CHECK: Duration = Duration::from_millis(100);

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
    });
    let table: group::Table = Arc::default();
    let context = group::Rebalances {
        table: Arc::clone(&table),
        topic: kafka.topic.clone(),
        start_from: deliver.start_from,
    };
    let consumer: StreamConsumer<group::Rebalances> =
        crate::publish::kafka::client_config(kafka, bootstrap)
            .set("group.id", &deliver.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            // `start_from` is applied by the assignment (`group`) to partitions without a
            // commit; any other position out of range (retention went past it) restarts at the
            // earliest record: repeats, never a gap.
            .set("auto.offset.reset", "earliest")
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
    let mut resume_check = tokio::time::interval(RESUME_CHECK);
    loop {
        let received = tokio::select! {
            r = consumer.recv() => r,
            _ = resume_check.tick() => {
                group::resume_caught_up(&consumer, &table, deliver.max_pending);
                continue;
            }
            _ = stop.changed() => break,
        };
        match received {
            Ok(msg) => {
                let item = Item::read(&msg);
                drop(msg);
                let partition = item.partition;
                dispatch(&table, &shared, item);
                group::pause_if_behind(&consumer, &table, partition, deliver.max_pending);
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
    tokio::task::spawn_blocking(move || group::commit(&consumer2, &table, &topic))
        .await
        .expect("the last commit does not panic");
    consumer.unsubscribe();
    tracing::info!("forwarder stopped; done offsets committed");
    Ok(())
}

/// Hands `item` to its partition's lanes (made on its first record).
fn dispatch(table: &group::Table, shared: &Arc<Shared>, item: Item) {
    let mut table = table.lock().expect("partition table lock");
    // Not owned (fetched before a revocation), or read early (see `group`) or again.
    let Some(part) = table.get_mut(&item.partition) else {
        return;
    };
    if item.offset < part.next {
        return;
    }
    part.next = item.offset + 1;
    if part.lanes.is_empty() {
        part.lanes = shared
            .receivers
            .iter()
            .map(|(receiver, metrics, target)| {
                let (tx, rx) = mpsc::unbounded_channel();
                // Nothing before the first record read needs delivering: it is the committed
                // offset, the first record after it, or where `start_from` began.
                let done = Arc::new(AtomicI64::new(item.offset - 1));
                let lane = lane::Lane {
                    receiver: Arc::clone(receiver),
                    metrics: metrics.clone(),
                    client: http::Client::new(target.clone(), shared.tls.clone()),
                    shared: Arc::clone(shared),
                    done: Arc::clone(&done),
                    triggered: Default::default(),
                };
                group::LaneHandle {
                    tx,
                    done,
                    task: tokio::spawn(lane.run(rx)),
                }
            })
            .collect();
    }
    let item = Arc::new(item);
    for lane in &part.lanes {
        // A closed lane belongs to a partition being revoked.
        let _ = lane.tx.send(Arc::clone(&item));
    }
}

/// Commits every partition's done offsets each [`COMMIT_INTERVAL`] until `stop` fires.
async fn commit_loop(
    consumer: Arc<StreamConsumer<group::Rebalances>>,
    table: group::Table,
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
            group::commit(&c, &t, &topic);
            if measure {
                group::measure_lag(&c, &t, &topic);
            }
        })
        .await;
    }
}
