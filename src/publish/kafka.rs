//! The Kafka sink: an idempotent librdkafka producer (`acks=all`), messages keyed by incident
//! id with CloudEvents binary-mode headers, many deliveries in flight, every delivery counted
//! from librdkafka's reports, and a bounded flush at shutdown.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{
    future_producer::Delivery, BaseRecord, DeliveryFuture, DeliveryResult, Producer,
    ProducerContext, ThreadedProducer,
};

use crate::config::KafkaConfig;
use crate::metrics as m;

use super::encode::{MessageKind, OutboundMessage, Topic, CE_SPECVERSION, CONTENT_TYPE};
use super::renew::Renewing;
use super::{SendError, Sink};

mod client;

pub use client::client_config;

#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("cannot create the Kafka producer: {0}")]
    Producer(KafkaError),
    #[error("cannot reach the Kafka cluster at {brokers}: {source}")]
    Unreachable { brokers: String, source: KafkaError },
    #[error(
        "cannot reach the Kafka cluster at {brokers}: {reason} (see kafka.tls and kafka.sasl)"
    )]
    Handshake { brokers: String, reason: String },
    #[error("cannot create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error(
        "topic {topic} has {found} partitions, but this config says {expected}: the partition \
         count of the events topic is fixed when it is created; set pipeline.partitions to \
         {found} (`sluice migrate` moves a deployment to another count: README, Moving to \
         another partition count)"
    )]
    Partitions {
        topic: String,
        expected: i32,
        found: i32,
    },
    #[error("cannot create the Kafka consumer: {0}")]
    Consumer(KafkaError),
}

/// Counts librdkafka's delivery reports.
pub struct DeliveryCounter {
    published: Vec<Counter>,
    /// Messages not delivered, over every producer the sink has had ([`Sink::failures`]).
    failures: Arc<AtomicU64>,
    /// The generation of the producer this context belongs to ([`Renewing`]).
    generation: u64,
    /// Set, with the generation, when a delivery said the producer's id is no longer good.
    fenced: Arc<std::sync::Mutex<Option<(u64, String)>>>,
    /// librdkafka's last TLS or SASL failure, for the start-up error.
    handshake: Arc<std::sync::Mutex<Option<String>>>,
}

impl ClientContext for DeliveryCounter {
    /// TLS and SASL failures are logged ([`client::refused`]) and kept for the start-up error;
    /// other transport errors are left to the connection watch ([`KafkaSink::watch_connection`]).
    fn error(&self, error: KafkaError, reason: &str) {
        if client::refused(&error, reason) {
            *self.handshake.lock().expect("handshake lock") = Some(reason.to_string());
        }
    }
}

impl ProducerContext for DeliveryCounter {
    /// The message kind's index, so the report can be counted by type.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, kind: usize) {
        match result {
            Ok(m) if m.offset() < 0 => {
                // Not confirmed (see `Unconfirmed::NoOffset`): counted as failed, so that Kafka
                // mode makes it again.
                self.failures.fetch_add(1, Ordering::Relaxed);
                m::failed(Unconfirmed::NoOffset.kind()).increment(1);
                tracing::error!(
                    kind = "unconfirmed",
                    "kafka delivery reported without an offset"
                );
            }
            Ok(_) => self.published[kind].increment(1),
            Err((err, _)) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if let Some(reason) = super::renew::fenced(err) {
                    // Renewed by the next send or flush, not from the producer's own thread.
                    *self.fenced.lock().expect("fenced lock") = Some((self.generation, reason));
                }
                let kind_label = error_kind(err);
                m::failed(kind_label).increment(1);
                let message_type = MessageKind::from_index(kind).map_or("?", MessageKind::as_str);
                tracing::error!(error = %err, kind = kind_label, message_type, "kafka delivery failed");
            }
        }
    }
}

/// Why a record's delivery is not confirmed.
#[derive(Debug)]
pub enum Unconfirmed {
    /// The producer reported the error.
    Failed(KafkaError),
    /// The producer went away before reporting.
    Canceled,
    /// Reported delivered without an offset: librdkafka took the broker's answer to a retry for
    /// a duplicate of an earlier attempt it cannot place. A broker that kept that attempt has
    /// the record, but librdkafka's mock cluster was seen to answer so for a batch it never
    /// stored (README "Running more than one instance"), so it is not trusted.
    NoOffset,
}

