//! Kafka mode (`SLUICE_PIPELINE=kafka`) against a real broker (tansu, its own process) and
//! several real sluice processes: the events topic is the pipeline, correlators are a consumer
//! group, and a partition's state is restored from the topic, so an instance can die.

use std::time::Duration;

use serde_json::Value;
use sluice::send::{pd_event, HttpClient};

use crate::harness::{
    by_incident, metric, pd_post, reload, types, wait_for_metric, Broker, Reader, Sluice,
};

pub(crate) const CONFIG: &str = r#"
instance = "sluice-e2e-kafka"
[kafka]
partitions = 3
[pipeline]
partitions = 4
commit_interval = "200ms"
watermark_interval = "200ms"
session_timeout = "6s"
[[correlate.rules]]
name = "by-source"
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"
group_interval = "1h"
window_duration = "10m"
"#;

/// Checks that `seen` holds `n` incidents, each `opened` (seq 1) then `resolved` (seq 2), a
/// message repeated after a crash counted once (at-least-once: the same id, seq and body).
fn opened_then_resolved(
    seen: &[crate::harness::Received],
    n: usize,
) -> std::collections::BTreeMap<String, Vec<crate::harness::Received>> {
    let incidents = by_incident(seen);
    assert_eq!(incidents.len(), n, "{seen:#?}");
    for (id, msgs) in &incidents {
        let mut kinds = types(msgs);
        kinds.dedup();
        assert_eq!(
            kinds,
            [("opened".to_string(), 1), ("resolved".to_string(), 2)],
            "{id}: {msgs:#?}"
        );
    }
    incidents
}

async fn send(url: &str, action: &str, key: &str, source: &str) -> Value {
    let mut client = HttpClient::connect(url).await.unwrap();
    pd_post(&mut client, action, key, source).await
}

/// The one instance is SIGKILLed after opening two incidents; a new instance restores the
/// partitions from the events topic, so the resolves sent to it close those same incidents
/// (same ids, next seq), and nothing is opened twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_after_a_crash_closes_the_incident_opened_before() {
    let broker = Broker::start();
    let env = [("SLUICE_PIPELINE", "kafka")];
    let mut first = Sluice::start_with_env("kafka-crash-1", &broker.bootstrap, CONFIG, &env);
    send(&first.url, "trigger", "db-1/disk", "db-1").await;
    send(&first.url, "trigger", "web-1/http", "web-1").await;
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader.until("two opened", |seen| seen.len() >= 2).await;
    // Let a commit happen after the opened messages were delivered, then crash.
    tokio::time::sleep(Duration::from_millis(800)).await;
    first.kill();

    let second = Sluice::start_with_env("kafka-crash-2", &broker.bootstrap, CONFIG, &env);
    // The group waits for the dead member's session to end before it assigns anything: until
    // then the new instance owns nothing and says it is not ready.
    let mut client = HttpClient::connect(&second.url).await.unwrap();
    let ready = client.get("/readyz").await.unwrap();
    assert_eq!(ready.status, 503);
    assert!(
        String::from_utf8_lossy(&ready.body).contains("joining the correlators' group"),
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    send(&second.url, "resolve", "db-1/disk", "").await;
    send(&second.url, "resolve", "web-1/http", "").await;
    reader
        .until("both resolved", |seen| {
            seen.iter().filter(|m| m.body["type"] == "resolved").count() >= 2
        })
        .await;
    reader.extra_within(Duration::from_secs(2)).await;

    opened_then_resolved(&reader.seen, 2);
    let mut client = HttpClient::connect(&second.url).await.unwrap();
    let ready = client.get("/readyz").await.unwrap();
    assert_eq!(ready.status, 200, "{}", second.log_text());
    assert!(
        second.log_text().contains("partition restored"),
        "{}",
        second.log_text()
    );
}

