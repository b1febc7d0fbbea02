//! The incidents view: what is open now, and what resolved lately, built from the incident
//! messages sluice publishes, for the admin API (`/api/v1/incidents`, `/api/v1/stats`).
//!
//! It is fed by the messages themselves, so it is the same in both pipeline modes: in memory
//! mode a [`ViewSink`] sees each message on its way to the producer; in Kafka mode every
//! instance with the ingest role reads the incidents topic ([`follow`]), so any instance
//! answers for every partition, a little behind the correlators (a message is in the view once
//! it is on the topic). Memory mode on a real broker reads the topic too, so that what a
//! restart restored is in the view at once (what both feed is applied once, by `seq`). Messages of one incident apply in `seq` order; a repeat (a message made
//! again after a failover) changes nothing.
//!
//! Bounded: open incidents are bounded by the correlators' caps; resolved ones are kept for
//! [`KEEP_RESOLVED`] and at most [`MAX_RESOLVED`] of them (the oldest resolved go first), so
//! statistics look back at most that far. Each incident keeps its latest message and a
//! timeline of at most [`MAX_TIMELINE`] steps.

pub mod follow;
mod packed;
pub mod query;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::Value;

use packed::Packed;

use crate::publish::encode::{OutboundMessage, Topic, INCIDENT_SCHEMA};
use crate::publish::{SendError, Sink};
use crate::time::{parse_timestamp, Timestamp, UnixMillis};

pub use query::{Filter, Page, Stats};

/// How long a resolved incident stays in the view.
pub const KEEP_RESOLVED: Duration = Duration::from_secs(24 * 3600);
/// The most resolved incidents kept.
pub const MAX_RESOLVED: usize = 10_000;
/// The most timeline steps kept per incident (the first and the latest ones).
pub const MAX_TIMELINE: usize = 100;

/// One message of an incident, as its timeline shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Step {
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: u64,
    /// `published_at`, else `updated_at` (replayed messages have no send time).
    pub at: String,
    pub status: String,
    pub severity: String,
    pub alert_count: u64,
    pub open_alert_count: u64,
}

/// One incident: its latest message and the steps that led there.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The latest message without its `alerts`.
    pub latest: Value,
    /// The latest message's `alerts`, as their JSON text (deflated when long, see `packed`):
    /// read when asked for ([`Entry::alerts`]) rather than kept as a tree of values, which held
    /// several times their size (an incident of 100 listed alerts of 12 labels took hundreds of
    /// KiB) and cost its parse on every message.
    pub alerts: Option<Packed>,
    pub timeline: Vec<Step>,
    pub seq: u64,
    pub opened: UnixMillis,
    pub resolved: Option<UnixMillis>,
}

impl Entry {
    pub fn str(&self, member: &str) -> &str {
        self.latest[member].as_str().unwrap_or_default()
    }

    /// The alerts the latest message lists.
    pub fn alerts(&self) -> Vec<Value> {
        self.alerts
            .as_ref()
            .and_then(|packed| serde_json::from_str(&packed.text()).ok())
            .unwrap_or_default()
    }

    /// The latest message, whole.
    pub fn message(&self) -> Value {
        let mut m = self.latest.clone();
        if let (Some(head), Some(packed)) = (m.as_object_mut(), &self.alerts) {
            let alerts = serde_json::from_str(&packed.text()).unwrap_or_default();
            head.insert("alerts".into(), alerts);
        }
        m
    }
}

/// A message read with its `alerts` left as text (in the message's body).
struct Split<'b> {
    head: serde_json::Map<String, Value>,
    alerts: Option<&'b RawValue>,
}

impl<'de> serde::Deserialize<'de> for Split<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Split<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an incident message")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Split<'de>, A::Error> {
                let mut split = Split {
                    head: serde_json::Map::new(),
                    alerts: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    if key == "alerts" {
                        split.alerts = Some(map.next_value()?);
                    } else {
                        let value = map.next_value()?;
                        split.head.insert(key, value);
                    }
                }
                Ok(split)
            }
        }
        d.deserialize_map(Members)
    }
}

#[derive(Default)]
struct State {
    incidents: HashMap<String, Entry>,
    /// Resolved incidents by when they resolved, for eviction.
    resolved: BTreeSet<(UnixMillis, String)>,
}

/// The view; shared by the sink or follower that feeds it and the API that reads it.
#[derive(Default)]
pub struct View {
    state: RwLock<State>,
}

/// Why a message did not apply.
#[derive(Debug, PartialEq, Eq)]
pub enum Skipped {
    /// Not JSON, or not an incident message.
    NotIncident,
    /// A `seq` at or below the one applied: a repeat, or out of order.
    Stale,
}

impl View {
    pub fn new() -> Arc<View> {
        Arc::new(View::default())
    }

