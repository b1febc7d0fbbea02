//! `[correlate]`: shards, caps, grouping rules (windows, flap) and inhibition. Every key is
//! optional; the values shown are the defaults:
//!
//! ```toml
//! [correlate]
//! shards = 0                           # 0 = one per core
//! queue_capacity = 16384               # events queued per shard before ingest answers 503
//! max_alerts_per_message = 100
//! max_alerts = 1000000                 # caps; the totals are split evenly between shards
//! max_alerts_per_routing_key = 100000
//! max_incidents = 100000
//! max_incidents_per_routing_key = 10000
//! route_ttl = "7d"                     # how long a re-routed alert's route is remembered
//!
//! [[correlate.rules]]                  # none: one built-in rule with every default
//! name = "default"
//! matchers = []                        # e.g. [{ name = "component", op = "=", value = "db" }]
//! group_by = []                        # e.g. ["source", "labels.cluster"]
//! window = "rolling"                   # or "fixed"
//! window_duration = "5m"
//! max_duration = "24h"
//! group_wait = "30s"
//! group_interval = "1m"
//! min_alerts = 1
//! # pause_transient = "2m"             # off unless set
//! # flap = { max_changes = 4, within = "10m", cooldown = "15m" }  # off unless set
//!
//! [[correlate.inhibit]]                # none by default
//! source = [{ name = "labels.alertname", op = "=", value = "ClusterDown" }]
//! target = [{ name = "severity", op = "!=", value = "critical" }]
//! equal = []                           # e.g. ["labels.cluster"]
//! ```
//!
//! Validates that the queue size and the caps are greater than zero; for each rule, that its
//! name is not used twice, its matchers and `group_by` fields parse, `window` is known, the
//! times are durations, `window_duration` is greater than zero and at most `max_duration`,
//! and `min_alerts` and `flap.max_changes` are greater than zero; for each inhibit rule, that
//! it has at least one source and one target matcher and its `equal` entries are fields.
//! Unknown keys are rejected at every level.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::{defaults, Problems, Unknown};
use crate::event::{Field, LinkKind};
use crate::matchers::{Matcher, RawMatcher};

#[derive(Deserialize, Default)]
pub(super) struct RawCorrelate {
    shards: Option<usize>,
    queue_capacity: Option<usize>,
    max_alerts_per_message: Option<usize>,
    max_alerts: Option<usize>,
    max_alerts_per_routing_key: Option<usize>,
    max_incidents: Option<usize>,
    max_incidents_per_routing_key: Option<usize>,
    route_ttl: Option<String>,
    auto_group: Option<Vec<String>>,
    symptom_inhibition: Option<bool>,
    learned_pause: Option<String>,
    change_window: Option<String>,
    rules: Option<Vec<RawRule>>,
    inhibit: Option<Vec<RawInhibit>>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawInhibit {
    source: Option<Vec<RawMatcher>>,
    target: Option<Vec<RawMatcher>>,
    equal: Option<Vec<String>>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawFlap {
    max_changes: Option<u32>,
    within: Option<String>,
    cooldown: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// `flap = false` (off), or the flap table.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawFlapSetting {
    On(bool),
    Table(RawFlap),
}

/// `pause_transient = "2m"` (every severity), or a table by severity.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawPause {
    All(String),
    BySeverity(RawPauseTable),
}

#[derive(Deserialize, Default)]
struct RawPauseTable {
    critical: Option<String>,
    error: Option<String>,
    warning: Option<String>,
    info: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize, Default)]
struct RawRule {
    name: Option<String>,
    matchers: Option<Vec<RawMatcher>>,
    group_by: Option<Vec<String>>,
    window: Option<String>,
    window_duration: Option<String>,
    max_duration: Option<String>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    pause_transient: Option<RawPause>,
    min_alerts: Option<u32>,
    flap: Option<RawFlapSetting>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Clone, Debug)]
