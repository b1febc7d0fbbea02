//! RFC 6901 JSON pointers and dedup-key templates of the generic mapper: parsed from the config
//! at load time, read against a request body at request time.
//!
//! Invariant: a [`Pointer`] or [`Template`] exists only through its `parse`, so every pointer
//! held is valid RFC 6901 (`""` or `/`-led, `~` only as `~0` / `~1`) and every template has at
//! least one `{/pointer}` placeholder; reading one never fails, an absent or null value is
//! `None`.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

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

/// A template: text with `{/pointer}` placeholders, each of which may list alternatives
/// (`{/title|/message}`: the first present and not blank).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

/// A piece of a [`Template`]: literal text or a value to put in its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Text(String),
    /// The first of these that is present and not blank.
    Value(Vec<Pointer>),
}

impl Template {
    /// A dedup-key template: at least one placeholder.
    pub fn parse(s: &str) -> Result<Template, String> {
        let t = Template::parse_text(s)?;
        if !t.parts.iter().any(|p| matches!(p, Part::Value(_))) {
            return Err(format!("{s:?} has no {{/pointer}} placeholder"));
        }
        Ok(t)
    }

    /// Any template, a constant (no placeholder) included.
    pub fn parse_text(s: &str) -> Result<Template, String> {
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
                    let mut alternatives = Vec::new();
                    for alt in inner.split('|') {
                        if !alt.starts_with('/') {
                            return Err(format!(
                                "{s:?}: each placeholder is a JSON pointer such as {{/host}} (or alternatives {{/a|/b}}), not {{{inner}}}"
                            ));
                        }
                        alternatives.push(Pointer::parse(alt).map_err(|e| format!("{s:?}: {e}"))?);
                    }
                    parts.push(Part::Value(alternatives));
                    rest = &rest[i + end + 1..];
                }
            }
        }
        Ok(Template {
            text: s.to_string(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The template's pieces in order.
    pub(super) fn parts(&self) -> &[Part] {
        &self.parts
    }
}

/// Where a mapped field's value comes from: a pointer, or a template (a constant when it has
/// no placeholder). Config text that is `""` or starts with `/` is a pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Pointer(Pointer),
    Template(Template),
}

impl Source {
    pub fn parse(s: &str) -> Result<Source, String> {
        if s.is_empty() || s.starts_with('/') {
            Pointer::parse(s).map(Source::Pointer)
        } else {
            Template::parse_text(s).map(Source::Template)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Source::Pointer(p) => p.as_str(),
            Source::Template(t) => t.as_str(),
        }
    }
}
