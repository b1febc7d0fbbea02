//! `[auth]`: who may send events, and who may use the admin routes. Every key is optional;
//! with none, ingest takes any routing key without a secret and the admin routes are open (as
//! in the quick start). The values shown are the defaults or examples:
//!
//! ```toml
//! [auth]
//! routing_keys = ["payments", "checkout"]        # the routing keys ingest takes (absent: any)
//! routing_keys_file = "/etc/sluice/routing-keys" # also SLUICE_ROUTING_KEYS_FILE: one key a line,
//!                                                # '#' comments; re-read when it changes
//! routing_keys_recheck = "5s"                    # how often the file's mtime is looked at
//! max_silence = "7d"                             # the longest silence (ends_at - starts_at)
//!
//! [auth.integrations.grafana]                    # per integration kind, as [integrations.<kind>]
//! secrets = ["new-secret", "old-secret"]         # any one is accepted: two during a rotation
//! secrets_file = "/run/secrets/grafana"          # and/or one secret a line
//! header = "X-Sluice-Secret"                     # where the sender puts it: one of header,
//! # query = "token"                              # query (a parameter) or path = true
//! # path = true                                  # (/secret/<secret>/integrations/grafana/<key>)
//!
//! [auth.integrations.sentry.signature]           # a signed body (see `signature`): with or
//! scheme = "sentry"                              # without a secret beside it
//! secrets_file = "/run/secrets/sentry"
//!
//! [[auth.tokens]]                                # admin bearer tokens; also SLUICE_ADMIN_TOKEN
//! name = "ops"                                   # logged with every change it makes
//! token_file = "/run/secrets/ops-token"          # or token = "..." (at least 16 characters)
//! scopes = ["read", "write", "broad_silence"]
//! routing_keys = ["payments"]                    # optional: the only keys it may silence
//! ```
//!
//! Files are read here, so a missing or unreadable one is a problem naming its key; secrets and
//! tokens are kept as [`Secret`]s, whose `Debug` shows no byte of them. The routing keys file
//! is read again by ingest (`crate::ingest::auth`) whenever its modification time changes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Problems, Unknown};
use crate::integration::{ByKind, Integration, MAX_ROUTING_KEY_CHARS};

pub mod signature;

use signature::RawSignature;
pub use signature::SignatureConfig;

pub mod defaults {
    pub const ROUTING_KEYS_RECHECK: &str = "5s";
    pub const MAX_SILENCE: &str = "7d";
    /// The name of the token `SLUICE_ADMIN_TOKEN` sets.
    pub const ENV_TOKEN_NAME: &str = "env";
    /// Its scopes.
    pub const ENV_TOKEN_SCOPES: [&str; 2] = ["read", "write"];
}

/// Admin tokens shorter than this are refused: they could be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;
/// The largest secrets or routing keys file read (a larger one is refused).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

#[derive(Deserialize, Default)]
pub(super) struct RawAuth {
    routing_keys: Option<Vec<String>>,
    /// Set by `SLUICE_ROUTING_KEYS_FILE` too.
    pub(super) routing_keys_file: Option<String>,
    routing_keys_recheck: Option<String>,
    max_silence: Option<String>,
    integrations: Option<BTreeMap<String, RawIntegrationAuth>>,
    /// `SLUICE_ADMIN_TOKEN` adds one.
    pub(super) tokens: Option<Vec<RawToken>>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawIntegrationAuth {
    secrets: Option<Vec<String>>,
    secrets_file: Option<String>,
    header: Option<String>,
    query: Option<String>,
    path: Option<bool>,
    signature: Option<RawSignature>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
pub(super) struct RawToken {
    pub(super) name: Option<String>,
    pub(super) token: Option<String>,
    token_file: Option<String>,
    pub(super) scopes: Option<Vec<String>>,
    routing_keys: Option<Vec<String>>,
    #[serde(flatten)]
    unknown: Unknown,
    /// Made from `SLUICE_ADMIN_TOKEN`: its problems name the variable.
    #[serde(skip)]
    from_env: bool,
}

impl RawToken {
    /// The token of `SLUICE_ADMIN_TOKEN`: named `env`, read and write.
    pub(super) fn from_env(token: String) -> RawToken {
        RawToken {
            name: Some(defaults::ENV_TOKEN_NAME.into()),
            token: Some(token),
            scopes: Some(defaults::ENV_TOKEN_SCOPES.map(String::from).to_vec()),
            from_env: true,
            ..RawToken::default()
        }
    }
}

/// A secret or token: compared, never shown (`Debug` prints its length only).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret's bytes, for the comparison that needs them.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// Where a sender puts its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretLocation {
    /// This header's value (lowercase name); for `Authorization`, after a `Bearer ` scheme.
    Header(String),
    /// This query parameter, percent-decoded.
    Query(String),
    /// A `/secret/<secret>` prefix before the endpoint's path.
    Path,
}

impl SecretLocation {
    /// How the location is named in answers and logs: `the 'X-Sluice-Secret' header`.
    pub fn describe(&self) -> String {
        match self {
            SecretLocation::Header(h) => format!("the '{h}' header"),
            SecretLocation::Query(q) => format!("the '{q}' query parameter"),
            SecretLocation::Path => "the path (/secret/<secret>/...)".into(),
        }
    }
}

/// One integration kind's secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrationAuth {
    /// Any one is accepted (two during a rotation).
    pub secrets: Vec<Secret>,
    pub location: SecretLocation,
}

