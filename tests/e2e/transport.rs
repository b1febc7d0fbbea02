//! The transport protections of the real binary, over raw loopback sockets: gzip and deflate
//! bodies and a decompression bomb, the lingering close that lets a client which reads only
//! after sending get its 413 or 431, the header and body read timeouts (slowloris, slow
//! body), the connection cap, and SIGHUP, which is logged and ignored. Every timeout in the
//! configs here is short and every wait is bounded.

use std::io::Write as _;
use std::time::{Duration, Instant};

use flate2::Compression;
use serde_json::Value;
use sluice::send::HttpClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{metric, wait_for_metric, Sluice, WAIT};

/// Every event opens its own incident at once.
const CONFIG: &str = r#"
[server]
header_read_timeout = "1s"
body_read_timeout = "1s"
[kafka]
partitions = 1
[[correlate.rules]]
group_by = ["dedup_key"]
group_wait = "0s"
pause_transient = "0s"
"#;

/// The real binary with the embedded broker and `config`.
fn start(tag: &str, config: &str) -> Sluice {
    Sluice::start(tag, "embedded", config)
}

fn addr(sluice: &Sluice) -> String {
    sluice.url.trim_start_matches("http://").to_string()
}

/// What a raw exchange got back: the whole answer as text (head and body).
pub struct Raw {
    pub text: String,
}

impl Raw {
    pub fn status(&self) -> u16 {
        self.text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|t| t.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> Value {
        let body = self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or(Value::Null)
    }
}

/// Writes `request` whole, and only then reads the answer to the end, as Python's urllib and
/// most scripts do. Fails when the write or the read fails (a reset, a broken pipe).
pub async fn send_then_read(addr: &str, request: &[u8]) -> std::io::Result<Raw> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no end of the answer in time"))??;
    Ok(Raw {
        text: String::from_utf8_lossy(&answer).into_owned(),
    })
}

pub fn post_request(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: sluice\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn event(dedup_key: &str) -> Vec<u8> {
    sluice::send::pd_event(
        "rk",
        "trigger",
        dedup_key,
        "host-1",
        "critical",
        "disk full",
    )
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The pid of the `sluice serve` whose config sits beside its log (read from /proc).
fn pid_of(sluice: &Sluice) -> u32 {
    let config = sluice.log.with_file_name("sluice.toml");
    let config = config.to_string_lossy();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(config.as_ref()))
        })
        .expect("the sluice process")
}

