//! Where the RSS of held alerts goes: the alerts of the load test's RSS shape (as `alloc.rs`'s
//! `hold`: `benches/common/rss_alerts.json`, 64 alerts per batch made distinct per batch,
//! parsed by `alertmanager_api` and held by one shard under `load-tests/sluice.toml`'s rules),
//! under the binary's allocator (mimalloc), with every allocation counted. Prints, per open
//! alert:
//! - live heap bytes (allocated and not freed, as `alloc.rs`'s `hold`), and by allocation size;
//! - the process' RSS growth, read from `/proc/self/status` after mimalloc was asked to return
//!   what it can (`mi_collect(true)`): live bytes plus the allocator's overhead (size-class
//!   rounding, partly used pages), without the server's HTTP, publishing and threads;
//! - the same with parsing on one thread and the shard on another, up to `IN_FLIGHT` batches
//!   between them (how a server hands requests to a shard).
//!
//! `load-tests/rss-probe.sh` and `compare.sh`'s RSS phase measure the whole server; this bench
//! says how much of their figure is the alerts themselves and how much the allocator's.
//!
//! Each way runs in a process of its own (this bench started again with [`MODE`] set), so that
//! neither starts with pages the other freed.
//!
//! Run: `cargo bench --bench rss` (a few seconds; Linux). Under `cargo test --benches` it holds
//! few alerts, as a smoke test.

// Shared with pipeline.rs and alloc.rs; this bench uses a few of its helpers.
#[allow(dead_code)]
mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::mpsc;

use sluice::correlate::{Part, Shard};
use sluice::event::Event;
use sluice::time::UnixMillis;

/// The environment variable that runs one way in this process: `one` or `two` threads.
const MODE: &str = "RSS_BENCH_MODE";

/// Batches a parsing thread may be ahead of the shard's.
const IN_FLIGHT: usize = 16;

/// Allocation sizes are counted in these buckets: up to 512 bytes by 32, then by power of two.
const BUCKETS: usize = 64;

static LIVE: AtomicI64 = AtomicI64::new(0);
static LIVE_BY_SIZE: [AtomicI64; BUCKETS] = [const { AtomicI64::new(0) }; BUCKETS];

fn bucket(size: usize) -> usize {
    if size < 512 {
        size / 32
    } else {
        (16 + (usize::BITS - size.leading_zeros()) as usize).min(BUCKETS - 1)
    }
}

/// The sizes bucket `b` counts, for the report.
fn bucket_range(b: usize) -> String {
    if b < 16 {
        format!("{}-{} B", b * 32, b * 32 + 31)
    } else {
        let bits = b - 16;
        format!(
            "{}-{} KiB",
            (1usize << (bits - 1)) / 1024,
            (1usize << bits) / 1024
        )
    }
}

fn count(size: usize, sign: i64) {
    LIVE.fetch_add(sign * size as i64, Relaxed);
    LIVE_BY_SIZE[bucket(size)].fetch_add(sign * size as i64, Relaxed);
}

struct Counting;

