//! Azure Monitor alerts through an action group webhook with the **common alert schema** on
//! (`schemaId: "azureMonitorCommonAlertSchema"`, essentials version 1.0), served at
//! `POST /integrations/azure_monitor/<routing_key>`. One alert per request.
//!
//! - **Payload**: `data.essentials` (`alertId`, `alertRule`, `severity`, `signalType`,
//!   `monitorCondition`, `monitoringService`, `alertTargetIDs[]`, `configurationItems[]`,
//!   `originAlertId`, `firedDateTime`, `resolvedDateTime` with 7 fractional digits,
//!   `description`, `targetResourceGroup`, `targetResourceType`, `investigationLink`),
//!   `data.alertContext` (varies by signal; metric alerts' `condition.allOf[].dimensions` are
//!   read) and `data.customProperties` (a string map or null). A payload with another
//!   `schemaId` (the older per-signal schemas) is refused naming `schemaId`: turn the common
//!   schema on in the action group.
//! - **Resolve**: `monitorCondition` `Resolved`; `Fired` triggers (case-insensitive; anything
//!   else is refused). Activity log alerts are stateless and only ever fire.
//! - **Dedup key**: `essentials.alertId`, the ARM id of the alert instance, the same on
//!   fire and resolve.
//! - **Severity**: `Sev0` -> critical, `Sev1` -> error, `Sev2` -> warning, `Sev3` / `Sev4`
//!   -> info; else the integration's `default_severity`.
//! - **Fields**: summary = `alertRule: description` (or either alone, or the alert id);
//!   source = the first `configurationItems` entry, else the last segment of the first
//!   `alertTargetIDs` entry; component = `targetResourceType`; group =
//!   `targetResourceGroup`; class = `alertRule`; labels = `customProperties`, the metric
//!   condition's dimensions, `signal_type`, `monitoring_service` and `severity` (as sent);
//!   custom_details = `description`, `alertTargetIDs`, `originAlertId` and
//!   `alertContext.condition`; links = `investigationLink`; timestamp = `resolvedDateTime` on
//!   a resolve, else `firedDateTime`.
//! - **Answer**: `202 {"status":"success","message":"Event processed","dedup_key":"..."}`.
//!   Azure retries 408, 429, 503 and 504 (overload answers 503); a `400` is final.

use http::Response;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{Action, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::Body;
use crate::integration::Integration;

use super::fields::{details_of, to_json, Reader};
use super::{one_alert, reply, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::AzureMonitor;

/// The only `schemaId` read.
pub const COMMON_SCHEMA: &str = "azureMonitorCommonAlertSchema";

/// The Azure Monitor common alert schema format in the integrations registry.
pub struct CommonAlert;

impl Format for CommonAlert {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| read(r, req))
    }

    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::pd_style_accepted(parsed, kind)
    }
}

/// `Sev0` .. `Sev4`.
pub fn severity(value: &str) -> Option<Severity> {
    let v = value.trim();
    let n = v
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("sev"))
        .map_or(v, |_| &v[3..]);
    match n {
        "0" => Some(Severity::Critical),
        "1" => Some(Severity::Error),
        "2" => Some(Severity::Warning),
        "3" | "4" => Some(Severity::Info),
        _ => None,
    }
}

/// The strings of an array of strings (others skipped), with a problem for a non-array.
fn strings<'v>(r: &mut Reader<'v, '_>, name: &str) -> Vec<&'v str> {
    let Some(v) = r.value.and_then(|v| v.get(name)).filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    match v.as_array() {
        Some(items) => items.iter().filter_map(|i| i.as_str()).collect(),
        None => {
            r.errors.push(format!(
                "'{}' must be an array",
                super::fields::path(r.path, name)
            ));
            Vec::new()
        }
    }
}