/// The peak resident memory of `pid` in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_deflate_bodies_are_decoded_and_a_bomb_stops_at_the_limit() {
    let sluice = start("gzip", CONFIG);
    let addr = addr(&sluice);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(&event("deflate-zlib")).unwrap();
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
    raw.write_all(&event("deflate-raw")).unwrap();
    for (coding, body, key) in [
        ("gzip", gzip(&event("gzip")), "gzip"),
        ("x-gzip", gzip(&event("x-gzip")), "x-gzip"),
        ("deflate", zlib.finish().unwrap(), "deflate-zlib"),
        ("deflate", raw.finish().unwrap(), "deflate-raw"),
    ] {
        let req = post_request("/v2/enqueue", &[("content-encoding", coding)], &body);
        let got = send_then_read(&addr, &req).await.unwrap();
        assert_eq!(got.status(), 202, "{coding}: {}", got.text);
        assert_eq!(got.json()["dedup_key"], key);
    }
    wait_for_metric(&sluice.url, "sluice_incidents_opened_total", 4.0, WAIT).await;

    // 256 MiB of spaces, about 250 KiB compressed: under the wire limit, far over the decoded one.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), Compression::best());
    let mib = vec![b' '; 1 << 20];
    for _ in 0..256 {
        bomb.write_all(&mib).unwrap();
    }
    let bomb = bomb.finish().unwrap();
    assert!(bomb.len() < 512 * 1024, "{}", bomb.len());
    let pid = pid_of(&sluice);
    let before = peak_rss_kib(pid);
    let started = Instant::now();
    let req = post_request(
        "/integrations/alertmanager_webhook/rk",
        &[("content-encoding", "gzip")],
        &bomb,
    );
    let got = send_then_read(&addr, &req).await.unwrap();
    let took = started.elapsed();
    assert_eq!(got.status(), 413, "{}", got.text);
    assert_eq!(
        got.json()["errors"][0],
        "'body' must be at most 524288 bytes once decoded from Content-Encoding gzip"
    );
    let after = peak_rss_kib(pid);
    eprintln!(
        "bomb of {} bytes (256 MiB decoded): 413 in {took:?}; peak RSS {before} KiB before, {after} KiB after",
        bomb.len()
    );
    assert!(
        after < before + 64 * 1024,
        "decoding the bomb raised the peak RSS from {before} to {after} KiB"
    );

    // Damaged data names its coding; unknown and stacked codings are refused before reading.
    let mut damaged = gzip(&event("damaged"));
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    let req = post_request("/v2/enqueue", &[("content-encoding", "gzip")], &damaged);
    let got = send_then_read(&addr, &req).await.unwrap();
    assert_eq!(got.status(), 400, "{}", got.text);
    assert_eq!(
        got.json()["errors"][0],
        "'body' is not complete, valid gzip data (Content-Encoding gzip)"
    );
    for coding in ["br", "gzip, gzip", "zstd"] {
        let req = post_request("/v2/enqueue", &[("content-encoding", coding)], b"{}");
        let got = send_then_read(&addr, &req).await.unwrap();
        assert_eq!(got.status(), 415, "{coding}: {}", got.text);
        assert_eq!(
            got.header("accept-encoding"),
            Some("identity, gzip, deflate")
        );
        assert!(got.json()["message"]
            .as_str()
            .unwrap()
            .contains("sluice accepts identity, gzip, deflate"));
    }
    assert_eq!(
        metric(
            &sluice.url,
            "sluice_events_received_total{integration=\"pagerduty\"}"
        )
        .await,
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_only_after_sending_gets_its_413_or_431() {
    let sluice = start("linger", CONFIG);
    let addr = addr(&sluice);
    let filler = vec![b'x'; 4 << 20];

    // Declared too large: answered before a byte of the body is read.
    let mut body =
        br#"{"routing_key":"rk","event_action":"trigger","payload":{"summary":""#.to_vec();
    body.extend_from_slice(&filler);
    body.extend_from_slice(br#""}}"#);
    let got = send_then_read(&addr, &post_request("/v2/enqueue", &[], &body))
        .await
        .expect("the whole 4 MiB body is taken and the answer read");
    assert_eq!(got.status(), 413, "{}", got.text);
    assert_eq!(
        got.json()["errors"][0],
        "'body' must be at most 524288 bytes"
    );

    // Chunked: the limit is only found while reading.
    let mut req = b"POST /integrations/grafana/rk HTTP/1.1\r\nhost: sluice\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for chunk in filler.chunks(64 * 1024) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let got = send_then_read(&addr, &req)
        .await
        .expect("the whole chunked body is taken and the answer read");
    assert_eq!(got.status(), 413, "{}", got.text);
    assert_eq!(got.json()["message"], "Request body is too large");

    // Headers over hyper's buffer: 431.
    let mut req = b"POST /v2/enqueue HTTP/1.1\r\nhost: sluice\r\nx-big: ".to_vec();
    req.extend_from_slice(&filler[..1 << 20]);
    req.extend_from_slice(b"\r\ncontent-length: 2\r\n\r\n{}");
    let got = send_then_read(&addr, &req)
        .await
        .expect("the whole 1 MiB header is taken and the answer read");
    assert_eq!(got.status(), 431, "{}", got.text);

    // The linger is bounded: a client still sending long past 16 MiB is cut off.
    let huge = vec![b'x'; 96 << 20];
    let cut = send_then_read(&addr, &post_request("/v2/enqueue", &[], &huge)).await;
    assert!(cut.is_err(), "96 MiB were all read after the answer");

    // And the server serves on.
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    assert_eq!(
        client
            .post("/v2/enqueue", event("after"))
            .await
            .unwrap()
            .status,
        202
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_after_the_header_timeout_while_others_are_served() {
    let sluice = start("slowloris", CONFIG);
    let addr = addr(&sluice);
    // Twenty clients each send a header line every 200 ms and never finish.
    let loris: Vec<_> = (0..20)
        .map(|i| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                let started = Instant::now();
                s.write_all(b"POST /v2/enqueue HTTP/1.1\r\nhost: sluice\r\n")
                    .await
                    .unwrap();
                let mut buf = [0u8; 256];
                let mut got = Vec::new();
                loop {
                    let line = format!("x-drip-{i}: {}\r\n", started.elapsed().as_millis());
                    if s.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                        Ok(Ok(0) | Err(_)) => break,
                        Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                        Err(_) => {}
                    }
                    assert!(started.elapsed() < WAIT, "slowloris {i} never cut off");
                }
                (started.elapsed(), got)
            })
        })
        .collect();
    // Meanwhile, others are served.
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    for i in 0..10 {
        let reply = client
            .post("/v2/enqueue", event(&format!("meanwhile-{i}")))
            .await
            .unwrap();
        assert_eq!(reply.status, 202);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut longest = Duration::ZERO;
    for l in loris {
        let (lasted, got) = l.await.unwrap();
        assert!(
            lasted >= Duration::from_millis(900),
            "cut after {lasted:?}, before server.header_read_timeout"
        );
        assert!(
            got.is_empty(),
            "a slowloris got an answer: {}",
            String::from_utf8_lossy(&got)
        );
        longest = longest.max(lasted);
    }
    eprintln!(
        "20 slowloris connections with header_read_timeout 1s: the last cut after {longest:?}"
    );
    assert!(longest < Duration::from_secs(5), "{longest:?}");
    wait_for_metric(&sluice.url, "sluice_incidents_opened_total", 10.0, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_after_the_body_timeout() {
    let sluice = start("slowbody", CONFIG);
    let addr = addr(&sluice);
    for dribble in [false, true] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let started = Instant::now();
        s.write_all(b"POST /v2/enqueue HTTP/1.1\r\nhost: sluice\r\ncontent-length: 200\r\n\r\n{\"routing_key\":")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            if dribble {
                let _ = s.write_all(b" ").await;
            }
            match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            assert!(started.elapsed() < WAIT, "no answer to a slow body");
        }
        let raw = Raw {
            text: String::from_utf8_lossy(&answer).into_owned(),
        };
        eprintln!(
            "slow body (dribbling: {dribble}): {} after {:?}",
            raw.status(),
            started.elapsed()
        );
        assert_eq!(raw.status(), 408, "{}", raw.text);
        assert_eq!(
            raw.json()["errors"][0],
            "'body' was not complete within server.body_read_timeout"
        );
        assert!(started.elapsed() >= Duration::from_millis(900));
    }
    assert_eq!(
        metric(
            &sluice.url,
            "sluice_events_rejected_total{integration=\"pagerduty\",reason=\"body_timeout\"}"
        )
        .await,
        2.0
    );
}

/// `GET /healthz` on `s`, kept alive; the status, or 0 when the connection was closed unanswered.
async fn healthz(s: &mut TcpStream) -> u16 {
    if s.write_all(b"GET /healthz HTTP/1.1\r\nhost: sluice\r\n\r\n")
        .await
        .is_err()
    {
        return 0;
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Raw {
            text: String::from_utf8_lossy(&buf[..n]).into_owned(),
        }
        .status(),
        Ok(_) => 0,
        Err(_) => panic!("no answer and no close within {WAIT:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_unanswered_until_one_frees() {
    let config =
        "[server]\nmax_connections = 3\nheader_read_timeout = \"30s\"\n[kafka]\npartitions = 1\n";
    let sluice = start("cap", config);
    let addr = addr(&sluice);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(healthz(&mut s).await, 200);
        held.push(s);
    }
    for _ in 0..3 {
        let mut extra = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            healthz(&mut extra).await,
            0,
            "a fourth connection was served"
        );
    }
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        if healthz(&mut s).await == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in &mut held {
        assert_eq!(healthz(s).await, 200, "a held connection still works");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_without_dropping_connections_then_sigterm_drains() {
    let mut sluice = start("sighup", CONFIG);
    // As soon as the port is open: the handlers are installed before sluice starts serving.
    sluice.signal("HUP");
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    assert_eq!(
        client
            .post("/v2/enqueue", event("before-hup"))
            .await
            .unwrap()
            .status,
        202
    );
    sluice.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while sluice.log_text().matches("configuration reloaded").count() < 2 {
        assert!(Instant::now() < deadline, "{}", sluice.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The same connection, and a new one, are served.
    assert_eq!(
        client
            .post("/v2/enqueue", event("after-hup"))
            .await
            .unwrap()
            .status,
        202
    );
    let mut fresh = HttpClient::connect(&sluice.url).await.unwrap();
    assert_eq!(fresh.get("/readyz").await.unwrap().status, 200);
    wait_for_metric(&sluice.url, "sluice_incidents_opened_total", 2.0, WAIT).await;
    drop((client, fresh));
    let status = sluice.terminate();
    let log = sluice.log_text();
    assert!(status.success(), "exit {status}: {log}");
    assert!(
        log.contains("signal=\"SIGTERM\"") || log.contains("signal=SIGTERM"),
        "{log}"
    );
    assert!(log.contains("shutdown complete"), "{log}");
}

/// A compressed body is recorded as it was decoded, without its `Content-Encoding`, so
/// `sluice replay` reads it as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_body_is_recorded_decoded() {
    let dir = crate::harness::TempDir::new("record-gzip");
    let recording = dir.0.join("traffic.jsonl");
    let toml =
        "[server]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbrokers = \"embedded\"\npartitions = 1\n";
    let config = sluice::config::Config::from_toml(toml, Vec::new()).unwrap();
    let running =
        sluice::app::start_recording(config, sluice::clock::Clock::system(), Some(&recording))
            .await
            .unwrap();
    let mut client = HttpClient::connect(&format!("http://{}", running.addr()))
        .await
        .unwrap();
    let reply = client
        .request_with(
            http::Method::POST,
            "/v2/enqueue",
            &[("content-encoding", "gzip")],
            gzip(&event("recorded")),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 202);
    running.shutdown();
    running.wait().await;
    let text = std::fs::read_to_string(&recording).unwrap();
    let line: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["body"]["dedup_key"], "recorded", "{text}");
    assert!(line["headers"].get("content-encoding").is_none(), "{text}");
    assert!(line["headers"].get("content-length").is_none(), "{text}");
}

/// SIGHUP takes up new correlation rules without losing state: an incident held by a one-hour
/// `group_wait` comes out once the reloaded rules say `0s`; a config that does not validate
/// is refused and the running one stays; a changed listener is named as needing a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_rules_keeping_state_and_refuses_a_bad_config() {
    let held = "[[correlate.rules]]\ngroup_by = [\"source\"]\ngroup_wait = \"1h\"\npause_transient = \"0s\"\n";
    let sluice = start("reload", held);
    let config = sluice.config_path();
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    assert_eq!(
        client
            .post("/v2/enqueue", event("held"))
            .await
            .unwrap()
            .status,
        202
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        metric(
            &sluice.url,
            "sluice_messages_published_total{type=\"opened\"}"
        )
        .await,
        0.0
    );

    // A config that does not validate: refused, counted, the old rules stay.
    std::fs::write(&config, "[[correlate.rules]]\ngroup_wait = \"soon\"\n").unwrap();
    sluice.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while !sluice.log_text().contains("configuration not reloaded") {
        assert!(Instant::now() < deadline, "{}", sluice.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&sluice.url, "sluice_config_last_reload_successful").await,
        0.0
    );
    assert_eq!(
        metric(
            &sluice.url,
            "sluice_messages_published_total{type=\"opened\"}"
        )
        .await,
        0.0
    );

    // group_wait 0s: the held incident comes out, the one alert it had (state kept).
    let now_rules = held.replace("\"1h\"", "\"0s\"");
    // Also: an allowlist (auth, taken up at once) and a listener change (named for a restart).
    std::fs::write(
        &config,
        format!("{now_rules}[server]\nmax_connections = 77\n[auth]\nrouting_keys = [\"rk\"]\n"),
    )
    .unwrap();
    sluice.signal("HUP");
    wait_for_metric(
        &sluice.url,
        "sluice_messages_published_total{type=\"opened\"}",
        1.0,
        WAIT,
    )
    .await;
    // The shards take the rules as soon as they are sent, before the reload has done the rest
    // (auth, limits) and set its gauge: the gauge may follow the message by a moment.
    wait_for_metric(
        &sluice.url,
        "sluice_config_last_reload_successful",
        1.0,
        WAIT,
    )
    .await;
    assert!(
        metric(
            &sluice.url,
            "sluice_config_last_reload_success_timestamp_seconds"
        )
        .await
            > 1.7e9
    );
    let log = sluice.log_text();
    assert!(
        log.contains("take effect at the next start") && log.contains("server"),
        "{log}"
    );
    // The allowlist applies to the next requests: another key is refused.
    let other = sluice::send::pd_event("other", "trigger", "x", "h", "critical", "x");
    let reply = client.post("/v2/enqueue", other).await.unwrap();
    assert_eq!(
        reply.status, 400,
        "PagerDuty's answer to a key it does not know"
    );
    // POST /-/reload does the same over HTTP, and answers how it went.
    let answer = crate::harness::reload(&mut client).await;
    assert_eq!(answer["status"], "reloaded");
    assert_eq!(answer["need_restart"], serde_json::json!(["server"]));
    std::fs::write(&config, "[[correlate.rules]]\ngroup_wait = \"soon\"\n").unwrap();
    let reply = client.post("/-/reload", Vec::new()).await.unwrap();
    assert_eq!(reply.status, 400);
    let answer: serde_json::Value = reply.json();
    assert!(
        answer["errors"][0].as_str().unwrap().contains("group_wait"),
        "{answer}"
    );
    // The same connection is still served.
    assert_eq!(
        client
            .post("/v2/enqueue", event("after"))
            .await
            .unwrap()
            .status,
        202
    );
}
