//! The pause: how long a new incident is held before it is published, and never published if
//! all its alerts resolve within it. By severity (the rule's `pause_transient`), and learned:
//!
//! The learned transient pause: per (routing key, class), how many of its alerts resolved
//! within `learned_pause` of opening and how many lasted longer, as weights that halve every
//! [`HALF_LIFE`] of partition time. A class whose alerts mostly blipped ([`MIN_SEEN`] alerts
//! at least, [`SHARE`] of them short) is held for `learned_pause` whatever its severity, so it
//! never pages when it blips again; once it starts lasting, the share drops and it pages at
//! once again.
//!
//! Invariants: at most [`MAX_CLASSES`] records; a record's weights are as of its `at` (decayed
//! lazily when read or written). Off (`learned_pause = "0s"`), nothing is recorded.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::RuleConfig;
use crate::event::Severity;
use crate::publish::encode::Status;
use crate::time::UnixMillis;

use super::grouping::values_hash;
use super::Shard;

/// How fast history fades.
pub const HALF_LIFE: Duration = Duration::from_secs(24 * 3600);
/// Weighted alerts of a class seen before its history decides anything: one recent alert
/// (within about 3.6 hours), or more older ones.
pub const MIN_SEEN: f32 = 0.9;
/// The share of short alerts above which a class is held.
pub const SHARE: f32 = 0.8;
/// Classes remembered per shard; past it, the faintest histories are forgotten first.
pub const MAX_CLASSES: usize = 10_000;

#[derive(Clone, Copy, Serialize, Deserialize)]
struct Record {
    short: f32,
    long: f32,
    at: UnixMillis,
}

