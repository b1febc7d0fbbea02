//! Fair admission (memory mode, `limits.fair_admission`): a routing key's share of a shard
//! queue, so that one key's storm cannot fill the queue that other keys share.
//!
//! Each shard counts the events it has queued per routing key (a DashMap keyed by the key's
//! hash: an entry per key with events waiting, removed when its last one is taken, so the
//! table never holds more keys than the queues hold events). A request is admitted when its
//! shard queue has room and any of these holds:
//! - the key has nothing queued in that shard (a quiet key always gets in while there is room),
//! - the queue stays at most half full with the request,
//! - the key is the only one with events queued in the shard, and its queued events, with the
//!   request's, leave an eighth of the queue free ([`LONE_KEY_RESERVE`]),
//! - the key's queued events, with the request's, stay within its share of that half: half the
//!   capacity divided by the keys with events queued in the shard.
//!
//! So a key alone rides out a pause of its shard with seven eighths of the queue (with nobody
//! else waiting there is nobody to be fair to; the eighth left is for the next key to arrive);
//! once another key has events queued, each is held to an equal part of half the queue, and
//! the key that was alone is refused until it is back within its part. A refused request gets
//! 503 with `Retry-After` (`Refused::OverShare`). The shard tells the table what it takes off
//! its queue through [`Dequeued`].

use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::{key_hash, KeyHasher};
use crate::correlate::{Dequeued, Input};

/// Events queued per routing key, and keys with events queued per shard.
pub struct FairShare {
    queued: DashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    keys: Box<[AtomicUsize]>,
}

/// A key alone may not fill the last `1 / LONE_KEY_RESERVE` of a shard queue: an eighth, kept
/// for the next key to arrive.
pub const LONE_KEY_RESERVE: usize = 8;

/// Whether a key with `queued` events in a queue that holds `fill` of `capacity`, in which
/// `keys` keys have events (this one among them), may add `n` more (see the module's rules).
pub fn within_share(queued: u32, n: u32, fill: usize, capacity: usize, keys: usize) -> bool {
    let half = capacity / 2;
    let (queued, n) = (queued as usize, n as usize);
    let share = match keys {
        0 | 1 => capacity - capacity / LONE_KEY_RESERVE,
        _ => half / keys,
    };
    queued == 0 || fill + n <= half || queued + n <= share
}

