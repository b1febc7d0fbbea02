//! Signatures against vectors computed outside sluice (`openssl dgst -hmac`, RFC 2202/4231).

use http::HeaderMap;

use super::*;
use crate::config::{Config, ConfigError};

fn signatures(toml: &str) -> Signatures {
    let config = Config::from_toml(toml, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    Signatures::from_config(&config.auth)
}

fn problems(toml: &str) -> String {
    match Config::from_toml(toml, Vec::new()) {
        Ok(_) => panic!("accepted: {toml}"),
        Err(ConfigError { problems }) => problems.join("\n"),
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

/// 2025-12-06T14:00:00Z, the signed timestamp of the vectors below.
const TS: u64 = 1_765_029_600;
const NOW: UnixMillis = UnixMillis(TS * 1000 + 30_000);

const GRAFANA: &str = r#"
    [auth.integrations.grafana.signature]
    scheme = "grafana"
    secrets = ["grafana-hmac", "grafana-old"]
    timestamp_header = "X-Grafana-Alerting-Signature-Timestamp"
"#;
/// `printf '1765029600:{"status":"firing"}' | openssl dgst -sha256 -hmac grafana-hmac`
const GRAFANA_SIG: &str = "73550372d1c7da177ea5e3fe8d664d8fa42e3889550337d646a51394b9b6751b";
const GRAFANA_BODY: &[u8] = br#"{"status":"firing"}"#;

#[test]
fn grafana_signs_its_timestamp_and_body_and_the_timestamp_must_be_recent() {
    let s = signatures(GRAFANA);
    let g = Integration::Grafana;
    let ts = TS.to_string();
    let good = headers(&[
        ("x-grafana-alerting-signature", GRAFANA_SIG),
        ("x-grafana-alerting-signature-timestamp", &ts),
    ]);
    assert_eq!(s.check(g, &good, GRAFANA_BODY, NOW), Ok(()));
    // Upper-case hex is the same signature.
    let upper = headers(&[
        ("x-grafana-alerting-signature", &GRAFANA_SIG.to_uppercase()),
        ("x-grafana-alerting-signature-timestamp", &ts),
    ]);
    assert_eq!(s.check(g, &upper, GRAFANA_BODY, NOW), Ok(()));
    // Another integration is not signed.
    assert_eq!(
        s.check(Integration::Datadog, &HeaderMap::new(), b"{}", NOW),
        Ok(())
    );

    let tampered = br#"{"status":"resolved"}"#;
    let wrong = Denied::SignatureWrong("the 'x-grafana-alerting-signature' header".into());
    assert_eq!(s.check(g, &good, tampered, NOW), Err(wrong.clone()));
    // The same signature with another timestamp: the timestamp is signed.
    let shifted = headers(&[
        ("x-grafana-alerting-signature", GRAFANA_SIG),
        (
            "x-grafana-alerting-signature-timestamp",
            &(TS + 1).to_string(),
        ),
    ]);
    assert_eq!(s.check(g, &shifted, GRAFANA_BODY, NOW), Err(wrong.clone()));
    for garbage in ["", "zz", "7355", &GRAFANA_SIG[1..]] {
        let h = headers(&[
            ("x-grafana-alerting-signature", garbage),
            ("x-grafana-alerting-signature-timestamp", &ts),
        ]);
        assert_eq!(
            s.check(g, &h, GRAFANA_BODY, NOW),
            Err(wrong.clone()),
            "{garbage:?}"
        );
    }
    // Six minutes later the same request is stale.
    let later = UnixMillis(TS * 1000 + 360_000);
    match s.check(g, &good, GRAFANA_BODY, later) {
        Err(Denied::SignatureExpired { problem, .. }) => {
            assert!(problem.contains("360 s from now"), "{problem}")
        }
        other => panic!("{other:?}"),
    }
    let no_ts = headers(&[("x-grafana-alerting-signature", GRAFANA_SIG)]);
    assert_eq!(
        s.check(g, &no_ts, GRAFANA_BODY, NOW),
        Err(Denied::SignatureMissing(
            "the 'x-grafana-alerting-signature-timestamp' header".into()
        ))
    );
    let not_seconds = headers(&[
        ("x-grafana-alerting-signature", GRAFANA_SIG),
        (
            "x-grafana-alerting-signature-timestamp",
            "2025-12-06T14:00:00Z",
        ),
    ]);
    assert!(matches!(
        s.check(g, &not_seconds, GRAFANA_BODY, NOW),
        Err(Denied::SignatureExpired { .. })
    ));
    assert_eq!(
        s.check(g, &HeaderMap::new(), GRAFANA_BODY, NOW),
        Err(Denied::SignatureMissing(
            "the 'x-grafana-alerting-signature' or 'x-grafana-alert-signature' header".into()
        ))
    );
}

#[test]
fn grafana_without_a_timestamp_signs_the_body_under_either_default_header() {
    let s = signatures(
        r#"
        [auth.integrations.grafana.signature]
        scheme = "grafana"
        secrets = ["Jefe"]
    "#,
    );
    // RFC 4231 test case 2.
    let body = b"what do ya want for nothing?";
    let sig = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    for header in ["x-grafana-alerting-signature", "x-grafana-alert-signature"] {
        let h = headers(&[(header, sig)]);
        assert_eq!(
            s.check(Integration::Grafana, &h, body, NOW),
            Ok(()),
            "{header}"
        );
    }
}

#[test]
fn sentry_signs_the_body_with_the_client_secret_and_the_old_secret_still_verifies() {
    let s = signatures(
        r#"
        [auth.integrations.sentry.signature]
        scheme = "sentry"
        secrets = ["new-client-secret", "sentry-client-secret"]
    "#,
    );
    // printf '{"action":"triggered"}' | openssl dgst -sha256 -hmac sentry-client-secret
    let sig = "2a8a14366488082beadb8f28d6ce93e74ac35a27ab3f272b667e232c6239d38d";
    let body = br#"{"action":"triggered"}"#;
    let h = headers(&[("sentry-hook-signature", sig)]);
    assert_eq!(s.check(Integration::Sentry, &h, body, NOW), Ok(()));
    assert_eq!(
        s.check(Integration::Sentry, &h, br#"{"action":"resolved"}"#, NOW),
        Err(Denied::SignatureWrong(
            "the 'sentry-hook-signature' header".into()
        ))
    );
}

#[test]
fn generic_hmac_takes_its_algorithm_encoding_prefix_and_payload_from_config() {
    let s = signatures(
        r#"
        [auth.integrations.generic.signature]
        scheme = "hmac"
        secrets = ["gen"]
        header = "X-Signature"
        algorithm = "sha512"
        encoding = "base64"
        prefix = "v0="
        timestamp_header = "X-Timestamp"
        payload = "v0:{timestamp}:{body}"
        [auth.integrations.datadog.signature]
        scheme = "hmac"
        secrets = ["Jefe"]
        header = "X-Hub-Signature"
        algorithm = "sha1"
        prefix = "sha1="
    "#,
    );
    // printf 'v0:1765029600:{"x":1}' | openssl dgst -sha512 -hmac gen -binary | base64 -w0
    let sig = "v0=XsVziwA/5qTKt866SHi5Yzdrk/HAX9Vm71hJVE0++Te6pw1g6ne3VfzCQZJqj7os2C/42KNphamU9qMVvB9XKA==";
    let ts = TS.to_string();
    let h = headers(&[("x-signature", sig), ("x-timestamp", &ts)]);
    assert_eq!(
        s.check(Integration::Generic, &h, br#"{"x":1}"#, NOW),
        Ok(())
    );
    assert!(s
        .check(Integration::Generic, &h, br#"{"x":2}"#, NOW)
        .is_err());
    // RFC 2202 test case 2, GitHub-style prefix.
    let h = headers(&[(
        "x-hub-signature",
        "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
    )]);
    let body = b"what do ya want for nothing?";
    assert_eq!(s.check(Integration::Datadog, &h, body, NOW), Ok(()));
}

#[test]
fn signature_config_problems_name_their_keys() {
    let p = problems(
        r#"
        [auth.integrations.grafana.signature]
        scheme = "grafana"
        secrets = ["s"]
        algorithm = "sha1"
        [auth.integrations.sentry.signature]
        scheme = "sentry"
        timestamp_header = "Sentry-Hook-Timestamp"
        [auth.integrations.generic.signature]
        scheme = "hmac"
        secrets = ["s"]
        payload = "{body}:{timestamp}"
        encoding = "hex2"
        [auth.integrations.datadog.signature]
        secrets = ["s"]
        header = "X-Sig"
        payload = "{timestamp}:{body}"
    "#,
    );
    for expected in [
        "auth.integrations.grafana.signature.algorithm: is fixed by the scheme",
        "auth.integrations.sentry.signature.timestamp_header: Sentry does not sign",
        "auth.integrations.sentry.signature: no secret",
        "auth.integrations.generic.signature.header: required with scheme = \"hmac\"",
        "auth.integrations.generic.signature.payload: \"{body}:{timestamp}\" must end with {body}",
        "auth.integrations.generic.signature.encoding: \"hex2\" must be",
        "auth.integrations.datadog.signature.scheme: required",
        "auth.integrations.datadog.signature.payload: uses {timestamp} but no timestamp_header",
    ] {
        assert!(p.contains(expected), "{expected}\nin\n{p}");
    }
    // A signature alone needs no secret location; a secret alone still does.
    signatures(
        r#"
        [auth.integrations.sentry.signature]
        scheme = "sentry"
        secrets = ["s"]
    "#,
    );
    let p = problems(
        r#"
        [auth.integrations.sentry]
        secrets = ["s"]
        [auth.integrations.sentry.signature]
        scheme = "sentry"
        secrets = ["s"]
    "#,
    );
    assert!(p.contains("name exactly one place for the secret"), "{p}");
}

#[test]
fn secrets_never_show_in_the_config_debug() {
    let config = Config::from_toml(GRAFANA, Vec::new()).unwrap();
    let shown = format!("{:?}", config.auth);
    assert!(!shown.contains("grafana-hmac"), "{shown}");
    assert!(!shown.contains("grafana-old"), "{shown}");
}