impl Unconfirmed {
    /// For the `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Unconfirmed::Failed(e) => error_kind(e),
            Unconfirmed::Canceled => "canceled",
            Unconfirmed::NoOffset => "unconfirmed",
        }
    }
}

impl From<Unconfirmed> for KafkaError {
    fn from(why: Unconfirmed) -> Self {
        match why {
            Unconfirmed::Failed(e) => e,
            Unconfirmed::Canceled => KafkaError::Canceled,
            Unconfirmed::NoOffset => KafkaError::MessageProduction(RDKafkaErrorCode::Fail),
        }
    }
}

/// Waits for a record's delivery report: its place when the broker confirmed it.
pub async fn confirmed(delivery: DeliveryFuture) -> Result<Delivery, Unconfirmed> {
    match delivery.await {
        Ok(Ok(d)) if d.offset < 0 => Err(Unconfirmed::NoOffset),
        Ok(Ok(d)) => Ok(d),
        Ok(Err((e, _))) => Err(Unconfirmed::Failed(e)),
        Err(_) => Err(Unconfirmed::Canceled),
    }
}

/// A small fixed set of failure kinds for the `kind` label.
pub fn error_kind(err: &KafkaError) -> &'static str {
    match err.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => "timed_out",
        Some(RDKafkaErrorCode::QueueFull) => "queue_full",
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "message_too_large",
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed,
        ) => "authorization",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            "unknown_topic"
        }
        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight) => "purged",
        Some(RDKafkaErrorCode::Fatal) => "fatal",
        _ => "other",
    }
}

pub struct KafkaSink {
    producer: Renewing<ThreadedProducer<DeliveryCounter>>,
    failures: Arc<AtomicU64>,
    fenced: Arc<std::sync::Mutex<Option<(u64, String)>>>,
    incidents_topic: String,
    changes_topic: String,
    source: String,
    connected: Arc<AtomicBool>,
    brokers: String,
}

impl KafkaSink {
    /// Connects to `bootstrap`, creates the topics when asked and missing, and starts the
    /// producer. `source` goes into every message's `ce_source`.
    pub async fn connect(
        config: &KafkaConfig,
        bootstrap: &str,
        source: &str,
    ) -> Result<Self, KafkaSetupError> {
        let mut pc = idempotent_producer_config(config, bootstrap, config.message_timeout);
        pc.set(
            "queue.buffering.max.messages",
            config.queue_max_messages.to_string(),
        )
        // The Java client's partitioner, so other producers keying by incident id agree.
        .set("partitioner", "murmur2_random");
        let failures = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&failures);
        let fenced = Arc::new(std::sync::Mutex::new(None));
        let flagged = Arc::clone(&fenced);
        let handshake = Arc::new(std::sync::Mutex::new(None));
        let failed_handshake = Arc::clone(&handshake);
        let producer = Renewing::new("incidents", move |generation| {
            let context = DeliveryCounter {
                published: MessageKind::ALL
                    .iter()
                    .map(|k| m::published(k.as_str()))
                    .collect(),
                failures: Arc::clone(&counted),
                generation,
                fenced: Arc::clone(&flagged),
                handshake: Arc::clone(&failed_handshake),
            };
            pc.create_with_context::<_, ThreadedProducer<DeliveryCounter>>(context)
        })
        .map_err(KafkaSetupError::Producer)?;

