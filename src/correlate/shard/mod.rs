//! One shard's correlation state: alerts deduplicated by `(routing_key, key space, dedup_key)`,
//! grouped into incidents by `(routing_key, rule, group_by values)` within a window, suppression
//! (silences, inhibition, flapping, thresholds, transients), and the timers that decide when
//! each incident's next message goes out.
//!
//! A shard is plain synchronous state with no clock of its own: every call gets `now`, and
//! everything it has to say comes out as [`OutboundMessage`]s in the caller's buffer. The
//! runner in `correlate/mod.rs` drives it from a channel and a sleep; tests and the offline
//! replay drive it directly.
//!
//! Every publication decision is made in one place, [`Shard::review`].
//!
//! This file holds [`Shard`] and its public API, and only sequences the concerns, one a file,
//! each stating at its top what is always true of its data:
//! - `store`: the slots incidents live in, the dedup index of open alerts, and every change of
//!   an alert's own state with the incident counters it moves;
//! - `grouping`: which incident a new alert joins, opening incidents, windows, incident ids;
//! - `door`: the event rules, and the routes they made, before an event is correlated;
//! - `caps`: this shard's share of the caps ([`Caps`]), what they count, and fail-open;
//! - `inhibit`: the inhibition index and the alerts it holds back;
//! - `flap`: state-change history and flapping spells;
//! - `silences`: the silences in force and which alerts they silence;
//! - `review`: review, emit, timers and close: what each incident publishes, and when;
//! - `stats`: [`Stats`] and the metrics.

mod caps;
mod changes;
mod door;
mod flap;
mod grouping;
mod heartbeats;
mod inhibit;
mod overflow;
mod pause;
mod review;
mod silences;
mod snapshot;
mod split;
mod stats;
mod store;

use std::sync::Arc;
use std::time::Duration;

use crate::config::EventRule;
use crate::event::{deterministic_id, Action, ChangeEvent, Event, LinkKind};
use crate::publish::encode::{
    to_json, ChangeBody, MessageKind, OutboundMessage, Topic, CHANGE_SCHEMA,
};
use crate::time::UnixMillis;

use super::incident::Alert;
use super::rules::{self, Inhibit, Rule};
use super::silence::Silence;
use super::timers::{End, Timer, Timers};
use super::Input;

pub use caps::Caps;
pub use door::Origin;
pub use grouping::JOINED_IN_DETAILS;
pub use snapshot::{SnapshotError, VERSION as SNAPSHOT_VERSION};
pub use stats::{Held, Stats, DROP_ALERT_NOT_OPEN};

use caps::Usage;
use changes::Changes;
use door::{Door, Entry};
use flap::FlapHistory;
use grouping::Groups;
use heartbeats::Heartbeats;
use inhibit::Inhibition;
use overflow::Overflow;
use pause::Learned;
use review::publish;
use silences::Silences;
use stats::ShardMetrics;
use store::{alert_hash, AlertIndex, ResolvedBy, Slots};

/// How long routes are remembered unless the config says otherwise (`correlate.route_ttl`).
fn default_route_ttl() -> Duration {
    crate::time::parse_duration(crate::config::defaults::ROUTE_TTL).expect("a valid default")
}

pub struct Shard {
    door: Door,
    rules: Arc<[Rule]>,
    caps: Caps,
    /// Incidents, by slot.
    slots: Slots,
    /// Open alerts, for dedup.
    alerts: AlertIndex,
    /// The current incident of each group, and incident ids.
    groups: Groups,
    /// What the per-routing-key caps count.
    usage: Usage,
    silences: Silences,
    heartbeats: Heartbeats,
    inhibition: Inhibition,
    flaps: FlapHistory,
    learned: Learned,
    /// `correlate.learned_pause`; zero: off.
    learned_pause: Duration,
    changes: Changes,
    /// `correlate.change_window`; zero: off.
    change_window: Duration,
    timers: Timers,
    /// Each routing key's alerts past a cap.
    overflow: Overflow,
    pub stats: Stats,
    metrics: ShardMetrics,
}

/// A shard handed over (Kafka mode's revoked partitions) or shut down takes what it held out
/// of the open gauges; a restored one put it in ([`Shard::restore`]).
impl Drop for Shard {
    fn drop(&mut self) {
        self.metrics.alerts_open.decrement(self.alerts.len() as f64);
        self.metrics
            .incidents_open
            .decrement(self.slots.live() as f64);
    }
}

