//! Ingest and admin auth through the real binary: integration secrets (two valid during a
//! rotation) in a header, a query parameter and the path; the routing key allowlist file
//! changed while sluice runs; PagerDuty's own refusal on its endpoints; the real `amtool`
//! (Debian's `prometheus-alertmanager` package) creating, listing and expiring silences
//! with and without a bearer token; routing-key-limited tokens and broad silences in memory
//! and Kafka mode; the warning for open admin routes; no secret or token in the log or the
//! metrics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Value};
use sluice::send::HttpClient;

use crate::harness::{amtool, free_port, from_now, metric, post, Broker, Sluice, TempDir, WAIT};

const GRAFANA_NEW: &str = "grafana-secret-new-7d1f";
const GRAFANA_OLD: &str = "grafana-secret-old-2b9c";
const PD_SECRET: &str = "pd-secret-q-51ce";
const AM_SECRET: &str = "am-path-secret-93aa";
const OPS: &str = "ops-token-5f0c2a9e81d4";
const READER: &str = "reader-token-c3b7e6a1";
const TEAM_A: &str = "team-a-token-90aa7c1e";
const BROAD: &str = "broad-token-4e2d8b6f";
const ENV_TOKEN: &str = "env-token-1a2b3c4d5e6f";

const GRAFANA_BODY: &str =
    include_str!("../fixtures/integrations/grafana/firing_batch.request.json");
const AM_BODY: &str =
    include_str!("../fixtures/integrations/alertmanager_webhook/firing_batch.request.json");

fn pd(key: &str, dedup: &str) -> Vec<u8> {
    sluice::send::pd_event(key, "trigger", dedup, "db-1", "critical", "disk full")
}

