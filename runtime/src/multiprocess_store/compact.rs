//! Compaction: folding the files of dead processes into the archive, so that totals stay
//! monotonic while the number of files stays bounded.
//!
//! Under the directory's compaction lock (`compact.lock`, an exclusive `flock`):
//! 1. leftovers of a compaction that crashed (`archive.tmp.*`) are removed;
//! 2. the directory is read as a scrape reads it (`snapshot.rs`): every process file, then the
//!    archive (if the archive cannot be read, nothing is compacted: folding into a fresh
//!    archive would lose its totals);
//! 3. every process file whose writer is dead (or, at a clean exit, the caller's own file) is
//!    aggregated with the archive, with [`Purpose::Archive`];
//! 4. the new archive — including the ids of the files it absorbed — is written to
//!    `archive.tmp.<pid>`, synced, and renamed over `archive.db`;
//! 5. the absorbed files are removed.
//!
//! A crash before step 4's rename leaves the old archive and the files: nothing lost. A crash
//! after it leaves files the archive lists as absorbed: readers skip them (no double count) and
//! the next compaction removes them. An id stays in the list only while its file still exists,
//! so the list stays as short as the directory.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::Path;

use super::aggregate::{Aggregate, InputFile, Purpose};
use super::snapshot::{self, ARCHIVE, ArchiveError, DirSnapshot};
use super::{Stats, dir, file, lock};

/// The compaction lock's file name.
pub(crate) const LOCK: &str = "compact.lock";
const TMP_PREFIX: &str = "archive.tmp.";

/// Opens (creating) the compaction lock file.
fn lock_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path.join(LOCK))
}

/// How a compaction should go.
#[derive(Clone, Copy)]
pub(crate) struct Run {
    /// Wait for the lock (at exit, at start-up) instead of giving up if another process holds it.
    pub(crate) wait: bool,
    /// The caller's own file, folded although its writer (the caller) is alive: a clean exit.
    pub(crate) own: Option<u64>,
    /// Start-up with the `wipe` policy: if no writer is alive, remove the archive and every
    /// dead file instead of folding them.
    pub(crate) wipe: bool,
}

/// What a compaction did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Done {
    pub(crate) folded: usize,
    pub(crate) removed: usize,
    /// Pids of the folded files.
    pub(crate) pids: Vec<u32>,
}

/// Runs one compaction (see the module docs). Returns `None` when another process holds the
/// lock and `run.wait` is false.
pub(crate) fn compact(path: &Path, stats: &Stats, run: Run) -> io::Result<Option<Done>> {
    let lock = lock_file(path)?;
    if run.wait {
        lock::lock_exclusive_wait(&lock)?;
    } else if !lock::try_lock_exclusive(&lock)? {
        return Ok(None);
    }
    // The lock is released when `lock` drops, on every return path.
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TMP_PREFIX))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let snapshot = DirSnapshot::read(path, stats);
    let archive = match snapshot.archive() {
        Ok(a) => a,
        Err(ArchiveError::Unreadable(e)) => {
            stats.count(e);
            return Err(io::Error::other(
                "the archive cannot be read; it is left as it is and nothing is compacted",
            ));
        }
        Err(ArchiveError::Corrupt(e)) => {
            stats.count(e);
            return Err(io::Error::other(
                "the archive is corrupt; it is left as it is and nothing is compacted",
            ));
        }
    };
    let absorbed = snapshot::absorbed(archive.as_ref());
    let mut present = HashSet::new();
    let mut fold = Vec::new();
    let mut leftovers = Vec::new();
    let mut any_live = false;
    // A file that does not parse is left out: counted by scrapes, never removed (it is not
    // ours to judge).
    for (f, parsed) in snapshot.process_files(None) {
        let id = parsed.info.id;
        present.insert(id);
        if absorbed.contains(&id) {
            leftovers.push(&f.path);
        } else if run.own == Some(id) || !f.live {
            fold.push((f, parsed));
        } else {
            any_live = true;
        }
    }
    let mut done = Done::default();
    if run.wipe && !any_live {
        for f in snapshot.files() {
            if std::fs::remove_file(&f.path).is_ok() {
                done.removed += 1;
            }
        }
        if archive.is_some() && std::fs::remove_file(path.join(ARCHIVE)).is_ok() {
            done.removed += 1;
        }
        return Ok(Some(done));
    }
    if !fold.is_empty() {
        let mut ids: Vec<u64> = Vec::new();
        let mut paths = Vec::new();
        // The folded files first, then the archive: a conflicting declaration in the archive
        // gives way to the newer one.
        let mut sources: Vec<InputFile<'_>> = Vec::new();
        for (f, parsed) in fold {
            ids.push(parsed.info.id);
            done.pids.push(parsed.info.pid);
            paths.push(&f.path);
            sources.push(InputFile {
                parsed,
                live: false,
            });
        }
        if let Some(a) = archive {
            sources.push(InputFile {
                parsed: a,
                live: false,
            });
        }
        let agg = Aggregate::new(&sources, Purpose::Archive);
        stats.add_conflicts(agg.conflicts);
        // Keep the ids of absorbed files that still exist (their removal may have failed or
        // not happened yet), plus the new ones.
        let mut keep: Vec<u64> = absorbed
            .iter()
            .copied()
            .filter(|id| present.contains(id))
            .collect();
        keep.extend(&ids);
        crate::sort::sort_by(&mut keep, u64::cmp);
        keep.dedup();
        let bytes = agg.encode_archive(file::new_id(), &keep);
        drop(sources);
        write_archive(path, &bytes)?;
        done.folded = ids.len();
        for p in paths {
            if std::fs::remove_file(p).is_ok() {
                done.removed += 1;
            }
        }
    }
    for p in leftovers {
        if std::fs::remove_file(p).is_ok() {
            done.removed += 1;
        }
    }
    Ok(Some(done))
}

/// Writes the archive aside, syncs it, and renames it in.
fn write_archive(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.join(format!("{TMP_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let file = dir::create_private(&tmp)?;
    let result = file::write_all_at(&file, bytes, 0)
        .and_then(|_| file.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path.join(ARCHIVE)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    // Make the rename durable; failure here loses nothing a crash of this process could.
    if let Ok(d) = File::open(path) {
        let _ = d.sync_all();
    }
    Ok(())
}
