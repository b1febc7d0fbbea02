//! `[kafka.tls]` and `[kafka.sasl]` for real: the real binary talks to tansu through a proxy
//! that terminates TLS and answers SASL ([`crate::kafka_proxy`]), with certificates made by the
//! openssl CLI. Incidents are read back through the proxy by the test's own consumer (its
//! librdkafka settings written here, not sluice's), and by `sluice tail`; a wrong CA and a
//! wrong password stop sluice at start with an error that says so (and does not show the
//! password).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice::send::HttpClient;

use crate::certs;
use crate::harness::{pd_post, types, Broker, Reader, Sluice, TempDir};
use crate::kafka_proxy::{self, Counts, Credentials, Proxy, ProxyConfig};

const PASSWORD: &str = "e2e-pw-7Hq2xV";
const WRONG_PASSWORD: &str = "e2e-wrong-Kd81";

/// One incident per alert, published as soon as it opens or resolves.
const RULES: &str = r#"
instance = "sluice-e2e-kafka-security"
[kafka]
partitions = 2
[[correlate.rules]]
name = "one-per-alert"
group_by = ["dedup_key"]
group_wait = "0s"
pause_transient = "0s"
group_interval = "1h"
window_duration = "10m"
"#;

/// A CA with a `localhost` broker certificate (`broker.pem`) and a client certificate
/// (`client.pem`) in `dir`.
fn certificates(dir: &Path) {
    certs::server_certificate(dir, "broker", &["localhost"]);
    certs::client_certificate(dir, "client", "sluice");
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// tansu behind a proxy with `config`: the proxy's address (`localhost:<port>`, which tansu
/// advertises), the broker and the proxy.
async fn broker_behind_proxy(config: ProxyConfig) -> (String, Broker, Proxy) {
    let (listener, port) = kafka_proxy::listen().await;
    let address = format!("localhost:{port}");
    let broker = Broker::start_advertising(Some(&address));
    let proxy = Proxy::start(listener, broker.bootstrap.clone(), config);
    (address, broker, proxy)
}

fn tls(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    Some((dir.join("broker.pem"), dir.join("broker.key")))
}

fn user(mechanism: &'static str) -> Option<Credentials> {
    Some(Credentials {
        mechanism,
        username: "sluice".into(),
        password: PASSWORD.into(),
    })
}

/// Triggers then resolves alert `key` and waits for both messages, read through the proxy at
/// `brokers` by a consumer of the test's own with the librdkafka `settings` given.
async fn opened_then_resolved(
    sluice: &Sluice,
    brokers: &str,
    settings: &[(&str, &str)],
    key: &str,
) {
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    pd_post(&mut client, "trigger", key, "db-1").await;
    pd_post(&mut client, "resolve", key, "db-1").await;
    let mut reader = Reader::with_settings(brokers, "sluice.incidents", settings);
    reader
        .until_or(
            "opened and resolved",
            |seen| seen.len() >= 2,
            Duration::from_secs(20),
            || sluice.log_text(),
        )
        .await;
    assert_eq!(
        types(&reader.seen),
        [("opened".to_string(), 1), ("resolved".to_string(), 2)]
    );
}

/// Runs `sluice serve` with a config that must not start; its log once it gave up.
async fn failed_start(tag: &str, brokers: &str, config: &str, env: &[(&str, &str)]) -> String {
    let dir = TempDir::new(tag);
    std::fs::write(dir.0.join("sluice.toml"), config).unwrap();
    let log = dir.0.join("sluice.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(dir.0.join("sluice.toml"))
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env("SLUICE_KAFKA_BROKERS", brokers)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("sluice starts");
    let deadline = Instant::now() + Duration::from_secs(25);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "sluice did not give up: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{status}: {text}");
    text
}

/// Kafka mode (the events topic, the correlators' group, transactions, restore readers, the
/// silences log) with every client over mutual TLS and SCRAM-SHA-256, the credentials from
/// the environment; then `sluice tail` through the proxy with the same settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_mode_runs_over_mutual_tls_and_scram_sha_256() {
    let dir = TempDir::new("kafka-mtls");
    certificates(&dir.0);
    let (brokers, _broker, proxy) = broker_behind_proxy(ProxyConfig {
        server: tls(&dir.0),
        client_ca: Some(dir.0.join("ca.pem")),
        sasl: user("SCRAM-SHA-256"),
    })
    .await;
    let (ca, cert, key) = (
        path(&dir.0, "ca.pem"),
        path(&dir.0, "client.pem"),
        path(&dir.0, "client.key"),
    );
    let config = format!(
        "{RULES}[kafka.tls]\nca_file = {ca:?}\ncert_file = {cert:?}\nkey_file = {key:?}\n\
         [pipeline]\nmode = \"kafka\"\npartitions = 2\nsession_timeout = \"6s\"\n"
    );
    let env = [
        ("SLUICE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
        ("SLUICE_KAFKA_SASL_USERNAME", "sluice"),
        ("SLUICE_KAFKA_SASL_PASSWORD", PASSWORD),
    ];
    let sluice = Sluice::start_with_env("kafka-mtls", &brokers, &config, &env);
    let reader = [
        ("security.protocol", "sasl_ssl"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
        ("sasl.mechanisms", "SCRAM-SHA-256"),
        ("sasl.username", "sluice"),
        ("sasl.password", PASSWORD),
    ];
    opened_then_resolved(&sluice, &brokers, &reader, "db-1/disk").await;

    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["tail", "--config"])
        .arg(sluice.log.with_file_name("sluice.toml"))
        .args(["--idle-exit", "2s", "--format", "json"])
        .env("SLUICE_KAFKA_BROKERS", &brokers)
        .envs(env)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    // The incident's two messages (besides the instance's liveness records).
    let incident_lines = stdout
        .lines()
        .filter(|l| l.contains(r#""schema":"sluice.incident.v1""#))
        .count();
    assert_eq!(incident_lines, 2, "{stdout}\n{stderr}");
    assert!(stdout.contains(r#""type":"resolved""#), "{stdout}");

    let log = sluice.log_text();
    assert!(log.contains("partition restored"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(!log.contains("in clear"), "{log}");
    let counts = &proxy.counts;
    assert!(
        Counts::get(&counts.authenticated) >= 2,
        "one per connection"
    );
    assert_eq!(Counts::get(&counts.refused), 0);
    // A client closed before its handshake ended (librdkafka drops short-lived clients while
    // connecting) is the only TLS failure: no certificate was refused on either side.
    let errors = counts.tls_errors.lock().unwrap();
    assert!(
        errors.iter().all(|e| e == "tls handshake eof"),
        "{errors:?}"
    );
}

/// The default pipeline publishing over TLS with SASL PLAIN, the CA given by
/// `SLUICE_KAFKA_TLS_CA_FILE` and the password by a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_published_over_tls_with_sasl_plain() {
    let dir = TempDir::new("kafka-plain");
    certificates(&dir.0);
    std::fs::write(dir.0.join("password"), format!("{PASSWORD}\n")).unwrap();
    let (brokers, _broker, proxy) = broker_behind_proxy(ProxyConfig {
        server: tls(&dir.0),
        client_ca: None,
        sasl: user("PLAIN"),
    })
    .await;
    let config = format!(
        "{RULES}[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"sluice\"\npassword_file = {:?}\n",
        path(&dir.0, "password")
    );
    let ca = path(&dir.0, "ca.pem");
    let env = [("SLUICE_KAFKA_TLS_CA_FILE", ca.as_str())];
    let sluice = Sluice::start_with_env("kafka-plain", &brokers, &config, &env);
    let reader = [
        ("security.protocol", "sasl_ssl"),
        ("ssl.ca.location", ca.as_str()),
        ("sasl.mechanisms", "PLAIN"),
        ("sasl.username", "sluice"),
        ("sasl.password", PASSWORD),
    ];
    opened_then_resolved(&sluice, &brokers, &reader, "web-1/http").await;
    assert!(Counts::get(&proxy.counts.tls) >= 1);
    assert!(Counts::get(&proxy.counts.authenticated) >= 1);
    assert!(!sluice.log_text().contains(PASSWORD));
}

/// SASL without TLS works (SASL_PLAINTEXT) and sluice warns once that the credentials cross
/// the network in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_512_without_tls_works_and_is_warned_about() {
    let (brokers, _broker, proxy) = broker_behind_proxy(ProxyConfig {
        server: None,
        client_ca: None,
        sasl: user("SCRAM-SHA-512"),
    })
    .await;
    let config = format!(
        "{RULES}[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"sluice\"\npassword = {PASSWORD:?}\n"
    );
    let sluice = Sluice::start("kafka-scram512", &brokers, &config);
    let reader = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.username", "sluice"),
        ("sasl.password", PASSWORD),
    ];
    opened_then_resolved(&sluice, &brokers, &reader, "cache-1/mem").await;
    assert!(Counts::get(&proxy.counts.authenticated) >= 1);
    let log = sluice.log_text();
    assert_eq!(
        log.matches("the SASL credentials cross the network in clear")
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

/// A broker certificate signed by a CA sluice was not given: no start, and the reason is the
/// certificate. Without `ca_file` the system's store is used: OpenSSL's default, which
/// `SSL_CERT_FILE` points at the test CA here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_stops_the_start_and_the_system_store_is_the_default()
{
    let (dir, other) = (TempDir::new("kafka-ca"), TempDir::new("kafka-other-ca"));
    certificates(&dir.0);
    certs::server_certificate(&other.0, "unused", &["localhost"]);
    let (brokers, _broker, proxy) = broker_behind_proxy(ProxyConfig {
        server: tls(&dir.0),
        client_ca: None,
        sasl: None,
    })
    .await;
    let config = format!(
        "{RULES}[kafka.tls]\nca_file = {:?}\n",
        path(&other.0, "ca.pem")
    );
    let log = failed_start("kafka-ca", &brokers, &config, &[]).await;
    assert!(log.contains("sluice could not start"), "{log}");
    assert!(
        log.contains("cannot reach the Kafka cluster at")
            && log.contains("certificate verify failed")
            && log.contains("(see kafka.tls and kafka.sasl)"),
        "{log}"
    );
    // Every attempt fails alike; the failure is logged once.
    assert_eq!(log.matches("kafka connection refused").count(), 1, "{log}");
    assert!(Counts::get(&proxy.counts.tls_failed) >= 2);
    assert_eq!(Counts::get(&proxy.counts.tls), 0);

    let ca = path(&dir.0, "ca.pem");
    let config = format!(
        "{RULES}[kafka.tls]
enabled = true
"
    );
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let sluice = Sluice::start_with_env("kafka-system-ca", &brokers, &config, &env);
    let reader = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca.as_str()),
    ];
    opened_then_resolved(&sluice, &brokers, &reader, "queue-1/depth").await;
    assert!(Counts::get(&proxy.counts.tls) >= 1);
}

/// A wrong password: no start, an authentication error, and neither password in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_stops_the_start_without_showing_it() {
    let dir = TempDir::new("kafka-wrong-pw");
    certificates(&dir.0);
    let (brokers, _broker, proxy) = broker_behind_proxy(ProxyConfig {
        server: tls(&dir.0),
        client_ca: None,
        sasl: user("SCRAM-SHA-256"),
    })
    .await;
    let config = format!(
        "{RULES}[kafka.tls]\nca_file = {:?}\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-256\"\n\
         username = \"sluice\"\npassword = {WRONG_PASSWORD:?}\n",
        path(&dir.0, "ca.pem")
    );
    let log = failed_start("kafka-wrong-pw", &brokers, &config, &[]).await;
    assert!(log.contains("sluice could not start"), "{log}");
    assert!(
        log.contains("cannot reach the Kafka cluster at")
            && log.contains("SASL authentication error: Authentication failed")
            && log.contains("(see kafka.tls and kafka.sasl)"),
        "{log}"
    );
    assert!(
        !log.contains(WRONG_PASSWORD) && !log.contains(PASSWORD),
        "{log}"
    );
    assert!(Counts::get(&proxy.counts.refused) >= 1);
    assert_eq!(Counts::get(&proxy.counts.authenticated), 0);
}