impl Shard {
    pub fn new(rules: Arc<[Rule]>, inhibit: Arc<[Inhibit]>, caps: Caps) -> Self {
        assert!(!rules.is_empty(), "a shard needs at least one rule");
        Shard {
            door: Door::new(Arc::from(Vec::new()), default_route_ttl(), caps.max_alerts),
            rules,
            caps,
            slots: Slots::default(),
            alerts: AlertIndex::new(),
            groups: Groups::new(),
            usage: Usage::default(),
            silences: Silences::new(),
            heartbeats: Heartbeats::new(),
            inhibition: Inhibition::new(inhibit),
            flaps: FlapHistory::default(),
            learned: Learned::default(),
            learned_pause: Duration::ZERO,
            changes: Changes::default(),
            change_window: Duration::ZERO,
            timers: Timers::default(),
            overflow: Overflow::default(),
            stats: Stats::default(),
            metrics: ShardMetrics::new(),
        }
    }

    /// The shard with event rules at its door, and routes remembered for `route_ttl` (the
    /// routes it remembers already stay).
    pub fn with_event_rules(mut self, rules: Arc<[EventRule]>, route_ttl: Duration) -> Self {
        self.door.set_rules(rules, route_ttl);
        self
    }

    /// The shard with what it learns from history on: the learned pause
    /// (`correlate.learned_pause`) and change correlation (`correlate.change_window`); zero
    /// turns either off.
    pub fn with_history(mut self, learned_pause: Duration, change_window: Duration) -> Self {
        self.learned_pause = learned_pause;
        self.change_window = change_window;
        self
    }

    /// The shard with `[[maintenance]]` windows silencing what they match while open.
    pub fn with_maintenance(mut self, windows: Arc<[crate::config::MaintenanceWindow]>) -> Self {
        self.silences.set_windows(windows);
        self
    }

    /// The shard as part `part` of those `config` asks for: its event rules, history,
    /// maintenance windows and the heartbeats of the routing keys it owns.
    pub fn configured(self, config: &crate::config::CorrelateConfig, part: super::Part) -> Self {
        let owned: Vec<_> = config
            .heartbeats
            .iter()
            .filter(|h| part.owns(&h.routing_key))
            .cloned()
            .collect();
        self.with_event_rules(config.event_rules.clone().into(), config.route_ttl)
            .with_history(config.learned_pause, config.change_window)
            .with_maintenance(config.maintenance.clone().into())
            .with_heartbeats(owned.into())
    }

    /// The routes the event rules made that the door remembers.
    pub fn routes(&self) -> usize {
        self.door.routes()
    }

    pub fn open_alerts(&self) -> usize {
        self.alerts.len()
    }

    pub fn open_incidents(&self) -> usize {
        self.slots.live()
    }

