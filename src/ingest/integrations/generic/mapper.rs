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

use super::pointer::{Pointer, Source, Template};

/// One validated mapper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapper {
    pub name: String,
    pub(super) dedup_key: Option<Source>,
    pub(super) dedup_key_template: Option<Template>,
    pub(super) text_fields: Vec<(TextField, Source)>,
    pub(super) severity: Option<Source>,
    /// `"*"` (every other value) is kept apart, in `severity_other`.
    pub(super) severity_map: Vec<(String, Severity)>,
    pub(super) severity_other: Option<Severity>,
    /// When `severity` gives none (before the kind's `default_severity`).
    pub(super) default_severity: Option<Severity>,
    /// A pointer (a string or an epoch number there), or a template read as text.
    pub(super) timestamp: Option<Source>,
    pub(super) details: Option<Pointer>,
    pub(super) labels: Vec<(String, Source)>,
    pub(super) action: Option<Source>,
    /// How the config spelled `action` (`action_pointer` is the older name), for messages.
    pub(super) action_key: &'static str,
    /// `"*"` (every other value) is kept apart, in `action_other`.
    pub(super) action_map: Vec<(String, Action)>,
    pub(super) action_other: Option<Action>,
    /// Action values mapped to `ignore`: the sender's events that are not alerts (a test ping,
    /// a CI run starting); such a document makes no event. `"*"` sets `ignore_other`.
    pub(super) ignore: Vec<String>,
    pub(super) ignore_other: bool,
    pub(super) resolve_when: Option<(Pointer, Vec<String>)>,
    /// A batch: the array of items, each mapped by the other pointers (relative to the item).
    pub(super) items: Option<Pointer>,
    /// Links: their text and where their `href` comes from.
    pub(super) links: Vec<(String, Source)>,
    /// What the request's body is.
    pub body: BodyKind,
    /// The success status the sender expects (`answer`; none: the usual `202`).
    pub answer: Option<http::StatusCode>,
}

/// What a mapped request carries its document in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BodyKind {
    /// A JSON document.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` fields, as an object of strings (a field given twice
    /// is an array); with a field name, that field's value is the JSON document.
    Form(Option<String>),
    /// The request's query string, read as form fields; the body is ignored.
    Query,
}

impl BodyKind {
    /// `body` and `form_field` as a definition or mapper spells them.
    pub fn parse(
        body: Option<&str>,
        form_field: Option<String>,
    ) -> Result<BodyKind, (String, String)> {
        let kind = match body.unwrap_or("json") {
            "json" => BodyKind::Json,
            "form" => BodyKind::Form(form_field.clone()),
            "query" => BodyKind::Query,
            other => {
                return Err((
                    "body".into(),
                    format!("{other:?} must be one of json, form, query"),
                ))
            }
        };
        if form_field.is_some() && !matches!(kind, BodyKind::Form(_)) {
            return Err(("form_field".into(), "needs body = \"form\"".into()));
        }
        Ok(kind)
    }
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

impl Mapper {
    /// Whether any payload can map to a resolve: an action value mapped (or named) so, or a
    /// `resolve_when`.
    pub fn can_resolve(&self) -> bool {
        self.resolve_when.is_some()
            || self.action_other == Some(Action::Resolve)
            || self.action_map.iter().any(|(_, a)| *a == Action::Resolve)
            || (self.action.is_some() && self.action_map.is_empty() && self.action_other.is_none())
    }

    /// The dedup key's pointer or template, as configured (the catalog table shows it).
    pub fn dedup_key_text(&self) -> String {
        match (&self.dedup_key, &self.dedup_key_template) {
            (Some(k), Some(t)) => format!("{}, else {}", k.as_str(), t.as_str()),
            (Some(k), None) => k.as_str().to_string(),
            (None, Some(t)) => t.as_str().to_string(),
            (None, None) => String::new(),
        }
    }

