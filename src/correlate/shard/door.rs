//! The door: what becomes of an event before the shard correlates it.
//!
//! Ingest hands each event to the partition of the routing key its sender gave it, and the event
//! rules apply here, in that partition. When they give the event another routing key, the door
//! remembers the route under the sender's `(routing_key, key space, dedup_key)`, and the event
//! leaves this shard to be correlated in its new key's partition (`Shard::apply_routed`; the caller
//! hands it on, to this same shard when it owns that key too). The alert's later events come
//! through this door as well: those the rules do not re-route (an acknowledge or resolve that
//! carries only a dedup key) follow the remembered route, so they find their alert. A resolve
//! that goes through a route ends it.
//!
//! A routed event comes with its [`Origin`] when it travelled through the events topic: a
//! source partition processed again after a crash hands on the same events again, at the same
//! places, and the door takes each place once. The source's floor bounds what it remembers:
//! every routed event below a floor was delivered before any record carrying that floor was
//! written, so it came earlier in this partition, and a place below the highest floor seen is a
//! repeat. (Not "every place up to the last one taken": a delivery that failed while a later one
//! went through, or output dropped by a fenced correlator, is written again after later places.)
//!
//! Always true: every route was made or used by an event of the last `route_ttl` of partition
//! time, give or take one sweep (`SWEEP_EVERY`); there are at most `cap` routes (past it, a
//! re-routed event still goes on, unremembered, and the cap is counted); `taken` holds, per
//! source partition, the highest floor seen and the places taken at or above it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use serde::{Deserialize, Serialize};

use crate::config::EventRule;
pub use crate::event::wire::Origin;
use crate::event::{Action, Event};
use crate::integration::KeySpace;
use crate::metrics as m;
use crate::time::UnixMillis;

use super::super::event_rules::{self, Applied, DROP_EVENT_RULE};
use super::snapshot::pairs;
use super::store::alert_hash;

/// How often expired routes are swept out, at most (partition time).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// What became of an event at the door.
pub(super) enum Entry {
    /// Correlated here, under the routing key it came with.
    Here(Event),
    /// Correlated under another routing key (the event carries it), in that key's partition.
    Elsewhere(Event),
    /// Dropped by an event rule.
    Dropped,
}

/// Where the event rules sent one alert of a sender's routing key.
#[derive(Serialize, Deserialize)]
pub(super) struct Route {
    routing_key: Box<str>,
    key_space: KeySpace,
    dedup_key: Box<str>,
    to: Box<str>,
    /// The partition time of its last event.
    at: UnixMillis,
}

impl Route {
    fn is(&self, event: &Event) -> bool {
        *self.routing_key == *event.routing_key
            && self.key_space == event.key_space
            && *self.dedup_key == *event.dedup_key
    }
}

/// What the door remembers: the part of a shard's snapshot it writes.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Remembered {
    /// By [`alert_hash`] of the sender's routing key, key space and dedup key.
    #[serde(with = "pairs")]
    routes: HashMap<u64, Route>,
    next_sweep: UnixMillis,
    /// Per source partition, what was taken from it.
    #[serde(with = "pairs")]
    taken: HashMap<u32, Taken>,
}

/// The routed events taken from one source partition: the highest floor seen, and the places
/// `(offset, index)` taken at or above it.
#[derive(Default, Serialize, Deserialize)]
struct Taken {
    floor: u64,
    places: BTreeSet<(u64, u32)>,
}

pub(super) struct Door {
    rules: Arc<[EventRule]>,
    ttl: Duration,
    cap: usize,
    remembered: Remembered,
    dropped: Counter,
    rerouted: Counter,
    repeats: Counter,
    capped: Counter,
}

impl Door {
    pub(super) fn new(rules: Arc<[EventRule]>, ttl: Duration, cap: usize) -> Self {
        Door {
            rules,
            ttl,
            cap,
            remembered: Remembered::default(),
            dropped: m::dropped(DROP_EVENT_RULE),
            rerouted: m::counter(m::EVENTS_REROUTED),
            repeats: m::counter(m::ROUTED_REPEATS),
            capped: m::cap_reached("routes"),
        }
    }

    pub(super) fn set_rules(&mut self, rules: Arc<[EventRule]>, ttl: Duration) {
        self.rules = rules;
        self.ttl = ttl;
    }

    pub(super) fn remembered(&self) -> &Remembered {
        &self.remembered
    }

    pub(super) fn restore(&mut self, remembered: Remembered) {
        self.remembered = remembered;
    }

