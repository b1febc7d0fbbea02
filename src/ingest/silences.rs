//! Silences: the store both silences APIs share, and `/api/v1/silences`, sluice's own shape
//! (`silences_v2` serves Alertmanager's): `POST /api/v1/silences` (201 with the silence and its
//! `id`), `GET /api/v1/silences[/<id>]`, `DELETE /api/v1/silences/<id>` (expires it now).
//!
//! A silence is `{"matchers": [{"name": "source", "op": "=", "value": "web-1"}, ...],
//! "starts_at": "<RFC 3339, default now>", "ends_at": "<RFC 3339>", "created_by": "...",
//! "comment": "..."}`, lasting at most `auth.max_silence` (7 days by default). Every change
//! sends the silences in force to every shard; expired silences stop applying on their own
//! (each shard has a timer at every start and end). In Kafka mode the store is kept with the
//! silences topic (`silence_log`): a change is answered once the topic has it, and changes made
//! through other instances arrive from it.
//!
//! Who may do what is admin auth's (`super::auth::admin`): reads need `read`; [`SilenceStore::
//! create`] and [`SilenceStore::expire`], the one way in for both APIs and both pipeline
//! modes, check `write`, a limited token's routing keys and `broad_silence`, then log the
//! change with the token's name and count it (`sluice_admin_changes_total`).

use std::path::PathBuf;
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

use super::auth::{admin, Principal, Scope};
use super::response::{self, Body};
use super::silence_log::{self, SilenceLog};

pub const PREFIX: &str = "/api/v1/silences";

/// Expired silences are listed for this long, then forgotten.
const KEEP_EXPIRED: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
pub struct SilenceStore {
    silences: Mutex<Vec<Silence>>,
    /// Kafka mode: the silences topic every change is written to before it is answered.
    log: Option<Arc<SilenceLog>>,
    /// Memory mode with a state directory: the file every change is saved to.
    file: Option<PathBuf>,
}

/// One request to a silences API, as the router hands it over.
pub struct Call<'a> {
    pub method: &'a Method,
    pub query: Option<&'a str>,
    pub body: Option<Vec<u8>>,
    pub now: UnixMillis,
    pub intake: &'a Intake,
    /// Who made it (admin auth).
    pub who: &'a Principal,
    /// `auth.max_silence`.
    pub max: Duration,
}

impl Call<'_> {
    /// The refusal of `path` if the caller lacks the scope the method needs (reads `read`,
    /// the rest `write`).
    pub fn refused(&self, path: &str) -> Option<http::Response<Body>> {
        let scope = if self.method == Method::GET {
            Scope::Read
        } else {
            Scope::Write
        };
        let denied = self.who.require(scope).err()?;
        Some(denied.refuse(self.method, path))
    }
}

/// Why a change was not made.
#[derive(Debug)]
pub enum Failed {
    /// The caller may not make it.
    Denied(admin::Denied),
    /// No silence has the id.
    NotFound,
    /// Kafka mode: the silences topic did not take it.
    Unavailable,
}

impl Failed {
    /// The generic JSON answer (the v1 API's; the v2 API answers 404 its own way).
    pub fn response(&self, method: &Method, path: &str, id: &str) -> http::Response<Body> {
        match self {
            Failed::Denied(d) => d.refuse(method, path),
            Failed::NotFound => not_found(id),
            Failed::Unavailable => response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the silences topic did not take the change; try again",
                &[],
            ),
        }
    }
}

impl SilenceStore {
    /// Kafka mode: changes go through `log`; `loaded` is what the topic held at start.
    pub fn shared(log: Arc<SilenceLog>, loaded: Vec<Silence>) -> Self {
        SilenceStore {
            silences: Mutex::new(loaded),
            log: Some(log),
            file: None,
        }
    }

