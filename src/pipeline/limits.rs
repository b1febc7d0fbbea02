//! Rate limits at the door (`[limits]`): a GCRA per routing key and one for the instance
//! (governor), counted in events, decided once per request for all of its events or none.
//!
//! The per-key limiter keeps one 8-byte state (the key's theoretical arrival time) per routing
//! key in a DashMap keyed by the key's xxh3 hash, so the table holds no routing key. It is
//! bounded: a sweep every second evicts the keys whose state is as good as a fresh one
//! (governor's `retain_recent`: nothing sent for a burst's worth of time), and past
//! `limits.max_routing_keys` a key not in the table is decided as a fresh key and not stored
//! (it is held only to the global limit until a sweep makes room; the sweep logs a warning).
//!
//! Per key first, then global: a key over its own limit spends nothing of the instance's. A
//! request refused by the global limit has spent its key's share (governor cannot give cells
//! back); under a global refusal every key is being refused anyway.

use std::hash::BuildHasherDefault;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{InsufficientCapacity, NotUntil, Quota, RateLimiter};

use super::{key_hash, KeyHasher, Refused};
use crate::config::{LimitsConfig, Rate};
use crate::event::Event;

/// How often idle routing keys are evicted from the per-key table.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

type KeyedLimiter<C> = RateLimiter<u64, KeyStates, C, NoOpMiddleware<<C as Clock>::Instant>>;
type DirectLimiter<C> =
    RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The rate limits of one instance; cheap to share (`Arc`).
pub struct RateLimits<C: Clock = DefaultClock> {
    per_key: Option<PerKey<C>>,
    global: Option<(DirectLimiter<C>, u32)>,
    clock: C,
}

struct PerKey<C: Clock> {
    limiter: KeyedLimiter<C>,
    /// The limiter's store, shared with it, for the sweep's counters.
    table: Arc<KeyTable>,
    burst: u32,
}

impl RateLimits {
    /// The limits `config` sets, with their sweep running on the current tokio runtime until
    /// the last handle is dropped; `None` when no rate is set.
    pub fn start(config: &LimitsConfig) -> Option<Arc<RateLimits>> {
        let limits = Arc::new(RateLimits::with_clock(config, DefaultClock::default())?);
        if limits.per_key.is_some() {
            tokio::spawn(sweep_while_used(Arc::downgrade(&limits)));
        }
        Some(limits)
    }
}

async fn sweep_while_used(limits: Weak<RateLimits>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match limits.upgrade() {
            Some(limits) => limits.sweep(),
            None => return,
        }
    }
}

fn quota(rate: Rate) -> Quota {
    let nonzero = |n: u32| NonZeroU32::new(n).expect("validated: greater than zero");
    Quota::per_second(nonzero(rate.per_second)).allow_burst(nonzero(rate.burst))
}

impl<C: Clock + Clone> RateLimits<C> {
    /// The limits `config` sets, on `clock`; `None` when no rate is set. Nothing is swept
    /// until [`RateLimits::sweep`] is called.
    pub fn with_clock(config: &LimitsConfig, clock: C) -> Option<Self> {
        if config.per_routing_key.is_none() && config.global.is_none() {
            return None;
        }
        let per_key = config.per_routing_key.map(|rate| {
            let table = Arc::new(KeyTable::new(config.max_routing_keys));
            let store = KeyStates(Arc::clone(&table));
            PerKey {
                limiter: RateLimiter::new(quota(rate), store, clock.clone()),
                table,
                burst: rate.burst,
            }
        });
        let global = config.global.map(|rate| {
            (
                RateLimiter::direct_with_clock(quota(rate), clock.clone()),
                rate.burst,
            )
        });
        Some(RateLimits {
            per_key,
            global,
            clock,
        })
    }

