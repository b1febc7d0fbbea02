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
    /// Labels written by [`LabelBuf`].
    pub fn read(bytes: &'a [u8]) -> Self {
        Labels(bytes)
    }

    /// The labels' bytes, as [`Labels::read`] takes them.
    pub fn as_bytes(self) -> &'a [u8] {
        self.0
    }

    /// Every label, in the order they were pushed.
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

/// An event's labels, owned, in the form an alert keeps them ([`Labels`]): a parser pushes
/// each label into one buffer (its name interned), and a new alert copies the buffer whole.
/// In the order pushed; a name may be pushed twice (parsers do not), and then
/// [`LabelBuf::get`] finds the first.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LabelBuf(Vec<u8>);

impl LabelBuf {
    /// Room for labels of about `bytes` bytes of names and values.
    pub fn with_capacity(bytes: usize) -> Self {
        LabelBuf(Vec::with_capacity(bytes))
    }

    /// Appends a label.
    pub fn push(&mut self, name: &str, value: &str) {
        put_label(&mut self.0, names::intern(name), name, value);
    }

    /// Sets `name` to `value`: the first label of that name, else a new one at the end.
    pub fn set(&mut self, name: &str, value: &str) {
        let mut at = 0;
        while let Some((k, v, tail)) = next(&self.0[at..]) {
            let end = self.0.len() - tail.len();
            if k == name {
                if v != value.as_bytes() {
                    let mut label = Vec::with_capacity(end - at + value.len());
                    put_label(&mut label, names::intern(name), name, value);
                    self.0.splice(at..end, label);
                }
                return;
            }
            at = end;
        }
        self.push(name, value);
    }

    /// Keeps the labels `keep` says yes to, in order, in place.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let (mut read, mut write) = (0, 0);
        while let Some((k, v, tail)) = next(&self.0[read..]) {
            let end = self.0.len() - tail.len();
            if keep(k, std::str::from_utf8(v).unwrap_or_default()) {
                self.0.copy_within(read..end, write);
                write += end - read;
            }
            read = end;
        }
        self.0.truncate(write);
    }

    pub fn labels(&self) -> Labels<'_> {
        Labels(&self.0)
    }

    /// Every label, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels().iter()
    }

    /// The first label named `name`'s value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels().get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.iter().count()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for LabelBuf {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        for (k, v) in pairs {
            self.push(k.as_ref(), v.as_ref());
        }
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for LabelBuf {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut buf = LabelBuf::default();
        buf.extend(pairs);
        buf
    }
}

/// Sized for the pairs first: one allocation.
impl<K: AsRef<str>, V: AsRef<str>> From<Vec<(K, V)>> for LabelBuf {
    fn from(pairs: Vec<(K, V)>) -> Self {
        let mut buf = LabelBuf::with_capacity(
            pairs
                .iter()
                .map(|(k, v)| 3 + k.as_ref().len() + v.as_ref().len())
                .sum(),
        );
        buf.extend(pairs);
        buf
    }
}

impl std::fmt::Debug for LabelBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Equal to the same labels in the same order (as tests write them).
impl<K: AsRef<str>, V: AsRef<str>> PartialEq<[(K, V)]> for LabelBuf {
    fn eq(&self, other: &[(K, V)]) -> bool {
        self.iter()
            .map(Some)
            .chain(std::iter::once(None))
            .zip(
                other
                    .iter()
                    .map(|(k, v)| Some((k.as_ref(), v.as_ref())))
                    .chain(std::iter::once(None)),
            )
            .all(|(a, b)| a == b)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> PartialEq<Vec<(K, V)>> for LabelBuf {
    fn eq(&self, other: &Vec<(K, V)>) -> bool {
        *self == other[..]
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> PartialEq<[(K, V); N]> for LabelBuf {
    fn eq(&self, other: &[(K, V); N]) -> bool {
        *self == other[..]
    }
}

/// Written as `[[name, value], ...]`, as [`Labels`].
impl Serialize for LabelBuf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.labels().serialize(s)
    }
}

/// Read from `[[name, value], ...]`, each label pushed as it is read: a name or value without
/// escapes is not copied on the way (Kafka mode's correlators read every event this way).
impl<'de> serde::Deserialize<'de> for LabelBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = LabelBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of [name, value] string pairs")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<LabelBuf, A::Error> {
                let mut buf = LabelBuf::default();
                while let Some((Text(k), Text(v))) = seq.next_element::<(Text, Text)>()? {
                    buf.push(&k, &v);
                }
                Ok(buf)
            }
        }
        d.deserialize_seq(Pairs)
    }
}

/// A string, borrowed from the input when it can be.
struct Text<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Str;
        impl<'de> serde::de::Visitor<'de> for Str {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(v.to_owned().into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(v.into()))
            }
        }
        d.deserialize_str(Str)
    }
}

#[cfg(test)]
mod tests {
    use super::{names, put_label, LabelBuf, Labels};

    #[test]
    fn labels_come_back_as_given() {
        let given: Vec<(String, String)> = [("alertname", "DiskFull"), ("", ""), ("zone", "é-1 ✓")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let buf = LabelBuf::from(given.clone());
        assert_eq!(buf, given);
        let labels = Labels::read(buf.labels().as_bytes());
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
        let buf: LabelBuf = [("a", long.as_str()), ("b", "c")].into_iter().collect();
        assert_eq!(buf.get("a"), Some(long.as_str()));
        assert_eq!(buf.get("b"), Some("c"));
        assert_eq!(buf.len(), 2);
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

    #[test]
    fn labels_are_set_and_dropped_in_place() {
        let long = "w".repeat(200);
        let mut buf: LabelBuf = [("a", "1"), ("b", ""), ("c", "3"), ("b", "4")]
            .into_iter()
            .collect();
        buf.set("b", &long);
        assert_eq!(
            buf,
            [("a", "1"), ("b", long.as_str()), ("c", "3"), ("b", "4")]
        );
        buf.set("c", "3");
        buf.set("d", "5");
        assert_eq!(buf.get("d"), Some("5"));
        buf.retain(|k, v| k != "b" && v != "3");
        assert_eq!(buf, [("a", "1"), ("d", "5")]);
        assert_ne!(buf, [("a", "1")], "a shorter list differs");
        buf.retain(|_, _| false);
        assert!(buf.is_empty());
        assert_eq!(format!("{buf:?}"), "[]");
        let json = serde_json::to_string(&LabelBuf::from(vec![("x", "é")])).expect("writes");
        assert_eq!(json, r#"[["x","é"]]"#);
        let back: LabelBuf = serde_json::from_str(&json).expect("reads");
        assert_eq!(back, [("x", "é")]);
        let escaped: LabelBuf =
            serde_json::from_str(r#"[["a\"b","c\nd"],["e","f"]]"#).expect("reads");
        assert_eq!(escaped, [("a\"b", "c\nd"), ("e", "f")]);
        assert!(
            serde_json::from_str::<LabelBuf>(r#"{"a":"b"}"#).is_err(),
            "a map is not pairs"
        );
        assert!(
            serde_json::from_str::<LabelBuf>(r#"[["a",1]]"#).is_err(),
            "a value is text"
        );
    }
}
