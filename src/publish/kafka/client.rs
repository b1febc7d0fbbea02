//! What every Kafka client of sluice shares: its librdkafka settings (`[kafka.properties]`,
//! `[kafka.tls]`, `[kafka.sasl]`), and how librdkafka's TLS and SASL failures are told.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;

/// How often the same TLS or SASL failure is logged again while it lasts.
const RELOG: Duration = Duration::from_secs(60);

/// The client settings shared by every client sluice makes (producers, consumers, admin):
/// `[kafka.properties]`, then `[kafka.tls]` and `[kafka.sasl]`. SASL without TLS is warned
/// about once, when the first client is made.
pub fn client_config(config: &KafkaConfig, bootstrap: &str) -> ClientConfig {
    static IN_CLEAR: std::sync::Once = std::sync::Once::new();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in &config.properties {
        c.set(k, v);
    }
    for (k, v) in config.security.settings() {
        c.set(k, v);
    }
    if config.security.in_clear() {
        IN_CLEAR.call_once(|| {
            tracing::warn!(
                brokers = bootstrap,
                "kafka.sasl without kafka.tls: the SASL credentials cross the network in clear \
                 (SASL_PLAINTEXT); set [kafka.tls] for SASL_SSL"
            );
        });
    }
    c
}

/// Whether librdkafka's `error` is a TLS or SASL failure (a broker certificate not trusted,
/// credentials refused); if so it is logged, once a [`RELOG`] while the same failure repeats.
/// librdkafka's reason names the broker and what failed, never the password.
pub(super) fn refused(error: &KafkaError, reason: &str) -> bool {
    static LOGGED: Mutex<Option<(String, Instant)>> = Mutex::new(None);
    let code = error.rdkafka_error_code();
    if !matches!(
        code,
        Some(RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication)
    ) {
        return false;
    }
    // Each failed attempt is reported (twice), its duration in the reason's tail.
    let what = reason.split(" (after ").next().unwrap_or(reason);
    let mut logged = LOGGED.lock().expect("refused log lock");
    let again = logged
        .as_ref()
        .is_none_or(|(last, at)| last != what || at.elapsed() >= RELOG);
    if again {
        tracing::error!(%error, reason, "kafka connection refused");
        *logged = Some((what.to_string(), Instant::now()));
    }
    true
}
