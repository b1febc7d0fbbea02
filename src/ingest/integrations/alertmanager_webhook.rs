//! Prometheus Alertmanager webhook receiver (`webhook_configs`), payload `"version": "4"`, the
//! only version Alertmanager has sent; `version` is not checked, so a later one that keeps the
//! shape is still read rather than refused (Alertmanager does not retry a 4xx: the alerts
//! would be lost). Served at `POST /integrations/alertmanager_webhook/<routing_key>`.
//!
//! - **Batched**: one event per item of `alerts[]`. An item that cannot be read is rejected
//!   and reported in the `200` body while the others are accepted; a request is refused
//!   (`400`) only when it is not a webhook payload at all or every item was rejected.
//! - **Resolve**: per alert, `status: "resolved"`. Without `status`, an alert whose `endsAt`
//!   has passed is resolved and any other is firing. A firing alert with a future `endsAt`
//!   (only custom senders set one: Alertmanager hides it while firing) carries it as
//!   `ends_at`, so it resolves then unless refreshed; `resolve_timeout` covers the rest.
//! - **Dedup key**: the alert's `fingerprint` (Alertmanager's hash of the labels, the same on
//!   every replica of an HA pair); without one, the same fingerprint computed from the labels
//!   ([`labels_fingerprint`]: Prometheus' FNV-1a-64, 16 hex digits), so a retry deduplicates
//!   and a hand-written sender's alert meets the same alert sent straight by Prometheus to
//!   `alertmanager_api` (which has no fingerprint field and uses the same function).
//! - **Severity**: `labels.severity`, case-insensitively: `critical`, `error`, `warning`,
//!   `info`, and the conventions `page` -> critical, `warn` -> warning, `none` -> info (the
//!   Watchdog alert); missing or anything else -> the integration's `default_severity`.
//! - **Fields**: summary = `annotations.summary`, else `annotations.description`, else
//!   `labels.alertname`, else the dedup key; source = `labels.instance`, else `labels.job`;
//!   component = `labels.service`, else `labels.job`; class = `labels.alertname`;
//!   labels = the alert's labels; custom_details = its annotations; links = `generatorURL`
//!   ("Source"), `annotations.runbook_url` ("Runbook") and the payload's `externalURL`
//!   ("Alertmanager"); timestamp = `startsAt` (trigger) or `endsAt` (resolve), with Go's zero
//!   time read as unset. Resolves carry the same fields as triggers (Alertmanager sends them
//!   all), so event rules and matchers on labels treat both alike.
//! - **group = the payload's `groupKey`** (`{}/{team="payments"}:{alertname="HighErrorRate"}`),
//!   as sent: it names the notification group Alertmanager built from its `group_by`, so a
//!   sluice rule with `group_by = ["group"]` keeps Alertmanager's own grouping (Grafana OnCall
//!   does the same). It changes when the Alertmanager route changes; rules that should outlive
//!   route edits group by labels instead (`labels.alertname`, `labels.team`, ...).
//! - **Answer**: `200 {"status":"success","message":"2 accepted","accepted":2,"rejected":[]}`;
//!   Alertmanager only looks at the status (2xx done, 5xx retried, other codes dropped).
//! - Tolerant wire model: unknown fields and nulls are ignored (`receiver`, `status`,
//!   `groupLabels`, `commonLabels`, `commonAnnotations`, `truncatedAlerts`, ...).

use http::{Response, StatusCode};

use crate::event::{Action, Event, LabelBuf, Link, MAX_DEDUP_KEY_CHARS};
use crate::integration::Integration;

use super::fields::{named_links, pairs_details, Reader};
use super::json::{Json, TapeValue};
use super::prometheus::{
    drop_replica_labels, labels_fingerprint, lookup, prometheus_event, replica_labels_setting,
};
use super::{
    reply, tape_object, Batch, Format, IngestRequest, IntegrationError, IntegrationSettings, Parsed,
};
use crate::config::{Problems, Unknown};
use crate::ingest::response::Body;
use crate::time::UnixMillis;

const KIND: Integration = Integration::AlertmanagerWebhook;

/// The Alertmanager webhook format in the integrations registry.
pub struct Webhook;

impl Format for Webhook {
    fn own_settings(
        own: &mut Unknown,
        at: &str,
        settings: &mut IntegrationSettings,
        p: &mut Problems,
    ) {
        replica_labels_setting(own, at, settings, p);
    }

    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        tape_object(KIND, body, |root| {
            read_envelope(KIND, root, |r, top| read_alert(r, req, top))
        })
    }

    /// Alertmanager checks only for a 2xx; 200 is what its own receivers answer.
    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::accepted(StatusCode::OK, kind, parsed)
    }
}

