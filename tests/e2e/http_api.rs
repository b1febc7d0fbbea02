//! The HTTP surface over real sockets: the server bound on port 0 in this process, publishing
//! to the embedded broker. Every PagerDuty validation error, the size limit, routing and health.

use serde_json::{json, Value};
use sluice::app::Running;
use sluice::send::HttpClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{embedded_config, in_process, post_expect};

async fn start() -> (Running, HttpClient) {
    in_process(embedded_config("")).await
}

fn invalid(errors: &[&str]) -> Value {
    json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pagerduty_validation_error_is_answered_with_the_field() {
    let (running, mut client) = start().await;
    let long_key = "k".repeat(256);
    let cases: Vec<(String, u16, Value)> = vec![
        (
            r#"{"event_action":"trigger","payload":{"summary":"s","source":"h","severity":"info"}}"#.into(),
            400,
            invalid(&["'routing_key' is missing or blank"]),
        ),
        (r#"{"routing_key":"rk","event_action":"fire","dedup_key":"k"}"#.into(), 400, invalid(&["'event_action' must be one of trigger, acknowledge, resolve"])),
        (r#"{"routing_key":"rk","event_action":"trigger","payload":{"source":"h","severity":"info"}}"#.into(), 400, invalid(&["'payload.summary' is missing or blank"])),
        (r#"{"routing_key":"rk","event_action":"trigger","payload":{"summary":"s","severity":"info"}}"#.into(), 400, invalid(&["'payload.source' is missing or blank"])),
        (r#"{"routing_key":"rk","event_action":"trigger","payload":{"summary":"s","source":"h"}}"#.into(), 400, invalid(&["'payload.severity' is missing or blank"])),
        (
            r#"{"routing_key":"rk","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"sev1"}}"#.into(),
            400,
            invalid(&["'payload.severity' must be one of critical, error, warning, info"]),
        ),
        (format!(r#"{{"routing_key":"rk","event_action":"resolve","dedup_key":"{long_key}"}}"#), 400, invalid(&["'dedup_key' must be at most 255 characters"])),
        (r#"{"routing_key":"rk","event_action":"acknowledge"}"#.into(), 400, invalid(&["'dedup_key' is required for acknowledge and resolve events"])),
        (r#"{"routing_key":"rk","event_action":"resolve"}"#.into(), 400, invalid(&["'dedup_key' is required for acknowledge and resolve events"])),
        (
            r#"{"routing_key":"rk","event_action":"trigger","payload":{}}"#.into(),
            400,
            invalid(&["'payload.summary' is missing or blank", "'payload.source' is missing or blank", "'payload.severity' is missing or blank"]),
        ),
        (
            "{\"routing_key\": \"rk\", ".into(),
            400,
            json!({"status": "Unrecognized object", "message": "Event object format is unrecognized", "errors": ["JSON parse error"]}),
        ),
        (
            "[{\"routing_key\": \"rk\"}]".into(),
            400,
            json!({"status": "Unrecognized object", "message": "Event object format is unrecognized", "errors": ["JSON is not an object"]}),
        ),
    ];
    for (body, status, want) in cases {
        let reply = client.post("/v2/enqueue", body.clone()).await.unwrap();
        assert_eq!(reply.status.as_u16(), status, "{body}");
        assert_eq!(reply.json(), want, "{body}");
        assert_eq!(reply.headers["content-type"], "application/json");
    }
    running.shutdown();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_512_kb_get_413_naming_the_limit() {
    let (running, mut client) = start().await;
    let filler = "x".repeat(512 * 1024);
    let body = format!(
        r#"{{"routing_key":"rk","event_action":"trigger","payload":{{"summary":"s","source":"h","severity":"info","custom_details":{{"f":"{filler}"}}}}}}"#
    );
    let reply = client.post("/v2/enqueue", body).await.unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.json(),
        json!({"status": "invalid event", "message": "Request body is too large", "errors": ["'body' must be at most 524288 bytes"]})
    );

    // Chunked, so the size is only known while reading.
    let mut raw = tokio::net::TcpStream::connect(running.addr())
        .await
        .unwrap();
    raw.write_all(b"POST /v2/enqueue HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n").await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..9 {
        let head = format!("{:x}\r\n", chunk.len());
        if raw.write_all(head.as_bytes()).await.is_err()
            || raw.write_all(&chunk).await.is_err()
            || raw.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = raw.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = raw.read_to_end(&mut resp).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    running.shutdown();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_summaries_are_accepted_truncated() {
    let (running, mut client) = start().await;
    let body = format!(
        r#"{{"routing_key":"rk","event_action":"trigger","dedup_key":"long","payload":{{"summary":"{}","source":"h","severity":"info"}}}}"#,
        "s".repeat(5000)
    );
    let reply = client.post("/v2/enqueue", body).await.unwrap();
    assert_eq!(reply.status, 202);
    assert_eq!(reply.json()["dedup_key"], "long");
    running.shutdown();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_events_routing_and_health() {
    let (running, mut client) = start().await;
    let reply = client
        .post("/generic/2010-04-15/create_event.json", r#"{"service_key":"svc","event_type":"trigger","incident_key":"srv01/HTTP","description":"HTTP down"}"#)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"status": "success", "message": "Event processed", "incident_key": "srv01/HTTP"})
    );

    let reply = client.post("/v3/enqueue", "{}").await.unwrap();
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["message"], "no route for POST /v3/enqueue");
    let reply = client.get("/v2/enqueue").await.unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "POST");

    assert_eq!(client.get("/healthz").await.unwrap().status, 200);
    let ready = client.get("/readyz").await.unwrap();
    let text = String::from_utf8_lossy(&ready.body).into_owned();
    let rules = text
        .strip_prefix("ready\nrules ")
        .and_then(|r| r.strip_suffix('\n'));
    assert_eq!(ready.status, 200, "{text}");
    assert!(
        rules.is_some_and(|r| r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
    let metrics = String::from_utf8(client.get("/metrics").await.unwrap().body.to_vec()).unwrap();
    assert!(
        metrics.contains(&format!(
            "sluice_rules_info{{hash=\"{}\"}} 1",
            rules.unwrap()
        )),
        "{metrics}"
    );
    // Load balancers probe with HEAD: GET's status and length, no body, and the connection
    // stays usable.
    let ready_len = ready.body.len().to_string();
    for (path, len) in [("/healthz", "3"), ("/readyz", ready_len.as_str())] {
        let head = client
            .request(http::Method::HEAD, path, bytes::Bytes::new())
            .await
            .unwrap();
        assert_eq!(
            (
                head.status.as_u16(),
                &head.headers["content-length"],
                head.body.len()
            ),
            (200, &http::HeaderValue::from_str(len).unwrap(), 0),
            "{path}"
        );
    }
    let metrics = client.get("/metrics").await.unwrap();
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("# HELP sluice_events_received_total"),
        "{text}"
    );
    assert!(
        text.contains("sluice_request_duration_seconds_bucket{integration=\"pagerduty_v1\""),
        "{text}"
    );

    running.shutdown();
    let report = running.wait().await;
    assert_eq!(report, sluice::app::ShutdownReport::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_hold_incidents_until_deleted() {
    let (running, mut client) = in_process(embedded_config(
        "[[correlate.rules]]\ngroup_by = [\"source\"]\ngroup_wait = \"0s\"\npause_transient = \"0s\"",
    ))
    .await;

    let created = client
        .post(
            "/api/v1/silences",
            format!(
                r#"{{"matchers":[{{"name":"source","op":"=","value":"db-1"}}],"ends_at":"{}","created_by":"ana","comment":"disk swap"}}"#,
                crate::harness::from_now(std::time::Duration::from_secs(86_400))
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let silence = created.json();
    let id = silence["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sil_"));
    assert_eq!(silence["status"], "active");
    assert_eq!(
        silence["matchers"],
        json!([{"name": "source", "op": "=", "value": "db-1"}])
    );
    let listed = client.get("/api/v1/silences").await.unwrap().json();
    assert_eq!(listed[0]["id"], id.as_str());
    let bad = client
        .post("/api/v1/silences", r#"{"matchers":[]}"#)
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json()["errors"][0],
        "'matchers' must be a non-empty array"
    );

    for source in ["db-1", "db-2"] {
        let body = sluice::send::pd_event(
            "svc",
            "trigger",
            &format!("{source}/disk"),
            source,
            "critical",
            "disk failing",
        );
        assert_eq!(client.post("/v2/enqueue", body).await.unwrap().status, 202);
    }
    let mut reader = crate::harness::Reader::new(running.bootstrap_servers(), "sluice.incidents");
    reader
        .until("the unsilenced incident", |seen| !seen.is_empty())
        .await;
    assert_eq!(
        reader.extra_within(std::time::Duration::from_secs(1)).await,
        0,
        "db-1 is silenced"
    );
    assert_eq!(reader.seen[0].body["group_key"]["source"], "db-2");

    let deleted = client
        .request(http::Method::DELETE, &format!("/api/v1/silences/{id}"), "")
        .await
        .unwrap();
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["status"], "expired");
    reader
        .until("db-1 once its silence is gone", |seen| seen.len() >= 2)
        .await;
    assert_eq!(reader.seen[1].body["group_key"]["source"], "db-1");
    assert_eq!(reader.seen[1].body["type"], "opened");
    assert_eq!(
        client
            .request(http::Method::DELETE, "/api/v1/silences/sil_nope", "")
            .await
            .unwrap()
            .status,
        404
    );

    running.shutdown();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_posts_to_the_alertmanager_api_path() {
    let (running, mut client) =
        in_process(embedded_config("[[correlate.rules]]\ngroup_by = [\"labels.alertname\"]\ngroup_wait = \"0s\"\npause_transient = \"0s\"\n[integrations.alertmanager_api]\nrouting_key = \"prometheus-eu1\"")).await;
    let batch = r#"[{"labels":{"alertname":"HighLatency","instance":"api-1:9090","severity":"warning"},"annotations":{"summary":"p99 over 2s"},"startsAt":"2026-11-21T10:00:00Z","generatorURL":"http://prometheus/graph"}]"#;
    post_expect(&mut client, "/api/v2/alerts", batch, 200).await;
    let mut reader = crate::harness::Reader::new(running.bootstrap_servers(), "sluice.incidents");
    reader.until("the incident", |seen| !seen.is_empty()).await;
    let m = &reader.seen[0].body;
    assert_eq!(
        m["routing_key"], "prometheus-eu1",
        "the configured key for this kind"
    );
    assert_eq!(m["group_key"]["labels.alertname"], "HighLatency");
    assert_eq!(m["integrations"], json!(["alertmanager_api"]));
    let listed = client.get("/api/v2/alerts").await.unwrap();
    assert_eq!(listed.status, 200, "GET is Alertmanager's read API");
    assert_eq!(listed.json()[0]["labels"]["alertname"], "HighLatency");
    let put = client
        .request(http::Method::PUT, "/api/v2/alerts", bytes::Bytes::new())
        .await
        .unwrap();
    assert_eq!(put.status, 405, "POST and GET only");
    running.shutdown();
    running.wait().await;
}

/// Vendor APIs at their own paths: Opsgenie's `/v2/alerts` (create, then close by alias, keyed
/// by the GenieKey), PagerDuty's Nagios form endpoint, and a generic mapper named in the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_paths_and_named_mappers_reach_their_formats() {
    let toml = r#"
[[correlate.rules]]
group_by = ["dedup_key"]
group_wait = "0s"
pause_transient = "0s"
[integrations.generic.shopmon]
dedup_key = "/check/id"
summary = "/check/output"
source = "/host"
action_pointer = "/check/state"
action_map = { failing = "trigger", passing = "resolve" }
[integrations.generic.other]
dedup_key = "/id"
"#;
    let (running, mut client) = in_process(embedded_config(toml)).await;
    let genie = [("authorization", "GenieKey ops-team")];
    let created = client
        .request_with(
            http::Method::POST,
            "/v2/alerts",
            &genie,
            r#"{"message":"db-1 down","alias":"db-1-down","priority":"P1","source":"zabbix"}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert_eq!(created.json()["result"], "Request will be processed");
    let closed = client
        .request_with(
            http::Method::POST,
            "/v2/alerts/db-1-down/close?identifierType=alias",
            &genie,
            r#"{"note":"fixed"}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        closed.status,
        202,
        "{}",
        String::from_utf8_lossy(&closed.body)
    );

    let form = "CONTACTPAGER=nagios-key&NOTIFICATIONTYPE=PROBLEM&HOSTNAME=mail-2&SERVICEDESC=SMTP&SERVICESTATE=CRITICAL&SERVICEOUTPUT=connect+timeout&pd_nagios_object=service";
    let nagios = client
        .request_with(
            http::Method::POST,
            "/nagios/2010-04-15/create_event",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await
        .unwrap();
    assert_eq!(
        nagios.status,
        200,
        "{}",
        String::from_utf8_lossy(&nagios.body)
    );

    let mapped = client
        .post("/integrations/generic/shopmon/shop-team", r#"{"host":"shop-3","check":{"id":"chk-9","state":"failing","output":"checkout 500s"}}"#)
        .await
        .unwrap();
    assert_eq!(
        mapped.status,
        202,
        "{}",
        String::from_utf8_lossy(&mapped.body)
    );

    let mut reader = crate::harness::Reader::new(running.bootstrap_servers(), "sluice.incidents");
    reader.until("four messages", |seen| seen.len() >= 4).await;
    let by_key = |rk: &str| -> Vec<(String, String)> {
        reader
            .seen
            .iter()
            .filter(|m| m.body["routing_key"] == rk)
            .map(|m| {
                (
                    m.body["type"].as_str().unwrap().to_string(),
                    m.body["alerts"][0]["dedup_key"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        by_key("ops-team"),
        [
            ("opened".into(), "db-1-down".into()),
            ("resolved".into(), "db-1-down".into())
        ]
    );
    assert_eq!(
        by_key("nagios-key"),
        [("opened".into(), "mail-2/SMTP".into())]
    );
    assert_eq!(by_key("shop-team"), [("opened".into(), "chk-9".into())]);
    assert_eq!(client.get("/v2/alerts").await.unwrap().status, 405);
    running.shutdown();
    running.wait().await;
}