/// Replaces `path` in one move, as the allowlist file's readers expect of its writers.
fn write_keys(path: &Path, keys: &str) {
    let next = path.with_extension("new");
    std::fs::write(&next, keys).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// Posts until `status` is what `path` answers, or panics after `within`; how long it took.
async fn until_status(
    url: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    status: u16,
) -> Duration {
    let started = Instant::now();
    loop {
        let (got, answer) = post(url, path, headers, body.to_string()).await;
        if got == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} still answers {got} {answer}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_secrets_rotate_and_the_allowlist_file_is_read_again_while_running() {
    let dir = TempDir::new("auth-ingest");
    let keys = dir.0.join("routing-keys");
    std::fs::write(&keys, "# teams\npayments\n").unwrap();
    let config = format!(
        r#"
[auth]
routing_keys_recheck = "200ms"
[auth.integrations.grafana]
secrets = ["{GRAFANA_NEW}", "{GRAFANA_OLD}"]
header = "X-Sluice-Secret"
[auth.integrations.pagerduty]
secrets = ["{PD_SECRET}"]
query = "token"
[auth.integrations.alertmanager_webhook]
secrets = ["{AM_SECRET}"]
path = true
"#
    );
    let sluice = Sluice::start_with_env(
        "auth-ingest",
        "embedded",
        &config,
        &[
            ("SLUICE_ROUTING_KEYS_FILE", keys.to_str().unwrap()),
            ("SLUICE_LOG_LEVEL", "debug"),
        ],
    );
    let url = sluice.url.as_str();
    let grafana = "/integrations/grafana/payments";

    // Either secret of the rotation; none, or another, is 401 naming where it goes.
    for secret in [GRAFANA_NEW, GRAFANA_OLD] {
        let (status, answer) =
            post(url, grafana, &[("X-Sluice-Secret", secret)], GRAFANA_BODY).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = post(url, grafana, &[], GRAFANA_BODY).await;
    assert_eq!(status, 401);
    assert_eq!(
        answer,
        json!({"status": "unauthorized", "message": "a secret is required in the 'x-sluice-secret' header (auth.integrations.grafana)", "errors": []})
    );
    let wrong = [("X-Sluice-Secret", "grafana-secret-new-7d1F")];
    let (status, answer) = post(url, grafana, &wrong, GRAFANA_BODY).await;
    assert_eq!(status, 401, "{answer}");
    // A key off the list: 403, whatever the secret.
    let new = [("X-Sluice-Secret", GRAFANA_NEW)];
    let (status, answer) = post(url, "/integrations/grafana/checkout", &new, GRAFANA_BODY).await;
    assert_eq!(status, 403);
    assert_eq!(answer["status"], "forbidden");

    // PagerDuty: its own 400 for a key it does not know, and for a missing or wrong secret.
    let enqueue = format!("/v2/enqueue?token={PD_SECRET}");
    let (status, answer) = post(url, &enqueue, &[], pd("payments", "a1")).await;
    assert_eq!(
        (status, &answer["status"]),
        (202, &json!("success")),
        "{answer}"
    );
    let (status, answer) = post(url, &enqueue, &[], pd("checkout", "a2")).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["Invalid routing key"]})
    );
    for path in ["/v2/enqueue", "/v2/enqueue?token=pd-secret-q-51cf"] {
        let (status, answer) = post(url, path, &[], pd("payments", "a3")).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(answer["status"], "invalid event");
        assert!(answer["errors"][0]
            .as_str()
            .unwrap()
            .contains("'token' query parameter"));
    }
    let change = r#"{"routing_key":"checkout","payload":{"summary":"deploy 7","source":"ci"}}"#;
    let (status, answer) = post(
        url,
        &format!("/v2/change/enqueue?token={PD_SECRET}"),
        &[],
        change,
    )
    .await;
    assert_eq!(
        (status, &answer["errors"][0]),
        (400, &json!("Invalid routing key"))
    );

    // The path: /secret/<secret> before the endpoint.
    let am = "/integrations/alertmanager_webhook/payments";
    let (status, answer) = post(url, &format!("/secret/{AM_SECRET}{am}"), &[], AM_BODY).await;
    assert!((200..300).contains(&status), "{status} {answer}");
    let (status, _) = post(url, am, &[], AM_BODY).await;
    assert_eq!(status, 401);

    // The file changes while sluice runs: checkout joins, then payments leaves.
    write_keys(&keys, "payments\ncheckout\n");
    let took = until_status(
        url,
        "/integrations/grafana/checkout",
        &new,
        GRAFANA_BODY,
        200,
    )
    .await;
    eprintln!("checkout taken {took:?} after the file changed");
    write_keys(&keys, "checkout\n");
    let took = until_status(url, grafana, &new, GRAFANA_BODY, 403).await;
    eprintln!("payments refused {took:?} after the file changed");
    // A file emptied by mistake leaves the keys in force.
    write_keys(&keys, "# nobody\n");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = post(url, "/integrations/grafana/checkout", &new, GRAFANA_BODY).await;
    assert_eq!(status, 200);

    for (integration, reason, at_least) in [
        ("grafana", "secret_missing", 1.0),
        ("grafana", "secret_wrong", 1.0),
        ("grafana", "routing_key_not_allowed", 2.0),
        ("pagerduty", "routing_key_not_allowed", 2.0),
        ("pagerduty", "secret_missing", 1.0),
        ("pagerduty", "secret_wrong", 1.0),
        ("alertmanager_webhook", "secret_missing", 1.0),
    ] {
        let name = format!(
            "sluice_events_rejected_total{{integration=\"{integration}\",reason=\"{reason}\"}}"
        );
        let value = metric(url, &name).await;
        assert!(value >= at_least, "{name} is {value}");
    }
    let mut client = HttpClient::connect(url).await.unwrap();
    let metrics = String::from_utf8(client.get("/metrics").await.unwrap().body.to_vec()).unwrap();
    let log = sluice.log_text();
    assert!(log.contains("routing key allowlist read again"), "{log}");
    assert!(log.contains("routing key allowlist file not used; the keys in force stay"));
    for secret in [
        GRAFANA_NEW,
        GRAFANA_OLD,
        PD_SECRET,
        AM_SECRET,
        "51cf",
        "7d1F",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(!metrics.contains(secret), "{secret} in the metrics");
    }
}

