//! Label names, interned once per process: an alert keeps an id per label in place of the name
//! (one byte for the first 63 names, `event::labels`; `alertname`, `instance`, `job`, ... are
//! the same few dozen names on every alert).
//!
//! A table of [`super::intern`]: at most [`MAX_NAMES`] names are interned, each kept for the
//! life of the process; past that a name is kept in the alert itself (a sender that puts
//! unique values into label names cannot grow this table without bound).

use std::cell::RefCell;

use super::intern::{hash, LocalIds, Table};

/// Names that can be interned; the ids are `0..MAX_NAMES`.
pub const MAX_NAMES: usize = Table::<256>::MAX;

static NAMES: Table<256> = Table::new(usize::MAX);

thread_local! {
    static LOCAL: RefCell<LocalIds> = RefCell::default();
}

/// The id of `name`, interning it when new; none once [`MAX_NAMES`] names are taken.
pub fn intern(name: &str) -> Option<u16> {
    let id = LOCAL.with_borrow_mut(|local| NAMES.intern(local, name, hash(name)))?;
    u16::try_from(id).ok()
}

/// The name interned as `id` ("" for an id never handed out).
#[inline]
pub fn name(id: u16) -> &'static str {
    NAMES.get(u32::from(id))
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
