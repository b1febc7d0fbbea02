//! The one injectable clock. Every window, timer and timestamp in the correlator reads time from
//! a [`Clock`], so tests and the offline replay can run on simulated time and stay deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::time::UnixMillis;

/// Wall-clock time (`System`) or time that only moves when told to (`Manual`).
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn system() -> Self {
        Clock::System
    }

    /// A clock frozen at `start` until [`Clock::advance`] or [`Clock::set`] moves it.
    pub fn manual(start: UnixMillis) -> Self {
        Clock::Manual(Arc::new(AtomicU64::new(start.0)))
    }

    pub fn now(&self) -> UnixMillis {
        match self {
            Clock::System => UnixMillis(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            ),
            Clock::Manual(ms) => UnixMillis(ms.load(Ordering::Acquire)),
        }
    }

    /// Moves a manual clock forward; a system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(ms) = self {
            ms.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
        }
    }

    /// Sets a manual clock; time never moves backwards, so an earlier instant is ignored.
    pub fn set(&self, to: UnixMillis) {
        if let Clock::Manual(ms) = self {
            ms.fetch_max(to.0, Ordering::AcqRel);
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let clock = Clock::manual(UnixMillis(1_000));
        clock.advance(Duration::from_millis(500));
        assert_eq!(clock.now(), UnixMillis(1_500));
        clock.set(UnixMillis(1_200));
        assert_eq!(clock.now(), UnixMillis(1_500));
        clock.set(UnixMillis(9_000));
        assert_eq!(clock.now(), UnixMillis(9_000));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(Clock::system().now().0 > 1_577_836_800_000);
    }
}
