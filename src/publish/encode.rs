//! Incident and change messages: the JSON body, the key and the CloudEvents headers that go to
//! Kafka (DESIGN section 4). The bytes built here are exactly what consumers read, and what
//! `sluice replay` prints.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::event::{Image, Link, Severity};
use crate::time::UnixMillis;

pub const INCIDENT_SCHEMA: &str = "sluice.incident.v1";
pub const CHANGE_SCHEMA: &str = "sluice.change.v1";
pub const CE_SPECVERSION: &str = "1.0";
pub const CONTENT_TYPE: &str = "application/json";

/// What a message says happened; also the `type` label of the published counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Opened,
    Updated,
    Flapping,
    Resolved,
    Change,
    Acknowledged,
    Snoozed,
    /// An instance's liveness record on the incidents topic (`publish::liveness`).
    Liveness,
}

impl MessageKind {
    pub const ALL: [MessageKind; 8] = [
        MessageKind::Opened,
        MessageKind::Updated,
        MessageKind::Flapping,
        MessageKind::Resolved,
        MessageKind::Change,
        MessageKind::Acknowledged,
        MessageKind::Snoozed,
        MessageKind::Liveness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Opened => "opened",
            MessageKind::Updated => "updated",
            MessageKind::Flapping => "flapping",
            MessageKind::Resolved => "resolved",
            MessageKind::Change => "change",
            MessageKind::Acknowledged => "acknowledged",
            MessageKind::Snoozed => "snoozed",
            MessageKind::Liveness => "liveness",
        }
    }

    /// The CloudEvents `ce_type`.
    pub fn ce_type(self) -> &'static str {
        match self {
            MessageKind::Opened => "io.sluice.incident.opened",
            MessageKind::Updated => "io.sluice.incident.updated",
            MessageKind::Flapping => "io.sluice.incident.flapping",
            MessageKind::Resolved => "io.sluice.incident.resolved",
            MessageKind::Change => "io.sluice.change",
            MessageKind::Acknowledged => "io.sluice.incident.acknowledged",
            MessageKind::Snoozed => "io.sluice.incident.snoozed",
            MessageKind::Liveness => "io.sluice.liveness",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Self> {
        Self::ALL.get(i).copied()
    }
}

/// Which topic a message belongs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    Incidents,
    Changes,
}

/// One message ready for the transport: key, CloudEvents id and type, and the JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundMessage {
    pub topic: Topic,
    pub kind: MessageKind,
    pub key: String,
    /// `ce_id`: unique per message and deterministic (`<incident_id>.<seq>`).
    pub id: String,
    pub body: Vec<u8>,
    /// When it was handed to the producer ([`OutboundMessage::stamp`]): the body's
    /// `published_at` and the `ce_time` header, the only send-time fields (a replay or a repeat
    /// keeps every other byte).
    pub published_at: Option<UnixMillis>,
    /// An `opened` message's incident's first event (when ingest received it): time to page
    /// runs from here.
    pub first_event_at: Option<UnixMillis>,
    /// When the correlator decided it, on partition time (`sluice replay --compare` measures
    /// time to page with it, offline).
    pub decided_at: UnixMillis,
}

impl OutboundMessage {
    /// Stamps the send time `now` once: appends `"published_at"` to the body (a JSON object)
    /// and keeps it for the `ce_time` header.
    pub fn stamp(&mut self, now: UnixMillis) {
        if self.published_at.is_some() {
            return;
        }
        if self.body.last() == Some(&b'}') {
            self.body.pop();
            let empty = self.body.last() == Some(&b'{');
            let comma = if empty { "" } else { "," };
            // Written in place: no string per message.
            let _ = write!(self.body, "{comma}\"published_at\":\"{now}\"}}");
        }
        self.published_at = Some(now);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Triggered,
    Acknowledged,
    Resolved,
}

/// The body of an incident message, borrowed from correlator state for the moment of encoding.
#[derive(Serialize)]
pub struct IncidentBody<'a> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: MessageKind,
    pub incident_id: &'a str,
    pub seq: u32,
    pub routing_key: &'a str,
    pub rule: &'a str,
    pub group_key: GroupKey<'a>,
    pub title: &'a str,
    pub severity: Severity,
    pub status: Status,
    pub opened_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub resolved_at: Option<UnixMillis>,
    pub alert_count: u32,
    pub open_alert_count: u32,
    /// Events received for its alerts (a resolve by time is no event).
    pub event_count: u64,
    pub alerts: Vec<AlertBody<'a>>,
    pub alerts_truncated: u32,
    pub integrations: Vec<&'static str>,
    pub links: &'a [Link],
    /// A routing key's overflow incident (past a cap): the alerts it took (not tracked one by
    /// one; `alert_count` counts them too) and those whose resolves it cannot match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow: Option<OverflowCounts>,
    pub reasons: Reasons,
    /// "What changed?": recent change events that name what its alerts name, latest first.
    #[serde(skip_serializing_if = "<[ChangeRef]>::is_empty")]
    pub changes: &'a [ChangeRef],
    /// Snoozed by an operator until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<UnixMillis>,
    /// The last operator command applied to it (`action`, `by`, `reason`, `at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<&'a CommandNote>,
}

/// An operator command as an incident keeps it and its messages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CommandNote {
    pub action: Box<str>,
    pub by: Box<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Box<str>>,
    pub at: UnixMillis,
}

