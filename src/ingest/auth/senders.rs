//! Ingest auth: the routing key allowlist and each integration's secrets, checked before a
//! request's body is read (secrets, and keys that come from the request) or right after it is
//! parsed (keys in the body: PagerDuty's `routing_key`, Nagios' `CONTACTPAGER`).
//!
//! A refusal is answered as its sender understands it. PagerDuty's endpoints answer as
//! PagerDuty does for a key it does not know, `400 {"status":"invalid event","message":"Event
//! object is invalid","errors":["Invalid routing key"]}`, and a missing or wrong secret in the
//! same shape (PagerDuty has no secret besides the key; its senders treat 400 as final). Every
//! other endpoint answers `401` for a missing or wrong secret and `403` for a key off the list,
//! in the generic error shape. Answers and logs name where the secret goes, never a secret;
//! `sluice_events_rejected_total{reason}` counts them (`secret_missing`, `secret_wrong`,
//! `routing_key_not_allowed`).

use std::sync::Arc;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};

use crate::config::auth::{AuthConfig, SecretLocation};
use crate::ingest::integrations::fields::{percent_decode, query_param};
use crate::ingest::response::{self, Body};
use crate::integration::{ByKind, Integration};

use super::allowlist::AllowList;
use super::secrets::SecretSet;

/// The path prefix that carries a secret: `/secret/<secret>/v2/enqueue`.
pub const PATH_PREFIX: &str = "/secret/";

/// The secret a request carried in its path (a request extension set by the router).
#[derive(Clone)]
pub struct PathSecret(pub String);

struct KindSecrets {
    set: SecretSet,
    location: SecretLocation,
}

/// Why a sender was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No secret where the integration's secret goes (named).
    SecretMissing(String),
    /// A secret that is none of the integration's (where it was).
    SecretWrong(String),
    /// The routing key is not in the allowlist.
    KeyNotAllowed,
    /// No signature, or no timestamp beside it, in the header named.
    SignatureMissing(String),
    /// A signature that does not verify with any of the integration's secrets (where it was).
    SignatureWrong(String),
    /// A signed timestamp that is not one or is outside the tolerance.
    SignatureExpired { at: String, problem: String },
}

impl Denied {
    /// The `reason` label of `sluice_events_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::SecretMissing(_) => "secret_missing",
            Denied::SecretWrong(_) => "secret_wrong",
            Denied::KeyNotAllowed => "routing_key_not_allowed",
            Denied::SignatureMissing(_) => "signature_missing",
            Denied::SignatureWrong(_) => "signature_wrong",
            Denied::SignatureExpired { .. } => "signature_expired",
        }
    }

    fn message(&self, kind: Integration) -> String {
        let name = kind.as_str();
        match self {
            Denied::SecretMissing(at) => {
                format!("a secret is required in {at} (auth.integrations.{name})")
            }
            Denied::SecretWrong(at) => {
                format!("the secret in {at} is not one of auth.integrations.{name}'s secrets")
            }
            Denied::KeyNotAllowed => {
                "routing key not allowed: it is not in auth.routing_keys or auth.routing_keys_file"
                    .into()
            }
            Denied::SignatureMissing(at) => {
                format!("a signature is required in {at} (auth.integrations.{name}.signature)")
            }
            Denied::SignatureWrong(at) => format!(
                "the signature in {at} does not verify with any of \
                 auth.integrations.{name}.signature's secrets"
            ),
            Denied::SignatureExpired { at, problem } => format!(
                "the signed timestamp in {at} {problem} (auth.integrations.{name}.signature)"
            ),
        }
    }

    /// The answer `kind`'s sender understands.
    pub fn response(&self, kind: Integration) -> Response<Body> {
        if matches!(kind, Integration::PagerDuty | Integration::PagerDutyV1) {
            let error = match self {
                Denied::KeyNotAllowed => "Invalid routing key".to_string(),
                _ => self.message(kind),
            };
            return response::pd_invalid(&[error]);
        }
        match self {
            Denied::KeyNotAllowed => {
                response::error(StatusCode::FORBIDDEN, "forbidden", &self.message(kind), &[])
            }
            _ => {
                let mut resp = response::error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    &self.message(kind),
                    &[],
                );
                resp.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sluice\""),
                );
                resp
            }
        }
    }
}

