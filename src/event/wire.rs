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
//! {"v":1,"type":"change","routing_key":"rk-1","integration":"pagerduty","summary":"deploy",
//!  "received_at":1700000000500}
//! {"v":1,"type":"watermark","at":1700000000500}
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
//!   watermark's `at`. Every other field is written only when it is set (not `None`, not
//!   empty; an event's `summary` and `source` only when not empty) and reads as unset when
//!   absent or `null`.
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

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::event::{Action, ChangeEvent, Details, Event, Image, Link, Severity};
use crate::integration::{Integration, KeySpace};
use crate::time::UnixMillis;

/// The format version this build writes, and the latest it reads.
pub const VERSION: u64 = 1;

/// The wire name of [`KeySpace::SENTRY_METRIC_ALERTS`].
const SENTRY_METRIC_ALERTS: &str = "sentry_metric_alerts";

/// How much of an unknown name an error repeats.
const MAX_NAME_CHARS: usize = 64;

/// One record of the events topic.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Event(Event),
    Change(ChangeEvent),
    /// Written by an ingest instance to a partition it has no events for, so that the
    /// partition's time still advances: `at` is the writer's clock when it wrote it.
    Watermark {
        at: UnixMillis,
    },
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

/// Appends `record` to `out` as one JSON object (no newline).
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Event(event) => encode_event(event, out),
        Record::Change(change) => encode_change(change, out),
        Record::Watermark { at } => encode_watermark(*at, out),
    }
}

/// Appends an event record to `out`, borrowing the event (ingest has an [`Event`], not a
/// [`Record`]).
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    let key_space = if event.key_space == event.integration.key_space() {
        None
    } else {
        debug_assert_eq!(
            event.key_space,
            KeySpace::SENTRY_METRIC_ALERTS,
            "a key space with no wire name"
        );
        (event.key_space == KeySpace::SENTRY_METRIC_ALERTS).then_some(SENTRY_METRIC_ALERTS)
    };
    write(
        out,
        &EventOut {
            v: VERSION,
            kind: "event",
            routing_key: &event.routing_key,
            integration: event.integration.as_str(),
            key_space,
            action: action_name(event.action),
            dedup_key: &event.dedup_key,
            severity: event.severity.as_str(),
            summary: &event.summary,
            source: &event.source,
            component: event.component.as_deref(),
            group: event.group.as_deref(),
            class: event.class.as_deref(),
            labels: &event.labels,
            custom_details: event.custom_details.as_ref().map(|d| &*d.0),
            timestamp: event.timestamp.map(|t| t.0),
            received_at: event.received_at.0,
            ends_at: event.ends_at.map(|t| t.0),
            links: &event.links,
            images: &event.images,
        },
    );
}

/// Appends a change record to `out`.
pub fn encode_change(change: &ChangeEvent, out: &mut Vec<u8>) {
    write(
        out,
        &ChangeOut {
            v: VERSION,
            kind: "change",
            routing_key: &change.routing_key,
            integration: change.integration.as_str(),
            summary: &change.summary,
            source: change.source.as_deref(),
            custom_details: change.custom_details.as_ref().map(|d| &*d.0),
            timestamp: change.timestamp.map(|t| t.0),
            received_at: change.received_at.0,
            links: &change.links,
            images: &change.images,
        },
    );
}

/// Appends a watermark record to `out`.
pub fn encode_watermark(at: UnixMillis, out: &mut Vec<u8>) {
    write(
        out,
        &WatermarkOut {
            v: VERSION,
            kind: "watermark",
            at: at.0,
        },
    );
}

/// Reads one record: the whole of `bytes` is one JSON object.
pub fn decode(bytes: &[u8]) -> Result<Record, WireError> {
    let mut state = State::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let read = Seed(&mut state)
        .deserialize(&mut de)
        .and_then(|fields| de.end().map(|()| fields));
    let err = match read {
        Ok(fields) => return fields.into_record(),
        Err(e) => match state.err.take() {
            Some(ours) => ours,
            None => json_error(e, state.field, bytes),
        },
    };
    // A later version may reshape a field before the reader has seen `v`: say the version.
    if matches!(err, WireError::Invalid { .. } | WireError::Duplicate(_))
        && state.seen & Slot::V.bit() == 0
    {
        if let Some(v) = declared_version(bytes).filter(|&v| !readable(v)) {
            return Err(WireError::UnsupportedVersion(v));
        }
    }
    Err(err)
}

