//! Sentry integration platform webhooks (an internal or public integration with "Alert Rule
//! Action" and, optionally, the `issue` resource subscribed). One alert per request. Served at
//! `POST /integrations/sentry/<routing_key>`.
//!
//! - **Transport**: JSON with `Sentry-Hook-Resource` naming the resource, plus `Request-ID`,
//!   `Sentry-Hook-Timestamp` and `Sentry-Hook-Signature` (HMAC-SHA256 with the client secret,
//!   not checked here: put a secret routing key in the URL). Without the resource header the
//!   resource is read from the body: `data.metric_alert`, `data.event` or `data.issue`.
//! - **Issue alerts** (`event_alert`): `action` is always `triggered`, so always a trigger. Dedup
//!   key = `data.event.issue_id` (string or number), the same id the `issue` resource carries as
//!   `data.issue.id`. Severity = `data.event.level`: `fatal` -> critical, `error` -> error,
//!   `warning` -> warning, `info`/`debug` -> info, anything else -> `default_severity`.
//!   summary = `title`, else `message`, else `culprit`; source = tag `server_name`, else
//!   `culprit`; component = `environment`; group = `project` (the project id as text);
//!   class = `data.triggered_rule`; labels = `tags` (`[[name, value], ...]`); timestamp =
//!   `datetime`, else `timestamp` (epoch seconds, fractional); link = `web_url`.
//! - **Issue resource** (`issue`): resolves. `action: resolved` resolves the alert whose key is
//!   `data.issue.id`; the other actions (`created`, `assigned`, `ignored`, `archived`,
//!   `unresolved`) produce no event: alerting stays with the alert rules.
//! - **Metric alerts** (`metric_alert`): `action` `critical` / `warning` trigger with that
//!   severity, `resolved` resolves. Dedup key = `data.metric_alert.id`. summary =
//!   `data.description_title`, else `metric_alert.title`, else `alert_rule.name`; class =
//!   `alert_rule.name`; source = the first of `alert_rule.projects`; timestamp =
//!   `date_detected` (trigger) or `date_closed` (resolve), else `date_started`.
//! - **Key spaces**: issue ids and metric alert ids are separate Sentry sequences; both are used
//!   as sent, unprefixed, and metric alerts live in their own key space
//!   ([`KeySpace::SENTRY_METRIC_ALERTS`]), so issue 77 and metric alert 77 stay two alerts.
//! - Other resources (`installation`, `comment`, `error`, ...) are accepted and produce no event,
//!   since Sentry posts every subscribed resource to the one URL.
//! - **Answer**: `202` and the generic body; Sentry records any 2xx as delivered.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{Action, Details, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::integration::{Integration, KeySpace};

use super::fields::{details_of, severity_named, to_json};
use super::fields::{path, Reader};
use super::{json_object, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Sentry;
const RESOURCE_HEADER: &str = "sentry-hook-resource";

/// The Sentry webhook format in the integrations registry.
pub struct Webhook;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    EventAlert,
    MetricAlert,
    Issue,
    /// Anything else Sentry posts to the same URL.
    Other,
}

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        let root = json_object(KIND, body)?;
        let header = req
            .headers
            .get(RESOURCE_HEADER)
            .map(|v| v.to_str().unwrap_or_default().trim());
        let data = root.get("data").filter(|d| d.is_object());
        let has = |name: &str| data.and_then(|d| d.get(name)).is_some_and(|v| !v.is_null());
        let resource = match header {
            Some("event_alert") => Resource::EventAlert,
            Some("metric_alert") => Resource::MetricAlert,
            Some("issue") => Resource::Issue,
            Some(_) => Resource::Other,
            None if has("metric_alert") => Resource::MetricAlert,
            None if has("event") => Resource::EventAlert,
            None if has("issue") => Resource::Issue,
            None => {
                return Err(IntegrationError::Invalid {
                    kind: KIND,
                    problems: vec![
                        "no Sentry-Hook-Resource header, and 'data' holds no event, \
                         metric_alert or issue"
                            .into(),
                    ],
                })
            }
        };
        if resource == Resource::Other {
            return Ok(Parsed::default());
        }
        let mut errors = Vec::new();
        let mut r = Reader::new(Some(&root), "", &mut errors);
        let action = r.opt_str("action");
        let data = r.req_object("data");
        let mut d = r.child(data, "data");
        let out = if data.is_none() {
            None
        } else {
            match resource {
                Resource::EventAlert => event_alert(&mut d, req),
                Resource::MetricAlert => metric_alert(&mut d, action, req),
                Resource::Issue => issue(&mut d, action, req),
                Resource::Other => None,
            }
        };
        if !errors.is_empty() {
            return Err(IntegrationError::Invalid {
                kind: KIND,
                problems: errors,
            });
        }
        let mut parsed = Parsed::default();
        if let Some((event, truncated)) = out {
            parsed.summaries_truncated = u64::from(truncated);
            parsed.events.push(event);
        }
        Ok(parsed)
    }
}

