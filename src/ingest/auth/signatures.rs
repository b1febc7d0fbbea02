//! Webhook body signatures (`[auth.integrations.<kind>.signature]`, see
//! `crate::config::auth::signature`): the HMAC of the raw body, as the sender computed it with a
//! shared secret, checked after the body is read and before anything parses it.
//!
//! The presented signature is decoded (hex in any case, or base64, after the configured
//! prefix), then `ring::hmac::verify` recomputes the HMAC of the signed bytes under each secret
//! and compares in constant time; every secret is tried whatever matched first. With a
//! timestamp header, its unix seconds are part of the signed bytes and must be within the
//! tolerance of now (a captured request cannot be replayed later). A replay inside the window
//! is accepted: it carries the same events, which deduplicate.

use http::HeaderMap;
use ring::hmac;

use crate::config::auth::signature::{Algorithm, Encoding, SignatureConfig, TIMESTAMP};
use crate::config::AuthConfig;
use crate::integration::{ByKind, Integration};
use crate::recording::decode_base64;
use crate::time::UnixMillis;

use super::senders::Denied;

/// One integration's check: its config and a key per secret.
pub struct Verifier {
    config: SignatureConfig,
    keys: Vec<hmac::Key>,
}

impl Verifier {
    pub fn new(config: &SignatureConfig) -> Verifier {
        let algorithm = match config.algorithm {
            Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => hmac::HMAC_SHA256,
            Algorithm::Sha512 => hmac::HMAC_SHA512,
        };
        let keys = config
            .secrets
            .iter()
            .map(|s| hmac::Key::new(algorithm, s.expose()))
            .collect();
        Verifier {
            config: config.clone(),
            keys,
        }
    }

    /// Checks `body`'s signature in `headers` at `now`.
    pub fn check(&self, headers: &HeaderMap, body: &[u8], now: UnixMillis) -> Result<(), Denied> {
        let c = &self.config;
        let found = c
            .headers
            .iter()
            .find_map(|h| headers.get(h.as_str()).map(|v| (h, v.as_bytes())));
        let Some((header, value)) = found else {
            let names: Vec<String> = c.headers.iter().map(|h| format!("'{h}'")).collect();
            return Err(Denied::SignatureMissing(format!(
                "the {} header",
                names.join(" or ")
            )));
        };
        let at = || format!("the '{header}' header");
        let value = value.trim_ascii();
        let value = value.strip_prefix(c.prefix.as_bytes()).unwrap_or(value);
        let presented = decode(c.encoding, value).ok_or_else(|| Denied::SignatureWrong(at()))?;
        let head = match &c.timestamp_header {
            None => c.payload_head.clone(),
            Some(name) => {
                let missing = || Denied::SignatureMissing(format!("the '{name}' header"));
                let raw = headers.get(name.as_str()).ok_or_else(missing)?;
                let ts = timestamp(raw.as_bytes()).ok_or_else(|| Denied::SignatureExpired {
                    at: format!("the '{name}' header"),
                    problem: "is not unix seconds".into(),
                })?;
                let skew = (now.0 / 1000).abs_diff(ts);
                if skew > c.tolerance.as_secs() {
                    return Err(Denied::SignatureExpired {
                        at: format!("the '{name}' header"),
                        problem: format!(
                            "is {skew} s from now, outside the tolerance of {} s",
                            c.tolerance.as_secs()
                        ),
                    });
                }
                c.payload_head.replace(TIMESTAMP, &ts.to_string())
            }
        };
        let signed: std::borrow::Cow<[u8]> = match head.is_empty() {
            true => body.into(),
            false => [head.as_bytes(), body].concat().into(),
        };
        let mut ok = false;
        for key in &self.keys {
            ok |= hmac::verify(key, &signed, &presented).is_ok();
        }
        match ok {
            true => Ok(()),
            false => Err(Denied::SignatureWrong(at())),
        }
    }
}

/// Every integration's signature check, if it has one.
pub struct Signatures(ByKind<Option<Verifier>>);

impl Default for Signatures {
    fn default() -> Self {
        Signatures(ByKind::from_fn(|_| None))
    }
}

impl Signatures {
    pub fn from_config(config: &AuthConfig) -> Signatures {
        Signatures(ByKind::from_fn(|&kind| {
            config.signatures.get(kind).as_ref().map(Verifier::new)
        }))
    }

    /// Checks a `kind` body's signature, if `kind` is signed.
    pub fn check(
        &self,
        kind: Integration,
        headers: &HeaderMap,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<(), Denied> {
        match self.0.get(kind) {
            Some(verifier) => verifier.check(headers, body, now),
            None => Ok(()),
        }
    }
}

fn decode(encoding: Encoding, value: &[u8]) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Hex => decode_hex(value),
        Encoding::Base64 => decode_base64(std::str::from_utf8(value).ok()?),
    }
}

/// Hex in either case; `None` for an odd length or another character.
fn decode_hex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Unix seconds: ASCII digits only.
fn timestamp(raw: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests;
