//! One shard's correlation state: alerts deduplicated by `(routing_key, dedup_key)`, grouped
//! into incidents by `(routing_key, rule, group_by values)` within a window, suppression
//! (silences, inhibition, flapping, thresholds, transients), and the timers that decide when
//! each incident's next message goes out.
//!
//! A shard is plain synchronous state with no clock of its own: every call gets `now`, and
//! everything it has to say comes out as [`OutboundMessage`]s in the caller's buffer. The
//! runner in `correlate/mod.rs` drives it from a channel and a sleep; tests and the offline
//! replay drive it directly.
//!
//! Every publication decision is made in one place, [`Shard::review`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hashbrown::HashTable;
use metrics::{Counter, Gauge};
use xxhash_rust::xxh3::Xxh3Default;

use crate::config::WindowKind;
use crate::event::{deterministic_id, Action, ChangeEvent, Event};
use crate::integration::{Integration, KeySpace};
use crate::matchers::all_match;
use crate::metrics as m;
use crate::publish::encode::{
    to_json, ChangeBody, MessageKind, OutboundMessage, Status, Topic, CHANGE_SCHEMA,
};
use crate::time::UnixMillis;

use super::incident::{Alert, AlertView, Incident};
use super::rules::{self, Inhibit, Rule};
use super::silence::Silence;
use super::timers::{Timer, Timers};
use super::Input;

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub changes: u64,
    pub alerts_opened: u64,
    pub incidents_opened: u64,
    pub messages: [u64; 5],
    /// Events held back, by reason; an event can be held back for more than one.
    pub dedup: u64,
    pub silence: u64,
    pub inhibit: u64,
    pub flap: u64,
    pub transient: u64,
    pub threshold: u64,
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
        self.threshold += o.threshold;
        self.dropped += o.dropped;
        self.caps_reached += o.caps_reached;
    }
}

/// Per-shard share of the configured caps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_alerts: usize,
    pub max_alerts_per_routing_key: usize,
    pub max_incidents: usize,
    pub max_incidents_per_routing_key: usize,
    pub max_alerts_per_message: usize,
}

impl Limits {
    /// Generous limits for tests and benches.
    pub fn unbounded(max_alerts_per_message: usize) -> Self {
        Limits {
            max_alerts: usize::MAX,
            max_alerts_per_routing_key: usize::MAX,
            max_incidents: usize::MAX,
            max_incidents_per_routing_key: usize::MAX,
            max_alerts_per_message,
        }
    }
}

/// Where an open alert lives: `incidents[slot].alerts[index]`.
struct AlertRef {
    hash: u64,
    slot: u32,
    index: u32,
}

/// An inhibition rule and the hash of an alert's `equal` values under it.
type InhibitKey = (u16, u64);
/// An alert's place and hash (`slot`, `index`, `hash`), checked before use since it may be stale.
type AlertLoc = (u32, u32, u64);

/// The current incident of a group.
struct GroupRef {
    hash: u64,
    slot: u32,
}

#[derive(Default)]
struct PerRoutingKey {
    alerts: usize,
    incidents: usize,
}

struct ShardMetrics {
    alerts_open: Gauge,
    incidents_open: Gauge,
    opened: Counter,
    resolved: Counter,
    dropped_not_open: Counter,
    deduplicated: Vec<Counter>,
    held: [Counter; 3],
    flapping: Counter,
    caps: [Counter; 4],
}

impl ShardMetrics {
    fn new() -> Self {
        ShardMetrics {
            alerts_open: m::gauge(m::ALERTS_OPEN),
            incidents_open: m::gauge(m::INCIDENTS_OPEN),
            opened: m::counter(m::INCIDENTS_OPENED),
            resolved: m::counter(m::INCIDENTS_RESOLVED),
            dropped_not_open: m::dropped(DROP_ALERT_NOT_OPEN),
            deduplicated: Integration::ALL
                .iter()
                .map(|i| m::IntegrationCounters::new(*i).deduplicated)
                .collect(),
            held: [Held::Transient, Held::Threshold, Held::Suppressed]
                .map(|h| m::incidents_held(h.as_str())),
            flapping: m::counter(m::INCIDENTS_FLAPPING),
            caps: CAPS.map(m::cap_reached),
        }
    }
}

const CAPS: [&str; 4] = [
    "alerts",
    "alerts_per_routing_key",
    "incidents",
    "incidents_per_routing_key",
];

