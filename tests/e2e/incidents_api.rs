//! The incidents API against the running binary, checked against `openapi.json`: every
//! answer's status is one the document lists for its route and its body matches the schema
//! given for that status. In memory mode, and in Kafka mode (tansu) where an ingest-only
//! instance answers for incidents a correlate-only instance made (its view follows the topic).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::send::HttpClient;

use crate::harness::{post, Broker, Sluice, WAIT};
use crate::schema::problems;

const CONFIG: &str = r#"
[[correlate.rules]]
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"
"#;

fn openapi() -> Value {
    let text = include_str!("../../openapi.json");
    serde_json::from_str(text).expect("openapi.json is JSON")
}

/// GETs `path` and checks the answer against `openapi.json`'s `route` (a path template).
pub(crate) async fn get(url: &str, route: &str, path: &str) -> (u16, Value) {
    let mut client = HttpClient::connect(url).await.unwrap();
    let reply = client.get(path).await.unwrap();
    let doc = openapi();
    let op = &doc["paths"][route]["get"];
    assert!(op.is_object(), "openapi.json has no GET {route}");
    let status = reply.status.as_u16().to_string();
    let documented = &op["responses"][&status];
    assert!(
        documented.is_object(),
        "GET {path} answered {status}, which openapi.json does not list for {route}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    if let Some(schema) = documented["content"]["application/json"].get("schema") {
        let found = problems(&doc, schema, &body);
        assert!(found.is_empty(), "GET {path}: {found:?}\n{body}");
    }
    (reply.status.as_u16(), body)
}

/// POSTs a command and checks the answer against `openapi.json`.
async fn command(url: &str, id: &str, action: &str, body: Value) -> (u16, Value) {
    let mut client = HttpClient::connect(url).await.unwrap();
    let path = format!("/api/v1/incidents/{id}/{action}");
    let reply = client.post(&path, body.to_string()).await.unwrap();
    let doc = openapi();
    let op = &doc["paths"]["/api/v1/incidents/{incident_id}/{action}"]["post"];
    let status = reply.status.as_u16().to_string();
    let documented = &op["responses"][&status];
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    assert!(
        documented.is_object(),
        "POST {path} answered {status}: {answer}"
    );
    let schema = &documented["content"]["application/json"]["schema"];
    let found = problems(&doc, schema, &answer);
    assert!(found.is_empty(), "POST {path}: {found:?}\n{answer}");
    (reply.status.as_u16(), answer)
}