/// What a JSON error while reading means: broken JSON, or JSON of a shape this version does
/// not read (the field being read, or the top level when none was).
fn json_error(e: serde_json::Error, field: Option<Slot>, bytes: &[u8]) -> WireError {
    if field.is_none() && e.classify() != Category::Data {
        return WireError::NotJson(e);
    }
    // A shape error can stop the reading before broken JSON further on, and a syntax error
    // can be a shape error (a third element in a label pair is "trailing characters"): read
    // it all as JSON to know, which also keeps the shape error's text (it may quote the
    // value) out of the answer. As a raw value, because `IgnoredAny` skips strings without
    // checking their UTF-8.
    match serde_json::from_slice::<&RawValue>(bytes) {
        Err(syntax) => WireError::NotJson(syntax),
        Ok(_) => match field {
            Some(slot) => WireError::Invalid {
                field: slot.name(),
                expected: slot.expected(),
            },
            None => WireError::NotObject,
        },
    }
}

fn write<T: Serialize>(out: &mut Vec<u8>, record: &T) {
    // Strings, integers and already-valid JSON into a Vec: nothing here can fail.
    serde_json::to_writer(out, record).expect("wire records always serialize");
}

fn readable(v: u64) -> bool {
    (1..=VERSION).contains(&v)
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Trigger => "trigger",
        Action::Acknowledge => "acknowledge",
        Action::Resolve => "resolve",
    }
}

/// Exactly as [`Severity::as_str`] writes it (no case folding: only sluice writes these).
fn severity_named(name: &str) -> Option<Severity> {
    [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ]
    .into_iter()
    .find(|s| s.as_str() == name)
}

fn key_space_named(name: &str) -> Option<KeySpace> {
    (name == SENTRY_METRIC_ALERTS).then_some(KeySpace::SENTRY_METRIC_ALERTS)
}

// ---- writing ----

#[derive(Serialize)]
struct EventOut<'a> {
    v: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    routing_key: &'a str,
    integration: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_space: Option<&'static str>,
    action: &'static str,
    dedup_key: &'a str,
    severity: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    labels: &'a [(String, String)],
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_details: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    received_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<u64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "links_out")]
    links: &'a [Link],
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "images_out")]
    images: &'a [Image],
}

#[derive(Serialize)]
struct ChangeOut<'a> {
    v: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    routing_key: &'a str,
    integration: &'static str,
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_details: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    received_at: u64,
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "links_out")]
    links: &'a [Link],
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "images_out")]
    images: &'a [Image],
}

#[derive(Serialize)]
struct WatermarkOut {
    v: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    at: u64,
}

/// Links and images are written by the wire's own shapes, so a change to how incident
/// messages show them cannot change this format.
#[derive(Serialize)]
struct LinkOut<'a> {
    href: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

#[derive(Serialize)]
struct ImageOut<'a> {
    src: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    href: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alt: Option<&'a str>,
}

fn links_out<S: Serializer>(links: &&[Link], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(links.iter().map(|l| LinkOut {
        href: &l.href,
        text: l.text.as_deref(),
    }))
}

fn images_out<S: Serializer>(images: &&[Image], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(images.iter().map(|i| ImageOut {
        src: &i.src,
        href: i.href.as_deref(),
        alt: i.alt.as_deref(),
    }))
}

// ---- reading ----

/// Every field a record may carry, as read; which are required depends on `type`.
#[derive(Default)]
struct Fields<'a> {
    v: Option<u64>,
    kind: Option<Name<'a>>,
    routing_key: Option<String>,
    integration: Option<Name<'a>>,
    key_space: Option<Name<'a>>,
    action: Option<Name<'a>>,
    dedup_key: Option<String>,
    severity: Option<Name<'a>>,
    summary: Option<String>,
    source: Option<String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    labels: Option<Vec<(String, String)>>,
    custom_details: Option<Box<RawValue>>,
    timestamp: Option<u64>,
    received_at: Option<u64>,
    ends_at: Option<u64>,
    links: Option<Vec<LinkIn>>,
    images: Option<Vec<ImageIn>>,
    at: Option<u64>,
}

impl Fields<'_> {
    fn into_record(mut self) -> Result<Record, WireError> {
        // Its range was checked as it was read.
        required(self.v, "v")?;
        let kind = required(self.kind.take(), "type")?;
        match &*kind.0 {
            "event" => self.into_event().map(Record::Event),
            "change" => self.into_change().map(Record::Change),
            "watermark" => Ok(Record::Watermark {
                at: UnixMillis(required(self.at, "at")?),
            }),
            other => Err(WireError::UnknownType(shown(other))),
        }
    }

    fn into_event(self) -> Result<Event, WireError> {
        let routing_key = required(self.routing_key, "routing_key")?;
        let integration = named(self.integration, "integration", Integration::parse)?;
        let key_space = match self.key_space {
            None => integration.key_space(),
            some => named(some, "key_space", key_space_named)?,
        };
        let action = named(self.action, "action", Action::parse)?;
        let dedup_key = required(self.dedup_key, "dedup_key")?;
        let severity = named(self.severity, "severity", severity_named)?;
        let received_at = UnixMillis(required(self.received_at, "received_at")?);
        Ok(Event {
            routing_key,
            integration,
            key_space,
            action,
            dedup_key,
            severity,
            summary: self.summary.unwrap_or_default(),
            source: self.source.unwrap_or_default(),
            component: self.component,
            group: self.group,
            class: self.class,
            labels: self.labels.unwrap_or_default(),
            custom_details: self.custom_details.map(Details),
            timestamp: self.timestamp.map(UnixMillis),
            received_at,
            ends_at: self.ends_at.map(UnixMillis),
            links: links_in(self.links),
            images: images_in(self.images),
        })
    }

    fn into_change(self) -> Result<ChangeEvent, WireError> {
        let routing_key = required(self.routing_key, "routing_key")?;
        let integration = named(self.integration, "integration", Integration::parse)?;
        let summary = required(self.summary, "summary")?;
        let received_at = UnixMillis(required(self.received_at, "received_at")?);
        Ok(ChangeEvent {
            routing_key,
            integration,
            summary,
            source: self.source,
            custom_details: self.custom_details.map(Details),
            timestamp: self.timestamp.map(UnixMillis),
            received_at,
            links: links_in(self.links),
            images: images_in(self.images),
        })
    }
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, WireError> {
    value.ok_or(WireError::Missing(field))
}

