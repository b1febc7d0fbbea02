//! Throughput of the hot path's stages: parsing a PagerDuty event, and a trigger through the
//! correlator with 1, 10^4 and 10^6 alerts already open. `cargo bench --bench pipeline`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use sluice::config::{RuleConfig, WindowKind};
use sluice::correlate::rules::Rule;
use sluice::correlate::shard::Limits;
use sluice::correlate::Shard;
use sluice::event::{Action, Event, Field, Integration, Severity};
use sluice::ingest::integrations::pagerduty::parse_v2;
use sluice::time::UnixMillis;

const PD_TRIGGER: &str = r#"{
  "routing_key": "0123456789abcdef0123456789abcdef",
  "event_action": "trigger",
  "dedup_key": "db-eu1/replication-lag",
  "payload": {
    "summary": "Replication lag 340s on db-eu1-replica-2",
    "source": "db-eu1-replica-2.internal",
    "severity": "error",
    "timestamp": "2024-05-02T09:14:07.120+0000",
    "component": "postgres",
    "group": "db-eu1",
    "class": "replication",
    "custom_details": {"lag_seconds": 340, "primary": "db-eu1-primary"}
  },
  "links": [{"href": "https://grafana.example.net/d/pg", "text": "PG dashboard"}],
  "client": "check-runner",
  "client_url": "https://checks.example.net"
}"#;

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(PD_TRIGGER.len() as u64));
    let mut buf = Vec::with_capacity(PD_TRIGGER.len());
    g.bench_function("pagerduty_v2_trigger", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(PD_TRIGGER.as_bytes());
            parse_v2(&mut buf, UnixMillis(1)).unwrap()
        })
    });
    g.finish();
}

fn rule() -> Rule {
    Rule::new(RuleConfig {
        name: "bench".into(),
        group_by: vec![Field::Source],
        window: WindowKind::Rolling,
        window_duration: Duration::from_secs(3600),
        max_duration: Duration::from_secs(86_400),
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(60),
        ..RuleConfig::default()
    })
}

fn trigger(key: u64) -> Event {
    let mut e = Event::new(
        Integration::PagerDuty,
        Action::Trigger,
        "svc".into(),
        format!("alert-{key}"),
        UnixMillis(1),
    );
    e.source = format!("host-{}", key % 1000);
    e.summary = format!("disk full on host-{}", key % 1000);
    e.severity = Severity::Warning;
    e
}

/// Resident memory of this process, from /proc (0 where there is none).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// A repeat trigger of one of `open` open alerts: the dedup path every storm takes.
fn correlate(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate_repeat_trigger");
    g.throughput(Throughput::Elements(1));
    for open in [1u64, 10_000, 1_000_000] {
        let rules: Arc<[Rule]> = vec![rule()].into();
        let mut shard = Shard::new(rules, Arc::from(Vec::new()), Limits::unbounded(100));
        let mut out = Vec::new();
        let before = rss_bytes();
        for k in 0..open {
            shard.apply(trigger(k), UnixMillis(1_000), &mut out);
        }
        if open >= 100_000 {
            let per_alert = rss_bytes().saturating_sub(before) / open;
            eprintln!(
                "memory: {per_alert} bytes of RSS per open alert ({open} alerts in {} incidents)",
                shard.open_incidents()
            );
        }
        out.clear();
        let mut next = 0u64;
        g.bench_with_input(BenchmarkId::from_parameter(open), &open, |b, &open| {
            b.iter_batched(
                || {
                    next = (next + 7919) % open;
                    trigger(next)
                },
                |e| shard.apply(e, UnixMillis(2_000), &mut out),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, parse, correlate);
criterion_main!(benches);
