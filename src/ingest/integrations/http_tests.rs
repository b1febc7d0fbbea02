//! `POST /integrations/<kind>/<routing_key>` through the real [`Router`], without sockets:
//! where the routing key comes from, refusals before parsing, and the all-or-nothing
//! hand-over to the correlator (its shards publish into a [`MemorySink`]).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::config::Config;
use crate::correlate::Correlator;
use crate::ingest::admin::Health;
use crate::ingest::body::BodyLimits;
use crate::ingest::integrations::settings::{IntegrationSettings, SettingsByKind};
use crate::ingest::router::Router;
use crate::integration::Integration;
use crate::publish::MemorySink;
use crate::time::UnixMillis;

use crate::ingest::response::body_bytes;

struct Rig {
    router: Router,
    correlator: Correlator,
    sink: Arc<MemorySink>,
}

fn rig(queue_capacity: usize, integrations: SettingsByKind) -> Rig {
    let mut config = Config::from_toml("", Vec::new()).unwrap();
    config.correlate.shards = 2;
    config.correlate.queue_capacity = queue_capacity;
    let sink = Arc::new(MemorySink::default());
    let clock = Clock::manual(UnixMillis(1_714_641_300_000));
    let (correlator, intake) =
        crate::pipeline::local::spawn(&config.correlate, clock.clone(), sink.clone());
    let router = Router::new(
        intake,
        clock,
        Arc::new(Health::default()),
        crate::metrics::install(),
        BodyLimits {
            max_body_bytes: 64 * 1024,
            body_read_timeout: std::time::Duration::from_secs(5),
        },
    )
    .with_integrations(integrations);
    Rig {
        router,
        correlator,
        sink,
    }
}

impl Rig {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> (StatusCode, Value, http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .router
            .handle(req.body(Full::new(Bytes::from(body))).unwrap())
            .await;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = serde_json::from_slice(&body_bytes(resp)).unwrap_or(Value::Null);
        (status, body, headers)
    }

    async fn post(&self, uri: &str, headers: &[(&str, &str)], body: String) -> (StatusCode, Value) {
        let (status, body, _) = self.send(Method::POST, uri, headers, body).await;
        (status, body)
    }

