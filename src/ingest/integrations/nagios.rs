//! Nagios and Icinga notifications, served at `POST /integrations/nagios/<routing_key>`. One
//! notification per request, in any of three shapes:
//!
//! - **PagerDuty's Nagios plugin** (`pagerduty_nagios.pl`, and `pagerduty-icinga-pl` built the
//!   same way): `application/x-www-form-urlencoded` Nagios macros without their `NAGIOS_`
//!   prefix: `CONTACTPAGER` (the service key), `NOTIFICATIONTYPE`, `HOSTNAME`,
//!   `HOSTDISPLAYNAME`, `HOSTSTATE`, `HOSTOUTPUT`, `HOSTGROUPNAMES`, `SERVICEDESC`,
//!   `SERVICEDISPLAYNAME`, `SERVICESTATE`, `SERVICEOUTPUT`, `HOSTINFOURL`, `SERVICEINFOURL`,
//!   `pd_nagios_object` (`host` | `service`), `pd_version`, `NAGIOS_SERVER`; empty values are
//!   omitted by the plugin. The plugin posts to PagerDuty's own path,
//!   `POST /nagios/2010-04-15/create_event`: pointing it at sluice needs that route in the
//!   router (then the routing key is `CONTACTPAGER`); under `/integrations/nagios/<key>` the
//!   path's key wins and `CONTACTPAGER` is never kept in labels.
//! - **The same macros as a flat JSON object** (a notification command with `curl --json`);
//!   names are case-insensitive and a `NAGIOS_` / `ICINGA_` prefix is dropped.
//! - **Icinga 2 JSON** as community notification scripts post it: `host {name, display_name,
//!   state}`, `service {name, display_name, state}`, `check_result {state, exit_status,
//!   output, execution_end}`, `notification_type`. Numeric states are read as Icinga's
//!   (service 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; host 0 UP, 1 DOWN).
//!
//! - **Resolve**: `NOTIFICATIONTYPE` `RECOVERY` resolves, `ACKNOWLEDGEMENT` acknowledges,
//!   `PROBLEM` triggers (case-insensitive, so Icinga's `Problem` too). `FLAPPINGSTART`,
//!   `FLAPPINGSTOP`, `FLAPPINGDISABLED`, `DOWNTIMESTART`, `DOWNTIMEEND`, `DOWNTIMECANCELLED`
//!   and `CUSTOM` are accepted and produce no event (sluice has its own flap detection and
//!   silences). Without a notification type the state decides: `OK` / `UP` resolves, any
//!   other state triggers.
//! - **Host vs service**: `pd_nagios_object`, else a service when `SERVICEDESC` is present.
//! - **Dedup key**: `HOSTNAME` for a host, `HOSTNAME/SERVICEDESC` for a service (host names
//!   have no `/`, so the two never meet). `HOSTEVENTID` changes with every state change and
//!   is not used.
//! - **Severity**: `CRITICAL`, `DOWN`, `UNREACHABLE` -> critical; `WARNING`, `UNKNOWN` ->
//!   warning; `OK`, `UP` -> info; anything else -> the integration's `default_severity`.
//! - **Fields**: summary = `SERVICEDESC on HOSTNAME is SERVICESTATE: SERVICEOUTPUT` (service)
//!   or `HOSTNAME is HOSTSTATE: HOSTOUTPUT` (host); source = `HOSTNAME`; component =
//!   `SERVICEDESC`; group = the first of `HOSTGROUPNAMES`; class = `host` or `service`;
//!   labels = every other field, names lower-cased (never `CONTACTPAGER`); links =
//!   `HOSTINFOURL`, `SERVICEINFOURL`, `HOSTNOTESURL`; timestamp = Icinga's
//!   `check_result.execution_end` (the plugin sends no event time: `EVENTSTARTTIME` is when
//!   Nagios started).
//! - **Answer**: `200 {"status":"success","message":"Event processed","incident_key":"..."}`
//!   as PagerDuty's endpoint; the plugin drops a queued event on a 4xx (refusals are `400`,
//!   naming the field) and keeps it for a later flush on a 5xx (overload answers `503`).