/// What an admin token may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes {
    /// GET the admin routes (silences).
    pub read: bool,
    /// Change things: create and expire silences.
    pub write: bool,
    /// Create silences that match every alert of a routing key.
    pub broad_silence: bool,
}

impl Scopes {
    pub const NAMES: &'static str = "read, write, broad_silence";
    pub const ALL: Scopes = Scopes {
        read: true,
        write: true,
        broad_silence: true,
    };

    fn add(&mut self, name: &str) -> bool {
        match name {
            "read" => self.read = true,
            "write" => self.write = true,
            "broad_silence" => self.broad_silence = true,
            _ => return false,
        }
        true
    }
}

/// One admin bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminToken {
    /// Logged with every change made with it; never the token.
    pub name: String,
    pub token: Secret,
    pub scopes: Scopes,
    /// The only routing keys it may silence; `None`: any.
    pub routing_keys: Option<Vec<String>>,
}

/// `[auth]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// The inline allowlist (`routing_keys`).
    pub routing_keys: Vec<String>,
    /// The allowlist file, read again when it changes; its keys join the inline ones.
    pub routing_keys_file: Option<PathBuf>,
    /// Its keys as read at start.
    pub routing_keys_from_file: Vec<String>,
    pub routing_keys_recheck: Duration,
    pub max_silence: Duration,
    /// `[auth.integrations.<kind>]`: `None` for a kind without secrets.
    pub integrations: ByKind<Option<IntegrationAuth>>,
    /// `[auth.integrations.<kind>.signature]`: `None` for a kind whose bodies are not signed.
    pub signatures: ByKind<Option<SignatureConfig>>,
    pub tokens: Vec<AdminToken>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        RawAuth::default().validate(&mut Problems::default())
    }
}

impl AuthConfig {
    /// Whether ingest checks routing keys against an allowlist.
    pub fn has_allowlist(&self) -> bool {
        !self.routing_keys.is_empty() || self.routing_keys_file.is_some()
    }
}

