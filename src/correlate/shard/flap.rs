//! Flap detection: an alert that opens and resolves more than its rule's `max_changes` times
//! within `within` starts (or extends) a flapping spell of its incident, until `cooldown`
//! after its last change.
//!
//! Invariants: the history of an alert (by its hash) holds the times of its opens and
//! resolves, oldest first, and after each change none older than `within` before it. Alerts
//! that stopped changing keep their history until the map outgrows 4 × max(open alerts,
//! 1024) entries, when every history with no change within the `within` of the change being
//! recorded is dropped: memory stays bounded without a timer. (With rules of different
//! `within`, that can drop changes a longer one would still count.)

use std::collections::{HashMap, VecDeque};

use crate::config::FlapConfig;
use crate::time::UnixMillis;

use super::Shard;

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct FlapHistory {
    /// Recent state changes per alert hash.
    changes: HashMap<u64, VecDeque<UnixMillis>>,
}

impl FlapHistory {
    /// Takes a copy of every history `other` has and this one has not.
    pub(super) fn absorb(&mut self, other: &FlapHistory) {
        for (hash, history) in &other.changes {
            self.changes.entry(*hash).or_insert_with(|| history.clone());
        }
    }

    /// Records a change of the alert `hash` at `now`; whether it is flapping by `flap`.
    fn record(
        &mut self,
        hash: u64,
        now: UnixMillis,
        flap: &FlapConfig,
        open_alerts: usize,
    ) -> bool {
        let history = self.changes.entry(hash).or_default();
        history.push_back(now);
        let horizon = UnixMillis(now.0.saturating_sub(flap.within.as_millis() as u64));
        while history.front().is_some_and(|t| *t < horizon) {
            history.pop_front();
        }
        let flapping = history.len() as u32 > flap.max_changes;
        if self.changes.len() > 4 * open_alerts.max(1024) {
            self.changes
                .retain(|_, h| h.back().is_some_and(|t| *t >= horizon));
        }
        flapping
    }
}

impl Shard {
    /// Records an open or a resolve of the alert `hash`; more than the rule's `max_changes`
    /// within `within` starts (or extends) a flapping spell of its incident.
    pub(super) fn record_state_change(&mut self, slot: u32, hash: u64, now: UnixMillis) {
        let rule = self.slots.get(slot).rule;
        let Some(flap) = self.rules[rule as usize].config.flap else {
            return;
        };
        let flapping = self.flaps.record(hash, now, &flap, self.alerts.len());
        let inc = self.slots.get_mut(slot);
        if flapping || inc.flapping(now) {
            inc.flapping_until = Some(now.saturating_add(flap.cooldown));
        }
    }
}
