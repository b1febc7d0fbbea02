//! New Relic legacy alert-policy webhook channel (deprecated by New Relic in favour of
//! workflows, still sent by accounts not yet migrated), default JSON payload, served at
//! `POST /integrations/newrelic_legacy/<routing_key>`. One incident per request.
//!
//! - **Payload**: `account_id`, `account_name`, `condition_id`, `condition_name`,
//!   `condition_description`, `current_state`, `details`, `duration`, `event_type`
//!   (`INCIDENT`), `incident_id`, `incident_url`, `incident_acknowledge_url`, `owner`,
//!   `policy_name`, `policy_url`, `runbook_url`, `severity`, `targets[] {id, name, link,
//!   labels, product, type}`, `timestamp` (epoch milliseconds), `violation_callback_url`,
//!   `violation_chart_url`, `metadata`. Ids may be numbers or strings. The channel's form
//!   payload option is not read (JSON only; the default is JSON).
//! - **Resolve**: `current_state` `closed`; `acknowledged` acknowledges; `open` (and any other
//!   value) triggers, case-insensitively (older payloads are upper-case). Without
//!   `current_state`, an `event_type` of `INCIDENT_CLOSED` / `INCIDENT_ACKNOWLEDGED` /
//!   `INCIDENT_OPEN` decides; with neither the request is refused.
//! - **Dedup key**: `incident_id` (a number in New Relic's payloads, kept as its decimal text),
//!   the same on open, acknowledge and close.
//! - **Severity**: `severity` `CRITICAL` -> critical, `WARNING` -> warning, `INFO` -> info;
//!   else the integration's `default_severity`.
//! - **Fields**: summary = `details`, else `condition_name`, else the incident id; source =
//!   the first target's `name`; component = its `product`; class = `condition_name`; group =
//!   `policy_name`; labels = the first target's `labels` plus `account_id`, `account_name`,
//!   `target_type` and `owner`; custom_details = `condition_description`, `duration`, the
//!   violation counts and `metadata`; links = `incident_url`, `runbook_url`, `policy_url`,
//!   the first target's `link`; images = `violation_chart_url`; timestamp = `timestamp`.
//! - **Answer**: `202 {"status":"success","message":"Event processed","dedup_key":"..."}`;
//!   New Relic only checks for a 2xx.

use http::Response;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{Action, Details, Event, Image, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::Body;
use crate::integration::Integration;

use super::fields::{details_of, severity_named, to_json};
use super::fields::{path, Reader};
use super::{one_alert, reply, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::NewrelicLegacy;

/// The New Relic legacy webhook format in the integrations registry.
pub struct Webhook;

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| read(r, req))
    }

    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::pd_style_accepted(parsed, kind)
    }
}

/// `severity` as New Relic names it.
pub fn severity(value: &str) -> Option<Severity> {
    severity_named(
        value.trim(),
        &[
            ("CRITICAL", Severity::Critical),
            ("WARNING", Severity::Warning),
            ("INFO", Severity::Info),
        ],
    )
}

/// A string or number field as text, trimmed; empty is absent; other types are a problem.
fn scalar(r: &mut Reader<'_, '_>, name: &str) -> Option<String> {
    let v = r.value.and_then(|v| v.get(name)).filter(|v| !v.is_null())?;
    let text = if let Some(s) = v.as_str() {
        s.trim().to_string()
    } else if v.is_number() || v.is_bool() {
        v.encode()
    } else {
        r.errors.push(format!(
            "'{}' must be a string or a number",
            path(r.path, name)
        ));
        return None;
    };
    (!text.is_empty()).then_some(text)
}

fn action_of(current_state: Option<&str>, event_type: Option<&str>) -> Option<Action> {
    if let Some(s) = current_state {
        let is = |name: &str| s.trim().eq_ignore_ascii_case(name);
        return Some(if is("closed") {
            Action::Resolve
        } else if is("acknowledged") {
            Action::Acknowledge
        } else {
            Action::Trigger
        });
    }
    let t = event_type?.trim();
    let is = |name: &str| t.eq_ignore_ascii_case(name);
    if is("INCIDENT_CLOSED") {
        Some(Action::Resolve)
    } else if is("INCIDENT_ACKNOWLEDGED") {
        Some(Action::Acknowledge)
    } else if is("INCIDENT_OPEN") {
        Some(Action::Trigger)
    } else {
        None
    }
}

