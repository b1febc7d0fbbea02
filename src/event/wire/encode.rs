//! Writing wire records: each record type's JSON shape, fields in the documented order.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::{Origin, Record, SENTRY_METRIC_ALERTS, VERSION};
use crate::event::{Action, ChangeEvent, Command, CommandAction, Event, Image, LabelBuf, Link};
use crate::integration::KeySpace;
use crate::time::UnixMillis;

/// Appends `record` to `out` as one JSON object (no newline).
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Event(event) => encode_event(event, out),
        Record::Routed { event, origin } => encode_routed(event, *origin, out),
        Record::Change(change) => encode_change(change, out),
        Record::Watermark { at, rules } => encode_watermark(*at, rules.as_deref(), out),
        Record::Command(command) => encode_command(command, out),
    }
}

/// Appends a command record to `out`.
pub fn encode_command(command: &Command, out: &mut Vec<u8>) {
    let until = match command.action {
        CommandAction::Snooze { until } => Some(until.0),
        _ => None,
    };
    write(
        out,
        &CommandOut {
            v: VERSION,
            kind: "command",
            routing_key: &command.routing_key,
            incident_id: &command.incident_id,
            action: command.action.as_str(),
            until,
            by: &command.by,
            reason: command.reason.as_deref(),
            received_at: command.received_at.0,
        },
    );
}

/// Appends an event record to `out`, borrowing the event (ingest has an [`Event`], not a
/// [`Record`]).
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    write_event(event, None, out);
}

/// Appends a routed event record to `out`: `event` as the event rules re-routed it, from
/// `origin` in the events topic.
pub fn encode_routed(event: &Event, origin: Origin, out: &mut Vec<u8>) {
    write_event(event, Some(origin), out);
}

fn write_event(event: &Event, routed: Option<Origin>, out: &mut Vec<u8>) {
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
            routed,
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
pub fn encode_watermark(at: UnixMillis, rules: Option<&str>, out: &mut Vec<u8>) {
    write(
        out,
        &WatermarkOut {
            v: VERSION,
            kind: "watermark",
            at: at.0,
            rules,
        },
    );
}

fn write<T: Serialize>(out: &mut Vec<u8>, record: &T) {
    // Strings, integers and already-valid JSON into a Vec: nothing here can fail.
    serde_json::to_writer(out, record).expect("wire records always serialize");
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Trigger => "trigger",
        Action::Acknowledge => "acknowledge",
        Action::Resolve => "resolve",
    }
}

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
    #[serde(skip_serializing_if = "LabelBuf::is_empty")]
    labels: &'a LabelBuf,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    routed: Option<Origin>,
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
struct CommandOut<'a> {
    v: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    routing_key: &'a str,
    incident_id: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<u64>,
    by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    received_at: u64,
}

#[derive(Serialize)]
struct WatermarkOut<'a> {
    v: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<&'a str>,
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