    /// Applies one message body (JSON) from the incidents topic.
    pub fn apply(&self, body: &[u8]) -> Result<(), Skipped> {
        let Split { head, alerts } =
            serde_json::from_slice(body).map_err(|_| Skipped::NotIncident)?;
        let msg = Value::Object(head);
        if msg["schema"] != INCIDENT_SCHEMA {
            return Err(Skipped::NotIncident);
        }
        let (Some(id), Some(seq)) = (msg["incident_id"].as_str(), msg["seq"].as_u64()) else {
            return Err(Skipped::NotIncident);
        };
        let id = id.to_string();
        let time = |member: &str| match msg[member].as_str().and_then(parse_timestamp) {
            Some(Timestamp::At(t)) => Some(t),
            _ => None,
        };
        let opened = time("opened_at").ok_or(Skipped::NotIncident)?;
        let resolved = time("resolved_at");
        let step = Step {
            kind: msg["type"].as_str().unwrap_or_default().to_string(),
            seq,
            at: msg["published_at"]
                .as_str()
                .or(msg["updated_at"].as_str())
                .unwrap_or_default()
                .to_string(),
            status: msg["status"].as_str().unwrap_or_default().to_string(),
            severity: msg["severity"].as_str().unwrap_or_default().to_string(),
            alert_count: msg["alert_count"].as_u64().unwrap_or(0),
            open_alert_count: msg["open_alert_count"].as_u64().unwrap_or(0),
        };
        // A repeat (memory mode on a real broker sees each message twice) is not packed.
        if self.with_entries(|all| all.get(&id).is_some_and(|e| seq <= e.seq)) {
            return Err(Skipped::Stale);
        }
        let alerts = alerts.map(|raw| Packed::new(raw.get()));
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let State {
            incidents,
            resolved: by_resolution,
        } = &mut *state;
        let entry = incidents.entry(id.clone()).or_insert_with(|| Entry {
            latest: Value::Null,
            alerts: None,
            timeline: Vec::new(),
            seq: 0,
            opened,
            resolved: None,
        });
        if seq <= entry.seq {
            return Err(Skipped::Stale);
        }
        if let Some(was) = entry.resolved.take() {
            by_resolution.remove(&(was, id.clone()));
        }
        if entry.timeline.len() >= MAX_TIMELINE {
            // Keep the first step (how it opened) and the latest ones.
            entry.timeline.remove(1);
        }
        entry.timeline.push(step);
        entry.latest = msg;
        entry.alerts = alerts;
        entry.seq = seq;
        entry.resolved = resolved;
        if let Some(at) = resolved {
            by_resolution.insert((at, id));
        }
        Self::evict(&mut state);
        Ok(())
    }

    /// Drops resolved incidents past [`MAX_RESOLVED`] or older than [`KEEP_RESOLVED`] (by the
    /// latest resolution seen: the view's clock is its messages).
    fn evict(state: &mut State) {
        let newest = state.resolved.last().map(|(at, _)| *at);
        while let Some((at, id)) = state.resolved.first().cloned() {
            let old = newest.is_some_and(|n| n.saturating_sub(at) > KEEP_RESOLVED);
            if state.resolved.len() <= MAX_RESOLVED && !old {
                break;
            }
            state.resolved.pop_first();
            state.incidents.remove(&id);
        }
    }

    /// Runs `f` over every incident.
    pub(crate) fn with_entries<T>(&self, f: impl FnOnce(&HashMap<String, Entry>) -> T) -> T {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&state.incidents)
    }

    /// One incident, with its timeline.
    pub fn get(&self, id: &str) -> Option<Entry> {
        self.with_entries(|all| all.get(id).cloned())
    }

    /// How many incidents are open and kept resolved.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let resolved = state.resolved.len();
        (state.incidents.len() - resolved, resolved)
    }
}

/// Memory mode: feeds the view with each incident message on its way to `inner`.
pub struct ViewSink {
    inner: Arc<dyn Sink>,
    view: Arc<View>,
}

impl ViewSink {
    pub fn new(inner: Arc<dyn Sink>, view: Arc<View>) -> ViewSink {
        ViewSink { inner, view }
    }
}

impl Sink for ViewSink {
    fn send(&self, msg: &OutboundMessage) -> Result<(), SendError> {
        self.inner.send(msg)?;
        if msg.topic == Topic::Incidents {
            let _ = self.view.apply(&msg.body);
        }
        Ok(())
    }

    fn ready(&self) -> bool {
        self.inner.ready()
    }

    fn flush(&self, timeout: Duration) -> i32 {
        self.inner.flush(timeout)
    }

    fn failures(&self) -> u64 {
        self.inner.failures()
    }
}

/// Counts by a string key, in name order (for the statistics).
pub(crate) type Tally = BTreeMap<String, query::Counts>;

#[cfg(test)]
mod tests;