fn read(r: &mut Reader<'_, '_>, req: &IngestRequest<'_>) -> Option<(Event, bool)> {
    let incident_id = scalar(r, "incident_id");
    let current_state = r.opt_str("current_state").filter(|s| !s.trim().is_empty());
    let event_type = r.opt_str("event_type");
    let details_text = r.opt_str("details").filter(|s| !s.trim().is_empty());
    let condition = r.opt_str("condition_name").filter(|s| !s.trim().is_empty());
    let policy = r.opt_str("policy_name").filter(|s| !s.trim().is_empty());
    let sev = r.opt_str("severity");
    let account_id = scalar(r, "account_id");
    let account_name = r.opt_str("account_name").filter(|s| !s.is_empty());
    let owner = r.opt_str("owner").filter(|s| !s.is_empty());
    let mut links = Vec::new();
    for (name, text) in [
        ("incident_url", "New Relic incident"),
        ("runbook_url", "Runbook"),
        ("policy_url", "Policy"),
    ] {
        if let Some(href) = r.opt_str(name).filter(|s| !s.is_empty()) {
            links.push(Link {
                href: href.to_string(),
                text: Some(text.into()),
            });
        }
    }
    let chart = r.opt_str("violation_chart_url").filter(|s| !s.is_empty());
    let timestamp = r.timestamp("timestamp");
    let target = first_target(r);
    let extra = details(r);
    if incident_id.is_none() && !r.errors.iter().any(|e| e.starts_with("'incident_id'")) {
        r.errors.push("'incident_id' is missing or blank".into());
    }
    if !r.errors.is_empty() {
        return None;
    }
    let incident_id = incident_id?;
    if incident_id.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() {
        r.errors.push(format!(
            "'incident_id' must be at most {MAX_DEDUP_KEY_CHARS} characters"
        ));
        return None;
    }
    let Some(action) = action_of(current_state, event_type) else {
        r.errors.push(
            "'current_state' is missing (open, acknowledged or closed), and 'event_type' \
             does not say the state either"
                .into(),
        );
        return None;
    };

    let mut event = Event::new(
        KIND,
        action,
        req.routing_key.to_string(),
        incident_id,
        req.now,
    );
    let (text, truncated) = summary(details_text.or(condition).unwrap_or(&event.dedup_key));
    event.summary = text;
    event.severity = sev
        .and_then(severity)
        .unwrap_or(req.settings.default_severity);
    event.class = condition.map(str::to_string);
    event.group = policy.map(str::to_string);
    event.timestamp = timestamp;
    let mut labels = Vec::new();
    if let Some(t) = target {
        event.source = t.name.unwrap_or_default();
        event.component = t.product;
        if let Some(href) = t.link {
            links.push(Link {
                href,
                text: Some("Target".into()),
            });
        }
        labels = t.labels;
        labels.extend(t.kind.map(|k| ("target_type".to_string(), k)));
    }
    for (k, v) in [
        ("account_id", account_id),
        ("account_name", account_name.map(str::to_string)),
        ("owner", owner.map(str::to_string)),
    ] {
        if let Some(v) = v {
            labels.retain(|(name, _)| name != k);
            labels.push((k.to_string(), v));
        }
    }
    labels.sort_unstable();
    event.labels = labels.into();
    event.links = links;
    if let Some(src) = chart {
        event.images.push(Image {
            src: src.to_string(),
            href: None,
            alt: Some("Violation chart".into()),
        });
    }
    event.custom_details = extra;
    Some((event, truncated))
}

struct Target {
    name: Option<String>,
    product: Option<String>,
    kind: Option<String>,
    link: Option<String>,
    labels: Vec<(String, String)>,
}

