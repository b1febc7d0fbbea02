//! Request bodies: read whole within the configured limits (size declared and read, and a
//! deadline) and only in a content coding sluice decodes, and the answer when a body could not
//! be read (415, 413, 408, 400).

use std::time::Duration;

use bytes::Buf;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use super::response::{self, Body};

/// Request limits that belong to the router (connection limits live in the server).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
}

/// The content codings (`Content-Encoding`) a request body may be in: the one place to add a
/// decoder's name (a body in any other coding is refused with 415 before it is read).
pub const ACCEPTED_CODINGS: &[&str] = &["identity"];

/// Why a body was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// A `Content-Encoding` outside [`ACCEPTED_CODINGS`].
    Encoding,
    TooLarge,
    TimedOut,
    Io,
}

impl BodyError {
    /// The `reason` label of `sluice_events_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            BodyError::Encoding => "unsupported_encoding",
            BodyError::TooLarge => "too_large",
            BodyError::TimedOut => "body_timeout",
            BodyError::Io => "body_io",
        }
    }

    /// The answer: 415 naming the accepted codings (also in `Accept-Encoding`), 413 naming the
    /// limit, 408, or 400.
    pub fn response(self, limits: &BodyLimits) -> Response<Body> {
        match self {
            BodyError::Encoding => {
                let accepted = ACCEPTED_CODINGS.join(", ");
                let mut resp = response::error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported encoding",
                    &format!("Content-Encoding not supported: sluice accepts {accepted}"),
                    &[],
                );
                resp.headers_mut().insert(
                    ACCEPT_ENCODING,
                    HeaderValue::from_str(&accepted).expect("coding names are valid"),
                );
                resp
            }
            BodyError::TooLarge => response::too_large(limits.max_body_bytes),
            BodyError::TimedOut => response::error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "request body not received in time",
                &["'body' was not complete within server.body_read_timeout".into()],
            ),
            BodyError::Io => response::error(
                StatusCode::BAD_REQUEST,
                "invalid event",
                "request body could not be read",
                &[],
            ),
        }
    }
}

/// Whether every coding `Content-Encoding` names (a list, in any case) is accepted.
fn coding_accepted(headers: &http::HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).iter().all(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .all(|c| ACCEPTED_CODINGS.iter().any(|a| a.eq_ignore_ascii_case(c)))
        })
    })
}

/// Reads a whole body within `limits`: the coding and the declared length are checked before
/// reading, the read length while reading, and the whole read has a deadline.
pub async fn read<B>(
    limits: &BodyLimits,
    headers: &http::HeaderMap,
    mut body: B,
) -> Result<Vec<u8>, BodyError>
where
    B: http_body::Body + Unpin,
    B::Data: Buf,
{
    if !coding_accepted(headers) {
        return Err(BodyError::Encoding);
    }
    let limit = limits.max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(1024));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Io)?;
            if let Ok(mut data) = frame.into_data() {
                if buf.len() + data.remaining() > limit {
                    return Err(BodyError::TooLarge);
                }
                while data.has_remaining() {
                    let chunk = data.chunk();
                    buf.extend_from_slice(chunk);
                    let n = chunk.len();
                    data.advance(n);
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BodyError::TimedOut),
    }
}
