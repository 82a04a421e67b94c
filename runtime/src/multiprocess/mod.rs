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
//! Layout version 1 (all integers native-endian; a file from a host of the other endianness
//! reads as an unknown version and is skipped):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `promtrk\0` |
//! | 8 | 4 | layout version (`1`) |
//! | 12 | 4 | header length (`64`) |
//! | 16 | 8 | `used`: end of the published records (release store / acquire load) |
//! | 24 | 8 | file id (random, also in the file name; the archive lists absorbed ids) |
//! | 32 | 4 | writer's pid (informational: liveness is told by the lock, not the pid) |
//! | 36 | 4 | flags: bit 0 = this is the archive |
//! | 40 | 8 | writer's start time in clock ticks since boot (`/proc/<pid>/stat` field 22) |
//! | 48 | 8 | `dropped`: series this writer could not record (atomic) |
//! | 56 | 8 | reserved (0) |
//!
//! Every record starts with `u32 length` (a multiple of 8, header included), `u16 tag`,
//! `u16 0`:
//!
//! | tag | record | body |
//! |---|---|---|
//! | 0 | padding | nothing: skip `length` bytes (the tail of a mapping segment) |
//! | 1 | family | `u8 kind` (1 counter, 2 gauge, 3 histogram, 4 summary, 5 info), `u8 gauge mode` (index in [`GaugeMode::ALL`](crate::GaugeMode::ALL)), `u16 label count`, `u32 bound count`, the bounds as `f64`, then `u32 length + UTF-8` for the name, the help and each label name |
//! | 2 | series | `u32` offset of its family record, `u32 cell count`, the cells (8 bytes each), `u32 key length`, the key (label values, each followed by `0xFF`) |
//! | 3 | absorbed | archive only: `u32 count`, `u32 0`, the absorbed file ids as `u64` |
//!
//! The cells of a series record are laid out as `layout.rs` defines for the family's kind, gauge
//! mode and bound count (the table there is part of this format): counter 2, gauge 1 (3 in the
//! `mostrecent` modes: value, time, sequence lock), histogram one per bucket, `+Inf` and the
//! sum, summary 2, info none.
//!
//! Readers read every layout version up to their own (a rolling deploy mixes versions, and
//! skipping an older file would make counters drop) and skip, and count, newer ones.
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

mod aggregate;
mod compact;
pub(crate) mod dir;
mod exact;
mod file;
mod lock;
mod read;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::cell::Cells;
use crate::error::Error;
use crate::metric::FamilyDecl;
use crate::model::{MetricFamily, MetricKind, Series, Value};
use aggregate::{Aggregate, InputFile, Purpose};
use file::Writer;
use read::{Parsed, ReadError};

pub use dir::SHARED_ENV;

/// The environment variable Python's `prometheus_client` reads; promtrack reads it too.
pub const ENV: &str = "PROMETHEUS_MULTIPROC_DIR";
/// The lowercase spelling older `prometheus_client` versions read.
pub const ENV_LOWERCASE: &str = "prometheus_multiproc_dir";
/// Set to `1` to wipe files of a previous run at start-up (see the module docs).
pub const WIPE_ENV: &str = "PROMTRACK_MULTIPROC_WIPE";

/// Switches multiprocess mode on with files in `path`, process-wide. See the [module
/// docs](self); the same as `Options::new(path).apply()`.
///
/// # Errors
/// If the directory is refused, if the mode is already on with another directory, or if series
/// were already created in single-process mode (see [`Options::apply`]). Then, as a start-up
/// check, if two metric declarations of one name disagree
/// ([`check_declarations`](crate::check_declarations)'s error, naming both places): the mode is
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
    /// mode; then runs [`check_declarations`](crate::check_declarations) and returns its error
    /// (with the mode on), as [`dir`] documents.
    pub fn apply(self) -> Result<(), Error> {
        self.switch_on()?;
        // After the switch, without the decision lock: registering the declarations creates
        // their series, in this process's file.
        crate::check_declarations()
    }

    fn switch_on(self) -> Result<(), Error> {
        let mut decided = DECISION.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(active) = ACTIVE.get() {
            return if same_path(&active.requested, &self.path) {
                Ok(())
            } else {
                Err(dir::refuse(
                    &self.path,
                    format!(
                        "cannot be used: multiprocess mode is already on with {}",
                        active.requested.display()
                    ),
                    "switch it on once per process, with one directory",
                ))
            };
        }
        let heap = HEAP_SERIES.load(Ordering::Relaxed);
        if heap > 0 {
            let first = FIRST_HEAP
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            return Err(dir::refuse(
                &self.path,
                format!(
                    "cannot be switched on: {heap} series (the first of family `{first}`) were already created in single-process mode, and their updates would never reach the directory"
                ),
                "call promtrack::multiprocess::dir() first thing in main, before any metric is used, or set PROMETHEUS_MULTIPROC_DIR",
            ));
        }
        activate(self)?;
        *decided = true;
        DECIDED.store(true, Ordering::Release);
        Ok(())
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Whether multiprocess mode is on in this process.
pub fn is_enabled() -> bool {
    active().is_some()
}

/// The directory in use (the private subdirectory with the shared-volume opt-in), if the mode
/// is on.
pub fn directory() -> Option<&'static Path> {
    active().map(|a| a.dir.as_path())
}