static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// SAFETY: every call is forwarded unchanged to mimalloc; the counters have no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: the caller's contract for `layout` is mimalloc's.
        unsafe { MIMALLOC.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: as for `alloc`.
        unsafe { MIMALLOC.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        // SAFETY: `ptr` was allocated by mimalloc with `layout`.
        unsafe { MIMALLOC.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        // SAFETY: `ptr` was allocated by mimalloc with `layout`; the caller checks `new_size`.
        unsafe { MIMALLOC.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Asks mimalloc to return every page it can, on this thread, then reads the RSS.
fn collected_rss() -> i64 {
    // SAFETY: `mi_collect` takes no pointer and has no precondition.
    unsafe { libmimalloc_sys::mi_collect(true) };
    common::rss_bytes() as i64
}

/// Parses `batches` batches of the RSS shape, each handed to `hand`.
fn parse_batches(cases: &[common::Case], batches: usize, mut hand: impl FnMut(Vec<Event>)) {
    for batch in 0..batches {
        hand(common::rss_events(cases, &batch.to_string()));
    }
}

fn apply(
    shard: &mut Shard,
    events: Vec<Event>,
    out: &mut Vec<sluice::publish::encode::OutboundMessage>,
) {
    for event in events {
        shard.apply(event, UnixMillis(1_000), out);
    }
}

struct Held {
    alerts: i64,
    live: i64,
    rss: i64,
    by_size: Vec<(usize, i64)>,
}

/// Holds `batches` batches' alerts in a new shard, parsing on this thread and applying on
/// this one (`threaded` false) or on another one; what that cost, once collected.
fn hold(cases: &[common::Case], batches: usize, threaded: bool) -> (Shard, Held) {
    let config = common::load_test_config();
    let mut shard = sluice::correlate::build_shard(&config.correlate, Part::ONLY);
    let by_size0: Vec<i64> = LIVE_BY_SIZE.iter().map(|b| b.load(Relaxed)).collect();
    let (rss0, live0) = (collected_rss(), LIVE.load(Relaxed));
    if threaded {
        let (tx, rx) = mpsc::sync_channel::<Vec<Event>>(IN_FLIGHT);
        let applier = std::thread::spawn(move || {
            let mut out = Vec::new();
            while let Ok(events) = rx.recv() {
                apply(&mut shard, events, &mut out);
            }
            assert!(out.is_empty(), "no message inside group_wait");
            // SAFETY: as in `collected_rss`; this thread's heap holds the shard's allocations.
            unsafe { libmimalloc_sys::mi_collect(true) };
            shard
        });
        parse_batches(cases, batches, |events| {
            tx.send(events).expect("the shard's thread takes batches")
        });
        drop(tx);
        shard = applier.join().expect("the shard's thread ends");
    } else {
        let mut out = Vec::new();
        parse_batches(cases, batches, |events| apply(&mut shard, events, &mut out));
        assert!(out.is_empty(), "no message inside group_wait");
    }
    let (rss1, live1) = (collected_rss(), LIVE.load(Relaxed));
    let by_size = LIVE_BY_SIZE
        .iter()
        .zip(by_size0)
        .map(|(b, b0)| b.load(Relaxed) - b0)
        .enumerate()
        .collect();
    let alerts = shard.open_alerts() as i64;
    let held = Held {
        alerts,
        live: live1 - live0,
        rss: rss1 - rss0,
        by_size,
    };
    (shard, held)
}

fn main() {
    let Ok(mode) = std::env::var(MODE) else {
        // Each way in a fresh process, with this process' arguments (criterion's `--bench`).
        for mode in ["one", "two"] {
            let status = std::process::Command::new(std::env::current_exe().expect("own path"))
                .args(std::env::args_os().skip(1))
                .env(MODE, mode)
                .status()
                .expect("the bench runs itself");
            assert!(status.success(), "the {mode}-thread run failed: {status}");
        }
        return;
    };
    let threaded = mode == "two";
    let cases = common::representative_cases();
    let batches = if common::measuring() { 1_563 } else { 16 };
    let (shard, held) = hold(&cases, batches, threaded);
    assert_eq!(held.alerts as usize, batches * 64, "every alert held");
    assert!(held.live > 0, "holding alerts keeps heap");
    let per = |bytes: i64| bytes as f64 / held.alerts as f64;
    println!(
        "{}: {} alerts held; per open alert: {:.0} live heap bytes, {:.0} bytes of RSS",
        if threaded {
            "parse and shard on two threads"
        } else {
            "one thread"
        },
        held.alerts,
        per(held.live),
        per(held.rss),
    );
    if !threaded {
        println!("  live heap bytes per open alert by allocation size:");
        for (b, bytes) in held.by_size.iter().filter(|(_, bytes)| per(*bytes) >= 5.0) {
            println!("  {:>16}: {:>4.0}", bucket_range(*b), per(*bytes));
        }
    }
    drop(shard);
}
