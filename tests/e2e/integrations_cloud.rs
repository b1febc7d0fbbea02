//! Single-alert webhook formats end to end: a Datadog trigger and its recovery, and a CloudWatch
//! alarm delivered by SNS (JSON posted as `text/plain`, as SNS does), over a real socket to the
//! real binary; the incidents are read back from a real Kafka-protocol broker (tansu). And the
//! SNS subscription handshake: confirmed by one GET over verified TLS to a local server, or
//! refused unfetched.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::harness::{by_incident, post, Broker, Reader, Sluice, TempDir, WAIT};

/// One incident per alert; updates wait an hour, so only openings and resolves publish and the
/// message sequence does not depend on timing.
const CONFIG: &str = r#"
instance = "sluice-e2e"
[kafka]
partitions = 3
[[correlate.rules]]
name = "one-per-alert"
group_by = ["dedup_key"]
group_wait = "1s"
pause_transient = "0s"
group_interval = "1h"
window_duration = "10m"
[integrations.cloudwatch_sns]
auto_confirm = false
"#;

/// SNS posts its JSON as text.
const SNS_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

const ALARM_ARN: &str = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:orders-5xx";

fn datadog(transition: &str, title: &str, date: &str) -> String {
    json!({
        "aggreg_key": "9bd4ac313a4d1e8fae2482df7b77628c", "alert_id": "84410231",
        "transition": transition, "priority": "P1", "title": title,
        "scope": "host:web-4,env:prod", "hostname": "web-4",
        "tags": "env:prod,service:checkout,monitor", "date": date,
        "last_updated": date, "link": "https://app.datadoghq.com/monitors/84410231",
        "org": "$ORG_NAME",
    })
    .to_string()
}