/// What every alert of a payload shares.
pub(super) struct Top<'v> {
    pub group_key: Option<&'v str>,
    pub external_url: Option<&'v str>,
}

/// The webhook envelope Alertmanager and Grafana share: `groupKey`, `externalURL` and the
/// batch `alerts[]`, each alert read by `read` with what they share.
pub(super) fn read_envelope<'v, V: Json<'v>>(
    kind: Integration,
    root: V,
    mut read: impl FnMut(&mut Reader<'v, '_, V>, &Top<'v>) -> Option<(Event, bool)>,
) -> Result<Parsed, IntegrationError> {
    let mut errors = Vec::new();
    let mut r = Reader::new(Some(root), "", &mut errors);
    let group_key = r.opt_str("groupKey").filter(|g| !g.is_empty());
    let external_url = r.opt_str("externalURL").filter(|u| !u.is_empty());
    let alerts = r.req_array("alerts");
    let Some(alerts) = alerts.filter(|_| errors.is_empty()) else {
        return Err(IntegrationError::Invalid {
            kind,
            problems: errors,
        });
    };
    let top = Top {
        group_key,
        external_url,
    };
    Batch::read(kind, "alerts", alerts, |r| read(r, &top))
}

fn read_alert<'v>(
    r: &mut Reader<'v, '_, TapeValue<'_, 'v>>,
    req: &IngestRequest<'_>,
    top: &Top<'v>,
) -> Option<(Event, bool)> {
    let status = r.opt_str("status");
    let before = r.errors.len();
    let labels = r.string_pairs("labels");
    let labels_read = r.errors.len() == before;
    let annotations = r.string_pairs("annotations");
    let starts_at = r.timestamp("startsAt");
    let ends_at = r.timestamp("endsAt");
    let generator_url = r.opt_str("generatorURL").filter(|u| !u.is_empty());
    let fingerprint = r.opt_str("fingerprint").filter(|f| !f.is_empty());
    let fingerprint = r.bounded(fingerprint, "fingerprint", MAX_DEDUP_KEY_CHARS);

    let resolved = resolved(r, status, ends_at, req.now);
    if fingerprint.is_none() && labels_read {
        let problem = match &labels {
            None => Some("is missing"),
            Some(l) if l.is_empty() => Some("is empty"),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            let at = r.path;
            r.errors.push(format!(
                "'{at}.labels' {problem} (an alert needs labels or a fingerprint)"
            ));
        }
    }
    if !r.errors.is_empty() {
        return None;
    }

    let mut labels = labels.unwrap_or_default();
    let annotations = annotations.unwrap_or_default();
    // Alertmanager's fingerprint counts the replica label: the pair's alerts differ in it.
    let replicated = drop_replica_labels(&mut labels, req);
    let dedup_key = match fingerprint {
        Some(f) if !replicated => f.to_string(),
        _ => labels_fingerprint(&labels),
    };
    let (mut event, truncated) =
        prometheus_event(KIND, req, resolved, dedup_key, &labels, &annotations);
    event.group = top.group_key.map(str::to_string);
    set_times(&mut event, starts_at, ends_at, req.now);
    event.links = links(generator_url, lookup(&annotations, "runbook_url"), top);
    event.custom_details = pairs_details(&annotations);
    event.labels = LabelBuf::from(labels);
    Some((event, truncated))
}

fn links(generator: Option<&str>, runbook: Option<&str>, top: &Top<'_>) -> Vec<Link> {
    named_links([
        (generator, "Source"),
        (runbook, "Runbook"),
        (top.external_url, "Alertmanager"),
    ])
}

/// Whether a notified alert is resolved: `status` (`firing` or `resolved`, anything else a
/// problem), else an `endsAt` that has passed.
pub(super) fn resolved<'v, V: Json<'v>>(
    r: &mut Reader<'v, '_, V>,
    status: Option<&str>,
    ends_at: Option<UnixMillis>,
    now: UnixMillis,
) -> bool {
    match status {
        Some("firing") => false,
        Some("resolved") => true,
        Some(_) => {
            let at = r.path;
            r.errors
                .push(format!("'{at}.status' must be firing or resolved"));
            false
        }
        None => ends_at.is_some_and(|t| t <= now),
    }
}

/// A notified alert's times: a resolve happened at `endsAt` (else `startsAt`); a trigger
/// started at `startsAt` and resolves by itself at an `endsAt` still to come.
pub(super) fn set_times(
    event: &mut Event,
    starts_at: Option<UnixMillis>,
    ends_at: Option<UnixMillis>,
    now: UnixMillis,
) {
    if event.action == Action::Resolve {
        event.timestamp = ends_at.or(starts_at);
    } else {
        event.timestamp = starts_at;
        event.ends_at = ends_at.filter(|t| *t > now);
    }
}

