//! Dead man's switches through the real binary: a heartbeat that gets no beat opens an
//! incident under its routing key, a beat at `POST /heartbeat/<name>` resolves it; a
//! Prometheus `Watchdog` alert is a beat and never an incident; a beat for no configured
//! heartbeat is dropped and counted; a missed heartbeat stays missed across a restart (state
//! directory) and its next beat resolves the incident opened before. And sluice's own liveness
//! record on the incidents topic.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::send::HttpClient;

use crate::harness::{metric, post, Sluice, TempDir, WAIT};

const CONFIG: &str = r#"
[[correlate.rules]]
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"

[[heartbeats]]
name = "nightly-backup"
routing_key = "infra"
interval = "2s"

[[heartbeats]]
name = "prometheus"
routing_key = "infra"
interval = "1h"
events = [{ name = "class", op = "=", value = "Watchdog" }]
consume = true
"#;

/// The incidents of `infra` with `status` once there are `total` of them.
async fn until_infra(url: &str, status: &str, total: u64) -> Value {
    let deadline = Instant::now() + WAIT;
    let path = format!("/api/v1/incidents?routing_key=infra&status={status}");
    loop {
        let mut client = HttpClient::connect(url).await.unwrap();
        let page = client.get(&path).await.unwrap().json();
        if page["total"] == total {
            return page;
        }
        assert!(Instant::now() < deadline, "{path}: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn beat(url: &str, name: &str) {
    let path = format!("/heartbeat/{name}?routing_key=infra");
    let (status, body) = post(url, &path, &[], "").await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_heartbeat_pages_until_beats_return_even_across_a_restart() {
    let dir = TempDir::new("heartbeats");
    let env = [("SLUICE_STATE_DIR", dir.0.to_str().unwrap())];
    let mut first = Sluice::start_with_env("heartbeats-1", "embedded", CONFIG, &env);
    beat(&first.url, "nightly-backup").await;
    // The Watchdog, as Prometheus posts it: a beat of "prometheus", never an incident.
    let watchdog = json!([{"labels": {"alertname": "Watchdog", "severity": "none"},
                           "annotations": {"summary": "the alerting pipeline works"}}]);
    let (status, _) = post(
        &first.url,
        "/api/v2/alerts?routing_key=infra",
        &[],
        watchdog.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    beat(&first.url, "no-such-heartbeat").await;

    // Two seconds without a beat: the incident opens.
    let page = until_infra(&first.url, "triggered", 1).await;
    let incident = &page["incidents"][0];
    assert_eq!(incident["title"], "no heartbeat from nightly-backup for 2s");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(
        metric(
            &first.url,
            "sluice_heartbeats_missed_total{heartbeat=\"nightly-backup\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &first.url,
            "sluice_events_dropped_total{reason=\"unknown_heartbeat\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &first.url,
            "sluice_heartbeats_missed_total{heartbeat=\"prometheus\"}"
        )
        .await,
        0.0,
        "the Watchdog beat"
    );

    // A restart: the heartbeat is still missed; its next beat resolves what opened before.
    assert!(first.terminate().success());
    let second = Sluice::start_with_env("heartbeats-2", "embedded", CONFIG, &env);
    beat(&second.url, "nightly-backup").await;
    let page = until_infra(&second.url, "resolved", 1).await;
    assert_eq!(page["incidents"][0]["incident_id"], incident["incident_id"]);
    // Nothing of the Watchdog ever became an incident.
    let mut client = HttpClient::connect(&second.url).await.unwrap();
    let all = client
        .get("/api/v1/incidents?routing_key=infra&status=triggered,acknowledged,resolved")
        .await
        .unwrap()
        .json();
    assert_eq!(all["total"], 1, "{all}");
}

/// sluice's own liveness record: every `kafka.liveness_interval` on the incidents topic (tansu),
/// checked against `schemas/sluice.liveness.v1.json` as it is read; the last one of a SIGTERM
/// says `stopping`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_writes_a_liveness_record_and_a_last_one_when_it_stops() {
    use crate::harness::{Broker, Reader};
    let broker = Broker::start();
    let config = "instance = \"live-a\"\n[kafka]\nliveness_interval = \"1s\"\n";
    let mut sluice = Sluice::start("liveness", &broker.bootstrap, config);
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    // One at the start, then one a second.
    reader.extra_within(Duration::from_millis(2500)).await;
    assert!(reader.liveness.len() >= 2, "{:#?}", reader.liveness);
    let first = &reader.liveness[0];
    assert_eq!(first.key, "liveness:live-a");
    assert_eq!(first.headers["ce_type"], "io.sluice.liveness");
    assert_eq!(first.body["state"], "running");
    assert_eq!(first.body["roles"], json!(["ingest", "correlate"]));
    assert!(reader.seen.is_empty(), "no incident: {:#?}", reader.seen);
    assert!(sluice.terminate().success());
    reader.extra_within(Duration::from_secs(2)).await;
    let last = reader.liveness.last().unwrap();
    assert_eq!(last.body["state"], "stopping", "{:#?}", reader.liveness);
}

/// A heartbeat nobody ever beats (a mistyped URL from day one) is missed one interval after
/// the start, with no event at all reaching sluice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_never_beaten_is_missed_without_any_event() {
    let config = "[[correlate.rules]]\ngroup_wait = \"0s\"\npause_transient = \"0s\"\n\
                  [[heartbeats]]\nname = \"cron\"\nrouting_key = \"infra\"\ninterval = \"1s\"\n";
    let sluice = Sluice::start("heartbeats-never", "embedded", config);
    let page = until_infra(&sluice.url, "triggered", 1).await;
    assert_eq!(
        page["incidents"][0]["title"],
        "no heartbeat from cron for 1s"
    );
}

/// The other ways to beat: the routing key in the path before the heartbeat path (a sender
/// configured with a base URL), and the name in the query of the generic path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_are_taken_at_every_path_the_integration_serves() {
    let config = "[[heartbeats]]\nname = \"a\"\nrouting_key = \"infra\"\ninterval = \"1h\"\n\
                  [[heartbeats]]\nname = \"b\"\nrouting_key = \"infra\"\ninterval = \"1h\"\n";
    let sluice = Sluice::start("heartbeats-paths", "embedded", config);
    for path in [
        "/integrations/heartbeat/infra/heartbeat/a",
        "/integrations/heartbeat/infra?name=b",
    ] {
        let (status, body) = post(&sluice.url, path, &[], "").await;
        assert_eq!(status, 202, "{path}: {body}");
    }
    let (status, body) = post(&sluice.url, "/integrations/heartbeat/infra", &[], "").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("'name' is missing"),
        "{body}"
    );
    let received = "sluice_events_received_total{integration=\"heartbeat\"}";
    assert_eq!(metric(&sluice.url, received).await, 2.0);
    // A beat for no configured name, after them in the same shard's queue: once it is
    // counted, a and b were taken before it, and were not counted.
    let (status, _) = post(&sluice.url, "/heartbeat/c?routing_key=infra", &[], "").await;
    assert_eq!(status, 202);
    let unknown = "sluice_events_dropped_total{reason=\"unknown_heartbeat\"}";
    crate::harness::wait_for_metric(&sluice.url, unknown, 1.0, WAIT).await;
    assert_eq!(
        metric(&sluice.url, unknown).await,
        1.0,
        "a and b are configured"
    );
}
