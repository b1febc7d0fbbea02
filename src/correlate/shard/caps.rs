//! The caps: this shard's share of the configured limits on open alerts and incidents. Past
//! one an alert is not tracked one by one but folds into its routing key's overflow incident
//! (fail open, bounded: `overflow`).
//!
//! Invariants: a routing key has an entry in `per_routing_key` exactly while one of its
//! incidents is in a slot, and the entry counts its open alerts and its incidents in slots.
//! Nothing past a cap is tracked as an alert: its overflow incident keeps only its hash.

use std::collections::HashMap;

use super::store::Slots;
use super::Shard;

/// The caps, in the order of their index (the `cap` label of `sluice_caps_reached_total`).
pub(super) const CAPS: [&str; 4] = [
    "alerts",
    "alerts_per_routing_key",
    "incidents",
    "incidents_per_routing_key",
];

/// Per-shard share of the configured caps.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub max_alerts: usize,
    pub max_alerts_per_routing_key: usize,
    pub max_incidents: usize,
    pub max_incidents_per_routing_key: usize,
    pub max_alerts_per_message: usize,
}

impl Caps {
    /// Generous caps for tests and benches.
    pub fn unbounded(max_alerts_per_message: usize) -> Self {
        Caps {
            max_alerts: usize::MAX,
            max_alerts_per_routing_key: usize::MAX,
            max_incidents: usize::MAX,
            max_incidents_per_routing_key: usize::MAX,
            max_alerts_per_message,
        }
    }
}

#[derive(Default)]
struct PerRoutingKey {
    alerts: usize,
    incidents: usize,
}

/// What the per-routing-key caps count.
#[derive(Default)]
pub(super) struct Usage {
    per_routing_key: HashMap<Box<str>, PerRoutingKey>,
}

impl Usage {
    /// What the caps count for the incidents in `slots`.
    pub(super) fn rebuild(slots: &Slots) -> Self {
        let mut usage = Usage::default();
        for (_, inc) in slots.iter() {
            let counts = usage
                .per_routing_key
                .entry(inc.routing_key.clone())
                .or_default();
            counts.incidents += 1;
            counts.alerts += inc.open_alerts as usize;
        }
        usage
    }

    pub(super) fn alert_opened(&mut self, routing_key: String) {
        match self.per_routing_key.get_mut(&*routing_key) {
            Some(counts) => counts.alerts += 1,
            None => {
                let counts = PerRoutingKey {
                    alerts: 1,
                    ..PerRoutingKey::default()
                };
                self.per_routing_key
                    .insert(routing_key.into_boxed_str(), counts);
            }
        }
    }

    pub(super) fn alert_resolved(&mut self, routing_key: &str) {
        if let Some(c) = self.per_routing_key.get_mut(routing_key) {
            c.alerts -= 1;
        }
    }

    pub(super) fn incident_opened(&mut self, routing_key: Box<str>) {
        self.per_routing_key
            .entry(routing_key)
            .or_default()
            .incidents += 1;
    }

    pub(super) fn incident_closed(&mut self, routing_key: &str) {
        if let Some(c) = self.per_routing_key.get_mut(routing_key) {
            c.incidents -= 1;
            if c.incidents == 0 && c.alerts == 0 {
                self.per_routing_key.remove(routing_key);
            }
        }
    }
}

impl Shard {
    /// The first cap (its index in [`CAPS`]) a new alert of `routing_key` would go past; the
    /// incident caps count only when it would open an incident.
    pub(super) fn cap_reached(&self, routing_key: &str, opens_incident: bool) -> Option<usize> {
        let per_key = self.usage.per_routing_key.get(routing_key);
        let (rk_alerts, rk_incidents) = per_key.map_or((0, 0), |c| (c.alerts, c.incidents));
        let caps = &self.caps;
        if self.alerts.len() >= caps.max_alerts {
            Some(0)
        } else if rk_alerts >= caps.max_alerts_per_routing_key {
            Some(1)
        } else if opens_incident && self.open_incidents() >= caps.max_incidents {
            Some(2)
        } else if opens_incident && rk_incidents >= caps.max_incidents_per_routing_key {
            Some(3)
        } else {
            None
        }
    }
}
