//! The publish stage: incident and change messages out to Kafka.
//!
//! The correlator hands each [`OutboundMessage`] to a [`Sink`] without waiting for delivery;
//! the Kafka sink counts deliveries and failures from librdkafka's delivery reports. The
//! in-memory sink serves tests and the offline replay.

pub mod embedded;
pub mod encode;
pub mod kafka;

use std::sync::Mutex;

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

/// Takes messages for delivery; must not block.
pub trait Sink: Send + Sync + 'static {
    fn send(&self, msg: &OutboundMessage) -> Result<(), SendError>;
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
}
