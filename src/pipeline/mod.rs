//! The pipeline: the one seam between ingest and correlation.
//!
//! Ingest hands each request's normalized events to an [`Intake`] and answers its sender with
//! what the intake says: accepted, or [`Refused`] (each variant maps to one HTTP answer in the
//! ingest stage). The intake applies the event rules once per event, in one place, chooses
//! each event's partition with the one [`partition`] function, and hands the events over to
//! whatever correlates them: today in-process shards behind bounded channels, or the same
//! shards driven inline for `sluice replay` ([`local`]); a durable events topic read by a
//! consumer group plugs in here next. Ingest does not know which one it has, and the
//! correlator does not know where its events came from: it takes its time from each event's
//! `received_at` (stamped at ingest) and from ticks while idle.

pub mod event_rules;
pub mod kafka;
pub mod local;

use std::sync::Arc;

use metrics::Counter;
use tokio::sync::watch;

use crate::config::EventRule;
use crate::correlate::silence::Silence;
use crate::event::{ChangeEvent, Event};
use crate::metrics as m;

/// Why an event rule ended an event (the `reason` of `sluice_events_dropped_total`).
pub const DROP_EVENT_RULE: &str = "event_rule";

/// The partition (local shard, or events-topic partition) that owns `routing_key`: every alert
/// and incident of a routing key lives in one partition, so grouping never crosses partitions
/// and an acknowledge or resolve that carries only a dedup key finds its alert.
pub fn partition(routing_key: &str, partitions: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(routing_key.as_bytes()) % partitions as u64) as usize
}

/// Why a request's events were not taken. Nothing of a refused request was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A partition's queue is full: the sender should retry later (503 + Retry-After).
    #[error("correlator queues are full")]
    Overloaded,
    /// Kafka mode: the events topic did not take the events in time (503 + Retry-After).
    #[error("the events topic did not take the events")]
    Unavailable,
    /// This instance does not run the ingest role (503: the sender tries another instance).
    #[error("this instance does not run ingest")]
    NoIngest,
}

impl Refused {
    /// The `reason` label of `sluice_events_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Overloaded => "overloaded",
            Refused::Unavailable => "unavailable",
            Refused::NoIngest => "no_ingest",
        }
    }
}

/// The fingerprint of an instance's rules: event rules, grouping and inhibition rules (16 hex
/// digits). Exposed as `sluice_rules_info{hash}` and on `/readyz`; Kafka mode writes it into
/// watermarks and snapshot headers, so instances running other rules are noticed.
pub fn rules_hash(config: &crate::config::Config) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(crate::correlate::rules_fingerprint(&config.correlate).as_bytes());
    h.update(format!("{:?}", config.event_rules).as_bytes());
    format!("{:016x}", h.digest())
}

/// Where ingest puts events: cheap to clone, one per server.
#[derive(Clone)]
pub struct Intake {
    event_rules: Arc<[EventRule]>,
    dropped_by_rule: Counter,
    to: To,
}

#[derive(Clone)]
enum To {
    Local(local::Local),
    /// The events topic; silences go to this instance's correlator, if it runs one.
    Kafka {
        producer: Option<Arc<kafka::EventsProducer>>,
        silences: Arc<watch::Sender<Arc<[Silence]>>>,
    },
}

impl Intake {
    fn with(to: To, event_rules: &[EventRule]) -> Self {
        Intake {
            event_rules: event_rules.into(),
            dropped_by_rule: m::dropped(DROP_EVENT_RULE),
            to,
        }
    }

    /// Kafka mode: events go to the events topic through `producer` (`None` on an instance
    /// without the ingest role: every submit is refused), silences to `silences`.
    pub fn kafka(
        producer: Option<Arc<kafka::EventsProducer>>,
        silences: watch::Sender<Arc<[Silence]>>,
        event_rules: &[EventRule],
    ) -> Self {
        Intake::with(
            To::Kafka {
                producer,
                silences: Arc::new(silences),
            },
            event_rules,
        )
    }

    /// Applies the event rules, then hands over every remaining event of one request, or none
    /// of them: a refusal never leaves half a batch accepted.
    pub async fn submit_events(&self, mut events: Vec<Event>) -> Result<(), Refused> {
        if !self.event_rules.is_empty() {
            let before = events.len();
            events.retain_mut(|e| event_rules::apply(&self.event_rules, e));
            self.dropped_by_rule
                .increment((before - events.len()) as u64);
        }
        match &self.to {
            To::Local(local) => local.events(events),
            To::Kafka {
                producer: Some(p), ..
            } => p.events(&events).await,
            To::Kafka { producer: None, .. } => Err(Refused::NoIngest),
        }
    }

    /// Hands over a change event (published as is, never grouped).
    pub async fn submit_change(&self, change: ChangeEvent) -> Result<(), Refused> {
        match &self.to {
            To::Local(local) => local.change(change),
            To::Kafka {
                producer: Some(p), ..
            } => p.change(&change).await,
            To::Kafka { producer: None, .. } => Err(Refused::NoIngest),
        }
    }

    /// Sends the silences in force to every partition (waits for room: an admin action, not
    /// ingest).
    pub async fn set_silences(&self, silences: Arc<[Silence]>) {
        match &self.to {
            To::Local(local) => local.silences(silences).await,
            To::Kafka { silences: tx, .. } => {
                let _ = tx.send(silences);
            }
        }
    }
}
