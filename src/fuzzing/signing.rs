//! The `signatures` target: the checks that decide whether a signed body is believed, on
//! arbitrary bytes and without a network. The first byte picks a mode (its value modulo 4),
//! the rest is the mode's input:
//! - 0, an SNS envelope: the raw body as `ingest::sns_verify` reads it (`Envelope::read`), the
//!   strings to sign of both field lists, the `SigningCertURL` check against `TopicArn`, the
//!   `Signature`'s base64, and the verifier's topic check ([`SNS_TOPICS`]; signatures off, so
//!   no certificate is fetched). A refusal is a 400 or a 403, and a message is taken only from
//!   a listed topic.
//! - 1, a certificate's DER: the validity reader (`sns_verify::certs::validity`), then the
//!   bytes as a fetched PEM document would carry them (base64 between the markers) and as the
//!   document itself, through `SigningCert::from_pem`; a certificate read has the validity
//!   the reader found, and is valid exactly from its `notBefore` to its `notAfter`.
//! - 2, a signed webhook: a head (`name: value` header lines), a NUL, the body, checked by
//!   `Signatures::check` at [`NOW`] for each kind [`SIGNATURES_CONFIG`] signs (Grafana with a
//!   timestamp, Sentry, a generic sender with HMAC-SHA512 in base64, a prefix and a payload
//!   around a timestamp). A refusal answers 401.
//! - 3, a `SigningCertURL`, a NUL, a `TopicArn`: the URL check alone.
//!
//! A `SigningCertURL` that passes is, whatever else, an https URL of a `.pem` path on exactly
//! `sns.<region>.amazonaws.com` (`.com.cn` in `aws-cn`), without user info, port, query or
//! fragment, in the topic's region.

use std::sync::OnceLock;

use http::{StatusCode, Uri};

use super::{block_on, headers, lines, split};
use crate::base64::encode_base64;
use crate::config::Config;
use crate::ingest::auth::Signatures;
use crate::ingest::integrations::cloudwatch_sns::{arn_partition_region, SnsSettings};
use crate::ingest::integrations::fixture::NOW;
use crate::ingest::sns_verify::certs::{self, SigningCert};
use crate::ingest::sns_verify::{self, Envelope, SnsVerifier, CONFIRMATION, NOTIFICATION};
use crate::integration::Integration;
use crate::recording::decode_base64;
use crate::time::UnixMillis;

/// The webhook signatures mode 2 checks: the three schemes, the timestamp in two of them.
pub const SIGNATURES_CONFIG: &str = r#"
[auth.integrations.grafana.signature]
scheme = "grafana"
secrets = ["fuzz-grafana-hmac", "fuzz-grafana-old-hmac"]
timestamp_header = "X-Grafana-Alerting-Signature-Timestamp"

[auth.integrations.sentry.signature]
scheme = "sentry"
secrets = ["fuzz-sentry-client-secret"]

[auth.integrations.generic.signature]
scheme = "hmac"
secrets = ["fuzz-generic-hmac"]
header = "X-Signature"
algorithm = "sha512"
encoding = "base64"
prefix = "sha512="
timestamp_header = "X-Timestamp"
payload = "v0:{timestamp}:{body}"
"#;

/// The kinds [`SIGNATURES_CONFIG`] signs.
pub const SIGNED_KINDS: [Integration; 3] = [
    Integration::Grafana,
    Integration::Sentry,
    Integration::Generic,
];

/// The topics mode 0's verifier takes (the SNS fixtures' topic among them).
pub const SNS_TOPICS: [&str; 2] = [
    "arn:aws:sns:eu-west-1:111122223333:ops-alarms",
    "arn:aws-cn:sns:cn-north-1:111122223333:ops",
];

/// Any bytes; the mode is the first byte's (see the module doc).
pub fn signatures(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    match first % 4 {
        0 => envelope(rest),
        1 => certificate(rest),
        2 => webhook(rest),
        _ => {
            let (url, topic) = split(rest);
            if let (Ok(url), Ok(topic)) = (std::str::from_utf8(url), std::str::from_utf8(topic)) {
                cert_url(url, topic);
            }
        }
    }
}

