//! Moving to more (or fewer) partitions: every shard's state divided by routing key among new
//! shards, each holding what the shard that owns those keys would hold had it seen the same
//! events, so each incident goes on exactly as it would have (the same messages, byte for
//! byte, the same ids and seqs). `sluice migrate` uses it on Kafka mode's partition snapshots.
//!
//! What moves with a routing key: its incidents (with their alerts and timers, in deadline
//! order), its overflow incident, its changes and the routes its senders' alerts took. What every new shard gets a
//! copy of, since it is keyed by hashes that name the routing key inside (so only its owner
//! ever looks an entry up): flap histories, the learned pause's history, and the incident ids
//! of the current millisecond. What is dropped: the places of routed events taken (they name
//! the old partitions; a new events topic has no routed records), silence timers (a runner
//! sets the silences on every shard) and heartbeat checks (each new owner sets its own, with
//! its last beats, which move with their routing key). The counters go to the first new shard. Everything
//! derived (the dedup, group and link indexes, the per-routing-key usage, inhibition's
//! counts) is rebuilt.

use std::collections::HashMap;

use super::super::timers::Timer;
use super::super::PartitionFn;
use super::caps::Usage;
use super::store::AlertIndex;
use super::Shard;

impl Shard {
    /// Moves the state of every shard of `from` into `into` (new, empty shards, one per new
    /// partition), each routing key to `into[partition(key, into.len())]`.
    pub fn redistribute(from: Vec<Shard>, into: &mut [Shard], partition: PartitionFn) {
        assert!(!into.is_empty(), "at least one shard to move into");
        assert!(
            into.iter().all(|s| s.slots.live() == 0),
            "shards to move into start empty"
        );
        let n = into.len();
        for mut old in from {
            old.move_into(into, |rk| partition(rk, n));
        }
        for shard in into.iter_mut() {
            shard.settle();
        }
    }

    fn move_into(&mut self, into: &mut [Shard], target: impl Fn(&str) -> usize) {
        let mut moved: HashMap<u32, (usize, u32)> = HashMap::new();
        let slots: Vec<u32> = self.slots.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let incident = self.slots.take(slot);
            let t = target(&incident.routing_key);
            let new_slot = into[t].slots.insert(incident);
            moved.insert(slot, (t, new_slot));
        }
        // What the gauges counted here is counted where it went (see `settle`).
        self.metrics.incidents_open.decrement(moved.len() as f64);
        self.metrics.alerts_open.decrement(self.alerts.len() as f64);
        self.alerts = AlertIndex::new();
        for shard in into.iter_mut() {
            // Incident tokens stay unique in their new shard, and an end in a second this one
            // has handed out goes to the heap there too.
            shard.timers.continue_from(&self.timers);
        }
        for (at, timer) in self.timers.drain_in_order() {
            let (t, timer) = match timer {
                Timer::Incident { slot, token } => match moved.get(&slot) {
                    Some(&(t, slot)) => (t, Timer::Incident { slot, token }),
                    None => continue,
                },
                Timer::AlertEnds { slot, index, hash } => match moved.get(&slot) {
                    Some(&(t, slot)) => (t, Timer::AlertEnds { slot, index, hash }),
                    None => continue,
                },
                Timer::Silences | Timer::Heartbeat { .. } | Timer::EndsDue { .. } => continue,
            };
            into[t].timers.schedule(at, timer);
        }
        for (hash, slot) in self.groups.take_links() {
            if let Some(&(t, slot)) = moved.get(&slot) {
                into[t].groups.link(hash, slot);
            }
        }
        for shard in into.iter_mut() {
            shard.flaps.absorb(&self.flaps);
            shard.learned.absorb(&self.learned);
            shard.groups.absorb_ids(&self.groups);
        }
        for (rk, route) in self.door.take_routes() {
            into[target(&rk)].door.add_route(route);
        }
        for (rk, changes) in self.changes.take_all() {
            into[target(&rk)].changes.put(rk, changes);
        }
        for (rk, spill) in self.overflow.take_all() {
            into[target(&rk)].overflow.put(rk, spill);
        }
        for (key, beat) in self.heartbeats.take_all() {
            into[target(&key.0)].heartbeats.put(key, beat);
        }
        into[0].stats.add(&std::mem::take(&mut self.stats));
    }

    /// Rebuilds what is derived from the incidents moved in.
    fn settle(&mut self) {
        self.alerts = AlertIndex::rebuild(&self.slots);
        self.groups.rebuild_from(&self.slots);
        self.usage = Usage::rebuild(&self.slots);
        self.inhibition.reindex(&self.slots);
        self.metrics.alerts_open.increment(self.alerts.len() as f64);
        self.metrics
            .incidents_open
            .increment(self.slots.live() as f64);
    }
}

#[cfg(test)]
mod tests;
