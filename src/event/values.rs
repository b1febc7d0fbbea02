//! Label values that recur, interned once per process: an open alert keeps such a value as an
//! id (one to three bytes for the first 131,071 values, `event::labels`) in place of its text.
//! `severity`, `job`, `namespace`, `alertname`, a host's `instance` are the same few thousand
//! values on a million alerts; interned, an open alert of the load tests' shape holds 733 -> 621
//! live heap bytes (`cargo bench --bench rss`; README, "Where an open alert's bytes go").
//!
//! A value is interned on its second sighting by the same thread, not its first: a value met
//! once (an alert's own id, a timestamp, a request id) stays in the alert that has it and
//! leaves with it, instead of filling the table that is never emptied. Sightings are kept in
//! a fixed array of hashes per thread ([`SEEN`] slots, a later value taking an earlier one's
//! slot), so a value that recurs rarely may never be interned, which only costs its bytes.
//! The table is bounded ([`MAX_VALUES`], [`MAX_BYTES`]); past it values stay in the alerts.
//! A value is interned only when its id is shorter than its text ([`MIN_LEN`]) and when it is
//! not long ([`MAX_LEN`]: long values are seldom shared).

use std::cell::RefCell;

use super::intern::{hash, LocalIds, Table};

/// Values that can be interned: ids `0..MAX_VALUES`.
pub const MAX_VALUES: usize = Table::<1024>::MAX;
/// The most bytes of values interned.
pub const MAX_BYTES: usize = 16 << 20;
/// Shorter values are not interned: kept in the alert, a value of 3 bytes takes 4.
pub const MIN_LEN: usize = 4;
/// Longer values are not interned.
pub const MAX_LEN: usize = 256;
/// The sightings remembered per thread.
const SEEN: usize = 1 << 14;

static VALUES: Table<1024> = Table::new(MAX_BYTES);

/// What a thread knows of values: the ids it has met, and the hashes of values it has seen
/// once (allocated when first needed: only threads that open alerts need them).
#[derive(Default)]
struct Local {
    ids: LocalIds,
    seen: Vec<u64>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::default();
}

/// The id of `value` when it recurs: interned now if this is its second sighting on this
/// thread (and the table has room), none on its first or when it is not worth an id.
pub fn recurring(value: &str) -> Option<u32> {
    if !(MIN_LEN..=MAX_LEN).contains(&value.len()) {
        return None;
    }
    let h = hash(value);
    LOCAL.with_borrow_mut(|local| {
        if let Some(id) = local.ids.get(value, h) {
            return Some(id);
        }
        if local.seen.is_empty() {
            local.seen = vec![0; SEEN];
        }
        let slot = &mut local.seen[h as usize % SEEN];
        if *slot != h {
            *slot = h;
            return None;
        }
        VALUES.intern(&mut local.ids, value, h)
    })
}

/// The value interned as `id` ("" for an id never handed out).
#[inline]
pub fn value(id: u32) -> &'static str {
    VALUES.get(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_interned_on_its_second_sighting() {
        std::thread::spawn(|| {
            assert_eq!(recurring("values-test-node-1"), None, "first sighting");
            let id = recurring("values-test-node-1").expect("second");
            assert_eq!(value(id), "values-test-node-1");
            assert_eq!(recurring("values-test-node-1"), Some(id));
            assert_eq!(recurring("values-test-once"), None);
            assert_eq!(recurring("abc"), None, "not worth an id");
            assert_eq!(recurring("abc"), None);
            let long = "v".repeat(MAX_LEN + 1);
            assert_eq!(recurring(&long), None, "long");
            assert_eq!(recurring(&long), None);
            // Another thread has its own sightings, and finds the same id.
            let other = std::thread::spawn(|| {
                (
                    recurring("values-test-node-1"),
                    recurring("values-test-node-1"),
                )
            })
            .join()
            .expect("joins");
            assert_eq!(other, (None, Some(id)));
        })
        .join()
        .expect("joins");
    }
}