    /// How a resolve is signalled, in words (the catalog table shows it).
    pub fn resolve_text(&self) -> String {
        let mut ways = Vec::new();
        let resolving: Vec<&str> = self
            .action_map
            .iter()
            .filter(|(_, a)| *a == Action::Resolve)
            .map(|(v, _)| v.as_str())
            .collect();
        if let Some(src) = &self.action {
            if !resolving.is_empty() {
                ways.push(format!("{} is {}", src.as_str(), resolving.join(" or ")));
            } else if self.action_other == Some(Action::Resolve) {
                ways.push(format!("{} is any other value", src.as_str()));
            } else if self.action_map.is_empty() && self.action_other.is_none() {
                ways.push(format!("{} is resolve", src.as_str()));
            }
        }
        if let Some((p, equals)) = &self.resolve_when {
            ways.push(format!("{} is {}", p.as_str(), equals.join(" or ")));
        }
        let mut text = if ways.is_empty() {
            "never (triggers only: resolve_timeout)".to_string()
        } else {
            ways.join("; ")
        };
        if !self.ignore.is_empty() {
            text.push_str(&format!("; ignored: {}", self.ignore.join(", ")));
        } else if self.ignore_other {
            text.push_str("; other values ignored");
        }
        text
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

/// The key of a value map that stands for every value the map does not list.
pub(super) const ANY: &str = "*";
/// The action of a value whose document makes no event.
pub(super) const IGNORE: &str = "ignore";

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
    default_severity: Option<String>,
    timestamp: Option<String>,
    details: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    action_pointer: Option<String>,
    action: Option<String>,
    action_map: Option<BTreeMap<String, String>>,
    resolve_when: Option<RawCondition>,
    items: Option<String>,
    links: Option<BTreeMap<String, String>>,
    body: Option<String>,
    form_field: Option<String>,
    answer: Option<i64>,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

/// `value` parsed by `parse`, or its problem recorded under `key`.
fn read<T>(
    problems: &mut Vec<(String, String)>,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
    value: Option<String>,
) -> Option<T> {
    match parse(&value?) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push((key.to_string(), e));
            None
        }
    }
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
    let dedup_key = read(&mut problems, "dedup_key", Source::parse, raw.dedup_key);
    let mut text_fields = Vec::new();
    for (field, value) in [
        (TextField::Summary, raw.summary),
        (TextField::Source, raw.source),
        (TextField::Component, raw.component),
        (TextField::Group, raw.group),
        (TextField::Class, raw.class),
    ] {
        if let Some(p) = read(&mut problems, field.name(), Source::parse, value) {
            text_fields.push((field, p));
        }
    }
    let severity = read(&mut problems, "severity", Source::parse, raw.severity);
    let (action_key, action) = match (raw.action, raw.action_pointer) {
        (Some(a), None) => (
            "action",
            read(&mut problems, "action", Source::parse, Some(a)),
        ),
        (None, p) => (
            "action_pointer",
            read(&mut problems, "action_pointer", Source::parse, p),
        ),
        (Some(_), Some(_)) => {
            problems.push((
                "action".into(),
                "give action or action_pointer, not both".into(),
            ));
            ("action", None)
        }
    };
    let mut labels = Vec::new();
    for (label, value) in raw.labels.unwrap_or_default() {
        if let Some(p) = read(
            &mut problems,
            &format!("labels.{label}"),
            Source::parse,
            Some(value),
        ) {
            labels.push((label, p));
        }
    }
    let mut links = Vec::new();
    for (text, value) in raw.links.unwrap_or_default() {
        if let Some(p) = read(
            &mut problems,
            &format!("links.{text}"),
            Source::parse,
            Some(value),
        ) {
            links.push((text, p));
        }
    }
    let timestamp = read(&mut problems, "timestamp", Source::parse, raw.timestamp);
    let details = read(&mut problems, "details", Pointer::parse, raw.details);
    let items = read(&mut problems, "items", Pointer::parse, raw.items);
    // 204 and 205 carry no body, and sluice's success answer has one.
    let answer = raw.answer.and_then(|n| {
        let status = u16::try_from(n)
            .ok()
            .filter(|n| (200..300).contains(n) && *n != 204 && *n != 205)
            .and_then(|n| http::StatusCode::from_u16(n).ok());
        if status.is_none() {
            problems.push((
                "answer".into(),
                "must be a success status with a body: 200 to 299, not 204 or 205".into(),
            ));
        }
        status
    });
    let body = BodyKind::parse(raw.body.as_deref(), raw.form_field).unwrap_or_else(|p| {
        problems.push(p);
        BodyKind::Json
    });
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
    let mut severity_other = None;
    for (value, sev) in raw.severity_map.unwrap_or_default() {
        match Severity::parse(&sev) {
            Some(s) if value == ANY => severity_other = Some(s),
            Some(s) => severity_map.push((value, s)),
            None => problems.push((
                format!("severity_map.{value}"),
                format!("{sev:?} must be one of {}", Severity::NAMES),
            )),
        }
    }
    let default_severity = raw.default_severity.and_then(|sev| {
        let parsed = Severity::parse(&sev);
        if parsed.is_none() {
            problems.push((
                "default_severity".into(),
                format!("{sev:?} must be one of {}", Severity::NAMES),
            ));
        }
        parsed
    });
    let mut action_map = Vec::new();
    let mut action_other = None;
    let mut ignore = Vec::new();
    let mut ignore_other = false;
    for (value, act) in raw.action_map.unwrap_or_default() {
        match Action::parse(&act) {
            Some(a) if value == ANY => action_other = Some(a),
            Some(a) => action_map.push((value, a)),
            None if act == IGNORE && value == ANY => ignore_other = true,
            None if act == IGNORE => ignore.push(value),
            None => problems.push((
                format!("action_map.{value}"),
                format!("{act:?} must be one of trigger, acknowledge, resolve, ignore"),
            )),
        }
    }
    if (!action_map.is_empty() || action_other.is_some() || !ignore.is_empty() || ignore_other)
        && action.is_none()
        && !problems.iter().any(|(k, _)| k == action_key)
    {
        problems.push(("action_map".into(), "needs action".into()));
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
        severity_other,
        default_severity,
        timestamp,
        details,
        labels,
        action,
        action_key,
        action_map,
        action_other,
        ignore,
        ignore_other,
        resolve_when,
        items,
        links,
        body,
        answer,
    })
}
