//! The pipeline: the one seam between ingest and correlation.
//!
//! Ingest hands each request's normalized events to an [`Intake`] and answers its sender with
//! what the intake says: accepted, or [`Refused`] (each variant maps to one HTTP answer in the
//! ingest stage). The intake chooses each event's partition with the one [`partition`]
//! function, from the routing key its sender gave it (the event rules apply there, and an event
//! they re-route is handed on to its new key's partition), and hands the events over to
//! whatever correlates them: today in-process shards behind bounded channels, or the same
//! shards driven inline for `sluice replay` ([`local`]); a durable events topic read by a
//! consumer group plugs in here next. Ingest does not know which one it has, and the
//! correlator does not know where its events came from: it takes its time from each event's
//! `received_at` (stamped at ingest) and from ticks while idle.
//!
//! Admission happens here too, the same in both modes: the rate limits of `[limits]`
//! ([`limits`], per instance) before any hand-over, and in memory mode each routing key's
//! share of the shard queues ([`fair`]).

pub mod fair;
pub mod kafka;
pub mod limits;
pub mod local;

use std::sync::Arc;

use tokio::sync::watch;

use crate::correlate::silence::Silence;
use crate::event::{ChangeEvent, Command, Event};

pub use crate::correlate::{key_hash, partition, KeyHasher};

/// Why a request's events were not taken. Nothing of a refused request was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A partition's queue is full: the sender should retry later (503 + Retry-After).
    #[error("correlator queues are full")]
    Overloaded,
    /// Memory mode: the routing key holds more than its share of a shard queue that is more
    /// than half full (503 + Retry-After), while other keys are still taken (`fair`).
    #[error("the routing key holds more than its share of the correlator queue")]
    OverShare,
    /// The routing key sent more than `limits.per_routing_key` allows: PagerDuty's answer on
    /// its endpoints (429), 503 elsewhere; both with Retry-After.
    #[error("the routing key is over its rate limit")]
    RateLimited { retry_after_secs: u32 },
    /// This instance took more than `limits.global` allows (answered as [`Refused::RateLimited`]).
    #[error("this instance is over its rate limit")]
    GlobalRateLimited { retry_after_secs: u32 },
    /// More events in one request than a burst (`limits.burst`, or `limits.global_burst`)
    /// allows: it could never pass (413).
    #[error("more events in one request than the burst allows")]
    OverBurst { burst: u32, global: bool },
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
            Refused::OverShare => "over_share",
            Refused::RateLimited { .. } => "rate_limited",
            Refused::GlobalRateLimited { .. } => "global_rate_limited",
            Refused::OverBurst { .. } => "over_burst",
            Refused::Unavailable => "unavailable",
            Refused::NoIngest => "no_ingest",
        }
    }
}

/// The fingerprint of an instance's rules: event rules, grouping and inhibition rules (16 hex
/// digits). Exposed as `sluice_rules_info{hash}` and on `/readyz`; Kafka mode writes it into
/// watermarks and snapshot headers, so instances running other rules are noticed.
pub fn rules_hash(config: &crate::config::Config) -> String {
    rules_hash_of(&config.correlate)
}

/// [`rules_hash`] of the correlation section alone.
pub fn rules_hash_of(correlate: &crate::config::CorrelateConfig) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(crate::correlate::rules_fingerprint(correlate).as_bytes());
    h.update(format!("{:?}", correlate.event_rules).as_bytes());
    format!("{:016x}", h.digest())
}

/// Where ingest puts events: cheap to clone, one per server.
#[derive(Clone)]
pub struct Intake {
    to: To,
    /// Shared by every clone, so that a reload reaches them all.
    limits: Arc<crate::live::Live<Option<Arc<limits::RateLimits>>>>,
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
    fn with(to: To) -> Self {
        Intake {
            to,
            limits: Default::default(),
        }
    }

    /// Applies `limits` to every request before its hand-over (`None`: no rate limit).
    pub fn with_rate_limits(self, limits: Option<Arc<limits::RateLimits>>) -> Self {
        self.set_rate_limits(limits);
        self
    }

    /// Kafka mode: the rules fingerprint this instance's watermarks carry from now on (a reload).
    pub fn set_rules_hash(&self, hash: String) {
        if let To::Kafka {
            producer: Some(p), ..
        } = &self.to
        {
            p.set_rules(hash);
        }
    }

    /// Replaces the rate limits, for this intake and every clone of it, from the next request
    /// on (a reload: the limiters start afresh).
    pub fn set_rate_limits(&self, limits: Option<Arc<limits::RateLimits>>) {
        self.limits.set(Arc::new(limits));
    }

    /// Kafka mode: events go to the events topic through `producer` (`None` on an instance
    /// without the ingest role: every submit is refused), silences to `silences`.
    pub fn kafka(
        producer: Option<Arc<kafka::EventsProducer>>,
        silences: watch::Sender<Arc<[Silence]>>,
    ) -> Self {
        Intake::with(To::Kafka {
            producer,
            silences: Arc::new(silences),
        })
    }

    /// Hands over every event of one request, or none of them: a refusal never leaves half a
    /// batch accepted. Each goes to the partition of the routing key its sender gave it, where
    /// the event rules apply (`correlate::shard::door`).
    pub async fn submit_events(&self, events: Vec<Event>) -> Result<(), Refused> {
        if let Some(limits) = self.limits.get().as_ref() {
            limits.admit_events(&events)?;
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
        if let Some(limits) = self.limits.get().as_ref() {
            limits.admit_one(&change.routing_key)?;
        }
        match &self.to {
            To::Local(local) => local.change(change),
            To::Kafka {
                producer: Some(p), ..
            } => p.change(&change).await,
            To::Kafka { producer: None, .. } => Err(Refused::NoIngest),
        }
    }

    /// Hands over an operator's command on an incident (to its routing key's partition).
    /// Not rate limited: an admin action.
    pub async fn submit_command(&self, command: Command) -> Result<(), Refused> {
        match &self.to {
            To::Local(local) => local.command(command),
            To::Kafka {
                producer: Some(p), ..
            } => p.command(&command).await,
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
