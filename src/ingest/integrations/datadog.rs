//! Datadog Webhooks integration (a monitor notification that mentions `@webhook-<name>`),
//! served at `POST /integrations/datadog/<routing_key>`. One alert per request.
//!
//! - **The payload is the user's template**: Datadog substitutes `$VARIABLES` into whatever
//!   JSON the user pasted. sluice documents one template (below, and in the README) and reads
//!   the common variants: each field is looked up under a few names (`alert_id` or
//!   `monitor_id`, `transition` or `alert_transition`, ...), a value may be a string or an
//!   unquoted number, and an empty value or a variable Datadog left unexpanded (`"$ALERT_SCOPE"`)
//!   counts as absent. Datadog's own default payload (`body`, `title`, `date`, `last_updated`,
//!   `event_type`, `org`, `id`) is read too, but it has no monitor id or transition: see below.
//!
//!   ```json
//!   {"aggreg_key": "$AGGREG_KEY", "alert_id": "$ALERT_ID", "alert_cycle_key": "$ALERT_CYCLE_KEY",
//!    "transition": "$ALERT_TRANSITION", "priority": "$ALERT_PRIORITY", "alert_type": "$ALERT_TYPE",
//!    "title": "$ALERT_TITLE", "status": "$ALERT_STATUS", "scope": "$ALERT_SCOPE",
//!    "hostname": "$HOSTNAME", "tags": "$TAGS", "metric": "$ALERT_METRIC", "query": "$ALERT_QUERY",
//!    "message": "$TEXT_ONLY_MSG", "date": "$DATE", "last_updated": "$LAST_UPDATED",
//!    "link": "$LINK", "org": "$ORG_NAME", "event_id": "$ID", "event_title": "$EVENT_TITLE"}
//!   ```
//! - **Resolve**: `transition` (`$ALERT_TRANSITION`) `Recovered` resolves; `Triggered`,
//!   `Re-Triggered`, `Warn`, `Re-Warn`, `No Data`, `Re-No Data`, `Renotify` and any value sluice
//!   does not know trigger (a lost page is worse than a duplicate one). `$ALERT_STATUS` is a
//!   summary text in Datadog ("system.load.1 over host:my-host was > 0 ..."), never a state, so
//!   it is kept as a detail. Without a transition: a title or event title starting with
//!   `[Recovered` (the default payload's only state hint), or `alert_type: success`, resolves.
//! - **Dedup key**: `$AGGREG_KEY` (the id Datadog gives every event of one monitor group);
//!   else `$ALERT_ID` plus `:` and `$ALERT_SCOPE` when there is a scope (one alert per group of a
//!   multi-alert monitor; a scope that would make the key longer than 255 characters is replaced
//!   by 32 hex digits of its xxh3-128); else `$ALERT_CYCLE_KEY`; else (the default payload)
//!   32 hex digits of xxh3-128 over the title without its `[Triggered ...]` / `[Recovered ...]`
//!   prefix and the host, so a trigger and its recovery meet. Nothing else is accepted as
//!   identity: a payload with none of those is refused, naming the fields.
//! - **Severity**: a `Warn` / `Re-Warn` transition -> warning; else `$ALERT_PRIORITY` `P1` ->
//!   critical, `P2` -> error, `P3` -> warning, `P4` / `P5` -> info; else `$ALERT_TYPE` `error` /
//!   `warning` / `info` as named; else the integration's `default_severity`.
//! - **Fields**: summary = `title`, else `event_title`, else `status`, else the dedup key;
//!   source = `hostname`, else the `host:` tag of the scope or tags; component = the `service:`
//!   tag; class = `metric`; group = the monitor id (`$ALERT_ID`), so `group_by = ["group"]` makes
//!   one incident per monitor; labels = the `k:v` tags of `tags` and `scope` (split at the first
//!   `:`, bare tags dropped, scope wins); custom_details = message, status, query, priority,
//!   transition, cycle key, event id, event type and org; links = `link`; timestamp =
//!   `last_updated`, else `date` (epoch milliseconds as strings).
//! - **Answer**: `202 {"status":"success","message":"Event processed","dedup_key":"..."}`.
//!   Datadog retries only 5xx (and its own internal errors), up to 5 times, so a refused
//!   payload (`400`, naming the field) is not retried and overload answers `503`.

