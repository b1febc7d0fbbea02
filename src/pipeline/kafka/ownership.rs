//! What this correlator watches besides its records: the consumer lag of the partitions it
//! owns (`sluice_consumer_lag{partition}`), partitions that nobody consumes, and its own
//! pauses.
//!
//! **Orphans.** Ingest writes a watermark to every idle partition every `watermark_interval`,
//! so every partition's log end moves, and a live owner commits it every `commit_interval`.
//! A partition whose committed offset has not moved for two session timeouts while its log end
//! is ahead has no live owner. A correct group coordinator never leaves one, but some (tansu
//! 0.6, when the group's leader dies and the other members rejoin with unchanged metadata)
//! keep the dead leader's partitions assigned to it; the correlator that sees an orphan leaves
//! the group and joins again, as a new member, so the group forms anew without the dead one.
//!
//! **Pauses (fencing without transactions).** A correlator that was paused (SIGSTOP, a frozen
//! VM, a long stall) for longer than half the session timeout may have lost its partitions
//! without having been told yet: whatever it would publish for them now may duplicate or race
//! their new owner. So it drops every partition's state and its pending output, waits for the
//! group to say what it owns (a rebalance, or a few heartbeats without one), and restores what
//! is still its own from what was committed, fetching again from there. Nothing is lost: the
//! dropped output is that of records after the last commit, which are processed again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics as m;
use crate::publish::encode::OutboundMessage;

use super::Run;

/// Per-partition committed offsets as last seen, and since when.
pub(super) struct GroupWatch {
    every: Duration,
    last_look: Instant,
    committed: HashMap<i32, (i64, Instant)>,
    stale_after: Duration,
    last_rejoin: Option<Instant>,
}

impl GroupWatch {
    pub(super) fn new(session_timeout: Duration) -> Self {
        GroupWatch {
            every: session_timeout.max(Duration::from_secs(1)),
            last_look: Instant::now(),
            committed: HashMap::new(),
            stale_after: session_timeout * 2,
            last_rejoin: None,
        }
    }
}

/// Tells a paused correlator from a working one.
pub(super) struct Fence {
    /// The last time the loop was seen running.
    alive: Instant,
    /// A gap longer than this puts ownership in doubt: half the session timeout.
    limit: Duration,
    /// How long to wait after a pause for the group to speak: three heartbeats.
    settle: Duration,
    /// When to take back what the group still assigns, after a pause.
    pub(super) resync_at: Option<Instant>,
}

impl Fence {
    pub(super) fn new(session_timeout: Duration) -> Self {
        Fence {
            alive: Instant::now(),
            limit: session_timeout / 2,
            settle: (session_timeout / 2).max(Duration::from_secs(1)),
            resync_at: None,
        }
    }

    pub(super) fn mark_alive(&mut self) {
        self.alive = Instant::now();
    }

    /// Whether ownership is in doubt: the loop was not seen running for longer than the
    /// limit, or librdkafka says the assignment is lost. Marks the loop alive.
    fn in_doubt(&mut self, lost: bool) -> Option<Duration> {
        let gap = self.alive.elapsed();
        self.mark_alive();
        (gap > self.limit || lost).then_some(gap)
    }
}

impl Run {
    /// If the loop was not seen running for longer than the fence's limit, or librdkafka
    /// reports the assignment lost: drops every partition's state and `out` (counted as fenced
    /// writes), and schedules a resync. Returns whether it did.
    pub(super) fn fence(&mut self, out: &mut Vec<OutboundMessage>) -> bool {
        let lost = self.consumer.assignment_lost();
        let Some(gap) = self.fence.in_doubt(lost) else {
            return false;
        };
        if !self.owned.is_empty() || !out.is_empty() {
            tracing::warn!(
                paused_ms = gap.as_millis() as u64,
                lost,
                partitions = self.owned.len(),
                withheld = out.len(),
                "OWNERSHIP IN DOUBT: this correlator was paused longer than half the session timeout; its partitions' state and pending messages are dropped until the group confirms what it owns"
            );
        }
        m::counter(m::FENCED_WRITES).increment((out.len() + self.routed.len()) as u64);
        out.clear();
        self.routed.clear();
        self.abort_transaction("ownership in doubt");
        self.owned.clear();
        m::gauge(m::PARTITIONS_OWNED).set(0.0);
        self.fence.resync_at = Some(Instant::now() + self.fence.settle);
        true
    }

