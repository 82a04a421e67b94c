//! Compaction: folding the files of dead processes into the archive, so that totals stay
//! monotonic while the number of files stays bounded.
//!
//! Under the directory's compaction lock (`compact.lock`, an exclusive `flock`):
//! 1. leftovers of a compaction that crashed (`archive.tmp.*`) are removed;
//! 2. the archive is read (if it cannot be read, nothing is compacted: folding into a fresh
//!    archive would lose its totals);
//! 3. every process file whose writer is dead (or, at a clean exit, the caller's own file) is
//!    read, and everything is aggregated with [`Purpose::Archive`];
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
use std::path::{Path, PathBuf};

use super::aggregate::{Aggregate, InputFile, Purpose};
use super::read::{Parsed, ReadError, Snapshot};
use super::{Stats, dir, file, lock};

/// The archive's file name.
pub(crate) const ARCHIVE: &str = "archive.db";
/// The compaction lock's file name.
pub(crate) const LOCK: &str = "compact.lock";
const TMP_PREFIX: &str = "archive.tmp.";

/// A process file found in the directory, opened and copied.
pub(crate) struct Found {
    pub(crate) path: PathBuf,
    pub(crate) snapshot: Snapshot,
    /// Whether its writer held its lock just before it was copied. A dead file never comes
    /// back to life: writers only ever lock files they create.
    pub(crate) live: bool,
}

/// Lists and copies the process files (`*.db` but the archive). Files that cannot be opened or
/// read are counted and skipped; a file removed meanwhile is simply gone.
pub(crate) fn list(path: &Path, stats: &Stats) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(path) else {
        stats.count(ReadError::Io);
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut scratch = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".db") || name == ARCHIVE || name.starts_with('.') {
            continue;
        }
        let p = entry.path();
        match dir::open_for_read(&p) {
            Ok(Some(file)) => {
                let live = lock::is_live(&file);
                match Snapshot::read(&file, live, &mut scratch) {
                    Ok(snapshot) => found.push(Found {
                        path: p,
                        snapshot,
                        live,
                    }),
                    Err(e) => stats.count(e),
                }
            }
            Ok(None) => stats.count(ReadError::Corrupt("not a regular file of ours")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => stats.count(ReadError::Io),
        }
    }
    skip_dead_twins(&mut found, stats);
    found
}

/// Skips, and counts, each dead file that claims the id of a live file (a copy, or a forged
/// file). Folded, it would put the live file's id in the archive's absorbed list: scrapes would
/// then skip the live file as absorbed, and the next compaction would remove it.
fn skip_dead_twins(found: &mut Vec<Found>, stats: &Stats) {
    let mut ids = HashSet::with_capacity(found.len());
    let twins: HashSet<u64> = found
        .iter()
        .map(|f| f.snapshot.header_id())
        .filter(|&id| !ids.insert(id))
        .collect();
    if twins.is_empty() {
        return; // the usual case: no lock is tested here
    }
    let live: HashSet<u64> = found
        .iter()
        .filter(|f| twins.contains(&f.snapshot.header_id()) && f.live)
        .map(|f| f.snapshot.header_id())
        .collect();
    found.retain(|f| {
        let id = f.snapshot.header_id();
        let dead_twin = live.contains(&id) && !f.live;
        if dead_twin {
            stats.count(ReadError::Corrupt("a dead file with a live file's id"));
        }
        !dead_twin
    });
}

/// Opens and copies the archive, if there is one.
pub(crate) fn open_archive(path: &Path) -> Result<Option<Snapshot>, ReadError> {
    match dir::open_for_read(&path.join(ARCHIVE)) {
        // Written aside and renamed in: nothing writes it in place.
        Ok(Some(file)) => Snapshot::read(&file, false, &mut Vec::new()).map(Some),
        Ok(None) => Err(ReadError::Corrupt(
            "the archive is not a regular file of ours",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(_) => Err(ReadError::Io),
    }
}

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
    let archive_copy = match open_archive(path) {
        Ok(m) => m,
        Err(e) => {
            stats.count(e);
            return Err(io::Error::other(
                "the archive cannot be read; it is left as it is and nothing is compacted",
            ));
        }
    };
    let archive = match archive_copy.as_ref().map(Parsed::parse).transpose() {
        Ok(a) => a,
        Err(e) => {
            stats.count(e);
            return Err(io::Error::other(
                "the archive is corrupt; it is left as it is and nothing is compacted",
            ));
        }
    };
    let absorbed: HashSet<u64> = archive
        .iter()
        .flat_map(|a| a.absorbed.iter().copied())
        .collect();
    let found = list(path, stats);
    let mut present = HashSet::new();
    let mut fold = Vec::new();
    let mut leftovers = Vec::new();
    let mut any_live = false;
    for f in &found {
        let Ok(parsed) = Parsed::parse(&f.snapshot) else {
            continue; // counted by scrapes; never removed: it is not ours to judge
        };
        if parsed.info.archive {
            continue;
        }
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
        for f in &found {
            if std::fs::remove_file(&f.path).is_ok() {
                done.removed += 1;
            }
        }
        if archive_copy.is_some() && std::fs::remove_file(path.join(ARCHIVE)).is_ok() {
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
        keep.sort_unstable();
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
