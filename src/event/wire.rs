//! The wire format of normalized events: how an [`Event`], a [`ChangeEvent`] or a partition
//! [`Record::Watermark`] travels between sluice processes. It is the record format of the
//! durable Kafka events topic (one record per event; ingest produces to it in a later change)
//! and what `sluice replay` reads from a dump of that topic.
//!
//! One JSON object per record, `v` (the format version) and `type` first:
//!
//! ```text
//! {"v":1,"type":"event","routing_key":"rk-1","integration":"sentry",
//!  "key_space":"sentry_metric_alerts","action":"trigger","dedup_key":"77",
//!  "severity":"critical","summary":"...","source":"db-1","component":"postgres",
//!  "group":"prod","class":"cpu","labels":[["team","db"],["env","prod"]],
//!  "custom_details":{"value":93.5},"timestamp":1700000000000,"received_at":1700000000500,
//!  "ends_at":1700000300000,"links":[{"href":"https://...","text":"Sentry"}],
//!  "images":[{"src":"https://...","href":"https://...","alt":"chart"}]}
//! {"v":1,"type":"event","routing_key":"dba",...,"routed":{"partition":3,"offset":1234,"index":0,"floor":1200}}
//! {"v":1,"type":"change","routing_key":"rk-1","integration":"pagerduty","summary":"deploy",
//!  "received_at":1700000000500}
//! {"v":1,"type":"watermark","at":1700000000500,"rules":"9f86d081884c7d65"}
//! {"v":1,"type":"command","routing_key":"rk-1","incident_id":"inc_3f0c...","action":"snooze",
//!  "until":1700003600500,"by":"ops","reason":"deploying the fix","received_at":1700000000500}
//! ```
//!
//! (wrapped here; a record is one line: strings are escaped and `custom_details` is compact).
//!
//! - Field names are the event model's. Times are integers, Unix milliseconds. `integration`
//!   is [`Integration::as_str`]; `action` is `trigger`, `acknowledge` or `resolve`; `severity`
//!   is `info`, `warning`, `error` or `critical`, exactly. `labels` is an array of
//!   `[name, value]` pairs, in the event's order. `custom_details` is the [`Details`] JSON,
//!   written and read back verbatim.
//! - Required: an event's `routing_key`, `integration`, `action`, `dedup_key`, `severity` and
//!   `received_at`; a change's `routing_key`, `integration`, `summary` and `received_at`; a
//!   watermark's `at`; a command's `routing_key`, `incident_id`, `action` (`acknowledge`,
//!   `resolve`, `snooze`, which also needs `until`), `by` and `received_at`. Commands are
//!   version 1 records too: a reader that predates them skips them as an unknown type. Every other field is written only when it is set (not `None`, not
//!   empty; an event's `summary` and `source` only when not empty) and reads as unset when
//!   absent or `null`.
//! - `routed`: on an event the event rules re-routed, written by the correlator of the
//!   partition it first came to (see `correlate::shard::door`): where it was there. Its
//!   `routing_key` is the new one, and the event rules have applied. A reader of version 1
//!   without `routed` takes it as an event under its new key, which is what it is.
//! - `key_space`: [`KeySpace`] numbers follow the integrations registry's order, which changes
//!   between versions, so no number is ever written. An event in its integration's own space
//!   has no `key_space`; one in [`KeySpace::SENTRY_METRIC_ALERTS`] has
//!   `"key_space":"sentry_metric_alerts"`.
//!
//! Compatibility: a reader takes every version from 1 up to the [`VERSION`] it writes and
//! refuses later ones ([`WireError::UnsupportedVersion`]). Fields it does not know are
//! ignored, at the top level and inside links and images, so a writer may add a field an
//! older reader can do without while keeping `v`. A change an older reader would get wrong by
//! ignoring it (a new required field, a field whose meaning or shape changes, a new key space
//! name) takes the next version. A record type the reader does not know is
//! [`WireError::UnknownType`], for the caller to skip or stop on.
//!
//! Decoding never panics. Errors name the field and never quote the record, except the
//! unknown name in [`WireError::UnknownType`] and [`WireError::Unknown`] (at most 64
//! characters of it).
//!
//! [`Integration::as_str`]: crate::integration::Integration::as_str
//! [`Details`]: crate::event::Details
//! [`KeySpace`]: crate::integration::KeySpace
//! [`KeySpace::SENTRY_METRIC_ALERTS`]: crate::integration::KeySpace::SENTRY_METRIC_ALERTS

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::decode;
pub use encode::{
    encode, encode_change, encode_command, encode_event, encode_routed, encode_watermark,
};

use crate::event::{ChangeEvent, Command, Event};
use crate::time::UnixMillis;

/// The format version this build writes, and the latest it reads.
pub const VERSION: u64 = 1;

/// The wire name of the Sentry metric alerts key space,
/// [`KeySpace::SENTRY_METRIC_ALERTS`](crate::integration::KeySpace::SENTRY_METRIC_ALERTS).
const SENTRY_METRIC_ALERTS: &str = "sentry_metric_alerts";

/// One record of the events topic.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Event(Event),
    /// An event the event rules gave another routing key, written by the correlator of the
    /// partition it came to (its sender's routing key's) to its new key's partition.
    Routed {
        event: Event,
        origin: Origin,
    },
    Change(ChangeEvent),
    /// An operator's command on an incident, in its routing key's partition.
    Command(Command),
    /// Written by an ingest instance to a partition it has no events for, so that the
    /// partition's time still advances: `at` is the writer's clock when it wrote it.
    Watermark {
        at: UnixMillis,
        /// The fingerprint of the writer's rules (`sluice_rules_info`), so correlators can tell
        /// when an ingest instance runs other rules than theirs.
        rules: Option<String>,
    },
}

/// Where a routed event came from: its source partition, the offset of its message there, and
/// its place among that message's records; and the source's floor, the offset below which
/// every routed event of that partition was delivered (committed, with transactions) when this
/// one was written. A partition takes each place once (a source partition processed again
/// after a crash writes its routed events again, at the same places), and every place below a
/// floor it has seen is a repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    pub partition: u32,
    pub offset: u64,
    pub index: u32,
    pub floor: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not one JSON value: a syntax error, an early end or trailing bytes.
    #[error("not json: {0}")]
    NotJson(serde_json::Error),
    #[error("not a json object")]
    NotObject,
    #[error("unsupported wire format version {0}; this build reads versions 1 to {max}", max = VERSION)]
    UnsupportedVersion(u64),
    #[error("unknown record type {0:?}")]
    UnknownType(String),
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {0} appears twice")]
    Duplicate(&'static str),
    #[error("field {field}: expected {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
    /// A name this build does not know in a field that takes names: `integration`, `action`,
    /// `severity`, `key_space`.
    #[error("unknown {field} {value:?}")]
    Unknown { field: &'static str, value: String },
}
