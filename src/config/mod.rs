//! Configuration: TOML in, validated typed config out.
//!
//! Raw structs mirror the file (every key optional, unknown keys collected rather than fatal);
//! [`Config::from_toml`] applies `SLUICE_*` environment overrides, checks everything and reports
//! every problem at once, each naming its key. Defaults live in [`defaults`] and nowhere else.
//!
//! This module holds the top level (`instance`, the overrides, `Problems` and the checks the
//! sections share); each section's raw struct, typed struct and validation live in its own
//! module: `server`, `kafka`, `correlate`, `event_rules`, `maintenance`, `heartbeats`, `log`, `pipeline`, `receivers`
//! (`[deliver]` and `[[receivers]]`), [`auth`] and [`integrations`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::matchers::{parse_all, Matcher, RawMatcher};
use crate::time::parse_duration;

pub mod auth;
mod correlate;
mod event_rules;
mod heartbeats;
pub mod integrations;
mod kafka;
mod limits;
mod log;
pub mod lookup;
mod maintenance;
mod pipeline;
mod receivers;
mod server;

pub use auth::AuthConfig;
pub use correlate::{CorrelateConfig, FlapConfig, InhibitRule, Pause, RuleConfig, WindowKind};
pub use event_rules::{Enrich, EventRule};
pub use heartbeats::HeartbeatConfig;
pub use kafka::{Brokers, KafkaConfig, KafkaSasl, KafkaSecurity, KafkaTls, SaslMechanism};
pub use limits::{LimitsConfig, Rate};
pub use log::{LogConfig, LogFormat};
pub use maintenance::{MaintenanceWindow, DAYS as MAINTENANCE_DAYS};
pub use pipeline::{PipelineConfig, PipelineMode, Roles};
pub use receivers::{DeliverConfig, ReceiverConfig, ReceiverKind, StartFrom, MESSAGE_TYPES};
pub use server::{ServerConfig, TlsConfig, TlsVersion};

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
    pub const COMMANDS_TOPIC: &str = "sluice.commands";
    /// The consumer group that reads the commands topic (each command is applied once).
    pub const COMMANDS_GROUP: &str = "sluice-commands";
    pub const CREATE_TOPICS: bool = true;
    pub const PARTITIONS: i32 = 6;
    pub const REPLICATION_FACTOR: i32 = 1;
    pub const LINGER: &str = "5ms";
    pub const MESSAGE_TIMEOUT: &str = "300s";
    pub const LIVENESS_INTERVAL: &str = "1m";
    pub const QUEUE_MAX_MESSAGES: u32 = 100_000;
    /// One shard per core.
    pub const SHARDS: usize = 0;
    pub const QUEUE_CAPACITY: usize = 16384;
    pub const MAX_ALERTS_PER_MESSAGE: usize = 100;
    /// The name of a rule that gives none, and of the built-in rule.
    pub const RULE_NAME: &str = "default";
    pub const WINDOW: &str = "rolling";
    pub const WINDOW_DURATION: &str = "5m";
    pub const MAX_DURATION: &str = "24h";
    pub const GROUP_WAIT: &str = "30s";
    pub const GROUP_INTERVAL: &str = "1m";
    pub const MIN_ALERTS: u32 = 1;
    /// A rule's `pause_transient` by severity: info, warning, error, critical.
    pub const PAUSE_TRANSIENT: [&str; 4] = ["never", "10m", "5m", "0s"];
    /// What rules without `group_by` group by (`LinkKind`s, in order of precedence).
    /// Not `cluster`: in the scenario lab it folded unrelated alerts of a cluster into one
    /// incident (README "Noise reduction").
    pub const AUTO_GROUP: [&str; 5] = ["host", "pod", "rack", "service", "class"];
    pub const SYMPTOM_INHIBITION: bool = true;
    /// Classes that usually resolve within this are held this long whatever their severity.
    pub const LEARNED_PAUSE: &str = "3m";
    /// How long before an incident opened its change events are listed with it.
    pub const CHANGE_WINDOW: &str = "30m";
    /// The classes (alert names) that say a host is down: they inhibit the host's other alerts.
    pub const HOST_DOWN_CLASS: &str = "(?i)(host|node|instance|server|machine|vm)[-_ ]?(is[-_ ]?)?(down|unreachable|offline|unavailable|notready)";
    /// A rule's flap detection, on unless `flap = false`.
    pub const FLAP_MAX_CHANGES: u32 = 2;
    pub const FLAP_WITHIN: &str = "1h";
    pub const FLAP_COOLDOWN: &str = "15m";
    pub const MAX_ALERTS: usize = 1_000_000;
    pub const MAX_ALERTS_PER_ROUTING_KEY: usize = 100_000;
    pub const MAX_INCIDENTS: usize = 100_000;
    pub const MAX_INCIDENTS_PER_ROUTING_KEY: usize = 10_000;
    /// How long a partition remembers where the event rules sent an alert, after its last event.
    pub const ROUTE_TTL: &str = "7d";
    pub const LOG_LEVEL: &str = "info";
    pub const LOG_FORMAT: &str = "pretty";
    pub const INSTANCE: &str = "sluice";
    pub const PIPELINE_MODE: &str = "memory";
    pub const ROLES: &str = "ingest,correlate";
    pub const EVENTS_TOPIC: &str = "sluice.events";
    pub const EVENT_PARTITIONS: i32 = 12;
    pub const GROUP_ID: &str = "sluice-correlators";
    pub const WATERMARK_INTERVAL: &str = "1s";
    pub const COMMIT_INTERVAL: &str = "1s";
    pub const SESSION_TIMEOUT: &str = "10s";
    pub const STATE_TOPIC: &str = "sluice.state";
    pub const SILENCES_TOPIC: &str = "sluice.silences";
    pub const SNAPSHOT_INTERVAL: &str = "60s";
    /// Routing keys the per-key rate limit tracks at once (about 30 bytes each).
    pub const MAX_ROUTING_KEYS: usize = 100_000;
    pub const FAIR_ADMISSION: bool = true;
    /// `sluice forward` (`[deliver]`, `[[receivers]]`).
    pub const DELIVER_GROUP: &str = "sluice-forward";
    pub const DEAD_LETTER_TOPIC: &str = "sluice.dead-letters";
    pub const DELIVER_LISTEN: &str = "127.0.0.1:9466";
    pub const DELIVER_START_FROM: &str = "end";
    pub const DELIVER_MAX_PENDING: usize = 1000;
    /// `updated` is left out: it is chatty.
    pub const RECEIVER_TYPES: [&str; 4] = ["opened", "acknowledged", "resolved", "flapping"];
    pub const RECEIVER_TIMEOUT: &str = "10s";
    pub const RETRY_INITIAL: &str = "1s";
    pub const RETRY_MAX: &str = "60s";
    pub const GIVE_UP_AFTER: &str = "10m";
    pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
}

