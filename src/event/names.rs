//! Label names, interned once per process: an alert keeps an id per label in place of the name
//! (one byte for the first 63 names, `event::labels`; `alertname`, `instance`, `job`, ... are
//! the same few dozen names on every alert).
//!
//! Reading a name by its id takes no lock (two atomic loads). Interning looks in a per-thread
//! cache first, so a shard thread takes the global lock only for a name it has not met. At
//! most [`MAX_NAMES`] names are interned, each kept for the life of the process; past that a
//! name is kept in the alert itself (a sender that puts unique values into label names
//! cannot grow this table without bound).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, OnceLock};

const CHUNK: usize = 256;
/// Names that can be interned; the ids are `0..MAX_NAMES`.
pub const MAX_NAMES: usize = 256 * CHUNK - 1;

type Chunk = [OnceLock<&'static str>; CHUNK];

/// Each chunk is allocated when its first id is handed out.
static NAMES: [OnceLock<Box<Chunk>>; MAX_NAMES / CHUNK + 1] = [const { OnceLock::new() }; 256];

/// Name to id, for interning; ids are handed out in order under this lock.
static IDS: Mutex<Option<HashMap<&'static str, u16>>> = Mutex::new(None);

thread_local! {
    static CACHE: RefCell<HashMap<&'static str, u16, BuildHasherDefault<NameHasher>>> =
        RefCell::new(HashMap::default());
}

/// xxh3 for the per-thread cache: every label of every event is looked up there, and
/// SipHash's cost showed in profiles of Alertmanager batches (a label name is no secret of a
/// single process' table, and the table is bounded by [`MAX_NAMES`]).
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
}

/// The id of `name`, interning it when new; none once [`MAX_NAMES`] names are taken.
pub fn intern(name: &str) -> Option<u16> {
    if let Some(id) = CACHE.with_borrow(|c| c.get(name).copied()) {
        return Some(id);
    }
    let (stored, id) = {
        let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
        let ids = ids.get_or_insert_with(HashMap::new);
        match ids.get_key_value(name) {
            Some((&stored, &id)) => (stored, id),
            None => {
                let id = ids.len();
                if id >= MAX_NAMES {
                    return None;
                }
                let stored: &'static str = Box::leak(name.into());
                let chunk =
                    NAMES[id / CHUNK].get_or_init(|| Box::new([const { OnceLock::new() }; CHUNK]));
                let _ = chunk[id % CHUNK].set(stored);
                let id = id as u16;
                ids.insert(stored, id);
                (stored, id)
            }
        }
    };
    CACHE.with_borrow_mut(|c| c.insert(stored, id));
    Some(id)
}

/// The name interned as `id` ("" for an id never handed out).
#[inline]
pub fn name(id: u16) -> &'static str {
    let id = id as usize;
    NAMES[id / CHUNK]
        .get()
        .and_then(|chunk| chunk[id % CHUNK].get())
        .copied()
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_has_one_id_on_every_thread() {
        let id = intern("names-test-alertname").expect("room");
        assert_eq!(intern("names-test-alertname"), Some(id));
        assert_eq!(name(id), "names-test-alertname");
        let other = std::thread::spawn(|| intern("names-test-alertname"))
            .join()
            .expect("joins");
        assert_eq!(other, Some(id));
        assert_ne!(intern("names-test-instance"), Some(id));
        assert_eq!(name(u16::MAX), "");
    }
}
