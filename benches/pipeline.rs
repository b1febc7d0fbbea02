//! Throughput of the hot path's stages, HTTP left out:
//!
//! - `parse/<kind>/<case>`: one request body of every registered format through the server's
//!   entry, `integrations::parse(kind, &IngestRequest, &mut body)`, including the copy of the
//!   body into the request buffer (the parser works in place) and dropping the result. The
//!   bodies are the golden fixtures of `tests/fixtures/integrations/<kind>/`, read at start:
//!   per kind, of the cases accepted (2xx) with a trigger and nothing rejected, the largest.
//!   Throughput is reported both in bytes and in events (the events the parse yields).
//! - `encode/opened/<n>_alerts`: rendering an incident of 1 and of 50 alerts into the message
//!   the Kafka sink sends (`Incident::to_message`: key, CloudEvents id, JSON body). Bytes are
//!   the body's; elements are the alerts in it. The six CloudEvents headers are built by
//!   librdkafka in `KafkaSink::send` and are not part of this figure.
//! - `correlate_repeat_trigger/<open>`: a repeat trigger of one of 1, 10^4 or 10^6 open alerts
//!   (the dedup path of every storm), with the RSS per open alert printed for 10^6; beside it
//!   `correlate_repeat_trigger/hashbrown_baseline/<open>`, the same events looked up and
//!   updated in a bare hashbrown map (the floor a refresh is measured against).
//! - `correlate_repeat_trigger/prometheus_same_details` and `.../prometheus_changed_details`: a
//!   re-send of one of the RSS shape's alerts (`common/rss_alerts.json`, open), with the details
//!   it has and with its last annotation's value changed: what keeping changed details costs.
//! - `correlate_new_alert/into_existing_group`: every event a new dedup key into one existing
//!   group (the other storm), the group growing to 10^4 alerts before a fresh shard is taken.
//! - `correlate_new_alert/prometheus_labels`: the same with the Alertmanager API alerts of the
//!   load test's RSS shape (`common/rss_alerts.json`: 8-16 labels, 2-4 annotations), each under
//!   a new dedup key, into the open groups of their 64 sources: what a new alert's text costs
//!   (labels encoded, names interned, fields found among the labels).
//!
//! - `intake/<admission>/<n>_events`: one request of 1 or 50 PagerDuty events (one routing
//!   key) handed to memory mode's shard queues (4 shards of 8192) through `Intake::submit_events`,
//!   then taken off the queues as a shard does (`recv`), with the shard side's bookkeeping: the
//!   fair admission table told what was taken. No correlator. `plain`: no admission (the hand-over
//!   as it was before limits), `fair`: fair admission, `fair_limits`: fair admission and a
//!   per-key and a global rate limit that never refuse (governor's GCRA on every request).
//!   Building the request's events is not timed; dropping them is.
//! - `snapshot/<open>`: Kafka mode's snapshot of a shard holding 10^5 open alerts (10^3
//!   under `cargo test --benches`), serialized (`write`) and restored (`restore`, indexes
//!   rebuilt); throughput in bytes of the snapshot, whose size is printed.
//!
//! The correlator's clock stays inside `group_wait`, so no message is rendered there.
//!
//! With the `mimalloc` feature (the default) the bench allocates as the `sluice` binary does.
//!
//! Run: `cargo bench --bench pipeline` (about a minute once built; add `-- parse` for one
//! group). Under `cargo test --benches` each bench runs once and the 10^6-alert setup is
//! skipped.

mod common;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use sluice::config::defaults::MAX_ALERTS_PER_MESSAGE;
use sluice::correlate::rules::Rule;
use sluice::correlate::shard::Caps;
use sluice::correlate::{build_shard, Part, Shard};
use sluice::event::Event;
use sluice::publish::encode::MessageKind;
use sluice::time::UnixMillis;

