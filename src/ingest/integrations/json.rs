//! Parsing a request body as JSON, once per request, into simd-json's tape: a flat array of
//! nodes borrowing the body's strings. The busiest formats read the tape as it is (no tree is
//! built); the others get simd-json's borrowed tree made from the same tape. Either way a key
//! given twice in one object refuses the body. [`Json`] is what a [`super::fields::Reader`]
//! needs from a value, for both.

use std::cell::{Cell, RefCell};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use simd_json::prelude::*;
use simd_json::tape::{self, Node, Tape};
use simd_json::{BorrowedValue, Buffers};

use crate::event::Details;

/// A node of simd-json's tape, read in place.
pub type TapeValue<'t, 'v> = tape::Value<'t, 'v>;

thread_local! {
    /// simd-json's working buffers, kept per thread: parsing is synchronous, and a request
    /// then allocates none of them (they grow to the largest body the thread has seen).
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
    /// The tape's node array, kept per thread like the buffers (empty between requests, and
    /// at most [`KEPT_NODES`] long).
    static TAPE: Cell<Option<Tape<'static>>> = const { Cell::new(None) };
}

/// Why a body is not JSON that sluice reads.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON, or nested deeper than simd-json's 1024 levels.
    Syntax(simd_json::Error),
    /// A key appears twice in one object, at this path (`payload.severity`). JSON readers
    /// disagree on which of the two counts (a lookup on the tape finds the first, most readers
    /// take the last), so a proxy or a signature check in front of sluice could read such a
    /// body one way and sluice another: it is refused.
    RepeatedKey(String),
}

/// Parses `body` in place (simd-json rewrites escapes) into this thread's tape and calls
/// `read` with its root. The tape's array and simd-json's buffers are reused by the next
/// request of the thread; what `read` returns may borrow the body, not the tape.
pub fn with_tape<'b, R>(
    body: &'b mut [u8],
    read: impl FnOnce(TapeValue<'_, 'b>) -> R,
) -> Result<R, JsonError> {
    let mut tape: Tape<'b> = TAPE.take().unwrap_or_else(Tape::null).reset();
    let filled = BUFFERS.with_borrow_mut(|buffers| simd_json::fill_tape(body, buffers, &mut tape));
    let result = match filled {
        Err(e) => Err(JsonError::Syntax(e)),
        Ok(()) => match repeated_key(&tape.0) {
            Some(path) => Err(JsonError::RepeatedKey(path)),
            None => Ok(read(tape.as_value())),
        },
    };
    // A tape grown past the bound by an unusual body is dropped, not kept for the thread's life.
    if tape.0.capacity() <= KEPT_NODES {
        TAPE.set(Some(tape.reset()));
    }
    result
}

/// The most tape nodes a thread keeps between requests (24 bytes each: 1.5 MiB); a 256-alert
/// Prometheus batch takes about 10,000.
const KEPT_NODES: usize = 1 << 16;

/// Parses `body` in place into simd-json's borrowed tree (made from the tape), for the formats
/// that read it as a tree; the tree borrows the body only.
pub fn parse_json(body: &mut [u8]) -> Result<BorrowedValue<'_>, JsonError> {
    with_tape(body, to_tree)
}

/// A tape value (and everything in it) as a borrowed tree.
fn to_tree<'v>(v: TapeValue<'_, 'v>) -> BorrowedValue<'v> {
    simd_json::value::lazy::Value::from_tape(v).into_value()
}

