//! Grafana unified alerting webhook contact point (Grafana 8 and later; `grafana/alerting`
//! `receivers/webhook/v1`), payload `"version": "1"`: the Alertmanager webhook structure plus
//! Grafana's fields. Served at `POST /integrations/grafana/<routing_key>` (the contact point's
//! default method; set it to POST if it was changed to PUT). Basic auth and HMAC signing
//! (`X-Grafana-Alerting-Signature`) are not checked here; a custom payload template must keep
//! this shape. Legacy (pre-8) Grafana alert webhooks, which have no `alerts`, are refused with
//! a message saying so.
//!
//! - **Batched**: one event per item of `alerts[]`; an item that cannot be read is rejected and
//!   reported in the `200` body while the others are accepted; the request is refused (`400`)
//!   only when it is not such a payload or every item was rejected.
//! - **Resolve**: per alert, `status: "resolved"` (`"firing"` triggers). Without `status`, an
//!   alert whose `endsAt` has passed is resolved and any other is firing. The top-level
//!   `state` (`alerting`/`ok`) only summarizes the alerts and is not read.
//! - **Dedup key**: the alert's `fingerprint`, as sent: Grafana takes it before it strips the
//!   private `__` labels, so it cannot be recomputed from the labels in the payload. Without
//!   one, 32 hex digits of xxh3-128 over `ruleUID` and the labels sorted by name, each
//!   length-prefixed (deterministic, so a retry deduplicates; never equal to a 16-digit
//!   fingerprint).
//! - **Severity**: `labels.severity`, case-insensitively, as for Alertmanager (`critical`,
//!   `error`, `warning`, `info`, `page`, `warn`, `none`); else the integration's
//!   `default_severity` (Grafana's `DatasourceNoData` / `DatasourceError` alerts included).
//! - **Fields**: summary = `annotations.summary`, else `annotations.description`, else
//!   `labels.alertname`, else the key; source = `labels.instance`, else `labels.job`;
//!   component = `labels.service`, else `labels.job`; class = `labels.alertname`; group = the
//!   payload's `groupKey`; labels = the alert's labels; custom_details = `{"annotations": {..},
//!   "values": {refId: number}, "valueString": "[ var='B' labels={} value=12034 ]",
//!   "ruleUID": ".."}` (each only when sent); links = `generatorURL` ("Source"), `silenceURL`
//!   ("Silence"), `dashboardURL` ("Dashboard"), `panelURL` ("Panel"),
//!   `annotations.runbook_url` ("Runbook"); images = `imageURL` (linked to the panel, else the
//!   dashboard); timestamp = `startsAt` (trigger) or `endsAt` (resolve), Go's zero time unset.
//! - **Answer**: `200 {"status":"success","message":"2 accepted","accepted":2,"rejected":[]}`;
//!   Grafana only looks at the status (2xx is delivered).
//! - Tolerant wire model: unknown fields and nulls are ignored (`orgId`, `title`, `message`,
//!   `state`, `receiver`, `commonLabels`, `embeddedImage`, `enrichments`, ...).

use http::{Response, StatusCode};

use crate::event::{fingerprint, Details, Event, Image, LabelBuf, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::Body;
use crate::integration::Integration;

use super::alertmanager_webhook::{read_envelope, resolved, set_times, Top};
use super::fields::{details_of, named_links, Pairs, Reader};
use super::json::{Json, TapeValue};
use super::prometheus::{lookup, prometheus_event};
use super::{reply, tape_object, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Grafana;

/// The Grafana unified alerting webhook in the integrations registry.
pub struct Webhook;

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        tape_object(KIND, body, |root| {
            let legacy = root.member("alerts").is_none()
                && ["ruleId", "ruleName", "evalMatches"]
                    .iter()
                    .any(|k| root.member(k).is_some());
            if legacy {
                return Err(IntegrationError::Invalid {
                    kind: KIND,
                    problems: vec![
                        "'alerts' is missing: this is a legacy (pre-8) Grafana alert webhook; \
                         use a unified alerting webhook contact point"
                            .into(),
                    ],
                });
            }
            read_envelope(KIND, root, |r, top| read_alert(r, req, top))
        })
    }

    /// Grafana checks only for a 2xx.
    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::accepted(StatusCode::OK, kind, parsed)
    }
}

