//! Dead man's switches (`[[heartbeats]]`), kept by the shard (partition) that owns each one's
//! routing key, so beats and the missed-heartbeat incident live where that key's alerts do.
//!
//! A beat is an event of the heartbeat's routing key: an explicit one (integration
//! `heartbeat`, dedup key = the name; always taken, never correlated) or any event its `events`
//! matchers meet (correlated as usual unless `consume`). When no beat came for `interval`, the
//! shard triggers an alert of its own under the routing key (dedup key `missed:<name>`,
//! integration `heartbeat`, class `heartbeat`, summary "no heartbeat from <name> for
//! <interval>"), which pages as any alert does; the next beat resolves it.
//!
//! Invariants: each heartbeat has at most one pending check (`Timer::Heartbeat`), at the time
//! its deadline was when the check was set; deadlines only move later, so a check that finds
//! its deadline moved sets the next one, and stale timers (another chain, a reload) are told by
//! `next`. The deadline is `max(last beat, start) + interval`, where start is the first time
//! this shard ran (a build, a restore, a reload, a new owner in Kafka mode): after a start each
//! heartbeat has one full interval of grace. Last beats and which heartbeats are missed are in
//! the snapshot; the start is not.

use std::collections::HashMap;
use std::sync::Arc;

use metrics::Counter;
use serde::{Deserialize, Serialize};

use crate::config::HeartbeatConfig;
use crate::event::{Action, Event};
use crate::integration::Integration;
use crate::metrics as m;
use crate::publish::encode::OutboundMessage;
use crate::time::UnixMillis;

use super::super::timers::Timer;
use super::snapshot::pairs;
use super::Shard;

/// Counted in `sluice_events_dropped_total` for a beat no heartbeat is configured for.
pub const DROP_UNKNOWN_HEARTBEAT: &str = "unknown_heartbeat";

/// What a shard remembers of one heartbeat: the part of its snapshot heartbeats write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Beat {
    last: Option<UnixMillis>,
    missed: bool,
}

/// Beats by `(routing key, name)`.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Beats {
    #[serde(with = "pairs")]
    by: HashMap<(String, String), Beat>,
}

pub(super) struct Heartbeats {
    owned: Arc<[HeartbeatConfig]>,
    beats: Beats,
    /// When this shard first ran (`None`: not yet).
    started: Option<UnixMillis>,
    /// Each owned heartbeat's pending check.
    next: Vec<Option<UnixMillis>>,
    unknown: Counter,
}

impl Heartbeats {
    pub(super) fn new() -> Self {
        Heartbeats {
            owned: Arc::from(Vec::new()),
            beats: Beats::default(),
            started: None,
            next: Vec::new(),
            unknown: m::dropped(DROP_UNKNOWN_HEARTBEAT),
        }
    }

    pub(super) fn set_owned(&mut self, owned: Arc<[HeartbeatConfig]>) {
        self.next = vec![None; owned.len()];
        self.owned = owned;
        self.started = None;
    }

    pub(super) fn remembered(&self) -> &Beats {
        &self.beats
    }

    pub(super) fn restore(&mut self, beats: Beats) {
        self.beats = beats;
    }

    /// Every beat remembered, for a move to other partitions.
    pub(super) fn take_all(&mut self) -> Vec<((String, String), Beat)> {
        self.beats.by.drain().collect()
    }

    pub(super) fn put(&mut self, key: (String, String), beat: Beat) {
        self.beats.by.insert(key, beat);
    }

    fn beat(&self, i: usize) -> Beat {
        let h = &self.owned[i];
        let key = (h.routing_key.clone(), h.name.clone());
        self.beats.by.get(&key).cloned().unwrap_or_default()
    }

    fn beat_mut(&mut self, i: usize) -> &mut Beat {
        let h = &self.owned[i];
        let key = (h.routing_key.clone(), h.name.clone());
        self.beats.by.entry(key).or_default()
    }

    /// When heartbeat `i` is missed unless a beat comes first.
    fn deadline(&self, i: usize) -> UnixMillis {
        let started = self.started.unwrap_or_default();
        let from = self.beat(i).last.map_or(started, |last| last.max(started));
        from.saturating_add(self.owned[i].interval)
    }
}

impl Shard {
    /// The shard with the heartbeats whose routing keys it owns.
    pub(super) fn with_heartbeats(mut self, owned: Arc<[HeartbeatConfig]>) -> Self {
        self.heartbeats.set_owned(owned);
        self
    }

    /// Whether there are heartbeats (or beats remembered) and the first `advance` is to come.
    pub(super) fn heartbeats_unstarted(&self) -> bool {
        self.heartbeats.started.is_none()
            && !(self.heartbeats.owned.is_empty() && self.heartbeats.beats.by.is_empty())
    }

