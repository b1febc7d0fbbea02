//! `sluice replay` on the storm fixture: the exact messages and summary, byte for byte, and the
//! same on every run.

use std::path::Path;
use std::process::Command;

fn replay() -> (String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("replay")
        .arg("--config")
        .arg(dir.join("sluice.toml"))
        .arg(dir.join("storm.jsonl"))
        .env_remove("SLUICE_CONFIG")
        .output()
        .expect("sluice replay runs");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_storm_replays_to_the_expected_incidents_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay");
    let (stdout, stderr) = replay();
    if std::env::var_os("SLUICEDEV_BLESS").is_some() {
        std::fs::write(dir.join("storm.expected.jsonl"), &stdout).unwrap();
        std::fs::write(dir.join("storm.summary.txt"), &stderr).unwrap();
    }
    assert_eq!(
        stdout,
        std::fs::read_to_string(dir.join("storm.expected.jsonl")).unwrap()
    );
    assert_eq!(
        stderr,
        std::fs::read_to_string(dir.join("storm.summary.txt")).unwrap()
    );
    assert_eq!(replay(), (stdout, stderr), "a second run says the same");
}

#[test]
fn out_of_order_lines_are_refused_with_the_line_number() {
    let dir = std::env::temp_dir().join(format!("sluice-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"at":"2026-11-02T09:00:10Z","path":"/v2/enqueue","body":{"routing_key":"r","event_action":"resolve","dedup_key":"k"}}"#,
            "\n",
            r#"{"at":"2026-11-02T09:00:05Z","path":"/v2/enqueue","body":{"routing_key":"r","event_action":"resolve","dedup_key":"k"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sluice.toml"))
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2: 'at' 2026-11-02T09:00:05Z is before the previous line's"),
        "{err}"
    );
}

/// What `serve --record` writes, `replay` reads back: the same incidents come out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_to_the_same_incidents() {
    let dir = std::env::temp_dir().join(format!("sluice-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("traffic.jsonl");
    let toml = "[server]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbrokers = \"embedded\"\npartitions = 1\n[[correlate.rules]]\ngroup_by = [\"source\"]\ngroup_wait = \"0s\"\npause_transient = \"0s\"";
    let config = sluice::config::Config::from_toml(toml, Vec::new()).unwrap();
    let running =
        sluice::app::start_recording(config, sluice::clock::Clock::system(), Some(&recording))
            .await
            .unwrap();
    let mut client = sluice::send::HttpClient::connect(&format!("http://{}", running.addr()))
        .await
        .unwrap();
    for (action, key, source) in [
        ("trigger", "a", "db-1"),
        ("trigger", "b", "db-2"),
        ("trigger", "a", "db-1"),
        ("resolve", "a", ""),
    ] {
        let body = sluice::send::pd_event("svc", action, key, source, "error", "disk");
        assert_eq!(client.post("/v2/enqueue", body).await.unwrap().status, 202);
    }
    assert_eq!(
        client.post("/v2/enqueue", "not json").await.unwrap().status,
        400
    );
    let mut reader = crate::harness::Reader::new(running.bootstrap_servers(), "sluice.incidents");
    reader.until("live incidents", |seen| seen.len() >= 3).await;
    running.shutdown();
    running.wait().await;

    let text = std::fs::read_to_string(&recording).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap()
            .contains(r#""body_b64":"bm90IGpzb24=""#),
        "non-JSON bodies are kept as base64: {text}"
    );
    let cfg = dir.join("replay.toml");
    std::fs::write(
        &cfg,
        "[[correlate.rules]]\ngroup_by = [\"source\"]\ngroup_wait = \"0s\"\npause_transient = \"0s\"",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(&recording)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shape = |m: &serde_json::Value| {
        (
            m["type"].clone(),
            m["group_key"].clone(),
            m["event_count"].clone(),
            m["incident_id"].clone(),
        )
    };
    let live: Vec<_> = reader.seen.iter().map(|r| shape(&r.body)).collect();
    let again: Vec<_> = replayed.iter().map(shape).collect();
    assert_eq!(again.len(), 3);
    for m in &again {
        assert!(
            live.iter().any(|l| l.0 == m.0 && l.1 == m.1 && l.2 == m.2),
            "{m:?} not among {live:?}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("requests: 5 (1 rejected)"));
}

/// A dump of Kafka mode's events topic (event wire format) replays as it is: the alert opens,
/// a watermark moves time past `group_wait`, and the resolve closes the same incident.
#[test]
fn a_dump_of_the_events_topic_replays() {
    use sluice::event::wire::{encode_event, encode_watermark};
    use sluice::event::{Action, Event, Severity};
    use sluice::integration::Integration;
    use sluice::time::UnixMillis;

    let dir = std::env::temp_dir().join(format!("sluice-wire-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = 1_796_000_000_000;
    let event = |action, at: u64| {
        let mut e = Event::new(
            Integration::PagerDuty,
            action,
            "payments".into(),
            "db-1/disk".into(),
            UnixMillis(at),
        );
        e.severity = Severity::Critical;
        e.summary = "disk full on db-1".into();
        e.source = "db-1".into();
        e
    };
    let mut dump = Vec::new();
    encode_event(&event(Action::Trigger, t0), &mut dump);
    dump.push(b'\n');
    encode_watermark(UnixMillis(t0 + 31_000), Some("0123456789abcdef"), &mut dump);
    dump.push(b'\n');
    encode_event(&event(Action::Resolve, t0 + 60_000), &mut dump);
    dump.push(b'\n');
    let path = dir.join("events.jsonl");
    std::fs::write(&path, &dump).unwrap();
    let cfg = dir.join("replay.toml");
    std::fs::write(&cfg, "[[correlate.rules]]\ngroup_by = [\"source\"]").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let messages: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, u64)> = messages
        .iter()
        .map(|m| (m["type"].as_str().unwrap(), m["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, [("opened", 1), ("resolved", 2)], "{messages:#?}");
    assert_eq!(messages[0]["incident_id"], messages[1]["incident_id"]);
    assert!(stderr.contains("events-topic records: 3"), "{stderr}");
}

/// `--compare`: the fixture's rules against the defaults (an empty config), side by side.
#[test]
fn compare_prints_both_noise_reports_and_the_incidents_that_differ() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay");
    let empty = std::env::temp_dir().join(format!("sluice-compare-{}.toml", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("replay")
        .arg("--compare")
        .arg(dir.join("sluice.toml"))
        .arg(&empty)
        .arg(dir.join("storm.jsonl"))
        .env_remove("SLUICE_CONFIG")
        .output()
        .expect("sluice replay runs");
    let _ = std::fs::remove_file(&empty);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name:?} in\n{text}"));
        line[name.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // A's figures are the summary's (storm.summary.txt); B's come from the defaults.
    assert_eq!(row("incidents published")[0], "6");
    assert_eq!(row("suppressed: inhibit")[0], "32");
    // The fixture drops canary events by an event rule; the defaults keep them.
    assert_eq!(row("events"), ["143", "153"]);
    assert_eq!(
        row("auto grouping joins")[0],
        "0",
        "the fixture's rules group by fields"
    );
    assert_ne!(row("auto grouping joins")[1], "0", "{text}");
    assert!(text.contains("largest incidents, A:\n      13 alerts  Cluster db-eu1 down"));
    assert!(text.contains("incidents only A has (by alert set):"));
    assert!(text.contains("incidents only B has (by alert set):"));
}
