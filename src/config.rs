//! Configuration: TOML in, validated typed config out.
//!
//! Raw structs mirror the file (every key optional, unknown keys collected rather than fatal);
//! [`Config::from_toml`] applies `SLUICE_*` environment overrides, checks everything and reports
//! every problem at once, each naming its key. Defaults live in [`defaults`] and nowhere else.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::event::{Field, Severity};
use crate::matchers::{parse_all, Matcher, RawMatcher};
use crate::time::parse_duration;

pub mod integrations;

/// Every default, in one place.
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// PagerDuty's request limit.
    pub const MAX_BODY_BYTES: usize = 512 * 1024;
    pub const MAX_CONNECTIONS: usize = 4096;
    pub const HEADER_READ_TIMEOUT: &str = "10s";
    pub const BODY_READ_TIMEOUT: &str = "30s";
    pub const SHUTDOWN_GRACE: &str = "30s";
    pub const BROKERS: &str = "embedded";
    pub const TOPIC: &str = "sluice.incidents";
    pub const CHANGES_TOPIC: &str = "sluice.changes";
    pub const PARTITIONS: i32 = 6;
    pub const REPLICATION_FACTOR: i32 = 1;
    pub const LINGER: &str = "5ms";
    pub const MESSAGE_TIMEOUT: &str = "300s";
    pub const QUEUE_MAX_MESSAGES: u32 = 100_000;
    pub const QUEUE_CAPACITY: usize = 8192;
    pub const MAX_ALERTS_PER_MESSAGE: usize = 100;
    pub const WINDOW_DURATION: &str = "5m";
    pub const MAX_DURATION: &str = "24h";
    pub const GROUP_WAIT: &str = "30s";
    pub const GROUP_INTERVAL: &str = "1m";
    pub const MAX_ALERTS: usize = 1_000_000;
    pub const MAX_ALERTS_PER_ROUTING_KEY: usize = 100_000;
    pub const MAX_INCIDENTS: usize = 100_000;
    pub const MAX_INCIDENTS_PER_ROUTING_KEY: usize = 10_000;
    pub const LOG_LEVEL: &str = "info";
    pub const INSTANCE: &str = "sluice";
}

/// Environment variables that override a config key; anything else named `SLUICE_*` is an
/// error, so a typo in an override is caught rather than silently ignored.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("SLUICE_LISTEN", "server.listen"),
    ("SLUICE_KAFKA_BROKERS", "kafka.brokers"),
    ("SLUICE_KAFKA_TOPIC", "kafka.topic"),
    ("SLUICE_KAFKA_CHANGES_TOPIC", "kafka.changes_topic"),
    ("SLUICE_LOG_LEVEL", "log.level"),
    ("SLUICE_LOG_FORMAT", "log.format"),
    ("SLUICE_INSTANCE", "instance"),
];
/// Read by the CLI itself (the config path), not an override.
pub const ENV_CONFIG_PATH: &str = "SLUICE_CONFIG";

/// The keys of a table that its reader did not take (reported as unknown, or handed on).
pub type Unknown = BTreeMap<String, toml::Value>;

