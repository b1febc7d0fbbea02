//! The correlators' consumer group as librdkafka reports it: what the group gave and took
//! away, for the correlator loop to restore and drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

use crate::metrics as m;

/// Records what the group gave and took away, for the correlator loop to restore and drop.
pub(super) struct Rebalances {
    pub(super) assigned: Mutex<Vec<i32>>,
    pub(super) revoked: Mutex<Vec<i32>>,
    /// Partitions assigned and not yet restored, plus one until the group's first assignment
    /// (even an empty one): readiness waits for none.
    pub(super) restoring: Arc<AtomicUsize>,
    /// Whether the group has assigned this correlator anything yet.
    pub(super) joined: std::sync::atomic::AtomicBool,
}

impl ClientContext for Rebalances {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(fac, message, "events consumer")
            }
            L::Warning => tracing::warn!(fac, message, "events consumer"),
            _ => tracing::debug!(fac, message, "events consumer"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // librdkafka reports the same outage from every poll; the loop logs it once a second.
        tracing::debug!(%error, reason, "events consumer");
    }
}

impl Rebalances {
    /// Whether the group gave or took partitions that the loop has not taken in yet.
    pub(super) fn has_news(&self) -> bool {
        !self.assigned.lock().expect("rebalance lock").is_empty()
            || !self.revoked.lock().expect("rebalance lock").is_empty()
    }
}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        m::counter(m::REBALANCES).increment(1);
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut revoked = self.revoked.lock().expect("rebalance lock");
            revoked.extend(tpl.elements().iter().map(|e| e.partition()));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            self.restoring
                .fetch_add(partitions.len(), Ordering::Relaxed);
            if !self.joined.swap(true, Ordering::Relaxed) {
                self.restoring.fetch_sub(1, Ordering::Relaxed);
            }
            self.assigned
                .lock()
                .expect("rebalance lock")
                .extend(partitions);
        }
    }
}
