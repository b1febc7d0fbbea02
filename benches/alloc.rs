//! Heap allocations per event of the hot path's stages, counted by a `#[global_allocator]`
//! wrapper around `std::alloc::System` (atomic counters; no dhat).
//!
//! Stages, each measured over N iterations after a warm-up:
//! - `parse <kind>/<case>`: the golden fixture pipeline.rs benches for that kind, through
//!   `integrations::parse`, result dropped; divided by the events the parse yields.
//! - `correlate repeat trigger`: a repeat trigger of one of 10^4 open alerts.
//! - `correlate new alert`: a new dedup key into an existing group (growing by N alerts, so
//!   the amortized growth of its alert list and of the alert table is included).
//! - `encode opened, <n> alert(s)`: `Incident::to_message`, per message (PagerDuty alerts, and
//!   50 of the RSS shape below).
//! - `hold`: live heap bytes per open alert (allocated and not freed) once `HOLD` distinct
//!   alerts of the load test's RSS shape (`benches/common/rss_alerts.json`: 64 alerts of
//!   `load-tests/gen.py`'s `rss_api256`, 8-16 labels and 2-4 annotations each, their
//!   `alert_id` made distinct per batch) are parsed by `alertmanager_api` and held by one
//!   shard under `load-tests/sluice.toml`'s rules: what an alert keeps, without the
//!   allocator's own overhead (the RSS phase of `load-tests/compare.sh` has that).
//!
//! An allocation is one call to `alloc`, `alloc_zeroed` or `realloc`; its bytes are the size
//! asked for (for `realloc`, the new size), as dhat counts them. Frees are not counted. Events
//! fed to the correlator are built before counting starts.
//!
//! Run: `cargo bench --bench alloc` (a second or two). Under `cargo test --benches` it runs
//! with few iterations, as a smoke test.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use sluice::config::defaults::MAX_ALERTS_PER_MESSAGE;
use sluice::correlate::rules::Rule;
use sluice::correlate::shard::Caps;
use sluice::correlate::{Part, Shard};
use sluice::event::Event;
use sluice::publish::encode::MessageKind;
use sluice::time::UnixMillis;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; the counters have no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        LIVE.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract for `layout` is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        LIVE.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        LIVE.fetch_add(new_size as u64, Relaxed);
        LIVE.fetch_sub(layout.size() as u64, Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller checks `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counters() -> (u64, u64) {
    (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed))
}

/// Allocations and bytes per event over `iterations` calls of `step`, each standing for
/// `events` events.
fn per_event(iterations: u64, events: u64, mut step: impl FnMut()) -> (f64, f64) {
    let (a0, b0) = counters();
    for _ in 0..iterations {
        step();
    }
    let (a1, b1) = counters();
    let n = (iterations * events) as f64;
    ((a1 - a0) as f64 / n, (b1 - b0) as f64 / n)
}

fn shard() -> Shard {
    let rules: Arc<[Rule]> = vec![common::rule()].into();
    Shard::new(rules, Arc::from(Vec::new()), Caps::unbounded(100))
}

/// Applies every event of `events` (built beforehand), counting only the correlator's work.
fn correlate(shard: &mut Shard, events: Vec<Event>, warm_up: usize) -> (f64, f64) {
    let mut out = Vec::new();
    let total = events.len() - warm_up;
    let mut events = events.into_iter();
    for e in events.by_ref().take(warm_up) {
        shard.apply(e, UnixMillis(2_000), &mut out);
    }
    let mut rest = events;
    let r = per_event(total as u64, 1, || {
        let e = rest.next().expect("one event per iteration");
        shard.apply(e, UnixMillis(2_000), &mut out);
    });
    assert!(out.is_empty(), "no message inside group_wait");
    r
}

fn main() {
    let measuring = common::measuring();
    // Parse and encode iterations; the correlator gets 50 times as many (cheaper steps).
    let (n, warm_up) = if measuring { (2_000, 200) } else { (20, 5) };
    let mut rows: Vec<(String, f64, f64)> = Vec::new();

    let cases = common::representative_cases();
    let mut buf = Vec::new();
    for case in &cases {
        for _ in 0..warm_up {
            black_box(case.parse(&mut buf));
        }
        let (a, b) = per_event(n, case.events as u64, || {
            black_box(case.parse(&mut buf));
        });
        rows.push((format!("parse {}", case.label()), a, b));
    }

    let storm = 50 * n;
    let mut s = shard();
    let mut out = Vec::new();
    for k in 0..10_000 {
        s.apply(common::trigger(k), UnixMillis(1_000), &mut out);
    }
    let events: Vec<Event> = (0..storm + warm_up)
        .map(|i| common::trigger((i * 7919) % 10_000))
        .collect();
    let (a, b) = correlate(&mut s, events, warm_up as usize);
    rows.push(("correlate repeat trigger (10^4 open)".into(), a, b));
    drop(s);

    let mut s = shard();
    s.apply(common::storm_trigger(0), UnixMillis(1_000), &mut out);
    let events: Vec<Event> = (1..=storm + warm_up).map(common::storm_trigger).collect();
    let (a, b) = correlate(&mut s, events, warm_up as usize);
    rows.push((
        format!(
            "correlate new alert (group of 1..{} alerts)",
            storm + warm_up + 1
        ),
        a,
        b,
    ));
    drop(s);

    let pagerduty = common::pagerduty_event(&cases);
    let prometheus = common::prometheus_event(&cases);
    let rule = common::rule();
    for (template, alerts, shape) in [
        (&pagerduty, 1, "alert"),
        (&pagerduty, 50, "alerts"),
        (&prometheus, 50, "Prometheus alerts"),
    ] {
        let inc = common::incident(template, &rule, alerts);
        for _ in 0..warm_up {
            black_box(inc.to_message(
                MessageKind::Opened,
                &rule,
                MAX_ALERTS_PER_MESSAGE,
                &[],
                UnixMillis(0),
            ));
        }
        let (a, b) = per_event(n, 1, || {
            black_box(inc.to_message(
                MessageKind::Opened,
                &rule,
                MAX_ALERTS_PER_MESSAGE,
                &[],
                UnixMillis(0),
            ));
        });
        rows.push((
            format!("encode opened, {alerts} {shape} (per message)"),
            a,
            b,
        ));
    }

    let hold = if measuring { 100_032 } else { 1_024 };
    let held = live_per_alert(&cases, hold);

    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(5);
    println!(
        "allocations per event ({n} iterations after {warm_up} warm-up; correlator: {storm}{})",
        if measuring { "" } else { "; test mode" }
    );
    println!(
        "{:<width$} | allocations per event | bytes allocated per event",
        "stage"
    );
    println!(
        "{:-<width$}-|-----------------------|--------------------------",
        ""
    );
    for (stage, a, b) in rows {
        println!("{stage:<width$} | {a:>21.2} | {b:>25.1}");
    }
    println!("\nhold: {held:.0} live heap bytes per open alert ({hold} alerts of the RSS shape)");
}

/// Live heap bytes per open alert once `n` alerts of the load test's RSS shape are held (see
/// the module's `hold`).
fn live_per_alert(cases: &[common::Case], n: usize) -> f64 {
    let api = common::alertmanager_api(cases);
    let config = common::load_test_config();
    let template = include_str!("common/rss_alerts.json");
    let per_batch = serde_json::from_str::<Vec<serde_json::Value>>(template)
        .expect("JSON")
        .len();
    let mut shard = sluice::correlate::build_shard(&config.correlate, Part::ONLY);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let before = LIVE.load(Relaxed);
    for batch in 0..n.div_ceil(per_batch) {
        let body = template.replace("@@N@@", &batch.to_string());
        buf.clear();
        buf.extend_from_slice(body.as_bytes());
        let parsed = sluice::ingest::integrations::parse(api.kind, &api.request(), &mut buf)
            .expect("the batch parses");
        for event in parsed.events {
            shard.apply(event, UnixMillis(1_000), &mut out);
        }
    }
    buf = Vec::new();
    drop(buf);
    assert!(out.is_empty(), "no message inside group_wait");
    let held = shard.open_alerts();
    assert_eq!(held, n.div_ceil(per_batch) * per_batch, "every alert held");
    let live = LIVE.load(Relaxed) - before;
    black_box(&shard);
    live as f64 / held as f64
}