pub struct CorrelateConfig {
    pub shards: usize,
    pub queue_capacity: usize,
    pub max_alerts_per_message: usize,
    /// Caps over all shards (split evenly between them) and per routing key; past a cap a new
    /// alert folds into its routing key's overflow incident, and the cap is counted.
    pub max_alerts: usize,
    pub max_alerts_per_routing_key: usize,
    pub max_incidents: usize,
    pub max_incidents_per_routing_key: usize,
    pub rules: Vec<RuleConfig>,
    pub inhibit: Vec<InhibitRule>,
    /// The top-level `[[event_rules]]`, applied in the partition of the sender's routing key.
    pub event_rules: Vec<super::EventRule>,
    /// The top-level `[[maintenance]]` windows: weekly silences.
    pub maintenance: Vec<super::MaintenanceWindow>,
    /// The top-level `[[heartbeats]]`: dead man's switches.
    pub heartbeats: Vec<super::HeartbeatConfig>,
    /// How long a partition remembers where the event rules sent an alert after its last event
    /// (so that its acknowledges and resolves, which carry only a dedup key, follow it).
    pub route_ttl: Duration,
    /// An alert whose class usually resolves within this is held this long whatever its
    /// severity (`correlate::shard::pause`); zero: off.
    pub learned_pause: Duration,
    /// Incident messages list the change events of this long before they opened that name what
    /// their alerts name (`correlate::shard::changes`); zero: off.
    pub change_window: Duration,
}

/// While an open alert matches `source`, alerts of the same routing key that match `target`
/// and have the same values of the `equal` fields are inhibited (Alertmanager's inhibition).
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<Field>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlapConfig {
    /// More state changes than this within `within` mark an alert flapping.
    pub max_changes: u32,
    pub within: Duration,
    /// A flapping incident holds its updates until no alert changed for this long.
    pub cooldown: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Anchored at the incident's opening.
    Fixed,
    /// Extended by every new alert, up to `max_duration`.
    Rolling,
}

/// How long a new incident is held, by the severity of its alerts (`Severity as usize`):
/// resolved within it, it is never published; a more severe alert joining shortens it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pause(pub [Duration; 4]);

impl Pause {
    /// `"never"`: alerts of this severity alone never publish their incident.
    pub const NEVER: Duration = Duration::MAX;

    /// The same pause for every severity.
    pub fn all(d: Duration) -> Self {
        Pause([d; 4])
    }

    pub fn of(&self, severity: crate::event::Severity) -> Duration {
        self.0[severity as usize]
    }
}

#[derive(Clone, Debug)]
pub struct RuleConfig {
    pub name: String,
    /// The events this rule applies to; empty matches everything. First matching rule wins.
    pub matchers: Vec<Matcher>,
    pub group_by: Vec<Field>,
    /// Set when the rule names no `group_by`: grouping by shared values instead of equal keys.
    pub auto_group: Vec<LinkKind>,
    pub window: WindowKind,
    pub window_duration: Duration,
    pub max_duration: Duration,
    pub group_wait: Duration,
    pub group_interval: Duration,
    /// An incident whose alerts all resolve within this time of opening is never published.
    pub pause_transient: Pause,
    /// Alerts an incident must gather (within its window) before it is published.
    pub min_alerts: u32,
    pub flap: Option<FlapConfig>,
}

impl Default for RuleConfig {
    /// The built-in rule: every default, grouping by [`defaults::AUTO_GROUP`].
    fn default() -> Self {
        let auto = auto_group(None, &mut Problems(Vec::new()));
        RawRule::default().validate("correlate.rules[default]", &auto, &mut Problems(Vec::new()))
    }
}

impl RuleConfig {
    /// The built-in rule without its noise defaults: grouping by nothing, no pause, no flap
    /// detection (what a test of one mechanism builds on).
    pub fn plain() -> Self {
        RuleConfig {
            auto_group: Vec::new(),
            pause_transient: Pause::default(),
            flap: None,
            ..RuleConfig::default()
        }
    }
}

/// `correlate.auto_group`, parsed.
fn auto_group(names: Option<Vec<String>>, p: &mut Problems) -> Vec<LinkKind> {
    let names =
        names.unwrap_or_else(|| defaults::AUTO_GROUP.iter().map(|s| s.to_string()).collect());
    let mut kinds = Vec::new();
    for n in &names {
        match LinkKind::parse(n) {
            Some(k) if !kinds.contains(&k) => kinds.push(k),
            Some(_) => p.add("correlate.auto_group", format!("{n:?} is listed twice")),
            None => p.add(
                "correlate.auto_group",
                format!("{n:?} is not one of class, host, pod, rack, service, cluster"),
            ),
        }
    }
    kinds
}

