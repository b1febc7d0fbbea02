//! The generic mapper: any JSON webhook mapped to events in the config alone, without code.
//! Each named mapper is a table `[integrations.generic.<name>]` whose keys say where each event
//! field is, as JSON pointers (RFC 6901: `/alert/id`, `/tags/0`, `~1` for `/`, `~0` for `~`,
//! `""` for the whole body). Served at `POST /integrations/generic/<routing_key>`; the request
//! names its mapper with `?mapper=<name>` or an `X-Sluice-Mapper` header, which may be left
//! out when exactly one mapper is configured. One event per request.
//!
//! ```toml
//! [integrations.generic.shop_monitor]
//! dedup_key = "/check/id"                # the sender's id, if it has one
//! dedup_key_template = "{/host}/{/check/name}"  # else (or when the id is absent): a template
//! summary = "/check/output"
//! source = "/host"
//! component = "/service"
//! group = "/cluster"
//! class = "/check/name"
//! severity = "/check/level"
//! severity_map = { P1 = "critical", P2 = "error", P3 = "warning" }
//! timestamp = "/check/changed_at"        # RFC 3339 / ISO 8601 or epoch seconds / ms
//! details = "/check"                     # any JSON; "" for the whole body
//! labels = { team = "/owner/team", env = "/env" }
//! action_pointer = "/check/state"
//! action_map = { failing = "trigger", acked = "acknowledge", passing = "resolve" }
//! resolve_when = { pointer = "/check/healthy", equals = ["true"] }
//! ```
//!
//! - Every key is optional except one of `dedup_key` / `dedup_key_template`; unknown keys are
//!   refused by name at config load, and every pointer and template is checked then.
//! - **Dedup key**: the value at `dedup_key` (a string, number or boolean, as text); when it
//!   is absent or not configured, `dedup_key_template` with each `{/pointer}` replaced by its
//!   value (every placeholder must be present). A key over 255 characters becomes 32 hex digits
//!   of xxh3-128 over it.
//! - **Action**: `resolve` when the value at `resolve_when.pointer` is one of
//!   `resolve_when.equals` (compared as text: `1`, `true`, `"ok"`); else the value at
//!   `action_pointer` looked up in `action_map` (exactly, then ignoring case); a value the map
//!   does not have is refused, naming it; no `action_pointer`, or no value there, is a trigger.
//! - **Severity**: the value at `severity` looked up in `severity_map` (exactly, then ignoring
//!   case), else read as a sluice severity (`critical`, `error`, `warning`, `info`), else
//!   `default_severity`.
//! - **Fields**: `summary` (else the dedup key), `source`, `component`, `group`, `class` take
//!   text values; `labels` maps label names to pointers (absent values are skipped);
//!   `details` keeps any JSON; `timestamp` is read leniently. A value of the wrong type (an
//!   object where text is wanted) is refused naming the pointer and the field.
//! - Events say `integration: generic`; the mapper's name is not part of the dedup key, so
//!   give each mapper its own routing keys where their keys could collide.
//! - **Answer**: `202` and the generic body.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::config::{Problems, Unknown};
use crate::event::{fingerprint, Action, Event, Severity, MAX_DEDUP_KEY_CHARS};
use crate::integration::Integration;
use crate::time::{from_epoch_number, parse_timestamp, Parsed as Time};

use super::fields::raw_details;
use super::{summary, Format, IngestRequest, IntegrationError, IntegrationSettings, Parsed};

const KIND: Integration = Integration::Generic;
/// The query parameter and header that name a request's mapper.
pub const MAPPER_PARAM: &str = "mapper";
pub const MAPPER_HEADER: &str = "x-sluice-mapper";

/// The generic mapper in the integrations registry.
pub struct Mapped;

