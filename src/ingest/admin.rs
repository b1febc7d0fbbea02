//! The operator's routes served beside ingest: liveness (`/healthz`), readiness (`/readyz`)
//! and the Prometheus exposition (`/metrics`). Readiness is false while shutting down, while
//! Kafka is unreachable, or (Kafka mode) while assigned partitions are being restored.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use super::response::{self, Body};

/// Readiness: up, not shutting down, Kafka reachable, every owned partition restored.
#[derive(Default)]
pub struct Health {
    pub shutting_down: AtomicBool,
    pub kafka_connected: Arc<AtomicBool>,
    /// Kafka mode: partitions assigned to this instance and not yet restored.
    pub partitions_restoring: Arc<AtomicUsize>,
}

impl Health {
    pub fn new(kafka_connected: Arc<AtomicBool>, partitions_restoring: Arc<AtomicUsize>) -> Self {
        Health {
            shutting_down: AtomicBool::new(false),
            kafka_connected,
            partitions_restoring,
        }
    }

    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.shutting_down.load(Ordering::Relaxed) {
            Some("shutting down")
        } else if !self.kafka_connected.load(Ordering::Relaxed) {
            Some("kafka unreachable")
        } else if self.partitions_restoring.load(Ordering::Relaxed) > 0 {
            Some("restoring partitions")
        } else {
            None
        }
    }
}

pub fn healthz() -> Response<Body> {
    response::text(StatusCode::OK, "ok\n", "text/plain")
}

pub fn readyz(health: &Health) -> Response<Body> {
    match health.not_ready() {
        None => response::text(StatusCode::OK, "ready\n", "text/plain"),
        Some(why) => response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
            "text/plain",
        ),
    }
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

    #[test]
    fn readiness_names_what_it_waits_for() {
        let health = Health::new(Arc::new(AtomicBool::new(true)), Arc::default());
        assert_eq!(health.not_ready(), None);
        health.partitions_restoring.store(2, Ordering::Relaxed);
        assert_eq!(health.not_ready(), Some("restoring partitions"));
        health.kafka_connected.store(false, Ordering::Relaxed);
        assert_eq!(health.not_ready(), Some("kafka unreachable"));
        health.shutting_down.store(true, Ordering::Relaxed);
        assert_eq!(health.not_ready(), Some("shutting down"));
    }
}
