//! Flap detection: an alert that opens and resolves more than its rule's `max_changes` times
//! within `within` starts (or extends) a flapping spell of its incident, until `cooldown`
//! after its last change.
//!
//! Invariants: the history of an alert (by its hash) holds the times of its opens and
//! resolves, oldest first, and after each change none older than `within` before it; an alert
//! that has not resolved yet has none (its open is its `first_seen`), so a storm of new alerts
//! adds nothing here. Alerts
//! that stopped changing keep their history until the map outgrows 4 × max(open alerts,
//! 1024) entries, when every history with no change within the `within` of the change being
//! recorded is dropped: memory stays bounded without a timer. (With rules of different
//! `within`, that can drop changes a longer one would still count.)

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::FlapConfig;
use crate::correlate::KeyHasher;
use crate::time::UnixMillis;

use super::Shard;

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct FlapHistory {
    /// Recent state changes per alert hash (the hashes are xxh3 already).
    changes: HashMap<u64, Changes, BuildHasherDefault<KeyHasher>>,
}

/// One alert's recent changes, oldest first. Nearly every alert opens and then changes at
/// most once in a while: its one change is kept inline, with no allocation; a second one
/// moves them to a queue. Stored as the list of times.
#[derive(Clone, Debug, PartialEq)]
enum Changes {
    One(UnixMillis),
    Many(VecDeque<UnixMillis>),
}

impl Changes {
    fn push(&mut self, at: UnixMillis) {
        match self {
            Changes::One(first) => *self = Changes::Many(VecDeque::from([*first, at])),
            Changes::Many(all) => all.push_back(at),
        }
    }

    /// Forgets the changes before `horizon`; false when none is left.
    fn keep_since(&mut self, horizon: UnixMillis) -> bool {
        match self {
            Changes::One(at) => *at >= horizon,
            Changes::Many(all) => {
                while all.front().is_some_and(|t| *t < horizon) {
                    all.pop_front();
                }
                match all.as_slices() {
                    ([], []) => false,
                    ([only], []) | ([], [only]) => {
                        *self = Changes::One(*only);
                        true
                    }
                    _ => true,
                }
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Changes::One(_) => 1,
            Changes::Many(all) => all.len(),
        }
    }

    fn last(&self) -> Option<UnixMillis> {
        match self {
            Changes::One(at) => Some(*at),
            Changes::Many(all) => all.back().copied(),
        }
    }
}

impl Serialize for Changes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Changes::One(at) => s.collect_seq([at]),
            Changes::Many(all) => all.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Changes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut all = VecDeque::<UnixMillis>::deserialize(d)?;
        Ok(match (all.len(), all.front()) {
            (1, Some(&only)) => Changes::One(only),
            _ => {
                all.shrink_to_fit();
                Changes::Many(all)
            }
        })
    }
}

impl FlapHistory {
    /// Takes a copy of every history `other` has and this one has not.
    pub(super) fn absorb(&mut self, other: &FlapHistory) {
        for (hash, history) in &other.changes {
            self.changes.entry(*hash).or_insert_with(|| history.clone());
        }
    }

    /// Records a change of the alert `hash` at `now`, an open (`opened` none) or the resolve
    /// of the alert opened at `opened`; whether it is flapping by `flap`. An alert that has
    /// never resolved has no entry: its one change is its open, which it keeps itself.
    fn record(
        &mut self,
        hash: u64,
        now: UnixMillis,
        opened: Option<UnixMillis>,
        flap: &FlapConfig,
        open_alerts: usize,
    ) -> bool {
        let horizon = UnixMillis(now.0.saturating_sub(flap.within.as_millis() as u64));
        let count = match (self.changes.entry(hash), opened) {
            (Entry::Occupied(mut seen), _) => {
                let history = seen.get_mut();
                history.push(now);
                history.keep_since(horizon);
                history.len()
            }
            (Entry::Vacant(_), None) => 1,
            (Entry::Vacant(slot), Some(opened)) => {
                let history = slot.insert(Changes::One(opened));
                history.push(now);
                history.keep_since(horizon);
                history.len()
            }
        };
        let flapping = count as u32 > flap.max_changes;
        if self.changes.len() > 4 * open_alerts.max(1024) {
            self.changes
                .retain(|_, h| h.last().is_some_and(|t| t >= horizon));
        }
        flapping
    }
}

impl Shard {
    /// Records an open (`opened` none) or a resolve of the alert `hash` opened at `opened`;
    /// more than the rule's `max_changes` within `within` starts (or extends) a flapping spell
    /// of its incident.
    pub(super) fn record_state_change(
        &mut self,
        slot: u32,
        hash: u64,
        now: UnixMillis,
        opened: Option<UnixMillis>,
    ) {
        let rule = self.slots.get(slot).rule;
        let Some(flap) = self.rules[rule as usize].config.flap else {
            return;
        };
        let flapping = self
            .flaps
            .record(hash, now, opened, &flap, self.alerts.len());
        let inc = self.slots.get_mut(slot);
        if flapping || inc.flapping(now) {
            inc.flapping_until = Some(now.saturating_add(flap.cooldown));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_change_is_kept_inline_and_a_history_reads_as_the_list_it_was() {
        let flap = FlapConfig {
            max_changes: 2,
            within: Duration::from_secs(60),
            cooldown: Duration::from_secs(60),
        };
        let mut h = FlapHistory::default();
        let at = |s: u64| UnixMillis(s * 1000);
        let open = |h: &mut FlapHistory, s| h.record(7, at(s), None, &flap, 1);
        let resolve =
            |h: &mut FlapHistory, opened, s| h.record(7, at(s), Some(at(opened)), &flap, 1);
        assert!(!open(&mut h, 0));
        assert!(h.changes.is_empty(), "an open alert keeps its open itself");
        assert!(!resolve(&mut h, 0, 10));
        assert_eq!(h.changes[&7], Changes::Many([at(0), at(10)].into()));
        assert!(open(&mut h, 20), "three changes within a minute");
        // The older two fall out of the minute: one change left, inline.
        assert!(!resolve(&mut h, 20, 75));
        assert_eq!(h.changes[&7], Changes::Many([at(20), at(75)].into()));
        assert!(!open(&mut h, 200));
        assert_eq!(h.changes[&7], Changes::One(at(200)));
        // Resolved long after it opened: only the resolve is recent.
        assert!(!resolve(&mut h, 200, 400));
        assert_eq!(h.changes[&7], Changes::One(at(400)));
        // Snapshots keep the list of times, as they always did.
        h.record(8, at(201), Some(at(200)), &flap, 1);
        let json = serde_json::to_value(&h).expect("serializes");
        let list =
            |times: &[u64]| serde_json::to_value(times.iter().map(|&s| at(s)).collect::<Vec<_>>());
        assert_eq!(json["changes"]["7"], list(&[400]).unwrap());
        assert_eq!(json["changes"]["8"], list(&[200, 201]).unwrap());
        let back: FlapHistory = serde_json::from_value(json).expect("reads back");
        assert_eq!(back.changes[&7], Changes::One(at(400)));
        assert_eq!(back.changes[&8].len(), 2);
    }
}