    /// Memory mode with a state directory: the silences saved in `file` (one record a line,
    /// as on Kafka mode's silences topic), saved again after every change.
    pub fn saved(file: PathBuf) -> Result<Self, String> {
        let mut loaded = Vec::new();
        match std::fs::read(&file) {
            Ok(bytes) => {
                for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let silence = silence_log::decode_silence(line)
                        .map_err(|e| format!("{} line {}: {e}", file.display(), n + 1))?;
                    loaded.push(silence);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", file.display())),
        }
        Ok(SilenceStore {
            silences: Mutex::new(loaded),
            log: None,
            file: Some(file),
        })
    }

    /// Writes every silence to the state directory's file, if there is one.
    fn save(&self, all: &[Silence], now: UnixMillis) {
        let Some(file) = &self.file else {
            return;
        };
        let mut bytes = Vec::new();
        for s in all {
            bytes.extend(silence_log::encode(s, now));
            bytes.push(b'\n');
        }
        if let Err(e) = crate::correlate::state_dir::write_atomically(file, &bytes) {
            tracing::error!(file = %file.display(), error = %e, "silences not saved");
        }
    }

    /// Changes the silences with `change` (which says whether it changed anything).
    pub fn merge(&self, change: impl FnOnce(&mut Vec<Silence>) -> bool) -> bool {
        change(&mut self.silences.lock().expect("silences lock"))
    }

    /// Every silence known (pending, active, and expired within a day).
    pub fn all(&self) -> Vec<Silence> {
        self.silences.lock().expect("silences lock").clone()
    }

    pub fn find(&self, id: &str) -> Option<Silence> {
        let all = self.silences.lock().expect("silences lock");
        all.iter().find(|s| s.id == id).cloned()
    }

    /// Writes `silence` to the silences topic in Kafka mode.
    async fn write(&self, silence: &Silence, now: UnixMillis) -> Result<(), Failed> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        log.write(silence, now).await.map_err(|e| {
            tracing::warn!(error = %e, "silence not written to the silences topic");
            Failed::Unavailable
        })
    }

    /// Creates `silence` (validated, its id unset) for `who`, if `who` may: gives it its id,
    /// writes it (Kafka mode), applies it, and logs and counts the change.
    pub async fn create(
        &self,
        mut silence: Silence,
        who: &Principal,
        now: UnixMillis,
        intake: &Intake,
    ) -> Result<Silence, Failed> {
        who.may_create(&silence.matchers).map_err(Failed::Denied)?;
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
        self.write(&silence, now).await?;
        self.merge(|all| {
            all.retain(|s| s.id != silence.id);
            all.push(silence.clone());
            true
        });
        self.publish(now, intake).await;
        m::admin_change("silence_created").increment(1);
        tracing::info!(
            token = who.name(),
            silence = %silence.id,
            matchers = %shown(&silence.matchers),
            starts_at = %silence.starts_at,
            ends_at = %silence.ends_at,
            created_by = %silence.created_by,
            "silence created"
        );
        Ok(silence)
    }

    /// Expires silence `id` now for `who`, if `who` may (an expired one is left as it is).
    pub async fn expire(
        &self,
        id: &str,
        who: &Principal,
        now: UnixMillis,
        intake: &Intake,
    ) -> Result<Silence, Failed> {
        let mut s = self.find(id).ok_or(Failed::NotFound)?;
        who.may_expire(&s.matchers).map_err(Failed::Denied)?;
        if s.state(now) == SilenceState::Expired {
            return Ok(s);
        }
        s.ends_at = now;
        s.starts_at = s.starts_at.min(now);
        self.write(&s, now).await?;
        self.merge(|all| {
            if let Some(old) = all.iter_mut().find(|old| old.id == s.id) {
                *old = s.clone();
            }
            true
        });
        self.publish(now, intake).await;
        m::admin_change("silence_expired").increment(1);
        tracing::info!(token = who.name(), silence = %s.id, "silence expired");
        Ok(s)
    }