/// For parity with Python's `mark_process_dead`: never needed, since dead processes are
/// recognised by their released lock. Folds every dead file of `pid` (and any other dead file)
/// into the archive now, and returns how many files of `pid` were folded. A *live* process's
/// file is never touched, whatever its pid.
pub fn mark_process_dead(pid: u32) -> Result<usize, Error> {
    let Some(active) = active() else {
        return Ok(0);
    };
    let run = compact::Run {
        wait: true,
        own: None,
        wipe: false,
    };
    let done = compact::compact(&active.dir, &active.stats, run).map_err(|e| Error::Io {
        context: format!("compacting multiprocess directory {}", active.dir.display()),
        source: e,
    })?;
    Ok(done.map_or(0, |d| d.pids.iter().filter(|&&p| p == pid).count()))
}

/// Read errors and conflicts seen by this process's scrapes.
#[derive(Default)]
pub(crate) struct Stats {
    corrupt: AtomicU64,
    version: AtomicU64,
    io: AtomicU64,
    conflict: AtomicU64,
    /// Series this process could not put in its file (no file, or no disk).
    unrecorded: AtomicU64,
}

impl Stats {
    pub(crate) fn count(&self, e: ReadError) {
        match e {
            ReadError::Corrupt(_) => &self.corrupt,
            ReadError::Version(_) => &self.version,
            ReadError::Io => &self.io,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_conflicts(&self, n: u64) {
        self.conflict.fetch_add(n, Ordering::Relaxed);
    }

    fn family(&self) -> MetricFamily {
        let mut f = MetricFamily::new(
            "promtrack_multiprocess_read_errors_total",
            "Files of the multiprocess directory skipped by this process's scrapes (corrupt, unknown_version, io), and series skipped because their family was declared differently by another process (conflict).",
            MetricKind::Counter,
        );
        for (reason, n) in [
            ("conflict", &self.conflict),
            ("corrupt", &self.corrupt),
            ("io", &self.io),
            ("unknown_version", &self.version),
        ] {
            f.series.push(
                Series::new(Value::Counter(n.load(Ordering::Relaxed) as f64))
                    .label("reason", reason),
            );
        }
        f
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
            dir: dir::prepare(&options.path, options.shared_volume)?,
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

impl crate::Collector for DirCollector {
    fn collect(&self, out: &mut Vec<MetricFamily>) {
        collect_dir(&self.dir, &self.stats, self.compact, out);
    }
}

/// One scrape of a directory: compaction if a file is dead, then the aggregate.
fn collect_dir(path: &Path, stats: &Stats, compact: bool, out: &mut Vec<MetricFamily>) {
    // Open the process files first, then the archive: a compaction between the two is then
    // seen as "absorbed" (skipped), never as a file counted twice or lost (compact.rs).
    let mut found = compact::list(path, stats);
    let mut parsed: Vec<(Parsed<'_>, bool)> = Vec::with_capacity(found.len());
    let mut dead = false;
    for f in &found {
        match Parsed::parse(&f.snapshot) {
            Ok(p) if !p.info.archive => {
                dead |= !f.live;
                parsed.push((p, f.live));
            }
            Ok(_) => stats.count(ReadError::Corrupt("a second archive")),
            Err(e) => stats.count(e),
        }
    }
    if dead && compact {
        let run = compact::Run {
            wait: false,
            own: None,
            wipe: false,
        };
        // Compacted or not, read again: what we opened may now be absorbed.
        if let Ok(Some(_)) = compact::compact(path, stats, run) {
            drop(parsed);
            found = compact::list(path, stats);
            parsed = Vec::with_capacity(found.len());
            for f in &found {
                if let Ok(p) = Parsed::parse(&f.snapshot) {
                    if !p.info.archive {
                        parsed.push((p, f.live));
                    }
                }
            }
        }
    }
    let archive_copy = match compact::open_archive(path) {
        Ok(m) => m,
        Err(e) => {
            stats.count(e);
            None
        }
    };
    let archive = archive_copy.as_ref().and_then(|m| match Parsed::parse(m) {
        Ok(p) if p.info.archive => Some(p),
        Ok(_) => {
            stats.count(ReadError::Corrupt("archive.db is not an archive"));
            None
        }
        Err(e) => {
            stats.count(e);
            None
        }
    });
    let absorbed: std::collections::HashSet<u64> = archive
        .iter()
        .flat_map(|a| a.absorbed.iter().copied())
        .collect();
    // Live files first: the first declaration read wins a conflict (aggregate.rs).
    parsed.sort_by_key(|(p, live)| (!*live, p.info.pid, p.info.id));
    let mut sources: Vec<InputFile<'_>> = parsed
        .into_iter()
        .filter(|(p, _)| !absorbed.contains(&p.info.id))
        .map(|(parsed, live)| InputFile { parsed, live })
        .collect();
    let live_writers: Vec<(u32, u64)> = sources
        .iter()
        .filter(|s| s.live)
        .map(|s| (s.parsed.info.pid, s.parsed.info.start_ticks))
        .collect();
    let files = sources.len();
    if let Some(a) = archive {
        sources.push(InputFile {
            parsed: a,
            live: false,
        });
    }
    let agg = Aggregate::new(&sources, Purpose::Scrape);
    stats.add_conflicts(agg.conflicts);
    let dropped = agg.dropped + stats.unrecorded.load(Ordering::Relaxed);
    out.extend(agg.into_families());
    drop(sources);
    out.push(stats.family());
    out.push(
        MetricFamily::new(
            "promtrack_multiprocess_dropped_total",
            "Series that writers could not put in their multiprocess file (disk full, file not creatable): their updates are missing from the aggregate.",
            MetricKind::Counter,
        )
        .with_series(Series::new(Value::Counter(dropped as f64))),
    );
    out.push(
        MetricFamily::new(
            "promtrack_multiprocess_files",
            "Process files read by this scrape (live writers, and dead ones not yet compacted).",
            MetricKind::Gauge,
        )
        .with_series(Series::new(Value::Gauge(files as f64))),
    );
    process_metrics(&live_writers, out);
}

/// `process_*` of every live writer, labelled by pid (see the module docs).
#[cfg(all(feature = "process", target_os = "linux"))]
fn process_metrics(writers: &[(u32, u64)], out: &mut Vec<MetricFamily>) {
    let collector = crate::process::ProcessReader::new();
    let mut merged: Vec<MetricFamily> = Vec::new();
    for &(pid, ticks) in writers {
        let p = pid.to_string();
        if ticks == 0 || file::start_ticks(&p) != ticks {
            continue; // not visible from here, or not the same process any more
        }
        for fam in collector.read_at(&format!("/proc/{p}")).families() {
            let series = fam.series.into_iter().map(|s| s.label("pid", p.clone()));
            match merged.iter_mut().find(|m| m.name == fam.name) {
                Some(m) => m.series.extend(series),
                None => {
                    let mut m = MetricFamily::new(fam.name, fam.help, fam.kind);
                    m.series.extend(series);
                    merged.push(m);
                }
            }
        }
    }
    out.extend(merged);
}

#[cfg(not(all(feature = "process", target_os = "linux")))]
fn process_metrics(_: &[(u32, u64)], _: &mut Vec<MetricFamily>) {}

// ---------------------------------------------------------------------------------------------
// Process-wide state.

/// The mode, once on. Never switched off.
struct Active {
    requested: PathBuf,
    dir: PathBuf,
    stats: Arc<Stats>,
    /// This process's file, created with its first series (`None` if it could not be).
    writer: OnceLock<Option<Writer>>,
}

static ACTIVE: OnceLock<Active> = OnceLock::new();
/// Whether the environment was consulted (or an explicit call made).
static DECIDED: AtomicBool = AtomicBool::new(false);
static DECISION: Mutex<bool> = Mutex::new(false);
/// Series created in single-process mode, and the family of the first.
static HEAP_SERIES: AtomicU64 = AtomicU64::new(0);
static FIRST_HEAP: Mutex<Option<String>> = Mutex::new(None);

/// The active mode, after consulting the environment on first use.
fn active() -> Option<&'static Active> {
    if !DECIDED.load(Ordering::Acquire) {
        decide_from_env();
    }
    ACTIVE.get()
}

fn decide_from_env() {
    let mut decided = DECISION.lock().unwrap_or_else(PoisonError::into_inner);
    if *decided {
        return;
    }
    *decided = true;
    let path = std::env::var_os(ENV)
        .filter(|p| !p.is_empty())
        .or_else(|| std::env::var_os(ENV_LOWERCASE).filter(|p| !p.is_empty()));
    if let Some(path) = path {
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1" || v == "true");
        let options = Options::new(path)
            .shared_volume(flag(SHARED_ENV))
            .wipe_on_start(flag(WIPE_ENV));
        if let Err(e) = activate(options) {
            // No caller to return this to: say it loudly, once, and run in single-process
            // mode rather than crash the service at its first metric.
            eprintln!("promtrack: multiprocess mode NOT enabled: {e}");
        }
    }
    DECIDED.store(true, Ordering::Release);
}

fn activate(options: Options) -> Result<(), Error> {
    let dir = dir::prepare(&options.path, options.shared_volume)?;
    let stats = Arc::new(Stats::default());
    let run = compact::Run {
        wait: true,
        own: None,
        wipe: options.wipe,
    };
    compact::compact(&dir, &stats, run).map_err(|e| Error::Io {
        context: format!(
            "applying the start-up policy to multiprocess directory {} (fix or remove archive.db)",
            dir.display()
        ),
        source: e,
    })?;
    let _ = ACTIVE.set(Active {
        requested: options.path,
        dir,
        stats,
        writer: OnceLock::new(),
    });
    Ok(())
}

impl Active {
    fn writer(&self) -> Option<&Writer> {
        self.writer
            .get_or_init(|| match Writer::create(&self.dir) {
                Ok(w) => {
                    install_process_hooks();
                    Some(w)
                }
                Err(e) => {
                    eprintln!(
                        "promtrack: cannot create this process's metrics file in {}: {e}; its metrics stay in memory and are missing from the aggregate",
                        self.dir.display()
                    );
                    None
                }
            })
            .as_ref()
    }
}

/// Where a new series' cells live: in this process's file in multiprocess mode, `None` (the
/// heap) otherwise. Called through the storage seam (`store.rs`) when a family creates a
/// series (the cold path).
pub(crate) fn series_cells(decl: &FamilyDecl<'_>, key: &[u8]) -> Option<Cells> {
    let Some(active) = active() else {
        if HEAP_SERIES.fetch_add(1, Ordering::Relaxed) == 0 {
            *FIRST_HEAP.lock().unwrap_or_else(PoisonError::into_inner) = Some(decl.name.to_owned());
        }
        return None;
    };
    let Some(writer) = active.writer() else {
        active.stats.unrecorded.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let n = decl.layout().len();
    match writer.alloc_series(decl, key) {
        // SAFETY: `n` cells in a segment that stays mapped for the process's life.
        Ok(ptr) => Some(unsafe { Cells::external(ptr, n) }),
        Err(_) => {
            writer.count_dropped();
            None
        }
    }
}

/// What the default registry collects to expose the directory while the mode is on (nothing
/// while it is off, so switching on later still works). Consults the environment now, when
/// the default registry is created (see the module docs).
pub(crate) fn on_default_registry() -> impl Fn(&mut Vec<MetricFamily>) + Send + Sync + 'static {
    let _ = active();
    |out| {
        if let Some(a) = active() {
            collect_dir(&a.dir, &a.stats, true, out);
        }
    }
}

/// The fork and exit hooks, installed with this process's file.
fn install_process_hooks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering plain `extern "C"` functions.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_parent),
                Some(after_fork_child),
            );
            libc::atexit(at_exit);
        }
    });
}

