//! The compiled generic mapper: [`Mapper`], the set of them [`Mappers`], and [`build`], which
//! turns one `[integrations.generic.<name>]` table into a `Mapper` with every check of the
//! config (name, unknown keys, pointers, template, severity and action maps, dedup key).
//!
//! Invariant: a `Mapper` is made only by `build`, which refuses a table with any problem and
//! reports them all at once; so every mapper held has a valid name, valid pointers, a dedup
//! key or template, and an `action_map` only with an `action_pointer`. Its fields are
//! `pub(super)` for the request-time mapping in `generic.rs` to read.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::event::{Action, Severity};

use super::pointer::{Pointer, Template};

/// One validated mapper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapper {
    pub name: String,
    pub(super) dedup_key: Option<Pointer>,
    pub(super) dedup_key_template: Option<Template>,
    pub(super) text_fields: Vec<(TextField, Pointer)>,
    pub(super) severity: Option<Pointer>,
    pub(super) severity_map: Vec<(String, Severity)>,
    pub(super) timestamp: Option<Pointer>,
    pub(super) details: Option<Pointer>,
    pub(super) labels: Vec<(String, Pointer)>,
    pub(super) action: Option<Pointer>,
    pub(super) action_map: Vec<(String, Action)>,
    pub(super) resolve_when: Option<(Pointer, Vec<String>)>,
    /// A batch: the array of items, each mapped by the other pointers (relative to the item).
    pub(super) items: Option<Pointer>,
    /// Links: their text and the pointer to their `href`.
    pub(super) links: Vec<(String, Pointer)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TextField {
    Summary,
    Source,
    Component,
    Group,
    Class,
}

impl TextField {
    pub(super) fn name(self) -> &'static str {
        match self {
            TextField::Summary => "summary",
            TextField::Source => "source",
            TextField::Component => "component",
            TextField::Group => "group",
            TextField::Class => "class",
        }
    }
}

/// Every configured mapper of `[integrations.generic.<name>]`, in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mappers(pub Vec<Mapper>);

impl Mappers {
    pub fn get(&self, name: &str) -> Option<&Mapper> {
        self.0.iter().find(|m| m.name == name)
    }

    pub(super) fn names(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|m| m.name.as_str()).collect();
        names.join(", ")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawCondition {
    pointer: String,
    equals: OneOrMany,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct RawMapper {
    dedup_key: Option<String>,
    dedup_key_template: Option<String>,
    summary: Option<String>,
    source: Option<String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    severity: Option<String>,
    severity_map: Option<BTreeMap<String, String>>,
    timestamp: Option<String>,
    details: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    action_pointer: Option<String>,
    action_map: Option<BTreeMap<String, String>>,
    resolve_when: Option<RawCondition>,
    items: Option<String>,
    links: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

/// Builds the mapper `name` from its config table. Problems are `(key, message)`, the key
/// relative to the mapper's table (`dedup_key`, `labels.team`, `resolve_when.pointer`).
pub fn build(name: &str, table: toml::Value) -> Result<Mapper, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        problems.push((
            String::new(),
            "a mapper's name is letters, digits, '_' and '-'".into(),
        ));
    }
    let raw: RawMapper = match table.try_into() {
        Ok(raw) => raw,
        Err(e) => {
            problems.push((String::new(), e.to_string().trim_end().to_string()));
            return Err(problems);
        }
    };
    for key in raw.unknown.keys() {
        problems.push((key.clone(), "unknown key".into()));
    }
    let mut pointer = |key: &str, value: Option<String>| -> Option<Pointer> {
        let value = value?;
        match Pointer::parse(&value) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push((key.to_string(), e));
                None
            }
        }
    };
    let dedup_key = pointer("dedup_key", raw.dedup_key);
    let mut text_fields = Vec::new();
    for (field, value) in [
        (TextField::Summary, raw.summary),
        (TextField::Source, raw.source),
        (TextField::Component, raw.component),
        (TextField::Group, raw.group),
        (TextField::Class, raw.class),
    ] {
        if let Some(p) = pointer(field.name(), value) {
            text_fields.push((field, p));
        }
    }
    let severity = pointer("severity", raw.severity);
    let timestamp = pointer("timestamp", raw.timestamp);
    let details = pointer("details", raw.details);
    let action = pointer("action_pointer", raw.action_pointer);
    let items = pointer("items", raw.items);
    let mut labels = Vec::new();
    for (label, value) in raw.labels.unwrap_or_default() {
        if let Some(p) = pointer(&format!("labels.{label}"), Some(value)) {
            labels.push((label, p));
        }
    }
    let mut links = Vec::new();
    for (text, value) in raw.links.unwrap_or_default() {
        if let Some(p) = pointer(&format!("links.{text}"), Some(value)) {
            links.push((text, p));
        }
    }
    let resolve_when = raw.resolve_when.and_then(|c| {
        for key in c.unknown.keys() {
            problems.push((format!("resolve_when.{key}"), "unknown key".into()));
        }
        let equals = match c.equals {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        };
        if equals.is_empty() {
            problems.push((
                "resolve_when.equals".into(),
                "must name at least one value".into(),
            ));
        }
        match Pointer::parse(&c.pointer) {
            Ok(p) => Some((p, equals)),
            Err(e) => {
                problems.push(("resolve_when.pointer".into(), e));
                None
            }
        }
    });
    let dedup_key_template = raw
        .dedup_key_template
        .and_then(|t| match Template::parse(&t) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(("dedup_key_template".into(), e));
                None
            }
        });
    let mut severity_map = Vec::new();
    for (value, sev) in raw.severity_map.unwrap_or_default() {
        match Severity::parse(&sev) {
            Some(s) => severity_map.push((value, s)),
            None => problems.push((
                format!("severity_map.{value}"),
                format!("{sev:?} must be one of {}", Severity::NAMES),
            )),
        }
    }
    let mut action_map = Vec::new();
    for (value, act) in raw.action_map.unwrap_or_default() {
        match Action::parse(&act) {
            Some(a) => action_map.push((value, a)),
            None => problems.push((
                format!("action_map.{value}"),
                format!("{act:?} must be one of trigger, acknowledge, resolve"),
            )),
        }
    }
    if !action_map.is_empty()
        && action.is_none()
        && !problems.iter().any(|(k, _)| k == "action_pointer")
    {
        problems.push(("action_map".into(), "needs action_pointer".into()));
    }
    let has_key = dedup_key.is_some() || dedup_key_template.is_some();
    if !has_key && !problems.iter().any(|(k, _)| k.starts_with("dedup_key")) {
        problems.push((
            "dedup_key".into(),
            "a mapper needs dedup_key (a pointer) or dedup_key_template".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Mapper {
        name: name.to_string(),
        dedup_key,
        dedup_key_template,
        text_fields,
        severity,
        severity_map,
        timestamp,
        details,
        labels,
        action,
        action_map,
        resolve_when,
        items,
        links,
    })
}
