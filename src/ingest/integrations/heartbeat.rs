//! Explicit heartbeats for sluice's dead man's switches (`[[heartbeats]]`): a cron job, a
//! backup script or a monitoring system's self-check says "still here". Served at
//! `POST /heartbeat/<name>` (the routing key from `X-Routing-Key`, `?routing_key=` or
//! `[integrations.heartbeat] routing_key`), `POST /integrations/heartbeat/<routing_key>/heartbeat/<name>`
//! and `POST /integrations/heartbeat/<routing_key>` with the name in the query or the body.
//!
//! - **Body**: empty, or a JSON object with optional `name` and `message` (a string shown in
//!   the log of beats; nothing else is read).
//! - **Name**: the path segment after `/heartbeat/`, else `?name=`, else the body's `name`;
//!   1 to 255 characters, no `/`. Missing: refused, `400` naming where it may go.
//! - **Event**: a `trigger` with `dedup_key` = the name, severity `info`, summary = `message`
//!   or `heartbeat`. The correlator takes it as a beat of the heartbeat of that routing key
//!   and name (`correlate::shard::heartbeats`) and never correlates it; a beat for a
//!   heartbeat not configured is dropped and counted
//!   (`sluice_events_dropped_total{reason="unknown_heartbeat"}`).
//! - **Answer**: `202` and the generic body.

use simd_json::prelude::*;

use crate::event::{Action, Event, Severity};
use crate::integration::Integration;

use super::fields::query_param;
use super::{json_object, summary, Format, IngestRequest, IntegrationError, Parsed};

const KIND: Integration = Integration::Heartbeat;

/// Explicit heartbeats in the integrations registry.
pub struct Beat;

fn invalid(problem: String) -> IntegrationError {
    IntegrationError::Invalid {
        kind: KIND,
        problems: vec![problem],
    }
}

impl Format for Beat {
    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        let blank = body.iter().all(u8::is_ascii_whitespace);
        let root = match blank {
            true => None,
            false => Some(json_object(KIND, body)?),
        };
        let member = |name: &str| -> Result<Option<String>, IntegrationError> {
            match root.as_ref().and_then(|r| r.get(name)) {
                None => Ok(None),
                Some(v) if v.is_null() => Ok(None),
                Some(v) => match v.as_str() {
                    Some(s) => Ok(Some(s.to_string())),
                    None => Err(invalid(format!("'{name}' must be a string"))),
                },
            }
        };
        let from_path = req
            .path
            .strip_prefix('/')
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let from_query = query_param(req.query, "name");
        let from_body = member("name")?;
        let message = member("message")?;
        let Some(name) = from_path.or(from_query).or(from_body) else {
            return Err(invalid(
                "'name' is missing: give it in the path (/heartbeat/<name>), the query (?name=) or the body"
                    .into(),
            ));
        };
        let chars = name.chars().count();
        if chars == 0 || chars > 255 || name.contains('/') {
            return Err(invalid(format!(
                "'name' {name:?} must be 1 to 255 characters without '/'"
            )));
        }
        let mut event = Event::new(
            KIND,
            Action::Trigger,
            req.routing_key.to_string(),
            name,
            req.now,
        );
        event.severity = Severity::Info;
        let (text, truncated) = summary(message.as_deref().unwrap_or("heartbeat"));
        event.summary = text;
        Ok(Parsed::one(event, truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::integrations::testing::Request;

    fn request(key: &str, query: Option<&str>, path: &str) -> Request {
        Request::default().routing_key(key).query(query).path(path)
    }

    #[test]
    fn the_name_comes_from_the_path_first_then_the_query_then_the_body() {
        let mut body = br#"{"name":"from-body","message":"done in 42m"}"#.to_vec();
        let req = request("rk", Some("name=from-query"), "/from-path");
        let e = &Beat::parse(&req.get(), &mut body).unwrap().events[0];
        assert_eq!(
            (e.dedup_key.as_str(), e.summary.as_str()),
            ("from-path", "done in 42m")
        );
        let mut body = br#"{"name":"from-body"}"#.to_vec();
        let req = request("rk", Some("name=from%20query"), "");
        assert_eq!(
            Beat::parse(&req.get(), &mut body).unwrap().events[0].dedup_key,
            "from query"
        );
        let mut empty = Vec::new();
        let req = request("rk", None, "/nightly");
        let e = &Beat::parse(&req.get(), &mut empty).unwrap().events[0];
        assert_eq!(
            (e.dedup_key.as_str(), e.summary.as_str()),
            ("nightly", "heartbeat")
        );
        let req = request("rk", None, "");
        let err = Beat::parse(&req.get(), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("'name' is missing"), "{err}");
        let mut bad = br#"{"name":7}"#.to_vec();
        let err = Beat::parse(&req.get(), &mut bad).unwrap_err();
        assert!(err.to_string().contains("'name' must be a string"), "{err}");
    }
}
