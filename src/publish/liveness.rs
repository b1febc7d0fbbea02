//! Each instance's liveness record: about once a `kafka.liveness_interval` (default a minute)
//! every sluice process writes a `sluice.liveness.v1` record to the incidents topic, so that a
//! consumer can tell "quiet" (records keep coming, no incident) from "sluice is down" (no record
//! from any instance for a few intervals), and a deliberate stop (a last record saying
//! `stopping`) from a crash. Key `liveness:<instance>`, CloudEvents type `io.sluice.liveness`;
//! consumers of incidents skip it by its `schema` (or `type`), as they skip any record they do
//! not know.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::time::UnixMillis;

use super::encode::{to_json, MessageKind, OutboundMessage, Topic};
use super::Sink;

pub const LIVENESS_SCHEMA: &str = "sluice.liveness.v1";

/// What an instance says of itself.
#[derive(Clone, Debug)]
pub struct Liveness {
    pub instance: String,
    pub started_at: UnixMillis,
    /// Zero: no record is written.
    pub interval: Duration,
    /// `memory` or `kafka`.
    pub mode: &'static str,
    pub roles: Vec<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    instance: &'a str,
    /// `running`, or `stopping` in the last record of a deliberate stop.
    state: &'static str,
    started_at: UnixMillis,
    interval_seconds: u64,
    version: &'static str,
    mode: &'static str,
    roles: &'a [&'static str],
}

impl Liveness {
    /// The record at `now` (its `published_at` stamped).
    pub fn message(&self, stopping: bool, now: UnixMillis) -> OutboundMessage {
        let body = Body {
            schema: LIVENESS_SCHEMA,
            kind: MessageKind::Liveness.as_str(),
            instance: &self.instance,
            state: if stopping { "stopping" } else { "running" },
            started_at: self.started_at,
            interval_seconds: self.interval.as_secs(),
            version: env!("CARGO_PKG_VERSION"),
            mode: self.mode,
            roles: &self.roles,
        };
        let mut msg = OutboundMessage {
            topic: Topic::Incidents,
            kind: MessageKind::Liveness,
            key: format!("liveness:{}", self.instance),
            id: format!("{}.{}", self.instance, now.0),
            body: to_json(&body),
            published_at: None,
            first_event_at: None,
            decided_at: now,
        };
        msg.stamp(now);
        msg
    }

    /// Writes a record now and every interval until `stop`, then a last one saying `stopping`.
    pub async fn run(self, sink: Arc<dyn Sink>, clock: Clock, mut stop: watch::Receiver<bool>) {
        if self.interval.is_zero() {
            return;
        }
        let send = |stopping: bool| {
            if let Err(e) = sink.send(&self.message(stopping, clock.now())) {
                tracing::warn!(error = ?e, "liveness record not sent");
            }
        };
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => send(false),
                _ = stop.changed() => {
                    send(true);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_its_instance_and_state() {
        let l = Liveness {
            instance: "sluice-a".into(),
            started_at: UnixMillis(1_765_000_000_000),
            interval: Duration::from_secs(60),
            mode: "kafka",
            roles: vec!["ingest", "correlate"],
        };
        let msg = l.message(true, UnixMillis(1_765_000_060_000));
        assert_eq!(msg.key, "liveness:sluice-a");
        assert_eq!(msg.kind.ce_type(), "io.sluice.liveness");
        let body: serde_json::Value = serde_json::from_slice(&msg.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "schema": "sluice.liveness.v1", "type": "liveness", "instance": "sluice-a",
                "state": "stopping", "started_at": "2025-12-06T05:46:40.000Z",
                "interval_seconds": 60, "version": env!("CARGO_PKG_VERSION"), "mode": "kafka",
                "roles": ["ingest", "correlate"], "published_at": "2025-12-06T05:47:40.000Z"
            })
        );
    }
}
