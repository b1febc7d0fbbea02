//! `[[heartbeats]]`: dead man's switches. A heartbeat expects a beat at least every `interval`;
//! when one is missed, sluice opens an incident under its routing key ("no heartbeat from X
//! for 10m") and resolves it when beats return (`correlate::shard::heartbeats`). None by
//! default; `name`, `routing_key` and `interval` are required, the other values shown are the
//! defaults:
//!
//! ```toml
//! [[heartbeats]]
//! name = "nightly-backup"        # POST /heartbeat/nightly-backup (with the routing key)
//! routing_key = "infra"          # where its beats come in, and its incident goes
//! interval = "25h"
//! # events = []                  # unset: explicit beats only; set: also every event of the
//! #                              # routing key meeting these matchers ([] = any event)
//! consume = false                # true: the events it matches are beats only, not alerts
//! severity = "critical"          # of the missed-heartbeat incident
//! ```
//!
//! Validates that the name and routing key are given and the name not used twice under one
//! routing key, the interval is a duration of at least a second, the matchers parse and the
//! severity is one; unknown keys are rejected.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::{Problems, Unknown};
use crate::event::Severity;
use crate::matchers::{Matcher, RawMatcher};

#[derive(Deserialize, Default)]
pub(super) struct RawHeartbeat {
    name: Option<String>,
    routing_key: Option<String>,
    interval: Option<String>,
    events: Option<Vec<RawMatcher>>,
    consume: Option<bool>,
    severity: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// One dead man's switch.
#[derive(Clone, Debug)]
pub struct HeartbeatConfig {
    pub name: String,
    pub routing_key: String,
    pub interval: Duration,
    /// The interval as configured (for the incident's summary).
    pub interval_text: String,
    /// Implicit beats: events of `routing_key` meeting every matcher (`None`: explicit beats
    /// only).
    pub events: Option<Vec<Matcher>>,
    /// The events `events` matches are beats only, never correlated (Prometheus' `Watchdog`).
    pub consume: bool,
    pub severity: Severity,
}

/// Every `[[heartbeats]]` entry, each reported as `heartbeats[i]`.
pub(super) fn validate(raw: Option<Vec<RawHeartbeat>>, p: &mut Problems) -> Vec<HeartbeatConfig> {
    let all: Vec<HeartbeatConfig> = raw
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.validate(&format!("heartbeats[{i}]"), p))
        .collect();
    let mut seen = HashSet::new();
    for (i, h) in all.iter().enumerate() {
        if !h.name.is_empty() && !seen.insert((h.routing_key.as_str(), h.name.as_str())) {
            p.add(
                &format!("heartbeats[{i}].name"),
                format!(
                    "{:?} is used twice under routing key {:?}",
                    h.name, h.routing_key
                ),
            );
        }
    }
    all
}

impl RawHeartbeat {
    fn validate(self, at: &str, p: &mut Problems) -> HeartbeatConfig {
        p.unknown(at, &self.unknown);
        let mut required = |key: &str, v: Option<String>| match v {
            Some(v) if !v.trim().is_empty() => v,
            _ => {
                p.add(&format!("{at}.{key}"), "is required");
                String::new()
            }
        };
        let name = required("name", self.name);
        let routing_key = required("routing_key", self.routing_key);
        let interval_text = required("interval", self.interval);
        if name.contains('/') {
            p.add(
                &format!("{at}.name"),
                "must not contain '/' (it is a path segment)",
            );
        }
        let interval = match interval_text.as_str() {
            "" => Duration::ZERO,
            text => p.duration(&format!("{at}.interval"), Some(text), "0s"),
        };
        if !interval_text.is_empty() && interval < Duration::from_secs(1) {
            p.add(&format!("{at}.interval"), "must be at least 1s");
        }
        let severity = match self.severity.as_deref() {
            None => Severity::Critical,
            Some(s) => Severity::parse(s).unwrap_or_else(|| {
                let names = Severity::NAMES;
                p.add(
                    &format!("{at}.severity"),
                    format!("{s:?} must be one of {names}"),
                );
                Severity::Critical
            }),
        };
        let events = self
            .events
            .as_deref()
            .map(|raw| p.matchers(&format!("{at}.events"), Some(raw)));
        HeartbeatConfig {
            name,
            routing_key,
            interval,
            interval_text,
            events,
            consume: self.consume.unwrap_or(false),
            severity,
        }
    }
}
