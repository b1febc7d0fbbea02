//! PagerDuty Events API, emulated exactly, so an existing integration switches to sluice by
//! changing one URL.
//!
//! - v2 alert events, `POST /v2/enqueue`: `trigger` / `acknowledge` / `resolve`. The dedup key is
//!   the sender's `dedup_key`; a trigger without one gets a key derived from its identifying
//!   fields (xxh3-128 over routing key, source, component, group, class and summary, 32 hex
//!   digits), returned in the response, so a retried trigger deduplicates instead of opening a
//!   second alert. Resolve is explicit (`event_action: resolve`).
//! - v2 change events, `POST /v2/change/enqueue`: published as `change` messages, never grouped.
//! - v1, `POST /generic/2010-04-15/create_event.json`: `service_key`, `event_type`,
//!   `incident_key`, `description`, `details`, `contexts`; no severity field, so triggers take
//!   the v1 default severity (`error`, or `[integrations.pagerduty_v1] default_severity`).
//!
//! One deliberate difference: a summary over 1024 characters is truncated at a character
//! boundary and counted instead of rejected (PagerDuty's 400 loses pages).

use crate::event::{
    fingerprint, truncate_chars, Action, ChangeEvent, Details, Event, Image, Link, Severity,
    MAX_DEDUP_KEY_CHARS, MAX_SUMMARY_CHARS,
};
use crate::ingest::response::{self, Body};
use crate::integration::Integration;
use crate::time::UnixMillis;

use super::fields::Reader;
use super::json::{with_tape, Json, JsonError, TapeValue};
use super::{Format, IngestRequest, IntegrationError};

use crate::integration::MAX_ROUTING_KEY_CHARS;
/// v1 events carry no severity; [`V1`] replaces it with the configured default.
pub const V1_DEFAULT_SEVERITY: Severity = Severity::Error;

/// Why a PagerDuty body was refused; each maps to PagerDuty's own 400 body.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PdError {
    /// Not JSON, or JSON but not an object: `"status": "Unrecognized object"`.
    #[error("event object format is unrecognized: {0}")]
    Unrecognized(&'static str),
    /// Every invalid field: `"status": "invalid event"`.
    #[error("event object is invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// A parsed event and whether its summary was cut.
#[derive(Debug)]
pub struct OneEvent<T> {
    pub event: T,
    pub summary_truncated: bool,
}

/// Parses `body` onto this thread's tape and reads its root object with `read`.
fn with_object<'b, T>(
    body: &'b mut [u8],
    read: impl FnOnce(TapeValue<'_, 'b>) -> Result<T, PdError>,
) -> Result<T, PdError> {
    let read = |root: TapeValue<'_, 'b>| match root.object() {
        true => read(root),
        false => Err(PdError::Unrecognized("JSON is not an object")),
    };
    with_tape(body, read).map_err(|e| match e {
        JsonError::Syntax(_) => PdError::Unrecognized("JSON parse error"),
        JsonError::RepeatedKey(path) => {
            PdError::Invalid(vec![format!("'{path}' appears more than once")])
        }
    })?
}

fn finish<T>(errors: Vec<String>, build: impl FnOnce() -> T) -> Result<T, PdError> {
    if errors.is_empty() {
        Ok(build())
    } else {
        Err(PdError::Invalid(errors))
    }
}

/// The key a trigger without one gets: stable across retries of the same alert.
pub fn derived_dedup_key(routing_key: &str, fields: [&str; 5]) -> String {
    let [source, component, group, class, summary] = fields;
    format!(
        "{:032x}",
        fingerprint(&[
            routing_key.as_bytes(),
            source.as_bytes(),
            component.as_bytes(),
            group.as_bytes(),
            class.as_bytes(),
            summary.as_bytes(),
        ])
    )
}

fn summary(raw: Option<&str>) -> (String, bool) {
    let mut s = raw.unwrap_or_default().to_string();
    let cut = truncate_chars(&mut s, MAX_SUMMARY_CHARS);
    (s, cut)
}

/// A trigger's custom details, links (the sender's, then its `client_url` named by `client`)
/// and images, as v1 and v2 events carry them.
fn attach(
    event: &mut Event,
    custom_details: Option<Details>,
    links: Vec<Link>,
    [client, client_url]: [Option<&str>; 2],
    images: Vec<Image>,
) {
    event.custom_details = custom_details;
    event.links = links;
    event.links.extend(client_url.map(|href| Link {
        href: href.to_string(),
        text: client.map(|c| c.to_string().into()),
    }));
    event.images = images;
}

