//! PagerDuty's Events API v2 upstream of sluice: one PagerDuty alert per incident
//! (`dedup_key` = `incident_id`), so sluice sits in front of PagerDuty and what reaches it is
//! the incidents, not every event.
//!
//! | message | event_action |
//! |---|---|
//! | `opened` | `trigger` (with the payload below) |
//! | `updated` | `trigger` again, only when the severity rose above the last one sent (or none was sent by this process) |
//! | `acknowledged` | `acknowledge` |
//! | `resolved` | `resolve` |
//! | `flapping`, `snoozed` | nothing (the Events API has no such action) |
//!
//! A trigger's `payload`: `summary` the title (cut to 1024 characters), `source` the first
//! alert's source (else the `source` grouped by, else `sluice`), `severity` (sluice's four are
//! PagerDuty's), `timestamp` = `opened_at`, `component`, `group` and `class` (or `entity.class`)
//! when the incident was grouped by them, and `custom_details` with `incident_id`, `seq`, `type`, `status`,
//! `routing_key`, `alert_count`, `open_alert_count`, `group_key`, `integrations`, `reasons` and
//! `changes` (when present); the message's http(s) `links` go in `links`. Acknowledge and
//! resolve carry only the routing key, action and dedup key, as the API asks.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::message::Incident;
use crate::event::Severity;

/// PagerDuty's limit on `payload.summary`.
const MAX_SUMMARY: usize = 1024;
/// Incidents whose last triggered severity a lane remembers; past this it forgets them all
/// (an `updated` of a forgotten incident triggers again, which PagerDuty folds into its alert).
const REMEMBERED: usize = 100_000;

/// The severity last triggered per open incident, for `updated` messages.
#[derive(Default)]
pub struct Triggered(HashMap<String, Severity>);

impl Triggered {
    /// Notes that the event for `incident` was delivered.
    pub fn delivered(&mut self, incident: &Incident) {
        match incident.kind.as_str() {
            "resolved" => {
                self.0.remove(&incident.incident_id);
            }
            "opened" | "updated" => {
                if self.0.len() >= REMEMBERED {
                    self.0.clear();
                }
                self.0
                    .insert(incident.incident_id.clone(), incident.severity);
            }
            _ => {}
        }
    }
}

/// The Events API v2 body for `incident`, or `None` when it has no action.
pub fn render(routing_key: &str, incident: &Incident, triggered: &Triggered) -> Option<Vec<u8>> {
    let action = match incident.kind.as_str() {
        "opened" => "trigger",
        "updated" => match triggered.0.get(&incident.incident_id) {
            Some(&last) if incident.severity <= last => return None,
            _ => "trigger",
        },
        "acknowledged" => "acknowledge",
        "resolved" => "resolve",
        _ => return None,
    };
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": incident.incident_id,
    });
    if action == "trigger" {
        body["payload"] = payload(incident);
        body["client"] = json!("sluice");
        let links: Vec<Value> = incident
            .links
            .iter()
            .filter(|l| l.href.starts_with("https://") || l.href.starts_with("http://"))
            .map(|l| match &l.text {
                Some(text) => json!({"href": l.href, "text": text}),
                None => json!({"href": l.href}),
            })
            .collect();
        if !links.is_empty() {
            body["links"] = Value::Array(links);
        }
    }
    Some(serde_json::to_vec(&body).expect("json values serialize"))
}

