//! One shard's correlation state: alerts deduplicated by `(routing_key, dedup_key)`, grouped
//! into incidents by `(routing_key, rule, group_by values)` within a window, and the timers that
//! decide when each incident's next message goes out.
//!
//! A shard is plain synchronous state with no clock of its own: every call gets `now`, and
//! everything it has to say comes out as [`OutboundMessage`]s in the caller's buffer. The
//! runner in `correlate/mod.rs` drives it from a channel and a sleep; tests and the offline
//! replay drive it directly.

use std::collections::HashMap;
use std::sync::Arc;

use hashbrown::HashTable;
use metrics::{Counter, Gauge};
use xxhash_rust::xxh3::Xxh3Default;

use crate::config::WindowKind;
use crate::event::{Action, ChangeEvent, Event, Integration};
use crate::metrics as m;
use crate::publish::encode::{
    deterministic_id, to_json, ChangeBody, MessageKind, OutboundMessage, Status, Topic,
    CHANGE_SCHEMA,
};
use crate::time::UnixMillis;

use super::incident::{Alert, Incident};
use super::rules::{self, Rule};
use super::timers::Timers;

/// Why an accepted event changed nothing (the `reason` label of `sluice_events_dropped_total`).
pub const DROP_ALERT_NOT_OPEN: &str = "alert_not_open";

/// Where an open alert lives: `incidents[slot].alerts[index]`.
struct AlertRef {
    hash: u64,
    slot: u32,
    index: u32,
}

/// The current incident of a group.
struct GroupRef {
    hash: u64,
    slot: u32,
}

struct ShardMetrics {
    alerts_open: Gauge,
    incidents_open: Gauge,
    opened: Counter,
    resolved: Counter,
    dropped_not_open: Counter,
    deduplicated: Vec<Counter>,
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
        }
    }
}

pub struct Shard {
    rules: Arc<[Rule]>,
    max_alerts_per_message: usize,
    alerts: HashTable<AlertRef>,
    groups: HashTable<GroupRef>,
    incidents: Vec<Option<Incident>>,
    free: Vec<u32>,
    timers: Timers,
    /// Base ids of incidents opened in the current millisecond, to keep ids unique when the
    /// same group opens twice within one millisecond (trigger, resolve, trigger).
    ids_this_ms: (UnixMillis, HashMap<u128, u32>),
    metrics: ShardMetrics,
}

fn alert_hash(routing_key: &str, dedup_key: &str) -> u64 {
    let mut h = Xxh3Default::new();
    h.update(&(routing_key.len() as u64).to_le_bytes());
    h.update(routing_key.as_bytes());
    h.update(dedup_key.as_bytes());
    h.digest()
}

