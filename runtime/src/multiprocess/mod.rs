//! Multiprocess mode: several worker processes (a prefork server, several systemd instances)
//! each keep their metrics in a memory-mapped file of a shared directory, and one scrape —
//! from any of them, or from a supervisor that only serves `/metrics` — returns the aggregate.
//!
//! # Switching it on
//!
//! In code, before any metric is used (first thing in `main`):
//!
//! ```no_run
//! promtrack::multiprocess::dir("/run/app/metrics")?;
//! # Ok::<(), promtrack::Error>(())
//! ```
//!
//! or with [`Options`] for the start-up policy and shared volumes. Calling it again with the
//! same path is fine; another path is an error. Or through the environment, read when the
//! default registry or the first metric is first touched: `PROMETHEUS_MULTIPROC_DIR` (or the
//! lowercase `prometheus_multiproc_dir`), with `PROMTRACK_MULTIPROC_SHARED=1` for the
//! shared-volume opt-in and `PROMTRACK_MULTIPROC_WIPE=1` for the `wipe` start-up policy. An
//! explicit call wins over the environment. Switching on after a series was created in
//! single-process mode is an error ([`Error::Multiprocess`](crate::Error)):
//! handles to that series point at memory no other process can see, so its updates would be
//! lost silently. Families the default registry registers when it is created (the macros'
//! declarations) are created *after* the switch when `dir()` comes first in `main`.
//!
//! A process that creates no series creates no file: a supervisor that only serves the
//! aggregate just switches the mode on (or uses a [`DirCollector`] with its own registry).
//!
//! # What is stored
//!
//! Each process writes one file, `p-<pid>-<id>.db`, and nobody else writes it. The file starts
//! with a header, followed by 8-byte aligned records appended one after the other; a record is
//! written completely and then published by a release store of the header's `used` field.
//! Values are atomic 8-byte cells inside the records, updated in place: a series handle points
//! straight at its cells, so `inc()` is the same single atomic instruction as in one process.
//! The file is mapped in segments that never move; new space is allocated on disk before it is
//! mapped, so a full disk is an error when a *new series* needs space — that series then lives
//! in process memory only and is counted in `promtrack_multiprocess_dropped_total` — never a
//! `SIGBUS` on an update.
//!
//! The byte layout of a file is documented beside the code that writes it
//! (`runtime/src/multiprocess_store/file.rs`). Readers read every layout version up to their
//! own (a rolling deploy mixes versions, and skipping an older file would make counters drop)
//! and skip, and count, newer ones.
//!
//! # Aggregation
//!
//! On every scrape: counters, histograms and summaries are summed over all files, the archive
//! included — their floating-point totals (a histogram's sum) exactly, rounded once, so that
//! folding a dead file into the archive never makes one go down by an ulp, which Prometheus
//! would take for a reset (see `exact.rs`). Gauges combine by their family's [`GaugeMode`](crate::GaugeMode)
//! (set with `Family::mode` or `mode = "…"` in the attribute), with Python's names and
//! meanings:
//!
//! | mode | exposed |
//! |---|---|
//! | `all` (default) | one series per process with a `pid` label — live processes, and dead ones until their file is compacted |
//! | `liveall` | one series per live process, `pid` label |
//! | `sum` / `livesum` | the sum over all / live processes (`livesum`: in-progress gauges) |
//! | `max` / `livemax` | the maximum over all / live processes |
//! | `min` / `livemin` | the minimum over all / live processes |
//! | `mostrecent` / `livemostrecent` | the value set last, by any / a live process |
//!
//! A scrape copies the files on up to four threads (as the machine has cores, one per eight
//! files or more), keeps a few hundred bytes per native series of what it copied, not the
//! whole window each holds in its file, and merges the series of a large directory (one per
//! 65,536 series records) on as many threads.
//!
//! Info metrics are the union of every process's series (Python's `max` of 1s). Two containers
//! sharing a volume may both run a pid 1: their `pid` labels become `1-<file id>`.
//!
//! **Process metrics** (`process_*`) are exposed per live writer, with a `pid` label, read from
//! `/proc/<pid>` by the scraping process when that pid still is the writer (its start time
//! matches the file's); a process the reader cannot see (another pid namespace) is left out.
//! Python drops them in multiprocess mode. **Callback gauges**
//! ([`Registry::register_gauge_fn`](crate::Registry::register_gauge_fn)) and other collectors
//! run in the process that serves the scrape and are exposed as they are, not aggregated:
//! register them in the process that serves `/metrics`.
//!
//! In multiprocess mode the default registry exposes the directory's aggregate *instead of* its
//! own families (whose values are this process's file, read like every other), so nothing is
//! exposed twice. Other registries still expose their own families with this process's values.
//!
//! # Dead processes and compaction
//!
//! Each writer holds an exclusive advisory lock (`flock`) on its own file for its lifetime; the
//! kernel drops it on any death, `SIGKILL` included, so a dead process is recognised with no
//! hook, whatever became of its pid (see `lock.rs`). `live*` gauges drop it at once. Dead files
//! are folded into `archive.db` — counters, histograms and summaries summed; `sum`, `max`,
//! `min` and `mostrecent` gauges folded by their meaning; `all` and `live*` gauge series of dead
//! processes **dropped** (Python keeps `all` series of dead pids forever, which is what makes
//! its directories grow) — then removed. The archive is written aside and renamed in under
//! `compact.lock`, and records the ids of the files it absorbed, so a crash at any step neither
//! loses nor double-counts (see `compact.rs`). Compaction runs when a scrape finds a dead file,
//! when a process creates its file, and when a writer exits cleanly (it folds its own file).
//! So the directory holds the live processes' files, `archive.db` and `compact.lock`.
//! [`mark_process_dead`] exists for parity with Python; it is never needed.
//!
//! A process killed in the middle of an update loses at most that update, never a total: every
//! cell it wrote stays in its file. A histogram observation is several stores — the native
//! bucket, then the classic bucket and the sum — so one killed between them is counted in some
//! and not the others, at most one observation per thread in flight, and every merged total
//! still never goes down. The order makes what is left valid: the native count one ahead of the
//! classic one, never behind (a scrape writes the larger of the two as the count, and
//! Prometheus rejects a native histogram whose count is not its buckets' total); a native-only
//! histogram's sum may lack that one observation, which nothing checks. No order of separate
//! stores avoids the gap — only a lock on every observation would. A native reduction killed
//! half-way loses nothing (its journal, `metric/native.rs`).
//!
//! # Start-up policy
//!
//! Files left by a previous run are kept by default: dead files are folded into the archive
//! when the mode is switched on, so totals continue across restarts of the whole service (a
//! counter reset is harmless to `rate()`, but totals across deploys are what users asked for).
//! With [`Options::wipe_on_start`] (or `PROMTRACK_MULTIPROC_WIPE=1`) the archive and dead
//! files are removed instead — only when no writer in the directory is alive, so a worker
//! restarted beside live siblings never wipes their history.
//!
//! # Security
//!
//! A missing directory is created `0700`. A directory that is a symlink, owned by another
//! user, or writable by group or others without the sticky bit is refused with a message saying
//! why and what to do. Shared volumes (a Kubernetes `emptyDir` is `0777` without the sticky
//! bit) opt in with [`Options::shared_volume`] or `PROMTRACK_MULTIPROC_SHARED=1`: promtrack
//! then uses a private `0700` subdirectory `promtrack-<uid>` inside. Files are created `0600`
//! and opened without following symlinks; files not owned by this user are skipped.
//!
//! # Robustness
//!
//! Threat model: another process may put hostile *content* into the directory (a foreign
//! version, garbage, a truncated or crafted file); it cannot truncate files concurrently, which
//! the directory's permissions exclude. Such a file is skipped and counted in
//! `promtrack_multiprocess_read_errors_total{reason}`; reading it never panics and never keeps
//! more memory than the file's size (see `read.rs`). The same name declared differently by two
//! processes is counted with `reason="conflict"`.
//!
//! # Fork
//!
//! A process that forks without `exec` would otherwise write into its parent's file through
//! the handles it inherited. A fork handler moves the child to a file of its own: same records,
//! zeroed values, mapped at the same addresses, so every inherited handle now counts for the
//! child. If that fails the child's mappings become private memory (its updates are lost to
//! the aggregate, never added to its parent's).
//!
//! Multiprocess mode needs Unix; elsewhere [`dir`] returns an error.
//!
//! In the code, this module is the public API and what needs the registry ([`DirCollector`]
//! is a [`Collector`]) or the declarations ([`dir`] checks them). The mode
//! switch, the files, their aggregation and compaction live in
//! `runtime/src/multiprocess_store/`, below the registry: a new series' cells come from there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::declare::check_declarations;
use crate::error::Error;
use crate::model::MetricFamily;
use crate::multiprocess_store::{Setup, Stats, collect_dir, dir as checks};
use crate::registry::Collector;

