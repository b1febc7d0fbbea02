//! The operator's routes served beside ingest: liveness (`/healthz`), readiness (`/readyz`)
//! and the Prometheus exposition (`/metrics`). Readiness is false while shutting down or while
//! Kafka is unreachable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use super::response::{self, Body};

/// Readiness: up, not shutting down, and Kafka reachable.
#[derive(Default)]
pub struct Health {
    pub shutting_down: AtomicBool,
    pub kafka_connected: Arc<AtomicBool>,
}

impl Health {
    pub fn new(kafka_connected: Arc<AtomicBool>) -> Self {
        Health {
            shutting_down: AtomicBool::new(false),
            kafka_connected,
        }
    }

    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.shutting_down.load(Ordering::Relaxed) {
            Some("shutting down")
        } else if !self.kafka_connected.load(Ordering::Relaxed) {
            Some("kafka unreachable")
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
