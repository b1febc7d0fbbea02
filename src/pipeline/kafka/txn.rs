//! Transactions (`pipeline.transactions = true`, for brokers that have them): everything a
//! correlator writes in one commit interval (incident and change messages, routed events,
//! snapshot records) and the offsets of the records that made it are one transaction, so a
//! `read_committed` consumer sees each message exactly once. One transactional producer per
//! correlator process writes all of it; its `transactional.id` is the group id and the
//! instance name, so a restarted instance fences its own predecessor, and the group's
//! generation goes with the offsets, so a correlator that lost its partitions cannot commit.
//!
//! A transaction that cannot commit (a delivery failed, the group moved on, the broker said
//! abort) is aborted, and every partition is processed again from its last commit: what the
//! aborted transaction wrote is never seen by `read_committed` consumers, and what is written
//! again is the same.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::Counter;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::TopicPartitionList;

use crate::config::KafkaConfig;
use crate::metrics as m;
use crate::publish::encode::{MessageKind, OutboundMessage, Topic};
use crate::publish::kafka::{cloud_event_headers, confirmed, error_kind};
use crate::publish::renew::Renewing;
use crate::publish::{SendError, Sink};

/// How long a transaction call (commit, abort, offsets) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// The correlator's incident and change messages, written in the open transaction.
pub(super) struct TxnSink {
    producer: Arc<Renewing<FutureProducer>>,
    pending: Mutex<Vec<(usize, DeliveryFuture)>>,
    /// A message the producer would not queue (its transaction is failing): it must abort.
    refused: AtomicBool,
    /// Messages written in the open transaction.
    written: AtomicU64,
    incidents_topic: String,
    changes_topic: String,
    source: String,
    published: Vec<Counter>,
}

impl TxnSink {
    pub(super) fn new(
        producer: Arc<Renewing<FutureProducer>>,
        kafka: &KafkaConfig,
        source: &str,
    ) -> Self {
        TxnSink {
            producer,
            pending: Mutex::new(Vec::new()),
            refused: AtomicBool::new(false),
            written: AtomicU64::new(0),
            incidents_topic: kafka.topic.clone(),
            changes_topic: kafka.changes_topic.clone(),
            source: source.to_string(),
            published: MessageKind::ALL
                .iter()
                .map(|k| m::published(k.as_str()))
                .collect(),
        }
    }

    /// Waits for every message's delivery report; false when one was not delivered (the
    /// transaction must abort).
    pub(super) async fn settle(&self) -> bool {
        let pending = std::mem::take(&mut *self.pending.lock().expect("pending lock"));
        let mut delivered = !self.refused.swap(false, Ordering::Relaxed);
        for (kind, delivery) in pending {
            match confirmed(delivery).await {
                Ok(_) => self.published[kind].increment(1),
                Err(why) => {
                    m::failed(why.kind()).increment(1);
                    tracing::warn!(?why, "message not delivered: the transaction aborts");
                    delivered = false;
                }
            }
        }
        delivered
    }

    /// Forgets the messages of an aborted transaction; returns how many it wrote.
    fn discard(&self) -> u64 {
        self.pending.lock().expect("pending lock").clear();
        self.refused.store(false, Ordering::Relaxed);
        self.written.swap(0, Ordering::Relaxed)
    }
}

impl Sink for TxnSink {
    fn ready(&self) -> bool {
        true
    }

    fn flush(&self, timeout: Duration) -> i32 {
        let (_, producer) = self.producer.get();
        match producer.flush(timeout) {
            Ok(()) => 0,
            Err(_) => producer.in_flight_count(),
        }
    }

    fn send(&self, msg: &OutboundMessage) -> Result<(), SendError> {
        let topic = match msg.topic {
            Topic::Incidents => &self.incidents_topic,
            Topic::Changes => &self.changes_topic,
        };
        let record = FutureRecord::to(topic)
            .key(msg.key.as_bytes())
            .payload(msg.body.as_slice())
            .headers(cloud_event_headers(msg, &self.source));
        let sent = self
            .producer
            .with(|p| p.send_result(record).map_err(|(e, _)| e));
        match sent {
            Ok(delivery) => {
                self.written.fetch_add(1, Ordering::Relaxed);
                let kind = msg.kind.index();
                self.pending
                    .lock()
                    .expect("pending lock")
                    .push((kind, delivery));
                Ok(())
            }
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                Err(SendError::QueueFull)
            }
            // A message too large stays too large: counted and dropped, as without
            // transactions (made again, it would abort every transaction after).
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
                Err(SendError::Rejected(error_kind(&e)))
            }
            Err(e) => {
                self.refused.store(true, Ordering::Relaxed);
                Err(SendError::Rejected(error_kind(&e)))
            }
        }
    }

    /// Failed deliveries abort the transaction instead (see [`TxnSink::settle`]).
    fn failures(&self) -> u64 {
        0
    }
}

/// The open transaction of a correlator.
pub(super) struct Transactions {
    pub(super) producer: Arc<Renewing<FutureProducer>>,
    pub(super) sink: Arc<TxnSink>,
}

impl Transactions {
    /// Commits the open transaction with `offsets` (for the group `group`), and begins the
    /// next one. Blocking.
    pub(super) fn commit(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), KafkaError> {
        let (generation, producer) = self.producer.get();
        // A retriable error (a timeout) leaves the outcome open: the coordinator may have
        // committed. Aborting then and processing again would publish the transaction's
        // messages twice, so the same call is made again, as librdkafka asks.
        let committed =
            retried(|| producer.send_offsets_to_transaction(offsets, group, TXN_TIMEOUT))
                .and_then(|()| retried(|| producer.commit_transaction(TXN_TIMEOUT)));
        match committed {
            Ok(()) => {
                self.sink.written.store(0, Ordering::Relaxed);
                if let Err(e) = producer.begin_transaction() {
                    self.producer
                        .renew(generation, &format!("cannot begin a transaction: {e}"));
                }
                Ok(())
            }
            Err(e) => {
                self.abort(&format!("commit failed: {e}"));
                Err(e)
            }
        }
    }

    /// Aborts the open transaction (renewing the producer when it cannot) and begins the next.
    /// Blocking.
    pub(super) fn abort(&self, why: &str) {
        let discarded = self.sink.discard();
        m::counter(m::TRANSACTION_MESSAGES_ABORTED).increment(discarded);
        let (generation, producer) = self.producer.get();
        let aborted = producer
            .abort_transaction(TXN_TIMEOUT)
            .and_then(|()| producer.begin_transaction());
        m::counter(m::TRANSACTIONS_ABORTED).increment(1);
        match aborted {
            Ok(()) => tracing::warn!(why, messages = discarded, "transaction aborted"),
            Err(e) => {
                self.producer
                    .renew(generation, &format!("transaction not aborted ({why}): {e}"));
            }
        }
    }
}

/// Calls `op` again while it fails with a retriable transaction error, at most
/// [`TXN_RETRIES`] times more.
fn retried(op: impl Fn() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    let mut again = 0;
    loop {
        match op() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && again < TXN_RETRIES => {
                tracing::debug!(error = %e, "transaction call retried");
                again += 1;
            }
            done => return done,
        }
    }
}

/// How often a transaction call that failed retriably is made again.
const TXN_RETRIES: u32 = 3;
