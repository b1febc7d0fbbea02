//! Single-alert webhook formats end to end: a Datadog trigger and its recovery, and a CloudWatch
//! alarm delivered by SNS (JSON posted as `text/plain`, as SNS does), over a real socket to the
//! real binary; the incidents are read back from a real Kafka-protocol broker (tansu).

use serde_json::json;

use crate::harness::{by_incident, post, Broker, Reader, Sluice};

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
group_interval = "1h"
window_duration = "10m"
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

    // SNS first confirms its subscription: logged for the operator, no event.
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
