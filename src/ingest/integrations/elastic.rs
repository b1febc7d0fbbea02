//! Elastic / Kibana alerting, through Kibana's Webhook connector (Kibana 8.x). The connector's
//! body is a Mustache template the user writes, so there is no vendor schema: sluice defines
//! the body below (documented in the README) and reads it. Served at
//! `POST /integrations/elastic/<routing_key>`; one alert per request (one action run).
//!
//! The body to paste into the rule action (Kibana escapes `{{...}}` values for JSON strings in
//! webhook bodies, so every value is a string; `severity` is typed by the user, per action):
//!
//! ```json
//! {
//!   "rule": {"id": "{{rule.id}}", "name": "{{rule.name}}", "url": "{{rule.url}}", "tags": "{{rule.tags}}"},
//!   "alert": {"id": "{{alert.id}}", "uuid": "{{alert.uuid}}",
//!             "action_group": "{{alert.actionGroup}}", "action_group_name": "{{alert.actionGroupName}}"},
//!   "context": {"reason": "{{context.reason}}", "message": "{{context.message}}", "value": "{{context.value}}"},
//!   "date": "{{date}}",
//!   "severity": "critical"
//! }
//! ```
//!
//! and add the same action once more with "Run when: Recovered" for the resolve.
//!
//! - **Empty strings are absent**: Mustache renders a variable a rule type lacks as `""`.
//! - **Resolve**: `alert.action_group` `recovered`. Every other action group triggers.
//! - **Dedup key**: `alert.uuid` (Kibana 8.7+: one alert's id from activation to recovery, kept
//!   by its recovery); without one, 32 hex digits of xxh3-128 over `rule.id` and `alert.id`
//!   (`alert.id` alone is only unique within a rule: "query matched").
//! - **Severity**: the body's `severity` (`critical`, `error`, `warning`, `info`, any case),
//!   else an action group whose id contains `warning` -> warning, else `default_severity`.
//! - **Fields**: summary = `context.reason`, else `context.message`, else `rule.name` and
//!   `alert.id`; source = `alert.id`; class = `rule.name`; group = `rule.id`; labels = `rule`
//!   tags as `tags` (comma-separated, as Mustache renders the list) and `action_group`;
//!   custom_details = `context`; timestamp = `date`; link = `rule.url` ("Kibana rule").
//! - Required: `rule.id` or `alert.uuid`, `alert.id` (or `alert.uuid`), `alert.action_group`.
//!   A body without them is refused (400) naming them: most likely a template that was edited.
//! - **Answer**: `202` and the generic body; Kibana logs a non-2xx as a failed action.

use crate::event::{fingerprint, Action, Event, Link, Severity};
use crate::integration::Integration;

