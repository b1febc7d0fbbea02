//! Native integrations end to end: an Alertmanager webhook batch posted over a real socket to
//! the real binary, the incidents read back from a real Kafka-protocol broker (tansu, its own
//! process) by a real consumer.

use serde_json::{json, Value};
use sluice::send::HttpClient;

use crate::harness::{by_incident, post_expect, Broker, Reader, Sluice};

/// Incidents follow Alertmanager's own grouping (`group` = the payload's `groupKey`).
/// Coalesced updates wait an hour, so only the opening and the final resolve publish: the
/// message sequence does not depend on timing.
const CONFIG: &str = r#"
instance = "sluice-e2e"
[kafka]
partitions = 3
[[correlate.rules]]
name = "as-alertmanager-grouped"
group_by = ["group"]
group_wait = "1s"
pause_transient = "0s"
group_interval = "1h"
window_duration = "10m"
"#;

const GROUP_KEY: &str = r#"{}/{team="payments"}:{alertname="HighErrorRate"}"#;

fn alert(status: &str, instance: &str, fingerprint: &str, summary: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": "HighErrorRate", "team": "payments", "severity": "critical",
                   "instance": instance, "job": "api"},
        "annotations": {"summary": summary, "runbook_url": "https://runbooks.example.net/5xx"},
        "startsAt": "2024-05-02T09:10:00.123456789Z",
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2024-05-02T09:20:00Z" },
        "generatorURL": "https://prom.example.net/graph?g0.expr=errors",
        "fingerprint": fingerprint,
    })
}

fn payload(status: &str, alerts: Vec<Value>) -> String {
    json!({
        "version": "4", "groupKey": GROUP_KEY, "truncatedAlerts": 0, "status": status,
        "receiver": "sluice", "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate"}, "commonAnnotations": {},
        "externalURL": "https://am.example.net", "alerts": alerts,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_batch_becomes_one_incident_on_a_real_broker() {
    let broker = Broker::start();
    let sluice = Sluice::start("am-webhook", &broker.bootstrap, CONFIG);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();

    // Two firing alerts and one Alertmanager would never send: the good two are taken.
    let firing = payload(
        "firing",
        vec![
            alert(
                "firing",
                "api-3:9090",
                "3f9c2a71d04be815",
                "5xx ratio 7.2% on api-3",
            ),
            alert(
                "firing",
                "api-1:9090",
                "a81e0c5d7b392f64",
                "5xx ratio 6.0% on api-1",
            ),
            json!({"status": "firing", "labels": ["not", "a", "map"]}),
        ],
    );
    let reply = post_expect(
        &mut client,
        "/integrations/alertmanager_webhook/svc-payments",
        firing,
        200,
    )
    .await;
    assert_eq!(
        reply.json(),
        json!({"status": "success", "message": "2 accepted, 1 rejected", "accepted": 2,
               "rejected": [{"item": "alerts[2]",
                             "errors": ["alertmanager_webhook: 'alerts[2].labels' must be an object"]}]})
    );

    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("the opened message", |seen| !seen.is_empty())
        .await;

    // The group resolves; this sender puts the routing key in the query string.
    let resolved = payload(
        "resolved",
        vec![
            alert(
                "resolved",
                "api-3:9090",
                "3f9c2a71d04be815",
                "5xx ratio 0.2% on api-3",
            ),
            alert(
                "resolved",
                "api-1:9090",
                "a81e0c5d7b392f64",
                "5xx ratio 0.1% on api-1",
            ),
        ],
    );
    post_expect(
        &mut client,
        "/integrations/alertmanager_webhook?routing_key=svc-payments",
        resolved,
        200,
    )
    .await;
    reader
        .until("the resolved message", |seen| seen.len() >= 2)
        .await;

    let incidents = by_incident(&reader.seen);
    assert_eq!(incidents.len(), 1, "{:#?}", reader.seen);
    let msgs = incidents.values().next().unwrap();
    let kinds: Vec<(&str, u64)> = msgs
        .iter()
        .map(|m| {
            (
                m.body["type"].as_str().unwrap(),
                m.body["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("opened", 1), ("resolved", 2)]);

    let opened = &msgs[0].body;
    assert_eq!(opened["routing_key"], "svc-payments");
    assert_eq!(opened["group_key"], json!({"group": GROUP_KEY}));
    assert_eq!(opened["title"], "5xx ratio 7.2% on api-3");
    assert_eq!(opened["severity"], "critical");
    assert_eq!(opened["integrations"], json!(["alertmanager_webhook"]));
    assert_eq!(
        (
            opened["alert_count"].as_u64(),
            opened["open_alert_count"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let mut keys: Vec<&str> = opened["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["integration"], "alertmanager_webhook");
            a["dedup_key"].as_str().unwrap()
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["3f9c2a71d04be815", "a81e0c5d7b392f64"],
        "keys are the fingerprints"
    );
    let resolved = &msgs[1].body;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["open_alert_count"], 0);
    assert_eq!(msgs[0].key, msgs[1].key);

    let metrics = String::from_utf8(client.get("/metrics").await.unwrap().body.to_vec()).unwrap();
    for line in [
        "sluice_events_received_total{integration=\"alertmanager_webhook\"} 4",
        "sluice_events_rejected_total{integration=\"alertmanager_webhook\",reason=\"invalid\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains(
            "sluice_request_duration_seconds_count{integration=\"alertmanager_webhook\"} 2"
        ),
        "{metrics}"
    );
    // Native kinds' series are there from the start; the catalog's 100-odd kinds only once used.
    assert!(
        metrics.contains("sluice_events_received_total{integration=\"pagerduty\"} 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("integration=\"uptimerobot\""),
        "an unused catalog kind has no series: {metrics}"
    );
}

/// Refusals before any parsing, from the real binary: unknown kind, missing routing key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_and_missing_routing_keys_are_refused_by_name() {
    let broker = Broker::start();
    let sluice = Sluice::start("am-refusals", &broker.bootstrap, CONFIG);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    let body = payload("firing", vec![alert("firing", "h:1", "f1", "s")]);

    let reply = client
        .post("/integrations/no_such_tool/rk", body.clone())
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
    let message = reply.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("alertmanager_webhook"), "{message}");

    let reply = client
        .post("/integrations/alertmanager_webhook", body)
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    let message = reply.json()["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("routing key missing"), "{message}");
    assert!(message.contains("X-Routing-Key"), "{message}");
}