/// `alertContext.condition.allOf[].dimensions[] {name, value}` of metric alerts; any other
/// context shape has none.
fn dimensions(context: Option<&BorrowedValue<'_>>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let all_of = context
        .and_then(|c| c.get("condition"))
        .and_then(|c| c.get("allOf"))
        .and_then(|a| a.as_array());
    for criterion in all_of.into_iter().flatten() {
        let dims = criterion.get("dimensions").and_then(|d| d.as_array());
        for d in dims.into_iter().flatten() {
            if let (Some(n), Some(v)) = (
                d.get("name").and_then(|n| n.as_str()),
                d.get("value").and_then(|v| v.as_str()),
            ) {
                out.push((n.to_string(), v.to_string()));
            }
        }
    }
    out
}

fn read(r: &mut Reader<'_, '_>, req: &IngestRequest<'_>) -> Option<(Event, bool)> {
    let schema = r.opt_str("schemaId");
    if let Some(s) = schema.filter(|s| *s != COMMON_SCHEMA) {
        r.errors.push(format!(
            "'schemaId' is {s:?}, not {COMMON_SCHEMA:?}: turn on the common alert schema in the action group"
        ));
        return None;
    }
    let data = r.req_object("data")?;
    let mut d = r.child(Some(data), "data");
    let essentials = d.req_object("essentials");
    let context = d.object("alertContext");
    let custom = d.string_map("customProperties");
    let essentials = essentials?;
    let mut e = d.child(Some(essentials), "data.essentials");
    let alert_id = e.req_str("alertId");
    let alert_id = e.bounded(alert_id, "alertId", MAX_DEDUP_KEY_CHARS);
    let condition = e.req_str("monitorCondition");
    let rule = e.opt_str("alertRule").filter(|s| !s.is_empty());
    let sev = e.opt_str("severity").filter(|s| !s.is_empty());
    let signal = e.opt_str("signalType").filter(|s| !s.is_empty());
    let service = e.opt_str("monitoringService").filter(|s| !s.is_empty());
    let description = e.opt_str("description").filter(|s| !s.trim().is_empty());
    let resource_group = e.opt_str("targetResourceGroup").filter(|s| !s.is_empty());
    let resource_type = e.opt_str("targetResourceType").filter(|s| !s.is_empty());
    let link = e.opt_str("investigationLink").filter(|s| !s.is_empty());
    let origin = e.opt_str("originAlertId").filter(|s| !s.is_empty());
    let fired = e.timestamp("firedDateTime");
    let resolved = e.timestamp("resolvedDateTime");
    let targets = strings(&mut e, "alertTargetIDs");
    let items = strings(&mut e, "configurationItems");
    let action = match condition {
        Some(c) if c.eq_ignore_ascii_case("Fired") => Some(Action::Trigger),
        Some(c) if c.eq_ignore_ascii_case("Resolved") => Some(Action::Resolve),
        Some(_) => {
            e.errors
                .push("'data.essentials.monitorCondition' must be Fired or Resolved".into());
            None
        }
        None => None,
    };
    if !r.errors.is_empty() {
        return None;
    }
    let (alert_id, action) = (alert_id?, action?);

    let mut event = Event::new(
        KIND,
        action,
        req.routing_key.to_string(),
        alert_id.to_string(),
        req.now,
    );
    let text = match (rule, description) {
        (Some(rule), Some(desc)) => format!("{rule}: {desc}"),
        (Some(one), None) | (None, Some(one)) => one.to_string(),
        (None, None) => alert_id.to_string(),
    };
    let (text, truncated) = summary(&text);
    event.summary = text;
    event.severity = sev
        .and_then(severity)
        .unwrap_or(req.settings.default_severity);
    event.source = items
        .first()
        .copied()
        .or_else(|| {
            targets
                .first()
                .and_then(|t| t.rsplit('/').find(|s| !s.is_empty()))
        })
        .unwrap_or_default()
        .to_string();
    event.component = resource_type.map(str::to_string);
    event.group = resource_group.map(str::to_string);
    event.class = rule.map(str::to_string);
    event.timestamp = if action == Action::Resolve {
        resolved.or(fired)
    } else {
        fired
    };
    if let Some(href) = link {
        event.links.push(Link {
            href: href.to_string(),
            text: Some("Azure Monitor".into()),
        });
    }
    let mut labels = custom.unwrap_or_default();
    for (k, v) in dimensions(context) {
        labels.retain(|(name, _)| *name != k);
        labels.push((k, v));
    }
    for (k, v) in [
        ("signal_type", signal),
        ("monitoring_service", service),
        ("severity", sev),
    ] {
        if let Some(v) = v {
            labels.retain(|(name, _)| name != k);
            labels.push((k.to_string(), v.to_string()));
        }
    }
    labels.sort_unstable();
    event.labels = labels.into();

    let mut details = serde_json::Map::new();
    if let Some(desc) = description {
        details.insert("description".into(), desc.into());
    }
    if !targets.is_empty() {
        details.insert("alertTargetIDs".into(), targets.into());
    }
    if let Some(origin) = origin {
        details.insert("originAlertId".into(), origin.into());
    }
    if let Some(c) = context.and_then(|c| c.get("condition")) {
        if let Some(v) = to_json(c) {
            details.insert("condition".into(), v);
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

    fn essentials(fields: &str) -> String {
        format!(
            r#"{{"schemaId":"azureMonitorCommonAlertSchema","data":{{"essentials":{{{fields}}}}}}}"#
        )
    }

    #[test]
    fn severities_map() {
        for (s, want) in [
            ("Sev0", Some(Severity::Critical)),
            ("Sev1", Some(Severity::Error)),
            ("sev2", Some(Severity::Warning)),
            ("Sev3", Some(Severity::Info)),
            ("Sev4", Some(Severity::Info)),
            ("Sev5", None),
            ("é", None),
        ] {
            assert_eq!(severity(s), want, "{s}");
        }
    }

    #[test]
    fn monitor_condition_decides_and_resolves_keep_the_key() {
        let fired = essentials(
            r#""alertId":"/subscriptions/s/alerts/1","monitorCondition":"Fired","firedDateTime":"2024-05-02T09:40:11.2837461Z""#,
        );
        let resolved = essentials(
            r#""alertId":"/subscriptions/s/alerts/1","monitorCondition":"Resolved","firedDateTime":"2024-05-02T09:40:11.2837461Z","resolvedDateTime":"2024-05-02T09:55:00.0000000Z""#,
        );
        let a = parse(KIND, fired.as_bytes()).unwrap().events.remove(0);
        let b = parse(KIND, resolved.as_bytes()).unwrap().events.remove(0);
        assert_eq!((a.action, b.action), (Action::Trigger, Action::Resolve));
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_eq!(a.timestamp, Some(UnixMillis(1_714_642_811_283)));
        assert_eq!(b.timestamp, Some(UnixMillis(1_714_643_700_000)));
        assert_eq!(a.summary, "/subscriptions/s/alerts/1");
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        for (body, want) in [
            ("<xml/>", "azure_monitor: body is not valid JSON"),
            (
                r#"{"schemaId":"Microsoft.Insights/activityLogs","data":{}}"#,
                "azure_monitor: 'schemaId' is \"Microsoft.Insights/activityLogs\", not \"azureMonitorCommonAlertSchema\": turn on the common alert schema in the action group",
            ),
            (r#"{"schemaId":"azureMonitorCommonAlertSchema"}"#, "azure_monitor: 'data' is missing"),
            (
                &essentials(r#""monitorCondition":"Pending""#),
                "azure_monitor: 'data.essentials.alertId' is missing or blank; 'data.essentials.monitorCondition' must be Fired or Resolved",
            ),
        ] {
            let err = parse(KIND, body.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), want, "{body}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
}
