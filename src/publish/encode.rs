//! Incident and change messages: the JSON body, the key and the CloudEvents headers that go to
//! Kafka (DESIGN section 4). The bytes built here are exactly what consumers read, and what
//! `sluice replay` prints.

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
}

impl MessageKind {
    pub const ALL: [MessageKind; 5] = [
        MessageKind::Opened,
        MessageKind::Updated,
        MessageKind::Flapping,
        MessageKind::Resolved,
        MessageKind::Change,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Opened => "opened",
            MessageKind::Updated => "updated",
            MessageKind::Flapping => "flapping",
            MessageKind::Resolved => "resolved",
            MessageKind::Change => "change",
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
    /// Set when a cap stopped sluice from tracking this incident: nothing will follow.
    #[serde(skip_serializing_if = "is_false")]
    pub untracked: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// `{"source": "db-1"}`: the grouping fields and this incident's values.
pub struct GroupKey<'a> {
    pub fields: &'a [String],
    pub values: &'a [Box<str>],
}

impl Serialize for GroupKey<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for (f, v) in self.fields.iter().zip(self.values) {
            map.serialize_entry(f, v)?;
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
    /// `silenced` or `inhibited` while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<&'a RawValue>,
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
}
