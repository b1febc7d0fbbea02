//! `[pipeline]`: how events travel from ingest to the correlator. Every key is optional; the
//! values shown are the defaults:
//!
//! ```toml
//! [pipeline]
//! mode = "memory"                  # or "kafka" (SLUICE_PIPELINE): the durable events topic
//! roles = ["ingest", "correlate"]  # what this instance runs (SLUICE_ROLES="ingest,correlate")
//! events_topic = "sluice.events"   # kafka mode: the normalized events, one partition a shard
//! partitions = 12                  # kafka mode: of the events topic, fixed when it is created
//! group_id = "sluice-correlators"  # kafka mode: the correlators' consumer group
//! watermark_interval = "1s"        # kafka mode: ingest moves idle partitions' time this often
//! commit_interval = "1s"           # kafka mode: how often delivered work is committed
//! session_timeout = "10s"          # kafka mode: a correlator silent this long loses its partitions
//! state_topic = "sluice.state"     # kafka mode: partition snapshots (compacted when created)
//! snapshot_interval = "60s"        # kafka mode: a partition with new records is snapshotted this often
//! silences_topic = "sluice.silences" # kafka mode: silences, shared by every instance (compacted)
//! transactions = false             # kafka mode: each commit one transaction (brokers that have them)
//! # state_dir = "/var/lib/sluice"  # memory mode: open alerts, incidents, timers and silences
//!                                  # saved here on SIGTERM (and every snapshot_interval) and
//!                                  # restored at start (SLUICE_STATE_DIR); none: kept in memory only
//! ```
//!
//! Validates the mode and roles by name (at least one role; memory mode runs both), the topic
//! names (none the same as another topic of sluice), and the counts and durations; unknown keys are
//! rejected.

use std::time::Duration;

use serde::Deserialize;

use super::{defaults, Problems, Unknown};

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawRoles {
    /// `"ingest,correlate"`, as `SLUICE_ROLES` writes it.
    List(String),
    Array(Vec<String>),
}

#[derive(Deserialize, Default)]
pub(super) struct RawPipeline {
    /// Set by `SLUICE_PIPELINE` and `SLUICE_ROLES` too.
    pub(super) mode: Option<String>,
    pub(super) roles: Option<RawRoles>,
    events_topic: Option<String>,
    partitions: Option<i32>,
    group_id: Option<String>,
    watermark_interval: Option<String>,
    commit_interval: Option<String>,
    session_timeout: Option<String>,
    state_topic: Option<String>,
    snapshot_interval: Option<String>,
    silences_topic: Option<String>,
    transactions: Option<bool>,
    /// Set by `SLUICE_STATE_DIR` too.
    pub(super) state_dir: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipelineMode {
    /// Bounded channels to in-process shards: fast, and gone with the process.
    Memory,
    /// The events topic and a consumer group of correlators: durable, shared, restartable.
    Kafka,
}

/// What one instance runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Accept HTTP events and hand them to the pipeline.
    pub ingest: bool,
    /// Correlate: own shards (memory) or partitions of the events topic (kafka).
    pub correlate: bool,
}

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub mode: PipelineMode,
    pub roles: Roles,
    pub events_topic: String,
    pub partitions: i32,
    pub group_id: String,
    pub watermark_interval: Duration,
    pub commit_interval: Duration,
    /// The consumer group's session timeout: how long after a correlator dies its partitions
    /// move (plus a rebalance).
    pub session_timeout: Duration,
    /// Kafka mode: where partition snapshots go.
    pub state_topic: String,
    /// Kafka mode: a partition that took records since its last snapshot is snapshotted once
    /// this has passed (one partition per commit, the longest waiting first).
    pub snapshot_interval: Duration,
    /// Kafka mode: the silences every instance applies (one partition, compacted).
    pub silences_topic: String,
    /// Kafka mode: a correlator's incident messages, routed events, snapshots and offsets of
    /// each commit interval are one transaction (exactly once for `read_committed` consumers).
    /// Needs a broker with transactions (Kafka 2.5+; not tansu 0.6).
    pub transactions: bool,
    /// Memory mode: where the correlator's state is saved on SIGTERM (and every
    /// `snapshot_interval`) and restored from at start.
    pub state_dir: Option<std::path::PathBuf>,
}

