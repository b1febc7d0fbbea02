//! `[limits]`: how much each routing key, and the instance as a whole, may send. Every key is
//! optional; the rate limits are off until a rate is set:
//!
//! ```toml
//! [limits]
//! per_routing_key = 100     # events per second per routing key (GCRA); also set, with burst
//!                           # the same number, by SLUICE_RATE_LIMIT_PER_ROUTING_KEY
//! burst = 200               # events a routing key may send at once (default: per_routing_key);
//!                           # a request with more events than this is refused with 413
//! global = 20000            # events per second for this instance, all keys together
//! global_burst = 20000      # default: global
//! max_routing_keys = 100000 # routing keys the per-key limit tracks at once; idle ones are
//!                           # evicted every second, and a new key past it is held only to global
//! fair_admission = true     # memory mode: once a shard queue is half full, a routing key that
//!                           # holds more than its share of it is refused (503) before others:
//!                           # 7/8 of the queue while no other key has events queued there,
//!                           # else an equal part of the half
//! ```
//!
//! Limits count events, not requests (a 50-alert batch is 50), and are per instance: in Kafka
//! mode every ingest instance applies them to what it receives. Validates that rates and bursts
//! are whole numbers greater than zero and that a burst comes with its rate; unknown keys are
//! rejected.

use serde::Deserialize;

use super::{defaults, Problems, Unknown};

#[derive(Deserialize, Default)]
pub(super) struct RawLimits {
    /// Both are set by `SLUICE_RATE_LIMIT_PER_ROUTING_KEY` too.
    pub(super) per_routing_key: Option<u32>,
    pub(super) burst: Option<u32>,
    global: Option<u32>,
    global_burst: Option<u32>,
    max_routing_keys: Option<usize>,
    fair_admission: Option<bool>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// A rate limit: `per_second` events on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Each routing key's limit; `None`: no per-key limit.
    pub per_routing_key: Option<Rate>,
    /// The instance's limit over every key; `None`: no global limit.
    pub global: Option<Rate>,
    /// Routing keys the per-key limit tracks at once.
    pub max_routing_keys: usize,
    /// Memory mode: a per-key share of each shard queue once it is half full.
    pub fair_admission: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        RawLimits::default().validate(&mut Problems::default())
    }
}

impl RawLimits {
    pub(super) fn validate(self, p: &mut Problems) -> LimitsConfig {
        p.unknown("limits", &self.unknown);
        LimitsConfig {
            per_routing_key: rate(
                p,
                ("limits.per_routing_key", self.per_routing_key),
                ("limits.burst", self.burst),
            ),
            global: rate(
                p,
                ("limits.global", self.global),
                ("limits.global_burst", self.global_burst),
            ),
            max_routing_keys: p.positive(
                "limits.max_routing_keys",
                self.max_routing_keys.unwrap_or(defaults::MAX_ROUTING_KEYS),
            ),
            fair_admission: self.fair_admission.unwrap_or(defaults::FAIR_ADMISSION),
        }
    }
}

/// A rate and its burst (the rate when not given); `None` when no rate is set.
fn rate(
    p: &mut Problems,
    (rate_key, rate): (&str, Option<u32>),
    (burst_key, burst): (&str, Option<u32>),
) -> Option<Rate> {
    let Some(per_second) = rate else {
        if burst.is_some() {
            p.add(
                burst_key,
                format!("needs {rate_key} (a burst of what rate?)"),
            );
        }
        return None;
    };
    let per_second = whole(p, rate_key, per_second, "leave it out for no limit");
    let burst = whole(
        p,
        burst_key,
        burst.unwrap_or(per_second),
        "it is events at once",
    );
    Some(Rate { per_second, burst })
}

fn whole(p: &mut Problems, key: &str, v: u32, hint: &str) -> u32 {
    if v == 0 {
        p.add(key, format!("must be greater than zero ({hint})"));
        return 1;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::Rate;
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limits_are_off_by_default_and_fair_admission_on() {
        let limits = Config::from_toml("", Vec::new()).unwrap().limits;
        assert_eq!(limits.per_routing_key, None);
        assert_eq!(limits.global, None);
        assert_eq!(limits.max_routing_keys, 100_000);
        assert!(limits.fair_admission);
    }

    #[test]
    fn a_burst_defaults_to_its_rate() {
        let toml = "[limits]\nper_routing_key = 50\nglobal = 1000\nglobal_burst = 3000\n";
        let limits = Config::from_toml(toml, Vec::new()).unwrap().limits;
        let rate = |per_second, burst| Some(Rate { per_second, burst });
        assert_eq!(limits.per_routing_key, rate(50, 50));
        assert_eq!(limits.global, rate(1000, 3000));
    }

    #[test]
    fn every_problem_names_its_key() {
        let toml = "[limits]\nper_routing_key = 0\nburst = 0\nglobal_burst = 5\n\
                    max_routing_keys = 0\nfair = true\n";
        let err = Config::from_toml(toml, Vec::new()).unwrap_err();
        assert_eq!(
            err.problems,
            [
                "limits.fair: unknown key",
                "limits.per_routing_key: must be greater than zero (leave it out for no limit)",
                "limits.burst: must be greater than zero (it is events at once)",
                "limits.global_burst: needs limits.global (a burst of what rate?)",
                "limits.max_routing_keys: must be greater than zero",
            ]
        );
    }

    #[test]
    fn the_environment_sets_the_per_key_rate_and_its_burst() {
        let toml = "[limits]\nper_routing_key = 5\nburst = 50\n";
        let over = env(&[("SLUICE_RATE_LIMIT_PER_ROUTING_KEY", "20")]);
        let limits = Config::from_toml(toml, over).unwrap().limits;
        assert_eq!(
            limits.per_routing_key,
            Some(Rate {
                per_second: 20,
                burst: 20
            })
        );
        for bad in ["0", "-3", "ten", "1.5", ""] {
            let over = env(&[("SLUICE_RATE_LIMIT_PER_ROUTING_KEY", bad)]);
            let err = Config::from_toml("", over).unwrap_err();
            assert_eq!(
                err.problems,
                [format!(
                    "SLUICE_RATE_LIMIT_PER_ROUTING_KEY: {bad:?} is not a whole number of events \
                     per second greater than zero"
                )]
            );
        }
    }
}