pub struct Shard {
    rules: Arc<[Rule]>,
    inhibit: Arc<[Inhibit]>,
    limits: Limits,
    alerts: HashTable<AlertRef>,
    groups: HashTable<GroupRef>,
    incidents: Vec<Option<Incident>>,
    free: Vec<u32>,
    timers: Timers,
    per_routing_key: HashMap<Box<str>, PerRoutingKey>,
    silences: Arc<[Silence]>,
    /// Open alerts matching each inhibition rule's source, by (rule, equal values).
    inhibitors: HashMap<InhibitKey, u32>,
    /// Alerts matching each inhibition rule's target, by (rule, equal values); pruned lazily.
    inhibit_targets: HashMap<InhibitKey, Vec<AlertLoc>>,
    /// Recent state changes per alert key, for flap detection.
    flap_history: HashMap<u64, VecDeque<UnixMillis>>,
    /// Base ids of incidents opened in the current millisecond, to keep ids unique when the
    /// same group opens twice within one millisecond (trigger, resolve, trigger).
    ids_this_ms: (UnixMillis, HashMap<u128, u32>),
    pub stats: Stats,
    metrics: ShardMetrics,
}

fn alert_hash(routing_key: &str, space: KeySpace, dedup_key: &str) -> u64 {
    let mut h = Xxh3Default::new();
    h.update(&(routing_key.len() as u64).to_le_bytes());
    h.update(routing_key.as_bytes());
    h.update(&[space.0]);
    h.update(dedup_key.as_bytes());
    h.digest()
}