fn payload(incident: &Incident) -> Value {
    let summary: String = incident.title.chars().take(MAX_SUMMARY).collect();
    let mut payload = json!({
        "summary": summary,
        "source": incident.source().unwrap_or("sluice"),
        "severity": incident.severity.as_str(),
        "timestamp": incident.opened_at,
    });
    let fields: [(&str, &[&str]); 3] = [
        ("component", &["component"]),
        ("group", &["group"]),
        ("class", &["class", "entity.class"]),
    ];
    for (field, keys) in fields {
        if let Some(v) = keys.iter().find_map(|k| incident.group_key.get(*k)) {
            payload[field] = json!(v);
        }
    }
    let mut details = Map::new();
    details.insert("incident_id".into(), json!(incident.incident_id));
    details.insert("seq".into(), json!(incident.seq));
    details.insert("type".into(), json!(incident.kind));
    details.insert("status".into(), json!(incident.status));
    details.insert("routing_key".into(), json!(incident.routing_key));
    details.insert("alert_count".into(), json!(incident.alert_count));
    details.insert("open_alert_count".into(), json!(incident.open_alert_count));
    details.insert("group_key".into(), json!(incident.group_key));
    details.insert("integrations".into(), json!(incident.integrations));
    for (name, raw) in [
        ("reasons", &incident.reasons),
        ("changes", &incident.changes),
    ] {
        if let Some(v) = raw
            .as_ref()
            .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
        {
            details.insert(name.into(), v);
        }
    }
    payload["custom_details"] = Value::Object(details);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::message::tests::OPENED;

    fn incident(kind: &str, severity: &str) -> Incident {
        let text = OPENED
            .replace(r#""type":"opened""#, &format!(r#""type":"{kind}""#))
            .replace(
                r#""severity":"error","status":"triggered","opened_at""#,
                &format!(r#""severity":"{severity}","status":"triggered","opened_at""#),
            );
        Incident::parse(text.as_bytes()).unwrap()
    }

    fn body(routing_key: &str, i: &Incident, t: &Triggered) -> Option<Value> {
        render(routing_key, i, t).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn opened_is_a_trigger_with_every_payload_field() {
        let got = body(
            "R0UT1NG",
            &incident("opened", "error"),
            &Triggered::default(),
        )
        .unwrap();
        assert_eq!(
            got,
            json!({
                "routing_key": "R0UT1NG",
                "event_action": "trigger",
                "dedup_key": "inc_1",
                "client": "sluice",
                "payload": {
                    "summary": "disk <full> & slow",
                    "source": "db-1",
                    "severity": "error",
                    "timestamp": "2026-11-21T19:00:07.719Z",
                    "custom_details": {
                        "incident_id": "inc_1", "seq": 1, "type": "opened",
                        "status": "triggered", "routing_key": "payments",
                        "alert_count": 3, "open_alert_count": 2,
                        "group_key": {"labels.team": "db", "source": "db-1"},
                        "integrations": ["pagerduty"],
                        "reasons": {"grouping": "group_by", "inhibited": 0, "silenced": 0}
                    }
                },
                "links": [{"href": "https://runbooks.example.com/disk?a=1&b=2", "text": "Runbook"}]
            })
        );
    }

    #[test]
    fn the_summary_is_cut_to_1024_characters_and_the_source_defaults_to_sluice() {
        let long = "é".repeat(2000);
        let text = OPENED
            .replace("disk <full> & slow", &long)
            .replace(
                r#""source":"db-1","integration""#,
                r#""source":"","integration""#,
            )
            .replace(r#","source":"db-1"}"#, "}");
        let i = Incident::parse(text.as_bytes()).unwrap();
        let got = body("k", &i, &Triggered::default()).unwrap();
        assert_eq!(
            got["payload"]["summary"].as_str().unwrap().chars().count(),
            1024
        );
        assert_eq!(got["payload"]["source"], "sluice");
    }

    #[test]
    fn actions_follow_the_message_type_and_updates_only_when_severity_rises() {
        let mut t = Triggered::default();
        let opened = incident("opened", "warning");
        t.delivered(&opened);
        assert!(body("k", &incident("updated", "warning"), &t).is_none());
        let rose = incident("updated", "critical");
        assert_eq!(body("k", &rose, &t).unwrap()["event_action"], "trigger");
        t.delivered(&rose);
        assert!(body("k", &incident("updated", "error"), &t).is_none());
        let ack = body("k", &incident("acknowledged", "critical"), &t).unwrap();
        assert_eq!(
            ack,
            json!({"routing_key": "k", "event_action": "acknowledge", "dedup_key": "inc_1"})
        );
        assert_eq!(
            body("k", &incident("resolved", "critical"), &t).unwrap()["event_action"],
            "resolve"
        );
        assert!(body("k", &incident("flapping", "critical"), &t).is_none());
        assert!(body("k", &incident("snoozed", "critical"), &t).is_none());
        // An update of an incident this process never triggered is sent.
        t.delivered(&incident("resolved", "critical"));
        assert!(body("k", &incident("updated", "info"), &t).is_some());
    }
}