impl RawAuth {
    pub(super) fn validate(self, p: &mut Problems) -> AuthConfig {
        p.unknown("auth", &self.unknown);
        let routing_keys = keys(
            p,
            "auth.routing_keys",
            self.routing_keys.unwrap_or_default(),
        );
        let routing_keys_file = self.routing_keys_file.map(PathBuf::from);
        let routing_keys_from_file = match &routing_keys_file {
            Some(path) => match read_routing_keys(path) {
                Ok(list) if list.is_empty() => {
                    p.add(
                        "auth.routing_keys_file",
                        format!("{} lists no routing key", path.display()),
                    );
                    list
                }
                Ok(list) => list,
                Err(e) => {
                    p.add("auth.routing_keys_file", e);
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let routing_keys_recheck = p.duration(
            "auth.routing_keys_recheck",
            self.routing_keys_recheck.as_deref(),
            defaults::ROUTING_KEYS_RECHECK,
        );
        if parses(&self.routing_keys_recheck) && routing_keys_recheck.is_zero() {
            p.add("auth.routing_keys_recheck", "must be greater than zero");
        }
        let max_silence = p.duration(
            "auth.max_silence",
            self.max_silence.as_deref(),
            defaults::MAX_SILENCE,
        );
        if parses(&self.max_silence) && max_silence.is_zero() {
            p.add("auth.max_silence", "must be greater than zero");
        }
        let mut integrations = ByKind::default();
        let mut signatures = ByKind::default();
        for (name, raw) in self.integrations.unwrap_or_default() {
            let at = format!("auth.integrations.{name}");
            let Some(kind) = Integration::parse(&name) else {
                let known: Vec<&str> = Integration::ALL.iter().map(|k| k.as_str()).collect();
                p.add(
                    &at,
                    format!("unknown integration (known: {})", known.join(", ")),
                );
                continue;
            };
            let (secret, signature) = raw.validate(&at, p);
            integrations.set(kind, secret);
            signatures.set(kind, signature);
        }
        let tokens = tokens(p, self.tokens.unwrap_or_default());
        AuthConfig {
            routing_keys,
            routing_keys_file,
            routing_keys_from_file,
            routing_keys_recheck,
            max_silence,
            integrations,
            signatures,
            tokens,
        }
    }
}

impl RawIntegrationAuth {
    /// The integration's secret check and its signature check; either may be absent.
    fn validate(
        self,
        at: &str,
        p: &mut Problems,
    ) -> (Option<IntegrationAuth>, Option<SignatureConfig>) {
        p.unknown(at, &self.unknown);
        let has_signature = self.signature.is_some();
        let signature = self
            .signature
            .and_then(|s| s.validate(&format!("{at}.signature"), p));
        let only_signature = has_signature
            && self.secrets.is_none()
            && self.secrets_file.is_none()
            && self.header.is_none()
            && self.query.is_none()
            && self.path.is_none();
        if only_signature {
            return (None, signature);
        }
        let secrets = secrets(p, at, self.secrets, self.secrets_file.as_deref());
        let header = self.header.map(|h| {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                p.add(
                    &format!("{at}.header"),
                    format!("{h:?} is not a header name"),
                );
            }
            SecretLocation::Header(h.to_ascii_lowercase())
        });
        let query = self.query.map(|q| {
            let key = format!("{at}.query");
            if q.is_empty() || q.contains(['&', '=', '#', ' ']) {
                p.add(&key, format!("{q:?} is not a query parameter name"));
            } else if q == "routing_key" {
                p.add(&key, "\"routing_key\" names the routing key, not a secret");
            }
            SecretLocation::Query(q)
        });
        let path = self.path.filter(|p| *p).map(|_| SecretLocation::Path);
        let mut locations: Vec<SecretLocation> =
            [header, query, path].into_iter().flatten().collect();
        if locations.len() != 1 {
            p.add(
                at,
                format!(
                    "name exactly one place for the secret: header, query or path = true \
                     ({} given)",
                    locations.len()
                ),
            );
            return (None, signature);
        }
        if secrets.is_empty() {
            return (None, signature);
        }
        let secret = IntegrationAuth {
            secrets,
            location: locations.remove(0),
        };
        (Some(secret), signature)
    }
}

fn tokens(p: &mut Problems, raw: Vec<RawToken>) -> Vec<AdminToken> {
    let mut out: Vec<AdminToken> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let at = format!("auth.tokens[{i}]");
        // A problem of the environment's token names the variable.
        let key = |sub: &str| match t.from_env {
            true => super::ENV_ADMIN_TOKEN.to_string(),
            false => format!("{at}.{sub}"),
        };
        p.unknown(&at, &t.unknown);
        let name = t.name.clone().unwrap_or_default();
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            p.add(&key("name"), "must be a non-blank name");
        } else if names.contains(&name) {
            p.add(&key("name"), format!("{name:?} is used twice"));
        }
        names.push(name.clone());
        let token = match (t.token.clone(), &t.token_file) {
            (Some(token), None) => secret(p, &key("token"), token, MIN_TOKEN_CHARS),
            (None, Some(path)) => match read_lines(Path::new(path)) {
                Ok(lines) if lines.len() == 1 => {
                    let (_, token) = lines.into_iter().next().expect("one line");
                    secret(p, &key("token_file"), token, MIN_TOKEN_CHARS)
                }
                Ok(lines) => {
                    let n = lines.len();
                    p.add(
                        &key("token_file"),
                        format!("{path} must hold one token ({n} lines found)"),
                    );
                    None
                }
                Err(e) => {
                    p.add(&key("token_file"), e);
                    None
                }
            },
            _ => {
                p.add(&at, "give exactly one of token and token_file");
                None
            }
        };
        let mut scopes = Scopes::default();
        let raw_scopes = t.scopes.unwrap_or_default();
        if raw_scopes.is_empty() {
            p.add(
                &format!("{at}.scopes"),
                format!("must list at least one of {}", Scopes::NAMES),
            );
        }
        for (j, s) in raw_scopes.iter().enumerate() {
            if !scopes.add(s) {
                p.add(
                    &format!("{at}.scopes[{j}]"),
                    format!("{s:?} must be one of {}", Scopes::NAMES),
                );
            }
        }
        let routing_keys = t.routing_keys.map(|list| {
            let key = format!("{at}.routing_keys");
            if list.is_empty() {
                p.add(
                    &key,
                    "must list at least one routing key (leave it out for any)",
                );
            }
            keys(p, &key, list)
        });
        let Some(token) = token else { continue };
        if out.iter().any(|o| o.token == token) {
            p.add(&key("token"), "is the same token as another token's");
        }
        out.push(AdminToken {
            name,
            token,
            scopes,
            routing_keys,
        });
    }
    out
}

