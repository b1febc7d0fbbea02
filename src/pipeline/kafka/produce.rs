//! The ingest side of Kafka mode: every request's events produced to the events topic, and
//! watermarks to idle partitions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{KafkaConfig, PipelineConfig};
use crate::event::wire;
use crate::event::{ChangeEvent, Command, Event};
use crate::metrics as m;
use crate::publish::kafka::{confirmed, error_kind, KafkaSetupError, Unconfirmed};
use crate::publish::renew::Renewing;

use super::super::{partition, Refused};

/// How long a produce may wait for its delivery report before the sender gets 503.
pub(super) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The ingest side of Kafka mode: produces events to the events topic.
pub struct EventsProducer {
    producer: Renewing<FutureProducer>,
    topic: String,
    partitions: usize,
    /// Partitions written to since the last watermark tick.
    written: Vec<AtomicBool>,
    produced: Counter,
    /// From producing a request's records to their last delivery report.
    delivery: metrics::Histogram,
    /// This instance's rules fingerprint, written into every watermark.
    rules: std::sync::Mutex<String>,
}

impl EventsProducer {
    pub fn connect(
        kafka: &KafkaConfig,
        bootstrap: &str,
        pipeline: &PipelineConfig,
        rules: String,
    ) -> Result<Self, KafkaSetupError> {
        let producer = Renewing::idempotent("events", kafka, bootstrap, DELIVERY_TIMEOUT)?;
        let partitions = pipeline.partitions as usize;
        Ok(EventsProducer {
            producer,
            topic: pipeline.events_topic.clone(),
            partitions,
            written: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            produced: m::counter(m::EVENTS_PRODUCED),
            delivery: m::histogram(m::EVENT_DELIVERY_DURATION),
            rules: std::sync::Mutex::new(rules),
        })
    }

    /// The rules fingerprint of the next watermarks (a reload).
    pub fn set_rules(&self, rules: String) {
        *self.rules.lock().expect("rules lock") = rules;
    }

    /// Produces every event of one request, one record per partition touched, and waits for
    /// every delivery report.
    pub(in crate::pipeline) async fn events(&self, events: &[Event]) -> Result<(), Refused> {
        self.produce(events, |e| &e.routing_key, wire::encode_event)
            .await
    }

    pub(in crate::pipeline) async fn change(&self, change: &ChangeEvent) -> Result<(), Refused> {
        self.produce(
            std::slice::from_ref(change),
            |c| &c.routing_key,
            wire::encode_change,
        )
        .await
    }

    pub(in crate::pipeline) async fn command(&self, command: &Command) -> Result<(), Refused> {
        self.produce(
            std::slice::from_ref(command),
            |c| &c.routing_key,
            wire::encode_command,
        )
        .await
    }

    async fn produce<T>(
        &self,
        items: &[T],
        routing_key: fn(&T) -> &str,
        encode: fn(&T, &mut Vec<u8>),
    ) -> Result<(), Refused> {
        let mut bodies: Vec<(usize, &str, Vec<u8>)> = Vec::new();
        for item in items {
            let key = routing_key(item);
            let p = partition(key, self.partitions);
            let at = match bodies.iter().position(|(q, _, _)| *q == p) {
                Some(at) => {
                    bodies[at].2.push(b'\n');
                    at
                }
                None => {
                    bodies.push((p, key, Vec::with_capacity(512)));
                    bodies.len() - 1
                }
            };
            encode(item, &mut bodies[at].2);
        }
        let mut deliveries = Vec::with_capacity(bodies.len());
        let started = std::time::Instant::now();
        let (generation, producer) = self.producer.get();
        for (p, key, body) in &bodies {
            let record = FutureRecord::to(&self.topic)
                .partition(*p as i32)
                .key(*key)
                .payload(body);
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => {
                    m::event_delivery_failed(error_kind(&e)).increment(1);
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
                        return Err(Refused::Overloaded);
                    }
                    self.producer.renew_after(generation, &producer, &e);
                    return Err(Refused::Unavailable);
                }
            }
            self.written[*p].store(true, Ordering::Relaxed);
        }
        let mut failed = false;
        for delivery in deliveries {
            // Unconfirmed, the sender is told to retry (a repeated event is deduplicated):
            // nothing answered 2xx rests on a delivery the broker did not confirm.
            if let Err(why) = confirmed(delivery).await {
                m::event_delivery_failed(why.kind()).increment(1);
                tracing::debug!(?why, "events not delivered");
                if let Unconfirmed::Failed(e) = &why {
                    self.producer.renew_after(generation, &producer, e);
                }
                failed = true;
            }
        }
        if failed {
            return Err(Refused::Unavailable);
        }
        self.delivery.record(started.elapsed().as_secs_f64());
        self.produced.increment(items.len() as u64);
        Ok(())
    }

    /// Writes a watermark (the clock's time) to every partition and waits for their delivery
    /// (at most the delivery timeout): before ingest answers anyone, the producer has its
    /// connections, the topic's metadata and its producer id, so the first requests do not
    /// wait for them (they did, about 0.6 s on tansu). A failure is logged, not fatal: ingest
    /// answers 503 until the broker takes events.
    pub async fn announce(&self, clock: &Clock) {
        let deliveries = self.write_watermarks(clock, false);
        let all = futures_all(deliveries);
        match tokio::time::timeout(DELIVERY_TIMEOUT, all).await {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(failed, "watermarks not delivered at start"),
            Err(_) => {
                tracing::warn!("watermarks not delivered at start within the delivery timeout")
            }
        }
    }

    /// Writes a watermark (the clock's time) to every partition not written to in the last
    /// `every`, until `stop` fires.
    pub async fn watermarks(
        self: Arc<Self>,
        clock: Clock,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            self.write_watermarks(&clock, true);
        }
    }

    /// Queues a watermark for every partition (only those not written to since the last call,
    /// when `idle_only`); returns their deliveries.
    fn write_watermarks(&self, clock: &Clock, idle_only: bool) -> Vec<DeliveryFuture> {
        let mut body = Vec::with_capacity(64);
        let rules = self.rules.lock().expect("rules lock").clone();
        wire::encode_watermark(clock.now(), Some(&rules), &mut body);
        let mut deliveries = Vec::new();
        for p in 0..self.partitions {
            if self.written[p].swap(false, Ordering::Relaxed) && idle_only {
                continue;
            }
            let record = FutureRecord::<(), _>::to(&self.topic)
                .partition(p as i32)
                .payload(&body);
            match self.producer.get().1.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => {
                    tracing::debug!(error = %e, partition = p, "watermark not queued");
                }
            }
        }
        deliveries
    }
}

/// Waits for every delivery; returns how many were not confirmed.
async fn futures_all(deliveries: Vec<DeliveryFuture>) -> usize {
    let mut failed = 0;
    for delivery in deliveries {
        failed += usize::from(confirmed(delivery).await.is_err());
    }
    failed
}
