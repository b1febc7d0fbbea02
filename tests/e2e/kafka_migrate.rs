//! `sluice migrate`: Kafka mode moved to another partition count, keeping every open alert
//! and incident, against a real broker (tansu) and real sluice processes.

use std::process::Command;
use std::time::Duration;

use sluice::send::HttpClient;

use crate::harness::{
    by_incident, metric, pd_post_to, types, wait_for_metric, Broker, Reader, Sluice, TempDir,
};

/// Kafka mode's test config (`kafka_mode::CONFIG`) with its partitions, topics and group, and
/// frequent snapshots.
fn config(partitions: u32, suffix: &str) -> String {
    let pipeline = format!(
        "[pipeline]\npartitions = {partitions}\nevents_topic = \"sluice.events{suffix}\"\n\
         state_topic = \"sluice.state{suffix}\"\ngroup_id = \"sluice-correlators{suffix}\"\n\
         snapshot_interval = \"300ms\"\n"
    );
    let config = crate::kafka_mode::CONFIG.replace("[pipeline]\npartitions = 4\n", &pipeline);
    assert_ne!(config, crate::kafka_mode::CONFIG);
    config
}

const KAFKA: [(&str, &str); 1] = [("SLUICE_PIPELINE", "kafka")];

/// Posts one PagerDuty event for `routing_key` and checks the 202.
async fn post(url: &str, routing_key: &str, action: &str, key: &str, source: &str) {
    let mut client = HttpClient::connect(url).await.unwrap();
    pd_post_to(&mut client, routing_key, action, key, source).await;
}

