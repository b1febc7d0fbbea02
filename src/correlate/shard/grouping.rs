//! Grouping: which incident a new alert joins, opening incidents, their windows and ids.
//!
//! Invariants: the group index holds exactly the incidents whose `in_group_index` is set, at
//! most one per group (routing key, rule, values of the rule's `group_by` fields): the group's
//! latest incident, until it closes or a newer one of the group replaces it. A new alert joins
//! that incident while its window is open or it is flapping. Incident ids are a function of
//! the input alone, and distinct: `ids_this_ms` counts the incidents opened in the current
//! millisecond by (group, first dedup key), and every one after the first gets its number in
//! its id.
//!
//! A rule without `group_by` groups automatically (`auto_group`): its incident's group is its
//! first alert's dedup key, its `group_values` are that alert's value of each link kind ("" for
//! none), and the link index maps (routing key, rule, kind, value) to the latest incident
//! opened with that value, while it is in the group index; `related` lists the link hashes an
//! incident put there. Links come from the first alert only, so joins never chain: every alert
//! of an auto incident shares a value with its first. A link holds while the window is open
//! (`class`: storm folding), while the incident lasts (`service`, `pod`: a slow burn on one
//! service), or within `window_duration` of the opening (`host`, `rack`, `cluster`: a cascade
//! arrives together; an unrelated problem on the same host later opens its own incident). The
//! first link in `auto_group` order that holds decides.
//!
//! One exception to "from the first alert only": within the cascade (`window_duration` from
//! the opening, when host links hold), every alert that joins by topology (not by class: a
//! storm member elsewhere is not part of this cascade) adds its host's link, up to
//! [`MAX_LINKS`] an incident: a rack's hosts all lead to the rack's incident, whichever
//! tool names them and however. Past the cascade, host links lapse, so this chains nothing
//! later.
//!
//! Names are names whatever their kind: a host, pod or service value also finds the links of
//! the other two kinds (after its own), since tools disagree on what they call a thing (an APM
//! tool's `source` is the pod or service Prometheus labels `pod` or `service`). A bare
//! (PagerDuty-style) event's `custom_details` may name its host, pod, rack, service or cluster
//! (`LinkKind::named_in`): those are looked up and linked too, after its own fields. An
//! incident held for good (info chatter, a "never" pause) draws in no alert that may page: a
//! problem does not join the chatter that happened to name its service first.

use std::collections::HashMap;

use hashbrown::HashTable;
use xxhash_rust::xxh3::Xxh3Default;

use crate::config::{Pause, RuleConfig, WindowKind};
use crate::event::deterministic_id;
use crate::event::{Event, LinkKind};
use crate::publish::encode::Status;
use crate::time::UnixMillis;

use super::super::incident::Incident;
use super::super::rules::Rule;
use super::store::{hash_routing_key, Slots};
use super::Shard;

/// The hash of a routing key, a rule and a list of values (group values, or the `equal`
/// values of an inhibition rule).
pub(super) fn values_hash<'a>(
    routing_key: &str,
    rule: u16,
    values: impl Iterator<Item = &'a str>,
) -> u64 {
    let mut h = Xxh3Default::new();
    hash_routing_key(&mut h, routing_key);
    h.update(&rule.to_le_bytes());
    for v in values {
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.digest()
}

/// The values of the rule's `group_by` fields for an event.
fn group_values<'a>(rule: &'a Rule, event: &'a Event) -> impl Iterator<Item = &'a str> + 'a {
    rule.group_by().iter().map(|f| event.field(f))
}

/// The group values of an event under a rule: its `group_by` values, or its link values for
/// an auto rule.
fn values_of<'a>(rule: &'a Rule, event: &'a Event) -> Vec<&'a str> {
    if rule.auto().is_empty() {
        group_values(rule, event).collect()
    } else {
        rule.auto().iter().map(|&k| k.value(event)).collect()
    }
}

/// Links an incident holds at most (its first alert's, and the hosts of its cascade).
pub const MAX_LINKS: usize = 64;

/// What a bare event's details link it to ([`LinkKind::named_in`]): for the kinds of `auto`,
/// values its own fields do not already give. For grouping only, not `entity.<kind>` fields.
pub(super) fn detail_links(auto: &[LinkKind], event: &Event) -> Vec<(LinkKind, String)> {
    match &event.custom_details {
        Some(details) if event.labels.is_empty() => LinkKind::named_in(details)
            .into_iter()
            .filter(|(kind, value)| auto.contains(kind) && kind.value(event) != value.as_str())
            .collect(),
        _ => Vec::new(),
    }
}

