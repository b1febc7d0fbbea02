//! Parsers from each sender's own payload into [`crate::event::Event`]s.
//!
//! One integration = one file here, opening with a `//!` header (vendor, payload versions, how
//! resolve is signalled, where the dedup key comes from), one `pub mod` line below, ONE line in
//! the registry (`crate::integration`) and one fixture folder
//! `tests/fixtures/integrations/<kind>/` (see `golden.rs`). The registry line generates the
//! [`Integration`] variant and, expanded here, adds the kind to the `match`es below; there is
//! no `Box<dyn>` on the hot path.
//!
//! A format implements [`Format`]: [`Format::parse`] turns one request body into a [`Parsed`]
//! (events plus, for batches, the items it rejected) or an [`IntegrationError`] that names the
//! format and the field; [`Format::accepted`] and [`Format::refused`] build the answer its
//! sender expects. Where each kind is served comes from the registry's `Serving`
//! (`/integrations/<kind>/<routing_key>` is `endpoint.rs`).

pub mod alertmanager_api;
pub mod alertmanager_webhook;
pub mod azure_monitor;
pub mod cases;
pub mod catalog;
pub mod check;
pub mod checkmk;
pub mod cloudwatch_sns;
pub mod datadog;
pub mod dynatrace;
pub mod elastic;
pub mod endpoint;
pub mod fields;
pub mod gcp_monitoring;
pub mod generic;
pub mod grafana;
pub mod heartbeat;
pub mod json;
pub mod nagios;
pub mod newrelic_legacy;
pub mod newrelic_workflow;
pub mod opsgenie;
pub mod pagerduty;
pub mod pingdom;
pub mod prometheus;
pub mod reply;
pub mod sentry;
pub mod settings;
pub mod splunk;
pub mod uptime_kuma;
pub mod zabbix;

#[doc(hidden)]
pub mod fixture;
#[cfg(test)]
mod golden;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod no_panic;
#[cfg(test)]
pub(crate) mod testing;

use http::{HeaderMap, Response, StatusCode};
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use json::Json;

use crate::config::{Problems, Unknown};
use crate::event::{truncate_chars, Action, Event, MAX_SUMMARY_CHARS};
use crate::integration::Integration;
use crate::time::UnixMillis;

use super::response::Body;

pub use settings::IntegrationSettings;

/// What a parser gets besides the body.
#[derive(Clone, Copy, Debug)]
pub struct IngestRequest<'a> {
    /// From the path, `X-Routing-Key`, `?routing_key=` or the integration's config, already
    /// validated. Empty for formats that carry it in the body (PagerDuty).
    pub routing_key: &'a str,
    pub headers: &'a HeaderMap,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The part of the path that belongs to the format, empty for most: the action of an
    /// Opsgenie call (`/<alias>/close`), the mapper of a generic request (`<name>`).
    pub path: &'a str,
    /// The gateway's clock at arrival: every event's `received_at`.
    pub now: UnixMillis,
    pub settings: &'a IntegrationSettings,
}

/// What a request produced: the events to queue, and the batch items that were refused
/// ("accept the good ones, say which were rejected").
#[derive(Debug, Default)]
pub struct Parsed {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejected>,
    /// Summaries cut to 1024 characters (counted, never refused).
    pub summaries_truncated: u64,
    /// An SNS subscription to confirm or log (CloudWatch via SNS only).
    pub subscription: Option<cloudwatch_sns::Subscription>,
    /// The success status a mapped sender expects (a definition's or mapper's `answer`), when
    /// it is not the format's usual one.
    pub answer: Option<StatusCode>,
}

impl Parsed {
    /// A request's one event, and whether its summary was cut.
    pub fn one(event: Event, truncated: bool) -> Self {
        Parsed {
            events: vec![event],
            rejected: Vec::new(),
            summaries_truncated: u64::from(truncated),
            subscription: None,
            answer: None,
        }
    }
}

/// One refused item of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Where the item is, as the sender wrote it: `alerts[2]`.
    pub item: String,
    /// Every problem, each naming its field: `'alerts[2].labels' must be an object`.
    pub errors: Vec<String>,
}

