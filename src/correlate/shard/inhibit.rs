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
                    for r in 0..self.rules.len() {
                        if let Some(m) = self.membership(r, &view) {
                            self.add(&m, slot, index as u32, alert.hash);
                        }
                    }
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

    /// Where an alert stands under rule `r`, when it matches the rule's source or target.
    /// Rules are independent (a key holds its rule), so an alert is registered and judged
    /// under each rule in turn, with no list of them made per alert.
    fn membership(&self, r: usize, view: &AlertView) -> Option<Membership> {
        let rule = &self.rules[r];
        let (source, target) = (all_match(&rule.source, view), all_match(&rule.target, view));
        (source || target).then(|| Membership {
            key: Self::key(r, rule, view),
            source,
            target,
        })
    }

    /// Where an alert stands under each rule whose source or target it matches.
    fn memberships<'s>(&'s self, view: &'s AlertView) -> impl Iterator<Item = Membership> + 's {
        (0..self.rules.len()).filter_map(move |r| self.membership(r, view))
    }

    /// Registers a newly open alert at `(slot, index)` under one rule, as a target and as an
    /// inhibitor as `m` says; whether it is the first inhibitor under `m`'s key.
    fn add(&mut self, m: &Membership, slot: u32, index: u32, hash: u64) -> bool {
        if m.target {
            self.targets
                .entry(m.key)
                .or_default()
                .push((slot, index, hash));
        }
        if !m.source {
            return false;
        }
        let n = self.inhibitors.entry(m.key).or_insert(0);
        *n += 1;
        *n == 1
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

    /// Whether an open alert standing as `m` under its rule is inhibited by that rule, not
    /// counting itself as its inhibitor.
    fn inhibited_under(&self, m: &Membership) -> bool {
        m.target
            && self
                .inhibitors
                .get(&m.key)
                .is_some_and(|n| *n > u32::from(m.source))
    }

    /// Whether an open alert is inhibited by any rule.
    fn inhibited(&self, view: &AlertView) -> bool {
        self.memberships(view).any(|m| self.inhibited_under(&m))
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
        let hash = view.alert.hash;
        let (mut inhibited, mut newly_inhibiting) = (false, Vec::new());
        for r in 0..self.inhibition.rules.len() {
            let Some(m) = self.inhibition.membership(r, &view) else {
                continue;
            };
            if self.inhibition.add(&m, slot, index, hash) {
                newly_inhibiting.push(m.key);
            }
            inhibited |= self.inhibition.inhibited_under(&m);
        }
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
        let view = self.slots.view(slot, index);
        let released: Vec<InhibitKey> = self
            .inhibition
            .memberships(&view)
            .filter(|m| m.source)
            .map(|m| m.key)
            .collect();
        for key in released {
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

    /// Decides again whether an open alert is inhibited.
    fn refresh_inhibited(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let inhibited = self.inhibition.inhibited(&self.slots.view(slot, index));
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
