//! The Prometheus Alertmanager API, `POST /api/v2/alerts` (API v2, `postableAlerts` in
//! Alertmanager's `api/v2/openapi.yaml`), so Prometheus can send its alerts straight to
//! sluice: point an `alerting.alertmanagers` entry at sluice. Prometheus posts a JSON array of
//! at most 256 alerts (`User-Agent: Prometheus/<ver>`), re-sends every active alert on each
//! evaluation past `resend_delay`, and drops a batch answered with anything but 2xx (no retry).
//!
//! - **Endpoint and routing key**: `POST /api/v2/alerts` with the key in `X-Routing-Key`,
//!   `?routing_key=` or `[integrations.alertmanager_api] routing_key`; or
//!   `POST /integrations/alertmanager_api/<routing_key>/api/v2/alerts`, which is what
//!   Prometheus posts to with `path_prefix: /integrations/alertmanager_api/<routing_key>`
//!   (one key per Prometheus, no header needed).
//! - **Batched**: one event per array item. Items are `{labels, annotations, startsAt, endsAt,
//!   generatorURL}`; there is no status and no fingerprint.
//! - **Resolve by `endsAt`**, as Alertmanager does: `endsAt` at or before now resolves the
//!   alert; a later `endsAt` (Prometheus sends `now + 4 × max(evaluation_interval,
//!   resend_delay)` for firing alerts) triggers it with that `ends_at`, and the correlator
//!   resolves it then unless a re-send moves it; no `endsAt` (or Go's zero time) triggers it
//!   with `ends_at = now + resolve_timeout`, Alertmanager's `resolve_timeout`, which is 5m
//!   here when `[integrations.alertmanager_api] resolve_timeout` is unset or `"0s"` (an API
//!   alert always ends, as in Alertmanager).
//! - **Dedup key**: Prometheus' fingerprint of the labels, as Alertmanager computes it
//!   ([`super::prometheus::labels_fingerprint`]: FNV-1a-64, 16 hex digits), so an
//!   alert sent here by Prometheus and the same alert relayed by an Alertmanager webhook
//!   (which carries that fingerprint) are one alert for a routing key. Empty-valued labels
//!   are dropped first, as Alertmanager does (Prometheus treats them as absent).
//! - **Severity**: `labels.severity` as for the webhook (`critical`, `error`, `warning`,
//!   `info`, `page`, `warn`, `none`, case-insensitively), else `default_severity`.
//! - **Fields**: as the Alertmanager webhook: summary = `annotations.summary`, else
//!   `annotations.description`, else `labels.alertname`, else the key; source =
//!   `labels.instance`, else `labels.job`; component = `labels.service`, else `labels.job`;
//!   class = `labels.alertname`; labels = the labels; custom_details = the annotations; links =
//!   `generatorURL` ("Source") and `annotations.runbook_url` ("Runbook"); timestamp =
//!   `startsAt` (trigger) or `endsAt` (resolve). There is no group key.
//! - **Validation**, Alertmanager's: at least one label pair, no empty label name, `endsAt` not
//!   before `startsAt`. As Alertmanager does, the valid alerts of a batch are accepted even
//!   when some are not, and then the answer is `400` with a JSON string naming every refused
//!   item and field (`"alertmanager_api: 2 accepted, 1 rejected: 'alerts[1].labels' is
//!   empty ..."`), so Prometheus counts and logs the error while the good alerts still page.
//! - **Answer**: `200` with an empty body, as Alertmanager; refusals are `400` with a JSON
//!   string, as Alertmanager's API answers them.
//! - Tolerant wire model: unknown fields and nulls are ignored; label values that are numbers
//!   or booleans are kept as their JSON text.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::event::{Event, LabelBuf};
use crate::ingest::response::{self, Body};
use crate::integration::Integration;

use super::fields::Reader;
use super::fields::{named_links, pairs_details};
use super::json::{with_tape, Json, TapeValue};
use super::prometheus::{
    drop_replica_labels, labels_fingerprint, lookup, prometheus_event, replica_labels_setting,
};
use super::{Batch, Format, IngestRequest, IntegrationError, IntegrationSettings, Parsed};
use crate::config::{Problems, Unknown};

