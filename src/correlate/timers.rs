//! Per-shard timers: a min-heap of deadlines. A rescheduled timer leaves its old entry behind;
//! the owner recognises it as stale when it comes due, so no entry is ever searched for. Entries
//! due at the same instant fire in the order they were scheduled, so runs are deterministic.
//!
//! Alerts' ends, one per open alert with an end, wait apart: in lists by the second
//! ([`BUCKET_MS`]) they end in, 12 bytes each, where a heap entry takes 32 (42 bytes per open
//! alert in all with the heap's room to grow, `cargo bench --bench rss`; the lists take 16). As
//! a second starts, its list is handed to the owner ([`Timer::EndsDue`],
//! [`Timers::take_bucket`]), which schedules each alert still open at its end, read again: from
//! then on those ends are heap entries like any, each fired at its own instant. So a shard that holds a storm of alerts keeps a heap of the incidents' timers and
//! of the ends of the coming second only.

use std::cmp::Reverse;
use std::collections::btree_map::{BTreeMap, Entry};
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
    /// The alerts' ends listed for the second `bucket` (of [`BUCKET_MS`] since the epoch) are
    /// due to be scheduled ([`Timers::take_bucket`]).
    EndsDue { bucket: u64 },
}

/// How finely the alerts' ends are listed before they are scheduled, in milliseconds.
pub const BUCKET_MS: u64 = 1000;

/// An alert's end waiting in its second's list: the place and hash bits of
/// [`Timer::AlertEnds`], without its deadline (read from the alert when the second comes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct End {
    pub slot: u32,
    pub index: u32,
    pub hash: u32,
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
    /// Alerts' ends by the second they are in, for seconds not yet handed out. (Snapshots
    /// written before these lists kept every end in the heap.)
    #[serde(default)]
    ends: BTreeMap<u64, Vec<End>>,
    /// The last second whose list was handed out: an end in it or before goes to the heap.
    #[serde(default)]
    taken: u64,
}

impl Timers {
    /// Schedules `timer` at `at`; an alert's end in a second still to come waits in that
    /// second's list.
    pub fn schedule(&mut self, at: UnixMillis, timer: Timer) {
        if let Timer::AlertEnds { slot, index, hash } = timer {
            let bucket = at.0 / BUCKET_MS;
            if bucket > self.taken {
                let list = match self.ends.entry(bucket) {
                    Entry::Occupied(list) => list.into_mut(),
                    Entry::Vacant(vacant) => {
                        self.seq += 1;
                        let due = UnixMillis(bucket * BUCKET_MS);
                        let timer = Timer::EndsDue { bucket };
                        self.heap.push(Reverse((due, self.seq, timer)));
                        vacant.insert(Vec::new())
                    }
                };
                list.push(End { slot, index, hash });
                return;
            }
        }
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer)));
    }

    /// The ends listed for `bucket`, in the order they were scheduled, as its
    /// [`Timer::EndsDue`] fires: the owner schedules again those still due (each at its
    /// alert's end, into the heap now).
    pub fn take_bucket(&mut self, bucket: u64) -> Vec<End> {
        self.taken = self.taken.max(bucket);
        self.ends.remove(&bucket).unwrap_or_default()
    }

    /// Carries on from `other`'s tokens and handed-out seconds (a shard split from it).
    pub fn continue_from(&mut self, other: &Timers) {
        self.seq = self.seq.max(other.seq);
        self.taken = self.taken.max(other.taken);
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

    /// Every timer, in the order they would fire, leaving none: a listed end at the start of
    /// its second (scheduling it again lists it there), the lists' own timers left out.
    pub fn drain_in_order(&mut self) -> Vec<(UnixMillis, Timer)> {
        let mut all: Vec<_> = std::mem::take(&mut self.heap).into_vec();
        all.retain(|Reverse((_, _, t))| !matches!(t, Timer::EndsDue { .. }));
        for (bucket, list) in std::mem::take(&mut self.ends) {
            let at = UnixMillis(bucket * BUCKET_MS);
            all.extend(list.into_iter().map(|End { slot, index, hash }| {
                Reverse((at, 0, Timer::AlertEnds { slot, index, hash }))
            }));
        }
        all.sort_by_key(|Reverse((at, seq, _))| (*at, *seq));
        all.into_iter().map(|Reverse((at, _, t))| (at, t)).collect()
    }

    /// The entries: the heap's and the listed ends.
    pub fn len(&self) -> usize {
        self.heap.len() + self.ends.values().map(Vec::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn ends_wait_in_their_seconds_list_until_it_is_taken() {
        let mut t = Timers::default();
        assert_eq!(std::mem::size_of::<End>(), 12);
        let end = |index| Timer::alert_ends(1, index, 7);
        t.schedule(UnixMillis(5_250), end(0));
        t.schedule(UnixMillis(5_100), end(1));
        t.schedule(UnixMillis(6_000), end(2));
        t.schedule(UnixMillis(5_900), Timer::Silences);
        // Two seconds' lists, one heap entry each beside the silences'.
        assert_eq!(t.heap.len(), 3);
        assert_eq!(t.len(), 6);
        assert_eq!(t.next_deadline(), Some(UnixMillis(5_000)));
        assert_eq!(t.pop_due(UnixMillis(4_999)), None);
        let (at, due) = t.pop_due(UnixMillis(5_000)).unwrap();
        assert_eq!((at, due), (UnixMillis(5_000), Timer::EndsDue { bucket: 5 }));
        let listed = t.take_bucket(5);
        assert_eq!(listed.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 1]);
        // The owner schedules them at their ends: the second is taken, so into the heap.
        t.schedule(UnixMillis(5_100), end(1));
        t.schedule(UnixMillis(5_250), end(0));
        assert_eq!(
            t.pop_due(UnixMillis(5_250)),
            Some((UnixMillis(5_100), end(1)))
        );
        assert_eq!(
            t.pop_due(UnixMillis(5_250)),
            Some((UnixMillis(5_250), end(0)))
        );
        assert_eq!(
            t.pop_due(UnixMillis(5_999)),
            Some((UnixMillis(5_900), Timer::Silences))
        );
        assert_eq!(
            t.pop_due(UnixMillis(6_000)),
            Some((UnixMillis(6_000), Timer::EndsDue { bucket: 6 }))
        );
        assert_eq!(
            t.take_bucket(6),
            [End {
                slot: 1,
                index: 2,
                hash: 7
            }]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn draining_gives_listed_ends_at_their_seconds_start_and_older_snapshots_read() {
        let mut t = Timers::default();
        t.schedule(UnixMillis(2_500), Timer::alert_ends(3, 4, 9));
        t.schedule(UnixMillis(1_000), Timer::Incident { slot: 3, token: 1 });
        let written = serde_json::to_string(&t).unwrap();
        assert_eq!(
            t.drain_in_order(),
            [
                (UnixMillis(1_000), Timer::Incident { slot: 3, token: 1 }),
                (UnixMillis(2_000), Timer::alert_ends(3, 4, 9)),
            ]
        );
        assert!(t.is_empty());
        let mut read: Timers = serde_json::from_str(&written).unwrap();
        assert_eq!(read.len(), 3);
        // Written before the lists: every end in the heap, read as it was.
        let older = r#"{"heap":[[5000,1,{"AlertEnds":{"slot":1,"index":2,"hash":3}}]],"seq":1}"#;
        read = serde_json::from_str(older).unwrap();
        assert_eq!(
            read.pop_due(UnixMillis(5_000)),
            Some((UnixMillis(5_000), Timer::alert_ends(1, 2, 3)))
        );
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