fn parse(c: &mut Criterion) {
    let cases = common::representative_cases();
    eprintln!("parse: one case per kind (largest accepted trigger case):");
    for case in &cases {
        eprintln!(
            "  {:<45} {:>5} bytes {:>2} event(s)",
            case.label(),
            case.body.len(),
            case.events
        );
    }
    let mut g = c.benchmark_group("parse");
    let mut buf = Vec::new();
    for case in &cases {
        g.throughput(Throughput::ElementsAndBytes {
            elements: case.events as u64,
            bytes: case.body.len() as u64,
        });
        g.bench_function(BenchmarkId::new(case.kind.as_str(), &case.name), |b| {
            b.iter(|| case.parse(&mut buf))
        });
    }
    // A batch of the load tests' shape: 64 alerts of 8-16 labels in no order, 2-4 annotations.
    let api = common::alertmanager_api(&cases);
    let body = common::rss_body("0");
    let events = common::rss_events(&cases, "0").len() as u64;
    g.throughput(Throughput::ElementsAndBytes {
        elements: events,
        bytes: body.len() as u64,
    });
    g.bench_function(BenchmarkId::new(api.kind.as_str(), "rss_alerts_64"), |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&body);
            sluice::ingest::integrations::parse(api.kind, &api.request(), &mut buf)
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let cases = common::representative_cases();
    let pagerduty = common::pagerduty_event(&cases);
    let prometheus = common::prometheus_event(&cases);
    let rule = common::rule();
    let mut g = c.benchmark_group("encode");
    for (template, alerts, name) in [
        (&pagerduty, 1usize, "1_alerts"),
        (&pagerduty, 50, "50_alerts"),
        (&prometheus, 50, "50_prometheus_alerts"),
    ] {
        let inc = common::incident(template, &rule, alerts);
        let msg = inc.to_message(
            MessageKind::Opened,
            &rule,
            MAX_ALERTS_PER_MESSAGE,
            &[],
            UnixMillis(0),
        );
        eprintln!(
            "encode: {name}: body {} bytes, key {} bytes, id {} bytes",
            msg.body.len(),
            msg.key.len(),
            msg.id.len()
        );
        g.throughput(Throughput::ElementsAndBytes {
            elements: alerts as u64,
            bytes: msg.body.len() as u64,
        });
        g.bench_function(BenchmarkId::new("opened", name), |b| {
            b.iter(|| {
                inc.to_message(
                    MessageKind::Opened,
                    &rule,
                    MAX_ALERTS_PER_MESSAGE,
                    &[],
                    UnixMillis(0),
                )
            })
        });
        // What the incidents view does with the message (memory mode: on the publisher task).
        g.bench_function(BenchmarkId::new("view_apply", name), |b| {
            b.iter_batched(
                sluice::view::View::new,
                |view| view.apply(&msg.body).expect("an incident message"),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Resident memory of this process, from /proc (0 where there is none).
fn intake(c: &mut Criterion) {
    use sluice::config::{LimitsConfig, Rate};
    use sluice::correlate::Dequeued;
    use sluice::pipeline::limits::RateLimits;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let template = common::pagerduty_event(&common::representative_cases());
    let mut g = c.benchmark_group("intake");
    let never = Rate {
        per_second: u32::MAX,
        burst: u32::MAX,
    };
    let limits = LimitsConfig {
        per_routing_key: Some(never),
        global: Some(never),
        ..LimitsConfig::default()
    };
    for n in [1usize, 50] {
        let request: Vec<Event> = (0..n)
            .map(|i| {
                let mut e = template.clone();
                e.dedup_key = format!("k{i}");
                e
            })
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        for admission in ["plain", "fair", "fair_limits"] {
            let (intake, mut queues, fair) =
                sluice::pipeline::local::bare_channels(4, 8192, admission != "plain");
            let intake = match admission {
                "fair_limits" => intake.with_rate_limits(
                    RateLimits::with_clock(&limits, Default::default()).map(Arc::new),
                ),
                _ => intake,
            };
            let mut taken = Vec::with_capacity(n);
            let id = BenchmarkId::new(admission, format!("{n}_events"));
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let events = request.clone();
                        let started = Instant::now();
                        // The local intake never waits: one poll completes it.
                        let submit = std::pin::pin!(intake.submit_events(events));
                        let polled = submit.poll(&mut Context::from_waker(Waker::noop()));
                        assert!(matches!(polled, Poll::Ready(Ok(()))), "taken");
                        for (shard, queue) in queues.iter_mut().enumerate() {
                            while let Some(batch) = queue.try_recv() {
                                if let Some(fair) = &fair {
                                    fair.taken(shard, &batch);
                                }
                                taken.push(batch);
                            }
                            taken.clear();
                        }
                        spent += started.elapsed();
                    }
                    spent
                })
            });
        }
    }
    g.finish();
}