use std::borrow::Cow;

use http::Response;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{fingerprint, Action, Details, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::Body;
use crate::integration::Integration;

use super::fields::text_details;
use super::{one_alert, reply, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Datadog;

/// The Datadog webhook format in the integrations registry.
pub struct Webhook;

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| read(r.value?, req, r.errors))
    }

    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::pd_style_accepted(parsed, kind)
    }
}

/// Reads template fields by any of their usual names.
struct Template<'v, 'e> {
    root: &'v BorrowedValue<'v>,
    errors: &'e mut Vec<String>,
}

/// A value Datadog left as its variable name: `$ALERT_SCOPE`.
fn unexpanded(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('$')
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl<'v> Template<'v, '_> {
    /// The first of `names` that holds text (a string, or a number or boolean a user left
    /// unquoted), trimmed; empty and unexpanded values count as absent. An object or array
    /// under one of the names is a problem.
    fn text(&mut self, names: &[&str]) -> Option<Cow<'v, str>> {
        for name in names {
            let Some(v) = self.root.get(*name).filter(|v| !v.is_null()) else {
                continue;
            };
            let text: Cow<'v, str> = if let Some(s) = v.as_str() {
                Cow::Borrowed(s.trim())
            } else if v.is_number() || v.is_bool() {
                Cow::Owned(v.encode())
            } else {
                self.errors
                    .push(format!("'{name}' must be a string (a template variable)"));
                continue;
            };
            if !text.is_empty() && !unexpanded(&text) {
                return Some(text);
            }
        }
        None
    }

    /// `org`: `$ORG_NAME` as a string, or the default payload's `{"id","name"}` object.
    fn org(&mut self) -> Option<Cow<'v, str>> {
        if let Some(obj) = self.root.get("org").filter(|v| v.is_object()) {
            return obj
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty() && !unexpanded(s))
                .map(Cow::Borrowed);
        }
        self.text(&["org", "org_name"])
    }
}

/// `k:v` tags of a `$TAGS` / `$ALERT_SCOPE` list, split at the first `:`; bare tags dropped.
fn tags(list: &str, out: &mut Vec<(String, String)>) {
    for tag in list.split(',') {
        if let Some((k, v)) = tag.trim().split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if !k.is_empty() {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
}

/// Tags by name, the later list winning on a repeated name.
fn merge_tags(lists: &[Option<&str>]) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for list in lists.iter().flatten() {
        tags(list, &mut all);
    }
    // Stable sort keeps the input order per name; keep the last of each.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(all.len());
    for (k, v) in all {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => out.push((k, v)),
        }
    }
    out
}

fn lookup<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels
        .binary_search_by(|(k, _)| k.as_str().cmp(name))
        .ok()
        .map(|i| labels[i].1.as_str())
        .filter(|v| !v.is_empty())
}

/// What a transition means; `None` for a value sluice does not know.
fn transition(value: &str) -> Option<(Action, bool)> {
    let v = value.trim();
    let v = v
        .strip_prefix("Re-")
        .or_else(|| v.strip_prefix("re-"))
        .or_else(|| v.strip_prefix("RE-"))
        .unwrap_or(v);
    let is = |name: &str| v.eq_ignore_ascii_case(name);
    if is("Recovered") {
        Some((Action::Resolve, false))
    } else if is("Warn") {
        Some((Action::Trigger, true))
    } else if is("Triggered") || is("No Data") || is("Renotify") || is("Null") {
        Some((Action::Trigger, false))
    } else {
        None
    }
}

/// `$ALERT_PRIORITY`: `P1` .. `P5`.
pub fn priority(value: &str) -> Option<Severity> {
    match value.trim().to_ascii_uppercase().as_str() {
        "P1" => Some(Severity::Critical),
        "P2" => Some(Severity::Error),
        "P3" => Some(Severity::Warning),
        "P4" | "P5" => Some(Severity::Info),
        _ => None,
    }
}

