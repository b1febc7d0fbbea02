//! Kafka mode under a storm while correlators die and the group changes size: real tansu, real
//! sluice processes, a real consumer. The oracle: every trigger answered 202 is an alert of
//! its source's one incident (its `resolved` message counts every key that was accepted),
//! no group is opened twice, every incident's seqs run 1, 2, ... without a gap, and a message
//! repeated after a crash is the same message (same id, seq and body but `published_at`).
//! Event rules re-route most sources to other routing keys (and partitions), and every resolve
//! carries only its dedup key, so it must follow the route its trigger took.
//!
//! CI runs a bounded set (`SLUICEDEV_CHAOS_KILLS`, default 2 kill points; the scaling run);
//! `load-tests/chaos.sh` runs more kill points and reports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice::send::{pd_event, HttpClient};

use crate::harness::{by_incident, wait_for_metric, Broker, Reader, Received, Sluice};

const CONFIG: &str = r#"
[kafka]
partitions = 3
[pipeline]
partitions = 4
commit_interval = "200ms"
watermark_interval = "200ms"
session_timeout = "6s"
snapshot_interval = "2s"
[[correlate.rules]]
name = "by-source"
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"
group_interval = "1h"
window_duration = "1h"
# Event rules re-route six of the eight sources: two within the events topic's partition of
# "svc" (team-b), four to other partitions (team-c, team-d). Resolves carry no source, so
# they find their alerts only by the routes the triggers made.
[[event_rules]]
matchers = [{ name = "source", op = "=~", value = "src-[23]" }]
set_routing_key = "team-b"
[[event_rules]]
matchers = [{ name = "source", op = "=~", value = "src-[45]" }]
set_routing_key = "team-c"
[[event_rules]]
matchers = [{ name = "source", op = "=~", value = "src-[67]" }]
set_routing_key = "team-d"
"#;

/// The routing key the event rules give a source's alerts.
fn routing_key_of(source: &str) -> &'static str {
    match source.trim_start_matches("src-") {
        "2" | "3" => "team-b",
        "4" | "5" => "team-c",
        "6" | "7" => "team-d",
        _ => "svc",
    }
}

const SOURCES: usize = 8;

