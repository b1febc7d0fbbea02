//! `[kafka]`: where incidents and changes are published. Every key is optional; the values
//! shown are the defaults:
//!
//! ```toml
//! [kafka]
//! brokers = "embedded"             # in-process, in-memory mock cluster; or "kafka-1:9092,kafka-2:9092"
//! topic = "sluice.incidents"
//! changes_topic = "sluice.changes"
//! commands_topic = "sluice.commands" # acknowledge/resolve/snooze from downstream; "" = off
//! create_topics = true             # create missing topics at start-up
//! partitions = 6
//! replication_factor = 1
//! linger = "5ms"
//! message_timeout = "300s"
//! queue_max_messages = 100000
//! liveness_interval = "1m"         # each instance's liveness record on `topic`; "0s" = off
//!
//! [kafka.properties]               # none by default; passed to librdkafka as they are
//! "client.id" = "sluice"
//!
//! [kafka.tls]                      # TLS to the brokers, and
//! [kafka.sasl]                     # SASL (PLAIN, SCRAM-SHA-256/512): see `security`
//! ```
//!
//! Validates that `brokers` is `"embedded"` or a list of `host:port`, both topics are legal
//! Kafka topic names and differ, `properties` leaves alone what sluice sets itself
//! (`bootstrap.servers`, `enable.idempotence`, `acks`, and with `[kafka.tls]` or `[kafka.sasl]`
//! the security settings), the counts are greater than zero and the times are durations;
//! unknown keys are rejected. `Debug` of [`KafkaConfig`] shows no password.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{defaults, Problems, Unknown};

mod security;

pub use security::{KafkaSasl, KafkaSecurity, KafkaTls, SaslMechanism};

#[derive(Deserialize, Default)]
pub(super) struct RawKafka {
    /// These three are set by `SLUICE_KAFKA_BROKERS`, `SLUICE_KAFKA_TOPIC` and
    /// `SLUICE_KAFKA_CHANGES_TOPIC` too.
    pub(super) brokers: Option<String>,
    pub(super) topic: Option<String>,
    pub(super) changes_topic: Option<String>,
    commands_topic: Option<String>,
    create_topics: Option<bool>,
    partitions: Option<i32>,
    replication_factor: Option<i32>,
    linger: Option<String>,
    message_timeout: Option<String>,
    queue_max_messages: Option<u32>,
    liveness_interval: Option<String>,
    properties: Option<BTreeMap<String, String>>,
    /// Some keys of both are set by environment variables too (`security::ENV_KEYS`).
    tls: Option<security::RawTls>,
    sasl: Option<security::RawSasl>,
    #[serde(flatten)]
    unknown: Unknown,
}

impl RawKafka {
    /// Applies `name` if it sets a key of `[kafka.tls]` or `[kafka.sasl]`
    /// (`security::ENV_KEYS`); `false` for any other name.
    pub(super) fn apply_security_env(&mut self, name: &str, value: &str) -> bool {
        security::apply_env(&mut self.tls, &mut self.sasl, name, value)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Brokers {
    /// librdkafka's in-process mock cluster on a loopback port: in memory, not durable.
    Embedded,
    /// A real cluster's bootstrap list, `host:port[,host:port...]`.
    List(String),
}

/// As written in the config: `embedded`, or the bootstrap list.
impl std::fmt::Display for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Brokers::Embedded => f.write_str("embedded"),
            Brokers::List(list) => f.write_str(list),
        }
    }
}

#[derive(Clone)]
pub struct KafkaConfig {
    pub brokers: Brokers,
    pub topic: String,
    pub changes_topic: String,
    /// Commands on incidents from downstream consumers (`None`: not read).
    pub commands_topic: Option<String>,
    pub create_topics: bool,
    pub partitions: i32,
    pub replication_factor: i32,
    pub linger: Duration,
    pub message_timeout: Duration,
    pub queue_max_messages: u32,
    /// How often each instance writes its liveness record to `topic` (zero: never).
    pub liveness_interval: Duration,
    /// Passed to librdkafka as they are (client.id, compression, and security settings when
    /// `security` is empty).
    pub properties: BTreeMap<String, String>,
    /// `[kafka.tls]` and `[kafka.sasl]`; every client applies [`KafkaSecurity::settings`].
    pub security: KafkaSecurity,
}

/// librdkafka properties whose values are secrets: `Debug` shows them redacted.
const SECRET_PROPERTIES: [&str; 6] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "sasl.oauthbearer.client.secret",
];