    /// Stops the correlator (publishing every waiting incident) and returns, per message,
    /// its routing key and the dedup keys of its alerts.
    async fn published(self) -> Vec<(String, Vec<String>)> {
        // The router (and its correlator handle) stays alive: shards flush on the stop
        // signal, not when their channels close.
        self.correlator.shutdown().await;
        drop(self.router);
        let mut out: Vec<(String, Vec<String>)> = self
            .sink
            .take()
            .iter()
            .map(|m| {
                let body: Value = serde_json::from_slice(&m.body).unwrap();
                let keys = body["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["dedup_key"].as_str().unwrap().to_string())
                    .collect();
                (body["routing_key"].as_str().unwrap().to_string(), keys)
            })
            .collect();
        out.sort();
        out
    }
}

/// A webhook payload with one firing alert per fingerprint.
fn batch(fingerprints: &[&str]) -> String {
    let alerts: Vec<Value> = fingerprints
        .iter()
        .map(|f| json!({"status": "firing", "labels": {"alertname": "A", "instance": f}, "fingerprint": f}))
        .collect();
    json!({"version": "4", "groupKey": "{}:{}", "alerts": alerts}).to_string()
}

const AM: &str = "/integrations/alertmanager_webhook";

#[tokio::test]
async fn the_routing_key_comes_from_path_header_query_or_config_in_that_order() {
    let mut integrations = SettingsByKind::default();
    integrations.set(
        Integration::AlertmanagerWebhook,
        IntegrationSettings {
            routing_key: Some("from-config".into()),
            ..IntegrationSettings::default()
        },
    );
    let rig = rig(64, integrations);
    let header = [("X-Routing-Key", "from-header")];
    for (uri, headers, fp) in [
        (format!("{AM}/from%2Fpath"), &header[..], "f1"),
        (AM.to_string(), &header[..], "f2"),
        (format!("{AM}/?routing_key=from+query&x=1"), &[][..], "f3"),
        (format!("{AM}?routing_key=from%20query"), &[][..], "f4"),
        (AM.to_string(), &[][..], "f5"),
    ] {
        let (status, body) = rig.post(&uri, headers, batch(&[fp])).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(
            body,
            json!({"status": "success", "message": "1 accepted", "accepted": 1, "rejected": []})
        );
    }
    assert_eq!(
        rig.published().await,
        [
            (
                "from query".to_string(),
                vec!["f3".to_string(), "f4".to_string()]
            ),
            ("from-config".to_string(), vec!["f5".to_string()]),
            ("from-header".to_string(), vec!["f2".to_string()]),
            ("from/path".to_string(), vec!["f1".to_string()]),
        ]
    );
}

#[tokio::test]
async fn refusals_before_parsing_say_what_to_do() {
    let rig = rig(64, SettingsByKind::default());
    let (status, body) = rig.post(AM, &[], batch(&["f"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "invalid event");
    assert_eq!(body["errors"], json!([]), "the message is not repeated");
    let msg = body["message"].as_str().unwrap();
    for place in [
        "/integrations/alertmanager_webhook/<routing_key>",
        "X-Routing-Key header",
        "routing_key query parameter",
        "[integrations.alertmanager_webhook] routing_key",
    ] {
        assert!(msg.contains(place), "{msg}");
    }
    let (status, body) = rig.post(&format!("{AM}/%20"), &[], batch(&["f"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"status": "invalid event", "message": "the routing key in the path is blank",
               "errors": []})
    );
    let long = "k".repeat(256);
    let (status, body) = rig
        .post(AM, &[("x-routing-key", long.as_str())], batch(&["f"]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "'X-Routing-Key' must be at most 255 characters"
    );

    let (status, body) = rig
        .post("/integrations/alertmanager/rk", &[], "{}".into())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "no integration \"alertmanager\" at /integrations/<kind>/<routing_key> (kinds: alertmanager_webhook"
        ) && !msg.contains(" pagerduty,")
            && !msg.contains(" pagerduty_v1,"),
        "{msg}"
    );
    assert!(
        msg.ends_with("; did you mean alertmanager_webhook or alertmanager_api?"),
        "{msg}"
    );
    let (_, body) = rig
        .post("/integrations/uptime_robot/rk", &[], "{}".into())
        .await;
    let msg = body["message"].as_str().unwrap();
    assert!(msg.ends_with("; did you mean uptimerobot?"), "{msg}");
    let (_, body) = rig.post("/integrations/zzzz/rk", &[], "{}".into()).await;
    let msg = body["message"].as_str().unwrap();
    assert!(!msg.contains("did you mean"), "{msg}");
    let (status, body) = rig
        .post("/integrations/pagerduty/rk", &[], "{}".into())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["message"],
        "pagerduty is served at POST /v2/enqueue, not under /integrations/"
    );
    let (status, _) = rig.post(&format!("{AM}/a/b"), &[], "{}".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, headers) = rig
        .send(Method::GET, &format!("{AM}/rk"), &[], String::new())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    assert_eq!(rig.published().await, [], "nothing reached the correlator");
}

/// A body that is not the format at all has one problem and no field to name: it is the
/// message, and `errors` is empty (as for refusals before the body is read); a body with bad
/// fields lists each in `errors`.
#[tokio::test]
async fn a_body_that_is_not_json_is_refused_by_its_message_alone() {
    let rig = rig(64, SettingsByKind::default());
    for (body, message) in [
        ("alerts=1", "alertmanager_webhook: body is not valid JSON"),
        ("[1]", "alertmanager_webhook: body is not a JSON object"),
    ] {
        let (status, answer) = rig.post(&format!("{AM}/rk"), &[], body.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            answer,
            json!({"status": "malformed", "message": message, "errors": []}),
            "{body}"
        );
    }
    let (status, answer) = rig.post(&format!("{AM}/rk"), &[], "{}".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["status"], "invalid event");
    assert_eq!(
        answer["errors"],
        json!(["alertmanager_webhook: 'alerts' is missing"])
    );
    // PagerDuty's endpoints keep PagerDuty's own answer, which names the problem in `errors`.
    let (status, answer) = rig.post("/v2/enqueue", &[], "alerts=1".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!({"status": "Unrecognized object", "message": "Event object format is unrecognized",
               "errors": ["JSON parse error"]})
    );
    assert_eq!(rig.published().await, [], "nothing reached the correlator");
}

#[tokio::test]
async fn a_partly_bad_batch_is_accepted_minus_the_bad_items() {
    let rig = rig(64, SettingsByKind::default());
    let body = r#"{"alerts":[{"labels":{"alertname":"A"},"fingerprint":"good"},{"status":"gone","labels":{}}]}"#;
    let (status, body) = rig.post(&format!("{AM}/rk"), &[], body.into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "success", "message": "1 accepted, 1 rejected", "accepted": 1,
               "rejected": [{"item": "alerts[1]", "errors": [
                   "alertmanager_webhook: 'alerts[1].status' must be firing or resolved",
                   "alertmanager_webhook: 'alerts[1].labels' is empty (an alert needs labels or a fingerprint)"]}]})
    );
    let (status, body) = rig
        .post(&format!("{AM}/rk"), &[], "{\"alerts\":{}}".into())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"status": "invalid event", "message": "alertmanager_webhook: 'alerts' must be an array",
               "errors": ["alertmanager_webhook: 'alerts' must be an array"]})
    );
    assert_eq!(
        rig.published().await,
        [("rk".to_string(), vec!["good".to_string()])]
    );
}