/// Who may send: the allowlist (none: any key) and each kind's secrets (none: no secret).
pub struct SenderAuth {
    allowlist: Option<Arc<AllowList>>,
    secrets: ByKind<Option<KindSecrets>>,
}

impl Default for SenderAuth {
    /// Any key, no secret.
    fn default() -> Self {
        SenderAuth {
            allowlist: None,
            secrets: ByKind::from_fn(|_| None),
        }
    }
}

impl SenderAuth {
    /// From `[auth]`; follows the allowlist file (needs a tokio runtime when there is one).
    pub fn from_config(config: &AuthConfig) -> SenderAuth {
        let allowlist = config.has_allowlist().then(|| {
            let list = Arc::new(AllowList::new(
                &config.routing_keys,
                &config.routing_keys_from_file,
            ));
            if let Some(path) = &config.routing_keys_file {
                list.follow(path.clone(), config.routing_keys_recheck);
            }
            list
        });
        let secrets = ByKind::from_fn(|&kind| {
            config.integrations.get(kind).as_ref().map(|a| KindSecrets {
                set: SecretSet::new(&a.secrets),
                location: a.location.clone(),
            })
        });
        SenderAuth { allowlist, secrets }
    }

    /// The header and query parameter names that carry secrets (left out of recordings).
    pub fn secret_names(&self) -> (Vec<&str>, Vec<&str>) {
        let (mut headers, mut params) = (Vec::new(), Vec::new());
        for k in Integration::ALL
            .iter()
            .filter_map(|&k| self.secrets.get(k).as_ref())
        {
            match &k.location {
                SecretLocation::Header(h) => headers.push(h.as_str()),
                SecretLocation::Query(q) => params.push(q.as_str()),
                SecretLocation::Path => {}
            }
        }
        (headers, params)
    }

    /// Checks `kind`'s secret, if it has any, where its config says it goes.
    pub fn check_secret(
        &self,
        kind: Integration,
        headers: &HeaderMap,
        query: Option<&str>,
        path: Option<&PathSecret>,
    ) -> Result<(), Denied> {
        let Some(expected) = self.secrets.get(kind) else {
            return Ok(());
        };
        let at = || expected.location.describe();
        let presented = match &expected.location {
            SecretLocation::Header(name) => headers.get(name.as_str()).map(|v| {
                let v = v.as_bytes();
                if name.as_str() == AUTHORIZATION.as_str() {
                    strip_bearer(v)
                } else {
                    v
                }
                .to_vec()
            }),
            SecretLocation::Query(name) => query_param(query, name).map(String::into_bytes),
            SecretLocation::Path => path.map(|p| p.0.clone().into_bytes()),
        };
        match presented {
            None => Err(Denied::SecretMissing(at())),
            Some(p) if expected.set.position(&p).is_some() => Ok(()),
            Some(_) => Err(Denied::SecretWrong(at())),
        }
    }

    /// Checks a routing key against the allowlist, if there is one.
    pub fn check_key(&self, key: &str) -> Result<(), Denied> {
        match &self.allowlist {
            Some(list) if !list.contains(key) => Err(Denied::KeyNotAllowed),
            _ => Ok(()),
        }
    }
}

/// `Bearer <token>` -> `<token>` (the scheme in any case); anything else as it is.
pub fn strip_bearer(v: &[u8]) -> &[u8] {
    match v.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii(),
        _ => v,
    }
}

/// Moves a `/secret/<secret>` prefix of the request's path into a [`PathSecret`] extension, so
/// that the rest is routed as usual (and recorded without it).
pub fn take_path_secret<B>(req: &mut Request<B>) {
    let Some((secret, rest)) = split_path_secret(req.uri().path()) else {
        return;
    };
    let uri = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    if let Ok(uri) = uri.parse::<http::Uri>() {
        *req.uri_mut() = uri;
        req.extensions_mut().insert(PathSecret(secret));
    }
}

/// Splits `/secret/<secret>/<rest>` into the secret (percent-decoded) and `/<rest>`.
pub fn split_path_secret(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix(PATH_PREFIX)?;
    let (secret, rest) = rest.split_at(rest.find('/')?);
    Some((percent_decode(secret, false)?, rest))
}