/// An id sent as a string or an integer, as text of at most 255 characters.
fn id(r: &mut Reader<'_, '_>, name: &str) -> Option<String> {
    let v = r.value.and_then(|o| o.get(name)).filter(|v| !v.is_null());
    let text = v.and_then(|v| match v.as_str() {
        Some(s) => Some(s.trim().to_string()),
        None => v.as_u64().map(|n| n.to_string()),
    });
    let problem = match &text {
        Some(t) if t.is_empty() => "is blank",
        Some(t) if t.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() => "must be at most 255 characters",
        Some(_) => return text,
        None if v.is_none() => "is missing",
        None => "must be a string or an integer",
    };
    r.errors.push(format!("'{}' {problem}", path(r.path, name)));
    None
}

/// `level` as sluice knows it; `None` for a value it does not.
pub fn level(value: &str) -> Option<Severity> {
    severity_named(
        value,
        &[
            ("fatal", Severity::Critical),
            ("error", Severity::Error),
            ("warning", Severity::Warning),
            ("info", Severity::Info),
            ("debug", Severity::Info),
        ],
    )
}

/// `tags: [[name, value], ...]` as sorted labels; items of another shape are skipped.
fn tags(event: &BorrowedValue<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = event
        .get("tags")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            let pair = pair.as_array()?;
            match pair.as_slice() {
                [k, v] => Some((k.as_str()?.to_string(), v.as_str()?.to_string())),
                _ => None,
            }
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn text<'v>(v: &'v BorrowedValue<'v>, name: &str) -> Option<&'v str> {
    v.get(name)
        .and_then(|s| s.as_str())
        .filter(|s| !s.trim().is_empty())
}

/// The named string fields of `v` that are present, as a JSON object.
fn details(
    pairs: &[(&str, Option<String>)],
    extra: Option<(&str, &BorrowedValue<'_>)>,
) -> Option<Details> {
    let mut map = serde_json::Map::new();
    for (name, value) in pairs {
        if let Some(value) = value {
            map.insert(
                (*name).to_string(),
                serde_json::Value::String(value.clone()),
            );
        }
    }
    if let Some((name, value)) = extra {
        if let Some(v) = to_json(value) {
            map.insert(name.to_string(), v);
        }
    }
    details_of(&map)
}

fn web_link(href: Option<&str>) -> Vec<Link> {
    href.map(|href| Link {
        href: href.to_string(),
        text: Some("Sentry".into()),
    })
    .into_iter()
    .collect()
}

fn event_alert(d: &mut Reader<'_, '_>, req: &IngestRequest<'_>) -> Option<(Event, bool)> {
    let rule = d.opt_str("triggered_rule").filter(|s| !s.trim().is_empty());
    let ev = d.req_object("event")?;
    let at = path(d.path, "event");
    let mut e = d.child(Some(ev), &at);
    let key = id(&mut e, "issue_id");
    let level_name = e.opt_str("level");
    let mut timestamp = e.timestamp("datetime");
    if timestamp.is_none() {
        timestamp = e.timestamp("timestamp");
    }
    let key = key?;
    if !e.errors.is_empty() {
        return None;
    }
    let labels = tags(ev);
    let tag = |name: &str| {
        labels
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let mut event = Event::new(
        KIND,
        Action::Trigger,
        req.routing_key.to_string(),
        key,
        req.now,
    );
    let culprit = text(ev, "culprit");
    let (s, truncated) = summary(
        text(ev, "title")
            .or_else(|| text(ev, "message"))
            .or(culprit)
            .unwrap_or(&event.dedup_key),
    );
    event.summary = s;
    event.severity = level_name
        .and_then(level)
        .unwrap_or(req.settings.default_severity);
    event.source = tag("server_name")
        .or(culprit)
        .unwrap_or_default()
        .to_string();
    event.component = text(ev, "environment").map(str::to_string);
    event.group = ev.get("project").and_then(|p| {
        p.as_u64()
            .map(|n| n.to_string())
            .or(p.as_str().map(str::to_string))
    });
    event.class = rule.map(str::to_string);
    event.timestamp = timestamp;
    event.links = web_link(text(ev, "web_url"));
    let own = |name: &str| text(ev, name).map(str::to_string);
    event.custom_details = details(
        &[
            ("event_id", own("event_id")),
            ("culprit", own("culprit")),
            ("platform", own("platform")),
            ("release", own("release")),
            ("level", own("level")),
            ("triggered_rule", rule.map(str::to_string)),
        ],
        None,
    );
    event.labels = labels.into();
    Some((event, truncated))
}

fn metric_alert(
    d: &mut Reader<'_, '_>,
    action: Option<&str>,
    req: &IngestRequest<'_>,
) -> Option<(Event, bool)> {
    let (act, severity) = match action {
        Some("critical") => (Action::Trigger, Some(Severity::Critical)),
        Some("warning") => (Action::Trigger, Some(Severity::Warning)),
        Some("resolved") => (Action::Resolve, None),
        _ => {
            d.errors.push(
                "'action' must be critical, warning or resolved (a metric_alert)".to_string(),
            );
            (Action::Trigger, None)
        }
    };
    let title = d
        .opt_str("description_title")
        .filter(|s| !s.trim().is_empty());
    let description = d.opt_str("description_text").filter(|s| !s.is_empty());
    let web_url = d.opt_str("web_url").filter(|s| !s.is_empty());
    let ma = d.req_object("metric_alert")?;
    let at = path(d.path, "metric_alert");
    let mut m = d.child(Some(ma), &at);
    let key = id(&mut m, "id");
    let detected = m.timestamp("date_detected");
    let closed = m.timestamp("date_closed");
    let started = m.timestamp("date_started");
    let rule = m.object("alert_rule");
    let key = key?;
    if !m.errors.is_empty() {
        return None;
    }
    let mut event = Event::new(KIND, act, req.routing_key.to_string(), key, req.now);
    event.key_space = KeySpace::SENTRY_METRIC_ALERTS;
    let rule_name = rule.and_then(|r| text(r, "name"));
    let (s, truncated) = summary(
        title
            .or_else(|| text(ma, "title"))
            .or(rule_name)
            .unwrap_or(&event.dedup_key),
    );
    event.summary = s;
    if let Some(severity) = severity {
        event.severity = severity;
    }
    event.class = rule_name.map(str::to_string);
    event.source = rule
        .and_then(|r| r.get("projects"))
        .and_then(|p| p.as_array())
        .and_then(|p| p.first())
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    event.timestamp = match act {
        Action::Resolve => closed.or(started),
        _ => detected.or(started),
    };
    event.links = web_link(web_url);
    event.custom_details = details(
        &[("description_text", description.map(str::to_string))],
        rule.map(|r| ("alert_rule", r)),
    );
    Some((event, truncated))
}

fn issue(
    d: &mut Reader<'_, '_>,
    action: Option<&str>,
    req: &IngestRequest<'_>,
) -> Option<(Event, bool)> {
    let iss = d.req_object("issue")?;
    let at = path(d.path, "issue");
    let mut i = d.child(Some(iss), &at);
    let key = id(&mut i, "id")?;
    if action != Some("resolved") {
        return None;
    }
    let mut event = Event::new(
        KIND,
        Action::Resolve,
        req.routing_key.to_string(),
        key,
        req.now,
    );
    let (s, truncated) = summary(text(iss, "title").unwrap_or(&event.dedup_key));
    event.summary = s;
    event.links = web_link(text(iss, "web_url").or_else(|| text(iss, "permalink")));
    Some((event, truncated))
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::ingest::integrations::testing::{self, Request};

    fn parse(resource: Option<&str>, body: &str) -> Result<Parsed, IntegrationError> {
        match resource {
            Some(r) => Request::default()
                .header(RESOURCE_HEADER, r)
                .parse(KIND, body),
            None => testing::parse(KIND, body),
        }
    }

    #[test]
    fn levels_map_to_severities() {
        for (name, want) in [
            ("fatal", Some(Severity::Critical)),
            ("ERROR", Some(Severity::Error)),
            ("warning", Some(Severity::Warning)),
            ("debug", Some(Severity::Info)),
            ("sample", None),
        ] {
            assert_eq!(level(name), want, "{name}");
        }
        let p = parse(
            Some("event_alert"),
            r#"{"action":"triggered","data":{"event":{"issue_id":77,"level":"sample","title":"t"}}}"#,
        )
        .unwrap();
        assert_eq!(p.events[0].severity, Severity::Error, "default_severity");
        assert_eq!(p.events[0].dedup_key, "77", "numeric ids are read as text");
    }

    #[test]
    fn the_resource_comes_from_the_header_else_the_body() {
        let metric = r#"{"action":"resolved","data":{"metric_alert":{"id":"9"}}}"#;
        let p = parse(None, metric).unwrap();
        assert_eq!(
            (p.events[0].action, p.events[0].dedup_key.as_str()),
            (Action::Resolve, "9")
        );
        let p = parse(Some("installation"), metric).unwrap();
        assert!(
            p.events.is_empty(),
            "other resources are accepted and ignored"
        );
        let err = parse(None, r#"{"action":"created","data":{}}"#).unwrap_err();
        assert!(err.to_string().contains("Sentry-Hook-Resource"), "{err}");
    }

    #[test]
    fn issue_resource_resolves_only_on_resolved() {
        let body = |action: &str| {
            format!(
                r#"{{"action":"{action}","data":{{"issue":{{"id":"4410987","title":"KeyError"}}}}}}"#
            )
        };
        let p = parse(Some("issue"), &body("resolved")).unwrap();
        assert_eq!(p.events[0].action, Action::Resolve);
        assert_eq!(p.events[0].dedup_key, "4410987");
        for other in ["created", "assigned", "ignored", "unresolved"] {
            assert!(parse(Some("issue"), &body(other))
                .unwrap()
                .events
                .is_empty());
        }
        let err = parse(
            Some("issue"),
            r#"{"action":"resolved","data":{"issue":{}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "sentry: 'data.issue.id' is missing");
    }

    #[test]
    fn refusals_name_the_field() {
        for (resource, body, want) in [
            ("event_alert", "{", "sentry: body is not valid JSON"),
            ("event_alert", r#"{"action":"triggered"}"#, "sentry: 'data' is missing"),
            (
                "event_alert",
                r#"{"data":{"event":{"issue_id":"","datetime":"soon"}}}"#,
                "sentry: 'data.event.issue_id' is blank; 'data.event.datetime' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)",
            ),
            (
                "metric_alert",
                r#"{"action":"firing","data":{"metric_alert":{"id":[1]}}}"#,
                "sentry: 'action' must be critical, warning or resolved (a metric_alert); 'data.metric_alert.id' must be a string or an integer",
            ),
        ] {
            assert_eq!(parse(Some(resource), body).unwrap_err().to_string(), want);
        }
    }
}
