//! An open alert's details (`custom_details`) as it keeps them: a flat object of plain strings
//! (a Prometheus alert's annotations, the commonest details) as name-value pairs in the form
//! labels take ([`super::LabelBuf`]: names interned, values with their lengths), not as JSON
//! text; anything else as the JSON text it came as. The pairs drop the keys' text, the quotes,
//! colons and commas (about 45 bytes of a Prometheus alert's ~250 by the shape's sizes; measured
//! with the 8 bytes the alert's struct grew by: 621 -> 598 live heap bytes per open alert, and
//! 754 -> 661 of RSS, `cargo bench --bench rss`; README, "Where an open alert's bytes go").
//! A changed re-send's details cost one allocation and a pass over them to be kept as pairs
//! (they were moved as they came before): 581-681 ns for such a re-send on the shard against
//! 203-242 ns for one with the details kept (criterion,
//! `correlate_repeat_trigger/prometheus_{changed,same}_details`). Values are not interned:
//! summaries and descriptions name their instance and value, so they seldom recur.
//!
//! An object is kept as pairs only when written back it gives the same text: compact, every
//! key and value a string without an escape. So incident messages and snapshots say exactly
//! what the sender's details said, whichever way they were kept.

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Details, LabelBuf, Labels};

pub enum KeptDetails {
    Json(Details),
    Pairs(Box<str>),
}

/// Kept details, borrowed: written as the JSON they came as.
#[derive(Clone, Copy)]
pub enum DetailsRef<'a> {
    Json(&'a RawValue),
    Pairs(Labels<'a>),
}

impl KeptDetails {
    pub fn new(details: Details) -> Self {
        match flat_pairs(details.0.get()) {
            Some(pairs) => KeptDetails::Pairs(pairs.into_text()),
            None => KeptDetails::Json(details),
        }
    }

    pub fn get(&self) -> DetailsRef<'_> {
        match self {
            KeptDetails::Json(d) => DetailsRef::Json(&d.0),
            KeptDetails::Pairs(p) => DetailsRef::Pairs(Labels::read(p)),
        }
    }

    /// The text kept (JSON, or the pairs' framing and text): a place in it reads back the same
    /// bytes while the details are kept.
    pub fn text(&self) -> &str {
        match self {
            KeptDetails::Json(d) => d.0.get(),
            KeptDetails::Pairs(p) => p,
        }
    }

    /// Whether `details` say what these do, compared as JSON text without making any.
    pub fn same_as(&self, details: &Details) -> bool {
        match self {
            KeptDetails::Json(d) => d == details,
            KeptDetails::Pairs(p) => same_text(Labels::read(p), details.0.get()),
        }
    }
}

impl DetailsRef<'_> {
    /// As JSON text (for the few readers that parse details).
    pub fn to_details(self) -> Details {
        match self {
            DetailsRef::Json(raw) => Details(raw.to_owned()),
            DetailsRef::Pairs(_) => {
                let json = serde_json::to_string(&self).unwrap_or_else(|_| "{}".into());
                Details(RawValue::from_string(json).unwrap_or_else(|_| empty_object()))
            }
        }
    }
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".into()).expect("{} is JSON")
}

/// Written as the JSON they came as: raw, or the pairs as an object (the same text, the pairs
/// having needed no escape).
impl Serialize for DetailsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DetailsRef::Json(raw) => raw.serialize(s),
            DetailsRef::Pairs(labels) => s.collect_map(labels.iter()),
        }
    }
}

/// The pairs of `json` when it is a compact object of strings without escapes (so that
/// writing the pairs back gives `json`).
fn flat_pairs(json: &str) -> Option<LabelBuf> {
    let mut rest = json.strip_prefix('{')?;
    let mut pairs = LabelBuf::with_capacity(json.len());
    if rest == "}" {
        return Some(pairs);
    }
    loop {
        let (name, after) = plain_string(rest)?;
        let (value, after) = plain_string(after.strip_prefix(':')?)?;
        pairs.push(name, value);
        match after.as_bytes().first()? {
            b',' => rest = &after[1..],
            b'}' if after.len() == 1 => return Some(pairs),
            _ => return None,
        }
    }
}

/// A string without escapes at the start of `s`, and the text after it.
fn plain_string(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('"')?;
    let end = s.find(['"', '\\'])?;
    (s.as_bytes()[end] == b'"').then(|| (&s[..end], &s[end + 1..]))
}

/// Whether `pairs` written as JSON give `json`, walking both.
fn same_text(pairs: Labels<'_>, json: &str) -> bool {
    let Some(mut rest) = json.strip_prefix('{') else {
        return false;
    };
    let mut first = true;
    for (name, value) in pairs.iter() {
        if !first {
            let Some(r) = rest.strip_prefix(',') else {
                return false;
            };
            rest = r;
        }
        first = false;
        let Some(r) = quoted(rest, name)
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| quoted(r, value))
        else {
            return false;
        };
        rest = r;
    }
    rest == "}"
}

/// The text after `"text"` at the start of `s`.
fn quoted<'s>(s: &'s str, text: &str) -> Option<&'s str> {
    s.strip_prefix('"')?.strip_prefix(text)?.strip_prefix('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(json: &str) -> Details {
        Details(RawValue::from_string(json.into()).expect("JSON"))
    }

    #[test]
    fn a_flat_object_of_plain_strings_is_kept_as_pairs_and_written_back_the_same() {
        let json = r#"{"summary":"DiskFull on host-1","description":"disk at 97% é","runbook_url":"https://r/x","summary":"again"}"#;
        let kept = KeptDetails::new(details(json));
        assert!(matches!(kept, KeptDetails::Pairs(_)));
        assert!(kept.text().len() < json.len() - 30, "{:?}", kept.text());
        assert_eq!(serde_json::to_string(&kept.get()).expect("writes"), json);
        assert_eq!(kept.get().to_details().0.get(), json);
        assert!(kept.same_as(&details(json)));
        for other in [
            r#"{"summary":"DiskFull on host-1"}"#,
            r#"{"summary":"DiskFull on host-1","description":"disk at 97% é","runbook_url":"https://r/x","summary":"again","x":"y"}"#,
            r#"{"summary":"DiskFull on host-1","description":"disk at 98% é","runbook_url":"https://r/x","summary":"again"}"#,
            r#"{"summary":"DiskFull on host-1","description":"disk at 97% é","runbook_url":"https://r/x","summary":1}"#,
            r#"["summary"]"#,
        ] {
            assert!(!kept.same_as(&details(other)), "{other}");
        }
        let empty = KeptDetails::new(details("{}"));
        assert!(matches!(empty, KeptDetails::Pairs(_)));
        assert_eq!(serde_json::to_string(&empty.get()).expect("writes"), "{}");
        assert!(empty.same_as(&details("{}")));
        assert!(!empty.same_as(&details(r#"{"a":"b"}"#)));
    }

    #[test]
    fn anything_else_is_kept_as_its_json() {
        for json in [
            r#"{"summary":"say \"hi\""}"#,
            r#"{"count":3}"#,
            r#"{"nested":{"a":"b"}}"#,
            r#"{ "a":"b"}"#,
            r#"["a","b"]"#,
            r#""text""#,
            "null",
        ] {
            let kept = KeptDetails::new(details(json));
            assert!(matches!(kept, KeptDetails::Json(_)), "{json}");
            assert_eq!(serde_json::to_string(&kept.get()).expect("writes"), json);
            assert_eq!(kept.text(), json);
            assert!(kept.same_as(&details(json)));
            assert!(!kept.same_as(&details(r#"{"a":"b"}"#)));
        }
    }
}
