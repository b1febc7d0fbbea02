//! A running gateway: its address, shutdown, and reloads; and what a shutdown left undone.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::reload::{Reloaded, Reloader};
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::admin::{Health, ReloadAsked};

/// What was left undone at exit; all zero after a clean shutdown.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    pub connections_cut: usize,
    pub messages_undelivered: i32,
    /// Shards still waiting for room in the producer queue when the grace period ran out.
    pub shards_unfinished: bool,
}

/// A running gateway.
pub struct Running {
    pub(super) addr: SocketAddr,
    pub(super) bootstrap: String,
    pub(super) health: Arc<Health>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) task: JoinHandle<ShutdownReport>,
    pub(super) reloader: Reloader,
    pub(super) clock: Clock,
    /// `POST /-/reload` requests, for the process that can read the config file again.
    pub(super) reloads: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<ReloadAsked>>>,
}

impl ShutdownReport {
    /// Everything accepted was delivered.
    pub fn clean(&self) -> bool {
        self.connections_cut == 0 && self.messages_undelivered == 0 && !self.shards_unfinished
    }
}

impl Running {
    /// The address the HTTP server is bound to (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Kafka bootstrap servers in use (the embedded broker's loopback address, if embedded).
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Starts the shutdown sequence; [`Running::wait`] reports how it went.
    pub fn shutdown(&self) {
        self.health.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
    }

    /// Takes up `config` where it can without a restart (SIGHUP; see `reload`).
    pub fn reload(&self, config: Config) -> Reloaded {
        let hash = crate::pipeline::rules_hash(&config);
        let windows = Arc::new(config.correlate.maintenance.clone());
        let heartbeats = Arc::new(config.correlate.heartbeats.clone());
        let done = self.reloader.apply(config, self.clock.now());
        if done.rules {
            self.health.maintenance.set(windows);
            self.health.heartbeats.set(heartbeats);
        }
        let old = self.health.rules.get();
        if done.rules && *old != hash {
            // `/readyz`, the status page and `sluice_rules_info` name the rules in force.
            crate::metrics::rules_info(&old).set(0.0);
            crate::metrics::rules_info(&hash).set(1.0);
            self.health.rules.set(Arc::new(hash));
        }
        done
    }

    /// The `POST /-/reload` requests (once): whoever can read the config file answers them.
    pub fn reload_requests(&self) -> Option<tokio::sync::mpsc::Receiver<ReloadAsked>> {
        self.reloads.lock().expect("reloads lock").take()
    }

    /// A reload whose configuration did not validate (the running one stays).
    pub fn reload_failed(&self) {
        self.reloader.failed();
    }

    /// Waits for the shutdown sequence to finish.
    pub async fn wait(self) -> ShutdownReport {
        self.task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "shutdown task failed");
            ShutdownReport {
                connections_cut: 0,
                messages_undelivered: -1,
                shards_unfinished: true,
            }
        })
    }
}
