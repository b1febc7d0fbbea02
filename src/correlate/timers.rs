//! Per-shard timers: a min-heap of deadlines. Rescheduling leaves the old entry behind; it is
//! recognised as stale by its token when it comes due, so no entry is ever searched for.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::UnixMillis;

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(UnixMillis, u32, u64)>>,
    next_token: u64,
}

impl Timers {
    /// Schedules `slot` at `at`; returns the token the owner keeps to recognise this timer.
    pub fn schedule(&mut self, at: UnixMillis, slot: u32) -> u64 {
        self.next_token += 1;
        self.heap.push(Reverse((at, slot, self.next_token)));
        self.next_token
    }

    /// The earliest deadline, possibly of a stale entry (a spurious wake-up is harmless).
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next entry due at or before `now`, as `(slot, token)`.
    pub fn pop_due(&mut self, now: UnixMillis) -> Option<(u32, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                let Reverse((_, slot, token)) = self.heap.pop()?;
                Some((slot, token))
            }
            _ => None,
        }
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
    fn pops_in_deadline_order_only_when_due() {
        let mut t = Timers::default();
        let a = t.schedule(UnixMillis(30), 1);
        let b = t.schedule(UnixMillis(10), 2);
        assert_eq!(t.next_deadline(), Some(UnixMillis(10)));
        assert_eq!(t.pop_due(UnixMillis(9)), None);
        assert_eq!(t.pop_due(UnixMillis(30)), Some((2, b)));
        assert_eq!(t.pop_due(UnixMillis(30)), Some((1, a)));
        assert!(t.is_empty());
    }
}
