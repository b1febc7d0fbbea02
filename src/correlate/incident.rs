//! Alert and incident state, and how an incident is rendered into a message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::event::Labels;
use crate::event::{DetailsRef, Event, Field, Link, LinkKind, Linked, Severity};
use crate::integration::{Integration, KeySpace};
use crate::matchers::Subject;
pub use crate::publish::encode::OverflowCounts;
use crate::publish::encode::{
    to_json, AlertBody, ChangeRef, GroupKey, IncidentBody, LabelMap, MessageKind, OutboundMessage,
    Reasons, Status, Topic, INCIDENT_SCHEMA,
};
use crate::time::{MaybeMillis, UnixMillis};

use super::rules::Rule;
use super::said::Said;
use super::text::{AlertText, Text, TextField};

/// Links kept per incident (the union of its alerts' links, first come first kept).
pub const MAX_LINKS: usize = 10;

/// One deduplicated alert: every event with its `(routing_key, dedup_key)` while it is open.
/// Serialized only into shard snapshots (`shard::snapshot`, written as
/// `super::alert_record` says), where a field added later needs a default so that older
/// snapshots still read.
pub struct Alert {
    /// xxh3 of `(routing_key, dedup_key)`: its place in the alert table and flap history.
    pub hash: u64,
    /// Dedup key, source, component, group, class and labels, in one allocation (read through
    /// the methods of those names).
    pub(super) text: AlertText,
    /// Its latest event's summary and details.
    pub(super) said: Said,
    pub severity: Severity,
    pub status: Status,
    pub integration: Integration,
    pub key_space: KeySpace,
    pub event_count: u32,
    pub first_seen: UnixMillis,
    pub last_seen: UnixMillis,
    /// Resolves by time at this instant unless a later trigger moves it.
    pub ends_at: MaybeMillis,
    pub silenced: bool,
    pub inhibited: bool,
    /// Under an auto rule, the link (an index into its `auto_group`) it joined its incident
    /// by; none for the incident's first alert.
    pub grouped_by: Option<u8>,
    /// Set when it joined by a value that is not its own of that link's kind: which of its
    /// kinds named it (an index into `auto_group`), and whether its details did
    /// (`grouping::JOINED_IN_DETAILS`): an APM tool's source matching a Prometheus `service`.
    pub joined_as: Option<u8>,
}

impl Alert {
    /// A newly triggered alert from its first event, taking out of `event` the fields an alert
    /// keeps (its summary and details; the rest is copied into the alert's text); the routing
    /// key, links and images stay in `event` for the incident.
    pub fn triggered(hash: u64, event: &mut Event, now: UnixMillis) -> Alert {
        let text = AlertText::new(Text {
            dedup_key: &event.dedup_key,
            source: &event.source,
            component: event.component.as_deref(),
            group: event.group.as_deref(),
            class: event.class.as_deref(),
            labels: event.labels.labels(),
        });
        Alert {
            hash,
            text,
            said: Said::new(
                std::mem::take(&mut event.summary),
                event.custom_details.take(),
            ),
            severity: event.severity,
            status: Status::Triggered,
            integration: event.integration,
            key_space: event.key_space,
            event_count: 1,
            first_seen: now,
            last_seen: now,
            ends_at: MaybeMillis::new(event.ends_at),
            silenced: false,
            inhibited: false,
            grouped_by: None,
            joined_as: None,
        }
    }

    pub fn summary(&self) -> &str {
        self.said.summary()
    }

    pub fn details(&self) -> Option<DetailsRef<'_>> {
        self.said.details()
    }

    pub fn dedup_key(&self) -> &str {
        self.text.get(TextField::DedupKey).unwrap_or_default()
    }

    pub fn source(&self) -> &str {
        self.text.get(TextField::Source).unwrap_or_default()
    }

    pub fn component(&self) -> Option<&str> {
        self.text.get(TextField::Component)
    }

    pub fn group(&self) -> Option<&str> {
        self.text.get(TextField::Group)
    }

    pub fn class(&self) -> Option<&str> {
        self.text.get(TextField::Class)
    }

    pub fn labels(&self) -> Labels<'_> {
        self.text.labels()
    }

    /// The value it joined its incident by, the incident's link being of `kind` (see
    /// `joined_as`).
    fn joined_value(&self, auto: &[LinkKind], kind: LinkKind) -> String {
        use super::shard::JOINED_IN_DETAILS;
        let Some(as_) = self.joined_as else {
            return kind.value(self).to_string();
        };
        let own = auto
            .get((as_ & !JOINED_IN_DETAILS) as usize)
            .copied()
            .unwrap_or(kind);
        if as_ & JOINED_IN_DETAILS == 0 {
            return own.value(self).to_string();
        }
        self.details()
            .map(|d| LinkKind::named_in(&d.to_details()))
            .and_then(|named| named.into_iter().find(|(k, _)| *k == own))
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    pub fn suppressed(&self) -> bool {
        self.silenced || self.inhibited
    }

    pub fn is_open(&self) -> bool {
        self.status != Status::Resolved
    }
}