/// Why a request was refused as a whole. Every variant maps to a status ([`Self::status`])
/// and a metrics reason ([`Self::reason`]); the message names the format and the field.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntegrationError {
    /// Not the kind of body the format is (not JSON, not an object, ...).
    #[error("{}: {what}", .kind.as_str())]
    Malformed {
        kind: Integration,
        what: &'static str,
    },
    /// The request as a whole is invalid; every problem, each naming its field.
    #[error("{}: {}", .kind.as_str(), .problems.join("; "))]
    Invalid {
        kind: Integration,
        problems: Vec<String>,
    },
    /// A batch in which every item was refused.
    #[error("{}: every item was rejected: {}", .kind.as_str(), flatten(.items).join("; "))]
    AllRejected {
        kind: Integration,
        items: Vec<Rejected>,
    },
}

impl IntegrationError {
    /// The refusal of a body that is not JSON sluice reads: malformed, or a key given twice
    /// (named).
    pub fn from_json(kind: Integration, e: json::JsonError) -> Self {
        match e {
            json::JsonError::Syntax(_) => IntegrationError::Malformed {
                kind,
                what: "body is not valid JSON",
            },
            json::JsonError::RepeatedKey(path) => IntegrationError::Invalid {
                kind,
                problems: vec![format!("'{path}' appears more than once")],
            },
        }
    }

    pub fn kind(&self) -> Integration {
        match self {
            IntegrationError::Malformed { kind, .. }
            | IntegrationError::Invalid { kind, .. }
            | IntegrationError::AllRejected { kind, .. } => *kind,
        }
    }

    /// Every variant is the sender's fault and final: 400 (webhook senders do not retry 4xx).
    pub fn status(&self) -> StatusCode {
        match self {
            IntegrationError::Malformed { .. }
            | IntegrationError::Invalid { .. }
            | IntegrationError::AllRejected { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// The `reason` label of `sluice_events_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IntegrationError::Malformed { .. } => "malformed",
            IntegrationError::Invalid { .. } | IntegrationError::AllRejected { .. } => "invalid",
        }
    }

    /// How many events the refusal stands for (a refused batch counts each item).
    pub fn events_refused(&self) -> u64 {
        match self {
            IntegrationError::Malformed { .. } | IntegrationError::Invalid { .. } => 1,
            IntegrationError::AllRejected { items, .. } => items.len().max(1) as u64,
        }
    }

    /// Every problem, each prefixed with the format: `alertmanager_webhook: 'alerts' is missing`.
    pub fn messages(&self) -> Vec<String> {
        let name = self.kind().as_str();
        match self {
            IntegrationError::Malformed { what, .. } => vec![format!("{name}: {what}")],
            IntegrationError::Invalid { problems, .. } => {
                problems.iter().map(|p| format!("{name}: {p}")).collect()
            }
            IntegrationError::AllRejected { items, .. } => flatten(items)
                .into_iter()
                .map(|p| format!("{name}: {p}"))
                .collect(),
        }
    }
}

fn flatten(items: &[Rejected]) -> Vec<&str> {
    items
        .iter()
        .flat_map(|r| r.errors.iter().map(String::as_str))
        .collect()
}

/// One inbound format. Implemented by a unit type per format and dispatched by a `match`
/// generated from the registry (`crate::integration`).
pub trait Format {
    /// Reads the keys of `[integrations.<kind>]` (at `at`) that this format owns besides the
    /// common ones into `settings`, taking each out of `own`; what is left is reported as
    /// unknown. Most formats own none.
    fn own_settings(
        _own: &mut Unknown,
        _at: &str,
        _settings: &mut IntegrationSettings,
        _problems: &mut Problems,
    ) {
    }

    /// Parses one request body (the parser may reuse the buffer: simd-json parses in place).
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError>;

    /// The answer when the request's events are queued (default: `202` and the generic body).
    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::accepted(parsed.answer.unwrap_or(StatusCode::ACCEPTED), kind, parsed)
    }

    /// The answer when the request is refused (default: the generic error body).
    fn refused(err: &IntegrationError) -> Response<Body> {
        reply::refused(err)
    }

    /// The answer when the sender is over a rate limit, `message` saying which (default: 503
    /// with `Retry-After`, as senders of webhooks retry only 5xx).
    fn throttled(retry_after_secs: u32, message: &str) -> Response<Body> {
        crate::ingest::response::rate_limited(message, retry_after_secs)
    }
}