/// A JSON pointer (RFC 6901), checked when the config is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    pub fn parse(s: &str) -> Result<Pointer, String> {
        let mut tokens = Vec::new();
        if !s.is_empty() {
            let Some(rest) = s.strip_prefix('/') else {
                return Err(format!(
                    "{s:?} is not a JSON pointer (RFC 6901): it must be \"\" or start with '/'"
                ));
            };
            for raw in rest.split('/') {
                let mut token = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    if c != '~' {
                        token.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('0') => token.push('~'),
                        Some('1') => token.push('/'),
                        _ => {
                            return Err(format!(
                                "{s:?} is not a JSON pointer (RFC 6901): '~' must be followed by 0 or 1"
                            ))
                        }
                    }
                }
                tokens.push(token);
            }
        }
        Ok(Pointer {
            text: s.to_string(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value the pointer names, `None` when absent or null.
    pub fn get<'a, 'v>(&self, root: &'a BorrowedValue<'v>) -> Option<&'a BorrowedValue<'v>> {
        let mut v = root;
        for t in &self.tokens {
            v = if let Some(items) = v.as_array() {
                let canonical = t == "0" || (!t.is_empty() && !t.starts_with('0'));
                if !canonical || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                items.get(t.parse::<usize>().ok()?)?
            } else {
                v.get(t.as_str())?
            };
        }
        (!v.is_null()).then_some(v)
    }
}

/// A dedup-key template: text with `{/pointer}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Pointer),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(Part::Text(rest.to_string()));
                    break;
                }
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err(format!("{s:?}: a '}}' without its '{{'"));
                }
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Text(rest[..i].to_string()));
                    }
                    let Some(end) = rest[i..].find('}') else {
                        return Err(format!("{s:?}: a '{{' without its '}}'"));
                    };
                    let inner = &rest[i + 1..i + end];
                    if !inner.starts_with('/') {
                        return Err(format!(
                            "{s:?}: each placeholder is a JSON pointer such as {{/host}}, not {{{inner}}}"
                        ));
                    }
                    parts.push(Part::Value(
                        Pointer::parse(inner).map_err(|e| format!("{s:?}: {e}"))?,
                    ));
                    rest = &rest[i + end + 1..];
                }
            }
        }
        if !parts.iter().any(|p| matches!(p, Part::Value(_))) {
            return Err(format!("{s:?} has no {{/pointer}} placeholder"));
        }
        Ok(Template { parts })
    }
}

/// A value as event text: strings as they are, numbers and booleans as their JSON text.
fn scalar(v: &BorrowedValue<'_>) -> Option<String> {
    if let Some(s) = v.as_str() {
        Some(s.to_string())
    } else if v.is_number() || v.is_bool() {
        Some(v.encode())
    } else {
        None
    }
}

/// One validated mapper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapper {
    pub name: String,
    dedup_key: Option<Pointer>,
    dedup_key_template: Option<Template>,
    text_fields: Vec<(TextField, Pointer)>,
    severity: Option<Pointer>,
    severity_map: Vec<(String, Severity)>,
    timestamp: Option<Pointer>,
    details: Option<Pointer>,
    labels: Vec<(String, Pointer)>,
    action: Option<Pointer>,
    action_map: Vec<(String, Action)>,
    resolve_when: Option<(Pointer, Vec<String>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextField {
    Summary,
    Source,
    Component,
    Group,
    Class,
}

impl TextField {
    fn name(self) -> &'static str {
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

    fn names(&self) -> String {
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
    let mut labels = Vec::new();
    for (label, value) in raw.labels.unwrap_or_default() {
        if let Some(p) = pointer(&format!("labels.{label}"), Some(value)) {
            labels.push((label, p));
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
    })
}

fn lookup<T: Copy>(map: &[(String, T)], value: &str) -> Option<T> {
    map.iter()
        .find(|(k, _)| k == value)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(value)))
        .map(|(_, v)| *v)
}

impl Mapper {
    /// Text at `p` for `field`; a non-scalar value is a problem.
    fn text(
        &self,
        root: &BorrowedValue<'_>,
        p: &Pointer,
        field: &str,
        problems: &mut Vec<String>,
    ) -> Option<String> {
        let v = p.get(root)?;
        let text = scalar(v);
        if text.is_none() {
            problems.push(format!(
                "'{}' ({field}) must be a string, number or boolean",
                p.as_str()
            ));
        }
        text
    }