const KIND: Integration = Integration::AlertmanagerApi;

/// Alertmanager's default `resolve_timeout`: an alert without `endsAt` resolves this long
/// after its last arrival.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The Alertmanager API format in the integrations registry.
pub struct Api;

impl Format for Api {
    fn own_settings(
        own: &mut Unknown,
        at: &str,
        settings: &mut IntegrationSettings,
        p: &mut Problems,
    ) {
        replica_labels_setting(own, at, settings, p);
    }

    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        let timeout = req
            .settings
            .resolve_timeout
            .unwrap_or(DEFAULT_RESOLVE_TIMEOUT);
        // Read on the tape: no tree is built for the busiest batch format.
        with_tape(body, |root| {
            let Some(alerts) = root.items() else {
                return Err(IntegrationError::Malformed {
                    kind: KIND,
                    what: "body is not a JSON array of alerts",
                });
            };
            Batch::read(KIND, "alerts", alerts, |r| read_alert(r, req, timeout))
        })
        .map_err(|e| IntegrationError::from_json(KIND, e))?
    }

    /// `200` with an empty body, as Alertmanager; when some items were refused, Alertmanager's
    /// `400` with a JSON string naming them (the others are queued all the same).
    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        if parsed.rejected.is_empty() {
            return response::text(StatusCode::OK, Bytes::new(), "application/json");
        }
        let problems: Vec<&str> = parsed
            .rejected
            .iter()
            .flat_map(|r| r.errors.iter().map(String::as_str))
            .collect();
        let message = format!(
            "{}: {} accepted, {} rejected: {}",
            kind.as_str(),
            parsed.events.len(),
            parsed.rejected.len(),
            problems.join("; ")
        );
        response::json(StatusCode::BAD_REQUEST, &message)
    }

    /// Alertmanager's API answers a refusal with the error as a JSON string.
    fn refused(err: &IntegrationError) -> Response<Body> {
        response::json(err.status(), &err.to_string())
    }
}

