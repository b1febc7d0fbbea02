use serde_json::json;

use super::*;
use crate::correlate::silence::Silence;

const T0: u64 = 1_765_000_000_000;

fn at(min: u64) -> String {
    UnixMillis(T0 + min * 60_000).to_string()
}

/// An open incident of `key` with a Prometheus alert (labels and annotations as the
/// Alertmanager API integration keeps them), a silenced PagerDuty one and a resolved one.
fn incident(id: &str, key: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema": "sluice.incident.v1", "type": "updated", "incident_id": id, "seq": 2,
        "routing_key": key, "rule": "default", "group_key": {"host": "db-1"},
        "title": "db-1 down", "severity": "critical", "status": "triggered",
        "opened_at": at(0), "updated_at": at(2), "resolved_at": null,
        "alert_count": 3, "open_alert_count": 2, "event_count": 7,
        "alerts": [
            {"dedup_key": "am-1", "summary": "db-1 is down", "severity": "critical",
             "status": "triggered", "event_count": 3, "first_seen": at(0), "last_seen": at(2),
             "source": "db-1:9100", "integration": "alertmanager_api", "class": "NodeDown",
             "labels": {"alertname": "NodeDown", "instance": "db-1:9100", "job": "node",
                        "severity": "page"},
             "details": {"summary": "db-1 is down", "runbook_url": "https://rb/node"}},
            {"dedup_key": "disk-7", "summary": "disk full", "severity": "warning",
             "status": "triggered", "event_count": 2, "first_seen": at(1), "last_seen": at(1),
             "source": "db-1", "integration": "pagerduty", "suppressed": "silenced",
             "details": {"free": 0}},
            {"dedup_key": "gone", "summary": "was here", "severity": "info",
             "status": "resolved", "event_count": 2, "first_seen": at(0), "last_seen": at(1),
             "source": "db-1", "integration": "pagerduty"}
        ],
        "alerts_truncated": 0, "integrations": ["alertmanager_api", "pagerduty"], "links": [],
        "reasons": {"grouping": "auto", "inhibited": 0, "silenced": 1}
    }))
    .unwrap()
}

fn setup() -> (std::sync::Arc<View>, SilenceStore) {
    let view = View::new();
    view.apply(&incident("inc_1", "payments")).unwrap();
    view.apply(&incident("inc_2", "search")).unwrap();
    let silences = SilenceStore::default();
    let silence = |id: &str, field: &str, value: &str, ends: u64| Silence {
        id: id.into(),
        matchers: vec![Matcher::new(field, "=", value).unwrap()],
        starts_at: UnixMillis(T0),
        ends_at: UnixMillis(T0 + ends * 60_000),
        created_by: "ana".into(),
        comment: String::new(),
        created_at: UnixMillis(T0),
    };
    silences.merge(|all| {
        all.push(silence("s-disk", "dedup_key", "disk-7", 60));
        all.push(silence("s-other", "dedup_key", "am-1", 1));
        true
    });
    (view, silences)
}

fn answer(path: &str, query: Option<&str>) -> (StatusCode, Value) {
    let (view, silences) = setup();
    let src = Sources {
        view: &view,
        silences: &silences,
        started: UnixMillis(T0),
        now: UnixMillis(T0 + 5 * 60_000),
    };
    let resp = get(path, query, &src);
    let status = resp.status();
    let body = response::body_bytes(resp);
    (status, serde_json::from_slice(&body).unwrap())
}