macro_rules! dispatch {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $format:path, $serving:expr; )*) => {
        /// Parses `body` as `kind`'s format, then applies the integration's settings that hold
        /// for every format (`resolve_timeout`).
        pub fn parse(
            kind: Integration,
            req: &IngestRequest<'_>,
            body: &mut [u8],
        ) -> Result<Parsed, IntegrationError> {
            let mut parsed = match kind {
                $( Integration::$variant => <$format as Format>::parse(req, body)?, )*
            };
            apply_settings(req, &mut parsed);
            Ok(parsed)
        }

        /// Hands `kind`'s own config keys to its format (see [`Format::own_settings`]).
        pub fn own_settings(
            kind: Integration,
            at: &str,
            own: &mut Unknown,
            settings: &mut IntegrationSettings,
            problems: &mut Problems,
        ) {
            match kind {
                $( Integration::$variant => <$format as Format>::own_settings(own, at, settings, problems), )*
            }
        }

        /// The answer `kind`'s sender expects when its request was queued.
        pub fn accepted(kind: Integration, parsed: &Parsed) -> Response<Body> {
            match kind {
                $( Integration::$variant => <$format as Format>::accepted(parsed, kind), )*
            }
        }

        /// The answer `err.kind()`'s sender expects when its request was refused.
        pub fn refused(err: &IntegrationError) -> Response<Body> {
            match err.kind() {
                $( Integration::$variant => <$format as Format>::refused(err), )*
            }
        }

        /// The answer `kind`'s sender expects when it is over a rate limit.
        pub fn throttled(kind: Integration, retry_after_secs: u32, message: &str) -> Response<Body> {
            match kind {
                $( Integration::$variant => <$format as Format>::throttled(retry_after_secs, message), )*
            }
        }

    };
}
crate::integration::registry!(dispatch);

/// Settings that apply the same way to every format.
fn apply_settings(req: &IngestRequest<'_>, parsed: &mut Parsed) {
    if let Some(timeout) = req.settings.resolve_timeout {
        let at = req.now.saturating_add(timeout);
        for e in &mut parsed.events {
            if e.action == Action::Trigger && e.ends_at.is_none() {
                e.ends_at = Some(at);
            }
        }
    }
}

/// Parses a body that must be a JSON object.
pub fn json_object(
    kind: Integration,
    body: &mut [u8],
) -> Result<BorrowedValue<'_>, IntegrationError> {
    let value = json::parse_json(body).map_err(|e| IntegrationError::from_json(kind, e))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(not_an_object(kind))
    }
}

/// Parses a body that must be a JSON object onto this thread's tape and reads its root with
/// `read` (no tree is built: the busiest formats read this way).
pub fn tape_object<'b, R>(
    kind: Integration,
    body: &'b mut [u8],
    read: impl FnOnce(json::TapeValue<'_, 'b>) -> Result<R, IntegrationError>,
) -> Result<R, IntegrationError> {
    json::with_tape(body, |root| match root.object() {
        true => read(root),
        false => Err(not_an_object(kind)),
    })
    .map_err(|e| IntegrationError::from_json(kind, e))?
}

fn not_an_object(kind: Integration) -> IntegrationError {
    IntegrationError::Malformed {
        kind,
        what: "body is not a JSON object",
    }
}

/// Parses a body that is one JSON object standing for one alert: `read` gets a reader on the
/// object and returns the event and whether its summary was cut. Any problem it records, or
/// no event, refuses the request with every problem.
pub fn one_alert(
    kind: Integration,
    body: &mut [u8],
    read: impl FnOnce(&mut fields::Reader<'_, '_>) -> Option<(Event, bool)>,
) -> Result<Parsed, IntegrationError> {
    let root = json_object(kind, body)?;
    let mut errors = Vec::new();
    let event = read(&mut fields::Reader::new(Some(&root), "", &mut errors));
    match event {
        Some((event, truncated)) if errors.is_empty() => Ok(Parsed::one(event, truncated)),
        _ => Err(IntegrationError::Invalid {
            kind,
            problems: errors,
        }),
    }
}

/// A summary cut to [`MAX_SUMMARY_CHARS`] at a character boundary, and whether it was cut.
pub fn summary(raw: &str) -> (String, bool) {
    let mut s = raw.to_string();
    let cut = truncate_chars(&mut s, MAX_SUMMARY_CHARS);
    (s, cut)
}