/// The built-in symptom inhibition (`correlate.symptom_inhibition`): an open alert whose
/// class says its host is down or unreachable holds back the other alerts about that host
/// (`entity.host`: both alerts must name one).
fn symptom_rule() -> InhibitRule {
    let down = defaults::HOST_DOWN_CLASS;
    let m = |name: &str, op: &str, value: &str| {
        Matcher::new(name, op, value).expect("a valid built-in matcher")
    };
    InhibitRule {
        source: vec![m("class", "=~", down), m("entity.host", "=~", ".+")],
        target: vec![m("class", "!~", down), m("entity.host", "=~", ".+")],
        equal: vec![Field::Entity(LinkKind::Host)],
    }
}

impl RawCorrelate {
    pub(super) fn validate(self, p: &mut Problems) -> CorrelateConfig {
        p.unknown("correlate", &self.unknown);
        let auto = auto_group(self.auto_group, p);
        let raw_rules = self.rules.unwrap_or_default();
        let mut rules: Vec<RuleConfig> = raw_rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.validate(&format!("correlate.rules[{i}]"), &auto, p))
            .collect();
        if rules.last().is_none_or(|r| !r.matchers.is_empty()) {
            rules.push(RawRule::default().validate("correlate.rules[default]", &auto, p));
        }
        let mut names = HashSet::new();
        for (i, r) in rules.iter().enumerate() {
            if !names.insert(r.name.as_str()) {
                p.add(
                    &format!("correlate.rules[{i}].name"),
                    format!("{:?} is used twice", r.name),
                );
            }
        }
        let mut inhibit: Vec<InhibitRule> = self
            .inhibit
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.validate(&format!("correlate.inhibit[{i}]"), p))
            .collect();
        if self
            .symptom_inhibition
            .unwrap_or(defaults::SYMPTOM_INHIBITION)
        {
            inhibit.push(symptom_rule());
        }
        CorrelateConfig {
            max_alerts: p.positive(
                "correlate.max_alerts",
                self.max_alerts.unwrap_or(defaults::MAX_ALERTS),
            ),
            max_alerts_per_routing_key: p.positive(
                "correlate.max_alerts_per_routing_key",
                self.max_alerts_per_routing_key
                    .unwrap_or(defaults::MAX_ALERTS_PER_ROUTING_KEY),
            ),
            max_incidents: p.positive(
                "correlate.max_incidents",
                self.max_incidents.unwrap_or(defaults::MAX_INCIDENTS),
            ),
            max_incidents_per_routing_key: p.positive(
                "correlate.max_incidents_per_routing_key",
                self.max_incidents_per_routing_key
                    .unwrap_or(defaults::MAX_INCIDENTS_PER_ROUTING_KEY),
            ),
            inhibit,
            shards: self.shards.unwrap_or(defaults::SHARDS),
            queue_capacity: p.positive(
                "correlate.queue_capacity",
                self.queue_capacity.unwrap_or(defaults::QUEUE_CAPACITY),
            ),
            max_alerts_per_message: p.positive(
                "correlate.max_alerts_per_message",
                self.max_alerts_per_message
                    .unwrap_or(defaults::MAX_ALERTS_PER_MESSAGE),
            ),
            rules,
            event_rules: Vec::new(),
            maintenance: Vec::new(),
            heartbeats: Vec::new(),
            route_ttl: p.duration(
                "correlate.route_ttl",
                self.route_ttl.as_deref(),
                defaults::ROUTE_TTL,
            ),
            learned_pause: p.duration(
                "correlate.learned_pause",
                self.learned_pause.as_deref(),
                defaults::LEARNED_PAUSE,
            ),
            change_window: p.duration(
                "correlate.change_window",
                self.change_window.as_deref(),
                defaults::CHANGE_WINDOW,
            ),
        }
    }
}