fn read_alert<'v>(
    r: &mut Reader<'v, '_, TapeValue<'_, 'v>>,
    req: &IngestRequest<'_>,
    resolve_timeout: Duration,
) -> Option<(Event, bool)> {
    let before = r.errors.len();
    let labels = r.string_pairs("labels");
    let labels_read = r.errors.len() == before;
    let annotations = r.string_pairs("annotations");
    let starts_at = r.timestamp("startsAt");
    let ends_at = r.timestamp("endsAt");
    let generator_url = r.opt_str("generatorURL").filter(|u| !u.is_empty());

    let mut labels = labels.unwrap_or_default();
    labels.retain(|(_, v)| !v.is_empty());
    drop_replica_labels(&mut labels, req);
    let at = r.path;
    if labels_read && labels.is_empty() {
        r.errors.push(format!(
            "'{at}.labels' has no label pair (at least one label pair required)"
        ));
    }
    if labels.iter().any(|(name, _)| name.is_empty()) {
        r.errors
            .push(format!("'{at}.labels' has an empty label name"));
    }
    if let (Some(start), Some(end)) = (starts_at, ends_at) {
        if end < start {
            r.errors.push(format!(
                "'{at}.endsAt' is before '{at}.startsAt' (start time must be before end time)"
            ));
        }
    }
    if !r.errors.is_empty() {
        return None;
    }

    let annotations = annotations.unwrap_or_default();
    let resolved = ends_at.is_some_and(|t| t <= req.now);
    let (mut event, truncated) = prometheus_event(
        KIND,
        req,
        resolved,
        labels_fingerprint(&labels),
        &labels,
        &annotations,
    );
    if resolved {
        event.timestamp = ends_at;
    } else {
        event.timestamp = starts_at;
        event.ends_at = Some(ends_at.unwrap_or_else(|| req.now.saturating_add(resolve_timeout)));
    }
    event.links = named_links([
        (generator_url, "Source"),
        (lookup(&annotations, "runbook_url"), "Runbook"),
    ]);
    event.custom_details = pairs_details(&annotations);
    event.labels = LabelBuf::from(labels);
    Some((event, truncated))
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;
    use crate::event::Action;
    use crate::event::Severity;
    use crate::ingest::integrations::settings::IntegrationSettings;
    use crate::ingest::integrations::testing::{parse, Request, NOW};
    use crate::ingest::response::body_bytes;
    use crate::time::UnixMillis;

    fn one(alert: &str) -> Event {
        let mut p = parse(KIND, format!("[{alert}]")).unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        p.events.remove(0)
    }

    #[test]
    fn the_key_is_the_fingerprint_alertmanager_sends_in_its_webhook() {
        // prometheus/common's test vector, and the same alert through the webhook parser.
        let e = one(r#"{"labels":{"name":"garland, briggs","fear":"love is not enough"}}"#);
        assert_eq!(e.dedup_key, "507a62d79ee76c9a");
        let webhook = br#"{"alerts":[{"status":"firing","labels":{"fear":"love is not enough","name":"garland, briggs"}}]}"#;
        let via_webhook = parse(Integration::AlertmanagerWebhook, webhook).unwrap();
        assert_eq!(via_webhook.events[0].dedup_key, e.dedup_key);
        // Empty values are dropped before hashing, as Alertmanager does.
        let f = one(
            r#"{"labels":{"name":"garland, briggs","fear":"love is not enough","x":""},"annotations":{"summary":"other"}}"#,
        );
        assert_eq!(f.dedup_key, e.dedup_key);
        assert!(f.labels.iter().all(|(k, _)| k != "x"));
    }

    #[test]
    fn forty_labels_are_all_kept_and_one_given_twice_refuses_the_body() {
        let labels = |repeat: bool| {
            let mut pairs: Vec<String> = (0..40).map(|i| format!("\"l{i:02}\":\"v{i}\"")).collect();
            if repeat {
                pairs.push("\"l07\":\"again\"".into());
            }
            format!("[{{\"labels\":{{{}}}}}]", pairs.join(","))
        };
        let p = parse(KIND, labels(false)).unwrap();
        let e = &p.events[0];
        assert_eq!(e.labels.iter().count(), 40);
        assert_eq!(
            e.labels.iter().find(|(k, _)| *k == "l39"),
            Some(("l39", "v39"))
        );
        let err = parse(KIND, labels(true)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "alertmanager_api: '[0].labels.l07' appears more than once"
        );
    }

    #[test]
    fn the_replicas_of_an_ha_pair_send_one_alert() {
        let pair = |replica: &str| {
            format!(r#"{{"labels":{{"alertname":"Down","instance":"a:1","{replica}":"x"}}}}"#)
        };
        let plain = one(r#"{"labels":{"alertname":"Down","instance":"a:1"}}"#);
        for replica in ["replica", "prometheus_replica", "__replica__"] {
            let e = one(&pair(replica));
            assert_eq!(e.dedup_key, plain.dedup_key, "{replica}");
            assert!(e.labels.iter().all(|(k, _)| k != replica));
        }
        // Through the webhook, Alertmanager's fingerprint counted the label: computed anew.
        let webhook = br#"{"alerts":[{"status":"firing","fingerprint":"0123456789abcdef","labels":{"alertname":"Down","instance":"a:1","replica":"b"}}]}"#;
        let via_webhook = parse(Integration::AlertmanagerWebhook, webhook).unwrap();
        assert_eq!(via_webhook.events[0].dedup_key, plain.dedup_key);
        // A configured list replaces the default one; an empty one keeps every label.
        let settings = crate::config::Config::from_toml(
            "[integrations.alertmanager_api]\nreplica_labels = []",
            Vec::new(),
        )
        .and_then(|c| {
            crate::ingest::integrations::settings::SettingsByKind::checked(&c.integrations)
        })
        .unwrap();
        let kept = Request::default()
            .settings(settings.get(KIND))
            .parse(KIND, format!("[{}]", pair("replica")))
            .unwrap();
        assert_ne!(kept.events[0].dedup_key, plain.dedup_key);
        let bad = crate::config::Config::from_toml(
            "[integrations.alertmanager_api]\nreplica_labels = \"replica\"",
            Vec::new(),
        )
        .and_then(|c| {
            crate::ingest::integrations::settings::SettingsByKind::checked(&c.integrations)
        });
        let Err(err) = bad else {
            panic!("a string is not a list of labels")
        };
        let err = err.to_string();
        assert!(
            err.contains("integrations.alertmanager_api.replica_labels"),
            "{err}"
        );
    }

    #[test]
    fn ends_at_decides_between_resolve_trigger_and_resolve_timeout() {
        // Past (or now): resolve, timestamped at its end.
        let e = one(
            r#"{"labels":{"a":"1"},"startsAt":"2024-05-02T09:00:00Z","endsAt":"2024-05-02T09:15:00Z"}"#,
        );
        assert_eq!(e.action, Action::Resolve);
        assert_eq!((e.timestamp, e.ends_at), (Some(NOW), None));
        // Future: trigger that ends then unless re-sent.
        let e = one(r#"{"labels":{"a":"1"},"endsAt":"2024-05-02T09:19:00Z"}"#);
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.ends_at, Some(UnixMillis(NOW.0 + 240_000)));
        // Absent or Go's zero time: Alertmanager's resolve_timeout, 5m by default.
        for alert in [
            r#"{"labels":{"a":"1"}}"#,
            r#"{"labels":{"a":"1"},"endsAt":"0001-01-01T00:00:00Z","startsAt":null}"#,
        ] {
            let e = one(alert);
            assert_eq!(
                (e.action, e.ends_at),
                (Action::Trigger, Some(UnixMillis(NOW.0 + 300_000)))
            );
        }
        let settings = IntegrationSettings {
            resolve_timeout: Some(Duration::from_secs(60)),
            ..IntegrationSettings::default()
        };
        let p = Request::default()
            .settings(&settings)
            .parse(KIND, br#"[{"labels":{"a":"1"}}]"#)
            .unwrap();
        assert_eq!(p.events[0].ends_at, Some(UnixMillis(NOW.0 + 60_000)));
    }

    #[test]
    fn fields_follow_the_webhook_mapping() {
        let e = one(
            r#"{"labels":{"alertname":"DiskWillFillIn4h","instance":"node-7:9100","job":"node","severity":"WARNING"},
                "annotations":{"summary":"/var fills in 3h","runbook_url":"https://rb.example.net/disk"},
                "startsAt":"2024-05-02T09:00:00Z","generatorURL":"https://prom.example.net/graph"}"#,
        );
        assert_eq!(e.summary, "/var fills in 3h");
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.source, "node-7:9100");
        assert_eq!(e.component.as_deref(), Some("node"));
        assert_eq!(e.class.as_deref(), Some("DiskWillFillIn4h"));
        assert_eq!(e.group, None);
        assert_eq!(e.timestamp, Some(UnixMillis(1_714_640_400_000)));
        let links: Vec<_> = e
            .links
            .iter()
            .map(|l| (l.href.as_str(), l.text.as_deref()))
            .collect();
        assert_eq!(
            links,
            [
                ("https://prom.example.net/graph", Some("Source")),
                ("https://rb.example.net/disk", Some("Runbook"))
            ]
        );
        let e = one(r#"{"labels":{"alertname":"A","severity":"sev9"}}"#);
        assert_eq!((e.summary.as_str(), e.severity), ("A", Severity::Error));
    }

    #[test]
    fn bad_items_are_named_and_the_good_ones_kept_with_a_400() {
        let p = parse(KIND,
            r#"[
                {"labels":{"alertname":"ok"}},
                {"labels":{}},
                {"labels":{"a":""}},
                {"labels":{"a":"1"},"startsAt":"2024-05-02T09:10:00Z","endsAt":"2024-05-02T09:00:00Z"},
                {"annotations":{"summary":"no labels"}},
                "x",
                {"labels":{"":"v"},"endsAt":"soon"}
            ]"#,
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
                ("alerts[1]", vec!["'alerts[1].labels' has no label pair (at least one label pair required)"]),
                ("alerts[2]", vec!["'alerts[2].labels' has no label pair (at least one label pair required)"]),
                ("alerts[3]", vec!["'alerts[3].endsAt' is before 'alerts[3].startsAt' (start time must be before end time)"]),
                ("alerts[4]", vec!["'alerts[4].labels' has no label pair (at least one label pair required)"]),
                ("alerts[5]", vec!["'alerts[5]' must be an object"]),
                ("alerts[6]", vec![
                    "'alerts[6].endsAt' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)",
                    "'alerts[6].labels' has an empty label name",
                ]),
            ]
        );
        let resp = Api::accepted(&p, KIND);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: String = serde_json::from_slice(&body_bytes(resp)).unwrap();
        assert!(
            body.starts_with(
                "alertmanager_api: 1 accepted, 6 rejected: 'alerts[1].labels' has no label pair"
            ),
            "{body}"
        );
    }

    #[test]
    fn a_clean_batch_gets_an_empty_200_and_refusals_a_json_string() {
        let p = parse(KIND, r#"[{"labels":{"a":"1"}},{"labels":{"a":"2"}}]"#).unwrap();
        let resp = Api::accepted(&p, KIND);
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(body_bytes(resp).is_empty());
        assert_eq!(parse(KIND, "[]").unwrap().events.len(), 0);
        for (body, want) in [
            ("[", "alertmanager_api: body is not valid JSON"),
            (
                r#"{"alerts":[]}"#,
                "alertmanager_api: body is not a JSON array of alerts",
            ),
            (
                r#"[{"labels":"x"}]"#,
                "alertmanager_api: every item was rejected: 'alerts[0].labels' must be an object",
            ),
        ] {
            let err = parse(KIND, body).unwrap_err();
            assert_eq!(err.to_string(), want, "{body}");
            let resp = Api::refused(&err);
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            let text: String = serde_json::from_slice(&body_bytes(resp)).unwrap();
            assert_eq!(text, want);
        }
    }

    /// Prometheus' `path_prefix` puts the key before `/api/v2/alerts`; the own endpoint takes
    /// it from the header, the query or the config.
    #[test]
    fn routing_keys_for_the_own_endpoint_and_the_path_prefix() {
        use crate::ingest::integrations::endpoint::{own_target, target};
        use crate::ingest::integrations::settings::SettingsByKind;
        use http::Method;

        let mut config = SettingsByKind::default();
        let none = HeaderMap::new();
        let key = |r: Result<super::super::endpoint::Target, _>| r.map(|t| t.routing_key);
        let post = Method::POST;
        for (rest, want) in [
            ("alertmanager_api/payments/api/v2/alerts", "payments"),
            ("alertmanager_api/payments", "payments"),
            ("alertmanager_api/team%2Fa/api/v2/alerts", "team/a"),
        ] {
            assert_eq!(
                key(target(rest, &post, &none, None, &config)).as_deref(),
                Ok(want),
                "{rest}"
            );
        }
        // The own path alone: the key comes from elsewhere.
        let refused = target(
            "alertmanager_api/api/v2/alerts",
            &post,
            &none,
            None,
            &config,
        )
        .unwrap_err();
        assert!(
            refused.message.starts_with("routing key missing"),
            "{}",
            refused.message
        );
        assert_eq!(
            key(target(
                "alertmanager_api/api/v2/alerts",
                &post,
                &none,
                Some("routing_key=q"),
                &config
            ))
            .as_deref(),
            Ok("q")
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-routing-key", "h".parse().unwrap());
        assert_eq!(
            key(own_target(KIND, "", &headers, None, &config)).as_deref(),
            Ok("h")
        );
        assert!(own_target(KIND, "", &none, None, &config).is_err());
        config.set(
            KIND,
            IntegrationSettings {
                routing_key: Some("from-config".into()),
                ..IntegrationSettings::default()
            },
        );
        assert_eq!(
            key(own_target(KIND, "", &none, None, &config)).as_deref(),
            Ok("from-config")
        );
        // PagerDuty keeps its key in the body: never under /integrations/.
        assert_eq!(
            target("pagerduty/rk", &post, &none, None, &config)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
    }
}
