//! Single-alert webhook formats end to end: a Datadog trigger and its recovery, and a CloudWatch
//! alarm delivered by SNS (JSON posted as `text/plain`, as SNS does), over a real socket to the
//! real binary; the incidents are read back from a real Kafka-protocol broker (tansu). And the
//! SNS subscription handshake: confirmed by one GET over verified TLS to a local server, or
//! refused unfetched. SNS messages are signed as SNS signs them and verified by sluice
//! (`sns_signatures.rs` has the signing host and the refusals).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{by_incident, post, Broker, Reader, Sluice, WAIT};
use crate::sns_signatures::SnsHost;

/// One incident per alert; updates wait an hour, so only openings and resolves publish and the
/// message sequence does not depend on timing. The SNS host's `resolve` line follows.
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

fn sns_alarm() -> Value {
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
        "Timestamp": "2024-05-02T09:31:10.530Z",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_and_cloudwatch_sns_alerts_become_incidents_on_a_real_broker() {
    let broker = Broker::start();
    let host = SnsHost::start("cloud-webhooks-sns").await;
    let config = format!("{CONFIG}{}\n", host.resolve());
    let ca = host.ca();
    let sluice = Sluice::start_with_env(
        "cloud-webhooks",
        &broker.bootstrap,
        &config,
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
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
    });
    let confirmation = host.sign(confirmation, "1").to_string();
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
        host.sign(sns_alarm(), "2").to_string(),
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

fn subscription(host: &SnsHost, url: &str) -> String {
    let message = json!({
        "Type": "SubscriptionConfirmation", "Token": "2336412f37fb",
        "TopicArn": "arn:aws:sns:eu-west-1:111122223333:ops-alarms",
        "SubscribeURL": url, "Message": "You have chosen to subscribe",
        "Timestamp": "2024-05-02T08:00:00.000Z",
    });
    host.sign(message, "2").to_string()
}

/// The counter of `sluice_sns_subscriptions_total{outcome}` on `/metrics`.
async fn subscriptions(url: &str, outcome: &str) -> u64 {
    let sample = format!("sluice_sns_subscriptions_total{{outcome=\"{outcome}\"}}");
    crate::harness::metric(url, &sample).await as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_subscriptions_are_confirmed_over_verified_tls_and_foreign_urls_are_never_fetched() {
    let host = SnsHost::start("sns-confirm").await;
    let port = host.port;
    // The test CA is the only one sluice trusts (SSL_CERT_FILE replaces the system store), the
    // pattern admits this server's URLs only, and the topic is listed (only listed topics'
    // subscriptions are confirmed by sluice).
    let sns = r#"
confirm_url_pattern = '^https://localhost:\d+/\?Action=ConfirmSubscription&'
topic_arns = ["arn:aws:sns:eu-west-1:111122223333:ops-alarms"]
"#;
    let sluice = host.sluice("sns-confirm", sns);
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
        let (status, body) = post(&sluice.url, path, &headers, subscription(&host, &foreign)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["rejected"][0]["item"], "SubscribeURL",
            "{foreign}: {body}"
        );
    }

    let good = format!("https://localhost:{port}/?Action=ConfirmSubscription&Token=2336412f37fb");
    let (status, body) = post(&sluice.url, path, &headers, subscription(&host, &good)).await;
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
        host.requests("GET /?"),
        ["GET /?Action=ConfirmSubscription&Token=2336412f37fb HTTP/1.1"],
        "exactly the confirmation URL was fetched"
    );
    assert_eq!(subscriptions(&sluice.url, "failed").await, 0);
    let log = sluice.log_text();
    assert!(log.contains("SNS subscription confirmed"), "{log}");
}
