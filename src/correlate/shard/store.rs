//! The alert store: the slots incidents live in, the dedup index of open alerts, and every
//! change of an alert's own state (trigger, repeat, acknowledge, resolve, suppression).
//!
//! Invariants: `free` lists exactly the empty slots, each once. Every open alert of a tracked
//! incident is in the index exactly once, under [`alert_hash`] of its `(routing_key, key space,
//! dedup_key)` and at its `(slot, index)`; resolved alerts never are (nor an overflow incident's, which is in no slot).
//! An incident's `open_alerts`, `acked_alerts`, `suppressed_open` and `severity_counts` always
//! agree with its alerts, and every event counted on an alert is counted on its incident.

use hashbrown::HashTable;
use xxhash_rust::xxh3::Xxh3Default;

use crate::event::{Event, Link};
use crate::integration::KeySpace;
use crate::publish::encode::{OutboundMessage, Status};
use crate::time::{MaybeMillis, UnixMillis};

use super::super::incident::{Alert, AlertView, Incident};
use super::super::timers::Timer;
use super::snapshot::SnapshotError;
use super::Shard;

/// Starts a hash with a routing key, length-prefixed so that it never runs into what follows.
#[inline]
pub(super) fn hash_routing_key(h: &mut Xxh3Default, routing_key: &str) {
    h.update(&(routing_key.len() as u64).to_le_bytes());
    h.update(routing_key.as_bytes());
}

/// The dedup identity of an alert.
#[inline]
pub(super) fn alert_hash(routing_key: &str, space: KeySpace, dedup_key: &str) -> u64 {
    let mut h = Xxh3Default::new();
    hash_routing_key(&mut h, routing_key);
    h.update(&[space.0]);
    h.update(dedup_key.as_bytes());
    h.digest()
}

/// Where incidents live: `incidents[slot]`, emptied slots reused first.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Slots {
    incidents: Vec<Option<Incident>>,
    free: Vec<u32>,
}

impl Slots {
    /// The incidents held.
    pub(super) fn live(&self) -> usize {
        self.incidents.len() - self.free.len()
    }

    /// One past the highest slot ever used.
    pub(super) fn end(&self) -> u32 {
        self.incidents.len() as u32
    }

    #[inline]
    pub(super) fn try_get(&self, slot: u32) -> Option<&Incident> {
        self.incidents.get(slot as usize).and_then(Option::as_ref)
    }

    #[inline]
    pub(super) fn try_get_mut(&mut self, slot: u32) -> Option<&mut Incident> {
        self.incidents
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
    }

    #[inline]
    pub(super) fn get(&self, slot: u32) -> &Incident {
        self.try_get(slot).expect("slot holds an incident")
    }

    #[inline]
    pub(super) fn get_mut(&mut self, slot: u32) -> &mut Incident {
        self.try_get_mut(slot).expect("slot holds an incident")
    }

    /// The alert at `(slot, index)` with its routing key, for matchers.
    pub(super) fn view(&self, slot: u32, index: u32) -> AlertView<'_> {
        let inc = self.get(slot);
        AlertView {
            routing_key: &inc.routing_key,
            alert: &inc.alerts[index as usize],
        }
    }

    /// The alert at `(slot, index)` if it is still the open alert `hash`: a place kept in a
    /// timer or an index may be stale.
    #[inline]
    pub(super) fn open_alert(&self, slot: u32, index: u32, hash: u64) -> Option<&Alert> {
        self.open_alert_at(slot, index).filter(|a| a.hash == hash)
    }

    /// The open alert at `slot`/`index`, whichever it is.
    pub(super) fn open_alert_at(&self, slot: u32, index: u32) -> Option<&Alert> {
        self.try_get(slot)
            .and_then(|inc| inc.alerts.get(index as usize))
            .filter(|a| a.is_open())
    }

    /// The end of the open alert at `slot`/`index` that an end timer of `check` (its hash's
    /// bits, [`Timer::alert_ends`]) may be for; none when it has no end.
    pub(super) fn end_of(&self, slot: u32, index: u32, check: u32) -> Option<UnixMillis> {
        self.open_alert_at(slot, index)
            .filter(|a| Timer::ends_alert(check, a.hash))
            .and_then(|a| a.ends_at.get())
    }

    pub(super) fn insert(&mut self, incident: Incident) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.incidents[slot as usize] = Some(incident);
                slot
            }
            None => {
                self.incidents.push(Some(incident));
                (self.incidents.len() - 1) as u32
            }
        }
    }

    /// Every incident with its slot.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Incident)> {
        self.incidents
            .iter()
            .enumerate()
            .filter_map(|(slot, inc)| inc.as_ref().map(|inc| (slot as u32, inc)))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Incident> {
        self.incidents.iter_mut().flatten()
    }

    /// Whether slots read from a snapshot keep this type's invariants: `free` lists exactly
    /// the empty slots, each once, and every incident's counters agree with its alerts.
    pub(super) fn check(&self) -> Result<(), SnapshotError> {
        let mut free = vec![false; self.incidents.len()];
        for &slot in &self.free {
            match free.get_mut(slot as usize) {
                Some(seen @ false) if self.incidents[slot as usize].is_none() => *seen = true,
                _ => return Err(SnapshotError::Inconsistent("free slots")),
            }
        }
        if self.live() != self.incidents.iter().flatten().count() {
            return Err(SnapshotError::Inconsistent("free slots"));
        }
        for (_, inc) in self.iter() {
            let open = inc.alerts.iter().filter(|a| a.is_open()).count();
            if open != inc.open_alerts as usize || inc.overflow.is_some() {
                return Err(SnapshotError::Inconsistent("open alerts"));
            }
        }
        Ok(())
    }

    pub(super) fn take(&mut self, slot: u32) -> Incident {
        let inc = self.incidents[slot as usize]
            .take()
            .expect("slot holds an incident");
        self.free.push(slot);
        inc
    }
}

