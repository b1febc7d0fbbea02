//! `[kafka.tls]` and `[kafka.sasl]`: how every Kafka client of sluice (producers, consumers,
//! the admin client, `sluice tail`, `sluice migrate`) talks to the brokers. Both sections are
//! optional; without them the clients speak plaintext, as librdkafka does by default.
//!
//! ```toml
//! [kafka.tls]
//! enabled = true                   # default false; true as soon as another key is given
//! ca_file = "/etc/sluice/kafka-ca.pem"    # PEM; absent: the system's CA store
//!                                         # (also SLUICE_KAFKA_TLS_CA_FILE)
//! cert_file = "/etc/sluice/client.pem"    # mutual TLS: the client certificate (PEM) and
//! key_file = "/etc/sluice/client.key"     # its unencrypted key (PEM); both or neither
//! verify_hostname = true           # the broker's certificate must name the host dialled
//!
//! [kafka.sasl]
//! mechanism = "SCRAM-SHA-512"      # "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"
//!                                  # (also SLUICE_KAFKA_SASL_MECHANISM)
//! username = "sluice"              # also SLUICE_KAFKA_SASL_USERNAME
//! password_file = "/run/secrets/kafka-password"  # one line; or password = "..."
//!                                  # (SLUICE_KAFKA_SASL_PASSWORD replaces both)
//! ```
//!
//! SASL with TLS is `SASL_SSL`; SASL without TLS is `SASL_PLAINTEXT`, allowed, and warned about
//! at start (the PLAIN password travels in clear). The files are read here, so a missing or
//! unreadable one is a problem naming its key; the password is kept as a [`Secret`], whose
//! `Debug` shows no byte of it, and no problem quotes it. With either section, `security.protocol`,
//! `sasl.*` and `ssl.*` cannot also be set in `[kafka.properties]`: one way to configure each
//! thing. Without them, `[kafka.properties]` passes such settings through as before.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::auth::Secret;
use crate::config::{Problems, Unknown};

/// The longest certificate, key or password file read (a larger one is refused).
const MAX_FILE_BYTES: u64 = 1 << 20;

// The environment variables that set a key of these sections.
const ENV_USERNAME: &str = "SLUICE_KAFKA_SASL_USERNAME";
const ENV_PASSWORD: &str = "SLUICE_KAFKA_SASL_PASSWORD";
const ENV_MECHANISM: &str = "SLUICE_KAFKA_SASL_MECHANISM";
const ENV_CA_FILE: &str = "SLUICE_KAFKA_TLS_CA_FILE";
/// Each, with the key it sets (`config::ENV_OVERRIDES` lists them all).
#[cfg(test)]
pub(super) const ENV_KEYS: [(&str, &str); 4] = [
    (ENV_USERNAME, "kafka.sasl.username"),
    (ENV_PASSWORD, "kafka.sasl.password"),
    (ENV_MECHANISM, "kafka.sasl.mechanism"),
    (ENV_CA_FILE, "kafka.tls.ca_file"),
];

/// librdkafka settings the sections own: with either section, `[kafka.properties]` may not set
/// them (the prefixes end in a dot).
const OWNED: [&str; 4] = [
    "security.protocol",
    "sasl.",
    "ssl.",
    "enable.ssl.certificate.verification",
];

