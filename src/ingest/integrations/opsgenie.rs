//! The Opsgenie Alert API v2, emulated for tools whose only paging output is Opsgenie
//! (Alertmanager `opsgenie_configs`, Grafana, Kibana, Zabbix, Checkmk, Flux): point the tool's
//! Opsgenie API URL at sluice. Shapes from `opsgenie/opsgenie-oas` (`definitions/alert.yaml`,
//! `paths/alert.yaml`).
//!
//! - **Endpoints**: `POST /v2/alerts` creates; `POST /v2/alerts/<identifier>/close` resolves
//!   and `POST /v2/alerts/<identifier>/acknowledge` acknowledges, with
//!   `?identifierType=alias`; the other alert actions (`unacknowledge`, `snooze`, `notes`,
//!   `message`, `description`, `priority`, `tags`, `details`, `escalate`, `assign`, `teams`,
//!   `responders`, ...) are accepted and ignored. [`parse_at`] takes the path after
//!   `/v2/alerts` (the action is in the path); [`Format::parse`] is the create, which is also
//!   served at `POST /integrations/opsgenie/<routing_key>[/v2/alerts]` (a base URL).
//! - **Routing key**: `Authorization: GenieKey <key>` (how every Opsgenie client
//!   authenticates: the integration key becomes the routing key), or the path under
//!   `/integrations/opsgenie/`, `X-Routing-Key`, `?routing_key=`, or
//!   `[integrations.opsgenie] routing_key`.
//! - **Dedup key**: `alias` (Opsgenie's de-duplication key; Alertmanager sends
//!   `sha256(groupKey)`), as sent; an alias longer than sluice's 255 characters becomes 32 hex
//!   digits of xxh3-128 of it (a close by that alias maps the same way). Without an alias,
//!   xxh3-128 of `message`, so a retried create deduplicates. Closing or acknowledging by
//!   `identifierType=id` or `tiny` is refused by name (sluice knows alerts by alias only; it
//!   hands out no Opsgenie alert ids).
//! - **Resolve**: the `close` action; `acknowledge` acknowledges. A create never resolves, so
//!   a tool that never closes needs `resolve_timeout`.
//! - **Severity**: `priority` `P1` critical, `P2` error, `P3` warning, `P4`/`P5` info
//!   (case-insensitive); any other value is refused by name (Opsgenie refuses it too); absent
//!   -> `default_severity` (Opsgenie would take P3: set `default_severity = "warning"` to match).
//! - **Fields**: summary = `message` (required; Opsgenie cuts it at 130 characters, sluice at
//!   1024); source = `source`; component = `entity`; labels = `details` (values as text) plus
//!   `tags` joined with commas; custom_details = `description`, `details`, `tags`,
//!   `responders`, `visibleTo`, `actions`, `user`, `note`, each when sent; timestamp = arrival.
//! - **Answer**: `202 {"result":"Request will be processed","took":0.0,"requestId":"<id>"}`, the
//!   id a UUID-shaped hash of routing key, action, key and arrival time (a replay gives the
//!   same ids); refusals `400 {"message":"opsgenie: ...","took":0.0,"requestId":"<id>"}`, the
//!   shape of Opsgenie's errors.
//! - Tolerant wire model: unknown fields and nulls are ignored.

