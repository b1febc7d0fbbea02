//! Uptime Kuma "Webhook" notifications (Uptime Kuma 1.x and 2.x), with the request body set to
//! "Preset - application/json" (the default). Served at
//! `POST /integrations/uptime_kuma/<routing_key>`; one heartbeat per request.
//!
//! - **Body**: `{"heartbeat": {monitorID, status, time, msg, ping, important, duration, ...},
//!   "monitor": {id, name, type, url, hostname, port, tags, ...}, "msg": "..."}`. The
//!   `multipart/form-data` preset (one `data` field holding the JSON) is refused with a 400
//!   that says to pick the JSON preset.
//! - **Test notifications** ("Test" in the UI) send `heartbeat` and `monitor` as null: accepted,
//!   no event.
//! - **Resolve**: `heartbeat.status` `1` (UP) resolves, `0` (DOWN) triggers; `2` (PENDING, a
//!   retry before DOWN) and `3` (MAINTENANCE) are accepted and produce no event.
//! - **Dedup key**: `monitor.id`, else `heartbeat.monitorID`, as text.
//! - **Severity**: the format has none: `default_severity`.
//! - **Fields**: summary = `<monitor.name>: <heartbeat.msg>`, else the top-level `msg`; source =
//!   `monitor.hostname`, else `monitor.url`; component = `monitor.name`; class = `monitor.type`;
//!   labels = `monitor.tags` (`name` = `value`); custom_details = `heartbeat`; timestamp =
//!   `heartbeat.time` (`YYYY-MM-DD HH:mm:ss.SSS`, UTC); link = `monitor.url` when it is one.
//! - **Answer**: `202` and the generic body; Uptime Kuma logs a non-2xx as a failed notification.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{Action, Event, Link, MAX_DEDUP_KEY_CHARS};
use crate::integration::Integration;

