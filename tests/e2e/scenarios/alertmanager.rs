//! The same storms through Debian's real Prometheus Alertmanager, scored by the same scorer:
//! what a team gets from Alertmanager's grouping, for a few `group_by` choices, next to what
//! sluice's default config gives. Ignored in CI (it runs in real time, scaled);
//! `load-tests/lab.sh` runs it.
//!
//! - Time is scaled by `LAB_TIME_SCALE` (default 60: an hour of scenario in a minute).
//!   Alertmanager's defaults are scaled with it: `group_wait` 30 s, `group_interval` 5 min,
//!   `repeat_interval` 4 h, `resolve_timeout` 5 min and `--alerts.gc-interval` 30 min, all
//!   divided by the scale. Its dispatcher's maintenance (removing emptied aggregation groups)
//!   runs every 30 s of real time and cannot be set: scaled, an emptied group lives up to
//!   30 min of scenario time, so an alert that re-fires within that time is notified at the
//!   group's next `group_interval` tick instead of after `group_wait`.
//! - Every alert goes to Alertmanager as Prometheus sends it ([`storms::prometheus_sends`]):
//!   PagerDuty-speaking tools' alerts translated to labels (`alertname` = class, `instance` =
//!   source, `service` = component, `group`, `severity`, `dedup_key`), every alert labelled
//!   `team=<routing key>`, and one child route per team, as a team-routed Alertmanager is set
//!   up, so groups never span routing keys (as sluice's never do). Gossip is off, one instance.
//! - Each Alertmanager's webhook notifications (`send_resolved: true`, no `max_alerts`) are
//!   received by a small HTTP server here. A group's (groupKey's) notifications from a firing
//!   one to the next `resolved` one are one incident: the first is its `opened` message, the
//!   others `updated`, the last `resolved`; a group that fires again after that is a new
//!   incident. Their alerts are the notification's alerts (`fingerprint`,
//!   `annotations.summary`), and `published_at` the time the notification arrived, in
//!   scenario time.
//! - Compression uses the storm's event count as sluice receives it, so both columns divide by
//!   the same number.
//!
//! Environment: `LAB_TIME_SCALE` (60), `LAB_JOBS` (scenario runs at once, 6; each runs one
//! Alertmanager per `group_by`), `LAB_SCENARIOS` (comma-separated names, default all),
//! `LAB_SEEDS` (`tuning`, `holdout` or `all`, default all).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sluice::send::HttpClient;
use sluice::time::UnixMillis;

use super::score::{self, Figures};
use super::storms::{self, PromSend, Scenario, BASE_MS, HOLDOUT_SEEDS, NAMES, TUNING_SEEDS};
use crate::harness::Alertmanager;

/// The `group_by` choices compared (each also routed per team).
const GROUP_BYS: [&str; 5] = [
    "[alertname]",
    "[alertname, cluster, service]",
    "[alertname, instance]",
    "[]",
    "['...']",
];

const TEAMS: [&str; 3] = ["team-infra", "team-shop", "team-edge"];

/// Scenario time waited after the last send: resolved notifications come at the next
/// `group_interval` tick (5 min).
const TAIL_MS: u64 = 12 * 60 * 1000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Alertmanager's defaults divided by `scale`, in milliseconds.
fn scaled(ms: u64, scale: f64) -> String {
    format!("{}ms", ((ms as f64 / scale).round() as u64).max(1))
}

fn config(group_by: &str, webhook: &str, scale: f64) -> String {
    let routes: String = TEAMS
        .iter()
        .map(|t| format!("    - receiver: lab\n      matchers: ['team=\"{t}\"']\n"))
        .collect();
    format!(
        r#"global:
  resolve_timeout: {resolve}
route:
  receiver: lab
  group_by: {group_by}
  group_wait: {wait}
  group_interval: {interval}
  repeat_interval: {repeat}
  routes:
{routes}receivers:
  - name: lab
    webhook_configs:
      - url: "{webhook}"
        send_resolved: true
"#,
        resolve = scaled(5 * 60_000, scale),
        wait = scaled(30_000, scale),
        interval = scaled(5 * 60_000, scale),
        repeat = scaled(4 * 3_600_000, scale),
    )
}

