//! Admin auth: bearer tokens with scopes for the admin routes (today the silences API, both
//! `/api/v1/silences` and Alertmanager's `/api/v2/silences`; a route added later asks
//! [`AdminAuth::authenticate`] and [`Principal::require`] the same way).
//!
//! - No token configured: every admin route is open, as in the quick start; the caller is
//!   `anonymous` with every scope (sluice warns at start when it listens beyond loopback so).
//! - Otherwise every request needs `Authorization: Bearer <token>`: none, another scheme or an
//!   unknown token is `401`; a token without the route's scope is `403`. Reads need `read`,
//!   changes `write`.
//! - A silence whose matchers would match every alert of a routing key (nothing narrows it
//!   besides `routing_key`, see [`super::silence_policy`]) also needs `broad_silence`.
//! - A token limited to routing keys creates only silences that carry a `routing_key` equality
//!   with one of its keys (matchers all apply, so such a silence can match no other key's
//!   alerts), and expires only those.
//!
//! Refusals answer in the generic JSON error shape, are counted by reason in
//! `sluice_admin_requests_refused_total` and logged with the token's name, never the token.

use std::sync::Arc;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::config::auth::{AdminToken, Scopes};
use crate::event::Field;
use crate::matchers::{Matcher, Op};
use crate::metrics as m;

use super::secrets::SecretSet;
use super::senders::strip_bearer;
use super::silence_policy;
use crate::ingest::response::{self, Body};

/// The name changes are logged under when no token is configured.
pub const ANONYMOUS: &str = "anonymous";

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    BroadSilence,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::BroadSilence => "broad_silence",
        }
    }
}

/// Who made an admin request: a token's name, scopes and routing keys.
#[derive(Clone, Debug)]
pub struct Principal {
    name: Arc<str>,
    scopes: Scopes,
    routing_keys: Option<Arc<[String]>>,
}

impl Principal {
    /// The caller when no token is configured: every scope, any key.
    pub fn anonymous() -> Principal {
        Principal {
            name: ANONYMOUS.into(),
            scopes: Scopes::ALL,
            routing_keys: None,
        }
    }

    fn of(token: &AdminToken) -> Principal {
        Principal {
            name: token.name.as_str().into(),
            scopes: token.scopes,
            routing_keys: token.routing_keys.as_deref().map(Into::into),
        }
    }