/// What an overflow incident took past a cap: alerts in all, and those past the bound on the
/// hashes it keeps, whose resolves cannot be matched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OverflowCounts {
    pub taken: u64,
    pub unmatched: u64,
}

/// A change event listed in an incident message, and which value of the incident's alerts it
/// named (`source=checkout`, `labels.service=checkout`, `entity.host=db-1`).
#[derive(Clone, Debug, Serialize)]
pub struct ChangeRef {
    pub change_id: String,
    pub summary: String,
    pub source: Option<String>,
    pub at: UnixMillis,
    pub matched: String,
}

/// Which mechanism grouped, held, inhibited or silenced what in an incident, so that an
/// operator can trust or switch off each one (README "Noise reduction").
#[derive(Serialize)]
pub struct Reasons {
    /// `auto` (shared values: `joined_by`) or `group_by` (equal values of the rule's fields).
    pub grouping: &'static str,
    /// Auto grouping: how many alerts joined by each link kind (the first alert joined none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub joined_by: BTreeMap<&'static str, u32>,
    /// Published only after this, held by a pause beyond `group_wait`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<UnixMillis>,
    /// `severity` (the rule's `pause_transient`) or `learned` (the class usually blips).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<&'static str>,
    /// Alerts listed as inhibited or silenced now.
    pub inhibited: u32,
    pub silenced: u32,
    /// In a flapping spell: updates are held until it ends.
    #[serde(skip_serializing_if = "is_false")]
    pub flapping: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// `{"source": "db-1"}`: the grouping fields and this incident's values; under an auto rule,
/// its first alert's link values (those it has).
pub struct GroupKey<'a> {
    pub fields: &'a [String],
    pub values: &'a [Box<str>],
    pub auto: bool,
}

impl Serialize for GroupKey<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (f, v) in self.fields.iter().zip(self.values) {
            if !(self.auto && v.is_empty()) {
                map.serialize_entry(f, v)?;
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
pub struct AlertBody<'a> {
    pub dedup_key: &'a str,
    pub summary: &'a str,
    pub severity: Severity,
    pub status: Status,
    pub event_count: u32,
    pub first_seen: UnixMillis,
    pub last_seen: UnixMillis,
    pub source: &'a str,
    pub integration: &'static str,
    /// The alert's rule, check or metric (Prometheus' `alertname`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<&'a str>,
    /// The sender's labels, as an object (absent when it sent none).
    #[serde(skip_serializing_if = "LabelMap::is_empty")]
    pub labels: LabelMap<'a>,
    /// Under an auto rule, the shared value it joined its incident by (`host=db-1`); none for
    /// the first alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grouped_by: Option<String>,
    /// `silenced` or `inhibited` while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<crate::event::DetailsRef<'a>>,
}

/// An alert's labels written as one JSON object, without copying them (a later label of a
/// name wins, as in a JSON reader).
pub struct LabelMap<'a>(pub crate::event::Labels<'a>);

impl LabelMap<'_> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for LabelMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (name, value) in self.0.iter_last() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
pub struct ChangeBody<'a> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: MessageKind,
    pub change_id: &'a str,
    pub routing_key: &'a str,
    pub integration: &'static str,
    pub summary: &'a str,
    pub source: Option<&'a str>,
    pub timestamp: Option<UnixMillis>,
    pub received_at: UnixMillis,
    pub custom_details: Option<&'a RawValue>,
    pub links: &'a [Link],
    pub images: &'a [Image],
}

/// Serializes a message body; these bodies hold only strings, numbers and already-valid JSON,
/// so encoding cannot fail.
pub fn to_json<T: Serialize>(body: &T) -> Vec<u8> {
    // A one-alert message is about 1 KB: start there rather than grow from nothing.
    let mut out = Vec::with_capacity(2048);
    serde_json::to_writer(&mut out, body).expect("incident bodies always serialize");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_index() {
        for k in MessageKind::ALL {
            assert_eq!(MessageKind::from_index(k.index()), Some(k));
            assert!(k.ce_type().ends_with(k.as_str()));
        }
    }

    #[test]
    fn a_stamp_appends_published_at_once_and_keeps_every_other_byte() {
        let body = br#"{"type":"opened","seq":1}"#.to_vec();
        let mut msg = OutboundMessage {
            topic: Topic::Incidents,
            kind: MessageKind::Opened,
            key: "inc_1".into(),
            id: "inc_1.1".into(),
            body: body.clone(),
            published_at: None,
            first_event_at: None,
            decided_at: UnixMillis(0),
        };
        msg.stamp(UnixMillis(1_700_000_000_123));
        assert_eq!(
            String::from_utf8(msg.body.clone()).unwrap(),
            r#"{"type":"opened","seq":1,"published_at":"2023-11-14T22:13:20.123Z"}"#
        );
        // A send tried again keeps its first stamp.
        let stamped = msg.body.clone();
        msg.stamp(UnixMillis(1_800_000_000_000));
        assert_eq!(
            (msg.body, msg.published_at),
            (stamped, Some(UnixMillis(1_700_000_000_123)))
        );
        let mut empty = OutboundMessage {
            body: b"{}".to_vec(),
            published_at: None,
            ..msg
        };
        empty.stamp(UnixMillis(0));
        let v: serde_json::Value = serde_json::from_slice(&empty.body).unwrap();
        assert_eq!(v["published_at"], "1970-01-01T00:00:00.000Z");
    }
}