/// An ingest-only instance and a correlate-only instance: the first answers 202 once the
/// events topic has the event, the second turns it into the incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_correlation_run_in_separate_processes() {
    let broker = Broker::start();
    // The ingest instance runs other rules: the correlator says so (watermarks carry them).
    let other_rules = CONFIG.replace("group_interval = \"1h\"", "group_interval = \"2h\"");
    let ingest = Sluice::start_with_env(
        "kafka-ingest",
        &broker.bootstrap,
        &other_rules,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "ingest")],
    );
    let correlator = Sluice::start_with_env(
        "kafka-correlate",
        &broker.bootstrap,
        CONFIG,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "correlate")],
    );
    send(&ingest.url, "trigger", "db-2/cpu", "db-2").await;
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader.until("opened", |seen| !seen.is_empty()).await;
    assert_eq!(reader.seen[0].body["type"], "opened");
    assert_eq!(reader.seen[0].body["group_key"]["source"], "db-2");

    // The correlate-only instance refuses ingest with 503, so a load balancer moves on.
    let mut client = HttpClient::connect(&correlator.url).await.unwrap();
    let body = pd_event("svc", "trigger", "k", "s", "critical", "x");
    let reply = client.post("/v2/enqueue", body).await.unwrap();
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(ingest.log_text().contains("ingest=true correlate=false"));
    assert!(metric(&ingest.url, "sluice_event_delivery_duration_seconds_count").await >= 1.0);
    assert!(
        correlator.log_text().contains("RULES DIFFER"),
        "{}",
        correlator.log_text()
    );
}

/// The embedded default broker runs Kafka mode too, so a newcomer can try it on one machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_runs_kafka_mode() {
    let config = crate::harness::embedded_config(
        "[pipeline]\nmode = \"kafka\"\npartitions = 2\n[[correlate.rules]]\ngroup_by = [\"source\"]\ngroup_wait = \"0s\"\npause_transient = \"0s\"",
    );
    let (running, _client) = crate::harness::in_process(config).await;
    let url = format!("http://{}", running.addr());
    send(&url, "trigger", "db-3/disk", "db-3").await;
    let mut reader = Reader::new(running.bootstrap_servers(), "sluice.incidents");
    reader.until("opened", |seen| !seen.is_empty()).await;
    assert_eq!(reader.seen[0].body["type"], "opened");
    assert_eq!(reader.seen[0].body["group_key"]["source"], "db-3");
    running.shutdown();
    assert!(running.wait().await.clean());
}

/// A partition is restored from its last snapshot plus the events after it: the instance
/// snapshots every partition that took records, then takes one more event (after the
/// snapshot), and is SIGKILLed; the next instance restores from the snapshots (counted by
/// source) and the resolves close the same incidents with the next seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_from_the_last_snapshot_and_the_events_after_it() {
    let broker = Broker::start();
    let env = [("SLUICE_PIPELINE", "kafka")];
    let config = CONFIG.replace(
        "session_timeout = \"6s\"",
        "session_timeout = \"6s\"\nsnapshot_interval = \"300ms\"",
    );
    let mut first = Sluice::start_with_env("kafka-snap-1", &broker.bootstrap, &config, &env);
    send(&first.url, "trigger", "db-4/disk", "db-4").await;
    send(&first.url, "trigger", "web-4/http", "web-4").await;
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader.until("two opened", |seen| seen.len() >= 2).await;
    // Every partition takes watermarks, so each is snapshotted in turn: wait for all four.
    wait_for_metric(
        &first.url,
        "sluice_snapshots_written_total",
        4.0,
        Duration::from_secs(20),
    )
    .await;
    // After the snapshots: a second alert joins db-4's incident (held by group_interval).
    send(&first.url, "trigger", "db-4/cpu", "db-4").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    first.kill();

    let second = Sluice::start_with_env("kafka-snap-2", &broker.bootstrap, &config, &env);
    for key in ["db-4/disk", "db-4/cpu", "web-4/http"] {
        send(&second.url, "resolve", key, "").await;
    }
    reader
        .until("both resolved", |seen| {
            seen.iter().filter(|m| m.body["type"] == "resolved").count() >= 2
        })
        .await;
    reader.extra_within(Duration::from_secs(2)).await;
    assert!(
        metric(&second.url, "sluice_restores_total{source=\"snapshot\"}").await >= 1.0,
        "{}",
        second.log_text()
    );
    assert_eq!(
        metric(&second.url, "sluice_restores_total{source=\"history\"}").await,
        0.0,
        "{}",
        second.log_text()
    );
    let incidents = opened_then_resolved(&reader.seen, 2);
    let db = incidents
        .values()
        .find(|msgs| msgs[0].body["group_key"]["source"] == "db-4")
        .unwrap();
    let resolved = db.iter().find(|m| m.body["type"] == "resolved").unwrap();
    // Both alerts, the one from after the snapshot too.
    assert_eq!(resolved.body["alert_count"], 2, "{:#?}", resolved.body);
}

