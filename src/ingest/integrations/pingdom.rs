//! Pingdom (SolarWinds) webhook alerting integration, the state-change payload of uptime and
//! transaction checks. Served at `POST /integrations/pingdom/<routing_key>`; one state change
//! per request.
//!
//! - **Body**: `check_id` (integer), `check_name`, `check_type` (`HTTP`, `SMTP`, `PING`,
//!   `TRANSACTION`, ...), `check_params {hostname, full_url, ...}`, `tags[]`,
//!   `previous_state` / `current_state`, `importance_level`, `state_changed_timestamp` (epoch
//!   seconds), `state_changed_utc_time` (ISO without a zone: UTC), `description`,
//!   `long_description`, `first_probe` / `second_probe`.
//! - **Resolve**: `current_state` `UP` (transaction checks: `SUCCESS`) resolves; `DOWN`
//!   (`FAILING`) triggers; case is ignored; anything else is refused, naming it.
//! - **Dedup key**: `check_id`, as text (a check is one alert at a time).
//! - **Severity**: `importance_level` `HIGH` -> critical, `LOW` -> warning; else
//!   `default_severity`.
//! - **Fields**: summary = `<check_name> is <current_state>: <description>`; source =
//!   `check_params.hostname`, else `check_params.full_url`; component = `check_name`; class =
//!   `check_type`; labels = `tags` (each tag a label with an empty value); custom_details =
//!   description, long description, states and probes; timestamp = `state_changed_timestamp`,
//!   else `state_changed_utc_time`; link = `check_params.full_url` ("Checked URL").
//! - **Answer**: `202` and the generic body; Pingdom only looks for a 2xx.

use simd_json::prelude::*;

use crate::event::{Action, Event, Link, Severity};
use crate::integration::Integration;

use super::fields::{details_of, severity_named, to_json};
use super::{one_alert, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Pingdom;

/// The Pingdom webhook in the integrations registry.
pub struct Webhook;

/// `importance_level` as a severity.
pub fn severity(level: &str) -> Option<Severity> {
    severity_named(
        level,
        &[("HIGH", Severity::Critical), ("LOW", Severity::Warning)],
    )
}

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| {
            let root = r.value?;
            let check_id = match root.get("check_id").filter(|v| !v.is_null()) {
                None => {
                    r.errors.push("'check_id' is missing".to_string());
                    None
                }
                Some(v) => match v.as_u64().map(|n| n.to_string()).or_else(|| {
                    v.as_str()
                        .map(str::trim)
                        .filter(|s| !s.is_empty() && s.len() < 256)
                        .map(str::to_string)
                }) {
                    Some(id) => Some(id),
                    None => {
                        r.errors
                            .push("'check_id' must be an integer (or its text)".to_string());
                        None
                    }
                },
            };
            let name = r.opt_str("check_name").filter(|s| !s.trim().is_empty());
            let check_type = r.opt_str("check_type").filter(|s| !s.is_empty());
            let state = r.req_str("current_state").map(str::trim);
            let importance = r.opt_str("importance_level");
            let description = r.opt_str("description").filter(|s| !s.trim().is_empty());
            let mut timestamp = r.timestamp("state_changed_timestamp");
            if timestamp.is_none() {
                timestamp = r.timestamp("state_changed_utc_time");
            }
            let params = r.object("check_params");
            let mut p = r.child(params, "check_params");
            let hostname = p.opt_str("hostname").filter(|s| !s.trim().is_empty());
            let full_url = p.opt_str("full_url").filter(|s| !s.trim().is_empty());
            let action = match state {
                Some(s) if s.eq_ignore_ascii_case("DOWN") || s.eq_ignore_ascii_case("FAILING") => {
                    Some(Action::Trigger)
                }
                Some(s) if s.eq_ignore_ascii_case("UP") || s.eq_ignore_ascii_case("SUCCESS") => {
                    Some(Action::Resolve)
                }
                Some(s) => {
                    r.errors.push(format!(
                        "'current_state' must be DOWN, UP, FAILING or SUCCESS (got {s:?})"
                    ));
                    None
                }
                None => None,
            };
            let (Some(key), Some(action), true) = (check_id, action, r.errors.is_empty()) else {
                return None;
            };
            let state = state.unwrap_or_default();
            let mut event = Event::new(KIND, action, req.routing_key.to_string(), key, req.now);
            let head = format!("{} is {state}", name.unwrap_or(&event.dedup_key));
            let (s, truncated) = summary(&match description {
                Some(d) => format!("{head}: {d}"),
                None => head,
            });
            event.summary = s;
            event.severity = importance
                .and_then(severity)
                .unwrap_or(req.settings.default_severity);
            event.source = hostname.or(full_url).unwrap_or_default().to_string();
            event.component = name.map(str::to_string);
            event.class = check_type.map(str::to_string);
            event.timestamp = timestamp;
            let mut labels: Vec<(String, String)> = root
                .get("tags")
                .and_then(|t| t.as_array())
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .filter(|t| !t.trim().is_empty())
                .map(|t| (t.trim().to_string(), String::new()))
                .collect();
            labels.sort();
            labels.dedup();
            event.labels = labels.into();
            event.links = full_url
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                .map(|href| Link {
                    href: href.to_string(),
                    text: Some("Checked URL".into()),
                })
                .into_iter()
                .collect();
            let mut map = serde_json::Map::new();
            for name in [
                "description",
                "long_description",
                "previous_state",
                "current_state",
                "importance_level",
                "first_probe",
                "second_probe",
            ] {
                if let Some(v) = root.get(name).filter(|v| !v.is_null()).and_then(to_json) {
                    map.insert(name.to_string(), v);
                }
            }
            event.custom_details = details_of(&map);
            Some((event, truncated))
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::ingest::integrations::testing::parse;
    use crate::time::UnixMillis;

    #[test]
    fn states_decide_and_the_key_is_the_check_id() {
        for (state, want) in [
            ("DOWN", Action::Trigger),
            ("failing", Action::Trigger),
            ("UP", Action::Resolve),
            ("SUCCESS", Action::Resolve),
        ] {
            let p = parse(KIND, format!(
                r#"{{"check_id":1234,"check_name":"Shop","current_state":"{state}","state_changed_timestamp":1714641290}}"#
            ))
            .unwrap();
            let e = &p.events[0];
            assert_eq!((e.action, e.dedup_key.as_str()), (want, "1234"), "{state}");
            assert_eq!(e.timestamp, Some(UnixMillis(1_714_641_290_000)));
        }
        let e = parse(KIND, r#"{"check_id":"77","current_state":"DOWN","importance_level":"HIGH","state_changed_utc_time":"2024-05-02T09:14:50"}"#)
            .unwrap()
            .events
            .remove(0);
        assert_eq!(
            (e.dedup_key.as_str(), e.severity),
            ("77", Severity::Critical)
        );
        assert_eq!(e.summary, "77 is DOWN");
        assert_eq!(e.timestamp, Some(UnixMillis(1_714_641_290_000)));
    }

    #[test]
    fn refusals_name_the_fields() {
        for (body, want) in [
            ("{", "pingdom: body is not valid JSON"),
            ("{}", "pingdom: 'check_id' is missing; 'current_state' is missing or blank"),
            (
                r#"{"check_id":-3,"current_state":"PAUSED"}"#,
                "pingdom: 'check_id' must be an integer (or its text); 'current_state' must be DOWN, UP, FAILING or SUCCESS (got \"PAUSED\")",
            ),
        ] {
            assert_eq!(parse(KIND, body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
