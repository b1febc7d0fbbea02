use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::config::{RuleConfig, WindowKind};
use crate::event::{Field, Severity};
use crate::integration::{Integration, KeySpace};

const T0: u64 = 1_700_000_000_000;

fn rule(group_by: &[&str]) -> RuleConfig {
    RuleConfig {
        name: "test".into(),
        group_by: group_by.iter().map(|f| Field::parse(f).unwrap()).collect(),
        window: WindowKind::Rolling,
        window_duration: Duration::from_secs(300),
        max_duration: Duration::from_secs(3600),
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(60),
        ..RuleConfig::plain()
    }
}

struct Harness {
    shard: Shard,
    now: u64,
    out: Vec<OutboundMessage>,
}

impl Harness {
    fn new(rule: RuleConfig) -> Self {
        Self::with_max_alerts(rule, 100)
    }

    fn with_max_alerts(rule: RuleConfig, max: usize) -> Self {
        Self::build(vec![rule], &[], Caps::unbounded(max))
    }

    fn build(rules: Vec<RuleConfig>, inhibit: &[crate::config::InhibitRule], limits: Caps) -> Self {
        let rules: Arc<[Rule]> = rules::with_fallback(&rules).into();
        let inhibit: Arc<[Inhibit]> = inhibit.iter().map(Inhibit::from).collect();
        Harness {
            shard: Shard::new(rules, inhibit, limits),
            now: T0,
            out: Vec::new(),
        }
    }

    fn at(&mut self, secs: u64) -> &mut Self {
        self.now = T0 + secs * 1000;
        self.shard.advance(UnixMillis(self.now), &mut self.out);
        self
    }

    fn event(&mut self, action: Action, key: &str, source: &str, severity: Severity) -> &mut Self {
        let mut e = Event::new(
            Integration::PagerDuty,
            action,
            "rk".into(),
            key.into(),
            UnixMillis(self.now),
        );
        e.source = source.into();
        e.summary = format!("{key} on {source}");
        e.severity = severity;
        self.shard.apply(e, UnixMillis(self.now), &mut self.out);
        self
    }

    fn trigger(&mut self, key: &str, source: &str) -> &mut Self {
        self.event(Action::Trigger, key, source, Severity::Warning)
    }

    fn ack(&mut self, key: &str) -> &mut Self {
        self.event(Action::Acknowledge, key, "", Severity::Error)
    }

    fn resolve(&mut self, key: &str) -> &mut Self {
        self.event(Action::Resolve, key, "", Severity::Error)
    }

    fn command(&mut self, incident: &str, action: crate::event::CommandAction) -> &mut Self {
        let c = crate::event::Command {
            routing_key: "rk".into(),
            incident_id: incident.into(),
            action,
            by: "ana".into(),
            reason: Some("on it".into()),
            received_at: UnixMillis(self.now),
        };
        let _ = self
            .shard
            .apply_input(Input::Command(c), UnixMillis(self.now), &mut self.out);
        self
    }

    /// The messages published since the last call, as JSON.
    fn take(&mut self) -> Vec<Value> {
        self.out
            .drain(..)
            .map(|m| {
                let v: Value = serde_json::from_slice(&m.body).unwrap();
                assert_eq!(m.key, v["incident_id"].as_str().unwrap_or(&m.key));
                assert_eq!(m.kind.as_str(), v["type"]);
                v
            })
            .collect()
    }
}

#[test]
fn the_alert_index_keeps_32_bits_of_a_hash_and_checks_the_rest_on_the_alert() {
    assert_eq!(std::mem::size_of::<store::AlertRef>(), 12);
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("k1", "db-1");
    let event = Event::new(
        Integration::PagerDuty,
        Action::Trigger,
        "rk".into(),
        "k1".into(),
        UnixMillis(T0),
    );
    let hash = alert_hash("rk", event.key_space, "k1");
    assert!(h.shard.alerts.find(&h.shard.slots, hash, &event).is_some());
    // A hash with the same low 32 bits and other high bits is another alert's.
    let other = hash ^ (1 << 40);
    assert!(h.shard.alerts.find(&h.shard.slots, other, &event).is_none());
    // The index grows past its first buckets (rehashed from the 32 bits it keeps) and still
    // finds every alert, and a repeat stays one alert.
    for i in 0..1000 {
        h.trigger(&format!("n{i}"), "db-2");
    }
    h.trigger("k1", "db-1");
    assert_eq!(h.shard.alerts.len(), 1001);
    assert_eq!(h.shard.open_alerts(), 1001);
}