/// `targets[0]`, the entity the violation is on.
fn first_target(r: &mut Reader<'_, '_>) -> Option<Target> {
    let targets = r.value?.get("targets").filter(|v| !v.is_null())?;
    let Some(items) = targets.as_array() else {
        r.errors.push("'targets' must be an array".into());
        return None;
    };
    let first = items.first()?;
    if !first.is_object() {
        r.errors.push("'targets[0]' must be an object".into());
        return None;
    }
    let mut t = r.child(Some(first), "targets[0]");
    let name = t.opt_str("name").filter(|s| !s.is_empty());
    let product = t.opt_str("product").filter(|s| !s.is_empty());
    let kind = t.opt_str("type").filter(|s| !s.is_empty());
    let link = t.opt_str("link").filter(|s| !s.is_empty());
    let labels = t.string_map("labels").unwrap_or_default();
    Some(Target {
        name: name.map(str::to_string),
        product: product.map(str::to_string),
        kind: kind.map(str::to_string),
        link: link.map(str::to_string),
        labels,
    })
}

/// The payload fields kept as details, as sent.
fn details(r: &mut Reader<'_, '_>) -> Option<Details> {
    let root: &BorrowedValue<'_> = r.value?;
    let obj = root.as_object()?;
    let mut map = serde_json::Map::new();
    for (k, v) in obj.iter() {
        let keep = matches!(
            k.as_ref(),
            "condition_description" | "duration" | "metadata" | "condition_id"
        ) || k.starts_with("open_violations_count")
            || k.starts_with("closed_violations_count");
        if keep && !v.is_null() {
            if let Some(v) = to_json(v) {
                map.insert(k.to_string(), v);
            }
        }
    }
    details_of(&map)
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    use crate::ingest::integrations::testing::parse;

    fn one(body: &str) -> Event {
        parse(KIND, body.as_bytes()).unwrap().events.remove(0)
    }

    #[test]
    fn states_and_event_types_decide_the_action() {
        for (fields, want) in [
            (r#""current_state":"open""#, Action::Trigger),
            (r#""current_state":"OPEN""#, Action::Trigger),
            (r#""current_state":"acknowledged""#, Action::Acknowledge),
            (r#""current_state":"closed""#, Action::Resolve),
            (r#""event_type":"INCIDENT_CLOSED""#, Action::Resolve),
            (
                r#""current_state":"open","event_type":"INCIDENT_CLOSED""#,
                Action::Trigger,
            ),
        ] {
            let e = one(&format!(r#"{{"incident_id":42,{fields}}}"#));
            assert_eq!((e.action, e.dedup_key.as_str()), (want, "42"), "{fields}");
        }
        let err = parse(KIND, br#"{"incident_id":42,"event_type":"INCIDENT"}"#).unwrap_err();
        assert!(
            err.to_string().contains("'current_state' is missing"),
            "{err}"
        );
    }

    #[test]
    fn severities_map_and_target_fields_are_read() {
        for (s, want) in [
            ("CRITICAL", Severity::Critical),
            ("warning", Severity::Warning),
            ("INFO", Severity::Info),
            ("P1", Severity::Error),
        ] {
            let e = one(&format!(
                r#"{{"incident_id":"7","current_state":"open","severity":"{s}"}}"#
            ));
            assert_eq!(e.severity, want, "{s}");
        }
        let e = one(
            r#"{"incident_id":"7","current_state":"open","account_id":99,
                "targets":[{"name":"web-1","product":"APM","type":"Application","labels":{"env":"prod","account_id":"x"}}]}"#,
        );
        assert_eq!(
            (e.source.as_str(), e.component.as_deref()),
            ("web-1", Some("APM"))
        );
        assert_eq!(
            e.labels,
            [
                ("account_id".to_string(), "99".to_string()),
                ("env".to_string(), "prod".to_string()),
                ("target_type".to_string(), "Application".to_string()),
            ]
        );
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        for (body, want) in [
            ("", "newrelic_legacy: body is not valid JSON"),
            ("[]", "newrelic_legacy: body is not a JSON object"),
            (
                r#"{"current_state":"open"}"#,
                "newrelic_legacy: 'incident_id' is missing or blank",
            ),
            (
                r#"{"incident_id":[1],"current_state":"open","targets":{}}"#,
                "newrelic_legacy: 'incident_id' must be a string or a number; 'targets' must be an array",
            ),
        ] {
            let err = parse(KIND, body.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), want, "{body}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
}
