//! Per-shard timers: a min-heap of deadlines. A rescheduled timer leaves its old entry behind;
//! the owner recognises it as stale when it comes due, so no entry is ever searched for. Entries
//! due at the same instant fire in the order they were scheduled, so runs are deterministic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::UnixMillis;

/// What a timer is for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Timer {
    /// The incident in `slot`: publish, coalesced update, end of flapping. `token` tells the
    /// incident's current timer from stale ones.
    Incident { slot: u32, token: u64 },
    /// The alert at `slot`/`index` resolves by time (`ends_at`) unless refreshed; `hash`, the
    /// low 32 bits of the alert's (see [`Timer::alert_ends`]), tells it from a later occupant
    /// of the same place.
    AlertEnds {
        slot: u32,
        index: u32,
        /// Snapshots before this field was cut to 32 bits wrote the whole hash.
        #[serde(deserialize_with = "low_bits")]
        hash: u32,
    },
    /// A silence starts or ends: re-evaluate which alerts are silenced.
    Silences,
    /// The shard's heartbeat `index` (of those it owns) is checked.
    Heartbeat { index: u32 },
}

impl Timer {
    /// The timer of the alert with `hash` at `slot`/`index`. It keeps 32 bits of the hash, so
    /// that an entry takes 32 bytes instead of 40 (an open alert with an end has one): a later
    /// occupant of the place that matches them by chance only has its own end read again
    /// when the entry comes due, and is resolved by it only if that end has passed.
    pub fn alert_ends(slot: u32, index: u32, hash: u64) -> Timer {
        Timer::AlertEnds {
            slot,
            index,
            hash: hash as u32,
        }
    }

    /// Whether an alert `hash` may be the one an [`Timer::AlertEnds`] of `check` was set for.
    pub fn ends_alert(check: u32, hash: u64) -> bool {
        hash as u32 == check
    }
}

fn low_bits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    <u64 as serde::Deserialize>::deserialize(d).map(|h| h as u32)
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(UnixMillis, u64, Timer)>>,
    seq: u64,
}

impl Timers {
    pub fn schedule(&mut self, at: UnixMillis, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer)));
    }

    /// A fresh token for an incident timer.
    pub fn token(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The earliest deadline, possibly of a stale entry (a spurious wake-up is harmless).
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next timer due at or before `now`, with its deadline.
    pub fn pop_due(&mut self, now: UnixMillis) -> Option<(UnixMillis, Timer)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((at, _, t))| (at, t))
            }
            _ => None,
        }
    }

    /// Every timer, in the order they would fire, leaving none.
    pub fn drain_in_order(&mut self) -> Vec<(UnixMillis, Timer)> {
        let mut all: Vec<_> = std::mem::take(&mut self.heap).into_vec();
        all.sort_by_key(|Reverse((at, seq, _))| (*at, *seq));
        all.into_iter().map(|Reverse((at, _, t))| (at, t)).collect()
    }

    /// The tokens handed out so far (the last one).
    pub fn tokens(&self) -> u64 {
        self.seq
    }

    /// Hands out no token at or below `seq` from now on.
    pub fn reserve_tokens(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_then_schedule_order_only_when_due() {
        let mut t = Timers::default();
        t.schedule(UnixMillis(30), Timer::Silences);
        t.schedule(UnixMillis(10), Timer::Incident { slot: 2, token: 9 });
        t.schedule(UnixMillis(10), Timer::Incident { slot: 1, token: 9 });
        assert_eq!(t.next_deadline(), Some(UnixMillis(10)));
        assert_eq!(t.pop_due(UnixMillis(9)), None);
        assert_eq!(
            t.pop_due(UnixMillis(30)),
            Some((UnixMillis(10), Timer::Incident { slot: 2, token: 9 }))
        );
        assert_eq!(
            t.pop_due(UnixMillis(30)),
            Some((UnixMillis(10), Timer::Incident { slot: 1, token: 9 }))
        );
        assert_eq!(
            t.pop_due(UnixMillis(30)),
            Some((UnixMillis(30), Timer::Silences))
        );
        assert!(t.is_empty());
    }

    #[test]
    fn an_entry_takes_32_bytes_and_reads_a_whole_hash_from_older_snapshots() {
        assert_eq!(std::mem::size_of::<Reverse<(UnixMillis, u64, Timer)>>(), 32);
        let hash = 0x0123_4567_89ab_cdef_u64;
        let timer = Timer::alert_ends(1, 2, hash);
        assert!(Timer::ends_alert(0x89ab_cdef, hash));
        let written = serde_json::to_string(&timer).unwrap();
        assert_eq!(serde_json::from_str::<Timer>(&written).unwrap(), timer);
        let older = format!(r#"{{"AlertEnds":{{"slot":1,"index":2,"hash":{hash}}}}}"#);
        assert_eq!(serde_json::from_str::<Timer>(&older).unwrap(), timer);
    }
}
