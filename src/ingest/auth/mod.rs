//! Who may send events and who may use the admin routes (`[auth]`, `crate::config::auth`):
//! [`senders`] checks routing keys against the allowlist and each integration's secrets,
//! [`signatures`] webhook bodies' HMAC signatures, [`admin`] the bearer tokens of the admin routes and what each may silence. Every secret and
//! token is compared in constant time ([`secrets`]) and kept out of answers, logs, metric
//! labels and `serve --record` files ([`Auth::recordable`]).

pub mod admin;
mod allowlist;
mod secrets;
pub mod senders;
pub mod signatures;
pub mod silence_policy;

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::config::AuthConfig;

pub use admin::{AdminAuth, Principal, Scope};
pub use senders::SenderAuth;
pub use signatures::Signatures;

/// Ingest and admin auth, and the silence length cap.
pub struct Auth {
    pub senders: SenderAuth,
    /// Webhook body signatures, checked once a body is read.
    pub signatures: Signatures,
    pub admin: AdminAuth,
    /// The longest silence (`auth.max_silence`).
    pub max_silence: Duration,
}

impl Default for Auth {
    /// Open: any routing key, no secret, no admin token; the default silence cap.
    fn default() -> Self {
        Auth::from_config(&AuthConfig::default())
    }
}

impl Auth {
    /// From `[auth]`; follows the routing keys file if there is one (in a tokio runtime).
    pub fn from_config(config: &AuthConfig) -> Auth {
        Auth {
            senders: SenderAuth::from_config(config),
            signatures: Signatures::from_config(config),
            admin: AdminAuth::new(&config.tokens),
            max_silence: config.max_silence,
        }
    }

    /// A request as `serve --record` may write it: without the headers and query parameters
    /// that carry secrets, nor bearer credentials (admin tokens). `GenieKey` credentials stay:
    /// they are the routing key, which replay needs.
    pub fn recordable(&self, path_and_query: &str, headers: &HeaderMap) -> (String, HeaderMap) {
        let (secret_headers, secret_params) = self.senders.secret_names();
        let mut headers = headers.clone();
        for name in secret_headers {
            headers.remove(name);
        }
        let bearer = headers
            .get(AUTHORIZATION)
            .is_some_and(|v| senders::strip_bearer(v.as_bytes()).len() < v.len());
        if bearer {
            headers.remove(AUTHORIZATION);
        }
        let path = match path_and_query.split_once('?') {
            Some((path, query)) if !secret_params.is_empty() => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
                        !secret_params.contains(&name)
                    })
                    .collect();
                match kept.is_empty() {
                    true => path.to_string(),
                    false => format!("{path}?{}", kept.join("&")),
                }
            }
            _ => path_and_query.to_string(),
        };
        (path, headers)
    }
}

/// A response's status, headers and JSON body (`Null` when not JSON), for tests.
#[cfg(test)]
pub(crate) fn answer(
    resp: http::Response<crate::ingest::response::Body>,
) -> (http::StatusCode, HeaderMap, serde_json::Value) {
    use http_body::Body as _;
    use std::task::{Context, Poll, Waker};
    let (parts, mut body) = resp.into_parts();
    let mut cx = Context::from_waker(Waker::noop());
    let mut bytes = Vec::new();
    while let Poll::Ready(Some(frame)) = std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
        if let Ok(data) = frame.expect("a Full body cannot fail").into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, parts.headers, json)
}

#[cfg(test)]
mod tests;