/// A title without its leading state tag: `[Triggered on {host:a}] x` -> `x`.
fn strip_state(title: &str) -> &str {
    let t = title.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        let word_end = rest
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '-' || c == ' '))
            .unwrap_or(rest.len());
        let word = rest[..word_end].trim();
        let first = word.split(' ').next().unwrap_or("");
        let known = transition(first).is_some()
            || ["No Data", "Re-No Data"]
                .iter()
                .any(|s| word.len() >= s.len() && word[..s.len()].eq_ignore_ascii_case(s));
        if known {
            if let Some(end) = rest.find(']') {
                return rest[end + 1..].trim_start();
            }
        }
    }
    t
}

fn starts_recovered(title: &str) -> bool {
    let t = title.trim_start().as_bytes();
    t.len() >= 10 && t[0] == b'[' && t[1..10].eq_ignore_ascii_case(b"recovered")
}

fn hex(parts: &[&[u8]]) -> String {
    format!("{:032x}", fingerprint(parts))
}

fn read(
    root: &BorrowedValue<'_>,
    req: &IngestRequest<'_>,
    errors: &mut Vec<String>,
) -> Option<(Event, bool)> {
    let mut t = Template { root, errors };
    let aggreg_key = t.text(&["aggreg_key", "aggregation_key", "aggregKey"]);
    let alert_id = t.text(&["alert_id", "monitor_id", "alertId", "monitorId"]);
    let cycle_key = t.text(&["alert_cycle_key", "cycle_key", "alertCycleKey"]);
    let transition_text = t.text(&["transition", "alert_transition", "alertTransition"]);
    let priority_text = t.text(&["priority", "alert_priority", "alertPriority"]);
    let alert_type = t.text(&["alert_type", "alertType"]);
    let title = t.text(&["title", "alert_title", "alertTitle"]);
    let event_title = t.text(&["event_title", "eventTitle"]);
    let status = t.text(&["status", "alert_status", "alertStatus"]);
    let scope = t.text(&["scope", "alert_scope", "alertScope"]);
    let hostname = t.text(&["hostname", "host"]);
    let tag_list = t.text(&["tags"]);
    let metric = t.text(&["metric", "alert_metric", "alertMetric"]);
    let query = t.text(&["query", "alert_query", "alertQuery"]);
    let message = t.text(&["message", "body", "text_only_msg", "event_msg"]);
    let last_updated = t.text(&["last_updated", "lastUpdated"]);
    let date = t.text(&["date"]);
    let link = t.text(&["link", "url"]);
    let event_id = t.text(&["event_id", "id"]);
    let event_type = t.text(&["event_type", "eventType"]);
    let org = t.org();

    let mut timestamp = None;
    for (name, value) in [("last_updated", &last_updated), ("date", &date)] {
        let Some(v) = value else { continue };
        match crate::time::parse_timestamp(v) {
            Some(crate::time::Timestamp::At(at)) => {
                timestamp = Some(at);
                break;
            }
            Some(crate::time::Timestamp::Unset) => {}
            None => errors.push(format!(
                "'{name}' is not a valid date-time (epoch milliseconds, as $DATE sends)"
            )),
        }
    }

    let labels = merge_tags(&[tag_list.as_deref(), scope.as_deref()]);
    let source = hostname
        .as_deref()
        .or_else(|| lookup(&labels, "host"))
        .unwrap_or_default()
        .to_string();

    let dedup_key = if let Some(k) = &aggreg_key {
        k.to_string()
    } else if let Some(id) = &alert_id {
        match scope.as_deref() {
            None => id.to_string(),
            Some(s) if id.chars().count() + 1 + s.chars().count() <= MAX_DEDUP_KEY_CHARS => {
                format!("{id}:{s}")
            }
            Some(s) => format!("{id}:{}", hex(&[s.as_bytes()])),
        }
    } else if let Some(k) = &cycle_key {
        k.to_string()
    } else if let Some(title) = title.as_deref().or(event_title.as_deref()) {
        hex(&[strip_state(title).as_bytes(), source.as_bytes()])
    } else {
        errors.push(
            "no alert identity: one of 'aggreg_key' ($AGGREG_KEY), 'alert_id' ($ALERT_ID), \
             'alert_cycle_key' ($ALERT_CYCLE_KEY) or 'title' is needed"
                .into(),
        );
        return None;
    };
    if dedup_key.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() {
        let name = if aggreg_key.is_some() {
            "aggreg_key"
        } else if alert_id.is_some() {
            "alert_id"
        } else {
            "alert_cycle_key"
        };
        errors.push(format!(
            "'{name}' must be at most {MAX_DEDUP_KEY_CHARS} characters"
        ));
        return None;
    }
    if !errors.is_empty() {
        return None;
    }

    let known = transition_text.as_deref().and_then(transition);
    let (action, warn) = match known {
        Some(k) => k,
        None if transition_text.is_none() => {
            let recovered = title.as_deref().is_some_and(starts_recovered)
                || event_title.as_deref().is_some_and(starts_recovered)
                || alert_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("success"));
            let action = if recovered {
                Action::Resolve
            } else {
                Action::Trigger
            };
            (action, false)
        }
        None => (Action::Trigger, false),
    };

    let mut event = Event::new(
        KIND,
        action,
        req.routing_key.to_string(),
        dedup_key,
        req.now,
    );
    let (text, truncated) = summary(
        title
            .as_deref()
            .or(event_title.as_deref())
            .or(status.as_deref())
            .unwrap_or(&event.dedup_key),
    );
    event.summary = text;
    event.severity = if warn {
        Severity::Warning
    } else {
        priority_text
            .as_deref()
            .and_then(priority)
            .or_else(|| alert_type.as_deref().and_then(Severity::parse))
            .unwrap_or(req.settings.default_severity)
    };
    event.source = source;
    event.component = lookup(&labels, "service").map(str::to_string);
    event.class = metric.map(Cow::into_owned);
    event.group = alert_id.as_deref().map(str::to_string);
    event.timestamp = timestamp;
    if let Some(href) = link {
        event.links.push(Link {
            href: href.into_owned(),
            text: Some("Datadog".into()),
        });
    }
    event.custom_details = details(&[
        ("message", &message),
        ("status", &status),
        ("query", &query),
        ("priority", &priority_text),
        ("transition", &transition_text),
        ("alert_cycle_key", &cycle_key),
        ("event_id", &event_id),
        ("event_type", &event_type),
        ("org", &org),
    ]);
    event.labels = labels.into();
    Some((event, truncated))
}

