//! `[server]`: the HTTP listener. Every key is optional; the values shown are the defaults:
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! max_body_bytes = 524288        # PagerDuty's request limit; larger bodies get 413
//! max_connections = 4096         # connections beyond this are closed at accept
//! header_read_timeout = "10s"
//! body_read_timeout = "30s"
//! shutdown_grace = "30s"         # on SIGTERM: drain connections, then flush Kafka deliveries
//! ```
//!
//! Validates that `listen` is a socket address, the sizes are greater than zero and the
//! timeouts are durations; unknown keys are rejected.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{defaults, Problems, Unknown};

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
            header_read_timeout: p.duration(
                "server.header_read_timeout",
                self.header_read_timeout.as_deref(),
                defaults::HEADER_READ_TIMEOUT,
            ),
            body_read_timeout: p.duration(
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
