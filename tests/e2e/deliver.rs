//! `sluice forward` end to end: the real `sluice serve` publishes incidents to tansu, the real
//! `sluice forward` reads them as its own consumer group and delivers them to HTTP receivers
//! run by this test: a webhook that records every request, a Slack-shaped one, a
//! PagerDuty-shaped one, one that fails (500), stalls past the timeout and answers 429 before
//! it takes a message, and one that refuses with 400. The forwarder is SIGKILLed mid-way and
//! started again. What must hold: every message reaches the webhook at least once (repeats
//! counted, each with the same Idempotency-Key), each receiver sees an incident's messages in
//! `seq` order, the failing receiver gets its message once after its retries while the others
//! go on meanwhile, and the refused message is on the dead-letter topic with headers saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sluice::send::pd_event;

use crate::harness::{free_port, metric, post, Broker, Reader, Received, Sluice, TempDir};

const SERVE_CONFIG: &str = r#"
[kafka]
partitions = 3
[[correlate.rules]]
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"
"#;

/// One request a test receiver got, and what it answered (0: it stalled).
#[derive(Clone, Debug)]
struct Got {
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
    answered: u16,
}

impl Got {
    fn key(&self) -> &str {
        self.headers
            .get("idempotency-key")
            .map_or("", String::as_str)
    }
}

/// The receivers' shared record, in arrival order.
#[derive(Default)]
struct Receivers {
    got: Mutex<Vec<Got>>,
    /// The webhook has the message of routing key `other`: the flaky receiver may take its
    /// message now (before, it answers 503), which it can only do if the other receivers went
    /// on while it was failing.
    gate: AtomicBool,
}