fn named<T>(
    name: Option<Name<'_>>,
    field: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, WireError> {
    let name = required(name, field)?;
    parse(&name.0).ok_or_else(|| WireError::Unknown {
        field,
        value: shown(&name.0),
    })
}

/// An unknown name as an error repeats it: its first [`MAX_NAME_CHARS`] characters.
fn shown(name: &str) -> String {
    name.chars().take(MAX_NAME_CHARS).collect()
}

/// `v` alone, for an error met before `v` was read.
fn declared_version(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Head {
        v: Option<u64>,
    }
    serde_json::from_slice::<Head>(bytes).ok()?.v
}

#[derive(Deserialize)]
struct LinkIn {
    href: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct ImageIn {
    src: String,
    href: Option<String>,
    alt: Option<String>,
}

fn links_in(links: Option<Vec<LinkIn>>) -> Vec<Link> {
    links
        .unwrap_or_default()
        .into_iter()
        .map(|l| Link {
            href: l.href,
            text: l.text,
        })
        .collect()
}

fn images_in(images: Option<Vec<ImageIn>>) -> Vec<Image> {
    images
        .unwrap_or_default()
        .into_iter()
        .map(|i| Image {
            src: i.src,
            href: i.href,
            alt: i.alt,
        })
        .collect()
}

/// A name that is only compared: borrowed from the record unless it has escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The fields this version knows; every other name is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    V,
    Type,
    RoutingKey,
    Integration,
    KeySpace,
    Action,
    DedupKey,
    Severity,
    Summary,
    Source,
    Component,
    Group,
    Class,
    Labels,
    CustomDetails,
    Timestamp,
    ReceivedAt,
    EndsAt,
    Links,
    Images,
    At,
    Other,
}

const STRING: &str = "a string";
const MILLIS: &str = "an integer of unix milliseconds";

impl Slot {
    #[cfg(test)]
    const KNOWN: [Slot; 21] = [
        Slot::V,
        Slot::Type,
        Slot::RoutingKey,
        Slot::Integration,
        Slot::KeySpace,
        Slot::Action,
        Slot::DedupKey,
        Slot::Severity,
        Slot::Summary,
        Slot::Source,
        Slot::Component,
        Slot::Group,
        Slot::Class,
        Slot::Labels,
        Slot::CustomDetails,
        Slot::Timestamp,
        Slot::ReceivedAt,
        Slot::EndsAt,
        Slot::Links,
        Slot::Images,
        Slot::At,
    ];

    fn parse(name: &str) -> Slot {
        match name {
            "v" => Slot::V,
            "type" => Slot::Type,
            "routing_key" => Slot::RoutingKey,
            "integration" => Slot::Integration,
            "key_space" => Slot::KeySpace,
            "action" => Slot::Action,
            "dedup_key" => Slot::DedupKey,
            "severity" => Slot::Severity,
            "summary" => Slot::Summary,
            "source" => Slot::Source,
            "component" => Slot::Component,
            "group" => Slot::Group,
            "class" => Slot::Class,
            "labels" => Slot::Labels,
            "custom_details" => Slot::CustomDetails,
            "timestamp" => Slot::Timestamp,
            "received_at" => Slot::ReceivedAt,
            "ends_at" => Slot::EndsAt,
            "links" => Slot::Links,
            "images" => Slot::Images,
            "at" => Slot::At,
            _ => Slot::Other,
        }
    }

    /// The field's name and what its value must be.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Slot::V => ("v", "an integer"),
            Slot::Type => ("type", STRING),
            Slot::RoutingKey => ("routing_key", STRING),
            Slot::Integration => ("integration", STRING),
            Slot::KeySpace => ("key_space", STRING),
            Slot::Action => ("action", STRING),
            Slot::DedupKey => ("dedup_key", STRING),
            Slot::Severity => ("severity", STRING),
            Slot::Summary => ("summary", STRING),
            Slot::Source => ("source", STRING),
            Slot::Component => ("component", STRING),
            Slot::Group => ("group", STRING),
            Slot::Class => ("class", STRING),
            Slot::Labels => ("labels", "an array of [name, value] string pairs"),
            Slot::CustomDetails => ("custom_details", "json"),
            Slot::Timestamp => ("timestamp", MILLIS),
            Slot::ReceivedAt => ("received_at", MILLIS),
            Slot::EndsAt => ("ends_at", MILLIS),
            Slot::Links => (
                "links",
                "an array of objects with a string href and an optional string text",
            ),
            Slot::Images => (
                "images",
                "an array of objects with a string src and optional string href and alt",
            ),
            Slot::At => ("at", MILLIS),
            Slot::Other => ("", ""),
        }
    }

    fn name(self) -> &'static str {
        self.describe().0
    }

    fn expected(self) -> &'static str {
        self.describe().1
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

