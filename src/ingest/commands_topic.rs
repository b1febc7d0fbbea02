//! The loop from downstream: commands on incidents read from `kafka.commands_topic`, so a paging
//! or chat-ops service that consumes the incidents topic acknowledges, resolves or snoozes in
//! sluice by writing one record (schema `schemas/sluice.command.v1.json`):
//!
//! ```json
//! {"schema": "sluice.command.v1", "incident_id": "inc_3f0c...", "action": "snooze",
//!  "duration": "30m", "by": "oncall-bot (ana)", "reason": "deploying the fix",
//!  "routing_key": "payments"}
//! ```
//!
//! `routing_key` may be left out: it is then read from the incidents view. Any key and any
//! partition of the commands topic will do: each instance with the ingest role belongs to the
//! consumer group `sluice-commands`, and hands each command to the pipeline as the admin API
//! does, which sends it to the partition that owns the incident (the events topic in Kafka
//! mode), in order with its events. Offsets are committed once the pipeline took the command;
//! a record that is not a command (not JSON, a missing or bad field, no routing key to be
//! found) is logged, counted in `sluice_command_records_skipped_total{reason}` and skipped,
//! never fatal. Writing to the commands topic is the authorization: guard it with Kafka ACLs.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use serde::Deserialize;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{defaults, KafkaConfig};
use crate::event::{Command, CommandAction};
use crate::metrics as m;
use crate::pipeline::Intake;
use crate::time::parse_duration;
use crate::view::View;

pub const SCHEMA: &str = "sluice.command.v1";
/// The longest snooze a command may ask.
pub const MAX_SNOOZE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long to wait before handing a command over again when the pipeline refused it.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    schema: String,
    incident_id: String,
    action: String,
    by: String,
    reason: Option<String>,
    duration: Option<String>,
    routing_key: Option<String>,
}

/// Why a record was skipped (the `reason` label).
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not a command: not JSON, a field missing, unknown or of the wrong kind.
    Malformed(String),
    /// No `routing_key`, and the incident is not in the incidents view.
    UnknownIncident,
}

impl Skip {
    fn reason(&self) -> &'static str {
        match self {
            Skip::Malformed(_) => "malformed",
            Skip::UnknownIncident => "unknown_incident",
        }
    }
}

/// The command a record holds, received at `clock`'s now.
pub fn command(bytes: &[u8], view: &View, clock: &Clock) -> Result<Command, Skip> {
    let bad = |why: String| Skip::Malformed(why);
    let r: Record = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if r.schema != SCHEMA {
        return Err(bad(format!("'schema' must be {SCHEMA:?}")));
    }
    let now = clock.now();
    let action = match (r.action.as_str(), r.duration.as_deref()) {
        ("acknowledge", None) => CommandAction::Acknowledge,
        ("resolve", None) => CommandAction::Resolve,
        ("snooze", Some(raw)) => match parse_duration(raw) {
            Ok(d) if !d.is_zero() && d <= MAX_SNOOZE => CommandAction::Snooze {
                until: now.saturating_add(d),
            },
            _ => return Err(bad(format!("'duration' {raw:?} is not 1s to 7d"))),
        },
        ("snooze", None) => return Err(bad("'duration' is required to snooze".into())),
        ("acknowledge" | "resolve", Some(_)) => {
            return Err(bad("'duration' is for snooze only".into()))
        }
        (other, _) => {
            return Err(bad(format!(
                "'action' {other:?} is not acknowledge, resolve or snooze"
            )))
        }
    };
    if r.by.trim().is_empty() || r.incident_id.is_empty() {
        return Err(bad("'by' and 'incident_id' must not be empty".into()));
    }
    let routing_key = match r.routing_key {
        Some(key) => key,
        None => view
            .get(&r.incident_id)
            .map(|e| e.str("routing_key").to_string())
            .ok_or(Skip::UnknownIncident)?,
    };
    Ok(Command {
        routing_key,
        incident_id: r.incident_id,
        action,
        by: r.by,
        reason: r.reason,
        received_at: now,
    })
}

/// Starts reading `kafka.commands_topic` (when set) in a task, until `stop` fires.
pub fn follow(
    kafka: &KafkaConfig,
    bootstrap: &str,
    intake: Intake,
    view: Arc<View>,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) -> Result<(), KafkaError> {
    let Some(topic) = kafka.commands_topic.clone() else {
        return Ok(());
    };
    let mut config = crate::publish::kafka::client_config(kafka, bootstrap);
    config
        .set("group.id", defaults::COMMANDS_GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    let consumer: StreamConsumer = config.create()?;
    consumer.subscribe(&[&topic])?;
    tracing::info!(topic, "reading commands on incidents");
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                r = consumer.recv() => r,
                _ = stop.changed() => break,
            };
            let msg = match received {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "commands topic: read failed");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            match command(msg.payload().unwrap_or_default(), &view, &clock) {
                Ok(c) => {
                    // The pipeline may be full for a moment: hand it over until it takes it.
                    while let Err(refused) = intake.submit_command(c.clone()).await {
                        tracing::warn!(
                            reason = refused.reason(),
                            "command not taken yet; retrying"
                        );
                        tokio::time::sleep(RETRY).await;
                        if *stop.borrow() {
                            return;
                        }
                    }
                }
                Err(skip) => {
                    m::command_records_skipped(skip.reason()).increment(1);
                    tracing::warn!(
                        ?skip,
                        partition = msg.partition(),
                        offset = msg.offset(),
                        "commands topic: record skipped"
                    );
                }
            }
            if let Err(e) = consumer.commit_message(&msg, CommitMode::Async) {
                tracing::debug!(error = %e, "commands topic: commit failed");
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixMillis;

    #[test]
    fn records_become_commands_or_are_skipped_by_name() {
        let view = View::default();
        let clock = Clock::manual(UnixMillis(1_000));
        let ok = br#"{"schema":"sluice.command.v1","incident_id":"inc_1","action":"snooze","duration":"1m","by":"bot","routing_key":"rk"}"#;
        let c = command(ok, &view, &clock).unwrap();
        assert_eq!(
            c.action,
            CommandAction::Snooze {
                until: UnixMillis(61_000)
            }
        );
        assert_eq!((c.routing_key.as_str(), c.by.as_str()), ("rk", "bot"));
        for (bad, why) in [
            (&br#"not json"#[..], "expected"),
            (br#"{"schema":"sluice.command.v2","incident_id":"i","action":"resolve","by":"b","routing_key":"rk"}"#, "'schema'"),
            (br#"{"schema":"sluice.command.v1","incident_id":"i","action":"escalate","by":"b","routing_key":"rk"}"#, "'action'"),
            (br#"{"schema":"sluice.command.v1","incident_id":"i","action":"snooze","by":"b","routing_key":"rk"}"#, "'duration' is required"),
            (br#"{"schema":"sluice.command.v1","incident_id":"i","action":"resolve","by":" ","routing_key":"rk"}"#, "'by'"),
            (br#"{"schema":"sluice.command.v1","incident_id":"i","action":"resolve","by":"b","team":"x"}"#, "unknown field"),
        ] {
            match command(bad, &view, &clock) {
                Err(Skip::Malformed(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        let no_key =
            br#"{"schema":"sluice.command.v1","incident_id":"inc_9","action":"resolve","by":"b"}"#;
        assert_eq!(command(no_key, &view, &clock), Err(Skip::UnknownIncident));
    }
}