#[test]
fn dedup_keys_meet_within_a_key_space_only() {
    let mut h = Harness::new(rule(&[]));
    let mut post = |integration: Integration, key: &str, space: Option<KeySpace>| {
        let mut e = Event::new(
            integration,
            Action::Trigger,
            "rk".into(),
            key.into(),
            UnixMillis(h.now),
        );
        if let Some(space) = space {
            e.key_space = space;
        }
        h.shard.apply(e, UnixMillis(h.now), &mut h.out);
        h.shard.open_alerts()
    };
    // PagerDuty v1 and v2 share keys, as do the Alertmanager API and webhook.
    assert_eq!(post(Integration::PagerDuty, "42", None), 1);
    assert_eq!(post(Integration::PagerDutyV1, "42", None), 1);
    assert_eq!(post(Integration::AlertmanagerApi, "c0ffee", None), 2);
    assert_eq!(post(Integration::AlertmanagerWebhook, "c0ffee", None), 2);
    // Two tools whose ids happen to agree stay two alerts.
    assert_eq!(post(Integration::Zabbix, "42", None), 3);
    assert_eq!(post(Integration::Datadog, "42", None), 4);
    assert_eq!(post(Integration::Datadog, "42", None), 4);
    // Sentry issue 77 and metric alert 77.
    assert_eq!(post(Integration::Sentry, "77", None), 5);
    assert_eq!(
        post(
            Integration::Sentry,
            "77",
            Some(KeySpace::SENTRY_METRIC_ALERTS)
        ),
        6
    );
    // The messages carry the keys as sent.
    h.at(60);
    let keys: Vec<String> = h
        .take()
        .iter()
        .flat_map(|m| m["alerts"].as_array().unwrap().clone())
        .map(|a| a["dedup_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["42", "c0ffee", "42", "42", "77", "77"]);
}

/// `(type, seq, alert_count, open_alert_count, event_count, status)` of each message.
fn summary(msgs: &[Value]) -> Vec<(String, u64, u64, u64, u64, String)> {
    msgs.iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_string(),
                m["seq"].as_u64().unwrap(),
                m["alert_count"].as_u64().unwrap(),
                m["open_alert_count"].as_u64().unwrap(),
                m["event_count"].as_u64().unwrap(),
                m["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn s(
    t: &str,
    seq: u64,
    alerts: u64,
    open: u64,
    events: u64,
    status: &str,
) -> (String, u64, u64, u64, u64, String) {
    (t.into(), seq, alerts, open, events, status.into())
}

#[test]
fn group_wait_collects_the_storm_into_one_opened_message() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1")
        .at(5)
        .trigger("b", "db-1")
        .trigger("a", "db-1")
        .at(29);
    assert!(h.take().is_empty(), "nothing before group_wait ends");
    h.at(30);
    let msgs = h.take();
    assert_eq!(summary(&msgs), vec![s("opened", 1, 2, 2, 3, "triggered")]);
    let m = &msgs[0];
    assert_eq!(m["schema"], "sluice.incident.v1");
    assert_eq!(m["group_key"], serde_json::json!({"source": "db-1"}));
    assert_eq!(m["title"], "a on db-1");
    assert_eq!(m["rule"], "test");
    assert_eq!(m["opened_at"], "2023-11-14T22:13:20.000Z");
    assert_eq!(m["alerts"][0]["dedup_key"], "a");
    assert_eq!(m["alerts"][0]["event_count"], 2);
    assert_eq!(m["alerts"][1]["dedup_key"], "b");
    assert_eq!(m["integrations"], serde_json::json!(["pagerduty"]));
    assert_eq!(m["resolved_at"], Value::Null);
}

#[test]
fn duplicate_triggers_fold_into_one_alert_and_publish_nothing_new() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1").at(30);
    assert_eq!(h.take().len(), 1);
    for i in 0..10 {
        h.at(31 + i).trigger("a", "db-1");
    }
    h.at(200);
    assert!(h.take().is_empty(), "repeats of an open alert are not news");
    assert_eq!(h.shard.open_alerts(), 1);
    h.resolve("a");
    assert_eq!(
        summary(&h.take()),
        vec![s("resolved", 2, 1, 0, 12, "resolved")]
    );
}

#[test]
fn distinct_group_values_open_distinct_incidents() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1")
        .trigger("b", "db-2")
        .trigger("c", "db-1")
        .at(30);
    let msgs = h.take();
    assert_eq!(msgs.len(), 2);
    let counts: Vec<_> = msgs
        .iter()
        .map(|m| (m["group_key"]["source"].clone(), m["alert_count"].clone()))
        .collect();
    assert!(counts.contains(&(Value::from("db-1"), Value::from(2))));
    assert!(counts.contains(&(Value::from("db-2"), Value::from(1))));
    assert_ne!(msgs[0]["incident_id"], msgs[1]["incident_id"]);
}

#[test]
fn empty_group_by_groups_per_routing_key_and_dedup_key_means_no_grouping() {
    let mut h = Harness::new(rule(&[]));
    h.trigger("a", "db-1").trigger("b", "db-2").at(30);
    assert_eq!(
        summary(&h.take()),
        vec![s("opened", 1, 2, 2, 2, "triggered")]
    );

    let mut h = Harness::new(rule(&["dedup_key"]));
    h.trigger("a", "db-1").trigger("b", "db-1").at(30);
    assert_eq!(h.take().len(), 2);
}

#[test]
fn acknowledging_every_alert_publishes_at_once_and_resolving_all_closes() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1").trigger("b", "db-1").at(30);
    h.take();
    h.at(31).ack("a");
    assert!(
        h.take().is_empty(),
        "one of two acknowledged: status still triggered, coalesced"
    );
    h.at(32).ack("b");
    assert_eq!(
        summary(&h.take()),
        vec![s("acknowledged", 2, 2, 2, 4, "acknowledged")]
    );
    h.at(33).resolve("a");
    assert!(
        h.take().is_empty(),
        "partial resolve waits for group_interval"
    );
    h.at(34).resolve("b");
    let msgs = h.take();
    assert_eq!(summary(&msgs), vec![s("resolved", 3, 2, 0, 6, "resolved")]);
    assert_eq!(msgs[0]["resolved_at"], "2023-11-14T22:13:54.000Z");
    assert_eq!(msgs[0]["alerts"][0]["status"], "resolved");
    assert_eq!(h.shard.open_incidents(), 0);
    assert_eq!(h.shard.open_alerts(), 0);
}

#[test]
fn group_interval_coalesces_changes_into_one_update() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1").at(30);
    h.take();
    h.at(40)
        .trigger("b", "db-1")
        .at(50)
        .trigger("c", "db-1")
        .at(89);
    assert!(h.take().is_empty());
    h.at(90);
    assert_eq!(
        summary(&h.take()),
        vec![s("updated", 2, 3, 3, 3, "triggered")]
    );
    h.at(100).trigger("d", "db-1").at(149);
    assert!(
        h.take().is_empty(),
        "next update no sooner than one interval after the last"
    );
    h.at(150);
    assert_eq!(
        summary(&h.take()),
        vec![s("updated", 3, 4, 4, 4, "triggered")]
    );
}

#[test]
fn a_severity_increase_publishes_at_once() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1").at(30);
    h.take();
    h.at(35)
        .event(Action::Trigger, "b", "db-1", Severity::Critical);
    let msgs = h.take();
    assert_eq!(summary(&msgs), vec![s("updated", 2, 2, 2, 2, "triggered")]);
    assert_eq!(msgs[0]["severity"], "critical");
    // A decrease is coalesced like any other change.
    h.at(36).event(Action::Trigger, "b", "db-1", Severity::Info);
    assert!(h.take().is_empty());
    h.at(95);
    let msgs = h.take();
    assert_eq!(msgs[0]["severity"], "warning");
}

