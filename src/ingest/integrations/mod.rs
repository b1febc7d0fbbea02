//! Parsers from each sender's own payload into [`crate::event::Event`]s.
//!
//! One integration = one file here, opening with a `//!` header (vendor, payload versions, how
//! resolve is signalled, where the dedup key comes from), one `pub mod` line below, ONE line in
//! [`registry!`] and one fixture folder `tests/fixtures/integrations/<kind>/` (see
//! `golden.rs`). The registry line generates the [`Integration`] variant with its snake_case
//! name (metrics label, config table, endpoint path, fixture folder) and adds the kind to the
//! `match`es below; there is no `Box<dyn>` on the hot path.
//!
//! A format implements [`Format`]: [`Format::parse`] turns one request body into a [`Parsed`]
//! (events plus, for batches, the items it rejected) or an [`IntegrationError`] that names the
//! format and the field; [`Format::accepted`] and [`Format::refused`] build the answer its
//! sender expects. Formats without their own endpoint are served at
//! `POST /integrations/<kind>/<routing_key>` (`endpoint.rs`).

pub mod alertmanager_api;
pub mod alertmanager_webhook;
pub mod azure_monitor;
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
pub mod nagios;
pub mod newrelic_legacy;
pub mod newrelic_workflow;
pub mod opsgenie;
pub mod pagerduty;
pub mod pingdom;
pub mod reply;
pub mod sentry;
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

use std::fmt::Write as _;

use http::{HeaderMap, Response, StatusCode};
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::config::integrations::IntegrationSettings;
use crate::event::{truncate_chars, Action, Event, Integration, MAX_SUMMARY_CHARS};
use crate::time::UnixMillis;

use super::response::Body;

/// THE registry: one line per integration, `Variant => "snake_case_name", module::FormatType;`.
/// Passes the list to the macro named by the caller, which is how [`Integration`] (in
/// `event.rs`) and the dispatch functions below are generated from this one place.
macro_rules! registry {
    ($then:ident) => {
        $then! {
            /// PagerDuty Events API v2 (`POST /v2/enqueue`; change events have their own route).
            PagerDuty => "pagerduty", pagerduty::V2;
            /// PagerDuty Events API v1 (`POST /generic/2010-04-15/create_event.json`).
            PagerDutyV1 => "pagerduty_v1", pagerduty::V1;
            /// Prometheus Alertmanager webhook receiver, payload version 4 (batched).
            AlertmanagerWebhook => "alertmanager_webhook", alertmanager_webhook::Webhook;
            /// Prometheus Alertmanager API v2 `POST /api/v2/alerts` (batched; resolves by `endsAt`).
            AlertmanagerApi => "alertmanager_api", alertmanager_api::Api;
            /// Grafana unified alerting webhook contact point, payload version 1 (batched).
            Grafana => "grafana", grafana::Webhook;
            /// Opsgenie Alert API v2 (`POST /v2/alerts`, `/v2/alerts/<alias>/close`), emulated.
            Opsgenie => "opsgenie", opsgenie::AlertApi;
            /// Datadog webhook, sluice's documented payload template (and Datadog's default).
            Datadog => "datadog", datadog::Webhook;
            /// New Relic workflow webhook, default template.
            NewrelicWorkflow => "newrelic_workflow", newrelic_workflow::Webhook;
            /// New Relic legacy alert-policy webhook channel (deprecated by New Relic).
            NewrelicLegacy => "newrelic_legacy", newrelic_legacy::Webhook;
            /// AWS CloudWatch alarms via an SNS HTTP/S subscription (JSON posted as text/plain).
            CloudwatchSns => "cloudwatch_sns", cloudwatch_sns::Sns;
            /// Azure Monitor action group webhook, common alert schema.
            AzureMonitor => "azure_monitor", azure_monitor::CommonAlert;
            /// Google Cloud Monitoring webhook notification channel, version 1.2.
            GcpMonitoring => "gcp_monitoring", gcp_monitoring::Webhook;
            /// Zabbix webhook media type posting its macros as JSON.
            Zabbix => "zabbix", zabbix::MediaType;
            /// Nagios / Icinga: PagerDuty's Nagios plugin form fields, macros as JSON, Icinga 2 JSON.
            Nagios => "nagios", nagios::Notification;
            /// Sentry integration platform webhooks: issue alerts, metric alerts, issue resolves.
            Sentry => "sentry", sentry::Webhook;
            /// Elastic / Kibana alerting through the Webhook connector, with the body sluice documents.
            Elastic => "elastic", elastic::Webhook;
            /// Splunk Enterprise / Cloud webhook alert action (triggers only: `resolve_timeout`).
            Splunk => "splunk", splunk::Webhook;
            /// Dynatrace problem notifications (custom integration webhook, documented template).
            Dynatrace => "dynatrace", dynatrace::Webhook;
            /// Checkmk notifications posted by a notification script as JSON (`NOTIFY_*`).
            Checkmk => "checkmk", checkmk::Webhook;
            /// Uptime Kuma webhook notifications (JSON preset).
            UptimeKuma => "uptime_kuma", uptime_kuma::Webhook;
            /// Pingdom webhook state changes (uptime and transaction checks).
            Pingdom => "pingdom", pingdom::Webhook;
            /// The generic mapper: any JSON webhook mapped in `[integrations.generic.<name>]`.
            Generic => "generic", generic::Mapped;
        }
    };
}
pub(crate) use registry;

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
}

