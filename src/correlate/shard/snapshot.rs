//! Snapshots: a shard's whole state as one versioned JSON document, and the shard rebuilt from
//! one. Kafka mode writes them to the state topic so that a partition's next owner restores it
//! from its last snapshot plus the events after it, never from the whole history.
//!
//! What is written is what cannot be derived: the incidents in their slots (with their
//! alerts), the free slots, the timers with their sequence, flap history, the ids opened in the
//! current millisecond, the inhibition counts and targets, the counters, and what the door
//! remembers (the routes the event rules made, the places of routed events taken). The dedup index,
//! the group index and the per-routing-key usage are rebuilt from the incidents, so a restored
//! shard answers every later input exactly as the shard that wrote it would have (the
//! `restored_shard_continues_exactly` test runs random inputs through both).
//!
//! Compatibility: a reader takes every version up to [`VERSION`] and refuses later ones; a
//! field added later carries `#[serde(default)]` so that older snapshots still read.
//! Integrations and key spaces are written by name, rules by name: when the rules' fingerprint
//! differs from the snapshot's, each incident keeps its rule by name (the last rule, the
//! fallback, when the name is gone), its group is re-hashed, and inhibition is re-indexed from
//! the open alerts (their `inhibited` flags are re-decided at the next change under their key).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;

use super::super::rules::{self, Inhibit, Rule};
use super::super::timers::Timers;
use super::caps::Usage;
use super::changes::Changes;
use super::door::{Door, Remembered};
use super::flap::FlapHistory;
use super::grouping::{link_hash, values_hash, Groups};
use super::heartbeats::{Beats, Heartbeats};
use super::inhibit::Inhibition;
use super::overflow::Overflow;
use super::pause::Learned;
use super::silences::Silences;
use super::stats::{ShardMetrics, Stats};
use super::store::{AlertIndex, Slots};
use super::{Caps, Shard};

/// The snapshot format's version.
/// 2: the door's routes and the places of the routed events taken (`door`).
/// 3: the learned pause's history (`learned`), recent changes (`changes`); incidents' links
/// and pause ends, alerts' `grouped_by`.
/// 4: the overflow incidents past the caps (`overflow`); alerts' `joined_as`.
/// 5: the heartbeats' last beats (`heartbeats`).
/// 6: alerts' ends listed by the second they fall in (`timers.ends`, `timers.taken`, the
/// heap's `EndsDue` entries); a build that reads up to 5 refuses these instead of losing them.
pub const VERSION: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("snapshot version {0} is newer than this sluice reads (up to {VERSION})")]
    UnsupportedVersion(u32),
    #[error("snapshot is not consistent: {0}")]
    Inconsistent(&'static str),
}

#[derive(Serialize)]
struct Written<'a> {
    v: u32,
    /// The time of the partition when the snapshot was made.
    time: UnixMillis,
    rules_fingerprint: u64,
    rules: Vec<&'a str>,
    slots: &'a Slots,
    timers: &'a Timers,
    flaps: &'a FlapHistory,
    groups: &'a Groups,
    inhibition: &'a Inhibition,
    stats: &'a Stats,
    door: &'a Remembered,
    learned: &'a Learned,
    changes: &'a Changes,
    overflow: &'a Overflow,
    heartbeats: &'a Beats,
}

#[derive(Deserialize)]
struct Read {
    v: u32,
    time: UnixMillis,
    rules_fingerprint: u64,
    rules: Vec<String>,
    slots: Slots,
    timers: Timers,
    flaps: FlapHistory,
    groups: Groups,
    inhibition: Inhibition,
    stats: Stats,
    /// Absent before version 2: no routes.
    #[serde(default)]
    door: Remembered,
    /// Absent before version 3: nothing learned.
    #[serde(default)]
    learned: Learned,
    /// Absent before version 3: no changes remembered.
    #[serde(default)]
    changes: Changes,
    /// Absent before version 4: no overflow incident.
    #[serde(default)]
    overflow: Overflow,
    /// Absent before version 5: no beat remembered.
    #[serde(default)]
    heartbeats: Beats,
}

/// Only the version, read first so that a later format is refused by version, not by shape.
#[derive(Deserialize)]
struct Version {
    v: u32,
}

