//! Hot reload (SIGHUP): a new configuration, already validated, replaces the running one where
//! it can without dropping state or connections, and says what it could not.
//!
//! Taken up now:
//! - the correlation rules (`[correlate]`, `[[event_rules]]` with their lookup tables,
//!   `[[maintenance]]`, `[[heartbeats]]`): each shard (memory mode) or owned partition (Kafka
//!   mode) carries its state over to the new rules as a restore from its own snapshot would (an
//!   incident of a rule that is gone falls to the rule of the same name, else to the last rule;
//!   caps are the new ones; heartbeats get a new interval of grace), and in Kafka mode
//!   partitions restored later take them and the watermarks name the new fingerprint. In Kafka
//!   mode every instance should be given the same rules: until all are, correlators log RULES
//!   DIFFER, as during a rolling restart;
//! - the rate limits of `[limits]` (`per_routing_key`, `burst`, `global`, `global_burst`,
//!   `max_routing_keys`): new limiters for the requests that start after the reload (what a
//!   key had spent is forgotten);
//! - `[auth]` (allowlist, integration secrets and signatures, admin tokens, the silence cap)
//!   and `[integrations.<kind>]`, for the requests that start after the reload (one request
//!   sees one of them from start to end), except the SNS signature checks of
//!   `cloudwatch_sns`, built at start.
//!
//! Everything else (the listener, Kafka, the pipeline, `limits.fair_admission`, logging, and
//! the SNS checks) is compared
//! with the running configuration, and each section that differs is named in a warning as
//! needing a restart. A configuration that does not validate is
//! never applied: the caller logs its problems and keeps the running one
//! (`sluice_config_last_reload_successful` 0).

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::{Config, CorrelateConfig};
use crate::ingest::auth::Auth;
use crate::ingest::integrations::settings::SettingsByKind;
use crate::ingest::router::Router;
use crate::integration::Integration;
use crate::metrics as m;
use crate::pipeline::limits::RateLimits;
use crate::pipeline::Intake;
use crate::time::UnixMillis;

/// What a reload can reach of a running gateway.
pub struct Reloader {
    /// The configuration in force.
    running: Mutex<Config>,
    /// Memory mode: where the shards take new rules.
    rules: Option<watch::Sender<Arc<CorrelateConfig>>>,
    /// Where auth and the integrations' settings are read.
    router: Arc<Router>,
    /// Where the rate limits are read.
    intake: Intake,
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// The correlation rules were handed to the shards.
    pub rules: bool,
    /// Auth and the integrations' settings were replaced.
    pub auth_and_integrations: bool,
    /// The rate limits were replaced (their limiters start afresh).
    pub limits: bool,
    /// Sections that differ and take effect only at the next start.
    pub need_restart: Vec<&'static str>,
}

impl Reloader {
    pub fn new(
        config: &Config,
        rules: Option<watch::Sender<Arc<CorrelateConfig>>>,
        router: Arc<Router>,
        intake: Intake,
    ) -> Reloader {
        Reloader {
            running: Mutex::new(config.clone()),
            rules,
            router,
            intake,
        }
    }

    /// Applies `new` where it can (see the module doc).
    pub fn apply(&self, new: Config, now: UnixMillis) -> Reloaded {
        let mut running = self.running.lock().expect("running config lock");
        let same =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
        let mut done = Reloaded::default();
        let rules_changed = !same(&running.correlate, &new.correlate);
        if rules_changed {
            // Kafka mode: the watermarks this instance writes name its rules.
            self.intake
                .set_rules_hash(crate::pipeline::rules_hash_of(&new.correlate));
            if let Some(tx) = &self.rules {
                let _ = tx.send(Arc::new(new.correlate.clone()));
            }
            // An ingest-only instance (Kafka mode) has no shard: the fingerprint is all.
            done.rules = true;
        }
        let sns = |c: &Config| {
            SettingsByKind::checked(&c.integrations)
                .map(|s| format!("{:?}", s.get(Integration::CloudwatchSns).sns))
                .unwrap_or_default()
        };
        let sns_same = sns(&running) == sns(&new);
        let changed =
            !same(&running.auth, &new.auth) || !same(&running.integrations, &new.integrations);
        if changed {
            match SettingsByKind::checked(&new.integrations) {
                Ok(settings) => {
                    let auth = Arc::new(Auth::from_config(&new.auth));
                    self.router.reload(auth, settings);
                    done.auth_and_integrations = true;
                    running.auth = new.auth.clone();
                    running.integrations = new.integrations.clone();
                }
                Err(e) => {
                    tracing::error!(error = %e, "integration settings not reloaded");
                    done.need_restart.push("integrations");
                }
            }
        }
        // The rates and the table's bound are taken up now (the limiters start afresh); fair
        // admission is decided when the shard queues are made.
        let rates = |c: &Config| {
            let l = &c.limits;
            format!("{:?}", (&l.per_routing_key, &l.global, l.max_routing_keys))
        };
        if rates(&running) != rates(&new) {
            self.intake.set_rate_limits(RateLimits::start(&new.limits));
            done.limits = true;
            // Fair admission stays as it started until a restart (and is named until then).
            let fair = running.limits.fair_admission;
            running.limits = new.limits.clone();
            running.limits.fair_admission = fair;
        }
        let sections: [(&'static str, bool); 7] = [
            ("instance", running.instance == new.instance),
            ("server", same(&running.server, &new.server)),
            ("kafka", same(&running.kafka, &new.kafka)),
            ("pipeline", same(&running.pipeline, &new.pipeline)),
            ("integrations.cloudwatch_sns (signature checks)", sns_same),
            (
                "limits.fair_admission",
                running.limits.fair_admission == new.limits.fair_admission,
            ),
            ("log", same(&running.log, &new.log)),
        ];
        done.need_restart.extend(
            sections
                .iter()
                .filter(|(_, same)| !same)
                .map(|(name, _)| *name),
        );
        if done.rules {
            running.correlate = new.correlate;
        }
        m::gauge(m::CONFIG_RELOAD_SUCCESSFUL).set(1.0);
        m::gauge(m::CONFIG_RELOAD_SUCCESS_TIMESTAMP).set(now.0 as f64 / 1000.0);
        done
    }

    /// A reload whose configuration did not validate.
    pub fn failed(&self) {
        m::gauge(m::CONFIG_RELOAD_SUCCESSFUL).set(0.0);
    }

    /// At start: the configuration in force loaded successfully.
    pub fn started(&self) {
        m::gauge(m::CONFIG_RELOAD_SUCCESSFUL).set(1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        m::gauge(m::CONFIG_RELOAD_SUCCESS_TIMESTAMP).set(now);
    }
}