const _: () = assert!((Slot::Other as u32) < 32);

impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Slot;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Slot, E> {
                Ok(Slot::parse(s))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// What [`decode`] learns beyond the fields: which were seen, which one was being read when
/// the JSON failed, and an error of ours that the JSON error only carries out.
#[derive(Default)]
struct State {
    seen: u32,
    field: Option<Slot>,
    err: Option<WireError>,
}

impl State {
    fn value<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
        &mut self,
        map: &mut A,
        slot: Slot,
    ) -> Result<T, A::Error> {
        if self.seen & slot.bit() != 0 {
            return Err(self.fail(WireError::Duplicate(slot.name())));
        }
        self.seen |= slot.bit();
        self.field = Some(slot);
        let value = map.next_value()?;
        self.field = None;
        Ok(value)
    }

    fn fail<E: de::Error>(&mut self, err: WireError) -> E {
        self.err = Some(err);
        E::custom("invalid wire record")
    }
}

struct Seed<'s>(&'s mut State);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Fields<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Fields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a wire record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let s = self.0;
        let m = &mut map;
        let mut f = Fields::default();
        while let Some(slot) = m.next_key::<Slot>()? {
            match slot {
                Slot::V => {
                    f.v = s.value(m, slot)?;
                    if let Some(v) = f.v.filter(|&v| !readable(v)) {
                        // Before the rest, whose shapes may be the later version's.
                        return Err(s.fail(WireError::UnsupportedVersion(v)));
                    }
                }
                Slot::Type => f.kind = s.value(m, slot)?,
                Slot::RoutingKey => f.routing_key = s.value(m, slot)?,
                Slot::Integration => f.integration = s.value(m, slot)?,
                Slot::KeySpace => f.key_space = s.value(m, slot)?,
                Slot::Action => f.action = s.value(m, slot)?,
                Slot::DedupKey => f.dedup_key = s.value(m, slot)?,
                Slot::Severity => f.severity = s.value(m, slot)?,
                Slot::Summary => f.summary = s.value(m, slot)?,
                Slot::Source => f.source = s.value(m, slot)?,
                Slot::Component => f.component = s.value(m, slot)?,
                Slot::Group => f.group = s.value(m, slot)?,
                Slot::Class => f.class = s.value(m, slot)?,
                Slot::Labels => f.labels = s.value(m, slot)?,
                // Verbatim, `null` included: whatever JSON the details were is what they are.
                Slot::CustomDetails => f.custom_details = Some(s.value(m, slot)?),
                Slot::Timestamp => f.timestamp = s.value(m, slot)?,
                Slot::ReceivedAt => f.received_at = s.value(m, slot)?,
                Slot::EndsAt => f.ends_at = s.value(m, slot)?,
                Slot::Links => f.links = s.value(m, slot)?,
                Slot::Images => f.images = s.value(m, slot)?,
                Slot::At => f.at = s.value(m, slot)?,
                Slot::Other => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::value::to_raw_value;

    use super::*;

    fn details(json: &str) -> Details {
        Details(RawValue::from_string(json.to_string()).unwrap())
    }

    fn encoded(record: &Record) -> String {
        let mut out = Vec::new();
        encode(record, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Every field set, in the Sentry metric alert key space.
    fn full_event() -> Event {
        let mut e = Event::new(
            Integration::Sentry,
            Action::Trigger,
            "rk-1".into(),
            "77".into(),
            UnixMillis(1_700_000_000_500),
        );
        e.key_space = KeySpace::SENTRY_METRIC_ALERTS;
        e.severity = Severity::Critical;
        e.summary = "CPU > 90% on \"db-1\"".into();
        e.source = "db-1".into();
        e.component = Some("postgres".into());
        e.group = Some("prod".into());
        e.class = Some("cpu".into());
        e.labels = vec![
            ("team".into(), "données".into()),
            ("env".into(), "prod".into()),
        ];
        e.custom_details = Some(details(r#"{"value":93.5,"tags":["a","b"]}"#));
        e.timestamp = Some(UnixMillis(1_700_000_000_000));
        e.ends_at = Some(UnixMillis(1_700_000_300_000));
        e.links = vec![Link {
            href: "https://sentry.example/alerts/77".into(),
            text: Some("Sentry".into()),
        }];
        e.images = vec![Image {
            src: "https://sentry.example/chart.png".into(),
            href: Some("https://sentry.example/alerts/77".into()),
            alt: Some("chart".into()),
        }];
        e
    }

    /// The v1 bytes of [`full_event`]. Changing this string is changing the wire format: a
    /// new field an older reader can ignore, or a new [`VERSION`].
    const GOLDEN: &str = concat!(
        r#"{"v":1,"type":"event","routing_key":"rk-1","integration":"sentry","#,
        r#""key_space":"sentry_metric_alerts","action":"trigger","dedup_key":"77","#,
        r#""severity":"critical","summary":"CPU > 90% on \"db-1\"","source":"db-1","#,
        r#""component":"postgres","group":"prod","class":"cpu","#,
        r#""labels":[["team","données"],["env","prod"]],"#,
        r#""custom_details":{"value":93.5,"tags":["a","b"]},"#,
        r#""timestamp":1700000000000,"received_at":1700000000500,"ends_at":1700000300000,"#,
        r#""links":[{"href":"https://sentry.example/alerts/77","text":"Sentry"}],"#,
        r#""images":[{"src":"https://sentry.example/chart.png","#,
        r#""href":"https://sentry.example/alerts/77","alt":"chart"}]}"#,
    );

    #[test]
    fn golden_v1_event_bytes() {
        let event = full_event();
        assert_eq!(encoded(&Record::Event(event.clone())), GOLDEN);
        let mut out = Vec::new();
        encode_event(&event, &mut out);
        assert_eq!(out, GOLDEN.as_bytes());
        assert_eq!(decode(GOLDEN.as_bytes()).unwrap(), Record::Event(event));
    }

    #[test]
    fn minimal_records_carry_only_what_is_set() {
        let ack = Event::new(
            Integration::PagerDuty,
            Action::Acknowledge,
            "rk".into(),
            "k".into(),
            UnixMillis(5),
        );
        assert_eq!(
            encoded(&Record::Event(ack)),
            r#"{"v":1,"type":"event","routing_key":"rk","integration":"pagerduty","action":"acknowledge","dedup_key":"k","severity":"error","received_at":5}"#
        );
        assert_eq!(
            encoded(&Record::Watermark { at: UnixMillis(7) }),
            r#"{"v":1,"type":"watermark","at":7}"#
        );
        let change = ChangeEvent {
            routing_key: "rk".into(),
            integration: Integration::PagerDuty,
            summary: "deploy".into(),
            source: None,
            custom_details: None,
            timestamp: None,
            received_at: UnixMillis(5),
            links: Vec::new(),
            images: Vec::new(),
        };
        assert_eq!(
            encoded(&Record::Change(change)),
            r#"{"v":1,"type":"change","routing_key":"rk","integration":"pagerduty","summary":"deploy","received_at":5}"#
        );
    }

    #[test]
    fn encode_appends_to_the_buffer() {
        let mut out = b"x".to_vec();
        encode(&Record::Watermark { at: UnixMillis(1) }, &mut out);
        encode(&Record::Watermark { at: UnixMillis(2) }, &mut out);
        assert_eq!(
            out,
            br#"x{"v":1,"type":"watermark","at":1}{"v":1,"type":"watermark","at":2}"#
        );
    }

    #[test]
    fn sentry_metric_alert_key_space_round_trips() {
        let mut metric = full_event();
        metric.key_space = KeySpace::SENTRY_METRIC_ALERTS;
        let record = Record::Event(metric);
        let text = encoded(&record);
        assert!(text.contains(r#""key_space":"sentry_metric_alerts""#));
        assert_eq!(decode(text.as_bytes()).unwrap(), record);

        // An issue alert of the same integration and key: its own space, no key_space field.
        let mut issue = full_event();
        issue.key_space = Integration::Sentry.key_space();
        let text = encoded(&Record::Event(issue.clone()));
        assert!(!text.contains("key_space"));
        let Record::Event(back) = decode(text.as_bytes()).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(back.key_space, Integration::Sentry.key_space());
        assert_ne!(back.key_space, KeySpace::SENTRY_METRIC_ALERTS);
        assert_eq!(back, issue);

        // A shared space is the integration's: PagerDuty v1 meets PagerDuty v2.
        let v1 = Event::new(
            Integration::PagerDutyV1,
            Action::Trigger,
            "rk".into(),
            "k".into(),
            UnixMillis(1),
        );
        let text = encoded(&Record::Event(v1));
        assert!(!text.contains("key_space"));
        let Record::Event(back) = decode(text.as_bytes()).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(back.key_space, Integration::PagerDuty.key_space());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let with_extras = GOLDEN
            .replacen(
                r#"{"v":1,"#,
                r#"{"v":1,"trace":{"id":[1,2,{"x":null}]},"priority":3,"#,
                1,
            )
            .replacen(r#""text":"Sentry""#, r#""text":"Sentry","rel":"self""#, 1)
            .replacen(r#""alt":"chart""#, r#""alt":"chart","width":640"#, 1)
            .replacen(r#"}]}"#, r#"}],"flags":["new"]}"#, 1);
        assert_ne!(with_extras, GOLDEN);
        assert_eq!(
            decode(with_extras.as_bytes()).unwrap(),
            Record::Event(full_event())
        );
    }

    #[test]
    fn null_reads_as_absent() {
        let record = r#"{"v":1,"type":"event","routing_key":"rk","integration":"pagerduty","action":"resolve","dedup_key":"k","severity":"error","received_at":5,"component":null,"labels":null,"timestamp":null,"links":[{"href":"h","text":null}]}"#;
        let Record::Event(e) = decode(record.as_bytes()).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.component, None);
        assert!(e.labels.is_empty());
        assert_eq!(e.timestamp, None);
        assert_eq!(
            e.links,
            vec![Link {
                href: "h".into(),
                text: None
            }]
        );
    }

    const MINIMAL: &str = r#""type":"event","routing_key":"rk","integration":"pagerduty","action":"trigger","dedup_key":"k","severity":"error","received_at":5"#;

    fn minimal(v: &str, extra: &str) -> String {
        format!(r#"{{"v":{v},{MINIMAL}{extra}}}"#)
    }

    #[test]
    fn a_later_version_is_refused_by_number() {
        assert!(decode(minimal("1", "").as_bytes()).is_ok());
        for (record, v) in [
            (minimal("2", ""), 2),
            (minimal("0", ""), 0),
            // A field reshaped by the later version, after `v` and before it.
            (minimal("2", r#","labels":{"team":"db"}"#), 2),
            (
                r#"{"labels":{"team":"db"},"type":"event","v":3}"#.to_string(),
                3,
            ),
            // Even a type this build does not know.
            (r#"{"v":2,"type":"heartbeat"}"#.to_string(), 2),
            (
                r#"{"type":"heartbeat","v":18446744073709551615}"#.to_string(),
                u64::MAX,
            ),
        ] {
            let err = decode(record.as_bytes()).unwrap_err();
            assert!(
                matches!(err, WireError::UnsupportedVersion(n) if n == v),
                "{record}: {err}"
            );
        }
        assert_eq!(
            WireError::UnsupportedVersion(2).to_string(),
            "unsupported wire format version 2; this build reads versions 1 to 1"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let no_routing_key = minimal("1", "").replace(r#""routing_key":"rk","#, "");
        let err = decode(no_routing_key.as_bytes()).unwrap_err();
        assert!(matches!(err, WireError::Missing("routing_key")), "{err}");
        assert_eq!(err.to_string(), "missing field routing_key");

        for (field, record) in [
            ("v", format!("{{{MINIMAL}}}")),
            ("type", r#"{"v":1}"#.to_string()),
            ("received_at", minimal("1", "").replace(r#","received_at":5"#, "")),
            ("dedup_key", minimal("1", "").replace(r#","dedup_key":"k""#, "")),
            ("integration", minimal("1", "").replace(r#""integration":"pagerduty","#, "")),
            // null is absent
            ("integration", minimal("1", "").replace(r#""pagerduty""#, "null")),
            ("summary", r#"{"v":1,"type":"change","routing_key":"rk","integration":"pagerduty","received_at":1}"#.to_string()),
            ("at", r#"{"v":1,"type":"watermark"}"#.to_string()),
        ] {
            let err = decode(record.as_bytes()).unwrap_err();
            assert!(matches!(err, WireError::Missing(f) if f == field), "{record}: {err}");
        }
    }

    #[test]
    fn unknown_names_are_named() {
        let record = minimal("1", "").replace(r#""pagerduty""#, r#""nagios2""#);
        let err = decode(record.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, WireError::Unknown { field: "integration", value } if value == "nagios2"),
            "{err}"
        );
        assert_eq!(err.to_string(), r#"unknown integration "nagios2""#);

        for (field, record) in [
            (
                "action",
                minimal("1", "").replace(r#""trigger""#, r#""snooze""#),
            ),
            // Exactly as written: no case folding.
            (
                "severity",
                minimal("1", "").replace(r#""error""#, r#""Error""#),
            ),
            ("key_space", minimal("1", r#","key_space":"7""#)),
        ] {
            let err = decode(record.as_bytes()).unwrap_err();
            assert!(
                matches!(err, WireError::Unknown { field: f, .. } if f == field),
                "{record}: {err}"
            );
        }

        // A very long name is cut in the error.
        let long = "x".repeat(10_000);
        let err = decode(
            minimal("1", "")
                .replace(r#""pagerduty""#, &format!("{long:?}"))
                .as_bytes(),
        )
        .unwrap_err();
        assert!(err.to_string().len() < 100, "{err}");
    }

    #[test]
    fn an_unknown_type_is_named() {
        let err = decode(br#"{"v":1,"type":"heartbeat","at":5}"#).unwrap_err();
        assert!(
            matches!(&err, WireError::UnknownType(t) if t == "heartbeat"),
            "{err}"
        );
        assert_eq!(err.to_string(), r#"unknown record type "heartbeat""#);
    }

    #[test]
    fn what_is_not_json_is_refused() {
        for bytes in [
            &b"not json"[..],
            b"",
            b"{\"v\":1,",
            b"{\"v\":1}{\"v\":1}",
            b"{\"v\":1} x",
            b"{\"v\":1,\"type\":\"\xff\"}",
            b"{\"v\":1,\"custom_details\":{\"a\":}}",
        ] {
            let err = decode(bytes).unwrap_err();
            assert!(
                matches!(err, WireError::NotJson(_)),
                "{}: {err}",
                String::from_utf8_lossy(bytes)
            );
            assert!(err.to_string().starts_with("not json: "), "{err}");
        }
    }

    #[test]
    fn what_is_not_an_object_is_refused() {
        for bytes in [
            &b"[]"[..],
            b"[{\"v\":1}]",
            b"\"event\"",
            b"1",
            b"null",
            b"true",
        ] {
            let err = decode(bytes).unwrap_err();
            assert!(
                matches!(err, WireError::NotObject),
                "{}: {err}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(WireError::NotObject.to_string(), "not a json object");
    }

    #[test]
    fn a_wrong_type_names_the_field_and_not_the_value() {
        for (field, extra) in [
            ("received_at", r#","received_at":"secret-1""#),
            ("labels", r#","labels":[["secret-1","a","b"]]"#),
            ("labels", r#","labels":{"secret-1":"a"}"#),
            ("links", r#","links":[{"text":"secret-1"}]"#),
            ("images", r#","images":[{"src":"secret-1","alt":7}]"#),
            ("ends_at", r#","ends_at":-1"#),
            ("timestamp", r#","timestamp":1.5"#),
            ("component", r#","component":["secret-1"]"#),
        ] {
            let record = if field == "received_at" {
                minimal("1", "").replace(r#""received_at":5"#, &extra[1..])
            } else {
                minimal("1", extra)
            };
            let err = decode(record.as_bytes()).unwrap_err();
            assert!(
                matches!(err, WireError::Invalid { field: f, .. } if f == field),
                "{record}: {err}"
            );
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        let err = decode(br#"{"v":"1"}"#).unwrap_err();
        assert!(
            matches!(err, WireError::Invalid { field: "v", .. }),
            "{err}"
        );
        assert_eq!(
            WireError::Invalid {
                field: Slot::ReceivedAt.name(),
                expected: Slot::ReceivedAt.expected()
            }
            .to_string(),
            "field received_at: expected an integer of unix milliseconds"
        );
    }

    #[test]
    fn deep_nesting_is_read_or_refused_without_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // Details and unknown fields are skipped over, not recursed into.
        let record = minimal("1", &format!(r#","custom_details":{deep},"later":{deep}"#));
        let Record::Event(e) = decode(record.as_bytes()).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.custom_details.unwrap().0.get(), deep);
        // Typed fields stop at serde_json's recursion limit.
        let record = minimal("1", &format!(r#","labels":{deep}"#));
        assert!(decode(record.as_bytes()).is_err());
    }

    #[test]
    fn a_field_twice_is_refused() {
        let err = decode(minimal("1", r#","dedup_key":"other""#).as_bytes()).unwrap_err();
        assert!(matches!(err, WireError::Duplicate("dedup_key")), "{err}");
        assert_eq!(err.to_string(), "field dedup_key appears twice");
        // Unknown fields may repeat: they are not read.
        assert!(decode(minimal("1", r#","x":1,"x":2"#).as_bytes()).is_ok());
    }

    #[test]
    fn every_field_name_parses_back() {
        for slot in Slot::KNOWN {
            assert_eq!(Slot::parse(slot.name()), slot);
            assert!(!slot.expected().is_empty());
        }
        assert_eq!(Slot::parse("labels.team"), Slot::Other);
    }

    // ---- properties ----

    /// Plain names, JSON's awkward characters (quotes, backslashes, control characters, line
    /// separators, astral plane), and anything at all.
    fn text() -> impl Strategy<Value = String> {
        let awkward = prop::collection::vec(
            prop::sample::select(vec![
                'a', ' ', '"', '\\', '/', '\n', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '日', '😀',
                '\u{2028}', '\u{feff}',
            ]),
            0..8,
        )
        .prop_map(String::from_iter);
        prop_oneof!["[a-z0-9._-]{0,10}", awkward, any::<String>(),]
    }

    fn custom_details() -> impl Strategy<Value = Details> {
        let value = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            text().prop_map(serde_json::Value::from),
            prop::collection::vec(text(), 0..3).prop_map(serde_json::Value::from),
            prop::collection::btree_map(text(), any::<i32>(), 0..3)
                .prop_map(|m| serde_json::to_value(m).unwrap()),
        ];
        prop::collection::btree_map(text(), value, 0..4)
            .prop_map(|m| Details(to_raw_value(&m).unwrap()))
    }

    fn links() -> impl Strategy<Value = Vec<Link>> {
        prop::collection::vec(
            (text(), prop::option::of(text())).prop_map(|(href, text)| Link { href, text }),
            0..3,
        )
    }

    fn images() -> impl Strategy<Value = Vec<Image>> {
        prop::collection::vec(
            (text(), prop::option::of(text()), prop::option::of(text()))
                .prop_map(|(src, href, alt)| Image { src, href, alt }),
            0..3,
        )
    }

    fn millis() -> impl Strategy<Value = UnixMillis> {
        prop_oneof![
            any::<u64>(),
            1_600_000_000_000u64..1_900_000_000_000,
            Just(0),
        ]
        .prop_map(UnixMillis)
    }

    fn event() -> impl Strategy<Value = Event> {
        let identity = (
            prop::sample::select(Integration::ALL.to_vec()),
            prop::bool::weighted(0.2),
            prop::sample::select(vec![Action::Trigger, Action::Acknowledge, Action::Resolve]),
            prop::sample::select(vec![
                Severity::Info,
                Severity::Warning,
                Severity::Error,
                Severity::Critical,
            ]),
            text(),
            text(),
            millis(),
        );
        let body = (
            text(),
            text(),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::collection::vec((text(), text()), 0..4),
            prop::option::of(custom_details()),
            prop::option::of(millis()),
            prop::option::of(millis()),
            links(),
            images(),
        );
        (identity, body).prop_map(
            |(
                (integration, metric, action, severity, routing_key, dedup_key, received_at),
                (
                    summary,
                    source,
                    component,
                    group,
                    class,
                    labels,
                    details,
                    timestamp,
                    ends_at,
                    links,
                    images,
                ),
            )| {
                let mut e = Event::new(integration, action, routing_key, dedup_key, received_at);
                if metric {
                    e.key_space = KeySpace::SENTRY_METRIC_ALERTS;
                }
                e.severity = severity;
                e.summary = summary;
                e.source = source;
                e.component = component;
                e.group = group;
                e.class = class;
                e.labels = labels;
                e.custom_details = details;
                e.timestamp = timestamp;
                e.ends_at = ends_at;
                e.links = links;
                e.images = images;
                e
            },
        )
    }

    fn change() -> impl Strategy<Value = ChangeEvent> {
        (
            (
                text(),
                prop::sample::select(Integration::ALL.to_vec()),
                text(),
                prop::option::of(text()),
            ),
            (
                prop::option::of(custom_details()),
                prop::option::of(millis()),
                millis(),
                links(),
                images(),
            ),
        )
            .prop_map(
                |(
                    (routing_key, integration, summary, source),
                    (custom_details, timestamp, received_at, links, images),
                )| ChangeEvent {
                    routing_key,
                    integration,
                    summary,
                    source,
                    custom_details,
                    timestamp,
                    received_at,
                    links,
                    images,
                },
            )
    }

    fn record() -> impl Strategy<Value = Record> {
        prop_oneof![
            4 => event().prop_map(Record::Event),
            2 => change().prop_map(Record::Change),
            1 => millis().prop_map(|at| Record::Watermark { at }),
        ]
    }

    proptest! {
        #[test]
        fn every_record_round_trips(record in record()) {
            let mut out = b"prefix".to_vec();
            encode(&record, &mut out);
            prop_assert!(out.starts_with(b"prefix"));
            let bytes = &out[6..];
            // One line per record in a dump.
            prop_assert!(!bytes.contains(&b'\n'));
            prop_assert_eq!(decode(bytes).unwrap(), record.clone());
            if let Record::Event(event) = &record {
                let mut direct = Vec::new();
                encode_event(event, &mut direct);
                prop_assert_eq!(&direct[..], bytes);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        /// Every cut of a record is refused; one byte changed anywhere is decoded or refused,
        /// never a panic.
        #[test]
        fn damaged_records_never_panic(
            record in record(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut out = Vec::new();
            encode(&record, &mut out);
            for cut in 0..out.len() {
                prop_assert!(decode(&out[..cut]).is_err());
            }
            let i = at.index(out.len());
            out[i] = byte;
            let _ = decode(&out);
        }
    }
}
