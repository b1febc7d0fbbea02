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
                    let memberships = self.memberships(&view);
                    self.add(&memberships, slot, index as u32, alert.hash);
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

    /// Where an alert stands under each rule whose source or target it matches.
    fn memberships(&self, view: &AlertView) -> Vec<Membership> {
        let mut out = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let (source, target) = (all_match(&rule.source, view), all_match(&rule.target, view));
            if source || target {
                out.push(Membership {
                    key: Self::key(r, rule, view),
                    source,
                    target,
                });
            }
        }
        out
    }

    /// Registers a newly open alert at `(slot, index)` as a target and as an inhibitor where
    /// its `memberships` say so; returns the keys under which it is the first inhibitor.
    fn add(
        &mut self,
        memberships: &[Membership],
        slot: u32,
        index: u32,
        hash: u64,
    ) -> Vec<InhibitKey> {
        let mut newly_inhibiting = Vec::new();
        for m in memberships {
            if m.target {
                self.targets
                    .entry(m.key)
                    .or_default()
                    .push((slot, index, hash));
            }
            if m.source {
                let n = self.inhibitors.entry(m.key).or_insert(0);
                *n += 1;
                if *n == 1 {
                    newly_inhibiting.push(m.key);
                }
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

    /// Whether an open alert of these memberships is inhibited by any rule, not counting
    /// itself as its inhibitor.
    fn inhibited(&self, memberships: &[Membership]) -> bool {
        memberships.iter().any(|m| {
            m.target
                && self
                    .inhibitors
                    .get(&m.key)
                    .is_some_and(|n| *n > u32::from(m.source))
        })
    }
}

/// An alert under one inhibition rule: its key, and whether it matches the rule's source
/// (an inhibitor) and its target.
struct Membership {
    key: InhibitKey,
    source: bool,
    target: bool,
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
        let view = self.slots.view(slot, index);
        let memberships = self.inhibition.memberships(&view);
        let hash = view.alert.hash;
        let newly_inhibiting = self.inhibition.add(&memberships, slot, index, hash);
        let inhibited = self.inhibition.inhibited(&memberships);
        self.set_inhibited(slot, index, inhibited, now, out);
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
        let memberships = self.inhibition.memberships(&self.slots.view(slot, index));
        for m in memberships.iter().filter(|m| m.source) {
            if self.inhibition.release(m.key) {
                self.refresh_targets(m.key, now, out);
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

    /// Decides again whether an open alert is inhibited.
    fn refresh_inhibited(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let memberships = self.inhibition.memberships(&self.slots.view(slot, index));
        let inhibited = self.inhibition.inhibited(&memberships);
        self.set_inhibited(slot, index, inhibited, now, out);
    }

    /// Sets whether an open alert is inhibited; a change is a change of its incident.
    fn set_inhibited(
        &mut self,
        slot: u32,
        index: u32,
        inhibited: bool,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let alert = self.slots.view(slot, index).alert;
        if inhibited != alert.inhibited {
            let silenced = alert.silenced;
            self.set_suppression(slot, index, silenced, inhibited);
            if inhibited {
                self.stats.inhibit += 1;
            }
            self.mark_dirty(slot, now, out);
        }
    }
}