#[derive(Deserialize, Default)]
struct RawConfig {
    instance: Option<String>,
    server: Option<RawServer>,
    kafka: Option<RawKafka>,
    correlate: Option<RawCorrelate>,
    event_rules: Option<Vec<RawEventRule>>,
    log: Option<RawLog>,
    integrations: Option<integrations::RawIntegrations>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawServer {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    shutdown_grace: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawKafka {
    brokers: Option<String>,
    topic: Option<String>,
    changes_topic: Option<String>,
    create_topics: Option<bool>,
    partitions: Option<i32>,
    replication_factor: Option<i32>,
    linger: Option<String>,
    message_timeout: Option<String>,
    queue_max_messages: Option<u32>,
    properties: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawCorrelate {
    shards: Option<usize>,
    queue_capacity: Option<usize>,
    max_alerts_per_message: Option<usize>,
    max_alerts: Option<usize>,
    max_alerts_per_routing_key: Option<usize>,
    max_incidents: Option<usize>,
    max_incidents_per_routing_key: Option<usize>,
    rules: Option<Vec<RawRule>>,
    inhibit: Option<Vec<RawInhibit>>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawInhibit {
    source: Option<Vec<RawMatcher>>,
    target: Option<Vec<RawMatcher>>,
    equal: Option<Vec<String>>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawFlap {
    max_changes: Option<u32>,
    within: Option<String>,
    cooldown: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawEventRule {
    name: Option<String>,
    matchers: Option<Vec<RawMatcher>>,
    drop: Option<bool>,
    set_severity: Option<String>,
    set_routing_key: Option<String>,
    set_label: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawRule {
    name: Option<String>,
    matchers: Option<Vec<RawMatcher>>,
    group_by: Option<Vec<String>>,
    window: Option<String>,
    window_duration: Option<String>,
    max_duration: Option<String>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    pause_transient: Option<String>,
    min_alerts: Option<u32>,
    flap: Option<RawFlap>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Names this gateway in the `ce_source` header of every message.
    pub instance: String,
    pub server: ServerConfig,
    pub kafka: KafkaConfig,
    pub correlate: CorrelateConfig,
    /// Applied in order to every event before dedup (see [`EventRule`]).
    pub event_rules: Vec<EventRule>,
    pub log: LogConfig,
    /// `[integrations.<kind>]`: per-integration settings.
    pub integrations: integrations::IntegrationsConfig,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Brokers {
    /// librdkafka's in-process mock cluster on a loopback port: in memory, not durable.
    Embedded,
    /// A real cluster's bootstrap list, `host:port[,host:port...]`.
    List(String),
}

#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: Brokers,
    pub topic: String,
    pub changes_topic: String,
    pub create_topics: bool,
    pub partitions: i32,
    pub replication_factor: i32,
    pub linger: Duration,
    pub message_timeout: Duration,
    pub queue_max_messages: u32,
    /// Passed to librdkafka as they are (security, SASL, client.id, ...).
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct CorrelateConfig {
    pub shards: usize,
    pub queue_capacity: usize,
    pub max_alerts_per_message: usize,
    /// Caps over all shards (split evenly between them) and per routing key; past a cap an
    /// event still produces an incident message, untracked, and the cap is counted.
    pub max_alerts: usize,
    pub max_alerts_per_routing_key: usize,
    pub max_incidents: usize,
    pub max_incidents_per_routing_key: usize,
    pub rules: Vec<RuleConfig>,
    pub inhibit: Vec<InhibitRule>,
}

/// While an open alert matches `source`, alerts of the same routing key that match `target`
/// and have the same values of the `equal` fields are inhibited (Alertmanager's inhibition).
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<Field>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlapConfig {
    /// More state changes than this within `within` mark an alert flapping.
    pub max_changes: u32,
    pub within: Duration,
    /// A flapping incident holds its updates until no alert changed for this long.
    pub cooldown: Duration,
}

/// Matchers and actions applied to each event at ingest, before dedup, in order; `drop` ends it.
#[derive(Clone, Debug)]
pub struct EventRule {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub drop: bool,
    pub set_severity: Option<Severity>,
    pub set_routing_key: Option<String>,
    pub set_label: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Anchored at the incident's opening.
    Fixed,
    /// Extended by every new alert, up to `max_duration`.
    Rolling,
}

#[derive(Clone, Debug)]
pub struct RuleConfig {
    pub name: String,
    /// The events this rule applies to; empty matches everything. First matching rule wins.
    pub matchers: Vec<Matcher>,
    pub group_by: Vec<Field>,
    pub window: WindowKind,
    pub window_duration: Duration,
    pub max_duration: Duration,
    pub group_wait: Duration,
    pub group_interval: Duration,
    /// An incident whose alerts all resolve within this time of opening is never published.
    pub pause_transient: Option<Duration>,
    /// Alerts an incident must gather (within its window) before it is published.
    pub min_alerts: u32,
    pub flap: Option<FlapConfig>,
}

impl Default for RuleConfig {
    /// The built-in rule: every default, grouping by nothing.
    fn default() -> Self {
        RawRule::default().validate("correlate.rules[default]", &mut Problems(Vec::new()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

/// Every problem found in a config, each naming its key.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} problem(s) in the configuration:",
            self.problems.len()
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Every problem found so far, each naming its key.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn add(&mut self, key: &str, msg: impl fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    /// `value` when no problem was found, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError { problems: self.0 })
        }
    }

    /// Reports every key left in `unknown` as unknown, under `section`.
    pub fn unknown(&mut self, section: &str, unknown: &Unknown) {
        for k in unknown.keys() {
            let key = if section.is_empty() {
                k.clone()
            } else {
                format!("{section}.{k}")
            };
            self.0.push(format!("{key}: unknown key"));
        }
    }

    fn duration(&mut self, key: &str, raw: Option<&str>, default: &str) -> Duration {
        parse_duration(raw.unwrap_or(default)).unwrap_or_else(|e| {
            self.add(key, e);
            Duration::ZERO
        })
    }

    fn positive<T: PartialOrd + Default + Copy>(&mut self, key: &str, v: T) -> T {
        if v <= T::default() {
            self.add(key, "must be greater than zero");
        }
        v
    }
}

impl Config {
    /// Parses and validates `text`, with overrides from `env` (pass `std::env::vars()`).
    /// Keys that config leaves to their owners (a format's own integration settings) are not
    /// checked: [`Config::from_toml_with`] checks them too.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::from_toml_with(text, env, |_, _| {})
    }

    /// [`Config::from_toml`], then `owners` checks what config leaves to the stages (each
    /// format's own `[integrations.<kind>]` keys), and every problem of both is reported at once.
    pub fn from_toml_with(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        owners: impl FnOnce(&Config, &mut Problems),
    ) -> Result<Config, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![e.to_string().trim_end().to_string()],
        })?;
        let mut p = Problems(Vec::new());
        raw.apply_env(env, &mut p);
        let config = raw.validate(&mut p);
        owners(&config, &mut p);
        p.finish(config)
    }

    /// Reads the file at `path` and validates it as [`Config::from_toml_with`] does.
    pub fn load_with(
        path: &std::path::Path,
        env: impl IntoIterator<Item = (String, String)>,
        owners: impl FnOnce(&Config, &mut Problems),
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{}: {e}", path.display())],
        })?;
        Config::from_toml_with(&text, env, owners)
    }
}

impl RawConfig {
    fn apply_env(&mut self, env: impl IntoIterator<Item = (String, String)>, p: &mut Problems) {
        for (name, value) in env {
            if !name.starts_with("SLUICE_") || name == ENV_CONFIG_PATH {
                continue;
            }
            let server = self.server.get_or_insert_with(Default::default);
            let kafka = self.kafka.get_or_insert_with(Default::default);
            let log = self.log.get_or_insert_with(Default::default);
            let slot = match name.as_str() {
                "SLUICE_LISTEN" => &mut server.listen,
                "SLUICE_KAFKA_BROKERS" => &mut kafka.brokers,
                "SLUICE_KAFKA_TOPIC" => &mut kafka.topic,
                "SLUICE_KAFKA_CHANGES_TOPIC" => &mut kafka.changes_topic,
                "SLUICE_LOG_LEVEL" => &mut log.level,
                "SLUICE_LOG_FORMAT" => &mut log.format,
                "SLUICE_INSTANCE" => &mut self.instance,
                _ => {
                    let known: Vec<_> = ENV_OVERRIDES.iter().map(|(n, _)| *n).collect();
                    p.add(
                        &name,
                        format!("unknown environment override (known: {})", known.join(", ")),
                    );
                    continue;
                }
            };
            *slot = Some(value);
        }
    }

    fn validate(self, p: &mut Problems) -> Config {
        p.unknown("", &self.unknown);
        let instance = self.instance.unwrap_or_else(|| defaults::INSTANCE.into());
        if instance.is_empty() {
            p.add("instance", "must not be empty");
        }
        Config {
            instance,
            server: self.server.unwrap_or_default().validate(p),
            kafka: self.kafka.unwrap_or_default().validate(p),
            correlate: self.correlate.unwrap_or_default().validate(p),
            event_rules: self
                .event_rules
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, r)| r.validate(&format!("event_rules[{i}]"), p))
                .collect(),
            log: self.log.unwrap_or_default().validate(p),
            integrations: integrations::validate(self.integrations, p),
        }
    }
}

impl RawServer {
    fn validate(self, p: &mut Problems) -> ServerConfig {
        p.unknown("server", &self.unknown);
        let listen = self.listen.as_deref().unwrap_or(defaults::LISTEN);
        let listen = listen.parse().unwrap_or_else(|_| {
            p.add(
                "server.listen",
                format!("{listen:?} is not an address like 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        ServerConfig {
            listen,
            max_body_bytes: p.positive(
                "server.max_body_bytes",
                self.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES),
            ),
            max_connections: p.positive(
                "server.max_connections",
                self.max_connections.unwrap_or(defaults::MAX_CONNECTIONS),
            ),
            header_read_timeout: p.duration(
                "server.header_read_timeout",
                self.header_read_timeout.as_deref(),
                defaults::HEADER_READ_TIMEOUT,
            ),
            body_read_timeout: p.duration(
                "server.body_read_timeout",
                self.body_read_timeout.as_deref(),
                defaults::BODY_READ_TIMEOUT,
            ),
            shutdown_grace: p.duration(
                "server.shutdown_grace",
                self.shutdown_grace.as_deref(),
                defaults::SHUTDOWN_GRACE,
            ),
        }
    }
}

impl RawKafka {
    fn validate(self, p: &mut Problems) -> KafkaConfig {
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
            let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if t.is_empty() || t.len() > 249 || !t.chars().all(legal) {
                p.add(
                    key,
                    format!("{t:?} is not a Kafka topic name (1-249 of [a-zA-Z0-9._-])"),
                );
            }
        }
        if topic == changes_topic {
            p.add("kafka.changes_topic", "must differ from kafka.topic");
        }
        let properties = self.properties.unwrap_or_default();
        for managed in ["bootstrap.servers", "enable.idempotence", "acks"] {
            if properties.contains_key(managed) {
                p.add(
                    &format!("kafka.properties.\"{managed}\""),
                    "is set by sluice itself and cannot be overridden",
                );
            }
        }
        KafkaConfig {
            brokers,
            topic,
            changes_topic,
            create_topics: self.create_topics.unwrap_or(true),
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
            properties,
        }
    }
}

impl RawCorrelate {
    fn validate(self, p: &mut Problems) -> CorrelateConfig {
        p.unknown("correlate", &self.unknown);
        let raw_rules = self.rules.unwrap_or_default();
        let mut rules: Vec<RuleConfig> = raw_rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.validate(&format!("correlate.rules[{i}]"), p))
            .collect();
        if rules.is_empty() {
            rules.push(RawRule::default().validate("correlate.rules[default]", p));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in rules.iter().enumerate() {
            if !names.insert(r.name.as_str()) {
                p.add(
                    &format!("correlate.rules[{i}].name"),
                    format!("{:?} is used twice", r.name),
                );
            }
        }
        let inhibit = self
            .inhibit
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.validate(&format!("correlate.inhibit[{i}]"), p))
            .collect();
        CorrelateConfig {
            max_alerts: p.positive(
                "correlate.max_alerts",
                self.max_alerts.unwrap_or(defaults::MAX_ALERTS),
            ),
            max_alerts_per_routing_key: p.positive(
                "correlate.max_alerts_per_routing_key",
                self.max_alerts_per_routing_key
                    .unwrap_or(defaults::MAX_ALERTS_PER_ROUTING_KEY),
            ),
            max_incidents: p.positive(
                "correlate.max_incidents",
                self.max_incidents.unwrap_or(defaults::MAX_INCIDENTS),
            ),
            max_incidents_per_routing_key: p.positive(
                "correlate.max_incidents_per_routing_key",
                self.max_incidents_per_routing_key
                    .unwrap_or(defaults::MAX_INCIDENTS_PER_ROUTING_KEY),
            ),
            inhibit,
            shards: self.shards.unwrap_or(0),
            queue_capacity: p.positive(
                "correlate.queue_capacity",
                self.queue_capacity.unwrap_or(defaults::QUEUE_CAPACITY),
            ),
            max_alerts_per_message: p.positive(
                "correlate.max_alerts_per_message",
                self.max_alerts_per_message
                    .unwrap_or(defaults::MAX_ALERTS_PER_MESSAGE),
            ),
            rules,
        }
    }
}

impl RawRule {
    fn validate(self, at: &str, p: &mut Problems) -> RuleConfig {
        p.unknown(at, &self.unknown);
        let group_by = self
            .group_by
            .unwrap_or_default()
            .iter()
            .filter_map(|f| {
                let parsed = Field::parse(f);
                if parsed.is_none() {
                    p.add(
                        &format!("{at}.group_by"),
                        format!("{f:?} is not a field (source, component, group, class, severity, summary, integration, dedup_key, labels.<name>)"),
                    );
                }
                parsed
            })
            .collect();
        let window = match self.window.as_deref().unwrap_or("rolling") {
            "rolling" => WindowKind::Rolling,
            "fixed" => WindowKind::Fixed,
            other => {
                p.add(
                    &format!("{at}.window"),
                    format!("{other:?} must be \"fixed\" or \"rolling\""),
                );
                WindowKind::Rolling
            }
        };
        let flap = self.flap.map(|f| {
            p.unknown(&format!("{at}.flap"), &f.unknown);
            FlapConfig {
                max_changes: p.positive(
                    &format!("{at}.flap.max_changes"),
                    f.max_changes.unwrap_or(4),
                ),
                within: p.duration(&format!("{at}.flap.within"), f.within.as_deref(), "10m"),
                cooldown: p.duration(&format!("{at}.flap.cooldown"), f.cooldown.as_deref(), "15m"),
            }
        });
        let pause_transient = self
            .pause_transient
            .as_deref()
            .map(|d| p.duration(&format!("{at}.pause_transient"), Some(d), "0s"));
        let rule = RuleConfig {
            name: self.name.unwrap_or_else(|| "default".into()),
            matchers: parse_all(
                self.matchers.as_deref().unwrap_or_default(),
                &format!("{at}.matchers"),
                &mut p.0,
            ),
            group_by,
            window,
            window_duration: p.duration(
                &format!("{at}.window_duration"),
                self.window_duration.as_deref(),
                defaults::WINDOW_DURATION,
            ),
            max_duration: p.duration(
                &format!("{at}.max_duration"),
                self.max_duration.as_deref(),
                defaults::MAX_DURATION,
            ),
            group_wait: p.duration(
                &format!("{at}.group_wait"),
                self.group_wait.as_deref(),
                defaults::GROUP_WAIT,
            ),
            group_interval: p.duration(
                &format!("{at}.group_interval"),
                self.group_interval.as_deref(),
                defaults::GROUP_INTERVAL,
            ),
            pause_transient,
            min_alerts: p.positive(&format!("{at}.min_alerts"), self.min_alerts.unwrap_or(1)),
            flap,
        };
        if rule.window_duration.is_zero() {
            p.add(
                &format!("{at}.window_duration"),
                "must be greater than zero",
            );
        }
        if rule.max_duration < rule.window_duration {
            p.add(
                &format!("{at}.max_duration"),
                "must be at least window_duration",
            );
        }
        rule
    }
}

impl RawInhibit {
    fn validate(self, at: &str, p: &mut Problems) -> InhibitRule {
        p.unknown(at, &self.unknown);
        let source = parse_all(
            self.source.as_deref().unwrap_or_default(),
            &format!("{at}.source"),
            &mut p.0,
        );
        let target = parse_all(
            self.target.as_deref().unwrap_or_default(),
            &format!("{at}.target"),
            &mut p.0,
        );
        if source.is_empty() || target.is_empty() {
            p.add(at, "needs at least one source and one target matcher");
        }
        let equal = self
            .equal
            .unwrap_or_default()
            .iter()
            .filter_map(|f| {
                let parsed = Field::parse(f);
                if parsed.is_none() {
                    p.add(&format!("{at}.equal"), format!("{f:?} is not a field"));
                }
                parsed
            })
            .collect();
        InhibitRule {
            source,
            target,
            equal,
        }
    }
}

impl RawEventRule {
    fn validate(self, at: &str, p: &mut Problems) -> EventRule {
        p.unknown(at, &self.unknown);
        let set_severity = self.set_severity.as_deref().and_then(|s| {
            let parsed = Severity::parse(s);
            if parsed.is_none() {
                p.add(
                    &format!("{at}.set_severity"),
                    format!("{s:?} must be one of {}", Severity::NAMES),
                );
            }
            parsed
        });
        if self
            .set_routing_key
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            p.add(&format!("{at}.set_routing_key"), "must not be blank");
        }
        let rule = EventRule {
            name: self.name.unwrap_or_else(|| at.to_string()),
            matchers: parse_all(
                self.matchers.as_deref().unwrap_or_default(),
                &format!("{at}.matchers"),
                &mut p.0,
            ),
            drop: self.drop.unwrap_or(false),
            set_severity,
            set_routing_key: self.set_routing_key,
            set_label: self.set_label.unwrap_or_default().into_iter().collect(),
        };
        if !rule.drop
            && rule.set_severity.is_none()
            && rule.set_routing_key.is_none()
            && rule.set_label.is_empty()
        {
            p.add(
                at,
                "has no action (drop, set_severity, set_routing_key, set_label)",
            );
        }
        rule
    }
}

impl RawLog {
    fn validate(self, p: &mut Problems) -> LogConfig {
        p.unknown("log", &self.unknown);
        let format = match self.format.as_deref().unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                p.add(
                    "log.format",
                    format!("{other:?} must be \"pretty\" or \"json\""),
                );
                LogFormat::Pretty
            }
        };
        let level = self.level.unwrap_or_else(|| defaults::LOG_LEVEL.into());
        if tracing_subscriber::EnvFilter::builder()
            .parse(&level)
            .is_err()
        {
            p.add(
                "log.level",
                format!("{level:?} is not a level or filter like \"info,sluice=debug\""),
            );
        }
        LogConfig { level, format }
    }
}

#[cfg(test)]
mod tests;