fn sns_alarm() -> String {
    let alarm = json!({
        "AlarmName": "orders-5xx", "AlarmDescription": null, "AWSAccountId": "111122223333",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [73.0] was greater than the threshold (50.0).",
        "StateChangeTime": "2024-05-02T09:31:10.482+0000", "Region": "EU (Ireland)",
        "AlarmArn": ALARM_ARN, "OldStateValue": "OK",
        "Trigger": {"MetricName": "HTTPCode_Target_5XX_Count", "Namespace": "AWS/ApplicationELB",
                    "Dimensions": [{"name": "LoadBalancer", "value": "app/orders/0a1b2c3d"}]},
    });
    json!({
        "Type": "Notification", "MessageId": "9e7c1f3a-0c1b-5a1e-b0b5-2f0c6c3d4e5f",
        "TopicArn": "arn:aws:sns:eu-west-1:111122223333:ops-alarms",
        "Subject": "ALARM: \"orders-5xx\" in EU (Ireland)", "Message": alarm.to_string(),
        "Timestamp": "2024-05-02T09:31:10.530Z", "SignatureVersion": "1", "Signature": "ZmFrZQ==",
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_and_cloudwatch_sns_alerts_become_incidents_on_a_real_broker() {
    let broker = Broker::start();
    let sluice = Sluice::start("cloud-webhooks", &broker.bootstrap, CONFIG);
    let url = sluice.url.clone();
    let sns_headers = [
        ("content-type", SNS_CONTENT_TYPE),
        ("x-amz-sns-message-type", "Notification"),
    ];

    // SNS first confirms its subscription: auto-confirm is off, so the URL is logged for the
    // operator (and nothing is fetched); no event.
    let confirmation = json!({
        "Type": "SubscriptionConfirmation", "Token": "2336412f37fb",
        "TopicArn": "arn:aws:sns:eu-west-1:111122223333:ops-alarms",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37fb",
        "Message": "You have chosen to subscribe", "Timestamp": "2024-05-02T08:00:00.000Z",
    })
    .to_string();
    let (status, body) = post(
        &url,
        "/integrations/cloudwatch_sns/svc-orders",
        &[
            ("content-type", SNS_CONTENT_TYPE),
            ("x-amz-sns-message-type", "SubscriptionConfirmation"),
        ],
        confirmation,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "0 accepted", "accepted": 0, "rejected": []})
    );

    let (status, body) = post(
        &url,
        "/integrations/datadog/svc-checkout",
        &[],
        datadog(
            "Triggered",
            "[Triggered on {host:web-4}] p99 latency high",
            "1714641300000",
        ),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed",
               "dedup_key": "9bd4ac313a4d1e8fae2482df7b77628c"})
    );

    let (status, body) = post(
        &url,
        "/integrations/cloudwatch_sns/svc-orders",
        &sns_headers,
        sns_alarm(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");

    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");
    reader
        .until("both opened messages", |seen| seen.len() >= 2)
        .await;

    let (status, body) = post(
        &url,
        "/integrations/datadog/svc-checkout",
        &[],
        datadog(
            "Recovered",
            "[Recovered on {host:web-4}] p99 latency high",
            "1714641900000",
        ),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    reader
        .until("the Datadog resolve", |seen| seen.len() >= 3)
        .await;

    let incidents = by_incident(&reader.seen);
    assert_eq!(incidents.len(), 2, "{:#?}", reader.seen);
    let mut by_routing_key: Vec<(&str, Vec<(&str, u64)>)> = incidents
        .values()
        .map(|msgs| {
            (
                msgs[0].body["routing_key"].as_str().unwrap(),
                msgs.iter()
                    .map(|m| {
                        (
                            m.body["type"].as_str().unwrap(),
                            m.body["seq"].as_u64().unwrap(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    by_routing_key.sort();
    assert_eq!(
        by_routing_key,
        [
            ("svc-checkout", vec![("opened", 1), ("resolved", 2)]),
            ("svc-orders", vec![("opened", 1)]),
        ]
    );

    let datadog_msgs = incidents
        .values()
        .find(|m| m[0].body["routing_key"] == "svc-checkout")
        .unwrap();
    let opened = &datadog_msgs[0].body;
    assert_eq!(
        opened["title"],
        "[Triggered on {host:web-4}] p99 latency high"
    );
    assert_eq!(opened["severity"], "critical", "P1");
    assert_eq!(opened["integrations"], json!(["datadog"]));
    assert_eq!(
        opened["alerts"][0]["dedup_key"],
        "9bd4ac313a4d1e8fae2482df7b77628c"
    );
    assert_eq!(opened["alerts"][0]["source"], "web-4");
    let resolved = &datadog_msgs[1].body;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["open_alert_count"], 0);

    let sns_msgs = incidents
        .values()
        .find(|m| m[0].body["routing_key"] == "svc-orders")
        .unwrap();
    let opened = &sns_msgs[0].body;
    assert_eq!(
        opened["title"],
        "orders-5xx: Threshold Crossed: 1 datapoint [73.0] was greater than the threshold (50.0)."
    );
    assert_eq!(opened["severity"], "error", "the default severity");
    assert_eq!(opened["integrations"], json!(["cloudwatch_sns"]));
    assert_eq!(opened["alerts"][0]["dedup_key"], ALARM_ARN);
    assert_eq!(opened["alerts"][0]["source"], "app/orders/0a1b2c3d");
    assert_eq!(opened["status"], "triggered");

    let log = sluice.log_text();
    assert!(
        log.contains("SNS subscription awaits confirmation")
            && log.contains("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"),
        "{log}"
    );
}

/// A test CA and a `localhost` server certificate it signed, made with the openssl CLI.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=sluice e2e CA",
        ],
    ]
    .concat());
    run(&[
        &["req"],
        &ec[..],
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// An HTTPS server on loopback presenting the `localhost` certificate; it records the request
/// line of every request and answers SNS's `ConfirmSubscriptionResponse`.
async fn https_server(dir: &Path) -> (u16, Arc<Mutex<Vec<String>>>) {
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                record
                    .lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or_default().to_string());
                let body = "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>\
                    <SubscriptionArn>arn:aws:sns:eu-west-1:111122223333:ops-alarms:e2e</SubscriptionArn>\
                    </ConfirmSubscriptionResult></ConfirmSubscriptionResponse>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

fn subscription(url: &str) -> String {
    json!({
        "Type": "SubscriptionConfirmation", "Token": "2336412f37fb",
        "TopicArn": "arn:aws:sns:eu-west-1:111122223333:ops-alarms",
        "SubscribeURL": url, "Message": "You have chosen to subscribe",
        "Timestamp": "2024-05-02T08:00:00.000Z",
    })
    .to_string()
}

/// The counter of `sluice_sns_subscriptions_total{outcome}` on `/metrics`.
async fn subscriptions(url: &str, outcome: &str) -> u64 {
    let sample = format!("sluice_sns_subscriptions_total{{outcome=\"{outcome}\"}}");
    crate::harness::metric(url, &sample).await as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_subscriptions_are_confirmed_over_verified_tls_and_foreign_urls_are_never_fetched() {
    let dir = TempDir::new("sns-confirm");
    make_certificates(&dir.0);
    let (port, seen) = https_server(&dir.0).await;
    // The test CA is the only one sluice trusts (SSL_CERT_FILE replaces the system store), and
    // the pattern admits this server's URLs only.
    let config = r#"
[integrations.cloudwatch_sns]
confirm_url_pattern = '^https://localhost:\d+/\?Action=ConfirmSubscription&'
"#;
    let ca = dir.0.join("ca.pem");
    let sluice = Sluice::start_with_env(
        "sns-confirm",
        "embedded",
        config,
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    let headers = [
        ("content-type", SNS_CONTENT_TYPE),
        ("x-amz-sns-message-type", "SubscriptionConfirmation"),
    ];
    let path = "/integrations/cloudwatch_sns/svc-orders";

    // Off the pattern (another host, the same server under another name, another path):
    // refused by name, never fetched.
    for foreign in [
        format!("https://127.0.0.1:{port}/?Action=ConfirmSubscription&Token=x"),
        format!("https://localhost:{port}/latest/meta-data/?Action=ConfirmSubscription&"),
        "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x".to_string(),
    ] {
        let (status, body) = post(&sluice.url, path, &headers, subscription(&foreign)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["rejected"][0]["item"], "SubscribeURL",
            "{foreign}: {body}"
        );
    }

    let good = format!("https://localhost:{port}/?Action=ConfirmSubscription&Token=2336412f37fb");
    let (status, body) = post(&sluice.url, path, &headers, subscription(&good)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"], json!([]), "{body}");

    let deadline = Instant::now() + WAIT;
    while subscriptions(&sluice.url, "confirmed").await == 0 {
        assert!(
            Instant::now() < deadline,
            "no confirmation within {WAIT:?}; log:\n{}",
            sluice.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET /?Action=ConfirmSubscription&Token=2336412f37fb HTTP/1.1"],
        "exactly the confirmation URL was fetched"
    );
    assert_eq!(subscriptions(&sluice.url, "failed").await, 0);
    let log = sluice.log_text();
    assert!(log.contains("SNS subscription confirmed"), "{log}");
}
