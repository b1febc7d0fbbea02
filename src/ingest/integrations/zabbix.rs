//! Zabbix, through a webhook media type whose script posts its parameters (Zabbix macros) as
//! one JSON object, served at `POST /integrations/zabbix/<routing_key>`. One event per request.
//! (Zabbix's stock PagerDuty media type needs nothing from this file: it posts PagerDuty
//! Events v2 to `POST /v2/enqueue`, which answers it exactly as PagerDuty does.)
//!
//! - **Payload**: the parameters of sluice's media type (the fixture README has the script):
//!   `event_id` (`{EVENT.ID}`), `event_value` (`{EVENT.VALUE}`), `event_update`
//!   (`{EVENT.UPDATE.STATUS}`), `event_ack` (`{EVENT.ACK.STATUS}`), `event_source`
//!   (`{EVENT.SOURCE}`), `event_recovery_id` (`{EVENT.RECOVERY.ID}`), `nseverity`
//!   (`{EVENT.NSEVERITY}`), `severity` (`{EVENT.SEVERITY}`), `event_name` (`{EVENT.NAME}`),
//!   `host` (`{HOST.NAME}`), `host_ip` (`{HOST.IP}`), `host_group`, `trigger_id`
//!   (`{TRIGGER.ID}`), `tags` (`{EVENT.TAGS}`: `tag:value, ...`; `{EVENT.TAGSJSON}`, an
//!   array of `{tag, value}`, works too), `opdata` (`{EVENT.OPDATA}`), `event_date`,
//!   `event_time`, `event_update_message`, `event_update_user`, `zabbix_url`. Values may be
//!   strings or numbers; a macro Zabbix left unexpanded (`{EVENT.RECOVERY.ID}`) or
//!   `*UNKNOWN*` counts as absent.
//! - **Resolve**: `event_value` `0` resolves. `1` triggers, except an update (`event_update`
//!   `1`) with `event_ack` `Yes`, which acknowledges (the stock PagerDuty media type's rules);
//!   other updates re-trigger (they refresh the open alert). Without `event_value`, a
//!   `recovery` flag (`1`, `true`, `yes`) or an expanded `event_recovery_id` resolves; with
//!   neither the request is refused: a recovery could not be told from a problem.
//! - **Dedup key**: `event_id`: a recovery carries the original problem's `{EVENT.ID}`, so it
//!   meets its trigger. Event ids are unique per Zabbix server; two servers posting to one
//!   routing key should each have their own routing key.
//! - **Severity**: `nseverity` `0` Not classified / `1` Information -> info, `2` Warning /
//!   `3` Average -> warning, `4` High -> error, `5` Disaster -> critical; else the same names
//!   in `severity`; else the integration's `default_severity`.
//! - **Fields**: summary = `event_name`, else `Zabbix event <id>`; source = `host`, else
//!   `host_ip`; component = the `service` tag; group = `host_group`; class = `trigger_id`;
//!   labels = the tags plus `host_ip` and `event_source`; custom_details = `opdata`,
//!   `event_date`, `event_time` (Zabbix server local time, so never the event's timestamp),
//!   the update message and user, and the recovery id; links = `<zabbix_url>/tr_events.php?
//!   triggerid=..&eventid=..`; timestamp = `event_timestamp` (epoch seconds) when the media
//!   type sends one, else none (the gateway's arrival time is kept as `received_at`).
//! - **Answer**: `202 {"status":"success","message":"Event processed","dedup_key":"<event_id>"}`,
//!   the answer Zabbix's PagerDuty media type checks for (202 and `status` `success`), so a
//!   script derived from it works unchanged; a refusal is `400` naming the field.

use std::borrow::Cow;

use http::Response;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{Action, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::Body;
use crate::integration::Integration;

use super::fields::details_of;
use super::{one_alert, reply, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Zabbix;

/// The Zabbix webhook media type format in the integrations registry.
pub struct MediaType;

impl Format for MediaType {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        one_alert(KIND, body, |r| read(r.value?, req, r.errors))
    }

    /// What Zabbix's PagerDuty media type checks: 202 and `"status":"success"`.
    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::pd_style_accepted(parsed, kind)
    }
}

/// `{EVENT.NSEVERITY}` (0-5) or `{EVENT.SEVERITY}` (its name).
pub fn severity(value: &str) -> Option<Severity> {
    let v = value.trim();
    [
        ("0", "Not classified", Severity::Info),
        ("1", "Information", Severity::Info),
        ("2", "Warning", Severity::Warning),
        ("3", "Average", Severity::Warning),
        ("4", "High", Severity::Error),
        ("5", "Disaster", Severity::Critical),
    ]
    .into_iter()
    .find_map(|(n, name, sev)| (v == n || v.eq_ignore_ascii_case(name)).then_some(sev))
}

/// A macro Zabbix did not expand: `{EVENT.RECOVERY.ID}`, `{$ZABBIX.URL}`, `*UNKNOWN*`.
fn unexpanded(s: &str) -> bool {
    s == "*UNKNOWN*"
        || (s.len() > 2
            && s.starts_with('{')
            && s.ends_with('}')
            && s[1..s.len() - 1].bytes().all(|b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'$')
            }))
}