pub use crate::multiprocess_store::{
    ENV, ENV_LOWERCASE, SHARED_ENV, WIPE_ENV, directory, is_enabled, mark_process_dead,
};

/// Switches multiprocess mode on with files in `path`, process-wide. See the [module
/// docs](self); the same as `Options::new(path).apply()`.
///
/// # Errors
/// If the directory is refused, if the mode is already on with another directory, or if series
/// were already created in single-process mode (see [`Options::apply`]). Then, as a start-up
/// check, if two metric declarations of one name disagree
/// ([`check_declarations`]'s error, naming both places): the mode is
/// on by then (the check registers the declarations, which must land in this process's file),
/// but a service should stop rather than serve scrapes that silently lack a metric — the
/// `?` in `main` does that.
pub fn dir(path: impl AsRef<Path>) -> Result<(), Error> {
    Options::new(path).apply()
}

/// How to switch multiprocess mode on.
///
/// ```no_run
/// promtrack::multiprocess::Options::new("/var/lib/app/metrics")
///     .shared_volume(true) // a 0777 emptyDir: use a private subdirectory inside
///     .wipe_on_start(true)
///     .apply()?;
/// # Ok::<(), promtrack::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    path: PathBuf,
    shared_volume: bool,
    wipe: bool,
}

impl Options {
    /// Files in `path` (created `0700` if missing).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            shared_volume: false,
            wipe: false,
        }
    }

    /// Accept a directory others may write to (a shared volume) by using a private `0700`
    /// subdirectory `promtrack-<uid>` inside it.
    pub fn shared_volume(mut self, yes: bool) -> Self {
        self.shared_volume = yes;
        self
    }

    /// Remove the files of a previous run at start-up instead of keeping their totals (only
    /// when no writer in the directory is alive).
    pub fn wipe_on_start(mut self, yes: bool) -> Self {
        self.wipe = yes;
        self
    }

    /// Switches the mode on, process-wide. Fails if the directory is refused, if the mode is
    /// already on with another directory, or if series were already created in single-process
    /// mode; then runs [`check_declarations`] and returns its error
    /// (with the mode on), as [`dir`] documents.
    pub fn apply(self) -> Result<(), Error> {
        Setup {
            path: self.path,
            shared_volume: self.shared_volume,
            wipe: self.wipe,
        }
        .switch_on()?;
        // After the switch, without the decision lock: registering the declarations creates
        // their series, in this process's file.
        check_declarations()
    }
}

