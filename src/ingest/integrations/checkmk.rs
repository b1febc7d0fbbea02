//! Checkmk notifications (Checkmk 2.x, Raw and Enterprise editions) through a notification
//! script that posts Checkmk's notification context as JSON. Checkmk has no generic JSON
//! webhook of its own, so sluice documents the script (README): it posts every `NOTIFY_*`
//! environment variable, name and value as strings, to `POST /integrations/checkmk/<routing_key>`.
//! Keys may also come without the `NOTIFY_` prefix (`WHAT`, `HOSTNAME`, ...). One
//! notification per request.
//!
//! - **Action** from `NOTIFY_NOTIFICATIONTYPE`: `PROBLEM` triggers, `RECOVERY` resolves,
//!   `ACKNOWLEDGEMENT` acknowledges; the others (`FLAPPINGSTART`, `FLAPPINGSTOP`,
//!   `DOWNTIMESTART`, `DOWNTIMEEND`, `CUSTOM`, ...) are accepted and produce no event.
//! - **Dedup key**: `NOTIFY_HOSTNAME` for host notifications (`NOTIFY_WHAT: HOST`),
//!   `<host>/<service description>` for service notifications: the same alert Checkmk tracks,
//!   readable downstream (a key over 255 characters becomes 32 hex digits of xxh3-128 of both).
//! - **Severity** from the state: service `CRITICAL` -> critical, `WARNING` -> warning,
//!   `UNKNOWN` -> error; host `DOWN` -> critical, `UNREACHABLE` -> error; anything else ->
//!   `default_severity`.
//! - **Fields**: summary = `<key> <state>: <output>` (`NOTIFY_SERVICEOUTPUT` /
//!   `NOTIFY_HOSTOUTPUT`); source = the host; component = the service; class = `host` or
//!   `service`; group = `NOTIFY_OMD_SITE`; labels = Checkmk's host and service labels
//!   (`NOTIFY_HOSTLABEL_<name>`, `NOTIFY_SERVICELABEL_<name>`, service labels winning);
//!   custom_details = address, states, outputs, contact and check command; timestamp =
//!   `NOTIFY_MICROTIME` (epoch microseconds); link = `NOTIFY_SERVICEURL` / `NOTIFY_HOSTURL`
//!   when absolute.
//! - **Answer**: `202` and the generic body; the script exits non-zero on a non-2xx so Checkmk
//!   records the notification as failed (and retries it, with the notification spooler).

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{fingerprint, Action, Details, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::integration::Integration;
use crate::time::{from_epoch_number, Timestamp as Time};

use super::fields::details_of;
use super::fields::severity_named;
use super::{json_object, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Checkmk;
const HOST_LABEL: &str = "NOTIFY_HOSTLABEL_";
const SERVICE_LABEL: &str = "NOTIFY_SERVICELABEL_";

/// The Checkmk notification script's body in the integrations registry.
pub struct Webhook;

/// The notification context: one object of string (or number) values.
struct Context<'v> {
    root: &'v BorrowedValue<'v>,
    errors: Vec<String>,
}

impl<'v> Context<'v> {
    /// `NOTIFY_<name>`, else `<name>`; blank is absent; a non-string is a problem.
    fn get(&mut self, name: &str) -> Option<&'v str> {
        let full = format!("NOTIFY_{name}");
        let (key, v) = [full.as_str(), name]
            .into_iter()
            .find_map(|k| self.root.get(k).filter(|v| !v.is_null()).map(|v| (k, v)))?;
        match v.as_str() {
            Some(s) => Some(s.trim()).filter(|s| !s.is_empty()),
            None => {
                self.errors.push(format!("'{key}' must be a string"));
                None
            }
        }
    }
}

/// A state as sluice's severity; `None` for OK / UP and for states it does not know.
pub fn severity(state: &str) -> Option<Severity> {
    severity_named(
        state,
        &[
            ("CRITICAL", Severity::Critical),
            ("WARNING", Severity::Warning),
            ("UNKNOWN", Severity::Error),
            ("DOWN", Severity::Critical),
            ("UNREACHABLE", Severity::Error),
        ],
    )
}

