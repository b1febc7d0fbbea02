//! The noise defaults at the shard's boundary, under the config an empty file gives: auto
//! grouping (storm folding and topology, bounded, never across routing keys), the pause by
//! severity, symptom inhibition, and their reasons in messages.

use serde_json::Value;

use super::Shard;
use crate::config::Config;
use crate::correlate::build_shard;
use crate::event::{Action, Event, Severity};
use crate::integration::Integration;
use crate::time::UnixMillis;

const T0: u64 = 1_700_000_000_000;

struct Lab {
    shard: Shard,
    now: u64,
    out: Vec<crate::publish::encode::OutboundMessage>,
}

/// An alert as Prometheus sends it: `class` is its alertname, the rest are labels.
struct A<'a> {
    key: &'a str,
    class: &'a str,
    labels: &'a [(&'a str, &'a str)],
    severity: Severity,
    routing_key: &'a str,
}

fn a<'a>(key: &'a str, class: &'a str, labels: &'a [(&'a str, &'a str)]) -> A<'a> {
    A {
        key,
        class,
        labels,
        severity: Severity::Critical,
        routing_key: "team-a",
    }
}

impl Lab {
    fn new(toml: &str) -> Self {
        let config = Config::from_toml(toml, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        Lab {
            shard: build_shard(&config.correlate, crate::correlate::Part::ONLY),
            now: T0,
            out: Vec::new(),
        }
    }

    /// The shard restored from its own snapshot under the config `toml`.
    fn restore_under(&mut self, toml: &str) {
        let mut bytes = Vec::new();
        self.shard.snapshot(UnixMillis(self.now), &mut bytes);
        let config = Config::from_toml(toml, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        self.shard = crate::correlate::TimedShard::restore(
            &config.correlate,
            crate::correlate::Part::ONLY,
            &bytes,
        )
        .unwrap()
        .shard;
    }

    fn at(&mut self, secs: u64) -> &mut Self {
        self.now = T0 + secs * 1000;
        self.shard.advance(UnixMillis(self.now), &mut self.out);
        self
    }

    fn send(&mut self, action: Action, alert: &A) -> &mut Self {
        let mut e = Event::new(
            Integration::AlertmanagerApi,
            action,
            alert.routing_key.into(),
            alert.key.into(),
            UnixMillis(self.now),
        );
        e.class = Some(alert.class.into());
        e.summary = format!("{} {}", alert.class, alert.key);
        e.severity = alert.severity;
        e.labels = alert
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.shard.apply(e, UnixMillis(self.now), &mut self.out);
        self
    }

    fn fire(&mut self, alert: A) -> &mut Self {
        self.send(Action::Trigger, &alert)
    }

    fn take(&mut self) -> Vec<Value> {
        self.out
            .drain(..)
            .map(|m| serde_json::from_slice(&m.body).unwrap())
            .collect()
    }
}

/// The dedup keys of each incident's alerts, from its messages, in incident order.
fn incidents(msgs: &[Value]) -> Vec<Vec<String>> {
    let mut ids: Vec<&str> = Vec::new();
    let mut alerts: Vec<Vec<String>> = Vec::new();
    for m in msgs {
        let id = m["incident_id"].as_str().unwrap();
        let keys = m["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["dedup_key"].as_str().unwrap().to_string())
            .collect();
        match ids.iter().position(|i| *i == id) {
            Some(i) => alerts[i] = keys,
            None => {
                ids.push(id);
                alerts.push(keys);
            }
        }
    }
    alerts
}

#[test]
fn a_storm_of_one_alert_name_across_hosts_folds_into_one_incident() {
    let mut lab = Lab::new("");
    for (i, host) in ["web-1", "web-2", "web-3", "web-4"].iter().enumerate() {
        lab.at(i as u64 * 20)
            .fire(a(host, "HighLatency", &[("host", host)]));
    }
    lab.at(200);
    let msgs = lab.take();
    assert_eq!(incidents(&msgs), [["web-1", "web-2", "web-3", "web-4"]]);
    let last = msgs.last().unwrap();
    assert_eq!(
        last["group_key"],
        serde_json::json!({"class": "HighLatency", "host": "web-1"})
    );
    let by: Vec<&Value> = last["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["grouped_by"])
        .collect();
    assert_eq!(by[0], &Value::Null, "the first alert joined nothing");
    assert_eq!(by[1], "class=HighLatency");
    assert_eq!(
        last["reasons"],
        serde_json::json!({"grouping": "auto", "joined_by": {"class": 3}, "inhibited": 0, "silenced": 0})
    );
    assert_eq!(
        lab.shard.stats.joined_by[crate::event::LinkKind::Class as usize],
        3
    );
}

#[test]
fn alerts_of_one_host_join_its_incident_while_the_cascade_lasts_and_not_after() {
    let mut lab = Lab::new("");
    lab.at(0)
        .fire(a("disk", "DiskFull", &[("instance", "db-1:9100")]));
    lab.at(60).fire(a(
        "svc",
        "ServiceDown",
        &[("node", "db-1"), ("service", "api")],
    ));
    // Past the window (5 min from the incident's opening), the host links no more.
    lab.at(301)
        .fire(a("later", "CertExpiring", &[("host", "db-1")]));
    lab.at(400);
    let msgs = lab.take();
    assert_eq!(incidents(&msgs), vec![vec!["disk", "svc"], vec!["later"]]);
    let first = msgs.iter().find(|m| m["alert_count"] == 2).unwrap();
    assert_eq!(first["alerts"][1]["grouped_by"], "host=db-1");
}

#[test]
fn joins_never_chain_through_a_later_alert() {
    let mut lab = Lab::new("");
    lab.at(0)
        .fire(a("x", "Errors", &[("host", "h1"), ("service", "pay")]));
    // Joins by service, and has a pod the first alert has not.
    lab.at(10).fire(a(
        "y",
        "Latency",
        &[("host", "h2"), ("service", "pay"), ("pod", "p9")],
    ));
    // Shares only that pod: a new incident.
    lab.at(20)
        .fire(a("z", "OOMKilled", &[("host", "h3"), ("pod", "p9")]));
    lab.at(100);
    assert_eq!(incidents(&lab.take()), vec![vec!["x", "y"], vec!["z"]]);
}

#[test]
fn grouping_never_crosses_routing_keys() {
    let mut lab = Lab::new("");
    lab.at(0).fire(a("x", "NodeDown", &[("node", "n1")]));
    let mut other = a("y", "NodeDown", &[("node", "n1")]);
    other.routing_key = "team-b";
    lab.fire(other).at(100);
    let msgs = lab.take();
    assert_eq!(incidents(&msgs), vec![vec!["x"], vec!["y"]]);
}

#[test]
fn a_lower_severity_waits_for_its_pause_and_never_pages_if_it_resolves_within_it() {
    let mut lab = Lab::new("");
    let mut warn = a("w", "QueueSlow", &[("service", "q")]);
    warn.severity = Severity::Warning;
    lab.at(0).send(Action::Trigger, &warn);
    lab.at(31);
    assert!(lab.take().is_empty(), "held past group_wait");
    lab.at(500).send(Action::Resolve, &warn).at(700);
    assert!(
        lab.take().is_empty(),
        "resolved within its pause: never published"
    );
    // The same, still open at the end of its pause (10 min): published then.
    lab.at(1000).send(Action::Trigger, &warn);
    lab.at(1599);
    assert!(lab.take().is_empty());
    lab.at(1600);
    let opened = lab.take();
    assert_eq!(opened[0]["type"], "opened");
    assert_eq!(opened[0]["reasons"]["pause"], "severity");
    assert_eq!(
        opened[0]["reasons"]["paused_until"],
        UnixMillis(T0 + 1600 * 1000).to_string()
    );
    // Info alone never publishes, not even on shutdown; nor does it draw in an alert that
    // pages (chatter is not the problem): the critical opens an incident of its own.
    let mut info = a("i", "BackupDone", &[("service", "backup")]);
    info.severity = Severity::Info;
    lab.at(2000).send(Action::Trigger, &info).at(9000);
    lab.shard.flush(UnixMillis(lab.now), &mut lab.out);
    assert!(lab.take().is_empty());
    lab.fire(a("c", "BackupFailed", &[("service", "backup")]))
        .at(9030);
    let msgs = lab.take();
    assert_eq!(incidents(&msgs), [["c"]]);
    // Chatter of that service afterwards joins the incident that pages.
    let mut more = a("i2", "BackupDone", &[("service", "backup")]);
    more.severity = Severity::Info;
    lab.at(9040).send(Action::Trigger, &more).at(9400);
    assert_eq!(incidents(&lab.take()), [["c", "i2"]]);
}

#[test]
fn a_critical_alert_cuts_the_pause_of_the_incident_it_joins() {
    let mut lab = Lab::new("");
    let mut warn = a("w", "Latency", &[("service", "pay")]);
    warn.severity = Severity::Warning;
    lab.at(0).send(Action::Trigger, &warn);
    lab.at(10).fire(a("c", "Errors", &[("service", "pay")]));
    lab.at(29);
    assert!(lab.take().is_empty(), "group_wait still holds it");
    lab.at(30);
    let msgs = lab.take();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["alert_count"], 2);
    assert_eq!(msgs[0]["severity"], "critical");
}

/// Blips of one check on several pods fold into one held incident: the first blip's pause
/// ending while a later blip is open does not publish it. It is published only once one
/// of its alerts has lasted its own pause.
#[test]
fn a_held_incident_pages_only_when_one_of_its_alerts_lasted_its_pause() {
    let mut lab = Lab::new("");
    let blip = |key, pod| {
        let mut b = a(key, "CPUThrottlingHigh", &[]);
        b.labels = match pod {
            "p1" => &[("pod", "p1")],
            "p2" => &[("pod", "p2")],
            _ => &[("pod", "p3")],
        };
        b.severity = Severity::Error;
        b
    };
    // Errors wait 5 min. b1 at 0 s (its pause ends at 300 s), b2 folds in at 100 s (400 s),
    // b3 at 250 s (550 s).
    lab.at(0).send(Action::Trigger, &blip("b1", "p1"));
    lab.at(100).send(Action::Trigger, &blip("b2", "p2"));
    lab.at(150).send(Action::Resolve, &blip("b1", "p1"));
    lab.at(250).send(Action::Trigger, &blip("b3", "p3"));
    lab.at(350).send(Action::Resolve, &blip("b2", "p2"));
    // At 300 s b2 was open but had lasted 200 s; at 400 s b2 was gone and b3 150 s old.
    lab.at(500).send(Action::Resolve, &blip("b3", "p3"));
    lab.at(2000);
    assert!(
        lab.take().is_empty(),
        "no blip lasted its pause: never published"
    );
    // The same, but the third lasts past its own pause: published at the end of it.
    lab.at(3000).send(Action::Trigger, &blip("c1", "p1"));
    lab.at(3100).send(Action::Trigger, &blip("c2", "p2"));
    lab.at(3150).send(Action::Resolve, &blip("c1", "p1"));
    lab.at(3250).send(Action::Trigger, &blip("c3", "p3"));
    lab.at(3350).send(Action::Resolve, &blip("c2", "p2"));
    lab.at(3549);
    assert!(lab.take().is_empty(), "c3 has lasted 299 s of its 300");
    lab.at(3550);
    let opened = lab.take();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["type"], "opened");
    assert_eq!(
        opened[0]["reasons"]["paused_until"],
        UnixMillis(T0 + 3550 * 1000).to_string()
    );
    assert_eq!(incidents(&opened), [["c1", "c2", "c3"]]);
}

#[test]
fn an_alert_with_a_shorter_pause_that_resolves_within_it_gives_the_hold_back() {
    // A warning (10 min) holds the incident; an error of the same check (5 min) folds in and
    // shortens the hold to its own end. When it resolves within its pause, the hold is the
    // warning's again: its resolve, not only the first alert's, moves the hold.
    let mut lab = Lab::new("");
    let alert = |key, pod, severity| {
        let mut b = a(key, "CPUThrottlingHigh", &[]);
        b.labels = if pod == "p1" {
            &[("pod", "p1")]
        } else {
            &[("pod", "p2")]
        };
        b.severity = severity;
        b
    };
    lab.at(0)
        .send(Action::Trigger, &alert("w", "p1", Severity::Warning));
    lab.at(60)
        .send(Action::Trigger, &alert("e", "p2", Severity::Error));
    lab.at(200)
        .send(Action::Resolve, &alert("e", "p2", Severity::Error));
    lab.at(599);
    assert!(
        lab.take().is_empty(),
        "the error's pause (ending at 360 s) no longer holds once it resolved within it"
    );
    lab.at(600);
    let opened = lab.take();
    assert_eq!(opened.len(), 1, "the warning lasted its own pause");
    assert_eq!(
        opened[0]["reasons"]["paused_until"],
        UnixMillis(T0 + 600 * 1000).to_string()
    );
    assert_eq!(incidents(&opened), [["w", "e"]]);
}

#[test]
fn a_host_down_inhibits_the_other_alerts_of_that_host_only() {
    let mut lab = Lab::new("");
    lab.at(0).fire(a("down", "NodeDown", &[("node", "n7")]));
    lab.fire(a(
        "svc",
        "ServiceDown",
        &[("node", "n7"), ("service", "api")],
    ));
    // Another host's alert in another team-a incident (a different class and node).
    lab.at(400).fire(a("other", "DiskFull", &[("node", "n8")]));
    lab.at(800);
    let msgs = lab.take();
    let opened: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "opened").collect();
    assert_eq!(opened.len(), 2);
    let alerts = opened[0]["alerts"].as_array().unwrap();
    assert_eq!(alerts[0]["suppressed"], Value::Null);
    assert_eq!(alerts[1]["suppressed"], "inhibited");
    assert_eq!(opened[1]["alerts"][0]["suppressed"], Value::Null);
}

#[test]
fn each_default_switches_off() {
    let mut lab = Lab::new(
        "[correlate]\nauto_group = []\nsymptom_inhibition = false\n\
         [[correlate.rules]]\ngroup_by = [\"class\"]\npause_transient = \"0s\"\nflap = false",
    );
    let mut warn = a("w", "NodeDown", &[("node", "n7")]);
    warn.severity = Severity::Warning;
    lab.at(0).send(Action::Trigger, &warn);
    lab.fire(a("svc", "ServiceDown", &[("node", "n7")]));
    lab.at(30);
    let msgs = lab.take();
    assert_eq!(
        incidents(&msgs),
        vec![vec!["w"], vec!["svc"]],
        "by class only"
    );
    assert!(msgs.iter().all(|m| m["alerts"][0]["suppressed"].is_null()));
}

#[test]
fn a_restored_shard_keeps_its_links() {
    let mut lab = Lab::new("");
    lab.at(0).fire(a("x", "Errors", &[("service", "pay")]));
    lab.restore_under("");
    lab.at(10)
        .fire(a("y", "Latency", &[("service", "pay")]))
        .at(100);
    assert_eq!(incidents(&lab.take()), vec![vec!["x", "y"]]);
}

#[test]
fn a_class_that_blipped_before_is_held_even_when_critical() {
    let mut lab = Lab::new("");
    let gc = |key| a(key, "GcPause", &[("service", "api")]);
    lab.at(0).fire(gc("first"));
    lab.at(31);
    assert_eq!(
        lab.take()[0]["type"],
        "opened",
        "nothing learned yet: pages"
    );
    lab.at(60).send(Action::Resolve, &gc("first")).at(61);
    lab.take();
    // It lasted a minute: the class blips. The next critical of the class waits 3 min.
    lab.at(1000).fire(gc("second"));
    lab.at(1031);
    assert!(lab.take().is_empty());
    lab.at(1100).send(Action::Resolve, &gc("second")).at(1500);
    assert!(
        lab.take().is_empty(),
        "resolved within the learned pause: never published"
    );
    // Off, it pages as any critical does.
    let mut off = Lab::new("[correlate]\nlearned_pause = \"0s\"");
    off.at(0)
        .fire(gc("first"))
        .at(60)
        .send(Action::Resolve, &gc("first"));
    off.take();
    off.at(1000).fire(gc("second")).at(1031);
    assert_eq!(off.take()[0]["type"], "opened");
}

#[test]
fn within_the_cascade_every_host_that_joined_leads_to_the_incident() {
    let mut lab = Lab::new("");
    lab.at(0)
        .fire(a("n1", "NodeDown", &[("node", "r1-n1"), ("rack", "r1")]));
    lab.at(5)
        .fire(a("n2", "KubeletDown", &[("node", "r1-n2"), ("rack", "r1")]));
    // Another tool names the second host only, under another class: it joins by that host.
    let mut ping = Event::new(
        Integration::PagerDuty,
        Action::Trigger,
        "team-a".into(),
        "ping-n2".into(),
        UnixMillis(lab.now),
    );
    ping.source = "r1-n2".into();
    ping.class = Some("ping_loss".into());
    ping.summary = "ping r1-n2".into();
    ping.severity = Severity::Critical;
    lab.at(10);
    lab.shard.apply(ping, UnixMillis(T0 + 10_000), &mut lab.out);
    lab.at(100);
    let msgs = lab.take();
    assert_eq!(incidents(&msgs), vec![vec!["n1", "n2", "ping-n2"]]);
    assert_eq!(
        msgs.last().unwrap()["alerts"][2]["grouped_by"],
        "host=r1-n2"
    );
}

fn change(routing_key: &str, source: &str, details: &str, at: u64) -> crate::event::ChangeEvent {
    crate::event::ChangeEvent {
        routing_key: routing_key.into(),
        integration: Integration::PagerDuty,
        summary: format!("deploy by {source}"),
        source: Some(source.into()),
        custom_details: Some(crate::event::Details(
            serde_json::value::RawValue::from_string(details.into()).unwrap(),
        )),
        timestamp: None,
        received_at: UnixMillis(T0 + at * 1000),
        links: Vec::new(),
        images: Vec::new(),
    }
}

#[test]
fn an_incident_lists_the_changes_that_named_what_its_alerts_name() {
    let mut lab = Lab::new("");
    let apply = |lab: &mut Lab, c| lab.shard.apply_change(c, &mut lab.out);
    apply(&mut lab, change("team-a", "checkout", "{}", 0)); // too early: 31 min before
    lab.at(1860);
    apply(
        &mut lab,
        change(
            "team-a",
            "ci",
            r#"{"service":"checkout","sha":"ab12"}"#,
            1860,
        ),
    );
    apply(&mut lab, change("team-a", "checkout", "{}", 1870));
    apply(&mut lab, change("team-b", "checkout", "{}", 1880)); // another team's
    apply(&mut lab, change("team-a", "payments", "{}", 1890)); // another service
    lab.take();
    lab.at(1920).fire(a(
        "e",
        "Errors",
        &[("service", "checkout"), ("instance", "c-1:80")],
    ));
    lab.at(1950);
    let msgs = lab.take();
    let changes = msgs[0]["changes"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["summary"].as_str().unwrap(),
                c["matched"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("deploy by checkout", "entity.service=checkout"),
            ("deploy by ci", "labels.service=checkout"),
        ]
    );
    // Off: none listed.
    let mut off = Lab::new("[correlate]\nchange_window = \"0s\"");
    off.shard
        .apply_change(change("team-a", "checkout", "{}", 0), &mut off.out);
    off.take();
    off.at(10)
        .fire(a("e", "Errors", &[("service", "checkout")]))
        .at(60);
    assert!(off.take()[0].get("changes").is_none());
}

#[test]
fn a_snapshot_restored_under_renumbered_rules_keeps_auto_links() {
    let mut lab = Lab::new("");
    lab.at(0).fire(a("x", "Errors", &[("service", "pay")]));
    // A rule inserted before the built-in one: the incident keeps its rule by name.
    lab.restore_under(
        "[[correlate.rules]]\nname = \"db\"\nmatchers = [{ name = \"class\", op = \"=\", value = \"Db\" }]\n\
         [[correlate.rules]]\nname = \"default\"",
    );
    lab.at(10)
        .fire(a("y", "Latency", &[("service", "pay")]))
        .at(100);
    assert_eq!(incidents(&lab.take()), vec![vec!["x", "y"]]);
}

/// A bare (PagerDuty-style) event about `source`, with `group` and `custom_details`.
fn bare(lab: &Lab, key: &str, class: &str, source: &str, group: &str, details: &str) -> Event {
    let mut e = Event::new(
        Integration::PagerDuty,
        Action::Trigger,
        "team-a".into(),
        key.into(),
        UnixMillis(lab.now),
    );
    e.source = source.into();
    e.group = (!group.is_empty()).then(|| group.into());
    e.class = Some(class.into());
    e.summary = format!("{class} {key}");
    e.severity = Severity::Critical;
    if !details.is_empty() {
        e.custom_details = Some(crate::event::Details(
            serde_json::value::RawValue::from_string(details.into()).unwrap(),
        ));
    }
    e
}

#[test]
fn a_tool_that_names_a_pod_or_service_as_its_source_joins_that_pod_or_service() {
    let mut lab = Lab::new("");
    lab.at(0).fire(a(
        "p99",
        "HighLatencyP99",
        &[("node", "n1"), ("pod", "search-7f9"), ("service", "search")],
    ));
    // An APM tool's source is the service, another's the pod: other kinds, the same names.
    let apdex = bare(&lab, "apdex", "apdex", "search", "discovery", "");
    lab.shard.apply(apdex, UnixMillis(lab.now), &mut lab.out);
    let errors = bare(&lab, "errors", "apm_error_rate", "search-7f9", "", "");
    lab.shard.apply(errors, UnixMillis(lab.now), &mut lab.out);
    lab.at(100);
    let msgs = lab.take();
    assert_eq!(incidents(&msgs), [["p99", "apdex", "errors"]]);
    let alerts = &msgs.last().unwrap()["alerts"];
    assert_eq!(alerts[1]["grouped_by"], "service=search");
    assert_eq!(alerts[2]["grouped_by"], "pod=search-7f9");
}

#[test]
fn what_a_bare_events_details_name_links_it_like_labels() {
    let mut lab = Lab::new("");
    // The switch names its rack in its details only.
    let switch = bare(
        &lab,
        "tor",
        "switch_down",
        "r1-tor1",
        "dc1-r1",
        r#"{"rack":"r1"}"#,
    );
    lab.at(0);
    lab.shard.apply(switch, UnixMillis(lab.now), &mut lab.out);
    // Prometheus labels the rack: joins by it, and its host leads to the incident from now on.
    lab.at(5).fire(a(
        "osd",
        "CephOSDDown",
        &[("node", "r1-n5"), ("rack", "r1")],
    ));
    // An APM event about a pod on that host says so in its details.
    let apm = bare(
        &lab,
        "apm",
        "apm_error_rate",
        "pay-5d8",
        "",
        r#"{"node":"r1-n5"}"#,
    );
    lab.at(10);
    lab.shard.apply(apm, UnixMillis(lab.now), &mut lab.out);
    // Details that are not an object, or name nothing, link nothing.
    let odd = bare(&lab, "odd", "other", "elsewhere", "", r#""r1""#);
    lab.shard.apply(odd, UnixMillis(lab.now), &mut lab.out);
    lab.at(100);
    let msgs = lab.take();
    assert_eq!(
        incidents(&msgs),
        vec![vec!["tor", "osd", "apm"], vec!["odd"]]
    );
    let alerts = &msgs.iter().find(|m| m["alert_count"] == 3).unwrap()["alerts"];
    assert_eq!(alerts[1]["grouped_by"], "rack=r1");
    assert_eq!(alerts[2]["grouped_by"], "host=r1-n5");
}

#[test]
fn a_storm_member_does_not_extend_the_cascade() {
    let mut lab = Lab::new("");
    lab.at(0).fire(a("n1", "HighLoad", &[("node", "n1")]));
    // The same check on another host folds into the storm...
    lab.at(5).fire(a("n2", "HighLoad", &[("node", "n2")]));
    // ...but that host's other alerts are not drawn in by it.
    lab.at(10).fire(a(
        "pod",
        "KubePodNotReady",
        &[("node", "n2"), ("pod", "api-1")],
    ));
    lab.at(100);
    assert_eq!(incidents(&lab.take()), vec![vec!["n1", "n2"], vec!["pod"]]);
}