    /// When [`Shard::advance`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        // Maintenance windows and heartbeats start at the first `advance`: at once, so that a
        // heartbeat nobody ever beats is missed even when no event comes.
        if self.silences.windows_unstarted() || self.heartbeats_unstarted() {
            return Some(UnixMillis(0));
        }
        self.timers.next_deadline()
    }

    /// Applies whatever ingest handed over. An event the event rules give another routing key
    /// comes back: the caller hands it to the partition of its new key, whose shard (this one
    /// again, when it owns that key too) takes it with [`Shard::apply_routed`].
    #[must_use = "a re-routed event must be handed on"]
    pub fn apply_input(
        &mut self,
        input: Input,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) -> Option<Event> {
        match input {
            Input::Event(e) => match self.door.enter(e, now) {
                Entry::Here(e) => self.apply(e, now, out),
                Entry::Elsewhere(e) => return Some(e),
                Entry::Dropped => {}
            },
            Input::Change(c) => self.apply_change(c, out),
            Input::Command(c) => self.apply_command(c, now, out),
            Input::Silences(s) => self.set_silences(s, now, out),
        }
        None
    }

    /// Applies an event the event rules re-routed to this shard's routing key, as it is (its
    /// rules ran where it came from); one from `origin` already taken is skipped (see `door`).
    pub fn apply_routed(
        &mut self,
        event: Event,
        origin: Option<Origin>,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        if self.door.take_routed(origin) {
            self.apply(event, now, out);
        }
    }

    /// Applies one alert event received at `now` (a heartbeat's beat: `heartbeats`).
    pub fn apply(&mut self, event: Event, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        if !self.take_beat(&event, now, out) {
            self.correlate(event, now, out);
        }
    }

    /// Dedups `event` into its alert, or opens one.
    fn correlate(&mut self, event: Event, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        self.stats.events += 1;
        let hash = alert_hash(&event.routing_key, event.key_space, &event.dedup_key);
        let at = self.alerts.find(&self.slots, hash, &event);
        if let Some((slot, index)) = at {
            let inc = self.slots.get(slot);
            let flapping = inc.flapping(now);
            let alert = &inc.alerts[index as usize];
            let (silenced, inhibited) = (alert.silenced, alert.inhibited);
            self.stats.silence += u64::from(silenced);
            self.stats.inhibit += u64::from(inhibited && !silenced);
            self.stats.flap += u64::from(flapping);
        }
        match (event.action, at) {
            (Action::Trigger, Some((slot, index))) => self.retrigger(slot, index, event, now, out),
            (Action::Trigger, None) => {
                if !self.repeats_spilled(&event, hash) {
                    self.open_alert(hash, event, now, out);
                }
            }
            (Action::Acknowledge, Some((slot, index))) => self.acknowledge(slot, index, now, out),
            (Action::Resolve, Some((slot, index))) => {
                self.resolve(slot, index, ResolvedBy::Event, now, out)
            }
            (Action::Resolve, None) if self.unspill(&event.routing_key, hash, now, out) => {}
            (Action::Acknowledge | Action::Resolve, None) => {
                self.stats.dropped += 1;
                self.metrics.dropped_not_open.increment(1);
            }
        }
    }

    /// Publishes a change event as it is: change events never open incidents.
    pub fn apply_change(&mut self, change: ChangeEvent, out: &mut Vec<OutboundMessage>) {
        self.stats.changes += 1;
        let id = deterministic_id(
            "chg_",
            &[
                change.routing_key.as_bytes(),
                &change.received_at.0.to_le_bytes(),
                change.summary.as_bytes(),
                change.source.as_deref().unwrap_or("").as_bytes(),
            ],
        );
        let body = ChangeBody {
            schema: CHANGE_SCHEMA,
            kind: MessageKind::Change,
            change_id: &id,
            routing_key: &change.routing_key,
            integration: change.integration.as_str(),
            summary: &change.summary,
            source: change.source.as_deref(),
            timestamp: change.timestamp,
            received_at: change.received_at,
            custom_details: change.custom_details.as_ref().map(|d| &*d.0),
            links: &change.links,
            images: &change.images,
        };
        if !self.change_window.is_zero() {
            self.changes.record(&id, &change, self.change_window);
        }
        let message = OutboundMessage {
            topic: Topic::Changes,
            kind: MessageKind::Change,
            key: change.routing_key.clone(),
            body: to_json(&body),
            id,
            published_at: None,
            first_event_at: None,
            decided_at: change.received_at,
        };
        publish(&mut self.stats, out, message);
    }

    /// Fires every timer due at or before `now`, each at its own deadline and in deadline
    /// order, so a late call decides exactly what a punctual one would have. Call it before
    /// applying events that arrived at `now`.
    pub fn advance(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        // The windows' first change is scheduled at the first call (a shard learns the time
        // from its inputs); each later one when the one before fires.
        self.silences.start_windows(now, &mut self.timers);
        self.start_heartbeats(now, out);
        while let Some((at, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Incident { slot, token } => {
                    let Some(inc) = self.slots.try_get_mut(slot) else {
                        continue;
                    };
                    if inc.timer != token {
                        continue;
                    }
                    inc.timer = 0;
                    self.review(slot, at, out);
                }
                Timer::AlertEnds { slot, index, hash } => {
                    // An open alert with an end has an entry at or before it; a refresh that
                    // moved the end later left it there, and it moves on now.
                    match self.slots.end_of(slot, index, hash) {
                        Some(end) if end <= at => {
                            self.resolve(slot, index, ResolvedBy::Time, at, out)
                        }
                        Some(end) => self
                            .timers
                            .schedule(end, Timer::AlertEnds { slot, index, hash }),
                        None => {}
                    }
                }
                Timer::EndsDue { bucket } => {
                    // Each alert still open with an end is scheduled at it (into the heap if
                    // it is in this second, else into its own second's list).
                    for End { slot, index, hash } in self.timers.take_bucket(bucket) {
                        if let Some(end) = self.slots.end_of(slot, index, hash) {
                            self.timers
                                .schedule(end, Timer::AlertEnds { slot, index, hash });
                        }
                    }
                }
                Timer::Heartbeat { index } => self.heartbeat_due(index, at, out),
                Timer::Silences => {
                    self.silences.windows_fired(at, &mut self.timers);
                    self.reevaluate_silences(at, out)
                }
            }
        }
    }

    /// On shutdown: publishes every incident still in `group_wait` (or `pause_transient`) and
    /// every pending update, so that no accepted event's incident is left unsaid. Incidents held
    /// by a threshold or by suppression stay unpublished, as they would have.
    pub fn flush(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        for slot in 0..self.slots.end() {
            let Some(inc) = self.slots.try_get_mut(slot) else {
                continue;
            };
            if inc.publish_at == UnixMillis::NEVER {
                // Held by a "never" pause: it would never have been published.
                continue;
            }
            inc.timer = 0;
            inc.publish_at = inc.publish_at.min(now);
            if inc.published && inc.dirty {
                self.emit(slot, MessageKind::Updated, now, out);
            } else {
                self.review(slot, now, out);
            }
        }
    }

    /// Replaces the silences in force and re-evaluates every open alert against them.
    pub fn set_silences(
        &mut self,
        silences: Arc<[Silence]>,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        self.silences.replace(silences, now, &mut self.timers);
        self.reevaluate_silences(now, out);
    }

    /// A trigger for an alert not open: it joins its group's incident or opens one, unless a
    /// cap is reached (then it joins its routing key's overflow incident: [`Shard::spill`]).
    fn open_alert(
        &mut self,
        hash: u64,
        mut event: Event,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let rules = Arc::clone(&self.rules);
        let rule_idx = rules::select(&rules, &event);
        let rule = &rules[rule_idx];
        let rule_id = rule_idx as u16;
        let found = self.find_group(rule, rule_id, &event, now);
        if let Some(cap) = self.cap_reached(&event.routing_key, found.current.is_none()) {
            self.spill(cap, rule_id, found.ghash, event, now, out);
            return;
        }
        let slot = match found.current {
            Some(slot) => {
                let via = found.via.and_then(|i| rule.auto().get(i as usize).copied());
                if let Some(kind) = via {
                    self.stats.joined_by[kind as usize] += 1;
                    self.metrics.auto_grouped[kind as usize].increment(1);
                }
                // A storm member (the same check elsewhere) is not part of the cascade.
                if via != Some(LinkKind::Class) {
                    self.link_cascade(slot, &event, &found.details, now);
                }
                slot
            }
            None => self.open_incident(found.ghash, rule_id, &event, &found.details, now),
        };
        let mut alert = Alert::triggered(hash, &mut event, now);
        alert.grouped_by = found.via;
        alert.joined_as = found.joined_as;
        alert.silenced = self.silences.silenced(&event.routing_key, &alert, now);
        let ends_at = alert.ends_at.get();
        self.extend_window(slot, &rule.config, now);
        let index = self.add_alert(slot, alert, event.links, now);
        self.hold_for(slot, index, now);
        self.usage.alert_opened(event.routing_key);
        if let Some(at) = ends_at {
            self.timers
                .schedule(at, Timer::alert_ends(slot, index, hash));
        }
        self.inhibit_on_open(slot, index, now, out);
        self.gather(slot, index);
        self.record_state_change(slot, hash, now, None);
        self.review(slot, now, out);
    }

    /// An open alert resolves (by an event, or by time at its `ends_at`).
    fn resolve(
        &mut self,
        slot: u32,
        index: u32,
        by: ResolvedBy,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let hash = self.mark_resolved(slot, index, by, now);
        self.learn(slot, index, now);
        self.pause_after_resolve(slot, index, now);
        self.usage.alert_resolved(&self.slots.get(slot).routing_key);
        self.inhibit_on_resolve(slot, index, now, out);
        let opened = self.slots.get(slot).alerts[index as usize].first_seen;
        self.record_state_change(slot, hash, now, Some(opened));
        self.review(slot, now, out);
    }
}

mod commands;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model;

#[cfg(test)]
mod noise_tests;