impl Format for Webhook {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        let root = json_object(KIND, body)?;
        let mut c = Context {
            root: &root,
            errors: Vec::new(),
        };
        let what = c.get("WHAT");
        let kind_of = c.get("NOTIFICATIONTYPE");
        let host = c.get("HOSTNAME");
        let service = c.get("SERVICEDESC");
        let site = c.get("OMD_SITE");
        let micro = c.get("MICROTIME");
        let is_service = match what {
            Some(w) if w.eq_ignore_ascii_case("SERVICE") => true,
            Some(w) if w.eq_ignore_ascii_case("HOST") => false,
            Some(w) => {
                c.errors
                    .push(format!("'NOTIFY_WHAT' must be HOST or SERVICE (got {w:?})"));
                false
            }
            None => service.is_some(),
        };
        let (state, output, url) = if is_service {
            (
                c.get("SERVICESTATE"),
                c.get("SERVICEOUTPUT"),
                c.get("SERVICEURL"),
            )
        } else {
            (c.get("HOSTSTATE"), c.get("HOSTOUTPUT"), c.get("HOSTURL"))
        };
        let action = match kind_of.map(str::to_ascii_uppercase).as_deref() {
            Some("PROBLEM") => Some(Action::Trigger),
            Some("RECOVERY") => Some(Action::Resolve),
            Some("ACKNOWLEDGEMENT") => Some(Action::Acknowledge),
            Some(_) => None,
            None => {
                c.errors
                    .push("'NOTIFY_NOTIFICATIONTYPE' is missing".to_string());
                None
            }
        };
        if host.is_none() {
            c.errors
                .push("'NOTIFY_HOSTNAME' is missing or blank".to_string());
        }
        if is_service && service.is_none() {
            c.errors.push(
                "'NOTIFY_SERVICEDESC' is missing or blank (a service notification)".to_string(),
            );
        }
        let timestamp = micro.map(|m| {
            m.parse::<f64>()
                .ok()
                .map(|us| us / 1000.0)
                .and_then(from_epoch_number)
        });
        let timestamp = match timestamp {
            Some(Some(Time::At(t))) => Some(t),
            Some(None) => {
                c.errors
                    .push("'NOTIFY_MICROTIME' must be epoch microseconds".to_string());
                None
            }
            _ => None,
        };
        let errors = std::mem::take(&mut c.errors);
        if !errors.is_empty() {
            return Err(IntegrationError::Invalid {
                kind: KIND,
                problems: errors,
            });
        }
        let (Some(action), Some(host)) = (action, host) else {
            return Ok(Parsed::default());
        };
        let service = service.filter(|_| is_service);
        let readable = match service {
            Some(s) => format!("{host}/{s}"),
            None => host.to_string(),
        };
        let dedup_key = if readable.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() {
            let s = service.unwrap_or_default();
            format!("{:032x}", fingerprint(&[host.as_bytes(), s.as_bytes()]))
        } else {
            readable.clone()
        };
        let mut event = Event::new(
            KIND,
            action,
            req.routing_key.to_string(),
            dedup_key,
            req.now,
        );
        let (s, truncated) = summary(&match (state, output) {
            (Some(st), Some(out)) => format!("{readable} {st}: {out}"),
            (Some(st), None) => format!("{readable} {st}"),
            (None, Some(out)) => format!("{readable}: {out}"),
            (None, None) => readable.clone(),
        });
        event.summary = s;
        event.severity = state
            .and_then(severity)
            .unwrap_or(req.settings.default_severity);
        event.source = host.to_string();
        event.component = service.map(str::to_string);
        event.class = Some(if is_service { "service" } else { "host" }.to_string());
        event.group = site.map(str::to_string);
        event.timestamp = timestamp;
        event.links = url
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .map(|href| Link {
                href: href.to_string(),
                text: Some("Checkmk".into()),
            })
            .into_iter()
            .collect();
        event.labels = labels(&root).into();
        let mut c = Context {
            root: &root,
            errors: Vec::new(),
        };
        event.custom_details = details(&mut c, is_service);
        Ok(Parsed::one(event, truncated))
    }
}

/// Host labels, then service labels over them, sorted by name.
fn labels(root: &BorrowedValue<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let Some(map) = root.as_object() else {
        return out;
    };
    for prefix in [HOST_LABEL, SERVICE_LABEL] {
        for (k, v) in map.iter() {
            if let (Some(name), Some(value)) = (k.strip_prefix(prefix), v.as_str()) {
                if name.is_empty() {
                    continue;
                }
                out.retain(|(n, _)| n != name);
                out.push((name.to_string(), value.to_string()));
            }
        }
    }
    out.sort();
    out
}

