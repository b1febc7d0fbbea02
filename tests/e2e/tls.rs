//! The HTTPS listener through the real binary and a real client (curl, OpenSSL): events over
//! TLS with the files named by `SLUICE_TLS_CERT_FILE` and `SLUICE_TLS_KEY_FILE`, TLS 1.2 and
//! 1.3, plain HTTP and a silent client refused at the handshake, and certificate files
//! replaced while sluice runs (a renewal under another CA is served to new connections; a
//! broken one is refused and the pair in force kept).

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::certs::server_certificate;
use crate::harness::{Sluice, TempDir};

/// `curl` against `url` trusting only `ca`; the status code, or `None` when no HTTP answer came
/// (handshake refused).
fn curl(ca: &Path, url: &str, extra: &[&str]) -> (Option<u16>, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(ca)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
    let code: u16 = code.trim().parse().unwrap_or(0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match code {
        0 => (None, format!("{body}{stderr}")),
        c => (Some(c), body.to_string()),
    }
}

fn metric(ca: &Path, base: &str, sample: &str) -> f64 {
    let (_, body) = curl(ca, &format!("{base}/metrics"), &[]);
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn pd_event(dedup: &str) -> String {
    String::from_utf8(sluice::send::pd_event(
        "payments",
        "trigger",
        dedup,
        "db-1",
        "critical",
        "disk full",
    ))
    .unwrap()
}

/// Replaces `to` with `from` in one move, as certificate managers do.
fn replace(from: &Path, to: &Path) {
    let next = to.with_extension("next");
    std::fs::copy(from, &next).unwrap();
    std::fs::rename(&next, to).unwrap();
}

#[test]
fn events_arrive_over_tls_and_renewed_certificates_are_served_without_a_restart() {
    let dir = TempDir::new("tls");
    server_certificate(&dir.0, "server", &["localhost"]);
    let (cert, key, ca) = (
        dir.0.join("tls.crt"),
        dir.0.join("tls.key"),
        dir.0.join("ca.pem"),
    );
    std::fs::copy(dir.0.join("server.pem"), &cert).unwrap();
    std::fs::copy(dir.0.join("server.key"), &key).unwrap();
    let config = r#"
[server]
header_read_timeout = "1s"
[server.tls]
recheck = "100ms"
"#;
    let sluice = Sluice::start_with_env(
        "tls",
        "embedded",
        config,
        &[
            ("SLUICE_TLS_CERT_FILE", cert.to_str().unwrap()),
            ("SLUICE_TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    );
    let port = sluice.url.rsplit(':').next().unwrap().to_string();
    let base = format!("https://localhost:{port}");
    let enqueue = format!("{base}/v2/enqueue");

    for (version, dedup) in [("--tlsv1.3", "tls-13"), ("--tls-max", "tls-12")] {
        let mut args = vec![version];
        if version == "--tls-max" {
            args.push("1.2");
        }
        args.extend(["-H", "content-type: application/json", "--data-binary"]);
        let body = pd_event(dedup);
        args.push(&body);
        let (status, answer) = curl(&ca, &enqueue, &args);
        assert_eq!(status, Some(202), "{version}: {answer}");
        assert!(answer.contains("\"success\""), "{answer}");
    }
    let received = "sluice_events_received_total{integration=\"pagerduty\"}";
    assert_eq!(metric(&ca, &base, received), 2.0);

    // Plain HTTP to the TLS port gets no HTTP answer, and is counted as a failed handshake.
    let (status, _) = curl(&ca, &format!("http://localhost:{port}/healthz"), &[]);
    assert_eq!(status, None, "plain HTTP was answered on the TLS port");
    // A client that connects and says nothing is cut at the header read timeout.
    let started = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let read = silent.read(&mut [0u8; 16]);
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "the silent client got bytes: {read:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "cut after {waited:?}"
    );
    let failed = |reason: &str| {
        metric(
            &ca,
            &base,
            &format!("sluice_tls_handshakes_failed_total{{reason=\"{reason}\"}}"),
        )
    };
    assert!(failed("error") >= 1.0);
    assert_eq!(failed("timeout"), 1.0);

    // Renewal under another CA: new connections get the new pair.
    let renewed = TempDir::new("tls-renewed");
    server_certificate(&renewed.0, "server", &["localhost"]);
    let new_ca = renewed.0.join("ca.pem");
    replace(&renewed.0.join("server.key"), &key);
    replace(&renewed.0.join("server.pem"), &cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&new_ca, &format!("{base}/healthz"), &[]).0 != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served; log:\n{}",
            sluice.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(curl(&ca, &format!("{base}/healthz"), &[]).0, None);
    let reloads = |outcome: &str| {
        metric(
            &new_ca,
            &base,
            &format!("sluice_tls_reloads_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert!(reloads("loaded") >= 1.0);

    // A broken renewal (a key that is not PEM) is refused; the pair in force stays.
    std::fs::write(dir.0.join("broken.key"), "not a key\n").unwrap();
    replace(&dir.0.join("broken.key"), &key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads("failed") < 1.0 {
        assert!(Instant::now() < deadline, "{}", sluice.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(curl(&new_ca, &format!("{base}/healthz"), &[]).0, Some(200));
    let log = sluice.log_text();
    assert!(log.contains("the previous pair stays in force"), "{log}");
}

#[test]
fn a_bad_certificate_or_key_stops_sluice_naming_the_key() {
    let dir = TempDir::new("tls-bad");
    server_certificate(&dir.0, "a", &["localhost"]);
    server_certificate(&dir.0, "b", &["localhost"]);
    let run = |cert: &str, key: &str| {
        let config = dir.0.join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                dir.0.join(cert),
                dir.0.join(key)
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // The key of another certificate.
    let err = run("a.pem", "b.key");
    assert!(
        err.contains("server.tls.key_file") && err.contains("does not go with the certificate"),
        "{err}"
    );
    // A key where the certificate goes.
    let err = run("a.key", "a.key");
    assert!(err.contains("server.tls.cert_file"), "{err}");
    // A missing file: a config problem.
    let err = run("missing.pem", "a.key");
    assert!(
        err.contains("server.tls.cert_file") && err.contains("cannot read"),
        "{err}"
    );
}