/// Triggers posted to `url` until `stop`, cycling through the sources, each with a new key: the
/// keys each source's 202s accepted.
struct Storm {
    accepted: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    refused: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Storm {
    fn start(url: String) -> Storm {
        let accepted: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
        let refused = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, refs, halt) = (accepted.clone(), refused.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut n = 0usize;
            while !halt.load(Ordering::Relaxed) {
                let source = format!("src-{}", n % SOURCES);
                // Every trigger a new alert: an accepted one that went missing shows in the count.
                let key = format!("{source}/k{n}");
                let body = pd_event("svc", "trigger", &key, &source, "critical", "storm");
                let status = match HttpClient::connect(&url).await {
                    Ok(mut c) => c.post("/v2/enqueue", body).await.map(|r| r.status.as_u16()),
                    Err(e) => Err(e),
                };
                match status {
                    Ok(202) => {
                        acc.lock().unwrap().entry(source).or_default().insert(key);
                    }
                    _ => *refs.lock().unwrap() += 1,
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Storm {
            accepted,
            refused,
            stop,
            task,
        }
    }

    /// Stops the storm; what it got accepted, by source.
    async fn end(self) -> (BTreeMap<String, BTreeSet<String>>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let accepted = self.accepted.lock().unwrap().clone();
        let refused = *self.refused.lock().unwrap();
        (accepted, refused)
    }
}

/// Resolves every accepted key through `url`, waits for each source's `resolved`, and checks
/// the oracle (see the module's notes).
async fn resolve_and_check(
    url: &str,
    broker: &Broker,
    accepted: &BTreeMap<String, BTreeSet<String>>,
    log: impl Fn() -> String,
) {
    for keys in accepted.values() {
        for key in keys {
            let body = pd_event("svc", "resolve", key, "", "critical", "storm");
            let mut client = HttpClient::connect(url).await.unwrap();
            let reply = client.post("/v2/enqueue", body).await.unwrap();
            assert_eq!(reply.status, 202, "resolve {key}");
        }
    }
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    let sources: Vec<&String> = accepted.keys().collect();
    reader
        .until_or(
            "every source resolved",
            |seen| {
                sources.iter().all(|s| {
                    seen.iter().any(|m| {
                        m.body["type"] == "resolved" && m.body["group_key"]["source"] == s.as_str()
                    })
                })
            },
            Duration::from_secs(90),
            &log,
        )
        .await;
    reader.extra_within(Duration::from_secs(2)).await;
    check(&reader.seen, accepted);
    same_as_replay(&reader.seen, broker).await;
}

/// The messages published, each counted once, are what `sluice replay` of the events topic
/// makes offline: the same `(incident_id, seq)` pairs with the same bodies but `published_at`.
async fn same_as_replay(seen: &[Received], broker: &Broker) {
    let bootstrap = broker.bootstrap.clone();
    let dump = tokio::task::spawn_blocking(move || events_topic(&bootstrap))
        .await
        .unwrap();
    let config = sluice::config::Config::from_toml(CONFIG, Vec::new()).unwrap();
    let (replayed, _) = sluice::replay::events_dump(&config, dump);
    let pairs = |bodies: &mut dyn Iterator<Item = Value>| -> BTreeMap<(String, u64), Value> {
        bodies
            .filter(|b| b["seq"].is_u64())
            .map(|b| {
                let key = (
                    b["incident_id"].as_str().unwrap().to_string(),
                    b["seq"].as_u64().unwrap(),
                );
                (key, without_send_time(&b))
            })
            .collect()
    };
    let live = pairs(&mut seen.iter().map(|m| m.body.clone()));
    let offline = pairs(&mut replayed.iter().map(|m| {
        let body = serde_json::from_slice::<Value>(&m.body).unwrap();
        crate::schema::check_message(&body);
        body
    }));
    let only_live: Vec<_> = live.keys().filter(|k| !offline.contains_key(*k)).collect();
    let only_offline: Vec<_> = offline.keys().filter(|k| !live.contains_key(*k)).collect();
    assert!(
        only_live.is_empty() && only_offline.is_empty(),
        "live only: {only_live:?}\nreplay only: {only_offline:?}"
    );
    for (key, body) in &live {
        assert_eq!(body, &offline[key], "{key:?} differs from the replay");
    }
}

/// Every message of the events topic: `(partition, offset, payload)`. Blocking.
fn events_topic(bootstrap: &str) -> Vec<(i32, i64, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "chaos-dump")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let ends: BTreeMap<i32, i64> = (0..4)
        .map(|p| {
            let (_, end) = consumer
                .fetch_watermarks("sluice.events", p, Duration::from_secs(10))
                .unwrap();
            (p, end)
        })
        .collect();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset("sluice.events", p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut next: BTreeMap<i32, i64> = (0..4).map(|p| (p, 0)).collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().any(|(p, n)| n < &ends[p]) && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                out.push((
                    m.partition(),
                    m.offset(),
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("{e}"),
        }
    }
    assert!(
        next.iter().all(|(p, n)| n >= &ends[p]),
        "the events topic was not read to its end: {next:?} of {ends:?}"
    );
    out
}

fn without_send_time(body: &Value) -> Value {
    let mut body = body.clone();
    body.as_object_mut().unwrap().remove("published_at");
    body
}

fn check(seen: &[Received], accepted: &BTreeMap<String, BTreeSet<String>>) {
    let incidents = by_incident(seen);
    let mut by_source: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for (id, msgs) in &incidents {
        let source = msgs[0].body["group_key"]["source"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            msgs[0].body["routing_key"].as_str(),
            Some(routing_key_of(&source)),
            "{id}: the routing key the event rules gave {source}"
        );
        by_source.entry(source).or_default().push(id);
        // Repeats are the same message; seqs run 1, 2, ... without a gap.
        let mut by_seq: BTreeMap<u64, Value> = BTreeMap::new();
        for m in msgs {
            let seq = m.body["seq"].as_u64().unwrap();
            let body = without_send_time(&m.body);
            let first = by_seq.entry(seq).or_insert_with(|| body.clone());
            assert_eq!(*first, body, "{id} seq {seq} published twice, differently");
        }
        let seqs: Vec<u64> = by_seq.keys().copied().collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "{id}: a gap in its seqs");
    }
    for (source, keys) in accepted {
        let ids = by_source.get(source).cloned().unwrap_or_default();
        assert_eq!(ids.len(), 1, "{source}: incidents {ids:?}");
        let msgs = &incidents[ids[0]];
        let resolved = msgs
            .iter()
            .rev()
            .find(|m| m.body["type"] == "resolved")
            .unwrap_or_else(|| panic!("{source} never resolved"));
        assert_eq!(
            resolved.body["alert_count"].as_u64(),
            Some(keys.len() as u64),
            "{source}: every accepted key is one alert of its incident"
        );
    }
}

/// The correlator is SIGKILLed at random points of a storm (sent through an ingest-only
/// instance, so events keep being accepted while no correlator runs) and restarted each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlators_killed_mid_storm_lose_nothing_and_repeat_only_identical_messages() {
    let kills: usize = std::env::var("SLUICEDEV_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let p = |k| sluice::pipeline::partition(k, 4);
    assert!(p("team-b") == p("svc") && p("team-c") != p("svc") && p("team-d") != p("svc"));
    let broker = Broker::start();
    let ingest = Sluice::start_with_env(
        "chaos-ingest",
        &broker.bootstrap,
        CONFIG,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "ingest")],
    );
    let correlator_env = [
        ("SLUICE_PIPELINE", "kafka"),
        ("SLUICE_ROLES", "correlate"),
        ("SLUICE_INSTANCE", "chaos-correlator"),
    ];
    let mut correlator =
        Sluice::start_with_env("chaos-corr", &broker.bootstrap, CONFIG, &correlator_env);
    let storm = Storm::start(ingest.url.clone());
    // Kill points spread over a storm, at times from a fixed-seed sequence.
    let mut seed: u64 = 0x5eed;
    let started = Instant::now();
    for k in 0..kills {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis(500 + (seed >> 33) % 3000);
        tokio::time::sleep(after).await;
        eprintln!("kill {k} at {:?}", started.elapsed());
        correlator.kill();
        correlator =
            Sluice::start_with_env("chaos-corr", &broker.bootstrap, CONFIG, &correlator_env);
        wait_for_metric(
            &correlator.url,
            "sluice_partitions_owned",
            4.0,
            Duration::from_secs(60),
        )
        .await;
    }
    let (accepted, refused) = storm.end().await;
    eprintln!(
        "accepted keys: {}, refused posts: {refused}",
        accepted.values().map(BTreeSet::len).sum::<usize>()
    );
    assert_eq!(accepted.len(), SOURCES);
    resolve_and_check(&ingest.url, &broker, &accepted, || correlator.log_text()).await;
}

/// Correlators go from one to three and back to two (one leaves with SIGTERM) under a storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_then_three_then_two_correlators_under_a_storm() {
    let broker = Broker::start();
    let named = |name| [("SLUICE_PIPELINE", "kafka"), ("SLUICE_INSTANCE", name)];
    let a = Sluice::start_with_env("scale-a", &broker.bootstrap, CONFIG, &named("scale-a"));
    let storm = Storm::start(a.url.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = Sluice::start_with_env("scale-b", &broker.bootstrap, CONFIG, &named("scale-b"));
    let mut c = Sluice::start_with_env("scale-c", &broker.bootstrap, CONFIG, &named("scale-c"));
    wait_for_metric(
        &c.url,
        "sluice_partitions_owned",
        1.0,
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(c.terminate().success(), "{}", c.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (accepted, refused) = storm.end().await;
    eprintln!(
        "accepted keys: {}, refused posts: {refused}",
        accepted.values().map(BTreeSet::len).sum::<usize>()
    );
    assert_eq!(accepted.len(), SOURCES);
    resolve_and_check(&a.url, &broker, &accepted, || {
        format!("a:\n{}\nb:\n{}", a.log_text(), b.log_text())
    })
    .await;
}
