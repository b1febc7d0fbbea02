//! The scenario lab: generated alert storms with ground truth ([`storms`]), replayed through
//! sluice's own replay (`sluice::replay::run`, in process, simulated time) and scored
//! ([`score`]); the CI test holds the default config to floors. The comparison with a real
//! Alertmanager is [`alertmanager`] (ignored here; `load-tests/lab.sh` runs it). See
//! `tests/e2e/scenarios/README.md`.
//!
//! `sluice replay` leaves `published_at` out of its messages; the lab adds it. It interleaves
//! watermark records (the events topic's, which move the replay's clock) every
//! [`TICK_MS`] with the recorded requests, and stamps each message with the time of the input
//! line after which the replay wrote it: timers fire at their deadlines during the next line's
//! clock advance, so a message's `published_at` is at most one tick after it was due.

use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use sluice::config::Config;
use sluice::time::UnixMillis;

mod alertmanager;
pub mod score;
pub mod storms;

use score::Figures;
use storms::{Rendered, Scenario, BASE_MS, HOLDOUT_SEEDS, NAMES, TUNING_SEEDS};

/// Watermarks every 250 ms of scenario time: the resolution of `published_at`.
pub const TICK_MS: u64 = 250;
/// Simulated time after a scenario's last event (resolves by `endsAt`, flap cooldowns, ...).
pub const TAIL_MS: u64 = 30 * 60 * 1000;

