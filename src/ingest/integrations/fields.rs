//! Reading fields out of a parsed JSON body while collecting every problem, each naming its
//! field the way the sender wrote it (`payload.severity`, `links[2].href`); and decoding
//! percent-encoded text (paths, query strings, form bodies).

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Serialize;
use simd_json::BorrowedValue;

use crate::event::{Details, Image, Link, Severity};
use crate::time::{from_epoch_number, parse_timestamp, Timestamp, UnixMillis};

use super::json::{details, Json};

/// Names and string values of a JSON object, borrowed from the body.
pub type Pairs<'v> = Vec<(&'v str, Cow<'v, str>)>;

/// The severity a sender's name stands for in `table`, compared without case.
pub fn severity_named(value: &str, table: &[(&str, Severity)]) -> Option<Severity> {
    table
        .iter()
        .find_map(|&(name, sev)| value.eq_ignore_ascii_case(name).then_some(sev))
}

/// A JSON object as `custom_details`; `None` when it is empty.
pub fn details_of(map: &serde_json::Map<String, serde_json::Value>) -> Option<Details> {
    if map.is_empty() {
        return None;
    }
    details(map)
}

/// The links that are present, each with its fixed text: `[(generator_url, "Source"), ...]`.
pub fn named_links<'a>(
    links: impl IntoIterator<Item = (Option<&'a str>, &'static str)>,
) -> Vec<Link> {
    links
        .into_iter()
        .filter_map(|(href, text)| {
            href.map(|href| Link {
                href: href.to_string(),
                text: Some(Cow::Borrowed(text)),
            })
        })
        .collect()
}

/// Name/value pairs (sorted, names unique) as a `custom_details` object of strings, written
/// straight from the pairs; `None` when there are none.
pub fn pairs_details<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Option<Details> {
    struct Map<'a, K, V>(&'a [(K, V)]);
    impl<K: AsRef<str>, V: AsRef<str>> Serialize for Map<'_, K, V> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        }
    }
    if pairs.is_empty() {
        return None;
    }
    details(&Map(pairs))
}

/// The text fields that are present, as a `custom_details` object; `None` when none is.
pub fn text_details<'a>(
    fields: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Option<Details> {
    let map: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), serde_json::Value::String(v.to_string()))))
        .collect();
    details_of(&map)
}

/// Free-form JSON as `custom_details`, kept as compact text.
pub fn raw_details(v: &impl Serialize) -> Option<Details> {
    details(v)
}