/// As derived, but the values of [`SECRET_PROPERTIES`] are not shown (the SASL password is a
/// [`crate::config::auth::Secret`], which shows its length only).
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let secret = SECRET_PROPERTIES.contains(&k.as_str());
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("changes_topic", &self.changes_topic)
            .field("commands_topic", &self.commands_topic)
            .field("create_topics", &self.create_topics)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("linger", &self.linger)
            .field("message_timeout", &self.message_timeout)
            .field("queue_max_messages", &self.queue_max_messages)
            .field("liveness_interval", &self.liveness_interval)
            .field("properties", &properties)
            .field("security", &self.security)
            .finish()
    }
}

impl RawKafka {
    pub(super) fn validate(self, p: &mut Problems) -> KafkaConfig {
        p.unknown("kafka", &self.unknown);
        let brokers = match self.brokers.as_deref().unwrap_or(defaults::BROKERS).trim() {
            "embedded" => Brokers::Embedded,
            "" => {
                p.add(
                    "kafka.brokers",
                    "must be \"embedded\" or a list like \"kafka-1:9092,kafka-2:9092\"",
                );
                Brokers::Embedded
            }
            list => {
                for b in list.split(',') {
                    let b = b.trim();
                    let port_ok = b
                        .rsplit_once(':')
                        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
                    if !port_ok {
                        p.add("kafka.brokers", format!("{b:?} is not host:port"));
                    }
                }
                Brokers::List(list.to_string())
            }
        };
        let topic = self.topic.unwrap_or_else(|| defaults::TOPIC.into());
        let changes_topic = self
            .changes_topic
            .unwrap_or_else(|| defaults::CHANGES_TOPIC.into());
        for (key, t) in [
            ("kafka.topic", &topic),
            ("kafka.changes_topic", &changes_topic),
        ] {
            if let Err(why) = check_topic_name(t) {
                p.add(key, why);
            }
        }
        if topic == changes_topic {
            p.add("kafka.changes_topic", "must differ from kafka.topic");
        }
        let commands_topic = match self.commands_topic {
            None => Some(defaults::COMMANDS_TOPIC.to_string()),
            Some(t) if t.is_empty() => None,
            Some(t) => {
                if let Err(why) = check_topic_name(&t) {
                    p.add("kafka.commands_topic", why);
                } else if t == topic || t == changes_topic {
                    p.add(
                        "kafka.commands_topic",
                        "must differ from kafka.topic and kafka.changes_topic",
                    );
                }
                Some(t)
            }
        };
        let properties = self.properties.unwrap_or_default();
        for managed in ["bootstrap.servers", "enable.idempotence", "acks"] {
            if properties.contains_key(managed) {
                p.add(
                    &format!("kafka.properties.\"{managed}\""),
                    "is set by sluice itself and cannot be overridden",
                );
            }
        }
        let security = security::validate(
            self.tls,
            self.sasl,
            &properties,
            brokers == Brokers::Embedded,
            p,
        );
        KafkaConfig {
            brokers,
            topic,
            changes_topic,
            commands_topic,
            create_topics: self.create_topics.unwrap_or(defaults::CREATE_TOPICS),
            partitions: p.positive(
                "kafka.partitions",
                self.partitions.unwrap_or(defaults::PARTITIONS),
            ),
            replication_factor: p.positive(
                "kafka.replication_factor",
                self.replication_factor
                    .unwrap_or(defaults::REPLICATION_FACTOR),
            ),
            linger: p.duration("kafka.linger", self.linger.as_deref(), defaults::LINGER),
            message_timeout: p.duration(
                "kafka.message_timeout",
                self.message_timeout.as_deref(),
                defaults::MESSAGE_TIMEOUT,
            ),
            queue_max_messages: p.positive(
                "kafka.queue_max_messages",
                self.queue_max_messages
                    .unwrap_or(defaults::QUEUE_MAX_MESSAGES),
            ),
            liveness_interval: p.duration(
                "kafka.liveness_interval",
                self.liveness_interval.as_deref(),
                defaults::LIVENESS_INTERVAL,
            ),
            properties,
            security,
        }
    }
}

/// A legal Kafka topic name, or why not.
pub(super) fn check_topic_name(t: &str) -> Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if t.is_empty() || t.len() > 249 || !t.chars().all(legal) {
        Err(format!(
            "{t:?} is not a Kafka topic name (1-249 of [a-zA-Z0-9._-])"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
