//! The silences API: `POST /api/v1/silences` (201 with the silence and its `id`),
//! `GET /api/v1/silences[/<id>]`, `DELETE /api/v1/silences/<id>` (expires it now).
//!
//! A silence is `{"matchers": [{"name": "source", "op": "=", "value": "web-1"}, ...],
//! "starts_at": "<RFC 3339, default now>", "ends_at": "<RFC 3339>", "created_by": "...",
//! "comment": "..."}`. Every change sends the silences in force to every shard; expired
//! silences stop applying on their own (each shard has a timer at every start and end). In
//! Kafka mode the store is kept with the silences topic (`silence_log`): a change is answered
//! once the topic has it, and changes made through other instances arrive from it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::correlate::silence::{Silence, SilenceState};
use crate::event::deterministic_id;
use crate::matchers::{Matcher, Op};
use crate::metrics as m;
use crate::pipeline::Intake;
use crate::time::{parse_timestamp, Timestamp, UnixMillis};

use super::response::{self, Body};
use super::silence_log::SilenceLog;

pub const PREFIX: &str = "/api/v1/silences";

/// Expired silences are listed for this long, then forgotten.
const KEEP_EXPIRED: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
pub struct SilenceStore {
    silences: Mutex<Vec<Silence>>,
    /// Kafka mode: the silences topic every change is written to before it is answered.
    log: Option<Arc<SilenceLog>>,
}

impl SilenceStore {
    /// Kafka mode: changes go through `log`; `loaded` is what the topic held at start.
    pub fn shared(log: Arc<SilenceLog>, loaded: Vec<Silence>) -> Self {
        SilenceStore {
            silences: Mutex::new(loaded),
            log: Some(log),
        }
    }

    /// Changes the silences with `change` (which says whether it changed anything).
    pub fn merge(&self, change: impl FnOnce(&mut Vec<Silence>) -> bool) -> bool {
        change(&mut self.silences.lock().expect("silences lock"))
    }

    /// Writes `silence` to the silences topic in Kafka mode; the refusal to answer if the
    /// broker did not take it.
    async fn write(&self, silence: &Silence, now: UnixMillis) -> Result<(), http::Response<Body>> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        log.write(silence, now).await.map_err(|e| {
            tracing::warn!(error = %e, "silence not written to the silences topic");
            response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the silences topic did not take the change; try again",
                &[],
            )
        })
    }

    /// Handles a request under [`PREFIX`]; `rest` is what follows it in the path.
    pub async fn handle(
        &self,
        rest: &str,
        method: &Method,
        body: Option<Vec<u8>>,
        now: UnixMillis,
        intake: &Intake,
    ) -> http::Response<Body> {
        let id = rest.strip_prefix('/').filter(|id| !id.is_empty());
        match (method, id) {
            (&Method::GET, None) => {
                let all = self.silences.lock().expect("silences lock");
                response::json(
                    StatusCode::OK,
                    &all.iter().map(|s| s.view(now)).collect::<Vec<_>>(),
                )
            }
            (&Method::GET, Some(id)) => {
                let all = self.silences.lock().expect("silences lock");
                match all.iter().find(|s| s.id == id) {
                    Some(s) => response::json(StatusCode::OK, &s.view(now)),
                    None => not_found(id),
                }
            }
            (&Method::POST, None) => match parse(&body.unwrap_or_default(), now) {
                Ok(mut silence) => {
                    {
                        let all = self.silences.lock().expect("silences lock");
                        let n = all.len().to_le_bytes();
                        silence.id = deterministic_id(
                            "sil_",
                            &[
                                &now.0.to_le_bytes(),
                                &n,
                                silence.comment.as_bytes(),
                                silence.created_by.as_bytes(),
                            ],
                        );
                    }
                    if let Err(refusal) = self.write(&silence, now).await {
                        return refusal;
                    }
                    let view =
                        serde_json::to_vec(&silence.view(now)).expect("a silence serializes");
                    self.merge(|all| {
                        all.retain(|s| s.id != silence.id);
                        all.push(silence);
                        true
                    });
                    self.publish(now, intake).await;
                    response::text(StatusCode::CREATED, view, "application/json")
                }
                Err(errors) => response::error(
                    StatusCode::BAD_REQUEST,
                    "invalid silence",
                    "Silence is invalid",
                    &errors,
                ),
            },
            (&Method::DELETE, Some(id)) => {
                let found = {
                    let all = self.silences.lock().expect("silences lock");
                    all.iter().find(|s| s.id == id).cloned()
                };
                let Some(mut s) = found else {
                    return not_found(id);
                };
                if s.state(now) != SilenceState::Expired {
                    s.ends_at = now;
                    s.starts_at = s.starts_at.min(now);
                    if let Err(refusal) = self.write(&s, now).await {
                        return refusal;
                    }
                }
                let view = serde_json::to_vec(&s.view(now)).expect("a silence serializes");
                self.merge(|all| {
                    if let Some(old) = all.iter_mut().find(|old| old.id == s.id) {
                        *old = s;
                    }
                    true
                });
                self.publish(now, intake).await;
                response::text(StatusCode::OK, view, "application/json")
            }
            _ => {
                let msg = format!("{method} {PREFIX}{rest} is not part of the silences API (POST and GET {PREFIX}, GET and DELETE {PREFIX}/<id>)");
                response::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed",
                    &msg,
                    &[],
                )
            }
        }
    }

    /// Forgets long-expired silences and sends the rest to every shard.
    pub async fn publish(&self, now: UnixMillis, intake: &Intake) {
        let snapshot: Arc<[Silence]> = {
            let mut all = self.silences.lock().expect("silences lock");
            all.retain(|s| now.saturating_sub(s.ends_at) < KEEP_EXPIRED || s.ends_at > now);
            let live: Vec<Silence> = all
                .iter()
                .filter(|s| s.state(now) != SilenceState::Expired)
                .cloned()
                .collect();
            m::gauge(m::SILENCES_ACTIVE).set(live.len() as f64);
            live.into()
        };
        intake.set_silences(snapshot).await;
    }
}

