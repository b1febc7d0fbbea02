//! A shard split at a random point among 1-3 new shards goes on exactly as the original: each
//! incident publishes the same messages, byte for byte, in the same order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::super::{Caps, Shard};
use crate::config::{Config, RuleConfig};
use crate::correlate::rules::{self, Rule};
use crate::event::{Action, Event, Severity};
use crate::integration::Integration;
use crate::pipeline::partition;
use crate::time::UnixMillis;

const T0: u64 = 1_700_000_000_000;
const KEYS: [&str; 5] = ["team-a", "team-b", "team-c", "team-d", "team-e"];

#[derive(Clone, Debug)]
enum Op {
    Event(usize, usize, Action, Severity),
    Change(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let sev = prop_oneof![
        Just(Severity::Info),
        Just(Severity::Warning),
        Just(Severity::Error),
        Just(Severity::Critical)
    ];
    let action = prop_oneof![
        4 => Just(Action::Trigger),
        1 => Just(Action::Acknowledge),
        2 => Just(Action::Resolve)
    ];
    prop_oneof![
        6 => (0..KEYS.len(), 0..6usize, action, sev).prop_map(|(k, a, act, s)| Op::Event(k, a, act, s)),
        1 => (0..KEYS.len()).prop_map(Op::Change),
        3 => prop::sample::select(vec![0u64, 1_000, 9_999, 30_000, 60_001, 200_000, 700_000])
            .prop_map(Op::Advance),
    ]
}

/// Alert `a` of a routing key: a host and a class shared by some, so auto grouping links them.
fn event(k: usize, a: usize, action: Action, severity: Severity, now: u64) -> Event {
    let mut e = Event::new(
        Integration::AlertmanagerApi,
        action,
        KEYS[k].into(),
        format!("alert-{a}"),
        UnixMillis(now),
    );
    e.severity = severity;
    if action == Action::Trigger && a % 2 == 0 {
        // Ends in several seconds: split shards must carry the waiting lists and the heap's.
        e.ends_at = Some(UnixMillis(now + 4_500 + a as u64 * 1_250));
    }
    e.summary = format!("alert {a} of {}", KEYS[k]);
    e.class = Some(["Down", "Latency", "Errors"][a % 3].into());
    e.labels = [
        ("host", format!("h{}", a % 2)),
        ("service", format!("svc-{}", a % 4)),
    ]
    .into_iter()
    .collect();
    e
}

fn change(k: usize, now: u64) -> crate::event::ChangeEvent {
    crate::event::ChangeEvent {
        routing_key: KEYS[k].into(),
        integration: Integration::PagerDuty,
        summary: format!("deploy at {now}"),
        source: Some("svc-1".into()),
        custom_details: None,
        timestamp: None,
        received_at: UnixMillis(now),
        links: Vec::new(),
        images: Vec::new(),
    }
}

/// A shard under `rule` with every default of `correlate` (caps unbounded).
fn shard(rule: &RuleConfig) -> Shard {
    let config = Config::from_toml("", Vec::new()).unwrap().correlate;
    let rules: Arc<[Rule]> = rules::with_fallback(std::slice::from_ref(rule)).into();
    let inhibit: Arc<[rules::Inhibit]> = config.inhibit.iter().map(rules::Inhibit::from).collect();
    Shard::new(rules, inhibit, Caps::unbounded(100))
        .with_history(Duration::from_secs(60), Duration::from_secs(1800))
}

type Messages = BTreeMap<String, Vec<(String, String)>>;

fn record(out: Vec<crate::publish::encode::OutboundMessage>, into: &mut Messages) {
    for m in out {
        let body = String::from_utf8(m.body).unwrap();
        into.entry(m.key).or_default().push((m.id, body));
    }
}

/// The first difference, briefly.
fn first_difference(got: &Messages, want: &Messages) -> Option<String> {
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    keys.into_iter().find_map(|k| {
        let (g, w) = (got.get(k), want.get(k));
        if g == w {
            return None;
        }
        let ids = |m: Option<&Vec<(String, String)>>| -> Vec<String> {
            m.into_iter().flatten().map(|(id, _)| id.clone()).collect()
        };
        let mut fields = Vec::new();
        for ((_, a), (_, b)) in g.into_iter().flatten().zip(w.into_iter().flatten()) {
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(a).unwrap(),
                serde_json::from_str(b).unwrap(),
            );
            for (name, va) in a.as_object().unwrap() {
                if b.get(name) != Some(va) {
                    fields.push(format!("{name}: split {va} original {}", b[name]));
                }
            }
        }
        Some(format!(
            "{k}: split {:?} original {:?}; {fields:?}",
            ids(g),
            ids(w)
        ))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn split_shards_go_on_exactly_as_the_original(
        ops in prop::collection::vec(op(), 1..120),
        cut in 0usize..120,
        n in 1usize..4,
        auto in any::<bool>(),
    ) {
        let rule = if auto {
            RuleConfig { name: "r".into(), group_wait: Duration::from_secs(30), ..RuleConfig::default() }
        } else {
            RuleConfig {
                name: "r".into(),
                group_by: vec![crate::event::Field::Class],
                ..RuleConfig::plain()
            }
        };
        let mut original = shard(&rule);
        let mut split: Option<Vec<Shard>> = None;
        let (mut want, mut got) = (Messages::new(), Messages::new());
        let mut now = T0;
        for (step, op) in ops.iter().enumerate() {
            if step == cut.min(ops.len() - 1) {
                let mut bytes = Vec::new();
                original.snapshot(UnixMillis(now), &mut bytes);
                let template = shard(&rule);
                let (copy, _) = Shard::restore(
                    Arc::clone(&template.rules),
                    Arc::clone(template.inhibition.rules_arc()),
                    template.caps,
                    &bytes,
                ).unwrap();
                let copy = copy.with_history(template.learned_pause, template.change_window);
                let mut into: Vec<Shard> = (0..n).map(|_| shard(&rule)).collect();
                Shard::redistribute(vec![copy], &mut into, partition);
                split = Some(into);
            }
            if let Op::Advance(ms) = op {
                now += ms;
            }
            let at = UnixMillis(now);
            let mut out = Vec::new();
            original.advance(at, &mut out);
            if let Some(shards) = split.as_mut() {
                let mut theirs = Vec::new();
                for s in shards.iter_mut() {
                    s.advance(at, &mut theirs);
                }
                record(theirs, &mut got);
            }
            match *op {
                Op::Event(k, a, action, sev) => {
                    original.apply(event(k, a, action, sev, now), at, &mut out);
                    if let Some(shards) = split.as_mut() {
                        let mut theirs = Vec::new();
                        shards[partition(KEYS[k], n)].apply(event(k, a, action, sev, now), at, &mut theirs);
                        record(theirs, &mut got);
                    }
                }
                Op::Change(k) => {
                    original.apply_change(change(k, now), &mut out);
                    if let Some(shards) = split.as_mut() {
                        let mut theirs = Vec::new();
                        shards[partition(KEYS[k], n)].apply_change(change(k, now), &mut theirs);
                        record(theirs, &mut got);
                    }
                }
                Op::Advance(_) => {}
            }
            // Before the split, both sides are the original.
            if split.is_some() {
                record(out, &mut want);
            }
        }
        let shards = split.expect("split at the cut");
        prop_assert_eq!(
            shards.iter().map(|s| s.open_alerts()).sum::<usize>(),
            original.open_alerts()
        );
        prop_assert_eq!(
            shards.iter().map(|s| s.open_incidents()).sum::<usize>(),
            original.open_incidents()
        );
        // Change messages are keyed by routing key, incidents by id: per key, the same order.
        let diff = first_difference(&got, &want);
        prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
    }
}