    /// When due (after a pause, once the group had time to speak, or after a failed restore):
    /// restores every partition the group assigns to this correlator that it does not hold,
    /// from what was committed, and fetches each again from there. One that still cannot be
    /// restored is tried again a second later; readiness waits for all of them.
    pub(super) fn take_back(&mut self, out: &mut Vec<OutboundMessage>) {
        if self.fence.resync_at.is_none_or(|at| Instant::now() < at) {
            return;
        }
        self.fence.resync_at = None;
        let assignment = match self.consumer.assignment() {
            Ok(tpl) => tpl,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the assignment");
                self.retry_restore_soon();
                return;
            }
        };
        let assigned: Vec<i32> = assignment
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let mut missing = 0;
        for &p in &assigned {
            if self.owned.contains_key(&p) {
                continue;
            }
            let Some(restored) = self.restore_owned(p, out) else {
                missing += 1;
                continue;
            };
            let next = restored.next;
            self.owned.insert(p, restored);
            if let Err(e) = self.fetch_from(p, next) {
                tracing::error!(partition = p, error = %e, "cannot fetch the partition again from its committed offset; leaving the group");
                self.owned.remove(&p);
                self.rejoin();
                return;
            }
        }
        self.consumer
            .context()
            .restoring
            .store(missing, std::sync::atomic::Ordering::Relaxed);
        if missing > 0 {
            self.retry_restore_soon();
        }
        m::gauge(m::PARTITIONS_OWNED).set(self.owned.len() as f64);
        tracing::info!(
            partitions = self.owned.len(),
            missing,
            "assigned partitions taken back"
        );
        self.fence.mark_alive();
    }

    pub(super) fn retry_restore_soon(&mut self) {
        let soon = Instant::now() + Duration::from_secs(1);
        self.fence.resync_at = Some(self.fence.resync_at.map_or(soon, |at| at.min(soon)));
    }

    /// Every `session_timeout`: sets the lag of owned partitions, and rejoins the group when
    /// a partition has no live owner (see the module's notes).
    pub(super) fn watch_group(&mut self) {
        if self.group_watch.last_look.elapsed() < self.group_watch.every {
            return;
        }
        self.group_watch.last_look = Instant::now();
        let orphans = tokio::task::block_in_place(|| self.look());
        self.fence.mark_alive();
        let recently = self
            .group_watch
            .last_rejoin
            .is_some_and(|at| at.elapsed() < self.group_watch.stale_after * 2);
        if !orphans.is_empty() && !recently {
            tracing::warn!(
                ?orphans,
                "partitions without a live owner (their committed offset stalled behind the log end): rejoining the consumer group so that it forms anew"
            );
            self.group_watch.last_rejoin = Some(Instant::now());
            self.group_watch.committed.clear();
            self.rejoin();
        }
    }

    /// Reads every partition's committed offset (one request) and the log end of the owned
    /// ones and of those whose committed offset stalled; returns the orphans. Blocking.
    fn look(&mut self) -> Vec<i32> {
        let timeout = Duration::from_secs(5);
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions as i32 {
            tpl.add_partition(&self.topic, p);
        }
        let committed = match self.consumer.committed_offsets(tpl, timeout) {
            Ok(tpl) => tpl,
            Err(e) => {
                tracing::debug!(error = %e, "group watch: committed offsets unavailable");
                return Vec::new();
            }
        };
        let now = Instant::now();
        let mut orphans = Vec::new();
        for e in committed.elements_for_topic(&self.topic) {
            let p = e.partition();
            let offset = match e.offset() {
                Offset::Offset(n) => n,
                _ => 0,
            };
            let since = match self.group_watch.committed.get(&p) {
                Some(&(last, since)) if last == offset => since,
                _ => now,
            };
            self.group_watch.committed.insert(p, (offset, since));
            let owned = self.owned.get(&p).map(|o| o.next);
            let stalled = owned.is_none() && since.elapsed() >= self.group_watch.stale_after;
            if owned.is_none() && !stalled {
                continue;
            }
            let Ok((_, end)) = self.consumer.fetch_watermarks(&self.topic, p, timeout) else {
                continue;
            };
            match owned {
                Some(next) => m::consumer_lag(p).set((end - next).max(0) as f64),
                None if end > offset => orphans.push(p),
                None => {}
            }
        }
        orphans
    }

    /// Leaves the consumer group and joins it again as a new member.
    fn rejoin(&mut self) {
        self.consumer.unsubscribe();
        if let Err(e) = self.consumer.subscribe(&[&self.topic]) {
            tracing::error!(error = %e, "cannot subscribe to the events topic again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_over_half_the_session_timeout_or_a_lost_assignment_puts_ownership_in_doubt() {
        let mut fence = Fence::new(Duration::from_secs(10));
        assert_eq!(fence.in_doubt(false), None);
        assert!(fence.in_doubt(true).is_some());
        fence.alive = Instant::now() - Duration::from_secs(4);
        assert_eq!(fence.in_doubt(false), None, "4 s is within 5 s");
        fence.alive = Instant::now() - Duration::from_secs(6);
        assert!(fence
            .in_doubt(false)
            .is_some_and(|gap| gap >= Duration::from_secs(6)));
        assert_eq!(fence.in_doubt(false), None, "checking marks the loop alive");
    }
}