/// A webhook receiver on loopback: every notification with the instant it arrived.
type Received = Arc<Mutex<Vec<(Instant, Value)>>>;

async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Received = Arc::default();
    let sink = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let sink = sink.clone();
                    async move {
                        let at = Instant::now();
                        let body = req.into_body().collect().await?.to_bytes();
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        sink.lock().unwrap().push((at, v));
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, got)
}

/// Notifications as incident messages (see the module's doc).
fn to_messages(notifications: &[(u64, Value)]) -> Vec<Value> {
    let mut open: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut episodes: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for (at, n) in notifications {
        let gk = n["groupKey"].as_str().unwrap_or_default().to_string();
        let firing = n["status"] == "firing";
        let (id, seq, kind) = match open.get_mut(&gk) {
            Some((id, seq)) => {
                *seq += 1;
                let kind = if firing { "updated" } else { "resolved" };
                (id.clone(), *seq, kind)
            }
            None => {
                let e = episodes.entry(gk.clone()).or_default();
                *e += 1;
                let id = format!("am:{gk}#{e}");
                open.insert(gk.clone(), (id.clone(), 1));
                (id, 1, if firing { "opened" } else { "resolved" })
            }
        };
        if !firing {
            open.remove(&gk);
        }
        let alerts: Vec<Value> = n["alerts"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|a| {
                json!({
                    "dedup_key": a["fingerprint"],
                    "summary": a["annotations"]["summary"],
                    "status": a["status"],
                })
            })
            .collect();
        let team = n["alerts"][0]["labels"]["team"].clone();
        out.push(json!({
            "incident_id": id,
            "seq": seq,
            "type": kind,
            "status": if firing { "triggered" } else { "resolved" },
            "routing_key": team,
            "group_key": gk,
            "alert_count": alerts.len(),
            "alerts_truncated": n["truncatedAlerts"],
            "alerts": alerts,
            "published_at": UnixMillis(BASE_MS + at).to_string(),
        }));
    }
    out
}

/// One scenario through one Alertmanager per `group_by`, at `scale`: the figures per choice.
async fn run(scenario: &Scenario, scale: f64) -> Vec<Figures> {
    let mut ams = Vec::new();
    for group_by in GROUP_BYS {
        let (hook, got) = receiver().await;
        let am = Alertmanager::start_with(
            &config(group_by, &hook, scale),
            &[format!(
                "--alerts.gc-interval={}",
                scaled(30 * 60_000, scale)
            )],
        )
        .await;
        let client = HttpClient::connect(&am.url).await.unwrap();
        ams.push((am, client, got));
    }
    let sends = storms::prometheus_sends(scenario, true);
    // Each problem's first send.
    let mut first_sent: BTreeMap<String, u64> = BTreeMap::new();
    for s in &sends {
        if let storms::Truth::Problem(p) = &s.truth {
            first_sent.entry(p.clone()).or_insert(s.at_ms);
        }
    }
    let batches = batches(&sends);
    let start = tokio::time::Instant::now();
    let start_instant = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let real = |offset: u64| Duration::from_secs_f64(offset as f64 / scale / 1000.0);
    let stamp = |offset: u64| UnixMillis((wall + offset as f64 / scale) as u64).to_string();
    for batch in &batches {
        tokio::time::sleep_until(start + real(batch[0].at_ms)).await;
        let items: Vec<Value> = batch
            .iter()
            .map(|s| {
                let mut labels = s.labels.clone();
                labels.insert("team".into(), s.routing_key.clone());
                json!({
                    "labels": labels,
                    "annotations": {"summary": s.summary},
                    "startsAt": stamp(s.starts_ms),
                    "endsAt": stamp(s.ends_ms),
                    "generatorURL": "http://prometheus:9090/graph",
                })
            })
            .collect();
        let body = Bytes::from(Value::Array(items).to_string());
        for (am, client, _) in &mut ams {
            let reply = match client.post("/api/v2/alerts", body.clone()).await {
                Ok(reply) => reply,
                // A keep-alive connection the server closed: once more on a new one.
                Err(_) => {
                    *client = HttpClient::connect(&am.url).await.unwrap();
                    client
                        .post("/api/v2/alerts", body.clone())
                        .await
                        .expect("alertmanager answers")
                }
            };
            assert_eq!(
                reply.status,
                200,
                "{}: {} {}",
                scenario.name,
                String::from_utf8_lossy(&reply.body),
                am.log()
            );
        }
    }
    let last = batches.last().map_or(0, |b| b[0].at_ms);
    tokio::time::sleep_until(start + real(last + TAIL_MS)).await;
    let events = storms::render_sluice(scenario).events;
    ams.iter()
        .map(|(_, _, got)| {
            let got = got.lock().unwrap();
            let notifications: Vec<(u64, Value)> = got
                .iter()
                .map(|(at, v)| {
                    let offset = at.duration_since(start_instant).as_secs_f64() * scale * 1000.0;
                    (offset as u64, v.clone())
                })
                .collect();
            score::score(scenario, &first_sent, events, &to_messages(&notifications))
        })
        .collect()
}

