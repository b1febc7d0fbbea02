//! Questions the view answers: a filtered, paged list of incidents (newest opened first) and
//! noise statistics per routing key and integration over a time window.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{Entry, Tally, View};
use crate::time::UnixMillis;

/// The most incidents one page lists.
pub const MAX_LIMIT: usize = 500;
pub const DEFAULT_LIMIT: usize = 50;

/// Which incidents to list; an empty set means any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub routing_keys: Vec<String>,
    pub severities: Vec<String>,
    /// Default (empty): open ones, `triggered` and `acknowledged`.
    pub statuses: Vec<String>,
    pub integrations: Vec<String>,
    /// Opened at or after / before.
    pub since: Option<UnixMillis>,
    pub until: Option<UnixMillis>,
    pub limit: usize,
    /// Where the previous page ended: `<opened ms>.<incident_id>`.
    pub cursor: Option<(UnixMillis, String)>,
}

impl Filter {
    fn admits(&self, e: &Entry) -> bool {
        let any = |set: &[String], v: &str| set.is_empty() || set.iter().any(|s| s == v);
        let status = e.str("status");
        let open = status != "resolved";
        let statuses_ok = match self.statuses.is_empty() {
            true => open,
            false => any(&self.statuses, status),
        };
        let integrations = e.latest["integrations"].as_array();
        let integration_ok = self.integrations.is_empty()
            || integrations.is_some_and(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .any(|i| any(&self.integrations, i))
            });
        statuses_ok
            && integration_ok
            && any(&self.routing_keys, e.str("routing_key"))
            && any(&self.severities, e.str("severity"))
            && self.since.is_none_or(|s| e.opened >= s)
            && self.until.is_none_or(|u| e.opened < u)
    }
}

/// One incident as a list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub incident_id: String,
    pub routing_key: String,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub opened_at: Value,
    pub updated_at: Value,
    pub resolved_at: Value,
    pub alert_count: Value,
    pub open_alert_count: Value,
    pub event_count: Value,
    pub integrations: Value,
    /// The latest message's `type` and `seq`.
    pub last_type: String,
    pub seq: u64,
}

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct Page {
    pub incidents: Vec<Summary>,
    /// How many incidents the filter admits, on every page.
    pub total: usize,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl View {
    /// The incidents `filter` admits, newest opened first, one page.
    pub fn list(&self, filter: &Filter) -> Page {
        self.with_entries(|all| {
            let mut admitted: Vec<(&String, &Entry)> =
                all.iter().filter(|(_, e)| filter.admits(e)).collect();
            admitted.sort_by(|a, b| (b.1.opened, b.0).cmp(&(a.1.opened, a.0)));
            let total = admitted.len();
            let start = match &filter.cursor {
                Some((at, id)) => admitted
                    .iter()
                    .position(|(i, e)| (e.opened, *i) < (*at, id))
                    .unwrap_or(total),
                None => 0,
            };
            let limit = filter.limit.clamp(1, MAX_LIMIT);
            let page: Vec<_> = admitted.iter().skip(start).take(limit).collect();
            let next_cursor = (start + page.len() < total)
                .then(|| page.last().map(|(id, e)| format!("{}.{id}", e.opened.0)))
                .flatten();
            Page {
                incidents: page.iter().map(|(id, e)| summary(id, e)).collect(),
                total,
                next_cursor,
            }
        })
    }

    /// Noise statistics of the incidents opened in the `window` before `now`.
    pub fn stats(&self, window: Duration, now: UnixMillis) -> Stats {
        let from = UnixMillis(now.0.saturating_sub(window.as_millis() as u64));
        self.with_entries(|all| {
            let mut keys = Tally::new();
            let mut integrations = Tally::new();
            for e in all.values().filter(|e| e.opened >= from) {
                let m = &e.latest;
                let count = |k: &str| m[k].as_u64().unwrap_or(0);
                let c = keys.entry(e.str("routing_key").to_string()).or_default();
                c.incidents += 1;
                c.alerts += count("alert_count");
                c.events += count("event_count");
                if e.str("status") != "resolved" {
                    c.open += 1;
                }
                for a in e.alerts() {
                    let name = a["integration"].as_str().unwrap_or("unknown");
                    let c = integrations.entry(name.to_string()).or_default();
                    c.alerts += 1;
                    c.events += a["event_count"].as_u64().unwrap_or(0);
                    c.incidents_with.insert(m["incident_id"].to_string());
                }
            }
            Stats {
                window_seconds: window.as_secs(),
                from: from.to_string(),
                to: now.to_string(),
                routing_keys: keys
                    .into_iter()
                    .map(|(k, c)| c.row("routing_key", k))
                    .collect(),
                integrations: integrations
                    .into_iter()
                    .map(|(k, c)| c.row("integration", k))
                    .collect(),
            }
        })
    }
}

fn summary(id: &str, e: &Entry) -> Summary {
    let m = &e.latest;
    Summary {
        incident_id: id.to_string(),
        routing_key: e.str("routing_key").to_string(),
        title: e.str("title").to_string(),
        severity: e.str("severity").to_string(),
        status: e.str("status").to_string(),
        opened_at: m["opened_at"].clone(),
        updated_at: m["updated_at"].clone(),
        resolved_at: m["resolved_at"].clone(),
        alert_count: m["alert_count"].clone(),
        open_alert_count: m["open_alert_count"].clone(),
        event_count: m["event_count"].clone(),
        integrations: m["integrations"].clone(),
        last_type: e.str("type").to_string(),
        seq: e.seq,
    }
}

/// Counts of one routing key or integration.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub incidents: u64,
    pub open: u64,
    pub alerts: u64,
    pub events: u64,
    /// Integrations: the incidents its alerts are listed in.
    pub incidents_with: std::collections::BTreeSet<String>,
}

impl Counts {
    fn row(self, name: &str, value: String) -> Value {
        let incidents = self.incidents.max(self.incidents_with.len() as u64);
        let ratio = |n: u64| match incidents {
            0 => Value::Null,
            i => serde_json::json!((n as f64 / i as f64 * 10.0).round() / 10.0),
        };
        let mut row = BTreeMap::new();
        row.insert(name.to_string(), Value::String(value));
        row.insert("incidents".into(), incidents.into());
        row.insert("alerts".into(), self.alerts.into());
        row.insert("events".into(), self.events.into());
        row.insert("events_per_incident".into(), ratio(self.events));
        if name == "routing_key" {
            row.insert("open".into(), self.open.into());
        }
        serde_json::to_value(row).expect("a map of values")
    }
}

/// Noise statistics over a window: how many events became how many incidents.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub window_seconds: u64,
    pub from: String,
    pub to: String,
    pub routing_keys: Vec<Value>,
    pub integrations: Vec<Value>,
}
