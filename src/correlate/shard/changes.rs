//! Change correlation: "what changed?" on every incident. The shard remembers the change events
//! (deploys, config pushes) of each routing key, and an incident's messages list those that
//! arrived from `correlate.change_window` before it opened until now and name what the
//! incident's alerts name: the change's `source` is one of an alert's source, component, host,
//! service or pod; or a top-level string of the change's `custom_details` equals the alert's
//! label of that name (`service`, `version`, ...), or its host, service or pod for those keys.
//! Each listed change says which value matched.
//!
//! Invariants: per routing key, changes oldest first, at most [`MAX_PER_KEY`], none older than
//! [`KEEP`] plus the window before that key's newest; at most [`MAX_KEYS`] routing keys (past
//! it, the key whose newest change is oldest is forgotten). What a key keeps depends only on
//! that key's changes, so an incident lists the same changes whichever shard or partition
//! holds its key. An incident lists at most [`MAX_LISTED`], the latest.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::{ChangeEvent, LinkKind, Linked};
use crate::publish::encode::ChangeRef;
use crate::time::UnixMillis;

use super::super::incident::Incident;

/// Changes remembered per routing key.
pub const MAX_PER_KEY: usize = 100;
/// Routing keys with changes remembered per shard.
pub const MAX_KEYS: usize = 10_000;
/// How long past the window a change is kept: an incident lasts up to `max_duration` (24 h by
/// default) and lists changes from before it opened.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
/// Changes an incident message lists.
pub const MAX_LISTED: usize = 5;

/// What the shard keeps of a change event.
#[derive(Serialize, Deserialize)]
pub(super) struct Change {
    id: Box<str>,
    at: UnixMillis,
    summary: Box<str>,
    source: Option<Box<str>>,
    /// The top-level string fields of `custom_details`.
    details: Vec<(Box<str>, Box<str>)>,
}

#[derive(Default, Serialize, Deserialize)]
pub(super) struct Changes {
    by_key: HashMap<Box<str>, VecDeque<Change>>,
}

/// The entity kinds a change's `source` (or a detail of the same name) is compared with.
const ENTITIES: [LinkKind; 3] = [LinkKind::Host, LinkKind::Service, LinkKind::Pod];

impl Changes {
    /// Every routing key's changes, leaving none (see `split`).
    pub(super) fn take_all(&mut self) -> Vec<(Box<str>, VecDeque<Change>)> {
        self.by_key.drain().collect()
    }

    /// A routing key's changes, taken from another shard (which held all of them).
    pub(super) fn put(&mut self, key: Box<str>, changes: VecDeque<Change>) {
        self.by_key.insert(key, changes);
    }

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
        let key: &str = &change.routing_key;
        if !self.by_key.contains_key(key) && self.by_key.len() >= MAX_KEYS {
            self.forget_stalest();
        }
        let recent = self.by_key.entry(key.into()).or_default();
        recent.push_back(Change {
            id: id.into(),
            at,
            summary: change.summary.as_str().into(),
            source: change
                .source
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Into::into),
            details,
        });
        let keep = (window + KEEP).as_millis() as u64;
        let horizon = UnixMillis(at.0.saturating_sub(keep));
        while recent
            .front()
            .is_some_and(|c| c.at < horizon || recent.len() > MAX_PER_KEY)
        {
            recent.pop_front();
        }
    }

    /// Forgets the routing key whose newest change is oldest.
    fn forget_stalest(&mut self) {
        let stalest = self
            .by_key
            .iter()
            .min_by_key(|(k, v)| (v.back().map(|c| c.at), k.to_string()))
            .map(|(k, _)| k.clone());
        if let Some(k) = stalest {
            self.by_key.remove(&k);
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
        let Some(recent) = self.by_key.get(&*inc.routing_key) else {
            return out;
        };
        for c in recent.iter().rev() {
            if out.len() >= MAX_LISTED || c.at < from {
                break;
            }
            if c.at > now {
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
