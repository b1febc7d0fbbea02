//! The incidents API, write side: `POST /api/v1/incidents/{id}/acknowledge`, `/resolve` and
//! `/snooze`, with an optional JSON body `{"by": "ana", "reason": "...", "duration": "30m"}`
//! (`duration` required for snooze, at most [`MAX_SNOOZE`]). The write scope; a token limited
//! to routing keys acts only on incidents of its keys.
//!
//! The incident is looked up in the incidents view (its routing key says which partition owns
//! it); one that is not open there is a 404. The command then travels like an event to that
//! partition (memory mode: its shard's queue; Kafka mode: the events topic), and the answer is
//! `202 {"status": "accepted", ...}`: the incident's next message (`acknowledged`, `resolved`,
//! `snoozed`) is the outcome. `by` defaults to the token's name (`anonymous` without tokens).

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::Answer;
use crate::event::{Command, CommandAction};
use crate::ingest::auth::Principal;
use crate::ingest::response;
use crate::pipeline::Intake;
use crate::time::{parse_duration, UnixMillis};
use crate::view::View;

/// The longest snooze.
pub const MAX_SNOOZE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest `by` and `reason` kept.
const MAX_TEXT: usize = 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    by: Option<String>,
    reason: Option<String>,
    duration: Option<String>,
}

/// A request refused before anything is looked up: its status and message.
struct Refusal(StatusCode, String);

impl Refusal {
    fn answer(self) -> Answer {
        let kind = match self.0 {
            StatusCode::NOT_FOUND => "not found",
            _ => "invalid",
        };
        response::error(self.0, kind, &self.1, &[])
    }
}

fn invalid(message: &str) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.to_string())
}

/// What a command request asks, checked.
struct Asked {
    action: CommandAction,
    by: Option<String>,
    reason: Option<String>,
}

fn asked(action: &str, body: &[u8], now: UnixMillis) -> Result<Asked, Refusal> {
    let body: Body = match body.iter().all(u8::is_ascii_whitespace) {
        true => Body::default(),
        false => serde_json::from_slice(body)
            .map_err(|e| invalid(&format!("the body is not a command: {e}")))?,
    };
    let action = match (action, body.duration.as_deref()) {
        ("acknowledge", None) => CommandAction::Acknowledge,
        ("resolve", None) => CommandAction::Resolve,
        ("snooze", Some(raw)) => match parse_duration(raw) {
            Ok(d) if !d.is_zero() && d <= MAX_SNOOZE => CommandAction::Snooze {
                until: now.saturating_add(d),
            },
            _ => {
                let msg = format!("'duration' {raw:?} is not a duration from 1s to 7d");
                return Err(invalid(&msg));
            }
        },
        ("snooze", None) => return Err(invalid("'duration' is required to snooze (\"30m\")")),
        ("acknowledge" | "resolve", Some(_)) => {
            return Err(invalid("'duration' is for snooze only"))
        }
        (other, _) => {
            let msg = format!("no action {other:?}: acknowledge, resolve or snooze");
            return Err(Refusal(StatusCode::NOT_FOUND, msg));
        }
    };
    let text = |s: Option<String>, name: &str| match s {
        Some(s) if s.chars().count() > MAX_TEXT || s.trim().is_empty() => Err(invalid(&format!(
            "'{name}' must be 1 to {MAX_TEXT} characters"
        ))),
        other => Ok(other),
    };
    Ok(Asked {
        action,
        by: text(body.by, "by")?,
        reason: text(body.reason, "reason")?,
    })
}

/// Answers `POST /api/v1/incidents/<id>/<action>`.
pub async fn post(
    view: &View,
    intake: &Intake,
    who: &Principal,
    (id, action): (&str, &str),
    body: &[u8],
    now: UnixMillis,
) -> Answer {
    let asked = match asked(action, body, now) {
        Ok(a) => a,
        Err(refusal) => return refusal.answer(),
    };
    let Some(entry) = view.get(id).filter(|e| e.str("status") != "resolved") else {
        let msg = format!("no open incident {id:?}");
        return response::error(StatusCode::NOT_FOUND, "not found", &msg, &[]);
    };
    let routing_key = entry.str("routing_key").to_string();
    if let Err(denied) = who.may_command(&routing_key) {
        let path = format!("{}/{id}/{action}", super::INCIDENTS);
        return denied.refuse(&http::Method::POST, &path);
    }
    let by = asked.by.unwrap_or_else(|| who.name().to_string());
    let action = asked.action.as_str();
    let command = Command {
        routing_key,
        incident_id: id.to_string(),
        action: asked.action,
        by: by.clone(),
        reason: asked.reason,
        received_at: now,
    };
    tracing::info!(
        token = who.name(),
        incident = id,
        action,
        by,
        "incident command accepted"
    );
    match intake.submit_command(command).await {
        Ok(()) => response::json(
            StatusCode::ACCEPTED,
            &json!({"status": "accepted", "incident_id": id, "action": action, "by": by}),
        ),
        Err(refused) => response::unavailable(&format!(
            "the command was not taken ({}); retry",
            refused.reason()
        )),
    }
}