/// An amtool HTTP config giving `token` as a bearer token.
fn bearer_config(dir: &Path, name: &str, token: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(
        &path,
        format!("authorization:\n  type: Bearer\n  credentials: {token}\n"),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_manages_silences_with_and_without_a_token() {
    // Without a token configured, the admin routes are open, as in the quick start.
    let open = Sluice::start("auth-amtool-open", "embedded", "");
    let (ok, id, err) = amtool(
        &open.url,
        None,
        &[
            "silence",
            "add",
            "alertname=DiskFull",
            "instance=~db-.*",
            "-c",
            "disk swap",
            "-a",
            "ana",
            "-d",
            "2h",
        ],
    );
    assert!(ok, "amtool silence add: {err}");
    assert!(id.starts_with("sil_"), "{id}");
    let (ok, listed, err) = amtool(&open.url, None, &["silence", "query", "-o", "json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(
        listed[0]["matchers"],
        json!([
            {"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true},
            {"name": "instance", "value": "db-.*", "isRegex": true, "isEqual": true}
        ])
    );
    // The v1 API shows the same silence under sluice's field names.
    let mut client = HttpClient::connect(&open.url).await.unwrap();
    let v1 = client.get("/api/v1/silences").await.unwrap().json();
    assert_eq!(
        v1[0]["matchers"],
        json!([
            {"name": "class", "op": "=", "value": "DiskFull"},
            {"name": "labels.instance", "op": "=~", "value": "db-.*"}
        ])
    );
    let (ok, _, err) = amtool(&open.url, None, &["silence", "expire", &id]);
    assert!(ok, "{err}");
    let v1 = client
        .get(&format!("/api/v1/silences/{id}"))
        .await
        .unwrap()
        .json();
    assert_eq!(v1["status"], "expired");
    assert!(
        open.log_text().contains("token=\"anonymous\""),
        "{}",
        open.log_text()
    );

    // With tokens: none is 401, a read-only one 403, a writer's or the environment's work.
    let config = format!(
        r#"
[[auth.tokens]]
name = "ops"
token = "{OPS}"
scopes = ["read", "write"]
[[auth.tokens]]
name = "reader"
token = "{READER}"
scopes = ["read"]
"#
    );
    let guarded = Sluice::start_with_env(
        "auth-amtool",
        "embedded",
        &config,
        &[("SLUICE_ADMIN_TOKEN", ENV_TOKEN)],
    );
    let dir = TempDir::new("amtool-http");
    let ops = bearer_config(&dir.0, "ops", OPS);
    let reader = bearer_config(&dir.0, "reader", READER);
    let env = bearer_config(&dir.0, "env", ENV_TOKEN);
    let guessed = bearer_config(&dir.0, "guessed", "ops-token-5f0c2a9e81d5");
    let add = [
        "silence",
        "add",
        "alertname=DiskFull",
        "-c",
        "disk swap",
        "-a",
        "ana",
        "-d",
        "2h",
    ];
    for (file, why) in [
        (None, "no token"),
        (Some(guessed.as_path()), "an unknown token"),
        (Some(reader.as_path()), "a read-only token"),
    ] {
        let (ok, out, err) = amtool(&guarded.url, file, &add);
        assert!(!ok, "amtool with {why} created {out}");
        eprintln!("amtool with {why}: {}", err.trim());
    }
    let (ok, id, err) = amtool(&guarded.url, Some(&ops), &add);
    assert!(ok, "{err}");
    let (ok, listed, err) = amtool(&guarded.url, Some(&reader), &["silence", "query", "-q"]);
    assert!(ok, "{err}");
    assert_eq!(listed, id);
    let (ok, _, _) = amtool(&guarded.url, None, &["silence", "query", "-q"]);
    assert!(!ok, "a query without a token");
    let (ok, env_id, err) = amtool(&guarded.url, Some(&env), &add);
    assert!(ok, "SLUICE_ADMIN_TOKEN: {err}");
    let (ok, _, err) = amtool(&guarded.url, Some(&reader), &["silence", "expire", &id]);
    assert!(!ok, "a read-only token expired a silence: {err}");
    let (ok, _, err) = amtool(
        &guarded.url,
        Some(&ops),
        &["silence", "expire", &id, &env_id],
    );
    assert!(ok, "{err}");

    // Raw HTTP: the JSON refusals.
    let (status, answer) = post(&guarded.url, "/api/v1/silences", &[], "{}").await;
    assert_eq!(status, 401);
    assert_eq!(
        answer,
        json!({"status": "unauthorized", "message": "admin routes need a token: Authorization: Bearer <token>", "errors": []})
    );
    let bearer = format!("Bearer {READER}");
    let (status, answer) = post(
        &guarded.url,
        "/api/v2/silences",
        &[("Authorization", &bearer)],
        "{}",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        answer["message"],
        "token \"reader\" does not have the write scope"
    );

    let url = guarded.url.as_str();
    for (name, at_least) in [
        (
            "sluice_admin_changes_total{action=\"silence_created\"}",
            2.0,
        ),
        (
            "sluice_admin_changes_total{action=\"silence_expired\"}",
            2.0,
        ),
        (
            "sluice_admin_requests_refused_total{reason=\"token_missing\"}",
            3.0,
        ),
        (
            "sluice_admin_requests_refused_total{reason=\"token_unknown\"}",
            1.0,
        ),
        ("sluice_admin_requests_refused_total{reason=\"scope\"}", 3.0),
    ] {
        let value = metric(url, name).await;
        assert!(value >= at_least, "{name} is {value}");
    }
    let log = guarded.log_text();
    for (token, id) in [("ops", &id), ("env", &env_id)] {
        let created = log
            .lines()
            .find(|l| l.contains("silence created") && l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("no 'silence created' line for {id}:\n{log}"));
        assert!(created.contains(&format!("token=\"{token}\"")), "{created}");
    }
    assert!(log.lines().any(|l| l.contains("silence expired")
        && l.contains(id.as_str())
        && l.contains("token=\"ops\"")));
    for secret in [OPS, READER, ENV_TOKEN, "ops-token-5f0c2a9e81d5"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// A silence in Alertmanager's shape, as amtool posts it, lasting `hours`.
fn am_silence(matchers: &[(&str, &str, bool)], hours: u64) -> String {
    let matchers: Vec<Value> = matchers
        .iter()
        .map(|(name, value, regex)| json!({"name": name, "value": value, "isRegex": regex, "isEqual": true}))
        .collect();
    json!({
        "matchers": matchers,
        "startsAt": from_now(Duration::ZERO),
        "endsAt": from_now(Duration::from_secs(hours * 3600)),
        "createdBy": "e2e",
        "comment": "auth test",
    })
    .to_string()
}

/// `DELETE /api/v2/silence/<id>` with `Authorization: <auth>`; the status.
async fn delete(url: &str, id: &str, auth: &str) -> u16 {
    let mut client = HttpClient::connect(url).await.unwrap();
    let path = format!("/api/v2/silence/{id}");
    let reply = client
        .request_with(Method::DELETE, &path, &[("Authorization", auth)], "")
        .await
        .unwrap();
    reply.status.as_u16()
}

/// Team and broad-silence rules, through the v2 API, against sluice at `url`.
async fn limited_tokens_and_broad_silences(url: &str) {
    let as_ = |token: &str| format!("Bearer {token}");
    let (team_a, broad, ops) = (as_(TEAM_A), as_(BROAD), as_(OPS));
    let create = |token: String, body: String| async move {
        post(url, "/api/v2/silences", &[("Authorization", &token)], body).await
    };
    // Another team's key, or none: refused.
    for matchers in [
        &[
            ("routing_key", "team-b", false),
            ("alertname", "Down", false),
        ][..],
        &[("alertname", "Down", false)],
    ] {
        let (status, answer) = create(team_a.clone(), am_silence(matchers, 1)).await;
        assert_eq!(status, 403, "{matchers:?}: {answer}");
        assert!(answer["message"]
            .as_str()
            .unwrap()
            .starts_with("token \"team-a\" may only act on routing keys team-a"));
    }
    let (status, answer) = create(
        team_a.clone(),
        am_silence(
            &[
                ("routing_key", "team-a", false),
                ("alertname", "Down", false),
            ],
            1,
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let own = answer["silenceID"].as_str().unwrap().to_string();
    // Every alert of team-a: needs broad_silence.
    let every = am_silence(
        &[("routing_key", "team-a", false), ("source", ".+", true)],
        1,
    );
    let (status, answer) = create(team_a.clone(), every.clone()).await;
    assert_eq!(status, 403);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("broad_silence"),
        "{answer}"
    );
    let (status, answer) = create(broad.clone(), every).await;
    assert_eq!(status, 200, "{answer}");
    // Longer than auth.max_silence (3d here).
    let (status, answer) = create(
        team_a.clone(),
        am_silence(
            &[
                ("routing_key", "team-a", false),
                ("alertname", "Down", false),
            ],
            80,
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer.as_str().unwrap().contains("auth.max_silence"),
        "{answer}"
    );
    // Team b's silence, made by ops: team-a cannot expire it, ops can; team-a its own.
    let (status, answer) = create(
        ops.clone(),
        am_silence(
            &[
                ("routing_key", "team-b", false),
                ("alertname", "Down", false),
            ],
            1,
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let theirs = answer["silenceID"].as_str().unwrap().to_string();
    assert_eq!(delete(url, &theirs, &team_a).await, 403);
    assert_eq!(delete(url, &own, &team_a).await, 200);
    assert_eq!(delete(url, &theirs, &ops).await, 200);
    // What was made, and only that, is listed (in Kafka mode: read back from the topic).
    let mut client = HttpClient::connect(url).await.unwrap();
    let list = client
        .request_with(
            Method::GET,
            "/api/v2/silences",
            &[("Authorization", &team_a)],
            "",
        )
        .await
        .unwrap()
        .json();
    let states: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["matchers"][0]["value"].as_str().unwrap().to_string(),
                s["status"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states.len(), 3, "{list}");
    for value in ["team-a", "team-b"] {
        assert!(states.iter().any(|(v, _)| v == value), "{states:?}");
    }
}

const TEAM_CONFIG: &str = r#"
[auth]
max_silence = "3d"
[[auth.tokens]]
name = "team-a"
token = "team-a-token-90aa7c1e"
scopes = ["read", "write"]
routing_keys = ["team-a"]
[[auth.tokens]]
name = "broad"
token = "broad-token-4e2d8b6f"
scopes = ["read", "write", "broad_silence"]
[[auth.tokens]]
name = "ops"
token = "ops-token-5f0c2a9e81d4"
scopes = ["read", "write"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_tokens_and_broad_silences_in_memory_mode() {
    let sluice = Sluice::start("auth-teams", "embedded", TEAM_CONFIG);
    limited_tokens_and_broad_silences(&sluice.url).await;
    let value = metric(
        &sluice.url,
        "sluice_admin_requests_refused_total{reason=\"routing_key\"}",
    )
    .await;
    assert!(value >= 3.0, "{value}");
    let value = metric(
        &sluice.url,
        "sluice_admin_requests_refused_total{reason=\"broad_silence\"}",
    )
    .await;
    assert!(value >= 1.0, "{value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_tokens_and_broad_silences_in_kafka_mode() {
    let broker = Broker::start();
    let env = [("SLUICE_PIPELINE", "kafka")];
    let sluice = Sluice::start_with_env("auth-teams-kafka", &broker.bootstrap, TEAM_CONFIG, &env);
    limited_tokens_and_broad_silences(&sluice.url).await;
    let log = sluice.log_text();
    assert!(log.contains("silence created"), "{log}");
    assert!(!log.contains(TEAM_A) && !log.contains(BROAD) && !log.contains(OPS));
}

/// The log of `sluice serve` listening on `listen` with `env`, once it says it listens.
fn startup_log(listen: &str, env: &[(&str, &str)]) -> String {
    let dir = TempDir::new("auth-warning");
    let config = dir.0.join("sluice.toml");
    std::fs::write(&config, "").unwrap();
    let log = dir.0.join("sluice.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("SLUICE_LISTEN", listen)
        .env("SLUICE_KAFKA_BROKERS", "embedded")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("listening") {
            // The warning follows the listening line.
            std::thread::sleep(Duration::from_millis(200));
            break std::fs::read_to_string(&log).unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "sluice did not listen: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    text
}

#[test]
fn open_admin_routes_beyond_loopback_are_warned_about() {
    let port = free_port();
    let warning = "ADMIN ROUTES OPEN";
    let log = startup_log(&format!("0.0.0.0:{port}"), &[]);
    assert!(log.contains(warning), "{log}");
    let log = startup_log(&format!("127.0.0.1:{}", free_port()), &[]);
    assert!(!log.contains(warning), "{log}");
    let log = startup_log(
        &format!("0.0.0.0:{}", free_port()),
        &[("SLUICE_ADMIN_TOKEN", ENV_TOKEN)],
    );
    assert!(!log.contains(warning), "{log}");
    assert!(!log.contains(ENV_TOKEN));
}
