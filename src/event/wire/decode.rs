//! Reading wire records: the JSON is read once into the raw text of each field this version
//! knows, then the version is checked, then each field the record's type uses is converted
//! on its own, so that an error names the field and never quotes it.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::{Origin, Record, WireError, SENTRY_METRIC_ALERTS, VERSION};
use crate::event::{
    Action, ChangeEvent, Command, CommandAction, Details, Event, Image, Link, Severity,
};
use crate::integration::{Integration, KeySpace};
use crate::time::UnixMillis;

/// How much of an unknown name an error repeats.
const MAX_NAME_CHARS: usize = 64;

/// Reads one record: the whole of `bytes` is one JSON object.
pub fn decode(bytes: &[u8]) -> Result<Record, WireError> {
    // Checked first because serde would also read a JSON array as the fields in order.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(match serde_json::from_slice::<&RawValue>(bytes) {
            Ok(_) => WireError::NotObject,
            Err(e) => WireError::NotJson(e),
        });
    }
    // Every field is raw JSON here, so the only error that is not broken JSON is a field twice.
    let fields: Fields = serde_json::from_slice(bytes).map_err(|e| match duplicate(&e) {
        // A later version's record may repeat a field this one knows: say the version.
        Some(field) => match declared_version(bytes).filter(|&v| !readable(v)) {
            Some(v) => WireError::UnsupportedVersion(v),
            None => WireError::Duplicate(field.name()),
        },
        None => WireError::NotJson(e),
    })?;
    fields.into_record()
}

/// A known field's value, as it is in the record; absent or `null` is `None`.
type Raw<'a> = Option<&'a RawValue>;

/// Every field a record may carry, unconverted; which are required depends on `type`. A known
/// field that the record's type does not use is only read as JSON (and may not repeat); other
/// names are skipped unread, and may repeat.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    v: Raw<'a>,
    #[serde(rename = "type")]
    kind: Raw<'a>,
    routing_key: Raw<'a>,
    integration: Raw<'a>,
    key_space: Raw<'a>,
    action: Raw<'a>,
    dedup_key: Raw<'a>,
    severity: Raw<'a>,
    summary: Raw<'a>,
    source: Raw<'a>,
    component: Raw<'a>,
    group: Raw<'a>,
    class: Raw<'a>,
    labels: Raw<'a>,
    #[serde(default, deserialize_with = "verbatim")]
    custom_details: Raw<'a>,
    timestamp: Raw<'a>,
    received_at: Raw<'a>,
    ends_at: Raw<'a>,
    links: Raw<'a>,
    images: Raw<'a>,
    at: Raw<'a>,
    rules: Raw<'a>,
    routed: Raw<'a>,
    incident_id: Raw<'a>,
    by: Raw<'a>,
    reason: Raw<'a>,
    until: Raw<'a>,
}

/// `custom_details` is kept as written, `null` included: whatever JSON the details were is
/// what they are.
fn verbatim<'a, D: Deserializer<'a>>(d: D) -> Result<Raw<'a>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl<'a> Fields<'a> {
    fn into_record(self) -> Result<Record, WireError> {
        // Before any other field, whose shape may be the later version's.
        let v = required(self.v, Slot::V)?;
        if !readable(v) {
            return Err(WireError::UnsupportedVersion(v));
        }
        let Name(kind) = required(self.kind, Slot::Type)?;
        match &*kind {
            "event" => match optional::<Origin>(self.routed, Slot::Routed)? {
                None => self.into_event().map(Record::Event),
                Some(origin) => self
                    .into_event()
                    .map(|event| Record::Routed { event, origin }),
            },
            "change" => self.into_change().map(Record::Change),
            "command" => self.into_command().map(Record::Command),
            "watermark" => Ok(Record::Watermark {
                at: UnixMillis(required(self.at, Slot::At)?),
                rules: optional(self.rules, Slot::Rules)?,
            }),
            other => Err(WireError::UnknownType(shown(other))),
        }
    }

    fn into_event(self) -> Result<Event, WireError> {
        let routing_key = required(self.routing_key, Slot::RoutingKey)?;
        let integration = named(self.integration, Slot::Integration, Integration::parse)?;
        let key_space = match self.key_space {
            None => integration.key_space(),
            some => named(some, Slot::KeySpace, key_space_named)?,
        };
        Ok(Event {
            routing_key,
            integration,
            key_space,
            action: named(self.action, Slot::Action, Action::parse)?,
            dedup_key: required(self.dedup_key, Slot::DedupKey)?,
            severity: named(self.severity, Slot::Severity, severity_named)?,
            summary: optional(self.summary, Slot::Summary)?.unwrap_or_default(),
            source: optional(self.source, Slot::Source)?.unwrap_or_default(),
            component: optional(self.component, Slot::Component)?,
            group: optional(self.group, Slot::Group)?,
            class: optional(self.class, Slot::Class)?,
            labels: optional(self.labels, Slot::Labels)?.unwrap_or_default(),
            custom_details: details(self.custom_details),
            timestamp: optional(self.timestamp, Slot::Timestamp)?.map(UnixMillis),
            received_at: UnixMillis(required(self.received_at, Slot::ReceivedAt)?),
            ends_at: optional(self.ends_at, Slot::EndsAt)?.map(UnixMillis),
            links: links(self.links)?,
            images: images(self.images)?,
        })
    }

    fn into_command(self) -> Result<Command, WireError> {
        let Name(action) = required(self.action, Slot::Action)?;
        let action = match &*action {
            "acknowledge" => CommandAction::Acknowledge,
            "resolve" => CommandAction::Resolve,
            "snooze" => CommandAction::Snooze {
                until: UnixMillis(required(self.until, Slot::Until)?),
            },
            other => {
                return Err(WireError::Unknown {
                    field: Slot::Action.name(),
                    value: shown(other),
                })
            }
        };
        Ok(Command {
            routing_key: required(self.routing_key, Slot::RoutingKey)?,
            incident_id: required(self.incident_id, Slot::IncidentId)?,
            action,
            by: required(self.by, Slot::By)?,
            reason: optional(self.reason, Slot::Reason)?,
            received_at: UnixMillis(required(self.received_at, Slot::ReceivedAt)?),
        })
    }

    fn into_change(self) -> Result<ChangeEvent, WireError> {
        Ok(ChangeEvent {
            routing_key: required(self.routing_key, Slot::RoutingKey)?,
            integration: named(self.integration, Slot::Integration, Integration::parse)?,
            summary: required(self.summary, Slot::Summary)?,
            source: optional(self.source, Slot::Source)?,
            custom_details: details(self.custom_details),
            timestamp: optional(self.timestamp, Slot::Timestamp)?.map(UnixMillis),
            received_at: UnixMillis(required(self.received_at, Slot::ReceivedAt)?),
            links: links(self.links)?,
            images: images(self.images)?,
        })
    }
}

