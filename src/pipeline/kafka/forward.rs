//! Re-routed events on their way: an event the event rules give another routing key is written
//! by the correlator of the partition it came to, as a `routed` wire record, to its new key's
//! partition of the events topic (a repartition step, as Kafka Streams does), with acks=all and
//! idempotence. The source partition's offset is committed only once every routed record it
//! produced is delivered ([`Forwarder::settle`]); a crash before that writes them again from
//! the last commit, at the same places, and the partition they go to skips the repeats
//! (`correlate::shard::door`).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::event::wire;
use crate::publish::kafka::{confirmed, Unconfirmed};
use crate::publish::renew::Renewing;

use super::Routed;

pub(super) struct Forwarder {
    producer: Arc<Renewing<FutureProducer>>,
    topic: String,
    pending: Vec<DeliveryFuture>,
    /// A routed record was refused before it was queued.
    failed: bool,
    body: Vec<u8>,
}

impl Forwarder {
    /// Writes to `topic` through `producer` (the correlator's transactional producer, when it
    /// has one).
    pub(super) fn new(producer: Arc<Renewing<FutureProducer>>, topic: &str) -> Self {
        Forwarder {
            producer,
            topic: topic.to_string(),
            pending: Vec::new(),
            failed: false,
            body: Vec::with_capacity(512),
        }
    }

    /// Queues every routed event for its partition (waiting while the producer's queue is full).
    pub(super) async fn send(&mut self, routed: &mut Vec<Routed>) {
        for r in routed.drain(..) {
            self.body.clear();
            wire::encode_routed(&r.event, r.origin, &mut self.body);
            loop {
                let (generation, producer) = self.producer.get();
                let record = FutureRecord::to(&self.topic)
                    .partition(r.to)
                    .key(r.event.routing_key.as_str())
                    .payload(&self.body);
                match producer.send_result(record) {
                    Ok(delivery) => {
                        self.pending.push(delivery);
                        break;
                    }
                    Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, partition = r.to, "routed event not queued");
                        self.producer.renew_after(generation, &producer, &e);
                        self.failed = true;
                        break;
                    }
                }
            }
        }
    }

    /// Waits for every delivery report; false when a routed event was not delivered (the
    /// records that routed it must be processed again).
    pub(super) async fn settle(&mut self) -> bool {
        let mut delivered = !std::mem::take(&mut self.failed);
        let (generation, producer) = self.producer.get();
        for delivery in self.pending.drain(..) {
            if let Err(why) = confirmed(delivery).await {
                tracing::warn!(?why, "routed event not delivered");
                if let Unconfirmed::Failed(e) = &why {
                    self.producer.renew_after(generation, &producer, e);
                }
                delivered = false;
            }
        }
        delivered
    }
}
