//! The one event model every integration parses into (DESIGN section 2).

use std::borrow::Cow;
use std::fmt;

use crate::integration::{Integration, KeySpace};
use crate::time::UnixMillis;

mod intern;
mod kept_details;
mod labels;
pub mod names;
pub mod values;
pub mod wire;

pub use kept_details::{DetailsRef, KeptDetails};
use labels::NameSet;
pub use labels::{LabelBuf, Labels, Placed};

/// The longest dedup key any sender may use (PagerDuty's limit).
pub const MAX_DEDUP_KEY_CHARS: usize = 255;
/// The longest summary kept; longer ones are truncated at a character boundary and counted.
pub const MAX_SUMMARY_CHARS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "trigger" => Some(Action::Trigger),
            "acknowledge" => Some(Action::Acknowledge),
            "resolve" => Some(Action::Resolve),
            _ => None,
        }
    }
}

/// Ordered from least to most severe, so `max` gives the worst.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const NAMES: &'static str = "critical, error, warning, info";

    /// Case-insensitive: `Critical` and `CRITICAL` are `critical`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ("critical", Severity::Critical),
            ("error", Severity::Error),
            ("warning", Severity::Warning),
            ("info", Severity::Info),
        ]
        .into_iter()
        .find_map(|(name, sev)| s.eq_ignore_ascii_case(name).then_some(sev))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub href: String,
    /// Most are a parser's fixed name for the link ("Source", "Runbook"), kept without a copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Cow<'static, str>>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Image {
    pub src: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
}

/// One alert event: a trigger, acknowledge or resolve of the alert
/// `(routing_key, key_space, dedup_key)`.
/// Acknowledge and resolve events carry only the key fields; the rest stay empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub routing_key: String,
    pub integration: Integration,
    /// Set from `integration` by [`Event::new`]; see [`KeySpace`].
    pub key_space: KeySpace,
    pub action: Action,
    pub dedup_key: String,
    pub severity: Severity,
    pub summary: String,
    pub source: String,
    pub component: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
    pub labels: LabelBuf,
    /// The sender's free-form details, kept as compact JSON.
    pub custom_details: Option<Details>,
    pub timestamp: Option<UnixMillis>,
    pub received_at: UnixMillis,
    /// For senders without explicit resolves (Alertmanager API `endsAt`, `resolve_timeout`):
    /// the alert resolves at this time unless a later trigger moves it.
    pub ends_at: Option<UnixMillis>,
    pub links: Vec<Link>,
    pub images: Vec<Image>,
}

impl Event {
    /// An event with only its identity set; parsers fill in the rest.
    pub fn new(
        integration: Integration,
        action: Action,
        routing_key: String,
        dedup_key: String,
        received_at: UnixMillis,
    ) -> Self {
        Event {
            routing_key,
            integration,
            key_space: integration.key_space(),
            action,
            dedup_key,
            severity: Severity::Error,
            summary: String::new(),
            source: String::new(),
            component: None,
            group: None,
            class: None,
            labels: LabelBuf::default(),
            custom_details: None,
            timestamp: None,
            received_at,
            ends_at: None,
            links: Vec::new(),
            images: Vec::new(),
        }
    }

    /// The value of a field (`source`, `labels.team`, ...), empty when absent.
    pub fn field(&self, field: &Field) -> &str {
        match field {
            Field::RoutingKey => &self.routing_key,
            Field::Source => &self.source,
            Field::Component => self.component.as_deref().unwrap_or(""),
            Field::Group => self.group.as_deref().unwrap_or(""),
            Field::Class => self.class.as_deref().unwrap_or(""),
            Field::Severity => self.severity.as_str(),
            Field::Summary => &self.summary,
            Field::Integration => self.integration.as_str(),
            Field::DedupKey => &self.dedup_key,
            Field::Label(name) => self.labels.get(name).unwrap_or(""),
            Field::Entity(kind) => kind.value(self),
        }
    }
}

/// A field of an event or alert, named as in config and the API: what `group_by` groups by and
/// what matchers match on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    RoutingKey,
    Source,
    Component,
    Group,
    Class,
    Severity,
    Summary,
    Integration,
    DedupKey,
    Label(String),
    /// `entity.<kind>`: see [`LinkKind`].
    Entity(LinkKind),
}

/// What an alert is about, read from whichever field carries it (`entity.<kind>` in
/// `group_by`, matchers and `equal`), and what a rule without `group_by` groups by
/// (`correlate.auto_group`: see `correlate::shard::grouping`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// `class` (Prometheus' `alertname`, PagerDuty's `class`, a check's name).
    Class,
    /// `labels.host`, `hostname`, `node` or `nodename`, else `labels.instance` without its port;
    /// for events without labels, `source`.
    Host,
    /// `labels.pod`.
    Pod,
    /// `labels.rack`.
    Rack,
    /// `labels.service`; for events without labels, `group`, else `component` (PagerDuty's
    /// `component` alone names a kind of thing, `postgres`, more often than one service).
    Service,
    /// `labels.cluster`; for events without labels, `group`.
    Cluster,
}