/// The kinds whose values name one thing whatever the kind: a value of one finds the links of
/// the others too (after its own), in `auto_group` order.
const NAMES: [LinkKind; 3] = [LinkKind::Host, LinkKind::Pod, LinkKind::Service];

/// The link index's key of a kind's value.
pub(super) fn link_hash(routing_key: &str, rule: u16, kind: LinkKind, value: &str) -> u64 {
    values_hash(routing_key, rule, [kind.as_str(), value].into_iter())
}

/// The link index as `(hash, slot)` pairs.
mod link_pairs {
    use super::GroupRef;
    use hashbrown::HashTable;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &HashTable<GroupRef>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(t.iter().map(|g| (g.hash, g.slot)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashTable<GroupRef>, D::Error> {
        let mut t = HashTable::new();
        for (hash, slot) in Vec::<(u64, u32)>::deserialize(d)? {
            t.insert_unique(hash, GroupRef { hash, slot }, |g| g.hash);
        }
        Ok(t)
    }
}

/// Where a new alert goes: its group's hash, the incident it joins (if any: one it may join)
/// and, for an auto rule, the link it joins by (an index into the rule's `auto_group`).
pub(super) struct Found {
    pub ghash: u64,
    pub current: Option<u32>,
    pub via: Option<u8>,
    /// When the value that joined is not the event's own of the link's kind: the index in
    /// `auto_group` of the kind it is the event's value of, plus [`JOINED_IN_DETAILS`] when
    /// its details named it (see `Alert::joined_as`).
    pub joined_as: Option<u8>,
    /// What the event's details link it to besides its fields ([`detail_links`]).
    pub details: Vec<(LinkKind, String)>,
}

/// In `joined_as`: the value came from the event's details.
pub const JOINED_IN_DETAILS: u8 = 0x80;

/// The current incident of a group.
struct GroupRef {
    hash: u64,
    slot: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Groups {
    /// Rebuilt from the incidents when restored.
    #[serde(skip)]
    table: HashTable<GroupRef>,
    /// Auto rules' link index, as `(hash, slot)` pairs in a snapshot: which of several
    /// incidents holds a shared link is history (the latest to open, or the first to add a
    /// cascade host), not something the incidents say.
    #[serde(with = "link_pairs", default)]
    links: HashTable<GroupRef>,
    /// Base ids of incidents opened in the current millisecond, to keep ids unique when the
    /// same group opens twice within one millisecond (trigger, resolve, trigger).
    ids_this_ms: (UnixMillis, HashMap<u128, u32>),
}

impl Groups {
    pub(super) fn new() -> Self {
        Groups {
            table: HashTable::new(),
            links: HashTable::new(),
            ids_this_ms: (UnixMillis(0), HashMap::new()),
        }
    }

    /// The same, with the group index rebuilt from the incidents that are in it; and the link
    /// index too when `relink` (its hashes changed: rules renumbered), else kept as it was.
    pub(super) fn rebuilt(mut self, slots: &Slots, relink: bool) -> Self {
        self.table.clear();
        let mut indexed: Vec<(u32, &Incident)> =
            slots.iter().filter(|(_, inc)| inc.in_group_index).collect();
        for &(slot, inc) in &indexed {
            let hash = inc.group_hash;
            self.table
                .insert_unique(hash, GroupRef { hash, slot }, |g| g.hash);
        }
        if relink {
            self.links.clear();
            // Best effort: the latest incident holds a shared link.
            indexed.sort_by_key(|(slot, inc)| (inc.opened_at, *slot));
            for (slot, inc) in indexed {
                for &hash in inc.related.iter() {
                    self.link(hash, slot);
                }
            }
        }
        self
    }

    /// Every link and the slot it leads to, leaving none (see `split`).
    pub(super) fn take_links(&mut self) -> Vec<(u64, u32)> {
        self.links.drain().map(|g| (g.hash, g.slot)).collect()
    }

    /// `inc_` + xxh3-128 of routing key, rule, group values, opening time and first dedup
    /// key, and of a count when the same group and first dedup key opened before in this
    /// millisecond.
    fn incident_id(
        &mut self,
        ghash: u64,
        rule: &Rule,
        group_values: &[Box<str>],
        first: &Event,
        now: UnixMillis,
    ) -> String {
        let base = {
            let mut h = Xxh3Default::new();
            h.update(&ghash.to_le_bytes());
            h.update(first.dedup_key.as_bytes());
            h.digest128()
        };
        if self.ids_this_ms.0 != now {
            self.ids_this_ms = (now, HashMap::new());
        }
        let nth = self.ids_this_ms.1.entry(base).or_insert(0);
        let mut parts: Vec<&[u8]> = vec![first.routing_key.as_bytes(), rule.name.as_bytes()];
        parts.extend(group_values.iter().map(|v| v.as_bytes()));
        let opened = now.0.to_le_bytes();
        let nth_bytes = nth.to_le_bytes();
        parts.push(&opened);
        parts.push(first.dedup_key.as_bytes());
        if *nth > 0 {
            parts.push(&nth_bytes);
        }
        let id = deterministic_id("inc_", &parts);
        *nth += 1;
        id
    }
}

impl Groups {
    /// Takes `other`'s ids of the current millisecond (the later millisecond's, when they
    /// differ).
    pub(super) fn absorb_ids(&mut self, other: &Groups) {
        let (at, ids) = &other.ids_this_ms;
        if *at > self.ids_this_ms.0 {
            self.ids_this_ms = (*at, ids.clone());
        } else if *at == self.ids_this_ms.0 {
            for (base, n) in ids {
                let mine = self.ids_this_ms.1.entry(*base).or_insert(0);
                *mine = (*mine).max(*n);
            }
        }
    }

    /// The group index rebuilt from `slots` (see [`Groups::rebuilt`]); links kept.
    pub(super) fn rebuild_from(&mut self, slots: &Slots) {
        let groups = std::mem::replace(self, Groups::new());
        *self = groups.rebuilt(slots, false);
    }

    /// Points the link `hash` at `slot`, in place of any earlier incident.
    pub(super) fn link(&mut self, hash: u64, slot: u32) {
        match self.links.find_mut(hash, |g| g.hash == hash) {
            Some(g) => g.slot = slot,
            None => {
                self.links
                    .insert_unique(hash, GroupRef { hash, slot }, |g| g.hash);
            }
        }
    }
}

impl Shard {
    /// Where a new alert under `rule` goes: for a `group_by` rule, its group and the group's
    /// current incident if it is joinable; for an auto rule, the first incident (in the order
    /// of `auto_group`) whose first alert shares one of its link values and that it may join.
    pub(super) fn find_group(
        &self,
        rule: &Rule,
        rule_id: u16,
        event: &Event,
        now: UnixMillis,
    ) -> Found {
        if rule.auto().is_empty() {
            let (ghash, current) = self.find_exact(rule, rule_id, event);
            let current = current.filter(|&slot| self.joinable(slot, now));
            return Found {
                ghash,
                current,
                via: None,
                joined_as: None,
                details: Vec::new(),
            };
        }
        let ghash = values_hash(
            &event.routing_key,
            rule_id,
            std::iter::once(event.dedup_key.as_str()),
        );
        let auto = rule.auto();
        // A bare event's details may name what it is about besides its fields.
        let details = detail_links(auto, event);
        let values = auto
            .iter()
            .map(|&k| (k, k.value(event), false))
            .chain(details.iter().map(|(k, v)| (*k, v.as_str(), true)));
        for (kind, value, in_details) in values {
            if value.is_empty() {
                continue;
            }
            // An entity's name may be another kind's name elsewhere: an APM tool's source is
            // the pod or service that Prometheus labels `pod` or `service`.
            let named = std::iter::once(kind).chain(
                NAMES
                    .iter()
                    .copied()
                    .filter(move |&k| k != kind && NAMES.contains(&kind)),
            );
            for link in named {
                let Some(i) = auto.iter().position(|&k| k == link) else {
                    continue;
                };
                if let Some(slot) = self.linked(rule, rule_id, event, link, value, now) {
                    let own = auto.iter().position(|&k| k == kind).unwrap_or(i) as u8;
                    return Found {
                        ghash,
                        current: Some(slot),
                        via: Some(i as u8),
                        joined_as: (own != i as u8 || in_details)
                            .then_some(own | if in_details { JOINED_IN_DETAILS } else { 0 }),
                        details,
                    };
                }
            }
        }
        Found {
            ghash,
            current: None,
            via: None,
            joined_as: None,
            details,
        }
    }

    /// The incident that the link (`kind`, `value`) leads to, if `event` may join it now.
    fn linked(
        &self,
        rule: &Rule,
        rule_id: u16,
        event: &Event,
        kind: LinkKind,
        value: &str,
        now: UnixMillis,
    ) -> Option<u32> {
        let hash = link_hash(&event.routing_key, rule_id, kind, value);
        let g = self.groups.links.find(hash, |g| g.hash == hash)?;
        let inc = self.slots.get(g.slot);
        // The hash names the routing key, rule, kind and value (64 bits: a collision is not
        // guarded against beyond the routing key and rule).
        let same = inc.rule == rule_id && *inc.routing_key == *event.routing_key;
        let config = &rule.config;
        // Chatter held for good (info) does not draw in an alert that may page.
        let silent = !inc.published
            && inc.publish_at == UnixMillis::NEVER
            && config.pause_transient.of(event.severity) != Pause::NEVER;
        if silent {
            return None;
        }
        let open = match kind {
            // Storm folding: while the window is open.
            LinkKind::Class => now < inc.window_end,
            // The same service or pod: while the incident lasts (a slow burn).
            LinkKind::Service | LinkKind::Pod => {
                now < inc.opened_at.saturating_add(config.max_duration)
            }
            // Where it runs: a cascade arrives together, unrelated problems later.
            LinkKind::Host | LinkKind::Rack | LinkKind::Cluster => {
                now < inc
                    .opened_at
                    .saturating_add(config.window_duration.min(config.max_duration))
            }
        };
        (same && (open || inc.flapping(now))).then_some(g.slot)
    }

    /// The group of `event` under a `group_by` rule: its hash, and the slot of its current
    /// incident if it has one.
    fn find_exact(&self, rule: &Rule, rule_id: u16, event: &Event) -> (u64, Option<u32>) {
        let ghash = values_hash(&event.routing_key, rule_id, group_values(rule, event));
        let current = self
            .groups
            .table
            .find(ghash, |g| {
                let inc = self.slots.get(g.slot);
                inc.rule == rule_id
                    && *inc.routing_key == *event.routing_key
                    && inc
                        .group_values
                        .iter()
                        .map(|v| &**v)
                        .eq(group_values(rule, event))
            })
            .map(|g| g.slot);
        (ghash, current)
    }

    /// Whether a new alert joins the incident in `slot` (its group's current one).
    fn joinable(&self, slot: u32, now: UnixMillis) -> bool {
        let inc = self.slots.get(slot);
        now < inc.window_end || inc.flapping(now)
    }

    /// Opens an incident for the group of `first`, which becomes the group's current one in
    /// place of any earlier; returns its slot.
    pub(super) fn open_incident(
        &mut self,
        ghash: u64,
        rule_id: u16,
        first: &Event,
        details: &[(LinkKind, String)],
        now: UnixMillis,
    ) -> u32 {
        if let Ok(entry) = self.groups.table.find_entry(ghash, |g| g.hash == ghash) {
            let old = entry.get().slot;
            self.unindex_group(old);
        }
        let incident = self.new_incident(ghash, rule_id, first, details, now);
        self.usage.incident_opened(incident.routing_key.clone());
        let related = incident.related.clone();
        let slot = self.slots.insert(incident);
        self.groups
            .table
            .insert_unique(ghash, GroupRef { hash: ghash, slot }, |g| g.hash);
        for &hash in related.iter() {
            self.groups.link(hash, slot);
        }
        self.stats.incidents_opened += 1;
        self.metrics.opened.increment(1);
        self.metrics.incidents_open.increment(1.0);
        slot
    }

    /// A new incident, with no alert yet, for the group `ghash` of `first` under the rule; an
    /// auto rule's incident links what `first` and its `details` name.
    pub(super) fn new_incident(
        &mut self,
        ghash: u64,
        rule_id: u16,
        first: &Event,
        details: &[(LinkKind, String)],
        now: UnixMillis,
    ) -> Incident {
        let rule = &self.rules[rule_id as usize];
        let values = values_of(rule, first);
        let related: Vec<u64> = rule
            .auto()
            .iter()
            .zip(values.iter().copied())
            .chain(details.iter().map(|(k, v)| (k, v.as_str())))
            .filter(|(_, v)| !v.is_empty())
            .map(|(&k, v)| link_hash(&first.routing_key, rule_id, k, v))
            .collect();
        let group_values: Box<[Box<str>]> = values.into_iter().map(Box::from).collect();
        let id = self
            .groups
            .incident_id(ghash, rule, &group_values, first, now);
        let config = &rule.config;
        let (pause, pause_learned) = self.pause_for(
            &first.routing_key,
            first.class.as_deref(),
            first.severity,
            config,
            now,
        );
        if pause_learned {
            self.stats.learned += 1;
            self.metrics.learned_pause.increment(1);
        }
        let hold = config.group_wait.max(pause);
        Incident {
            id,
            seq: 0,
            routing_key: first.routing_key.as_str().into(),
            rule: rule_id,
            group_values,
            group_hash: ghash,
            related,
            pause_end: now.saturating_add(pause),
            pause_learned,
            pause_by: 0,
            title: first.summary.as_str().into(),
            opened_at: now,
            updated_at: now,
            window_end: now.saturating_add(config.window_duration.min(config.max_duration)),
            resolved_at: None,
            alerts: Vec::new(),
            open_alerts: 0,
            acked_alerts: 0,
            suppressed_open: 0,
            gathered: 0,
            publish_at: now.saturating_add(hold),
            flapping_until: None,
            flap_announced: false,
            severity_counts: [0; 4],
            last_severity: first.severity,
            event_count: 0,
            integrations: Default::default(),
            links: Vec::new(),
            published: false,
            published_severity: first.severity,
            published_status: Status::Triggered,
            last_published_at: now,
            dirty: false,
            timer: 0,
            timer_at: UnixMillis(0),
            overflow: None,
            in_group_index: true,
            snoozed_until: None,
            last_command: None,
        }
    }

    /// A rolling window extends with every new alert, to at most `max_duration` after the
    /// incident opened; a fixed one never moves.
    pub(super) fn extend_window(&mut self, slot: u32, config: &RuleConfig, now: UnixMillis) {
        if config.window == WindowKind::Rolling {
            let inc = self.slots.get_mut(slot);
            let limit = inc.opened_at.saturating_add(config.max_duration);
            inc.window_end = inc
                .window_end
                .max(now.saturating_add(config.window_duration).min(limit));
        }
    }

    /// A new alert joined an auto incident: within its cascade, the hosts it names (its own,
    /// and one its details name) lead to it too (see the module's notes).
    pub(super) fn link_cascade(
        &mut self,
        slot: u32,
        event: &Event,
        details: &[(LinkKind, String)],
        now: UnixMillis,
    ) {
        let inc = self.slots.get(slot);
        let rule = &self.rules[inc.rule as usize];
        let config = &rule.config;
        let cascade = now
            < inc
                .opened_at
                .saturating_add(config.window_duration.min(config.max_duration));
        if !rule.auto().contains(&LinkKind::Host) || !cascade || !inc.in_group_index {
            return;
        }
        let hosts = std::iter::once(LinkKind::Host.value(event)).chain(
            details
                .iter()
                .filter(|(k, _)| *k == LinkKind::Host)
                .map(|(_, v)| v.as_str()),
        );
        for host in hosts {
            let inc = self.slots.get(slot);
            if host.is_empty() || inc.related.len() >= MAX_LINKS {
                continue;
            }
            let hash = link_hash(&inc.routing_key, inc.rule, LinkKind::Host, host);
            // Another incident's link stays its own (the first alert's links decide first).
            if self.groups.links.find(hash, |g| g.hash == hash).is_some() {
                continue;
            }
            self.slots.get_mut(slot).related.push(hash);
            self.groups.link(hash, slot);
        }
    }

    /// Takes the incident in `slot` out of the group index (and its links out of the link
    /// index), if it is still there.
    pub(super) fn unindex_group(&mut self, slot: u32) {
        let inc = self.slots.get_mut(slot);
        if std::mem::take(&mut inc.in_group_index) {
            let hash = inc.group_hash;
            if let Ok(entry) = self.groups.table.find_entry(hash, |g| g.slot == slot) {
                entry.remove();
            }
            for &hash in inc.related.iter() {
                if let Ok(entry) = self.groups.links.find_entry(hash, |g| g.slot == slot) {
                    entry.remove();
                }
            }
        }
    }
}
