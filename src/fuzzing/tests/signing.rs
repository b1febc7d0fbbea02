//! The `signatures` target's seeds: SNS envelopes and certificate URLs from the golden
//! fixtures, the `sns_verify` tests' certificate, webhooks signed as [`SIGNATURES_CONFIG`] asks.

use ring::hmac;

use super::*;
use crate::base64::{decode_base64, encode_base64};

/// Every SNS fixture as an envelope (mode 0), and its `SigningCertURL` and `SubscribeURL` with
/// its `TopicArn` (mode 3); the `sns_verify` tests' certificate, as DER and as its PEM
/// document (mode 1); signed webhooks (mode 2).
pub(super) fn signatures_seeds() -> Vec<(String, Vec<u8>)> {
    let with_mode = |mode: u8, parts: &[&[u8]]| {
        let mut input = vec![mode];
        parts.iter().for_each(|p| input.extend_from_slice(p));
        input
    };
    let mut out = Vec::new();
    for f in fixtures() {
        if f.kind != Integration::CloudwatchSns {
            continue;
        }
        out.push((format!("sns-{}", f.case), with_mode(0, &[&f.body])));
        let Ok(envelope) = serde_json::from_slice::<Value>(&f.body) else {
            continue;
        };
        let topic = envelope["TopicArn"].as_str().unwrap_or_default().as_bytes();
        for field in ["SigningCertURL", "SubscribeURL"] {
            if let Some(url) = envelope[field].as_str() {
                let input = with_mode(3, &[url.as_bytes(), b"\0", topic]);
                out.push((format!("url-{}-{field}", f.case), input));
            }
        }
    }
    let cn = b"https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem\0arn:aws-cn:sns:cn-north-1:111122223333:ops";
    out.push(("url-aws-cn".into(), with_mode(3, &[cn])));
    let der = sns_test_certificate();
    out.push(("certificate".into(), with_mode(1, &[&der])));
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        encode_base64(&der)
    );
    out.push(("certificate-pem".into(), with_mode(1, &[pem.as_bytes()])));
    for (name, headers, body) in signed_webhooks() {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out.push((
            name.to_string(),
            with_mode(2, &[&request("", &headers, &body)]),
        ));
    }
    out
}

/// The certificate the `sns_verify` tests put in their cache, read from their PEM text.
fn sns_test_certificate() -> Vec<u8> {
    let text = std::fs::read_to_string(root().join("src/ingest/sns_verify/tests.rs")).unwrap();
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = text.find(begin).expect("the sns_verify tests' certificate") + begin.len();
    let end = start + text[start..].find("-----END CERTIFICATE-----").unwrap();
    let b64: String = text[start..end].split("\\n\\").map(str::trim).collect();
    let der = decode_base64(&b64).expect("the certificate's base64");
    assert!(
        crate::ingest::sns_verify::certs::validity(&der).is_some(),
        "the certificate has a validity period"
    );
    der
}

/// A name, headers, and the body (a fixture's).
type Webhook = (&'static str, Vec<(&'static str, String)>, Vec<u8>);

/// Webhooks signed as [`SIGNATURES_CONFIG`] asks, one of them too old, one unsigned.
fn signed_webhooks() -> Vec<Webhook> {
    let body = |kind: Integration| {
        let f = fixtures().into_iter().find(|f| f.kind == kind).unwrap();
        f.body
    };
    let (grafana, sentry, generic) = (
        body(Integration::Grafana),
        body(Integration::Sentry),
        body(Integration::Generic),
    );
    let sign = |algorithm, secret: &str, parts: &[&[u8]]| {
        let key = hmac::Key::new(algorithm, secret.as_bytes());
        let mut ctx = hmac::Context::with_key(&key);
        for part in parts {
            ctx.update(part);
        }
        ctx.sign().as_ref().to_vec()
    };
    let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let ts = (NOW.0 / 1000).to_string();
    let stale = (NOW.0 / 1000 - 3600).to_string();
    let grafana_sig = |secret, ts: &str| {
        hex(sign(
            hmac::HMAC_SHA256,
            secret,
            &[ts.as_bytes(), b":", &grafana],
        ))
    };
    let generic_sig = sign(
        hmac::HMAC_SHA512,
        "fuzz-generic-hmac",
        &[b"v0:", ts.as_bytes(), b":", &generic],
    );
    let grafana_ts = "x-grafana-alerting-signature-timestamp";
    vec![
        (
            "webhook-grafana",
            vec![
                (
                    "x-grafana-alerting-signature",
                    grafana_sig("fuzz-grafana-hmac", &ts),
                ),
                (grafana_ts, ts.clone()),
            ],
            grafana.clone(),
        ),
        (
            "webhook-grafana-old-secret",
            vec![
                (
                    "x-grafana-alert-signature",
                    grafana_sig("fuzz-grafana-old-hmac", &ts),
                ),
                (grafana_ts, ts.clone()),
            ],
            grafana.clone(),
        ),
        (
            "webhook-grafana-stale",
            vec![
                (
                    "x-grafana-alerting-signature",
                    grafana_sig("fuzz-grafana-hmac", &stale),
                ),
                (grafana_ts, stale.clone()),
            ],
            grafana.clone(),
        ),
        (
            "webhook-sentry",
            vec![(
                "sentry-hook-signature",
                hex(sign(
                    hmac::HMAC_SHA256,
                    "fuzz-sentry-client-secret",
                    &[&sentry],
                )),
            )],
            sentry,
        ),
        (
            "webhook-generic",
            vec![
                (
                    "x-signature",
                    format!("sha512={}", encode_base64(&generic_sig)),
                ),
                ("x-timestamp", ts.clone()),
            ],
            generic,
        ),
        ("webhook-unsigned", Vec::new(), grafana),
    ]
}

#[test]
fn signed_webhook_seeds_verify_and_the_stale_one_does_not() {
    let config = Config::from_toml(SIGNATURES_CONFIG, Vec::new()).unwrap();
    let signatures = crate::ingest::auth::Signatures::from_config(&config.auth);
    for (name, pairs, body) in signed_webhooks() {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(k, v.parse().unwrap());
        }
        let verdicts: Vec<bool> = SIGNED_KINDS
            .iter()
            .map(|&kind| signatures.check(kind, &headers, &body, NOW).is_ok())
            .collect();
        let want = match name {
            "webhook-grafana" | "webhook-grafana-old-secret" => [true, false, false],
            "webhook-sentry" => [false, true, false],
            "webhook-generic" => [false, false, true],
            _ => [false; 3],
        };
        assert_eq!(verdicts, want, "{name}");
    }
}

#[test]
fn the_certificate_seed_is_read_with_its_validity() {
    let der = sns_test_certificate();
    let (from, to) = crate::ingest::sns_verify::certs::validity(&der).unwrap();
    assert_eq!(from.to_string(), "2026-12-06T14:11:38.000Z");
    assert_eq!(to.to_string(), "2126-11-12T14:11:38.000Z");
}