fn own_writer() -> Option<(&'static Active, &'static Writer)> {
    let a = ACTIVE.get()?;
    Some((a, a.writer.get()?.as_ref()?))
}

extern "C" fn before_fork() {
    if let Some((_, w)) = own_writer() {
        w.raw_lock().lock();
    }
}

extern "C" fn after_fork_parent() {
    if let Some((_, w)) = own_writer() {
        w.raw_lock().unlock();
    }
}

extern "C" fn after_fork_child() {
    if let Some((a, w)) = own_writer() {
        // SAFETY: `before_fork` took the lock, and the child has only this thread.
        unsafe {
            if w.reopen_after_fork(&a.dir).is_err() {
                w.detach_after_fork();
                a.stats.unrecorded.fetch_add(1, Ordering::Relaxed);
            }
        }
        w.raw_lock().unlock();
    }
}

/// A clean exit folds this process's own file into the archive at once.
extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if let Some((a, w)) = own_writer().filter(|(_, w)| !w.is_detached()) {
            let run = compact::Run {
                wait: true,
                own: Some(w.id()),
                wipe: false,
            };
            let _ = compact::compact(&a.dir, &a.stats, run);
        }
    });
}

/// The path of this process's file, if it has one (tests, diagnostics).
#[doc(hidden)]
pub fn own_file() -> Option<PathBuf> {
    own_writer().map(|(_, w)| w.path())
}
