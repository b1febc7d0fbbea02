//! `[[event_rules]]`: matchers and actions applied in order to every event, in the partition of
//! its sender's routing key (`correlate::shard::door`), before dedup; `drop` ends it. There are
//! none by default; in a rule every key is optional, the values shown are the defaults:
//!
//! ```toml
//! [[event_rules]]
//! name = "event_rules[0]"        # its position
//! matchers = []                  # every event; e.g. [{ name = "source", op = "=~", value = "canary-.*" }]
//! drop = false
//! # set_severity = "warning"     # not set unless given; critical, error, warning or info
//! # set_routing_key = "payments" # not set unless given
//! # set_label = { team = "db" }  # none unless given
//! # enrich = { file = "/etc/sluice/services.csv", field = "labels.service", key = "service" }
//! ```
//!
//! `enrich` looks the event's `field` up in a lookup table (`lookup`: CSV or JSON, keyed by
//! column `key`, default its first) and adds the row's other columns as labels the event does
//! not have yet; the table is read with the configuration (and at every reload).
//!
//! Validates that each rule has an action (`drop`, `set_severity`, `set_routing_key`,
//! `set_label` or `enrich`), its matchers parse, `set_severity` is a severity,
//! `set_routing_key` is not blank, and `enrich` names a field and a table that reads; unknown
//! keys are rejected.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::lookup::LookupTable;
use super::{Problems, Unknown};
use crate::event::{Field, Severity};
use crate::matchers::{Matcher, RawMatcher};

#[derive(Deserialize, Default)]
pub(super) struct RawEventRule {
    name: Option<String>,
    matchers: Option<Vec<RawMatcher>>,
    drop: Option<bool>,
    set_severity: Option<String>,
    set_routing_key: Option<String>,
    set_label: Option<BTreeMap<String, String>>,
    enrich: Option<RawEnrich>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawEnrich {
    file: Option<String>,
    field: Option<String>,
    key: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// Labels added from a lookup table: the row whose key is the event's `field`.
#[derive(Clone, Debug)]
pub struct Enrich {
    pub field: Field,
    pub table: Arc<LookupTable>,
}

/// Matchers and actions applied to each event before dedup, in order; `drop` ends it.
#[derive(Clone, Debug)]
pub struct EventRule {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub drop: bool,
    pub set_severity: Option<Severity>,
    pub set_routing_key: Option<String>,
    pub set_label: Vec<(String, String)>,
    pub enrich: Option<Enrich>,
}

/// Every `[[event_rules]]` entry, in order, each reported as `event_rules[i]`.
pub(super) fn validate(raw: Option<Vec<RawEventRule>>, p: &mut Problems) -> Vec<EventRule> {
    raw.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.validate(&format!("event_rules[{i}]"), p))
        .collect()
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
            matchers: p.matchers(&format!("{at}.matchers"), self.matchers.as_deref()),
            drop: self.drop.unwrap_or(false),
            set_severity,
            set_routing_key: self.set_routing_key,
            set_label: self.set_label.unwrap_or_default().into_iter().collect(),
            enrich: self
                .enrich
                .and_then(|e| e.validate(&format!("{at}.enrich"), p)),
        };
        if !rule.drop
            && rule.set_severity.is_none()
            && rule.set_routing_key.is_none()
            && rule.set_label.is_empty()
            && rule.enrich.is_none()
        {
            p.add(
                at,
                "has no action (drop, set_severity, set_routing_key, set_label, enrich)",
            );
        }
        rule
    }
}

impl RawEnrich {
    fn validate(self, at: &str, p: &mut Problems) -> Option<Enrich> {
        p.unknown(at, &self.unknown);
        let field = match self.field.as_deref() {
            None => {
                p.add(
                    &format!("{at}.field"),
                    "is required: the event field looked up",
                );
                None
            }
            Some(name) => Field::parse(name).or_else(|| {
                p.add(&format!("{at}.field"), format!("{name:?} is not a field"));
                None
            }),
        };
        let Some(file) = self.file else {
            p.add(
                &format!("{at}.file"),
                "is required: a CSV or JSON lookup table",
            );
            return None;
        };
        let table = LookupTable::load(&file, self.key.as_deref())
            .map_err(|e| p.add(&format!("{at}.file"), e))
            .ok()?;
        Some(Enrich {
            field: field?,
            table: Arc::new(table),
        })
    }
}
