//! One read of a multiprocess directory, shared by a scrape (`scrape.rs`) and a compaction
//! (`compact.rs`): every process file opened and copied, then the archive. A scrape aggregates
//! each file on its own thread as soon as it is copied, while helper threads copy the next.
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
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use super::read::{Parsed, ReadError, Scratch, Snapshot};
use super::{Stats, dir, lock, threads};

/// The archive's file name.
pub(crate) const ARCHIVE: &str = "archive.db";

/// Every process file of a directory and its archive, as copied at one moment.
///
/// Filled through `&self` ([`list`](Self::list), then [`copy`](Self::copy)), so that what
/// is copied can be borrowed while the rest is: one slot per file listed, set once by
/// whichever thread copied it.
pub(crate) struct DirSnapshot {
    dir: PathBuf,
    paths: Vec<PathBuf>,
    /// `paths[i]` copied, unset if it could not be (counted) or was gone.
    slots: Vec<OnceLock<Found>>,
    /// Slots skipped as dead twins of live files (see [`skip_dead_twins`]), ascending.
    twins: OnceLock<Vec<usize>>,
    archive: OnceLock<Result<Option<Snapshot>, ReadError>>,
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
        let snapshot = DirSnapshot::list(path, stats);
        snapshot.copy(stats, &mut |_| {});
        snapshot
    }

    /// The process files (`*.db` but the archive) of the directory at `path`, listed, not
    /// copied yet. A directory that cannot be listed is counted and has none.
    pub(crate) fn list(path: &Path, stats: &Stats) -> DirSnapshot {
        let paths: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.ends_with(".db") && n != ARCHIVE && !n.starts_with('.'))
                })
                .map(|e| e.path())
                .collect(),
            Err(_) => {
                stats.count(ReadError::Io);
                Vec::new()
            }
        };
        DirSnapshot {
            dir: path.to_path_buf(),
            slots: paths.iter().map(|_| OnceLock::new()).collect(),
            paths,
            twins: OnceLock::new(),
            archive: OnceLock::new(),
        }
    }

    /// Copies the process files, then the archive (in that order: see the module docs); `each`
    /// is handed every process file copied, on this thread, as soon as it is (in no particular
    /// order, dead twins included), while helper threads copy the next ones. Problems with
    /// process files are counted in `stats`; a problem with the archive is kept for
    /// [`archive`](Self::archive) to report. Call it once.
    pub(crate) fn copy<'s>(&'s self, stats: &Stats, each: &mut dyn FnMut(&'s Found)) {
        copy_all(self, stats, each);
        let _ = self.twins.set(skip_dead_twins(self.copied(), stats));
        let _ = self.archive.set(open_archive(&self.dir));
    }

    /// Every process file copied, with its slot.
    fn copied(&self) -> impl Iterator<Item = (usize, &Found)> + Clone {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.get()?)))
    }

    /// Every process file copied, whether it parses or not, but dead twins, in the directory's
    /// order.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Found> {
        let twins = self.twins.get();
        self.copied()
            .filter(move |(i, _)| twins.is_none_or(|t| t.binary_search(i).is_err()))
            .map(|(_, f)| f)
    }

    /// The process files that parse, with the file each comes from; a file flagged as an
    /// archive is left out. With `count`, what does not parse is counted there (a scrape
    /// counts what it skips; a compaction leaves that to the scrapes).
    pub(crate) fn process_files(&self, count: Option<&Stats>) -> Vec<(&Found, Parsed<'_>)> {
        let mut parsed = Vec::with_capacity(self.slots.len());
        for f in self.files() {
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
        match self.archive.get() {
            Some(Ok(Some(copy))) => Parsed::parse(copy).map(Some).map_err(ArchiveError::Corrupt),
            Some(Ok(None)) | None => Ok(None),
            Some(Err(e)) => Err(ArchiveError::Unreadable(*e)),
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

/// Files per copying thread: below this a scrape copies on its own thread alone (a thread
/// costs tens of microseconds, about what a small file's copy does).
const FILES_PER_THREAD: usize = 8;
/// Threads that copy at most, the scrape's own included.
const MAX_THREADS: usize = 4;

/// Copies the files of `snapshot` into its slots on up to [`MAX_THREADS`] threads (the
/// scrape's own and helpers, as the machine has cores): files are independent, and a copy —
/// the kernel's, then decoding the native states (`shrink.rs`) and validating the records
/// (`read.rs`, `Index`) — is most of a scrape's work. This thread hands each file copied to
/// `each` as soon as it is, its own copies and the helpers' alike, and copies files itself
/// whenever none is waiting: a scrape's aggregation runs beside the copying instead of after
/// it, on each file while its copy is still in the cache. Every file taken is reported to this
/// thread, by a guard if its helper panicked (a bug): that file is copied again here, as it
/// would have been without helpers. A helper that cannot be started leaves its share to the
/// others.
fn copy_all<'s>(snapshot: &'s DirSnapshot, stats: &Stats, each: &mut dyn FnMut(&'s Found)) {
    let n = snapshot.paths.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_THREADS)
        .min(n / FILES_PER_THREAD)
        .max(1);
    let next = AtomicUsize::new(0);
    let finished = Finished::default();
    let copy_into = |i: usize, scratch: &mut Scratch| {
        if let Some(found) = copy(&snapshot.paths[i], stats, scratch) {
            let _ = snapshot.slots[i].set(found);
        }
    };
    let helper = |_| {
        let mut scratch = Scratch::default();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let mut report = Report {
                finished: &finished,
                i,
                copied: false,
            };
            #[cfg(test)]
            tests::panic_if_asked(&snapshot.paths[i]);
            copy_into(i, &mut scratch);
            report.copied = true;
        }
    };
    let mut own = || {
        let mut scratch = Scratch::default();
        // Every file is handed on once: taken here (then copied here), or finished by a helper
        // (copied, unless its helper panicked: then copied here).
        for _ in 0..n {
            let (i, copied) = match finished.take() {
                Some(f) => f,
                None => match next.fetch_add(1, Ordering::Relaxed) {
                    i if i < n => (i, false),
                    _ => finished.wait(),
                },
            };
            if !copied {
                copy_into(i, &mut scratch);
            }
            if let Some(found) = snapshot.slots[i].get() {
                each(found);
            }
        }
    };
    threads::run_beside(threads, &helper, &mut own);
}

/// The files helpers copied (or failed to: panicked), for the scrape's thread to hand on.
#[derive(Default)]
struct Finished {
    list: Mutex<Vec<(usize, bool)>>,
    ready: Condvar,
}

impl Finished {
    fn lock(&self) -> MutexGuard<'_, Vec<(usize, bool)>> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A file a helper finished, if one is waiting.
    fn take(&self) -> Option<(usize, bool)> {
        self.lock().pop()
    }

    /// The next file a helper finishes.
    fn wait(&self) -> (usize, bool) {
        let mut list = self.lock();
        loop {
            if let Some(f) = list.pop() {
                return f;
            }
            list = self
                .ready
                .wait(list)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Reports file `i` finished when dropped: copied, or not if its copy panicked.
struct Report<'a> {
    finished: &'a Finished,
    i: usize,
    copied: bool,
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        self.finished.lock().push((self.i, self.copied));
        self.finished.ready.notify_one();
    }
}

/// Opens and copies the process file at `path` (see [`DirSnapshot::copy`]).
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

/// The slots to skip, counted: each dead file that claims the id of a live file (a copy, or a
/// forged file). Folded, it would put the live file's id in the archive's absorbed list:
/// scrapes would then skip the live file as absorbed, and the next compaction would remove it.
fn skip_dead_twins<'s>(
    found: impl Iterator<Item = (usize, &'s Found)> + Clone,
    stats: &Stats,
) -> Vec<usize> {
    let mut ids = HashSet::new();
    let twins: HashSet<u64> = found
        .clone()
        .map(|(_, f)| f.snapshot.header_id())
        .filter(|&id| !ids.insert(id))
        .collect();
    if twins.is_empty() {
        return Vec::new(); // the usual case: no lock is tested here
    }
    let live: HashSet<u64> = found
        .clone()
        .filter(|(_, f)| twins.contains(&f.snapshot.header_id()) && f.live)
        .map(|(_, f)| f.snapshot.header_id())
        .collect();
    // Ascending: `found` is in slot order.
    let skipped: Vec<usize> = found
        .filter(|(_, f)| live.contains(&f.snapshot.header_id()) && !f.live)
        .map(|(i, _)| i)
        .collect();
    for _ in &skipped {
        stats.count(ReadError::Corrupt("a dead file with a live file's id"));
    }
    skipped
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

    /// A directory whose first file a helper takes panics in its copy (a bug, for the test
    /// below), and how many did.
    static PANIC_IN: Mutex<Option<PathBuf>> = Mutex::new(None);
    static PANICKED: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn panic_if_asked(path: &Path) {
        let mut asked = PANIC_IN.lock().unwrap_or_else(PoisonError::into_inner);
        if asked.as_deref().is_some_and(|d| path.starts_with(d)) {
            *asked = None;
            drop(asked);
            PANICKED.fetch_add(1, Ordering::Relaxed);
            panic!("a helper's copy of {} panics (a test)", path.display());
        }
    }

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
        let got: Vec<&PathBuf> = snap.files().map(|f| &f.path).collect();
        assert_eq!(got, want.iter().collect::<Vec<_>>());
        let parsed = snap.process_files(Some(&stats));
        assert_eq!(parsed.len(), n);
        let parsed_ids: HashSet<u64> = parsed.iter().map(|(_, p)| p.info.id).collect();
        assert_eq!(parsed_ids.len(), n);
        // A helper panicking in the middle of a copy: that file is copied again on this
        // thread, and every file is handed on once. (Whether a helper takes a file before this
        // thread has taken them all is the scheduler's: tried until one did.)
        let mut all = want.clone();
        all.sort();
        for _ in 0..100 {
            *PANIC_IN.lock().unwrap() = Some(dir.clone());
            let snap = DirSnapshot::list(&dir, &stats);
            let mut handed = Vec::new();
            snap.copy(&stats, &mut |f| handed.push(f.path.clone()));
            handed.sort();
            assert_eq!(handed, all);
            assert_eq!(snap.files().count(), n);
            if PANICKED.load(Ordering::Relaxed) > 0 {
                break;
            }
        }
        *PANIC_IN.lock().unwrap() = None;
        assert_eq!(PANICKED.load(Ordering::Relaxed), 1, "no helper took a file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