/// The annotations as a JSON object, in name order; `None` when there are none.
#[cfg(test)]
mod tests {

    use super::*;
    use crate::event::Severity;
    use crate::ingest::integrations::prometheus::severity;
    use crate::ingest::integrations::settings::IntegrationSettings;
    use crate::ingest::integrations::testing::{self, Request, NOW};
    use crate::time::UnixMillis;

    fn parse_with(body: &str, settings: &IntegrationSettings) -> Result<Parsed, IntegrationError> {
        Request::default().settings(settings).parse(KIND, body)
    }

    fn parse(body: &str) -> Result<Parsed, IntegrationError> {
        testing::parse(KIND, body)
    }

    fn one(alert: &str) -> Event {
        let mut p = parse(&format!(r#"{{"version":"4","alerts":[{alert}]}}"#)).unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        p.events.remove(0)
    }

    #[test]
    fn severity_maps_conventions_case_insensitively() {
        for (label, want) in [
            ("critical", Some(Severity::Critical)),
            ("PAGE", Some(Severity::Critical)),
            ("Warn", Some(Severity::Warning)),
            ("warning", Some(Severity::Warning)),
            ("none", Some(Severity::Info)),
            ("sev1", None),
        ] {
            assert_eq!(severity(label), want, "{label}");
        }
        let e = one(r#"{"status":"firing","labels":{"alertname":"A","severity":"sev1"}}"#);
        assert_eq!(
            e.severity,
            Severity::Error,
            "unknown -> the integration default"
        );
        let settings = IntegrationSettings {
            default_severity: Severity::Warning,
            ..IntegrationSettings::default()
        };
        let p = parse_with(
            r#"{"alerts":[{"status":"firing","labels":{"alertname":"A"}}]}"#,
            &settings,
        )
        .unwrap();
        assert_eq!(p.events[0].severity, Severity::Warning);
    }

    #[test]
    fn the_derived_key_depends_on_labels_not_their_order() {
        let a = one(r#"{"labels":{"alertname":"A","instance":"h:1","job":"x"}}"#);
        let b = one(
            r#"{"labels":{"job":"x","instance":"h:1","alertname":"A"},"annotations":{"summary":"other"}}"#,
        );
        let c = one(r#"{"labels":{"alertname":"A","instance":"h:2","job":"x"}}"#);
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_ne!(a.dedup_key, c.dedup_key);
        assert_eq!(a.dedup_key.len(), 16);
        // Separators keep ("ab","c") and ("a","bc") apart.
        let d = one(r#"{"labels":{"ab":"c"}}"#);
        let e = one(r#"{"labels":{"a":"bc"}}"#);
        assert_ne!(d.dedup_key, e.dedup_key);
    }

    /// The values of prometheus/common's own tests (`TestMetricToFingerprint`).
    #[test]
    fn the_derived_key_is_prometheus_fingerprint() {
        let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            let mut v: Vec<_> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(
            labels_fingerprint::<&str, &str>(&[]),
            format!("{:016x}", 14_695_981_039_346_656_037u64)
        );
        assert_eq!(
            labels_fingerprint(&labels(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ])),
            format!("{:016x}", 5_799_056_148_416_392_346u64)
        );
        let e = one(r#"{"labels":{"name":"garland, briggs","fear":"love is not enough"}}"#);
        assert_eq!(e.dedup_key, "507a62d79ee76c9a");
    }

    #[test]
    fn summary_falls_back_in_order() {
        let e =
            one(r#"{"labels":{"alertname":"A"},"annotations":{"description":"d","summary":"s"}}"#);
        assert_eq!(e.summary, "s");
        let e =
            one(r#"{"labels":{"alertname":"A"},"annotations":{"description":"d","summary":""}}"#);
        assert_eq!(e.summary, "d");
        let e = one(r#"{"labels":{"alertname":"A"}}"#);
        assert_eq!(e.summary, "A");
        let e = one(r#"{"labels":{"x":"1"},"fingerprint":"00ff"}"#);
        assert_eq!(e.summary, "00ff");
    }

    #[test]
    fn end_times_resolve_or_schedule() {
        // No status: a past endsAt resolves, a future one schedules the resolve.
        let e = one(r#"{"labels":{"a":"1"},"endsAt":"2024-05-02T09:00:00Z"}"#);
        assert_eq!(e.action, Action::Resolve);
        let e = one(r#"{"labels":{"a":"1"},"endsAt":"2024-05-02T10:00:00Z"}"#);
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.ends_at, Some(UnixMillis(1_714_644_000_000)));
        // Firing with Go's zero time: no end; a past end on a firing alert is ignored.
        let e = one(r#"{"status":"firing","labels":{"a":"1"},"endsAt":"0001-01-01T00:00:00Z"}"#);
        assert_eq!(e.ends_at, None);
        let e = one(r#"{"status":"firing","labels":{"a":"1"},"endsAt":"2024-05-02T09:00:00Z"}"#);
        assert_eq!((e.action, e.ends_at), (Action::Trigger, None));
        // resolve_timeout fills in an end only where the sender gave none.
        let settings = IntegrationSettings {
            resolve_timeout: Some(std::time::Duration::from_secs(600)),
            ..IntegrationSettings::default()
        };
        let p = parse_with(
            r#"{"alerts":[{"labels":{"a":"1"}},{"labels":{"a":"2"},"endsAt":"2024-05-02T10:00:00Z"},{"status":"resolved","labels":{"a":"3"}}]}"#,
            &settings,
        )
        .unwrap();
        let ends: Vec<_> = p.events.iter().map(|e| e.ends_at).collect();
        assert_eq!(
            ends,
            [
                Some(UnixMillis(NOW.0 + 600_000)),
                Some(UnixMillis(1_714_644_000_000)),
                None
            ]
        );
    }

    #[test]
    fn nulls_and_unknown_fields_are_ignored_and_values_stringified() {
        let e = one(
            r#"{"status":"firing","labels":{"alertname":"A","port":9090,"up":false,"gone":null},
                "annotations":null,"generatorURL":null,"fingerprint":null,"newField":{"x":1}}"#,
        );
        assert_eq!(
            e.labels,
            [
                ("alertname".to_string(), "A".to_string()),
                ("port".to_string(), "9090".to_string()),
                ("up".to_string(), "false".to_string()),
            ]
        );
        assert!(e.links.is_empty());
        assert_eq!(e.custom_details, None);
    }

    #[test]
    fn bad_items_are_rejected_alone_and_named() {
        let p = parse(
            r#"{"alerts":[
                {"status":"firing","labels":{"alertname":"ok"}},
                {"status":"pending","labels":"x"},
                7,
                {"status":"firing"},
                {"labels":{"a":{"nested":1}},"startsAt":"yesterday"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(p.events.len(), 1);
        let rejected: Vec<(&str, Vec<&str>)> = p
            .rejected
            .iter()
            .map(|r| {
                (
                    r.item.as_str(),
                    r.errors.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            rejected,
            [
                (
                    "alerts[1]",
                    vec![
                        "'alerts[1].labels' must be an object",
                        "'alerts[1].status' must be firing or resolved"
                    ]
                ),
                ("alerts[2]", vec!["'alerts[2]' must be an object"]),
                (
                    "alerts[3]",
                    vec!["'alerts[3].labels' is missing (an alert needs labels or a fingerprint)"]
                ),
                (
                    "alerts[4]",
                    vec![
                        "'alerts[4].labels.a' must be a string",
                        "'alerts[4].startsAt' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)"
                    ]
                ),
            ]
        );
    }

    #[test]
    fn whole_request_refusals_name_the_format_and_field() {
        for (body, want) in [
            ("{\"alerts\": [", "alertmanager_webhook: body is not valid JSON"),
            ("[]", "alertmanager_webhook: body is not a JSON object"),
            ("{\"version\":\"4\"}", "alertmanager_webhook: 'alerts' is missing"),
            (
                "{\"alerts\":{},\"groupKey\":5}",
                "alertmanager_webhook: 'groupKey' must be a string; 'alerts' must be an array",
            ),
            (
                "{\"alerts\":[{\"status\":\"x\",\"labels\":{\"a\":\"1\"}}]}",
                "alertmanager_webhook: every item was rejected: 'alerts[0].status' must be firing or resolved",
            ),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.to_string(), want, "{body}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
        assert_eq!(
            parse("{\"alerts\":[]}").unwrap().events.len(),
            0,
            "empty is fine"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let samples: &[&[u8]] = &[
            b"",
            b"\xff\xfe",
            b"{\"alerts\":[{\"labels\":{\"\xff\":\"x\"}}]}",
            b"{\"alerts\":[null,[],\"s\",{\"fingerprint\":5}]}",
            b"{\"alerts\":[{\"labels\":{},\"endsAt\":1e308,\"startsAt\":-1}]}",
        ];
        let req = Request::default();
        for s in samples {
            let _ = Webhook::parse(&req.get(), &mut s.to_vec());
        }
    }
}
