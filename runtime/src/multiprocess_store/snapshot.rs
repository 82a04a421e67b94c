//! One read of a multiprocess directory, shared by a scrape (`scrape.rs`) and a compaction
//! (`compact.rs`): every process file opened and copied, then the archive.
//!
//! Invariants:
//! - The process files are copied *before* the archive. A compaction that runs in between is
//!   then seen as files the archive lists as absorbed (skipped), never as a file counted twice
//!   or lost (see `compact.rs`).
//! - A snapshot owns copies: parsing it (`read.rs`) never touches the files again, and a file
//!   removed or rewritten meanwhile changes nothing already read.
//! - Files that cannot be opened or read are counted in the [`Stats`] and skipped; a file
//!   removed meanwhile is simply gone.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::read::{Parsed, ReadError, Scratch, Snapshot};
use super::{Stats, dir, lock, threads};

/// The archive's file name.
pub(crate) const ARCHIVE: &str = "archive.db";

/// Every process file of a directory and its archive, as copied at one moment.
pub(crate) struct DirSnapshot {
    files: Vec<Found>,
    archive: Result<Option<Snapshot>, ReadError>,
}

/// Why the archive of a [`DirSnapshot`] is unusable.
pub(crate) enum ArchiveError {
    /// It could not be opened or copied.
    Unreadable(ReadError),
    /// It was copied but does not parse.
    Corrupt(ReadError),
}

impl DirSnapshot {
    /// Copies the process files of the directory at `path`, then its archive (in that order:
    /// see the module docs). Problems with process files are counted in `stats`; a problem
    /// with the archive is kept for [`archive`](Self::archive) to report.
    pub(crate) fn read(path: &Path, stats: &Stats) -> DirSnapshot {
        let files = list(path, stats);
        let archive = open_archive(path);
        DirSnapshot { files, archive }
    }

    /// Every process file copied, whether it parses or not.
    pub(crate) fn files(&self) -> &[Found] {
        &self.files
    }

    /// The process files that parse, with the file each comes from; a file flagged as an
    /// archive is left out. With `count`, what does not parse is counted there (a scrape
    /// counts what it skips; a compaction leaves that to the scrapes).
    pub(crate) fn process_files(&self, count: Option<&Stats>) -> Vec<(&Found, Parsed<'_>)> {
        let mut parsed = Vec::with_capacity(self.files.len());
        for f in &self.files {
            match Parsed::parse(&f.snapshot) {
                Ok(p) if !p.info.archive => parsed.push((f, p)),
                Ok(_) => {
                    if let Some(stats) = count {
                        stats.count(ReadError::Corrupt("a second archive"));
                    }
                }
                Err(e) => {
                    if let Some(stats) = count {
                        stats.count(e);
                    }
                }
            }
        }
        parsed
    }

    /// The archive, parsed: `None` if the directory has none. Its header flag is not checked
    /// here: a scrape skips an `archive.db` that is not flagged as one, a compaction folds it.
    pub(crate) fn archive(&self) -> Result<Option<Parsed<'_>>, ArchiveError> {
        match &self.archive {
            Ok(Some(copy)) => Parsed::parse(copy).map(Some).map_err(ArchiveError::Corrupt),
            Ok(None) => Ok(None),
            Err(e) => Err(ArchiveError::Unreadable(*e)),
        }
    }
}

/// The ids of the files `archive` says it absorbed: readers skip those files.
pub(crate) fn absorbed(archive: Option<&Parsed<'_>>) -> HashSet<u64> {
    archive
        .iter()
        .flat_map(|a| a.absorbed.iter().copied())
        .collect()
}

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
fn list(path: &Path, stats: &Stats) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(path) else {
        stats.count(ReadError::Io);
        return Vec::new();
    };
    let paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".db") && n != ARCHIVE && !n.starts_with('.'))
        })
        .map(|e| e.path())
        .collect();
    let mut found = copy_all(&paths, stats);
    skip_dead_twins(&mut found, stats);
    found
}

/// Files per copying thread: below this a scrape copies on its own thread alone (a thread
/// costs tens of microseconds, about what a small file's copy does).
const FILES_PER_THREAD: usize = 8;
/// Threads that copy at most, the scrape's own included.
const MAX_THREADS: usize = 4;

