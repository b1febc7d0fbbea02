//! The dead-letter topic (`deliver.dead_letter_topic`): a message a receiver refused (a 4xx
//! other than 429) or that kept failing past `max_retries` or `give_up_after` is written there
//! as it was read (same key, same bytes, its CloudEvents headers), with headers saying what
//! happened: `sluice_receiver`, `sluice_receiver_kind`, `sluice_attempts`, `sluice_error` (the
//! last status and the start of the answer, or the transport error), `sluice_source_topic`,
//! `sluice_source_partition`, `sluice_source_offset`. The write is confirmed by the broker
//! before the message counts as handled; until then it is tried again, and the partition's
//! offset does not move past it.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::Item;
use crate::config::ReceiverConfig;
use crate::publish::kafka::confirmed;

/// The longest wait between two tries of a dead letter the broker did not take.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// What went wrong with a message, for its dead letter.
pub struct Failure<'a> {
    pub receiver: &'a ReceiverConfig,
    pub attempts: u32,
    pub error: &'a str,
}

pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
}

impl DeadLetters {
    pub fn new(producer: FutureProducer, topic: String, source_topic: String) -> DeadLetters {
        DeadLetters {
            producer,
            topic,
            source_topic,
        }
    }

    /// Writes `item`'s dead letter, trying until the broker confirms it.
    pub async fn write(&self, item: &Item, failure: &Failure<'_>) {
        let mut wait = Duration::from_secs(1);
        loop {
            match self.try_write(item, failure).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::error!(
                        receiver = failure.receiver.name,
                        topic = self.topic,
                        %error,
                        "dead letter not written; trying again (the partition's offset waits)"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_WAIT);
                }
            }
        }
    }

    async fn try_write(&self, item: &Item, f: &Failure<'_>) -> Result<(), String> {
        let attempts = f.attempts.to_string();
        let partition = item.partition.to_string();
        let offset = item.offset.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(item.headers.len() + 7);
        for (key, value) in &item.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        for (key, value) in [
            ("sluice_receiver", f.receiver.name.as_str()),
            ("sluice_receiver_kind", f.receiver.kind.as_str()),
            ("sluice_attempts", &attempts),
            ("sluice_error", f.error),
            ("sluice_source_topic", &self.source_topic),
            ("sluice_source_partition", &partition),
            ("sluice_source_offset", &offset),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(&item.payload[..])
            .headers(headers);
        if let Some(key) = &item.key {
            record = record.key(&key[..]);
        }
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| e.to_string())?;
        confirmed(delivery)
            .await
            .map(|_| ())
            .map_err(|why| rdkafka::error::KafkaError::from(why).to_string())
    }
}
