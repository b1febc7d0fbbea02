//! The labels an alert keeps, compactly.

use serde::Serialize;

use super::{names, values};

/// An alert's labels as it keeps them, in its one allocation of text (`correlate::text`)
/// rather than two per label (an Alertmanager alert has 8-16), names interned
/// ([`super::names`]): for each label, its name's id plus one (0 for a name kept here, the
/// name table being full, then its length and text), then the value: twice its length and its
/// text, or, for a value that recurs (interned, [`super::values`], as an alert's labels are
/// written by [`Labels::write_interning`]), twice its id plus one. Ids and lengths are written
/// in 6-bit groups, low first, bit 6 set on all but the last (so the first 63 names take one
/// byte, values under 32 bytes one byte of length, the first 31 values one byte, the first
/// 2047 two): every byte of the framing is ASCII, which keeps the whole text UTF-8 and lets labels be read back as
/// `&str` without validating them (reading an incident's labels validated every value: a
/// fifth of the time a shard spent writing a storm's opening messages, perf, README
/// "Performance").
/// Kept for matching (`labels.<name>` in silences, inhibition and rules) and written into
/// incident messages as they are (`publish::encode::LabelMap`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Labels<'a>(&'a str);

/// Where [`Labels::write_interning`] put a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Its text, at this offset of the buffer.
    At(usize),
    /// Its id ([`super::values::value`]).
    Interned(u32),
}

/// The id written for a name kept in the labels themselves (the name table is full).
const INLINE: usize = 0;
/// The bit set on every group of an id or length but its last.
const MORE: u8 = 0x40;

impl<'a> Labels<'a> {
    /// Labels written by [`LabelBuf`].
    pub fn read(text: &'a str) -> Self {
        Labels(text)
    }

    /// The labels' text, as [`Labels::read`] takes it.
    pub fn as_str(self) -> &'a str {
        self.0
    }

    /// Every label, in the order they were pushed.
    pub fn iter(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let label = next(rest)?;
            rest = label.tail;
            Some((label.name, label.value))
        })
    }

    /// Every label's value, in order, no name read.
    pub fn values(self) -> impl Iterator<Item = &'a str> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (_, _, tail) = written_name(rest)?;
            let (value, tail) = value_of(tail)?;
            rest = tail;
            Some(value)
        })
    }

    /// Every label but those whose name comes again later (the last of each name wins, as in
    /// a JSON object), in order. Names are compared as written (the same name has the same
    /// id, or is inline both times), not read.
    pub fn iter_last(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let mut rest = self.0;
        std::iter::from_fn(move || loop {
            let label = next(rest)?;
            rest = label.tail;
            if !keys(rest).any(|key| key == label.key) {
                return Some((label.name, label.value));
            }
        })
    }

    /// A label's value. Names are compared without reading the values before the one found:
    /// matchers, inhibition and grouping look labels up for every alert.
    pub fn get(self, name: &str) -> Option<&'a str> {
        let mut rest = self.0;
        while let Some(label) = next(rest) {
            if label.name == name {
                return Some(label.value);
            }
            rest = label.tail;
        }
        None
    }

    /// The first of `set`'s names (in the set's order) that the labels hold with a value, and
    /// that value, in one pass: each label's name is compared as its id, not read (the host of
    /// an alert is the first of five names; inhibition and grouping ask for it on every new
    /// alert). As [`Labels::get`] for each name in turn, skipping empty values.
    pub fn first_of<const N: usize>(self, set: &NameSet<N>) -> Option<(usize, &'a str)> {
        let ids = set.ids();
        let mut seen = 0u64;
        let mut best: Option<(usize, &'a str)> = None;
        let mut rest = self.0;
        while let Some((_, name, tail)) = written_name(rest) {
            let Some((value, after)) = value_of(tail) else {
                break;
            };
            rest = after;
            let at = match name {
                Name::Id(id) => ids.iter().position(|&i| i == Some(id)),
                Name::Inline(name) => set.names.iter().position(|&n| n == name),
            };
            let Some(at) = at else { continue };
            if seen & (1 << at) != 0 {
                continue;
            }
            seen |= 1 << at;
            if !value.is_empty() && best.is_none_or(|(b, _)| at < b) {
                best = Some((at, value));
                if at == 0 {
                    break;
                }
            }
        }
        best
    }

    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }

    /// Appends these labels to `buf` as an open alert keeps them: each value that recurs
    /// ([`values::recurring`]) as its id, the others as text. `placed` is told each value and
    /// where it went.
    pub fn write_interning(self, buf: &mut String, mut placed: impl FnMut(&'a str, Placed)) {
        let mut rest = self.0;
        while let Some((key, _, tail)) = written_name(rest) {
            let Some((value, after)) = value_of(tail) else {
                break;
            };
            rest = after;
            buf.push_str(key);
            match values::recurring(value) {
                Some(id) => {
                    put_num(buf, (id as usize) << 1 | 1);
                    placed(value, Placed::Interned(id));
                }
                None => {
                    put_value(buf, value);
                    placed(value, Placed::At(buf.len() - value.len()));
                }
            }
        }
    }
}