impl RawPipeline {
    pub(super) fn validate(self, p: &mut Problems) -> PipelineConfig {
        p.unknown("pipeline", &self.unknown);
        let mode = p.one_of(
            "pipeline.mode",
            self.mode.as_deref(),
            defaults::PIPELINE_MODE,
            &[
                ("memory", PipelineMode::Memory),
                ("kafka", PipelineMode::Kafka),
            ],
        );
        let names: Vec<String> = match self.roles {
            None => defaults::ROLES.split(',').map(String::from).collect(),
            Some(RawRoles::List(list)) => list.split(',').map(|r| r.trim().to_string()).collect(),
            Some(RawRoles::Array(array)) => array,
        };
        let mut roles = Roles {
            ingest: false,
            correlate: false,
        };
        for name in &names {
            match name.as_str() {
                "ingest" => roles.ingest = true,
                "correlate" => roles.correlate = true,
                other => p.add(
                    "pipeline.roles",
                    format!("{other:?} is not a role (roles: ingest, correlate)"),
                ),
            }
        }
        if !roles.ingest && !roles.correlate {
            p.add("pipeline.roles", "name at least one of ingest, correlate");
        } else if mode == PipelineMode::Memory && !(roles.ingest && roles.correlate) {
            p.add(
                "pipeline.roles",
                "memory mode runs ingest and correlate in one process; split roles need mode = \"kafka\"",
            );
        }
        let events_topic = self
            .events_topic
            .unwrap_or_else(|| defaults::EVENTS_TOPIC.into());
        if let Err(why) = super::kafka::check_topic_name(&events_topic) {
            p.add("pipeline.events_topic", why);
        }
        let partitions = p.positive(
            "pipeline.partitions",
            self.partitions.unwrap_or(defaults::EVENT_PARTITIONS),
        );
        let group_id = self.group_id.unwrap_or_else(|| defaults::GROUP_ID.into());
        if group_id.trim().is_empty() {
            p.add("pipeline.group_id", "must not be blank");
        }
        let watermark_interval = p.duration(
            "pipeline.watermark_interval",
            self.watermark_interval.as_deref(),
            defaults::WATERMARK_INTERVAL,
        );
        let commit_interval = p.duration(
            "pipeline.commit_interval",
            self.commit_interval.as_deref(),
            defaults::COMMIT_INTERVAL,
        );
        let session_timeout = p.duration(
            "pipeline.session_timeout",
            self.session_timeout.as_deref(),
            defaults::SESSION_TIMEOUT,
        );
        let state_topic = self
            .state_topic
            .unwrap_or_else(|| defaults::STATE_TOPIC.into());
        if let Err(why) = super::kafka::check_topic_name(&state_topic) {
            p.add("pipeline.state_topic", why);
        }
        let silences_topic = self
            .silences_topic
            .unwrap_or_else(|| defaults::SILENCES_TOPIC.into());
        if let Err(why) = super::kafka::check_topic_name(&silences_topic) {
            p.add("pipeline.silences_topic", why);
        }
        let snapshot_interval = p.duration(
            "pipeline.snapshot_interval",
            self.snapshot_interval.as_deref(),
            defaults::SNAPSHOT_INTERVAL,
        );
        for (key, d) in [
            ("pipeline.snapshot_interval", snapshot_interval),
            ("pipeline.watermark_interval", watermark_interval),
            ("pipeline.commit_interval", commit_interval),
            ("pipeline.session_timeout", session_timeout),
        ] {
            if d.is_zero() {
                p.add(key, "must be greater than zero");
            }
        }
        PipelineConfig {
            mode,
            roles,
            events_topic,
            partitions,
            group_id,
            watermark_interval,
            commit_interval,
            session_timeout,
            state_topic,
            snapshot_interval,
            silences_topic,
            transactions: self.transactions.unwrap_or(false),
            state_dir: state_dir(p, self.state_dir, mode),
        }
    }
}

/// `pipeline.state_dir`: memory mode only (Kafka mode keeps its state on the state topic); an
/// existing path must be a directory (a missing one is made at start).
fn state_dir(
    p: &mut Problems,
    raw: Option<String>,
    mode: PipelineMode,
) -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from(raw?);
    if mode == PipelineMode::Kafka {
        p.add(
            "pipeline.state_dir",
            "memory mode only: Kafka mode keeps its state on pipeline.state_topic",
        );
    } else if path.exists() && !path.is_dir() {
        p.add(
            "pipeline.state_dir",
            format!("{} is not a directory", path.display()),
        );
    }
    Some(path)
}