use super::fields::{path, Reader};
use super::{json_object, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::UptimeKuma;

/// The Uptime Kuma webhook in the integrations registry.
pub struct Webhook;

/// An id sent as an integer or a string.
fn id_of(v: Option<&BorrowedValue<'_>>) -> Option<String> {
    let v = v.filter(|v| !v.is_null())?;
    let s = match v.as_str() {
        Some(s) => s.trim().to_string(),
        None => v.as_u64().map(|n| n.to_string())?,
    };
    (!s.is_empty()).then_some(s)
}

fn tags(monitor: &BorrowedValue<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = monitor
        .get("tags")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?.trim();
            let value = t.get("value").and_then(|v| v.as_str()).unwrap_or_default();
            (!name.is_empty()).then(|| (name.to_string(), value.to_string()))
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        if body.starts_with(b"--") {
            return Err(IntegrationError::Malformed {
                kind: KIND,
                what: "body is multipart/form-data: set the webhook's request body to \
                       \"Preset - application/json\"",
            });
        }
        let root = json_object(KIND, body)?;
        let mut errors = Vec::new();
        let mut r = Reader::new(Some(&root), "", &mut errors);
        let msg = r.opt_str("msg").filter(|s| !s.trim().is_empty());
        let heartbeat = r.object("heartbeat");
        let monitor = r.object("monitor");
        let details = r.details("heartbeat");
        if heartbeat.is_none() && monitor.is_none() && r.errors.is_empty() {
            return Ok(Parsed::default()); // a test notification
        }
        let mut h = r.child(heartbeat, "heartbeat");
        let hb_msg = h.opt_str("msg").filter(|s| !s.trim().is_empty());
        let time = h.timestamp("time");
        let status = heartbeat
            .and_then(|hb| hb.get("status"))
            .filter(|v| !v.is_null());
        let action =
            match status.and_then(|s| s.as_u64().or_else(|| s.as_str()?.trim().parse().ok())) {
                Some(0) => Some(Action::Trigger),
                Some(1) => Some(Action::Resolve),
                Some(2 | 3) => None,
                _ => {
                    h.errors.push(format!(
                        "'{}' must be 0 (down), 1 (up), 2 (pending) or 3 (maintenance)",
                        path("heartbeat", "status")
                    ));
                    None
                }
            };
        let key = id_of(monitor.and_then(|m| m.get("id")))
            .or_else(|| id_of(heartbeat.and_then(|hb| hb.get("monitorID"))));
        let mut m = r.child(monitor, "monitor");
        let name = m.opt_str("name").filter(|s| !s.trim().is_empty());
        let mtype = m.opt_str("type").filter(|s| !s.is_empty());
        let url = m
            .opt_str("url")
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"));
        let hostname = m.opt_str("hostname").filter(|s| !s.trim().is_empty());
        match &key {
            None => r
                .errors
                .push("'monitor.id' is missing (and so is 'heartbeat.monitorID')".to_string()),
            Some(k) if k.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() => r
                .errors
                .push("'monitor.id' must be at most 255 characters".to_string()),
            Some(_) => {}
        }
        if !errors.is_empty() {
            return Err(IntegrationError::Invalid {
                kind: KIND,
                problems: errors,
            });
        }
        let (Some(action), Some(key)) = (action, key) else {
            return Ok(Parsed::default());
        };
        let mut event = Event::new(KIND, action, req.routing_key.to_string(), key, req.now);
        let text = match (name, hb_msg) {
            (Some(n), Some(m)) => format!("{n}: {m}"),
            (Some(n), None) => msg.map_or_else(|| n.to_string(), str::to_string),
            (None, Some(m)) => m.to_string(),
            (None, None) => msg.unwrap_or(&event.dedup_key).to_string(),
        };
        let (s, truncated) = summary(&text);
        event.summary = s;
        event.severity = req.settings.default_severity;
        event.source = hostname.or(url).unwrap_or_default().to_string();
        event.component = name.map(str::to_string);
        event.class = mtype.map(str::to_string);
        event.labels = monitor.map(tags).unwrap_or_default().into();
        event.custom_details = details;
        event.timestamp = time;
        event.links = url
            .map(|href| Link {
                href: href.to_string(),
                text: Some("Monitored URL".into()),
            })
            .into_iter()
            .collect();
        Ok(Parsed::one(event, truncated))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::ingest::integrations::testing::parse;
    use crate::time::UnixMillis;

    #[test]
    fn statuses_decide_and_tests_are_ignored() {
        let body = |status: &str| {
            format!(
                r#"{{"heartbeat":{{"monitorID":7,"status":{status},"msg":"x","time":"2024-05-02 09:14:58.120"}},"monitor":{{"id":7,"name":"Shop"}},"msg":"m"}}"#
            )
        };
        let p = parse(KIND, body("0")).unwrap();
        assert_eq!(
            (p.events[0].action, p.events[0].dedup_key.as_str()),
            (Action::Trigger, "7")
        );
        assert_eq!(p.events[0].timestamp, Some(UnixMillis(1_714_641_298_120)));
        assert_eq!(
            parse(KIND, body("1")).unwrap().events[0].action,
            Action::Resolve
        );
        assert!(parse(KIND, body("2")).unwrap().events.is_empty());
        assert!(parse(KIND, body("3")).unwrap().events.is_empty());
        let p = parse(
            KIND,
            r#"{"heartbeat":null,"monitor":null,"msg":"Uptime Kuma test"}"#,
        )
        .unwrap();
        assert!(p.events.is_empty());
    }

    #[test]
    fn refusals_name_the_fields() {
        for (body, want) in [
            ("{", "uptime_kuma: body is not valid JSON"),
            (
                "--boundary\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n{}",
                "uptime_kuma: body is multipart/form-data: set the webhook's request body to \"Preset - application/json\"",
            ),
            (
                r#"{"heartbeat":{"status":"down"},"monitor":{"name":"Shop"}}"#,
                "uptime_kuma: 'heartbeat.status' must be 0 (down), 1 (up), 2 (pending) or 3 (maintenance); 'monitor.id' is missing (and so is 'heartbeat.monitorID')",
            ),
        ] {
            assert_eq!(parse(KIND, body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