/// Runs `sluice migrate --from old --to new` against `brokers`; its exit success and stderr.
fn migrate(dir: &TempDir, brokers: &str, old: &str, new: &str) -> (bool, String) {
    let (from, to) = (dir.0.join("old.toml"), dir.0.join("new.toml"));
    std::fs::write(&from, old).unwrap();
    std::fs::write(&to, new).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["migrate", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&to)
        .env("SLUICE_KAFKA_BROKERS", brokers)
        .env("SLUICE_PIPELINE", "kafka")
        .output()
        .expect("sluice migrate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Eight routing keys' incidents are open on 2 partitions (some partitions snapshotted, one
/// more alert after the snapshots); the instance stops, an ingest-only instance of the new
/// config takes an alert for one of them, `sluice migrate` moves the state to 5 partitions of
/// new topics, and an instance of the new config continues every incident: the waiting alert
/// and one more join theirs, and bare resolves (routing key and dedup key only) close them all, each
/// incident opened once (seq 1) and resolved with the next seq (2), the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_to_more_partitions_keeps_every_open_incident() {
    let broker = Broker::start();
    let (old, new) = (config(2, ""), config(5, ".p5"));
    let keys: Vec<String> = (0..8).map(|i| format!("team-{i}")).collect();
    let mut first = Sluice::start_with_env("migrate-old", &broker.bootstrap, &old, &KAFKA);
    for rk in &keys {
        post(
            &first.url,
            rk,
            "trigger",
            &format!("{rk}/disk"),
            &format!("{rk}-db"),
        )
        .await;
    }
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader.until("eight opened", |seen| seen.len() >= 8).await;
    wait_for_metric(
        &first.url,
        "sluice_snapshots_written_total",
        2.0,
        Duration::from_secs(20),
    )
    .await;
    // After the snapshots: a second alert joins team-0's incident.
    post(&first.url, "team-0", "trigger", "team-0/cpu", "team-0-db").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(first.terminate().success(), "{}", first.log_text());
    // Ingest of the new config takes events before the migration: they wait on the new topic
    // (an alert joining team-2's incident).
    let ingest = Sluice::start_with_env(
        "migrate-new-ingest",
        &broker.bootstrap,
        &new,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "ingest")],
    );
    post(&ingest.url, "team-2", "trigger", "team-2/cpu", "team-2-db").await;

    let dir = TempDir::new("migrate");
    let (ok, report) = migrate(&dir, &broker.bootstrap, &old, &new);
    assert!(ok, "{report}");
    assert!(report.contains("new partition 4:"), "{report}");
    let alerts: usize = report
        .lines()
        .filter(|l| l.starts_with("new partition"))
        .filter_map(|l| {
            l.split(": ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(alerts, 9, "{report}");
    // Done once: a second run refuses, changing nothing.
    let (again, refusal) = migrate(&dir, &broker.bootstrap, &old, &new);
    assert!(!again, "{refusal}");
    assert!(
        refusal.contains("already has committed offsets"),
        "{refusal}"
    );

    let second = Sluice::start_with_env("migrate-new", &broker.bootstrap, &new, &KAFKA);
    post(&second.url, "team-1", "trigger", "team-1/cpu", "team-1-db").await;
    for rk in &keys {
        post(&second.url, rk, "resolve", &format!("{rk}/disk"), "").await;
    }
    for rk in ["team-0", "team-1", "team-2"] {
        post(&second.url, rk, "resolve", &format!("{rk}/cpu"), "").await;
    }
    reader
        .until("eight resolved", |seen| {
            seen.iter().filter(|m| m.body["type"] == "resolved").count() >= 8
        })
        .await;
    reader.extra_within(Duration::from_secs(2)).await;
    let incidents = by_incident(&reader.seen);
    assert_eq!(incidents.len(), 8, "{:#?}", reader.seen);
    for (id, msgs) in &incidents {
        let mut kinds = types(msgs);
        kinds.dedup();
        assert_eq!(
            kinds,
            [("opened".to_string(), 1), ("resolved".to_string(), 2)],
            "{id}: {msgs:#?}"
        );
        let resolved = msgs.iter().find(|m| m.body["type"] == "resolved").unwrap();
        let rk = msgs[0].body["routing_key"].as_str().unwrap_or_default();
        let alerts = if ["team-0", "team-1", "team-2"].contains(&rk) {
            2
        } else {
            1
        };
        assert_eq!(
            resolved.body["alert_count"], alerts,
            "{rk}: {:#?}",
            resolved.body
        );
    }
    assert!(
        metric(&second.url, "sluice_restores_total{source=\"snapshot\"}").await >= 5.0,
        "{}",
        second.log_text()
    );
}

/// Events accepted but not yet correlated (an ingest-only instance wrote them, no correlator
/// ran) make `sluice migrate` refuse, naming the partition; so does a correlator of the old
/// configuration still running; configs that share their topics are refused before anything
/// is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_refuses_while_accepted_events_wait_for_a_correlator() {
    let broker = Broker::start();
    let (old, new) = (config(2, ""), config(3, ".p3"));
    let ingest = Sluice::start_with_env(
        "migrate-ingest",
        &broker.bootstrap,
        &old,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "ingest")],
    );
    post(&ingest.url, "team-9", "trigger", "team-9/disk", "db").await;

    let dir = TempDir::new("migrate-refused");
    let (ok, report) = migrate(&dir, &broker.bootstrap, &old, &new);
    assert!(!ok, "{report}");
    assert!(report.contains("accepted but not correlated"), "{report}");
    assert!(report.contains("1 event record(s)"), "{report}");

    // A correlator of the old configuration runs: refused too.
    let correlator = Sluice::start_with_env(
        "migrate-correlate",
        &broker.bootstrap,
        &old,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "correlate")],
    );
    wait_for_metric(
        &correlator.url,
        "sluice_partitions_owned",
        2.0,
        Duration::from_secs(30),
    )
    .await;
    let (ok, report) = migrate(&dir, &broker.bootstrap, &old, &new);
    assert!(!ok, "{report}");
    assert!(
        report.contains("gave the migration 1 of its 2 partitions"),
        "{report}"
    );

    let (ok, report) = migrate(&dir, &broker.bootstrap, &old, &config(3, ""));
    assert!(!ok, "{report}");
    assert!(
        report.contains("pipeline.events_topic is sluice.events in both configs"),
        "{report}"
    );
}
