use std::time::Duration;

use serde_json::json;

use super::*;

fn msg(id: &str, seq: u64, kind: &str, key: &str, opened_min: u64, resolved: bool) -> Vec<u8> {
    let at = |min: u64| UnixMillis(1_765_000_000_000 + min * 60_000).to_string();
    let status = if resolved { "resolved" } else { "triggered" };
    serde_json::to_vec(&json!({
        "schema": "sluice.incident.v1", "type": kind, "incident_id": id, "seq": seq,
        "routing_key": key, "rule": "default", "group_key": {}, "title": format!("{id} title"),
        "severity": if key == "payments" { "critical" } else { "warning" }, "status": status,
        "opened_at": at(opened_min), "updated_at": at(opened_min + seq),
        "resolved_at": if resolved { json!(at(opened_min + seq)) } else { json!(null) },
        "alert_count": 2, "open_alert_count": if resolved { 0 } else { 2 }, "event_count": 10,
        "alerts": [{"dedup_key": "a", "integration": "grafana", "event_count": 6},
                   {"dedup_key": "b", "integration": "pagerduty", "event_count": 4}],
        "alerts_truncated": 0, "integrations": ["grafana", "pagerduty"], "links": [],
        "reasons": {"grouping": "auto", "inhibited": 0, "silenced": 0},
        "published_at": at(opened_min + seq)
    }))
    .unwrap()
}

#[test]
fn messages_apply_in_seq_order_and_repeats_change_nothing() {
    let view = View::new();
    assert_eq!(
        view.apply(&msg("inc_1", 1, "opened", "payments", 0, false)),
        Ok(())
    );
    assert_eq!(
        view.apply(&msg("inc_1", 2, "updated", "payments", 0, false)),
        Ok(())
    );
    assert_eq!(
        view.apply(&msg("inc_1", 1, "opened", "payments", 0, false)),
        Err(Skipped::Stale)
    );
    assert_eq!(view.apply(b"not json"), Err(Skipped::NotIncident));
    assert_eq!(
        view.apply(br#"{"schema":"sluice.change.v1","type":"change"}"#),
        Err(Skipped::NotIncident)
    );
    let e = view.get("inc_1").unwrap();
    assert_eq!(e.seq, 2);
    let kinds: Vec<&str> = e.timeline.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["opened", "updated"]);
    assert_eq!(view.counts(), (1, 0));
    view.apply(&msg("inc_1", 3, "resolved", "payments", 0, true))
        .unwrap();
    assert_eq!(view.counts(), (0, 1));
}

#[test]
fn the_alerts_are_kept_as_text_and_the_message_reads_back_whole() {
    let view = View::new();
    let body = msg("inc_1", 1, "opened", "payments", 0, false);
    view.apply(&body).unwrap();
    let e = view.get("inc_1").unwrap();
    assert!(e.latest.get("alerts").is_none(), "not kept as values");
    assert_eq!(
        e.alerts.as_ref().map(|packed| packed.text().len()),
        Some(
            json!(serde_json::from_slice::<Value>(&body).unwrap()["alerts"])
                .to_string()
                .len()
        )
    );
    assert_eq!(e.alerts()[1]["dedup_key"], "b");
    assert_eq!(e.message(), serde_json::from_slice::<Value>(&body).unwrap());
}

#[test]
fn a_storms_listed_alerts_are_kept_deflated_and_read_back_whole() {
    let view = View::new();
    let mut m: Value =
        serde_json::from_slice(&msg("inc_1", 1, "opened", "payments", 0, false)).unwrap();
    m["alerts"] = (0..100)
        .map(|i| {
            json!({"dedup_key": format!("{i:016x}"), "summary": format!("DiskFull on host-{i}"),
                   "severity": "critical", "status": "triggered", "integration": "grafana",
                   "event_count": 1, "details": {"description": "disk above 90%"}})
        })
        .collect();
    let body = serde_json::to_vec(&m).unwrap();
    view.apply(&body).unwrap();
    let e = view.get("inc_1").unwrap();
    let text_len = m["alerts"].to_string().len();
    let kept = e.alerts.as_ref().map(Packed::kept).unwrap();
    assert!(kept * 5 < text_len, "{kept} bytes kept of {text_len}");
    assert_eq!(e.alerts().len(), 100);
    assert_eq!(e.message(), m);
    // The same message again is a repeat, not packed again.
    assert_eq!(view.apply(&body), Err(Skipped::Stale));
}