use http::{Response, StatusCode};
use serde::Serialize;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{fingerprint, Action, Details, Event, Severity, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::{self, Body};
use crate::integration::Integration;

use super::fields::percent_decode;
use super::fields::{details_of, severity_named, to_json, Reader};
use super::{summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Opsgenie;

/// Alert actions Opsgenie has that sluice accepts without acting on them.
const IGNORED_ACTIONS: &[&str] = &[
    "unacknowledge",
    "snooze",
    "notes",
    "message",
    "description",
    "priority",
    "tags",
    "details",
    "escalate",
    "assign",
    "teams",
    "responders",
    "actions",
    "custom-actions",
    "extra-properties",
];

/// The Opsgenie Alert API in the integrations registry.
pub struct AlertApi;

impl Format for AlertApi {
    /// `POST /v2/alerts`: create.
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        parse_at(req.path, req, body)
    }

    fn accepted(parsed: &Parsed, _kind: Integration) -> Response<Body> {
        let id = match parsed.events.first() {
            Some(e) => request_id(&[
                e.routing_key.as_bytes(),
                action_name(e.action).as_bytes(),
                e.dedup_key.as_bytes(),
                &e.received_at.0.to_le_bytes(),
            ]),
            None => request_id(&[b"ignored"]),
        };
        response::json(
            StatusCode::ACCEPTED,
            &Answer {
                result: Some("Request will be processed"),
                message: None,
                took: 0.0,
                request_id: &id,
            },
        )
    }

    fn refused(err: &IntegrationError) -> Response<Body> {
        let message = err.to_string();
        let id = request_id(&[message.as_bytes()]);
        response::json(
            err.status(),
            &Answer {
                result: None,
                message: Some(&message),
                took: 0.0,
                request_id: &id,
            },
        )
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    took: f64,
    request_id: &'a str,
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Trigger => "create",
        Action::Acknowledge => "acknowledge",
        Action::Resolve => "close",
    }
}

/// A UUID-shaped (8-4-4-4-12 hex) hash of `parts`.
fn request_id(parts: &[&[u8]]) -> String {
    let h = format!("{:032x}", fingerprint(parts));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The dedup key of an alias: as sent, or a hash when longer than sluice allows.
pub fn alias_key(alias: &str) -> String {
    if alias.chars().nth(MAX_DEDUP_KEY_CHARS).is_none() {
        alias.to_string()
    } else {
        format!("{:032x}", fingerprint(&[alias.as_bytes()]))
    }
}

fn invalid(problem: String) -> IntegrationError {
    IntegrationError::Invalid {
        kind: KIND,
        problems: vec![problem],
    }
}

/// One request of the Alert API; `tail` is the path after `/v2/alerts` (`""` for a create,
/// `/<identifier>/<action>` for an action on an alert).
pub fn parse_at(
    tail: &str,
    req: &IngestRequest<'_>,
    body: &mut [u8],
) -> Result<Parsed, IntegrationError> {
    let tail = tail.trim_end_matches('/');
    if tail.is_empty() {
        return create(req, body);
    }
    let Some((identifier, action)) = tail
        .strip_prefix('/')
        .and_then(|t| t.rsplit_once('/'))
        .filter(|(i, _)| !i.is_empty() && !i.contains('/'))
    else {
        return Err(invalid(format!(
            "no Alert API path /v2/alerts{tail} (POST /v2/alerts, /v2/alerts/<alias>/close, /v2/alerts/<alias>/acknowledge)"
        )));
    };
    let action = match action {
        "close" => Action::Resolve,
        "acknowledge" => Action::Acknowledge,
        other if IGNORED_ACTIONS.contains(&other) => return Ok(Parsed::default()),
        other => {
            return Err(invalid(format!(
                "no alert action {other:?} (close, acknowledge; {} are accepted and ignored)",
                IGNORED_ACTIONS.join(", ")
            )))
        }
    };
    let identifier_type = req.query.and_then(|q| {
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == "identifierType").then_some(v)
        })
    });
    match identifier_type {
        Some("alias") => {}
        other => {
            return Err(invalid(format!(
                "'identifierType' {} is not supported: sluice knows alerts by alias \
                 (send ?identifierType=alias)",
                other.map_or("missing (Opsgenie's default, id)".to_string(), |t| format!(
                    "{t:?}"
                ))
            )))
        }
    }
    let alias = percent_decode(identifier, false)
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| {
            invalid("the alias in the path is blank or not valid percent-encoded UTF-8".into())
        })?;
    // The body (`{user, note, source}`) is optional; when sent it must be an object.
    if !body.iter().all(u8::is_ascii_whitespace) {
        let value =
            super::json::parse_json(body).map_err(|e| IntegrationError::from_json(KIND, e))?;
        if !value.is_object() && !value.is_null() {
            return Err(IntegrationError::Malformed {
                kind: KIND,
                what: "body is not a JSON object",
            });
        }
    }
    Ok(Parsed {
        events: vec![Event::new(
            KIND,
            action,
            req.routing_key.to_string(),
            alias_key(&alias),
            req.now,
        )],
        ..Parsed::default()
    })
}

