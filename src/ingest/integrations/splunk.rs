//! Splunk Enterprise / Splunk Cloud "Webhook" alert action (Splunk 8 and 9). Served at
//! `POST /integrations/splunk/<routing_key>`; one request per triggered alert (or per result,
//! with "Trigger: For each result").
//!
//! - **Body**: `{"result": {first result row, string values (multivalue fields as arrays)},
//!   "sid", "results_link", "search_name" (null for ad-hoc searches), "owner", "app"}`. The
//!   action cannot set headers, so the routing key goes in the URL (Splunk 9 must allow-list it).
//! - **No resolve**: the action fires once per trigger and never says the condition cleared, so
//!   every event is a trigger and alerts resolve only through `resolve_timeout` (set it, e.g. to
//!   twice the search's schedule: a trigger inside that time refreshes the alert; without it
//!   Splunk alerts stay open until resolved by hand downstream).
//! - **Dedup key**: `sid` changes on every run, so it is never the key. 32 hex digits of xxh3-128
//!   over `search_name` and the values of the result fields listed in the query parameter
//!   `dedup_fields` (comma-separated, in that order, e.g. `?dedup_fields=host,service` for
//!   "For each result" alerts); without the parameter, over `search_name` alone (one alert per
//!   saved search). An ad-hoc search (no `search_name`) is keyed by its result row: every field
//!   not starting with `_`, sorted by name.
//! - **Severity**: result field `severity` (`critical`, `error`, `warning`, `info`, any case;
//!   also `high` -> critical, `medium` -> warning, `low` -> info), else `default_severity`.
//! - **Fields**: summary = result `summary`, else `message`, else `search_name`; source = result
//!   `host`; component = `app`; class = `search_name`; labels = the result's string fields not
//!   starting with `_`; custom_details = the whole result; timestamp = result `_time` (epoch
//!   seconds or ISO); link = `results_link` ("Splunk results").
//! - **Answer**: `202` and the generic body; Splunk logs a non-2xx in `splunkd.log`.

use simd_json::prelude::*;

use crate::event::{fingerprint, Action, Event, Link, Severity};
use crate::integration::Integration;
use crate::time::{from_epoch_number, parse_timestamp, Timestamp as Time};