/// The key of an alert without a fingerprint: xxh3-128 over its rule and labels.
fn derived_key(rule_uid: Option<&str>, sorted_labels: &Pairs<'_>) -> String {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + 2 * sorted_labels.len());
    parts.push(rule_uid.unwrap_or_default().as_bytes());
    for (k, v) in sorted_labels {
        parts.push(k.as_bytes());
        parts.push(v.as_bytes());
    }
    format!("{:032x}", fingerprint(&parts))
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
    let fingerprint = r.opt_str("fingerprint").filter(|f| !f.is_empty());
    let fingerprint = r.bounded(fingerprint, "fingerprint", MAX_DEDUP_KEY_CHARS);
    let rule_uid = r.opt_str("ruleUID").filter(|u| !u.is_empty());
    let mut url = |name: &str| r.opt_str(name).filter(|u| !u.is_empty());
    let (generator, silence, dashboard, panel, image) = (
        url("generatorURL"),
        url("silenceURL"),
        url("dashboardURL"),
        url("panelURL"),
        url("imageURL"),
    );
    let value_string = r.opt_str("valueString").filter(|v| !v.is_empty());
    let values = r.object("values");

    let resolved = resolved(r, status, ends_at, req.now);
    if fingerprint.is_none() && labels_read && labels.as_ref().is_none_or(|l| l.is_empty()) {
        let at = r.path;
        r.errors.push(format!(
            "'{at}.fingerprint' is missing and '{at}.labels' is empty (an alert needs one)"
        ));
    }
    if !r.errors.is_empty() {
        return None;
    }

    let labels = labels.unwrap_or_default();
    let annotations = annotations.unwrap_or_default();
    let dedup_key = match fingerprint {
        Some(f) => f.to_string(),
        None => derived_key(rule_uid, &labels),
    };
    let (mut event, truncated) =
        prometheus_event(KIND, req, resolved, dedup_key, &labels, &annotations);
    event.group = top.group_key.map(str::to_string);
    set_times(&mut event, starts_at, ends_at, req.now);
    event.links = named_links([
        (generator, "Source"),
        (silence, "Silence"),
        (dashboard, "Dashboard"),
        (panel, "Panel"),
        (lookup(&annotations, "runbook_url"), "Runbook"),
        (top.external_url, "Grafana"),
    ]);
    if let Some(src) = image {
        event.images.push(Image {
            src: src.to_string(),
            href: panel.or(dashboard).map(str::to_string),
            // The class is `labels.alertname` (see `prometheus_event`).
            alt: event.class.clone(),
        });
    }
    event.custom_details = details(&annotations, values, value_string, rule_uid);
    event.labels = LabelBuf::from(labels);
    Some((event, truncated))
}

