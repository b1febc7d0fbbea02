//! `[server]`: the HTTP listener. Every key is optional; the values shown are the defaults:
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! max_body_bytes = 524288        # PagerDuty's request limit, on the wire and once decoded
//!                                # (gzip, deflate); larger bodies get 413
//! max_connections = 4096         # connections beyond this are closed at accept
//! header_read_timeout = "10s"    # request line and headers, also of the next request on a
//!                                # keep-alive connection; then the connection is closed
//! body_read_timeout = "30s"      # the whole body; then 408
//! shutdown_grace = "30s"         # on SIGTERM: drain connections, then flush Kafka deliveries
//!
//! [server.tls]                   # HTTPS instead of HTTP; absent: plain HTTP
//! cert_file = "/etc/sluice/tls/tls.crt"  # PEM chain, leaf first (SLUICE_TLS_CERT_FILE)
//! key_file = "/etc/sluice/tls/tls.key"   # PEM private key: PKCS#8, PKCS#1 or SEC1
//!                                        # (SLUICE_TLS_KEY_FILE)
//! min_version = "1.2"            # or "1.3"
//! recheck = "5s"                 # how often the files' modification times are looked at;
//!                                # changed files are loaded for new connections
//! ```
//!
//! One limit serves both the wire and the decoded body: the parsers never see more than
//! `max_body_bytes` whatever the coding, and an operator has one number to reason about. An
//! answer given before the request was read whole (413, 431) is followed by a lingering close
//! with fixed bounds (`crate::ingest::server`).
//!
//! Validates that `listen` is a socket address, the sizes are greater than zero and the
//! timeouts are durations greater than zero (`"0s"` would cut every request); unknown keys are
//! rejected.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{defaults, Problems, Unknown};
use crate::time::parse_duration;

#[derive(Deserialize, Default)]
pub(super) struct RawServer {
    /// Set by `SLUICE_LISTEN` too.
    pub(super) listen: Option<String>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    shutdown_grace: Option<String>,
    pub(super) tls: Option<RawTls>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
pub(super) struct RawTls {
    /// Set by `SLUICE_TLS_CERT_FILE` and `SLUICE_TLS_KEY_FILE` too.
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    min_version: Option<String>,
    recheck: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// The lowest TLS version the listener takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// `[server.tls]`, validated: the files exist; their contents are checked when sluice starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub min_version: TlsVersion,
    pub recheck: Duration,
}

pub const DEFAULT_TLS_RECHECK: &str = "5s";

impl RawTls {
    fn validate(self, p: &mut Problems) -> Option<TlsConfig> {
        p.unknown("server.tls", &self.unknown);
        let mut file = |key: &str, raw: Option<String>| {
            let key = format!("server.tls.{key}");
            let Some(path) = raw else {
                p.add(&key, "required with [server.tls]");
                return None;
            };
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => Some(PathBuf::from(path)),
                Ok(_) => {
                    p.add(&key, format!("{path} is not a regular file"));
                    None
                }
                Err(e) => {
                    p.add(&key, format!("cannot read {path}: {e}"));
                    None
                }
            }
        };
        let cert_file = file("cert_file", self.cert_file);
        let key_file = file("key_file", self.key_file);
        let min_version = p.one_of(
            "server.tls.min_version",
            self.min_version.as_deref(),
            "1.2",
            &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
        );
        let recheck = p.duration(
            "server.tls.recheck",
            self.recheck.as_deref(),
            DEFAULT_TLS_RECHECK,
        );
        if recheck.is_zero() && self.recheck.is_some_and(|r| parse_duration(&r).is_ok()) {
            p.add("server.tls.recheck", "must be greater than zero");
        }
        Some(TlsConfig {
            cert_file: cert_file?,
            key_file: key_file?,
            min_version,
            recheck,
        })
    }
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub shutdown_grace: Duration,
    /// `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl RawServer {
    pub(super) fn validate(self, p: &mut Problems) -> ServerConfig {
        p.unknown("server", &self.unknown);
        let listen = self.listen.as_deref().unwrap_or(defaults::LISTEN);
        let listen = listen.parse().unwrap_or_else(|_| {
            p.add(
                "server.listen",
                format!("{listen:?} is not an address like 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        ServerConfig {
            listen,
            max_body_bytes: p.positive(
                "server.max_body_bytes",
                self.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES),
            ),
            max_connections: p.positive(
                "server.max_connections",
                self.max_connections.unwrap_or(defaults::MAX_CONNECTIONS),
            ),
            header_read_timeout: read_timeout(
                p,
                "server.header_read_timeout",
                self.header_read_timeout.as_deref(),
                defaults::HEADER_READ_TIMEOUT,
            ),
            body_read_timeout: read_timeout(
                p,
                "server.body_read_timeout",
                self.body_read_timeout.as_deref(),
                defaults::BODY_READ_TIMEOUT,
            ),
            shutdown_grace: p.duration(
                "server.shutdown_grace",
                self.shutdown_grace.as_deref(),
                defaults::SHUTDOWN_GRACE,
            ),
            tls: self.tls.and_then(|t| t.validate(p)),
        }
    }
}

/// A read timeout: a duration greater than zero.
fn read_timeout(p: &mut Problems, key: &str, raw: Option<&str>, default: &str) -> Duration {
    let timeout = p.duration(key, raw, default);
    if timeout.is_zero() && raw.is_some_and(|r| parse_duration(r).is_ok()) {
        p.add(
            key,
            "must be greater than zero (\"0s\" would cut every request)",
        );
    }
    timeout
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn read_timeouts_must_be_longer_than_zero() {
        let toml = "[server]\nheader_read_timeout = \"0s\"\nbody_read_timeout = \"0ms\"\n";
        let err = Config::from_toml(toml, Vec::new()).unwrap_err();
        assert_eq!(
            err.problems,
            [
                "server.header_read_timeout: must be greater than zero (\"0s\" would cut every request)",
                "server.body_read_timeout: must be greater than zero (\"0s\" would cut every request)",
            ]
        );
        let toml = "[server]\nheader_read_timeout = \"soon\"\n";
        let err = Config::from_toml(toml, Vec::new()).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.problems[0].starts_with("server.header_read_timeout: "));
        let toml = "[server]\nheader_read_timeout = \"250ms\"\nbody_read_timeout = \"1s\"\n";
        let config = Config::from_toml(toml, Vec::new()).unwrap();
        assert_eq!(config.server.header_read_timeout.as_millis(), 250);
    }
}