/// Sends as Prometheus batches them: per evaluation, team and replica.
fn batches(sends: &[PromSend]) -> Vec<&[PromSend]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sends.len() {
        let key = |s: &PromSend| (s.at_ms, s.routing_key.clone(), s.replica);
        let mut j = i;
        while j < sends.len() && j - i < 256 && key(&sends[j]) == key(&sends[i]) {
            j += 1;
        }
        out.push(&sends[i..j]);
        i = j;
    }
    out
}

/// Rows of `(scenario, figures)` for one `group_by` over one seed set.
type Rows = Vec<(String, Figures)>;

/// Every selected scenario and seed, `LAB_JOBS` at a time; per seed set, per `group_by`, the
/// rows summed over seeds.
async fn run_all(
    names: &[String],
    sets: &[(&'static str, Vec<u64>)],
    scale: f64,
    jobs: usize,
) -> BTreeMap<(&'static str, usize), Rows> {
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = Vec::new();
    for (set, seeds) in sets {
        for name in names {
            for &seed in seeds {
                let permits = permits.clone();
                let name = name.clone();
                let set = *set;
                tasks.push(tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await.unwrap();
                    let scenario = storms::scenario(&name, seed);
                    let started = Instant::now();
                    let figures = run(&scenario, scale).await;
                    eprintln!(
                        "  {name} seed {seed}: {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                    (set, name, figures)
                }));
            }
        }
    }
    let mut out: BTreeMap<(&'static str, usize), BTreeMap<String, Figures>> = BTreeMap::new();
    for t in tasks {
        let (set, name, figures) = t.await.unwrap();
        for (g, f) in figures.iter().enumerate() {
            out.entry((set, g))
                .or_default()
                .entry(name.clone())
                .or_default()
                .add(f);
        }
    }
    out.into_iter()
        .map(|(k, rows)| {
            // In the lab's scenario order.
            let ordered = NAMES
                .iter()
                .filter_map(|n| rows.get(*n).map(|f| (n.to_string(), f.clone())))
                .collect();
            (k, ordered)
        })
        .collect()
}

/// Better = nothing missed and purity >= 0.98, then fewer incidents; else higher purity.
fn best(totals: &[Figures]) -> usize {
    let qualifies = |f: &Figures| f.missed.is_empty() && f.purity() >= 0.98;
    (0..totals.len())
        .min_by(|&a, &b| {
            let (fa, fb) = (&totals[a], &totals[b]);
            qualifies(fb).cmp(&qualifies(fa)).then(if qualifies(fa) {
                fa.incidents.cmp(&fb.incidents)
            } else {
                fb.purity().total_cmp(&fa.purity())
            })
        })
        .unwrap()
}

/// A one-line-per-choice summary of totals.
fn summary_table(rows: &[(String, Figures)]) -> String {
    let mut out = format!(
        "| group_by | {}\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        score::COLUMNS
    );
    for (name, f) in rows {
        out.push_str(&format!("| {name} | {}\n", score::cells(f)));
    }
    out
}

/// The comparison: sluice's default config (replayed) and Alertmanager with each `group_by`,
/// on the same storms; the best `group_by` is chosen on the tuning seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real time (scaled), minutes: run by load-tests/lab.sh"]
async fn alertmanager_comparison() {
    let scale: f64 = env_or("LAB_TIME_SCALE", 60.0);
    let jobs: usize = env_or("LAB_JOBS", 6);
    let names: Vec<String> = match std::env::var("LAB_SCENARIOS") {
        Ok(list) if !list.is_empty() => list.split(',').map(|s| s.trim().to_string()).collect(),
        _ => NAMES.iter().map(|s| s.to_string()).collect(),
    };
    for n in &names {
        assert!(NAMES.contains(&n.as_str()), "unknown scenario {n}");
    }
    let which = std::env::var("LAB_SEEDS").unwrap_or_else(|_| "all".into());
    let mut sets: Vec<(&'static str, Vec<u64>)> = Vec::new();
    if which != "holdout" {
        sets.push(("tuning", TUNING_SEEDS.to_vec()));
    }
    if which != "tuning" {
        sets.push(("holdout", HOLDOUT_SEEDS.to_vec()));
    }
    println!(
        "scenarios: {}; seeds: {}; time scale {scale} (group_wait {}, group_interval {}, \
         repeat_interval {}, resolve_timeout {}); {jobs} scenario runs at once",
        names.join(", "),
        sets.iter()
            .map(|(s, seeds)| format!("{s} {seeds:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        scaled(30_000, scale),
        scaled(300_000, scale),
        scaled(4 * 3_600_000, scale),
        scaled(300_000, scale),
    );

    // sluice, default config, the same scenarios (replayed in simulated time, on 2 threads).
    let config = super::default_config();
    let mut sluice_totals = BTreeMap::new();
    for (set, seeds) in &sets {
        let rows: Vec<(String, Figures)> = super::score_sluice(&config, seeds)
            .into_iter()
            .filter(|(n, _)| names.contains(n))
            .collect();
        println!(
            "\n### sluice, default config, {set} seeds {seeds:?}\n\n{}",
            score::table(&rows)
        );
        sluice_totals.insert(*set, super::total(&rows));
    }

    let started = Instant::now();
    let results = run_all(&names, &sets, scale, jobs).await;
    eprintln!(
        "Alertmanager runs took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let totals = |set: &str| -> Vec<Figures> {
        (0..GROUP_BYS.len())
            .map(|g| super::total(&results[&(set, g)]))
            .collect()
    };
    let pick_set = sets[0].0;
    let chosen = best(&totals(pick_set));
    for (set, seeds) in &sets {
        let mut rows: Vec<(String, Figures)> =
            vec![("sluice default config".into(), sluice_totals[set].clone())];
        rows.extend(
            GROUP_BYS
                .iter()
                .zip(totals(set))
                .map(|(g, f)| (format!("Alertmanager {g}"), f)),
        );
        println!(
            "\n### Totals, {set} seeds {seeds:?}: sluice vs Alertmanager per group_by\n\n{}",
            summary_table(&rows)
        );
        for (name, f) in rows.iter().filter(|(_, f)| !f.missed.is_empty()) {
            println!("{name} missed: {:?}", f.missed);
        }
    }
    println!(
        "\nBest Alertmanager group_by on the {pick_set} seeds (nothing missed and purity >= 0.98, \
         then fewest incidents; else highest purity): {}",
        GROUP_BYS[chosen]
    );
    for (set, seeds) in &sets {
        println!(
            "\n### Alertmanager group_by {}, {set} seeds {seeds:?}\n\n{}",
            GROUP_BYS[chosen],
            score::table(&results[&(*set, chosen)])
        );
        println!(
            "{}",
            score::diagnostics(&super::total(&results[&(*set, chosen)]))
        );
    }
}