/// A correlator paused (SIGSTOP) past the session timeout loses its partitions to the other;
/// resumed (SIGCONT), it publishes nothing for them, although its fetcher still had their
/// records to give it: ownership in doubt drops its partitions' state and output until the
/// group confirms what it owns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correlator_resumed_after_losing_its_partitions_publishes_nothing_for_them() {
    let broker = Broker::start();
    let mut a = Sluice::start_with_env(
        "kafka-pause-a",
        &broker.bootstrap,
        CONFIG,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_INSTANCE", "paused")],
    );
    let sources = ["db-5", "web-5", "cache-5", "queue-5"];
    for s in sources {
        send(&a.url, "trigger", &format!("{s}/x"), s).await;
    }
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader.until("four opened", |seen| seen.len() >= 4).await;
    let b = Sluice::start_with_env(
        "kafka-pause-b",
        &broker.bootstrap,
        CONFIG,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_INSTANCE", "other")],
    );
    wait_for_metric(
        &b.url,
        "sluice_partitions_owned",
        1.0,
        Duration::from_secs(30),
    )
    .await;
    let from_a = |seen: &[crate::harness::Received]| {
        seen.iter()
            .filter(|m| m.headers.get("ce_source").map(String::as_str) == Some("paused"))
            .count()
    };
    a.signal("STOP");
    // The group moves every partition to b once a's session expires.
    wait_for_metric(
        &b.url,
        "sluice_partitions_owned",
        4.0,
        Duration::from_secs(40),
    )
    .await;
    for s in sources {
        send(&b.url, "resolve", &format!("{s}/x"), "").await;
    }
    reader
        .until("four resolved", |seen| {
            seen.iter().filter(|m| m.body["type"] == "resolved").count() >= 4
        })
        .await;
    let before = from_a(&reader.seen);
    a.signal("CONT");
    reader.extra_within(Duration::from_secs(8)).await;
    assert_eq!(
        from_a(&reader.seen),
        before,
        "the paused correlator published after it lost its partitions: {:#?}\n{}",
        reader.seen,
        a.log_text()
    );
    a.kill();
}

/// The broker stops answering for 20 s under traffic (SIGSTOP: connections held, nothing
/// answered, data kept), then comes back: while it is away, events are answered 503; afterwards
/// the same sluice, not restarted, accepts and correlates again (its producers, fenced by the
/// timeouts, are made anew), every event answered 2xx is in an incident, and none is opened
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_away_for_20s_costs_503s_and_nothing_accepted() {
    let broker = Broker::start();
    let a = Sluice::start_with_env(
        "kafka-broker-away",
        &broker.bootstrap,
        // Longer than the outage: the group keeps this correlator as its member (see the
        // README for an outage longer than the session timeout on tansu 0.6).
        &CONFIG.replace("session_timeout = \"6s\"", "session_timeout = \"30s\""),
        &[("SLUICE_PIPELINE", "kafka")],
    );
    let status = |reply: &Value| reply["status"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        status(&send(&a.url, "trigger", "before/x", "before").await),
        "success"
    );
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader.until("opened", |seen| !seen.is_empty()).await;

    broker.signal("STOP");
    let stopped = std::time::Instant::now();
    let mut refused = Vec::new();
    let mut accepted_while_away = Vec::new();
    let mut n = 0;
    while stopped.elapsed() < Duration::from_secs(20) {
        n += 1;
        let source = format!("away-{n}");
        let mut client = HttpClient::connect(&a.url).await.unwrap();
        let body = pd_event(
            "svc",
            "trigger",
            &format!("{source}/x"),
            &source,
            "critical",
            "x",
        );
        let reply = client.post("/v2/enqueue", body).await.unwrap();
        match reply.status.as_u16() {
            503 => refused.push(source),
            202 => accepted_while_away.push(source),
            other => panic!("{other}: {}", String::from_utf8_lossy(&reply.body)),
        }
    }
    broker.signal("CONT");
    assert!(!refused.is_empty(), "no 503 while the broker was away");

    // Back: the same process accepts again (retrying while it reconnects).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut client = HttpClient::connect(&a.url).await.unwrap();
        let body = pd_event("svc", "trigger", "after/x", "after", "critical", "x");
        let reply = client.post("/v2/enqueue", body).await.unwrap();
        if reply.status == 202 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not accepting 30 s after the broker came back: {} {}\n{}",
            reply.status,
            String::from_utf8_lossy(&reply.body),
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let back = std::time::Instant::now();
    let mut expected: Vec<String> = vec!["before".into(), "after".into()];
    expected.extend(accepted_while_away.iter().cloned());
    reader
        .until_or(
            "every accepted event's incident",
            |seen| {
                expected.iter().all(|s| {
                    seen.iter()
                        .any(|m| m.body["group_key"]["source"] == s.as_str())
                })
            },
            Duration::from_secs(30),
            || a.log_text(),
        )
        .await;
    reader.extra_within(Duration::from_secs(3)).await;
    eprintln!(
        "correlating again {:?} after the broker came back",
        back.elapsed()
    );
    // A 503 after a delivery timed out is indeterminate (the record may have been written
    // just the same: the sender's retry is then deduplicated), so refused events may appear.
    // Repeats of a message are identical (same id, seq and body); no group has two incidents.
    let mut by_source: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for m in reader.seen.iter().filter(|m| m.body["type"] == "opened") {
        by_source
            .entry(m.body["group_key"]["source"].to_string())
            .or_default()
            .insert(m.body["incident_id"].to_string());
    }
    assert!(
        by_source.values().all(|ids| ids.len() == 1),
        "an incident opened twice: {by_source:#?}"
    );
    for msgs in by_incident(&reader.seen).values() {
        let mut seen: Vec<(String, u64)> = types(msgs);
        seen.dedup();
        let bodies: std::collections::BTreeMap<u64, &Value> = msgs
            .iter()
            .map(|m| (m.body["seq"].as_u64().unwrap(), &m.body))
            .collect();
        for m in msgs {
            let mut a = m.body.clone();
            let mut b = bodies[&m.body["seq"].as_u64().unwrap()].clone();
            a.as_object_mut().unwrap().remove("published_at");
            b.as_object_mut().unwrap().remove("published_at");
            assert_eq!(a, b, "a repeat that differs: {msgs:#?}");
        }
    }
}