impl LinkKind {
    pub const ALL: [LinkKind; 6] = [
        LinkKind::Class,
        LinkKind::Host,
        LinkKind::Pod,
        LinkKind::Rack,
        LinkKind::Service,
        LinkKind::Cluster,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Class => "class",
            LinkKind::Host => "host",
            LinkKind::Pod => "pod",
            LinkKind::Rack => "rack",
            LinkKind::Service => "service",
            LinkKind::Cluster => "cluster",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What [`LinkKind::value`] reads of an event or an alert.
pub trait Linked {
    fn labels(&self) -> Labels<'_>;
    /// A label's value, when the label is there and not empty.
    fn label(&self, name: &str) -> Option<&str> {
        self.labels().get(name).filter(|v| !v.is_empty())
    }
    /// No labels at all (a PagerDuty-style event): then `source`, `component` and `group` name
    /// the host, service and cluster.
    fn bare(&self) -> bool {
        self.labels().is_empty()
    }
    fn source(&self) -> &str;
    fn component(&self) -> Option<&str>;
    fn group(&self) -> Option<&str>;
    fn class(&self) -> Option<&str>;
}

/// The labels that name an alert's host, in precedence order: `instance` (without its port)
/// only when none of the others is there.
static HOST: NameSet<5> = NameSet::new(["host", "hostname", "node", "nodename", "instance"]);
const INSTANCE: usize = 4;
static POD: NameSet<1> = NameSet::new(["pod"]);
static RACK: NameSet<1> = NameSet::new(["rack"]);
static SERVICE: NameSet<1> = NameSet::new(["service"]);
static CLUSTER: NameSet<1> = NameSet::new(["cluster"]);

impl LinkKind {
    /// Its value for an event or alert, "" when it has none.
    pub fn value<T: Linked>(self, x: &T) -> &str {
        let bare = x.bare();
        let label = |set: &NameSet<1>| x.labels().first_of(set).map(|(_, v)| v);
        let value = match self {
            LinkKind::Class => x.class(),
            LinkKind::Host => match x.labels().first_of(&HOST) {
                Some((INSTANCE, instance)) => Some(without_port(instance)),
                Some((_, host)) => Some(host),
                None => bare.then(|| x.source()).filter(|s| !s.is_empty()),
            },
            LinkKind::Pod => label(&POD),
            LinkKind::Rack => label(&RACK),
            LinkKind::Service => label(&SERVICE).or_else(|| {
                bare.then(|| x.group().or(x.component()))
                    .flatten()
                    .filter(|s| !s.is_empty())
            }),
            LinkKind::Cluster => label(&CLUSTER).or_else(|| x.group().filter(|_| bare)),
        };
        value.unwrap_or("")
    }
}

impl LinkKind {
    /// What a bare (PagerDuty-style) event's `custom_details` name, where its tool puts that
    /// there: `host` (or `hostname`, `node`, `nodename`), `pod`, `rack`, `service`, `cluster`,
    /// as top-level strings. Auto grouping links by these besides the event's own fields.
    pub fn named_in(details: &Details) -> Vec<(LinkKind, String)> {
        #[derive(serde::Deserialize)]
        struct Named {
            host: Option<String>,
            hostname: Option<String>,
            node: Option<String>,
            nodename: Option<String>,
            pod: Option<String>,
            rack: Option<String>,
            service: Option<String>,
            cluster: Option<String>,
        }
        let Ok(named) = serde_json::from_str::<Named>(details.0.get()) else {
            return Vec::new();
        };
        let host = [named.host, named.hostname, named.node, named.nodename]
            .into_iter()
            .flatten()
            .find(|h| !h.is_empty());
        [
            (LinkKind::Host, host),
            (LinkKind::Pod, named.pod),
            (LinkKind::Rack, named.rack),
            (LinkKind::Service, named.service),
            (LinkKind::Cluster, named.cluster),
        ]
        .into_iter()
        .filter_map(|(kind, value)| Some((kind, value.filter(|v| !v.is_empty())?)))
        .collect()
    }
}

/// `host:port` without `:port` (`[::1]:9100` -> `[::1]`); anything else as it is.
fn without_port(instance: &str) -> &str {
    match instance.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => instance,
    }
}

impl Linked for Event {
    fn labels(&self) -> Labels<'_> {
        self.labels.labels()
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn component(&self) -> Option<&str> {
        self.component.as_deref()
    }
    fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }
    fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }
}