/// `n` in decimal (an item's index in its path, without the formatting machinery).
fn push_decimal(out: &mut String, n: usize) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Collects the items of a batch: accepted events, refused items with their problems.
pub struct Batch {
    kind: Integration,
    parsed: Parsed,
}

impl Batch {
    pub fn new(kind: Integration, items: usize) -> Self {
        Batch {
            kind,
            parsed: Parsed {
                events: Vec::with_capacity(items),
                ..Parsed::default()
            },
        }
    }

    /// Reads every item of the array `name` (`alerts`) at `name[i]` with `read` (see
    /// [`Self::item`]), then [`Self::finish`]es.
    pub fn read<'v, V: Json<'v>>(
        kind: Integration,
        name: &str,
        (len, items): (usize, impl Iterator<Item = V>),
        mut read: impl FnMut(&mut fields::Reader<'v, '_, V>) -> Option<(Event, bool)>,
    ) -> Result<Parsed, IntegrationError> {
        let mut batch = Batch::new(kind, len);
        let mut at = String::with_capacity(name.len() + 8);
        for (i, item) in items.enumerate() {
            at.clear();
            at.push_str(name);
            at.push('[');
            push_decimal(&mut at, i);
            at.push(']');
            batch.item(&at, item, &mut read);
        }
        batch.finish()
    }

    /// Reads one item at `at` (`alerts[2]`; a buffer the caller reuses) with `read`, which
    /// returns the event and whether its summary was cut; any problem it records rejects the
    /// item alone.
    pub fn item<'v, V: Json<'v>>(
        &mut self,
        at: &str,
        value: V,
        read: impl FnOnce(&mut fields::Reader<'v, '_, V>) -> Option<(Event, bool)>,
    ) {
        let mut errors = Vec::new();
        let result = if value.object() {
            read(&mut fields::Reader::new(Some(value), at, &mut errors))
        } else {
            errors.push(format!("'{at}' must be an object"));
            None
        };
        match result {
            Some((event, truncated)) if errors.is_empty() => self.accept(event, truncated),
            _ => {
                if errors.is_empty() {
                    errors.push(format!("'{at}' could not be read"));
                }
                self.reject(at, errors);
            }
        }
    }

    /// Takes one item's event (`truncated`: its summary was cut).
    pub fn accept(&mut self, event: Event, truncated: bool) {
        self.parsed.summaries_truncated += u64::from(truncated);
        self.parsed.events.push(event);
    }

    /// Refuses the item at `at` for `errors`.
    pub fn reject(&mut self, at: &str, errors: Vec<String>) {
        self.parsed.rejected.push(Rejected {
            item: at.to_string(),
            errors,
        });
    }

    /// The batch's result: refused as a whole only when it had items and every one was refused.
    pub fn finish(self) -> Result<Parsed, IntegrationError> {
        if self.parsed.events.is_empty() && !self.parsed.rejected.is_empty() {
            Err(IntegrationError::AllRejected {
                kind: self.kind,
                items: self.parsed.rejected,
            })
        } else {
            Ok(self.parsed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_index_is_written_in_decimal() {
        for n in [0, 7, 10, 99, 100, 4096, 123_456_789] {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }

    #[test]
    fn refusals_map_to_status_reason_and_prefixed_messages() {
        let kind = Integration::AlertmanagerWebhook;
        let items = vec![
            Rejected {
                item: "alerts[0]".into(),
                errors: vec!["'alerts[0].status' must be firing or resolved".into()],
            },
            Rejected {
                item: "alerts[1]".into(),
                errors: vec!["'alerts[1]' must be an object".into()],
            },
        ];
        let all = IntegrationError::AllRejected { kind, items };
        assert_eq!(
            (all.status(), all.reason(), all.events_refused()),
            (StatusCode::BAD_REQUEST, "invalid", 2)
        );
        assert_eq!(
            all.messages(),
            [
                "alertmanager_webhook: 'alerts[0].status' must be firing or resolved",
                "alertmanager_webhook: 'alerts[1]' must be an object"
            ]
        );
        let malformed = IntegrationError::Malformed {
            kind,
            what: "body is not valid JSON",
        };
        assert_eq!(
            (malformed.reason(), malformed.events_refused()),
            ("malformed", 1)
        );
        assert_eq!(
            malformed.to_string(),
            "alertmanager_webhook: body is not valid JSON"
        );
    }
}
