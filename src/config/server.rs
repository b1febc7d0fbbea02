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
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub shutdown_grace: Duration,
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