impl Linked for Alert {
    fn labels(&self) -> Labels<'_> {
        Alert::labels(self)
    }
    fn source(&self) -> &str {
        Alert::source(self)
    }
    fn component(&self) -> Option<&str> {
        Alert::component(self)
    }
    fn group(&self) -> Option<&str> {
        Alert::group(self)
    }
    fn class(&self) -> Option<&str> {
        Alert::class(self)
    }
}

/// An alert with its routing key, for matchers.
pub struct AlertView<'a> {
    pub routing_key: &'a str,
    pub alert: &'a Alert,
}

impl Subject for AlertView<'_> {
    fn get(&self, field: &Field) -> &str {
        let a = self.alert;
        match field {
            Field::RoutingKey => self.routing_key,
            Field::Source => a.source(),
            Field::Component => a.component().unwrap_or(""),
            Field::Group => a.group().unwrap_or(""),
            Field::Class => a.class().unwrap_or(""),
            Field::Severity => a.severity.as_str(),
            Field::Summary => a.summary(),
            Field::Integration => a.integration.as_str(),
            Field::DedupKey => a.dedup_key(),
            Field::Label(name) => a.labels().get(name).unwrap_or(""),
            Field::Entity(kind) => kind.value(a),
        }
    }
}

/// A group of alerts, from its opening until all its alerts resolve. Serialized only into
/// shard snapshots, like [`Alert`].
#[derive(Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub seq: u32,
    pub routing_key: Box<str>,
    pub rule: u16,
    pub group_values: Box<[Box<str>]>,
    pub group_hash: u64,
    /// Under an auto rule, the link hashes it holds in the link index (see `shard::grouping`).
    #[serde(default)]
    pub related: Vec<u64>,
    /// Resolved before this, it is never published: the earliest end of its alerts' pauses,
    /// each from its first event (an alert that resolved within its own no longer counts:
    /// `shard::pause`).
    #[serde(default)]
    pub pause_end: UnixMillis,
    /// The pause that holds it was learned (the class usually blips), not its severity's.
    #[serde(default)]
    pub pause_learned: bool,
    /// The alert (its index in `alerts`) whose pause `pause_end` is the end of; the first
    /// alert's when a snapshot predates it.
    #[serde(default)]
    pub pause_by: u32,
    pub title: Box<str>,
    pub opened_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// New alerts join while `now < window_end`.
    pub window_end: UnixMillis,
    pub resolved_at: Option<UnixMillis>,
    /// Every alert the incident has held, in arrival order; resolved ones stay for the record.
    pub alerts: Vec<Alert>,
    pub open_alerts: u32,
    pub acked_alerts: u32,
    /// Open alerts that are silenced or inhibited.
    pub suppressed_open: u32,
    /// Alerts that joined unsuppressed, or became so: what `min_alerts` counts.
    pub gathered: u32,
    /// Not published before this: the end of `group_wait` (and of `pause_transient`).
    pub publish_at: UnixMillis,
    /// Flapping until this instant (extended by every state change while flapping).
    pub flapping_until: Option<UnixMillis>,
    /// The `flapping` message of the current flapping spell went out.
    pub flap_announced: bool,
    /// Open alerts per severity, indexed by `Severity as usize`.
    pub severity_counts: [u32; 4],
    /// The severity it had just before its last open alert resolved (that alert's, as it last
    /// was): what [`Incident::severity`] says once none is open.
    pub last_severity: Severity,
    pub event_count: u64,
    pub integrations: crate::integration::KindSet,
    pub links: Vec<Link>,
    pub published: bool,
    pub published_severity: Severity,
    pub published_status: Status,
    pub last_published_at: UnixMillis,
    /// A change not yet published (waiting for `group_interval`).
    pub dirty: bool,
    /// The token and deadline of the pending timer (token 0: none).
    pub timer: u64,
    pub timer_at: UnixMillis,
    /// A routing key's overflow incident (past a cap, see `shard::overflow`): what it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<OverflowCounts>,
    /// Whether the group index still points here (false once the window closed).
    pub in_group_index: bool,
    /// Snoozed by an operator until this: its alerts stay acknowledged until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<UnixMillis>,
    /// The last operator command applied, which its messages name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<crate::publish::encode::CommandNote>,
}

impl Incident {
    /// Open alerts that are neither silenced nor inhibited.
    pub fn visible(&self) -> u32 {
        self.open_alerts - self.suppressed_open
    }

    pub fn flapping(&self, now: UnixMillis) -> bool {
        self.flapping_until.is_some_and(|until| now < until)
    }

    /// The highest severity among open alerts; once none is open, the last one it had (its last
    /// open alert's, as it last was, not its peak), so a `resolved` message never says more
    /// than the state before it.
    pub fn severity(&self) -> Severity {
        const BY_RANK: [Severity; 4] = [
            Severity::Info,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ];
        (0..4)
            .rev()
            .find(|&i| self.severity_counts[i] > 0)
            .map_or(self.last_severity, |i| BY_RANK[i])
    }