/// Environment variables that override a config key; anything else named `SLUICE_*` is an
/// error, so a typo in an override is caught rather than silently ignored.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("SLUICE_LISTEN", "server.listen"),
    ("SLUICE_TLS_CERT_FILE", "server.tls.cert_file"),
    ("SLUICE_TLS_KEY_FILE", "server.tls.key_file"),
    ("SLUICE_KAFKA_BROKERS", "kafka.brokers"),
    ("SLUICE_KAFKA_TOPIC", "kafka.topic"),
    ("SLUICE_KAFKA_CHANGES_TOPIC", "kafka.changes_topic"),
    ("SLUICE_KAFKA_SASL_USERNAME", "kafka.sasl.username"),
    (
        "SLUICE_KAFKA_SASL_PASSWORD",
        "kafka.sasl.password (replaces kafka.sasl.password_file)",
    ),
    ("SLUICE_KAFKA_SASL_MECHANISM", "kafka.sasl.mechanism"),
    ("SLUICE_KAFKA_TLS_CA_FILE", "kafka.tls.ca_file"),
    ("SLUICE_LOG_LEVEL", "log.level"),
    ("SLUICE_LOG_FORMAT", "log.format"),
    ("SLUICE_INSTANCE", "instance"),
    ("SLUICE_PIPELINE", "pipeline.mode"),
    ("SLUICE_ROLES", "pipeline.roles"),
    ("SLUICE_STATE_DIR", "pipeline.state_dir"),
    (
        "SLUICE_INTEGRATIONS_DIR",
        "integrations.generic.definitions_dir",
    ),
    (
        "SLUICE_ADMIN_TOKEN",
        "auth.tokens (one token named \"env\", scopes read and write)",
    ),
    ("SLUICE_ROUTING_KEYS_FILE", "auth.routing_keys_file"),
    (
        "SLUICE_RATE_LIMIT_PER_ROUTING_KEY",
        "limits.per_routing_key and limits.burst (events per second, burst the same number)",
    ),
];
/// Read by the CLI itself (the config path), not an override.
pub const ENV_CONFIG_PATH: &str = "SLUICE_CONFIG";
/// One admin token named `env` with the read and write scopes (see [`auth`]).
pub const ENV_ADMIN_TOKEN: &str = "SLUICE_ADMIN_TOKEN";