/// Aggregates a multiprocess directory on every scrape: register it with a registry of your
/// own (a supervisor's, a test's). The default registry does this by itself in multiprocess
/// mode. Creates no file of its own.
///
/// ```no_run
/// use promtrack::{Registry, multiprocess::DirCollector};
///
/// let registry = Registry::new();
/// registry.register_collector(DirCollector::new("/run/app/metrics")?);
/// # Ok::<(), promtrack::Error>(())
/// ```
pub struct DirCollector {
    dir: PathBuf,
    stats: Arc<Stats>,
    compact: bool,
}

impl DirCollector {
    /// A collector for the directory at `path`, after the same checks as [`dir`].
    pub fn new(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::with_options(&Options::new(path))
    }

    /// Like [`new`](Self::new), with the shared-volume opt-in of `options`.
    pub fn with_options(options: &Options) -> Result<Self, Error> {
        Ok(Self {
            dir: checks::prepare(&options.path, options.shared_volume)?,
            stats: Arc::default(),
            compact: true,
        })
    }

    /// Whether scrapes fold dead processes' files into the archive (default true). Off, a
    /// scrape only reads.
    pub fn compaction(mut self, yes: bool) -> Self {
        self.compact = yes;
        self
    }

    /// Aggregates the directory now.
    pub fn collect_families(&self) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        collect_dir(&self.dir, &self.stats, self.compact, &mut out);
        out
    }
}

impl Collector for DirCollector {
    fn collect(&self, out: &mut Vec<MetricFamily>) {
        collect_dir(&self.dir, &self.stats, self.compact, out);
        // The process reading the directory is the one scrapers talk to: its count of the
        // scrapes it answered, per negotiated format, says what they negotiated (a registry
        // that writes its own anyway, the default one, then does not add it twice).
        out.push(crate::registry::scrapes_family());
    }
}