/// A field converted to `T`, or which field is not a `T`.
fn optional<'a, T: Deserialize<'a>>(raw: Raw<'a>, slot: Slot) -> Result<Option<T>, WireError> {
    raw.map(|raw| serde_json::from_str(raw.get()).map_err(|_| slot.invalid()))
        .transpose()
}

fn required<'a, T: Deserialize<'a>>(raw: Raw<'a>, slot: Slot) -> Result<T, WireError> {
    optional(raw, slot)?.ok_or(WireError::Missing(slot.name()))
}

/// A required field that holds one of the names `parse` knows.
fn named<T>(raw: Raw<'_>, slot: Slot, parse: fn(&str) -> Option<T>) -> Result<T, WireError> {
    let Name(name) = required(raw, slot)?;
    parse(&name).ok_or_else(|| WireError::Unknown {
        field: slot.name(),
        value: shown(&name),
    })
}

/// A name that is only compared: borrowed from the record unless it has escapes.
#[derive(Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

/// An unknown name as an error repeats it: its first [`MAX_NAME_CHARS`] characters.
fn shown(name: &str) -> String {
    name.chars().take(MAX_NAME_CHARS).collect()
}

fn readable(v: u64) -> bool {
    (1..=VERSION).contains(&v)
}

/// `v` alone, for a record refused before `v` was converted.
fn declared_version(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Head {
        v: Option<u64>,
    }
    serde_json::from_slice::<Head>(bytes).ok()?.v
}

/// The field serde found twice: its error is "duplicate field `name`" and carries no more.
fn duplicate(e: &serde_json::Error) -> Option<Slot> {
    if e.classify() != Category::Data {
        return None;
    }
    let message = e.to_string();
    let name = message
        .strip_prefix("duplicate field `")?
        .split('`')
        .next()?;
    Some(Slot::parse(name)).filter(|&slot| slot != Slot::Other)
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

fn details(raw: Raw<'_>) -> Option<Details> {
    raw.map(|raw| Details(raw.to_owned()))
}

/// Links and images are read by the wire's own shapes, like they are written.
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

fn links(raw: Raw<'_>) -> Result<Vec<Link>, WireError> {
    let links: Vec<LinkIn> = optional(raw, Slot::Links)?.unwrap_or_default();
    Ok(links
        .into_iter()
        .map(|LinkIn { href, text }| Link {
            href,
            text: text.map(Into::into),
        })
        .collect())
}

fn images(raw: Raw<'_>) -> Result<Vec<Image>, WireError> {
    let images: Vec<ImageIn> = optional(raw, Slot::Images)?.unwrap_or_default();
    Ok(images
        .into_iter()
        .map(|ImageIn { src, href, alt }| Image { src, href, alt })
        .collect())
}

/// The fields this version knows, by the names and shapes errors give them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
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
    Rules,
    Routed,
    IncidentId,
    By,
    Reason,
    Until,
    /// A name this version does not know.
    Other,
}

const STRING: &str = "a string";
const MILLIS: &str = "an integer of unix milliseconds";

impl Slot {
    pub(super) const KNOWN: [Slot; 27] = [
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
        Slot::Rules,
        Slot::Routed,
        Slot::IncidentId,
        Slot::By,
        Slot::Reason,
        Slot::Until,
    ];

    pub(super) fn parse(name: &str) -> Slot {
        Slot::KNOWN
            .into_iter()
            .find(|slot| slot.name() == name)
            .unwrap_or(Slot::Other)
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
            Slot::Rules => ("rules", STRING),
            Slot::Routed => (
                "routed",
                "an object with integers partition, offset, index and floor",
            ),
            Slot::IncidentId => ("incident_id", STRING),
            Slot::By => ("by", STRING),
            Slot::Reason => ("reason", STRING),
            Slot::Until => ("until", MILLIS),
            Slot::Other => ("", ""),
        }
    }

    pub(super) fn name(self) -> &'static str {
        self.describe().0
    }

    pub(super) fn expected(self) -> &'static str {
        self.describe().1
    }

    fn invalid(self) -> WireError {
        WireError::Invalid {
            field: self.name(),
            expected: self.expected(),
        }
    }
}
