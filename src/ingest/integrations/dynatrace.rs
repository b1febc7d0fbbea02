//! Dynatrace problem notifications through the "Custom integration" (webhook) notification
//! (Dynatrace SaaS and Managed). The body is a template with `{Placeholder}`s the user
//! writes; sluice reads the common set and documents the template below. Served at
//! `POST /integrations/dynatrace/<routing_key>`; one problem per request.
//!
//! ```json
//! {"ProblemID": "{ProblemID}", "PID": "{PID}", "State": "{State}", "ProblemTitle": "{ProblemTitle}",
//!  "ProblemSeverity": "{ProblemSeverity}", "ProblemImpact": "{ProblemImpact}", "ProblemURL": "{ProblemURL}",
//!  "ImpactedEntity": "{ImpactedEntity}", "ImpactedEntities": {ImpactedEntities}, "Tags": "{Tags}",
//!  "ProblemDetailsJSON": {ProblemDetailsJSON}}
//! ```
//!
//! with "Call webhook if problem is closed" on, so resolves are sent.
//! - **Resolve**: `State` `RESOLVED` (or `CLOSED`); `MERGED` (the problem was merged into
//!   another, whose own notification follows) resolves this one too. `OPEN` triggers. Case is
//!   ignored; any other state is refused, naming it.
//! - **Dedup key**: `ProblemID` (the problem's display id, stable from open to close), else
//!   `PID`, as text (a number is read too).
//! - **Severity**: `ProblemSeverity`: `AVAILABILITY` -> critical, `ERROR` -> error,
//!   `PERFORMANCE`, `RESOURCE_CONTENTION`, `MONITORING_UNAVAILABLE` -> warning, `CUSTOM_ALERT`,
//!   `INFO` -> info; anything else -> `default_severity`.
//! - **Fields**: summary = `ProblemTitle`; source = `ImpactedEntity`, else the first
//!   `ImpactedEntities[].name`; component = `ProblemImpact` (`APPLICATION`, `SERVICE`,
//!   `INFRASTRUCTURE`, `ENVIRONMENT`); class = `ProblemSeverity`; labels = the `key:value` items
//!   of the comma-separated `Tags` (a bare tag becomes `name = ""`); custom_details =
//!   `ImpactedEntities`, `Tags` and `ProblemDetailsJSON`; timestamp =
//!   `ProblemDetailsJSON.startTime` (trigger) or `endTime` (resolve), epoch ms, `-1` = unset;
//!   link = `ProblemURL`.
//! - **Answer**: `202` and the generic body; Dynatrace counts any 2xx as delivered.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{Action, Details, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::integration::Integration;
use crate::time::{from_epoch_number, Timestamp as Time, UnixMillis};