/// A `resolved` message says the severity the incident had just before: its last open alert's,
/// as it last was. Never its peak, so a consumer never reads the `resolved` as a rise.
#[test]
fn resolved_carries_the_last_open_alerts_severity_as_it_last_was_not_the_peak() {
    let severities = |msgs: &[Value]| -> Vec<String> {
        msgs.iter()
            .map(|m| {
                format!(
                    "{}:{}",
                    m["type"].as_str().unwrap(),
                    m["severity"].as_str().unwrap()
                )
            })
            .collect()
    };
    // Critical resolves first: the update says info, and so does `resolved`.
    let mut h = Harness::new(rule(&["source"]));
    h.event(Action::Trigger, "c", "db-1", Severity::Critical)
        .event(Action::Trigger, "i", "db-1", Severity::Info)
        .at(30)
        .at(40)
        .resolve("c")
        .at(90)
        .at(100)
        .resolve("i");
    assert_eq!(
        severities(&h.take()),
        ["opened:critical", "updated:info", "resolved:info"]
    );
    // Info resolves first: the incident stays critical to the end.
    let mut h = Harness::new(rule(&["source"]));
    h.event(Action::Trigger, "c", "db-1", Severity::Critical)
        .event(Action::Trigger, "i", "db-1", Severity::Info)
        .at(30)
        .at(40)
        .resolve("i")
        .at(100)
        .resolve("c");
    assert_eq!(
        severities(&h.take()),
        ["opened:critical", "updated:critical", "resolved:critical"]
    );
    // Both resolve within one group_interval: no update between, `resolved` says info.
    let mut h = Harness::new(rule(&["source"]));
    h.event(Action::Trigger, "c", "db-1", Severity::Critical)
        .event(Action::Trigger, "i", "db-1", Severity::Info)
        .at(30)
        .at(40)
        .resolve("c")
        .at(50)
        .resolve("i");
    assert_eq!(severities(&h.take()), ["opened:critical", "resolved:info"]);
    // An alert lowered by a repeat trigger resolves at its last severity.
    let mut h = Harness::new(rule(&["source"]));
    h.event(Action::Trigger, "a", "db-1", Severity::Critical)
        .at(30)
        .at(40)
        .event(Action::Trigger, "a", "db-1", Severity::Warning)
        .at(100)
        .resolve("a");
    assert_eq!(
        severities(&h.take()),
        ["opened:critical", "updated:warning", "resolved:warning"]
    );
}

#[test]
fn an_incident_resolved_within_group_wait_is_still_published() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1").at(10).resolve("a");
    let msgs = h.take();
    assert_eq!(
        summary(&msgs),
        vec![
            s("opened", 1, 1, 0, 2, "resolved"),
            s("resolved", 2, 1, 0, 2, "resolved")
        ]
    );
    h.at(60);
    assert!(h.take().is_empty(), "its group_wait timer is gone with it");
}

#[test]
fn trigger_after_resolve_opens_a_new_alert_and_incident() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1").at(30).resolve("a");
    let first = h.take();
    h.at(31).trigger("a", "db-1").at(61);
    let second = h.take();
    assert_eq!(summary(&second), vec![s("opened", 1, 1, 1, 1, "triggered")]);
    assert_ne!(first[0]["incident_id"], second[0]["incident_id"]);
}

#[test]
fn retrigger_in_the_same_millisecond_still_gets_a_new_id() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1")
        .resolve("a")
        .trigger("a", "db-1")
        .resolve("a");
    let ids: Vec<_> = h.take().iter().map(|m| m["incident_id"].clone()).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_ne!(ids[0], ids[2]);
}

#[test]
fn acknowledge_and_resolve_of_unknown_alerts_change_nothing() {
    let mut h = Harness::new(rule(&["source"]));
    h.ack("ghost").resolve("ghost").at(100);
    assert!(h.take().is_empty());
    assert_eq!(h.shard.open_incidents(), 0);
    h.trigger("a", "db-1")
        .at(130)
        .resolve("a")
        .resolve("a")
        .ack("a");
    assert_eq!(
        summary(&h.take()),
        vec![
            s("opened", 1, 1, 1, 1, "triggered"),
            s("resolved", 2, 1, 0, 2, "resolved")
        ]
    );
}

#[test]
fn after_the_window_new_alerts_open_a_new_incident_while_the_old_one_lives_on() {
    let mut r = rule(&["source"]);
    r.window = WindowKind::Fixed;
    let mut h = Harness::new(r);
    h.trigger("a", "db-1").at(30);
    let first = h.take();
    h.at(299)
        .trigger("b", "db-1")
        .at(300)
        .trigger("c", "db-1")
        .at(400);
    let msgs = h.take();
    assert_eq!(msgs.len(), 2);
    let updated = msgs.iter().find(|m| m["type"] == "updated").unwrap();
    let opened = msgs.iter().find(|m| m["type"] == "opened").unwrap();
    assert_eq!(updated["incident_id"], first[0]["incident_id"]);
    assert_eq!(
        updated["alert_count"], 2,
        "b joined inside the fixed window"
    );
    assert_eq!(opened["alert_count"], 1, "c came after it");
    assert_ne!(opened["incident_id"], first[0]["incident_id"]);
    h.at(401).resolve("a").resolve("b");
    let msgs = h.take();
    assert_eq!(msgs.last().unwrap()["type"], "resolved");
    assert_eq!(h.shard.open_incidents(), 1);
}

#[test]
fn a_rolling_window_is_extended_by_each_alert_up_to_max_duration() {
    let mut r = rule(&["source"]);
    r.window_duration = Duration::from_secs(100);
    r.max_duration = Duration::from_secs(250);
    let mut h = Harness::new(r);
    h.trigger("k0", "db-1");
    for (i, t) in [90u64, 180, 240].iter().enumerate() {
        h.at(*t).trigger(&format!("k{}", i + 1), "db-1");
    }
    assert_eq!(
        h.shard.open_incidents(),
        1,
        "each alert came within 100s of the last"
    );
    h.at(251).trigger("late", "db-1");
    assert_eq!(
        h.shard.open_incidents(),
        2,
        "max_duration caps the rolling window"
    );
}

#[test]
fn flush_publishes_every_waiting_incident_and_pending_update() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1")
        .at(30)
        .trigger("b", "db-1")
        .trigger("c", "db-2");
    h.take();
    h.shard.flush(UnixMillis(T0 + 31_000), &mut h.out);
    let mut kinds: Vec<_> = h
        .take()
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds, vec!["opened", "updated"]);
}

