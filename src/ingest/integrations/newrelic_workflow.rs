//! New Relic workflow webhook (a "Destination" of type webhook used by a "Workflow"), with New
//! Relic's default Handlebars payload template, served at
//! `POST /integrations/newrelic_workflow/<routing_key>`. One issue per request.
//!
//! - **Payload**: the default template: `id` (`{{issueId}}`), `issueUrl`, `title`, `priority`,
//!   `impactedEntities[]`, `totalIncidents`, `state`, `trigger`, `isCorrelated` (a boolean or
//!   the string `"false"`, kept as sent), `createdAt`, `updatedAt` (epoch milliseconds),
//!   `sources[]`, `alertPolicyNames[]`, `alertConditionNames[]`, `workflowName`. Users edit the
//!   template; every field but `id` and `state` is optional, and the ack fields Zulip's guide
//!   adds (`acknowledgedBy`, `acknowledgedAt`) are read when present.
//! - **Resolve**: `state: CLOSED`. `ACKNOWLEDGED`, or `ACTIVATED` with a non-empty
//!   `acknowledgedBy` / `acknowledgedAt`, acknowledges (with the default template an ack
//!   arrives as `ACTIVATED` + `trigger: USER_ACTION` and cannot be told from a re-notification,
//!   so it re-triggers: harmless, it updates the open alert). `CREATED`, `ACTIVATED` and any
//!   state sluice does not know trigger. A missing `state` is refused: without it a close could
//!   never be told from an open.
//! - **Dedup key**: `id`, the issue id (a UUID), the same on every notification of an issue.
//! - **Severity**: `priority` `CRITICAL` -> critical, `HIGH` -> error, `MEDIUM` -> warning,
//!   `LOW` -> info (case-insensitive); else the integration's `default_severity`.
//! - **Fields**: summary = `title`, else the first condition name, else the id; source = the
//!   first impacted entity; class = the first condition name; group = the first policy name;
//!   labels = `workflow_name`, `priority`, and `impacted_entities`, `alert_policies`,
//!   `alert_conditions`, `sources` (each list joined with `,`); custom_details = `trigger`,
//!   `state`, `totalIncidents`, `isCorrelated` and the ack fields; links = `issueUrl`;
//!   timestamp = `updatedAt`, else `createdAt`.
//! - **Answer**: `202 {"status":"success","message":"Event processed","dedup_key":"<id>"}`;
//!   New Relic only checks for a 2xx.

use http::Response;
use simd_json::prelude::*;

use crate::event::{Action, Details, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::Body;
use crate::integration::Integration;

use super::fields::{path, severity_named, text_details, Reader};
use super::{one_alert, reply, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::NewrelicWorkflow;

/// The New Relic workflow webhook format in the integrations registry.
pub struct Webhook;

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| read(r, req))
    }

    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::pd_style_accepted(parsed, kind)
    }
}

/// `priority` as New Relic names it.
pub fn priority(value: &str) -> Option<Severity> {
    severity_named(
        value.trim(),
        &[
            ("CRITICAL", Severity::Critical),
            ("HIGH", Severity::Error),
            ("MEDIUM", Severity::Warning),
            ("LOW", Severity::Info),
        ],
    )
}

/// The strings of an array field (a single string counts as a one-item list); anything else
/// is a problem.
fn strings<'v>(r: &mut Reader<'v, '_>, name: &str) -> Vec<&'v str> {
    let Some(v) = r.value.and_then(|v| v.get(name)).filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    if let Some(s) = v.as_str() {
        return vec![s];
    }
    let Some(items) = v.as_array() else {
        r.errors.push(format!(
            "'{}' must be an array of strings",
            path(r.path, name)
        ));
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => out.push(s),
            None if item.is_null() => {}
            None => r
                .errors
                .push(format!("'{}[{i}]' must be a string", path(r.path, name))),
        }
    }
    out
}

/// A scalar field kept as text (numbers and booleans as their JSON text).
fn scalar(r: &mut Reader<'_, '_>, name: &str) -> Option<String> {
    let v = r.value.and_then(|v| v.get(name)).filter(|v| !v.is_null())?;
    if let Some(s) = v.as_str() {
        Some(s.to_string())
    } else if v.is_number() || v.is_bool() {
        Some(v.encode())
    } else {
        r.errors
            .push(format!("'{}' must be a string", path(r.path, name)));
        None
    }
}

