//! The operator's routes served beside ingest: liveness (`/healthz`), readiness (`/readyz`),
//! the Prometheus exposition (`/metrics`) and `POST /-/reload` (the write scope), which asks
//! the process that runs `sluice serve` to reload its config file as SIGHUP does. Readiness is false while shutting down, while
//! Kafka is unreachable, or (Kafka mode) while assigned partitions are being restored.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use tokio::sync::{mpsc, oneshot};

use crate::publish::Sink;

use super::auth::admin::Denied;
use super::auth::{Principal, Scope};

use super::response::{self, Body};

/// Readiness: up, not shutting down, the sink ready to deliver (Kafka reachable), every owned
/// partition restored.
#[derive(Default)]
pub struct Health {
    pub shutting_down: AtomicBool,
    /// Where messages go; none (test rigs) is never ready.
    pub sink: Option<Arc<dyn Sink>>,
    /// Kafka mode: partitions assigned to this instance and not yet restored.
    pub partitions_restoring: Arc<AtomicUsize>,
    /// The fingerprint of this instance's rules, shown by `/readyz`.
    pub rules: crate::live::Live<String>,
    /// Where `POST /-/reload` asks for a reload (set by `sluice serve`).
    pub reloads: std::sync::OnceLock<mpsc::Sender<ReloadAsked>>,
    /// When the process started (Alertmanager's `uptime`).
    pub started: crate::time::UnixMillis,
    /// The `[[maintenance]]` windows in force, for the status page (replaced at a reload).
    pub maintenance: crate::live::Live<Vec<crate::config::MaintenanceWindow>>,
    /// The `[[heartbeats]]` in force, for the status page (replaced at a reload).
    pub heartbeats: crate::live::Live<Vec<crate::config::HeartbeatConfig>>,
}

/// A reload asked for over HTTP, and where its outcome goes: the sections that need a restart
/// to take effect, or the configuration's problems.
pub type ReloadAsked = oneshot::Sender<Result<Vec<String>, String>>;

/// `POST /-/reload` for `who`: reloads as SIGHUP does and says how it went.
pub async fn reload(health: &Health, who: Result<Principal, Denied>, path: &str) -> Response<Body> {
    if let Err(denied) = who.and_then(|who| who.require(Scope::Write)) {
        return denied.refuse(&http::Method::POST, path);
    }
    let Some(tx) = health.reloads.get() else {
        let msg = "this process does not reload (only sluice serve does)";
        return response::error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg, &[]);
    };
    let (reply, answer) = oneshot::channel();
    if tx.send(reply).await.is_err() {
        return response::unavailable("shutting down; not reloaded");
    }
    match answer.await {
        Ok(Ok(need_restart)) => response::json(
            StatusCode::OK,
            &serde_json::json!({"status": "reloaded", "need_restart": need_restart}),
        ),
        Ok(Err(problems)) => response::error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the configuration was not reloaded; the running one stays",
            &[problems],
        ),
        Err(_) => response::unavailable("shutting down; not reloaded"),
    }
}

impl Health {
    pub fn new(sink: Arc<dyn Sink>, partitions_restoring: Arc<AtomicUsize>) -> Self {
        Health {
            shutting_down: AtomicBool::new(false),
            sink: Some(sink),
            partitions_restoring,
            rules: Default::default(),
            reloads: std::sync::OnceLock::new(),
            started: crate::clock::Clock::system().now(),
            maintenance: Default::default(),
            heartbeats: Default::default(),
        }
    }

    pub fn with_rules(self, rules: String) -> Self {
        self.rules.set(std::sync::Arc::new(rules));
        self
    }

    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.shutting_down.load(Ordering::Relaxed) {
            Some("shutting down")
        } else if !self.sink.as_ref().is_some_and(|s| s.ready()) {
            Some("kafka unreachable")
        } else if self.partitions_restoring.load(Ordering::Relaxed) > 0 {
            Some("joining the correlators' group or restoring partitions")
        } else {
            None
        }
    }
}

pub fn healthz() -> Response<Body> {
    response::text(StatusCode::OK, "ok\n", "text/plain")
}

/// `ready` or `not ready: <why>`, then `rules <fingerprint>` (`sluice_rules_info`).
pub fn readyz(health: &Health) -> Response<Body> {
    let (status, first) = match health.not_ready() {
        None => (StatusCode::OK, "ready".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
    };
    let body = match health.rules.get().as_str() {
        "" => format!("{first}\n"),
        rules => format!("{first}\nrules {rules}\n"),
    };
    response::text(status, body, "text/plain")
}

pub fn metrics(handle: &PrometheusHandle) -> Response<Body> {
    response::text(
        StatusCode::OK,
        handle.render(),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::publish::encode::OutboundMessage;
    use crate::publish::SendError;

    /// A sink whose readiness the test sets.
    struct Flag(AtomicBool);

    impl Sink for Flag {
        fn send(&self, _: &OutboundMessage) -> Result<(), SendError> {
            Ok(())
        }
        fn ready(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
        fn flush(&self, _: std::time::Duration) -> i32 {
            0
        }
    }

    #[test]
    fn readiness_names_what_it_waits_for() {
        let sink = Arc::new(Flag(AtomicBool::new(true)));
        let health = Health::new(sink.clone(), Arc::default());
        assert_eq!(health.not_ready(), None);
        health.partitions_restoring.store(2, Ordering::Relaxed);
        assert_eq!(
            health.not_ready(),
            Some("joining the correlators' group or restoring partitions")
        );
        sink.0.store(false, Ordering::Relaxed);
        assert_eq!(health.not_ready(), Some("kafka unreachable"));
        health.shutting_down.store(true, Ordering::Relaxed);
        assert_eq!(health.not_ready(), Some("shutting down"));
    }
}
