//! Producers made anew when they can no longer deliver. An idempotent producer whose delivery
//! timed out asks the broker to bump its epoch; a broker that cannot (tansu 0.6 answers
//! `ProducerFenced`) leaves the producer refused for every message after. [`Renewing`]
//! replaces such a producer with a fresh one (a new producer id), so a broker outage costs
//! the messages that timed out during it, and nothing after it.

use std::sync::RwLock;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};

use crate::config::KafkaConfig;

use super::kafka::{idempotent_producer_config, KafkaSetupError};

/// A producer and its successors, each made by the same function and numbered (its
/// generation), so that a failure seen on one producer renews that one only.
pub struct Renewing<P> {
    make: Box<dyn Fn(u64) -> Result<P, KafkaError> + Send + Sync>,
    current: RwLock<(u64, P)>,
    what: &'static str,
}

impl<P: Clone> Renewing<P> {
    /// Makes the first producer (generation 0) with `make`, which also makes its successors;
    /// `what` names it in logs.
    pub fn new(
        what: &'static str,
        make: impl Fn(u64) -> Result<P, KafkaError> + Send + Sync + 'static,
    ) -> Result<Self, KafkaError> {
        let first = make(0)?;
        Ok(Renewing {
            make: Box::new(make),
            current: RwLock::new((0, first)),
            what,
        })
    }

    /// The producer in use (a cheap handle) and its generation.
    pub fn get(&self) -> (u64, P) {
        self.current.read().expect("producer lock").clone()
    }

    /// Runs `f` with the producer in use, without taking a handle of it (the per-message
    /// path). `f` must not renew it: the producer is held for reading meanwhile.
    pub fn with<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        f(&self.current.read().expect("producer lock").1)
    }

    /// Replaces the producer of `generation` with a new one, unless it was replaced already;
    /// whether the producer in use is now a newer one.
    pub fn renew(&self, generation: u64, reason: &str) -> bool {
        let mut current = self.current.write().expect("producer lock");
        if current.0 != generation {
            return true;
        }
        match (self.make)(generation + 1) {
            Ok(fresh) => {
                *current = (generation + 1, fresh);
                tracing::warn!(
                    producer = self.what,
                    reason,
                    generation = generation + 1,
                    "kafka producer could not deliver any more; made a new one"
                );
                true
            }
            Err(e) => {
                tracing::error!(producer = self.what, reason, error = %e, "kafka producer could not deliver any more, and a new one could not be made");
                false
            }
        }
    }
}

impl Renewing<FutureProducer> {
    /// An idempotent producer (see [`idempotent_producer_config`]), renewed when it fails.
    pub fn idempotent(
        what: &'static str,
        config: &KafkaConfig,
        bootstrap: &str,
        delivery_timeout: Duration,
    ) -> Result<Self, KafkaSetupError> {
        let pc = idempotent_producer_config(config, bootstrap, delivery_timeout);
        Renewing::new(what, move |_| pc.create()).map_err(KafkaSetupError::Producer)
    }

    /// A transactional producer with `id` as its `transactional.id`, its transactions
    /// initialized (fencing any earlier producer of that id) and the first one begun; a
    /// successor does the same.
    pub fn transactional(
        what: &'static str,
        config: &KafkaConfig,
        bootstrap: &str,
        delivery_timeout: Duration,
        id: &str,
    ) -> Result<Self, KafkaSetupError> {
        let mut pc = idempotent_producer_config(config, bootstrap, delivery_timeout);
        pc.set("transactional.id", id).set(
            "transaction.timeout.ms",
            (delivery_timeout * 6).as_millis().to_string(),
        );
        Renewing::new(what, move |_| {
            let producer: FutureProducer = pc.create()?;
            producer.init_transactions(delivery_timeout)?;
            producer.begin_transaction()?;
            Ok(producer)
        })
        .map_err(KafkaSetupError::Producer)
    }

    /// After `producer` (of `generation`) failed a delivery with `error`: renews it if it
    /// failed fatally or the error says its producer id is no longer good.
    pub fn renew_after(&self, generation: u64, producer: &FutureProducer, error: &KafkaError) {
        if let Some(reason) = fenced(error).or_else(|| fatal_error(producer.client())) {
            self.renew(generation, &reason);
        }
    }
}

/// Whether `error` says the producer's id or epoch is no longer good: every later message of
/// that producer fails the same way, so only a new producer delivers again.
pub fn fenced(error: &KafkaError) -> Option<String> {
    use rdkafka::types::RDKafkaErrorCode as C;
    match error.rdkafka_error_code()? {
        code @ (C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::UnknownProducerId
        | C::InvalidProducerIdMapping
        | C::OutOfOrderSequenceNumber
        | C::Fatal) => Some(format!("{code:?}")),
        _ => None,
    }
}

/// librdkafka's fatal error of a client, if it has one.
pub fn fatal_error<C: ClientContext>(client: &Client<C>) -> Option<String> {
    client
        .fatal_error()
        .map(|(code, reason)| format!("{code:?}: {reason}"))
}
