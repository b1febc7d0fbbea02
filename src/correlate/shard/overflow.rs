//! Past a cap (fail open, bounded): the new alerts of a routing key that a cap keeps from
//! being tracked fold into one overflow incident for that key. It is published at once (a
//! storm past the caps still pages), says how many alerts it took and how many are open, and
//! keeps of each alert only its hash (8 bytes, not the alert), so a resolve still finds it:
//! when every alert it took has resolved, it resolves. It lists its first [`SAMPLES`] alerts.
//!
//! Messages: `opened` with its first alert, `updated` each time the number it took doubles
//! (2, 4, 8, ...: a storm is followed without a message per alert and without a timer), and
//! `resolved` once none is open. A trigger of an alert it holds repeats it (counted, no
//! message); an acknowledge does nothing.
//!
//! Invariants: at most one overflow incident per routing key; `held` counts the hashes held
//! over every key and stays within [`MAX_HELD`]: past it an alert is counted as `unmatched`
//! (its resolve cannot be told from another's), and the incident resolves when every alert
//! it holds has, saying how many were unmatched.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::publish::encode::{MessageKind, OutboundMessage};
use crate::time::{MaybeMillis, UnixMillis};

use super::super::incident::{Alert, Incident, OverflowCounts};
use super::caps::CAPS;
use super::review::publish;
use super::store::alert_hash;
use super::Shard;

/// Alert hashes held over every routing key of a shard (about 16 bytes each).
pub const MAX_HELD: usize = 1_000_000;
/// Alerts an overflow incident lists.
pub const SAMPLES: usize = 10;

#[derive(Default, Serialize, Deserialize)]
pub(super) struct Overflow {
    keys: HashMap<Box<str>, Spill>,
    held: usize,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Spill {
    incident: Incident,
    open: HashSet<u64>,
}

impl Overflow {
    /// Gives each overflow incident the rule `map` says (see `snapshot`).
    pub(super) fn remap_rules(&mut self, map: impl Fn(u16) -> u16) {
        for spill in self.keys.values_mut() {
            spill.incident.rule = map(spill.incident.rule);
        }
    }

    /// Every overflow incident, leaving none (see `split`).
    pub(super) fn take_all(&mut self) -> Vec<(Box<str>, Spill)> {
        self.held = 0;
        self.keys.drain().collect()
    }

    pub(super) fn put(&mut self, routing_key: Box<str>, spill: Spill) {
        self.held += spill.open.len();
        self.keys.insert(routing_key, spill);
    }
}

impl Shard {
    /// A trigger of an alert the overflow incident of its routing key holds: a repeat.
    pub(super) fn repeats_spilled(&mut self, event: &Event, hash: u64) -> bool {
        match self.overflow.keys.get_mut(event.routing_key.as_str()) {
            Some(spill) if spill.open.contains(&hash) => {
                spill.incident.event_count += 1;
                true
            }
            _ => false,
        }
    }

    /// The new alert `event` went past cap `cap` (its index in [`CAPS`]): it joins the overflow
    /// incident of its routing key, opened (and published) now if there is none.
    pub(super) fn spill(
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
        let hash = alert_hash(&event.routing_key, event.key_space, &event.dedup_key);
        let kind = if self.overflow.keys.contains_key(event.routing_key.as_str()) {
            MessageKind::Updated
        } else {
            let mut incident = self.new_incident(ghash, rule_id, &event, &[], now);
            incident.title = format!(
                "Alerts of {} past sluice's {} cap (not tracked one by one)",
                event.routing_key, CAPS[cap]
            )
            .into();
            incident.in_group_index = false;
            incident.overflow = Some(OverflowCounts::default());
            let spill = Spill {
                incident,
                open: HashSet::new(),
            };
            self.overflow
                .keys
                .insert(event.routing_key.as_str().into(), spill);
            MessageKind::Opened
        };
        let spill = self
            .overflow
            .keys
            .get_mut(event.routing_key.as_str())
            .expect("an overflow incident for the key");
        let inc = &mut spill.incident;
        let counts = inc.overflow.get_or_insert_with(OverflowCounts::default);
        counts.taken += 1;
        if self.overflow.held < MAX_HELD {
            spill.open.insert(hash);
            self.overflow.held += 1;
        } else {
            counts.unmatched += 1;
        }
        let taken = counts.taken;
        inc.open_alerts = (spill.open.len() as u64 + counts.unmatched) as u32;
        inc.event_count += 1;
        inc.severity_counts[event.severity as usize] += 1;
        inc.integrations.insert(event.integration);
        inc.updated_at = now;
        if inc.alerts.len() < SAMPLES {
            let mut alert = Alert::triggered(hash, &mut event, now);
            alert.ends_at = MaybeMillis::default();
            inc.alerts.push(alert);
        }
        if kind == MessageKind::Opened || taken.is_power_of_two() {
            self.publish_spill(event.routing_key.as_str(), kind, now, out);
        }
    }

    /// A resolve of an alert the overflow incident of `routing_key` holds: it no longer does,
    /// and the incident resolves once it holds none. Whether it held it.
    pub(super) fn unspill(
        &mut self,
        routing_key: &str,
        hash: u64,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) -> bool {
        let Some(spill) = self.overflow.keys.get_mut(routing_key) else {
            return false;
        };
        if !spill.open.remove(&hash) {
            return false;
        }
        self.overflow.held -= 1;
        let inc = &mut spill.incident;
        inc.event_count += 1;
        inc.updated_at = now;
        inc.open_alerts = inc.open_alerts.saturating_sub(1);
        if let Some(a) = inc.alerts.iter_mut().find(|a| a.hash == hash) {
            a.status = crate::publish::encode::Status::Resolved;
            a.last_seen = now;
        }
        if spill.open.is_empty() {
            inc.open_alerts = 0;
            inc.severity_counts = [0; 4];
            inc.resolved_at = Some(now);
            self.publish_spill(routing_key, MessageKind::Resolved, now, out);
            self.overflow.keys.remove(routing_key);
        }
        true
    }

    fn publish_spill(
        &mut self,
        routing_key: &str,
        kind: MessageKind,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let spill = self
            .overflow
            .keys
            .get_mut(routing_key)
            .expect("an overflow incident for the key");
        let inc = &mut spill.incident;
        inc.seq += 1;
        inc.published = true;
        inc.last_published_at = now;
        let rule = &self.rules[(inc.rule as usize).min(self.rules.len() - 1)];
        let message = inc.to_message(kind, rule, self.caps.max_alerts_per_message, &[], now);
        publish(&mut self.stats, out, message);
    }
}