    /// The token's name (logged with every change).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn require(&self, scope: Scope) -> Result<(), Denied> {
        let has = match scope {
            Scope::Read => self.scopes.read,
            Scope::Write => self.scopes.write,
            Scope::BroadSilence => self.scopes.broad_silence,
        };
        if has {
            Ok(())
        } else {
            Err(Denied::Scope {
                token: self.name.clone(),
                scope,
            })
        }
    }

    /// Whether this caller may create a silence with `matchers`: `write`, one of its routing
    /// keys if it is limited to some, `broad_silence` if nothing narrows it.
    pub fn may_create(&self, matchers: &[Matcher]) -> Result<(), Denied> {
        self.require(Scope::Write)?;
        self.owns(matchers)?;
        if !matchers.iter().any(silence_policy::narrows) {
            self.require(Scope::BroadSilence)
                .map_err(|_| Denied::Broad {
                    token: self.name.clone(),
                })?;
        }
        Ok(())
    }

    /// Whether this caller may expire a silence with `matchers`: `write`, and one of its
    /// routing keys if it is limited to some.
    pub fn may_expire(&self, matchers: &[Matcher]) -> Result<(), Denied> {
        self.require(Scope::Write)?;
        self.owns(matchers)
    }

    /// Whether this caller may acknowledge, resolve or snooze incidents of `routing_key`:
    /// `write`, and the key among its own if it is limited to some.
    pub fn may_command(&self, routing_key: &str) -> Result<(), Denied> {
        self.require(Scope::Write)?;
        match &self.routing_keys {
            Some(keys) if !keys.iter().any(|k| k == routing_key) => Err(Denied::RoutingKey {
                token: self.name.clone(),
                keys: keys.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// A limited token's silences carry `routing_key="<one of its keys>"`.
    fn owns(&self, matchers: &[Matcher]) -> Result<(), Denied> {
        let Some(keys) = &self.routing_keys else {
            return Ok(());
        };
        let scoped = matchers
            .iter()
            .any(|m| m.field == Field::RoutingKey && m.op == Op::Eq && keys.contains(&m.value));
        if scoped {
            Ok(())
        } else {
            Err(Denied::RoutingKey {
                token: self.name.clone(),
                keys: keys.clone(),
            })
        }
    }
}

/// Why an admin request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    TokenMissing,
    TokenUnknown,
    Scope {
        token: Arc<str>,
        scope: Scope,
    },
    RoutingKey {
        token: Arc<str>,
        keys: Arc<[String]>,
    },
    Broad {
        token: Arc<str>,
    },
}

impl Denied {
    /// The `reason` label of `sluice_admin_requests_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::TokenMissing => "token_missing",
            Denied::TokenUnknown => "token_unknown",
            Denied::Scope { .. } => "scope",
            Denied::RoutingKey { .. } => "routing_key",
            Denied::Broad { .. } => "broad_silence",
        }
    }

    fn token(&self) -> &str {
        match self {
            Denied::TokenMissing | Denied::TokenUnknown => "-",
            Denied::Scope { token, .. }
            | Denied::RoutingKey { token, .. }
            | Denied::Broad { token } => token,
        }
    }

    fn message(&self) -> String {
        match self {
            Denied::TokenMissing => {
                "admin routes need a token: Authorization: Bearer <token>".into()
            }
            Denied::TokenUnknown => "the bearer token is not one of auth.tokens".into(),
            Denied::Scope { token, scope } => {
                format!("token {token:?} does not have the {} scope", scope.as_str())
            }
            Denied::RoutingKey { token, keys } => format!(
                "token {token:?} may only act on routing keys {}: a silence needs a matcher \
                 routing_key=\"<key>\" for one of them, a command an incident of one of them",
                keys.join(", ")
            ),
            Denied::Broad { token } => format!(
                "the silence would match every alert of a routing key (no matcher narrows it \
                 besides routing_key: an equality with a value, or a regex that matches some \
                 values only); token {token:?} does not have the broad_silence scope"
            ),
        }
    }

    /// Counts and logs the refusal of `method path`, and answers it: 401 or 403.
    pub fn refuse(&self, method: &Method, path: &str) -> Response<Body> {
        m::admin_refused(self.reason()).increment(1);
        tracing::info!(
            token = self.token(),
            reason = self.reason(),
            %method,
            path,
            "admin request refused"
        );
        let message = self.message();
        match self {
            Denied::TokenMissing | Denied::TokenUnknown => {
                let mut resp =
                    response::error(StatusCode::UNAUTHORIZED, "unauthorized", &message, &[]);
                resp.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sluice\""),
                );
                resp
            }
            _ => response::error(StatusCode::FORBIDDEN, "forbidden", &message, &[]),
        }
    }
}

/// The admin tokens (none: open).
pub struct AdminAuth {
    set: SecretSet,
    principals: Vec<Principal>,
}

impl Default for AdminAuth {
    fn default() -> Self {
        AdminAuth::new(&[])
    }
}

impl AdminAuth {
    pub fn new(tokens: &[AdminToken]) -> AdminAuth {
        AdminAuth {
            set: SecretSet::new(tokens.iter().map(|t| &t.token)),
            principals: tokens.iter().map(Principal::of).collect(),
        }
    }

    /// No token configured: the admin routes are open.
    pub fn is_open(&self) -> bool {
        self.principals.is_empty()
    }

    /// The caller of a request with `headers`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Denied> {
        if self.is_open() {
            return Ok(Principal::anonymous());
        }
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(Denied::TokenMissing);
        };
        let token = strip_bearer(value.as_bytes());
        if token.len() == value.len() {
            return Err(Denied::TokenMissing);
        }
        match self.set.position(token) {
            Some(i) => Ok(self.principals[i].clone()),
            None => Err(Denied::TokenUnknown),
        }
    }
}

#[cfg(test)]
mod tests;