#[derive(Deserialize, Default)]
pub(in crate::config) struct RawTls {
    enabled: Option<bool>,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    verify_hostname: Option<bool>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
pub(in crate::config) struct RawSasl {
    mechanism: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// TLS and SASL to the brokers; the default is neither (plaintext).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    pub tls: Option<KafkaTls>,
    pub sasl: Option<KafkaSasl>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTls {
    /// The CA certificates (PEM) that sign the brokers'; `None`: the system's store.
    pub ca_file: Option<PathBuf>,
    /// The client certificate and its key (PEM), for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Whether the broker's certificate must name the host dialled.
    pub verify_hostname: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    /// As Kafka (and librdkafka's `sasl.mechanisms`) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    /// `Debug` shows its length only.
    pub password: Secret,
}

impl KafkaSecurity {
    /// The librdkafka settings of both sections (none without them), for every client.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => return out,
            (Some(_), None) => "ssl",
            (Some(_), Some(_)) => "sasl_ssl",
            (None, Some(_)) => "sasl_plaintext",
        };
        out.push(("security.protocol", protocol.to_string()));
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca_file {
                out.push(("ssl.ca.location", ca.display().to_string()));
            }
            if let Some((cert, key)) = &tls.client {
                out.push(("ssl.certificate.location", cert.display().to_string()));
                out.push(("ssl.key.location", key.display().to_string()));
            }
            let check = if tls.verify_hostname { "https" } else { "none" };
            out.push(("ssl.endpoint.identification.algorithm", check.to_string()));
        }
        if let Some(sasl) = &self.sasl {
            out.push(("sasl.mechanisms", sasl.mechanism.as_str().to_string()));
            out.push(("sasl.username", sasl.username.clone()));
            let password = String::from_utf8_lossy(sasl.password.expose()).into_owned();
            out.push(("sasl.password", password));
        }
        out
    }

    /// SASL without TLS: the credentials (PLAIN's password itself) cross the network in clear.
    pub fn in_clear(&self) -> bool {
        self.sasl.is_some() && self.tls.is_none()
    }
}

/// Sets the key of `[kafka.sasl]` or `[kafka.tls]` that the environment variable `name`
/// overrides; `false` for any other name.
pub(in crate::config) fn apply_env(
    tls: &mut Option<RawTls>,
    sasl: &mut Option<RawSasl>,
    name: &str,
    value: &str,
) -> bool {
    let value = Some(value.to_string());
    match name {
        ENV_USERNAME => sasl.get_or_insert_with(RawSasl::default).username = value,
        ENV_MECHANISM => {
            sasl.get_or_insert_with(RawSasl::default).mechanism = value;
        }
        ENV_PASSWORD => {
            // The environment's password replaces the file's, whichever way it gives one.
            let sasl = sasl.get_or_insert_with(RawSasl::default);
            sasl.password = value;
            sasl.password_file = None;
        }
        ENV_CA_FILE => tls.get_or_insert_with(RawTls::default).ca_file = value,
        _ => return false,
    }
    true
}

/// Checks both sections against each other, `[kafka.properties]` and the brokers.
pub(in crate::config) fn validate(
    tls: Option<RawTls>,
    sasl: Option<RawSasl>,
    properties: &std::collections::BTreeMap<String, String>,
    embedded: bool,
    p: &mut Problems,
) -> KafkaSecurity {
    let sasl_given = sasl.is_some();
    let tls = tls.and_then(|raw| raw.validate(p));
    let sasl = sasl.and_then(|raw| raw.validate(p));
    let given: Vec<&str> = [("[kafka.tls]", tls.is_some()), ("[kafka.sasl]", sasl_given)]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    if !given.is_empty() {
        let sections = given.join(" and ");
        for key in properties.keys() {
            let owned = OWNED.iter().any(|o| match o.ends_with('.') {
                true => key.starts_with(o),
                false => key == o,
            });
            if owned {
                p.add(
                    &format!("kafka.properties.\"{key}\""),
                    format!("is set by {sections}: configure TLS and SASL in one place"),
                );
            }
        }
        if embedded {
            p.add(
                "kafka.brokers",
                format!(
                    "the embedded broker speaks plaintext only; set kafka.brokers to a cluster \
                     for {sections}"
                ),
            );
        }
    }
    KafkaSecurity { tls, sasl }
}

