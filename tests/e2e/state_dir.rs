//! Memory mode keeps its state across a planned restart (`pipeline.state_dir`,
//! `SLUICE_STATE_DIR`): the real binary publishing to tansu is stopped with SIGTERM mid-storm
//! and started again on the same directory. Incidents opened before close with resolves sent
//! after, with the next seq; an incident still inside its `group_wait` at SIGTERM is not
//! published early but after the restart, once; a silence survives; an unreadable state file
//! stops the start naming it.

use std::time::Duration;

use serde_json::json;
use sluice::send::pd_event;

use crate::harness::{by_incident, from_now, post, Broker, Reader, Sluice, TempDir};

const CONFIG: &str = r#"
[[correlate.rules]]
name = "held"
matchers = [{ name = "routing_key", op = "=", value = "held" }]
group_by = ["source"]
group_wait = "4s"
pause_transient = "0s"

[[correlate.rules]]
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"
"#;

async fn send(url: &str, key: &str, action: &str, dedup: &str, source: &str) {
    let body = pd_event(key, action, dedup, source, "critical", "disk full");
    let (status, answer) = post(url, "/v2/enqueue", &[], body).await;
    assert_eq!(status, 202, "{answer}");
}

fn start(broker: &Broker, dir: &TempDir, tag: &str) -> Sluice {
    let env = [("SLUICE_STATE_DIR", dir.0.to_str().unwrap())];
    Sluice::start_with_env(tag, &broker.bootstrap, CONFIG, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_restart_keeps_open_incidents_pending_timers_and_silences() {
    let broker = Broker::start();
    let dir = TempDir::new("state-dir");
    let mut first = start(&broker, &dir, "state-dir-1");
    for i in 0..5 {
        send(
            &first.url,
            "payments",
            "trigger",
            &format!("p{i}"),
            &format!("db-{i}"),
        )
        .await;
    }
    // A silence, and an incident inside its 4 s group_wait when SIGTERM comes.
    let silence = json!({"matchers": [{"name": "source", "op": "=", "value": "db-9"}],
        "ends_at": from_now(Duration::from_secs(3600)), "created_by": "ops", "comment": "swap"});
    let (status, created) = post(&first.url, "/api/v1/silences", &[], silence.to_string()).await;
    assert_eq!(status, 201, "{created}");
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader.until("5 opened", |seen| seen.len() >= 5).await;
    send(&first.url, "held", "trigger", "h0", "web-1").await;
    assert!(first.terminate().success());
    reader.extra_within(Duration::from_millis(500)).await;
    assert_eq!(
        reader.seen.len(),
        5,
        "the held incident was published at SIGTERM"
    );
    let files: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f.starts_with("shard-")), "{files:?}");
    assert!(files.contains(&"silences.jsonl".to_string()), "{files:?}");

    let second = start(&broker, &dir, "state-dir-2");
    assert!(
        second.log_text().contains("state restored"),
        "{}",
        second.log_text()
    );
    // The held incident comes out once its group_wait has passed, after the restart.
    reader
        .until("the held incident", |seen| {
            seen.iter().any(|m| m.body["routing_key"] == "held")
        })
        .await;
    // The incidents view knows the restored incidents before their next message (it reads
    // the topic), so the API can act on them.
    let mut client = sluice::send::HttpClient::connect(&second.url)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + crate::harness::WAIT;
    loop {
        let page = client
            .get("/api/v1/incidents?routing_key=payments")
            .await
            .unwrap()
            .json();
        if page["total"] == 5 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Resolves sent now close the incidents opened before the restart, with the next seq.
    for i in 0..5 {
        send(
            &second.url,
            "payments",
            "resolve",
            &format!("p{i}"),
            &format!("db-{i}"),
        )
        .await;
    }
    reader
        .until("5 resolved", |seen| {
            seen.iter().filter(|m| m.body["type"] == "resolved").count() >= 5
        })
        .await;
    reader.extra_within(Duration::from_millis(500)).await;
    for (id, msgs) in by_incident(&reader.seen) {
        let kinds: Vec<(String, u64)> = msgs
            .iter()
            .map(|m| {
                (
                    m.body["type"].as_str().unwrap().to_string(),
                    m.body["seq"].as_u64().unwrap(),
                )
            })
            .collect();
        match msgs[0].body["routing_key"].as_str().unwrap() {
            "payments" => assert_eq!(
                kinds,
                [("opened".to_string(), 1), ("resolved".to_string(), 2)],
                "{id}"
            ),
            _ => assert_eq!(kinds, [("opened".to_string(), 1)], "{id}: published once"),
        }
    }
    // The silence came back.
    let mut client = sluice::send::HttpClient::connect(&second.url)
        .await
        .unwrap();
    let listed = client.get("/api/v1/silences").await.unwrap().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["comment"], "swap");
}

#[test]
fn an_unreadable_state_file_stops_the_start_naming_it() {
    let dir = TempDir::new("state-dir-bad");
    std::fs::write(dir.0.join("shard-0-of-1.json"), "{not json").unwrap();
    let config = dir.0.join("sluice.toml");
    std::fs::write(&config, "[correlate]\nshards = 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("SLUICE_STATE_DIR", &dir.0)
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shard-0-of-1.json") && err.contains("move the file away"),
        "{err}"
    );
}