impl Field {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "routing_key" => Field::RoutingKey,
            "source" => Field::Source,
            "component" => Field::Component,
            "group" => Field::Group,
            "class" => Field::Class,
            "severity" => Field::Severity,
            "summary" => Field::Summary,
            "integration" => Field::Integration,
            "dedup_key" => Field::DedupKey,
            _ => match s.strip_prefix("entity.") {
                Some(kind) => Field::Entity(LinkKind::parse(kind)?),
                None => Field::Label(s.strip_prefix("labels.").filter(|l| !l.is_empty())?.into()),
            },
        })
    }

    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(match self {
            Field::RoutingKey => "routing_key",
            Field::Source => "source",
            Field::Component => "component",
            Field::Group => "group",
            Field::Class => "class",
            Field::Severity => "severity",
            Field::Summary => "summary",
            Field::Integration => "integration",
            Field::DedupKey => "dedup_key",
            Field::Label(l) => return format!("labels.{l}").into(),
            Field::Entity(k) => return format!("entity.{}", k.as_str()).into(),
        })
    }
}

/// A PagerDuty change event: published as a `change` message, never grouped into incidents.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    pub routing_key: String,
    pub integration: Integration,
    pub summary: String,
    pub source: Option<String>,
    pub custom_details: Option<Details>,
    pub timestamp: Option<UnixMillis>,
    pub received_at: UnixMillis,
    pub links: Vec<Link>,
    pub images: Vec<Image>,
}

/// An operator's command on one incident (the admin API, the commands topic): it travels to
/// the partition of its routing key like an event, in order with the incident's events.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub routing_key: String,
    pub incident_id: String,
    pub action: CommandAction,
    /// Who asked (the admin token's name, or the command's `by`).
    pub by: String,
    pub reason: Option<String>,
    pub received_at: UnixMillis,
}

/// What a [`Command`] does to its incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandAction {
    /// Acknowledges every triggered alert of the incident.
    Acknowledge,
    /// Resolves every open alert of the incident.
    Resolve,
    /// Acknowledges every triggered alert until `until`, when those that are still open
    /// trigger again (and page again).
    Snooze { until: UnixMillis },
}

impl CommandAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandAction::Acknowledge => "acknowledge",
            CommandAction::Resolve => "resolve",
            CommandAction::Snooze { .. } => "snooze",
        }
    }
}

/// Free-form JSON from the sender (`custom_details`), validated once and kept as compact text.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Details(pub Box<serde_json::value::RawValue>);

impl PartialEq for Details {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// xxh3-128 over length-prefixed parts: stable across processes and versions, so a derived
/// key or id comes out the same on every retry and every replay.
pub fn fingerprint(parts: &[&[u8]]) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.digest128()
}

/// `prefix` and 32 hex digits of [`fingerprint`] over `parts`: incident, change and silence ids,
/// the same on every replay.
pub fn deterministic_id(prefix: &str, parts: &[&[u8]]) -> String {
    format!("{prefix}{:032x}", fingerprint(parts))
}

/// Cuts `s` to at most `max` characters at a character boundary; true when it cut.
pub fn truncate_chars(s: &mut String, max: usize) -> bool {
    match s.char_indices().nth(max) {
        Some((at, _)) => {
            s.truncate(at);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_and_parses_case_insensitively() {
        assert!(Severity::Critical > Severity::Error);
        assert!(Severity::Warning > Severity::Info);
        assert_eq!(Severity::parse("CRITICAL"), Some(Severity::Critical));
        assert_eq!(Severity::parse("Warning"), Some(Severity::Warning));
        assert_eq!(Severity::parse("page"), None);
    }

    #[test]
    fn ids_are_deterministic_and_length_prefixed() {
        let a = deterministic_id("inc_", &[b"rk", b"db-1"]);
        assert_eq!(a, deterministic_id("inc_", &[b"rk", b"db-1"]));
        assert_eq!(a.len(), 4 + 32);
        assert_ne!(a, deterministic_id("inc_", &[b"rkd", b"b-1"]));
    }

    #[test]
    fn truncates_at_char_boundary() {
        let mut s = "é".repeat(1030);
        assert!(truncate_chars(&mut s, MAX_SUMMARY_CHARS));
        assert_eq!(s.chars().count(), 1024);
        assert_eq!(s.len(), 2048);
        let mut short = String::from("disk full");
        assert!(!truncate_chars(&mut short, MAX_SUMMARY_CHARS));
        assert_eq!(short, "disk full");
    }

    #[test]
    fn group_fields_round_trip_their_names() {
        for name in [
            "routing_key",
            "source",
            "component",
            "group",
            "class",
            "severity",
            "summary",
            "integration",
            "dedup_key",
            "labels.team",
        ] {
            assert_eq!(Field::parse(name).unwrap().name(), name);
        }
        assert_eq!(Field::parse("labels."), None);
        assert_eq!(Field::parse("hostname"), None);
    }
}