        let probe = producer.get().1;
        let metadata =
            tokio::task::spawn_blocking(move || topic_names(&probe, None, Duration::from_secs(10)))
                .await
                .expect("metadata probe does not panic")
                .map_err(|source| {
                    let brokers = bootstrap.to_string();
                    match handshake.lock().expect("handshake lock").take() {
                        Some(reason) => KafkaSetupError::Handshake { brokers, reason },
                        None => KafkaSetupError::Unreachable { brokers, source },
                    }
                })?;
        if config.create_topics {
            let missing: Vec<&str> = [&config.topic, &config.changes_topic]
                .into_iter()
                .chain(&config.commands_topic)
                .map(String::as_str)
                .filter(|t| !metadata.iter().any(|have| have == t))
                .collect();
            if !missing.is_empty() {
                create_topics(config, bootstrap, &missing, config.partitions, &[]).await?;
            }
        }
        let sink = KafkaSink {
            producer,
            failures,
            fenced,
            incidents_topic: config.topic.clone(),
            changes_topic: config.changes_topic.clone(),
            source: source.to_string(),
            connected: Arc::new(AtomicBool::new(true)),
            brokers: bootstrap.to_string(),
        };
        m::gauge(m::KAFKA_CONNECTED).set(1.0);
        Ok(sink)
    }

    /// Probes the cluster every `every` until `stop` fires, keeping readiness
    /// ([`Sink::ready`]) and the `sluice_kafka_connected` gauge current.
    pub async fn watch_connection(
        self: Arc<Self>,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            let this = Arc::clone(&self);
            let ok = tokio::task::spawn_blocking(move || {
                topic_names(
                    &this.producer.get().1,
                    Some(&this.incidents_topic),
                    Duration::from_secs(3),
                )
                .is_ok()
            })
            .await
            .unwrap_or(false);
            if ok != self.connected.swap(ok, Ordering::Relaxed) {
                if ok {
                    tracing::info!(brokers = %self.brokers, "kafka cluster reachable again");
                } else {
                    tracing::warn!(brokers = %self.brokers, "kafka cluster unreachable");
                }
            }
            m::gauge(m::KAFKA_CONNECTED).set(if ok { 1.0 } else { 0.0 });
        }
    }
}

