use super::*;

const NOW: UnixMillis = UnixMillis(1_714_641_247_120);

fn v2(body: &str) -> Result<OneEvent<Event>, PdError> {
    parse_v2(&mut body.as_bytes().to_vec(), NOW)
}

fn v2_errors(body: &str) -> Vec<String> {
    match v2(body) {
        Err(PdError::Invalid(errors)) => errors,
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn parses_a_full_trigger() {
    let p = v2(r#"{
        "routing_key": "0123456789abcdef0123456789abcdef",
        "event_action": "trigger",
        "dedup_key": "db-eu1/replication-lag",
        "payload": {
            "summary": "Replication lag 340s on db-eu1-replica-2",
            "source": "db-eu1-replica-2.internal",
            "severity": "error",
            "timestamp": "2024-05-02T09:14:07.120+0000",
            "component": "postgres", "group": "db-eu1", "class": "replication",
            "custom_details": {"lag_seconds": 340, "primary": "db-eu1-primary"}
        },
        "links": [{"href": "https://grafana.example.net/d/pg", "text": "PG dashboard"}],
        "images": [{"src": "https://img.example.net/x.png"}],
        "client": "check-runner",
        "client_url": "https://checks.example.net",
        "unknown_vendor_field": {"ignored": true}
    }"#)
    .unwrap();
    let e = p.event;
    assert!(!p.summary_truncated);
    assert_eq!(e.routing_key, "0123456789abcdef0123456789abcdef");
    assert_eq!(e.action, Action::Trigger);
    assert_eq!(e.dedup_key, "db-eu1/replication-lag");
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(e.source, "db-eu1-replica-2.internal");
    assert_eq!(e.component.as_deref(), Some("postgres"));
    assert_eq!(e.group.as_deref(), Some("db-eu1"));
    assert_eq!(e.class.as_deref(), Some("replication"));
    assert_eq!(e.timestamp, Some(NOW));
    assert_eq!(e.received_at, NOW);
    assert_eq!(
        e.custom_details.unwrap().0.get(),
        r#"{"lag_seconds":340,"primary":"db-eu1-primary"}"#
    );
    assert_eq!(e.links.len(), 2);
    assert_eq!(e.links[1].href, "https://checks.example.net");
    assert_eq!(e.links[1].text.as_deref(), Some("check-runner"));
    assert_eq!(e.images[0].src, "https://img.example.net/x.png");
}

#[test]
fn a_trigger_without_a_key_gets_a_stable_derived_one() {
    let body = r#"{"routing_key":"rk","event_action":"trigger",
        "payload":{"summary":"disk full","source":"web-1","severity":"warning"}}"#;
    let a = v2(body).unwrap().event.dedup_key;
    let b = v2(body).unwrap().event.dedup_key;
    assert_eq!(a, b, "a retried trigger deduplicates");
    assert_eq!(a.len(), 32);
    let other = v2(&body.replace("web-1", "web-2")).unwrap().event.dedup_key;
    assert_ne!(a, other);
}

#[test]
fn acknowledge_and_resolve_need_only_the_key() {
    for action in ["acknowledge", "resolve"] {
        let e = v2(&format!(
            r#"{{"routing_key":"rk","event_action":"{action}","dedup_key":"k1"}}"#
        ))
        .unwrap()
        .event;
        assert_eq!(e.dedup_key, "k1");
        assert_eq!(Action::parse(action), Some(e.action));
    }
}

#[test]
fn every_validation_error_names_its_field() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"event_action":"resolve","dedup_key":"k"}"#, &["'routing_key' is missing or blank"]),
        (r#"{"routing_key":" ","event_action":"resolve","dedup_key":"k"}"#, &["'routing_key' is missing or blank"]),
        (r#"{"routing_key":7,"event_action":"resolve","dedup_key":"k"}"#, &["'routing_key' must be a string"]),
        (r#"{"routing_key":"rk","dedup_key":"k"}"#, &["'event_action' is missing or blank"]),
        (
            r#"{"routing_key":"rk","event_action":"explode","dedup_key":"k"}"#,
            &["'event_action' must be one of trigger, acknowledge, resolve"],
        ),
        (r#"{"routing_key":"rk","event_action":"trigger"}"#, &["'payload' is missing"]),
        (r#"{"routing_key":"rk","event_action":"trigger","payload":"x"}"#, &["'payload' must be an object"]),
        (
            r#"{"routing_key":"rk","event_action":"trigger","payload":{}}"#,
            &[
                "'payload.summary' is missing or blank",
                "'payload.source' is missing or blank",
                "'payload.severity' is missing or blank",
            ],
        ),
        (
            r#"{"routing_key":"rk","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"page"}}"#,
            &["'payload.severity' must be one of critical, error, warning, info"],
        ),
        (
            r#"{"routing_key":"rk","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"info","timestamp":"last tuesday"}}"#,
            &["'payload.timestamp' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)"],
        ),
        (r#"{"routing_key":"rk","event_action":"acknowledge"}"#, &["'dedup_key' is required for acknowledge and resolve events"]),
        (r#"{"routing_key":"rk","event_action":"resolve","dedup_key":""}"#, &["'dedup_key' is required for acknowledge and resolve events"]),
        (r#"{"routing_key":"rk","event_action":"resolve","dedup_key":["k"]}"#, &["'dedup_key' must be a string"]),
        (
            r#"{"routing_key":"rk","event_action":"resolve","dedup_key":"k","links":[{"text":"x"},3]}"#,
            &["'links[0].href' is missing or blank", "'links[1]' must be an object"],
        ),
        (
            r#"{"routing_key":"rk","event_action":"resolve","dedup_key":"k","images":{}}"#,
            &["'images' must be an array"],
        ),
    ];
    for (body, want) in cases {
        assert_eq!(v2_errors(body), *want, "for {body}");
    }
}

#[test]
fn dedup_key_over_255_characters_is_refused() {
    let ok = format!(
        r#"{{"routing_key":"rk","event_action":"resolve","dedup_key":"{}"}}"#,
        "é".repeat(255)
    );
    assert!(
        v2(&ok).is_ok(),
        "255 characters (510 bytes) is within the limit"
    );
    let long = format!(
        r#"{{"routing_key":"rk","event_action":"resolve","dedup_key":"{}"}}"#,
        "k".repeat(256)
    );
    assert_eq!(
        v2_errors(&long),
        vec!["'dedup_key' must be at most 255 characters"]
    );
}

#[test]
fn a_long_summary_is_truncated_not_refused() {
    let body = format!(
        r#"{{"routing_key":"rk","event_action":"trigger","payload":{{"summary":"{}","source":"h","severity":"info"}}}}"#,
        "ü".repeat(2000)
    );
    let p = v2(&body).unwrap();
    assert!(p.summary_truncated);
    assert_eq!(p.event.summary.chars().count(), 1024);
}

#[test]
fn bodies_that_are_not_json_objects_are_unrecognized() {
    assert_eq!(
        v2("{not json").unwrap_err(),
        PdError::Unrecognized("JSON parse error")
    );
    assert_eq!(
        v2("").unwrap_err(),
        PdError::Unrecognized("JSON parse error")
    );
    assert_eq!(
        v2("[1,2]").unwrap_err(),
        PdError::Unrecognized("JSON is not an object")
    );
    assert_eq!(
        v2("\"trigger\"").unwrap_err(),
        PdError::Unrecognized("JSON is not an object")
    );
}

#[test]
fn nulls_count_as_absent() {
    let e = v2(r#"{"routing_key":"rk","event_action":"trigger","dedup_key":null,"links":null,
        "payload":{"summary":"s","source":"h","severity":"critical","component":null,"custom_details":null}}"#)
    .unwrap()
    .event;
    assert_eq!(e.component, None);
    assert_eq!(e.custom_details, None);
    assert_eq!(e.dedup_key.len(), 32);
}

#[test]
fn change_events_parse_and_validate() {
    let c = parse_change(
        &mut br#"{"routing_key":"rk","payload":{"summary":"deploy 42","source":"ci","timestamp":"2024-05-02T09:14:07.120Z","custom_details":{"sha":"abc"}},"links":[{"href":"https://ci/42"}]}"#.to_vec(),
        NOW,
    )
    .unwrap()
    .event;
    assert_eq!(c.summary, "deploy 42");
    assert_eq!(c.source.as_deref(), Some("ci"));
    assert_eq!(c.links[0].href, "https://ci/42");
    match parse_change(&mut br#"{"routing_key":"rk"}"#.to_vec(), NOW) {
        Err(PdError::Invalid(e)) => assert_eq!(e, vec!["'payload' is missing"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn v1_events_map_to_the_same_model() {
    let p = parse_v1(
        &mut br#"{"service_key":"svc","event_type":"trigger","incident_key":"srv01/HTTP","description":"HTTP down",
            "details":{"ping":"timeout"},"client":"nagios","client_url":"https://nagios/",
            "contexts":[{"type":"link","href":"https://runbook"},{"type":"image","src":"https://graph.png"}],
            "event_action":"","payload":null}"#
            .to_vec(),
        NOW,
    )
    .unwrap();
    let e = p.event;
    assert_eq!(e.integration, Integration::PagerDutyV1);
    assert_eq!(e.routing_key, "svc");
    assert_eq!(e.dedup_key, "srv01/HTTP");
    assert_eq!(e.summary, "HTTP down");
    assert_eq!(e.severity, V1_DEFAULT_SEVERITY);
    assert_eq!(
        e.links.iter().map(|l| l.href.as_str()).collect::<Vec<_>>(),
        ["https://runbook", "https://nagios/"]
    );
    assert_eq!(e.images[0].src, "https://graph.png");

    let errors = match parse_v1(
        &mut br#"{"event_type":"resolve","contexts":[{"type":"video"}]}"#.to_vec(),
        NOW,
    ) {
        Err(PdError::Invalid(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        errors,
        vec![
            "'service_key' is missing or blank",
            "'incident_key' is required for acknowledge and resolve events",
            "'contexts[0].type' must be link or image",
        ]
    );
}