fn priority(value: &str) -> Option<Severity> {
    severity_named(
        value,
        &[
            ("P1", Severity::Critical),
            ("P2", Severity::Error),
            ("P3", Severity::Warning),
            ("P4", Severity::Info),
            ("P5", Severity::Info),
        ],
    )
}

/// `tags`: an array of strings (numbers and booleans as text, nulls skipped).
fn tags<'v>(r: &mut Reader<'v, '_>) -> Vec<String> {
    let Some(v) = r.value.and_then(|v| v.get("tags")).filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    let Some(items) = v.as_array() else {
        r.errors.push("'tags' must be an array of strings".into());
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(s) = item.as_str() {
            out.push(s.to_string());
        } else if item.is_number() || item.is_bool() {
            out.push(item.encode());
        } else if !item.is_null() {
            r.errors.push(format!("'tags[{i}]' must be a string"));
        }
    }
    out
}

fn create(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
    let root = super::json_object(KIND, body)?;
    let mut errors = Vec::new();
    let mut r = Reader::new(Some(&root), "", &mut errors);
    let message = r.req_str("message");
    let alias = r.opt_str("alias").filter(|a| !a.trim().is_empty());
    let priority_text = r.opt_str("priority").filter(|p| !p.is_empty());
    let source = r.opt_str("source");
    let entity = r.opt_str("entity").filter(|e| !e.is_empty());
    let details_map = r.string_pairs("details");
    let tag_list = tags(&mut r);
    for name in ["description", "user", "note"] {
        let _ = r.opt_str(name);
    }
    let severity = match priority_text {
        None => Some(req.settings.default_severity),
        Some(p) => {
            let sev = priority(p);
            if sev.is_none() {
                r.errors.push(format!(
                    "'priority' {p:?} must be one of P1, P2, P3, P4, P5"
                ));
            }
            sev
        }
    };
    let (Some(message), Some(severity), true) = (message, severity, errors.is_empty()) else {
        return Err(IntegrationError::Invalid {
            kind: KIND,
            problems: errors,
        });
    };

    let dedup_key = match alias {
        Some(a) => alias_key(a),
        None => format!("{:032x}", fingerprint(&[message.as_bytes()])),
    };
    let mut event = Event::new(
        KIND,
        Action::Trigger,
        req.routing_key.to_string(),
        dedup_key,
        req.now,
    );
    let (summary, truncated) = summary(message);
    event.summary = summary;
    event.severity = severity;
    event.source = source.unwrap_or_default().to_string();
    event.component = entity.map(str::to_string);
    let mut labels = details_map.unwrap_or_default();
    if !tag_list.is_empty() {
        labels.retain(|(k, _)| *k != "tags");
        labels.push(("tags", tag_list.join(",").into()));
        labels.sort_unstable_by_key(|(k, _)| *k);
    }
    event.labels = labels.into();
    event.custom_details = custom_details(&root);
    Ok(Parsed::one(event, truncated))
}