    /// The routes remembered.
    /// Every route, with its key, by the sender's routing key, leaving none (see `split`).
    pub(super) fn take_routes(&mut self) -> Vec<(String, (u64, Route))> {
        self.remembered
            .routes
            .drain()
            .map(|(hash, route)| (route.routing_key.to_string(), (hash, route)))
            .collect()
    }

    /// Remembers a route taken from another shard.
    pub(super) fn add_route(&mut self, (hash, route): (u64, Route)) {
        self.remembered.routes.insert(hash, route);
    }

    pub(super) fn routes(&self) -> usize {
        self.remembered.routes.len()
    }

    /// An event as its sender sent it, at partition time `now`.
    pub(super) fn enter(&mut self, mut event: Event, now: UnixMillis) -> Entry {
        if self.rules.is_empty() && self.remembered.routes.is_empty() {
            return Entry::Here(event);
        }
        self.sweep(now);
        let hash;
        match event_rules::apply(&self.rules, &mut event) {
            Applied::Dropped => {
                self.dropped.increment(1);
                return Entry::Dropped;
            }
            Applied::Rerouted(came_with) => {
                hash = alert_hash(&came_with, event.key_space, &event.dedup_key);
                self.remember(hash, came_with, &event, now);
            }
            Applied::Kept => {
                if self.remembered.routes.is_empty() {
                    return Entry::Here(event);
                }
                hash = alert_hash(&event.routing_key, event.key_space, &event.dedup_key);
                let Some(route) = self.remembered.routes.get_mut(&hash) else {
                    return Entry::Here(event);
                };
                if !route.is(&event) {
                    return Entry::Here(event);
                }
                route.at = now;
                event.routing_key = route.to.to_string();
            }
        }
        if event.action == Action::Resolve {
            self.remembered.routes.remove(&hash);
        }
        self.rerouted.increment(1);
        Entry::Elsewhere(event)
    }

    /// Remembers (or moves) the route of a re-routed event's alert.
    fn remember(&mut self, hash: u64, came_with: String, event: &Event, now: UnixMillis) {
        let routes = &mut self.remembered.routes;
        if let Some(route) = routes.get_mut(&hash) {
            route.to = event.routing_key.as_str().into();
            route.at = now;
            return;
        }
        if routes.len() >= self.cap {
            self.capped.increment(1);
            return;
        }
        routes.insert(
            hash,
            Route {
                routing_key: came_with.into(),
                key_space: event.key_space,
                dedup_key: event.dedup_key.as_str().into(),
                to: event.routing_key.as_str().into(),
                at: now,
            },
        );
    }

    /// Forgets the routes no event used for `ttl`, at most once per `SWEEP_EVERY`.
    fn sweep(&mut self, now: UnixMillis) {
        let remembered = &mut self.remembered;
        if now < remembered.next_sweep {
            return;
        }
        let ttl = self.ttl.as_millis() as u64;
        remembered
            .routes
            .retain(|_, r| now.0.saturating_sub(r.at.0) < ttl);
        remembered.next_sweep = now.saturating_add(SWEEP_EVERY.min(self.ttl));
    }