/// The correlator takes all of a request or none of it: a batch larger than the room left
/// is answered 503 with Retry-After (never 429: webhook senders retry only 5xx).
#[tokio::test]
async fn a_batch_that_does_not_fit_is_refused_whole_with_503() {
    let rig = rig(1, SettingsByKind::default());
    let (status, body, headers) = rig
        .send(Method::POST, &format!("{AM}/rk"), &[], batch(&["a1", "a2"]))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "1");
    let (status, _) = rig.post(&format!("{AM}/rk"), &[], batch(&["b1"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        rig.published().await,
        [("rk".to_string(), vec!["b1".to_string()])]
    );
}

/// Load balancers probe with HEAD: the GET answer's status and headers, no body (this rig's
/// Kafka is never connected, so readiness says 503 both ways).
#[tokio::test]
async fn head_on_health_and_readiness_answers_as_get_without_a_body() {
    let rig = rig(64, SettingsByKind::default());
    for (path, status, get_body) in [
        ("/healthz", StatusCode::OK, &b"ok\n"[..]),
        (
            "/readyz",
            StatusCode::SERVICE_UNAVAILABLE,
            &b"not ready: kafka unreachable\n"[..],
        ),
    ] {
        let answer = |method: Method| {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .body(Full::new(Bytes::new()))
                .unwrap();
            rig.router.handle(req)
        };
        let get = answer(Method::GET).await;
        let head = answer(Method::HEAD).await;
        assert_eq!((get.status(), head.status()), (status, status), "{path}");
        assert_eq!(
            head.headers()["content-type"],
            get.headers()["content-type"]
        );
        assert_eq!(
            head.headers()["content-length"],
            get_body.len().to_string().as_str(),
            "{path}"
        );
        assert_eq!(body_bytes(get), get_body, "{path}");
        assert!(body_bytes(head).is_empty(), "{path}");
    }
    let (status, _, headers) = rig.send(Method::POST, "/healthz", &[], String::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");
}

/// A body in a coding sluice does not decode (or in more than one) is refused before it is read,
/// naming the codings accepted; `identity` (in any case, or listed) is the body as is.
#[tokio::test]
async fn a_body_in_an_unsupported_coding_is_refused_with_415_naming_the_accepted_ones() {
    let rig = rig(64, SettingsByKind::default());
    for (uri, coding) in [
        (format!("{AM}/rk"), "br"),
        (format!("{AM}/rk"), "gzip, gzip"),
        (format!("{AM}/rk"), "identity, br"),
        ("/v2/enqueue".to_string(), "br"),
        ("/api/v1/silences".to_string(), "zstd"),
    ] {
        let (status, body, headers) = rig
            .send(
                Method::POST,
                &uri,
                &[("content-encoding", coding)],
                batch(&["never"]),
            )
            .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{uri} {coding}");
        assert_eq!(
            body,
            json!({"status": "unsupported encoding",
                   "message": "Content-Encoding not supported: sluice accepts identity, gzip, deflate (one coding)",
                   "errors": []}),
            "{uri} {coding}"
        );
        assert_eq!(headers["accept-encoding"], "identity, gzip, deflate");
    }
    for (coding, fp) in [("identity", "f1"), ("IDENTITY", "f2"), ("", "f3")] {
        let (status, body) = rig
            .post(
                &format!("{AM}/rk"),
                &[("content-encoding", coding)],
                batch(&[fp]),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{coding:?}: {body}");
    }
    let published = rig.published().await;
    assert_eq!(
        published,
        [(
            "rk".to_string(),
            vec!["f1".to_string(), "f2".to_string(), "f3".to_string()]
        )],
        "the refused bodies never reached the correlator"
    );
}

/// Catalog kinds go through the same router as native ones: their path, their answer, the
/// routing key from the path, and a vendor path with the key in `Authorization` (Alerta's
/// `POST /alert`, `Authorization: Key <key>`).
#[tokio::test]
async fn catalog_kinds_are_served_as_native_ones_are() {
    use crate::ingest::integrations::cases::{cases, fixture_folder, request_file};
    let rig = rig(64, SettingsByKind::default());
    let fixture = |kind: Integration| {
        let dir = fixture_folder(kind);
        let case = cases(&dir)
            .unwrap()
            .into_iter()
            .find(|c| {
                let text = std::fs::read_to_string(dir.join(format!("{c}.expected.json"))).unwrap();
                text.contains("\"action\": \"trigger\"")
            })
            .expect("a trigger case");
        let body = std::fs::read_to_string(request_file(&dir, &case)).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{case}.expected.json"))).unwrap(),
        )
        .unwrap();
        (body, expected)
    };
    for name in ["uptimerobot", "statuscake", "alerta"] {
        let kind = Integration::parse(name).unwrap();
        let (body, expected) = fixture(kind);
        let (status, answer) = rig
            .post(&format!("/integrations/{name}/rk-{name}"), &[], body)
            .await;
        assert_eq!(
            status.as_u16(),
            expected["answer"]["status"],
            "{name}: {answer}"
        );
        assert_eq!(
            answer["accepted"],
            expected["events"].as_array().unwrap().len(),
            "{name}"
        );
    }
    let (body, _) = fixture(Integration::parse("alerta").unwrap());
    for (uri, auth) in [
        ("/alert", "Key rk-own-path"),
        ("/integrations/alerta/rk-base-url/alert", ""),
    ] {
        let headers: Vec<(&str, &str)> = [("authorization", auth)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let (status, answer) = rig.post(uri, &headers, body.clone()).await;
        assert!(status.is_success(), "{uri}: {status} {answer}");
    }
    let keys: Vec<String> = rig.published().await.into_iter().map(|(k, _)| k).collect();
    for key in [
        "rk-uptimerobot",
        "rk-statuscake",
        "rk-alerta",
        "rk-own-path",
        "rk-base-url",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not among {keys:?}");
    }
}

/// A user's definition (`definitions_dir`) is served under the generic kind by its name.
#[tokio::test]
async fn a_users_definition_is_served_by_its_name() {
    let dir = std::env::temp_dir().join(format!("sluice-http-defs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("shop.toml"),
        "vendor = \"Shop\"\ntitle = \"t\"\ncategory = \"other\"\ndocs = [\"https://shop.example.com\"]\n\
         samples = \"constructed\"\nsignature = \"none\"\nbody = \"form\"\nanswer = 200\n\
         [map]\ndedup_key = \"{/check}@{/host}\"\naction = \"/state\"\n\
         action_map = { ok = \"resolve\", \"*\" = \"trigger\" }\n",
    )
    .unwrap();
    let config = format!(
        "[integrations.generic]\ndefinitions_dir = {:?}\n",
        dir.display().to_string()
    );
    let rig = rig(64, SettingsByKind::from_toml(&config).unwrap());
    let (status, answer) = rig
        .post(
            "/integrations/generic/shop/rk-shop",
            &[("content-type", "application/x-www-form-urlencoded")],
            "check=disk&host=db-1&state=failing".into(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "its answer: {answer}");
    assert_eq!(answer["accepted"], 1);
    let (status, answer) = rig
        .post("/integrations/generic/nope/rk-shop", &[], "a=b".into())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("mappers: shop"),
        "{answer}"
    );
    let published = rig.published().await;
    assert_eq!(
        published,
        [("rk-shop".to_string(), vec!["disk@db-1".to_string()])]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