    fn dedup_key(&self, root: &BorrowedValue<'_>, problems: &mut Vec<String>) -> Option<String> {
        if let Some(p) = &self.dedup_key {
            if let Some(k) = self
                .text(root, p, "dedup_key", problems)
                .filter(|k| !k.trim().is_empty())
            {
                return Some(k);
            }
        }
        let Some(t) = &self.dedup_key_template else {
            if problems.is_empty() {
                let p = self.dedup_key.as_ref().map_or("", Pointer::as_str);
                problems.push(format!("'{p}' (dedup_key) is missing or blank"));
            }
            return None;
        };
        let mut out = String::new();
        let mut missing = Vec::new();
        for part in &t.parts {
            match part {
                Part::Text(s) => out.push_str(s),
                Part::Value(p) => match self.text(root, p, "dedup_key_template", problems) {
                    Some(v) => out.push_str(&v),
                    None => missing.push(p.as_str()),
                },
            }
        }
        if !missing.is_empty() {
            let mut msg = String::new();
            for (i, m) in missing.iter().enumerate() {
                let _ = write!(msg, "{}'{m}'", if i > 0 { ", " } else { "" });
            }
            let verb = if missing.len() == 1 { "is" } else { "are" };
            let id = match &self.dedup_key {
                Some(p) => format!("'{}' (dedup_key) is absent and ", p.as_str()),
                None => String::new(),
            };
            problems.push(format!(
                "no dedup key: {id}{msg} (dedup_key_template) {verb} missing"
            ));
            return None;
        }
        Some(out)
    }

    /// Maps one body to an event, or every problem, each naming the pointer and field.
    fn apply(
        &self,
        root: &BorrowedValue<'_>,
        req: &IngestRequest<'_>,
    ) -> Result<(Event, bool), Vec<String>> {
        let mut problems = Vec::new();
        let key = self.dedup_key(root, &mut problems);
        let mut action = Action::Trigger;
        if let Some(p) = &self.action {
            if let Some(v) = self.text(root, p, "action_pointer", &mut problems) {
                match lookup(&self.action_map, &v) {
                    Some(a) => action = a,
                    None if self.action_map.is_empty() => match Action::parse(&v) {
                        Some(a) => action = a,
                        None => problems.push(format!(
                            "'{}' (action_pointer) is {v:?}, which is not trigger, acknowledge or resolve",
                            p.as_str()
                        )),
                    },
                    None => {
                        let known: Vec<&str> = self.action_map.iter().map(|(k, _)| k.as_str()).collect();
                        problems.push(format!(
                            "'{}' (action_pointer) is {v:?}, which action_map does not have ({})",
                            p.as_str(),
                            known.join(", ")
                        ));
                    }
                }
            }
        }
        if let Some((p, equals)) = &self.resolve_when {
            if let Some(v) = p.get(root).and_then(scalar) {
                if equals.iter().any(|e| *e == v) {
                    action = Action::Resolve;
                }
            }
        }
        let severity = match &self.severity {
            Some(p) => self
                .text(root, p, "severity", &mut problems)
                .and_then(|v| lookup(&self.severity_map, &v).or_else(|| Severity::parse(&v))),
            None => None,
        };
        let mut texts: [Option<String>; 5] = Default::default();
        for (i, (field, p)) in self.text_fields.iter().enumerate() {
            texts[i] = self
                .text(root, p, field.name(), &mut problems)
                .filter(|s| !s.trim().is_empty());
        }
        let field = |f: TextField| -> Option<String> {
            self.text_fields
                .iter()
                .position(|(tf, _)| *tf == f)
                .and_then(|i| texts[i].clone())
        };
        let timestamp = self.timestamp.as_ref().and_then(|p| {
            let v = p.get(root)?;
            let parsed = match v.as_str() {
                Some(s) => parse_timestamp(s),
                None => v.cast_f64().and_then(from_epoch_number),
            };
            match parsed {
                Some(Time::At(t)) => Some(t),
                Some(Time::Unset) => None,
                None => {
                    problems.push(format!(
                        "'{}' (timestamp) is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)",
                        p.as_str()
                    ));
                    None
                }
            }
        });
        let mut labels = Vec::with_capacity(self.labels.len());
        for (name, p) in &self.labels {
            if let Some(v) = self.text(root, p, &format!("labels.{name}"), &mut problems) {
                labels.push((name.clone(), v));
            }
        }
        let details = self
            .details
            .as_ref()
            .and_then(|p| raw_details(p.get(root)?));
        let (Some(key), true) = (key, problems.is_empty()) else {
            return Err(problems);
        };
        let key = if key.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() {
            format!("{:032x}", fingerprint(&[key.as_bytes()]))
        } else {
            key
        };
        let mut event = Event::new(KIND, action, req.routing_key.to_string(), key, req.now);
        let (s, truncated) = summary(
            field(TextField::Summary)
                .as_deref()
                .unwrap_or(&event.dedup_key),
        );
        event.summary = s;
        event.severity = severity.unwrap_or(req.settings.default_severity);
        event.source = field(TextField::Source).unwrap_or_default();
        event.component = field(TextField::Component);
        event.group = field(TextField::Group);
        event.class = field(TextField::Class);
        event.timestamp = timestamp;
        labels.sort();
        event.labels = labels;
        event.custom_details = details;
        Ok((event, truncated))
    }
}