impl RawRule {
    fn validate(self, at: &str, auto: &[LinkKind], p: &mut Problems) -> RuleConfig {
        p.unknown(at, &self.unknown);
        let auto_group = if self.group_by.is_none() {
            auto.to_vec()
        } else {
            Vec::new()
        };
        let group_by = fields(
            &format!("{at}.group_by"),
            self.group_by,
            " (source, component, group, class, severity, summary, integration, dedup_key, labels.<name>, entity.<class|host|pod|rack|service|cluster>)",
            p,
        );
        let window = p.one_of(
            &format!("{at}.window"),
            self.window.as_deref(),
            defaults::WINDOW,
            &[
                ("fixed", WindowKind::Fixed),
                ("rolling", WindowKind::Rolling),
            ],
        );
        let flap = match self.flap {
            None | Some(RawFlapSetting::On(true)) => Some(RawFlap::default()),
            Some(RawFlapSetting::On(false)) => None,
            Some(RawFlapSetting::Table(f)) => Some(f),
        };
        let flap = flap.map(|f| {
            p.unknown(&format!("{at}.flap"), &f.unknown);
            FlapConfig {
                max_changes: p.positive(
                    &format!("{at}.flap.max_changes"),
                    f.max_changes.unwrap_or(defaults::FLAP_MAX_CHANGES),
                ),
                within: p.duration(
                    &format!("{at}.flap.within"),
                    f.within.as_deref(),
                    defaults::FLAP_WITHIN,
                ),
                cooldown: p.duration(
                    &format!("{at}.flap.cooldown"),
                    f.cooldown.as_deref(),
                    defaults::FLAP_COOLDOWN,
                ),
            }
        });
        let key = format!("{at}.pause_transient");
        let pause_transient = match self.pause_transient {
            Some(RawPause::All(d)) => Pause::all(p.duration(&key, Some(&d), "0s")),
            by_severity => {
                let t = match by_severity {
                    Some(RawPause::BySeverity(t)) => t,
                    _ => RawPauseTable::default(),
                };
                p.unknown(&key, &t.unknown);
                let [info, warning, error, critical] = defaults::PAUSE_TRANSIENT;
                let mut pause = |name: &str, raw: Option<String>, default: &str| match raw
                    .as_deref()
                    .unwrap_or(default)
                {
                    "never" => Pause::NEVER,
                    d => p.duration(&format!("{key}.{name}"), Some(d), "0s"),
                };
                Pause([
                    pause("info", t.info, info),
                    pause("warning", t.warning, warning),
                    pause("error", t.error, error),
                    pause("critical", t.critical, critical),
                ])
            }
        };
        let rule = RuleConfig {
            name: self.name.unwrap_or_else(|| defaults::RULE_NAME.into()),
            matchers: p.matchers(&format!("{at}.matchers"), self.matchers.as_deref()),
            group_by,
            auto_group,
            window,
            window_duration: p.duration(
                &format!("{at}.window_duration"),
                self.window_duration.as_deref(),
                defaults::WINDOW_DURATION,
            ),
            max_duration: p.duration(
                &format!("{at}.max_duration"),
                self.max_duration.as_deref(),
                defaults::MAX_DURATION,
            ),
            group_wait: p.duration(
                &format!("{at}.group_wait"),
                self.group_wait.as_deref(),
                defaults::GROUP_WAIT,
            ),
            group_interval: p.duration(
                &format!("{at}.group_interval"),
                self.group_interval.as_deref(),
                defaults::GROUP_INTERVAL,
            ),
            pause_transient,
            min_alerts: p.positive(
                &format!("{at}.min_alerts"),
                self.min_alerts.unwrap_or(defaults::MIN_ALERTS),
            ),
            flap,
        };
        if rule.window_duration.is_zero() {
            p.add(
                &format!("{at}.window_duration"),
                "must be greater than zero",
            );
        }
        if rule.max_duration < rule.window_duration {
            p.add(
                &format!("{at}.max_duration"),
                "must be at least window_duration",
            );
        }
        rule
    }
}

impl RawInhibit {
    fn validate(self, at: &str, p: &mut Problems) -> InhibitRule {
        p.unknown(at, &self.unknown);
        let source = p.matchers(&format!("{at}.source"), self.source.as_deref());
        let target = p.matchers(&format!("{at}.target"), self.target.as_deref());
        if source.is_empty() || target.is_empty() {
            p.add(at, "needs at least one source and one target matcher");
        }
        let equal = fields(&format!("{at}.equal"), self.equal, "", p);
        InhibitRule {
            source,
            target,
            equal,
        }
    }
}

/// The fields named at `key` (`group_by`, `equal`); each name that is not one is reported,
/// followed by `hint`.
fn fields(key: &str, names: Option<Vec<String>>, hint: &str, p: &mut Problems) -> Vec<Field> {
    names
        .unwrap_or_default()
        .iter()
        .filter_map(|f| {
            let parsed = Field::parse(f);
            if parsed.is_none() {
                p.add(key, format!("{f:?} is not a field{hint}"));
            }
            parsed
        })
        .collect()
}