#[test]
fn ids_and_bodies_are_deterministic() {
    let run = || {
        let mut h = Harness::new(rule(&["source"]));
        h.trigger("a", "db-1")
            .trigger("b", "db-2")
            .at(30)
            .ack("a")
            .at(40)
            .resolve("a");
        h.out
            .iter()
            .map(|m| (m.key.clone(), m.id.clone(), m.body.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn alerts_beyond_the_message_cap_are_counted_not_listed() {
    let mut h = Harness::with_max_alerts(rule(&["source"]), 2);
    h.trigger("a", "db-1")
        .trigger("b", "db-1")
        .trigger("c", "db-1")
        .at(30);
    let msgs = h.take();
    assert_eq!(msgs[0]["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(msgs[0]["alerts_truncated"], 1);
    assert_eq!(msgs[0]["alert_count"], 3);
}

#[test]
fn change_events_become_change_messages() {
    let mut h = Harness::new(rule(&["source"]));
    let change = ChangeEvent {
        routing_key: "rk".into(),
        integration: Integration::PagerDuty,
        summary: "deployed v2".into(),
        source: Some("ci".into()),
        custom_details: None,
        timestamp: None,
        received_at: UnixMillis(T0),
        links: vec![],
        images: vec![],
    };
    h.shard.apply_change(change, &mut h.out);
    let m = h.out.pop().unwrap();
    assert_eq!(m.topic, Topic::Changes);
    assert_eq!(m.key, "rk");
    let v: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(v["type"], "change");
    assert_eq!(v["schema"], "sluice.change.v1");
    assert_eq!(v["summary"], "deployed v2");
    assert_eq!(h.shard.open_incidents(), 0);
}

// ---- Rules, suppression and time-based resolution ----

use crate::config::{FlapConfig, InhibitRule};
use crate::matchers::Matcher;

fn m(name: &str, op: &str, value: &str) -> Matcher {
    Matcher::new(name, op, value).unwrap()
}

impl Harness {
    fn with(&mut self, action: Action, key: &str, edit: impl FnOnce(&mut Event)) -> &mut Self {
        let mut e = Event::new(
            Integration::PagerDuty,
            action,
            "rk".into(),
            key.into(),
            UnixMillis(self.now),
        );
        e.summary = format!("{key} summary");
        e.severity = Severity::Warning;
        edit(&mut e);
        self.shard.apply(e, UnixMillis(self.now), &mut self.out);
        self
    }

    fn types(&mut self) -> Vec<String> {
        self.take()
            .iter()
            .map(|m| format!("{}:{}", m["type"].as_str().unwrap(), m["seq"]))
            .collect()
    }
}

#[test]
fn the_first_rule_whose_matchers_match_decides_the_grouping() {
    let db = RuleConfig {
        name: "db".into(),
        matchers: vec![m("source", "=~", "db-.*")],
        ..rule(&[])
    };
    let mut h = Harness::build(vec![db, rule(&["dedup_key"])], &[], Caps::unbounded(100));
    h.trigger("a", "db-1")
        .trigger("b", "db-2")
        .trigger("c", "web-1")
        .trigger("d", "web-1")
        .at(30);
    let msgs = h.take();
    let mut seen: Vec<(String, u64)> = msgs
        .iter()
        .map(|m| {
            (
                m["rule"].as_str().unwrap().to_string(),
                m["alert_count"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("db".into(), 2), ("test".into(), 1), ("test".into(), 1)]
    );
}

#[test]
fn rules_that_all_have_matchers_fall_back_to_the_default_rule() {
    let only_db = RuleConfig {
        name: "db".into(),
        matchers: vec![m("source", "=", "db-1")],
        ..rule(&["source"])
    };
    let mut h = Harness::build(vec![only_db], &[], Caps::unbounded(100));
    // The built-in rule holds a warning for its pause (10 min).
    h.trigger("a", "web-1").at(599);
    assert!(h.take().is_empty());
    h.at(600);
    assert_eq!(h.take()[0]["rule"], "default");
}

#[test]
fn pause_transient_suppresses_incidents_that_resolve_within_it() {
    let r = RuleConfig {
        pause_transient: crate::config::Pause::all(Duration::from_secs(120)),
        ..rule(&["source"])
    };
    let mut h = Harness::new(r);
    h.trigger("blip", "db-1").at(60).resolve("blip").at(300);
    assert!(
        h.take().is_empty(),
        "resolved within the pause: never published"
    );
    assert_eq!(h.shard.stats.transient, 2);
    h.trigger("real", "db-2").at(119);
    assert!(
        h.take().is_empty(),
        "held for the pause, longer than group_wait"
    );
    h.at(420);
    assert_eq!(h.types(), ["opened:1"]);
}

#[test]
fn min_alerts_holds_an_incident_until_enough_alerts_gather() {
    let r = RuleConfig {
        min_alerts: 3,
        ..rule(&["source"])
    };
    let mut h = Harness::new(r);
    h.trigger("a", "db-1").trigger("b", "db-1").at(100);
    assert!(h.take().is_empty(), "two of three");
    h.trigger("c", "db-1");
    assert_eq!(
        summary(&h.take()),
        vec![s("opened", 1, 3, 3, 3, "triggered")]
    );

    h.trigger("x", "db-9").at(200).resolve("x");
    assert!(
        h.take().is_empty(),
        "never reached the threshold: nothing, not even resolved"
    );
    assert_eq!(h.shard.stats.threshold, 2);
    assert_eq!(h.shard.open_incidents(), 1);
}

#[test]
fn a_flapping_alert_publishes_one_flapping_message_then_holds_until_stable() {
    let flap = FlapConfig {
        max_changes: 3,
        within: Duration::from_secs(600),
        cooldown: Duration::from_secs(300),
    };
    let r = RuleConfig {
        flap: Some(flap),
        group_wait: Duration::ZERO,
        ..rule(&["source"])
    };
    let mut h = Harness::new(r);
    h.trigger("f", "db-1");
    assert_eq!(h.types(), ["opened:1"]);
    h.at(10).resolve("f");
    assert_eq!(h.types(), ["resolved:2"], "one resolve is not flapping");
    // Changes 3, 4 (> 3 within 10 minutes): flapping from the fourth.
    h.at(20).trigger("f", "db-1").at(30).resolve("f");
    assert_eq!(h.types(), ["opened:1", "flapping:2"]);
    // While flapping, nothing more goes out, and the incident stays open across resolves.
    h.at(40)
        .trigger("f", "db-1")
        .at(50)
        .resolve("f")
        .at(60)
        .trigger("f", "db-1")
        .at(70)
        .resolve("f");
    assert!(h.take().is_empty());
    assert_eq!(h.shard.open_incidents(), 1);
    // Stable for the cooldown after the last change (t=70): the held resolve goes out.
    h.at(369);
    assert!(h.take().is_empty());
    h.at(370);
    assert_eq!(h.types(), ["resolved:3"]);
    assert_eq!(h.shard.open_incidents(), 0);
}

fn inhibit_rule() -> InhibitRule {
    InhibitRule {
        source: vec![m("labels.alertname", "=", "NodeDown")],
        target: vec![m("severity", "!=", "critical")],
        equal: vec![crate::event::Field::Label("node".into())],
    }
}

/// NodeDown on n1 (the inhibitor) and DiskFull on n1 (its target), grouped by source.
fn node_down_with_disk_full() -> Harness {
    let mut h = Harness::build(
        vec![rule(&["source"])],
        &[inhibit_rule()],
        Caps::unbounded(100),
    );
    h.with(
        Action::Trigger,
        "down",
        labelled("NodeDown", "n1", Severity::Critical),
    );
    h.with(
        Action::Trigger,
        "disk",
        labelled("DiskFull", "n1", Severity::Warning),
    );
    h
}

fn labelled(name: &'static str, node: &'static str, sev: Severity) -> impl FnOnce(&mut Event) {
    move |e: &mut Event| {
        e.source = format!("{name}-{node}");
        e.severity = sev;
        e.labels = [("alertname", name), ("node", node)].into_iter().collect();
    }
}

#[test]
fn an_open_source_alert_inhibits_matching_targets_with_equal_labels() {
    let mut h = node_down_with_disk_full();
    h.with(
        Action::Trigger,
        "disk2",
        labelled("DiskFull", "n2", Severity::Warning),
    );
    h.at(30);
    let msgs = h.take();
    let sources: Vec<&str> = msgs
        .iter()
        .map(|m| m["group_key"]["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        ["NodeDown-n1", "DiskFull-n2"],
        "DiskFull on n1 is inhibited; on n2 it is not"
    );
    assert!(h.shard.stats.inhibit >= 1);
    // The inhibitor resolves: the held incident is published, its alert no longer marked.
    h.at(40).resolve("down");
    let msgs = h.take();
    assert_eq!(msgs.len(), 2);
    let released = msgs
        .iter()
        .find(|m| m["group_key"]["source"] == "DiskFull-n1")
        .unwrap();
    assert_eq!(released["type"], "opened");
    assert_eq!(released["alerts"][0].get("suppressed"), None);
}

#[test]
fn an_alert_does_not_inhibit_itself() {
    let rule_both = InhibitRule {
        source: vec![m("labels.alertname", "=", "X")],
        target: vec![m("labels.alertname", "=", "X")],
        equal: vec![],
    };
    let mut h = Harness::build(vec![rule(&["source"])], &[rule_both], Caps::unbounded(100));
    h.with(Action::Trigger, "x", labelled("X", "n1", Severity::Warning))
        .at(30);
    assert_eq!(h.types(), ["opened:1"]);
}

fn silence(
    matchers: Vec<Matcher>,
    from: u64,
    to: u64,
) -> Arc<[crate::correlate::silence::Silence]> {
    Arc::from(vec![crate::correlate::silence::Silence {
        id: "sil_1".into(),
        matchers,
        starts_at: UnixMillis(T0 + from * 1000),
        ends_at: UnixMillis(T0 + to * 1000),
        created_by: "ops".into(),
        comment: "maintenance".into(),
        created_at: UnixMillis(T0),
    }])
}

#[test]
fn silenced_alerts_are_tracked_but_not_published_until_the_silence_ends() {
    let mut h = Harness::new(rule(&["source"]));
    h.shard.set_silences(
        silence(vec![m("source", "=", "db-1")], 0, 100),
        UnixMillis(T0),
        &mut h.out,
    );
    h.trigger("a", "db-1")
        .trigger("a", "db-1")
        .trigger("b", "db-2")
        .at(30);
    let msgs = h.take();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["group_key"]["source"], "db-2");
    assert_eq!(
        h.shard.open_alerts(),
        2,
        "the silenced alert is still tracked"
    );
    h.at(100);
    let msgs = h.take();
    assert_eq!(
        summary(&msgs),
        vec![s("opened", 1, 1, 1, 2, "triggered")],
        "published when the silence ends, with its count"
    );
}

#[test]
fn resolves_always_flow_even_when_silenced_after_publication() {
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1").at(30);
    assert_eq!(h.types(), ["opened:1"]);
    h.shard.set_silences(
        silence(vec![m("source", "=", "db-1")], 31, 3600),
        UnixMillis(T0 + 31_000),
        &mut h.out,
    );
    h.at(40).ack("a");
    assert!(
        h.take().is_empty(),
        "updates of an all-silenced incident are held"
    );
    h.at(50).resolve("a");
    assert_eq!(h.types(), ["resolved:2"]);
}

#[test]
fn an_incident_silenced_throughout_closes_unpublished() {
    let mut h = Harness::new(rule(&["source"]));
    h.shard.set_silences(
        silence(vec![m("source", "=", "db-1")], 0, 3600),
        UnixMillis(T0),
        &mut h.out,
    );
    h.trigger("a", "db-1").at(60).resolve("a");
    assert!(h.take().is_empty());
    assert_eq!(h.shard.open_incidents(), 0);
}

#[test]
fn alerts_with_ends_at_resolve_by_time_unless_refreshed() {
    let mut h = Harness::new(rule(&["source"]));
    let ends = |secs: u64| {
        move |e: &mut Event| {
            e.source = "db-1".into();
            e.ends_at = Some(UnixMillis(T0 + secs * 1000));
        }
    };
    h.with(Action::Trigger, "a", ends(100)).at(30);
    assert_eq!(h.types(), ["opened:1"]);
    h.at(90).with(Action::Trigger, "a", ends(200)).at(150);
    assert!(h.take().is_empty(), "the re-send moved its end to 200");
    h.at(200);
    let msgs = h.take();
    assert_eq!(summary(&msgs), vec![s("resolved", 2, 1, 0, 2, "resolved")]);
    assert_eq!(msgs[0]["resolved_at"], "2023-11-14T22:16:40.000Z");
}

/// Prometheus re-sends a firing alert every minute with its end pushed on: the re-sends add no
/// timer (its one entry moves on when it comes due), an earlier end still resolves it then, and
/// an end taken away keeps it open.
#[test]
fn a_refresh_that_moves_the_end_later_schedules_no_timer() {
    let mut h = Harness::new(rule(&["source"]));
    let ends = |secs: Option<u64>| {
        move |e: &mut Event| {
            e.source = "db-1".into();
            e.ends_at = secs.map(|s| UnixMillis(T0 + s * 1000));
        }
    };
    h.with(Action::Trigger, "a", ends(Some(240))).at(30);
    h.take();
    let timers = h.shard.timers.len();
    for minute in 1..=10 {
        h.at(minute * 60)
            .with(Action::Trigger, "a", ends(Some(minute * 60 + 240)));
    }
    assert!(h.shard.timers.len() <= timers, "ten re-sends, no new entry");
    assert!(h.take().iter().all(|m| m["type"] != "resolved"));
    // The end moves earlier: it resolves at the new end.
    h.at(660)
        .with(Action::Trigger, "a", ends(Some(700)))
        .at(699);
    assert!(h.take().iter().all(|m| m["type"] != "resolved"));
    h.at(700);
    assert_eq!(h.types(), ["resolved:2"], "opened, then resolved at 700 s");
    // Re-opened with an end, then re-sent without one: it stays open past that end.
    h.at(800).with(Action::Trigger, "b", ends(Some(900)));
    h.at(850).with(Action::Trigger, "b", ends(None)).at(2000);
    assert!(h.take().iter().all(|m| m["type"] != "resolved"));
    assert_eq!(h.shard.open_alerts(), 1);
}

use serde_json::json;

/// No event arrives when an alert's `ends_at` passes: its resolve counts nothing, on the alert
/// or on the incident, and leaves `last_seen` at the last event; a resolve event counts.
#[test]
fn a_resolve_by_time_counts_no_event() {
    let mut h = Harness::new(rule(&["source"]));
    let ends = |secs: u64| {
        move |e: &mut Event| {
            e.source = "db-1".into();
            e.ends_at = Some(UnixMillis(T0 + secs * 1000));
        }
    };
    h.with(Action::Trigger, "timed", ends(100))
        .with(Action::Trigger, "sent", ends(1000))
        .at(30);
    h.take();
    h.at(40).with(Action::Trigger, "timed", ends(100)).at(100);
    h.at(160).resolve("sent");
    let msgs = h.take();
    assert_eq!(
        summary(&msgs),
        vec![
            s("updated", 2, 2, 1, 3, "triggered"),
            s("resolved", 3, 2, 0, 4, "resolved")
        ],
        "three triggers, then the one resolve event"
    );
    let alert = |i: usize| {
        let a = &msgs[1]["alerts"][i];
        json!([a["dedup_key"], a["event_count"], a["last_seen"]])
    };
    assert_eq!(
        alert(0),
        json!(["timed", 2, "2023-11-14T22:14:00.000Z"]),
        "resolved by time at 100 s: two triggers, last seen at 40 s"
    );
    assert_eq!(
        alert(1),
        json!(["sent", 2, "2023-11-14T22:16:00.000Z"]),
        "resolved by an event at 160 s: a trigger and the resolve"
    );
}

#[test]
fn past_a_cap_alerts_fold_into_one_overflow_incident_that_resolves_with_them() {
    let limits = Caps {
        max_alerts: 2,
        ..Caps::unbounded(100)
    };
    let mut h = Harness::build(vec![rule(&["source"])], &[], limits);
    h.trigger("a", "db-1").trigger("b", "db-1");
    // Past the cap: published at once (it pages), not tracked one by one.
    h.trigger("c", "db-1");
    let msgs = h.take();
    assert_eq!(msgs.len(), 1);
    let opened = &msgs[0];
    assert_eq!(opened["type"], "opened");
    assert_eq!(opened["status"], "triggered");
    assert_eq!(opened["overflow"], json!({"taken": 1, "unmatched": 0}));
    assert_eq!(opened["alert_count"], 1);
    assert_eq!(opened["alerts"][0]["dedup_key"], "c");
    assert!(opened["title"]
        .as_str()
        .unwrap()
        .contains("past sluice's alerts cap"));
    let id = opened["incident_id"].clone();
    // The second one taken doubles the count: an update; the third does not; a repeat of one
    // it holds is a repeat, nothing new.
    h.trigger("d", "db-2")
        .trigger("e", "db-3")
        .trigger("c", "db-1");
    let msgs = h.take();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["type"], "updated");
    assert_eq!(msgs[0]["incident_id"], id);
    assert_eq!(msgs[0]["overflow"]["taken"], 2);
    assert_eq!(h.shard.stats.caps_reached, 3);
    assert_eq!(h.shard.open_alerts(), 2, "the tracked ones only");
    // Snapshotted and restored in between, it goes on.
    let mut bytes = Vec::new();
    h.shard.snapshot(UnixMillis(h.now), &mut bytes);
    let rules: Arc<[Rule]> = rules::with_fallback(&[rule(&["source"])]).into();
    h.shard = Shard::restore(rules, Arc::from(Vec::new()), limits, &bytes)
        .unwrap()
        .0;
    // Resolves find what it holds; the last one resolves it.
    h.resolve("c").resolve("d");
    assert!(h.take().is_empty());
    h.resolve("e");
    let msgs = h.take();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["type"], "resolved");
    assert_eq!(msgs[0]["incident_id"], id);
    assert_eq!(msgs[0]["seq"], 3);
    assert_eq!(msgs[0]["open_alert_count"], 0);
    // The tracked incident is untouched by all this.
    h.at(30);
    let msgs = h.take();
    assert_eq!(msgs[0]["alert_count"], 2);
    assert_eq!(msgs[0].get("overflow"), None);
    // A later alert past the cap opens a new overflow incident.
    h.trigger("f", "db-4");
    let msgs = h.take();
    assert_eq!(msgs[0]["type"], "opened");
    assert_ne!(msgs[0]["incident_id"], id);
}

#[test]
fn an_alert_inhibited_until_it_resolves_is_never_published() {
    let mut h = node_down_with_disk_full();
    h.at(30);
    assert_eq!(h.take().len(), 1, "only NodeDown");
    h.at(40).resolve("disk").at(50).resolve("down");
    let msgs = h.take();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["group_key"]["source"], "NodeDown-n1");
    assert_eq!(msgs[0]["type"], "resolved");
}

/// A shard restored from `h`'s snapshot under `rules`, in a harness at the same time.
fn restored(h: &Harness, rules: Vec<RuleConfig>) -> Result<Harness, SnapshotError> {
    let mut bytes = Vec::new();
    h.shard.snapshot(UnixMillis(h.now), &mut bytes);
    let rules: Arc<[Rule]> = rules::with_fallback(&rules).into();
    let (shard, at) = Shard::restore(rules, Arc::from(Vec::new()), Caps::unbounded(100), &bytes)?;
    assert_eq!(at, UnixMillis(h.now));
    Ok(Harness {
        shard,
        now: h.now,
        out: Vec::new(),
    })
}

#[test]
fn a_snapshot_restores_under_renumbered_rules_by_name() {
    let mut h = Harness::new(rule(&["source"]));
    h.at(0).trigger("a", "db-1").at(31);
    assert_eq!(h.take()[0]["type"], "opened");
    // A rule inserted before it: the incident keeps its rule by name, and its group still
    // takes the group's new alerts.
    let mut first = rule(&["source"]);
    first.name = "first".into();
    first.matchers = vec![crate::matchers::Matcher::new("source", "=", "web-9").unwrap()];
    let mut r = restored(&h, vec![first, rule(&["source"])]).unwrap();
    r.trigger("b", "db-1");
    assert_eq!(r.shard.open_incidents(), 1, "joined the restored incident");
    r.at(31 + 61);
    let update = r.take();
    assert_eq!(update[0]["type"], "updated");
    assert_eq!(update[0]["seq"], 2);
    assert_eq!(update[0]["rule"], "test");
    // Under rules without its name it falls back to the last rule, and still resolves.
    let mut other = rule(&["source"]);
    other.name = "other".into();
    other.matchers = vec![crate::matchers::Matcher::new("source", "=", "web-9").unwrap()];
    let mut r = restored(&h, vec![other]).unwrap();
    r.resolve("a").at(200);
    let resolved = r.take();
    assert_eq!(resolved[0]["type"], "resolved");
    assert_eq!(resolved[0]["rule"], "default");
}

#[test]
fn a_snapshot_of_a_later_version_or_inconsistent_is_refused() {
    let mut h = Harness::new(rule(&[]));
    h.at(0).trigger("a", "db-1");
    let mut bytes = Vec::new();
    h.shard.snapshot(UnixMillis(h.now), &mut bytes);
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    let restore = |v: &Value| {
        let rules: Arc<[Rule]> = rules::with_fallback(&[rule(&[])]).into();
        let bytes = serde_json::to_vec(v).unwrap();
        Shard::restore(rules, Arc::from(Vec::new()), Caps::unbounded(100), &bytes).map(|_| ())
    };
    assert!(restore(&v).is_ok());
    let mut later = v.clone();
    later["v"] = (SNAPSHOT_VERSION + 1).into();
    later["slots"] = "a shape this version does not know".into();
    assert!(matches!(
        restore(&later),
        Err(SnapshotError::UnsupportedVersion(n)) if n == SNAPSHOT_VERSION + 1
    ));
    v["slots"]["free"] = serde_json::json!([0]);
    assert!(matches!(
        restore(&v),
        Err(SnapshotError::Inconsistent("free slots"))
    ));
    assert!(matches!(
        Shard::restore(
            rules::with_fallback(&[]).into(),
            Arc::from(Vec::new()),
            Caps::unbounded(1),
            b"{\"v\":1}"
        ),
        Err(SnapshotError::Json(_))
    ));
}

#[test]
fn commands_acknowledge_snooze_and_resolve_an_incident_by_its_id() {
    use crate::event::CommandAction;
    let mut h = Harness::new(rule(&["source"]));
    h.trigger("a", "db-1").trigger("b", "db-1").at(30);
    let opened = h.take();
    let id = opened[0]["incident_id"].as_str().unwrap().to_string();
    // An unknown incident changes nothing.
    h.at(31).command("inc_0", CommandAction::Acknowledge);
    assert!(h.take().is_empty());
    // Acknowledge: every alert acknowledged, at once, naming who and why.
    h.at(32).command(&id, CommandAction::Acknowledge);
    let msgs = h.take();
    assert_eq!(
        summary(&msgs),
        vec![s("acknowledged", 2, 2, 2, 2, "acknowledged")]
    );
    assert_eq!(
        msgs[0]["command"],
        serde_json::json!({"action": "acknowledge", "by": "ana", "reason": "on it",
                           "at": UnixMillis(T0 + 32_000).to_string()})
    );
    // A new alert joins triggered; snoozing acknowledges it until the snooze ends.
    h.at(40).trigger("c", "db-1").at(100);
    assert_eq!(summary(&h.take())[0].5, "triggered");
    let until = UnixMillis(T0 + 400_000);
    h.at(101).command(&id, CommandAction::Snooze { until });
    let msgs = h.take();
    assert_eq!(
        summary(&msgs),
        vec![s("snoozed", 4, 3, 3, 3, "acknowledged")]
    );
    assert_eq!(msgs[0]["snoozed_until"], until.to_string());
    h.at(399);
    assert!(h.take().is_empty(), "nothing while snoozed");
    // At its end the open alerts trigger again: the incident pages again.
    h.at(400);
    let msgs = h.take();
    assert_eq!(summary(&msgs), vec![s("updated", 5, 3, 3, 3, "triggered")]);
    assert!(msgs[0].get("snoozed_until").is_none());
    // Resolve: every open alert resolves, and the incident with them.
    h.at(410).command(&id, CommandAction::Resolve);
    assert_eq!(
        summary(&h.take()),
        vec![s("resolved", 6, 3, 0, 3, "resolved")]
    );
    // Commands for it now change nothing.
    h.at(411).command(&id, CommandAction::Acknowledge);
    assert!(h.take().is_empty());
}

#[test]
fn a_maintenance_window_silences_while_open_and_again_when_it_comes_back() {
    // T0 is a Tuesday, 22:13:20 UTC: a daily 22:00-22:15 window is open, and closes at +100 s.
    let window = crate::config::MaintenanceWindow {
        name: "nightly".into(),
        matchers: vec![m("source", "=", "db-1")],
        time_zone: jiff::tz::TimeZone::UTC,
        zone_name: "UTC".into(),
        days: [true; 7],
        start: 22 * 60,
        end: 22 * 60 + 15,
        comment: String::new(),
    };
    let mut h = Harness::new(rule(&["source"]));
    h.configure(|s| s.with_maintenance(Arc::from(vec![window])));
    h.trigger("a", "db-1").trigger("b", "db-2").at(30);
    let msgs = h.take();
    assert_eq!(msgs.len(), 1, "only db-2 pages while the window is open");
    assert_eq!(msgs[0]["group_key"]["source"], "db-2");
    assert_eq!(msgs[0]["reasons"]["silenced"], 0);
    h.at(99);
    assert!(h.take().is_empty());
    h.at(100);
    let msgs = h.take();
    assert_eq!(msgs.len(), 1, "published when the window closes");
    assert_eq!(msgs[0]["group_key"]["source"], "db-1");
    // The next evening it opens again: db-1's open alert is silenced (its incident's updates
    // held) and a new one waits; a late wake-up sees the close at its own time.
    let reopens = 86_400 - 800;
    h.at(reopens + 5).trigger("a2", "db-1").at(reopens + 600);
    assert!(h.take().is_empty(), "nothing while it is open");
    h.at(reopens + 900 + 60);
    let mut msgs = h.take();
    msgs.sort_by_key(|m| m["seq"].as_u64());
    let kinds: Vec<(&str, &str)> = msgs
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap(),
                m["alerts"][0]["dedup_key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("opened", "a2"), ("updated", "a")]);
    assert_eq!(msgs[0]["opened_at"], "2023-11-15T22:00:05.000Z");
}

impl Harness {
    /// The harness's shard, built on by `f`.
    fn configure(&mut self, f: impl FnOnce(Shard) -> Shard) {
        let placeholder = Shard::new(
            rules::with_fallback(&[]).into(),
            Arc::from(Vec::new()),
            Caps::unbounded(1),
        );
        let shard = std::mem::replace(&mut self.shard, placeholder);
        self.shard = f(shard);
    }
}

/// A shard with the default rule only, restored from `bytes`.
fn restore_bare(bytes: &[u8]) -> (Shard, UnixMillis) {
    Shard::restore(
        rules::with_fallback(&[]).into(),
        Arc::from(Vec::new()),
        Caps::unbounded(1),
        bytes,
    )
    .unwrap()
}

fn heartbeat(
    name: &str,
    secs: u64,
    events: Option<Vec<Matcher>>,
) -> crate::config::HeartbeatConfig {
    crate::config::HeartbeatConfig {
        name: name.into(),
        routing_key: "rk".into(),
        interval: Duration::from_secs(secs),
        interval_text: format!("{secs}s"),
        consume: events.is_some(),
        events,
        severity: Severity::Critical,
    }
}

impl Harness {
    fn beat(&mut self, name: &str) -> &mut Self {
        let e = Event::new(
            Integration::Heartbeat,
            Action::Trigger,
            "rk".into(),
            name.into(),
            UnixMillis(self.now),
        );
        self.shard.apply(e, UnixMillis(self.now), &mut self.out);
        self
    }
}

#[test]
fn a_missed_heartbeat_pages_and_its_next_beat_resolves_it() {
    let mut h = Harness::new(rule(&["source"]));
    let watchdog = vec![m("class", "=", "Watchdog")];
    h.configure(|s| {
        s.with_heartbeats(Arc::from(vec![
            heartbeat("backup", 60, None),
            heartbeat("prometheus", 120, Some(watchdog)),
        ]))
    });
    // The start at 0: each heartbeat has a full interval of grace.
    h.at(0).at(59).beat("nobody-configured-this");
    assert!(h.take().is_empty(), "an unknown beat is dropped");
    assert_eq!(h.shard.open_alerts(), 0);
    h.at(40);
    let mut watchdog = Event::new(
        Integration::AlertmanagerApi,
        Action::Trigger,
        "rk".into(),
        "wd".into(),
        UnixMillis(h.now),
    );
    watchdog.class = Some("Watchdog".into());
    h.shard.apply(watchdog, UnixMillis(h.now), &mut h.out);
    assert_eq!(
        h.shard.open_alerts(),
        0,
        "the Watchdog is consumed as a beat"
    );
    // backup's deadline passes at 60: its missed alert opens and pages after group_wait.
    h.at(60);
    assert_eq!(h.shard.open_alerts(), 1);
    h.at(90);
    let msgs = h.take();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["type"], "opened");
    assert_eq!(msgs[0]["title"], "no heartbeat from backup for 60s");
    assert_eq!(msgs[0]["severity"], "critical");
    assert_eq!(msgs[0]["alerts"][0]["dedup_key"], "missed:backup");
    assert_eq!(msgs[0]["alerts"][0]["integration"], "heartbeat");
    // A late beat resolves it; the next deadline is a full interval later.
    h.at(100).beat("backup");
    h.at(130);
    assert_eq!(h.types(), ["resolved:2"]);
    h.at(159);
    assert_eq!(h.shard.open_alerts(), 0);
    // prometheus' Watchdog last beat at 40: missed at 160; backup at 160 too.
    h.at(160);
    assert_eq!(h.shard.open_alerts(), 2);
    // Restored from a snapshot (a restart) under a config without "prometheus": beats and
    // misses carry over, backup's missed alert resolves when its beat returns, and the one of
    // the heartbeat no longer configured resolves at the start.
    let mut bytes = Vec::new();
    h.shard.snapshot(UnixMillis(h.now), &mut bytes);
    let config = heartbeat("backup", 60, None);
    let (restored, _) = restore_bare(&bytes);
    h.shard = restored.with_heartbeats(Arc::from(vec![config]));
    h.at(165);
    assert_eq!(
        h.shard.open_alerts(),
        1,
        "prometheus' missed alert resolved"
    );
    h.at(170).beat("backup");
    assert_eq!(h.shard.open_alerts(), 0, "backup's missed alert resolved");
}

#[test]
fn after_a_restart_a_heartbeat_gets_a_full_interval_of_grace() {
    let mut h = Harness::new(rule(&["source"]));
    h.configure(|s| s.with_heartbeats(Arc::from(vec![heartbeat("backup", 60, None)])));
    h.at(0).beat("backup").at(50);
    let mut bytes = Vec::new();
    h.shard.snapshot(UnixMillis(h.now), &mut bytes);
    // Down from 50 to 200: the last beat (0) is long past its deadline, yet a start gives
    // the heartbeat until 260.
    let (restored, _) = restore_bare(&bytes);
    h.shard = restored.with_heartbeats(Arc::from(vec![heartbeat("backup", 60, None)]));
    h.at(200).at(259);
    assert_eq!(h.shard.open_alerts(), 0);
    h.at(260);
    assert_eq!(h.shard.open_alerts(), 1);
}
