//! Change correlation: "what changed?" on every incident. The shard remembers the change events
//! (deploys, config pushes) of each routing key for `correlate.change_window`, and an
//! incident's messages list those that arrived from `change_window` before it opened until
//! now and name what the incident's alerts name: the change's `source` is one of an alert's
//! source, component, host, service or pod; or a top-level string of the change's
//! `custom_details` equals the alert's label of that name (`service`, `version`, ...), or its
//! host, service or pod for those keys. Each listed change says which value matched.
//!
//! Invariants: at most [`MAX_CHANGES`] changes a shard, oldest first, none older than the
//! window before the newest; an incident lists at most [`MAX_LISTED`], the latest.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::{ChangeEvent, LinkKind, Linked};
use crate::publish::encode::ChangeRef;
use crate::time::UnixMillis;

use super::super::incident::Incident;

/// Changes a shard remembers, over all routing keys.
pub const MAX_CHANGES: usize = 10_000;
/// Changes an incident message lists.
pub const MAX_LISTED: usize = 5;

/// What the shard keeps of a change event.
#[derive(Serialize, Deserialize)]
struct Change {
    id: Box<str>,
    routing_key: Box<str>,
    at: UnixMillis,
    summary: Box<str>,
    source: Option<Box<str>>,
    /// The top-level string fields of `custom_details`.
    details: Vec<(Box<str>, Box<str>)>,
}

#[derive(Default, Serialize, Deserialize)]
pub(super) struct Changes {
    recent: VecDeque<Change>,
}

/// The entity kinds a change's `source` (or a detail of the same name) is compared with.
const ENTITIES: [LinkKind; 3] = [LinkKind::Host, LinkKind::Service, LinkKind::Pod];

impl Changes {
    /// Remembers a change (its id as published) and forgets what fell out of `window`.
    pub(super) fn record(&mut self, id: &str, change: &ChangeEvent, window: Duration) {
        let details = change
            .custom_details
            .as_ref()
            .and_then(|d| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(d.0.get()).ok()
            })
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| match v {
                        serde_json::Value::String(s) if !s.is_empty() => {
                            Some((k.into_boxed_str(), s.into_boxed_str()))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let at = change.received_at;
        self.recent.push_back(Change {
            id: id.into(),
            routing_key: change.routing_key.as_str().into(),
            at,
            summary: change.summary.as_str().into(),
            source: change
                .source
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Into::into),
            details,
        });
        let horizon = UnixMillis(at.0.saturating_sub(window.as_millis() as u64));
        while self
            .recent
            .front()
            .is_some_and(|c| c.at < horizon || self.recent.len() > MAX_CHANGES)
        {
            self.recent.pop_front();
        }
    }

    /// The changes `inc` lists at `now`, latest first, each with what matched.
    pub(super) fn matching(
        &self,
        inc: &Incident,
        window: Duration,
        now: UnixMillis,
    ) -> Vec<ChangeRef> {
        let from = UnixMillis(inc.opened_at.0.saturating_sub(window.as_millis() as u64));
        let mut out = Vec::new();
        for c in self.recent.iter().rev() {
            if out.len() >= MAX_LISTED || c.at < from {
                break;
            }
            if c.at > now || *c.routing_key != *inc.routing_key {
                continue;
            }
            if let Some(matched) = inc.alerts.iter().find_map(|a| matches(c, a)) {
                out.push(ChangeRef {
                    change_id: c.id.to_string(),
                    summary: c.summary.to_string(),
                    source: c.source.as_deref().map(str::to_string),
                    at: c.at,
                    matched,
                });
            }
        }
        out
    }
}

/// What of `alert` the change names, as `field=value`.
fn matches(c: &Change, alert: &impl Linked) -> Option<String> {
    if let Some(source) = c.source.as_deref() {
        if alert.source() == source || alert.component() == Some(source) {
            return Some(format!("source={source}"));
        }
        if let Some(kind) = ENTITIES.iter().find(|k| k.value(alert) == source) {
            return Some(format!("entity.{}={source}", kind.as_str()));
        }
    }
    for (k, v) in &c.details {
        if alert.label(k) == Some(v) {
            return Some(format!("labels.{k}={v}"));
        }
        let entity = ENTITIES
            .iter()
            .find(|kind| kind.as_str() == &**k)
            .filter(|kind| kind.value(alert) == &**v);
        if let Some(kind) = entity {
            return Some(format!("entity.{}={v}", kind.as_str()));
        }
    }
    None
}
