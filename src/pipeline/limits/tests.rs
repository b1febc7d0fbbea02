//! GCRA decisions on a fake clock: bursts and rates, all-or-nothing requests, the global
//! limit, Retry-After, and the per-key table's bound and eviction.

use std::time::Duration;

use governor::clock::FakeRelativeClock;

use super::RateLimits;
use crate::config::{LimitsConfig, Rate};
use crate::event::{Action, Event};
use crate::integration::Integration;
use crate::pipeline::Refused;
use crate::time::UnixMillis;

fn config(per_key: Option<(u32, u32)>, global: Option<(u32, u32)>) -> LimitsConfig {
    let rate = |(per_second, burst)| Rate { per_second, burst };
    LimitsConfig {
        per_routing_key: per_key.map(rate),
        global: global.map(rate),
        ..LimitsConfig::default()
    }
}

fn limits(config: &LimitsConfig) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits::with_clock(config, clock.clone()).expect("a rate is set");
    (limits, clock)
}

fn events(keys: &[&str]) -> Vec<Event> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            Event::new(
                Integration::AlertmanagerApi,
                Action::Trigger,
                (*k).into(),
                format!("alert-{i}"),
                UnixMillis(0),
            )
        })
        .collect()
}

fn batch(key: &str, n: usize) -> Vec<Event> {
    events(&vec![key; n])
}

const LIMITED: Result<(), Refused> = Err(Refused::RateLimited {
    retry_after_secs: 1,
});

#[test]
fn no_rate_no_limits() {
    assert!(
        RateLimits::with_clock(&LimitsConfig::default(), FakeRelativeClock::default()).is_none()
    );
}

#[test]
fn a_key_gets_its_burst_then_its_rate_and_other_keys_are_untouched() {
    // 10 events per second (one per 100 ms), 5 at once.
    let (limits, clock) = limits(&config(Some((10, 5)), None));
    for _ in 0..5 {
        assert_eq!(limits.admit_one("noisy"), Ok(()));
    }
    assert_eq!(limits.admit_one("noisy"), LIMITED);
    assert_eq!(
        limits.admit_one("quiet"),
        Ok(()),
        "another key has its own burst"
    );
    clock.advance(Duration::from_millis(100));
    assert_eq!(
        limits.admit_one("noisy"),
        Ok(()),
        "one event back per 100 ms"
    );
    assert_eq!(limits.admit_one("noisy"), LIMITED);
    clock.advance(Duration::from_millis(250));
    assert_eq!(limits.admit_events(&batch("noisy", 2)), Ok(()));
    assert_eq!(limits.admit_one("noisy"), LIMITED);
    // Idle for a burst's worth of time: the whole burst again, no more.
    clock.advance(Duration::from_secs(10));
    assert_eq!(limits.admit_events(&batch("noisy", 5)), Ok(()));
    assert_eq!(limits.admit_one("noisy"), LIMITED);
}

#[test]
fn a_request_is_taken_whole_or_not_at_all() {
    let (limits, clock) = limits(&config(Some((10, 5)), None));
    assert_eq!(limits.admit_events(&batch("rk", 3)), Ok(()));
    // Two events left in the burst: a batch of three is refused and takes none of them.
    assert_eq!(limits.admit_events(&batch("rk", 3)), LIMITED);
    assert_eq!(limits.admit_events(&batch("rk", 2)), Ok(()));
    assert_eq!(limits.admit_one("rk"), LIMITED);
    // A batch larger than the burst could never pass: it is refused as such, whatever the wait.
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        limits.admit_events(&batch("rk", 6)),
        Err(Refused::OverBurst {
            burst: 5,
            global: false
        })
    );
    assert_eq!(
        limits.admit_events(&batch("rk", 5)),
        Ok(()),
        "and took nothing"
    );
}

#[test]
fn each_key_of_a_mixed_request_counts_its_own_events() {
    let (limits, _clock) = limits(&config(Some((10, 4)), None));
    assert_eq!(limits.admit_events(&events(&["a", "b", "a", "a"])), Ok(()));
    assert_eq!(
        limits.admit_events(&batch("b", 3)),
        Ok(()),
        "b sent one of four"
    );
    assert_eq!(limits.admit_one("a"), Ok(()), "a sent three of four");
    assert_eq!(limits.admit_events(&events(&["a", "c"])), LIMITED);
    assert_eq!(
        limits.admit_events(&batch("c", 4)),
        Ok(()),
        "c took nothing"
    );
}

