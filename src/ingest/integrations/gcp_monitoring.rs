//! Google Cloud Monitoring webhook notification channel, payload `version: "1.2"`, served at
//! `POST /integrations/gcp_monitoring/<routing_key>`. One incident per request.
//!
//! - **Payload**: `{"version": "1.2", "incident": {...}}` with `incident_id`, `state`,
//!   `started_at` / `ended_at` (**epoch seconds**; `ended_at` null while open), `summary`,
//!   `url`, `scoping_project_id`, `resource {type, labels}`, `resource_name`,
//!   `resource_display_name`, `metric {type, displayName, labels}`, `metadata {system_labels,
//!   user_labels}`, `policy_name`, `policy_user_labels`, `condition_name`, `observed_value`,
//!   `threshold_value`, `documentation {content, mime_type, subject}` (a plain string in test
//!   notifications) and, in newer payloads, `severity`. `version` is not checked, so a later
//!   version that keeps the shape is read (Cloud Monitoring would not retry a refusal).
//! - **Resolve**: `state` `closed`; `open` triggers (case-insensitive: captures are lower
//!   case, some consumers upper-case it); anything else is refused naming the field.
//! - **Dedup key**: `incident.incident_id`, the same on open and close.
//! - **Severity**: `incident.severity` (`CRITICAL`, `ERROR`, `WARNING`, `INFO`; "No severity"
//!   and unknown values fall through), else `policy_user_labels.severity`, else the
//!   integration's `default_severity`.
//! - **Fields**: summary = `documentation.subject`, else `summary`, else `policy_name`, else
//!   the incident id; source = `resource_name`, else `resource_display_name`, else the first
//!   resource label's value; component = `resource.type`; class = `metric.type`; group =
//!   `policy_name`; labels = `resource.labels`, `metric.labels`, `metadata.user_labels` and
//!   `policy_user_labels` (later wins), plus `project_id` (`scoping_project_id`);
//!   custom_details = `summary`, `condition_name`, `observed_value`, `threshold_value` and the
//!   documentation content; links = `url`; timestamp = `ended_at` on a close, else
//!   `started_at`.
//! - **Answer**: `202 {"status":"success","message":"Event processed","dedup_key":"..."}`;
//!   Cloud Monitoring only checks for a 2xx.

use http::Response;
use simd_json::prelude::*;

use crate::event::{Action, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::Body;
use crate::integration::Integration;

use super::fields::{details_of, Reader};
use super::{one_alert, reply, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::GcpMonitoring;

/// The Google Cloud Monitoring webhook format in the integrations registry.
pub struct Webhook;

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| read(r, req))
    }

    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::pd_style_accepted(parsed, kind)
    }
}

/// Adds `more` to `labels`, replacing names already there.
fn overlay(labels: &mut Vec<(String, String)>, more: Option<Vec<(String, String)>>) {
    for (k, v) in more.into_iter().flatten() {
        labels.retain(|(name, _)| *name != k);
        labels.push((k, v));
    }
}