impl Shard {
    /// The shard's whole state at partition time `time`, appended to `out`.
    pub fn snapshot(&self, time: UnixMillis, out: &mut Vec<u8>) {
        let written = Written {
            v: VERSION,
            time,
            rules_fingerprint: rules::fingerprint(&self.rules, self.inhibition.rules()),
            rules: self.rules.iter().map(|r| r.name.as_str()).collect(),
            slots: &self.slots,
            timers: &self.timers,
            flaps: &self.flaps,
            groups: &self.groups,
            inhibition: &self.inhibition,
            stats: &self.stats,
            door: self.door.remembered(),
            learned: &self.learned,
            changes: &self.changes,
            overflow: &self.overflow,
            heartbeats: self.heartbeats.remembered(),
        };
        serde_json::to_writer(out, &written).expect("a shard always serializes");
    }

    /// The shard a snapshot holds, under `rules` (see the module's notes when they differ from
    /// the snapshot's), with the partition time it was made at.
    pub fn restore(
        rules: Arc<[Rule]>,
        inhibit: Arc<[Inhibit]>,
        caps: Caps,
        bytes: &[u8],
    ) -> Result<(Shard, UnixMillis), SnapshotError> {
        let Version { v } = serde_json::from_slice(bytes)?;
        if v > VERSION {
            return Err(SnapshotError::UnsupportedVersion(v));
        }
        let read: Read = serde_json::from_slice(bytes)?;
        debug_assert!(read.v <= VERSION);
        let mut slots = read.slots;
        slots.check()?;
        let mut overflow = read.overflow;
        let same_rules = read.rules_fingerprint == rules::fingerprint(&rules, &inhibit);
        if !same_rules {
            let last = rules.len() - 1;
            let by_name: HashMap<&str, usize> = rules
                .iter()
                .enumerate()
                .map(|(i, r)| (r.name.as_str(), i))
                .collect();
            let map = |old: u16| {
                read.rules
                    .get(old as usize)
                    .and_then(|name| by_name.get(name.as_str()).copied())
                    .unwrap_or(last) as u16
            };
            slots.remap_rules(&rules, map);
            overflow.remap_rules(map);
        }
        let mut inhibition = read.inhibition;
        inhibition.set_rules(inhibit);
        if !same_rules {
            inhibition.reindex(&slots);
        }
        let alerts = AlertIndex::rebuild(&slots);
        let groups = read.groups.rebuilt(&slots, !same_rules);
        let usage = Usage::rebuild(&slots);
        let metrics = ShardMetrics::new();
        metrics.alerts_open.increment(alerts.len() as f64);
        metrics.incidents_open.increment(slots.live() as f64);
        let mut door = Door::new(
            Arc::from(Vec::new()),
            super::default_route_ttl(),
            caps.max_alerts,
        );
        door.restore(read.door);
        let shard = Shard {
            door,
            rules,
            caps,
            slots,
            alerts,
            groups,
            usage,
            silences: Silences::new(),
            heartbeats: {
                let mut heartbeats = Heartbeats::new();
                heartbeats.restore(read.heartbeats);
                heartbeats
            },
            inhibition,
            flaps: read.flaps,
            learned: read.learned,
            learned_pause: std::time::Duration::ZERO,
            changes: read.changes,
            change_window: std::time::Duration::ZERO,
            timers: read.timers,
            overflow,
            stats: read.stats,
            metrics,
        };
        Ok((shard, read.time))
    }
}

/// A map with keys JSON cannot use as object keys (tuples), as a list of pairs
/// (`#[serde(with = "snapshot::pairs")]`).
pub(super) mod pairs {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &HashMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

impl Slots {
    /// Gives each incident the rule `map` says (by name), and re-hashes its group (and, under
    /// an auto rule, its links: those of its first alert when the rule links the same kinds,
    /// else none) under it.
    fn remap_rules(&mut self, rules: &[Rule], map: impl Fn(u16) -> u16) {
        for inc in self.iter_mut() {
            inc.rule = map(inc.rule);
            let rule = &rules[inc.rule as usize];
            let rk = &inc.routing_key;
            if rule.auto().is_empty() {
                let values = inc.group_values.iter().map(|v| &**v);
                inc.group_hash = values_hash(rk, inc.rule, values);
                inc.related.clear();
                continue;
            }
            let first = inc.alerts.first().map_or("", |a| a.dedup_key());
            inc.group_hash = values_hash(rk, inc.rule, std::iter::once(first));
            inc.related = if inc.group_values.len() == rule.auto().len() {
                rule.auto()
                    .iter()
                    .zip(inc.group_values.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(&kind, v)| link_hash(rk, inc.rule, kind, v))
                    .collect()
            } else {
                Vec::new()
            };
        }
    }
}