impl Parsed {
    /// A request's one event, and whether its summary was cut.
    pub fn one(event: Event, truncated: bool) -> Self {
        Parsed {
            events: vec![event],
            rejected: Vec::new(),
            summaries_truncated: u64::from(truncated),
            subscription: None,
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
/// generated from [`registry!`].
pub trait Format {
    /// The path of a format that keeps its own endpoint (PagerDuty's); `None` means it is served
    /// at `POST /integrations/<kind>/<routing_key>`.
    const OWN_ENDPOINT: Option<&'static str> = None;

    /// Whether the routing key comes from the request (the path under `/integrations/<kind>/`,
    /// `X-Routing-Key`, `?routing_key=`, [`Self::AUTH_KEY_SCHEME`], the config) rather than
    /// from the body (PagerDuty's). A format with an own endpoint that takes it from the
    /// request is also served at `/integrations/<kind>/<routing_key>`, followed or not by its
    /// own path (`/integrations/alertmanager_api/<key>/api/v2/alerts`: a sender's base URL).
    const KEY_FROM_REQUEST: bool = Self::OWN_ENDPOINT.is_none();

    /// The `Authorization` scheme whose credentials are the routing key, for senders that
    /// can only send their vendor's key (`GenieKey <key>`); `None` for most formats.
    const AUTH_KEY_SCHEME: Option<&'static str> = None;

    /// Parses one request body (the parser may reuse the buffer: simd-json parses in place).
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError>;

    /// The answer when the request's events are queued (default: `202` and the generic body).
    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::accepted(StatusCode::ACCEPTED, kind, parsed)
    }

    /// The answer when the request is refused (default: the generic error body).
    fn refused(err: &IntegrationError) -> Response<Body> {
        reply::refused(err)
    }
}

macro_rules! dispatch {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $format:path; )*) => {
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

        /// `Some(path)` for a format served on its own endpoint, `None` for
        /// `/integrations/<kind>/<routing_key>`.
        pub fn own_endpoint(kind: Integration) -> Option<&'static str> {
            match kind {
                $( Integration::$variant => <$format as Format>::OWN_ENDPOINT, )*
            }
        }

        /// Whether `kind` takes its routing key from the request rather than the body.
        pub fn key_from_request(kind: Integration) -> bool {
            match kind {
                $( Integration::$variant => <$format as Format>::KEY_FROM_REQUEST, )*
            }
        }