    /// Admits every event of a request, or none: each routing key's events against its limit,
    /// then all of them against the global one.
    pub fn admit_events(&self, events: &[Event]) -> Result<(), Refused> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let total = u32::try_from(events.len()).unwrap_or(u32::MAX);
        if events.iter().all(|e| e.routing_key == first.routing_key) {
            return self.admit(&[(key_hash(&first.routing_key), total)], total);
        }
        let mut keys: Vec<(u64, u32)> = Vec::new();
        for e in events {
            let hash = key_hash(&e.routing_key);
            match keys.iter_mut().find(|(h, _)| *h == hash) {
                Some((_, n)) => *n += 1,
                None => keys.push((hash, 1)),
            }
        }
        self.admit(&keys, total)
    }

    /// Admits one event of `routing_key` (a change event).
    pub fn admit_one(&self, routing_key: &str) -> Result<(), Refused> {
        self.admit(&[(key_hash(routing_key), 1)], 1)
    }

    fn admit(&self, keys: &[(u64, u32)], total: u32) -> Result<(), Refused> {
        let Some(total) = NonZeroU32::new(total) else {
            return Ok(());
        };
        if let Some(per_key) = &self.per_key {
            for &(hash, n) in keys {
                let n = NonZeroU32::new(n).expect("a key counted has events");
                match per_key.limiter.check_key_n(&hash, n) {
                    Ok(Ok(())) => {}
                    Ok(Err(not_until)) => {
                        return Err(Refused::RateLimited {
                            retry_after_secs: self.retry_after(&not_until),
                        })
                    }
                    Err(InsufficientCapacity(_)) => {
                        return Err(Refused::OverBurst {
                            burst: per_key.burst,
                            global: false,
                        })
                    }
                }
            }
        }
        if let Some((limiter, burst)) = &self.global {
            match limiter.check_n(total) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    return Err(Refused::GlobalRateLimited {
                        retry_after_secs: self.retry_after(&not_until),
                    })
                }
                Err(InsufficientCapacity(_)) => {
                    return Err(Refused::OverBurst {
                        burst: *burst,
                        global: true,
                    })
                }
            }
        }
        Ok(())
    }

    /// Whole seconds until the refused request would conform: at least 1, rounded up (the
    /// value of `Retry-After`).
    fn retry_after(&self, not_until: &NotUntil<C::Instant>) -> u32 {
        let wait = not_until.wait_time_from(self.clock.now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
    }

    /// Evicts the routing keys whose state is as good as fresh, gives memory back when the
    /// table has shrunk a lot, and warns when keys went untracked since the last sweep.
    pub fn sweep(&self) {
        let Some(per_key) = &self.per_key else {
            return;
        };
        per_key.limiter.retain_recent();
        let table = &per_key.table;
        let tracked = table.len.load(Ordering::Relaxed);
        if table.map.capacity() > 4 * tracked.max(1024) {
            per_key.limiter.shrink_to_fit();
        }
        let untracked = table.untracked.swap(0, Ordering::Relaxed);
        if untracked > 0 {
            tracing::warn!(
                untracked,
                tracked,
                max_routing_keys = table.max,
                "per-key rate limit table full: requests of routing keys past \
                 limits.max_routing_keys were held only to limits.global"
            );
        }
    }

    /// Routing keys whose state the per-key limiter holds.
    pub fn tracked_keys(&self) -> usize {
        self.per_key.as_ref().map_or(0, |k| k.limiter.len())
    }
}

/// The per-key limiter's store: one GCRA state per routing key hash, at most `max` keys.
struct KeyStates(Arc<KeyTable>);

struct KeyTable {
    map: DashMap<u64, AtomicU64, BuildHasherDefault<KeyHasher>>,
    len: AtomicUsize,
    max: usize,
    /// Decisions made for keys past `max` since the last sweep.
    untracked: AtomicU64,
}

impl KeyTable {
    fn new(max: usize) -> Self {
        KeyTable {
            map: DashMap::default(),
            len: AtomicUsize::new(0),
            max,
            untracked: AtomicU64::new(0),
        }
    }
}

impl StateStore for KeyStates {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let table = &self.0;
        if let Some(state) = table.map.get(key) {
            return measure_and_replace(&state, f);
        }
        if table.len.load(Ordering::Relaxed) >= table.max {
            // Decided as a fresh key, and not remembered.
            table.untracked.fetch_add(1, Ordering::Relaxed);
            return f(None).map(|(decision, _)| decision);
        }
        let state = table.map.entry(*key).or_insert_with(|| {
            table.len.fetch_add(1, Ordering::Relaxed);
            AtomicU64::new(0)
        });
        measure_and_replace(&state, f)
    }
}

/// governor's compare-and-swap over one state: 0 stands for a key with no state yet.
fn measure_and_replace<T, F, E>(state: &AtomicU64, f: F) -> Result<T, E>
where
    F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
{
    let fresh = |prev: u64| (prev != 0).then(|| Nanos::from(prev));
    let mut prev = state.load(Ordering::Acquire);
    loop {
        let (decision, next) = f(fresh(prev))?;
        match state.compare_exchange_weak(prev, next.into(), Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return Ok(decision),
            Err(actual) => prev = actual,
        }
    }
}

impl ShrinkableKeyedStateStore<u64> for KeyStates {
    fn retain_recent(&self, drop_below: Nanos) {
        let table = &self.0;
        let below = drop_below.as_u64();
        table.map.retain(|_, state| {
            let keep = state.load(Ordering::Relaxed) > below;
            if !keep {
                table.len.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
    }

    fn shrink_to_fit(&self) {
        self.0.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len.load(Ordering::Relaxed)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