/// A fixed list of label names looked up together ([`Labels::first_of`]), interned on first
/// use so that labels are compared with it by id.
pub struct NameSet<const N: usize> {
    names: [&'static str; N],
    ids: std::sync::OnceLock<[Option<u16>; N]>,
}

impl<const N: usize> NameSet<N> {
    /// At most 64 names.
    pub const fn new(names: [&'static str; N]) -> Self {
        assert!(N <= 64, "a name set holds at most 64 names");
        NameSet {
            names,
            ids: std::sync::OnceLock::new(),
        }
    }

    fn ids(&self) -> &[Option<u16>; N] {
        self.ids.get_or_init(|| self.names.map(names::intern))
    }
}

/// One label, its name as the id `id` or, with none (the name table is full), inline.
fn put_label(buf: &mut String, id: Option<u16>, name: &str, value: &str) {
    match id {
        Some(id) => put_num(buf, usize::from(id) + 1),
        None => {
            put_num(buf, INLINE);
            put_num(buf, name.len());
            buf.push_str(name);
        }
    }
    put_value(buf, value);
}

/// A value as text (see [`Labels`]).
fn put_value(buf: &mut String, value: &str) {
    put_num(buf, value.len() << 1);
    buf.push_str(value);
}

/// An id or a length, in ASCII 6-bit groups (see [`Labels`]).
fn put_num(buf: &mut String, mut n: usize) {
    while n >= usize::from(MORE) {
        buf.push(char::from((n as u8 & (MORE - 1)) | MORE));
        n >>= 6;
    }
    buf.push(char::from(n as u8));
}

/// An id or a length and the text after it.
#[inline]
fn take_num(buf: &str) -> Option<(usize, &str)> {
    let mut n = 0usize;
    for (i, &b) in buf.as_bytes().iter().enumerate().take(6) {
        if !b.is_ascii() {
            return None;
        }
        n |= usize::from(b & (MORE - 1)) << (6 * i);
        if b & MORE == 0 {
            // After an ASCII byte: a boundary.
            return Some((n, buf.get(i + 1..)?));
        }
    }
    None
}

/// One label as written.
struct Label<'a> {
    /// Its name as written (id, or inline name): equal for equal names.
    key: &'a str,
    name: &'a str,
    value: &'a str,
    /// The labels after it.
    tail: &'a str,
}

/// The first label of `buf`.
#[inline]
fn next(buf: &str) -> Option<Label<'_>> {
    let (key, name, tail) = written_name(buf)?;
    let name = match name {
        Name::Id(id) => names::name(id),
        Name::Inline(name) => name,
    };
    let (value, tail) = value_of(tail)?;
    Some(Label {
        key,
        name,
        value,
        tail,
    })
}

/// A label's name as [`written_name`] finds it.
enum Name<'a> {
    Id(u16),
    Inline(&'a str),
}

/// The first label's name as written (see [`Label::key`]), the name, and the text from its
/// value on.
#[inline]
fn written_name(buf: &str) -> Option<(&str, Name<'_>, &str)> {
    let (id, tail) = take_num(buf)?;
    let (name, tail) = match id {
        INLINE => {
            let (len, tail) = take_num(tail)?;
            let (name, tail) = tail.split_at_checked(len)?;
            (Name::Inline(name), tail)
        }
        id => (Name::Id(u16::try_from(id - 1).ok()?), tail),
    };
    Some((&buf[..buf.len() - tail.len()], name, tail))
}

/// A value (its text, or the value interned) and the text after it.
#[inline]
fn value_of(buf: &str) -> Option<(&str, &str)> {
    let (n, tail) = take_num(buf)?;
    if n & 1 == 1 {
        let id = u32::try_from(n >> 1).ok()?;
        return Some((values::value(id), tail));
    }
    tail.split_at_checked(n >> 1)
}