        /// The `Authorization` scheme whose credentials are `kind`'s routing key, if any.
        pub fn auth_key_scheme(kind: Integration) -> Option<&'static str> {
            match kind {
                $( Integration::$variant => <$format as Format>::AUTH_KEY_SCHEME, )*
            }
        }
    };
}
registry!(dispatch);

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

/// The kinds served at `/integrations/<kind>/...`, comma-separated, for error messages.
pub fn generic_kinds() -> String {
    Integration::ALL
        .iter()
        .filter(|k| key_from_request(**k))
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a body that must be a JSON object.
pub fn json_object(
    kind: Integration,
    body: &mut [u8],
) -> Result<BorrowedValue<'_>, IntegrationError> {
    let value = fields::parse_json(body).map_err(|_| IntegrationError::Malformed {
        kind,
        what: "body is not valid JSON",
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(IntegrationError::Malformed {
            kind,
            what: "body is not a JSON object",
        })
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
    let event = read(&mut fields::Reader {
        value: Some(&root),
        path: "",
        errors: &mut errors,
    });
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
    pub fn read<'v>(
        kind: Integration,
        name: &str,
        items: &'v [BorrowedValue<'v>],
        mut read: impl FnMut(&mut fields::Reader<'v, '_>) -> Option<(Event, bool)>,
    ) -> Result<Parsed, IntegrationError> {
        let mut batch = Batch::new(kind, items.len());
        let mut at = String::with_capacity(16);
        for (i, item) in items.iter().enumerate() {
            at.clear();
            let _ = write!(at, "{name}[{i}]");
            batch.item(&at, item, &mut read);
        }
        batch.finish()
    }

    /// Reads one item at `at` (`alerts[2]`; a buffer the caller reuses) with `read`, which
    /// returns the event and whether its summary was cut; any problem it records rejects the
    /// item alone.
    pub fn item<'v>(
        &mut self,
        at: &str,
        value: &'v BorrowedValue<'v>,
        read: impl FnOnce(&mut fields::Reader<'v, '_>) -> Option<(Event, bool)>,
    ) {
        let mut errors = Vec::new();
        let result = if value.is_object() {
            read(&mut fields::Reader {
                value: Some(value),
                path: at,
                errors: &mut errors,
            })
        } else {
            errors.push(format!("'{at}' must be an object"));
            None
        };
        match result {
            Some((event, truncated)) if errors.is_empty() => {
                self.parsed.summaries_truncated += u64::from(truncated);
                self.parsed.events.push(event);
            }
            _ => {
                if errors.is_empty() {
                    errors.push(format!("'{at}' could not be read"));
                }
                self.parsed.rejected.push(Rejected {
                    item: at.to_string(),
                    errors,
                });
            }
        }
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
    fn every_kind_has_a_snake_case_name_that_parses_back() {
        for kind in Integration::ALL {
            let name = kind.as_str();
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert_eq!(Integration::parse(name), Some(kind));
            assert_eq!(kind.bit().count_ones(), 1);
        }
        assert_eq!(Integration::parse("PagerDuty"), None);
        let bits = Integration::ALL.iter().fold(0u64, |acc, k| acc | k.bit());
        assert_eq!(bits.count_ones() as usize, Integration::ALL.len());
    }

    #[test]
    fn pagerduty_keeps_its_own_endpoints() {
        assert_eq!(own_endpoint(Integration::PagerDuty), Some("/v2/enqueue"));
        assert_eq!(
            own_endpoint(Integration::PagerDutyV1),
            Some("/generic/2010-04-15/create_event.json")
        );
        assert_eq!(own_endpoint(Integration::AlertmanagerWebhook), None);
        let generic = generic_kinds();
        assert!(generic.starts_with("alertmanager_webhook"), "{generic}");
        assert!(!generic.contains("pagerduty"), "{generic}");
        assert!(!key_from_request(Integration::PagerDuty));
        assert!(key_from_request(Integration::AlertmanagerWebhook));
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