use super::fields::percent_decode;
use super::fields::severity_named;
use super::{one_alert, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Splunk;
const DEDUP_FIELDS_PARAM: &str = "dedup_fields";

/// The Splunk webhook alert action in the integrations registry.
pub struct Webhook;

/// The result's `severity` as sluice knows it, with Splunk's common words.
pub fn severity(value: &str) -> Option<Severity> {
    Severity::parse(value).or_else(|| {
        severity_named(
            value,
            &[
                ("high", Severity::Critical),
                ("medium", Severity::Warning),
                ("low", Severity::Info),
            ],
        )
    })
}

/// The field names of `?dedup_fields=a,b`, if given.
fn dedup_fields(query: Option<&str>) -> Option<Vec<String>> {
    let raw = query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == DEDUP_FIELDS_PARAM).then_some(v)
    })?;
    let decoded = percent_decode(raw, true)?;
    Some(
        decoded
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| {
            let search_name = r.opt_str("search_name").filter(|s| !s.trim().is_empty());
            let app = r.opt_str("app").filter(|s| !s.is_empty());
            let results_link = r.opt_str("results_link").filter(|s| !s.is_empty());
            let _sid = r.opt_str("sid");
            let result = r.object("result");
            let details = r.details("result");

            // The result's string fields (multivalue fields joined by commas), sorted by name.
            let mut fields: Vec<(String, String)> = Vec::new();
            if let Some(map) = result.and_then(|v| v.as_object()) {
                for (k, v) in map.iter() {
                    let text = if let Some(s) = v.as_str() {
                        s.to_string()
                    } else if let Some(items) = v.as_array() {
                        let parts: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
                        parts.join(",")
                    } else if v.is_number() || v.is_bool() {
                        v.encode()
                    } else {
                        continue;
                    };
                    fields.push((k.to_string(), text));
                }
            }
            fields.sort();
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, v)| k == name && !v.is_empty())
                    .map(|(_, v)| v.as_str())
            };
            let timestamp = match field("_time").map(|t| {
                parse_timestamp(t).or_else(|| t.parse::<f64>().ok().and_then(from_epoch_number))
            }) {
                Some(Some(Time::At(t))) => Some(t),
                Some(None) => {
                    r.errors.push(
                    "'result._time' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)"
                        .to_string(),
                );
                    None
                }
                _ => None,
            };
            let labels: Vec<(String, String)> = fields
                .iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .cloned()
                .collect();
            let chosen = dedup_fields(req.query);
            let key_parts: Option<Vec<&[u8]>> = match (search_name, &chosen) {
                (Some(name), Some(names)) => {
                    let mut parts = vec![name.as_bytes()];
                    for n in names {
                        parts.push(n.as_bytes());
                        parts.push(field(n).unwrap_or_default().as_bytes());
                    }
                    Some(parts)
                }
                (Some(name), None) => Some(vec![name.as_bytes()]),
                (None, _) if !labels.is_empty() => Some(
                    labels
                        .iter()
                        .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()])
                        .collect(),
                ),
                (None, _) => {
                    r.errors.push(
                        "'search_name' is missing and 'result' has no fields to key the alert by"
                            .to_string(),
                    );
                    None
                }
            };
            let sev =
                field("severity").map(|s| severity(s).unwrap_or(req.settings.default_severity));
            let (Some(parts), true) = (key_parts, r.errors.is_empty()) else {
                return None;
            };
            let dedup_key = format!("{:032x}", fingerprint(&parts));
            let mut event = Event::new(
                KIND,
                Action::Trigger,
                req.routing_key.to_string(),
                dedup_key,
                req.now,
            );
            let (s, truncated) = summary(
                field("summary")
                    .or_else(|| field("message"))
                    .or(search_name)
                    .unwrap_or(&event.dedup_key),
            );
            event.summary = s;
            event.severity = sev.unwrap_or(req.settings.default_severity);
            event.source = field("host").unwrap_or_default().to_string();
            event.component = app.map(str::to_string);
            event.class = search_name.map(str::to_string);
            event.timestamp = timestamp;
            event.custom_details = details;
            event.links = results_link
                .map(|href| Link {
                    href: href.to_string(),
                    text: Some("Splunk results".into()),
                })
                .into_iter()
                .collect();
            event.labels = labels.into();
            Some((event, truncated))
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::ingest::integrations::settings::IntegrationSettings;
    use crate::ingest::integrations::testing::{Request, NOW};
    use crate::time::UnixMillis;

    fn parse(query: Option<&str>, body: &str) -> Result<Parsed, IntegrationError> {
        Request::default().query(query).parse(KIND, body)
    }

    fn key(query: Option<&str>, body: &str) -> String {
        parse(query, body).unwrap().events.remove(0).dedup_key
    }

    #[test]
    fn the_key_ignores_sid_and_uses_the_chosen_fields() {
        let a = r#"{"sid":"scheduler__a_1","search_name":"Errors","result":{"host":"web-1","count":"3"}}"#;
        let b = r#"{"sid":"scheduler__a_2","search_name":"Errors","result":{"host":"web-2","count":"9"}}"#;
        assert_eq!(key(None, a), key(None, b), "one alert per saved search");
        let q = Some("routing_key=x&dedup_fields=host");
        assert_ne!(key(q, a), key(q, b), "one alert per host");
        let c = r#"{"search_name":"Errors","result":{"host":"web-1","count":"4"}}"#;
        assert_eq!(key(q, a), key(q, c));
        assert_eq!(
            dedup_fields(Some("dedup_fields=host%2Cservice,+")).unwrap(),
            ["host", "service"]
        );
    }

    #[test]
    fn every_event_is_a_trigger_that_resolve_timeout_ends() {
        let settings = IntegrationSettings {
            resolve_timeout: Some(std::time::Duration::from_secs(3600)),
            ..IntegrationSettings::default()
        };
        let p = Request::default()
            .settings(&settings)
            .parse(
                KIND,
                br#"{"search_name":"Errors","result":{"severity":"HIGH","_time":"1714641290"}}"#,
            )
            .unwrap();
        let e = &p.events[0];
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.ends_at, Some(UnixMillis(NOW.0 + 3_600_000)));
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(e.timestamp, Some(UnixMillis(1_714_641_290_000)));
    }

    #[test]
    fn refusals_name_the_fields() {
        for (body, want) in [
            ("[", "splunk: body is not valid JSON"),
            (
                r#"{"search_name":null,"result":{"_time":"x"}}"#,
                "splunk: 'result._time' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds); 'search_name' is missing and 'result' has no fields to key the alert by",
            ),
            (
                r#"{"search_name":5,"result":[]}"#,
                "splunk: 'search_name' must be a string; 'result' must be an object; 'search_name' is missing and 'result' has no fields to key the alert by",
            ),
        ] {
            assert_eq!(parse(None, body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