/// The keys of a table that its reader did not take (reported as unknown, or handed on).
pub type Unknown = BTreeMap<String, toml::Value>;

#[derive(Deserialize, Default)]
struct RawConfig {
    instance: Option<String>,
    server: Option<server::RawServer>,
    kafka: Option<kafka::RawKafka>,
    correlate: Option<correlate::RawCorrelate>,
    event_rules: Option<Vec<event_rules::RawEventRule>>,
    maintenance: Option<Vec<maintenance::RawMaintenance>>,
    heartbeats: Option<Vec<heartbeats::RawHeartbeat>>,
    log: Option<log::RawLog>,
    pipeline: Option<pipeline::RawPipeline>,
    integrations: Option<integrations::RawIntegrations>,
    auth: Option<auth::RawAuth>,
    limits: Option<limits::RawLimits>,
    deliver: Option<receivers::RawDeliver>,
    receivers: Option<Vec<receivers::RawReceiver>>,
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
    /// `[correlate]`, with the top-level `[[event_rules]]`, `[[maintenance]]` and
    /// `[[heartbeats]]` (applied by the correlator).
    pub correlate: CorrelateConfig,
    pub log: LogConfig,
    /// `[pipeline]`: memory or Kafka, and this instance's roles.
    pub pipeline: PipelineConfig,
    /// `[integrations.<kind>]`: per-integration settings.
    pub integrations: integrations::IntegrationsConfig,
    /// `[auth]`: routing key allowlist, integration secrets, admin tokens.
    pub auth: AuthConfig,
    /// `[limits]`: rate limits per routing key and per instance, fair admission.
    pub limits: LimitsConfig,
    /// `[deliver]` and `[[receivers]]`: `sluice forward`.
    pub deliver: DeliverConfig,
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

/// The text of a regular file of at most `max` bytes, or why not (naming the file).
pub(super) fn read_small_file(path: &std::path::Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if text.len() as u64 > max {
        return Err(format!("{shown} is larger than {max} bytes"));
    }
    Ok(text)
}

/// The problems found so far, and the checks every section shares.
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

    /// `raw` (or `default`) as one of `options`, which the problem names in the order given;
    /// anything else is reported and the default's value taken.
    fn one_of<T: Copy>(
        &mut self,
        key: &str,
        raw: Option<&str>,
        default: &str,
        options: &[(&str, T)],
    ) -> T {
        let find = |name: &str| options.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let name = raw.unwrap_or(default);
        find(name).unwrap_or_else(|| {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
            self.add(key, format!("{name:?} must be {}", names.join(" or ")));
            find(default).expect("the default is one of the options")
        })
    }