/// The routing key, action and dedup key of a v1 or v2 event, under their names in that
/// version (`[routing key, action, dedup key]`): the key is optional on triggers only.
fn identity<'v, V: Json<'v>>(
    r: &mut Reader<'v, '_, V>,
    [rk, act, dk]: [&str; 3],
) -> (Option<&'v str>, Option<Action>, Option<&'v str>) {
    let routing_key = r.req_str(rk);
    let routing_key = r.bounded(routing_key, rk, MAX_ROUTING_KEY_CHARS);
    let action = r.req_str(act).and_then(|a| {
        Action::parse(a).or_else(|| {
            r.errors.push(format!(
                "'{act}' must be one of trigger, acknowledge, resolve"
            ));
            None
        })
    });
    let before = r.errors.len();
    let key = r.opt_str(dk).filter(|k| !k.is_empty());
    let key = r.bounded(key, dk, MAX_DEDUP_KEY_CHARS);
    let key_said = r.errors.len() > before;
    if matches!(action, Some(Action::Acknowledge | Action::Resolve)) && key.is_none() && !key_said {
        r.errors.push(format!(
            "'{dk}' is required for acknowledge and resolve events"
        ));
    }
    (routing_key, action, key)
}

/// Parses a v2 alert event (`/v2/enqueue`).
pub fn parse_v2(body: &mut [u8], now: UnixMillis) -> Result<OneEvent<Event>, PdError> {
    with_object(body, |root| {
        let mut errors = Vec::new();
        let mut r = Reader::new(Some(root), "", &mut errors);

        let (routing_key, action, dedup_key) =
            identity(&mut r, ["routing_key", "event_action", "dedup_key"]);
        let links = r.links("links");
        let images = r.images("images");
        let client = r.opt_str("client");
        let client_url = r.opt_str("client_url");

        let is_trigger = action == Some(Action::Trigger);
        let payload = if is_trigger {
            r.req_object("payload")
        } else {
            None
        };
        let mut p = r.child(payload, "payload");
        let (summary_raw, source, severity_raw) = if payload.is_some() {
            (
                p.req_str("summary"),
                p.req_str("source"),
                p.req_str("severity"),
            )
        } else {
            (None, None, None)
        };
        let severity = severity_raw.and_then(|s| {
            Severity::parse(s).or_else(|| {
                p.errors.push(format!(
                    "'payload.severity' must be one of {}",
                    Severity::NAMES
                ));
                None
            })
        });
        let timestamp = p.timestamp("timestamp");
        let component = p.opt_str("component");
        let group = p.opt_str("group");
        let class = p.opt_str("class");
        let custom_details = p.details("custom_details");

        finish(errors, || {
            let routing_key = routing_key.expect("validated").to_string();
            let action = action.expect("validated");
            let (summary, summary_truncated) = summary(summary_raw);
            let source = source.unwrap_or_default().to_string();
            let dedup_key = match dedup_key {
                Some(k) => k.to_string(),
                None => derived_dedup_key(
                    &routing_key,
                    [
                        &source,
                        component.unwrap_or(""),
                        group.unwrap_or(""),
                        class.unwrap_or(""),
                        &summary,
                    ],
                ),
            };
            let mut event = Event::new(Integration::PagerDuty, action, routing_key, dedup_key, now);
            if is_trigger {
                event.summary = summary;
                event.source = source;
                event.severity = severity.expect("validated");
                event.component = component.map(str::to_string);
                event.group = group.map(str::to_string);
                event.class = class.map(str::to_string);
                event.timestamp = timestamp;
                attach(
                    &mut event,
                    custom_details,
                    links,
                    [client, client_url],
                    images,
                );
            }
            OneEvent {
                event,
                summary_truncated,
            }
        })
    })
}

/// Parses a v2 change event (`/v2/change/enqueue`).
pub fn parse_change(body: &mut [u8], now: UnixMillis) -> Result<OneEvent<ChangeEvent>, PdError> {
    with_object(body, |root| {
        let mut errors = Vec::new();
        let mut r = Reader::new(Some(root), "", &mut errors);
        let routing_key = r.req_str("routing_key");
        let routing_key = r.bounded(routing_key, "routing_key", MAX_ROUTING_KEY_CHARS);
        let links = r.links("links");
        let images = r.images("images");
        let payload = r.req_object("payload");
        let mut p = r.child(payload, "payload");
        let summary_raw = if payload.is_some() {
            p.req_str("summary")
        } else {
            None
        };
        let source = p.opt_str("source");
        let timestamp = p.timestamp("timestamp");
        let custom_details = p.details("custom_details");
        finish(errors, || {
            let (summary, summary_truncated) = summary(summary_raw);
            OneEvent {
                event: ChangeEvent {
                    routing_key: routing_key.expect("validated").to_string(),
                    integration: Integration::PagerDuty,
                    summary,
                    source: source.map(str::to_string),
                    custom_details,
                    timestamp,
                    received_at: now,
                    links,
                    images,
                },
                summary_truncated,
            }
        })
    })
}