/// Copies `paths`, in that order, on up to [`MAX_THREADS`] threads (the scrape's own and
/// helpers, as the machine has cores): files are independent, and a copy — the kernel's, then
/// decoding the native states (`shrink.rs`) and validating the records (`read.rs`, `Index`) —
/// is most of a scrape's work. A helper that cannot
/// be started leaves its share to the others; the files of one that panicked (a bug) are copied
/// again on this thread, as they would have been without helpers.
fn copy_all(paths: &[PathBuf], stats: &Stats) -> Vec<Found> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_THREADS)
        .min(paths.len() / FILES_PER_THREAD)
        .max(1);
    let next = AtomicUsize::new(0);
    // Every file taken and copied (or not): what a panicked helper took is in no list.
    let taken: Mutex<Vec<(usize, Option<Found>)>> = Mutex::new(Vec::new());
    let done = threads::run(threads, &|_| {
        let mut scratch = Scratch::default();
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(p) = paths.get(i) else { break };
            mine.push((i, copy(p, stats, &mut scratch)));
        }
        taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(mine);
    });
    let mut taken = taken.into_inner().unwrap_or_else(PoisonError::into_inner);
    if done.contains(&false) {
        let mut copied = vec![false; paths.len()];
        taken.iter().for_each(|&(i, _)| copied[i] = true);
        let mut scratch = Scratch::default();
        for (i, p) in paths.iter().enumerate().filter(|&(i, _)| !copied[i]) {
            taken.push((i, copy(p, stats, &mut scratch)));
        }
    }
    // In the directory's order, as one thread would have copied them.
    crate::sort::sort_by(&mut taken, |a, b| a.0.cmp(&b.0));
    taken.into_iter().filter_map(|(_, f)| f).collect()
}

/// Opens and copies the process file at `path` (see [`list`]).
fn copy(path: &Path, stats: &Stats, scratch: &mut Scratch) -> Option<Found> {
    match dir::open_for_read(path) {
        Ok(Some(file)) => {
            let live = lock::is_live(&file);
            match Snapshot::read(&file, live, scratch) {
                Ok(snapshot) => Some(Found {
                    path: path.to_path_buf(),
                    snapshot,
                    live,
                }),
                Err(e) => {
                    stats.count(e);
                    None
                }
            }
        }
        Ok(None) => {
            stats.count(ReadError::Corrupt("not a regular file of ours"));
            None
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(_) => {
            stats.count(ReadError::Io);
            None
        }
    }
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
fn open_archive(path: &Path) -> Result<Option<Snapshot>, ReadError> {
    match dir::open_for_read(&path.join(ARCHIVE)) {
        // Written aside and renamed in: nothing writes it in place.
        Ok(Some(file)) => Snapshot::read(&file, false, &mut Scratch::default()).map(Some),
        Ok(None) => Err(ReadError::Corrupt(
            "the archive is not a regular file of ours",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(_) => Err(ReadError::Io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multiprocess_store::file::H_ID;

    /// Enough files for helper threads: every one copied, shrunk, parsed, and listed in the
    /// directory's order, whichever thread copied it.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "opens files with O_NONBLOCK, which Miri does not support"
    )]
    fn files_copied_on_several_threads_are_all_there_in_order() {
        let dir = std::env::temp_dir().join(format!("promtrack-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = crate::multiprocess_store::shrink::tests::file();
        let n = 4 * FILES_PER_THREAD + 3;
        for i in 0..n {
            let mut b = image.clone();
            b[H_ID..H_ID + 8].copy_from_slice(&(i as u64 + 1).to_ne_bytes());
            std::fs::write(dir.join(format!("p-{i}-{i}.db")), b).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"not ours").unwrap();
        let stats = Stats::default();
        let snap = DirSnapshot::read(&dir, &stats);
        let want: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "db"))
            .collect();
        let got: Vec<&PathBuf> = snap.files().iter().map(|f| &f.path).collect();
        assert_eq!(got, want.iter().collect::<Vec<_>>());
        let parsed = snap.process_files(Some(&stats));
        assert_eq!(parsed.len(), n);
        let parsed_ids: HashSet<u64> = parsed.iter().map(|(_, p)| p.info.id).collect();
        assert_eq!(parsed_ids.len(), n);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