use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{Action, Event, Link, Severity, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::{self, Body};
use crate::integration::Integration;

use super::fields::{form_pairs, scalar};
use super::{reply, summary, Format, IngestRequest, IntegrationError, Parsed};
use crate::integration::MAX_ROUTING_KEY_CHARS;

const KIND: Integration = Integration::Nagios;

/// PagerDuty's path for the Nagios plugin (routing it to this format is the router's job).
pub const PAGERDUTY_PATH: &str = "/nagios/2010-04-15/create_event";

/// The Nagios / Icinga format in the integrations registry.
pub struct Notification;

impl Format for Notification {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        let macros = macros(req, body)?;
        let mut errors = Vec::new();
        let event = read(&macros, req, &mut errors);
        match event {
            Ok(event) if errors.is_empty() => Ok(event
                .map(|(e, truncated)| Parsed::one(e, truncated))
                .unwrap_or_default()),
            _ => Err(IntegrationError::Invalid {
                kind: KIND,
                problems: errors,
            }),
        }
    }

    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        match parsed.events.as_slice() {
            [one] => response::pd_v1_accepted(&one.dedup_key),
            _ => reply::accepted(StatusCode::OK, kind, parsed),
        }
    }
}

/// Macro names upper-cased, without a `NAGIOS_` / `ICINGA_` prefix, with their values; empty
/// values dropped.
type Macros = Vec<(String, String)>;

fn canonical(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper
        .strip_prefix("NAGIOS_")
        .or_else(|| upper.strip_prefix("ICINGA_"))
    {
        // `NAGIOS_SERVER` is the plugin's own field, not a prefixed macro.
        Some(rest) if upper != "NAGIOS_SERVER" => rest.to_string(),
        _ => upper,
    }
}

fn get<'m>(m: &'m Macros, name: &str) -> Option<&'m str> {
    m.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn push(m: &mut Macros, name: &str, value: String) {
    let value = value.trim().to_string();
    if value.is_empty() {
        return;
    }
    let name = canonical(name);
    m.retain(|(k, _)| *k != name);
    m.push((name, value));
}