use super::fields::{details_of, severity_named, to_json};
use super::{one_alert, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Dynatrace;

/// The Dynatrace problem notification in the integrations registry.
pub struct Webhook;

/// `ProblemSeverity` as sluice knows it; `None` for a value it does not.
pub fn severity(value: &str) -> Option<Severity> {
    severity_named(
        value,
        &[
            ("AVAILABILITY", Severity::Critical),
            ("ERROR", Severity::Error),
            ("PERFORMANCE", Severity::Warning),
            ("RESOURCE_CONTENTION", Severity::Warning),
            ("MONITORING_UNAVAILABLE", Severity::Warning),
            ("CUSTOM_ALERT", Severity::Info),
            ("INFO", Severity::Info),
        ],
    )
}

/// A string or integer field as trimmed text; blank is absent.
fn text_or_number(v: Option<&BorrowedValue<'_>>) -> Option<String> {
    let v = v?;
    let s = match v.as_str() {
        Some(s) => s.trim().to_string(),
        None => v
            .as_u64()
            .map(|n| n.to_string())
            .or_else(|| v.as_i64().map(|n| n.to_string()))?,
    };
    (!s.is_empty()).then_some(s)
}

/// `Tags`: `"env:prod, team:payments, critical"` as sorted labels.
fn tags(raw: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = raw
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once(':') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (t.to_string(), String::new()),
        })
        .filter(|(k, _)| !k.is_empty())
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn epoch_ms(v: Option<&BorrowedValue<'_>>) -> Option<UnixMillis> {
    match v?.cast_f64().and_then(from_epoch_number) {
        Some(Time::At(t)) => Some(t),
        _ => None,
    }
}

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| {
            let root = r.value?;
            let state = r.opt_str("State").map(str::trim);
            let title = r.opt_str("ProblemTitle").filter(|s| !s.trim().is_empty());
            let sev_name = r.opt_str("ProblemSeverity").filter(|s| !s.is_empty());
            let impact = r.opt_str("ProblemImpact").filter(|s| !s.is_empty());
            let url = r.opt_str("ProblemURL").filter(|s| !s.is_empty());
            let entity = r.opt_str("ImpactedEntity").filter(|s| !s.trim().is_empty());
            let tag_text = r.opt_str("Tags").unwrap_or_default();
            let problem_details = r.object("ProblemDetailsJSON");
            let key =
                text_or_number(root.get("ProblemID")).or_else(|| text_or_number(root.get("PID")));
            let action = match state {
                Some(s) if s.eq_ignore_ascii_case("OPEN") => Action::Trigger,
                Some(s)
                    if ["RESOLVED", "CLOSED", "MERGED"]
                        .iter()
                        .any(|n| s.eq_ignore_ascii_case(n)) =>
                {
                    Action::Resolve
                }
                Some(s) => {
                    r.errors.push(format!(
                        "'State' must be OPEN, RESOLVED, CLOSED or MERGED (got {s:?})"
                    ));
                    Action::Trigger
                }
                None => {
                    r.errors.push("'State' is missing".to_string());
                    Action::Trigger
                }
            };
            match &key {
                None => r
                    .errors
                    .push("'ProblemID' is missing or blank (and so is 'PID')".to_string()),
                Some(k) if k.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() => r
                    .errors
                    .push("'ProblemID' must be at most 255 characters".to_string()),
                Some(_) => {}
            }
            let (Some(key), true) = (key, r.errors.is_empty()) else {
                return None;
            };
            let entities = root.get("ImpactedEntities").and_then(|v| v.as_array());
            let mut event = Event::new(KIND, action, req.routing_key.to_string(), key, req.now);
            let (s, truncated) = summary(title.unwrap_or(&event.dedup_key));
            event.summary = s;
            event.severity = sev_name
                .and_then(severity)
                .unwrap_or(req.settings.default_severity);
            event.source = entity
                .map(str::to_string)
                .or_else(|| {
                    entities
                        .and_then(|e| e.first())
                        .and_then(|e| e.get("name"))
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            event.component = impact.map(str::to_string);
            event.class = sev_name.map(str::to_string);
            event.labels = tags(tag_text).into();
            let time = |name: &str| epoch_ms(problem_details.and_then(|d| d.get(name)));
            event.timestamp = match action {
                Action::Resolve => time("endTime").or_else(|| time("startTime")),
                _ => time("startTime"),
            };
            event.links = url
                .map(|href| Link {
                    href: href.to_string(),
                    text: Some("Dynatrace problem".into()),
                })
                .into_iter()
                .collect();
            event.custom_details = details(root);
            Some((event, truncated))
        })
    }
}

/// `ImpactedEntities`, `Tags` and `ProblemDetailsJSON`, where present, as one object.
fn details(root: &BorrowedValue<'_>) -> Option<Details> {
    let mut map = serde_json::Map::new();
    for name in ["ImpactedEntities", "Tags", "ProblemDetailsJSON"] {
        if let Some(v) = root.get(name).filter(|v| !v.is_null()) {
            if let Some(v) = to_json(v) {
                map.insert(name.to_string(), v);
            }
        }
    }
    details_of(&map)
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::ingest::integrations::testing::parse;

    #[test]
    fn states_decide_and_the_key_is_the_problem_id() {
        for (state, want) in [
            ("OPEN", Action::Trigger),
            ("resolved", Action::Resolve),
            ("CLOSED", Action::Resolve),
            ("MERGED", Action::Resolve),
        ] {
            let p = parse(
                KIND,
                format!(r#"{{"ProblemID":"P-12","PID":"-99","State":"{state}"}}"#),
            )
            .unwrap();
            assert_eq!(p.events[0].action, want, "{state}");
            assert_eq!(p.events[0].dedup_key, "P-12");
        }
        let p = parse(KIND, r#"{"PID":-4411,"State":"OPEN"}"#).unwrap();
        assert_eq!(p.events[0].dedup_key, "-4411");
    }

    #[test]
    fn severities_and_tags() {
        for (name, want) in [
            ("AVAILABILITY", Some(Severity::Critical)),
            ("error", Some(Severity::Error)),
            ("RESOURCE_CONTENTION", Some(Severity::Warning)),
            ("CUSTOM_ALERT", Some(Severity::Info)),
            ("SOMETHING_NEW", None),
        ] {
            assert_eq!(severity(name), want, "{name}");
        }
        assert_eq!(
            tags("team:payments, critical,, env : prod"),
            [
                ("critical".to_string(), String::new()),
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "payments".to_string()),
            ]
        );
    }

    #[test]
    fn refusals_name_the_fields() {
        for (body, want) in [
            ("{", "dynatrace: body is not valid JSON"),
            ("{}", "dynatrace: 'State' is missing; 'ProblemID' is missing or blank (and so is 'PID')"),
            (
                r#"{"ProblemID":"1","State":"ACKED","ProblemTitle":5}"#,
                "dynatrace: 'ProblemTitle' must be a string; 'State' must be OPEN, RESOLVED, CLOSED or MERGED (got \"ACKED\")",
            ),
        ] {
            assert_eq!(parse(KIND, body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