struct Params<'v, 'e> {
    root: &'v BorrowedValue<'v>,
    errors: &'e mut Vec<String>,
}

impl<'v> Params<'v, '_> {
    /// A parameter as text (strings trimmed, numbers as their JSON text); empty and
    /// unexpanded values are absent; objects and arrays are a problem.
    fn text(&mut self, name: &str) -> Option<Cow<'v, str>> {
        let v = self.root.get(name).filter(|v| !v.is_null())?;
        let text = if let Some(s) = v.as_str() {
            Cow::Borrowed(s.trim())
        } else if v.is_number() || v.is_bool() {
            Cow::Owned(v.encode())
        } else {
            self.errors.push(format!(
                "'{name}' must be a string (a Zabbix macro's value)"
            ));
            return None;
        };
        (!text.is_empty() && !unexpanded(&text)).then_some(text)
    }

    /// `{EVENT.TAGS}` (`a:1, b:2`) or `{EVENT.TAGSJSON}` (`[{"tag":"a","value":"1"}]`).
    fn tags(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(v) = self.root.get("tags").filter(|v| !v.is_null()) else {
            return out;
        };
        if let Some(items) = v.as_array() {
            for (i, item) in items.iter().enumerate() {
                match item.get("tag").and_then(|t| t.as_str()) {
                    Some(tag) => {
                        let value = item.get("value").and_then(|v| v.as_str()).unwrap_or("");
                        out.push((tag.trim().to_string(), value.trim().to_string()));
                    }
                    None => self
                        .errors
                        .push(format!("'tags[{i}]' must be an object with a string 'tag'")),
                }
            }
        } else if let Some(list) = v.as_str().filter(|s| !unexpanded(s.trim())) {
            for tag in list.split(',') {
                let tag = tag.trim();
                if tag.is_empty() {
                    continue;
                }
                let (k, v) = tag.split_once(':').unwrap_or((tag, ""));
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        } else if v.as_str().is_none() {
            self.errors.push(
                "'tags' must be a string (tag:value, ...) or an array of {tag, value}".into(),
            );
        }
        out.retain(|(k, _)| !k.is_empty());
        out
    }
}

fn is_yes(v: &str) -> bool {
    ["1", "true", "yes"]
        .iter()
        .any(|y| v.eq_ignore_ascii_case(y))
}