    /// The matchers at `key` (none when absent); each bad one is reported as `key[i]`.
    fn matchers(&mut self, key: &str, raw: Option<&[RawMatcher]>) -> Vec<Matcher> {
        parse_all(raw.unwrap_or_default(), key, &mut self.0)
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
            let pipeline = self.pipeline.get_or_insert_with(Default::default);
            let slot = match name.as_str() {
                "SLUICE_PIPELINE" => &mut pipeline.mode,
                "SLUICE_STATE_DIR" => &mut pipeline.state_dir,
                "SLUICE_INTEGRATIONS_DIR" => {
                    integrations::set_definitions_dir(&mut self.integrations, value);
                    continue;
                }
                "SLUICE_ROLES" => {
                    pipeline.roles = Some(pipeline::RawRoles::List(value));
                    continue;
                }
                ENV_ADMIN_TOKEN => {
                    let auth = self.auth.get_or_insert_with(Default::default);
                    auth.tokens
                        .get_or_insert_with(Vec::new)
                        .push(auth::RawToken::from_env(value));
                    continue;
                }
                "SLUICE_RATE_LIMIT_PER_ROUTING_KEY" => {
                    match value.parse::<u32>() {
                        Ok(rate) if rate > 0 => {
                            let limits = self.limits.get_or_insert_with(Default::default);
                            limits.per_routing_key = Some(rate);
                            limits.burst = Some(rate);
                        }
                        _ => p.add(
                            &name,
                            format!(
                                "{value:?} is not a whole number of events per second greater \
                                 than zero"
                            ),
                        ),
                    }
                    continue;
                }
                "SLUICE_ROUTING_KEYS_FILE" => {
                    let auth = self.auth.get_or_insert_with(Default::default);
                    auth.routing_keys_file = Some(value);
                    continue;
                }
                "SLUICE_LISTEN" => &mut server.listen,
                "SLUICE_TLS_CERT_FILE" => {
                    &mut server.tls.get_or_insert_with(Default::default).cert_file
                }
                "SLUICE_TLS_KEY_FILE" => {
                    &mut server.tls.get_or_insert_with(Default::default).key_file
                }
                "SLUICE_KAFKA_BROKERS" => &mut kafka.brokers,
                "SLUICE_KAFKA_TOPIC" => &mut kafka.topic,
                "SLUICE_KAFKA_CHANGES_TOPIC" => &mut kafka.changes_topic,
                _ if kafka.apply_security_env(&name, &value) => continue,
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
        let mut correlate = self.correlate.unwrap_or_default().validate(p);
        correlate.event_rules = event_rules::validate(self.event_rules, p);
        correlate.maintenance = maintenance::validate(self.maintenance, p);
        correlate.heartbeats = heartbeats::validate(self.heartbeats, p);
        let config = Config {
            instance,
            server: self.server.unwrap_or_default().validate(p),
            kafka: self.kafka.unwrap_or_default().validate(p),
            correlate,
            log: self.log.unwrap_or_default().validate(p),
            pipeline: self.pipeline.unwrap_or_default().validate(p),
            integrations: integrations::validate(self.integrations, p),
            auth: self.auth.unwrap_or_default().validate(p),
            limits: self.limits.unwrap_or_default().validate(p),
            deliver: receivers::validate(self.deliver, self.receivers, p),
        };
        // Each topic holds one kind of record.
        let (pipeline, kafka) = (&config.pipeline, &config.kafka);
        config.deliver.check_topics(
            &[
                ("kafka.topic", &kafka.topic),
                ("kafka.changes_topic", &kafka.changes_topic),
                ("pipeline.events_topic", &pipeline.events_topic),
                ("pipeline.state_topic", &pipeline.state_topic),
                ("pipeline.silences_topic", &pipeline.silences_topic),
            ],
            p,
        );
        for (key, topic) in [
            ("pipeline.events_topic", &pipeline.events_topic),
            ("pipeline.state_topic", &pipeline.state_topic),
            ("pipeline.silences_topic", &pipeline.silences_topic),
        ] {
            let taken = [
                ("kafka.topic", &kafka.topic),
                ("kafka.changes_topic", &kafka.changes_topic),
                ("pipeline.events_topic", &pipeline.events_topic),
                ("pipeline.state_topic", &pipeline.state_topic),
            ]
            .into_iter()
            .find(|(other, name)| *other != key && *name == topic);
            if let Some((other, _)) = taken {
                p.add(
                    key,
                    format!("{topic:?} is already {other}: each topic holds one kind of record"),
                );
            }
        }
        config
    }
}

#[cfg(test)]
mod tests;