#[test]
fn the_global_limit_holds_every_key_together_and_says_when_to_come_back() {
    // 10 per second with a burst of 10; per key 100 per second.
    let (limits, clock) = limits(&config(Some((100, 100)), Some((10, 10))));
    assert_eq!(limits.admit_events(&batch("a", 6)), Ok(()));
    assert_eq!(limits.admit_events(&batch("b", 4)), Ok(()));
    assert_eq!(
        limits.admit_one("c"),
        Err(Refused::GlobalRateLimited {
            retry_after_secs: 1
        })
    );
    // Ten events need a whole second of refill, 25 events at 10/s can never pass at once, and
    // a batch that would need 1.5 s is told 2.
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        limits.admit_events(&batch("d", 10)),
        Err(Refused::GlobalRateLimited {
            retry_after_secs: 1
        })
    );
    assert_eq!(
        limits.admit_events(&batch("d", 25)),
        Err(Refused::OverBurst {
            burst: 10,
            global: true
        })
    );
    assert_eq!(limits.admit_events(&batch("d", 5)), Ok(()));
    assert_eq!(
        limits.admit_events(&batch("d", 10)),
        Err(Refused::GlobalRateLimited {
            retry_after_secs: 1
        })
    );
    clock.advance(Duration::from_millis(100));
    assert_eq!(limits.admit_one("d"), Ok(()));
    assert_eq!(
        limits.admit_events(&batch("e", 10)),
        Err(Refused::GlobalRateLimited {
            retry_after_secs: 1
        })
    );
    let (limits, _clock) = self::limits(&config(None, Some((2, 4))));
    assert_eq!(limits.admit_events(&batch("a", 4)), Ok(()));
    assert_eq!(
        limits.admit_events(&batch("a", 3)),
        Err(Refused::GlobalRateLimited {
            retry_after_secs: 2
        }),
        "three events at two per second: 1.5 s, rounded up"
    );
}

#[test]
fn a_key_over_its_own_limit_spends_nothing_of_the_global_one() {
    let (limits, _clock) = limits(&config(Some((10, 2)), Some((10, 4))));
    assert_eq!(limits.admit_events(&batch("noisy", 2)), Ok(()));
    for _ in 0..10 {
        assert_eq!(limits.admit_one("noisy"), LIMITED);
    }
    assert_eq!(limits.admit_events(&batch("quiet", 2)), Ok(()));
}

#[test]
fn the_key_table_is_bounded_and_idle_keys_are_evicted() {
    let mut config = config(Some((10, 2)), None);
    config.max_routing_keys = 3;
    let (limits, clock) = limits(&config);
    for key in ["a", "b", "c", "d", "e"] {
        assert_eq!(limits.admit_events(&batch(key, 2)), Ok(()));
    }
    assert_eq!(limits.tracked_keys(), 3);
    // Tracked keys are held to their rate; keys past the bound are decided as fresh ones and
    // not remembered (only a global limit would hold them).
    assert_eq!(limits.admit_one("a"), LIMITED);
    for _ in 0..3 {
        assert_eq!(limits.admit_events(&batch("e", 2)), Ok(()));
    }
    // A sweep before the keys are idle keeps them; once a burst's worth of time has passed
    // (200 ms at 10/s for 2), they are as good as fresh and go.
    clock.advance(Duration::from_millis(100));
    limits.sweep();
    assert_eq!(limits.tracked_keys(), 3);
    clock.advance(Duration::from_millis(300));
    limits.sweep();
    assert_eq!(limits.tracked_keys(), 0);
    // Room again: "e" is tracked now, and held.
    assert_eq!(limits.admit_events(&batch("e", 2)), Ok(()));
    assert_eq!(limits.admit_one("e"), LIMITED);
    assert_eq!(limits.tracked_keys(), 1);
}