fn group_hash<'a>(routing_key: &str, rule: u16, values: impl Iterator<Item = &'a str>) -> u64 {
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
    pub fn new(rules: Arc<[Rule]>, max_alerts_per_message: usize) -> Self {
        assert!(!rules.is_empty(), "a shard needs at least one rule");
        Shard {
            rules,
            max_alerts_per_message,
            alerts: HashTable::new(),
            groups: HashTable::new(),
            incidents: Vec::new(),
            free: Vec::new(),
            timers: Timers::default(),
            ids_this_ms: (UnixMillis(0), HashMap::new()),
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
    pub fn apply_input(
        &mut self,
        input: super::Input,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        match input {
            super::Input::Event(e) => self.apply(e, now, out),
            super::Input::Change(c) => self.apply_change(c, out),
        }
    }

    /// Applies one alert event received at `now`.
    pub fn apply(&mut self, event: Event, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        let hash = alert_hash(&event.routing_key, &event.dedup_key);
        let incidents = &self.incidents;
        let found = self.alerts.find(hash, |r| {
            let inc = incidents[r.slot as usize]
                .as_ref()
                .expect("alert refs point at incidents");
            *inc.routing_key == *event.routing_key
                && *inc.alerts[r.index as usize].dedup_key == *event.dedup_key
        });
        let at = found.map(|r| (r.slot, r.index));
        match (event.action, at) {
            (Action::Trigger, Some((slot, index))) => self.retrigger(slot, index, event, now, out),
            (Action::Trigger, None) => self.open_alert(hash, event, now, out),
            (Action::Acknowledge, Some((slot, index))) => self.acknowledge(slot, index, now, out),
            (Action::Resolve, Some((slot, index))) => self.resolve(hash, slot, index, now, out),
            (Action::Acknowledge | Action::Resolve, None) => {
                self.metrics.dropped_not_open.increment(1)
            }
        }
    }

    /// Publishes a change event as it is: change events never open incidents.
    pub fn apply_change(&mut self, change: ChangeEvent, out: &mut Vec<OutboundMessage>) {
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
        out.push(OutboundMessage {
            topic: Topic::Changes,
            kind: MessageKind::Change,
            key: change.routing_key.clone(),
            body: to_json(&body),
            id,
        });
    }

    /// Fires every timer due at `now`.
    pub fn advance(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        while let Some((slot, token)) = self.timers.pop_due(now) {
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
            if !inc.published {
                self.emit(slot, MessageKind::Opened, now, out);
            } else if inc.dirty {
                self.emit(slot, MessageKind::Updated, now, out);
            }
        }
    }

    /// On shutdown: publishes every incident still in `group_wait` and every pending update,
    /// so that no accepted event's incident is left unsaid.
    pub fn flush(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        for slot in 0..self.incidents.len() as u32 {
            let Some(inc) = self.incidents[slot as usize].as_mut() else {
                continue;
            };
            inc.timer = 0;
            if !inc.published {
                self.emit(slot, MessageKind::Opened, now, out);
            } else if inc.dirty {
                self.emit(slot, MessageKind::Updated, now, out);
            }
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
        let old = std::mem::replace(&mut alert.severity, event.severity);
        if old != event.severity {
            inc.severity_counts[old as usize] -= 1;
            inc.severity_counts[event.severity as usize] += 1;
            self.changed(slot, now, out);
        }
    }

    fn open_alert(
        &mut self,
        hash: u64,
        event: Event,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let rules = Arc::clone(&self.rules);
        let rule_idx = rules::select(&rules, &event);
        let rule = &rules[rule_idx];
        let rule_id = rule_idx as u16;
        let values = || rule.group_by().iter().map(|f| event.field(f));
        let ghash = group_hash(&event.routing_key, rule_id, values());
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
        let slot = match current {
            Some(slot) if now < self.incident(slot).window_end => slot,
            stale => {
                if let Some(old) = stale {
                    self.unindex_group(old);
                }
                let group_values = values().map(Box::from).collect();
                self.open_incident(ghash, rule_id, group_values, &event, now)
            }
        };

        let config = &rule.config;
        let inc = self.incidents[slot as usize]
            .as_mut()
            .expect("slot holds an incident");
        if config.window == WindowKind::Rolling {
            let cap = inc.opened_at.saturating_add(config.max_duration);
            inc.window_end = now.saturating_add(config.window_duration).min(cap);
        }
        let index = inc.alerts.len() as u32;
        inc.open_alerts += 1;
        inc.event_count += 1;
        inc.severity_counts[event.severity as usize] += 1;
        inc.integrations |= event.integration.bit();
        inc.updated_at = now;
        inc.add_links(event.links);
        inc.alerts.push(Alert {
            dedup_key: event.dedup_key.into_boxed_str(),
            summary: event.summary.into_boxed_str(),
            source: event.source.into_boxed_str(),
            details: event.custom_details,
            severity: event.severity,
            status: Status::Triggered,
            integration: event.integration,
            event_count: 1,
            first_seen: now,
            last_seen: now,
        });
        self.alerts
            .insert_unique(hash, AlertRef { hash, slot, index }, |r| r.hash);
        self.metrics.alerts_open.increment(1.0);
        if index > 0 {
            self.changed(slot, now, out);
        } else if config.group_wait.is_zero() {
            self.emit(slot, MessageKind::Opened, now, out);
        } else {
            let at = now.saturating_add(config.group_wait);
            let token = self.timers.schedule(at, slot);
            self.incident(slot).timer = token;
        }
    }

    fn open_incident(
        &mut self,
        ghash: u64,
        rule_id: u16,
        group_values: Box<[Box<str>]>,
        first: &Event,
        now: UnixMillis,
    ) -> u32 {
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

        let window_end =
            now.saturating_add(rule.config.window_duration.min(rule.config.max_duration));
        let incident = Incident {
            id,
            seq: 0,
            routing_key: first.routing_key.as_str().into(),
            rule: rule_id,
            group_values,
            group_hash: ghash,
            title: first.summary.as_str().into(),
            opened_at: now,
            updated_at: now,
            window_end,
            resolved_at: None,
            alerts: Vec::new(),
            open_alerts: 0,
            acked_alerts: 0,
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
            in_group_index: true,
        };
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

    fn resolve(
        &mut self,
        hash: u64,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
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
        let severity = alert.severity;
        inc.severity_counts[severity as usize] -= 1;
        inc.open_alerts -= 1;
        if inc.open_alerts > 0 {
            self.changed(slot, now, out);
            return;
        }
        inc.last_severity = inc.last_severity.max(severity);
        inc.resolved_at = Some(now);
        inc.updated_at = now;
        if !inc.published {
            self.emit(slot, MessageKind::Opened, now, out);
        }
        self.emit(slot, MessageKind::Resolved, now, out);
        self.close(slot);
    }

    /// Something a responder cares about changed: publish now if it is urgent (severity rose,
    /// or the incident's status moved between triggered and acknowledged), else coalesce into
    /// at most one `updated` per `group_interval`. Before the first message nothing is sent:
    /// the `opened` message at the end of `group_wait` carries it.
    fn changed(&mut self, slot: u32, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        let inc = self.incidents[slot as usize]
            .as_mut()
            .expect("slot holds an incident");
        inc.updated_at = now;
        if !inc.published {
            return;
        }
        inc.dirty = true;
        let urgent =
            inc.severity() > inc.published_severity || inc.status() != inc.published_status;
        let interval = self.rules[inc.rule as usize].config.group_interval;
        let due = inc.last_published_at.saturating_add(interval);
        if urgent || due <= now {
            self.emit(slot, MessageKind::Updated, now, out);
        } else if inc.timer == 0 {
            let token = self.timers.schedule(due, slot);
            self.incident(slot).timer = token;
        }
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
            self.max_alerts_per_message,
        ));
        inc.published = true;
        inc.published_severity = inc.severity();
        inc.published_status = inc.status();
        inc.last_published_at = now;
        inc.dirty = false;
        inc.timer = 0;
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

    fn close(&mut self, slot: u32) {
        self.unindex_group(slot);
        self.incidents[slot as usize] = None;
        self.free.push(slot);
        self.metrics.resolved.increment(1);
        self.metrics.incidents_open.decrement(1.0);
    }
}

#[cfg(test)]
mod tests;
