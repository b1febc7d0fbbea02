//! Rate limits through the real binary: PagerDuty's 429 (and the v1 API's 403) with its body
//! and `Retry-After`, 503 with `Retry-After` for the Alertmanager API, a flooding key beside a
//! quiet one that loses nothing (read back from a real broker), the environment override, and
//! limits set and lifted by a reload.
//! Nothing here times anything: the limits are set so that the requests a test sends back to
//! back are far more than a burst, and the assertions count answers and events.

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sluice::send::{pd_event, HttpClient, Reply};

use crate::harness::{by_incident, metric, reload, Broker, Reader, Sluice};

/// PagerDuty's body for an event over its rate limit.
fn throttled() -> Value {
    json!({
        "status": "throttle exceeded",
        "message": "Requests for this service are arriving too quickly. Please retry later."
    })
}

fn trigger(routing_key: &str, dedup_key: &str) -> Vec<u8> {
    pd_event(
        routing_key,
        "trigger",
        dedup_key,
        "web-1",
        "critical",
        "web-1 is down",
    )
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {:?}", reply.headers))
}

/// Posts `body()` to `path` until the answer is not `ok` (at most `max` times); returns how
/// many were `ok` and the first other answer.
async fn until_refused(
    client: &mut HttpClient,
    path: &str,
    ok: u16,
    max: usize,
    body: impl Fn(usize) -> Vec<u8>,
) -> (usize, Reply) {
    for i in 0..max {
        let reply = client.post(path, body(i)).await.unwrap();
        if reply.status != ok {
            return (i, reply);
        }
    }
    panic!("{max} requests to {path} all answered {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_senders_over_their_limit_get_pagerdutys_throttle_answer() {
    // One event a second per key, three at once.
    let config = "[limits]\nper_routing_key = 1\nburst = 3\n";
    let sluice = Sluice::start("limits-pd", "embedded", config);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();

    let (accepted, reply) = until_refused(&mut client, "/v2/enqueue", 202, 20, |i| {
        trigger("svc-a", &format!("a{i}"))
    })
    .await;
    assert!(
        (3..20).contains(&accepted),
        "the burst, then the limit: {accepted}"
    );
    assert_eq!(
        reply.status,
        429,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json(), throttled());
    assert!(
        (1..=3).contains(&retry_after(&reply)),
        "{:?}",
        reply.headers
    );

    // Change events count against the same key, and are answered the same way.
    let change =
        json!({"routing_key": "svc-a", "payload": {"summary": "deploy 42", "source": "ci"}});
    let reply = client
        .post("/v2/change/enqueue", change.to_string())
        .await
        .unwrap();
    assert_eq!((reply.status.as_u16(), reply.json()), (429, throttled()));

    // The 2010-04-15 API answers 403, as PagerDuty's v1 documents for a throttled sender.
    let v1 = |i: usize| {
        json!({"service_key": "svc-v1", "event_type": "trigger", "incident_key": format!("v{i}"),
               "description": "disk full"})
        .to_string()
        .into_bytes()
    };
    let path = "/generic/2010-04-15/create_event.json";
    let (accepted, reply) = until_refused(&mut client, path, 200, 20, v1).await;
    assert!(accepted >= 3, "{accepted}");
    assert_eq!((reply.status.as_u16(), reply.json()), (403, throttled()));
    assert!(retry_after(&reply) >= 1);

    // Another key has its own burst.
    for i in 0..3 {
        let reply = client
            .post("/v2/enqueue", trigger("svc-b", &format!("b{i}")))
            .await
            .unwrap();
        assert_eq!(reply.status, 202);
    }
    let refused = r#"sluice_events_rejected_total{integration="pagerduty",reason="rate_limited"}"#;
    assert!(metric(&sluice.url, refused).await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alertmanager_api_over_the_limit_gets_503_with_retry_after() {
    let config = r#"
[limits]
per_routing_key = 1
burst = 5
[integrations.alertmanager_api]
routing_key = "prometheus"
"#;
    let sluice = Sluice::start("limits-am", "embedded", config);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    let alerts = |tag: &str, n: usize| {
        let alerts: Vec<Value> = (0..n)
            .map(|i| json!({"labels": {"alertname": "Down", "instance": format!("{tag}-{i}")}}))
            .collect();
        serde_json::to_vec(&alerts).unwrap()
    };
    let reply = client
        .post("/api/v2/alerts", alerts("first", 5))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // Five events are the burst: five more wait five seconds (one a second), and the sender is
    // told so. Alertmanager and Prometheus retry 5xx, not 429.
    let reply = client
        .post("/api/v2/alerts", alerts("second", 5))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["status"], "rate limited");
    assert!(
        (1..=5).contains(&retry_after(&reply)),
        "{:?}",
        reply.headers
    );
    // More events in one request than the burst could never pass: 413, naming the key.
    let reply = client
        .post("/api/v2/alerts", alerts("third", 6))
        .await
        .unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.json()["errors"],
        json!(["a request may carry at most 5 events (limits.burst); split it"])
    );
    let url = &sluice.url;
    let by = |reason: &str| {
        format!(
            r#"sluice_events_rejected_total{{integration="alertmanager_api",reason="{reason}"}}"#
        )
    };
    assert_eq!(
        metric(url, &by("rate_limited")).await,
        5.0,
        "counted in events"
    );
    assert_eq!(metric(url, &by("over_burst")).await, 6.0);
    let received = r#"sluice_events_received_total{integration="alertmanager_api"}"#;
    assert_eq!(
        metric(url, received).await,
        5.0,
        "nothing of a refused request"
    );
}

/// A flooding key and a quiet key at once: the flood is held to its limit, the quiet key's
/// every event is answered 202 and reaches its incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_key_costs_a_quiet_key_nothing() {
    let broker = Broker::start();
    let config = r#"
[limits]
per_routing_key = 20
[[correlate.rules]]
name = "by-source"
group_by = ["source"]
group_wait = "1s"
group_interval = "1h"
pause_transient = "0s"
"#;
    let mut sluice = Sluice::start("limits-flood", &broker.bootstrap, config);
    const FLOOD: usize = 400;
    const QUIET: usize = 15;
    let started = std::time::Instant::now();
    let mut floods = Vec::new();
    for conn in 0..4 {
        let url = sluice.url.clone();
        floods.push(tokio::spawn(async move {
            let mut client = HttpClient::connect(&url).await.unwrap();
            let mut statuses = Vec::new();
            for i in 0..FLOOD / 4 {
                let body = trigger("noisy", &format!("n{conn}-{i}"));
                statuses.push(
                    client
                        .post("/v2/enqueue", body)
                        .await
                        .unwrap()
                        .status
                        .as_u16(),
                );
            }
            statuses
        }));
    }
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    for i in 0..QUIET {
        let body = pd_event(
            "quiet",
            "trigger",
            &format!("q{i}"),
            "db-1",
            "critical",
            "db-1 slow",
        );
        let reply = client.post("/v2/enqueue", body).await.unwrap();
        assert_eq!(
            reply.status,
            202,
            "quiet event {i}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let mut flood = Vec::new();
    for f in floods {
        flood.extend(f.await.unwrap());
    }
    // What the limit lets through in the time the flood took: its burst and 20 a second.
    let most = 20 + (20.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    let accepted = flood.iter().filter(|s| **s == 202).count();
    let limited = flood.iter().filter(|s| **s == 429).count();
    assert_eq!(accepted + limited, FLOOD, "only 202 and 429: {flood:?}");
    assert!(
        (20..=most).contains(&accepted),
        "held to its limit: {accepted} of at most {most}"
    );

    // SIGTERM publishes every pending update: each incident's last message is final.
    assert!(sluice.terminate().success());
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    let both = |seen: &[crate::harness::Received]| {
        let keys = |rk: &str| seen.iter().any(|m| m.body["routing_key"] == rk);
        keys("quiet") && keys("noisy")
    };
    reader.until("both keys' incidents", both).await;
    reader.extra_within(std::time::Duration::from_secs(2)).await;
    let last = |rk: &str| {
        let incidents = by_incident(&reader.seen);
        let mine: Vec<Value> = incidents
            .values()
            .filter(|m| m[0].body["routing_key"] == rk)
            .map(|m| m.last().unwrap().body.clone())
            .collect();
        assert_eq!(mine.len(), 1, "one incident for {rk}: {mine:#?}");
        mine.into_iter().next().unwrap()
    };
    let quiet = last("quiet");
    assert_eq!(
        (quiet["alert_count"].as_u64(), quiet["event_count"].as_u64()),
        (Some(QUIET as u64), Some(QUIET as u64))
    );
    let noisy = last("noisy");
    assert_eq!(
        noisy["event_count"].as_u64(),
        Some(accepted as u64),
        "every 202 counted, no other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_sets_the_per_key_limit() {
    let env = [("SLUICE_RATE_LIMIT_PER_ROUTING_KEY", "2")];
    let sluice = Sluice::start_with_env("limits-env", "embedded", "", &env);
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    let (accepted, reply) = until_refused(&mut client, "/v2/enqueue", 202, 20, |i| {
        trigger("svc", &format!("e{i}"))
    })
    .await;
    assert!(
        (2..20).contains(&accepted),
        "a burst of 2, then 2 a second: {accepted}"
    );
    assert_eq!((reply.status.as_u16(), reply.json()), (429, throttled()));

    // A value that is not a rate is refused before anything starts, naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check-config", "config/sluice.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SLUICE_RATE_LIMIT_PER_ROUTING_KEY", "lots")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "SLUICE_RATE_LIMIT_PER_ROUTING_KEY: \"lots\" is not a whole number of events per \
             second greater than zero"
        ),
        "{err}"
    );
}

async fn all_accepted(client: &mut HttpClient, round: &str) {
    for i in 0..20 {
        let body = trigger("svc", &format!("{round}{i}"));
        let reply = client.post("/v2/enqueue", body).await.unwrap();
        assert_eq!(reply.status, 202, "{round} {i}");
    }
}

/// A reload takes up new rates at once: none, then two a second per key, then none again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_sets_and_lifts_rate_limits_without_a_restart() {
    let sluice = Sluice::start("limits-reload", "embedded", "");
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    all_accepted(&mut client, "before").await;
    let config = "[limits]\nper_routing_key = 2\nburst = 2\n";
    std::fs::write(sluice.config_path(), config).unwrap();
    let answer = reload(&mut client).await;
    assert_eq!(answer["need_restart"], json!([]), "{answer}");
    let (accepted, reply) = until_refused(&mut client, "/v2/enqueue", 202, 20, |i| {
        trigger("svc", &format!("limited{i}"))
    })
    .await;
    assert!((2..20).contains(&accepted), "{accepted}");
    assert_eq!((reply.status.as_u16(), reply.json()), (429, throttled()));
    std::fs::write(sluice.config_path(), "").unwrap();
    reload(&mut client).await;
    all_accepted(&mut client, "after").await;
}