/// The create's free-form fields, each when sent, as one JSON object.
fn custom_details(root: &BorrowedValue<'_>) -> Option<Details> {
    let mut map = serde_json::Map::new();
    for name in [
        "description",
        "details",
        "tags",
        "responders",
        "visibleTo",
        "actions",
        "user",
        "note",
    ] {
        if let Some(v) = root.get(name).filter(|v| !v.is_null()) {
            if let Some(value) = to_json(v) {
                map.insert(name.to_string(), value);
            }
        }
    }
    details_of(&map)
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    use crate::ingest::integrations::testing::Request;
    use crate::ingest::response::body_bytes;

    fn at(tail: &str, query: Option<&str>, body: &[u8]) -> Result<Parsed, IntegrationError> {
        Request::default()
            .routing_key("genie-key")
            .query(query)
            .path(tail)
            .parse(KIND, body)
    }

    fn create(body: &str) -> Result<Parsed, IntegrationError> {
        at("", None, body.as_bytes())
    }

    #[test]
    fn a_create_maps_alias_message_priority_entity_tags_and_details() {
        let p = create(
            r#"{"message":"Kafka consumer lag > 100k","alias":"kafka-lag/orders","description":"Lag 143210",
                "priority":"p2","entity":"orders-consumer","tags":["kafka","prod"],
                "details":{"cluster":"kafka-eu1","partition":7},"source":"lag-exporter","unknown":1}"#,
        )
        .unwrap();
        let e = &p.events[0];
        assert_eq!(
            (e.action, e.dedup_key.as_str(), e.severity),
            (Action::Trigger, "kafka-lag/orders", Severity::Error)
        );
        assert_eq!(e.summary, "Kafka consumer lag > 100k");
        assert_eq!(e.source, "lag-exporter");
        assert_eq!(e.component.as_deref(), Some("orders-consumer"));
        assert_eq!(
            e.labels,
            [
                ("cluster".to_string(), "kafka-eu1".to_string()),
                ("partition".to_string(), "7".to_string()),
                ("tags".to_string(), "kafka,prod".to_string()),
            ]
        );
        for (p, want) in [
            ("P1", Severity::Critical),
            ("P3", Severity::Warning),
            ("P4", Severity::Info),
            ("p5", Severity::Info),
        ] {
            let e = &create(&format!(r#"{{"message":"m","priority":"{p}"}}"#))
                .unwrap()
                .events[0];
            assert_eq!(e.severity, want, "{p}");
        }
        let e = &create(r#"{"message":"m"}"#).unwrap().events[0];
        assert_eq!(e.severity, Severity::Error, "absent -> default_severity");
    }

    #[test]
    fn keys_without_alias_or_with_a_long_one_are_hashes() {
        let a = &create(r#"{"message":"disk full"}"#).unwrap().events[0];
        let b = &create(r#"{"message":"disk full","priority":"P1"}"#)
            .unwrap()
            .events[0];
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_eq!(a.dedup_key.len(), 32);
        let long = "a".repeat(300);
        let c = &create(&format!(r#"{{"message":"m","alias":"{long}"}}"#))
            .unwrap()
            .events[0];
        assert_eq!(c.dedup_key, alias_key(&long));
        assert_eq!(c.dedup_key.len(), 32);
        let closed = at(&format!("/{long}/close"), Some("identifierType=alias"), b"").unwrap();
        assert_eq!(
            closed.events[0].dedup_key, c.dedup_key,
            "close maps the alias the same way"
        );
    }

    #[test]
    fn close_and_acknowledge_by_alias() {
        let p = at(
            "/kafka-lag%2Forders/close",
            Some("identifierType=alias"),
            br#"{"user":"ops","note":"fixed","source":"am"}"#,
        )
        .unwrap();
        assert_eq!(
            (p.events[0].action, p.events[0].dedup_key.as_str()),
            (Action::Resolve, "kafka-lag/orders")
        );
        let p = at("/a1/acknowledge/", Some("x=1&identifierType=alias"), b"").unwrap();
        assert_eq!(p.events[0].action, Action::Acknowledge);
        let p = at("/a1/snooze", Some("identifierType=alias"), b"{}").unwrap();
        assert!(p.events.is_empty(), "ignored actions queue nothing");
    }

    #[test]
    fn refusals_name_the_format_and_field() {
        for (tail, query, body, want) in [
            ("", None, "{}", "opsgenie: 'message' is missing or blank"),
            ("", None, r#"{"message":"m","priority":"P9","tags":"x"}"#,
             "opsgenie: 'tags' must be an array of strings; 'priority' \"P9\" must be one of P1, P2, P3, P4, P5"),
            ("", None, "[1]", "opsgenie: body is not a JSON object"),
            ("/a1/close", None, "", "opsgenie: 'identifierType' missing (Opsgenie's default, id) is not supported: sluice knows alerts by alias (send ?identifierType=alias)"),
            ("/a1/close", Some("identifierType=tiny"), "", "opsgenie: 'identifierType' \"tiny\" is not supported: sluice knows alerts by alias (send ?identifierType=alias)"),
            ("/a1/close", Some("identifierType=alias"), "[", "opsgenie: body is not valid JSON"),
            ("/a1/explode", Some("identifierType=alias"), "", "opsgenie: no alert action \"explode\" (close, acknowledge; unacknowledge, snooze, notes, message, description, priority, tags, details, escalate, assign, teams, responders, actions, custom-actions, extra-properties are accepted and ignored)"),
            ("/close", Some("identifierType=alias"), "", "opsgenie: no Alert API path /v2/alerts/close (POST /v2/alerts, /v2/alerts/<alias>/close, /v2/alerts/<alias>/acknowledge)"),
        ] {
            let err = at(tail, query, body.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), want, "{tail} {body}");
            let resp = AlertApi::refused(&err);
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            let v: serde_json::Value = serde_json::from_slice(&body_bytes(resp)).unwrap();
            assert_eq!(v["message"], want);
            assert_eq!(v["requestId"].as_str().unwrap().len(), 36);
        }
    }

    #[test]
    fn the_answer_is_opsgenies_with_a_deterministic_request_id() {
        let p = create(r#"{"message":"m","alias":"a"}"#).unwrap();
        let answer = |p: &Parsed| -> serde_json::Value {
            let resp = AlertApi::accepted(p, KIND);
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            serde_json::from_slice(&body_bytes(resp)).unwrap()
        };
        let v = answer(&p);
        assert_eq!(v["result"], "Request will be processed");
        assert_eq!(v["took"], 0.0);
        let id = v["requestId"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(
            answer(&create(r#"{"message":"m","alias":"a"}"#).unwrap())["requestId"],
            id.as_str()
        );
        let closed = at("/a/close", Some("identifierType=alias"), b"").unwrap();
        assert_ne!(answer(&closed)["requestId"], id.as_str());
    }

    /// `GenieKey <key>` is the routing key when the request names none before it.
    #[test]
    fn the_genie_key_is_the_routing_key() {
        use crate::ingest::integrations::endpoint::{own_target, target};
        use crate::ingest::integrations::settings::SettingsByKind;
        use http::Method;

        let config = SettingsByKind::default();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "GenieKey  k-123 ".parse().unwrap());
        let post = Method::POST;
        let key = |r: Result<super::super::endpoint::Target, _>| r.map(|t| t.routing_key);
        assert_eq!(
            key(own_target(KIND, "", &headers, None, &config)).as_deref(),
            Ok("k-123")
        );
        assert_eq!(
            key(target("opsgenie/v2/alerts", &post, &headers, None, &config)).as_deref(),
            Ok("k-123")
        );
        assert_eq!(
            key(target(
                "opsgenie/rk/v2/alerts",
                &post,
                &headers,
                None,
                &config
            ))
            .as_deref(),
            Ok("rk"),
            "the path's key first"
        );
        headers.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        let refused = own_target(KIND, "", &headers, None, &config).unwrap_err();
        assert!(
            refused
                .message
                .contains("the Authorization header (GenieKey <routing_key>)"),
            "{}",
            refused.message
        );
    }
}
