//! The malformed-input table, through the real binary: one row per case (name, request,
//! expected status, a text the answer must contain), well-formed events sent between the bad
//! rows, and afterwards: every well-formed event correlated (read back from a real broker) and
//! no bad one, the process alive and draining cleanly on SIGTERM, and its log free of panics
//! and of raw escape or line-break bytes from the payloads.

use std::io::Write as _;

use crate::harness::{Broker, Reader, Sluice};
use crate::transport::{gzip, send_then_read};

/// SNS signatures off, so the SNS rows reach the parser and its log lines (signatures are
/// checked in `sns_signatures.rs`).
const CONFIG: &str = r#"
[kafka]
partitions = 1
[[correlate.rules]]
group_by = ["dedup_key"]
group_wait = "0s"
pause_transient = "0s"
[integrations.cloudwatch_sns]
verify_signatures = false
"#;

/// One row: a request and what its answer must be.
struct Case {
    name: String,
    request: Vec<u8>,
    status: u16,
    /// A text the answer's body contains; empty only where the body is empty (HEAD, and
    /// hyper's own answers to requests it cannot parse as HTTP).
    says: String,
    /// The `Allow` header a 405 must carry.
    allow: Option<String>,
}

/// A request with `Content-Length` (unless `headers` sets `transfer-encoding`).
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: sluice\r\nconnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
    {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn row(
    name: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
    status: u16,
    says: &str,
) -> Case {
    Case {
        name: name.to_string(),
        request: request(method, path, headers, body.as_ref()),
        status,
        says: says.to_string(),
        allow: None,
    }
}

fn post(name: &str, path: &str, body: impl AsRef<[u8]>, status: u16, says: &str) -> Case {
    row(name, "POST", path, &[], body, status, says)
}

/// A request written byte for byte (not valid HTTP, or framing that must be refused).
fn raw(name: &str, bytes: &[u8], status: u16, says: &str) -> Case {
    Case {
        name: name.to_string(),
        request: bytes.to_vec(),
        status,
        says: says.to_string(),
        allow: None,
    }
}

/// A well-formed PagerDuty trigger with dedup key `key` (202), sent between the bad rows.
fn good(key: &str, summary: &str, headers: &[(&str, &str)], encode: bool) -> Case {
    let event = sluice::send::pd_event("rk-good", "trigger", key, "host-1", "error", summary);
    let body = if encode { gzip(&event) } else { event };
    row(
        &format!("well-formed {key}"),
        "POST",
        "/v2/enqueue",
        headers,
        body,
        202,
        key,
    )
}

const GRAFANA: &str = "/integrations/grafana/rk";
const AM: &str = "/integrations/alertmanager_webhook/rk";
const SNS: &str = "/integrations/cloudwatch_sns/rk";
const SILENCES: &str = "/api/v1/silences";
const V1: &str = "/generic/2010-04-15/create_event.json";

fn deep(open: &str, close: &str, depth: usize) -> String {
    format!("{}{}", open.repeat(depth), close.repeat(depth))
}

/// Every bad body, each row naming what it breaks.
fn bad_bodies() -> Vec<Case> {
    let ten_mb = "x".repeat(10 << 20);
    let pd_big = format!(
        r#"{{"routing_key":"rk","event_action":"trigger","dedup_key":"bad-big","payload":{{"summary":"{ten_mb}","source":"h","severity":"info"}}}}"#
    );
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(pd_big.as_bytes()).unwrap();
    let bomb = bomb.finish().unwrap();
    let mut chunked = b"POST /integrations/grafana/rk HTTP/1.1\r\nhost: sluice\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for chunk in ten_mb.as_bytes().chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut damaged =
        gzip(br#"{"routing_key":"rk","event_action":"trigger","dedup_key":"bad-gz"}"#);
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    let long_key = "k".repeat(300);
    let pd_ok = |extra: &str| {
        format!(
            r#"{{"routing_key":"rk","event_action":"trigger","dedup_key":"bad-{}","payload":{{"summary":"s","source":"h","severity":"info"{extra}}}}}"#,
            extra.len()
        )
    };

    vec![
        // Truncated JSON.
        post("pd truncated", "/v2/enqueue", r#"{"routing_key":"rk","event_action":"trig"#, 400, "JSON parse error"),
        post("pd empty body", "/v2/enqueue", "", 400, "JSON parse error"),
        post("v1 truncated", V1, r#"{"service_key":"svc","event_type":"trigger""#, 400, "JSON parse error"),
        post("am truncated", AM, r#"{"version":"4","alerts":[{"status":"firing""#, 400, "alertmanager_webhook: body is not valid JSON"),
        post("grafana truncated in an array", GRAFANA, r#"{"alerts":[1,2"#, 400, "grafana: body is not valid JSON"),
        post("grafana empty body", GRAFANA, "", 400, "grafana: body is not valid JSON"),
        post("silence truncated", SILENCES, r#"{"matchers":["#, 400, "'body' is not JSON"),
        post("change event truncated", "/v2/change/enqueue", r#"{"routing_key":"#, 400, "JSON parse error"),
        // Wrong types.
        post("pd summary a number", "/v2/enqueue", r#"{"routing_key":"rk","event_action":"trigger","dedup_key":"bad-t1","payload":{"summary":1,"source":"h","severity":"info"}}"#, 400, "'payload.summary' must be a string"),
        post("pd payload a string", "/v2/enqueue", r#"{"routing_key":"rk","event_action":"trigger","dedup_key":"bad-t2","payload":"x"}"#, 400, "'payload' must be an object"),
        post("pd key and action of other types", "/v2/enqueue", r#"{"routing_key":["rk"],"event_action":7}"#, 400, "'routing_key' must be a string"),
        post("pd body an array", "/v2/enqueue", r#"[{"routing_key":"rk"}]"#, 400, "JSON is not an object"),
        post("pd body a string", "/v2/enqueue", r#""trigger""#, 400, "JSON is not an object"),
        post("v1 event_type a bool", V1, r#"{"service_key":"svc","event_type":true,"description":"d"}"#, 400, "'event_type'"),
        post("am alerts a string", AM, r#"{"version":"4","alerts":"x"}"#, 400, "'alerts'"),
        post("am labels an array", AM, r#"{"version":"4","alerts":[{"status":"firing","labels":[1]}]}"#, 400, "'alerts[0].labels' must be an object"),
        post("grafana alerts of numbers", GRAFANA, r#"{"alerts":[1,2]}"#, 400, "'alerts[0]' must be an object"),
        post("am api an object", "/api/v2/alerts?routing_key=rk", r#"{"labels":{}}"#, 400, "alertmanager_api: body is not a JSON array of alerts"),
        post("sentry body an array", "/integrations/sentry/rk", "[1]", 400, "sentry: body is not a JSON object"),
        post("pingdom state a number", "/integrations/pingdom/rk", r#"{"check_id":1,"current_state":5}"#, 400, "'current_state' must be a string"),
        post("uptime kuma heartbeat a string", "/integrations/uptime_kuma/rk", r#"{"heartbeat":"x"}"#, 400, "'heartbeat' must be an object"),
        post("zabbix event_id an array", "/integrations/zabbix/rk", r#"{"event_id":[]}"#, 400, "'event_id' must be a string"),
        post("datadog id an object", "/integrations/datadog/rk", r#"{"id":{}}"#, 400, "'id' must be a string"),
        row("opsgenie message a number", "POST", "/v2/alerts", &[("authorization", "GenieKey rk")], r#"{"message":5,"alias":"a"}"#, 400, "'message'"),
        post("silence matchers a string", SILENCES, r#"{"matchers":"x"}"#, 400, "'matchers' must be a non-empty array"),
        post("silence regex that does not compile", SILENCES, r#"{"matchers":[{"name":"source","op":"=~","value":"("}],"ends_at":"2999-01-01T00:00:00Z","created_by":"a","comment":"c"}"#, 400, "is not a regular expression"),
        // Huge numbers.
        post("pd timestamp 1e400", "/v2/enqueue", pd_ok(r#","timestamp":1e400"#), 400, "JSON parse error"),
        post("pd timestamp past year 9999", "/v2/enqueue", pd_ok(r#","timestamp":"99999-01-01T00:00:00Z""#), 400, "'payload.timestamp'"),
        post("pd timestamp 2^64", "/v2/enqueue", pd_ok(r#","timestamp":18446744073709551616"#), 400, "JSON parse error"),
        post("am startsAt a huge number", AM, r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":99999999999999999999999}]}"#, 400, "alertmanager_webhook"),
        post("silence ends_at 1e400", SILENCES, r#"{"matchers":[{"name":"source","op":"=","value":"a"}],"ends_at":1e400,"created_by":"a","comment":"c"}"#, 400, "number out of range"),
        // Deep nesting.
        post("pd nested 2000 deep", "/v2/enqueue", deep("[", "]", 2000), 400, "JSON parse error"),
        post("pd details nested 2000 deep", "/v2/enqueue", pd_ok(&format!(r#","custom_details":{}"#, deep("{\"a\":", "}", 2000).replace("\"a\":}", "\"a\":1}"))), 400, "JSON parse error"),
        post("grafana nested 5000 deep", GRAFANA, deep("[", "]", 5000), 400, "grafana: body is not valid JSON"),
        post("silence nested 2000 deep", SILENCES, deep("[", "]", 2000), 400, "recursion limit exceeded"),
        // Invalid UTF-8.
        post("pd invalid UTF-8 in a string", "/v2/enqueue", b"{\"routing_key\":\"rk\xff\xfe\",\"event_action\":\"trigger\"}", 400, "JSON parse error"),
        post("grafana invalid UTF-8", GRAFANA, b"{\"alerts\":[{\"labels\":{\"a\":\"\xc3\x28\"}}]}", 400, "grafana: body is not valid JSON"),
        post("routing key in the path not UTF-8", "/integrations/grafana/%ff", "{}", 400, "the routing key in the path is not valid percent-encoded UTF-8"),
        row("X-Routing-Key not ASCII", "POST", "/integrations/grafana", &[("x-routing-key", "r\u{e9}k")], r#"{"alerts":[]}"#, 400, "'X-Routing-Key' must be visible ASCII"),
        row("nagios form not UTF-8", "POST", "/nagios/2010-04-15/create_event", &[("content-type", "application/x-www-form-urlencoded")], "CONTACTPAGER=%ff%fe&HOSTNAME=h", 400, "nagios"),
        post("silence invalid UTF-8", SILENCES, b"{\"matchers\":\"\xff\"}", 400, "'body' is not JSON"),
        // Duplicate keys.
        post("pd routing_key twice", "/v2/enqueue", r#"{"routing_key":"rk-a","routing_key":"rk-b","event_action":"trigger","dedup_key":"bad-dup","payload":{"summary":"s","source":"h","severity":"info"}}"#, 400, "'routing_key' appears more than once"),
        post("pd severity twice", "/v2/enqueue", r#"{"routing_key":"rk","event_action":"trigger","dedup_key":"bad-dup2","payload":{"summary":"s","source":"h","severity":"info","severity":"critical"}}"#, 400, "'payload.severity' appears more than once"),
        post("am label twice", AM, r#"{"version":"4","alerts":[{"status":"firing","fingerprint":"bad-dup3","labels":{"alertname":"A","alertname":"B"}}]}"#, 400, "'alerts[0].labels.alertname' appears more than once"),
        // NUL bytes.
        post("pd raw NUL in a string", "/v2/enqueue", b"{\"routing_key\":\"r\0k\",\"event_action\":\"trigger\"}", 400, "JSON parse error"),
        post("grafana body of NULs", GRAFANA, [0u8; 64], 400, "grafana: body is not valid JSON"),
        post("silence NUL after the object", SILENCES, b"{}\0", 400, "'body' is not JSON"),
        raw("NUL in the path", b"POST /v2/en\0queue HTTP/1.1\r\nhost: sluice\r\ncontent-length: 2\r\n\r\n{}", 400, ""),
        raw("NUL in a header value", b"POST /v2/enqueue HTTP/1.1\r\nhost: sluice\r\nx-routing-key: a\0b\r\ncontent-length: 2\r\n\r\n{}", 400, ""),
        // 10 MB strings (and their compressed and chunked forms).
        post("pd 10 MB summary", "/v2/enqueue", &pd_big, 413, "'body' must be at most 524288 bytes"),
        row("pd 10 MB summary gzipped", "POST", "/v2/enqueue", &[("content-encoding", "gzip")], &bomb, 413, "once decoded from Content-Encoding gzip"),
        raw("grafana 10 MB chunked", &chunked, 413, "'body' must be at most 524288 bytes"),
        // CR, LF and escapes where they would break a log line (they reach the log escaped).
        raw("CRLF in the path", b"POST /v2/enqueue\r\nx-injected: 1 HTTP/1.1\r\nhost: sluice\r\n\r\n", 400, ""),
        post("sns subscription with CRLF and ANSI in its fields", SNS, r#"{"Type":"SubscriptionConfirmation","TopicArn":"arn:aws:sns:eu-west-1:123456789012:evil-arn\r\nFAKE LOG LINE \u001b[31mred\u001b[0m","SubscribeURL":"http://attacker.invalid/\r\n\u001b[2J","Token":"t","Message":"m"}"#, 200, "refused, not fetched"),
        post("sns type with ANSI", SNS, r#"{"Type":"Notification\u001b[2J\r\nFAKE LOG LINE","Message":"{}"}"#, 400, "'Type'"),
        // Wrong content types.
        row("pd as a form", "POST", "/v2/enqueue", &[("content-type", "application/x-www-form-urlencoded")], "routing_key=rk&event_action=trigger", 400, "JSON parse error"),
        row("grafana as multipart", "POST", GRAFANA, &[("content-type", "multipart/form-data; boundary=x")], "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--", 400, "grafana: body is not valid JSON"),
        row("am as XML", "POST", AM, &[("content-type", "application/xml")], "<alerts/>", 400, "alertmanager_webhook: body is not valid JSON"),
        row("nagios form labelled JSON, no host", "POST", "/nagios/2010-04-15/create_event", &[("content-type", "application/json")], "CONTACTPAGER=k&NOTIFICATIONTYPE=PROBLEM", 400, "'HOSTNAME' is missing"),
        row("nagios JSON empty", "POST", "/nagios/2010-04-15/create_event", &[], "{}", 400, "nagios"),
        // Codings and framing.
        row("br body", "POST", "/v2/enqueue", &[("content-encoding", "br")], "{}", 415, "sluice accepts identity, gzip, deflate"),
        row("gzip twice", "POST", GRAFANA, &[("content-encoding", "gzip, gzip")], "{}", 415, "sluice accepts identity, gzip, deflate"),
        row("damaged gzip", "POST", "/v2/enqueue", &[("content-encoding", "gzip")], &damaged, 400, "not complete, valid gzip data"),
        row("gzip header on plain text", "POST", GRAFANA, &[("content-encoding", "gzip")], r#"{"alerts":[]}"#, 400, "not complete, valid gzip data"),
        raw("Content-Length and Transfer-Encoding both", b"POST /v2/enqueue HTTP/1.1\r\nhost: sluice\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400, ""),
        raw("Content-Length not a number", b"POST /v2/enqueue HTTP/1.1\r\nhost: sluice\r\ncontent-length: ten\r\n\r\n{}", 400, ""),
        raw("two different Content-Lengths", b"POST /v2/enqueue HTTP/1.1\r\nhost: sluice\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}", 400, ""),
        // Routing.
        post("routing key of 300 characters", &format!("/integrations/grafana/{long_key}"), "{}", 400, "must be at most 255 characters"),
        post("routing key with a slash", "/integrations/grafana/a/b", "{}", 404, "the routing key is one path segment"),
        post("no routing key anywhere", "/integrations/grafana", "{}", 400, "routing key missing"),
        post("unknown integration", "/integrations/nope/rk", "{}", 404, "no integration \\\"nope\\\""),
        post("generic without a mapper", "/integrations/generic/rk", "{}", 400, "no mapper is configured"),
        row("opsgenie close without an alias", "POST", "/v2/alerts//close", &[("authorization", "GenieKey rk")], "{}", 400, "no Alert API path"),
        post("silences prefix with more letters", "/api/v1/silencesX", "{}", 404, "no route for POST /api/v1/silencesX"),
        row("unknown method name", "BREW", "/v2/enqueue", &[], "{}", 405, "takes POST"),
    ]
}

/// Every method on every path: 405 naming (and `Allow`ing) the ones it takes, or 404.
fn methods() -> Vec<Case> {
    let paths: [(&str, &str); 14] = [
        ("/v2/enqueue", "POST"),
        ("/v2/change/enqueue", "POST"),
        (V1, "POST"),
        (GRAFANA, "POST"),
        ("/integrations/generic/shop/rk", "POST"),
        ("/api/v2/alerts", "GET, HEAD, POST"),
        ("/v2/alerts", "POST"),
        ("/v2/alerts/a1/close", "POST"),
        ("/nagios/2010-04-15/create_event", "POST"),
        (SILENCES, "GET, POST"),
        ("/api/v1/silences/sil_x", "GET, DELETE"),
        ("/healthz", "GET, HEAD"),
        ("/readyz", "GET, HEAD"),
        ("/metrics", "GET"),
    ];
    let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
    let mut cases = Vec::new();
    for (path, allow) in paths {
        for method in methods {
            if allow.split(", ").any(|m| m == method) {
                continue;
            }
            let says = if method == "HEAD" { "" } else { "takes" };
            let mut case = row(
                &format!("{method} {path}"),
                method,
                path,
                &[],
                "",
                405,
                says,
            );
            case.allow = Some(allow.to_string());
            cases.push(case);
        }
    }
    for method in methods {
        let says = if method == "HEAD" {
            String::new()
        } else {
            format!("no route for {method} /nope")
        };
        cases.push(row(
            &format!("{method} /nope"),
            method,
            "/nope",
            &[],
            "",
            404,
            &says,
        ));
    }
    cases
}

/// Checks one answer against its row; the mismatch, if any.
fn check(case: &Case, answer: std::io::Result<crate::transport::Raw>) -> Option<String> {
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return Some(format!("{}: no answer read: {e}", case.name)),
    };
    let body = answer.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let mut wrong = Vec::new();
    if answer.status() != case.status {
        wrong.push(format!("status {} (want {})", answer.status(), case.status));
    }
    if !body.contains(&case.says) {
        wrong.push(format!("body lacks {:?}", case.says));
    }
    if !case.says.is_empty() && serde_json::from_str::<serde_json::Value>(body).is_err() {
        wrong.push("body is not JSON".into());
    }
    if let Some(allow) = &case.allow {
        if answer.header("allow") != Some(allow) {
            wrong.push(format!(
                "Allow {:?} (want {allow:?})",
                answer.header("allow")
            ));
        }
    }
    (!wrong.is_empty()).then(|| {
        let shown: String = answer.text.chars().take(400).collect();
        format!("{}: {}\n    {shown:?}", case.name, wrong.join("; "))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_a_clear_4xx_and_the_good_ones_are_correlated() {
    let broker = Broker::start();
    let mut sluice = Sluice::start("malformed", &broker.bootstrap, CONFIG);
    let addr = sluice.url.trim_start_matches("http://").to_string();

    let bad: Vec<Case> = bad_bodies().into_iter().chain(methods()).collect();
    let bad_rows = bad.iter().filter(|c| c.status >= 400).count();
    let mut table = Vec::new();
    let mut good_keys = Vec::new();
    // (summary, extra headers, gzip the body)
    type Special<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let special: [Special; 4] = [
        (
            "CRLF\r\nand \u{1b}[31mANSI\u{1b}[0m in a summary \u{0}",
            &[],
            false,
        ),
        (
            "JSON labelled text/plain",
            &[("content-type", "text/plain")],
            false,
        ),
        ("gzipped", &[("content-encoding", "gzip")], true),
        (
            "identity listed",
            &[("content-encoding", "identity")],
            false,
        ),
    ];
    for (i, case) in bad.into_iter().enumerate() {
        table.push(case);
        if i % 4 == 3 {
            let key = format!("good-{}", good_keys.len());
            let (summary, headers, encode) =
                special
                    .get(good_keys.len())
                    .copied()
                    .unwrap_or(("disk full", &[], false));
            table.push(good(&key, summary, headers, encode));
            good_keys.push(key);
        }
    }
    let mut failures = Vec::new();
    for case in &table {
        let answer = send_then_read(&addr, &case.request).await;
        failures.extend(check(case, answer));
    }
    eprintln!(
        "{} rows: {bad_rows} malformed, {} well-formed between them; {} mismatches",
        table.len(),
        good_keys.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} rows answered otherwise:\n{}\nlog:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n"),
        sluice.log_text().chars().take(4000).collect::<String>()
    );
    assert!(bad_rows >= 60, "{bad_rows}");

    // Every well-formed event opened its incident; no malformed one did.
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    let keys_seen = |seen: &[crate::harness::Received]| -> Vec<String> {
        seen.iter()
            .filter_map(|m| {
                m.body["alerts"][0]["dedup_key"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    };
    reader
        .until("an incident per well-formed event", |seen| {
            let keys = keys_seen(seen);
            good_keys.iter().all(|k| keys.contains(k))
        })
        .await;
    reader.extra_within(std::time::Duration::from_secs(1)).await;
    let keys = keys_seen(&reader.seen);
    assert!(
        keys.iter().all(|k| k.starts_with("good-")),
        "a malformed request was correlated: {keys:?}"
    );
    assert_eq!(keys.len(), good_keys.len(), "{keys:?}");
    let crlf = reader
        .seen
        .iter()
        .find(|m| m.body["alerts"][0]["dedup_key"] == "good-0")
        .unwrap();
    assert_eq!(
        crlf.body["alerts"][0]["summary"], "CRLF\r\nand \u{1b}[31mANSI\u{1b}[0m in a summary \u{0}",
        "text is carried as sent, escaped in JSON"
    );

    // Alive, drains cleanly, and its log has no panic and no raw escape or line break from a
    // payload (the topic ARN reached it, escaped).
    let status = sluice.terminate();
    let log = sluice.log_text();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("evil-arn"),
        "the logged field is not in the log:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw ESC reached the log:\n{log}");
    assert!(
        log.lines()
            .all(|l| !l.starts_with("FAKE") && !l.contains('\r')),
        "a payload's CR or LF split a log line:\n{log}"
    );
}
