//! Hot reload (SIGHUP): a new configuration, already validated, replaces the running one where
//! it can without dropping state or connections, and says what it could not.
//!
//! Taken up now:
//! - the correlation rules of memory mode (`[correlate]` and `[[event_rules]]`): each shard
//!   carries its state over to the new rules as a restore from its own snapshot would (an
//!   incident of a rule that is gone falls to the rule of the same name, else to the last rule;
//!   caps are the new ones);
//! - `[auth]` (allowlist, integration secrets and signatures, admin tokens, the silence cap)
//!   and `[integrations.<kind>]`, for the requests that start after the reload (one request
//!   sees one of them from start to end), except the SNS signature checks of
//!   `cloudwatch_sns`, built at start.
//!
//! Everything else (the listener, Kafka, the pipeline, limits, logging, Kafka mode's
//! correlation rules, which its correlators read at start, and the SNS checks) is compared
//! with the running configuration, and each section that differs is named in a warning as
//! needing a restart. A configuration that does not validate is
//! never applied: the caller logs its problems and keeps the running one
//! (`sluice_config_last_reload_successful` 0).

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::{Config, CorrelateConfig, PipelineMode};
use crate::ingest::auth::Auth;
use crate::ingest::integrations::settings::SettingsByKind;
use crate::ingest::router::Router;
use crate::integration::Integration;
use crate::metrics as m;
use crate::time::UnixMillis;

/// What a reload can reach of a running gateway.
pub struct Reloader {
    /// The configuration in force.
    running: Mutex<Config>,
    /// Memory mode: where the shards take new rules.
    rules: Option<watch::Sender<Arc<CorrelateConfig>>>,
    /// Where auth and the integrations' settings are read.
    router: Arc<Router>,
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// The correlation rules were handed to the shards.
    pub rules: bool,
    /// Auth and the integrations' settings were replaced.
    pub auth_and_integrations: bool,
    /// Sections that differ and take effect only at the next start.
    pub need_restart: Vec<&'static str>,
}

impl Reloader {
    pub fn new(
        config: &Config,
        rules: Option<watch::Sender<Arc<CorrelateConfig>>>,
        router: Arc<Router>,
    ) -> Reloader {
        Reloader {
            running: Mutex::new(config.clone()),
            rules,
            router,
        }
    }

    /// Applies `new` where it can (see the module doc).
    pub fn apply(&self, new: Config, now: UnixMillis) -> Reloaded {
        let mut running = self.running.lock().expect("running config lock");
        let same =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
        let mut done = Reloaded::default();
        let rules_changed = !same(&running.correlate, &new.correlate);
        match (&self.rules, rules_changed) {
            (Some(tx), true) if new.pipeline.mode == PipelineMode::Memory => {
                let _ = tx.send(Arc::new(new.correlate.clone()));
                done.rules = true;
            }
            (_, true) => done.need_restart.push("correlate"),
            (_, false) => {}
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
        let sections: [(&'static str, bool); 7] = [
            ("instance", running.instance == new.instance),
            ("server", same(&running.server, &new.server)),
            ("kafka", same(&running.kafka, &new.kafka)),
            ("pipeline", same(&running.pipeline, &new.pipeline)),
            ("integrations.cloudwatch_sns (signature checks)", sns_same),
            ("limits", same(&running.limits, &new.limits)),
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