/// `{"annotations", "values", "valueString", "ruleUID"}`, each only when sent; `None` when
/// none was.
fn details(
    annotations: &Pairs<'_>,
    values: Option<TapeValue<'_, '_>>,
    value_string: Option<&str>,
    rule_uid: Option<&str>,
) -> Option<Details> {
    use serde_json::{Map, Value};
    let mut map = Map::new();
    if !annotations.is_empty() {
        let a: Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        map.insert("annotations".into(), Value::Object(a));
    }
    let values = values.and_then(Json::details);
    if let Some(v) = values.and_then(|v| serde_json::from_str::<Value>(v.0.get()).ok()) {
        if v.as_object().is_some_and(|o| !o.is_empty()) {
            map.insert("values".into(), v);
        }
    }
    if let Some(s) = value_string {
        map.insert("valueString".into(), Value::String(s.to_string()));
    }
    if let Some(s) = rule_uid {
        map.insert("ruleUID".into(), Value::String(s.to_string()));
    }
    details_of(&map)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::event::Action;

    use crate::event::Severity;
    use crate::ingest::integrations::testing::parse;
    use crate::time::UnixMillis;

    const NOW: UnixMillis = UnixMillis(1_714_641_300_000); // 2024-05-02T09:15:00Z

    fn one(alert: &str) -> Event {
        let mut p = parse(
            KIND,
            format!(r#"{{"version":"1","alerts":[{alert}]}}"#).as_bytes(),
        )
        .unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        p.events.remove(0)
    }

    #[test]
    fn grafana_fields_become_links_details_and_an_image() {
        let e = one(
            r#"{"status":"firing","labels":{"alertname":"QueueBacklog","queue":"orders","severity":"Critical"},
                "annotations":{"summary":"orders backlog above 10k"},"startsAt":"2024-05-02T09:10:00Z",
                "endsAt":"0001-01-01T00:00:00Z","generatorURL":"https://g.example.net/alerting/grafana/abc/view",
                "silenceURL":"https://g.example.net/alerting/silence/new","dashboardURL":"https://g.example.net/d/q1",
                "panelURL":"https://g.example.net/d/q1?viewPanel=4","imageURL":"https://img.example.net/p.png",
                "fingerprint":"b07d51c2e8a9f314","ruleUID":"abc","values":{"B":12034,"C":1},
                "valueString":"[ var='B' labels={} value=12034 ]"}"#,
        );
        assert_eq!(
            (e.action, e.dedup_key.as_str(), e.severity),
            (Action::Trigger, "b07d51c2e8a9f314", Severity::Critical)
        );
        assert_eq!(e.summary, "orders backlog above 10k");
        assert_eq!(e.ends_at, None);
        let links: Vec<_> = e.links.iter().map(|l| l.text.as_deref().unwrap()).collect();
        assert_eq!(links, ["Source", "Silence", "Dashboard", "Panel"]);
        assert_eq!(
            e.images,
            [Image {
                src: "https://img.example.net/p.png".into(),
                href: Some("https://g.example.net/d/q1?viewPanel=4".into()),
                alt: Some("QueueBacklog".into()),
            }]
        );
        let details: serde_json::Value =
            serde_json::from_str(e.custom_details.unwrap().0.get()).unwrap();
        assert_eq!(
            details,
            serde_json::json!({"annotations": {"summary": "orders backlog above 10k"},
                "values": {"B": 12034, "C": 1}, "valueString": "[ var='B' labels={} value=12034 ]",
                "ruleUID": "abc"})
        );
    }

    #[test]
    fn resolve_by_status_or_past_end_and_keys_without_fingerprint() {
        let e = one(
            r#"{"status":"resolved","labels":{"alertname":"A"},"fingerprint":"f1","endsAt":"2024-05-02T09:14:00Z"}"#,
        );
        assert_eq!(e.action, Action::Resolve);
        assert_eq!(e.timestamp, Some(UnixMillis(NOW.0 - 60_000)));
        let e = one(r#"{"labels":{"alertname":"A"},"endsAt":"2024-05-02T09:14:00Z"}"#);
        assert_eq!(e.action, Action::Resolve);
        // Derived keys: deterministic, depend on the rule and labels, 32 digits.
        let a = one(r#"{"status":"firing","labels":{"alertname":"A","x":"1"},"ruleUID":"r1"}"#);
        let b = one(r#"{"status":"firing","labels":{"x":"1","alertname":"A"},"ruleUID":"r1"}"#);
        let c = one(r#"{"status":"firing","labels":{"alertname":"A","x":"1"},"ruleUID":"r2"}"#);
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_ne!(a.dedup_key, c.dedup_key);
        assert_eq!(a.dedup_key.len(), 32);
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        let p = parse(
            KIND,
            br#"{"alerts":[{"status":"firing","fingerprint":"ok","labels":{"alertname":"A"}},
                {"status":"pending","fingerprint":"f"},{"status":"firing"},
                {"status":"firing","fingerprint":"g","values":[1]}]}"#,
        )
        .unwrap();
        assert_eq!(p.events.len(), 1);
        let errors: Vec<&str> = p
            .rejected
            .iter()
            .flat_map(|r| r.errors.iter().map(String::as_str))
            .collect();
        assert_eq!(
            errors,
            [
                "'alerts[1].status' must be firing or resolved",
                "'alerts[2].fingerprint' is missing and 'alerts[2].labels' is empty (an alert needs one)",
                "'alerts[3].values' must be an object",
            ]
        );
        for (body, want) in [
            (&b"{"[..], "grafana: body is not valid JSON"),
            (b"{\"title\":\"x\"}", "grafana: 'alerts' is missing"),
            (
                b"{\"ruleId\":7,\"state\":\"alerting\",\"evalMatches\":[]}",
                "grafana: 'alerts' is missing: this is a legacy (pre-8) Grafana alert webhook; use a unified alerting webhook contact point",
            ),
        ] {
            let err = parse(KIND, body).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
}
