//! The generic mapper at request time: a [`Mapper`] reads one document (a JSON body, form
//! fields or the query) into events ([`Mapper::map`]), each field from its pointer or template.
//! Used by the generic kind's configured mappers and by the catalog's definitions alike.

use std::fmt::{Display, Write as _};

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::event::{fingerprint, Action, Event, Severity, MAX_DEDUP_KEY_CHARS};
use crate::integration::Integration;
use crate::time::{from_epoch_number, parse_timestamp, Timestamp as Time};

use super::super::fields::{raw_details, scalar};
use super::super::{summary, IngestRequest, IntegrationError, Parsed};
use super::mapper::{BodyKind, Mapper, TextField};
use super::pointer::{Part, Pointer, Source, Template};

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
        field: impl Display + Copy,
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

    /// The first of a placeholder's alternatives that is present and not blank.
    fn first(
        &self,
        root: &BorrowedValue<'_>,
        alternatives: &[Pointer],
        field: impl Display + Copy,
        problems: &mut Vec<String>,
    ) -> Option<String> {
        alternatives.iter().find_map(|p| {
            self.text(root, p, field, problems)
                .filter(|v| !v.trim().is_empty())
        })
    }

    /// A template with every placeholder filled, or the placeholders that were missing.
    fn render(
        &self,
        root: &BorrowedValue<'_>,
        t: &Template,
        field: impl Display + Copy,
        problems: &mut Vec<String>,
    ) -> Result<String, Vec<String>> {
        let mut out = String::new();
        let mut missing = Vec::new();
        for part in t.parts() {
            match part {
                Part::Text(s) => out.push_str(s),
                Part::Value(alts) => match self.first(root, alts, field, problems) {
                    Some(v) => out.push_str(&v),
                    None => {
                        let names: Vec<&str> = alts.iter().map(Pointer::as_str).collect();
                        missing.push(names.join("|"));
                    }
                },
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(missing)
        }
    }

    /// A field's text: the value at its pointer, or its template with missing placeholders
    /// read as empty (a blank result, or one with no placeholder filled, is none).
    fn text_of(
        &self,
        root: &BorrowedValue<'_>,
        src: &Source,
        field: impl Display + Copy,
        problems: &mut Vec<String>,
    ) -> Option<String> {
        match src {
            Source::Pointer(p) => self.text(root, p, field, problems),
            Source::Template(t) => {
                let mut out = String::new();
                let (mut placeholders, mut filled) = (0, 0);
                for part in t.parts() {
                    match part {
                        Part::Text(s) => out.push_str(s),
                        Part::Value(alts) => {
                            placeholders += 1;
                            if let Some(v) = self.first(root, alts, field, problems) {
                                out.push_str(&v);
                                filled += 1;
                            }
                        }
                    }
                }
                // A template none of whose placeholders is present is no value (not its
                // separators alone: " on : ").
                let empty = placeholders > 0 && filled == 0;
                (!empty && !out.trim().is_empty()).then_some(out)
            }
        }
    }

    fn dedup_key(&self, root: &BorrowedValue<'_>, problems: &mut Vec<String>) -> Option<String> {
        let mut absent = String::new();
        match &self.dedup_key {
            Some(Source::Pointer(p)) => {
                if let Some(k) = self
                    .text(root, p, "dedup_key", problems)
                    .filter(|k| !k.trim().is_empty())
                {
                    return Some(k);
                }
                absent = format!("'{}' (dedup_key) is absent and ", p.as_str());
            }
            Some(Source::Template(t)) => match self.render(root, t, "dedup_key", problems) {
                Ok(k) if !k.trim().is_empty() => return Some(k),
                Ok(_) => absent = "dedup_key is blank and ".into(),
                Err(missing) if self.dedup_key_template.is_none() => {
                    problems.push(missing_message("dedup_key", &missing, ""));
                    return None;
                }
                Err(_) => absent = "dedup_key's placeholders are absent and ".into(),
            },
            None => {}
        }
        let Some(t) = &self.dedup_key_template else {
            if problems.is_empty() {
                let p = self.dedup_key.as_ref().map_or("", Source::as_str);
                problems.push(format!("'{p}' (dedup_key) is missing or blank"));
            }
            return None;
        };
        match self.render(root, t, "dedup_key_template", problems) {
            Ok(k) => Some(k),
            Err(missing) => {
                problems.push(missing_message("dedup_key_template", &missing, &absent));
                None
            }
        }
    }

    /// The document's action, or `None` when its action value is ignored. `resolve_when`
    /// decides first: a document it names is a resolve, whatever its action value.
    fn action(&self, root: &BorrowedValue<'_>, problems: &mut Vec<String>) -> Option<Action> {
        if let Some((p, equals)) = &self.resolve_when {
            if let Some(v) = p.get(root).and_then(scalar) {
                if equals.iter().any(|e| *e == v) {
                    return Some(Action::Resolve);
                }
            }
        }
        let mut action = Action::Trigger;
        if let Some(src) = &self.action {
            if let Some(v) = self.text_of(root, src, self.action_key, problems) {
                // The values listed come before "*", whichever action they name.
                let listed = lookup(&self.action_map, &v);
                if listed.is_none() && self.ignore.iter().any(|i| i.eq_ignore_ascii_case(&v)) {
                    return None;
                }
                let mapped = listed.or(self.action_other);
                if mapped.is_none() && self.ignore_other {
                    return None;
                }
                match mapped {
                    Some(a) => action = a,
                    None if self.action_map.is_empty() => match Action::parse(&v) {
                        Some(a) => action = a,
                        None => problems.push(format!(
                            "'{}' ({}) is {v:?}, which is not trigger, acknowledge or resolve",
                            src.as_str(),
                            self.action_key
                        )),
                    },
                    None => {
                        let known: Vec<&str> =
                            self.action_map.iter().map(|(k, _)| k.as_str()).collect();
                        problems.push(format!(
                            "'{}' ({}) is {v:?}, which action_map does not have ({})",
                            src.as_str(),
                            self.action_key,
                            known.join(", ")
                        ));
                    }
                }
            }
        }
        Some(action)
    }

    /// Maps one document to an event, or every problem, each naming the pointer and field.
    fn apply(
        &self,
        kind: Integration,
        root: &BorrowedValue<'_>,
        req: &IngestRequest<'_>,
    ) -> Result<Option<(Event, bool)>, Vec<String>> {
        // The action first: an ignored document is no event, whatever else it lacks.
        let mut action_problems = Vec::new();
        let Some(action) = self.action(root, &mut action_problems) else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        let key = self.dedup_key(root, &mut problems);
        problems.append(&mut action_problems);
        let severity = match &self.severity {
            Some(src) => self
                .text_of(root, src, "severity", &mut problems)
                .and_then(|v| {
                    lookup(&self.severity_map, &v)
                        .or(self.severity_other)
                        .or_else(|| Severity::parse(&v))
                }),
            None => None,
        };
        let mut texts: [Option<String>; 5] = Default::default();
        for (i, (field, src)) in self.text_fields.iter().enumerate() {
            texts[i] = self
                .text_of(root, src, field.name(), &mut problems)
                .filter(|s| !s.trim().is_empty());
        }
        let field = |f: TextField| -> Option<String> {
            self.text_fields
                .iter()
                .position(|(tf, _)| *tf == f)
                .and_then(|i| texts[i].clone())
        };
        let timestamp = self.timestamp.as_ref().and_then(|src| {
            let parsed = match src {
                Source::Pointer(p) => {
                    let v = p.get(root)?;
                    match v.as_str() {
                        Some(s) => parse_timestamp(s),
                        None => v.cast_f64().and_then(from_epoch_number),
                    }
                }
                Source::Template(_) => {
                    parse_timestamp(&self.text_of(root, src, "timestamp", &mut problems)?)
                }
            };
            match parsed {
                Some(Time::At(t)) => Some(t),
                Some(Time::Unset) => None,
                None => {
                    problems.push(format!(
                        "'{}' (timestamp) is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)",
                        src.as_str()
                    ));
                    None
                }
            }
        });
        let mut labels = Vec::with_capacity(self.labels.len());
        for (name, src) in &self.labels {
            if let Some(v) = self.text_of(root, src, format_args!("labels.{name}"), &mut problems) {
                labels.push((name.clone(), v));
            }
        }
        let details = self
            .details
            .as_ref()
            .and_then(|p| raw_details(p.get(root)?));
        let mut links = Vec::new();
        for (text, src) in &self.links {
            let href = self.text_of(root, src, format_args!("links.{text}"), &mut problems);
            if let Some(href) = href.filter(|h| !h.trim().is_empty()) {
                links.push(crate::event::Link {
                    href,
                    text: Some(text.clone().into()),
                });
            }
        }
        let (Some(key), true) = (key, problems.is_empty()) else {
            return Err(problems);
        };
        let key = if key.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() {
            format!("{:032x}", fingerprint(&[key.as_bytes()]))
        } else {
            key
        };
        let mut event = Event::new(kind, action, req.routing_key.to_string(), key, req.now);
        let (s, truncated) = summary(
            field(TextField::Summary)
                .as_deref()
                .unwrap_or(&event.dedup_key),
        );
        event.summary = s;
        event.severity = severity
            .or(self.default_severity)
            .unwrap_or(req.settings.default_severity);
        event.source = field(TextField::Source).unwrap_or_default();
        event.component = field(TextField::Component);
        event.group = field(TextField::Group);
        event.class = field(TextField::Class);
        event.timestamp = timestamp;
        labels.sort();
        event.labels = labels.into();
        event.custom_details = details;
        event.links = links;
        Ok(Some((event, truncated)))
    }

    /// Maps one request to events as `kind`: its document from the body (or query) as the
    /// mapper's [`BodyKind`] says, then one event, or one per item of a batch. Problems of a
    /// configured mapper (`generic`) are prefixed with its name.
    pub fn map(
        &self,
        kind: Integration,
        req: &IngestRequest<'_>,
        body: &mut [u8],
    ) -> Result<Parsed, IntegrationError> {
        let named = |problems: Vec<String>| -> Vec<String> {
            if kind != Integration::Generic {
                return problems;
            }
            problems
                .into_iter()
                .map(|p| format!("mapper {}: {p}", self.name))
                .collect()
        };
        let mut document;
        let root = match &self.body {
            BodyKind::Json => super::super::json::parse_json(body)
                .map_err(|e| IntegrationError::from_json(kind, e))?,
            BodyKind::Query => form_object(kind, req.query.unwrap_or("").as_bytes())?,
            BodyKind::Form(None) => form_object(kind, body)?,
            BodyKind::Form(Some(field)) => {
                let fields = form_object(kind, body)?;
                let Some(text) = fields.get(field.as_str()).and_then(|v| v.as_str()) else {
                    return Err(IntegrationError::Invalid {
                        kind,
                        problems: named(vec![format!(
                            "form field '{field}' (form_field) is missing"
                        )]),
                    });
                };
                document = text.as_bytes().to_vec();
                super::super::json::parse_json(&mut document)
                    .map_err(|e| IntegrationError::from_json(kind, e))?
            }
        };
        if let Some(p) = &self.items {
            let Some(items) = p.get(&root).and_then(|v| v.as_array()) else {
                return Err(IntegrationError::Invalid {
                    kind,
                    problems: named(vec![format!("'{}' (items) is not an array", p.as_str())]),
                });
            };
            let mut batch = super::super::Batch::new(kind, items.len());
            // An item's place is written only when it is refused.
            let at = |i: usize| format!("items[{i}]");
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    let at = at(i);
                    batch.reject(&at, named(vec![format!("'{at}' must be an object")]));
                    continue;
                }
                match self.apply(kind, item, req) {
                    Ok(Some((event, truncated))) => batch.accept(event, truncated),
                    Ok(None) => {}
                    Err(problems) => batch.reject(&at(i), named(problems)),
                }
            }
            return batch.finish().map(|mut parsed| {
                parsed.answer = self.answer;
                parsed
            });
        }
        if !root.is_object() && !root.is_array() {
            return Err(IntegrationError::Malformed {
                kind,
                what: "body is not a JSON object",
            });
        }
        match self.apply(kind, &root, req) {
            Ok(Some((event, truncated))) => Ok(Parsed {
                answer: self.answer,
                ..Parsed::one(event, truncated)
            }),
            Ok(None) => Ok(Parsed {
                answer: self.answer,
                ..Parsed::default()
            }),
            Err(problems) => Err(IntegrationError::Invalid {
                kind,
                problems: named(problems),
            }),
        }
    }
}