/// A borrowed JSON value as an owned one, to put in `custom_details`.
pub fn to_json(v: &BorrowedValue<'_>) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// A JSON object being read, and every problem found so far. `V` is a node of the borrowed
/// tree by default, or of simd-json's tape for the formats that read the tape in place.
pub struct Reader<'v, 'p, V = &'v BorrowedValue<'v>> {
    pub value: Option<V>,
    pub path: &'p str,
    pub errors: &'p mut Vec<String>,
    strings: PhantomData<&'v str>,
}

pub fn path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

impl<'v, 'p, V: Json<'v>> Reader<'v, 'p, V> {
    pub fn new(value: Option<V>, path: &'p str, errors: &'p mut Vec<String>) -> Self {
        Reader {
            value,
            path,
            errors,
            strings: PhantomData,
        }
    }

    fn get(&self, name: &str) -> Option<V> {
        self.value?.member(name).filter(|v| !v.null())
    }

    /// A string field that may be absent (or null); any other type is a problem.
    pub fn opt_str(&mut self, name: &str) -> Option<&'v str> {
        let v = self.get(name)?;
        match v.text() {
            Some(s) => Some(s),
            None => {
                self.errors
                    .push(format!("'{}' must be a string", path(self.path, name)));
                None
            }
        }
    }

    /// A string field that must be present and not blank.
    pub fn req_str(&mut self, name: &str) -> Option<&'v str> {
        let problem = match self.get(name).map(|v| v.text()) {
            Some(Some(s)) if !s.trim().is_empty() => return Some(s),
            Some(None) => "must be a string",
            _ => "is missing or blank",
        };
        self.errors
            .push(format!("'{}' {problem}", path(self.path, name)));
        None
    }

    /// A string field of at most `max` characters.
    pub fn bounded(&mut self, value: Option<&'v str>, name: &str, max: usize) -> Option<&'v str> {
        let s = value?;
        if s.chars().nth(max).is_some() {
            self.errors.push(format!(
                "'{}' must be at most {max} characters",
                path(self.path, name)
            ));
            return None;
        }
        Some(s)
    }

    /// An array field that must be present (a batch's items): its length and items.
    pub fn req_array(
        &mut self,
        name: &str,
    ) -> Option<(usize, impl Iterator<Item = V> + use<'v, V>)> {
        let problem = match self.get(name).map(|v| v.items()) {
            Some(Some(items)) => return Some(items),
            Some(None) => "must be an array",
            None => "is missing",
        };
        self.errors
            .push(format!("'{}' {problem}", path(self.path, name)));
        None
    }

    /// A flat map of strings (labels, annotations, tags), sorted by name; `None` when absent.
    /// Numbers and booleans are kept as their JSON text and null values are skipped; an
    /// object or array value, or a field that is not an object, is a problem.
    pub fn string_map(&mut self, name: &str) -> Option<Vec<(String, String)>> {
        let pairs = self.string_pairs(name)?;
        Some(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_owned()))
                .collect(),
        )
    }

    /// [`Reader::string_map`] borrowed from the body: only a number's or boolean's text is
    /// made (the parsers of the busiest formats copy labels once, into the event's
    /// [`crate::event::LabelBuf`]).
    pub fn string_pairs(&mut self, name: &str) -> Option<Pairs<'v>> {
        let v = self.get(name)?;
        let Some((len, members)) = v.members() else {
            self.errors
                .push(format!("'{}' must be an object", path(self.path, name)));
            return None;
        };
        let mut out = Vec::with_capacity(len);
        for (k, v) in members {
            let value = if let Some(s) = v.text() {
                Cow::Borrowed(s)
            } else if let Some(text) = v.scalar_text() {
                Cow::Owned(text)
            } else if v.null() {
                continue;
            } else {
                self.errors
                    .push(format!("'{}.{k}' must be a string", path(self.path, name)));
                continue;
            };
            out.push((k, value));
        }
        // Names are unique (a repeated key refuses the body).
        out.sort_unstable_by_key(|(k, _)| *k);
        Some(out)
    }

    /// A nested object, or `None` when absent; any other type is a problem.
    pub fn object(&mut self, name: &str) -> Option<V> {
        let v = self.get(name)?;
        if v.object() {
            Some(v)
        } else {
            self.errors
                .push(format!("'{}' must be an object", path(self.path, name)));
            None
        }
    }

    /// A nested object that must be present.
    pub fn req_object(&mut self, name: &str) -> Option<V> {
        if self.get(name).is_none() {
            self.errors
                .push(format!("'{}' is missing", path(self.path, name)));
            return None;
        }
        self.object(name)
    }

    /// A date-time in any format senders use; Go's zero time counts as absent.
    pub fn timestamp(&mut self, name: &str) -> Option<UnixMillis> {
        let v = self.get(name)?;
        let parsed = match v.text() {
            Some(s) => parse_timestamp(s),
            None => v.number().and_then(from_epoch_number),
        };
        match parsed {
            Some(Timestamp::At(t)) => Some(t),
            Some(Timestamp::Unset) => None,
            None => {
                self.errors.push(format!(
                    "'{}' is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)",
                    path(self.path, name)
                ));
                None
            }
        }
    }

    /// Free-form JSON, kept as compact text.
    pub fn details(&mut self, name: &str) -> Option<Details> {
        self.get(name)?.details()
    }

    /// Calls `each` with a reader on every object of an array field, in order; absent is
    /// empty, and anything that is not an array of objects is a problem.
    pub fn for_each_object(&mut self, name: &str, mut each: impl FnMut(&mut Reader<'v, '_, V>)) {
        let Some(v) = self.get(name) else {
            return;
        };
        let Some((_, items)) = v.items() else {
            self.errors
                .push(format!("'{}' must be an array", path(self.path, name)));
            return;
        };
        for (i, item) in items.enumerate() {
            let at = format!("{}[{i}]", path(self.path, name));
            if item.object() {
                each(&mut Reader::new(Some(item), &at, self.errors));
            } else {
                self.errors.push(format!("'{at}' must be an object"));
            }
        }
    }

    pub fn child<'p2>(&'p2 mut self, value: Option<V>, path: &'p2 str) -> Reader<'v, 'p2, V> {
        Reader::new(value, path, self.errors)
    }

    /// PagerDuty `links[]`: `{href, text?}`.
    pub fn links(&mut self, name: &str) -> Vec<Link> {
        let mut out = Vec::new();
        self.for_each_object(name, |r| {
            if let (Some(href), text) = (r.req_str("href"), r.opt_str("text")) {
                out.push(Link {
                    href: href.to_string(),
                    text: text.map(|t| t.to_string().into()),
                });
            }
        });
        out
    }

    /// PagerDuty `images[]`: `{src, href?, alt?}`.
    pub fn images(&mut self, name: &str) -> Vec<Image> {
        let mut out = Vec::new();
        self.for_each_object(name, |r| out.extend(r.image()));
        out
    }

    /// One image object: `{src, href?, alt?}`.
    pub fn image(&mut self) -> Option<Image> {
        let (src, href, alt) = (
            self.req_str("src"),
            self.opt_str("href"),
            self.opt_str("alt"),
        );
        Some(Image {
            src: src?.to_string(),
            href: href.map(str::to_string),
            alt: alt.map(str::to_string),
        })
    }
}

/// A value as event text: strings as they are, numbers and booleans as their JSON text;
/// `None` for null, arrays and objects.
pub fn scalar<'v>(v: impl Json<'v>) -> Option<String> {
    v.text().map(str::to_string).or_else(|| v.scalar_text())
}

/// The first value of query parameter `name`, percent-decoded (an undecodable one is empty).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v, true).unwrap_or_default())
    })
}

/// The `(name, value)` pairs of form data or a query string, decoded (`+` as a space); `None`
/// for a pair with a broken escape or bytes that are not UTF-8.
pub fn form_pairs(text: &str) -> impl Iterator<Item = Option<(String, String)>> + '_ {
    text.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Some((percent_decode(k, true)?, percent_decode(v, true)?))
    })
}

/// `%XX` escapes (and `+` as a space in query strings); `None` for a broken escape or bytes
/// that are not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    if !s.contains(['%', '+']) {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let digit = |c: u8| (c as char).to_digit(16);
                out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
