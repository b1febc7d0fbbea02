//! The generic answers, for formats whose senders only look at the status (Alertmanager,
//! Grafana and most webhooks): a small JSON body a person can read in the sender's log.
//!
//! - accepted: `{"status":"success","message":"2 accepted, 1 rejected","accepted":2,
//!   "rejected":[{"item":"alerts[1]","errors":["alertmanager_webhook: 'alerts[1].status' must be firing or resolved"]}]}`
//! - refused: `{"status":"invalid event","message":"alertmanager_webhook: 'alerts' is missing",
//!   "errors":["alertmanager_webhook: 'alerts' is missing"]}`: `errors` names every field that is
//!   wrong. A body that is not the format at all (not JSON, not an object, a form) has one problem
//!   and no field to name: `{"status":"malformed","message":"grafana: body is not valid JSON",
//!   "errors":[]}`, as the refusals before a body is read.

use http::{Response, StatusCode};
use serde::Serialize;

use crate::ingest::response::{self, Body};
use crate::integration::Integration;

use super::{IntegrationError, Parsed};

#[derive(Serialize)]
struct Accepted<'a> {
    status: &'static str,
    message: String,
    accepted: usize,
    rejected: Vec<RejectedItem<'a>>,
}

#[derive(Serialize)]
struct RejectedItem<'a> {
    item: &'a str,
    errors: Vec<String>,
}

/// `status` with the generic accepted body.
pub fn accepted(status: StatusCode, kind: Integration, parsed: &Parsed) -> Response<Body> {
    let name = kind.as_str();
    let rejected: Vec<RejectedItem<'_>> = parsed
        .rejected
        .iter()
        .map(|r| RejectedItem {
            item: &r.item,
            errors: r.errors.iter().map(|e| format!("{name}: {e}")).collect(),
        })
        .collect();
    let message = if rejected.is_empty() {
        format!("{} accepted", parsed.events.len())
    } else {
        format!(
            "{} accepted, {} rejected",
            parsed.events.len(),
            rejected.len()
        )
    };
    response::json(
        status,
        &Accepted {
            status: "success",
            message,
            accepted: parsed.events.len(),
            rejected,
        },
    )
}

/// The generic refusal: the error's status, its message and every problem with a field; a
/// malformed body's one problem is the message alone (`errors` empty, not the message repeated).
pub fn refused(err: &IntegrationError) -> Response<Body> {
    match err {
        IntegrationError::Malformed { .. } => {
            response::error(err.status(), "malformed", &err.to_string(), &[])
        }
        IntegrationError::Invalid { .. } | IntegrationError::AllRejected { .. } => response::error(
            err.status(),
            "invalid event",
            &err.to_string(),
            &err.messages(),
        ),
    }
}

/// PagerDuty's answer naming the dedup key when the request was one event (what senders that
/// copy PagerDuty's integration check), else the generic accepted body; `202` either way.
pub fn pd_style_accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
    match parsed.events.as_slice() {
        [one] => response::pd_accepted(&one.dedup_key),
        _ => accepted(StatusCode::ACCEPTED, kind, parsed),
    }
}