fn details(c: &mut Context<'_>, is_service: bool) -> Option<Details> {
    let mut names = vec![
        "HOSTADDRESS",
        "HOSTSTATE",
        "HOSTOUTPUT",
        "LASTHOSTSTATE",
        "CONTACTNAME",
        "NOTIFICATIONCOMMENT",
        "NOTIFICATIONAUTHOR",
    ];
    if is_service {
        names.extend([
            "SERVICESTATE",
            "LASTSERVICESTATE",
            "SERVICEOUTPUT",
            "LONGSERVICEOUTPUT",
            "SERVICECHECKCOMMAND",
        ]);
    }
    let mut map = serde_json::Map::new();
    for name in names {
        if let Some(v) = c.get(name) {
            map.insert(
                name.to_ascii_lowercase(),
                serde_json::Value::String(v.to_string()),
            );
        }
    }
    details_of(&map)
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::ingest::integrations::testing::parse;
    use crate::time::UnixMillis;

    #[test]
    fn host_and_service_keys_and_actions() {
        let p = parse(KIND, r#"{"NOTIFY_WHAT":"SERVICE","NOTIFY_NOTIFICATIONTYPE":"PROBLEM","NOTIFY_HOSTNAME":"db-1","NOTIFY_SERVICEDESC":"Filesystem /","NOTIFY_SERVICESTATE":"WARNING","NOTIFY_SERVICEOUTPUT":"91% used"}"#).unwrap();
        let e = &p.events[0];
        assert_eq!(
            (e.dedup_key.as_str(), e.action, e.severity),
            ("db-1/Filesystem /", Action::Trigger, Severity::Warning)
        );
        assert_eq!(e.summary, "db-1/Filesystem / WARNING: 91% used");
        let p = parse(KIND, r#"{"WHAT":"HOST","NOTIFICATIONTYPE":"RECOVERY","HOSTNAME":"db-1","HOSTSTATE":"UP","SERVICEDESC":"ignored"}"#).unwrap();
        let e = &p.events[0];
        assert_eq!(
            (e.dedup_key.as_str(), e.action, e.component.as_deref()),
            ("db-1", Action::Resolve, None)
        );
        let p = parse(KIND, r#"{"NOTIFY_WHAT":"HOST","NOTIFY_NOTIFICATIONTYPE":"ACKNOWLEDGEMENT","NOTIFY_HOSTNAME":"db-1"}"#).unwrap();
        assert_eq!(p.events[0].action, Action::Acknowledge);
        let p = parse(KIND, r#"{"NOTIFY_WHAT":"HOST","NOTIFY_NOTIFICATIONTYPE":"FLAPPINGSTART","NOTIFY_HOSTNAME":"db-1"}"#).unwrap();
        assert!(p.events.is_empty());
    }

    #[test]
    fn labels_and_microtime() {
        let p = parse(KIND, r#"{"NOTIFY_WHAT":"SERVICE","NOTIFY_NOTIFICATIONTYPE":"PROBLEM","NOTIFY_HOSTNAME":"h","NOTIFY_SERVICEDESC":"s",
            "NOTIFY_HOSTLABEL_team":"db","NOTIFY_HOSTLABEL_env":"prod","NOTIFY_SERVICELABEL_team":"storage","NOTIFY_MICROTIME":"1714641290123456"}"#).unwrap();
        let e = &p.events[0];
        assert_eq!(
            e.labels,
            [
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "storage".to_string())
            ]
        );
        assert_eq!(e.timestamp, Some(UnixMillis(1_714_641_290_123)));
    }

    #[test]
    fn refusals_name_the_fields() {
        for (body, want) in [
            ("{", "checkmk: body is not valid JSON"),
            ("{}", "checkmk: 'NOTIFY_NOTIFICATIONTYPE' is missing; 'NOTIFY_HOSTNAME' is missing or blank"),
            (
                r#"{"NOTIFY_WHAT":"SERVICE","NOTIFY_NOTIFICATIONTYPE":"PROBLEM","NOTIFY_HOSTNAME":3,"NOTIFY_MICROTIME":"soon"}"#,
                "checkmk: 'NOTIFY_HOSTNAME' must be a string; 'NOTIFY_HOSTNAME' is missing or blank; 'NOTIFY_SERVICEDESC' is missing or blank (a service notification); 'NOTIFY_MICROTIME' must be epoch microseconds",
            ),
        ] {
            assert_eq!(parse(KIND, body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
