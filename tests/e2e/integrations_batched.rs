//! The batched Prometheus and Grafana formats (and an Opsgenie create) end to end: requests
//! posted over a real socket to the real binary, incidents read back from a real
//! Kafka-protocol broker (tansu) by a real consumer; and a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, installed
//! by `scripts/install-tools.sh`) whose webhook receiver points at sluice.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sluice::send::HttpClient;
use sluice::time::UnixMillis;

use crate::harness::{by_incident, post_expect, Alertmanager, Broker, Reader, Received, Sluice};

/// Coalesced updates wait an hour, so only an incident's opening and its final resolve are
/// published: the message sequence does not depend on timing.
fn config(group_by: &str) -> String {
    format!(
        r#"
instance = "sluice-e2e"
[kafka]
partitions = 3
[[correlate.rules]]
name = "e2e"
group_by = [{group_by}]
group_wait = "1s"
pause_transient = "0s"
group_interval = "1h"
window_duration = "10m"
"#
    )
}

fn now() -> UnixMillis {
    UnixMillis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    )
}

fn at(offset_secs: i64) -> String {
    let t = now().0 as i64 + offset_secs * 1000;
    UnixMillis(t as u64).to_string()
}

/// `(type, seq)` of each message of the one incident seen, and the messages.
fn one_incident(seen: &[Received]) -> (Vec<(String, u64)>, Vec<Value>) {
    let incidents = by_incident(seen);
    assert_eq!(incidents.len(), 1, "{seen:#?}");
    let msgs = incidents.into_values().next().unwrap();
    let kinds = msgs
        .iter()
        .map(|m| {
            (
                m.body["type"].as_str().unwrap().to_string(),
                m.body["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    (kinds, msgs.into_iter().map(|m| m.body).collect())
}

/// The alerts of an incident message as `(dedup_key, integration, status)`, sorted.
fn text<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap()
}

fn alerts(msg: &Value) -> Vec<(&str, &str, &str)> {
    let mut out: Vec<_> = msg["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                text(a, "dedup_key"),
                text(a, "integration"),
                text(a, "status"),
            )
        })
        .collect();
    out.sort();
    out
}

fn disk_alert(instance: &str, starts_at: &str, ends_at: &str) -> Value {
    json!({
        "labels": {"alertname": "DiskWillFillIn4h", "instance": instance, "job": "node",
                   "mountpoint": "/var", "severity": "warning"},
        "annotations": {"summary": format!("/var on {instance} fills in ~3h")},
        "startsAt": starts_at, "endsAt": ends_at,
        "generatorURL": "https://prom.example.net/graph?g0.expr=predict_linear",
    })
}

/// Prometheus' fingerprints of the two disk alerts' labels (computed independently; NODE8's
/// sorts first).
const NODE7: &str = "8f62f289c4bab1db";
const NODE8: &str = "25591ef03c02683a";

/// What Prometheus posts, at the path its `path_prefix` gives: one alert re-sent until an
/// `endsAt` in the past resolves it, one left to expire at its `endsAt`; an item
/// Alertmanager would refuse gets its `400` while the good ones are queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_batch_resolves_by_ends_at_on_a_real_broker() {
    let broker = Broker::start();
    let sluice = Sluice::start(
        "am-api",
        &broker.bootstrap,
        &config(r#""labels.alertname""#),
    );
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    let path = "/integrations/alertmanager_api/svc-storage/api/v2/alerts";
    let started = at(-60);

    let firing = json!([
        disk_alert("node-7:9100", &started, &at(3600)),
        disk_alert("node-8:9100", &started, &at(8)),
        {"labels": {}, "annotations": {"summary": "no labels"}},
    ]);
    let reply = post_expect(&mut client, path, firing.to_string(), 400).await;
    assert_eq!(
        reply.json(),
        json!("alertmanager_api: 2 accepted, 1 rejected: 'alerts[2].labels' has no label pair (at least one label pair required)")
    );

    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("the opened message", |seen| !seen.is_empty())
        .await;

    // Prometheus sends the resolve of node-7 with an endsAt in the past; node-8 is never
    // re-sent and resolves at its endsAt.
    let resolved = json!([disk_alert("node-7:9100", &started, &at(-1))]);
    let reply = post_expect(&mut client, path, resolved.to_string(), 200).await;
    assert!(reply.body.is_empty(), "Alertmanager answers an empty 200");
    reader
        .until("the resolved message", |seen| seen.len() >= 2)
        .await;

    let (kinds, msgs) = one_incident(&reader.seen);
    assert_eq!(
        kinds,
        [("opened".to_string(), 1), ("resolved".to_string(), 2)]
    );
    let opened = &msgs[0];
    assert_eq!(opened["routing_key"], "svc-storage");
    assert_eq!(
        opened["group_key"],
        json!({"labels.alertname": "DiskWillFillIn4h"})
    );
    assert_eq!(opened["title"], "/var on node-7:9100 fills in ~3h");
    assert_eq!(opened["severity"], "warning");
    assert_eq!(opened["status"], "triggered");
    assert_eq!(opened["integrations"], json!(["alertmanager_api"]));
    assert_eq!(
        (
            opened["alert_count"].as_u64(),
            opened["open_alert_count"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(
        alerts(opened),
        [
            (NODE8, "alertmanager_api", "triggered"),
            (NODE7, "alertmanager_api", "triggered"),
        ],
        "keys are Prometheus' fingerprints of the labels"
    );
    let last = &msgs[1];
    assert_eq!(last["status"], "resolved");
    assert_eq!(last["open_alert_count"], 0);
    assert_eq!(
        alerts(last),
        [
            (NODE8, "alertmanager_api", "resolved"),
            (NODE7, "alertmanager_api", "resolved"),
        ]
    );

    let metrics = String::from_utf8(client.get("/metrics").await.unwrap().body.to_vec()).unwrap();
    for line in [
        "sluice_events_received_total{integration=\"alertmanager_api\"} 3",
        "sluice_events_rejected_total{integration=\"alertmanager_api\",reason=\"invalid\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
}

const GRAFANA_GROUP: &str = r#"{}/{}:{alertname="QueueBacklog"}"#;

fn grafana_alert(status: &str, queue: &str, fingerprint: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": "QueueBacklog", "queue": queue, "grafana_folder": "Infra",
                   "severity": "critical"},
        "annotations": {"summary": format!("{queue} backlog above 10k")},
        "startsAt": "2024-05-02T09:20:00Z",
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2024-05-02T09:40:00Z" },
        "generatorURL": "https://grafana.example.net/alerting/grafana/abc123/view",
        "fingerprint": fingerprint, "ruleUID": "abc123", "values": {"B": 12034, "C": 1},
        "valueString": "[ var='B' value=12034 ]",
        "silenceURL": "https://grafana.example.net/alerting/silence/new",
        "dashboardURL": "https://grafana.example.net/d/q1",
        "panelURL": "https://grafana.example.net/d/q1?viewPanel=4", "orgId": 1,
    })
}

fn grafana_payload(status: &str, alerts: Vec<Value>) -> String {
    json!({
        "receiver": "sluice", "status": status, "orgId": 1, "version": "1",
        "state": if status == "firing" { "alerting" } else { "ok" },
        "title": "[FIRING] QueueBacklog", "message": "", "groupKey": GRAFANA_GROUP,
        "truncatedAlerts": 0, "groupLabels": {"alertname": "QueueBacklog"},
        "commonLabels": {"alertname": "QueueBacklog"}, "commonAnnotations": {},
        "externalURL": "https://grafana.example.net/", "alerts": alerts,
    })
    .to_string()
}

/// A Grafana batch: Grafana's fingerprints are the keys, its groupKey the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grafana_batch_becomes_one_incident_on_a_real_broker() {
    let broker = Broker::start();
    let sluice = Sluice::start("grafana", &broker.bootstrap, &config(r#""group""#));
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();

    let firing = grafana_payload(
        "firing",
        vec![
            grafana_alert("firing", "orders", "b07d51c2e8a9f314"),
            grafana_alert("firing", "refunds", "5c1e02a9d7f4b863"),
            json!({"status": "pending", "labels": {"alertname": "QueueBacklog"}, "fingerprint": "x"}),
        ],
    );
    let reply = post_expect(&mut client, "/integrations/grafana/svc-queues", firing, 200).await;
    assert_eq!(
        reply.json(),
        json!({"status": "success", "message": "2 accepted, 1 rejected", "accepted": 2,
               "rejected": [{"item": "alerts[2]",
                             "errors": ["grafana: 'alerts[2].status' must be firing or resolved"]}]})
    );

    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("the opened message", |seen| !seen.is_empty())
        .await;
    let resolved = grafana_payload(
        "resolved",
        vec![
            grafana_alert("resolved", "orders", "b07d51c2e8a9f314"),
            grafana_alert("resolved", "refunds", "5c1e02a9d7f4b863"),
        ],
    );
    post_expect(
        &mut client,
        "/integrations/grafana/svc-queues",
        resolved,
        200,
    )
    .await;
    reader
        .until("the resolved message", |seen| seen.len() >= 2)
        .await;

    let (kinds, msgs) = one_incident(&reader.seen);
    assert_eq!(
        kinds,
        [("opened".to_string(), 1), ("resolved".to_string(), 2)]
    );
    let opened = &msgs[0];
    assert_eq!(opened["routing_key"], "svc-queues");
    assert_eq!(opened["group_key"], json!({"group": GRAFANA_GROUP}));
    assert_eq!(opened["title"], "orders backlog above 10k");
    assert_eq!(opened["severity"], "critical");
    assert_eq!(opened["integrations"], json!(["grafana"]));
    assert_eq!(
        alerts(opened),
        [
            ("5c1e02a9d7f4b863", "grafana", "triggered"),
            ("b07d51c2e8a9f314", "grafana", "triggered"),
        ]
    );
    let last = &msgs[1];
    assert_eq!(last["status"], "resolved");
    assert_eq!(last["open_alert_count"], 0);
    assert_eq!(last["alert_count"], 2);
}

fn queue_alert(queue: &str, starts_at: &str, ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": {"alertname": "QueueBacklog", "queue": queue, "severity": "critical",
                   "team": "payments"},
        "annotations": {"summary": "queue backlog above 10k"},
        "startsAt": starts_at,
        "generatorURL": "https://prom.example.net/graph?g0.expr=backlog",
    });
    if let Some(end) = ends_at {
        a["endsAt"] = json!(end);
    }
    a
}