use super::fields::Reader;
use super::{one_alert, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Elastic;

/// The Kibana webhook connector format in the integrations registry.
pub struct Webhook;

/// A string field with Mustache's empty rendering read as absent.
fn filled<'v>(r: &mut Reader<'v, '_>, name: &str) -> Option<&'v str> {
    r.opt_str(name).map(str::trim).filter(|s| !s.is_empty())
}

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| {
            let date = r.timestamp("date");
            let severity_name = filled(r, "severity");
            let rule = r.object("rule");
            let alert = r.req_object("alert");
            let context = r.object("context");
            let context_details = r.details("context");

            let mut ru = r.child(rule, "rule");
            let rule_id = filled(&mut ru, "id");
            let rule_name = filled(&mut ru, "name");
            let rule_url = filled(&mut ru, "url");
            let tags = filled(&mut ru, "tags");

            let mut al = r.child(alert, "alert");
            let alert_id = filled(&mut al, "id");
            let uuid = filled(&mut al, "uuid");
            let group = filled(&mut al, "action_group");

            let mut cx = r.child(context, "context");
            let reason = filled(&mut cx, "reason");
            let message = filled(&mut cx, "message");

            if alert.is_some() {
                if group.is_none() {
                    r.errors
                        .push("'alert.action_group' is missing or blank".to_string());
                }
                if uuid.is_none() {
                    if alert_id.is_none() {
                        r.errors.push(
                            "'alert.id' is missing or blank (and there is no 'alert.uuid')"
                                .to_string(),
                        );
                    }
                    if rule_id.is_none() {
                        r.errors.push(
                            "'rule.id' is missing or blank (and there is no 'alert.uuid')"
                                .to_string(),
                        );
                    }
                }
            }
            let severity = match severity_name {
                Some(s) => Severity::parse(s).or_else(|| {
                    r.errors.push(format!(
                        "'severity' must be one of {} (got {s:?})",
                        Severity::NAMES
                    ));
                    None
                }),
                None => None,
            };
            if !r.errors.is_empty() {
                return None;
            }
            let group = group.unwrap_or_default();
            let dedup_key = match uuid {
                Some(u) if u.chars().count() <= crate::event::MAX_DEDUP_KEY_CHARS => u.to_string(),
                _ => {
                    let (rid, aid) = (rule_id.unwrap_or_default(), alert_id.unwrap_or_default());
                    format!("{:032x}", fingerprint(&[rid.as_bytes(), aid.as_bytes()]))
                }
            };
            let action = if group.eq_ignore_ascii_case("recovered") {
                Action::Resolve
            } else {
                Action::Trigger
            };
            let mut event = Event::new(
                KIND,
                action,
                req.routing_key.to_string(),
                dedup_key,
                req.now,
            );
            let fallback = match (rule_name, alert_id) {
                (Some(n), Some(a)) => format!("{n}: {a}"),
                (Some(n), None) => n.to_string(),
                (None, Some(a)) => a.to_string(),
                (None, None) => event.dedup_key.clone(),
            };
            let (s, truncated) = summary(reason.or(message).unwrap_or(&fallback));
            event.summary = s;
            event.severity = severity.unwrap_or_else(|| {
                if group.to_ascii_lowercase().contains("warning") {
                    Severity::Warning
                } else {
                    req.settings.default_severity
                }
            });
            event.source = alert_id.unwrap_or_default().to_string();
            event.class = rule_name.map(str::to_string);
            event.group = rule_id.map(str::to_string);
            event.timestamp = date;
            let mut labels = vec![("action_group".to_string(), group.to_string())];
            if let Some(t) = tags {
                labels.push(("tags".to_string(), t.to_string()));
            }
            event.labels = labels.into();
            event.custom_details = context_details;
            event.links = rule_url
                .map(|href| Link {
                    href: href.to_string(),
                    text: Some("Kibana rule".into()),
                })
                .into_iter()
                .collect();
            Some((event, truncated))
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::ingest::integrations::testing::parse;

    #[test]
    fn the_key_is_the_uuid_else_a_fingerprint_of_rule_and_alert() {
        let a = parse(KIND, r#"{"rule":{"id":"r1"},"alert":{"id":"query matched","uuid":"","action_group":"query matched"}}"#).unwrap();
        let b = parse(KIND, r#"{"rule":{"id":"r2"},"alert":{"id":"query matched","uuid":"","action_group":"query matched"}}"#).unwrap();
        let c = parse(
            KIND,
            r#"{"rule":{"id":"r1"},"alert":{"id":"query matched","action_group":"recovered"}}"#,
        )
        .unwrap();
        assert_eq!(a.events[0].dedup_key.len(), 32);
        assert_ne!(a.events[0].dedup_key, b.events[0].dedup_key);
        assert_eq!(a.events[0].dedup_key, c.events[0].dedup_key);
        assert_eq!(
            (a.events[0].action, c.events[0].action),
            (Action::Trigger, Action::Resolve)
        );
        let d = parse(
            KIND,
            r#"{"alert":{"uuid":"u-1","action_group":"threshold met"}}"#,
        )
        .unwrap();
        assert_eq!(d.events[0].dedup_key, "u-1");
    }

    #[test]
    fn severity_from_the_body_else_the_action_group_else_the_default() {
        let sev = |body: &str| parse(KIND, body).unwrap().events[0].severity;
        assert_eq!(
            sev(r#"{"severity":"WARNING","alert":{"uuid":"u","action_group":"x"}}"#),
            Severity::Warning
        );
        assert_eq!(
            sev(r#"{"alert":{"uuid":"u","action_group":"metrics.threshold.warning"}}"#),
            Severity::Warning
        );
        assert_eq!(
            sev(r#"{"severity":"","alert":{"uuid":"u","action_group":"metrics.threshold.fired"}}"#),
            Severity::Error
        );
        let err = parse(
            KIND,
            r#"{"severity":"sev1","alert":{"uuid":"u","action_group":"x"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "elastic: 'severity' must be one of critical, error, warning, info (got \"sev1\")"
        );
    }

    #[test]
    fn refusals_name_the_fields() {
        for (body, want) in [
            ("{", "elastic: body is not valid JSON"),
            ("{}", "elastic: 'alert' is missing"),
            (
                r#"{"rule":{"id":""},"alert":{"id":"","uuid":"","action_group":""}}"#,
                "elastic: 'alert.action_group' is missing or blank; 'alert.id' is missing or blank (and there is no 'alert.uuid'); 'rule.id' is missing or blank (and there is no 'alert.uuid')",
            ),
            (
                r#"{"date":"later","alert":{"uuid":"u","action_group":7}}"#,
                "elastic: 'date' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds); 'alert.action_group' must be a string; 'alert.action_group' is missing or blank",
            ),
        ] {
            assert_eq!(parse(KIND, body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