/// A silence made through one instance applies on every partition of every instance (the
/// silences topic), within about a second, and survives a restart of every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_made_on_one_instance_applies_everywhere_and_survives_a_full_restart() {
    let broker = Broker::start();
    let env = [("SLUICE_PIPELINE", "kafka")];
    let named = |name| [("SLUICE_PIPELINE", "kafka"), ("SLUICE_INSTANCE", name)];
    let mut a = Sluice::start_with_env("kafka-sil-a", &broker.bootstrap, CONFIG, &named("a"));
    let mut b = Sluice::start_with_env("kafka-sil-b", &broker.bootstrap, CONFIG, &named("b"));
    let mut client = HttpClient::connect(&a.url).await.unwrap();
    // A day from now: silences last at most auth.max_silence (7 days by default).
    let ends = crate::harness::from_now(std::time::Duration::from_secs(86_400));
    let body = format!(
        r#"{{"matchers":[{{"name":"source","op":"=","value":"quiet-1"}}],"ends_at":"{ends}","created_by":"e2e"}}"#
    );
    let created = client.post("/api/v1/silences", body).await.unwrap();
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_str().unwrap().to_string();
    // b lists it within about a second.
    let listed_on = |url: String, id: String| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let mut client = HttpClient::connect(&url).await.unwrap();
            let list = client.get("/api/v1/silences").await.unwrap().json();
            if list
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == id.as_str())
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{id} not listed on {url}: {list}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    listed_on(b.url.clone(), id.clone()).await;

    // Silenced on whichever instance owns its partition; the loud one opens.
    let sources = ["quiet-1", "loud-1", "loud-2", "loud-3"];
    for s in sources {
        send(&b.url, "trigger", &format!("{s}/x"), s).await;
    }
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("three loud opened", |seen| seen.len() >= 3)
        .await;
    reader.extra_within(Duration::from_secs(2)).await;
    let quiet = |seen: &[crate::harness::Received]| {
        seen.iter()
            .any(|m| m.body["group_key"]["source"] == "quiet-1")
    };
    assert!(!quiet(&reader.seen), "{:#?}", reader.seen);

    // Every instance restarted: the silence is still listed and still applies.
    a.kill();
    b.kill();
    let c = Sluice::start_with_env("kafka-sil-c", &broker.bootstrap, CONFIG, &env);
    listed_on(c.url.clone(), id.clone()).await;
    send(&c.url, "trigger", "quiet-1/y", "quiet-1").await;
    send(&c.url, "trigger", "loud-4/x", "loud-4").await;
    reader
        .until("loud-4 opened", |seen| {
            seen.iter()
                .any(|m| m.body["group_key"]["source"] == "loud-4")
        })
        .await;
    reader.extra_within(Duration::from_secs(2)).await;
    assert!(!quiet(&reader.seen), "{:#?}", reader.seen);
}

