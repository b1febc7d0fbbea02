//! An incident message as the forwarder reads it back from the topic: the members receivers
//! are rendered from and matched on, read tolerantly (members it does not know are ignored, so
//! a newer producer's messages still deliver), and which receivers select it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::ReceiverConfig;
use crate::event::{Field, Severity};
use crate::matchers::{all_match, Subject};
use crate::publish::encode::INCIDENT_SCHEMA;

/// The members of a `sluice.incident.v1` message the receivers use.
#[derive(Debug, Deserialize)]
pub struct Incident {
    #[serde(rename = "type")]
    pub kind: String,
    pub incident_id: String,
    pub seq: u64,
    pub routing_key: String,
    #[serde(default)]
    pub group_key: BTreeMap<String, String>,
    pub title: String,
    pub severity: Severity,
    pub status: String,
    pub opened_at: String,
    #[serde(default)]
    pub resolved_at: Option<String>,
    pub alert_count: u64,
    pub open_alert_count: u64,
    #[serde(default)]
    pub alerts: Vec<AlertRef>,
    #[serde(default)]
    pub integrations: Vec<String>,
    #[serde(default)]
    pub links: Vec<LinkRef>,
    #[serde(default)]
    pub reasons: Option<Box<RawValue>>,
    #[serde(default)]
    pub changes: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
pub struct AlertRef {
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Deserialize)]
pub struct LinkRef {
    pub href: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// Just enough to tell an incident message from anything else on the topic.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    schema: Option<&'a str>,
}

impl Incident {
    /// The incident message in `bytes`; `None` for any other record (another schema, a
    /// liveness record, bytes that are not one), which the forwarder passes over.
    pub fn parse(bytes: &[u8]) -> Option<Incident> {
        let head: Head = serde_json::from_slice(bytes).ok()?;
        if head.schema != Some(INCIDENT_SCHEMA) {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }

    /// The first alert's source, else the `source` it was grouped by.
    pub fn source(&self) -> Option<&str> {
        self.alerts
            .iter()
            .map(|a| a.source.as_str())
            .chain(self.group_key.get("source").map(String::as_str))
            .find(|s| !s.is_empty())
    }
}

/// Matchers see an incident as: `routing_key`, `severity`, `summary` (the title), `source`
/// (the first alert's), `integration` (the first one), and any other field (`labels.team`,
/// `entity.host`, `component`, ...) as its value in the incident's `group_key`, empty when
/// the incident was not grouped by it.
impl Subject for Incident {
    fn get(&self, field: &Field) -> &str {
        match field {
            Field::RoutingKey => &self.routing_key,
            Field::Severity => self.severity.as_str(),
            Field::Summary => &self.title,
            Field::Source => self.source().unwrap_or(""),
            Field::Integration => self.integrations.first().map_or("", String::as_str),
            other => self
                .group_key
                .get(other.name().as_ref())
                .map_or("", String::as_str),
        }
    }
}

/// Whether a receiver takes a message, and if not why (the `outcome` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    Deliver,
    /// Its `types` leave the message's type out, or its kind has nothing to say for it.
    SkipType,
    /// Its `matchers` or `min_severity` leave the incident out.
    SkipMatchers,
}

/// Whether `receiver` selects `incident`.
pub fn select(receiver: &ReceiverConfig, incident: &Incident) -> Selection {
    if !receiver.wants_type(&incident.kind) {
        return Selection::SkipType;
    }
    let severe_enough = receiver
        .min_severity
        .is_none_or(|min| incident.severity >= min);
    if severe_enough && all_match(&receiver.matchers, incident) {
        Selection::Deliver
    } else {
        Selection::SkipMatchers
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::Config;

    /// An incident message as sluice publishes it.
    pub const OPENED: &str = r#"{"schema":"sluice.incident.v1","type":"opened","incident_id":"inc_1","seq":1,"routing_key":"payments","rule":"by-team","group_key":{"labels.team":"db","source":"db-1"},"title":"disk <full> & slow","severity":"error","status":"triggered","opened_at":"2026-11-21T19:00:07.719Z","updated_at":"2026-11-21T19:00:07.730Z","resolved_at":null,"alert_count":3,"open_alert_count":2,"event_count":9,"alerts":[{"dedup_key":"d1","summary":"disk full","severity":"error","status":"triggered","event_count":3,"first_seen":"2026-11-21T19:00:07.719Z","last_seen":"2026-11-21T19:00:07.719Z","source":"db-1","integration":"pagerduty"}],"alerts_truncated":0,"integrations":["pagerduty"],"links":[{"href":"https://runbooks.example.com/disk?a=1&b=2","text":"Runbook"},{"href":"javascript:alert(1)"}],"reasons":{"grouping":"group_by","inhibited":0,"silenced":0},"published_at":"2026-11-21T19:00:08.000Z","future_member":[1,2]}"#;

    pub fn receivers(toml: &str) -> Vec<ReceiverConfig> {
        Config::from_toml(toml, Vec::new())
            .unwrap_or_else(|e| panic!("{e}"))
            .deliver
            .receivers
    }

    #[test]
    fn only_incident_messages_are_read_and_unknown_members_are_ignored() {
        let i = Incident::parse(OPENED.as_bytes()).unwrap();
        assert_eq!((i.incident_id.as_str(), i.seq), ("inc_1", 1));
        assert_eq!(i.source(), Some("db-1"));
        assert!(Incident::parse(br#"{"schema":"sluice.change.v1","type":"change"}"#).is_none());
        assert!(Incident::parse(br#"{"type":"liveness","at":"x"}"#).is_none());
        assert!(Incident::parse(b"not json").is_none());
    }

    #[test]
    fn receivers_select_by_type_severity_and_matchers() {
        let rs = receivers(
            r#"
[[receivers]]
name = "team-db"
kind = "webhook"
url = "http://h/"
matchers = [{ name = "labels.team", op = "=", value = "db" },
            { name = "routing_key", op = "=~", value = "pay.*" }]

[[receivers]]
name = "critical-only"
kind = "webhook"
url = "http://h/"
min_severity = "critical"

[[receivers]]
name = "other-team"
kind = "webhook"
url = "http://h/"
matchers = [{ name = "labels.team", op = "=", value = "web" }]

[[receivers]]
name = "updates"
kind = "webhook"
url = "http://h/"
types = ["updated"]
"#,
        );
        let i = Incident::parse(OPENED.as_bytes()).unwrap();
        let got: Vec<Selection> = rs.iter().map(|r| select(r, &i)).collect();
        assert_eq!(
            got,
            [
                Selection::Deliver,
                Selection::SkipMatchers,
                Selection::SkipMatchers,
                Selection::SkipType
            ]
        );
        let critical = Incident::parse(
            OPENED
                .replace(
                    r#""severity":"error","status""#,
                    r#""severity":"critical","status""#,
                )
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(select(&rs[1], &critical), Selection::Deliver);
    }
}