/// The names of the labels of `buf` as written (see [`Label::key`]), none looked up.
fn keys(mut buf: &str) -> impl Iterator<Item = &str> {
    std::iter::from_fn(move || {
        let (key, _, tail) = written_name(buf)?;
        buf = value_of(tail)?.1;
        Some(key)
    })
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
pub struct LabelBuf(String);

impl LabelBuf {
    /// Room for labels of about `bytes` bytes of names and values.
    pub fn with_capacity(bytes: usize) -> Self {
        LabelBuf(String::with_capacity(bytes))
    }

    /// Appends a label.
    pub fn push(&mut self, name: &str, value: &str) {
        put_label(&mut self.0, names::intern(name), name, value);
    }

    /// Sets `name` to `value`: the first label of that name, else a new one at the end.
    pub fn set(&mut self, name: &str, value: &str) {
        let mut at = 0;
        while let Some(label) = next(&self.0[at..]) {
            let end = self.0.len() - label.tail.len();
            if label.name == name {
                if label.value != value {
                    let mut new = String::with_capacity(end - at + value.len());
                    put_label(&mut new, names::intern(name), name, value);
                    self.0.replace_range(at..end, &new);
                }
                return;
            }
            at = end;
        }
        self.push(name, value);
    }

    /// Keeps the labels `keep` says yes to, in order, in place.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut at = 0;
        while let Some(label) = next(&self.0[at..]) {
            let end = self.0.len() - label.tail.len();
            if keep(label.name, label.value) {
                at = end;
            } else {
                self.0.drain(at..end);
            }
        }
    }

    pub fn labels(&self) -> Labels<'_> {
        Labels(&self.0)
    }

    /// The labels' text, in an allocation of its size, for [`Labels::read`].
    pub fn into_text(self) -> Box<str> {
        self.0.into_boxed_str()
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
    use super::{names, put_label, values, LabelBuf, Labels, NameSet, Placed};

    #[test]
    fn labels_come_back_as_given() {
        let given: Vec<(String, String)> = [("alertname", "DiskFull"), ("", ""), ("zone", "é-1 ✓")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let buf = LabelBuf::from(given.clone());
        assert_eq!(buf, given);
        let labels = Labels::read(buf.labels().as_str());
        let back: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            back,
            [("alertname", "DiskFull"), ("", ""), ("zone", "é-1 ✓")]
        );
        assert_eq!(labels.get("zone"), Some("é-1 ✓"));
        assert_eq!(labels.get("alert"), None);
        assert!(labels.values().eq(["DiskFull", "", "é-1 ✓"]));
        assert_eq!(Labels::default().iter().count(), 0);
        // A long value's length takes more than one byte.
        let long = "v".repeat(300);
        let buf: LabelBuf = [("a", long.as_str()), ("b", "c")].into_iter().collect();
        assert_eq!(buf.get("a"), Some(long.as_str()));
        assert_eq!(buf.get("b"), Some("c"));
        assert_eq!(buf.len(), 2);
        // A name kept inline (the name table full) reads back the same, beside interned ones.
        let mut buf = String::new();
        put_label(&mut buf, None, "zone", "e1");
        assert_eq!(buf, "\x00\x04zone\x04e1");
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
        // Framing stays ASCII past one group: the text is UTF-8 whatever the lengths.
        let mut buf = String::new();
        put_label(&mut buf, Some(4000), "n", &"é".repeat(40));
        assert!(buf.starts_with("\x61\x3e\x60\x02"), "{:?}", &buf[..4]);
        assert_eq!(
            Labels::read(&buf).iter().next().map(|(_, v)| v.len()),
            Some(80)
        );
        // Framing that is cut short or not ASCII reads as no further labels, not a panic.
        assert_eq!(Labels::read("\x01\x0aabc").iter().count(), 0);
        assert_eq!(Labels::read("é").iter().count(), 0);
        assert_eq!(Labels::read("\x41\x41\x41\x41\x41\x41\x41").get("x"), None);
    }

    #[test]
    fn values_that_recur_are_written_as_ids_and_read_back_the_same() {
        std::thread::spawn(|| {
            let event: LabelBuf = [
                ("alertname", "labels-test-DiskFull"),
                ("sev", "low"),
                ("instance", "labels-test-host-1:9100"),
                ("alert_id", "labels-test-1"),
            ]
            .into_iter()
            .collect();
            let write = |event: &LabelBuf| {
                let mut buf = String::from("head");
                let mut placed = Vec::new();
                event
                    .labels()
                    .write_interning(&mut buf, |v, p| placed.push((v.to_string(), p)));
                (buf, placed)
            };
            // First sighting: every value as text, where `placed` says.
            let (first, placed) = write(&event);
            assert_eq!(first.len(), "head".len() + event.labels().as_str().len());
            for (value, place) in &placed {
                let Placed::At(at) = *place else {
                    panic!("{value} interned on its first sighting")
                };
                assert_eq!(&first[at..at + value.len()], value);
            }
            // Second: the values that recur and are long enough are ids.
            let other: LabelBuf = [
                ("alertname", "labels-test-DiskFull"),
                ("sev", "low"),
                ("instance", "labels-test-host-1:9100"),
                ("alert_id", "labels-test-2"),
            ]
            .into_iter()
            .collect();
            let (second, placed) = write(&other);
            let kinds: Vec<bool> = placed
                .iter()
                .map(|(_, p)| matches!(p, Placed::Interned(_)))
                .collect();
            assert_eq!(kinds, [true, false, true, false]);
            // The two texts (43 bytes) and their lengths (a byte each) became ids of at most
            // three bytes each (the table is the process' and other tests intern too).
            let saved = first.len() - second.len();
            assert!((39..=43).contains(&saved), "{saved}: {second:?}");
            for (value, place) in &placed {
                if let Placed::Interned(id) = *place {
                    assert_eq!(values::value(id), value);
                }
            }
            let labels = Labels::read(&second["head".len()..]);
            assert_eq!(
                labels.iter().collect::<Vec<_>>(),
                other.iter().collect::<Vec<_>>()
            );
            assert_eq!(labels.get("instance"), Some("labels-test-host-1:9100"));
            assert!(labels.values().eq(other.labels().values()));
            // Written again from interned labels: the same labels, and the second alert's own
            // id, now seen twice, an id too.
            let mut again = String::new();
            labels.write_interning(&mut again, |_, _| {});
            assert_eq!(
                Labels::read(&again).iter().collect::<Vec<_>>(),
                other.iter().collect::<Vec<_>>()
            );
            assert!(again.len() + 11 <= second.len() - "head".len(), "{again:?}");
        })
        .join()
        .expect("joins");
    }

    #[test]
    fn the_last_label_of_a_name_wins_when_written_out() {
        let mut buf: LabelBuf = [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")]
            .into_iter()
            .collect();
        let mut inline = String::new();
        put_label(&mut inline, None, "z", "5");
        put_label(&mut inline, None, "z", "6");
        buf.0.push_str(&inline);
        assert_eq!(
            buf.labels().iter_last().collect::<Vec<_>>(),
            [("b", "2"), ("a", "3"), ("c", "4"), ("z", "6")]
        );
        assert_eq!(buf.get("a"), Some("1"), "a lookup finds the first");
    }

    #[test]
    fn a_name_set_finds_its_first_name_with_a_value_in_one_pass() {
        static SET: NameSet<3> = NameSet::new(["lt-host", "lt-node", "lt-instance"]);
        let find = |pairs: &[(&str, &str)]| {
            let buf: LabelBuf = pairs.iter().copied().collect();
            let by_name = SET
                .names
                .iter()
                .enumerate()
                .find_map(|(i, n)| Some((i, buf.get(n).filter(|v| !v.is_empty())?)));
            let found = buf.labels().first_of(&SET);
            assert_eq!(found, by_name, "as a get of each name in turn: {pairs:?}");
            found.map(|(at, v)| (at, v.to_string()))
        };
        let found = |at: usize, v: &str| Some((at, v.to_string()));
        // The set's order decides, not the labels'.
        assert_eq!(
            find(&[("lt-instance", "i:1"), ("job", "j"), ("lt-node", "n1")]),
            found(1, "n1")
        );
        assert_eq!(
            find(&[("lt-host", "h1"), ("lt-node", "n1")]),
            found(0, "h1")
        );
        // An empty value counts as absent; the first label of a name is the one read.
        assert_eq!(
            find(&[("lt-host", ""), ("lt-instance", "i:1")]),
            found(2, "i:1")
        );
        assert_eq!(find(&[("lt-node", ""), ("lt-node", "n2")]), None);
        assert_eq!(find(&[("job", "j")]), None);
        assert_eq!(Labels::default().first_of(&SET), None);
        // A name kept inline (the name table full) is compared as text.
        let mut inline = String::new();
        put_label(&mut inline, None, "lt-node", "n3");
        put_label(
            &mut inline,
            names::intern("lt-instance"),
            "lt-instance",
            "i:2",
        );
        assert_eq!(Labels::read(&inline).first_of(&SET), Some((1, "n3")));
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
