//! Webhook body signatures through the real binary: Grafana's HMAC over its timestamp and
//! body, Sentry's over the body, both secrets of a rotation; a tampered body, a stale or
//! missing timestamp and a missing signature refused with 401 naming the header, counted by
//! reason, and no secret in the log.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde_json::json;

use crate::harness::{metric, post, Sluice};

const GRAFANA_HMAC: &str = "grafana-hmac-secret-3f1a";
const GRAFANA_HMAC_OLD: &str = "grafana-hmac-secret-old-77c0";
const SENTRY_CLIENT_SECRET: &str = "sentry-client-secret-9b2e";

const GRAFANA_BODY: &str =
    include_str!("../fixtures/integrations/grafana/firing_batch.request.json");
const SENTRY_BODY: &str = include_str!("../fixtures/integrations/sentry/issue_alert.request.json");

fn sign(secret: &str, payload: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, payload);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn rejected(url: &str, integration: &str, reason: &str) -> f64 {
    let sample = format!(
        "sluice_events_rejected_total{{integration=\"{integration}\",reason=\"{reason}\"}}"
    );
    metric(url, &sample).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_grafana_and_sentry_bodies_are_taken_and_tampered_or_stale_ones_refused() {
    let config = format!(
        r#"
[auth.integrations.grafana.signature]
scheme = "grafana"
secrets = ["{GRAFANA_HMAC}", "{GRAFANA_HMAC_OLD}"]
timestamp_header = "X-Grafana-Alerting-Signature-Timestamp"
tolerance = "2m"
[auth.integrations.sentry.signature]
scheme = "sentry"
secrets = ["{SENTRY_CLIENT_SECRET}"]
"#
    );
    let sluice = Sluice::start_with_env(
        "signatures",
        "embedded",
        &config,
        &[("SLUICE_LOG_LEVEL", "debug")],
    );
    let url = sluice.url.as_str();
    let grafana = "/integrations/grafana/payments";
    let signed = |secret: &str, ts: u64| {
        let payload = format!("{ts}:{GRAFANA_BODY}");
        (sign(secret, payload.as_bytes()), ts.to_string())
    };

    for secret in [GRAFANA_HMAC, GRAFANA_HMAC_OLD] {
        let (sig, ts) = signed(secret, unix_now());
        let headers = [
            ("X-Grafana-Alerting-Signature", sig.as_str()),
            ("X-Grafana-Alerting-Signature-Timestamp", ts.as_str()),
        ];
        let (status, answer) = post(url, grafana, &headers, GRAFANA_BODY).await;
        assert_eq!(status, 200, "{answer}");
    }

    // The body changed after signing: 401 naming the header.
    let (sig, ts) = signed(GRAFANA_HMAC, unix_now());
    let headers = [
        ("X-Grafana-Alerting-Signature", sig.as_str()),
        ("X-Grafana-Alerting-Signature-Timestamp", ts.as_str()),
    ];
    let tampered = GRAFANA_BODY.replace("firing", "resolved");
    let (status, answer) = post(url, grafana, &headers, tampered).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "unauthorized", "message": "the signature in the 'x-grafana-alerting-signature' header does not verify with any of auth.integrations.grafana.signature's secrets", "errors": []})
    );
    // Signed ten minutes ago (a captured request replayed): stale.
    let (sig, ts) = signed(GRAFANA_HMAC, unix_now() - 600);
    let headers = [
        ("X-Grafana-Alerting-Signature", sig.as_str()),
        ("X-Grafana-Alerting-Signature-Timestamp", ts.as_str()),
    ];
    let (status, answer) = post(url, grafana, &headers, GRAFANA_BODY).await;
    assert_eq!(status, 401, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("outside the tolerance of 120 s"),
        "{message}"
    );
    // No signature at all.
    let (status, answer) = post(url, grafana, &[], GRAFANA_BODY).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .starts_with("a signature is required in the 'x-grafana-alerting-signature' or"));

    // Sentry: the client secret's HMAC of the body.
    let sentry = "/integrations/sentry/payments";
    let sig = sign(SENTRY_CLIENT_SECRET, SENTRY_BODY.as_bytes());
    let resource = ("Sentry-Hook-Resource", "event_alert");
    let headers = [("Sentry-Hook-Signature", sig.as_str()), resource];
    let (status, answer) = post(url, sentry, &headers, SENTRY_BODY).await;
    assert!((200..300).contains(&status), "{status} {answer}");
    let wrong = sign("another-secret", SENTRY_BODY.as_bytes());
    let headers = [("Sentry-Hook-Signature", wrong.as_str()), resource];
    let (status, answer) = post(url, sentry, &headers, SENTRY_BODY).await;
    assert_eq!(status, 401, "{answer}");

    assert_eq!(rejected(url, "grafana", "signature_wrong").await, 1.0);
    assert_eq!(rejected(url, "grafana", "signature_expired").await, 1.0);
    assert_eq!(rejected(url, "grafana", "signature_missing").await, 1.0);
    assert_eq!(rejected(url, "sentry", "signature_wrong").await, 1.0);
    let received = "sluice_events_received_total{integration=\"sentry\"}";
    assert_eq!(metric(url, received).await, 1.0);

    let log = sluice.log_text();
    for secret in [GRAFANA_HMAC, GRAFANA_HMAC_OLD, SENTRY_CLIENT_SECRET] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
