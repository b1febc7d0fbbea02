//! PagerDuty events posted over a real socket to the real binary, incidents read back from a
//! real Kafka-protocol broker (tansu, its own process) by a real consumer.

use std::time::Duration;

use serde_json::Value;
use sluice::send::HttpClient;

use crate::harness::{by_incident, types, Broker, Reader, Sluice};

/// Coalesced changes wait an hour, so within the test only urgent changes (status moves) and
/// resolves publish: the message sequence does not depend on timing.
const CONFIG: &str = r#"
instance = "sluice-e2e"
[kafka]
partitions = 3
[[correlate.rules]]
name = "by-source"
group_by = ["source"]
group_wait = "1s"
pause_transient = "0s"
group_interval = "1h"
window_duration = "10m"
"#;

async fn post(client: &mut HttpClient, action: &str, key: &str, source: &str) -> Value {
    crate::harness::pd_post(client, action, key, source).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_reach_a_real_broker_in_order() {
    let broker = Broker::start();
    let sluice = Sluice::start("order", &broker.bootstrap, CONFIG);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();

    // Incident A on db-1: two alerts, four events; incident B on web-1: one alert, two events.
    for (key, source) in [
        ("db-1/cpu", "db-1"),
        ("db-1/cpu", "db-1"),
        ("db-1/disk", "db-1"),
        ("db-1/cpu", "db-1"),
        ("web-1/http", "web-1"),
        ("web-1/http", "web-1"),
    ] {
        let reply = post(&mut client, "trigger", key, source).await;
        assert_eq!(
            reply,
            serde_json::json!({"status": "success", "message": "Event processed", "dedup_key": key})
        );
    }
    // Unknown keys are accepted and change nothing.
    post(&mut client, "acknowledge", "never-triggered", "").await;
    post(&mut client, "resolve", "never-triggered", "").await;

    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("two opened messages", |seen| seen.len() >= 2)
        .await;

    post(&mut client, "acknowledge", "db-1/cpu", "").await;
    post(&mut client, "acknowledge", "db-1/disk", "").await; // all of A acknowledged: at once
    post(&mut client, "resolve", "db-1/cpu", "").await;
    post(&mut client, "resolve", "db-1/disk", "").await; // all of A resolved: resolved at once
    post(&mut client, "resolve", "web-1/http", "").await;

    reader.until("five messages", |seen| seen.len() >= 5).await;
    assert_eq!(
        reader.extra_within(Duration::from_secs(2)).await,
        0,
        "nothing beyond the five"
    );

    let incidents = by_incident(&reader.seen);
    assert_eq!(incidents.len(), 2);
    let a = incidents
        .values()
        .find(|m| m[0].body["group_key"]["source"] == "db-1")
        .unwrap();
    let b = incidents
        .values()
        .find(|m| m[0].body["group_key"]["source"] == "web-1")
        .unwrap();

    assert_eq!(
        types(a),
        [
            ("opened".into(), 1),
            ("acknowledged".into(), 2),
            ("resolved".into(), 3)
        ]
    );
    assert_eq!(types(b), [("opened".into(), 1), ("resolved".into(), 2)]);
    let counts = |m: &crate::harness::Received| {
        (
            m.body["alert_count"].as_u64().unwrap(),
            m.body["open_alert_count"].as_u64().unwrap(),
            m.body["event_count"].as_u64().unwrap(),
            m.body["status"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(counts(&a[0]), (2, 2, 4, "triggered".into()));
    assert_eq!(counts(&a[1]), (2, 2, 6, "acknowledged".into()));
    assert_eq!(counts(&a[2]), (2, 0, 8, "resolved".into()));
    assert_eq!(counts(&b[0]), (1, 1, 2, "triggered".into()));
    assert_eq!(counts(&b[1]), (1, 0, 3, "resolved".into()));
    assert_eq!(a[0].body["alerts"][0]["dedup_key"], "db-1/cpu");
    assert_eq!(a[0].body["alerts"][0]["event_count"], 3);
    assert_eq!(a[0].body["title"], "db-1/cpu failing on db-1");
    assert_eq!(a[0].body["severity"], "critical");
    assert_eq!(a[0].body["routing_key"], "svc-payments");

    for m in &reader.seen {
        let id = m.body["incident_id"].as_str().unwrap();
        assert_eq!(m.key, id, "key = incident_id");
        assert!(id.starts_with("inc_"));
        let kind = m.body["type"].as_str().unwrap();
        assert_eq!(m.headers["ce_specversion"], "1.0");
        assert_eq!(m.headers["ce_type"], format!("io.sluice.incident.{kind}"));
        assert_eq!(m.headers["ce_source"], "sluice-e2e");
        assert_eq!(m.headers["ce_id"], format!("{id}.{}", m.body["seq"]));
        assert_eq!(m.headers["ce_subject"], id);
        assert_eq!(m.headers["content-type"], "application/json");
        // The send time, the same in the body and the header.
        let published = m.body["published_at"].as_str().expect("published_at");
        assert_eq!(m.headers["ce_time"], published);
        assert!(published.ends_with('Z') && published >= m.body["updated_at"].as_str().unwrap());
    }
    for msgs in incidents.values() {
        assert!(
            msgs.iter().all(|m| m.partition == msgs[0].partition),
            "one incident, one partition"
        );
    }

    let metrics = String::from_utf8(client.get("/metrics").await.unwrap().body.to_vec()).unwrap();
    for line in [
        "sluice_events_received_total{integration=\"pagerduty\"} 13",
        "sluice_events_deduplicated_total{integration=\"pagerduty\"} 3",
        "sluice_events_dropped_total{reason=\"alert_not_open\"} 2",
        "sluice_incidents_opened_total 2",
        "sluice_incidents_resolved_total 2",
        "sluice_alerts_open 0",
        "sluice_messages_published_total{type=\"opened\"} 2",
        "sluice_messages_published_total{type=\"resolved\"} 2",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_publishes_every_waiting_incident_before_exit() {
    let broker = Broker::start();
    let config = CONFIG.replace("group_wait = \"1s\"", "group_wait = \"1h\"");
    let mut sluice = Sluice::start("sigterm", &broker.bootstrap, &config);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    for i in 0..30 {
        post(
            &mut client,
            "trigger",
            &format!("alert-{}", i % 10),
            &format!("host-{}", i % 10 % 3),
        )
        .await;
    }
    drop(client);
    let status = sluice.terminate();
    assert!(
        status.success(),
        "sluice exited with {status}; log:\n{}",
        sluice.log_text()
    );
    assert!(sluice.log_text().contains("shutdown complete"));

    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("three opened messages", |seen| seen.len() >= 3)
        .await;
    assert_eq!(reader.extra_within(Duration::from_secs(2)).await, 0);
    let mut per_host: Vec<(String, u64, u64)> = reader
        .seen
        .iter()
        .map(|m| {
            assert_eq!(m.body["type"], "opened");
            (
                m.body["group_key"]["source"].as_str().unwrap().to_string(),
                m.body["alert_count"].as_u64().unwrap(),
                m.body["event_count"].as_u64().unwrap(),
            )
        })
        .collect();
    per_host.sort();
    // alert-k lives on host-(k % 3) and fires 3 times: hosts 0, 1, 2 hold 4, 3, 3 alerts.
    assert_eq!(
        per_host,
        [
            ("host-0".into(), 4, 12),
            ("host-1".into(), 3, 9),
            ("host-2".into(), 3, 9)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_events_go_to_their_own_topic() {
    let broker = Broker::start();
    let sluice = Sluice::start("change", &broker.bootstrap, CONFIG);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    let reply = client
        .post(
            "/v2/change/enqueue",
            r#"{"routing_key":"svc-payments","payload":{"summary":"deployed v2.4.1","source":"ci","custom_details":{"sha":"9f2c"}},"links":[{"href":"https://ci.example.net/41"}]}"#,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 202);
    assert_eq!(
        reply.json(),
        serde_json::json!({"status": "success", "message": "Change event processed"})
    );
    let mut changes = Reader::new(&broker.bootstrap, "sluice.changes");
    changes
        .until("the change message", |seen| !seen.is_empty())
        .await;
    let m = &changes.seen[0];
    assert_eq!(m.key, "svc-payments");
    assert_eq!(m.headers["ce_type"], "io.sluice.change");
    assert_eq!(m.body["summary"], "deployed v2.4.1");
    assert_eq!(m.body["custom_details"]["sha"], "9f2c");
    assert_eq!(m.body["links"][0]["href"], "https://ci.example.net/41");
    let mut incidents = Reader::new(&broker.bootstrap, "sluice.incidents");
    assert_eq!(
        incidents.extra_within(Duration::from_secs(3)).await,
        0,
        "change events never open incidents"
    );
}