/// `missing` placeholders of `field` as one problem.
fn missing_message(field: &str, missing: &[String], absent: &str) -> String {
    let mut msg = String::new();
    for (i, m) in missing.iter().enumerate() {
        let _ = write!(msg, "{}'{m}'", if i > 0 { ", " } else { "" });
    }
    let verb = if missing.len() == 1 { "is" } else { "are" };
    format!("no dedup key: {absent}{msg} ({field}) {verb} missing")
}

/// Form fields (`a=b&c=d`, `+` as a space) as a JSON object of strings; a field given twice
/// is an array of its values.
fn form_object(
    kind: Integration,
    bytes: &[u8],
) -> Result<BorrowedValue<'static>, IntegrationError> {
    let malformed = |what| IntegrationError::Malformed { kind, what };
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("body is not UTF-8 form data"))?;
    // One object, a field given twice turning into an array: linear in the fields however
    // many there are (a hash lookup each, not a scan).
    let mut object = simd_json::borrowed::Object::new();
    for pair in super::super::fields::form_pairs(text.trim()) {
        let (k, v) = pair.ok_or_else(|| malformed("form data has a broken %-escape"))?;
        match object.get_mut(k.as_str()) {
            None => {
                object.insert(k.into(), BorrowedValue::from(v));
            }
            Some(BorrowedValue::Array(values)) => values.push(BorrowedValue::from(v)),
            Some(slot) => {
                let first = std::mem::replace(slot, BorrowedValue::null());
                *slot = BorrowedValue::from(vec![first, BorrowedValue::from(v)]);
            }
        }
    }
    Ok(BorrowedValue::from(object))
}