/// Where an open alert lives: `incidents[slot].alerts[index]`, with 32 bits of its hash: 12
/// bytes an entry where the whole hash made 16.
pub(super) struct AlertRef {
    check: u32,
    slot: u32,
    index: u32,
}

/// The 32 bits of an alert's hash its index entry keeps.
#[inline]
fn check(hash: u64) -> u32 {
    hash as u32
}

/// The table's hash of an entry, from its 32 bits alone (so that it can be rehashed as the
/// table grows without reading the alerts), spread over 64 (hashbrown takes the bucket from the
/// low bits and the tag from the top seven).
#[inline]
fn spread(check: u32) -> u64 {
    u64::from(check).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The open alerts of tracked incidents, by [`alert_hash`].
pub(super) struct AlertIndex {
    table: HashTable<AlertRef>,
}

impl AlertIndex {
    pub(super) fn new() -> Self {
        AlertIndex {
            table: HashTable::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// The place of the open alert `event` is about, if any.
    #[inline]
    pub(super) fn find(&self, slots: &Slots, hash: u64, event: &Event) -> Option<(u32, u32)> {
        let check = check(hash);
        self.table
            .find(spread(check), |r| {
                // The hash's 32 bits first: the table's 7-bit tags let other alerts through,
                // and reading one costs cache misses (its incident, its text).
                if r.check != check {
                    return false;
                }
                let inc = slots.get(r.slot);
                let alert = &inc.alerts[r.index as usize];
                alert.hash == hash
                    && *inc.routing_key == *event.routing_key
                    && alert.key_space == event.key_space
                    && alert.dedup_key() == event.dedup_key
            })
            .map(|r| (r.slot, r.index))
    }

    /// The index of every open alert in `slots`.
    pub(super) fn rebuild(slots: &Slots) -> Self {
        let mut index = AlertIndex::new();
        for (slot, inc) in slots.iter() {
            for (i, alert) in inc.alerts.iter().enumerate() {
                if alert.is_open() {
                    index.insert(alert.hash, slot, i as u32);
                }
            }
        }
        index
    }

    fn insert(&mut self, hash: u64, slot: u32, index: u32) {
        let check = check(hash);
        self.table
            .insert_unique(spread(check), AlertRef { check, slot, index }, |r| {
                spread(r.check)
            });
    }

    fn remove(&mut self, hash: u64, slot: u32, index: u32) {
        if let Ok(entry) = self
            .table
            .find_entry(spread(check(hash)), |r| r.slot == slot && r.index == index)
        {
            entry.remove();
        }
    }
}

/// What resolves an alert: a resolve event (counted, like every event), or its `ends_at`
/// passing (no event arrived: nothing is counted and `last_seen` stays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ResolvedBy {
    Event,
    Time,
    /// An operator's command (no event of the alert's own).
    Command,
}

/// One more event for the open alert at `index`, on the alert and on its incident.
#[inline]
fn count_event(inc: &mut Incident, index: u32, now: UnixMillis) {
    inc.event_count += 1;
    let alert = &mut inc.alerts[index as usize];
    alert.event_count = alert.event_count.saturating_add(1);
    alert.last_seen = now;
}

impl Shard {
    /// Adds a newly triggered alert (its suppression already decided) to the incident in
    /// `slot` and indexes it; returns its index.
    pub(super) fn add_alert(
        &mut self,
        slot: u32,
        alert: Alert,
        links: Vec<Link>,
        now: UnixMillis,
    ) -> u32 {
        let inc = self.slots.get_mut(slot);
        let index = inc.alerts.len() as u32;
        inc.open_alerts += 1;
        inc.event_count += 1;
        inc.severity_counts[alert.severity as usize] += 1;
        inc.integrations.insert(alert.integration);
        inc.updated_at = now;
        inc.add_links(links);
        inc.dirty = true;
        if alert.silenced {
            inc.suppressed_open += 1;
            self.stats.silence += 1;
        }
        let hash = alert.hash;
        inc.alerts.push(alert);
        self.alerts.insert(hash, slot, index);
        self.stats.alerts_opened += 1;
        self.metrics.alerts_open.increment(1.0);
        index
    }

    /// A new alert counts toward `min_alerts` unless it is suppressed; a suppressed one counts
    /// when its suppression lifts (see [`Shard::set_suppression`]).
    pub(super) fn gather(&mut self, slot: u32, index: u32) {
        let inc = self.slots.get_mut(slot);
        if !inc.alerts[index as usize].suppressed() {
            inc.gathered += 1;
        }
    }

    /// A trigger for an alert already open: takes its summary, details, end and severity.
    #[inline]
    pub(super) fn retrigger(
        &mut self,
        slot: u32,
        index: u32,
        event: Event,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        self.stats.dedup += 1;
        self.metrics
            .deduplicated
            .get(event.integration)
            .increment(1);
        let inc = self.slots.get_mut(slot);
        count_event(inc, index, now);
        let alert = &mut inc.alerts[index as usize];
        alert.said.update(event.summary, event.custom_details);
        // Its timer stays where it is while the end moves later (the usual refresh: Prometheus
        // re-sends every minute with `endsAt` pushed on): when it fires, it moves to the end
        // then ([`Shard::advance`]), so a refresh schedules nothing. An earlier end, or an
        // end where there was none, needs its own entry.
        let reschedule = match (alert.ends_at.get(), event.ends_at) {
            (Some(old), Some(new)) => new < old,
            (None, new) => new.is_some(),
            (Some(_), None) => false,
        };
        alert.ends_at = MaybeMillis::new(event.ends_at);
        let hash = alert.hash;
        let old = std::mem::replace(&mut alert.severity, event.severity);
        let severity_changed = old != event.severity;
        if severity_changed {
            inc.severity_counts[old as usize] -= 1;
            inc.severity_counts[event.severity as usize] += 1;
        }
        if let Some(at) = event.ends_at.filter(|_| reschedule) {
            self.timers
                .schedule(at, Timer::alert_ends(slot, index, hash));
        }
        if severity_changed {
            self.hold_for(slot, index, now);
            self.changed(slot, now, out);
        }
    }

    pub(super) fn acknowledge(
        &mut self,
        slot: u32,
        index: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let inc = self.slots.get_mut(slot);
        count_event(inc, index, now);
        let alert = &mut inc.alerts[index as usize];
        if alert.status == Status::Triggered {
            alert.status = Status::Acknowledged;
            inc.acked_alerts += 1;
            self.changed(slot, now, out);
        }
    }

    /// Resolves an open alert and takes it out of the index; returns its hash.
    pub(super) fn mark_resolved(
        &mut self,
        slot: u32,
        index: u32,
        by: ResolvedBy,
        now: UnixMillis,
    ) -> u64 {
        let hash = self.slots.get(slot).alerts[index as usize].hash;
        self.alerts.remove(hash, slot, index);
        self.metrics.alerts_open.decrement(1.0);
        let inc = self.slots.get_mut(slot);
        let severity_before = inc.severity();
        if by == ResolvedBy::Event {
            count_event(inc, index, now);
        }
        let alert = &mut inc.alerts[index as usize];
        if alert.status == Status::Acknowledged {
            inc.acked_alerts -= 1;
        }
        alert.status = Status::Resolved;
        alert.ends_at = MaybeMillis::default();
        if alert.suppressed() {
            inc.suppressed_open -= 1;
        }
        let severity = alert.severity;
        inc.severity_counts[severity as usize] -= 1;
        inc.open_alerts -= 1;
        if inc.open_alerts == 0 {
            // Its severity as its last alerts left it, not its peak: `resolved` is no rise.
            inc.last_severity = severity_before;
        }
        inc.updated_at = now;
        inc.dirty = true;
        hash
    }

    /// Sets an open alert's suppression flags, keeping the incident's counts right.
    pub(super) fn set_suppression(
        &mut self,
        slot: u32,
        index: u32,
        silenced: bool,
        inhibited: bool,
    ) {
        let inc = self.slots.get_mut(slot);
        let alert = &mut inc.alerts[index as usize];
        let was = alert.suppressed();
        alert.silenced = silenced;
        alert.inhibited = inhibited;
        match (was, alert.suppressed()) {
            (false, true) => inc.suppressed_open += 1,
            (true, false) => {
                inc.suppressed_open -= 1;
                inc.gathered += 1;
            }
            _ => {}
        }
    }
}
