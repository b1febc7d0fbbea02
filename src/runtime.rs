//! The tokio runtime the commands run on, and what its worker threads do when they go idle.
//!
//! A memory allocator with per-thread heaps (mimalloc, the binary's) returns the pages a thread
//! freed only when that thread calls into it again. A worker that goes idle after a storm (the
//! shard's turn that encoded its opening messages, the publisher task that handed them over)
//! keeps them resident until its next allocation, however long that is. `on_idle`, when given,
//! runs on a worker as it parks, at most once per [`IDLE_EVERY`] per thread: the binary passes
//! mimalloc's collection of the calling thread's heap (README "Performance", eighth slice:
//! RSS per open alert 1219-1229 -> 1045-1064 bytes after a storm's opening messages).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The least time between two `on_idle` calls on one worker thread.
pub const IDLE_EVERY: Duration = Duration::from_millis(100);

/// A multi-threaded runtime with every driver enabled; `on_idle` as the module says.
pub fn build(on_idle: Option<fn()>) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(on_idle) = on_idle {
        builder.on_thread_park(move || {
            if due(Instant::now()) {
                on_idle();
            }
        });
    }
    builder.build().expect("tokio runtime starts")
}

thread_local! {
    /// When this thread last ran `on_idle`.
    static LAST_IDLE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Whether this thread's `on_idle` is due at `now`; if so, counts it as run.
fn due(now: Instant) -> bool {
    LAST_IDLE.with(|last| {
        let due = last
            .get()
            .is_none_or(|at| now.saturating_duration_since(at) >= IDLE_EVERY);
        if due {
            last.set(Some(now));
        }
        due
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_work_runs_at_most_once_per_interval_per_thread() {
        let t0 = Instant::now();
        assert!(due(t0), "the first park runs it");
        assert!(!due(t0 + IDLE_EVERY / 2));
        assert!(due(t0 + IDLE_EVERY));
        assert!(!due(t0 + IDLE_EVERY + Duration::from_millis(1)));
        // Another thread keeps its own time.
        assert!(std::thread::spawn(move || due(t0)).join().unwrap());
    }

    #[test]
    fn parked_workers_run_the_idle_work() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let rt = build(Some(|| {
            RUNS.fetch_add(1, Ordering::Relaxed);
        }));
        rt.block_on(async {
            tokio::spawn(async {}).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        drop(rt);
        assert!(RUNS.load(Ordering::Relaxed) >= 1);
    }
}