fn details(fields: &[(&str, &Option<Cow<'_, str>>)]) -> Option<Details> {
    text_details(fields.iter().map(|(k, v)| (*k, v.as_deref())))
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    use crate::ingest::integrations::testing::parse;
    use crate::time::UnixMillis;

    fn one(body: &str) -> Event {
        let mut p = parse(KIND, body.as_bytes()).unwrap();
        assert_eq!(p.events.len(), 1);
        p.events.remove(0)
    }

    #[test]
    fn transitions_decide_the_action_and_warn_sets_warning() {
        for (t, action, sev) in [
            ("Triggered", Action::Trigger, Severity::Error),
            ("Re-Triggered", Action::Trigger, Severity::Error),
            ("Warn", Action::Trigger, Severity::Warning),
            ("Re-Warn", Action::Trigger, Severity::Warning),
            ("No Data", Action::Trigger, Severity::Error),
            ("Renotify", Action::Trigger, Severity::Error),
            ("Recovered", Action::Resolve, Severity::Error),
            ("recovered", Action::Resolve, Severity::Error),
            ("Something New", Action::Trigger, Severity::Error),
        ] {
            let e = one(&format!(
                r#"{{"alert_id":"1","transition":"{t}","priority":"P2"}}"#
            ));
            assert_eq!((e.action, e.severity), (action, sev), "{t}");
        }
    }

    #[test]
    fn priorities_and_alert_types_map_to_severities() {
        for (p, want) in [
            ("P1", Severity::Critical),
            ("p2", Severity::Error),
            ("P3", Severity::Warning),
            ("P4", Severity::Info),
            ("P5", Severity::Info),
        ] {
            assert_eq!(priority(p), Some(want), "{p}");
        }
        assert_eq!(priority("$ALERT_PRIORITY"), None);
        let e = one(r#"{"alert_id":"1","alert_type":"warning"}"#);
        assert_eq!(e.severity, Severity::Warning);
        let e = one(r#"{"alert_id":"1","priority":"$ALERT_PRIORITY"}"#);
        assert_eq!(e.severity, Severity::Error, "default");
    }

    #[test]
    fn the_key_prefers_aggreg_key_then_monitor_and_scope() {
        let e = one(r#"{"aggreg_key":"9bd4","alert_id":"7","scope":"host:a"}"#);
        assert_eq!(e.dedup_key, "9bd4");
        let e = one(r#"{"alert_id":7,"scope":"host:a,env:prod"}"#);
        assert_eq!(e.dedup_key, "7:host:a,env:prod");
        assert_eq!(e.group.as_deref(), Some("7"));
        let e = one(r#"{"monitor_id":"7","scope":"$ALERT_SCOPE"}"#);
        assert_eq!(e.dedup_key, "7");
        let long = "k:v,".repeat(100);
        let e = one(&format!(r#"{{"alert_id":"7","scope":"{long}"}}"#));
        assert!(e.dedup_key.starts_with("7:") && e.dedup_key.len() == 34);
        let e = one(r#"{"cycle_key":"c-1"}"#);
        assert_eq!(e.dedup_key, "c-1");
    }

    #[test]
    fn the_default_payload_pairs_trigger_and_recovery_by_title() {
        let trigger = one(
            r#"{"body":"%%%\nhigh\n%%%","last_updated":"1714641300000","event_type":"query_alert_monitor",
                "title":"[Triggered] [Memory Alert]","date":"1714641300000","org":{"id":"1","name":"Example"},"id":"555"}"#,
        );
        let recovery =
            one(r#"{"title":"[Recovered] [Memory Alert]","date":"1714641900000","id":"556"}"#);
        assert_eq!(trigger.action, Action::Trigger);
        assert_eq!(recovery.action, Action::Resolve);
        assert_eq!(trigger.dedup_key, recovery.dedup_key);
        assert_eq!(trigger.timestamp, Some(UnixMillis(1_714_641_300_000)));
        assert_eq!(strip_state("[Triggered on {host:a}] p99"), "p99");
        assert_eq!(strip_state("[Re-No Data] x"), "x");
        assert_eq!(strip_state("[P1] x"), "[P1] x");
    }

    #[test]
    fn tags_and_scope_become_labels_source_and_component() {
        let e = one(
            r#"{"alert_id":"1","tags":"env:staging,service:checkout,monitor, team : web ","scope":"host:web-4,env:prod"}"#,
        );
        let labels: Vec<(&str, &str)> = e.labels.iter().collect();
        assert_eq!(
            labels,
            [
                ("env", "prod"),
                ("host", "web-4"),
                ("service", "checkout"),
                ("team", "web")
            ]
        );
        assert_eq!(e.source, "web-4");
        assert_eq!(e.component.as_deref(), Some("checkout"));
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        for (body, want) in [
            ("nope", "datadog: body is not valid JSON"),
            ("[1]", "datadog: body is not a JSON object"),
            (
                r#"{"transition":"Triggered"}"#,
                "datadog: no alert identity: one of 'aggreg_key' ($AGGREG_KEY), 'alert_id' ($ALERT_ID), 'alert_cycle_key' ($ALERT_CYCLE_KEY) or 'title' is needed",
            ),
            (
                r#"{"alert_id":"1","date":"yesterday"}"#,
                "datadog: 'date' is not a valid date-time (epoch milliseconds, as $DATE sends)",
            ),
            (
                r#"{"alert_id":{"x":1}}"#,
                "datadog: 'alert_id' must be a string (a template variable); no alert identity: one of 'aggreg_key' ($AGGREG_KEY), 'alert_id' ($ALERT_ID), 'alert_cycle_key' ($ALERT_CYCLE_KEY) or 'title' is needed",
            ),
        ] {
            let err = parse(KIND, body.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), want, "{body}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
}
