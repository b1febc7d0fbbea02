//! The scorer: incident messages (as `sluice replay` prints them, one JSON body each, or
//! Alertmanager's notifications converted to that shape) against a scenario's truth.
//!
//! Each alert in a message is mapped back to the truth by `(routing_key, summary)`. The
//! figures, per scenario run, and summed over runs:
//!
//! - **incidents**: distinct `incident_id`s published; **pages**: incidents with an `opened`
//!   message whose status is `triggered`; **noise pages**: pages whose alerts are all noise.
//! - **purity**: over published incidents, weighted by their alerts (distinct dedup keys
//!   listed in any of their messages), the share of the incident's alerts that belong to its
//!   majority truth (each problem is a class, all noise one class).
//! - **missed**: real problems none of whose alerts is listed in any message.
//! - **compression**: 1 - incidents / events sent (alert events: Alertmanager batch items and
//!   PagerDuty events).
//! - **time to page**, per critical problem: the first message listing one of its alerts (its
//!   `published_at`, else `updated_at`) minus the problem's first sent event.
//! - **incidents per problem**: incidents / real problems.
//!
//! And what a consumer would call surprising: alerts a message leaves out (`alerts_truncated`,
//! or fewer listed than `alert_count`), alerts whose summary maps to no truth, incidents never
//! resolved although every alert of the storm resolves, and problem alerts never listed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sluice::time::{parse_timestamp, Timestamp};

use super::storms::{Scenario, Truth, BASE_MS};

/// The figures of one or more scenario runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub runs: usize,
    pub events: usize,
    pub problems: usize,
    pub critical_problems: usize,
    pub incidents: usize,
    pub pages: usize,
    pub noise_pages: usize,
    /// Purity's denominator (alerts of published incidents) and numerator (their majority's).
    pub incident_alerts: usize,
    pub majority_alerts: usize,
    /// `scenario seed: problem` of each missed problem.
    pub missed: Vec<String>,
    /// Per critical problem that was paged, milliseconds.
    pub time_to_page_ms: Vec<u64>,
    /// Diagnostics.
    pub unknown_alerts: usize,
    pub truncated_messages: usize,
    pub unresolved_incidents: usize,
    pub problem_alerts: usize,
    pub problem_alerts_unlisted: usize,
}

impl Figures {
    pub fn purity(&self) -> f64 {
        if self.incident_alerts == 0 {
            1.0
        } else {
            self.majority_alerts as f64 / self.incident_alerts as f64
        }
    }

    pub fn compression(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            1.0 - self.incidents as f64 / self.events as f64
        }
    }

    pub fn incidents_per_problem(&self) -> Option<f64> {
        (self.problems > 0).then(|| self.incidents as f64 / self.problems as f64)
    }

    pub fn noise_pages_per_10_problems(&self) -> Option<f64> {
        (self.problems > 0).then(|| 10.0 * self.noise_pages as f64 / self.problems as f64)
    }

    /// Nearest-rank percentile of the times to page, in seconds.
    pub fn time_to_page_s(&self, p: f64) -> Option<f64> {
        percentile(&self.time_to_page_ms, p).map(|ms| ms as f64 / 1000.0)
    }

    pub fn add(&mut self, o: &Figures) {
        self.runs += o.runs;
        self.events += o.events;
        self.problems += o.problems;
        self.critical_problems += o.critical_problems;
        self.incidents += o.incidents;
        self.pages += o.pages;
        self.noise_pages += o.noise_pages;
        self.incident_alerts += o.incident_alerts;
        self.majority_alerts += o.majority_alerts;
        self.missed.extend(o.missed.iter().cloned());
        self.time_to_page_ms.extend(&o.time_to_page_ms);
        self.unknown_alerts += o.unknown_alerts;
        self.truncated_messages += o.truncated_messages;
        self.unresolved_incidents += o.unresolved_incidents;
        self.problem_alerts += o.problem_alerts;
        self.problem_alerts_unlisted += o.problem_alerts_unlisted;
    }
}

