//! `[auth.integrations.<kind>.signature]`: a webhook's body signature, checked on the raw
//! bytes before anything reads them. Three schemes:
//!
//! ```toml
//! [auth.integrations.grafana.signature]   # Grafana's contact point "HMAC signature" settings
//! scheme = "grafana"
//! secrets = ["new-secret", "old-secret"]  # any one verifies (two during a rotation)
//! # secrets_file = "/run/secrets/grafana-hmac"
//! # header = "X-Grafana-Alerting-Signature"   # default: this or X-Grafana-Alert-Signature
//! # timestamp_header = "X-Grafana-Alerting-Signature-Timestamp"  # as set in Grafana; then the
//! #                                       # signature covers "<unix seconds>:<body>"
//! # tolerance = "5m"                      # how old or new that timestamp may be
//!
//! [auth.integrations.sentry.signature]    # Sentry-Hook-Signature: the client secret's HMAC
//! scheme = "sentry"
//! secrets_file = "/run/secrets/sentry-client-secret"
//!
//! [auth.integrations.generic.signature]   # any sender that signs its body with an HMAC
//! scheme = "hmac"
//! secrets = ["..."]
//! header = "X-Hub-Signature-256"          # required
//! algorithm = "sha256"                    # sha1, sha256 (default), sha512
//! encoding = "hex"                        # hex (default) or base64
//! prefix = "sha256="                      # stripped from the header's value
//! # timestamp_header = "X-Timestamp"      # unix seconds, within tolerance
//! # payload = "v0:{timestamp}:{body}"     # what is signed: default "{body}", or
//! #                                       # "{timestamp}:{body}" with a timestamp header
//! ```
//!
//! Grafana and Sentry fix the algorithm (HMAC-SHA256), encoding (hex) and payload; only the
//! header names, the tolerance and the secrets are theirs to set.

use std::time::Duration;

use serde::Deserialize;

use super::{secrets, Secret};
use crate::config::{Problems, Unknown};

/// Grafana's header: the name its UI suggests, then the one its signing code defaults to.
pub const GRAFANA_HEADERS: [&str; 2] =
    ["x-grafana-alerting-signature", "x-grafana-alert-signature"];
pub const SENTRY_HEADER: &str = "sentry-hook-signature";
pub const DEFAULT_TOLERANCE: &str = "5m";
/// Where the body goes in `payload`; it must come last.
pub const BODY: &str = "{body}";
/// Where the timestamp header's value goes in `payload`.
pub const TIMESTAMP: &str = "{timestamp}";

#[derive(Deserialize, Default)]
pub(super) struct RawSignature {
    scheme: Option<String>,
    secrets: Option<Vec<String>>,
    secrets_file: Option<String>,
    header: Option<String>,
    timestamp_header: Option<String>,
    tolerance: Option<String>,
    algorithm: Option<String>,
    encoding: Option<String>,
    prefix: Option<String>,
    payload: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Grafana,
    Sentry,
    Hmac,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// One integration's signature check, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureConfig {
    pub scheme: Scheme,
    /// Any one verifies.
    pub secrets: Vec<Secret>,
    /// Lowercase; the first one present carries the signature.
    pub headers: Vec<String>,
    /// Lowercase; when set, its unix seconds must be within `tolerance` of now.
    pub timestamp_header: Option<String>,
    pub tolerance: Duration,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Stripped from the signature header's value when there.
    pub prefix: String,
    /// What comes before the body in the signed bytes, `{timestamp}` replaced.
    pub payload_head: String,
}

impl RawSignature {
    pub(super) fn validate(self, at: &str, p: &mut Problems) -> Option<SignatureConfig> {
        p.unknown(at, &self.unknown);
        let key = |k: &str| format!("{at}.{k}");
        let scheme = p.one_of(
            &key("scheme"),
            self.scheme.as_deref(),
            "hmac",
            &[
                ("grafana", Scheme::Grafana),
                ("sentry", Scheme::Sentry),
                ("hmac", Scheme::Hmac),
            ],
        );
        if self.scheme.is_none() {
            p.add(
                &key("scheme"),
                "required: \"grafana\", \"sentry\" or \"hmac\"",
            );
        }
        let secrets = secrets(p, at, self.secrets, self.secrets_file.as_deref());
        let header_name = |p: &mut Problems, k: &str, h: String| {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                p.add(&key(k), format!("{h:?} is not a header name"));
            }
            h.to_ascii_lowercase()
        };
        let header = self.header.map(|h| header_name(p, "header", h));
        let timestamp_header = self
            .timestamp_header
            .map(|h| header_name(p, "timestamp_header", h));
        let tolerance = p.duration(
            &key("tolerance"),
            self.tolerance.as_deref(),
            DEFAULT_TOLERANCE,
        );
        if scheme != Scheme::Hmac {
            let fixed = [
                ("algorithm", self.algorithm.is_some()),
                ("encoding", self.encoding.is_some()),
                ("prefix", self.prefix.is_some()),
                ("payload", self.payload.is_some()),
            ];
            for (name, _) in fixed.iter().filter(|(_, given)| *given) {
                p.add(
                    &key(name),
                    "is fixed by the scheme (HMAC-SHA256, hex, over the body); use scheme = \"hmac\" to set it",
                );
            }
        }
        if scheme == Scheme::Sentry && timestamp_header.is_some() {
            p.add(
                &key("timestamp_header"),
                "Sentry does not sign its timestamp; leave it out",
            );
        }
        let headers = match (scheme, header) {
            (_, Some(h)) => vec![h],
            (Scheme::Grafana, None) => GRAFANA_HEADERS.map(String::from).to_vec(),
            (Scheme::Sentry, None) => vec![SENTRY_HEADER.to_string()],
            (Scheme::Hmac, None) => {
                p.add(&key("header"), "required with scheme = \"hmac\"");
                Vec::new()
            }
        };
        let algorithm = p.one_of(
            &key("algorithm"),
            self.algorithm.as_deref(),
            "sha256",
            &[
                ("sha1", Algorithm::Sha1),
                ("sha256", Algorithm::Sha256),
                ("sha512", Algorithm::Sha512),
            ],
        );
        let encoding = p.one_of(
            &key("encoding"),
            self.encoding.as_deref(),
            "hex",
            &[("hex", Encoding::Hex), ("base64", Encoding::Base64)],
        );
        let default_payload = match timestamp_header {
            Some(_) => "{timestamp}:{body}",
            None => BODY,
        };
        let payload = self.payload.unwrap_or_else(|| default_payload.to_string());
        let payload_head = match payload.strip_suffix(BODY) {
            Some(head) if !head.contains(BODY) => {
                if head.contains(TIMESTAMP) && timestamp_header.is_none() {
                    p.add(
                        &key("payload"),
                        "uses {timestamp} but no timestamp_header says where it is",
                    );
                }
                head.to_string()
            }
            _ => {
                p.add(
                    &key("payload"),
                    format!("{payload:?} must end with {BODY} and name it once"),
                );
                String::new()
            }
        };
        if secrets.is_empty() || headers.is_empty() {
            return None;
        }
        Some(SignatureConfig {
            scheme,
            secrets,
            headers,
            timestamp_header,
            tolerance,
            algorithm,
            encoding,
            prefix: self.prefix.unwrap_or_default(),
            payload_head,
        })
    }
}
