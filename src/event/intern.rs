//! A process-wide table of interned strings, each kept for the life of the process and known
//! by a small id: label names ([`super::names`]) and label values that recur
//! ([`super::values`]).
//!
//! Reading a string by its id takes no lock (two atomic loads). Ids are handed out in order
//! under one lock; each thread keeps the ids it has met in a cache of its own
//! ([`LocalIds`]), so a thread takes the lock once per string. The table is bounded, by count
//! and by bytes: past either bound nothing more is interned and callers keep the string
//! themselves.

use std::sync::{Mutex, OnceLock};

use hashbrown::HashTable;

/// Chunks of ids; a chunk is allocated when its first id is handed out.
const CHUNKS: usize = 256;

/// Strings interned, `CHUNK * CHUNKS - 1` at most.
pub(super) struct Table<const CHUNK: usize> {
    chunks: [OnceLock<Box<[OnceLock<&'static str>; CHUNK]>>; CHUNKS],
    ids: Mutex<Ids>,
    max_bytes: usize,
}

/// The table's ids by string, and the bytes interned.
struct Ids {
    map: Option<std::collections::HashMap<&'static str, u32>>,
    bytes: usize,
}

/// xxh3, the hash of [`LocalIds`] (and of the value filter's sightings): strings are hashed
/// for every label of every new alert, and the tables are bounded, so no flooding defence is
/// needed of the hash.
#[inline]
pub(super) fn hash(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

impl<const CHUNK: usize> Table<CHUNK> {
    /// At most `max_bytes` of strings.
    pub const fn new(max_bytes: usize) -> Self {
        Table {
            chunks: [const { OnceLock::new() }; CHUNKS],
            ids: Mutex::new(Ids {
                map: None,
                bytes: 0,
            }),
            max_bytes,
        }
    }

    /// How many strings can be interned: ids are `0..Self::MAX`.
    pub const MAX: usize = CHUNK * CHUNKS - 1;

    /// The id of `s` (whose [`hash`] is `h`), from `local` or, when it is not there, from the
    /// table, interning it when new; none once the table is full.
    pub fn intern(&self, local: &mut LocalIds, s: &str, h: u64) -> Option<u32> {
        if let Some(id) = local.get(s, h) {
            return Some(id);
        }
        let (stored, id) = {
            let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            let Ids { map, bytes } = &mut *ids;
            let map = map.get_or_insert_with(Default::default);
            match map.get_key_value(s) {
                Some((&stored, &id)) => (stored, id),
                None => {
                    let id = map.len();
                    if id >= Self::MAX || *bytes + s.len() > self.max_bytes {
                        return None;
                    }
                    let stored: &'static str = Box::leak(s.into());
                    let chunk = self.chunks[id / CHUNK]
                        .get_or_init(|| Box::new([const { OnceLock::new() }; CHUNK]));
                    let _ = chunk[id % CHUNK].set(stored);
                    let id = id as u32;
                    map.insert(stored, id);
                    *bytes += s.len();
                    (stored, id)
                }
            }
        };
        local.insert(stored, h, id);
        Some(id)
    }

    /// The string interned as `id` ("" for an id never handed out).
    #[inline]
    pub fn get(&self, id: u32) -> &'static str {
        let id = id as usize;
        self.chunks
            .get(id / CHUNK)
            .and_then(OnceLock::get)
            .and_then(|chunk| chunk[id % CHUNK].get())
            .copied()
            .unwrap_or("")
    }
}

/// The ids one thread has met, by string: at most the table's bound.
#[derive(Default)]
pub(super) struct LocalIds(HashTable<(&'static str, u64, u32)>);

impl LocalIds {
    #[inline]
    pub fn get(&self, s: &str, h: u64) -> Option<u32> {
        self.0.find(h, |&(k, _, _)| k == s).map(|&(_, _, id)| id)
    }

    fn insert(&mut self, s: &'static str, h: u64, id: u32) {
        if self.get(s, h).is_none() {
            self.0.insert_unique(h, (s, h, id), |&(_, h, _)| h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_interns_nothing_more_and_an_unknown_id_reads_empty() {
        static TABLE: Table<4> = Table::new(10);
        let mut local = LocalIds::default();
        let id = |local: &mut LocalIds, s: &str| TABLE.intern(local, s, hash(s));
        assert_eq!(id(&mut local, "abcd"), Some(0));
        assert_eq!(id(&mut local, "abcd"), Some(0), "once");
        assert_eq!(
            id(&mut LocalIds::default(), "abcd"),
            Some(0),
            "on any thread"
        );
        assert_eq!(id(&mut local, "efgh"), Some(1));
        assert_eq!(id(&mut local, "ijk"), None, "past the bytes");
        assert_eq!(id(&mut local, "ij"), Some(2), "within them");
        assert_eq!(TABLE.get(1), "efgh");
        assert_eq!(TABLE.get(3), "");
        assert_eq!(TABLE.get(u32::MAX), "");
        static SMALL: Table<1> = Table::new(usize::MAX);
        for n in 0..Table::<1>::MAX {
            let s = n.to_string();
            assert_eq!(SMALL.intern(&mut local, &s, hash(&s)), Some(n as u32));
        }
        assert_eq!(
            SMALL.intern(&mut local, "x", hash("x")),
            None,
            "past the count"
        );
    }
}