fn is_form(req: &IngestRequest<'_>, body: &[u8]) -> bool {
    let declared = req
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    declared || body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{')
}

fn macros(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Macros, IntegrationError> {
    let mut m = Macros::new();
    if is_form(req, body) {
        let text = std::str::from_utf8(body).map_err(|_| IntegrationError::Malformed {
            kind: KIND,
            what: "body is not UTF-8 form data",
        })?;
        for pair in form_pairs(text) {
            let Some((k, v)) = pair else {
                return Err(IntegrationError::Malformed {
                    kind: KIND,
                    what: "body is neither a JSON object nor valid form data",
                });
            };
            push(&mut m, &k, v);
        }
        if m.is_empty() {
            return Err(IntegrationError::Malformed {
                kind: KIND,
                what: "body is empty (expected form data or a JSON object)",
            });
        }
        return Ok(m);
    }
    let root = super::json_object(KIND, body)?;
    let nested = ["host", "service", "check_result"]
        .iter()
        .any(|k| root.get(*k).is_some_and(|v| v.is_object()));
    if nested {
        icinga(&root, &mut m);
    } else if let Some(obj) = root.as_object() {
        for (k, v) in obj.iter() {
            if let Some(text) = scalar(v) {
                push(&mut m, k, text);
            }
        }
    }
    Ok(m)
}

/// Icinga 2 JSON, mapped onto the Nagios macro names.
fn icinga(root: &BorrowedValue<'_>, m: &mut Macros) {
    let field = |obj: &str, name: &str| root.get(obj).and_then(|o| o.get(name)).and_then(scalar);
    let is_service =
        root.get("service").is_some_and(|s| s.is_object()) && field("service", "name").is_some();
    let state = field("check_result", "state")
        .or_else(|| field(if is_service { "service" } else { "host" }, "state"))
        .map(|s| numeric_state(&s, is_service));
    for (name, value) in [
        ("HOSTNAME", field("host", "name")),
        ("HOSTDISPLAYNAME", field("host", "display_name")),
        ("SERVICEDESC", field("service", "name")),
        ("SERVICEDISPLAYNAME", field("service", "display_name")),
        (
            if is_service {
                "SERVICESTATE"
            } else {
                "HOSTSTATE"
            },
            state,
        ),
        (
            if is_service {
                "SERVICEOUTPUT"
            } else {
                "HOSTOUTPUT"
            },
            field("check_result", "output"),
        ),
        ("EXECUTION_END", field("check_result", "execution_end")),
        (
            "NOTIFICATIONTYPE",
            root.get("notification_type")
                .or_else(|| root.get("type"))
                .and_then(scalar),
        ),
        (
            "PD_NAGIOS_OBJECT",
            Some(if is_service { "service" } else { "host" }.to_string()),
        ),
    ] {
        if let Some(v) = value {
            push(m, name, v);
        }
    }
}

/// Icinga's numeric states as Nagios names them; names pass through.
fn numeric_state(s: &str, service: bool) -> String {
    let named = match (s.trim(), service) {
        ("0" | "0.0", true) => "OK",
        ("1" | "1.0", true) => "WARNING",
        ("2" | "2.0", true) => "CRITICAL",
        ("3" | "3.0", true) => "UNKNOWN",
        ("0" | "0.0", false) => "UP",
        ("1" | "1.0", false) => "DOWN",
        ("2" | "2.0", false) => "UNREACHABLE",
        _ => return s.to_ascii_uppercase(),
    };
    named.to_string()
}

/// A state's severity.
pub fn severity(state: &str) -> Option<Severity> {
    let s = state.trim();
    let is = |n: &str| s.eq_ignore_ascii_case(n);
    if is("CRITICAL") || is("DOWN") || is("UNREACHABLE") {
        Some(Severity::Critical)
    } else if is("WARNING") || is("UNKNOWN") {
        Some(Severity::Warning)
    } else if is("OK") || is("UP") {
        Some(Severity::Info)
    } else {
        None
    }
}

/// What a notification type asks for; `Ok(None)` for the types that carry no alert state.
fn action(kind: &str) -> Result<Option<Action>, ()> {
    let k = kind.trim().to_ascii_uppercase();
    match k.as_str() {
        "PROBLEM" => Ok(Some(Action::Trigger)),
        "RECOVERY" => Ok(Some(Action::Resolve)),
        "ACKNOWLEDGEMENT" => Ok(Some(Action::Acknowledge)),
        "FLAPPINGSTART" | "FLAPPINGSTOP" | "FLAPPINGDISABLED" | "DOWNTIMESTART" | "DOWNTIMEEND"
        | "DOWNTIMECANCELLED" | "DOWNTIMEREMOVED" | "CUSTOM" => Ok(None),
        _ => Err(()),
    }
}

/// Fields that become the event's own, not labels.
const NOT_LABELS: &[&str] = &["CONTACTPAGER", "EXECUTION_END"];

type Read = Result<Option<(Event, bool)>, ()>;

fn read(m: &Macros, req: &IngestRequest<'_>, errors: &mut Vec<String>) -> Read {
    let host = get(m, "HOSTNAME");
    let service = get(m, "SERVICEDESC");
    let object = match get(m, "PD_NAGIOS_OBJECT") {
        Some(o) if o.eq_ignore_ascii_case("host") => Some(false),
        Some(o) if o.eq_ignore_ascii_case("service") => Some(true),
        Some(_) => {
            errors.push("'pd_nagios_object' must be host or service".into());
            None
        }
        None => Some(service.is_some()),
    };
    let routing_key = if req.routing_key.is_empty() {
        match get(m, "CONTACTPAGER") {
            Some(k) if k.chars().nth(MAX_ROUTING_KEY_CHARS).is_some() => {
                errors.push(format!(
                    "'CONTACTPAGER' must be at most {MAX_ROUTING_KEY_CHARS} characters"
                ));
                None
            }
            Some(k) => Some(k),
            None => {
                errors.push("'CONTACTPAGER' (the routing key) is missing".into());
                None
            }
        }
    } else {
        Some(req.routing_key)
    };
    if host.is_none() {
        errors.push("'HOSTNAME' is missing or blank".into());
    }
    let is_service = object.unwrap_or(false);
    if is_service && service.is_none() {
        errors.push("'SERVICEDESC' is missing for a service notification".into());
    }
    let state = if is_service {
        get(m, "SERVICESTATE")
    } else {
        get(m, "HOSTSTATE")
    };
    let action = match get(m, "NOTIFICATIONTYPE") {
        Some(t) => match action(t) {
            Ok(a) => a,
            Err(()) => {
                errors.push(
                    "'NOTIFICATIONTYPE' must be PROBLEM, RECOVERY, ACKNOWLEDGEMENT, FLAPPING*, DOWNTIME* or CUSTOM"
                        .into(),
                );
                None
            }
        },
        None => match state {
            Some(s) if s.eq_ignore_ascii_case("OK") || s.eq_ignore_ascii_case("UP") => {
                Some(Action::Resolve)
            }
            Some(_) => Some(Action::Trigger),
            None => {
                errors.push(format!(
                    "'NOTIFICATIONTYPE' is missing and so is '{}'",
                    if is_service {
                        "SERVICESTATE"
                    } else {
                        "HOSTSTATE"
                    }
                ));
                None
            }
        },
    };
    let mut timestamp = None;
    if let Some(t) = get(m, "EXECUTION_END") {
        match crate::time::parse_timestamp(t) {
            Some(crate::time::Timestamp::At(at)) => timestamp = Some(at),
            Some(crate::time::Timestamp::Unset) => {}
            None => errors.push("'check_result.execution_end' is not epoch seconds".into()),
        }
    }
    if !errors.is_empty() {
        return Err(());
    }
    let (Some(host), Some(routing_key)) = (host, routing_key) else {
        return Err(());
    };
    let Some(action) = action else {
        return Ok(None); // flapping, downtime, custom: accepted, no event
    };
    let dedup_key = match (is_service, service) {
        (true, Some(s)) => format!("{host}/{s}"),
        _ => host.to_string(),
    };
    if dedup_key.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() {
        errors.push(format!(
            "'HOSTNAME' and 'SERVICEDESC' together must be at most {MAX_DEDUP_KEY_CHARS} characters"
        ));
        return Err(());
    }

    let mut event = Event::new(KIND, action, routing_key.to_string(), dedup_key, req.now);
    let state_text = state.unwrap_or("UNKNOWN");
    let text = if is_service {
        let s = service.unwrap_or_default();
        match get(m, "SERVICEOUTPUT") {
            Some(out) => format!("{s} on {host} is {state_text}: {out}"),
            None => format!("{s} on {host} is {state_text}"),
        }
    } else {
        match get(m, "HOSTOUTPUT") {
            Some(out) => format!("{host} is {state_text}: {out}"),
            None => format!("{host} is {state_text}"),
        }
    };
    let (text, truncated) = summary(&text);
    event.summary = text;
    event.severity = state
        .and_then(severity)
        .unwrap_or(req.settings.default_severity);
    event.source = host.to_string();
    event.component = if is_service {
        service.map(str::to_string)
    } else {
        None
    };
    event.class = Some(if is_service { "service" } else { "host" }.into());
    event.group = get(m, "HOSTGROUPNAMES")
        .and_then(|g| g.split(',').map(str::trim).find(|g| !g.is_empty()))
        .map(str::to_string);
    event.timestamp = timestamp;
    for (name, text) in [
        ("HOSTINFOURL", "Host"),
        ("SERVICEINFOURL", "Service"),
        ("HOSTNOTESURL", "Host notes"),
    ] {
        if let Some(href) = get(m, name).filter(|h| h.starts_with("http")) {
            event.links.push(Link {
                href: href.to_string(),
                text: Some(text.into()),
            });
        }
    }
    let mut labels: Vec<(String, String)> = m
        .iter()
        .filter(|(k, _)| !NOT_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    labels.sort_unstable();
    event.labels = labels.into();
    Ok(Some((event, truncated)))
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::ingest::integrations::testing::{parse, Request};
    use crate::time::UnixMillis;

    fn parse_as(body: &[u8], routing_key: &str, form: bool) -> Result<Parsed, IntegrationError> {
        let req = Request::default().routing_key(routing_key);
        let req = if form {
            req.header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        } else {
            req
        };
        req.parse(KIND, body)
    }

    fn one(body: &str) -> Event {
        parse(KIND, body.as_bytes()).unwrap().events.remove(0)
    }

    #[test]
    fn notification_types_decide_and_flapping_is_ignored() {
        for (t, want) in [
            ("PROBLEM", Some(Action::Trigger)),
            ("RECOVERY", Some(Action::Resolve)),
            ("ACKNOWLEDGEMENT", Some(Action::Acknowledge)),
            ("Problem", Some(Action::Trigger)),
            ("FLAPPINGSTART", None),
            ("DOWNTIMEEND", None),
            ("CUSTOM", None),
        ] {
            let body = format!(
                "NOTIFICATIONTYPE={t}&HOSTNAME=mail-2&SERVICEDESC=SMTP&SERVICESTATE=CRITICAL"
            );
            let p = parse(KIND, body.as_bytes()).unwrap();
            assert_eq!(p.events.first().map(|e| e.action), want, "{t}");
        }
        let err = parse(KIND, b"NOTIFICATIONTYPE=SOMETHING&HOSTNAME=h").unwrap_err();
        assert!(
            err.to_string().contains("'NOTIFICATIONTYPE' must be"),
            "{err}"
        );
    }

    #[test]
    fn host_and_service_alerts_have_their_own_keys() {
        let s = one("NOTIFICATIONTYPE=PROBLEM&HOSTNAME=mail-2&SERVICEDESC=Disk+%2Fvar&SERVICESTATE=WARNING&SERVICEOUTPUT=91%25+used");
        assert_eq!(s.dedup_key, "mail-2/Disk /var");
        assert_eq!(s.summary, "Disk /var on mail-2 is WARNING: 91% used");
        assert_eq!(s.severity, Severity::Warning);
        let h = one("NOTIFICATIONTYPE=PROBLEM&HOSTNAME=mail-2&HOSTSTATE=DOWN&pd_nagios_object=host&SERVICEDESC=ignored");
        assert_eq!(h.dedup_key, "mail-2");
        assert_eq!(h.severity, Severity::Critical);
        assert_eq!(h.class.as_deref(), Some("host"));
    }

    #[test]
    fn the_routing_key_comes_from_the_path_or_contactpager_and_is_never_a_label() {
        let body = b"CONTACTPAGER=0123456789abcdef0123456789abcdef&NOTIFICATIONTYPE=RECOVERY&HOSTNAME=h&HOSTSTATE=UP";
        let e = parse_as(body, "", true).unwrap().events.remove(0);
        assert_eq!(e.routing_key, "0123456789abcdef0123456789abcdef");
        assert!(e.labels.iter().all(|(k, _)| k != "contactpager"));
        let e = parse_as(body, "from-path", true).unwrap().events.remove(0);
        assert_eq!(e.routing_key, "from-path");
        let err = parse_as(
            b"NOTIFICATIONTYPE=PROBLEM&HOSTNAME=h&HOSTSTATE=DOWN",
            "",
            true,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "nagios: 'CONTACTPAGER' (the routing key) is missing"
        );
    }

    #[test]
    fn flat_json_and_icinga_json_read_like_the_form() {
        let flat = one(
            r#"{"NAGIOS_NOTIFICATIONTYPE":"PROBLEM","NAGIOS_HOSTNAME":"mail-2","servicedesc":"SMTP","SERVICESTATE":"CRITICAL","SERVICEOUTPUT":"timeout"}"#,
        );
        let icinga = one(
            r#"{"host":{"name":"mail-2","display_name":"Mail 2"},"service":{"name":"SMTP"},
                "check_result":{"state":2,"exit_status":2,"output":"timeout","execution_end":1714641290.5},
                "notification_type":"Problem"}"#,
        );
        assert_eq!(
            (flat.dedup_key.as_str(), flat.summary.as_str()),
            ("mail-2/SMTP", "SMTP on mail-2 is CRITICAL: timeout")
        );
        assert_eq!(
            (icinga.dedup_key.as_str(), icinga.summary.as_str()),
            ("mail-2/SMTP", "SMTP on mail-2 is CRITICAL: timeout")
        );
        assert_eq!(icinga.timestamp, Some(UnixMillis(1_714_641_290_500)));
        // Without a notification type the state decides.
        let up = one(r#"{"host":{"name":"mail-2"},"check_result":{"state":0}}"#);
        assert_eq!(
            (up.action, up.dedup_key.as_str()),
            (Action::Resolve, "mail-2")
        );
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        for (body, want) in [
            (&b"\xff\xfe"[..], "nagios: body is not UTF-8 form data"),
            (b"HOSTNAME=%zz", "nagios: body is neither a JSON object nor valid form data"),
            (b"{\"HOSTNAME\":", "nagios: body is not valid JSON"),
            (
                b"NOTIFICATIONTYPE=PROBLEM&pd_nagios_object=service",
                "nagios: 'HOSTNAME' is missing or blank; 'SERVICEDESC' is missing for a service notification",
            ),
        ] {
            let err = parse(KIND, body).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
}