/// Creates `topics` with the topic configs `settings`; "already exists" (a race with another
/// instance) is success.
async fn create_topics(
    config: &KafkaConfig,
    bootstrap: &str,
    topics: &[&str],
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<(), KafkaSetupError> {
    let admin: AdminClient<_> = client_config(config, bootstrap)
        .create()
        .map_err(KafkaSetupError::Producer)?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            settings.iter().fold(
                NewTopic::new(
                    t,
                    partitions,
                    TopicReplication::Fixed(config.replication_factor),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results =
        admin
            .create_topics(&new, &opts)
            .await
            .map_err(|e| KafkaSetupError::CreateTopic {
                topic: topics.join(","),
                reason: e.to_string(),
            })?;
    for r in results {
        match r {
            Ok(topic) => tracing::info!(
                topic,
                partitions,
                replication_factor = config.replication_factor,
                "created topic"
            ),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaSetupError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// An idempotent producer (`acks=all`) with `[kafka]`'s linger and the given delivery timeout:
/// the settings every producer of sluice shares.
pub fn idempotent_producer_config(
    config: &KafkaConfig,
    bootstrap: &str,
    delivery_timeout: Duration,
) -> ClientConfig {
    let mut pc = client_config(config, bootstrap);
    // Batches compressed unless `kafka.properties` says otherwise: snapshots, routed events and
    // incident messages are JSON, which lz4 shrinks several times for little CPU.
    if !["compression.codec", "compression.type"]
        .iter()
        .any(|k| config.properties.contains_key(*k))
    {
        pc.set("compression.codec", "lz4");
    }
    pc.set("enable.idempotence", "true")
        .set("acks", "all")
        // Readers of the events topic rely on batches no larger (see `pipeline::kafka::SEEK_BACK`).
        .set("batch.num.messages", "1000")
        .set("linger.ms", config.linger.as_millis().to_string())
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        );
    pc
}

/// Makes sure `topic` exists with `partitions` partitions: created when missing (if
/// `create_topics`, with the topic configs `settings`), refused when it has another count.
pub async fn ensure_topic(
    config: &KafkaConfig,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<(), KafkaSetupError> {
    let unreachable = |source| KafkaSetupError::Unreachable {
        brokers: bootstrap.to_string(),
        source,
    };
    let count = {
        let admin: AdminClient<_> = client_config(config, bootstrap)
            .create()
            .map_err(KafkaSetupError::Producer)?;
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || -> Result<Option<i32>, KafkaError> {
            let md = admin
                .inner()
                .fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            Ok(md
                .topics()
                .iter()
                .find(|t| t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.partitions().len() as i32))
        })
        .await
        .expect("metadata probe does not panic")
        .map_err(unreachable)?
    };
    match count {
        Some(found) if found != partitions => Err(KafkaSetupError::Partitions {
            topic: topic.to_string(),
            expected: partitions,
            found,
        }),
        Some(_) => Ok(()),
        None if config.create_topics => {
            create_topics(config, bootstrap, &[topic], partitions, settings).await
        }
        None => Ok(()),
    }
}

/// The value of `key` in `topic`'s configuration as the cluster describes it (`None` when it
/// has none); an error when the cluster cannot say.
pub async fn topic_config(
    config: &KafkaConfig,
    bootstrap: &str,
    topic: &str,
    key: &str,
) -> Result<Option<String>, String> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<_> = client_config(config, bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
        .await
        .map_err(|e| e.to_string())?;
    let resource = described
        .into_iter()
        .next()
        .ok_or("no answer")?
        .map_err(|code| code.to_string())?;
    Ok(resource.get(key).and_then(|entry| entry.value.clone()))
}

/// Names of the topics the cluster reports: all of them, or just `topic` (a cheap probe).
/// Blocking: call from `spawn_blocking`.
fn topic_names(
    producer: &ThreadedProducer<DeliveryCounter>,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<Vec<String>, KafkaError> {
    let md = producer.client().fetch_metadata(topic, timeout)?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name().to_string())
        .collect())
}

/// The CloudEvents headers (binary mode) of an incident or change message from `source`, with
/// `ce_time` once the message is stamped.
pub fn cloud_event_headers(msg: &OutboundMessage, source: &str) -> OwnedHeaders {
    let headers = OwnedHeaders::new_with_capacity(7)
        .insert(Header {
            key: "ce_specversion",
            value: Some(CE_SPECVERSION),
        })
        .insert(Header {
            key: "ce_type",
            value: Some(msg.kind.ce_type()),
        })
        .insert(Header {
            key: "ce_source",
            value: Some(source),
        })
        .insert(Header {
            key: "ce_id",
            value: Some(msg.id.as_str()),
        })
        .insert(Header {
            key: "ce_subject",
            value: Some(msg.key.as_str()),
        })
        .insert(Header {
            key: "content-type",
            value: Some(CONTENT_TYPE),
        });
    match msg.published_at {
        Some(at) => headers.insert(Header {
            key: "ce_time",
            value: Some(&at.to_string()),
        }),
        None => headers,
    }
}

impl Sink for KafkaSink {
    /// Whether the last metadata probe reached the cluster.
    fn ready(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` for every queued message to be delivered; returns how many were
    /// still in flight when it gave up (0 when all were delivered).
    fn flush(&self, timeout: Duration) -> i32 {
        let (_, producer) = self.producer.get();
        let flushed = producer.flush(timeout);
        self.renew_if_failed();
        match flushed {
            Ok(()) => 0,
            Err(e) => {
                let left = producer.in_flight_count();
                tracing::error!(error = %e, in_flight = left, "kafka flush did not finish within the grace period");
                left
            }
        }
    }

    fn send(&self, msg: &OutboundMessage) -> Result<(), SendError> {
        let topic = match msg.topic {
            Topic::Incidents => &self.incidents_topic,
            Topic::Changes => &self.changes_topic,
        };
        let headers = cloud_event_headers(msg, &self.source);
        let record = BaseRecord::with_opaque_to(topic, msg.kind.index())
            .key(msg.key.as_bytes())
            .payload(msg.body.as_slice())
            .headers(headers);
        let sent = self
            .producer
            .with(|producer| producer.send(record).map_err(|(err, _)| err));
        sent.map_err(|err| match err.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => SendError::QueueFull,
            // A new producer takes it: the caller tries again.
            _ if self.renew_if_failed() => SendError::QueueFull,
            _ => SendError::Rejected(error_kind(&err)),
        })
    }

    fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

impl KafkaSink {
    /// Replaces the producer if it failed fatally or a delivery said its id is no longer
    /// good; whether it did.
    fn renew_if_failed(&self) -> bool {
        let flagged = self.fenced.lock().expect("fenced lock").take();
        let failed = flagged.or_else(|| {
            let (generation, producer) = self.producer.get();
            super::renew::fatal_error(producer.client()).map(|reason| (generation, reason))
        });
        match failed {
            Some((generation, reason)) => self.producer.renew(generation, &reason),
            None => false,
        }
    }
}