/// An events topic that keeps events for less time than a restore may need is refused at
/// start, naming the topic, its retention and what it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_topic_with_too_short_a_retention_is_refused_at_start() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let broker = Broker::start();
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    let topic =
        NewTopic::new("sluice.events", 4, TopicReplication::Fixed(1)).set("retention.ms", "1000");
    let created = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let dir = crate::harness::TempDir::new("kafka-retention");
    let path = dir.0.join("sluice.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("SLUICE_LISTEN", "127.0.0.1:0")
            .env("SLUICE_KAFKA_BROKERS", &broker.bootstrap)
            .env("SLUICE_PIPELINE", "kafka")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("topic sluice.events keeps events for retention.ms=1000"),
        "{stderr}"
    );
}

/// The group's committed offset falls inside a record batch (producers batch records that
/// arrive within `linger.ms`): the next owner must correlate the rest of that batch. tansu 0.6
/// answers a fetch that starts inside a batch with nothing from it, so a reader that started at
/// the committed offset would skip those events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_a_commit_inside_a_record_batch_are_correlated() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use sluice::event::{wire, Action, Event};
    use sluice::integration::Integration;
    use sluice::time::UnixMillis;

    let broker = Broker::start();
    let env = [("SLUICE_PIPELINE", "kafka")];
    let first = Sluice::start_with_env("kafka-batch-1", &broker.bootstrap, CONFIG, &env);
    send(&first.url, "trigger", "before", "host-b").await;
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("the first incident", |seen| !seen.is_empty())
        .await;
    drop(first); // SIGTERM: commits what it did, and leaves the group.

    // Five events in one batch, all to the partition of the routing key `svc-payments`.
    let p = sluice::pipeline::partition("svc-payments", 4) as i32;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "100")
        .create()
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..5 {
        let mut e = Event::new(
            Integration::PagerDuty,
            Action::Trigger,
            "svc-payments".into(),
            format!("batched-{i}"),
            UnixMillis(sluice::clock::Clock::system().now().0),
        );
        e.source = format!("batch-host-{i}");
        let mut body = Vec::new();
        wire::encode_event(&e, &mut body);
        let record = FutureRecord::<(), _>::to("sluice.events")
            .partition(p)
            .payload(&body);
        deliveries.push(producer.send_result(record).unwrap());
    }
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.unwrap().unwrap().offset);
    }
    // The committed offset: the third record of the batch (the first two count as processed).
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("sluice.events", p, rdkafka::Offset::Offset(offsets[2]))
        .unwrap();
    let committer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "sluice-correlators")
        .create()
        .unwrap();
    committer.commit(&tpl, CommitMode::Sync).unwrap();
    drop(committer);

    let second = Sluice::start_with_env("kafka-batch-2", &broker.bootstrap, CONFIG, &env);
    let opened = |seen: &[crate::harness::Received], i: usize| {
        seen.iter()
            .any(|m| m.body["group_key"]["source"] == format!("batch-host-{i}").as_str())
    };
    reader
        .until_or(
            "the events after the committed offset correlated",
            |seen| (2..5).all(|i| opened(seen, i)),
            Duration::from_secs(40),
            || second.log_text(),
        )
        .await;
    reader.extra_within(Duration::from_secs(1)).await;
    // The two before the committed offset were restored (their output discarded), not published.
    assert!(!opened(&reader.seen, 0) && !opened(&reader.seen, 1));
}

async fn readyz(client: &mut HttpClient) -> String {
    let reply = client.get("/readyz").await.unwrap();
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// A reload hands new correlation rules to Kafka mode's correlators: an incident held by a
/// one-hour `group_wait` comes out once the reloaded rules say `0s` (its partition's state
/// carried over), nothing needs a restart, and `/readyz` names the new rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_hands_new_rules_to_the_partitions_this_instance_owns() {
    let broker = Broker::start();
    let held = CONFIG.replace("group_wait = \"0s\"", "group_wait = \"1h\"");
    let env = [("SLUICE_PIPELINE", "kafka")];
    let sluice = Sluice::start_with_env("kafka-reload", &broker.bootstrap, &held, &env);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    let before = readyz(&mut client).await;
    send(&sluice.url, "trigger", "db-1/disk", "db-1").await;
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    assert_eq!(reader.extra_within(Duration::from_secs(2)).await, 0, "held");
    std::fs::write(sluice.config_path(), CONFIG).unwrap();
    let answer = reload(&mut client).await;
    assert_eq!(answer["need_restart"], serde_json::json!([]));
    reader.until("opened", |seen| !seen.is_empty()).await;
    assert_eq!(reader.seen[0].body["type"], "opened");
    assert_eq!(reader.seen[0].body["alert_count"], 1);
    let after = readyz(&mut client).await;
    assert_ne!(
        before, after,
        "the rules fingerprint changed: {before} -> {after}"
    );
    assert!(sluice
        .log_text()
        .contains("correlator took the reloaded rules"));
}