/// The mapper a request names (`/integrations/generic/<name>/<key>`, `?mapper=`,
/// `X-Sluice-Mapper`), or the only one configured.
fn select<'m>(req: &IngestRequest<'_>, mappers: &'m Mappers) -> Result<&'m Mapper, String> {
    let from_path = (!req.path.is_empty()).then(|| req.path.to_string());
    let from_query = from_path.or_else(|| {
        req.query.and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == MAPPER_PARAM)
                    .then(|| super::endpoint::percent_decode(v, true).unwrap_or_default())
            })
        })
    });
    let named = from_query.or_else(|| {
        req.headers
            .get(MAPPER_HEADER)
            .map(|v| v.to_str().unwrap_or_default().trim().to_string())
    });
    match (named, mappers.0.as_slice()) {
        (_, []) => Err("no mapper is configured: add one as [integrations.generic.<name>]".into()),
        (Some(name), _) => mappers
            .get(&name)
            .ok_or_else(|| format!("no mapper {name:?} (mappers: {})", mappers.names())),
        (None, [only]) => Ok(only),
        (None, _) => Err(format!(
            "name the mapper with ?mapper=<name> or an X-Sluice-Mapper header (mappers: {})",
            mappers.names()
        )),
    }
}

impl Format for Mapped {
    /// Every table under `[integrations.generic]` is a mapper; its problems are reported under
    /// `integrations.generic.<name>.<key>`.
    fn own_settings(
        own: &mut Unknown,
        at: &str,
        settings: &mut IntegrationSettings,
        p: &mut Problems,
    ) {
        let names: Vec<String> = own
            .iter()
            .filter(|(_, v)| v.is_table())
            .map(|(k, _)| k.clone())
            .collect();
        let mut mappers = Vec::new();
        for name in names {
            let table = own.remove(&name).expect("listed above");
            match build(&name, table) {
                Ok(m) => mappers.push(m),
                Err(problems) => {
                    for (key, msg) in problems {
                        let key = if key.is_empty() {
                            format!("{at}.{name}")
                        } else {
                            format!("{at}.{name}.{key}")
                        };
                        p.add(&key, msg);
                    }
                }
            }
        }
        settings.mappers = Mappers(mappers);
    }

    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        let mapper = select(req, &req.settings.mappers).map_err(|p| IntegrationError::Invalid {
            kind: KIND,
            problems: vec![p],
        })?;
        let root = super::fields::parse_json(body).map_err(|_| IntegrationError::Malformed {
            kind: KIND,
            what: "body is not valid JSON",
        })?;
        match mapper.apply(&root, req) {
            Ok((event, truncated)) => Ok(Parsed::one(event, truncated)),
            Err(problems) => Err(IntegrationError::Invalid {
                kind: KIND,
                problems: problems
                    .into_iter()
                    .map(|p| format!("mapper {}: {p}", mapper.name))
                    .collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
