//! The publish stage: incident and change messages out to Kafka.
//!
//! The correlator hands each [`OutboundMessage`] to a [`Sink`] without waiting for delivery;
//! the Kafka sink counts deliveries and failures from librdkafka's delivery reports. The
//! in-memory sink serves tests and the offline replay.

pub mod embedded;
pub mod encode;
pub mod kafka;
pub mod liveness;
pub mod renew;

use std::sync::Mutex;
use std::time::Duration;

use encode::OutboundMessage;

/// Why a message could not be handed over.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The producer's queue is full: wait and try again (backpressure, never a drop).
    #[error("producer queue is full")]
    QueueFull,
    /// The producer refused this message for good; the `kind` labels the failure counter.
    #[error("producer refused the message: {0}")]
    Rejected(&'static str),
}

/// Where the correlator's messages go: the one seam between correlation and delivery (Kafka
/// today; a second sink, or a transactional one for durable commits, plugs in here).
pub trait Sink: Send + Sync + 'static {
    /// Takes a message for delivery; must not block.
    fn send(&self, msg: &OutboundMessage) -> Result<(), SendError>;

    /// Whether messages can be delivered now (readiness).
    fn ready(&self) -> bool;

    /// Delivers everything taken so far, waiting at most `timeout` (blocking); the number of
    /// messages still undelivered after it.
    fn flush(&self, timeout: Duration) -> i32;

    /// Messages taken and then not delivered (failed for good), since the sink started: a
    /// caller that commits its input only after delivery compares it across a flush.
    fn failures(&self) -> u64 {
        0
    }
}

/// Keeps every message in memory, in order (tests and replay).
#[derive(Default)]
pub struct MemorySink {
    messages: Mutex<Vec<OutboundMessage>>,
}

impl MemorySink {
    pub fn take(&self) -> Vec<OutboundMessage> {
        std::mem::take(&mut *self.messages.lock().expect("sink lock"))
    }
}

impl Sink for MemorySink {
    fn send(&self, msg: &OutboundMessage) -> Result<(), SendError> {
        self.messages.lock().expect("sink lock").push(msg.clone());
        Ok(())
    }

    fn ready(&self) -> bool {
        true
    }

    /// Everything is kept the moment it is sent.
    fn flush(&self, _: Duration) -> i32 {
        0
    }
}
