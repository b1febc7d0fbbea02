//! `sluice replay --compare a.toml b.toml RECORDING`: what-if before deploying. The recording
//! runs through each config as `sluice replay` runs it, and the two noise reports are printed
//! side by side: incidents, pages, events suppressed by each mechanism, the median and p95 time
//! to page (from an incident's first event to its `opened` message, on the replay's simulated
//! clock), compression, the largest incidents of each, and the incidents that differ: those
//! whose set of alerts (routing key and dedup key, as listed in their messages) no incident of
//! the other config has.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::config::Config;
use crate::publish::encode::{MessageKind, OutboundMessage};

use super::{run_each, ReplayError, Speed, Summary};

/// Incidents listed per config in "largest" and in "differ".
const LISTED: usize = 10;

/// What a run's messages say of one incident.
#[derive(Default)]
struct Seen {
    title: String,
    alerts: BTreeSet<String>,
    alert_count: u64,
    paged: bool,
}

/// One config's run.
struct Run {
    summary: Summary,
    /// By incident id, in order of first message.
    incidents: BTreeMap<String, Seen>,
    time_to_page_ms: Vec<u64>,
}

impl Run {
    fn take(&mut self, msg: &OutboundMessage) {
        if msg.kind == MessageKind::Change {
            return;
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&msg.body) else {
            return;
        };
        let seen = self.incidents.entry(msg.key.clone()).or_default();
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
        seen.title = text("title");
        seen.alert_count = body["alert_count"].as_u64().unwrap_or(0);
        let routing_key = text("routing_key");
        for a in body["alerts"].as_array().into_iter().flatten() {
            let key = a["dedup_key"].as_str().unwrap_or_default();
            seen.alerts.insert(format!("{routing_key}/{key}"));
        }
        let triggered = body["status"] == "triggered";
        if msg.kind == MessageKind::Opened && triggered {
            seen.paged = true;
            if let Some(first) = msg.first_event_at {
                let ttp = msg.decided_at.saturating_sub(first).as_millis() as u64;
                self.time_to_page_ms.push(ttp);
            }
        }
    }

    fn percentile_s(&self, p: f64) -> String {
        let mut v = self.time_to_page_ms.clone();
        if v.is_empty() {
            return "-".into();
        }
        v.sort_unstable();
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        format!("{:.1} s", v[rank - 1] as f64 / 1000.0)
    }
}

/// Replays `lines` (a recording, or an events-topic dump in the wire format) under each of two
/// named configs and returns the report.
pub async fn compare(
    a: (&str, &Config),
    b: (&str, &Config),
    lines: &[String],
) -> Result<String, ReplayError> {
    let mut runs = Vec::new();
    for (_, config) in [a, b] {
        let mut run = Run {
            summary: Summary::default(),
            incidents: BTreeMap::new(),
            time_to_page_ms: Vec::new(),
        };
        let input = lines.iter().cloned().map(Ok).enumerate();
        let mut each = |m: &OutboundMessage| {
            run.take(m);
            Ok(())
        };
        run.summary = run_each(config, input, Speed::Max, &mut each).await?;
        runs.push(run);
    }
    Ok(report([a.0, b.0], &runs))
}

fn report(names: [&str; 2], runs: &[Run]) -> String {
    let mut out = format!(
        "A: {}\nB: {}\n\n{:<36}{:>12}{:>12}\n",
        names[0], names[1], "", "A", "B"
    );
    let mut row = |what: &str, f: &dyn Fn(&Run) -> String| {
        let _ = write!(out, "{what:<36}");
        for r in runs {
            let _ = write!(out, "{:>12}", f(r));
        }
        out.push('\n');
    };
    let s = |r: &Run| r.summary.stats.clone();
    row("events", &|r| s(r).events.to_string());
    row("alerts", &|r| s(r).alerts_opened.to_string());
    row("incidents published", &|r| r.incidents.len().to_string());
    row("pages (opened while triggered)", &|r| {
        r.incidents.values().filter(|i| i.paged).count().to_string()
    });
    row("incidents held, never published", &|r| {
        (s(r).incidents_opened as usize)
            .saturating_sub(r.incidents.len())
            .to_string()
    });
    row("suppressed: dedup", &|r| s(r).dedup.to_string());
    row("suppressed: silence", &|r| s(r).silence.to_string());
    row("suppressed: inhibit", &|r| s(r).inhibit.to_string());
    row("suppressed: transient (pause)", &|r| {
        s(r).transient.to_string()
    });
    row("suppressed: threshold", &|r| s(r).threshold.to_string());
    row("suppressed: flap", &|r| s(r).flap.to_string());
    row("held by a learned pause", &|r| s(r).learned.to_string());
    row("auto grouping joins", &|r| {
        s(r).joined_by.iter().sum::<u64>().to_string()
    });
    row("time to page, median", &|r| r.percentile_s(0.5));
    row("time to page, p95", &|r| r.percentile_s(0.95));
    row("compression (1 - incidents/events)", &|r| {
        let events = s(r).events.max(1) as f64;
        format!("{:.4}", 1.0 - r.incidents.len() as f64 / events)
    });
    for (which, run) in ["A", "B"].iter().zip(runs) {
        let mut largest: Vec<&Seen> = run.incidents.values().collect();
        largest.sort_by_key(|i| std::cmp::Reverse(i.alert_count));
        let _ = writeln!(out, "\nlargest incidents, {which}:");
        for i in largest.iter().take(LISTED) {
            let _ = writeln!(out, "  {:>6} alerts  {}", i.alert_count, i.title);
        }
    }
    let sets = |r: &Run| -> BTreeSet<BTreeSet<String>> {
        r.incidents.values().map(|i| i.alerts.clone()).collect()
    };
    let (sa, sb) = (sets(&runs[0]), sets(&runs[1]));
    for (k, (which, run)) in ["A", "B"].iter().zip(runs).enumerate() {
        let other = if k == 0 { &sb } else { &sa };
        let only: Vec<&Seen> = run
            .incidents
            .values()
            .filter(|i| !other.contains(&i.alerts))
            .collect();
        let _ = writeln!(
            out,
            "\nincidents only {which} has (by alert set): {}",
            only.len()
        );
        for i in only.iter().take(LISTED) {
            let _ = writeln!(out, "  {:>6} alerts  {}", i.alert_count, i.title);
        }
    }
    out
}
