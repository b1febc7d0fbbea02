//! Inhibition: an open alert matching an inhibition rule's `source` holds back the open alerts
//! of its routing key that match the rule's `target` and share the values of its `equal`
//! fields. Alerts are found by key, (rule, hash of the `equal` values), never by a scan.
//!
//! Invariants: `inhibitors[key]` is the number of open alerts matching the rule's source under
//! that key, with no entry at zero. `targets[key]` holds the place of every open alert matching
//! the rule's target under that key, and possibly stale places (of alerts since resolved, or in
//! slots since reused), dropped whenever the key is refreshed. An open alert's `inhibited` flag
//! is decided when it opens, and again for every target under a key whose count rises from or
//! falls to zero: it is set when, for some rule whose target the alert matches, the count under
//! its key is more than the alert's own share (an alert never inhibits itself).

use std::collections::HashMap;
use std::sync::Arc;

use crate::matchers::{all_match, Subject};
use crate::publish::encode::OutboundMessage;
use crate::time::UnixMillis;

use super::super::incident::AlertView;
use super::super::rules::Inhibit;
use super::grouping::values_hash;
use super::store::Slots;
use super::Shard;

/// An inhibition rule and the hash of an alert's `equal` values under it.
type InhibitKey = (u16, u64);
/// An alert's place and hash (`slot`, `index`, `hash`), checked before use since it may be stale.
type AlertLoc = (u32, u32, u64);

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Inhibition {
    /// Set again when restored ([`Inhibition::set_rules`]).
    #[serde(skip)]
    rules: Arc<[Inhibit]>,
    /// Open alerts matching each inhibition rule's source, by (rule, equal values).
    #[serde(with = "super::snapshot::pairs")]
    inhibitors: HashMap<InhibitKey, u32>,
    /// Alerts matching each inhibition rule's target, by (rule, equal values); pruned lazily.
    #[serde(with = "super::snapshot::pairs")]
    targets: HashMap<InhibitKey, Vec<AlertLoc>>,
}

impl Inhibition {
    pub(super) fn new(rules: Arc<[Inhibit]>) -> Self {
        Inhibition {
            rules,
            inhibitors: HashMap::new(),
            targets: HashMap::new(),
        }
    }

    pub(super) fn rules(&self) -> &[Inhibit] {
        &self.rules
    }

    #[cfg(test)]
    pub(super) fn rules_arc(&self) -> &Arc<[Inhibit]> {
        &self.rules
    }

    pub(super) fn set_rules(&mut self, rules: Arc<[Inhibit]>) {
        self.rules = rules;
    }

    /// Indexes anew every open alert in `slots` (in slot order) under the current rules.
    pub(super) fn reindex(&mut self, slots: &Slots) {
        self.inhibitors.clear();
        self.targets.clear();
        if self.rules.is_empty() {
            return;
        }
        for (slot, inc) in slots.iter() {
            for (index, alert) in inc.alerts.iter().enumerate() {
                if alert.is_open() {
                    let view = AlertView {
                        routing_key: &inc.routing_key,
                        alert,
                    };
                    self.add(&view, slot, index as u32);
                }
            }
        }
    }

    /// An alert's key under rule `r`: the values of the rule's `equal` fields, hashed with
    /// the routing key and the rule.
    fn key(r: usize, rule: &Inhibit, view: &AlertView) -> InhibitKey {
        let values = rule.equal.iter().map(|f| view.get(f));
        (r as u16, values_hash(view.routing_key, r as u16, values))
    }

    /// The keys under which an alert is an inhibitor (matches a rule's `source`) and a
    /// possible target (matches its `target`).
    fn keys(&self, view: &AlertView) -> (Vec<InhibitKey>, Vec<InhibitKey>) {
        let (mut sources, mut targets) = (Vec::new(), Vec::new());
        for (r, rule) in self.rules.iter().enumerate() {
            let (is_source, is_target) =
                (all_match(&rule.source, view), all_match(&rule.target, view));
            if is_source || is_target {
                let key = Self::key(r, rule, view);
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

    /// Registers a newly open alert at `(slot, index)` as a target and as an inhibitor where
    /// it matches; returns the keys under which it is the first inhibitor.
    fn add(&mut self, view: &AlertView, slot: u32, index: u32) -> Vec<InhibitKey> {
        let (sources, targets) = self.keys(view);
        let hash = view.alert.hash;
        for key in targets {
            self.targets
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
        newly_inhibiting
    }

    /// One inhibitor under `key` fewer; whether that was the last.
    fn release(&mut self, key: InhibitKey) -> bool {
        let Some(n) = self.inhibitors.get_mut(&key) else {
            return false;
        };
        *n -= 1;
        let last = *n == 0;
        if last {
            self.inhibitors.remove(&key);
        }
        last
    }

    /// Whether an open alert is inhibited by any rule, not counting itself as its inhibitor.
    fn inhibits(&self, view: &AlertView) -> bool {
        self.rules.iter().enumerate().any(|(r, rule)| {
            if !all_match(&rule.target, view) {
                return false;
            }
            let key = Self::key(r, rule, view);
            let own = u32::from(all_match(&rule.source, view));
            self.inhibitors.get(&key).is_some_and(|n| *n > own)
        })
    }
}

impl Shard {
    /// A newly open alert: count it as an inhibitor where it matches a source (re-checking the
    /// targets it may now inhibit), and inhibit it where it matches a target.
    pub(super) fn inhibit_on_open(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        if self.inhibition.rules.is_empty() {
            return;
        }
        let newly_inhibiting = self
            .inhibition
            .add(&self.slots.view(slot, index), slot, index);
        self.refresh_inhibited(slot, index, now, out);
        for key in newly_inhibiting {
            self.refresh_targets(key, now, out);
        }
    }

    /// A resolved alert stops counting as an inhibitor; targets it alone held are released.
    pub(super) fn inhibit_on_resolve(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        if self.inhibition.rules.is_empty() {
            return;
        }
        let (sources, _) = self.inhibition.keys(&self.slots.view(slot, index));
        for key in sources {
            if self.inhibition.release(key) {
                self.refresh_targets(key, now, out);
            }
        }
    }

    /// Re-checks every open target alert registered under `key`, dropping stale entries.
    fn refresh_targets(
        &mut self,
        key: InhibitKey,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let Some(mut list) = self.inhibition.targets.remove(&key) else {
            return;
        };
        list.retain(|&(slot, index, hash)| self.slots.open_alert(slot, index, hash).is_some());
        for &(slot, index, _) in &list {
            self.refresh_inhibited(slot, index, now, out);
        }
        if !list.is_empty() {
            self.inhibition.targets.insert(key, list);
        }
    }

    /// Sets whether an open alert is inhibited; a change is a change of its incident.
    fn refresh_inhibited(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let view = self.slots.view(slot, index);
        let inhibited = self.inhibition.inhibits(&view);
        if inhibited != view.alert.inhibited {
            let silenced = view.alert.silenced;
            self.set_suppression(slot, index, silenced, inhibited);
            if inhibited {
                self.stats.inhibit += 1;
            }
            self.mark_dirty(slot, now, out);
        }
    }
}