    pub fn status(&self) -> Status {
        if self.open_alerts == 0 {
            Status::Resolved
        } else if self.acked_alerts == self.open_alerts {
            Status::Acknowledged
        } else {
            Status::Triggered
        }
    }

    pub fn add_links(&mut self, links: Vec<Link>) {
        for l in links {
            if self.links.len() >= MAX_LINKS {
                break;
            }
            if !self.links.iter().any(|have| have.href == l.href) {
                self.links.push(l);
            }
        }
    }

    /// What grouped, held and suppressed what (see [`Reasons`]).
    fn reasons(&self, rule: &Rule) -> Reasons {
        let mut joined_by = BTreeMap::new();
        let (mut inhibited, mut silenced) = (0, 0);
        for a in &self.alerts {
            if let Some(kind) = a.grouped_by.and_then(|i| rule.auto().get(i as usize)) {
                *joined_by.entry(kind.as_str()).or_insert(0) += 1;
            }
            silenced += u32::from(a.is_open() && a.silenced);
            inhibited += u32::from(a.is_open() && a.inhibited && !a.silenced);
        }
        let waited = self.opened_at.saturating_add(rule.config.group_wait);
        let paused = self.pause_end > waited && self.pause_end != UnixMillis::NEVER;
        Reasons {
            grouping: if rule.auto().is_empty() {
                "group_by"
            } else {
                "auto"
            },
            joined_by,
            paused_until: paused.then_some(self.pause_end),
            pause: paused.then_some(if self.pause_learned {
                "learned"
            } else {
                "severity"
            }),
            inhibited,
            silenced,
            flapping: self.flapping_until.is_some(),
        }
    }

    /// Renders the next message of this incident, decided at `now` (the caller bumps `seq`
    /// first).
    pub fn to_message(
        &self,
        kind: MessageKind,
        rule: &Rule,
        max_alerts: usize,
        changes: &[ChangeRef],
        now: UnixMillis,
    ) -> OutboundMessage {
        let shown = self.alerts.len().min(max_alerts);
        // An overflow incident lists samples of the alerts it took.
        let alert_count = self
            .overflow
            .map_or(self.alerts.len() as u64, |o| o.taken)
            .min(u64::from(u32::MAX)) as u32;
        let body = IncidentBody {
            schema: INCIDENT_SCHEMA,
            kind,
            incident_id: &self.id,
            seq: self.seq,
            routing_key: &self.routing_key,
            rule: &rule.name,
            group_key: GroupKey {
                fields: &rule.field_names,
                values: &self.group_values,
                auto: !rule.auto().is_empty(),
            },
            title: &self.title,
            severity: self.severity(),
            status: self.status(),
            opened_at: self.opened_at,
            updated_at: self.updated_at,
            resolved_at: self.resolved_at,
            alert_count,
            open_alert_count: self.open_alerts,
            event_count: self.event_count,
            alerts: self.alerts[..shown]
                .iter()
                .map(|a| AlertBody {
                    dedup_key: a.dedup_key(),
                    summary: a.summary(),
                    severity: a.severity,
                    status: a.status,
                    event_count: a.event_count,
                    first_seen: a.first_seen,
                    last_seen: a.last_seen,
                    source: a.source(),
                    integration: a.integration.as_str(),
                    class: a.class(),
                    component: a.component(),
                    group: a.group(),
                    labels: LabelMap(a.labels()),
                    grouped_by: a.grouped_by.and_then(|i| {
                        let kind = rule.auto().get(i as usize)?;
                        Some(format!(
                            "{}={}",
                            kind.as_str(),
                            a.joined_value(rule.auto(), *kind)
                        ))
                    }),
                    suppressed: match (a.silenced, a.inhibited) {
                        (true, _) => Some("silenced"),
                        (false, true) => Some("inhibited"),
                        (false, false) => None,
                    },
                    details: a.details(),
                })
                .collect(),
            alerts_truncated: alert_count - shown as u32,
            integrations: self.integrations.iter().map(Integration::as_str).collect(),
            links: &self.links,
            overflow: self.overflow,
            reasons: self.reasons(rule),
            changes,
            snoozed_until: self.snoozed_until,
            command: self.last_command.as_ref(),
        };
        OutboundMessage {
            topic: Topic::Incidents,
            kind,
            key: self.id.clone(),
            id: format!("{}.{}", self.id, self.seq),
            body: to_json(&body),
            published_at: None,
            first_event_at: (kind == MessageKind::Opened).then_some(self.opened_at),
            decided_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open alert is one of these in its incident's list: a byte here is 100 kB in a
    /// storm of 100k alerts (README, "Where an open alert's bytes go").
    #[test]
    fn an_open_alert_stays_small() {
        let size = std::mem::size_of::<Alert>();
        assert!(size <= 104, "{size} bytes");
    }
}