impl RawTls {
    /// `None` when TLS is off.
    fn validate(self, p: &mut Problems) -> Option<KafkaTls> {
        p.unknown("kafka.tls", &self.unknown);
        let others = [
            ("ca_file", self.ca_file.is_some()),
            ("cert_file", self.cert_file.is_some()),
            ("key_file", self.key_file.is_some()),
            ("verify_hostname", self.verify_hostname.is_some()),
        ];
        let set: Vec<&str> = others.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
        match self.enabled {
            Some(false) if !set.is_empty() => {
                let keys: Vec<String> = set.iter().map(|k| format!("kafka.tls.{k}")).collect();
                p.add(
                    "kafka.tls.enabled",
                    format!("is false, but {} is set: remove one", keys.join(", ")),
                );
                return None;
            }
            Some(false) => return None,
            None if set.is_empty() => return None,
            _ => {}
        }
        let ca_file = self
            .ca_file
            .map(|f| pem_file(p, "kafka.tls.ca_file", f, "CERTIFICATE"));
        let client = match (self.cert_file, self.key_file) {
            (Some(cert), Some(key)) => Some((
                pem_file(p, "kafka.tls.cert_file", cert, "CERTIFICATE"),
                pem_file(p, "kafka.tls.key_file", key, "PRIVATE KEY"),
            )),
            (None, None) => None,
            (Some(_), None) => {
                p.add("kafka.tls.key_file", "is required with kafka.tls.cert_file");
                None
            }
            (None, Some(_)) => {
                p.add("kafka.tls.cert_file", "is required with kafka.tls.key_file");
                None
            }
        };
        Some(KafkaTls {
            ca_file,
            client,
            verify_hostname: self.verify_hostname.unwrap_or(true),
        })
    }
}

impl RawSasl {
    fn validate(self, p: &mut Problems) -> Option<KafkaSasl> {
        p.unknown("kafka.sasl", &self.unknown);
        let names: Vec<String> = SaslMechanism::ALL
            .iter()
            .map(|m| format!("{:?}", m.as_str()))
            .collect();
        let mechanism = match self.mechanism.as_deref() {
            None => {
                p.add(
                    "kafka.sasl.mechanism",
                    format!("is required: one of {}", names.join(", ")),
                );
                None
            }
            Some(m) => {
                let found = SaslMechanism::ALL.into_iter().find(|k| k.as_str() == m);
                if found.is_none() {
                    p.add(
                        "kafka.sasl.mechanism",
                        format!("{m:?} must be one of {}", names.join(", ")),
                    );
                }
                found
            }
        };
        let username = match self.username {
            Some(u) if !u.is_empty() && !u.chars().any(char::is_control) => Some(u),
            Some(_) => {
                p.add("kafka.sasl.username", "must be a non-empty name");
                None
            }
            None => {
                p.add("kafka.sasl.username", "is required");
                None
            }
        };
        let password = match (self.password, self.password_file) {
            (Some(pw), None) => password(p, "kafka.sasl.password", pw),
            (None, Some(file)) => match read_small(Path::new(&file)) {
                Ok(text) => password(
                    p,
                    "kafka.sasl.password_file",
                    text.trim_end_matches(['\n', '\r']).to_string(),
                ),
                Err(e) => {
                    p.add("kafka.sasl.password_file", e);
                    None
                }
            },
            _ => {
                p.add(
                    "kafka.sasl",
                    "give exactly one of password and password_file",
                );
                None
            }
        };
        Some(KafkaSasl {
            mechanism: mechanism?,
            username: username?,
            password: password?,
        })
    }
}

/// A password: not empty, one line. The problem never quotes it.
fn password(p: &mut Problems, key: &str, pw: String) -> Option<Secret> {
    if pw.is_empty() {
        p.add(key, "must not be empty");
        None
    } else if pw.contains(['\n', '\r', '\0']) {
        p.add(key, "must be one line");
        None
    } else {
        Some(Secret::new(pw))
    }
}

/// `file` when it is a readable PEM file holding a `kind` block (`CERTIFICATE`, `PRIVATE
/// KEY`), else a problem at `key`; keys must be unencrypted (librdkafka gets no passphrase).
fn pem_file(p: &mut Problems, key: &str, file: String, kind: &str) -> PathBuf {
    let path = PathBuf::from(file);
    match read_small(&path) {
        Err(e) => p.add(key, e),
        Ok(text) if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") => p.add(
            key,
            format!(
                "{} is an encrypted key: give the key unencrypted (protect the file instead)",
                path.display()
            ),
        ),
        Ok(text)
            if !text.lines().any(|l| {
                l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{kind}-----"))
            }) =>
        {
            p.add(key, format!("{} holds no PEM {kind}", path.display()))
        }
        Ok(_) => {}
    }
    path
}

/// The text of a regular file of at most [`MAX_FILE_BYTES`], or why not.
fn read_small(path: &Path) -> Result<String, String> {
    crate::config::read_small_file(path, MAX_FILE_BYTES)
}