    /// At the first `advance`: the start, and every heartbeat's first check. A heartbeat
    /// missed before and no longer configured (a reload took it out) is forgotten, and its
    /// alert resolves.
    pub(super) fn start_heartbeats(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        if self.heartbeats.started.is_some() {
            return;
        }
        self.heartbeats.started = Some(now);
        let owned = &self.heartbeats.owned;
        let gone: Vec<(String, String)> = self
            .heartbeats
            .beats
            .by
            .keys()
            .filter(|(rk, name)| {
                !owned
                    .iter()
                    .any(|h| h.routing_key == *rk && h.name == *name)
            })
            .cloned()
            .collect();
        for (rk, name) in gone {
            let beat = self.heartbeats.beats.by.remove(&(rk.clone(), name.clone()));
            if beat.is_some_and(|b| b.missed) {
                let resolve = Event::new(
                    Integration::Heartbeat,
                    Action::Resolve,
                    rk,
                    format!("missed:{name}"),
                    now,
                );
                self.correlate(resolve, now, out);
            }
        }
        for i in 0..self.heartbeats.owned.len() {
            if !self.heartbeats.beat(i).missed {
                self.check_heartbeat_at(i, self.heartbeats.deadline(i));
            }
        }
    }

    fn check_heartbeat_at(&mut self, i: usize, at: UnixMillis) {
        self.heartbeats.next[i] = Some(at);
        self.timers
            .schedule(at, Timer::Heartbeat { index: i as u32 });
    }

    /// A `Timer::Heartbeat` for heartbeat `index` fired at `at`.
    pub(super) fn heartbeat_due(
        &mut self,
        index: u32,
        at: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let i = index as usize;
        if self.heartbeats.next.get(i).copied().flatten() != Some(at) {
            return;
        }
        self.heartbeats.next[i] = None;
        if self.heartbeats.beat(i).missed {
            return;
        }
        let deadline = self.heartbeats.deadline(i);
        if deadline > at {
            self.check_heartbeat_at(i, deadline);
            return;
        }
        self.heartbeats.beat_mut(i).missed = true;
        let h = &self.heartbeats.owned[i];
        m::heartbeat_missed(&h.name).increment(1);
        tracing::warn!(heartbeat = %h.name, routing_key = %h.routing_key, interval = %h.interval_text, "heartbeat missed");
        let event = self.missed_event(i, Action::Trigger, at);
        self.correlate(event, at, out);
    }

    /// Takes `event` as a beat of every heartbeat it is one of; true when it is a beat only
    /// (explicit, or matched by a heartbeat that consumes what it matches).
    pub(super) fn take_beat(
        &mut self,
        event: &Event,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) -> bool {
        let explicit = event.integration == Integration::Heartbeat;
        if self.heartbeats.owned.is_empty() && !explicit {
            return false;
        }
        let mut consumed = explicit;
        let mut found = false;
        for i in 0..self.heartbeats.owned.len() {
            let h = &self.heartbeats.owned[i];
            if h.routing_key != event.routing_key {
                continue;
            }
            let hit = match explicit {
                true => h.name == event.dedup_key,
                false => h
                    .events
                    .as_ref()
                    .is_some_and(|matchers| crate::matchers::all_match(matchers, event)),
            };
            if !hit {
                continue;
            }
            found = true;
            consumed |= h.consume;
            let beat = self.heartbeats.beat_mut(i);
            beat.last = Some(now);
            if std::mem::take(&mut beat.missed) {
                let h = &self.heartbeats.owned[i];
                tracing::info!(heartbeat = %h.name, routing_key = %h.routing_key, "heartbeat back");
                let event = self.missed_event(i, Action::Resolve, now);
                self.correlate(event, now, out);
            }
            if self.heartbeats.started.is_some() && self.heartbeats.next[i].is_none() {
                self.check_heartbeat_at(i, self.heartbeats.deadline(i));
            }
        }
        if explicit && !found {
            self.heartbeats.unknown.increment(1);
            tracing::warn!(heartbeat = %event.dedup_key, routing_key = %event.routing_key, "beat for a heartbeat not configured under its routing key: dropped");
        }
        consumed
    }

    /// The missed-heartbeat alert of heartbeat `i`: its trigger or its resolve.
    fn missed_event(&self, i: usize, action: Action, at: UnixMillis) -> Event {
        let h = &self.heartbeats.owned[i];
        let mut e = Event::new(
            Integration::Heartbeat,
            action,
            h.routing_key.clone(),
            format!("missed:{}", h.name),
            at,
        );
        e.severity = h.severity;
        e.summary = format!("no heartbeat from {} for {}", h.name, h.interval_text);
        e.source = h.name.clone();
        e.class = Some("heartbeat".into());
        let last = self.heartbeats.beat(i).last;
        let details = serde_json::json!({
            "heartbeat": h.name,
            "interval": h.interval_text,
            "last_beat": last.map(|t| t.to_string()),
        });
        e.custom_details = serde_json::value::to_raw_value(&details)
            .ok()
            .map(crate::event::Details);
        e
    }
}
