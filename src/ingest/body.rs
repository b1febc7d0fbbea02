//! Request bodies: read whole within the configured limits (size declared and read, and a
//! deadline), and the answer when a body could not be read (413, 408, 400).

use std::time::Duration;

use bytes::Buf;
use http::header::CONTENT_LENGTH;
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use super::response::{self, Body};

/// Request limits that belong to the router (connection limits live in the server).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
}

/// Why a body was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    TimedOut,
    Io,
}

impl BodyError {
    /// The `reason` label of `sluice_events_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            BodyError::TooLarge => "too_large",
            BodyError::TimedOut => "body_timeout",
            BodyError::Io => "body_io",
        }
    }

    /// The answer: 413 naming the limit, 408, or 400.
    pub fn response(self, limits: &BodyLimits) -> Response<Body> {
        match self {
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

/// Reads a whole body within `limits`: the declared length is checked before reading, the
/// read length while reading, and the whole read has a deadline.
pub async fn read<B>(
    limits: &BodyLimits,
    headers: &http::HeaderMap,
    mut body: B,
) -> Result<Vec<u8>, BodyError>
where
    B: http_body::Body + Unpin,
    B::Data: Buf,
{
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