pub fn percentile(values: &[u64], p: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// A message's time as an offset from the scenario's start: `published_at`, else `updated_at`.
fn message_time(msg: &Value) -> Option<u64> {
    let text = msg
        .get("published_at")
        .and_then(Value::as_str)
        .or_else(|| msg.get("updated_at").and_then(Value::as_str))?;
    match parse_timestamp(text)? {
        Timestamp::At(t) => Some(t.0.saturating_sub(BASE_MS)),
        Timestamp::Unset => None,
    }
}

/// An opening message's severity, pause, reasons and first alerts (severity and summary).
fn opening_in_short(msg: &Value) -> String {
    let alerts = msg["alerts"].as_array().map_or(&[][..], Vec::as_slice);
    let listed: Vec<String> = alerts
        .iter()
        .take(3)
        .map(|a| {
            format!(
                "{} {:?}",
                a["severity"],
                a["summary"].as_str().unwrap_or_default()
            )
        })
        .collect();
    format!(
        "{} alerts, severity {}, pause {}, reasons {}: {}",
        alerts.len(),
        msg["severity"],
        msg["pause"],
        msg["reasons"],
        listed.join("; ")
    )
}

/// All noise is one class for purity.
static NOISE: Truth = Truth::Noise("noise");

#[derive(Default)]
struct Incident {
    /// dedup key -> truth (None: unknown summary).
    alerts: BTreeMap<String, Option<Truth>>,
    paged: bool,
    resolved: bool,
    /// Its opening message in short, for `SLUICEDEV_LAB_NOISE`.
    opening: String,
}

/// Scores the `messages` published for `scenario`; `first_sent` is each problem's first sent
/// event and `events` the alert events sent.
pub fn score(
    scenario: &Scenario,
    first_sent: &BTreeMap<String, u64>,
    events: usize,
    messages: &[Value],
) -> Figures {
    let truth = scenario.truth_map();
    let mut incidents: BTreeMap<String, Incident> = BTreeMap::new();
    let mut first_listed: BTreeMap<String, u64> = BTreeMap::new();
    let mut listed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut f = Figures {
        runs: 1,
        events,
        problems: scenario.problems.len(),
        critical_problems: scenario.problems.iter().filter(|p| p.critical).count(),
        ..Figures::default()
    };
    for msg in messages {
        let Some(id) = msg.get("incident_id").and_then(Value::as_str) else {
            continue; // a change message
        };
        let rk = msg["routing_key"].as_str().unwrap_or_default();
        let at = message_time(msg);
        let inc = incidents.entry(id.to_string()).or_default();
        let kind = msg["type"].as_str().unwrap_or_default();
        if kind == "opened" && msg["status"] == "triggered" {
            inc.paged = true;
            inc.opening = opening_in_short(msg);
        }
        inc.resolved = msg["status"] == "resolved";
        let alerts = msg["alerts"].as_array().map_or(&[][..], Vec::as_slice);
        let truncated = msg["alerts_truncated"].as_u64().unwrap_or(0) > 0
            || msg["alert_count"]
                .as_u64()
                .is_some_and(|n| n as usize > alerts.len());
        f.truncated_messages += usize::from(truncated);
        for a in alerts {
            let key = a["dedup_key"].as_str().unwrap_or_default().to_string();
            let summary = a["summary"].as_str().unwrap_or_default().to_string();
            let t = truth.get(&(rk.to_string(), summary.clone())).cloned();
            listed.insert((rk.to_string(), summary));
            if let (Some(Truth::Problem(p)), Some(at)) = (&t, at) {
                let first = first_listed.entry(p.clone()).or_insert(at);
                *first = (*first).min(at);
            }
            inc.alerts.insert(key, t);
        }
    }
    // The history before a scenario is not scored: its incidents are left out.
    let history = |t: &Option<Truth>| t.as_ref().is_some_and(super::storms::is_history);
    for inc in incidents.values() {
        if !inc.alerts.is_empty() && inc.alerts.values().all(history) {
            continue;
        }
        f.incidents += 1;
        let mut classes: BTreeMap<Option<&Truth>, usize> = BTreeMap::new();
        for t in inc.alerts.values() {
            let class = match t {
                Some(Truth::Noise(_)) => Some(&NOISE),
                other => other.as_ref(),
            };
            *classes.entry(class).or_default() += 1;
        }
        f.incident_alerts += inc.alerts.len();
        f.majority_alerts += classes.values().copied().max().unwrap_or(0);
        f.unknown_alerts += classes.get(&None).copied().unwrap_or(0);
        let all_noise = inc
            .alerts
            .values()
            .all(|t| matches!(t, Some(Truth::Noise(_))));
        f.pages += usize::from(inc.paged);
        f.noise_pages += usize::from(inc.paged && all_noise);
        if inc.paged && all_noise && std::env::var_os("SLUICEDEV_LAB_NOISE").is_some() {
            eprintln!(
                "noise page: {} seed {}: {}",
                scenario.name, scenario.seed, inc.opening
            );
        }
        f.unresolved_incidents += usize::from(!inc.resolved);
    }
    for p in &scenario.problems {
        match first_listed.get(&p.name) {
            None => f.missed.push(format!(
                "{} seed {}: {}",
                scenario.name, scenario.seed, p.name
            )),
            Some(&at) if p.critical => {
                let sent = first_sent.get(&p.name).copied().unwrap_or(at);
                f.time_to_page_ms.push(at.saturating_sub(sent));
            }
            Some(_) => {}
        }
    }
    for ((rk, summary), t) in &truth {
        if matches!(t, Truth::Problem(_)) {
            f.problem_alerts += 1;
            if !listed.contains(&(rk.clone(), summary.clone())) {
                f.problem_alerts_unlisted += 1;
            }
        }
    }
    f
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// The columns of a figures row, after its name (and runs).
pub const COLUMNS: &str = "events | problems | incidents | pages | noise pages | purity | missed | compression | incidents/problem | TTP median s | TTP p95 s |";

/// `figures`' cells for [`COLUMNS`], each followed by ` |`.
pub fn cells(f: &Figures) -> String {
    format!(
        "{} | {} | {} | {} | {} | {:.3} | {} | {:.4} | {} | {} | {} |",
        f.events,
        f.problems,
        f.incidents,
        f.pages,
        f.noise_pages,
        f.purity(),
        f.missed.len(),
        f.compression(),
        opt(f.incidents_per_problem(), 2),
        opt(f.time_to_page_s(0.5), 1),
        opt(f.time_to_page_s(0.95), 1),
    )
}

/// A markdown table: one row per `(name, figures)`, then their total.
pub fn table(rows: &[(String, Figures)]) -> String {
    let mut out = format!(
        "| scenario | runs | {COLUMNS}\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut total = Figures::default();
    let row = |name: &str, f: &Figures| format!("| {name} | {} | {}\n", f.runs, cells(f));
    for (name, f) in rows {
        out.push_str(&row(name, f));
        total.add(f);
    }
    out.push_str(&row("**total**", &total));
    out
}

/// The diagnostics of `f`, one line.
pub fn diagnostics(f: &Figures) -> String {
    format!(
        "alerts with an unknown summary: {}; messages listing fewer alerts than alert_count: {}; \
         incidents never resolved: {}; problem alerts never listed: {} of {}; missed: {:?}",
        f.unknown_alerts,
        f.truncated_messages,
        f.unresolved_incidents,
        f.problem_alerts_unlisted,
        f.problem_alerts,
        f.missed
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use sluice::time::UnixMillis;

    use super::super::storms::{Action, Event, Identity, Problem, Scenario, Severity, Truth};
    use super::*;

    fn event(at_s: u64, summary: &str, truth: Truth) -> Event {
        Event {
            at_ms: at_s * 1000,
            routing_key: "rk".into(),
            identity: Identity::Prometheus {
                labels: BTreeMap::from([("alertname".to_string(), summary.to_string())]),
                ha: false,
            },
            summary: summary.into(),
            severity: Severity::Critical,
            action: Action::Trigger,
            truth,
        }
    }

    fn at(s: u64) -> String {
        UnixMillis(BASE_MS + s * 1000).to_string()
    }

    fn msg(id: &str, kind: &str, status: &str, at_s: u64, summaries: &[&str]) -> Value {
        let alerts: Vec<Value> = summaries
            .iter()
            .map(|s| json!({"dedup_key": format!("k-{s}"), "summary": s}))
            .collect();
        json!({"incident_id": id, "type": kind, "status": status, "routing_key": "rk",
               "updated_at": at(at_s - 20), "published_at": at(at_s),
               "alert_count": alerts.len(), "alerts": alerts, "alerts_truncated": 0})
    }

    /// Two problems (A critical, B critical) and noise; A is paged with a noise alert mixed
    /// in, a noise incident pages, B is never listed.
    #[test]
    fn the_scorer_counts_what_a_consumer_sees() {
        let a = || Truth::Problem("A".into());
        let scenario = Scenario {
            name: "tiny",
            seed: 0,
            events: vec![
                event(10, "a1", a()),
                event(12, "a2", a()),
                event(15, "n1", Truth::Noise("blip")),
                event(20, "n2", Truth::Noise("blip")),
                event(30, "b1", Truth::Problem("B".into())),
            ],
            changes: Vec::new(),
            problems: vec![
                Problem {
                    name: "A".into(),
                    critical: true,
                },
                Problem {
                    name: "B".into(),
                    critical: true,
                },
            ],
            end_ms: 30_000,
        };
        scenario.check();
        let first_sent = BTreeMap::from([("A".to_string(), 10_000), ("B".to_string(), 30_000)]);
        let messages = vec![
            msg("i1", "opened", "triggered", 40, &["a1", "n1"]),
            json!({"schema": "sluice.change.v1", "type": "change"}),
            msg("i2", "opened", "triggered", 50, &["n2"]),
            msg("i1", "updated", "triggered", 100, &["a1", "n1", "a2"]),
            msg("i1", "resolved", "resolved", 200, &["a1", "n1", "a2"]),
            msg("i3", "resolved", "resolved", 210, &["zz"]),
        ];
        let f = score(&scenario, &first_sent, 42, &messages);
        assert_eq!((f.incidents, f.pages, f.noise_pages), (3, 2, 1));
        // i1: 2 of 3 are A; i2: 1 of 1; i3: one unknown alert, its own class.
        assert_eq!((f.majority_alerts, f.incident_alerts), (4, 5));
        assert!((f.purity() - 0.8).abs() < 1e-9);
        assert_eq!(f.unknown_alerts, 1);
        assert_eq!(f.missed, ["tiny seed 0: B"]);
        // A first listed at 40 s (published_at, not updated_at), first sent at 10 s.
        assert_eq!(f.time_to_page_ms, [30_000]);
        assert_eq!(f.unresolved_incidents, 1, "i2 never resolved");
        assert_eq!((f.problem_alerts, f.problem_alerts_unlisted), (3, 1));
        assert!((f.compression() - (1.0 - 3.0 / 42.0)).abs() < 1e-9);
        assert_eq!(f.incidents_per_problem(), Some(1.5));
        assert_eq!(percentile(&[5, 1, 3, 2, 4], 0.5), Some(3));
        assert_eq!(percentile(&[5, 1, 3, 2, 4], 0.95), Some(5));
        let t = table(&[("tiny".into(), f)]);
        assert!(
            t.contains("| tiny | 1 | 42 | 2 | 3 | 2 | 1 | 0.800 | 1 |"),
            "{t}"
        );
    }
}
