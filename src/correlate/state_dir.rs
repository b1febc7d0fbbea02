//! Memory mode's state across planned restarts (`pipeline.state_dir`): each shard's snapshot
//! (the format Kafka mode writes to its state topic: open alerts, incidents with their seq,
//! timers, flap history, learned statistics, change history) in `shard-<i>-of-<n>.json`,
//! written atomically (a temporary file, fsync, rename) on SIGTERM and every
//! `snapshot_interval`, and read at start. Saved with another shard count, the shards are
//! divided again by routing key (as `sluice migrate` does). A file that cannot be read stops
//! the start naming it: deleting it is the operator's call, not sluice's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{PartitionFn, Shard, TimedShard};
use crate::config::CorrelateConfig;

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("pipeline.state_dir {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read the saved state {file}: {problem} (move the file away to start without it)"
    )]
    File { file: PathBuf, problem: String },
}

/// The state directory of a memory-mode correlator.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// How often a shard saves while running.
    pub every: Duration,
}

impl StateDir {
    /// Makes the directory if need be and checks that it can be written.
    pub fn open(dir: &Path, every: Duration) -> Result<StateDir, StateError> {
        let fail = |source| StateError::Dir {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"").map_err(fail)?;
        let _ = std::fs::remove_file(probe);
        Ok(StateDir {
            dir: dir.to_path_buf(),
            every,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, index: usize, of: usize) -> PathBuf {
        self.dir.join(format!("shard-{index}-of-{of}.json"))
    }

    /// The saved shards, as `n` shards of `config` (divided again when they were saved with
    /// another count); `None` when nothing was saved.
    pub fn load(
        &self,
        config: &CorrelateConfig,
        n: usize,
        partition: PartitionFn,
    ) -> Result<Option<Vec<TimedShard>>, StateError> {
        let saved = self.saved().map_err(|source| StateError::Dir {
            dir: self.dir.clone(),
            source,
        })?;
        let Some(of) = saved.iter().map(|(_, of, _)| *of).max() else {
            return Ok(None);
        };
        let mut shards = Vec::new();
        for (index, _, file) in saved.iter().filter(|(_, o, _)| *o == of) {
            let bytes = std::fs::read(file).map_err(|e| StateError::File {
                file: file.clone(),
                problem: e.to_string(),
            })?;
            let timed = TimedShard::restore(config, super::Part { index: *index, of }, &bytes)
                .map_err(|e| StateError::File {
                    file: file.clone(),
                    problem: e.to_string(),
                })?;
            shards.push((*index, timed));
        }
        if shards.len() != of {
            return Err(StateError::File {
                file: self.dir.clone(),
                problem: format!("{} of the {of} shard files are there", shards.len()),
            });
        }
        shards.sort_by_key(|(i, _)| *i);
        let mut timed: Vec<TimedShard> = shards.into_iter().map(|(_, t)| t).collect();
        if of != n {
            let time = timed
                .iter()
                .map(TimedShard::time)
                .max()
                .unwrap_or(crate::time::UnixMillis(0));
            let old: Vec<Shard> = timed.into_iter().map(|t| t.shard).collect();
            let mut new = super::build_shards(config, n);
            Shard::redistribute(old, &mut new, partition);
            timed = new.into_iter().map(|s| TimedShard::at(s, time)).collect();
        }
        Ok(Some(timed))
    }

    /// Every saved shard file: (index, of, path).
    fn saved(&self) -> std::io::Result<Vec<(usize, usize, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let parsed = name
                .strip_prefix("shard-")
                .and_then(|rest| rest.strip_suffix(".json"))
                .and_then(|rest| rest.split_once("-of-"))
                .and_then(|(i, of)| Some((i.parse().ok()?, of.parse().ok()?)));
            if let Some((index, of)) = parsed {
                out.push((index, of, path));
            }
        }
        Ok(out)
    }

    /// Writes shard `index` of `of`'s snapshot atomically.
    pub fn save(&self, index: usize, of: usize, snapshot: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.file(index, of), snapshot)
    }

    /// Removes the files of shard counts other than `of` (once every shard of `of` is saved).
    pub fn forget_other_counts(&self, of: usize) -> std::io::Result<()> {
        for (_, saved_of, file) in self.saved()? {
            if saved_of != of {
                std::fs::remove_file(file)?;
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced before it
/// replaces `path`, so a crash leaves the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename itself, made durable.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
