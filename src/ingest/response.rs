//! Response bodies: PagerDuty's exact shapes for its endpoints, one JSON shape for the rest.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

pub type Body = Full<Bytes>;

/// Seconds a refused sender should wait before retrying.
pub const RETRY_AFTER_SECS: &str = "1";

#[derive(Serialize)]
struct Status<'a> {
    status: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dedup_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [String]>,
}

pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn text(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The answer to a HEAD request: `resp`'s status and headers, its length in `Content-Length`,
/// no body.
pub fn without_body(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let len = http_body::Body::size_hint(&body)
        .exact()
        .unwrap_or_default();
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    Response::from_parts(parts, Full::new(Bytes::new()))
}

/// `202 {"status":"success","message":"Event processed","dedup_key":"..."}`.
pub fn pd_accepted(dedup_key: &str) -> Response<Body> {
    json(
        StatusCode::ACCEPTED,
        &Status {
            status: "success",
            message: "Event processed",
            dedup_key: Some(dedup_key),
            incident_key: None,
            errors: None,
        },
    )
}

/// `202` for a change event.
pub fn pd_change_accepted() -> Response<Body> {
    json(
        StatusCode::ACCEPTED,
        &Status {
            status: "success",
            message: "Change event processed",
            dedup_key: None,
            incident_key: None,
            errors: None,
        },
    )
}

/// v1: `200 {"status":"success","message":"Event processed","incident_key":"..."}`.
pub fn pd_v1_accepted(incident_key: &str) -> Response<Body> {
    json(
        StatusCode::OK,
        &Status {
            status: "success",
            message: "Event processed",
            dedup_key: None,
            incident_key: Some(incident_key),
            errors: None,
        },
    )
}

/// `400 {"status":"invalid event","message":"Event object is invalid","errors":[...]}`.
pub fn pd_invalid(errors: &[String]) -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        &Status {
            status: "invalid event",
            message: "Event object is invalid",
            dedup_key: None,
            incident_key: None,
            errors: Some(errors),
        },
    )
}

/// The body PagerDuty's spec gives for a body that is not a JSON object.
pub fn pd_unrecognized(error: &str) -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        &Status {
            status: "Unrecognized object",
            message: "Event object format is unrecognized",
            dedup_key: None,
            incident_key: None,
            errors: Some(&[error.to_string()]),
        },
    )
}

/// A refusal outside the PagerDuty shapes: `{"status": ..., "message": ..., "errors": [...]}`.
pub fn error(status: StatusCode, kind: &str, message: &str, errors: &[String]) -> Response<Body> {
    json(
        status,
        &Status {
            status: kind,
            message,
            dedup_key: None,
            incident_key: None,
            errors: Some(errors),
        },
    )
}

/// 413: the body is over the limit; the message names it.
pub fn too_large(limit: usize) -> Response<Body> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid event",
        "Request body is too large",
        &[format!("'body' must be at most {limit} bytes")],
    )
}

/// 503 with `Retry-After`: the pipeline is full or sluice is shutting down; retry elsewhere or later.
pub fn unavailable(message: &str) -> Response<Body> {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message, &[]);
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    resp
}

/// 503 with `Retry-After: <secs>`: the sender is over a rate limit (senders of webhooks retry
/// 5xx only, not 429).
pub fn rate_limited(message: &str, retry_after_secs: u32) -> Response<Body> {
    let mut resp = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "rate limited",
        message,
        &[],
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// PagerDuty's answer to an event over its rate limit, with `status` (429 on the Events API
/// v2, 403 on the 2010-04-15 API: v1 and the Nagios plugin's endpoint) and `Retry-After`.
/// PagerDuty documents the statuses but no body; this is the body its endpoint sends, whose
/// "retry later" PagerDuty's Nagios plugin looks for to keep the event queued.
pub fn pd_throttled(status: StatusCode, retry_after_secs: u32) -> Response<Body> {
    let mut resp = json(
        status,
        &Status {
            status: "throttle exceeded",
            message: "Requests for this service are arriving too quickly. Please retry later.",
            dedup_key: None,
            incident_key: None,
            errors: None,
        },
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// The body of a response built in memory (a `Full` body is ready at once).
pub fn body_bytes(resp: Response<Body>) -> Vec<u8> {
    use http_body::Body as _;
    let mut body = resp.into_body();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut out = Vec::new();
    while let std::task::Poll::Ready(Some(frame)) =
        std::pin::Pin::new(&mut body).poll_frame(&mut cx)
    {
        if let Ok(data) = frame.expect("a Full body cannot fail").into_data() {
            out.extend_from_slice(&data);
        }
    }
    out
}
