use http::{HeaderMap, Request, StatusCode};
use serde_json::json;

use super::senders::{split_path_secret, take_path_secret, Denied, PathSecret};
use super::*;
use crate::config::Config;
use crate::integration::Integration;

fn auth(toml: &str) -> Auth {
    let config = Config::from_toml(toml, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    Auth::from_config(&config.auth)
}

const SECRETS: &str = r#"
    [auth]
    routing_keys = ["payments", "checkout"]
    [auth.integrations.grafana]
    secrets = ["grafana-new", "grafana-old"]
    header = "X-Sluice-Secret"
    [auth.integrations.datadog]
    secrets = ["dd-secret"]
    header = "Authorization"
    [auth.integrations.pagerduty]
    secrets = ["pd/secret+1"]
    query = "token"
    [auth.integrations.alertmanager_webhook]
    secrets = ["am-secret"]
    path = true
"#;

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

#[test]
fn secrets_are_found_where_each_integration_says_and_both_of_a_rotation_count() {
    let auth = auth(SECRETS);
    let s = &auth.senders;
    let none = HeaderMap::new();
    let grafana = Integration::Grafana;
    for ok in ["grafana-new", "grafana-old"] {
        assert_eq!(
            s.check_secret(grafana, &headers(&[("x-sluice-secret", ok)]), None, None),
            Ok(())
        );
    }
    assert_eq!(
        s.check_secret(grafana, &none, Some("token=grafana-new"), None),
        Err(Denied::SecretMissing("the 'x-sluice-secret' header".into()))
    );
    assert_eq!(
        s.check_secret(
            grafana,
            &headers(&[("x-sluice-secret", "grafana")]),
            None,
            None
        ),
        Err(Denied::SecretWrong("the 'x-sluice-secret' header".into()))
    );
    // Authorization: the bearer credentials, or the whole value.
    let datadog = Integration::Datadog;
    for value in ["Bearer dd-secret", "bearer dd-secret", "dd-secret"] {
        let h = headers(&[("authorization", value)]);
        assert_eq!(s.check_secret(datadog, &h, None, None), Ok(()), "{value}");
    }
    // Query parameters are percent-decoded.
    let pd = Integration::PagerDuty;
    assert_eq!(
        s.check_secret(pd, &none, Some("a=1&token=pd%2Fsecret%2B1"), None),
        Ok(())
    );
    assert_eq!(
        s.check_secret(pd, &none, Some("token=pd/secret 1"), None),
        Err(Denied::SecretWrong("the 'token' query parameter".into()))
    );
    let am = Integration::AlertmanagerWebhook;
    let path = PathSecret("am-secret".into());
    assert_eq!(s.check_secret(am, &none, None, Some(&path)), Ok(()));
    assert_eq!(
        s.check_secret(am, &none, None, None),
        Err(Denied::SecretMissing(
            "the path (/secret/<secret>/...)".into()
        ))
    );
    // Kinds without secrets take anything.
    assert_eq!(
        s.check_secret(Integration::Zabbix, &none, None, None),
        Ok(())
    );
}

#[test]
fn the_allowlist_takes_its_keys_only() {
    let s = auth(SECRETS).senders;
    assert_eq!(s.check_key("payments"), Ok(()));
    assert_eq!(s.check_key("Payments"), Err(Denied::KeyNotAllowed));
    assert_eq!(Auth::default().senders.check_key("anything"), Ok(()));
}

#[test]
fn each_sender_gets_the_refusal_it_understands() {
    let pd = answer(Denied::KeyNotAllowed.response(Integration::PagerDuty));
    assert_eq!(pd.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        pd.2,
        json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["Invalid routing key"]})
    );
    let v1 = answer(
        Denied::SecretWrong("the 'token' query parameter".into())
            .response(Integration::PagerDutyV1),
    );
    assert_eq!(v1.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        v1.2["errors"][0],
        "the secret in the 'token' query parameter is not one of auth.integrations.pagerduty_v1's secrets"
    );
    let grafana = answer(
        Denied::SecretMissing("the 'x-sluice-secret' header".into()).response(Integration::Grafana),
    );
    assert_eq!(grafana.0, StatusCode::UNAUTHORIZED);
    assert_eq!(grafana.1["www-authenticate"], "Bearer realm=\"sluice\"");
    assert_eq!(
        grafana.2,
        json!({"status": "unauthorized", "message": "a secret is required in the 'x-sluice-secret' header (auth.integrations.grafana)", "errors": []})
    );
    let key = answer(Denied::KeyNotAllowed.response(Integration::AlertmanagerWebhook));
    assert_eq!(key.0, StatusCode::FORBIDDEN);
    assert_eq!(key.2["status"], "forbidden");
    assert_eq!(
        [
            Denied::SecretMissing(String::new()).reason(),
            Denied::SecretWrong(String::new()).reason(),
            Denied::KeyNotAllowed.reason()
        ],
        ["secret_missing", "secret_wrong", "routing_key_not_allowed"]
    );
}

#[test]
fn a_path_secret_is_moved_out_of_the_path() {
    assert_eq!(
        split_path_secret("/secret/a%20b/v2/enqueue"),
        Some(("a b".to_string(), "/v2/enqueue"))
    );
    assert_eq!(split_path_secret("/secret/only"), None);
    assert_eq!(split_path_secret("/v2/enqueue"), None);
    let mut req = Request::builder()
        .uri("/secret/s3/integrations/grafana/payments?x=1")
        .body(())
        .unwrap();
    take_path_secret(&mut req);
    assert_eq!(req.uri(), "/integrations/grafana/payments?x=1");
    assert_eq!(req.extensions().get::<PathSecret>().unwrap().0, "s3");
}

#[test]
fn recordings_leave_out_secrets_and_bearer_tokens() {
    let auth = auth(SECRETS);
    let h = headers(&[
        ("x-sluice-secret", "grafana-new"),
        ("authorization", "Bearer admin-token-0123456789"),
        ("x-routing-key", "payments"),
    ]);
    let (path, kept) = auth.recordable("/v2/enqueue?a=1&token=pd%2Fsecret%2B1&b=2", &h);
    assert_eq!(path, "/v2/enqueue?a=1&b=2");
    assert!(kept.get("x-sluice-secret").is_none());
    assert!(kept.get("authorization").is_none());
    assert_eq!(kept["x-routing-key"], "payments");
    let (path, _) = auth.recordable("/v2/enqueue?token=x", &h);
    assert_eq!(path, "/v2/enqueue");
    // Opsgenie's key is the routing key: replay needs it.
    let genie = headers(&[("authorization", "GenieKey payments")]);
    let (_, kept) = Auth::default().recordable("/v2/alerts", &genie);
    assert_eq!(kept["authorization"], "GenieKey payments");
}