#[test]
fn lists_filter_and_page_newest_first() {
    let view = View::new();
    for i in 0..7u64 {
        let key = if i % 2 == 0 { "payments" } else { "search" };
        view.apply(&msg(&format!("inc_{i}"), 1, "opened", key, i, false))
            .unwrap();
    }
    view.apply(&msg("inc_0", 2, "resolved", "payments", 0, true))
        .unwrap();
    let ids =
        |p: &Page| -> Vec<String> { p.incidents.iter().map(|s| s.incident_id.clone()).collect() };
    let mut f = Filter {
        limit: 2,
        ..Filter::default()
    };
    let first = view.list(&f);
    assert_eq!(first.total, 6, "the resolved one is not open");
    assert_eq!(ids(&first), ["inc_6", "inc_5"]);
    let mut seen = ids(&first);
    let mut cursor = first.next_cursor.clone();
    while let Some(c) = cursor {
        let (ms, id) = c.split_once('.').unwrap();
        f.cursor = Some((UnixMillis(ms.parse().unwrap()), id.to_string()));
        let page = view.list(&f);
        seen.extend(ids(&page));
        cursor = page.next_cursor;
    }
    assert_eq!(seen, ["inc_6", "inc_5", "inc_4", "inc_3", "inc_2", "inc_1"]);

    let payments = Filter {
        routing_keys: vec!["payments".into()],
        statuses: vec!["triggered".into(), "resolved".into()],
        limit: 50,
        ..Filter::default()
    };
    assert_eq!(
        ids(&view.list(&payments)),
        ["inc_6", "inc_4", "inc_2", "inc_0"]
    );
    let resolved = Filter {
        statuses: vec!["resolved".into()],
        limit: 50,
        ..Filter::default()
    };
    assert_eq!(ids(&view.list(&resolved)), ["inc_0"]);
    let warnings_since = Filter {
        severities: vec!["warning".into()],
        since: Some(UnixMillis(1_765_000_000_000 + 3 * 60_000)),
        limit: 50,
        ..Filter::default()
    };
    assert_eq!(ids(&view.list(&warnings_since)), ["inc_5", "inc_3"]);
    let by_integration = Filter {
        integrations: vec!["datadog".into()],
        limit: 50,
        ..Filter::default()
    };
    assert_eq!(view.list(&by_integration).total, 0);
}

#[test]
fn stats_count_incidents_alerts_and_events_in_the_window() {
    let view = View::new();
    for i in 0..4u64 {
        view.apply(&msg(
            &format!("inc_{i}"),
            1,
            "opened",
            "payments",
            i * 30,
            false,
        ))
        .unwrap();
    }
    let now = UnixMillis(1_765_000_000_000 + 100 * 60_000);
    let stats = view.stats(Duration::from_secs(3600), now);
    // Opened at minutes 60 and 90 only.
    assert_eq!(
        stats.routing_keys,
        [
            json!({"routing_key": "payments", "incidents": 2, "open": 2, "alerts": 4,
                "events": 20, "events_per_incident": 10.0})
        ]
    );
    assert_eq!(
        stats.integrations,
        [
            json!({"integration": "grafana", "incidents": 2, "alerts": 2, "events": 12, "events_per_incident": 6.0}),
            json!({"integration": "pagerduty", "incidents": 2, "alerts": 2, "events": 8, "events_per_incident": 4.0}),
        ]
    );
}

#[test]
fn resolved_incidents_are_evicted_past_the_bound() {
    let view = View::new();
    for i in 0..(MAX_RESOLVED as u64 + 5) {
        let id = format!("inc_{i}");
        view.apply(&msg(&id, 1, "resolved", "payments", i / 10, true))
            .unwrap();
    }
    assert_eq!(view.counts(), (0, MAX_RESOLVED));
    assert!(view.get("inc_0").is_none());
    // A day later, one more resolution drops everything older than the keep time.
    let late = 24 * 60 + MAX_RESOLVED as u64 / 10 + 10;
    view.apply(&msg("inc_late", 1, "resolved", "payments", late, true))
        .unwrap();
    assert!(view.counts().1 < 20, "{:?}", view.counts());
}