/// Waits until incident `id`'s latest message in the view satisfies `done`.
async fn until_incident(url: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let path = format!("/api/v1/incidents/{id}");
        let (_, one) = get(url, "/api/v1/incidents/{incident_id}", &path).await;
        if done(&one["incident"]) {
            return one;
        }
        assert!(Instant::now() < deadline, "{what}: {one}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Acknowledge, snooze and resolve the three open `payments` incidents through the API.
async fn commands(url: &str) {
    let page = until_total(url, "/api/v1/incidents?routing_key=payments", 3).await;
    let ids: Vec<String> = page["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["incident_id"].as_str().unwrap().to_string())
        .collect();
    let body = json!({"by": "ana", "reason": "looking at it"});
    let (status, answer) = command(url, &ids[0], "acknowledge", body).await;
    assert_eq!(status, 202, "{answer}");
    let acked = until_incident(url, &ids[0], "acknowledged", |m| {
        m["type"] == "acknowledged"
    })
    .await;
    assert_eq!(acked["incident"]["status"], "acknowledged");
    assert_eq!(acked["incident"]["command"]["by"], "ana");
    assert_eq!(acked["incident"]["command"]["reason"], "looking at it");

    let (status, answer) = command(url, &ids[1], "snooze", json!({"duration": "1s"})).await;
    assert_eq!(status, 202, "{answer}");
    until_incident(url, &ids[1], "snoozed", |m| m["type"] == "snoozed").await;
    let after = until_incident(url, &ids[1], "paged again", |m| {
        m["type"] == "updated" && m["status"] == "triggered"
    })
    .await;
    let kinds: Vec<&str> = after["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "snoozed", "updated"]);

    let (status, answer) = command(url, &ids[2], "resolve", json!({})).await;
    assert_eq!(status, 202, "{answer}");
    until_incident(url, &ids[2], "resolved", |m| m["type"] == "resolved").await;

    // Refusals, each documented.
    let (status, _) = command(url, &ids[0], "snooze", json!({})).await;
    assert_eq!(status, 400, "a snooze needs a duration");
    let (status, _) = command(url, &ids[0], "acknowledge", json!({"duration": "1m"})).await;
    assert_eq!(status, 400);
    let (status, _) = command(url, &ids[0], "acknowledge", json!({"who": "x"})).await;
    assert_eq!(status, 400, "an unknown member");
    let (status, _) = command(url, &ids[2], "acknowledge", json!({})).await;
    assert_eq!(status, 404, "resolved");
    let (status, _) = command(url, &ids[0], "escalate", json!({})).await;
    assert_eq!(status, 404);
}

async fn trigger(url: &str, key: &str, dedup: &str, source: &str, severity: &str) {
    let body = sluice::send::pd_event(key, "trigger", dedup, source, severity, "disk full");
    let (status, answer) = post(url, "/v2/enqueue", &[], body).await;
    assert_eq!(status, 202, "{answer}");
}

async fn until_total(url: &str, path: &str, total: u64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, page) = get(url, "/api/v1/incidents", path).await;
        if page["total"] == total {
            return page;
        }
        assert!(Instant::now() < deadline, "{path}: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn exercise(url: &str, ingest_url: &str) {
    for i in 0..3 {
        trigger(
            ingest_url,
            "payments",
            &format!("p{i}"),
            &format!("db-{i}"),
            "critical",
        )
        .await;
    }
    trigger(ingest_url, "search", "s0", "es-1", "warning").await;
    let page = until_total(url, "/api/v1/incidents", 4).await;
    let opened: Vec<&str> = page["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["opened_at"].as_str().unwrap())
        .collect();
    assert!(
        opened.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {page}"
    );
    let first = page["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["routing_key"] == "search")
        .unwrap();

    // Filters, and pages that together list every incident once.
    let payments = until_total(
        url,
        "/api/v1/incidents?routing_key=payments&severity=critical",
        3,
    )
    .await;
    assert_eq!(payments["incidents"].as_array().unwrap().len(), 3);
    let mut seen = Vec::new();
    let mut path = "/api/v1/incidents?limit=3".to_string();
    loop {
        let (_, page) = get(url, "/api/v1/incidents", &path).await;
        for i in page["incidents"].as_array().unwrap() {
            seen.push(i["incident_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/incidents?limit=3&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "{seen:?}");

    // One incident, its timeline; then resolved, it leaves the open list.
    let id = first["incident_id"].as_str().unwrap().to_string();
    let (status, one) = get(
        url,
        "/api/v1/incidents/{incident_id}",
        &format!("/api/v1/incidents/{id}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["incident"]["incident_id"], id.as_str());
    assert_eq!(one["timeline"][0]["type"], "opened");
    let resolve = sluice::send::pd_event("search", "resolve", "s0", "es-1", "warning", "ok");
    let (status, answer) = post(ingest_url, "/v2/enqueue", &[], resolve).await;
    assert_eq!(status, 202, "{answer}");
    until_total(url, "/api/v1/incidents", 3).await;
    let resolved = until_total(url, "/api/v1/incidents?status=resolved", 1).await;
    assert_eq!(resolved["incidents"][0]["incident_id"], id.as_str());
    let (_, one) = get(
        url,
        "/api/v1/incidents/{incident_id}",
        &format!("/api/v1/incidents/{id}"),
    )
    .await;
    let kinds: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "resolved"]);

    // Statistics.
    let (status, stats) = get(url, "/api/v1/stats", "/api/v1/stats?window=1h").await;
    assert_eq!(status, 200);
    let row = stats["routing_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["routing_key"] == "payments")
        .cloned();
    assert_eq!(
        row,
        Some(
            json!({"routing_key": "payments", "incidents": 3, "open": 3, "alerts": 3,
                    "events": 3, "events_per_incident": 1.0})
        )
    );

    // Refusals, each documented.
    for (route, path, status) in [
        ("/api/v1/incidents", "/api/v1/incidents?severity=fatal", 400),
        (
            "/api/v1/incidents",
            "/api/v1/incidents?routing_kye=payments",
            400,
        ),
        ("/api/v1/incidents", "/api/v1/incidents?limit=0", 400),
        (
            "/api/v1/incidents",
            "/api/v1/incidents?since=yesterday",
            400,
        ),
        ("/api/v1/stats", "/api/v1/stats?window=3d", 400),
        (
            "/api/v1/incidents/{incident_id}",
            "/api/v1/incidents/inc_0000",
            404,
        ),
    ] {
        let (got, body) = get(url, route, path).await;
        assert_eq!(got, status, "{path}: {body}");
    }
    let (_, body) = get(url, "/api/v1/incidents", "/api/v1/incidents?severity=fatal").await;
    assert!(
        body["message"].as_str().unwrap().contains("'severity'"),
        "{body}"
    );
    for route in ["/healthz", "/readyz"] {
        get(url, route, route).await;
    }
    commands(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incidents_api_answers_as_openapi_json_says_in_memory_mode() {
    let sluice = Sluice::start("incidents-api", "embedded", CONFIG);
    exercise(&sluice.url, &sluice.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_instance_answers_for_incidents_another_instance_correlated() {
    let broker = Broker::start();
    let ingest = Sluice::start_with_env(
        "incidents-api-ingest",
        &broker.bootstrap,
        CONFIG,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "ingest")],
    );
    let _correlator = Sluice::start_with_env(
        "incidents-api-correlate",
        &broker.bootstrap,
        CONFIG,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "correlate")],
    );
    let other_ingest = Sluice::start_with_env(
        "incidents-api-ingest-2",
        &broker.bootstrap,
        CONFIG,
        &[("SLUICE_PIPELINE", "kafka"), ("SLUICE_ROLES", "ingest")],
    );
    // Events into one ingest instance; the other answers about the incidents.
    exercise(&other_ingest.url, &ingest.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incidents_api_needs_a_read_token_when_tokens_are_configured() {
    let config = format!(
        "{CONFIG}\n[[auth.tokens]]\nname = \"writer\"\ntoken = \"writer-token-0123456789\"\nscopes = [\"write\"]\n"
    );
    let sluice = Sluice::start_with_env(
        "incidents-api-auth",
        "embedded",
        &config,
        &[("SLUICE_ADMIN_TOKEN", "reader-and-writer-0123")],
    );
    let (status, _) = get(&sluice.url, "/api/v1/incidents", "/api/v1/incidents").await;
    assert_eq!(status, 401);
    let ask = |token: &'static str| {
        let url = sluice.url.clone();
        async move {
            let mut client = HttpClient::connect(&url).await.unwrap();
            let auth = format!("Bearer {token}");
            client
                .request_with(
                    http::Method::GET,
                    "/api/v1/incidents",
                    &[("authorization", auth.as_str())],
                    bytes::Bytes::new(),
                )
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(ask("writer-token-0123456789").await, 403);
    assert_eq!(ask("reader-and-writer-0123").await, 200);
}

/// Downstream acknowledges and resolves by writing to the commands topic (tansu): a command
/// without a routing key finds it in the view, a record that is not a command is skipped and
/// counted, the ones after it still apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_written_to_the_commands_topic_reach_their_incidents() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let broker = Broker::start();
    let sluice = Sluice::start("commands-topic", &broker.bootstrap, CONFIG);
    trigger(&sluice.url, "payments", "c0", "db-0", "critical").await;
    trigger(&sluice.url, "payments", "c1", "db-1", "critical").await;
    let page = until_total(&sluice.url, "/api/v1/incidents", 2).await;
    let ids: Vec<String> = page["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["incident_id"].as_str().unwrap().to_string())
        .collect();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    let records = [
        json!({"schema": "sluice.command.v1", "incident_id": ids[0], "action": "acknowledge",
               "by": "pagerduty-bridge (ana)", "reason": "acked in PagerDuty"})
        .to_string(),
        "this is not a command".to_string(),
        json!({"schema": "sluice.command.v1", "incident_id": ids[1], "action": "resolve",
               "by": "chatops", "routing_key": "payments"})
        .to_string(),
    ];
    for (i, body) in records.iter().enumerate() {
        let key = format!("k{i}");
        let record = FutureRecord::to("sluice.commands").key(&key).payload(body);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let acked = until_incident(&sluice.url, &ids[0], "acknowledged", |m| {
        m["type"] == "acknowledged"
    })
    .await;
    assert_eq!(acked["incident"]["command"]["by"], "pagerduty-bridge (ana)");
    until_incident(&sluice.url, &ids[1], "resolved", |m| {
        m["type"] == "resolved"
    })
    .await;
    // The records went to different partitions of the commands topic (their keys differ): the
    // malformed one may be read after the others.
    let skipped = "sluice_command_records_skipped_total{reason=\"malformed\"}";
    crate::harness::wait_for_metric(&sluice.url, skipped, 1.0, WAIT).await;
    let applied = "sluice_commands_total{action=\"resolve\",outcome=\"applied\"}";
    assert_eq!(crate::harness::metric(&sluice.url, applied).await, 1.0);
}

/// A `[[maintenance]]` window open now (from an hour ago to an hour ahead, UTC, every day)
/// silences what it matches through the real binary: the other source's incident shows, the
/// matched one never opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_open_now_silences_what_it_matches() {
    let minutes = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        % 1440;
    let hhmm = |m: u64| format!("{:02}:{:02}", m / 60, m % 60);
    let config = format!(
        "{CONFIG}\n[[maintenance]]\nname = \"patching\"\nmatchers = [{{ name = \"source\", op = \"=\", value = \"db-9\" }}]\nstart = \"{}\"\nend = \"{}\"\n",
        hhmm((minutes + 1440 - 60) % 1440),
        hhmm((minutes + 60) % 1440),
    );
    let sluice = Sluice::start("maintenance", "embedded", &config);
    trigger(&sluice.url, "maint", "m-1", "db-9", "critical").await;
    trigger(&sluice.url, "maint", "m-2", "web-1", "critical").await;
    let page = until_total(&sluice.url, "/api/v1/incidents?routing_key=maint", 1).await;
    assert_eq!(page["incidents"][0]["title"], "disk full", "{page}");
    let id = page["incidents"][0]["incident_id"].as_str().unwrap();
    let (_, one) = get(
        &sluice.url,
        "/api/v1/incidents/{incident_id}",
        &format!("/api/v1/incidents/{id}"),
    )
    .await;
    assert_eq!(one["incident"]["alerts"][0]["source"], "web-1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, page) = get(
        &sluice.url,
        "/api/v1/incidents",
        "/api/v1/incidents?routing_key=maint",
    )
    .await;
    assert_eq!(page["total"], 1, "db-9 is in maintenance: {page}");
}
