//! What a shard counts: [`Stats`] for `sluice replay`'s summary, [`ShardMetrics`] for live runs.
//!
//! Invariant: counting only, nothing here decides anything. Every counter only grows; the two
//! gauges move by one as an alert or an incident opens and as it closes, so summed over the
//! shards they are what is open.

use metrics::{Counter, Gauge};

use crate::metrics as m;
use crate::publish::encode::MessageKind;

use super::caps::CAPS;

/// Why an accepted event changed nothing (the `reason` label of `sluice_events_dropped_total`).
pub const DROP_ALERT_NOT_OPEN: &str = "alert_not_open";

/// Why an incident was never published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Every alert resolved within `pause_transient`.
    Transient,
    /// Fewer than `min_alerts` alerts gathered.
    Threshold,
    /// Every alert was silenced or inhibited throughout.
    Suppressed,
}

impl Held {
    pub fn as_str(self) -> &'static str {
        match self {
            Held::Transient => "transient",
            Held::Threshold => "threshold",
            Held::Suppressed => "suppressed",
        }
    }
}

/// Plain counters for `sluice replay`'s summary (the metrics carry the same for live runs).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub events: u64,
    pub changes: u64,
    pub alerts_opened: u64,
    pub incidents_opened: u64,
    pub messages: [u64; MessageKind::ALL.len()],
    /// Events held back, by reason; an event can be held back for more than one.
    pub dedup: u64,
    pub silence: u64,
    pub inhibit: u64,
    pub flap: u64,
    pub transient: u64,
    pub threshold: u64,
    /// Incidents held longer than their severity's pause because their class usually blips.
    #[serde(default)]
    pub learned: u64,
    /// Alerts that joined an incident by auto grouping, by link kind (`LinkKind as usize`).
    #[serde(default)]
    pub joined_by: [u64; 6],
    pub dropped: u64,
    pub caps_reached: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.events += o.events;
        self.changes += o.changes;
        self.alerts_opened += o.alerts_opened;
        self.incidents_opened += o.incidents_opened;
        for (a, b) in self.messages.iter_mut().zip(o.messages) {
            *a += b;
        }
        self.dedup += o.dedup;
        self.silence += o.silence;
        self.inhibit += o.inhibit;
        self.flap += o.flap;
        self.transient += o.transient;
        self.learned += o.learned;
        for (a, b) in self.joined_by.iter_mut().zip(o.joined_by) {
            *a += b;
        }
        self.threshold += o.threshold;
        self.dropped += o.dropped;
        self.caps_reached += o.caps_reached;
    }
}

pub(super) struct ShardMetrics {
    pub(super) alerts_open: Gauge,
    pub(super) incidents_open: Gauge,
    pub(super) opened: Counter,
    pub(super) resolved: Counter,
    pub(super) dropped_not_open: Counter,
    /// By [`Integration`], in the order of [`Integration::ALL`].
    pub(super) deduplicated: m::PerKind<Counter>,
    /// By [`Held`].
    pub(super) held: [Counter; 3],
    pub(super) flapping: Counter,
    /// By `LinkKind as usize`.
    pub(super) auto_grouped: [Counter; 6],
    pub(super) learned_pause: Counter,
    /// By the index of the cap in [`CAPS`].
    pub(super) caps: [Counter; 4],
}

impl ShardMetrics {
    pub(super) fn new() -> Self {
        ShardMetrics {
            alerts_open: m::gauge(m::ALERTS_OPEN),
            incidents_open: m::gauge(m::INCIDENTS_OPEN),
            opened: m::counter(m::INCIDENTS_OPENED),
            resolved: m::counter(m::INCIDENTS_RESOLVED),
            dropped_not_open: m::dropped(DROP_ALERT_NOT_OPEN),
            deduplicated: m::PerKind::new(m::deduplicated),
            held: [Held::Transient, Held::Threshold, Held::Suppressed]
                .map(|h| m::incidents_held(h.as_str())),
            flapping: m::counter(m::INCIDENTS_FLAPPING),
            auto_grouped: crate::event::LinkKind::ALL.map(|k| m::auto_grouped(k.as_str())),
            learned_pause: m::counter(m::INCIDENTS_LEARNED_PAUSE),
            caps: CAPS.map(m::cap_reached),
        }
    }
}
