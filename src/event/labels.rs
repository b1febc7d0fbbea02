//! The labels an alert keeps, compactly.

use serde::Serialize;

use super::names;

/// An alert's labels as it keeps them, in its one allocation of text (`correlate::text`)
/// rather than two per label (an Alertmanager alert has 8-16), names interned
/// ([`super::names`]): for each label, its name's id (`u16`, little endian; [`INLINE`] for a
/// name kept here, then its length and bytes), then the value's length (LEB128) and bytes.
/// Kept for matching (`labels.<name>` in silences, inhibition and rules) and written into
/// incident messages as they are (`publish::encode::LabelMap`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Labels<'a>(&'a [u8]);

/// The id of a name kept in the labels themselves (the name table is full).
const INLINE: u16 = u16::MAX;

impl<'a> Labels<'a> {
    /// Appends `labels` to `buf` as [`Labels`] reads them.
    pub fn write(labels: &[(String, String)], buf: &mut Vec<u8>) {
        buf.reserve(labels.iter().map(|(_, v)| 3 + v.len()).sum());
        for (k, v) in labels {
            put_label(buf, names::intern(k), k, v);
        }
    }

    /// Labels written by [`Labels::write`].
    pub fn read(bytes: &'a [u8]) -> Self {
        Labels(bytes)
    }

    /// Every label, in the order given to [`Labels::write`].
    pub fn iter(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let mut rest: &[u8] = self.0;
        std::iter::from_fn(move || {
            let (name, value, tail) = next(rest)?;
            rest = tail;
            // Both were `String`s: the bytes are UTF-8.
            Some((name, std::str::from_utf8(value).unwrap_or_default()))
        })
    }

    /// A label's value. Names are compared as bytes and only the value found is read as text:
    /// matchers, inhibition and grouping look labels up for every alert (reading each name as
    /// text took a sixth of the server's CPU in a 50-alert batch storm, perf, README
    /// "Performance").
    pub fn get(self, name: &str) -> Option<&'a str> {
        let mut rest: &[u8] = self.0;
        while let Some((key, value, tail)) = next(rest) {
            if key == name {
                // It was a `String`: the bytes are UTF-8.
                return Some(std::str::from_utf8(value).unwrap_or_default());
            }
            rest = tail;
        }
        None
    }

    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }
}

/// One label, its name as the id `id` or, with none (the name table is full), inline.
fn put_label(buf: &mut Vec<u8>, id: Option<u16>, name: &str, value: &str) {
    match id {
        Some(id) => buf.extend_from_slice(&id.to_le_bytes()),
        None => {
            buf.extend_from_slice(&INLINE.to_le_bytes());
            put_len(buf, name.len());
            buf.extend_from_slice(name.as_bytes());
        }
    }
    put_len(buf, value.len());
    buf.extend_from_slice(value.as_bytes());
}

/// A length as LEB128.
fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// A LEB128 length and the bytes after it.
#[inline]
fn take_len(buf: &[u8]) -> Option<(usize, &[u8])> {
    let mut n = 0usize;
    for (i, &b) in buf.iter().enumerate().take(5) {
        n |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, &buf[i + 1..]));
        }
    }
    None
}

/// `len` bytes of `buf` and the rest.
#[inline]
fn take(buf: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    (len <= buf.len()).then(|| buf.split_at(len))
}

/// The first label of `buf` (its name, its value's bytes) and what follows.
#[inline]
fn next(buf: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let (id, tail) = buf.split_first_chunk::<2>()?;
    let id = u16::from_le_bytes(*id);
    let (name, tail) = match id {
        INLINE => {
            let (len, tail) = take_len(tail)?;
            let (name, tail) = take(tail, len)?;
            // It was a `String`: UTF-8.
            (std::str::from_utf8(name).unwrap_or_default(), tail)
        }
        id => (names::name(id), tail),
    };
    let (len, tail) = take_len(tail)?;
    let (value, tail) = take(tail, len)?;
    Some((name, value, tail))
}

/// Written as `[[name, value], ...]`.
impl Serialize for Labels<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::{names, put_label, Labels};

    #[test]
    fn labels_come_back_as_given() {
        let given: Vec<(String, String)> = [("alertname", "DiskFull"), ("", ""), ("zone", "é-1 ✓")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut buf = Vec::new();
        Labels::write(&given, &mut buf);
        let labels = Labels::read(&buf);
        let back: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            back,
            [("alertname", "DiskFull"), ("", ""), ("zone", "é-1 ✓")]
        );
        assert_eq!(labels.get("zone"), Some("é-1 ✓"));
        assert_eq!(labels.get("alert"), None);
        assert_eq!(Labels::default().iter().count(), 0);
        // A long value's length takes more than one byte.
        let long = "v".repeat(300);
        let mut buf = Vec::new();
        Labels::write(
            &[("a".into(), long.clone()), ("b".into(), "c".into())],
            &mut buf,
        );
        let labels = Labels::read(&buf);
        assert_eq!(labels.get("a"), Some(long.as_str()));
        assert_eq!(labels.get("b"), Some("c"));
        // A name kept inline (the name table full) reads back the same, beside interned ones.
        let mut buf = Vec::new();
        put_label(&mut buf, None, "zone", "e1");
        assert_eq!(buf, b"\xff\xff\x04zone\x02e1");
        put_label(
            &mut buf,
            names::intern("labels-test-rack"),
            "labels-test-rack",
            "r1",
        );
        let mixed = Labels::read(&buf);
        assert_eq!(
            mixed.iter().collect::<Vec<_>>(),
            [("zone", "e1"), ("labels-test-rack", "r1")]
        );
        assert_eq!(mixed.get("zone"), Some("e1"));
        assert_eq!(mixed.get("labels-test-rack"), Some("r1"));
    }
}
