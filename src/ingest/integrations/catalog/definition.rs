//! One declarative definition (`catalog/<kind>.toml`, or a file of `definitions_dir`): the
//! sender's metadata and its [`Mapper`], checked as a whole with every problem named by file
//! and key. The format is documented in `docs/integration-catalog.md`.

use crate::integration::Integration;

use super::super::generic::{build, Mapper};
use super::names::REQUIRED;

/// The categories of the catalog table, in its order.
pub const CATEGORIES: [&str; 9] = [
    "uptime",
    "infrastructure",
    "apm",
    "logs",
    "security",
    "cloud",
    "cicd",
    "incident",
    "other",
];

/// Where a definition's fixtures come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Samples {
    /// The vendor's published sample payloads.
    Documented,
    /// Built from the vendor's field reference.
    Constructed,
}

/// A checked definition.
#[derive(Clone, Debug)]
pub struct Definition {
    pub kind: String,
    /// The kind its events say: its own for a bundled definition, `generic` for a user's.
    pub integration: Integration,
    pub vendor: String,
    pub title: String,
    pub category: &'static str,
    pub docs: Vec<String>,
    pub samples: Samples,
    pub signature: String,
    pub aliases: Vec<String>,
    pub notes: Option<String>,
    pub mapper: Mapper,
}

/// Keys of the top level a definition may have besides [`REQUIRED`] and `[map]`.
const OPTIONAL: [&str; 7] = [
    "path",
    "routing_key_auth_scheme",
    "body",
    "form_field",
    "answer",
    "aliases",
    "notes",
];

/// Parses and checks the definition `kind` from `text`; problems read `<file>: <key>: <what>`.
pub fn parse(
    kind: &str,
    file: &str,
    text: &str,
    integration: Integration,
) -> Result<Definition, Vec<String>> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| vec![format!("{file}: {}", e.to_string().trim_end())])?;
    let mut problems: Vec<String> = Vec::new();
    let mut problem = |key: &str, what: String| problems.push(format!("{file}: {key}: {what}"));
    let text_of = |table: &toml::Table,
                   key: &str,
                   required: bool,
                   problem: &mut dyn FnMut(&str, String)|
     -> Option<String> {
        match table.get(key) {
            None if required => {
                problem(key, "missing (a required key)".into());
                None
            }
            None => None,
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => {
                problem(key, "must be a non-empty string".into());
                None
            }
        }
    };
    let vendor = text_of(&table, "vendor", true, &mut problem);
    let title = text_of(&table, "title", true, &mut problem);
    let category = text_of(&table, "category", true, &mut problem).and_then(|c| {
        let found = CATEGORIES.iter().find(|k| **k == c).copied();
        if found.is_none() {
            problem(
                "category",
                format!("{c:?} must be one of {}", CATEGORIES.join(", ")),
            );
        }
        found
    });
    let samples = text_of(&table, "samples", true, &mut problem).and_then(|s| match s.as_str() {
        "documented" => Some(Samples::Documented),
        "constructed" => Some(Samples::Constructed),
        other => {
            problem(
                "samples",
                format!("{other:?} must be documented or constructed"),
            );
            None
        }
    });
    let signature = text_of(&table, "signature", true, &mut problem);
    let notes = text_of(&table, "notes", false, &mut problem);
    // Read by build.rs into the registry's `Serving`; checked here for users' files too.
    if let Some(p) = text_of(&table, "path", false, &mut problem) {
        if !p.starts_with('/') || p.contains(char::is_whitespace) {
            problem(
                "path",
                format!("{p:?} must start with '/' and hold no spaces"),
            );
        }
    }
    if let Some(s) = text_of(&table, "routing_key_auth_scheme", false, &mut problem) {
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problem(
                "routing_key_auth_scheme",
                format!("{s:?} must be one word, such as Key"),
            );
        }
    }
    let mut list = |key: &str, required: bool| -> Vec<String> {
        match table.get(key) {
            None if required => {
                problem(key, "missing (a required key)".into());
                Vec::new()
            }
            None => Vec::new(),
            Some(toml::Value::Array(items)) => {
                let texts: Vec<String> = items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                if texts.len() != items.len() || (required && texts.is_empty()) {
                    problem(key, "must be a list of strings, at least one".into());
                }
                texts
            }
            Some(_) => {
                problem(key, "must be a list of strings".into());
                Vec::new()
            }
        }
    };
    let docs = list("docs", true);
    let aliases = list("aliases", false);
    for url in &docs {
        if !url.starts_with("https://") && !url.starts_with("http://") {
            problem("docs", format!("{url:?} is not an http(s) URL"));
        }
    }
    for key in table.keys() {
        let known = REQUIRED.contains(&key.as_str()) || OPTIONAL.contains(&key.as_str());
        if key != "map" && !known {
            problem(key, "unknown key".into());
        }
    }
    let mapper = match table.remove("map") {
        Some(toml::Value::Table(mut map)) => {
            // The body's shape is the definition's; the mapper reads it.
            for key in ["body", "form_field", "answer"] {
                if let Some(v) = table.get(key) {
                    map.insert(key.into(), v.clone());
                }
            }
            match build(kind, toml::Value::Table(map)) {
                Ok(m) => Some(m),
                Err(errors) => {
                    for (key, what) in errors {
                        let at = match key.as_str() {
                            "body" | "form_field" | "answer" => key,
                            "" => "map".to_string(),
                            _ => format!("map.{key}"),
                        };
                        problem(&at, what);
                    }
                    None
                }
            }
        }
        Some(_) => {
            problem("map", "must be a table".into());
            None
        }
        None => {
            problem("map", "missing (the [map] table)".into());
            None
        }
    };
    match (vendor, title, category, samples, signature, mapper) {
        (
            Some(vendor),
            Some(title),
            Some(category),
            Some(samples),
            Some(signature),
            Some(mapper),
        ) if problems.is_empty() => Ok(Definition {
            kind: kind.to_string(),
            integration,
            vendor,
            title,
            category,
            docs,
            samples,
            signature,
            aliases,
            notes,
            mapper,
        }),
        _ => Err(problems),
    }
}
