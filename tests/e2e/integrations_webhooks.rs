//! Sentry and the generic mapper end to end: a Sentry issue alert and its resolution (the
//! `issue` resource) and a payload mapped by a TOML-configured mapper, posted over a socket to
//! the real binary, the incidents read back from a real Kafka-protocol broker (tansu).

use serde_json::{json, Value};

use crate::harness::{by_incident, post, Broker, Reader, Sluice};

/// One incident per alert; coalesced updates wait an hour, so only openings and resolves
/// publish and the message sequence does not depend on timing.
const CONFIG: &str = r#"
instance = "sluice-e2e"
[kafka]
partitions = 3
[[correlate.rules]]
name = "per-alert"
group_by = ["dedup_key"]
group_wait = "1s"
pause_transient = "0s"
group_interval = "1h"
window_duration = "10m"

[integrations.generic.shopmon]
dedup_key = "/check/id"
dedup_key_template = "{/host}/{/check/name}"
summary = "/check/output"
source = "/host"
severity = "/check/level"
severity_map = { P1 = "critical", P2 = "error" }
labels = { team = "/owner/team" }
action_pointer = "/check/state"
action_map = { failing = "trigger", passing = "resolve" }
"#;

fn issue_alert() -> String {
    json!({
        "action": "triggered",
        "installation": {"uuid": "4e0f6c2a-0000-4b1a-9d7e-123456789abc"},
        "data": {
            "triggered_rule": "New errors in checkout",
            "event": {
                "event_id": "c1d2e3f4a5b6478899aabbccddeeff00", "issue_id": "4410987",
                "title": "KeyError: 'currency'", "level": "fatal", "culprit": "checkout.views.pay",
                "project": 42, "environment": "production",
                "datetime": "2024-05-02T09:50:01.412000Z",
                "tags": [["server_name", "web-6"], ["environment", "production"]],
                "web_url": "https://sentry.example.net/organizations/ex/issues/4410987/"
            }
        }
    })
    .to_string()
}

fn issue_resolved() -> String {
    json!({"action": "resolved", "data": {"issue": {"id": "4410987", "title": "KeyError: 'currency'"}}})
        .to_string()
}

fn check(state: &str) -> String {
    json!({"check": {"id": null, "name": "disk_free", "state": state, "level": "P1",
                     "output": "/var at 97% on web-3"},
           "host": "web-3.example.net", "owner": {"team": "payments"}})
    .to_string()
}

fn accepted(n: u64) -> Value {
    json!({"status": "success", "message": format!("{n} accepted"), "accepted": n, "rejected": []})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentry_issue_and_a_mapped_webhook_become_incidents_on_a_real_broker() {
    let broker = Broker::start();
    let sluice = Sluice::start("webhooks", &broker.bootstrap, CONFIG);
    let url = sluice.url.clone();
    let mut reader = Reader::new(&broker.bootstrap, "sluice.incidents");

    let sentry = [("Sentry-Hook-Resource", "event_alert")];
    let reply = post(
        &url,
        "/integrations/sentry/svc-checkout",
        &sentry,
        issue_alert(),
    )
    .await;
    assert_eq!(reply, (202, accepted(1)));
    let reply = post(
        &url,
        "/integrations/generic/svc-shop?mapper=shopmon",
        &[],
        check("failing"),
    )
    .await;
    assert_eq!(reply, (202, accepted(1)));
    reader
        .until("two opened messages", |seen| seen.len() >= 2)
        .await;

    // A value the mapper does not know is refused by name, and nothing is published for it.
    let (status, body) = post(&url, "/integrations/generic/svc-shop", &[], check("paused")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "generic: mapper shopmon: '/check/state' (action_pointer) is \"paused\", which action_map does not have (failing, passing)"
    );

    let issue = [("Sentry-Hook-Resource", "issue")];
    let reply = post(
        &url,
        "/integrations/sentry/svc-checkout",
        &issue,
        issue_resolved(),
    )
    .await;
    assert_eq!(reply, (202, accepted(1)));
    reader
        .until("the Sentry resolve", |seen| seen.len() >= 3)
        .await;
    assert_eq!(
        reader
            .extra_within(std::time::Duration::from_millis(1500))
            .await,
        0
    );

    let incidents = by_incident(&reader.seen);
    assert_eq!(incidents.len(), 2, "{:#?}", reader.seen);
    let of = |integration: &str| {
        incidents
            .values()
            .find(|msgs| msgs[0].body["integrations"] == json!([integration]))
            .unwrap_or_else(|| panic!("no {integration} incident in {:#?}", reader.seen))
    };
    let kinds = |msgs: &[crate::harness::Received]| -> Vec<(String, u64)> {
        msgs.iter()
            .map(|m| {
                (
                    m.body["type"].as_str().unwrap().to_string(),
                    m.body["seq"].as_u64().unwrap(),
                )
            })
            .collect()
    };

    let sentry = of("sentry");
    assert_eq!(
        kinds(sentry),
        [("opened".into(), 1), ("resolved".into(), 2)]
    );
    let opened = &sentry[0].body;
    assert_eq!(opened["routing_key"], "svc-checkout");
    assert_eq!(opened["title"], "KeyError: 'currency'");
    assert_eq!(opened["severity"], "critical", "level fatal");
    assert_eq!(opened["group_key"], json!({"dedup_key": "4410987"}));
    assert_eq!(opened["alerts"][0]["dedup_key"], "4410987");
    assert_eq!(opened["alerts"][0]["source"], "web-6");
    assert_eq!(sentry[1].body["status"], "resolved");
    assert_eq!(sentry[1].body["open_alert_count"], 0);

    let mapped = of("generic");
    assert_eq!(kinds(mapped), [("opened".into(), 1)]);
    let opened = &mapped[0].body;
    assert_eq!(opened["routing_key"], "svc-shop");
    assert_eq!(opened["title"], "/var at 97% on web-3");
    assert_eq!(opened["severity"], "critical", "P1 through severity_map");
    assert_eq!(opened["status"], "triggered");
    assert_eq!(
        opened["alerts"][0]["dedup_key"],
        "web-3.example.net/disk_free"
    );
    assert_eq!(opened["alerts"][0]["source"], "web-3.example.net");
}