fn read(r: &mut Reader<'_, '_>, req: &IngestRequest<'_>) -> Option<(Event, bool)> {
    let id = r.req_str("id");
    let id = r.bounded(id, "id", MAX_DEDUP_KEY_CHARS);
    let state = r.req_str("state");
    let title = r.opt_str("title").filter(|s| !s.trim().is_empty());
    let issue_url = r.opt_str("issueUrl").filter(|s| !s.is_empty());
    let prio = r.opt_str("priority");
    let trigger = r.opt_str("trigger");
    let workflow = r.opt_str("workflowName").filter(|s| !s.is_empty());
    let ack_by = scalar(r, "acknowledgedBy").filter(|s| !s.is_empty());
    let ack_at = scalar(r, "acknowledgedAt").filter(|s| !s.is_empty() && s != "0");
    let total = scalar(r, "totalIncidents");
    let correlated = scalar(r, "isCorrelated");
    let entities = strings(r, "impactedEntities");
    let policies = strings(r, "alertPolicyNames");
    let conditions = strings(r, "alertConditionNames");
    let sources = strings(r, "sources");
    let created_at = r.timestamp("createdAt");
    let updated_at = r.timestamp("updatedAt");
    if !r.errors.is_empty() {
        return None;
    }
    let (id, state) = (id?.trim(), state?.trim());

    let is = |name: &str| state.eq_ignore_ascii_case(name);
    let action = if is("CLOSED") {
        Action::Resolve
    } else if is("ACKNOWLEDGED") || (is("ACTIVATED") && (ack_by.is_some() || ack_at.is_some())) {
        Action::Acknowledge
    } else {
        Action::Trigger
    };
    let mut event = Event::new(
        KIND,
        action,
        req.routing_key.to_string(),
        id.into(),
        req.now,
    );
    let (text, truncated) = summary(title.or(conditions.first().copied()).unwrap_or(id));
    event.summary = text;
    event.severity = prio
        .and_then(priority)
        .unwrap_or(req.settings.default_severity);
    event.source = entities.first().copied().unwrap_or_default().to_string();
    event.class = conditions.first().map(|s| s.to_string());
    event.group = policies.first().map(|s| s.to_string());
    event.timestamp = updated_at.or(created_at);
    if let Some(href) = issue_url {
        event.links.push(Link {
            href: href.to_string(),
            text: Some("New Relic issue".into()),
        });
    }
    let mut labels: Vec<(String, String)> = [
        ("workflow_name", workflow.map(str::to_string)),
        ("priority", prio.map(str::to_string)),
        ("impacted_entities", join(&entities)),
        ("alert_policies", join(&policies)),
        ("alert_conditions", join(&conditions)),
        ("sources", join(&sources)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k.to_string(), v)))
    .collect();
    labels.sort_unstable();
    event.labels = labels.into();
    event.custom_details = details(&[
        ("trigger", trigger.map(str::to_string)),
        ("state", Some(state.to_string())),
        ("totalIncidents", total),
        ("isCorrelated", correlated),
        ("acknowledgedBy", ack_by),
        ("acknowledgedAt", ack_at),
    ]);
    Some((event, truncated))
}

fn join(items: &[&str]) -> Option<String> {
    (!items.is_empty()).then(|| items.join(","))
}

fn details(fields: &[(&str, Option<String>)]) -> Option<Details> {
    text_details(fields.iter().map(|(k, v)| (*k, v.as_deref())))
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    use crate::ingest::integrations::testing::parse;
    use crate::time::UnixMillis;

    fn one(body: &str) -> Event {
        parse(KIND, body.as_bytes()).unwrap().events.remove(0)
    }

    #[test]
    fn state_decides_the_action() {
        for (state, extra, want) in [
            ("CREATED", "", Action::Trigger),
            ("ACTIVATED", "", Action::Trigger),
            (
                "activated",
                r#","acknowledgedBy":"ana@example.net""#,
                Action::Acknowledge,
            ),
            (
                "ACTIVATED",
                r#","acknowledgedBy":"","acknowledgedAt":0"#,
                Action::Trigger,
            ),
            ("ACKNOWLEDGED", "", Action::Acknowledge),
            ("CLOSED", "", Action::Resolve),
            ("closed", "", Action::Resolve),
            ("SOMETHING_NEW", "", Action::Trigger),
        ] {
            let e = one(&format!(r#"{{"id":"i-1","state":"{state}"{extra}}}"#));
            assert_eq!(e.action, want, "{state} {extra}");
            assert_eq!(e.dedup_key, "i-1");
        }
    }

    #[test]
    fn priorities_map_and_unknown_takes_the_default() {
        for (p, want) in [
            ("CRITICAL", Severity::Critical),
            ("high", Severity::Error),
            ("MEDIUM", Severity::Warning),
            ("LOW", Severity::Info),
            ("URGENT", Severity::Error),
        ] {
            let e = one(&format!(
                r#"{{"id":"i","state":"ACTIVATED","priority":"{p}"}}"#
            ));
            assert_eq!(e.severity, want, "{p}");
        }
    }

    #[test]
    fn lists_and_mixed_types_are_read() {
        let e = one(
            r#"{"id":"i","state":"ACTIVATED","impactedEntities":["api","db"],"alertConditionNames":"Error rate",
                "isCorrelated":"false","totalIncidents":3,"createdAt":1714641000000,"updatedAt":null}"#,
        );
        assert_eq!(e.source, "api");
        assert_eq!(e.summary, "Error rate", "condition when there is no title");
        assert_eq!(e.timestamp, Some(UnixMillis(1_714_641_000_000)));
        assert_eq!(e.labels.get("impacted_entities"), Some("api,db"));
        let d = e.custom_details.unwrap();
        assert_eq!(
            d.0.get(),
            r#"{"isCorrelated":"false","state":"ACTIVATED","totalIncidents":"3"}"#
        );
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        for (body, want) in [
            ("{", "newrelic_workflow: body is not valid JSON"),
            ("\"x\"", "newrelic_workflow: body is not a JSON object"),
            (
                r#"{"title":"t"}"#,
                "newrelic_workflow: 'id' is missing or blank; 'state' is missing or blank",
            ),
            (
                r#"{"id":"i","state":"CLOSED","impactedEntities":[1],"updatedAt":"soon"}"#,
                "newrelic_workflow: 'impactedEntities[0]' must be a string; 'updatedAt' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)",
            ),
        ] {
            let err = parse(KIND, body.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), want, "{body}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
}
