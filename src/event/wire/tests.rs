//! Tests of the wire format: the golden bytes, every refusal by name, and round trips of
//! arbitrary records.

use proptest::prelude::*;
use serde_json::value::{to_raw_value, RawValue};

use super::decode::Slot;
use super::*;
use crate::event::{Action, Details, Image, Link, Severity};
use crate::integration::{Integration, KeySpace};

fn details(json: &str) -> Details {
    Details(RawValue::from_string(json.to_string()).unwrap())
}

fn encoded(record: &Record) -> String {
    let mut out = Vec::new();
    encode(record, &mut out);
    String::from_utf8(out).unwrap()
}

/// Every field set, in the Sentry metric alert key space.
fn full_event() -> Event {
    let mut e = Event::new(
        Integration::Sentry,
        Action::Trigger,
        "rk-1".into(),
        "77".into(),
        UnixMillis(1_700_000_000_500),
    );
    e.key_space = KeySpace::SENTRY_METRIC_ALERTS;
    e.severity = Severity::Critical;
    e.summary = "CPU > 90% on \"db-1\"".into();
    e.source = "db-1".into();
    e.component = Some("postgres".into());
    e.group = Some("prod".into());
    e.class = Some("cpu".into());
    e.labels = [("team", "données"), ("env", "prod")].into_iter().collect();
    e.custom_details = Some(details(r#"{"value":93.5,"tags":["a","b"]}"#));
    e.timestamp = Some(UnixMillis(1_700_000_000_000));
    e.ends_at = Some(UnixMillis(1_700_000_300_000));
    e.links = vec![Link {
        href: "https://sentry.example/alerts/77".into(),
        text: Some("Sentry".into()),
    }];
    e.images = vec![Image {
        src: "https://sentry.example/chart.png".into(),
        href: Some("https://sentry.example/alerts/77".into()),
        alt: Some("chart".into()),
    }];
    e
}

/// The v1 bytes of [`full_event`]. Changing this string is changing the wire format: a
/// new field an older reader can ignore, or a new [`VERSION`].
const GOLDEN: &str = concat!(
    r#"{"v":1,"type":"event","routing_key":"rk-1","integration":"sentry","#,
    r#""key_space":"sentry_metric_alerts","action":"trigger","dedup_key":"77","#,
    r#""severity":"critical","summary":"CPU > 90% on \"db-1\"","source":"db-1","#,
    r#""component":"postgres","group":"prod","class":"cpu","#,
    r#""labels":[["team","données"],["env","prod"]],"#,
    r#""custom_details":{"value":93.5,"tags":["a","b"]},"#,
    r#""timestamp":1700000000000,"received_at":1700000000500,"ends_at":1700000300000,"#,
    r#""links":[{"href":"https://sentry.example/alerts/77","text":"Sentry"}],"#,
    r#""images":[{"src":"https://sentry.example/chart.png","#,
    r#""href":"https://sentry.example/alerts/77","alt":"chart"}]}"#,
);

#[test]
fn golden_v1_event_bytes() {
    let event = full_event();
    assert_eq!(encoded(&Record::Event(event.clone())), GOLDEN);
    let mut out = Vec::new();
    encode_event(&event, &mut out);
    assert_eq!(out, GOLDEN.as_bytes());
    assert_eq!(decode(GOLDEN.as_bytes()).unwrap(), Record::Event(event));
}

#[test]
fn minimal_records_carry_only_what_is_set() {
    let ack = Event::new(
        Integration::PagerDuty,
        Action::Acknowledge,
        "rk".into(),
        "k".into(),
        UnixMillis(5),
    );
    assert_eq!(
        encoded(&Record::Event(ack)),
        r#"{"v":1,"type":"event","routing_key":"rk","integration":"pagerduty","action":"acknowledge","dedup_key":"k","severity":"error","received_at":5}"#
    );
    assert_eq!(
        encoded(&Record::Watermark {
            at: UnixMillis(7),
            rules: None
        }),
        r#"{"v":1,"type":"watermark","at":7}"#
    );
    let change = ChangeEvent {
        routing_key: "rk".into(),
        integration: Integration::PagerDuty,
        summary: "deploy".into(),
        source: None,
        custom_details: None,
        timestamp: None,
        received_at: UnixMillis(5),
        links: Vec::new(),
        images: Vec::new(),
    };
    assert_eq!(
        encoded(&Record::Change(change)),
        r#"{"v":1,"type":"change","routing_key":"rk","integration":"pagerduty","summary":"deploy","received_at":5}"#
    );
}

#[test]
fn encode_appends_to_the_buffer() {
    let mut out = b"x".to_vec();
    encode(
        &Record::Watermark {
            at: UnixMillis(1),
            rules: None,
        },
        &mut out,
    );
    encode(
        &Record::Watermark {
            at: UnixMillis(2),
            rules: Some("00ff".into()),
        },
        &mut out,
    );
    assert_eq!(
        out,
        br#"x{"v":1,"type":"watermark","at":1}{"v":1,"type":"watermark","at":2,"rules":"00ff"}"#
    );
}

#[test]
fn sentry_metric_alert_key_space_round_trips() {
    let mut metric = full_event();
    metric.key_space = KeySpace::SENTRY_METRIC_ALERTS;
    let record = Record::Event(metric);
    let text = encoded(&record);
    assert!(text.contains(r#""key_space":"sentry_metric_alerts""#));
    assert_eq!(decode(text.as_bytes()).unwrap(), record);

    // An issue alert of the same integration and key: its own space, no key_space field.
    let mut issue = full_event();
    issue.key_space = Integration::Sentry.key_space();
    let text = encoded(&Record::Event(issue.clone()));
    assert!(!text.contains("key_space"));
    let Record::Event(back) = decode(text.as_bytes()).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(back.key_space, Integration::Sentry.key_space());
    assert_ne!(back.key_space, KeySpace::SENTRY_METRIC_ALERTS);
    assert_eq!(back, issue);

    // A shared space is the integration's: PagerDuty v1 meets PagerDuty v2.
    let v1 = Event::new(
        Integration::PagerDutyV1,
        Action::Trigger,
        "rk".into(),
        "k".into(),
        UnixMillis(1),
    );
    let text = encoded(&Record::Event(v1));
    assert!(!text.contains("key_space"));
    let Record::Event(back) = decode(text.as_bytes()).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(back.key_space, Integration::PagerDuty.key_space());
}

#[test]
fn unknown_fields_are_ignored() {
    let with_extras = GOLDEN
        .replacen(
            r#"{"v":1,"#,
            r#"{"v":1,"trace":{"id":[1,2,{"x":null}]},"priority":3,"#,
            1,
        )
        .replacen(r#""text":"Sentry""#, r#""text":"Sentry","rel":"self""#, 1)
        .replacen(r#""alt":"chart""#, r#""alt":"chart","width":640"#, 1)
        .replacen(r#"}]}"#, r#"}],"flags":["new"]}"#, 1);
    assert_ne!(with_extras, GOLDEN);
    assert_eq!(
        decode(with_extras.as_bytes()).unwrap(),
        Record::Event(full_event())
    );
}

#[test]
fn null_reads_as_absent() {
    let record = r#"{"v":1,"type":"event","routing_key":"rk","integration":"pagerduty","action":"resolve","dedup_key":"k","severity":"error","received_at":5,"component":null,"labels":null,"timestamp":null,"links":[{"href":"h","text":null}]}"#;
    let Record::Event(e) = decode(record.as_bytes()).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(e.component, None);
    assert!(e.labels.is_empty());
    assert_eq!(e.timestamp, None);
    assert_eq!(
        e.links,
        vec![Link {
            href: "h".into(),
            text: None
        }]
    );
}

const MINIMAL: &str = r#""type":"event","routing_key":"rk","integration":"pagerduty","action":"trigger","dedup_key":"k","severity":"error","received_at":5"#;

fn minimal(v: &str, extra: &str) -> String {
    format!(r#"{{"v":{v},{MINIMAL}{extra}}}"#)
}

#[test]
fn a_later_version_is_refused_by_number() {
    assert!(decode(minimal("1", "").as_bytes()).is_ok());
    for (record, v) in [
        (minimal("2", ""), 2),
        (minimal("0", ""), 0),
        // A field reshaped by the later version, after `v` and before it.
        (minimal("2", r#","labels":{"team":"db"}"#), 2),
        (
            r#"{"labels":{"team":"db"},"type":"event","v":3}"#.to_string(),
            3,
        ),
        // Even a type this build does not know.
        (r#"{"v":2,"type":"heartbeat"}"#.to_string(), 2),
        (
            r#"{"type":"heartbeat","v":18446744073709551615}"#.to_string(),
            u64::MAX,
        ),
    ] {
        let err = decode(record.as_bytes()).unwrap_err();
        assert!(
            matches!(err, WireError::UnsupportedVersion(n) if n == v),
            "{record}: {err}"
        );
    }
    assert_eq!(
        WireError::UnsupportedVersion(2).to_string(),
        "unsupported wire format version 2; this build reads versions 1 to 1"
    );
}

#[test]
fn missing_fields_are_named() {
    let no_routing_key = minimal("1", "").replace(r#""routing_key":"rk","#, "");
    let err = decode(no_routing_key.as_bytes()).unwrap_err();
    assert!(matches!(err, WireError::Missing("routing_key")), "{err}");
    assert_eq!(err.to_string(), "missing field routing_key");

    for (field, record) in [
        ("v", format!("{{{MINIMAL}}}")),
        ("type", r#"{"v":1}"#.to_string()),
        ("received_at", minimal("1", "").replace(r#","received_at":5"#, "")),
        ("dedup_key", minimal("1", "").replace(r#","dedup_key":"k""#, "")),
        ("integration", minimal("1", "").replace(r#""integration":"pagerduty","#, "")),
        // null is absent
        ("integration", minimal("1", "").replace(r#""pagerduty""#, "null")),
        ("summary", r#"{"v":1,"type":"change","routing_key":"rk","integration":"pagerduty","received_at":1}"#.to_string()),
        ("at", r#"{"v":1,"type":"watermark"}"#.to_string()),
    ] {
        let err = decode(record.as_bytes()).unwrap_err();
        assert!(matches!(err, WireError::Missing(f) if f == field), "{record}: {err}");
    }
}

#[test]
fn unknown_names_are_named() {
    let record = minimal("1", "").replace(r#""pagerduty""#, r#""nagios2""#);
    let err = decode(record.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, WireError::Unknown { field: "integration", value } if value == "nagios2"),
        "{err}"
    );
    assert_eq!(err.to_string(), r#"unknown integration "nagios2""#);

    for (field, record) in [
        (
            "action",
            minimal("1", "").replace(r#""trigger""#, r#""snooze""#),
        ),
        // Exactly as written: no case folding.
        (
            "severity",
            minimal("1", "").replace(r#""error""#, r#""Error""#),
        ),
        ("key_space", minimal("1", r#","key_space":"7""#)),
    ] {
        let err = decode(record.as_bytes()).unwrap_err();
        assert!(
            matches!(err, WireError::Unknown { field: f, .. } if f == field),
            "{record}: {err}"
        );
    }

    // A very long name is cut in the error.
    let long = "x".repeat(10_000);
    let err = decode(
        minimal("1", "")
            .replace(r#""pagerduty""#, &format!("{long:?}"))
            .as_bytes(),
    )
    .unwrap_err();
    assert!(err.to_string().len() < 100, "{err}");
}

#[test]
fn an_unknown_type_is_named() {
    let err = decode(br#"{"v":1,"type":"heartbeat","at":5}"#).unwrap_err();
    assert!(
        matches!(&err, WireError::UnknownType(t) if t == "heartbeat"),
        "{err}"
    );
    assert_eq!(err.to_string(), r#"unknown record type "heartbeat""#);
}

#[test]
fn what_is_not_json_is_refused() {
    for bytes in [
        &b"not json"[..],
        b"",
        b"{\"v\":1,",
        b"{\"v\":1}{\"v\":1}",
        b"{\"v\":1} x",
        b"{\"v\":1,\"type\":\"\xff\"}",
        b"{\"v\":1,\"custom_details\":{\"a\":}}",
    ] {
        let err = decode(bytes).unwrap_err();
        assert!(
            matches!(err, WireError::NotJson(_)),
            "{}: {err}",
            String::from_utf8_lossy(bytes)
        );
        assert!(err.to_string().starts_with("not json: "), "{err}");
    }
}

#[test]
fn what_is_not_an_object_is_refused() {
    for bytes in [
        &b"[]"[..],
        b"[{\"v\":1}]",
        b"\"event\"",
        b"1",
        b"null",
        b"true",
    ] {
        let err = decode(bytes).unwrap_err();
        assert!(
            matches!(err, WireError::NotObject),
            "{}: {err}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(WireError::NotObject.to_string(), "not a json object");
}

#[test]
fn a_routed_event_is_an_event_with_its_place_and_reads_as_one_without() {
    let event = full_event();
    let origin = Origin {
        partition: 3,
        offset: 1234,
        index: 2,
        floor: 1200,
    };
    let mut out = Vec::new();
    encode_routed(&event, origin, &mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with(r#"{"v":1,"type":"event","#), "{text}");
    assert!(
        text.ends_with(r#","routed":{"partition":3,"offset":1234,"index":2,"floor":1200}}"#),
        "{text}"
    );
    assert_eq!(
        decode(&out).unwrap(),
        Record::Routed {
            event: event.clone(),
            origin
        }
    );
    // A reader that did not know `routed` took it as the event it is.
    let plain = text.replace(
        r#","routed":{"partition":3,"offset":1234,"index":2,"floor":1200}"#,
        "",
    );
    assert_eq!(decode(plain.as_bytes()).unwrap(), Record::Event(event));
}

#[test]
fn a_wrong_type_names_the_field_and_not_the_value() {
    for (field, extra) in [
        ("received_at", r#","received_at":"secret-1""#),
        ("labels", r#","labels":[["secret-1","a","b"]]"#),
        ("labels", r#","labels":{"secret-1":"a"}"#),
        ("links", r#","links":[{"text":"secret-1"}]"#),
        ("images", r#","images":[{"src":"secret-1","alt":7}]"#),
        ("ends_at", r#","ends_at":-1"#),
        ("timestamp", r#","timestamp":1.5"#),
        ("component", r#","component":["secret-1"]"#),
        (
            "routed",
            r#","routed":{"partition":"secret-1","offset":1,"index":0,"floor":0}"#,
        ),
        (
            "routed",
            r#","routed":{"partition":1,"offset":-1,"index":0,"floor":0}"#,
        ),
        ("routed", r#","routed":7"#),
        (
            "routed",
            r#","routed":{"partition":1,"offset":1,"index":0}"#,
        ),
    ] {
        let record = if field == "received_at" {
            minimal("1", "").replace(r#""received_at":5"#, &extra[1..])
        } else {
            minimal("1", extra)
        };
        let err = decode(record.as_bytes()).unwrap_err();
        assert!(
            matches!(err, WireError::Invalid { field: f, .. } if f == field),
            "{record}: {err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    let err = decode(br#"{"v":"1"}"#).unwrap_err();
    assert!(
        matches!(err, WireError::Invalid { field: "v", .. }),
        "{err}"
    );
    assert_eq!(
        WireError::Invalid {
            field: Slot::ReceivedAt.name(),
            expected: Slot::ReceivedAt.expected()
        }
        .to_string(),
        "field received_at: expected an integer of unix milliseconds"
    );
}

#[test]
fn deep_nesting_is_read_or_refused_without_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    // Details and unknown fields are skipped over, not recursed into.
    let record = minimal("1", &format!(r#","custom_details":{deep},"later":{deep}"#));
    let Record::Event(e) = decode(record.as_bytes()).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(e.custom_details.unwrap().0.get(), deep);
    // Typed fields stop at serde_json's recursion limit.
    let record = minimal("1", &format!(r#","labels":{deep}"#));
    assert!(decode(record.as_bytes()).is_err());
}

#[test]
fn a_field_twice_is_refused() {
    let err = decode(minimal("1", r#","dedup_key":"other""#).as_bytes()).unwrap_err();
    assert!(matches!(err, WireError::Duplicate("dedup_key")), "{err}");
    assert_eq!(err.to_string(), "field dedup_key appears twice");
    // Unknown fields may repeat: they are not read.
    assert!(decode(minimal("1", r#","x":1,"x":2"#).as_bytes()).is_ok());
}

#[test]
fn every_field_name_parses_back() {
    for slot in Slot::KNOWN {
        assert_eq!(Slot::parse(slot.name()), slot);
        assert!(!slot.expected().is_empty());
    }
    assert_eq!(Slot::parse("labels.team"), Slot::Other);
}

// ---- properties ----

/// Plain names, JSON's awkward characters (quotes, backslashes, control characters, line
/// separators, astral plane), and anything at all.
fn text() -> impl Strategy<Value = String> {
    let awkward = prop::collection::vec(
        prop::sample::select(vec![
            'a', ' ', '"', '\\', '/', '\n', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '日', '😀',
            '\u{2028}', '\u{feff}',
        ]),
        0..8,
    )
    .prop_map(String::from_iter);
    prop_oneof!["[a-z0-9._-]{0,10}", awkward, any::<String>(),]
}

fn custom_details() -> impl Strategy<Value = Details> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
        prop::collection::vec(text(), 0..3).prop_map(serde_json::Value::from),
        prop::collection::btree_map(text(), any::<i32>(), 0..3)
            .prop_map(|m| serde_json::to_value(m).unwrap()),
    ];
    prop::collection::btree_map(text(), value, 0..4)
        .prop_map(|m| Details(to_raw_value(&m).unwrap()))
}

fn links() -> impl Strategy<Value = Vec<Link>> {
    prop::collection::vec(
        (text(), prop::option::of(text())).prop_map(|(href, text)| Link {
            href,
            text: text.map(Into::into),
        }),
        0..3,
    )
}

fn images() -> impl Strategy<Value = Vec<Image>> {
    prop::collection::vec(
        (text(), prop::option::of(text()), prop::option::of(text()))
            .prop_map(|(src, href, alt)| Image { src, href, alt }),
        0..3,
    )
}

fn millis() -> impl Strategy<Value = UnixMillis> {
    prop_oneof![
        any::<u64>(),
        1_600_000_000_000u64..1_900_000_000_000,
        Just(0),
    ]
    .prop_map(UnixMillis)
}

fn event() -> impl Strategy<Value = Event> {
    let identity = (
        prop::sample::select(Integration::ALL.to_vec()),
        prop::bool::weighted(0.2),
        prop::sample::select(vec![Action::Trigger, Action::Acknowledge, Action::Resolve]),
        prop::sample::select(vec![
            Severity::Info,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ]),
        text(),
        text(),
        millis(),
    );
    let body = (
        text(),
        text(),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::vec((text(), text()), 0..4),
        prop::option::of(custom_details()),
        prop::option::of(millis()),
        prop::option::of(millis()),
        links(),
        images(),
    );
    (identity, body).prop_map(
        |(
            (integration, metric, action, severity, routing_key, dedup_key, received_at),
            (
                summary,
                source,
                component,
                group,
                class,
                labels,
                details,
                timestamp,
                ends_at,
                links,
                images,
            ),
        )| {
            let mut e = Event::new(integration, action, routing_key, dedup_key, received_at);
            if metric {
                e.key_space = KeySpace::SENTRY_METRIC_ALERTS;
            }
            e.severity = severity;
            e.summary = summary;
            e.source = source;
            e.component = component;
            e.group = group;
            e.class = class;
            e.labels = labels.into();
            e.custom_details = details;
            e.timestamp = timestamp;
            e.ends_at = ends_at;
            e.links = links;
            e.images = images;
            e
        },
    )
}

fn change() -> impl Strategy<Value = ChangeEvent> {
    (
        (
            text(),
            prop::sample::select(Integration::ALL.to_vec()),
            text(),
            prop::option::of(text()),
        ),
        (
            prop::option::of(custom_details()),
            prop::option::of(millis()),
            millis(),
            links(),
            images(),
        ),
    )
        .prop_map(
            |(
                (routing_key, integration, summary, source),
                (custom_details, timestamp, received_at, links, images),
            )| ChangeEvent {
                routing_key,
                integration,
                summary,
                source,
                custom_details,
                timestamp,
                received_at,
                links,
                images,
            },
        )
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        4 => event().prop_map(Record::Event),
        2 => change().prop_map(Record::Change),
        1 => (millis(), prop::option::of("[0-9a-f]{16}")).prop_map(|(at, rules)| Record::Watermark { at, rules }),
        1 => (event(), any::<u32>(), any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(event, partition, offset, index, floor)| {
            Record::Routed { event, origin: Origin { partition, offset, index, floor } }
        }),
    ]
}

proptest! {
    #[test]
    fn every_record_round_trips(record in record()) {
        let mut out = b"prefix".to_vec();
        encode(&record, &mut out);
        prop_assert!(out.starts_with(b"prefix"));
        let bytes = &out[6..];
        // One line per record in a dump.
        prop_assert!(!bytes.contains(&b'\n'));
        prop_assert_eq!(decode(bytes).unwrap(), record.clone());
        if let Record::Event(event) = &record {
            let mut direct = Vec::new();
            encode_event(event, &mut direct);
            prop_assert_eq!(&direct[..], bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }

    /// Every cut of a record is refused; one byte changed anywhere is decoded or refused,
    /// never a panic.
    #[test]
    fn damaged_records_never_panic(
        record in record(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut out = Vec::new();
        encode(&record, &mut out);
        for cut in 0..out.len() {
            prop_assert!(decode(&out[..cut]).is_err());
        }
        let i = at.index(out.len());
        out[i] = byte;
        let _ = decode(&out);
    }
}

#[test]
fn commands_round_trip_and_a_snooze_needs_its_until() {
    use crate::event::{Command, CommandAction};
    for action in [
        CommandAction::Acknowledge,
        CommandAction::Resolve,
        CommandAction::Snooze {
            until: UnixMillis(1_700_003_600_000),
        },
    ] {
        for reason in [None, Some("deploying the fix".to_string())] {
            let command = Command {
                routing_key: "rk-1".into(),
                incident_id: "inc_3f0c".into(),
                action,
                by: "ops".into(),
                reason,
                received_at: UnixMillis(1_700_000_000_500),
            };
            let mut out = Vec::new();
            encode_command(&command, &mut out);
            assert_eq!(
                decode(&out).unwrap(),
                Record::Command(command),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
    let no_until = br#"{"v":1,"type":"command","routing_key":"rk","incident_id":"inc_1","action":"snooze","by":"ops","received_at":1}"#;
    assert!(matches!(decode(no_until), Err(WireError::Missing("until"))));
    let unknown = br#"{"v":1,"type":"command","routing_key":"rk","incident_id":"inc_1","action":"escalate","by":"ops","received_at":1}"#;
    assert!(matches!(
        decode(unknown),
        Err(WireError::Unknown {
            field: "action",
            ..
        })
    ));
}