impl FairShare {
    pub fn new(shards: usize) -> Self {
        FairShare {
            queued: DashMap::default(),
            keys: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Whether `n` events of the key hashed `hash` may join the queue of `shard`, which holds
    /// `fill` of `capacity`; when they may, they are counted as queued (see
    /// [`FairShare::release`] for taking them back).
    pub fn admit(&self, shard: usize, hash: u64, n: u32, fill: usize, capacity: usize) -> bool {
        match self.queued.entry(hash) {
            Entry::Occupied(mut queued) => {
                let keys = self.keys[shard].load(Ordering::Relaxed);
                if !within_share(*queued.get(), n, fill, capacity, keys) {
                    return false;
                }
                *queued.get_mut() += n;
            }
            Entry::Vacant(slot) => {
                slot.insert(n);
                self.keys[shard].fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    /// `n` events of the key hashed `hash` left the queue of `shard` (taken by the shard, or
    /// never sent: the request was refused after its admission here).
    pub fn release(&self, shard: usize, hash: u64, n: u32) {
        if let Entry::Occupied(mut queued) = self.queued.entry(hash) {
            let left = queued.get().saturating_sub(n);
            if left == 0 {
                queued.remove();
                self.keys[shard].fetch_sub(1, Ordering::Relaxed);
            } else {
                *queued.get_mut() = left;
            }
        }
    }

    /// Events queued for the key hashed `hash` (0 when none).
    pub fn queued(&self, hash: u64) -> u32 {
        self.queued.get(&hash).map_or(0, |q| *q)
    }

    /// Keys with events queued in `shard`.
    pub fn keys(&self, shard: usize) -> usize {
        self.keys[shard].load(Ordering::Relaxed)
    }
}

impl Dequeued for FairShare {
    /// Releases what a shard took, one table update per run of one key's inputs (a request's
    /// events arrive together).
    fn taken(&self, shard: usize, inputs: &[Input]) {
        let mut run: Option<(&str, u32)> = None;
        for input in inputs {
            let key = match input {
                Input::Event(e) => e.routing_key.as_str(),
                Input::Change(c) => c.routing_key.as_str(),
                Input::Command(c) => c.routing_key.as_str(),
                Input::Silences(_) => continue,
            };
            match &mut run {
                Some((k, n)) if *k == key => *n += 1,
                _ => {
                    if let Some((k, n)) = run.replace((key, 1)) {
                        self.release(shard, key_hash(k), n);
                    }
                }
            }
        }
        if let Some((k, n)) = run {
            self.release(shard, key_hash(k), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Event};
    use crate::integration::Integration;
    use crate::time::UnixMillis;

    const CAPACITY: usize = 100;

    #[test]
    fn the_share_rules() {
        // Below half full with the request: anyone.
        assert!(within_share(40, 10, 40, CAPACITY, 2));
        assert!(!within_share(40, 11, 40, CAPACITY, 2));
        // A key alone may fill the queue but for its last eighth, kept for the next key...
        assert!(within_share(87, 1, 87, CAPACITY, 1));
        assert!(!within_share(88, 1, 88, CAPACITY, 1));
        assert!(!within_share(80, 9, 80, CAPACITY, 1));
        // ... and is held to an equal part of half of it once others have events queued.
        assert!(within_share(24, 1, 80, CAPACITY, 2));
        assert!(!within_share(25, 1, 80, CAPACITY, 2));
        assert!(!within_share(10, 1, 99, CAPACITY, 5));
        assert!(within_share(9, 1, 99, CAPACITY, 5));
        // A key with nothing queued gets in whatever the others hold (the queue's own room
        // is checked by the channel), and so does a batch larger than any share.
        assert!(within_share(0, 1, 99, CAPACITY, 50));
        assert!(within_share(0, 64, 90, CAPACITY, 3));
        // A queue of one: its only key is never held back by the share.
        assert!(within_share(0, 1, 0, 1, 0));
    }

    #[test]
    fn a_flooding_key_is_refused_while_a_quiet_one_gets_in() {
        let fair = FairShare::new(1);
        let (noisy, quiet) = (key_hash("noisy"), key_hash("quiet"));
        // The noisy key, alone, fills the queue but for its last eighth (100 - 100 / 8),
        // one event per request, then is held there.
        let mut fill = 0;
        while fair.admit(0, noisy, 1, fill, CAPACITY) {
            fill += 1;
            assert!(fill <= CAPACITY, "never past the queue");
        }
        assert_eq!((fill, fair.queued(noisy)), (88, 88));
        // The quiet key gets in with nothing queued, and again with one event queued (its
        // share is now 25 of the half); the noisy one, no longer alone, stays refused.
        assert!(fair.admit(0, quiet, 1, fill, CAPACITY));
        assert!(fair.admit(0, quiet, 1, fill + 1, CAPACITY));
        assert_eq!(fair.keys(0), 2);
        assert!(!fair.admit(0, noisy, 1, fill + 2, CAPACITY));
        // The shard takes 30 of the noisy key's events: 58, still over its share of 25.
        fair.release(0, noisy, 30);
        assert!(!fair.admit(0, noisy, 1, 60, CAPACITY));
        // 40 more taken: under half full with the request, anyone gets in.
        fair.release(0, noisy, 40);
        assert!(
            fair.admit(0, noisy, 1, 20, CAPACITY),
            "20 + 1 <= 50 is under half"
        );
        assert!(!fair.admit(0, noisy, 40, 21, CAPACITY));
        // The quiet key's events taken: the noisy key is alone again, with its seven eighths.
        fair.release(0, quiet, 2);
        assert!(fair.admit(0, noisy, 40, 19, CAPACITY));
        // Everything taken: the table is empty again.
        fair.release(0, noisy, 59);
        assert_eq!((fair.keys(0), fair.queued.len()), (0, 0));
    }

    #[test]
    fn what_a_shard_takes_is_released_per_key() {
        let fair = FairShare::new(2);
        let event = |key: &str| {
            Input::Event(Event::new(
                Integration::PagerDuty,
                Action::Trigger,
                key.into(),
                "k".into(),
                UnixMillis(0),
            ))
        };
        assert!(fair.admit(1, key_hash("a"), 3, 0, CAPACITY));
        assert!(fair.admit(1, key_hash("b"), 2, 3, CAPACITY));
        let taken = [
            event("a"),
            event("a"),
            Input::Silences(Vec::new().into()),
            event("b"),
            event("a"),
        ];
        fair.taken(1, &taken);
        assert_eq!(fair.queued(key_hash("a")), 0);
        assert_eq!(fair.queued(key_hash("b")), 1);
        assert_eq!(fair.keys(1), 1);
        // A release of more than is counted (a key never admitted) changes nothing else.
        fair.release(1, key_hash("c"), 5);
        fair.release(1, key_hash("b"), 5);
        assert_eq!((fair.keys(1), fair.queued.len()), (0, 0));
    }
}