/// Checks `body` as the SNS route does before any certificate is needed.
fn envelope(body: &[u8]) {
    static VERIFIER: OnceLock<SnsVerifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let settings = SnsSettings {
            verify_signatures: false,
            topic_arns: Some(SNS_TOPICS.iter().map(|t| t.to_string()).collect()),
            ..SnsSettings::default()
        };
        SnsVerifier::from_settings(&settings).expect("a topic list is something to check")
    });
    let read = Envelope::read(body);
    let verdict = block_on(verifier.verify_at(body, NOW));
    match (&read, verdict) {
        (Ok(env), Ok(())) => {
            let topic = env
                .get("TopicArn")
                .expect("a message taken names its topic");
            assert!(SNS_TOPICS.contains(&topic), "taken from {topic:?}");
        }
        (_, Err(refusal)) => {
            let status = refusal.response().status();
            assert!(
                [StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN].contains(&status),
                "{refusal} answers {status}"
            );
            if let Err(e) = &read {
                assert_eq!(e, &refusal, "the verifier refuses what cannot be read");
            }
        }
        (Err(e), Ok(())) => panic!("an envelope refused ({e}) is taken"),
    }
    let Ok(env) = read else {
        return;
    };
    for signed in [NOTIFICATION, CONFIRMATION] {
        let text = sns_verify::string_to_sign(&env, signed);
        let len: usize = signed
            .iter()
            .filter_map(|name| Some(name.len() + env.get(name)?.len() + 2))
            .sum();
        assert_eq!(text.len(), len, "a name and a value line per field present");
    }
    if let Some(url) = env.get("SigningCertURL") {
        cert_url(url, env.get("TopicArn").unwrap_or_default());
    }
    let _ = env.get("Signature").and_then(decode_base64);
}

/// The `SigningCertURL` check, and what a URL it passes must be.
fn cert_url(url: &str, topic: &str) {
    let Some(region) = sns_verify::cert_url_region(url, topic) else {
        return;
    };
    let uri: Uri = url.parse().expect("a passed SigningCertURL is a URI");
    assert_eq!(uri.scheme_str(), Some("https"), "{url}");
    let authority = uri.authority().expect("an https URL has a host").as_str();
    let host = authority
        .strip_prefix("sns.")
        .and_then(|h| h.strip_prefix(region));
    assert!(
        matches!(host, Some(".amazonaws.com" | ".amazonaws.com.cn")),
        "{url} is not on the SNS host of {region}"
    );
    assert!(uri.port().is_none(), "{url}");
    assert_eq!(uri.query(), None, "{url}");
    assert!(!url.contains(['#', '?', '\\']), "{url}");
    assert!(uri.path().ends_with(".pem"), "{url}");
    let (partition, topic_region) = arn_partition_region(topic).expect("a topic ARN");
    assert_eq!(topic_region, region, "{url} for {topic}");
    assert_eq!(partition == "aws-cn", authority.ends_with(".cn"), "{url}");
}

/// The certificate reader on `der`, alone and as the PEM document a fetch returns.
fn certificate(der: &[u8]) {
    let validity = certs::validity(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    let b64 = encode_base64(der);
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    if let Ok(cert) = SigningCert::from_pem(pem.as_bytes()) {
        assert_eq!(&*cert.der, der, "the PEM document's certificate");
        assert_eq!(Some((cert.not_before, cert.not_after)), validity);
        check_times(&cert);
    }
    if let Ok(cert) = SigningCert::from_pem(der) {
        check_times(&cert);
    }
}

/// A certificate is valid from its `notBefore` to its `notAfter`, both included.
fn check_times(cert: &SigningCert) {
    let _ = cert.check_time(NOW);
    let (from, to) = (cert.not_before, cert.not_after);
    if from <= to {
        assert!(cert.check_time(from).is_ok(), "valid at notBefore");
        assert!(cert.check_time(to).is_ok(), "valid at notAfter");
    }
    if let Some(before) = from.0.checked_sub(1) {
        assert!(cert.check_time(UnixMillis(before)).is_err());
    }
    if let Some(after) = to.0.checked_add(1) {
        assert!(cert.check_time(UnixMillis(after)).is_err());
    }
}

/// A webhook's headers and body through every signed kind's check.
fn webhook(data: &[u8]) {
    static SIGNATURES: OnceLock<Signatures> = OnceLock::new();
    let signatures = SIGNATURES.get_or_init(|| {
        let config = Config::from_toml(SIGNATURES_CONFIG, Vec::new())
            .expect("the signatures config is valid");
        Signatures::from_config(&config.auth)
    });
    let (head, body) = split(data);
    let headers = headers(lines(head));
    for kind in SIGNED_KINDS {
        if let Err(denied) = signatures.check(kind, &headers, body, NOW) {
            let status = denied.response(kind).status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{denied:?}");
        }
    }
}