fn read(r: &mut Reader<'_, '_>, req: &IngestRequest<'_>) -> Option<(Event, bool)> {
    let incident = r.req_object("incident")?;
    let mut i = r.child(Some(incident), "incident");
    let id = i.req_str("incident_id");
    let id = i.bounded(id, "incident_id", MAX_DEDUP_KEY_CHARS);
    let state = i.req_str("state");
    let started = i.timestamp("started_at");
    let ended = i.timestamp("ended_at");
    let text = i.opt_str("summary").filter(|s| !s.trim().is_empty());
    let url = i.opt_str("url").filter(|s| !s.is_empty());
    let project = i.opt_str("scoping_project_id").filter(|s| !s.is_empty());
    let resource_name = i.opt_str("resource_name").filter(|s| !s.is_empty());
    let resource_display = i.opt_str("resource_display_name").filter(|s| !s.is_empty());
    let policy = i.opt_str("policy_name").filter(|s| !s.is_empty());
    let condition = i.opt_str("condition_name").filter(|s| !s.is_empty());
    let sev = i.opt_str("severity");
    let policy_labels = i.string_map("policy_user_labels");
    let (resource_type, resource_labels) = match i.object("resource") {
        Some(res) => {
            let mut res = i.child(Some(res), "incident.resource");
            (res.opt_str("type"), res.string_map("labels"))
        }
        None => (None, None),
    };
    let (metric_type, metric_labels) = match i.object("metric") {
        Some(m) => {
            let mut m = i.child(Some(m), "incident.metric");
            (m.opt_str("type"), m.string_map("labels"))
        }
        None => (None, None),
    };
    let user_labels = match i.object("metadata") {
        Some(m) => i
            .child(Some(m), "incident.metadata")
            .string_map("user_labels"),
        None => None,
    };
    let doc = incident.get("documentation").filter(|d| !d.is_null());
    let (subject, content) = match doc {
        Some(d) if d.as_str().is_some() => (None, d.as_str()),
        Some(d) if d.is_object() => {
            let mut d = i.child(Some(d), "incident.documentation");
            (
                d.opt_str("subject").filter(|s| !s.trim().is_empty()),
                d.opt_str("content").filter(|s| !s.is_empty()),
            )
        }
        Some(_) => {
            i.errors
                .push("'incident.documentation' must be an object or a string".into());
            (None, None)
        }
        None => (None, None),
    };
    let scalar = |name: &str| {
        incident.get(name).and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.is_number().then(|| v.encode()))
        })
    };
    let observed = scalar("observed_value");
    let threshold = scalar("threshold_value");
    let action = match state {
        Some(s) if s.trim().eq_ignore_ascii_case("open") => Some(Action::Trigger),
        Some(s) if s.trim().eq_ignore_ascii_case("closed") => Some(Action::Resolve),
        Some(_) => {
            i.errors
                .push("'incident.state' must be open or closed".into());
            None
        }
        None => None,
    };
    if !r.errors.is_empty() {
        return None;
    }
    let (id, action) = (id?.trim(), action?);

    let mut event = Event::new(
        KIND,
        action,
        req.routing_key.to_string(),
        id.into(),
        req.now,
    );
    let (title, truncated) = summary(subject.or(text).or(policy).unwrap_or(id));
    event.summary = title;
    let mut labels = resource_labels.clone().unwrap_or_default();
    overlay(&mut labels, metric_labels);
    overlay(&mut labels, user_labels);
    overlay(&mut labels, policy_labels.clone());
    overlay(
        &mut labels,
        project.map(|p| vec![("project_id".to_string(), p.to_string())]),
    );
    labels.sort_unstable();
    event.severity = sev
        .and_then(Severity::parse)
        .or_else(|| {
            policy_labels
                .as_deref()
                .and_then(|l| l.iter().find(|(k, _)| k == "severity"))
                .and_then(|(_, v)| Severity::parse(v))
        })
        .unwrap_or(req.settings.default_severity);
    event.source = resource_name
        .or(resource_display)
        .or_else(|| {
            resource_labels
                .as_deref()
                .and_then(|l| l.first())
                .map(|(_, v)| v.as_str())
        })
        .unwrap_or_default()
        .to_string();
    event.component = resource_type.filter(|s| !s.is_empty()).map(str::to_string);
    event.class = metric_type.filter(|s| !s.is_empty()).map(str::to_string);
    event.group = policy.map(str::to_string);
    event.timestamp = if action == Action::Resolve {
        ended.or(started)
    } else {
        started
    };
    if let Some(href) = url {
        event.links.push(Link {
            href: href.to_string(),
            text: Some("Cloud Monitoring incident".into()),
        });
    }
    event.labels = labels.into();
    let mut details = serde_json::Map::new();
    for (k, v) in [
        ("summary", text.map(str::to_string)),
        ("condition_name", condition.map(str::to_string)),
        ("observed_value", observed),
        ("threshold_value", threshold),
        ("documentation", content.map(str::to_string)),
    ] {
        if let Some(v) = v {
            details.insert(k.into(), serde_json::Value::String(v));
        }
    }
    if !details.is_empty() {
        event.custom_details = details_of(&details);
    }
    Some((event, truncated))
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    use crate::ingest::integrations::testing::parse;
    use crate::time::UnixMillis;

    fn one(incident: &str) -> Event {
        parse(
            KIND,
            format!(r#"{{"version":"1.2","incident":{incident}}}"#).as_bytes(),
        )
        .unwrap()
        .events
        .remove(0)
    }

    #[test]
    fn state_decides_and_times_are_epoch_seconds() {
        let open =
            one(r#"{"incident_id":"0.a","state":"open","started_at":1714643100,"ended_at":null}"#);
        let closed = one(
            r#"{"incident_id":"0.a","state":"CLOSED","started_at":1714643100,"ended_at":1714643700}"#,
        );
        assert_eq!(
            (open.action, closed.action),
            (Action::Trigger, Action::Resolve)
        );
        assert_eq!(open.timestamp, Some(UnixMillis(1_714_643_100_000)));
        assert_eq!(closed.timestamp, Some(UnixMillis(1_714_643_700_000)));
        assert_eq!(open.dedup_key, closed.dedup_key);
    }

    #[test]
    fn severity_falls_back_to_the_policy_label_then_the_default() {
        let e = one(
            r#"{"incident_id":"i","state":"open","severity":"Warning","policy_user_labels":{"severity":"critical"}}"#,
        );
        assert_eq!(e.severity, Severity::Warning);
        let e = one(
            r#"{"incident_id":"i","state":"open","severity":"No severity","policy_user_labels":{"severity":"critical"}}"#,
        );
        assert_eq!(e.severity, Severity::Critical);
        let e = one(r#"{"incident_id":"i","state":"open"}"#);
        assert_eq!(e.severity, Severity::Error);
    }

    #[test]
    fn test_notifications_with_string_documentation_are_read() {
        let e = one(
            r#"{"incident_id":"12345","state":"open","summary":"Test incident","documentation":"Test documentation","resource":{"type":"gce_instance","labels":{"instance_id":"42","zone":"europe-west1-b"}}}"#,
        );
        assert_eq!(e.summary, "Test incident");
        assert_eq!(e.source, "42");
        assert_eq!(e.component.as_deref(), Some("gce_instance"));
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        for (body, want) in [
            ("{", "gcp_monitoring: body is not valid JSON"),
            (r#"{"version":"1.2"}"#, "gcp_monitoring: 'incident' is missing"),
            (
                r#"{"incident":{"state":"acknowledged","started_at":"noon","documentation":7}}"#,
                "gcp_monitoring: 'incident.incident_id' is missing or blank; 'incident.started_at' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds); 'incident.documentation' must be an object or a string; 'incident.state' must be open or closed",
            ),
        ] {
            let err = parse(KIND, body.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), want, "{body}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
}