    /// Handles a request under [`PREFIX`]; `rest` is what follows it in the path.
    pub async fn handle(&self, rest: &str, call: Call<'_>) -> http::Response<Body> {
        let path = format!("{PREFIX}{rest}");
        let id = rest.strip_prefix('/').filter(|id| !id.is_empty());
        if let Some(refused) = call.refused(&path) {
            return refused;
        }
        let Call {
            method,
            body,
            now,
            intake,
            who,
            max,
            ..
        } = call;
        match (method, id) {
            (&Method::GET, None) => {
                let all = self.all();
                response::json(
                    StatusCode::OK,
                    &all.iter().map(|s| s.view(now)).collect::<Vec<_>>(),
                )
            }
            (&Method::GET, Some(id)) => match self.find(id) {
                Some(s) => response::json(StatusCode::OK, &s.view(now)),
                None => not_found(id),
            },
            (&Method::POST, None) => match parse(&body.unwrap_or_default(), now, max) {
                Ok(silence) => match self.create(silence, who, now, intake).await {
                    Ok(s) => {
                        let view = serde_json::to_vec(&s.view(now)).expect("a silence serializes");
                        response::text(StatusCode::CREATED, view, "application/json")
                    }
                    Err(failed) => failed.response(method, &path, ""),
                },
                Err(errors) => response::error(
                    StatusCode::BAD_REQUEST,
                    "invalid silence",
                    "Silence is invalid",
                    &errors,
                ),
            },
            (&Method::DELETE, Some(id)) => match self.expire(id, who, now, intake).await {
                Ok(s) => {
                    let view = serde_json::to_vec(&s.view(now)).expect("a silence serializes");
                    response::text(StatusCode::OK, view, "application/json")
                }
                Err(failed) => failed.response(method, &path, id),
            },
            _ => {
                let msg = format!("{method} {path} is not part of the silences API (POST and GET {PREFIX}, GET and DELETE {PREFIX}/<id>)");
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
            self.save(&all, now);
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

/// Matchers as a log shows them: `source="db-1", labels.team=~"ops"`.
fn shown(matchers: &[Matcher]) -> String {
    let all: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    all.join(", ")
}

fn not_found(id: &str) -> http::Response<Body> {
    response::error(
        StatusCode::NOT_FOUND,
        "not found",
        &format!("no silence with id {id:?}"),
        &[],
    )
}

/// A duration as config writes it, in its largest whole unit: `7d`, `36h`, `90m`.
pub fn duration_text(d: Duration) -> String {
    let (s, ms) = (d.as_secs(), d.as_millis());
    match () {
        _ if ms % 1000 != 0 => format!("{ms}ms"),
        _ if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        _ if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        _ if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// The checks both APIs make of a silence besides its fields' own: something is required of
/// the alerts it matches, and its times (named `start` and `end` in the API's spelling) make a
/// future range of at most `max`.
pub fn check(
    matchers: &[Matcher],
    times: (Option<UnixMillis>, Option<UnixMillis>),
    names: (&str, &str),
    now: UnixMillis,
    max: Duration,
    errors: &mut Vec<String>,
) {
    let negative =
        |m: &Matcher| matches!(m.op, Op::Ne | Op::NotRe) || (m.op == Op::Re && m.matches_value(""));
    if !matchers.is_empty() && matchers.iter().all(negative) {
        errors
            .push("'matchers' would match every alert; add a matcher that requires a value".into());
    }
    let (start, end) = names;
    if let (Some(s), Some(e)) = times {
        if e <= now {
            errors.push(format!("'{end}' is in the past"));
        } else if e <= s {
            errors.push(format!("'{end}' must be after '{start}'"));
        } else if e.saturating_sub(s) > max {
            errors.push(format!(
                "'{end}' is more than {} after '{start}': a silence lasts at most \
                 auth.max_silence",
                duration_text(max)
            ));
        }
    }
}

/// Validates a silence body, reporting every problem with its field.
/// The date-time field `name` of a silence body: `default` when absent (an error naming it when
/// there is none), an error naming it when it is not RFC 3339.
pub fn time_field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    default: Option<UnixMillis>,
    errors: &mut Vec<String>,
) -> Option<UnixMillis> {
    match obj.get(name) {
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
    }
}

fn parse(body: &[u8], now: UnixMillis, max: Duration) -> Result<Silence, Vec<String>> {
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
    let starts_at = time_field(obj, "starts_at", Some(now), &mut errors);
    let ends_at = time_field(obj, "ends_at", None, &mut errors);
    check(
        &matchers,
        (starts_at, ends_at),
        ("starts_at", "ends_at"),
        now,
        max,
        &mut errors,
    );
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
    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    #[test]
    fn a_valid_silence_parses() {
        let s = parse(
            br#"{"matchers":[{"name":"source","op":"=","value":"web-1"},{"name":"labels.team","op":"=~","value":"ops|infra"}],
                "ends_at":"2023-11-14T23:13:20Z","created_by":"ana","comment":"kernel upgrade"}"#,
            NOW,
            WEEK,
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
            WEEK,
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
        let errors = parse(br#"{"matchers":[{"name":"source","op":"!=","value":"x"}],"ends_at":"2023-11-14T22:00:00Z","created_by":"a"}"#, NOW, WEEK).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "'matchers' would match every alert; add a matcher that requires a value",
                "'ends_at' is in the past"
            ]
        );
    }

    #[test]
    fn a_silence_longer_than_the_cap_is_refused_naming_it() {
        // NOW is 2023-11-14T22:13:20Z; 7 days and a second later:
        let body = br#"{"matchers":[{"name":"source","op":"=","value":"a"}],"ends_at":"2023-11-21T22:13:21Z","created_by":"a"}"#;
        assert_eq!(
            parse(body, NOW, WEEK).unwrap_err(),
            ["'ends_at' is more than 7d after 'starts_at': a silence lasts at most auth.max_silence"]
        );
        let exactly = br#"{"matchers":[{"name":"source","op":"=","value":"a"}],"ends_at":"2023-11-21T22:13:20Z","created_by":"a"}"#;
        assert!(parse(exactly, NOW, WEEK).is_ok());
        // Measured from its start: a week starting tomorrow is fine.
        let later = br#"{"matchers":[{"name":"source","op":"=","value":"a"}],"starts_at":"2023-11-15T22:13:20Z","ends_at":"2023-11-22T22:13:20Z","created_by":"a"}"#;
        assert!(parse(later, NOW, WEEK).is_ok());
        assert_eq!(duration_text(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_text(Duration::from_secs(90)), "90s");
    }
}
