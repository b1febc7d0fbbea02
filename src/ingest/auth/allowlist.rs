//! The routing keys ingest takes: `auth.routing_keys` and the keys of `auth.routing_keys_file`,
//! which is read again when it changes.
//!
//! A task looks at the file's modification time, size and inode every
//! `auth.routing_keys_recheck` (5 s by default; never on the request path) and reads it again
//! when any of them changed, so an edit in place and a new file moved over the old one are both
//! seen. A file that cannot be read, or lists no key or a bad one, leaves the keys in force as
//! they were (logged at warn, once per problem); the next good version replaces them. Writers
//! should replace the file in one move (write a temporary file, then `mv`) so that a half
//! written file is never read.
//!
//! Requests read the current set through one `RwLock` read (shared by every connection task;
//! a new set replaces the old one whole).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use crate::config::auth::read_routing_keys;

pub struct AllowList {
    inline: Vec<String>,
    keys: RwLock<Arc<HashSet<String>>>,
}

/// What says that a file changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn version(path: &Path) -> std::io::Result<Version> {
    let meta = std::fs::metadata(path)?;
    Ok(Version {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

impl AllowList {
    /// The inline keys and the file's keys as config read them.
    pub fn new(inline: &[String], from_file: &[String]) -> AllowList {
        let list = AllowList {
            inline: inline.to_vec(),
            keys: RwLock::default(),
        };
        list.replace(from_file);
        list
    }

    pub fn contains(&self, key: &str) -> bool {
        self.keys.read().expect("allowlist lock").contains(key)
    }

    /// How many keys are in force.
    fn len(&self) -> usize {
        self.keys.read().expect("allowlist lock").len()
    }

    /// The inline keys and `from_file` are the keys from now on.
    fn replace(&self, from_file: &[String]) {
        let keys: HashSet<String> = self.inline.iter().chain(from_file).cloned().collect();
        *self.keys.write().expect("allowlist lock") = Arc::new(keys);
    }

    /// Follows `path` every `every` until the list is dropped: a changed file's keys replace
    /// the file's keys in force.
    pub fn follow(self: &Arc<Self>, path: PathBuf, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(follow(weak, path, every));
    }

    /// Reads `path` again if it is not at `seen`; the version read, and the problem if it
    /// could not be used (the keys in force stay).
    fn reread(&self, path: &Path, seen: Option<Version>) -> (Option<Version>, Option<String>) {
        let now = match version(path) {
            Ok(v) => v,
            Err(e) => return (seen, Some(format!("cannot read it: {e}"))),
        };
        if Some(now) == seen {
            return (seen, None);
        }
        match read_routing_keys(path) {
            Ok(keys) if keys.is_empty() => (seen, Some("it lists no routing key".into())),
            Ok(keys) => {
                self.replace(&keys);
                tracing::info!(
                    file = %path.display(),
                    keys = self.len(),
                    "routing key allowlist read again"
                );
                (Some(now), None)
            }
            Err(e) => (seen, Some(e)),
        }
    }
}

async fn follow(list: Weak<AllowList>, path: PathBuf, every: Duration) {
    let mut seen = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || version(&path).ok())
            .await
            .ok()
            .flatten()
    };
    let mut last_problem: Option<String> = None;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(list) = list.upgrade() else { return };
        let path = path.clone();
        let result = tokio::task::spawn_blocking(move || {
            let outcome = list.reread(&path, seen);
            (outcome, path)
        })
        .await;
        let Ok(((now, problem), path)) = result else {
            return;
        };
        seen = now;
        if problem != last_problem {
            if let Some(problem) = &problem {
                tracing::warn!(
                    file = %path.display(),
                    problem = %problem,
                    "routing key allowlist file not used; the keys in force stay"
                );
            }
            last_problem = problem;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_replaces_its_keys_and_a_bad_one_keeps_them() {
        let dir = std::env::temp_dir().join(format!("sluice-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, "payments\n").unwrap();
        let list = AllowList::new(&["inline".into()], &["payments".into()]);
        assert!(list.contains("payments") && list.contains("inline"));
        assert!(!list.contains("checkout"));
        let seen = version(&path).ok();
        assert_eq!(list.reread(&path, seen), (seen, None), "unchanged");

        // Replaced by a move (another inode), as the module asks of writers.
        let next = dir.join("keys.new");
        std::fs::write(&next, "checkout\n# comment\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        let (now, problem) = list.reread(&path, seen);
        assert_eq!(problem, None);
        assert_ne!(now, seen);
        assert!(list.contains("checkout") && list.contains("inline"));
        assert!(!list.contains("payments"));

        // Emptied, then bad, then gone: the keys in force stay.
        std::fs::write(&path, "# nobody\n").unwrap();
        let (after_empty, problem) = list.reread(&path, now);
        assert_eq!(problem.as_deref(), Some("it lists no routing key"));
        assert_eq!(after_empty, now);
        std::fs::write(&path, format!("{}\n", "k".repeat(300))).unwrap();
        let (_, problem) = list.reread(&path, now);
        assert!(problem
            .unwrap()
            .ends_with("line 1: must be at most 255 characters"));
        std::fs::remove_file(&path).unwrap();
        let (_, problem) = list.reread(&path, now);
        assert!(problem.unwrap().starts_with("cannot read it: "));
        assert!(list.contains("checkout"));
        assert_eq!(list.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