fn read(
    root: &BorrowedValue<'_>,
    req: &IngestRequest<'_>,
    errors: &mut Vec<String>,
) -> Option<(Event, bool)> {
    let mut p = Params { root, errors };
    let event_id = p.text("event_id");
    let value = p.text("event_value");
    let update = p.text("event_update");
    let ack = p.text("event_ack");
    let recovery = p.text("recovery");
    let recovery_id = p.text("event_recovery_id");
    let source_kind = p.text("event_source");
    let nseverity = p.text("nseverity");
    let sev_name = p.text("severity");
    let name = p.text("event_name");
    let host = p.text("host");
    let host_ip = p.text("host_ip");
    let host_group = p.text("host_group");
    let trigger_id = p.text("trigger_id");
    let opdata = p.text("opdata");
    let date = p.text("event_date");
    let time = p.text("event_time");
    let update_message = p.text("event_update_message");
    let update_user = p.text("event_update_user");
    let url = p.text("zabbix_url");
    let clock = p.text("event_timestamp");
    let tags = p.tags();

    let mut timestamp = None;
    if let Some(c) = &clock {
        match crate::time::parse_timestamp(c) {
            Some(crate::time::Timestamp::At(t)) => timestamp = Some(t),
            Some(crate::time::Timestamp::Unset) => {}
            None => errors.push("'event_timestamp' is not epoch seconds".into()),
        }
    }
    let action = match value.as_deref() {
        Some("0") => Some(Action::Resolve),
        Some("1") => {
            let updated = update.as_deref().is_some_and(|u| u == "1");
            let acked = ack
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case("yes"));
            Some(if updated && acked {
                Action::Acknowledge
            } else {
                Action::Trigger
            })
        }
        Some(_) => {
            errors.push("'event_value' must be 1 (problem) or 0 (recovery)".into());
            None
        }
        None if recovery.as_deref().is_some_and(is_yes) || recovery_id.is_some() => {
            Some(Action::Resolve)
        }
        None if recovery.is_some() => Some(Action::Trigger),
        None => {
            errors.push(
                "'event_value' is missing ({EVENT.VALUE}: 1 for a problem, 0 for a recovery)"
                    .into(),
            );
            None
        }
    };
    let event_id = match event_id {
        Some(id) if id.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() => {
            errors.push(format!(
                "'event_id' must be at most {MAX_DEDUP_KEY_CHARS} characters"
            ));
            None
        }
        Some(id) => Some(id),
        None => {
            errors.push("'event_id' is missing or blank ({EVENT.ID})".into());
            None
        }
    };
    if !errors.is_empty() {
        return None;
    }
    let (event_id, action) = (event_id?, action?);

    let mut event = Event::new(
        KIND,
        action,
        req.routing_key.to_string(),
        event_id.into_owned(),
        req.now,
    );
    let fallback = format!("Zabbix event {}", event.dedup_key);
    let (text, truncated) = summary(name.as_deref().unwrap_or(&fallback));
    event.summary = text;
    event.severity = nseverity
        .as_deref()
        .and_then(severity)
        .or_else(|| sev_name.as_deref().and_then(severity))
        .unwrap_or(req.settings.default_severity);
    event.source = host
        .as_deref()
        .or(host_ip.as_deref())
        .unwrap_or_default()
        .to_string();
    event.class = trigger_id.as_deref().map(str::to_string);
    event.group = host_group.map(Cow::into_owned);
    event.timestamp = timestamp;
    let mut labels = tags;
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            earlier.1.clone_from(&later.1);
            true
        } else {
            false
        }
    });
    event.component = labels
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty());
    for (k, v) in [("host_ip", &host_ip), ("event_source", &source_kind)] {
        if let Some(v) = v {
            labels.retain(|(name, _)| name != k);
            labels.push((k.to_string(), v.to_string()));
        }
    }
    labels.sort_unstable();
    event.labels = labels.into();
    if let (Some(base), Some(trigger)) = (&url, &trigger_id) {
        event.links.push(Link {
            href: format!(
                "{}/tr_events.php?triggerid={trigger}&eventid={}",
                base.trim_end_matches('/'),
                event.dedup_key
            ),
            text: Some("Zabbix event".into()),
        });
    }
    let mut details = serde_json::Map::new();
    for (k, v) in [
        ("opdata", &opdata),
        ("event_date", &date),
        ("event_time", &time),
        ("event_update_message", &update_message),
        ("event_update_user", &update_user),
        ("event_recovery_id", &recovery_id),
    ] {
        if let Some(v) = v {
            details.insert(k.into(), serde_json::Value::String(v.to_string()));
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

    fn one(body: &str) -> Event {
        parse(KIND, body.as_bytes()).unwrap().events.remove(0)
    }

    #[test]
    fn value_update_and_ack_decide_the_action() {
        for (fields, want) in [
            (r#""event_value":"1","event_update":"0""#, Action::Trigger),
            (
                r#""event_value":1,"event_update":1,"event_ack":"Yes""#,
                Action::Acknowledge,
            ),
            (
                r#""event_value":"1","event_update":"1","event_ack":"No""#,
                Action::Trigger,
            ),
            (r#""event_value":"0""#, Action::Resolve),
            (r#""recovery":"true""#, Action::Resolve),
            (r#""recovery":"0""#, Action::Trigger),
            (r#""event_recovery_id":"91899""#, Action::Resolve),
        ] {
            let e = one(&format!(r#"{{"event_id":"91823",{fields}}}"#));
            assert_eq!(
                (e.action, e.dedup_key.as_str()),
                (want, "91823"),
                "{fields}"
            );
        }
        let err = parse(
            KIND,
            br#"{"event_id":"1","event_recovery_id":"{EVENT.RECOVERY.ID}"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("'event_value' is missing"),
            "{err}"
        );
    }

    #[test]
    fn severities_map_by_number_or_name() {
        for (n, want) in [
            ("0", Some(Severity::Info)),
            ("1", Some(Severity::Info)),
            ("2", Some(Severity::Warning)),
            ("3", Some(Severity::Warning)),
            ("4", Some(Severity::Error)),
            ("5", Some(Severity::Critical)),
            ("Disaster", Some(Severity::Critical)),
            ("not classified", Some(Severity::Info)),
            ("6", None),
        ] {
            assert_eq!(severity(n), want, "{n}");
        }
        let e = one(
            r#"{"event_id":"1","event_value":"1","nseverity":"{EVENT.NSEVERITY}","severity":"High"}"#,
        );
        assert_eq!(e.severity, Severity::Error);
    }

    #[test]
    fn tags_in_either_form_become_labels() {
        let a =
            one(r#"{"event_id":"1","event_value":"1","tags":"service:postgres, env:prod,scope"}"#);
        let b = one(
            r#"{"event_id":"1","event_value":"1","tags":[{"tag":"env","value":"prod"},{"tag":"service","value":"postgres"},{"tag":"scope","value":""}]}"#,
        );
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.component.as_deref(), Some("postgres"));
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        for (body, want) in [
            ("", "zabbix: body is not valid JSON"),
            (
                r#"{"event_value":"2","tags":5}"#,
                "zabbix: 'tags' must be a string (tag:value, ...) or an array of {tag, value}; 'event_value' must be 1 (problem) or 0 (recovery); 'event_id' is missing or blank ({EVENT.ID})",
            ),
            (
                r#"{"event_id":"{EVENT.ID}","event_value":"1"}"#,
                "zabbix: 'event_id' is missing or blank ({EVENT.ID})",
            ),
        ] {
            let err = parse(KIND, body.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), want, "{body}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
}
