//! Grouping and inhibition rules, ready for the hot path: matchers compiled, field names
//! rendered once. Grouping rules are ordered and the first whose matchers an event meets wins.

use crate::config::{InhibitRule, RuleConfig};
use crate::event::{Event, Field, LinkKind};
use crate::matchers::{all_match, Matcher};

pub struct Rule {
    pub name: String,
    pub config: RuleConfig,
    /// `group_by` as the names that key `group_key` in messages.
    pub field_names: Vec<String>,
}

impl Rule {
    pub fn new(config: RuleConfig) -> Self {
        let field_names = if config.auto_group.is_empty() {
            config
                .group_by
                .iter()
                .map(|f| f.name().into_owned())
                .collect()
        } else {
            config
                .auto_group
                .iter()
                .map(|k| k.as_str().to_string())
                .collect()
        };
        Rule {
            name: config.name.clone(),
            field_names,
            config,
        }
    }

    pub fn group_by(&self) -> &[Field] {
        &self.config.group_by
    }

    /// The link kinds of an auto rule (one without `group_by`); empty otherwise.
    pub fn auto(&self) -> &[LinkKind] {
        &self.config.auto_group
    }
}

/// The first rule whose matchers the event meets. The config always ends with a rule that
/// matches everything when none of the listed ones does (see [`with_fallback`]).
pub fn select(rules: &[Rule], event: &Event) -> usize {
    rules
        .iter()
        .position(|r| all_match(&r.config.matchers, event))
        .unwrap_or(rules.len() - 1)
}

/// The rules as configured, plus the built-in default rule at the end when the last listed
/// rule has matchers, so every event falls under some rule.
pub fn with_fallback(configs: &[RuleConfig]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = configs.iter().cloned().map(Rule::new).collect();
    if rules.last().is_none_or(|r| !r.config.matchers.is_empty()) {
        rules.push(Rule::new(RuleConfig {
            name: "default".into(),
            ..RuleConfig::default()
        }));
    }
    rules
}

/// An inhibition rule, as the shard applies it.
#[derive(Debug)]
pub struct Inhibit {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<Field>,
}

impl From<&InhibitRule> for Inhibit {
    fn from(r: &InhibitRule) -> Self {
        Inhibit {
            source: r.source.clone(),
            target: r.target.clone(),
            equal: r.equal.clone(),
        }
    }
}

/// A fingerprint of grouping and inhibition rules as configured (their `Debug` text, so it
/// may change between sluice versions even when the rules did not: a difference means only
/// "maybe changed"). A snapshot made under other rules is restored by rule name.
pub fn fingerprint(rules: &[Rule], inhibit: &[Inhibit]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    for r in rules {
        h.update(format!("{:?}\n", r.config).as_bytes());
    }
    h.update(b"inhibit\n");
    for i in inhibit {
        h.update(format!("{i:?}\n").as_bytes());
    }
    h.digest()
}