impl Receivers {
    fn at(&self, path: &str) -> Vec<Got> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|g| g.path == path).cloned().collect()
    }

    /// The answer to a request (status, Retry-After, body); `None` for a stall.
    fn answer(&self, got: &Got) -> Option<(u16, Option<&'static str>, String)> {
        let ok = Some((200, None, "ok".to_string()));
        match got.path.as_str() {
            "/pd" => Some((202, None, r#"{"status":"success"}"#.into())),
            "/bad" => Some((400, None, format!("unknown route: {}", "x".repeat(300)))),
            "/flaky" => {
                let before = self.at("/flaky");
                // The script applies to the first message the flaky receiver was sent.
                let first = before.first().map_or(got.key(), Got::key);
                if first != got.key() {
                    return ok;
                }
                match 1 + before.iter().filter(|g| g.key() == got.key()).count() {
                    1 => Some((500, None, "boom".into())),
                    2 => None,
                    3 => Some((429, Some("1"), "slow down".into())),
                    _ if self.gate.load(Ordering::SeqCst) => ok,
                    _ => Some((503, None, "not yet".into())),
                }
            }
            _ => ok,
        }
    }
}

/// Serves the receivers on a free loopback port; returns its base URL.
async fn start_receivers(state: Arc<Receivers>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let state = Arc::clone(&state);
                    async move {
                        let path = req.uri().path().to_string();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_string()))
                            .collect();
                        let bytes = req.into_body().collect().await.unwrap().to_bytes();
                        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let mut got = Got {
                            path,
                            headers,
                            body,
                            answered: 0,
                        };
                        let answer = state.answer(&got);
                        got.answered = answer.as_ref().map_or(0, |a| a.0);
                        if got.path == "/webhook" && got.body["routing_key"] == "other" {
                            state.gate.store(true, Ordering::SeqCst);
                        }
                        state.got.lock().unwrap().push(got);
                        let Some((status, retry_after, text)) = answer else {
                            // Past the forwarder's 1 s timeout.
                            tokio::time::sleep(Duration::from_secs(3)).await;
                            return Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::new(),
                            )));
                        };
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
                        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        if let Some(after) = retry_after {
                            resp.headers_mut()
                                .insert("retry-after", http::HeaderValue::from_static(after));
                        }
                        Ok(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

/// The real `sluice forward`, killed when dropped.
struct Forwarder {
    child: Child,
    log: PathBuf,
}

impl Forwarder {
    fn start(config: &std::path::Path, log: PathBuf) -> Forwarder {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["forward", "--config"])
            .arg(config)
            .env("SLUICE_LOG_LEVEL", "info,sluice::deliver=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sluice forward starts");
        Forwarder { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_config(bootstrap: &str, receivers: &str, listen: u16) -> String {
    format!(
        r#"
[kafka]
brokers = "{bootstrap}"
[kafka.properties]
"session.timeout.ms" = "6000"
[deliver]
group_id = "e2e-forward"
start_from = "beginning"
listen = "127.0.0.1:{listen}"
# Small, so that partitions are paused behind the flaky receiver (and while a backlog is
# read) and resumed.
max_pending = 2

[[receivers]]
name = "hook"
kind = "webhook"
url = "{receivers}/webhook"
headers = {{ X-Team = "e2e" }}
types = ["opened", "updated", "flapping", "acknowledged", "snoozed", "resolved"]

[[receivers]]
name = "chat"
kind = "slack"
url = "{receivers}/slack"
matchers = [{{ name = "routing_key", op = "=", value = "payments" }}]

[[receivers]]
name = "pd"
kind = "pagerduty"
url = "{receivers}/pd"
routing_key = "R0UT1NGKEY"
matchers = [{{ name = "routing_key", op = "=", value = "payments" }}]

[[receivers]]
name = "flaky"
kind = "webhook"
url = "{receivers}/flaky"
matchers = [{{ name = "routing_key", op = "=", value = "flaky" }}]
timeout = "1s"
retry_initial = "100ms"
retry_max = "1s"

[[receivers]]
name = "bad"
kind = "webhook"
url = "{receivers}/bad"
matchers = [{{ name = "routing_key", op = "=", value = "bad" }}]
"#
    )
}

async fn send(url: &str, routing_key: &str, action: &str, key: &str, source: &str, summary: &str) {
    let body = pd_event(routing_key, action, key, source, "critical", summary);
    let (status, answer) = post(url, "/v2/enqueue", &[], body).await;
    assert_eq!(status, 202, "{answer}");
}

/// Waits (at most 40 s) until `done` holds of the receivers' record.
async fn until(
    what: &str,
    state: &Receivers,
    forwarder: &Forwarder,
    done: impl Fn(&[Got]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if done(&state.got.lock().unwrap()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; received {:#?}\nforwarder log:\n{}",
            state.got.lock().unwrap(),
            forwarder.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn id_seq(v: &Value) -> (String, u64) {
    (
        v["incident_id"].as_str().unwrap_or_default().to_string(),
        v["seq"].as_u64().unwrap_or_default(),
    )
}

/// The incident of routing key `key` among the messages read from the topic.
fn incident_of<'a>(seen: &'a [Received], key: &str) -> Vec<&'a Received> {
    seen.iter()
        .filter(|m| m.body["routing_key"] == key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_delivers_retries_dead_letters_and_survives_a_kill() {
    let broker = Broker::start();
    let sluice = Sluice::start("deliver", &broker.bootstrap, SERVE_CONFIG);
    let state = Arc::new(Receivers::default());
    let receivers = start_receivers(Arc::clone(&state)).await;
    let dir = TempDir::new("deliver");
    let listen = free_port();
    let config = dir.0.join("forward.toml");
    std::fs::write(
        &config,
        forward_config(&broker.bootstrap, &receivers, listen),
    )
    .unwrap();
    let mut forwarder = Forwarder::start(&config, dir.0.join("forward-1.log"));
    let url = sluice.url.clone();

    // The flaky receiver's message first: it fails, stalls and is throttled while the others
    // go on.
    send(&url, "flaky", "trigger", "f0", "fl-1", "queue stuck").await;
    until("the flaky receiver's first try", &state, &forwarder, |g| {
        g.iter().any(|g| g.path == "/flaky")
    })
    .await;
    send(&url, "other", "trigger", "o0", "ot-1", "cpu hot").await;
    // The webhook gets a message published after the flaky one while that one is still not
    // delivered (the flaky receiver takes it only once the gate is open).
    until(
        "the webhook's message while the flaky one waits",
        &state,
        &forwarder,
        |_| state.gate.load(Ordering::SeqCst),
    )
    .await;
    assert!(!state.at("/flaky").iter().any(|g| g.answered == 200));
    send(
        &url,
        "payments",
        "trigger",
        "p0",
        "db-1",
        "disk <full> & slow",
    )
    .await;
    send(&url, "payments", "acknowledge", "p0", "db-1", "").await;
    send(&url, "payments", "resolve", "p0", "db-1", "").await;
    send(&url, "flaky", "resolve", "f0", "fl-1", "").await;
    send(&url, "bad", "trigger", "b0", "bd-1", "refused").await;
    until("pagerduty, slack, flaky and bad", &state, &forwarder, |g| {
        let at = |p: &str| g.iter().filter(|g| g.path == p).count();
        let flaky_ok = g
            .iter()
            .filter(|g| g.path == "/flaky" && g.answered == 200)
            .count();
        at("/pd") >= 3 && at("/slack") >= 3 && flaky_ok >= 2 && at("/bad") >= 1
    })
    .await;
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("phase one's 7 messages", |s| s.len() >= 7)
        .await;

    // The flaky receiver: 500, a stall, 429, then its message once; the resolve after it.
    let flaky = state.at("/flaky");
    let opened_key = flaky[0].key().to_string();
    let answers: Vec<u16> = flaky
        .iter()
        .filter(|g| g.key() == opened_key)
        .map(|g| g.answered)
        .collect();
    assert_eq!(&answers[..3], [500, 0, 429], "{flaky:#?}");
    assert_eq!(
        answers.iter().filter(|a| **a == 200).count(),
        1,
        "{flaky:#?}"
    );
    assert_eq!(answers.last(), Some(&200));
    let delivered: Vec<(String, u64)> = flaky
        .iter()
        .filter(|g| g.answered == 200)
        .map(|g| id_seq(&g.body))
        .collect();
    let f = incident_of(&reader.seen, "flaky");
    let f_id = f[0].body["incident_id"].as_str().unwrap().to_string();
    assert_eq!(
        delivered,
        [(f_id.clone(), 1), (f_id.clone(), 2)],
        "in seq order, once each"
    );
    assert_eq!(opened_key, format!("{f_id}:1"));

    // PagerDuty: one alert per incident, trigger then acknowledge then resolve.
    let p = incident_of(&reader.seen, "payments");
    let p_id = p[0].body["incident_id"].as_str().unwrap();
    let pd: Vec<Value> = state.at("/pd").into_iter().map(|g| g.body).collect();
    let actions: Vec<&str> = pd
        .iter()
        .map(|b| b["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"], "{pd:#?}");
    for b in &pd {
        assert_eq!(
            (b["routing_key"].as_str(), b["dedup_key"].as_str()),
            (Some("R0UT1NGKEY"), Some(p_id))
        );
    }
    let payload = &pd[0]["payload"];
    assert_eq!(payload["summary"], "disk <full> & slow");
    assert_eq!(payload["source"], "db-1");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["timestamp"], p[0].body["opened_at"]);
    assert_eq!(payload["custom_details"]["alert_count"], 1);
    assert_eq!(
        payload["custom_details"]["group_key"],
        json!({"source": "db-1"})
    );
    assert_eq!(
        pd[1],
        json!({"routing_key": "R0UT1NGKEY", "event_action": "acknowledge", "dedup_key": p_id})
    );

    // Slack: the three messages of the payments incident, the title escaped where Slack parses.
    let slack: Vec<Value> = state.at("/slack").into_iter().map(|g| g.body).collect();
    assert_eq!(slack.len(), 3, "{slack:#?}");
    assert_eq!(
        slack[0]["text"],
        ":red_circle: [CRITICAL] disk &lt;full&gt; &amp; slow (opened, 1 alert(s))"
    );
    assert_eq!(
        slack[0]["blocks"][0]["text"]["text"],
        ":red_circle: disk <full> & slow"
    );
    let statuses: Vec<&str> = slack
        .iter()
        .map(|b| b["blocks"][1]["fields"][3]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "*Status*\nopened",
            "*Status*\nacknowledged",
            "*Status*\nresolved"
        ]
    );

    // The refused message: tried once, on the dead-letter topic with what happened.
    let b = incident_of(&reader.seen, "bad");
    assert_eq!(state.at("/bad").len(), 1, "a 400 is not tried again");
    let mut dead = Reader::new(&broker.bootstrap, "sluice.dead-letters");
    dead.until("the dead letter", |s| !s.is_empty()).await;
    let letter = &dead.seen[0];
    assert_eq!(letter.body, b[0].body, "the original message");
    assert_eq!(letter.key, b[0].key);
    let h = &letter.headers;
    assert_eq!(h["sluice_receiver"], "bad");
    assert_eq!(h["sluice_receiver_kind"], "webhook");
    assert_eq!(h["sluice_attempts"], "1");
    assert_eq!(h["ce_type"], "io.sluice.incident.opened");
    let error = &h["sluice_error"];
    assert!(
        error.starts_with("status 400: unknown route: xxx"),
        "{error}"
    );
    assert_eq!(
        error.len(),
        "status 400: ".len() + 200,
        "the first 200 bytes of the answer"
    );

    // The webhook: each message as it is on the topic, with the headers sluice sets.
    let hook = state.at("/webhook");
    let o = hook
        .iter()
        .find(|g| g.body["routing_key"] == "other")
        .unwrap();
    assert_eq!(o.headers["content-type"], "application/json");
    assert_eq!(o.headers["x-sluice-receiver"], "hook");
    assert_eq!(o.headers["x-team"], "e2e");
    let (o_id, o_seq) = id_seq(&o.body);
    assert_eq!(o.headers["x-sluice-incident-id"], o_id);
    assert_eq!(o.key(), format!("{o_id}:{o_seq}"));
    let on_topic = reader
        .seen
        .iter()
        .find(|m| id_seq(&m.body) == (o_id.clone(), o_seq))
        .unwrap();
    assert_eq!(o.body, on_topic.body);

    let metrics = format!("http://127.0.0.1:{listen}");
    let deliveries = |r: &str, k: &str, o: &str| {
        format!("sluice_deliveries_total{{receiver=\"{r}\",kind=\"{k}\",outcome=\"{o}\"}}")
    };
    assert_eq!(
        metric(&metrics, &deliveries("bad", "webhook", "dead_lettered")).await,
        1.0
    );
    assert!(metric(&metrics, &deliveries("flaky", "webhook", "retried")).await >= 3.0);
    assert_eq!(
        metric(&metrics, &deliveries("pd", "pagerduty", "delivered")).await,
        3.0
    );
    assert!(
        metric(
            &metrics,
            &deliveries("pd", "pagerduty", "skipped_by_matchers")
        )
        .await
            >= 1.0
    );

    // A storm, the forwarder killed while it delivers, the resolves sent while it is down.
    for i in 0..20 {
        send(
            &url,
            "storm",
            "trigger",
            &format!("s{i}"),
            &format!("host-{i}"),
            "storm",
        )
        .await;
    }
    until("some of the storm", &state, &forwarder, |g| {
        g.iter()
            .filter(|g| g.path == "/webhook" && g.body["routing_key"] == "storm")
            .count()
            >= 5
    })
    .await;
    forwarder.child.kill().unwrap();
    forwarder.child.wait().unwrap();
    let at_kill = state.at("/webhook").len();
    for i in 0..20 {
        send(
            &url,
            "storm",
            "resolve",
            &format!("s{i}"),
            &format!("host-{i}"),
            "",
        )
        .await;
    }
    reader.until("every message", |s| s.len() >= 7 + 40).await;
    // The killed member's session (6 s) ends before the next one joins: tansu 0.6 gives a
    // member that joined while a dead one still held the partitions an empty assignment and
    // no rebalance when that session expires (seen under load: "partitions assigned
    // partitions=[]", then nothing for 40 s). Kafka rebalances; this test is about delivery.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut forwarder = Forwarder::start(&config, dir.0.join("forward-2.log"));
    let expected: BTreeSet<(String, u64)> = reader.seen.iter().map(|m| id_seq(&m.body)).collect();
    until("every message at the webhook", &state, &forwarder, |g| {
        let got: BTreeSet<(String, u64)> = g
            .iter()
            .filter(|g| g.path == "/webhook")
            .map(|g| id_seq(&g.body))
            .collect();
        expected.is_subset(&got)
    })
    .await;

    // At least once, each repeat with its Idempotency-Key; first arrivals in seq order.
    let hook = state.at("/webhook");
    let mut firsts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut repeats = 0;
    for g in &hook {
        let (id, seq) = id_seq(&g.body);
        assert_eq!(g.key(), format!("{id}:{seq}"));
        if seen.insert((id.clone(), seq)) {
            firsts.entry(id).or_default().push(seq);
        } else {
            repeats += 1;
        }
    }
    for (id, seqs) in &firsts {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{id}: {seqs:?}");
    }
    assert_eq!(seen, expected, "nothing but the topic's messages");
    let pauses = |log: &str| log.matches("partition paused").count();
    eprintln!(
        "{} messages delivered to the webhook ({at_kill} requests before the kill), \
         {repeats} repeat(s) after it; partitions paused {} + {} time(s)",
        expected.len(),
        pauses(&std::fs::read_to_string(dir.0.join("forward-1.log")).unwrap()),
        pauses(&forwarder.log_text()),
    );

    // SIGTERM: the forwarder stops cleanly, and the group's offsets are at the end of every
    // partition (everything was delivered, so everything is committed). The ends are counted
    // from what the reader read (liveness records included: the forwarder skips them, and
    // commits past them): tansu 0.6's high watermark lags behind the last batch.
    crate::harness::signal_pid(forwarder.child.id(), "TERM");
    let status = forwarder.child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", forwarder.log_text());
    assert!(forwarder.log_text().contains("done offsets committed"));
    let ends: Vec<i64> = (0..3)
        .map(|p| {
            let all = reader.seen.iter().chain(&reader.liveness);
            all.filter(|m| m.partition == p).count() as i64
        })
        .collect();
    let committed = committed_offsets(&broker.bootstrap, "e2e-forward", 3);
    assert_eq!(committed, ends, "{}", forwarder.log_text());
}

/// The group's committed offset of each partition of `sluice.incidents`.
fn committed_offsets(bootstrap: &str, group: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition("sluice.incidents", p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.offset().to_raw().unwrap_or(-1))
        .collect()
}