fn shard() -> Shard {
    let rules: Arc<[Rule]> = vec![common::rule()].into();
    Shard::new(rules, Arc::from(Vec::new()), Caps::unbounded(100))
}

/// A repeat trigger of one of `open` open alerts: the dedup path every storm takes.
fn correlate_repeat(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate_repeat_trigger");
    g.throughput(Throughput::Elements(1));
    let sizes: &[u64] = if common::measuring() {
        &[1, 10_000, 1_000_000]
    } else {
        &[1, 10_000]
    };
    for &open in sizes {
        let mut shard = shard();
        let mut out = Vec::new();
        let before = common::rss_bytes();
        for k in 0..open {
            shard.apply(common::trigger(k), UnixMillis(1_000), &mut out);
        }
        if open >= 100_000 {
            let per_alert = common::rss_bytes().saturating_sub(before) / open;
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
                    common::trigger(next)
                },
                |e| shard.apply(e, UnixMillis(2_000), &mut out),
                BatchSize::SmallInput,
            )
        });
        // The floor the refresh is measured against: the same events, looked up by routing
        // key and dedup key in a bare hashbrown map and updated in place (a count and a time).
        let mut map: hashbrown::HashMap<(String, String), (u64, UnixMillis), Xxh3Hash> =
            hashbrown::HashMap::with_capacity_and_hasher(open as usize, Default::default());
        for k in 0..open {
            let e = common::trigger(k);
            map.insert((e.routing_key, e.dedup_key), (1, UnixMillis(1_000)));
        }
        let mut next = 0u64;
        let id = BenchmarkId::new("hashbrown_baseline", open);
        g.bench_with_input(id, &open, |b, &open| {
            b.iter_batched(
                || {
                    next = (next + 7919) % open;
                    common::trigger(next)
                },
                |e| {
                    let slot = map
                        .get_mut(&Key(&e.routing_key, &e.dedup_key))
                        .expect("every key is open");
                    slot.0 += 1;
                    slot.1 = e.received_at;
                    drop(e);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// A Prometheus alert re-sent (the load test's RSS shape, whose annotations an alert keeps as
/// pairs): with the same details as it has, and with its last annotation's value changed, as a
/// description holding `$value` changes with every evaluation. The difference is what keeping
/// changed details costs a refresh: comparing them with the kept pairs finds the change, and
/// the new ones are kept as pairs in one allocation.
fn correlate_resend_details(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate_repeat_trigger");
    g.throughput(Throughput::Elements(1));
    let alerts = common::rss_events(&common::representative_cases(), "0");
    let mut shard = shard();
    let mut out = Vec::new();
    for e in &alerts {
        shard.apply(e.clone(), UnixMillis(1_000), &mut out);
    }
    out.clear();
    let mut next = 0usize;
    g.bench_function("prometheus_same_details", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % alerts.len();
                alerts[next].clone()
            },
            |e| shard.apply(e, UnixMillis(2_000), &mut out),
            BatchSize::SmallInput,
        )
    });
    let mut n = 0u64;
    g.bench_function("prometheus_changed_details", |b| {
        b.iter_batched(
            || {
                n += 1;
                let mut e = alerts[n as usize % alerts.len()].clone();
                let details = e.custom_details.as_ref().expect("annotations").0.get();
                // The last annotation's value (never the summary, which comes first).
                let kept = details.strip_suffix("\"}").expect("ends with a string");
                let changed = format!("{kept} {n}\"}}");
                e.custom_details = Some(sluice::event::Details(
                    serde_json::value::RawValue::from_string(changed).expect("still JSON"),
                ));
                e
            },
            |e| shard.apply(e, UnixMillis(2_000), &mut out),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The shard's hash function (xxh3), so the baseline differs from it only in what it does.
type Xxh3Hash = xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// `(routing_key, dedup_key)` borrowed, hashed as the owned pair is.
#[derive(Hash)]
struct Key<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(String, String)> for Key<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// New alerts a fresh shard's group takes before the next fresh shard.
const STORM: u64 = 10_000;

/// A new dedup key into an existing group: the group is opened first, then takes up to
/// [`STORM`] new alerts; the events are built and the shard set up and dropped untimed.
fn correlate_new_alert(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate_new_alert");
    g.throughput(Throughput::Elements(1));
    g.bench_function("into_existing_group", |b| {
        b.iter_custom(|iters| {
            new_alerts(iters, &[common::storm_trigger(0)], |i| {
                common::storm_trigger(i + 1)
            })
        })
    });
    let labelled = common::rss_events(&common::representative_cases(), "0");
    g.bench_function("prometheus_labels", |b| {
        b.iter_custom(|iters| {
            new_alerts(iters, &labelled, |i| {
                let mut e = labelled[i as usize % labelled.len()].clone();
                e.dedup_key = format!("new-{i}");
                e
            })
        })
    });
    // The same under the load tests' config, the defaults' inhibition included: what a
    // storm's new alert costs the shard in `load-tests/compare.sh`.
    let config = common::load_test_config();
    g.bench_function("prometheus_labels/load_test_config", |b| {
        b.iter_custom(|iters| {
            new_alerts_in(
                || build_shard(&config.correlate, Part::ONLY),
                iters,
                &labelled,
                |i| {
                    let mut e = labelled[i as usize % labelled.len()].clone();
                    e.dedup_key = format!("new-{i}");
                    e
                },
            )
        })
    });
    g.finish();
}

/// The time `iters` new alerts take: fresh shards that first take `open` (untimed), then up to
/// [`STORM`] events of `new` each (built untimed).
fn new_alerts(iters: u64, open: &[Event], new: impl Fn(u64) -> Event) -> Duration {
    new_alerts_in(shard, iters, open, new)
}

/// [`new_alerts`] in shards made by `fresh`.
fn new_alerts_in(
    fresh: impl Fn() -> Shard,
    iters: u64,
    open: &[Event],
    new: impl Fn(u64) -> Event,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut out = Vec::new();
    while done < iters {
        let n = (iters - done).min(STORM);
        let mut shard = fresh();
        for e in open {
            shard.apply(e.clone(), UnixMillis(1_000), &mut out);
        }
        let mut events: Vec<Event> = (done..done + n).map(&new).collect();
        let start = Instant::now();
        for e in events.drain(..) {
            shard.apply(e, UnixMillis(2_000), &mut out);
        }
        total += start.elapsed();
        assert!(out.is_empty(), "no message inside group_wait");
        black_box(&shard);
        done += n;
    }
    total
}

/// A snapshot of a shard of `open` alerts: written, and restored into a new shard.
fn snapshot(c: &mut Criterion) {
    let open: u64 = if common::measuring() { 100_000 } else { 1_000 };
    let mut shard = shard();
    let mut out = Vec::new();
    for k in 0..open {
        shard.apply(common::trigger(k), UnixMillis(1_000), &mut out);
    }
    let mut bytes = Vec::new();
    shard.snapshot(UnixMillis(1_000), &mut bytes);
    eprintln!(
        "snapshot: {} bytes for {open} open alerts in {} incidents ({} bytes per alert)",
        bytes.len(),
        shard.open_incidents(),
        bytes.len() as u64 / open
    );
    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(10);
    g.bench_with_input(BenchmarkId::new("write", open), &open, |b, _| {
        let mut buf = Vec::with_capacity(bytes.len());
        b.iter(|| {
            buf.clear();
            shard.snapshot(UnixMillis(1_000), &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_with_input(BenchmarkId::new("restore", open), &open, |b, _| {
        b.iter(|| {
            let rules: Arc<[Rule]> = vec![common::rule()].into();
            let restored =
                Shard::restore(rules, Arc::from(Vec::new()), Caps::unbounded(100), &bytes)
                    .expect("the snapshot restores");
            black_box(restored.0.open_alerts())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(50);
    targets = parse, intake, encode, correlate_repeat, correlate_resend_details,
        correlate_new_alert, snapshot
}
criterion_main!(benches);