impl Record {
    fn decayed(self, now: UnixMillis) -> Record {
        let dt = now.saturating_sub(self.at).as_secs_f32();
        let factor = 0.5f32.powf(dt / HALF_LIFE.as_secs_f32());
        Record {
            short: self.short * factor,
            long: self.long * factor,
            at: self.at.max(now),
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
pub(super) struct Learned {
    #[serde(with = "super::snapshot::pairs")]
    classes: HashMap<u64, Record>,
}

/// The key of a class within a routing key.
pub(super) fn class_key(routing_key: &str, class: &str) -> u64 {
    values_hash(routing_key, u16::MAX, std::iter::once(class))
}

impl Learned {
    /// Takes a copy of every class `other` knows and this one does not.
    pub(super) fn absorb(&mut self, other: &Learned) {
        for (key, record) in &other.classes {
            self.classes.entry(*key).or_insert(*record);
        }
    }

    /// An alert of the class `key` lasted `lasted`: short when under `pause`.
    pub(super) fn record(&mut self, key: u64, lasted: Duration, pause: Duration, now: UnixMillis) {
        if self.classes.len() >= MAX_CLASSES && !self.classes.contains_key(&key) {
            self.forget_faintest(now);
        }
        let r = self.classes.entry(key).or_insert(Record {
            short: 0.0,
            long: 0.0,
            at: now,
        });
        *r = r.decayed(now);
        if lasted < pause {
            r.short += 1.0;
        } else {
            r.long += 1.0;
        }
    }

    /// Whether alerts of the class `key` usually blip.
    pub(super) fn holds(&self, key: u64, now: UnixMillis) -> bool {
        self.classes.get(&key).is_some_and(|r| {
            let r = r.decayed(now);
            let seen = r.short + r.long;
            seen >= MIN_SEEN && r.short >= SHARE * seen
        })
    }

    /// Drops the half of the records with the least weight.
    fn forget_faintest(&mut self, now: UnixMillis) {
        let mut weights: Vec<f32> = self
            .classes
            .values()
            .map(|r| {
                let r = r.decayed(now);
                r.short + r.long
            })
            .collect();
        weights.sort_by(f32::total_cmp);
        let median = weights[weights.len() / 2];
        self.classes.retain(|_, r| {
            let r = r.decayed(now);
            r.short + r.long > median
        });
    }
}

impl Shard {
    /// The pause of an alert: its severity's, at least `learned_pause` when its class usually
    /// blips; and whether that made it longer.
    pub(super) fn pause_for(
        &self,
        routing_key: &str,
        class: Option<&str>,
        severity: Severity,
        config: &RuleConfig,
        now: UnixMillis,
    ) -> (Duration, bool) {
        let pause = config.pause_transient.of(severity);
        let learned = class.is_some_and(|class| {
            !self.learned_pause.is_zero() && self.learned.holds(class_key(routing_key, class), now)
        });
        if learned && self.learned_pause > pause {
            (self.learned_pause, true)
        } else {
            (pause, false)
        }
    }

    /// An unpublished incident is held until one of its alerts has lasted its pause: an alert
    /// joining (or rising) at `now` with a shorter pause shortens the hold, down to the end of
    /// `group_wait`.
    pub(super) fn hold_for(&mut self, slot: u32, index: u32, now: UnixMillis) {
        let inc = self.slots.get(slot);
        if inc.published {
            return;
        }
        let config = &self.rules[inc.rule as usize].config;
        let a = &inc.alerts[index as usize];
        let (pause, learned) = self.pause_for(&inc.routing_key, a.class(), a.severity, config, now);
        let group_wait = config.group_wait;
        let inc = self.slots.get_mut(slot);
        let pause_end = now.saturating_add(pause);
        if pause_end < inc.pause_end {
            inc.pause_end = pause_end;
            inc.pause_learned = learned;
            inc.pause_by = index;
            let hold_end = pause_end.max(inc.opened_at.saturating_add(group_wait));
            inc.publish_at = inc.publish_at.min(hold_end);
        }
    }

    /// An alert of an unpublished incident resolved at `now` before the hold's pause ended:
    /// the hold now ends when one of the alerts still open will have lasted its own pause
    /// (from its first event, at its severity as it is now), so that an incident is published
    /// once one of its alerts has lasted its pause, not because a later alert happens to be
    /// open when an earlier one's pause ends. None open: the pause stands (all resolved
    /// within it: transient).
    /// Only the resolve of the alert whose pause the hold ends with (`pause_by`) looks at the
    /// others (of equal ends, the latest to arrive is taken, so that alerts resolving in the
    /// order they came do not each look at all the others).
    pub(super) fn pause_after_resolve(&mut self, slot: u32, index: u32, now: UnixMillis) {
        let inc = self.slots.get(slot);
        if inc.published || inc.open_alerts == 0 || inc.pause_end <= now || inc.pause_by != index {
            return;
        }
        let config = &self.rules[inc.rule as usize].config;
        let (mut end, mut learned, mut by) = (UnixMillis::NEVER, false, index);
        for (i, a) in inc.alerts.iter().enumerate() {
            if a.status == Status::Resolved {
                continue;
            }
            let (pause, l) = self.pause_for(&inc.routing_key, a.class(), a.severity, config, now);
            let a_end = a.first_seen.saturating_add(pause);
            if a_end <= end {
                (end, learned, by) = (a_end, l, i as u32);
            }
        }
        let hold_end = end.max(inc.opened_at.saturating_add(config.group_wait));
        let inc = self.slots.get_mut(slot);
        inc.pause_end = end;
        inc.pause_learned = learned;
        inc.pause_by = by;
        inc.publish_at = hold_end;
    }

    /// An alert resolved: its class learns how long it lasted.
    pub(super) fn learn(&mut self, slot: u32, index: u32, now: UnixMillis) {
        if self.learned_pause.is_zero() {
            return;
        }
        let inc = self.slots.get(slot);
        let a = &inc.alerts[index as usize];
        if let Some(class) = a.class() {
            let key = class_key(&inc.routing_key, class);
            let lasted = now.saturating_sub(a.first_seen);
            self.learned.record(key, lasted, self.learned_pause, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_class_that_blips_is_held_until_it_starts_to_last_and_history_fades() {
        let mut l = Learned::default();
        let k = class_key("rk", "GcPause");
        let t = |min: u64| UnixMillis(min * 60_000);
        assert!(!l.holds(k, t(0)), "nothing known");
        l.record(k, MIN, 3 * MIN, t(0));
        assert!(l.holds(k, t(1)), "one recent blip");
        assert!(!l.holds(class_key("rk", "Other"), t(1)));
        assert!(!l.holds(class_key("other-rk", "GcPause"), t(1)));
        // One that lasted: half short, under the share.
        l.record(k, 10 * MIN, 3 * MIN, t(1));
        assert!(!l.holds(k, t(1)));
        for _ in 0..4 {
            l.record(k, MIN, 3 * MIN, t(1));
        }
        assert!(l.holds(k, t(1)), "5 of 6 short");
        // Days on, the weights fade below MIN_SEEN.
        assert!(l.holds(k, t(24 * 60)));
        assert!(!l.holds(k, t(5 * 24 * 60)));
    }

    #[test]
    fn the_number_of_classes_is_bounded() {
        let mut l = Learned::default();
        for i in 0..(MAX_CLASSES + 10) {
            let lasted = if i % 2 == 0 { MIN } else { 10 * MIN };
            l.record(
                class_key("rk", &i.to_string()),
                lasted,
                3 * MIN,
                UnixMillis(i as u64),
            );
        }
        assert!(l.classes.len() <= MAX_CLASSES);
    }
}
