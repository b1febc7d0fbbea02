//! Kafka mode: the view follows the incidents topic. Each instance reads every partition from
//! the beginning of what the topic keeps (`read_committed`, no consumer group membership: the
//! partitions are assigned, nothing is committed), so any instance can answer for any
//! incident. Starting up reads what the topic retains; the view keeps only what it bounds.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::View;
use crate::config::KafkaConfig;

/// How long the metadata of the incidents topic may take at start.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a task that feeds `view` from `kafka.topic` until `stop` fires.
pub fn follow(
    view: Arc<View>,
    kafka: &KafkaConfig,
    bootstrap: &str,
    instance: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<(), KafkaError> {
    let mut config = crate::publish::kafka::client_config(kafka, bootstrap);
    config
        .set("group.id", format!("sluice-view.{instance}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    let consumer: StreamConsumer = config.create()?;
    let topic = kafka.topic.clone();
    let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            assignment.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    tracing::info!(
        topic,
        partitions = assignment.count(),
        "incidents view follows the topic"
    );
    tokio::spawn(async move {
        loop {
            tokio::select! {
                received = consumer.recv() => match received {
                    Ok(m) => {
                        if let Some(body) = m.payload() {
                            let _ = view.apply(body);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "incidents view: read failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = stop.changed() => break,
            }
        }
    });
    Ok(())
}
