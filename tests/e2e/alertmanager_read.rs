//! Alertmanager's read API against the running binary: the real `amtool` (Debian's
//! `prometheus-alertmanager` package) lists sluice's open alerts, filters them, sees a silence
//! it made cover one, and reads the status; the requests Grafana's Alertmanager data source
//! makes (as its documentation and Alertmanager's `openapi.yaml` give them) get
//! Alertmanager's shapes, each answer checked against `openapi.json`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::send::HttpClient;

use crate::harness::{post, Sluice, WAIT};

const CONFIG: &str = r#"
[[correlate.rules]]
group_by = ["source"]
group_wait = "0s"
group_interval = "1s"
pause_transient = "0s"
"#;

fn amtool(url: &str, args: &[&str]) -> (bool, String, String) {
    crate::harness::amtool(url, None, args)
}

/// `amtool alert query -o json` with `args`, until `done` holds for its alerts.
async fn until_query(url: &str, args: &[&str], done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut all = vec!["alert", "query", "-o", "json"];
        all.extend_from_slice(args);
        let (ok, out, err) = amtool(url, &all);
        assert!(ok, "amtool {all:?}: {err}");
        let alerts: Vec<Value> = serde_json::from_str(&out).unwrap_or_default();
        if done(&alerts) {
            return alerts;
        }
        assert!(Instant::now() < deadline, "amtool {all:?}: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs `path`, checking the answer against `openapi.json` (its route: the path alone).
async fn get(url: &str, path: &str) -> (u16, Value) {
    let route = path.split('?').next().unwrap_or(path);
    crate::incidents_api::get(url, route, path).await
}

fn names(alerts: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = alerts
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or("-").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_and_grafana_read_open_alerts_as_from_an_alertmanager() {
    let sluice = Sluice::start("am-read", "embedded", CONFIG);
    // Prometheus posts two alerts of one host; a PagerDuty event of another source.
    let prometheus = json!([
        {"labels": {"alertname": "NodeDown", "instance": "db-1", "job": "node",
                    "severity": "critical"},
         "annotations": {"summary": "db-1 is down", "runbook_url": "https://rb.example/node"}},
        {"labels": {"alertname": "DiskFull", "instance": "db-1", "job": "node",
                    "severity": "critical"},
         "annotations": {"summary": "/var is full on db-1"}}
    ]);
    let (status, body) = post(
        &sluice.url,
        "/api/v2/alerts?routing_key=infra",
        &[],
        prometheus.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pd = sluice::send::pd_event("payments", "trigger", "p-1", "api-7", "error", "5xx");
    assert_eq!(post(&sluice.url, "/v2/enqueue", &[], pd).await.0, 202);

    // NodeDown inhibits the other alerts of its host (symptom inhibition): DiskFull is not
    // active, and shows with --inhibited.
    let alerts = until_query(&sluice.url, &[], |a| a.len() == 2).await;
    assert_eq!(names(&alerts), ["-", "NodeDown"], "{alerts:#?}");
    let node = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "NodeDown")
        .unwrap();
    assert_eq!(node["labels"]["instance"], "db-1");
    assert_eq!(node["labels"]["routing_key"], "infra");
    assert_eq!(
        node["annotations"]["runbook_url"],
        "https://rb.example/node"
    );
    assert_eq!(node["receivers"], json!([{"name": "infra"}]));
    assert_eq!(node["status"]["state"], "active");
    let inhibited = until_query(&sluice.url, &["-i"], |a| a.len() == 1).await;
    assert_eq!(inhibited[0]["labels"]["alertname"], "DiskFull");
    assert_eq!(inhibited[0]["status"]["state"], "suppressed");

    // amtool's own matcher syntax and the receiver regex.
    let (ok, simple, err) = amtool(&sluice.url, &["alert", "query", "NodeDown"]);
    assert!(ok, "{err}");
    assert!(
        simple.contains("NodeDown") && simple.contains("db-1 is down"),
        "{simple}"
    );
    let all_infra = until_query(&sluice.url, &["-a", "-i", "-r", "inf.*"], |a| a.len() == 2).await;
    assert_eq!(names(&all_infra), ["DiskFull", "NodeDown"]);

    // A silence made with amtool covers NodeDown at once: it leaves the active list and shows
    // with --silenced, naming the silence.
    let (ok, id, err) = amtool(
        &sluice.url,
        &[
            "silence",
            "add",
            "alertname=NodeDown",
            "-c",
            "swap",
            "-a",
            "ana",
            "-d",
            "1h",
        ],
    );
    assert!(ok, "{err}");
    let active = until_query(&sluice.url, &[], |a| a.len() == 1).await;
    assert_eq!(names(&active), ["-"]);
    let silenced = until_query(&sluice.url, &["-s"], |a| a.len() == 1).await;
    assert_eq!(silenced[0]["labels"]["alertname"], "NodeDown");
    assert_eq!(silenced[0]["status"]["state"], "suppressed");
    assert_eq!(silenced[0]["status"]["silencedBy"], json!([id]));

    // The status: amtool reads it and shows the config.
    let (ok, config, err) = amtool(&sluice.url, &["config", "show"]);
    assert!(ok, "{err}");
    assert!(
        config.contains("receivers") && config.contains("infra"),
        "{config}"
    );
    let (ok, cluster, err) = amtool(&sluice.url, &["cluster", "show"]);
    assert!(ok, "{err}");
    assert!(cluster.contains("disabled"), "{cluster}");

    // What Grafana's Alertmanager data source asks: its health check, the alert list with its
    // state filters and a matcher, the grouped view, receivers.
    let (status, s) = get(&sluice.url, "/api/v2/status").await;
    assert_eq!(status, 200);
    assert_eq!(s["cluster"]["status"], "disabled");
    assert!(
        s["versionInfo"]["version"].is_string() && s["uptime"].is_string(),
        "{s}"
    );
    let (status, list) = get(
        &sluice.url,
        "/api/v2/alerts?silenced=false&inhibited=false&active=true&filter=instance%3D%22db-1%22",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]), "NodeDown is silenced, DiskFull inhibited");
    let (_, list) = get(&sluice.url, "/api/v2/alerts?filter=instance%3D%22db-1%22").await;
    assert_eq!(names(list.as_array().unwrap()), ["DiskFull", "NodeDown"]);
    let (status, groups) = get(
        &sluice.url,
        "/api/v2/alerts/groups?silenced=true&inhibited=true&active=true",
    )
    .await;
    assert_eq!(status, 200, "{groups}");
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2, "one group per incident: {groups:#?}");
    let infra = groups
        .iter()
        .find(|g| g["receiver"]["name"] == "infra")
        .unwrap();
    assert_eq!(infra["labels"]["source"], "db-1");
    assert!(infra["labels"]["incident_id"]
        .as_str()
        .unwrap()
        .starts_with("inc_"));
    assert_eq!(infra["alerts"].as_array().unwrap().len(), 2);
    let (_, receivers) = get(&sluice.url, "/api/v2/receivers").await;
    assert_eq!(receivers, json!([{"name": "infra"}, {"name": "payments"}]));
    let (status, bad) = get(&sluice.url, "/api/v2/alerts?active=yes").await;
    assert_eq!(status, 400);
    assert!(bad.as_str().unwrap().contains("active"), "{bad}");

    // Posting alerts at the same path is still Prometheus' way in.
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    let put = client
        .request(http::Method::PUT, "/api/v2/alerts", bytes::Bytes::new())
        .await
        .unwrap();
    assert_eq!(put.status.as_u16(), 405);
}