/// One of 256 bits for a key, from its length and its first, middle and last bytes
/// (Fibonacci hashing; read straight from the key, as copying a prefix into a buffer stalled
/// the load that read it back).
fn bit(key: &str) -> usize {
    let b = key.as_bytes();
    let ends = match b {
        [] => 0,
        [first, .., last] | [first @ last] => {
            u64::from(*first) | u64::from(b[b.len() / 2]) << 8 | u64::from(*last) << 16
        }
    };
    let x = ends | (b.len() as u64) << 24;
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// The path of the first key that appears twice in one object of the tape
/// (`alerts[0].labels.alertname`).
fn repeated_key(nodes: &[Node<'_>]) -> Option<String> {
    match nodes.is_empty() {
        true => None,
        false => walk(nodes, 0).err(),
    }
}

fn join(parent: &str, inner: String) -> String {
    if inner.starts_with('[') {
        format!("{parent}{inner}")
    } else {
        format!("{parent}.{inner}")
    }
}

/// Checks the object or array at `at` and everything in it; the index after it, or the path of
/// a repeated key.
fn walk(nodes: &[Node<'_>], at: usize) -> Result<usize, String> {
    match nodes[at] {
        Node::Object { len, .. } => object(nodes, at, len),
        Node::Array { len, .. } => {
            let mut i = at + 1;
            for n in 0..len {
                i = next(nodes, i).map_err(|inner| join(&format!("[{n}]"), inner))?;
            }
            Ok(i)
        }
        Node::String(_) | Node::Static(_) => Ok(at + 1),
    }
}

/// The index after the value at `i`; only objects and arrays are walked into.
fn next(nodes: &[Node<'_>], i: usize) -> Result<usize, String> {
    match nodes[i] {
        Node::String(_) | Node::Static(_) => Ok(i + 1),
        Node::Object { .. } | Node::Array { .. } => walk(nodes, i),
    }
}

/// How many nodes the value at `i` takes, its own included.
fn span(nodes: &[Node<'_>], i: usize) -> usize {
    match nodes[i] {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        Node::String(_) | Node::Static(_) => 1,
    }
}

/// The object at `at` with `len` keys. Up to 32 keys, each key takes one of 256 bits (see
/// [`bit`]) and only a key whose bit is taken is compared with the keys before it; a larger
/// object sorts its keys. Either way the cost stays near linear.
fn object<'v>(nodes: &[Node<'v>], at: usize, len: usize) -> Result<usize, String> {
    let key = |i: usize| match nodes[i] {
        Node::String(k) => k,
        _ => "",
    };
    let small = len <= 32;
    let mut bits = [0u64; 4];
    let mut keys: Vec<&'v str> = Vec::with_capacity(if small { 0 } else { len });
    let mut i = at + 1;
    for n in 0..len {
        let k = key(i);
        if small {
            let bit = bit(k);
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            if bits[word] & mask != 0 {
                let mut j = at + 1;
                for _ in 0..n {
                    if key(j) == k {
                        return Err(k.to_string());
                    }
                    j += 1 + span(nodes, j + 1);
                }
            }
            bits[word] |= mask;
        } else {
            keys.push(k);
        }
        i = next(nodes, i + 1).map_err(|inner| join(k, inner))?;
    }
    keys.sort_unstable();
    match keys.windows(2).find(|w| w[0] == w[1]) {
        Some(pair) => Err(pair[0].to_string()),
        None => Ok(i),
    }
}

/// Anything serializable as compact `custom_details` text (serialized once, not re-read).
pub fn details<T: Serialize + ?Sized>(value: &T) -> Option<Details> {
    serde_json::value::to_raw_value(value).ok().map(Details)
}

/// A tape value written by serde as its tree would be, without making the tree (keys in the
/// order sent).
struct Written<'t, 'v>(TapeValue<'t, 'v>);

impl Serialize for Written<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if let Some((n, members)) = v.members() {
            let mut map = s.serialize_map(Some(n))?;
            for (k, v) in members {
                map.serialize_entry(k, &Written(v))?;
            }
            map.end()
        } else if let Some((n, items)) = v.items() {
            let mut seq = s.serialize_seq(Some(n))?;
            for v in items {
                seq.serialize_element(&Written(v))?;
            }
            seq.end()
        } else {
            // A string or a scalar: its tree borrows the string and allocates nothing.
            to_tree(v).serialize(s)
        }
    }
}

/// What a reader needs from a JSON value: a borrowed tree's node or a tape's, both borrowing
/// their strings (`'v`) from the body.
pub trait Json<'v>: Copy {
    /// The member `name` of an object (`None` for anything else).
    fn member(self, name: &str) -> Option<Self>;
    fn text(self) -> Option<&'v str>;
    fn null(self) -> bool;
    fn object(self) -> bool;
    /// A number's or boolean's JSON text; `None` for anything else.
    fn scalar_text(self) -> Option<String>;
    /// A number, or a string holding one.
    fn number(self) -> Option<f64>;
    /// An object's members in order, with their count.
    fn members(self) -> Option<(usize, impl Iterator<Item = (&'v str, Self)>)>;
    /// An array's items in order, with their count.
    fn items(self) -> Option<(usize, impl Iterator<Item = Self>)>;
    /// The value as compact `custom_details` text.
    fn details(self) -> Option<Details>;
}

impl<'v> Json<'v> for &'v BorrowedValue<'v> {
    fn member(self, name: &str) -> Option<Self> {
        self.get(name)
    }
    fn text(self) -> Option<&'v str> {
        self.as_str()
    }
    fn null(self) -> bool {
        self.is_null()
    }
    fn object(self) -> bool {
        self.is_object()
    }
    fn scalar_text(self) -> Option<String> {
        (self.is_number() || self.is_bool()).then(|| self.encode())
    }
    fn number(self) -> Option<f64> {
        self.cast_f64()
    }
    fn members(self) -> Option<(usize, impl Iterator<Item = (&'v str, Self)>)> {
        let map = self.as_object()?;
        Some((map.len(), map.iter().map(|(k, v)| (k.as_ref(), v))))
    }
    fn items(self) -> Option<(usize, impl Iterator<Item = Self>)> {
        // The slice's iterator: the value traits' `iter` would box one.
        let items = self.as_array()?.as_slice();
        Some((items.len(), items.iter()))
    }
    fn details(self) -> Option<Details> {
        details(self)
    }
}

impl<'t, 'v: 't> Json<'v> for TapeValue<'t, 'v> {
    fn member(self, name: &str) -> Option<Self> {
        self.get(name)
    }
    fn text(self) -> Option<&'v str> {
        self.into_string()
    }
    fn null(self) -> bool {
        self.is_null()
    }
    fn object(self) -> bool {
        self.is_object()
    }
    fn scalar_text(self) -> Option<String> {
        // A scalar's tree is itself (nothing allocated): the same text as a tree's.
        (self.is_number() || self.is_bool()).then(|| to_tree(self).encode())
    }
    fn number(self) -> Option<f64> {
        self.cast_f64()
    }
    fn members(self) -> Option<(usize, impl Iterator<Item = (&'v str, Self)>)> {
        let map = self.as_object()?;
        Some((map.len(), map.iter()))
    }
    fn items(self) -> Option<(usize, impl Iterator<Item = Self>)> {
        let items = self.as_array()?;
        Some((items.len(), items.iter()))
    }
    fn details(self) -> Option<Details> {
        details(&Written(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeated(json: &str) -> Option<String> {
        match parse_json(&mut json.as_bytes().to_vec()) {
            Err(JsonError::RepeatedKey(path)) => Some(path),
            Err(JsonError::Syntax(e)) => panic!("{json}: {e}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn a_key_twice_in_one_object_is_named_by_its_path() {
        assert_eq!(repeated(r#"{"a":1,"a":2}"#).as_deref(), Some("a"));
        assert_eq!(
            repeated(r#"{"payload":{"s":1,"t":2,"s":3}}"#).as_deref(),
            Some("payload.s")
        );
        assert_eq!(
            repeated(r#"{"alerts":[{},{"labels":{"x":"1","x":"2"}}]}"#).as_deref(),
            Some("alerts[1].labels.x")
        );
        assert_eq!(
            repeated(r#"[[{"k":1,"k":1}]]"#).as_deref(),
            Some("[0][0].k")
        );
        // Keys alike in their first 12 bytes and length, and the same long key.
        assert_eq!(
            repeated(r#"{"kubernetes_pod_a":1,"kubernetes_pod_b":2}"#),
            None
        );
        assert_eq!(
            repeated(r#"{"kubernetes_pod_a":1,"k":0,"kubernetes_pod_a":2}"#).as_deref(),
            Some("kubernetes_pod_a")
        );
        // Keys that take the same bit (length, first, middle and last bytes alike).
        assert_eq!(bit("abcde"), bit("axcze"));
        assert_eq!(repeated(r#"{"abcde":1,"axcze":2}"#), None);
        assert_eq!(
            repeated(r#"{"abcde":1,"axcze":{"n":[]},"abcde":3}"#).as_deref(),
            Some("abcde")
        );
        // The same key in sibling objects, and in an object and its child, is fine.
        assert_eq!(repeated(r#"[{"a":1},{"a":2}]"#), None);
        assert_eq!(repeated(r#"{"a":{"a":{"a":1}}}"#), None);
        // An object of over 32 keys is checked too (its keys sorted), values nested or not.
        let big = |keys: &dyn Fn(usize) -> String| {
            let pairs: Vec<String> = (0..40)
                .map(|i| format!("\"{}\":{{\"v\":[{i}]}}", keys(i)))
                .collect();
            format!("{{\"x\":[{{{}}}]}}", pairs.join(","))
        };
        assert_eq!(repeated(&big(&|i| format!("k{i}"))), None);
        assert_eq!(
            repeated(&big(&|i| format!("k{}", i % 39))).as_deref(),
            Some("x[0].k0")
        );
    }

    #[test]
    fn the_tape_and_the_tree_read_alike() {
        let body =
            r#"{"s":"a\"b","n":-1.5e3,"u":7,"t":true,"z":null,"o":{"k":[1,{"x":"y"}]},"e":{}}"#;
        let mut a = body.as_bytes().to_vec();
        let tree = parse_json(&mut a).unwrap();
        let mut b = body.as_bytes().to_vec();
        with_tape(&mut b, |root| {
            assert_eq!(to_tree(root), tree);
            let (n, members) = root.members().unwrap();
            let names: Vec<&str> = members.map(|(k, _)| k).collect();
            assert_eq!((n, names), (7, vec!["s", "n", "u", "t", "z", "o", "e"]));
            for name in ["s", "n", "u", "t", "z", "o", "e", "missing"] {
                let (t, v) = (root.member(name), (&tree).member(name));
                assert_eq!(t.map(to_tree), v.cloned(), "{name}");
                assert_eq!(t.and_then(Json::text), v.and_then(Json::text), "{name}");
                assert_eq!(t.map(Json::null), v.map(Json::null), "{name}");
                assert_eq!(t.map(Json::object), v.map(Json::object), "{name}");
                assert_eq!(t.and_then(Json::number), v.and_then(Json::number), "{name}");
                assert_eq!(
                    t.and_then(Json::scalar_text),
                    v.and_then(Json::scalar_text),
                    "{name}"
                );
                let details = |d: Option<Details>| d.map(|d| d.0.get().to_string());
                assert_eq!(
                    details(t.and_then(Json::details)),
                    details(v.and_then(Json::details)),
                    "{name}"
                );
            }
            let items = root.member("o").and_then(|o| o.member("k")).unwrap();
            let (n, mut it) = items.items().unwrap();
            assert_eq!(n, 2);
            assert_eq!(it.nth(1).and_then(|x| x.member("x")?.text()), Some("y"));
        })
        .unwrap();
        // The thread's tape is reused by the next body, and a syntax error leaves it usable.
        assert!(matches!(
            with_tape(&mut b"{".to_vec(), |_| ()),
            Err(JsonError::Syntax(_))
        ));
        let n = with_tape(&mut br#"[1,2,3]"#.to_vec(), |root| root.items().unwrap().0);
        assert_eq!(n.unwrap(), 3);
    }
}