fn not_found(id: &str) -> http::Response<Body> {
    response::error(
        StatusCode::NOT_FOUND,
        "not found",
        &format!("no silence with id {id:?}"),
        &[],
    )
}

/// Validates a silence body, reporting every problem with its field.
fn parse(body: &[u8], now: UnixMillis) -> Result<Silence, Vec<String>> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| vec![format!("'body' is not JSON: {e}")])?;
    let Some(obj) = value.as_object() else {
        return Err(vec!["'body' must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !["matchers", "starts_at", "ends_at", "created_by", "comment"].contains(&key.as_str()) {
            errors.push(format!("'{key}' is not a silence field (matchers, starts_at, ends_at, created_by, comment)"));
        }
    }
    let mut matchers = Vec::new();
    match obj.get("matchers").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => {
            for (i, item) in list.iter().enumerate() {
                let field = |f: &str| item.get(f).and_then(Value::as_str);
                match (field("name"), field("op").or(Some("=")), field("value")) {
                    (Some(name), Some(op), Some(value)) => match Matcher::new(name, op, value) {
                        Ok(m) => matchers.push(m),
                        Err(e) => errors.push(format!("'matchers[{i}]' {e}")),
                    },
                    _ => errors.push(format!("'matchers[{i}]' needs string name, op and value")),
                }
            }
        }
        _ => errors.push("'matchers' must be a non-empty array".into()),
    }
    if matchers
        .iter()
        .all(|m| matches!(m.op, Op::Ne | Op::NotRe) || (m.op == Op::Re && m.matches_value("")))
        && !matchers.is_empty()
    {
        errors
            .push("'matchers' would match every alert; add a matcher that requires a value".into());
    }
    let mut time = |name: &str, default: Option<UnixMillis>| match obj.get(name) {
        None | Some(Value::Null) => {
            if default.is_none() {
                errors.push(format!("'{name}' is missing"));
            }
            default
        }
        Some(v) => match v.as_str().and_then(parse_timestamp) {
            Some(Timestamp::At(t)) => Some(t),
            _ => {
                errors.push(format!("'{name}' is not an RFC 3339 date-time"));
                None
            }
        },
    };
    let starts_at = time("starts_at", Some(now));
    let ends_at = time("ends_at", None);
    if let (Some(s), Some(e)) = (starts_at, ends_at) {
        if e <= now {
            errors.push("'ends_at' is in the past".into());
        } else if e <= s {
            errors.push("'ends_at' must be after 'starts_at'".into());
        }
    }
    let text = |name: &str, errors: &mut Vec<String>, required: bool| match obj.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) if !required => String::new(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            errors.push(format!("'{name}' is missing or blank"));
            String::new()
        }
        Some(_) => {
            errors.push(format!("'{name}' must be a string"));
            String::new()
        }
    };
    let created_by = text("created_by", &mut errors, true);
    let comment = text("comment", &mut errors, false);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Silence {
        id: String::new(),
        matchers,
        starts_at: starts_at.expect("validated"),
        ends_at: ends_at.expect("validated"),
        created_by,
        comment,
        created_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(1_700_000_000_000);

    #[test]
    fn a_valid_silence_parses() {
        let s = parse(
            br#"{"matchers":[{"name":"source","op":"=","value":"web-1"},{"name":"labels.team","op":"=~","value":"ops|infra"}],
                "ends_at":"2023-11-14T23:13:20Z","created_by":"ana","comment":"kernel upgrade"}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(s.matchers.len(), 2);
        assert_eq!(s.starts_at, NOW);
        assert_eq!(s.ends_at, UnixMillis(NOW.0 + 3_600_000));
        assert_eq!(s.state(NOW), SilenceState::Active);
    }

    #[test]
    fn every_problem_names_its_field() {
        let errors = parse(
            br#"{"matchers":[{"name":"hostname","op":"=","value":"x"},{"name":"source"}],"starts_at":"soon","ends_at":"2020-01-01T00:00:00Z","color":"red"}"#,
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                "'color' is not a silence field (matchers, starts_at, ends_at, created_by, comment)",
                "'matchers[0]' name \"hostname\" is not a field (routing_key, integration, severity, source, component, group, class, summary, dedup_key, labels.<name>, entity.<class|host|pod|rack|service|cluster>)",
                "'matchers[1]' needs string name, op and value",
                "'starts_at' is not an RFC 3339 date-time",
                "'created_by' is missing or blank",
            ]
        );
        let errors = parse(br#"{"matchers":[{"name":"source","op":"!=","value":"x"}],"ends_at":"2023-11-14T22:00:00Z","created_by":"a"}"#, NOW).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "'matchers' would match every alert; add a matcher that requires a value",
                "'ends_at' is in the past"
            ]
        );
    }
}