/// The default config, except that no message leaves an alert out.
pub fn default_config() -> Config {
    Config::from_toml(
        "[correlate]\nmax_alerts_per_message = 1000000\n",
        Vec::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The input lines, served one at a time, with the offset of the line last handed out.
struct Input {
    lines: Vec<(u64, String)>,
    line: usize,
    pos: usize,
    now: Arc<AtomicU64>,
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Input {
    /// The rest of the current line only, so the replay never reads ahead of the line it runs.
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.line < self.lines.len() && self.pos >= self.lines[self.line].1.len() {
            self.line += 1;
            self.pos = 0;
        }
        let Some((at, text)) = self.lines.get(self.line) else {
            return Ok(&[]);
        };
        if self.pos == 0 {
            self.now.store(*at, Ordering::Relaxed);
        }
        Ok(&text.as_bytes()[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

/// The messages written, each with the input line's offset at the time.
struct Output {
    partial: Vec<u8>,
    now: Arc<AtomicU64>,
    lines: Vec<(u64, Vec<u8>)>,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.lines.push((self.now.load(Ordering::Relaxed), line));
            } else {
                self.partial.push(b);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One scenario through sluice.
pub struct Run {
    pub rendered: Rendered,
    /// Incident and change messages, each with `published_at` added.
    pub messages: Vec<Value>,
}

/// Replays `scenario` through sluice with `config` (runs a current-thread runtime: call from a
/// plain thread).
pub fn replay(config: &Config, scenario: &Scenario) -> Run {
    let rendered = storms::render_sluice(scenario);
    let end = scenario.end_ms + TAIL_MS;
    let mut lines: Vec<(u64, String)> = (0..=end / TICK_MS)
        .map(|i| {
            let at = i * TICK_MS;
            (
                at,
                format!(r#"{{"v":1,"type":"watermark","at":{}}}"#, BASE_MS + at),
            )
        })
        .collect();
    // Requests first among lines of the same offset; the order within each kind kept.
    lines.extend(rendered.lines.iter().cloned());
    lines.sort_by_key(|(at, l)| (*at, l.starts_with(r#"{"v":1,"type":"watermark""#)));
    for (_, l) in &mut lines {
        l.push('\n');
    }
    let now = Arc::new(AtomicU64::new(0));
    let input = Input {
        lines,
        line: 0,
        pos: 0,
        now: now.clone(),
    };
    let mut out = Output {
        partial: Vec::new(),
        now,
        lines: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let summary = runtime
        .block_on(sluice::replay::run(
            config,
            input,
            sluice::replay::Speed::Max,
            &mut out,
        ))
        .unwrap_or_else(|e| panic!("{} seed {}: {e}", scenario.name, scenario.seed));
    assert_eq!(
        (summary.rejected_requests, summary.stats.events),
        (0, rendered.events as u64),
        "{} seed {}: sluice refused requests, or counted other events than were sent",
        scenario.name,
        scenario.seed
    );
    let messages = out
        .lines
        .into_iter()
        .map(|(at, line)| {
            let mut v: Value = serde_json::from_slice(&line).expect("a JSON message");
            if v.get("incident_id").is_some() && v.get("published_at").is_none() {
                v["published_at"] = UnixMillis(BASE_MS + at).to_string().into();
            }
            v
        })
        .collect();
    Run { rendered, messages }
}

/// With `SLUICEDEV_LAB_DUMP=<dir>`, writes each run's recording (`<name>-<seed>.jsonl`, what
/// `sluice replay` reads), messages (`<name>-<seed>.messages.jsonl`, with `published_at`) and
/// truth (`<name>-<seed>.truth.json`, `"<routing key> | <summary>"` to problem or noise) there.
fn dump(scenario: &Scenario, run: &Run) {
    let Some(dir) = std::env::var_os("SLUICEDEV_LAB_DUMP") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stem = format!("{}-{}", scenario.name, scenario.seed);
    let mut recording = String::new();
    for (_, l) in &run.rendered.lines {
        recording.push_str(l);
        recording.push('\n');
    }
    std::fs::write(dir.join(format!("{stem}.jsonl")), recording).unwrap();
    let mut messages = String::new();
    for m in &run.messages {
        messages.push_str(&m.to_string());
        messages.push('\n');
    }
    std::fs::write(dir.join(format!("{stem}.messages.jsonl")), messages).unwrap();
    let truth: serde_json::Map<String, Value> = scenario
        .truth_map()
        .into_iter()
        .map(|((rk, summary), t)| {
            let t = match t {
                storms::Truth::Problem(p) => p,
                storms::Truth::Noise(kind) => format!("noise: {kind}"),
            };
            (format!("{rk} | {summary}"), t.into())
        })
        .collect();
    std::fs::write(
        dir.join(format!("{stem}.truth.json")),
        serde_json::to_string_pretty(&truth).unwrap(),
    )
    .unwrap();
}

/// Every scenario of `seeds` through sluice, scored; per scenario name, summed over seeds.
/// Runs on two threads.
pub fn score_sluice(config: &Config, seeds: &[u64]) -> Vec<(String, Figures)> {
    score_sluice_after(config, seeds, 0)
}

/// [`score_sluice`] with `history_ms` of everyday noise before each scenario
/// ([`storms::scenario_after`]).
pub fn score_sluice_after(
    config: &Config,
    seeds: &[u64],
    history_ms: u64,
) -> Vec<(String, Figures)> {
    let jobs: Vec<(&str, u64)> = NAMES
        .iter()
        .flat_map(|&n| seeds.iter().map(move |&s| (n, s)))
        .collect();
    let next = AtomicU64::new(0);
    let results: Vec<(usize, Figures)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(&(name, seed)) = jobs.get(i) else {
                            return done;
                        };
                        let scenario = storms::scenario_after(name, seed, history_ms);
                        let run = replay(config, &scenario);
                        dump(&scenario, &run);
                        let f = score::score(
                            &scenario,
                            &run.rendered.first_sent,
                            run.rendered.events - run.rendered.history_events,
                            &run.messages,
                        );
                        done.push((i, f));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    NAMES
        .iter()
        .map(|&name| {
            let mut total = Figures::default();
            for (i, f) in &results {
                if jobs[*i].0 == name {
                    total.add(f);
                }
            }
            (name.to_string(), total)
        })
        .collect()
}

/// The sum of a set's rows.
pub fn total(rows: &[(String, Figures)]) -> Figures {
    let mut t = Figures::default();
    for (_, f) in rows {
        t.add(f);
    }
    t
}

/// What CI holds the default config to, on each seed set's totals.
///
/// The issue's targets ([`TARGETS`]): incidents <= 1.3 x real problems; <= 1 noise page per
/// 10 problems; purity >= 0.98; no problem missed; median first page of a critical problem
/// <= group_wait + 1 s (31 s). No problem missed and purity >= 0.98 are held as they are;
/// the other floors are what the current engine measures, rounded generously. Raise them as
/// the defaults improve, until they are the targets.
pub struct Floors {
    pub max_missed: usize,
    pub min_purity: f64,
    pub max_incidents_per_problem: f64,
    pub max_noise_pages_per_10_problems: f64,
    pub max_time_to_page_median_s: f64,
    pub max_time_to_page_p95_s: f64,
    pub min_compression: f64,
}

pub const TARGETS: Floors = Floors {
    max_missed: 0,
    min_purity: 0.98,
    max_incidents_per_problem: 1.3,
    max_noise_pages_per_10_problems: 1.0,
    max_time_to_page_median_s: 31.0,
    max_time_to_page_p95_s: f64::INFINITY,
    min_compression: 0.0,
};

/// Measured at commit a719cd3 (tests/e2e/scenarios/README.md has the tables), tuning /
/// holdout: incidents per problem 2.25 / 2.15, noise pages per 10 problems 7.7 / 6.0, time to
/// page median 30.2 / 37.2 s and p95 600.1 / 600.1 s, compression 0.9979 / 0.9980, purity
/// 0.982 / 0.996, nothing missed. At 0d2ce94: 1.58 / 1.44 incidents per problem, 5.8 / 4.2
/// noise pages per 10 problems, median 30.2 / 30.2 s, purity 0.998 / 0.997.
pub const FLOORS: Floors = Floors {
    max_missed: 0,
    min_purity: 0.98,
    max_incidents_per_problem: 1.8,
    max_noise_pages_per_10_problems: 7.0,
    max_time_to_page_median_s: 33.0,
    max_time_to_page_p95_s: 660.0,
    min_compression: 0.997,
};

/// What CI holds the default config to after [`HISTORY_MIN`] minutes of history: the issue's
/// targets. Measured at 0d2ce94 (tuning / holdout): noise pages 0.42 / 0.42 per 10 problems,
/// incidents per problem 1.04 / 1.04, purity 0.999 / 0.995, time to page median 30.2 s; at
/// 360 minutes 0.63 / 0.63 noise pages per 10 problems and 1.06 / 1.06 incidents per problem.
pub const FLOORS_AFTER_HISTORY: Floors = Floors {
    max_missed: 0,
    min_purity: 0.98,
    max_incidents_per_problem: 1.3,
    max_noise_pages_per_10_problems: 1.0,
    max_time_to_page_median_s: 31.0,
    max_time_to_page_p95_s: 660.0,
    min_compression: 0.997,
};

/// The history before each scenario in [`default_config_after_history`], in minutes.
pub const HISTORY_MIN: u64 = 180;

/// Which of `floors` the totals `f` of seed set `set` break.
pub fn broken(set: &str, f: &Floors, t: &Figures) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            out.push(format!("{set}: {what}"));
        }
    };
    check(
        t.missed.len() <= f.max_missed,
        format!("missed {:?} (at most {})", t.missed, f.max_missed),
    );
    check(
        t.purity() >= f.min_purity,
        format!("purity {:.4} < {}", t.purity(), f.min_purity),
    );
    let ipp = t.incidents_per_problem().unwrap_or(0.0);
    check(
        ipp <= f.max_incidents_per_problem,
        format!(
            "incidents per problem {ipp:.2} > {}",
            f.max_incidents_per_problem
        ),
    );
    let noise = t.noise_pages_per_10_problems().unwrap_or(0.0);
    check(
        noise <= f.max_noise_pages_per_10_problems,
        format!(
            "noise pages per 10 problems {noise:.2} > {}",
            f.max_noise_pages_per_10_problems
        ),
    );
    let median = t.time_to_page_s(0.5).unwrap_or(0.0);
    check(
        median <= f.max_time_to_page_median_s,
        format!(
            "median time to page {median:.1} s > {}",
            f.max_time_to_page_median_s
        ),
    );
    let p95 = t.time_to_page_s(0.95).unwrap_or(0.0);
    check(
        p95 <= f.max_time_to_page_p95_s,
        format!("p95 time to page {p95:.1} s > {}", f.max_time_to_page_p95_s),
    );
    check(
        t.compression() >= f.min_compression,
        format!("compression {:.4} < {}", t.compression(), f.min_compression),
    );
    check(
        t.unknown_alerts == 0,
        "alerts with unknown summaries".into(),
    );
    out
}

/// Every scenario on the tuning and the holdout seeds with the default config after
/// `history_ms` of history: prints the tables (`--nocapture`) and returns which of `floors`
/// each seed set's totals break.
fn run_lab(what: &str, history_ms: u64, floors: Option<&Floors>) -> Vec<String> {
    let config = default_config();
    let mut failures = Vec::new();
    for (set, seeds) in [("tuning", &TUNING_SEEDS), ("holdout", &HOLDOUT_SEEDS)] {
        let rows = score_sluice_after(&config, seeds, history_ms);
        let t = total(&rows);
        println!(
            "\n### sluice, default config, {what}{set} seeds {seeds:?}\n\n{}",
            score::table(&rows)
        );
        println!("{}", score::diagnostics(&t));
        let misses = broken(set, &TARGETS, &t);
        if !misses.is_empty() {
            println!("issue targets not met yet: {misses:#?}");
        }
        if let Some(floors) = floors {
            failures.extend(broken(set, floors, &t));
        }
    }
    failures
}

/// Every scenario on the tuning and the holdout seeds with the default config, sluice starting
/// with the storm: prints the tables (`--nocapture`) and holds the totals of each seed set to
/// [`FLOORS`].
#[test]
fn default_config_floors() {
    let started = Instant::now();
    let failures = run_lab("", 0, Some(&FLOORS));
    println!("\n(in {:.1} s)", started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "floors broken: {failures:#?}");
}

/// The same scenarios after [`HISTORY_MIN`] minutes (`LAB_HISTORY_MIN` to try others) of
/// their routing keys' everyday noise: a sluice that has been running, which has learned which
/// classes blip, not one started for the storm. Prints the tables and holds the totals of each
/// seed set to [`FLOORS_AFTER_HISTORY`] (at the default length).
#[test]
fn default_config_after_history() {
    let started = Instant::now();
    let minutes: u64 = std::env::var("LAB_HISTORY_MIN")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(HISTORY_MIN);
    let floors = (minutes == HISTORY_MIN).then_some(&FLOORS_AFTER_HISTORY);
    let what = format!("after {minutes} min of history, ");
    let failures = run_lab(&what, minutes * 60_000, floors);
    println!("\n(in {:.1} s)", started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "floors broken: {failures:#?}");
}