#[test]
fn alerts_read_as_alertmanager_shows_them() {
    let (status, alerts) = answer(ALERTS, None);
    assert_eq!(status, StatusCode::OK);
    let alerts = alerts.as_array().unwrap();
    assert_eq!(
        alerts.len(),
        4,
        "two open alerts of each incident: {alerts:#?}"
    );
    for a in alerts {
        for member in [
            "labels",
            "annotations",
            "receivers",
            "fingerprint",
            "startsAt",
            "updatedAt",
            "endsAt",
            "status",
        ] {
            assert!(a.get(member).is_some(), "{member} missing in {a}");
        }
    }
    let node = alerts
        .iter()
        .find(|a| a["labels"]["dedup_key"] == "am-1" && a["receivers"][0]["name"] == "payments")
        .unwrap();
    assert_eq!(
        node["labels"],
        json!({"alertname": "NodeDown", "severity": "critical", "routing_key": "payments",
               "integration": "alertmanager_api", "dedup_key": "am-1", "source": "db-1:9100",
               "instance": "db-1:9100", "job": "node", "labels.severity": "page"}),
        "alertname repeats the class and is shown once; a label named like a field that says \
         something else is labels.<name>"
    );
    assert_eq!(
        node["annotations"],
        json!({"summary": "db-1 is down", "runbook_url": "https://rb/node"})
    );
    assert_eq!(node["startsAt"], at(0));
    assert_eq!(node["updatedAt"], at(2));
    assert_eq!(
        node["status"],
        json!({"state": "active", "silencedBy": [], "inhibitedBy": []})
    );
    assert_eq!(node["fingerprint"].as_str().unwrap().len(), 16);
    let disk = alerts
        .iter()
        .find(|a| a["labels"]["dedup_key"] == "disk-7")
        .unwrap();
    assert_eq!(
        disk["status"],
        json!({"state": "suppressed", "silencedBy": ["s-disk"], "inhibitedBy": []}),
        "the active silence that matches it, not the expired one"
    );
    assert_eq!(disk["annotations"], json!({"summary": "disk full"}));
    let fingerprints: Vec<&str> = alerts
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    let mut sorted = fingerprints.clone();
    sorted.sort();
    assert_eq!(
        fingerprints, sorted,
        "ordered by fingerprint, as Alertmanager"
    );
}

#[test]
fn alertmanager_parameters_filter_as_it_does() {
    let count = |q: &str| answer(ALERTS, Some(q)).1.as_array().unwrap().len();
    assert_eq!(count("silenced=false"), 2);
    assert_eq!(count("active=false"), 2);
    assert_eq!(count("active=false&silenced=false"), 0);
    assert_eq!(count("receiver=pay.*"), 2);
    assert_eq!(count("receiver=pay"), 0, "the regex is anchored");
    assert_eq!(count("filter=alertname%3D%22NodeDown%22"), 2);
    assert_eq!(
        count("filter=alertname%3D%22NodeDown%22&filter=routing_key%3D~%22sea.%2A%22"),
        1
    );
    assert_eq!(count("filter=severity!%3D%22critical%22"), 2);
    assert_eq!(count("unprocessed=false&whatever=1"), 4);
    let (status, body) = answer(ALERTS, Some("active=maybe"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.as_str().unwrap().contains("active"), "{body}");
    let (status, body) = answer(ALERTS, Some("filter=%7Bnonsense"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.as_str().unwrap().contains("matcher"), "{body}");
    let (status, _) = answer(GROUPS, Some("receiver=%28"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn groups_are_incidents() {
    let (status, groups) = answer(GROUPS, Some("silenced=false"));
    assert_eq!(status, StatusCode::OK);
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0]["labels"],
        json!({"host": "db-1", "incident_id": "inc_1"})
    );
    assert_eq!(groups[0]["receiver"], json!({"name": "payments"}));
    assert_eq!(groups[0]["alerts"].as_array().unwrap().len(), 1);
    let (_, none) = answer(GROUPS, Some("receiver=nobody"));
    assert_eq!(none, json!([]), "a group with no alert left is not shown");
}

#[test]
fn status_and_receivers() {
    let (status, body) = answer(STATUS, None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["cluster"]["status"], "disabled");
    assert_eq!(body["uptime"], at(0));
    for member in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(body["versionInfo"][member].is_string(), "{member}");
    }
    let config = body["config"]["original"].as_str().unwrap();
    assert!(config.contains("- name: \"payments\""), "{config}");
    let (_, receivers) = answer(RECEIVERS, None);
    assert_eq!(receivers, json!([{"name": "payments"}, {"name": "search"}]));
}