/// Parses a v1 event (`/generic/2010-04-15/create_event.json`).
pub fn parse_v1(body: &mut [u8], now: UnixMillis) -> Result<OneEvent<Event>, PdError> {
    with_object(body, |root| {
        let mut errors = Vec::new();
        let mut r = Reader::new(Some(root), "", &mut errors);
        let (routing_key, action, incident_key) =
            identity(&mut r, ["service_key", "event_type", "incident_key"]);
        let is_trigger = action == Some(Action::Trigger);
        let description = if is_trigger {
            r.req_str("description")
        } else {
            r.opt_str("description")
        };
        let custom_details = r.details("details");
        let client = r.opt_str("client");
        let client_url = r.opt_str("client_url");
        let mut links = Vec::new();
        let mut images = Vec::new();
        r.for_each_object("contexts", |c| match c.req_str("type") {
            Some("link") => {
                if let (Some(href), text) = (c.req_str("href"), c.opt_str("text")) {
                    links.push(Link {
                        href: href.into(),
                        text: text.map(|t| t.to_string().into()),
                    });
                }
            }
            Some("image") => images.extend(c.image()),
            Some(_) => {
                let at = c.path;
                c.errors.push(format!("'{at}.type' must be link or image"));
            }
            None => {}
        });
        finish(errors, || {
            let routing_key = routing_key.expect("validated").to_string();
            let action = action.expect("validated");
            let (summary, summary_truncated) = summary(description);
            let dedup_key = match incident_key {
                Some(k) => k.to_string(),
                None => derived_dedup_key(&routing_key, ["", "", "", "", &summary]),
            };
            let mut event = Event::new(
                Integration::PagerDutyV1,
                action,
                routing_key,
                dedup_key,
                now,
            );
            if is_trigger {
                event.summary = summary;
                event.severity = V1_DEFAULT_SEVERITY;
                attach(
                    &mut event,
                    custom_details,
                    links,
                    [client, client_url],
                    images,
                );
            }
            OneEvent {
                event,
                summary_truncated,
            }
        })
    })
}

/// Events API v2 alert events in the integrations registry (`POST /v2/enqueue`).
pub struct V2;

/// Events API v1 in the integrations registry (`POST /generic/2010-04-15/create_event.json`).
/// Triggers take `[integrations.pagerduty_v1] default_severity` (`error` unless configured).
pub struct V1;

impl PdError {
    /// The registry's view of this error, for `kind`.
    pub fn into_integration_error(self, kind: Integration) -> IntegrationError {
        match self {
            PdError::Unrecognized(what) => IntegrationError::Malformed { kind, what },
            PdError::Invalid(problems) => IntegrationError::Invalid { kind, problems },
        }
    }
}

fn one(
    kind: Integration,
    parsed: Result<OneEvent<Event>, PdError>,
) -> Result<super::Parsed, IntegrationError> {
    let p = parsed.map_err(|e| e.into_integration_error(kind))?;
    Ok(super::Parsed::one(p.event, p.summary_truncated))
}

fn dedup_key(parsed: &super::Parsed) -> &str {
    parsed.events.first().map_or("", |e| e.dedup_key.as_str())
}

/// PagerDuty's own refusal bodies: `Unrecognized object` or `invalid event` with `errors`.
pub fn refused(err: &IntegrationError) -> http::Response<Body> {
    match err {
        IntegrationError::Malformed { what, .. } => response::pd_unrecognized(what),
        IntegrationError::Invalid { problems, .. } => response::pd_invalid(problems),
        IntegrationError::AllRejected { items, .. } => {
            let errors: Vec<String> = items.iter().flat_map(|r| r.errors.clone()).collect();
            response::pd_invalid(&errors)
        }
    }
}

impl Format for V2 {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<super::Parsed, IntegrationError> {
        one(Integration::PagerDuty, parse_v2(body, req.now))
    }

    fn accepted(parsed: &super::Parsed, _: Integration) -> http::Response<Body> {
        response::pd_accepted(dedup_key(parsed))
    }

    fn refused(err: &IntegrationError) -> http::Response<Body> {
        refused(err)
    }

    /// The Events API v2 answers 429 (its clients retry it).
    fn throttled(retry_after_secs: u32, _: &str) -> http::Response<Body> {
        response::pd_throttled(http::StatusCode::TOO_MANY_REQUESTS, retry_after_secs)
    }
}

impl Format for V1 {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<super::Parsed, IntegrationError> {
        let mut parsed = one(Integration::PagerDutyV1, parse_v1(body, req.now))?;
        for e in &mut parsed.events {
            if e.action == Action::Trigger {
                e.severity = req.settings.default_severity;
            }
        }
        Ok(parsed)
    }

    fn accepted(parsed: &super::Parsed, _: Integration) -> http::Response<Body> {
        response::pd_v1_accepted(dedup_key(parsed))
    }

    fn refused(err: &IntegrationError) -> http::Response<Body> {
        refused(err)
    }

    /// The 2010-04-15 Events API answers 403 to a sender over its rate limit (its spec: "Too
    /// many API calls at a time", retry after some time).
    fn throttled(retry_after_secs: u32, _: &str) -> http::Response<Body> {
        response::pd_throttled(http::StatusCode::FORBIDDEN, retry_after_secs)
    }
}

#[cfg(test)]
mod tests;