fn values_hash<'a>(routing_key: &str, rule: u16, values: impl Iterator<Item = &'a str>) -> u64 {
    let mut h = Xxh3Default::new();
    h.update(&(routing_key.len() as u64).to_le_bytes());
    h.update(routing_key.as_bytes());
    h.update(&rule.to_le_bytes());
    for v in values {
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.digest()
}

impl Shard {
    pub fn new(rules: Arc<[Rule]>, inhibit: Arc<[Inhibit]>, limits: Limits) -> Self {
        assert!(!rules.is_empty(), "a shard needs at least one rule");
        Shard {
            rules,
            inhibit,
            limits,
            alerts: HashTable::new(),
            groups: HashTable::new(),
            incidents: Vec::new(),
            free: Vec::new(),
            timers: Timers::default(),
            per_routing_key: HashMap::new(),
            silences: Arc::from(Vec::new()),
            inhibitors: HashMap::new(),
            inhibit_targets: HashMap::new(),
            flap_history: HashMap::new(),
            ids_this_ms: (UnixMillis(0), HashMap::new()),
            stats: Stats::default(),
            metrics: ShardMetrics::new(),
        }
    }

    pub fn open_alerts(&self) -> usize {
        self.alerts.len()
    }

    pub fn open_incidents(&self) -> usize {
        self.incidents.len() - self.free.len()
    }

    /// When [`Shard::advance`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        self.timers.next_deadline()
    }

    /// Applies whatever ingest handed over.
    pub fn apply_input(&mut self, input: Input, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        match input {
            Input::Event(e) => self.apply(e, now, out),
            Input::Change(c) => self.apply_change(c, out),
            Input::Silences(s) => self.set_silences(s, now, out),
        }
    }

    /// Applies one alert event received at `now`.
    pub fn apply(&mut self, event: Event, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        self.stats.events += 1;
        let hash = alert_hash(&event.routing_key, event.key_space, &event.dedup_key);
        let incidents = &self.incidents;
        let found = self.alerts.find(hash, |r| {
            let inc = incidents[r.slot as usize]
                .as_ref()
                .expect("alert refs point at incidents");
            let alert = &inc.alerts[r.index as usize];
            *inc.routing_key == *event.routing_key
                && alert.key_space == event.key_space
                && *alert.dedup_key == *event.dedup_key
        });
        let at = found.map(|r| (r.slot, r.index));
        if let Some((slot, index)) = at {
            let inc = self.incident(slot);
            let flapping = inc.flapping(now);
            let alert = &inc.alerts[index as usize];
            let (silenced, inhibited) = (alert.silenced, alert.inhibited);
            self.stats.silence += u64::from(silenced);
            self.stats.inhibit += u64::from(inhibited && !silenced);
            self.stats.flap += u64::from(flapping);
        }
        match (event.action, at) {
            (Action::Trigger, Some((slot, index))) => self.retrigger(slot, index, event, now, out),
            (Action::Trigger, None) => self.open_alert(hash, event, now, out),
            (Action::Acknowledge, Some((slot, index))) => self.acknowledge(slot, index, now, out),
            (Action::Resolve, Some((slot, index))) => self.resolve(slot, index, now, out),
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
        self.stats.messages[MessageKind::Change.index()] += 1;
        out.push(OutboundMessage {
            topic: Topic::Changes,
            kind: MessageKind::Change,
            key: change.routing_key.clone(),
            body: to_json(&body),
            id,
        });
    }

    /// Fires every timer due at or before `now`, each at its own deadline and in deadline
    /// order, so a late call decides exactly what a punctual one would have. Call it before
    /// applying events that arrived at `now`.
    pub fn advance(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        while let Some((at, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Incident { slot, token } => {
                    let Some(inc) = self
                        .incidents
                        .get_mut(slot as usize)
                        .and_then(Option::as_mut)
                    else {
                        continue;
                    };
                    if inc.timer != token {
                        continue;
                    }
                    inc.timer = 0;
                    self.review(slot, at, out);
                }
                Timer::AlertEnds { slot, index, hash } => {
                    let due = self
                        .incidents
                        .get(slot as usize)
                        .and_then(Option::as_ref)
                        .and_then(|inc| inc.alerts.get(index as usize))
                        .is_some_and(|a| a.hash == hash && a.is_open() && a.ends_at == Some(at));
                    if due {
                        self.resolve(slot, index, at, out);
                    }
                }
                Timer::Silences => self.reevaluate_silences(at, out),
            }
        }
    }

    /// On shutdown: publishes every incident still in `group_wait` (or `pause_transient`) and
    /// every pending update, so that no accepted event's incident is left unsaid. Incidents held
    /// by a threshold or by suppression stay unpublished, as they would have.
    pub fn flush(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        for slot in 0..self.incidents.len() as u32 {
            let Some(inc) = self.incidents[slot as usize].as_mut() else {
                continue;
            };
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
        for s in silences.iter() {
            for at in [s.starts_at, s.ends_at] {
                if at > now {
                    self.timers.schedule(at, Timer::Silences);
                }
            }
        }
        self.silences = silences;
        self.reevaluate_silences(now, out);
    }

    fn silenced(&self, routing_key: &str, alert: &Alert, now: UnixMillis) -> bool {
        let view = AlertView { routing_key, alert };
        self.silences.iter().any(|s| s.silences(&view, now))
    }

    fn reevaluate_silences(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        for slot in 0..self.incidents.len() as u32 {
            let Some(inc) = self.incidents[slot as usize].as_ref() else {
                continue;
            };
            let changed: Vec<(u32, bool)> = inc
                .alerts
                .iter()
                .enumerate()
                .filter(|(_, a)| a.is_open())
                .filter_map(|(i, a)| {
                    let now_silenced = self.silenced(&inc.routing_key, a, now);
                    (now_silenced != a.silenced).then_some((i as u32, now_silenced))
                })
                .collect();
            if changed.is_empty() {
                continue;
            }
            for (index, silenced) in changed {
                let alert = &self.incident(slot).alerts[index as usize];
                let inhibited = alert.inhibited;
                self.set_suppression(slot, index, silenced, inhibited);
            }
            self.incident(slot).dirty = true;
            self.review(slot, now, out);
        }
    }

    /// Sets an open alert's suppression flags, keeping the incident's counts right.
    fn set_suppression(&mut self, slot: u32, index: u32, silenced: bool, inhibited: bool) {
        let inc = self.incident(slot);
        let alert = &mut inc.alerts[index as usize];
        let was = alert.suppressed();
        alert.silenced = silenced;
        alert.inhibited = inhibited;
        match (was, alert.suppressed()) {
            (false, true) => inc.suppressed_open += 1,
            (true, false) => {
                inc.suppressed_open -= 1;
                inc.gathered += 1;
            }
            _ => {}
        }
    }

    fn incident(&mut self, slot: u32) -> &mut Incident {
        self.incidents[slot as usize]
            .as_mut()
            .expect("slot holds an incident")
    }

    fn retrigger(
        &mut self,
        slot: u32,
        index: u32,
        event: Event,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        self.stats.dedup += 1;
        self.metrics.deduplicated[event.integration as usize].increment(1);
        let inc = self.incident(slot);
        inc.event_count += 1;
        let alert = &mut inc.alerts[index as usize];
        alert.event_count = alert.event_count.saturating_add(1);
        alert.last_seen = now;
        if *alert.summary != *event.summary {
            alert.summary = event.summary.into_boxed_str();
        }
        if event.custom_details.is_some() {
            alert.details = event.custom_details;
        }
        alert.ends_at = event.ends_at;
        let hash = alert.hash;
        let old = std::mem::replace(&mut alert.severity, event.severity);
        let severity_changed = old != event.severity;
        if severity_changed {
            inc.severity_counts[old as usize] -= 1;
            inc.severity_counts[event.severity as usize] += 1;
        }
        if let Some(at) = event.ends_at {
            self.timers
                .schedule(at, Timer::AlertEnds { slot, index, hash });
        }
        if severity_changed {
            self.changed(slot, now, out);
        }
    }

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
        let values = || rule.group_by().iter().map(|f| event.field(f));
        let ghash = values_hash(&event.routing_key, rule_id, values());
        let incidents = &self.incidents;
        let current = self
            .groups
            .find(ghash, |g| {
                let inc = incidents[g.slot as usize]
                    .as_ref()
                    .expect("group refs point at incidents");
                inc.rule == rule_id
                    && *inc.routing_key == *event.routing_key
                    && inc.group_values.iter().map(|v| &**v).eq(values())
            })
            .map(|g| g.slot);
        let joinable = current.filter(|&slot| {
            let inc = self.incidents[slot as usize]
                .as_ref()
                .expect("slot holds an incident");
            now < inc.window_end || inc.flapping(now)
        });
        let per_key = self.per_routing_key.get(&*event.routing_key);
        let (rk_alerts, rk_incidents) = per_key.map_or((0, 0), |c| (c.alerts, c.incidents));
        let cap = if self.alerts.len() >= self.limits.max_alerts {
            Some(0)
        } else if rk_alerts >= self.limits.max_alerts_per_routing_key {
            Some(1)
        } else if joinable.is_none() && self.open_incidents() >= self.limits.max_incidents {
            Some(2)
        } else if joinable.is_none() && rk_incidents >= self.limits.max_incidents_per_routing_key {
            Some(3)
        } else {
            None
        };
        if let Some(cap) = cap {
            self.fail_open(cap, rule_id, ghash, event, now, out);
            return;
        }
        let slot = match joinable {
            Some(slot) => slot,
            None => {
                if let Some(old) = current {
                    self.unindex_group(old);
                }
                let group_values = values().map(Box::from).collect();
                let incident = self.new_incident(ghash, rule_id, group_values, &event, now);
                self.store_incident(incident, ghash)
            }
        };

        let config = &rule.config;
        let mut alert = Alert::triggered(hash, &mut event, now);
        let (routing_key, ends_at) = (event.routing_key, alert.ends_at);
        alert.silenced = self.silenced(&routing_key, &alert, now);
        let inc = self.incidents[slot as usize]
            .as_mut()
            .expect("slot holds an incident");
        if config.window == WindowKind::Rolling {
            let cap = inc.opened_at.saturating_add(config.max_duration);
            inc.window_end = inc
                .window_end
                .max(now.saturating_add(config.window_duration).min(cap));
        }
        let index = inc.alerts.len() as u32;
        inc.open_alerts += 1;
        inc.event_count += 1;
        inc.severity_counts[alert.severity as usize] += 1;
        inc.integrations |= alert.integration.bit();
        inc.updated_at = now;
        inc.add_links(event.links);
        inc.dirty = true;
        if alert.silenced {
            inc.suppressed_open += 1;
            self.stats.silence += 1;
        }
        inc.alerts.push(alert);
        self.alerts
            .insert_unique(hash, AlertRef { hash, slot, index }, |r| r.hash);
        match self.per_routing_key.get_mut(&*routing_key) {
            Some(counts) => counts.alerts += 1,
            None => {
                let counts = PerRoutingKey {
                    alerts: 1,
                    ..PerRoutingKey::default()
                };
                self.per_routing_key
                    .insert(routing_key.into_boxed_str(), counts);
            }
        }
        self.stats.alerts_opened += 1;
        self.metrics.alerts_open.increment(1.0);
        if let Some(at) = ends_at {
            self.timers
                .schedule(at, Timer::AlertEnds { slot, index, hash });
        }
        self.inhibit_on_open(slot, index, now, out);
        let inc = self.incident(slot);
        if !inc.alerts[index as usize].suppressed() {
            inc.gathered += 1;
        }
        self.record_state_change(slot, hash, now);
        self.review(slot, now, out);
    }

    /// Past a cap the event is not tracked, but still produces an incident (fail open): a
    /// one-off `opened` message marked `untracked`, and the cap is counted.
    fn fail_open(
        &mut self,
        cap: usize,
        rule_id: u16,
        ghash: u64,
        mut event: Event,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        self.metrics.caps[cap].increment(1);
        self.stats.caps_reached += 1;
        let rules = Arc::clone(&self.rules);
        let rule = &rules[rule_id as usize];
        let group_values = rule
            .group_by()
            .iter()
            .map(|f| Box::from(event.field(f)))
            .collect();
        let mut inc = self.new_incident(ghash, rule_id, group_values, &event, now);
        inc.untracked = true;
        inc.open_alerts = 1;
        inc.event_count = 1;
        inc.severity_counts[event.severity as usize] = 1;
        inc.integrations = event.integration.bit();
        inc.seq = 1;
        // Untracked: never looked up again, and it resolves with the next message or never.
        let mut alert = Alert::triggered(0, &mut event, now);
        alert.ends_at = None;
        inc.alerts.push(alert);
        self.stats.messages[MessageKind::Opened.index()] += 1;
        out.push(inc.to_message(
            MessageKind::Opened,
            rule,
            self.limits.max_alerts_per_message,
        ));
    }

    fn new_incident(
        &mut self,
        ghash: u64,
        rule_id: u16,
        group_values: Box<[Box<str>]>,
        first: &Event,
        now: UnixMillis,
    ) -> Incident {
        let rule = &self.rules[rule_id as usize];
        let base = {
            let mut h = Xxh3Default::new();
            h.update(&ghash.to_le_bytes());
            h.update(first.dedup_key.as_bytes());
            h.digest128()
        };
        if self.ids_this_ms.0 != now {
            self.ids_this_ms = (now, HashMap::new());
        }
        let nth = self.ids_this_ms.1.entry(base).or_insert(0);
        let mut parts: Vec<&[u8]> = vec![first.routing_key.as_bytes(), rule.name.as_bytes()];
        parts.extend(group_values.iter().map(|v| v.as_bytes()));
        let opened = now.0.to_le_bytes();
        let nth_bytes = nth.to_le_bytes();
        parts.push(&opened);
        parts.push(first.dedup_key.as_bytes());
        if *nth > 0 {
            parts.push(&nth_bytes);
        }
        let id = deterministic_id("inc_", &parts);
        *nth += 1;
        let config = &rule.config;
        let hold = config
            .group_wait
            .max(config.pause_transient.unwrap_or_default());
        Incident {
            id,
            seq: 0,
            routing_key: first.routing_key.as_str().into(),
            rule: rule_id,
            group_values,
            group_hash: ghash,
            title: first.summary.as_str().into(),
            opened_at: now,
            updated_at: now,
            window_end: now.saturating_add(config.window_duration.min(config.max_duration)),
            resolved_at: None,
            alerts: Vec::new(),
            open_alerts: 0,
            acked_alerts: 0,
            suppressed_open: 0,
            gathered: 0,
            publish_at: now.saturating_add(hold),
            flapping_until: None,
            flap_announced: false,
            severity_counts: [0; 4],
            last_severity: first.severity,
            event_count: 0,
            integrations: 0,
            links: Vec::new(),
            published: false,
            published_severity: first.severity,
            published_status: Status::Triggered,
            last_published_at: now,
            dirty: false,
            timer: 0,
            timer_at: UnixMillis(0),
            untracked: false,
            in_group_index: true,
        }
    }

    fn store_incident(&mut self, incident: Incident, ghash: u64) -> u32 {
        self.per_routing_key
            .entry(incident.routing_key.clone())
            .or_default()
            .incidents += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.incidents[slot as usize] = Some(incident);
                slot
            }
            None => {
                self.incidents.push(Some(incident));
                (self.incidents.len() - 1) as u32
            }
        };
        self.groups
            .insert_unique(ghash, GroupRef { hash: ghash, slot }, |g| g.hash);
        self.stats.incidents_opened += 1;
        self.metrics.opened.increment(1);
        self.metrics.incidents_open.increment(1.0);
        slot
    }

    fn acknowledge(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let inc = self.incident(slot);
        inc.event_count += 1;
        let alert = &mut inc.alerts[index as usize];
        alert.event_count = alert.event_count.saturating_add(1);
        alert.last_seen = now;
        if alert.status == Status::Triggered {
            alert.status = Status::Acknowledged;
            inc.acked_alerts += 1;
            self.changed(slot, now, out);
        }
    }

    fn resolve(&mut self, slot: u32, index: u32, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        let hash = self.incident(slot).alerts[index as usize].hash;
        if let Ok(entry) = self
            .alerts
            .find_entry(hash, |r| r.slot == slot && r.index == index)
        {
            entry.remove();
        }
        self.metrics.alerts_open.decrement(1.0);
        let inc = self.incident(slot);
        inc.event_count += 1;
        let alert = &mut inc.alerts[index as usize];
        alert.event_count = alert.event_count.saturating_add(1);
        alert.last_seen = now;
        if alert.status == Status::Acknowledged {
            inc.acked_alerts -= 1;
        }
        alert.status = Status::Resolved;
        alert.ends_at = None;
        if alert.suppressed() {
            inc.suppressed_open -= 1;
        }
        let severity = alert.severity;
        inc.severity_counts[severity as usize] -= 1;
        inc.open_alerts -= 1;
        inc.last_severity = inc.last_severity.max(severity);
        inc.updated_at = now;
        inc.dirty = true;
        if let Some(c) = self.per_routing_key.get_mut(
            &*self.incidents[slot as usize]
                .as_ref()
                .expect("slot")
                .routing_key,
        ) {
            c.alerts -= 1;
        }
        self.inhibit_on_resolve(slot, index, now, out);
        self.record_state_change(slot, hash, now);
        self.review(slot, now, out);
    }

    /// Something a responder cares about changed.
    fn changed(&mut self, slot: u32, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        let inc = self.incident(slot);
        inc.updated_at = now;
        inc.dirty = true;
        self.review(slot, now, out);
    }

    /// Decides what, if anything, the incident publishes now, and when to look again:
    /// - all alerts resolved: `resolved` (after `opened` if it never went out), or nothing when
    ///   it resolved within `pause_transient`, never reached `min_alerts`, or was suppressed
    ///   throughout; held while flapping;
    /// - not yet published: `opened` once `group_wait` (and `pause_transient`) passed, at least
    ///   `min_alerts` alerts gathered and one open alert is neither silenced nor inhibited;
    /// - published: a pending change goes out at once if the severity rose or the status moved
    ///   between triggered and acknowledged, else at most once per `group_interval`; held while
    ///   flapping (one `flapping` message) or while every open alert is suppressed.
    fn review(&mut self, slot: u32, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        let rules = Arc::clone(&self.rules);
        let inc = self.incident(slot);
        let config = &rules[inc.rule as usize].config;
        if inc.flapping_until.is_some_and(|until| now >= until) {
            inc.flapping_until = None;
            inc.flap_announced = false;
        }
        let flapping = inc.flapping_until;
        if flapping.is_some() && inc.published && !inc.flap_announced {
            inc.flap_announced = true;
            self.emit(slot, MessageKind::Flapping, now, out);
        }
        let inc = self.incident(slot);
        if inc.open_alerts == 0 {
            if let Some(until) = flapping {
                self.wake_at(slot, until);
                return;
            }
            if inc.published {
                inc.resolved_at = Some(now);
                self.emit(slot, MessageKind::Resolved, now, out);
                self.close(slot, None);
                return;
            }
            let transient = config
                .pause_transient
                .is_some_and(|p| now < inc.opened_at.saturating_add(p));
            let held = if transient {
                Some(Held::Transient)
            } else if inc.gathered == 0 {
                Some(Held::Suppressed)
            } else if inc.gathered < config.min_alerts {
                Some(Held::Threshold)
            } else {
                None
            };
            if held.is_none() {
                inc.resolved_at = Some(now);
                self.emit(slot, MessageKind::Opened, now, out);
                self.emit(slot, MessageKind::Resolved, now, out);
            }
            self.close(slot, held);
            return;
        }
        if !inc.published {
            if now < inc.publish_at {
                let at = inc.publish_at;
                self.wake_at(slot, at);
                return;
            }
            if inc.gathered < config.min_alerts || inc.visible() == 0 {
                return;
            }
            self.emit(slot, MessageKind::Opened, now, out);
            if let Some(until) = flapping {
                self.emit(slot, MessageKind::Flapping, now, out);
                self.incident(slot).flap_announced = true;
                self.wake_at(slot, until);
            }
            return;
        }
        if let Some(until) = flapping {
            self.wake_at(slot, until);
            return;
        }
        if !inc.dirty || inc.visible() == 0 {
            return;
        }
        let urgent =
            inc.severity() > inc.published_severity || inc.status() != inc.published_status;
        let due = inc.last_published_at.saturating_add(config.group_interval);
        if urgent || due <= now {
            self.emit(slot, MessageKind::Updated, now, out);
        } else {
            self.wake_at(slot, due);
        }
    }

    /// Makes sure the incident is reviewed again at `at` (keeps an earlier or equal timer).
    fn wake_at(&mut self, slot: u32, at: UnixMillis) {
        let inc = self.incidents[slot as usize]
            .as_mut()
            .expect("slot holds an incident");
        if inc.timer != 0 && inc.timer_at <= at {
            return;
        }
        let token = self.timers.token();
        inc.timer = token;
        inc.timer_at = at;
        self.timers.schedule(at, Timer::Incident { slot, token });
    }

    fn emit(
        &mut self,
        slot: u32,
        kind: MessageKind,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let inc = self.incidents[slot as usize]
            .as_mut()
            .expect("slot holds an incident");
        inc.seq += 1;
        out.push(inc.to_message(
            kind,
            &self.rules[inc.rule as usize],
            self.limits.max_alerts_per_message,
        ));
        self.stats.messages[kind.index()] += 1;
        if kind == MessageKind::Flapping {
            self.metrics.flapping.increment(1);
            return;
        }
        inc.published = true;
        inc.published_severity = inc.severity();
        inc.published_status = inc.status();
        inc.last_published_at = now;
        inc.dirty = false;
        inc.timer = 0;
    }

    /// Records an open or a resolve of the alert `hash`; more than the rule's `max_changes`
    /// within `within` starts (or extends) a flapping spell of its incident.
    fn record_state_change(&mut self, slot: u32, hash: u64, now: UnixMillis) {
        let rule = self.incidents[slot as usize].as_ref().expect("slot").rule;
        let Some(flap) = self.rules[rule as usize].config.flap else {
            return;
        };
        let history = self.flap_history.entry(hash).or_default();
        history.push_back(now);
        let horizon = UnixMillis(now.0.saturating_sub(flap.within.as_millis() as u64));
        while history.front().is_some_and(|t| *t < horizon) {
            history.pop_front();
        }
        let flapping = history.len() as u32 > flap.max_changes;
        if self.flap_history.len() > 4 * self.alerts.len().max(1024) {
            self.flap_history
                .retain(|_, h| h.back().is_some_and(|t| *t >= horizon));
        }
        let inc = self.incident(slot);
        if flapping || inc.flapping(now) {
            inc.flapping_until = Some(now.saturating_add(flap.cooldown));
        }
    }

    /// The values of `fields` for an alert, hashed with its routing key and the rule.
    fn equal_hash(
        routing_key: &str,
        rule: u16,
        alert: &Alert,
        fields: &[crate::event::Field],
    ) -> u64 {
        let view = AlertView { routing_key, alert };
        values_hash(
            routing_key,
            rule,
            fields
                .iter()
                .map(|f| crate::matchers::Subject::get(&view, f)),
        )
    }

    /// The (rule, equal values) keys under which an alert is an inhibitor (matches a rule's
    /// `source`) and a possible target (matches its `target`).
    fn inhibit_keys(&self, slot: u32, index: u32) -> (Vec<InhibitKey>, Vec<InhibitKey>) {
        let inc = self.incidents[slot as usize].as_ref().expect("slot");
        let alert = &inc.alerts[index as usize];
        let view = AlertView {
            routing_key: &inc.routing_key,
            alert,
        };
        let (mut sources, mut targets) = (Vec::new(), Vec::new());
        for (r, rule) in self.inhibit.iter().enumerate() {
            let (is_source, is_target) = (
                all_match(&rule.source, &view),
                all_match(&rule.target, &view),
            );
            if is_source || is_target {
                let key = (
                    r as u16,
                    Self::equal_hash(&inc.routing_key, r as u16, alert, &rule.equal),
                );
                if is_source {
                    sources.push(key);
                }
                if is_target {
                    targets.push(key);
                }
            }
        }
        (sources, targets)
    }

    /// A newly open alert: count it as an inhibitor where it matches a source (re-checking the
    /// targets it may now inhibit), and inhibit it where it matches a target.
    fn inhibit_on_open(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        if self.inhibit.is_empty() {
            return;
        }
        let (sources, targets) = self.inhibit_keys(slot, index);
        let hash = self.incident(slot).alerts[index as usize].hash;
        for key in targets {
            self.inhibit_targets
                .entry(key)
                .or_default()
                .push((slot, index, hash));
        }
        let mut newly_inhibiting = Vec::new();
        for key in sources {
            let n = self.inhibitors.entry(key).or_insert(0);
            *n += 1;
            if *n == 1 {
                newly_inhibiting.push(key);
            }
        }
        self.refresh_inhibited(slot, index, now, out);
        for key in newly_inhibiting {
            self.refresh_targets(key, now, out);
        }
    }

    /// A resolved alert stops counting as an inhibitor; targets it alone held are released.
    fn inhibit_on_resolve(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        if self.inhibit.is_empty() {
            return;
        }
        let (sources, _) = self.inhibit_keys(slot, index);
        for key in sources {
            if let Some(n) = self.inhibitors.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.inhibitors.remove(&key);
                    self.refresh_targets(key, now, out);
                }
            }
        }
    }

    /// Re-checks every open target alert registered under `key`, dropping stale entries.
    fn refresh_targets(
        &mut self,
        key: (u16, u64),
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let Some(mut list) = self.inhibit_targets.remove(&key) else {
            return;
        };
        list.retain(|&(slot, index, hash)| {
            self.incidents
                .get(slot as usize)
                .and_then(Option::as_ref)
                .and_then(|inc| inc.alerts.get(index as usize))
                .is_some_and(|a| a.hash == hash && a.is_open())
        });
        for &(slot, index, _) in &list {
            self.refresh_inhibited(slot, index, now, out);
        }
        if !list.is_empty() {
            self.inhibit_targets.insert(key, list);
        }
    }

    /// Whether an open alert is inhibited by any rule, not counting itself as its inhibitor.
    fn refresh_inhibited(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let inc = self.incidents[slot as usize].as_ref().expect("slot");
        let alert = &inc.alerts[index as usize];
        let view = AlertView {
            routing_key: &inc.routing_key,
            alert,
        };
        let inhibited = self.inhibit.iter().enumerate().any(|(r, rule)| {
            if !all_match(&rule.target, &view) {
                return false;
            }
            let key = (
                r as u16,
                Self::equal_hash(&inc.routing_key, r as u16, alert, &rule.equal),
            );
            let own = u32::from(all_match(&rule.source, &view));
            self.inhibitors.get(&key).is_some_and(|n| *n > own)
        });
        if inhibited != alert.inhibited {
            let silenced = alert.silenced;
            self.set_suppression(slot, index, silenced, inhibited);
            if inhibited {
                self.stats.inhibit += 1;
            }
            self.incident(slot).dirty = true;
            self.review(slot, now, out);
        }
    }

    fn unindex_group(&mut self, slot: u32) {
        let inc = self.incidents[slot as usize]
            .as_mut()
            .expect("slot holds an incident");
        if std::mem::take(&mut inc.in_group_index) {
            let hash = inc.group_hash;
            if let Ok(entry) = self.groups.find_entry(hash, |g| g.slot == slot) {
                entry.remove();
            }
        }
    }

    fn close(&mut self, slot: u32, held: Option<Held>) {
        self.unindex_group(slot);
        let inc = self.incidents[slot as usize]
            .take()
            .expect("slot holds an incident");
        self.free.push(slot);
        if let Some(c) = self.per_routing_key.get_mut(&*inc.routing_key) {
            c.incidents -= 1;
            if c.incidents == 0 && c.alerts == 0 {
                self.per_routing_key.remove(&*inc.routing_key);
            }
        }
        match held {
            None => self.metrics.resolved.increment(1),
            Some(h) => {
                self.metrics.held[h as usize].increment(1);
                match h {
                    Held::Transient => self.stats.transient += inc.event_count,
                    Held::Threshold => self.stats.threshold += inc.event_count,
                    Held::Suppressed => {}
                }
            }
        }
        self.metrics.incidents_open.decrement(1.0);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model;