/// Alerts fired into a real Alertmanager reach Kafka through its webhook receiver, keyed by
/// the fingerprints Alertmanager computed, grouped by its groupKey; their resolve follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_pages_through_sluice() {
    let broker = Broker::start();
    let sluice = Sluice::start("real-am", &broker.bootstrap, &config(r#""group""#));
    let am = Alertmanager::start(&format!(
        "{}/integrations/alertmanager_webhook/svc-am",
        sluice.url
    ))
    .await;
    let mut am_client = HttpClient::connect(&am.url).await.unwrap();

    let started = at(-30);
    let firing = json!([
        queue_alert("orders", &started, None),
        queue_alert("refunds", &started, None),
    ]);
    post_expect(&mut am_client, "/api/v2/alerts", firing.to_string(), 200).await;

    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("the opened message", |seen| !seen.is_empty())
        .await;

    let ended = at(-1);
    let resolved = json!([
        queue_alert("orders", &started, Some(&ended)),
        queue_alert("refunds", &started, Some(&ended)),
    ]);
    post_expect(&mut am_client, "/api/v2/alerts", resolved.to_string(), 200).await;
    reader
        .until("the resolved message", |seen| {
            seen.iter().any(|m| m.body["type"] == "resolved")
        })
        .await;

    let (kinds, msgs) = one_incident(&reader.seen);
    assert_eq!(
        kinds,
        [("opened".to_string(), 1), ("resolved".to_string(), 2)],
        "alertmanager log: {}",
        am.log()
    );
    let opened = &msgs[0];
    assert_eq!(opened["routing_key"], "svc-am");
    assert_eq!(
        opened["group_key"],
        json!({"group": r#"{}:{alertname="QueueBacklog"}"#}),
        "Alertmanager's groupKey for the root route grouped by alertname"
    );
    assert_eq!(opened["title"], "queue backlog above 10k");
    assert_eq!(opened["severity"], "critical");
    assert_eq!(opened["integrations"], json!(["alertmanager_webhook"]));
    // Alertmanager's own fingerprints, equal to sluice's derived key for the same labels (the
    // `alertmanager_api` key), computed independently.
    assert_eq!(
        alerts(opened),
        [
            ("7f89b3d14572737c", "alertmanager_webhook", "triggered"),
            ("c88ef18c92903b12", "alertmanager_webhook", "triggered"),
        ]
    );
    let last = &msgs[1];
    assert_eq!(last["status"], "resolved");
    assert_eq!(last["open_alert_count"], 0);
    assert_eq!(
        alerts(last),
        [
            ("7f89b3d14572737c", "alertmanager_webhook", "resolved"),
            ("c88ef18c92903b12", "alertmanager_webhook", "resolved"),
        ]
    );
}

/// An Opsgenie create through a base URL (`/integrations/opsgenie/<key>` + `/v2/alerts`): the
/// answer Opsgenie clients read, and the alias as the alert's key on Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opsgenie_create_opens_an_incident_keyed_by_alias() {
    let broker = Broker::start();
    let sluice = Sluice::start("opsgenie", &broker.bootstrap, &config(r#""component""#));
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    let create = json!({
        "message": "Kafka consumer lag > 100k on orders-consumer",
        "alias": "kafka-lag/orders-consumer", "priority": "P1", "entity": "orders-consumer",
        "tags": ["kafka"], "details": {"cluster": "kafka-eu1"}, "source": "lag-exporter",
    });
    let reply = post_expect(
        &mut client,
        "/integrations/opsgenie/svc-streaming/v2/alerts",
        create.to_string(),
        202,
    )
    .await;
    let answer = reply.json();
    assert_eq!(answer["result"], "Request will be processed");
    assert_eq!(answer["took"], 0.0);
    assert_eq!(answer["requestId"].as_str().map(str::len), Some(36));

    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("the opened message", |seen| !seen.is_empty())
        .await;
    let (kinds, msgs) = one_incident(&reader.seen);
    assert_eq!(kinds, [("opened".to_string(), 1)]);
    let opened = &msgs[0];
    assert_eq!(opened["routing_key"], "svc-streaming");
    assert_eq!(opened["group_key"], json!({"component": "orders-consumer"}));
    assert_eq!(
        opened["title"],
        "Kafka consumer lag > 100k on orders-consumer"
    );
    assert_eq!(opened["severity"], "critical");
    assert_eq!(
        alerts(opened),
        [("kafka-lag/orders-consumer", "opsgenie", "triggered")]
    );
}
