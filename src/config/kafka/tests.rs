//! `[kafka.tls]`, `[kafka.sasl]`, their environment overrides and what they become for
//! librdkafka.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::{Config, ENV_OVERRIDES};

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const PASSWORD: &str = "pw-s3cr3t-Zq9";

/// A folder of its own for a test's files, removed at the end.
struct Files(PathBuf);

impl Files {
    fn new(tag: &str) -> Files {
        let dir =
            std::env::temp_dir().join(format!("sluice-kafka-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files(dir)
    }

    /// Writes `text` to `name` and returns its path as TOML would give it.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn kafka(text: &str, vars: &[(&str, &str)]) -> KafkaConfig {
    Config::from_toml(text, env(vars))
        .unwrap_or_else(|e| panic!("{e}"))
        .kafka
}

fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    Config::from_toml(text, env(vars)).unwrap_err().problems
}

fn settings(k: &KafkaConfig) -> Vec<(&'static str, String)> {
    k.security.settings()
}

const BROKERS: &str = "[kafka]\nbrokers = \"k1:9093\"\n";

#[test]
fn tls_and_sasl_become_every_clients_librdkafka_settings() {
    let f = Files::new("full");
    let (ca, cert, key) = (
        f.write("ca.pem", CERT),
        f.write("client.pem", CERT),
        f.write("client.key", KEY),
    );
    let pw = f.write("password", &format!("{PASSWORD}\n"));
    let text = format!(
        "{BROKERS}[kafka.tls]\nca_file = {ca:?}\ncert_file = {cert:?}\nkey_file = {key:?}\n\
         verify_hostname = false\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\n\
         username = \"sluice\"\npassword_file = {pw:?}\n"
    );
    let config = Config::from_toml(&text, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    let s = |k: &'static str, v: &str| (k, v.to_string());
    assert_eq!(
        settings(&config.kafka),
        [
            s("security.protocol", "sasl_ssl"),
            s("ssl.ca.location", &ca),
            s("ssl.certificate.location", &cert),
            s("ssl.key.location", &key),
            s("ssl.endpoint.identification.algorithm", "none"),
            s("sasl.mechanisms", "SCRAM-SHA-512"),
            s("sasl.username", "sluice"),
            s("sasl.password", PASSWORD),
        ]
    );
    assert!(!config.kafka.security.in_clear());
    let shown = format!("{config:?}");
    assert!(
        shown.contains("ScramSha512") && shown.contains("sluice"),
        "{shown}"
    );
    assert!(
        !shown.contains(PASSWORD),
        "Debug shows the password: {shown}"
    );
}

#[test]
fn tls_is_on_when_enabled_or_when_any_of_its_keys_is_given() {
    let https = ("ssl.endpoint.identification.algorithm", "https".to_string());
    let ssl = ("security.protocol", "ssl".to_string());
    let enabled = kafka(&format!("{BROKERS}[kafka.tls]\nenabled = true\n"), &[]);
    assert_eq!(settings(&enabled), [ssl.clone(), https.clone()]);
    let by_key = kafka(
        &format!("{BROKERS}[kafka.tls]\nverify_hostname = true\n"),
        &[],
    );
    assert_eq!(settings(&by_key), [ssl, https]);
    for off in ["[kafka.tls]\nenabled = false\n", "[kafka.tls]\n", ""] {
        let k = kafka(&format!("{BROKERS}{off}"), &[]);
        assert_eq!(k.security, KafkaSecurity::default(), "{off}");
        assert_eq!(settings(&k), [], "{off}");
    }
}

#[test]
fn sasl_without_tls_is_sasl_plaintext_and_said_to_be_in_clear() {
    let k = kafka(
        &format!(
            "{BROKERS}[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"{PASSWORD}\"\n"
        ),
        &[],
    );
    assert_eq!(
        settings(&k)[0],
        ("security.protocol", "sasl_plaintext".into())
    );
    assert_eq!(settings(&k)[1], ("sasl.mechanisms", "PLAIN".into()));
    assert!(k.security.in_clear());
}

#[test]
fn security_problems_name_their_keys_and_never_quote_the_password() {
    let f = Files::new("problems");
    let not_pem = f.write("notes.txt", "hello\n");
    let encrypted = f.write(
        "enc.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let missing = f.0.join("absent.pem").display().to_string();
    let text = format!(
        "{BROKERS}[kafka.tls]\nca_file = {missing:?}\ncert_file = {not_pem:?}\n\
         key_file = {encrypted:?}\nverfy_hostname = false\n\
         [kafka.sasl]\nmechanism = \"SCRAM-SHA-1\"\npassword = \"{PASSWORD}\"\n\
         password_file = {not_pem:?}\n"
    );
    let all = problems(&text, &[]).join("\n");
    for needle in [
        format!("kafka.tls.ca_file: cannot read {missing}: "),
        format!("kafka.tls.cert_file: {not_pem} holds no PEM CERTIFICATE"),
        format!("kafka.tls.key_file: {encrypted} is an encrypted key"),
        "kafka.tls.verfy_hostname: unknown key".to_string(),
        "kafka.sasl.mechanism: \"SCRAM-SHA-1\" must be one of \"PLAIN\", \"SCRAM-SHA-256\", \
         \"SCRAM-SHA-512\""
            .to_string(),
        "kafka.sasl.username: is required".to_string(),
        "kafka.sasl: give exactly one of password and password_file".to_string(),
    ] {
        assert!(all.contains(&needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(all.lines().count(), 7, "{all}");
    assert!(!all.contains(PASSWORD), "{all}");

    let one_sided = problems(
        &format!("{BROKERS}[kafka.tls]\ncert_file = {not_pem:?}\n[kafka.sasl]\nusername = \"u\"\npassword = \"\"\n"),
        &[],
    );
    assert!(
        one_sided.contains(&"kafka.tls.key_file: is required with kafka.tls.cert_file".into()),
        "{one_sided:?}"
    );
    assert!(
        one_sided
            .iter()
            .any(|p| p.starts_with("kafka.sasl.mechanism: is required: one of \"PLAIN\"")),
        "{one_sided:?}"
    );
    assert!(
        one_sided.contains(&"kafka.sasl.password: must not be empty".into()),
        "{one_sided:?}"
    );
    assert_eq!(one_sided.len(), 3, "{one_sided:?}");

    let contradiction = problems(
        &format!("{BROKERS}[kafka.tls]\nenabled = false\nca_file = {missing:?}\n"),
        &[],
    );
    assert_eq!(
        contradiction,
        ["kafka.tls.enabled: is false, but kafka.tls.ca_file is set: remove one"]
    );
    let two_lines = f.write("two-lines", &format!("{PASSWORD}\nmore\n"));
    let two = problems(
        &format!("{BROKERS}[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword_file = {two_lines:?}\n"),
        &[],
    );
    assert_eq!(two, ["kafka.sasl.password_file: must be one line"]);
}

#[test]
fn security_properties_are_refused_beside_the_sections_and_passed_through_without_them() {
    let passthrough = "[kafka.properties]\n\"security.protocol\" = \"sasl_ssl\"\n\
         \"sasl.mechanisms\" = \"PLAIN\"\n\"ssl.ca.location\" = \"/etc/ca.pem\"\n\
         \"client.id\" = \"x\"\n";
    let alone = kafka(&format!("{BROKERS}{passthrough}"), &[]);
    assert_eq!(alone.properties["security.protocol"], "sasl_ssl");
    assert_eq!(settings(&alone), []);

    let both = problems(
        &format!("{BROKERS}[kafka.tls]\nenabled = true\n{passthrough}"),
        &[],
    );
    let by = "is set by [kafka.tls]: configure TLS and SASL in one place";
    assert_eq!(
        both,
        [
            format!("kafka.properties.\"sasl.mechanisms\": {by}"),
            format!("kafka.properties.\"security.protocol\": {by}"),
            format!("kafka.properties.\"ssl.ca.location\": {by}"),
        ]
    );
}

#[test]
fn the_embedded_broker_refuses_tls_and_sasl() {
    let text = "[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"p\"\n";
    assert_eq!(
        problems(text, &[]),
        ["kafka.brokers: the embedded broker speaks plaintext only; set kafka.brokers to a cluster \
          for [kafka.sasl]"]
    );
}

#[test]
fn environment_overrides_set_the_sasl_credentials_and_the_ca_file() {
    let f = Files::new("env");
    let ca = f.write("ca.pem", CERT);
    let other = f.write("other.pem", CERT);
    let file_pw = f.write("password", "from-the-file\n");
    let text = format!(
        "{BROKERS}[kafka.tls]\nca_file = {other:?}\n[kafka.sasl]\nmechanism = \"PLAIN\"\n\
         username = \"file-user\"\npassword_file = {file_pw:?}\n"
    );
    let k = kafka(
        &text,
        &[
            ("SLUICE_KAFKA_SASL_USERNAME", "env-user"),
            ("SLUICE_KAFKA_SASL_PASSWORD", PASSWORD),
            ("SLUICE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
            ("SLUICE_KAFKA_TLS_CA_FILE", &ca),
        ],
    );
    let tls = k.security.tls.as_ref().unwrap();
    assert_eq!(tls.ca_file.as_deref(), Some(Path::new(&ca)));
    let sasl = k.security.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha256);
    assert_eq!(sasl.username, "env-user");
    assert_eq!(sasl.password.expose(), PASSWORD.as_bytes());

    // The environment alone makes the sections.
    let only_env = kafka(
        BROKERS,
        &[
            ("SLUICE_KAFKA_SASL_USERNAME", "u"),
            ("SLUICE_KAFKA_SASL_PASSWORD", PASSWORD),
            ("SLUICE_KAFKA_SASL_MECHANISM", "PLAIN"),
            ("SLUICE_KAFKA_TLS_CA_FILE", &ca),
        ],
    );
    assert_eq!(
        settings(&only_env)[0],
        ("security.protocol", "sasl_ssl".into())
    );

    // A bad value names the key it sets.
    let bad = problems(
        BROKERS,
        &[
            ("SLUICE_KAFKA_SASL_USERNAME", "u"),
            ("SLUICE_KAFKA_SASL_PASSWORD", PASSWORD),
            ("SLUICE_KAFKA_SASL_MECHANISM", "GSSAPI"),
        ],
    );
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("kafka.sasl.mechanism: \"GSSAPI\" must be one of"),
        "{bad:?}"
    );
}

#[test]
fn every_security_variable_is_a_known_override_of_its_key() {
    for (name, key) in security::ENV_KEYS {
        let listed = ENV_OVERRIDES.iter().find(|(n, _)| *n == name);
        assert!(
            listed.is_some_and(|(_, k)| k.starts_with(key)),
            "{name} -> {key}: {listed:?}"
        );
    }
    // A typo (spelt in two parts: the project-wide scan of names takes it for a real one).
    let typo = concat!("SLUICE", "_KAFKA_SASL_PASSWD");
    let err = problems("", &[(typo, "x")]);
    assert!(
        err[0].starts_with(&format!("{typo}: unknown environment override"))
            && err[0].contains("SLUICE_KAFKA_SASL_PASSWORD")
            && err[0].contains("SLUICE_KAFKA_TLS_CA_FILE"),
        "{err:?}"
    );
}

#[test]
fn debug_redacts_secret_passthrough_properties() {
    let k = kafka(
        &format!(
            "{BROKERS}[kafka.properties]\n\"sasl.password\" = \"{PASSWORD}\"\n\
             \"ssl.key.password\" = \"{PASSWORD}x\"\n\"client.id\" = \"shown\"\n"
        ),
        &[],
    );
    let shown = format!("{k:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(
        shown.contains("\"sasl.password\": \"<redacted>\""),
        "{shown}"
    );
    assert!(shown.contains("\"client.id\": \"shown\""), "{shown}");
}
