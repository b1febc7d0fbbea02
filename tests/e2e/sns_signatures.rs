//! SNS message signatures through the real binary: a local CA (the only one sluice trusts,
//! through `SSL_CERT_FILE`), an HTTPS server presenting a certificate for the SNS hosts and
//! `localhost`, reached through `[integrations.cloudwatch_sns] resolve`, serving an RSA signing
//! certificate at a `.pem` path; messages signed with the openssl CLI (SHA1withRSA for
//! `SignatureVersion` 1, SHA256withRSA for 2) over AWS's string to sign, computed here on its
//! own. The server records every request it answers, so "never fetched" is checked, not
//! assumed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::certs::{openssl, server_certificate};
use crate::harness::{metric, Sluice, TempDir, WAIT};

/// SNS posts its JSON as text.
pub const SNS_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";
/// Where the signing certificate is served.
pub const CERT_PATH: &str = "/SimpleNotificationService-e2e.pem";
/// A certificate path the server answers 503 for.
const DOWN_PATH: &str = "/SimpleNotificationService-down.pem";
pub const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:ops-alarms";
const PATH: &str = "/integrations/cloudwatch_sns/svc-orders";

/// A local CA, an HTTPS server for the SNS hosts (and `localhost`) it signed, and an RSA key
/// whose self-signed certificate the server serves at [`CERT_PATH`].
pub struct SnsHost {
    dir: TempDir,
    pub port: u16,
    /// The request line of every request answered.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl SnsHost {
    pub async fn start(tag: &str) -> SnsHost {
        let dir = TempDir::new(tag);
        let d = &dir.0;
        let hosts = [
            "sns.us-east-1.amazonaws.com",
            "sns.eu-west-1.amazonaws.com",
            "localhost",
        ];
        server_certificate(d, "server", &hosts);
        for key in ["signing.key", "other.key"] {
            let rsa = [
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ];
            openssl(d, &[&rsa[..], &["-out", key]].concat());
        }
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-key",
                "signing.key",
                "-out",
                "signing.pem",
                "-days",
                "2",
                "-subj",
                "/CN=sns.amazonaws.com",
            ],
        );
        let (port, seen) = serve(d).await;
        SnsHost { dir, port, seen }
    }

    /// The CA file sluice is started with (`SSL_CERT_FILE`).
    pub fn ca(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }

    /// The `[integrations.cloudwatch_sns]` line sending the SNS hosts to this server.
    pub fn resolve(&self) -> String {
        let at = format!("127.0.0.1:{}", self.port);
        format!(
            "resolve = {{ \"sns.us-east-1.amazonaws.com\" = \"{at}\", \
             \"sns.eu-west-1.amazonaws.com\" = \"{at}\" }}"
        )
    }

    /// Starts sluice (embedded broker) with `sns` as its `[integrations.cloudwatch_sns]` keys
    /// besides `resolve`, trusting this host's CA only.
    pub fn sluice(&self, tag: &str, sns: &str) -> Sluice {
        let config = format!("[integrations.cloudwatch_sns]\n{}\n{sns}\n", self.resolve());
        let ca = self.ca();
        Sluice::start_with_env(
            tag,
            "embedded",
            &config,
            &[("SSL_CERT_FILE", ca.to_str().unwrap())],
        )
    }

    /// `message` signed as SNS does with `SignatureVersion` `version`, its certificate served
    /// on the SNS host of its topic's region.
    pub fn sign(&self, message: Value, version: &str) -> Value {
        let region = message["TopicArn"]
            .as_str()
            .and_then(|t| t.split(':').nth(3))
            .unwrap_or("us-east-1")
            .to_string();
        let url = format!("https://sns.{region}.amazonaws.com{CERT_PATH}");
        self.sign_with(message, version, "signing.key", &url)
    }

    /// `message` signed with `key` (a file of this host), naming `cert_url`.
    pub fn sign_with(&self, mut message: Value, version: &str, key: &str, cert_url: &str) -> Value {
        let signed: &[&str] = if message["Type"] == "Notification" {
            &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ]
        } else {
            &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ]
        };
        let mut text = String::new();
        for name in signed {
            if let Some(value) = message[*name].as_str() {
                text.push_str(&format!("{name}\n{value}\n"));
            }
        }
        let n = SIGNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (input, output) = (format!("string-{n}.txt"), format!("sig-{n}.bin"));
        std::fs::write(self.dir.0.join(&input), text).unwrap();
        let digest = if version == "1" { "-sha1" } else { "-sha256" };
        openssl(
            &self.dir.0,
            &["dgst", digest, "-sign", key, "-out", &output, &input],
        );
        let signature = std::fs::read(self.dir.0.join(&output)).unwrap();
        message["SignatureVersion"] = json!(version);
        message["Signature"] = json!(sluice::recording::encode_base64(&signature));
        message["SigningCertURL"] = json!(cert_url);
        message
    }

    /// The request lines answered so far that start with `prefix`.
    pub fn requests(&self, prefix: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    }
}

static SIGNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The HTTPS server: the signing certificate at [`CERT_PATH`], 503 at [`DOWN_PATH`], SNS's
/// `ConfirmSubscriptionResponse` for `?Action=ConfirmSubscription`, 404 for anything else.
async fn serve(dir: &Path) -> (u16, Arc<Mutex<Vec<String>>>) {
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
    let signing_pem = std::fs::read_to_string(dir.join("signing.pem")).unwrap();
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
            let signing_pem = signing_pem.clone();
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
                let line = head.lines().next().unwrap_or_default().to_string();
                record.lock().unwrap().push(line.clone());
                let target = line.split(' ').nth(1).unwrap_or_default();
                let (status, body) = if target == CERT_PATH {
                    ("200 OK", signing_pem)
                } else if target == DOWN_PATH {
                    ("503 Service Unavailable", String::new())
                } else if target.starts_with("/?Action=ConfirmSubscription") {
                    let body = "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>\
                        <SubscriptionArn>arn:aws:sns:us-east-1:111122223333:ops-alarms:e2e\
                        </SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>";
                    ("200 OK", body.to_string())
                } else {
                    ("404 Not Found", String::new())
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

/// A CloudWatch alarm notification for `topic`.
pub fn notification(topic: &str, state: &str, message_id: &str) -> Value {
    let alarm = json!({
        "AlarmName": "orders-5xx", "AWSAccountId": "111122223333", "NewStateValue": state,
        "NewStateReason": format!("Threshold Crossed: now {state}"),
        "StateChangeTime": "2024-05-02T09:31:10.482+0000", "Region": "US East (N. Virginia)",
        "AlarmArn": "arn:aws:cloudwatch:us-east-1:111122223333:alarm:orders-5xx",
        "Trigger": {"MetricName": "HTTPCode_Target_5XX_Count", "Namespace": "AWS/ApplicationELB",
                    "Dimensions": [{"name": "LoadBalancer", "value": "app/orders/0a1b2c3d"}]},
    });
    json!({
        "Type": "Notification", "MessageId": message_id, "TopicArn": topic,
        "Subject": format!("{state}: \"orders-5xx\" in US East (N. Virginia)"),
        "Message": alarm.to_string(), "Timestamp": "2024-05-02T09:31:10.530Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    })
}

/// A subscription confirmation for `topic`, its `SubscribeURL` on the topic region's SNS host.
pub fn confirmation(topic: &str, token: &str) -> Value {
    let region = topic.split(':').nth(3).unwrap();
    json!({
        "Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": token, "TopicArn": topic,
        "Message": format!("You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
        "SubscribeURL": format!("https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}&Token={token}"),
        "Timestamp": "2024-05-02T08:00:00.000Z",
    })
}

/// POSTs `message` as SNS does; the status, `Retry-After` and the answer as JSON.
async fn post_sns(sluice: &Sluice, message: &Value) -> (u16, Option<String>, Value) {
    let mut client = sluice::send::HttpClient::connect(&sluice.url)
        .await
        .unwrap();
    let kind = message["Type"].as_str().unwrap_or("Notification");
    let headers = [
        ("content-type", SNS_CONTENT_TYPE),
        ("x-amz-sns-message-type", kind),
    ];
    let reply = client
        .request_with(Method::POST, PATH, &headers, message.to_string())
        .await
        .unwrap();
    let retry_after = reply
        .headers
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (reply.status.as_u16(), retry_after, reply.json())
}

async fn rejected(sluice: &Sluice, reason: &str) -> f64 {
    let sample = format!(
        "sluice_events_rejected_total{{integration=\"cloudwatch_sns\",reason=\"{reason}\"}}"
    );
    metric(&sluice.url, &sample).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_sns_messages_are_taken_and_forged_ones_refused_unfetched() {
    let host = SnsHost::start("sns-verify").await;
    let sluice = host.sluice("sns-verify", &format!("topic_arns = [\"{TOPIC}\"]"));

    // Both signature versions: taken, and the alarm becomes an event.
    for (version, state, id) in [("1", "ALARM", "m-1"), ("2", "OK", "m-2")] {
        let signed = host.sign(notification(TOPIC, state, id), version);
        let (status, _, body) = post_sns(&sluice, &signed).await;
        assert_eq!(status, 200, "version {version}: {body}");
        assert_eq!(body["accepted"], 1, "version {version}: {body}");
    }
    let received = "sluice_events_received_total{integration=\"cloudwatch_sns\"}";
    assert_eq!(metric(&sluice.url, received).await, 2.0);
    assert_eq!(
        host.requests("GET"),
        [format!("GET {CERT_PATH} HTTP/1.1")],
        "the certificate is fetched once, then cached"
    );

    let alarm = || notification(TOPIC, "ALARM", "m-3");
    let does_not_verify = "'Signature' does not verify with the certificate at 'SigningCertURL'";
    let mut tampered = host.sign(alarm(), "2");
    tampered["Message"] = json!(tampered["Message"].as_str().unwrap().replace("ALARM", "OK"));
    let us_cert = format!("https://sns.us-east-1.amazonaws.com{CERT_PATH}");
    let other_key = host.sign_with(alarm(), "2", "other.key", &us_cert);
    let mut version_3 = host.sign(alarm(), "2");
    version_3["SignatureVersion"] = json!("3");
    let off_sns = |url: &str| host.sign_with(alarm(), "2", "signing.key", url);
    let localhost = format!("https://localhost:{}{CERT_PATH}", host.port);
    let plain = format!("http://sns.us-east-1.amazonaws.com{CERT_PATH}");
    let eu = format!("https://sns.eu-west-1.amazonaws.com{CERT_PATH}");
    let unlisted = host.sign(
        notification(
            "arn:aws:sns:us-east-1:111122223333:other-topic",
            "ALARM",
            "m-4",
        ),
        "2",
    );
    let cert_url_refused = "'SigningCertURL' is not an https URL of a .pem file on \
        sns.<region>.amazonaws.com in the region of 'TopicArn': refused, not fetched";
    for (what, message, says) in [
        ("tampered Message", tampered, does_not_verify),
        ("signed with another key", other_key, does_not_verify),
        (
            "SignatureVersion 3",
            version_3,
            "'SignatureVersion' \"3\" is not 1 (SHA1withRSA) or 2 (SHA256withRSA)",
        ),
        (
            "a host that is not SNS",
            off_sns(&localhost),
            cert_url_refused,
        ),
        ("http", off_sns(&plain), cert_url_refused),
        (
            "another region than the topic's",
            off_sns(&eu),
            cert_url_refused,
        ),
        (
            "a topic not listed",
            unlisted,
            "'TopicArn' is not in integrations.cloudwatch_sns.topic_arns",
        ),
    ] {
        let (status, _, body) = post_sns(&sluice, &message).await;
        assert_eq!(status, 403, "{what}: {body}");
        let text = body["message"].as_str().unwrap_or_default();
        assert!(
            text.starts_with(&format!("cloudwatch_sns: {says}")),
            "{what}: {body}"
        );
    }

    // A certificate the SNS host cannot serve now: 503 and Retry-After, so SNS retries.
    let down = format!("https://sns.us-east-1.amazonaws.com{DOWN_PATH}");
    let (status, retry_after, body) = post_sns(&sluice, &off_sns(&down)).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("'SigningCertURL' answered 503"),
        "{body}"
    );

    assert_eq!(
        host.requests("GET"),
        [
            format!("GET {CERT_PATH} HTTP/1.1"),
            format!("GET {DOWN_PATH} HTTP/1.1")
        ],
        "no refused URL was fetched"
    );
    for (reason, count) in [
        ("sns_signature", 3.0),
        ("sns_cert_url", 3.0),
        ("sns_topic", 1.0),
        ("sns_cert_unavailable", 1.0),
    ] {
        assert_eq!(rejected(&sluice, reason).await, count, "{reason}");
    }
    assert_eq!(
        metric(&sluice.url, received).await,
        2.0,
        "nothing refused got in"
    );
    let log = sluice.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_are_followed_for_listed_topics_only() {
    let host = SnsHost::start("sns-confirm-listed").await;
    let listed = host.sluice("sns-listed", &format!("topic_arns = [\"{TOPIC}\"]"));
    let confirm_get = "GET /?Action=ConfirmSubscription";

    let (status, _, body) = post_sns(&listed, &host.sign(confirmation(TOPIC, "tok-1"), "2")).await;
    assert_eq!(status, 200, "{body}");
    let confirmed = "sluice_sns_subscriptions_total{outcome=\"confirmed\"}";
    let deadline = Instant::now() + WAIT;
    while metric(&listed.url, confirmed).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "not confirmed: {}",
            listed.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        host.requests(confirm_get),
        [format!(
            "{confirm_get}&TopicArn={TOPIC}&Token=tok-1 HTTP/1.1"
        )],
        "the listed topic's SubscribeURL is fetched once"
    );

    // Another topic, correctly signed: refused before its URL could be fetched.
    let other = "arn:aws:sns:us-east-1:111122223333:other-topic";
    let (status, _, body) = post_sns(&listed, &host.sign(confirmation(other, "tok-2"), "2")).await;
    assert_eq!(status, 403, "{body}");

    // No topic_arns: any topic's notifications are taken, a confirmation is logged for an
    // operator and never fetched. SignatureVersion 1 is refused below the minimum of 2.
    let open = host.sluice("sns-open", "min_signature_version = 2");
    let (status, _, body) = post_sns(&open, &host.sign(confirmation(other, "tok-3"), "2")).await;
    assert_eq!(status, 200, "{body}");
    let logged = "sluice_sns_subscriptions_total{outcome=\"logged\"}";
    assert_eq!(metric(&open.url, logged).await, 1.0);
    assert!(open
        .log_text()
        .contains("SNS subscription awaits confirmation"));
    let (status, _, body) =
        post_sns(&open, &host.sign(notification(other, "ALARM", "m-5"), "2")).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
    let (status, _, body) =
        post_sns(&open, &host.sign(notification(other, "ALARM", "m-6"), "1")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("min_signature_version 2"),
        "{body}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        host.requests(confirm_get).len(),
        1,
        "only the listed topic's confirmation was fetched: {:?}",
        host.seen.lock().unwrap()
    );
}