/// Whether a duration key was given and is a duration (its other problems are reported once).
fn parses(raw: &Option<String>) -> bool {
    raw.as_deref()
        .is_some_and(|r| crate::time::parse_duration(r).is_ok())
}

/// A secret or token: visible ASCII, no surrounding blanks, at least `min` characters. The
/// problem never quotes it.
fn secret(p: &mut Problems, key: &str, s: String, min: usize) -> Option<Secret> {
    if !s.bytes().all(|b| b.is_ascii_graphic()) || s.is_empty() {
        p.add(key, "must be visible ASCII without spaces");
        None
    } else if s.len() < min {
        p.add(key, format!("must be at least {min} characters"));
        None
    } else {
        Some(Secret(s))
    }
}

/// `inline` secrets and the lines of `file` (the keys `<at>.secrets` and `<at>.secrets_file`);
/// none at all is a problem.
fn secrets(
    p: &mut Problems,
    at: &str,
    inline: Option<Vec<String>>,
    file: Option<&str>,
) -> Vec<Secret> {
    let before = p.0.len();
    let mut out = Vec::new();
    for (i, s) in inline.unwrap_or_default().into_iter().enumerate() {
        out.extend(secret(p, &format!("{at}.secrets[{i}]"), s, 1));
    }
    if let Some(path) = file {
        let key = format!("{at}.secrets_file");
        match read_lines(Path::new(path)) {
            Ok(lines) if lines.is_empty() => p.add(&key, format!("{path} holds no secret")),
            Ok(lines) => {
                for (n, s) in lines {
                    out.extend(secret(p, &format!("{key} line {n}"), s, 1));
                }
            }
            Err(e) => p.add(&key, e),
        }
    }
    if out.is_empty() && p.0.len() == before {
        p.add(at, "no secret: give secrets or secrets_file");
    }
    out
}

/// Routing keys as ingest takes them: non-blank, at most 255 characters.
fn keys(p: &mut Problems, at: &str, list: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(list.len());
    for (i, k) in list.into_iter().enumerate() {
        match routing_key_problem(&k) {
            Some(problem) => p.add(&format!("{at}[{i}]"), problem),
            None => out.push(k),
        }
    }
    out
}

fn routing_key_problem(key: &str) -> Option<String> {
    if key.trim().is_empty() {
        Some("must not be blank".into())
    } else if key.chars().nth(MAX_ROUTING_KEY_CHARS).is_some() {
        Some(format!(
            "must be at most {MAX_ROUTING_KEY_CHARS} characters"
        ))
    } else {
        None
    }
}

/// The non-blank lines of a regular file of at most [`MAX_FILE_BYTES`], trimmed, `#` comments
/// left out, with their line numbers.
fn read_lines(path: &Path) -> Result<Vec<(usize, String)>, String> {
    let text = super::read_small_file(path, MAX_FILE_BYTES)?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| (n, l.to_string()))
        .collect())
}

/// The routing keys of an allowlist file (one a line, `#` comments), each checked as ingest
/// checks keys; the first bad line refuses the file.
pub fn read_routing_keys(path: &Path) -> Result<Vec<String>, String> {
    let mut seen = BTreeSet::new();
    for (n, key) in read_lines(path)? {
        if let Some(problem) = routing_key_problem(&key) {
            return Err(format!("{} line {n}: {problem}", path.display()));
        }
        seen.insert(key);
    }
    Ok(seen.into_iter().collect())
}

#[cfg(test)]
mod tests;
