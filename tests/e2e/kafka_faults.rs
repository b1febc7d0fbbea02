//! Faults the real broker cannot be asked for, injected with librdkafka's mock cluster: a
//! broker that goes away. Accepted events are never lost: a full producer queue holds the
//! shards, ingest answers 503 with Retry-After, and everything flows once the broker is back.

use std::time::Duration;

use sluice::config::Config;
use sluice::send::pd_event;

use crate::harness::{in_process, Reader};

fn config(bootstrap: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[kafka]
brokers = "{bootstrap}"
partitions = 1
{extra}
[correlate]
shards = 1
queue_capacity = 2
[[correlate.rules]]
group_by = ["dedup_key"]
group_wait = "0s"
pause_transient = "0s"
"#
    );
    Config::from_toml(&text, Vec::new()).unwrap()
}

/// A one-broker mock cluster with sluice's topics.
fn mock_cluster() -> (
    rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    crate::harness::mock_cluster(1, &[("sluice.incidents", 1), ("sluice.changes", 1)])
}

fn metric(name_and_labels: &str) -> f64 {
    crate::harness::process_metric(name_and_labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_turns_into_503_and_nothing_accepted_is_lost() {
    let (cluster, bootstrap) = mock_cluster();
    let (running, mut client) = in_process(config(&bootstrap, "queue_max_messages = 1")).await;
    cluster.broker_down(1).unwrap();

    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..50 {
        let reply = client
            .post(
                "/v2/enqueue",
                pd_event("svc", "trigger", &format!("k{i}"), "h", "error", "s"),
            )
            .await
            .unwrap();
        match reply.status.as_u16() {
            202 => accepted += 1,
            503 => {
                refused += 1;
                assert_eq!(reply.headers["retry-after"], "1");
                assert_eq!(reply.json()["status"], "unavailable");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        refused > 0,
        "a broker that is down must end in 503s, not unbounded queues"
    );
    assert!(accepted >= 1);
    assert!(metric("sluice_publish_queue_full_total") >= 1.0);

    cluster.broker_up(1).unwrap();
    // Once the broker is back everything accepted is delivered, and new events are taken again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = client
            .post(
                "/v2/enqueue",
                pd_event("svc", "trigger", "after", "h", "error", "s"),
            )
            .await
            .unwrap();
        if reply.status == 202 {
            accepted += 1;
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sluice did not recover after the broker came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut reader = Reader::new(&bootstrap, "sluice.incidents");
    reader
        .until("one opened message per accepted trigger", |seen| {
            seen.len() >= accepted
        })
        .await;
    assert_eq!(reader.extra_within(Duration::from_secs(1)).await, 0);
    assert!(reader.seen.iter().all(|m| m.body["type"] == "opened"));
    running.shutdown();
    assert_eq!(running.wait().await.messages_undelivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_failures_are_counted_by_kind() {
    let (cluster, bootstrap) = mock_cluster();
    let (running, mut client) = in_process(config(&bootstrap, "message_timeout = \"1s\"")).await;
    let before = metric("sluice_messages_failed_total{kind=\"timed_out\"}");
    cluster.broker_down(1).unwrap();
    let reply = client
        .post(
            "/v2/enqueue",
            pd_event("svc", "trigger", "lost-broker", "h", "error", "s"),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric("sluice_messages_failed_total{kind=\"timed_out\"}") < before + 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timed-out delivery was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.broker_up(1).unwrap();
    running.shutdown();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_kafka_down_ends_within_the_grace_period_and_says_so() {
    let (cluster, bootstrap) = mock_cluster();
    let mut config = config(&bootstrap, "queue_max_messages = 1");
    config.server.shutdown_grace = Duration::from_secs(2);
    // The queue's two places are the key's own, however late the shard takes them (fair
    // admission would hold one key to one place while the first event waits for the shard).
    config.limits.fair_admission = false;
    let (running, mut client) = in_process(config).await;
    cluster.broker_down(1).unwrap();
    let mut accepted = 0;
    for i in 0..10 {
        let body = pd_event("svc", "trigger", &format!("k{i}"), "h", "error", "s");
        if client.post("/v2/enqueue", body).await.unwrap().status == 202 {
            accepted += 1;
        }
    }
    assert!(
        accepted >= 2,
        "some triggers are queued behind the full producer queue"
    );
    running.shutdown();
    let report = tokio::time::timeout(Duration::from_secs(20), running.wait())
        .await
        .expect("shutdown is bounded by the grace period, not by Kafka");
    assert!(!report.clean(), "{report:?}");
    assert!(
        report.shards_unfinished || report.messages_undelivered != 0,
        "{report:?}"
    );
    cluster.broker_up(1).unwrap();
}