    /// Whether a routed event from `origin` is new here (a repeat is skipped and counted).
    pub(super) fn take_routed(&mut self, origin: Option<Origin>) -> bool {
        let Some(o) = origin else {
            return true;
        };
        let taken = self.remembered.taken.entry(o.partition).or_default();
        if o.floor > taken.floor {
            taken.floor = o.floor;
            taken.places = taken.places.split_off(&(o.floor, 0));
        }
        let place = (o.offset, o.index);
        if place < (taken.floor, 0) || !taken.places.insert(place) {
            self.repeats.increment(1);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::integration::Integration;

    fn door(toml: &str, cap: usize) -> Door {
        let config = Config::from_toml(toml, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        Door::new(
            config.correlate.event_rules.into(),
            config.correlate.route_ttl,
            cap,
        )
    }

    const DB_TO_DBA: &str = r#"
        [correlate]
        route_ttl = "1h"
        [[event_rules]]
        matchers = [{ name = "source", op = "=~", value = "db-.*" }]
        set_routing_key = "dba"
        [[event_rules]]
        matchers = [{ name = "source", op = "=", value = "noise" }]
        drop = true
    "#;

    fn event(action: Action, key: &str, source: &str) -> Event {
        let mut e = Event::new(
            Integration::PagerDuty,
            action,
            "web".into(),
            key.into(),
            UnixMillis(0),
        );
        e.source = source.into();
        e
    }

    /// Where the door sends `e`: `Some(routing key)` to correlate it, `None` when dropped.
    fn enter(door: &mut Door, e: Event, at: u64) -> Option<(bool, String)> {
        match door.enter(e, UnixMillis(at)) {
            Entry::Here(e) => Some((true, e.routing_key)),
            Entry::Elsewhere(e) => Some((false, e.routing_key)),
            Entry::Dropped => None,
        }
    }

    #[test]
    fn acknowledges_and_resolves_follow_the_route_their_trigger_took() {
        let mut d = door(DB_TO_DBA, 10);
        let here = |rk: &str| Some((true, rk.to_string()));
        let there = |rk: &str| Some((false, rk.to_string()));
        assert_eq!(
            enter(&mut d, event(Action::Trigger, "k", "db-1"), 0),
            there("dba")
        );
        assert_eq!(d.routes(), 1);
        // A bare acknowledge (no source) follows the route; so does a repeat trigger that
        // no longer matches the rule.
        assert_eq!(
            enter(&mut d, event(Action::Acknowledge, "k", ""), 1),
            there("dba")
        );
        assert_eq!(
            enter(&mut d, event(Action::Trigger, "k", "web-1"), 2),
            there("dba")
        );
        // Other alerts of the sender's key stay; a dropped event is dropped even with a route.
        assert_eq!(
            enter(&mut d, event(Action::Resolve, "other", ""), 3),
            here("web")
        );
        assert_eq!(enter(&mut d, event(Action::Trigger, "k", "noise"), 3), None);
        // The resolve follows it and ends it: the next event of that key stays.
        assert_eq!(
            enter(&mut d, event(Action::Resolve, "k", ""), 4),
            there("dba")
        );
        assert_eq!(d.routes(), 0);
        assert_eq!(
            enter(&mut d, event(Action::Acknowledge, "k", ""), 5),
            here("web")
        );
    }

    #[test]
    fn routes_expire_after_the_ttl_without_events_and_stop_at_the_cap() {
        let mut d = door(DB_TO_DBA, 2);
        let hour = 3_600_000;
        enter(&mut d, event(Action::Trigger, "a", "db-1"), 0);
        enter(&mut d, event(Action::Trigger, "b", "db-1"), 0);
        // Past the cap: still re-routed, not remembered.
        assert_eq!(
            enter(&mut d, event(Action::Trigger, "c", "db-1"), 0),
            Some((false, "dba".into()))
        );
        assert_eq!(
            enter(&mut d, event(Action::Resolve, "c", ""), 1),
            Some((true, "web".into()))
        );
        // "a" is used within the hour, "b" is not: only "a" outlives the sweep after an hour.
        enter(&mut d, event(Action::Acknowledge, "a", ""), hour / 2);
        enter(&mut d, event(Action::Trigger, "x", "web-1"), hour + 1);
        assert_eq!(d.routes(), 1);
        assert_eq!(
            enter(&mut d, event(Action::Resolve, "b", ""), hour + 2),
            Some((true, "web".into()))
        );
        assert_eq!(
            enter(&mut d, event(Action::Resolve, "a", ""), hour + 3),
            Some((false, "dba".into()))
        );
    }

    #[test]
    fn each_place_is_taken_once_and_places_below_the_floor_are_repeats() {
        let mut d = door("", 10);
        let at = |partition, offset, index, floor| {
            Some(Origin {
                partition,
                offset,
                index,
                floor,
            })
        };
        assert!(d.take_routed(None));
        assert!(d.take_routed(at(1, 10, 0, 5)));
        assert!(d.take_routed(at(1, 10, 1, 5)));
        assert!(!d.take_routed(at(1, 10, 1, 5)), "the same place again");
        // A later place went through before an earlier one (its delivery failed and it was
        // written again): the earlier one is still new.
        assert!(d.take_routed(at(1, 12, 0, 5)));
        assert!(d.take_routed(at(1, 11, 0, 5)));
        assert!(!d.take_routed(at(1, 12, 0, 5)));
        // The source committed past 12: everything below is a repeat, and forgotten.
        assert!(d.take_routed(at(1, 13, 0, 13)));
        assert!(!d.take_routed(at(1, 9, 0, 5)));
        assert!(!d.take_routed(at(1, 11, 0, 5)));
        assert_eq!(d.remembered.taken[&1].places.len(), 1);
        // Each source partition has its own places.
        assert!(d.take_routed(at(2, 3, 0, 0)));
        assert!(d.take_routed(None), "memory mode's routed events have none");
    }
}
