//! The mode switch and this process's file: whether multiprocess mode is on (decided once, by
//! an explicit call or the environment), where a new series' cells live, and the fork and exit
//! hooks that keep this process's file its own.
//!
//! Invariants:
//! - The mode is decided once per process and never switched off; switching on after a series
//!   was created on the heap is refused (its updates would never reach the directory).
//! - This process's file is created with its first series, and written only by this process:
//!   a forked child moves to a file of its own before it returns from `fork` (see `file.rs`).
//! - A series whose cells are in this file gets its exemplar slots appended to the file at its
//!   first exemplar, once (`exemplar.rs` claims the series before it asks [`slots_beside`]);
//!   when the file cannot take them they live on the heap, seen in process only and counted as
//!   dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::dir::{self, SHARED_ENV};
use super::file::{
    EXT_EXEMPLARS, EXT_NATIVE_SETTINGS, EXT_NATIVE_SHARED, NATIVE_ONLY_BOUNDS, Writer,
    native_settings_cells,
};
use super::{Stats, compact, scrape};
use crate::cell::Cells;
use crate::error::Error;
use crate::exemplar::{SLOT_WORDS, Slot};
use crate::metric::{FamilyDecl, GaugeMode, NativeConfig};
use crate::model::{MetricFamily, MetricKind};

/// The environment variable Python's `prometheus_client` reads; promtrack reads it too.
pub const ENV: &str = "PROMETHEUS_MULTIPROC_DIR";
/// The lowercase spelling older `prometheus_client` versions read.
pub const ENV_LOWERCASE: &str = "prometheus_multiproc_dir";
/// Set to `1` to wipe files of a previous run at start-up (see the module docs).
pub const WIPE_ENV: &str = "PROMTRACK_MULTIPROC_WIPE";

/// How the mode is switched on: `Options` of the public API, or the environment.
pub(crate) struct Setup {
    /// The directory as requested (before the shared-volume subdirectory).
    pub(crate) path: PathBuf,
    pub(crate) shared_volume: bool,
    /// The `wipe` start-up policy.
    pub(crate) wipe: bool,
}

impl Setup {
    /// Switches the mode on, process-wide; `Ok` if it is already on with this directory. Fails
    /// if the directory is refused, if the mode is on with another directory, or if series
    /// were already created in single-process mode.
    pub(crate) fn switch_on(self) -> Result<(), Error> {
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
        let setup = Setup {
            path: PathBuf::from(path),
            shared_volume: flag(SHARED_ENV),
            wipe: flag(WIPE_ENV),
        };
        if let Err(e) = activate(setup) {
            // No caller to return this to: say it loudly, once, and run in single-process
            // mode rather than crash the service at its first metric.
            eprintln!("promtrack: multiprocess mode NOT enabled: {e}");
        }
    }
    DECIDED.store(true, Ordering::Release);
}

fn activate(setup: Setup) -> Result<(), Error> {
    let dir = dir::prepare(&setup.path, setup.shared_volume)?;
    let stats = Arc::new(Stats::default());
    let run = compact::Run {
        wait: true,
        own: None,
        wipe: setup.wipe,
    };
    compact::compact(&dir, &stats, run).map_err(|e| Error::Io {
        context: format!(
            "applying the start-up policy to multiprocess directory {} (fix or remove archive.db)",
            dir.display()
        ),
        source: e,
    })?;
    let _ = ACTIVE.set(Active {
        requested: setup.path,
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
                    crate::metric::stripes::set_external(stripe_beside);
                    crate::exemplar::set_external(slots_beside);
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
    if let Some(native) = decl.native {
        return native_series_cells(writer, decl, native, key);
    }
    let n = decl.layout().len();
    match writer.alloc_series(decl, key) {
        Ok(ptr) => {
            if decl.kind == MetricKind::Histogram {
                remember_family(decl, ptr);
            }
            // SAFETY: `n` cells in a segment that stays mapped for the process's life.
            Some(unsafe { Cells::external(ptr, n) })
        }
        Err(_) => {
            writer.count_dropped();
            None
        }
    }
}

/// The cells of a new native histogram series: a series record with the classic cells (the
/// single bound [`NATIVE_ONLY_BOUNDS`] for a native-only histogram, so that a reader without
/// native support keeps its count and sum) and, published with it, an [`EXT_NATIVE_SHARED`] record
/// with the native state, sized by the bucket bound (`NativeConfig::cells`). The cells handed
/// to the histogram run from the first classic cell to the last native one, over the series
/// record's key and the extension's header, which nothing writes through them
/// (`metric/histogram.rs`, `native_base`). The family record carries the settings
/// ([`EXT_NATIVE_SETTINGS`]).
fn native_series_cells(
    writer: &Writer,
    decl: &FamilyDecl<'_>,
    native: &NativeConfig,
    key: &[u8],
) -> Option<Cells> {
    let native_only = decl.bounds.is_empty();
    let file_decl = FamilyDecl {
        bounds: if native_only {
            &NATIVE_ONLY_BOUNDS
        } else {
            decl.bounds
        },
        native: None,
        ..*decl
    };
    let settings = native_settings_cells(
        native.schema(),
        native.max_buckets,
        native.zero_threshold,
        native.max_zero_threshold,
        native_only,
    );
    let n = native.cells();
    let allocated = writer.alloc_series_with(
        &file_decl,
        &[(EXT_NATIVE_SETTINGS, &settings)],
        key,
        &[(EXT_NATIVE_SHARED, n)],
    );
    match allocated {
        Ok((ptr, ext)) => {
            let first = ext.first()?;
            let gap = (first.as_ptr() as usize).checked_sub(ptr.as_ptr() as usize)? / 8;
            // SAFETY: `gap + n` cells from the series' first cell lie inside the two records
            // just published together (the series record, then its extension), in a segment
            // that stays mapped for the process's life; the cells between them are the
            // record's immutable tail, never written through these cells.
            Some(unsafe { Cells::external(ptr, gap + n) })
        }
        Err(_) => {
            writer.count_dropped();
            None
        }
    }
}

/// A histogram family of this file, owned: what a stripe's record needs besides the key.
struct OwnedDecl {
    name: String,
    help: String,
    label_names: Box<[Box<str>]>,
    bounds: Box<[f64]>,
}

/// This file's histogram families by the offset of their family record, the number a series
/// record carries: a stripe of a series is appended knowing only the series' cells. One entry
/// per histogram family, never per series.
static HISTOGRAM_FAMILIES: Mutex<Option<HashMap<u32, OwnedDecl>>> = Mutex::new(None);

/// A series record's fields around its cells (the series record of `file.rs`'s layout table:
/// `u32 length`, `u16 tag`, `u16 0`, `u32` family offset, `u32` cell count, the cells, `u32` key
/// length, the key).
struct SeriesRecord<'a> {
    family_off: u32,
    key: &'a [u8],
}

impl SeriesRecord<'_> {
    /// The record whose `cells` cells start at `ptr`, if the bytes around it say so.
    ///
    /// # Safety
    /// `ptr` came from [`Writer::alloc_series`] of this process's writer: it points at the cells
    /// of a complete, published series record in a segment that stays mapped for the process's
    /// life, whose bytes other than the cells never change again (`file.rs`'s invariants).
    unsafe fn around(ptr: std::ptr::NonNull<AtomicU64>, cells: usize) -> Option<Self> {
        let base = ptr.as_ptr().cast::<u8>();
        // SAFETY (every read): within the record, by the caller's guarantee; the header is 8
        // bytes aligned and 16 bytes long before the cells, the key length right after them.
        let read_u32 = |at: isize| unsafe { base.offset(at).cast::<u32>().read() };
        let length = read_u32(-16) as usize;
        let tag = unsafe { base.offset(-12).cast::<u16>().read() };
        let family_off = read_u32(-8);
        let count = read_u32(-4) as usize;
        if tag != super::file::TAG_SERIES || count != cells {
            return None; // not a series record of this shape (a detached child's zeroed memory)
        }
        let key_at = 8 * cells;
        let key_len = read_u32(key_at as isize) as usize;
        if 16 + key_at + 4 + key_len > length {
            return None;
        }
        // SAFETY: `key_len` bytes inside the record, checked against its length just above.
        let key = unsafe { std::slice::from_raw_parts(base.add(key_at + 4), key_len) };
        Some(SeriesRecord { family_off, key })
    }
}

fn remember_family(decl: &FamilyDecl<'_>, ptr: std::ptr::NonNull<AtomicU64>) {
    // SAFETY: `ptr` was just returned by `alloc_series` of this process's writer.
    let Some(record) = (unsafe { SeriesRecord::around(ptr, decl.layout().len()) }) else {
        return;
    };
    let mut families = HISTOGRAM_FAMILIES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    families
        .get_or_insert_with(HashMap::new)
        .entry(record.family_off)
        .or_insert_with(|| OwnedDecl {
            name: decl.name.to_owned(),
            help: decl.help.to_owned(),
            label_names: decl.label_names.into(),
            bounds: decl.bounds.into(),
        });
}

/// A stripe of the histogram series whose cells are `primary` (`metric/stripes.rs`): one more
/// series record of the same family and key in this process's file, which every reader sums
/// with the first like any two records of one key. `None` if this file cannot take it (full,
/// detached after a fork): the series then keeps its one record.
fn stripe_beside(primary: &Cells) -> Option<Cells> {
    let ptr = primary.external_ptr()?;
    let (_, writer) = own_writer()?;
    let n = primary.len();
    // SAFETY: external cells of a histogram come only from `series_cells`, i.e. from
    // `alloc_series` of this process's writer.
    let record = unsafe { SeriesRecord::around(ptr, n) }?;
    let families = HISTOGRAM_FAMILIES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let owned = families.as_ref()?.get(&record.family_off)?;
    let decl = FamilyDecl {
        name: &owned.name,
        help: &owned.help,
        label_names: &owned.label_names,
        kind: MetricKind::Histogram,
        mode: GaugeMode::All,
        bounds: &owned.bounds,
        // A histogram with native buckets is never striped (`metric/histogram.rs`), so a
        // striped histogram in the file is a classic one.
        native: None,
    };
    if decl.layout().len() != n {
        return None;
    }
    let ptr = writer.alloc_series(&decl, record.key).ok()?;
    // SAFETY: `n` cells in a segment that stays mapped for the process's life.
    Some(unsafe { Cells::external(ptr, n) })
}

/// The exemplar slots of the series whose cells are `primary` (`exemplar.rs`): an
/// [`EXT_EXEMPLARS`] record of `slots` slots attached to its series record in this process's
/// file. `None` (the slots then go on the heap, and are counted as dropped) if the cells are not
/// in this file or the file cannot take the record (full, detached after a fork, poisoned).
fn slots_beside(primary: &Cells, slots: usize) -> Option<&'static [Slot]> {
    let ptr = primary.external_ptr()?;
    let (_, writer) = own_writer()?;
    // `attach` checks that `ptr` is in one of this file's segments; cells there come only from
    // `series_cells` (a series' first cell), since the caller passes a series' own cells.
    match writer.attach(ptr, EXT_EXEMPLARS, slots * SLOT_WORDS) {
        // SAFETY: `attach` returned the first of `slots * SLOT_WORDS` zeroed cells of a record
        // in a segment that stays mapped for the process's life; they are only accessed as
        // atomics (this process's slots, `pread` by readers).
        Ok(first) => Some(unsafe { Slot::external(first, slots) }),
        Err(_) => {
            writer.count_dropped();
            None
        }
    }
}

/// What the default registry collects to expose the directory while the mode is on (nothing
/// while it is off, so switching on later still works). Consults the environment now, when
/// the default registry is created (the storage seam, `store.rs`, asks).
pub(crate) fn on_default_registry() -> impl Fn(&mut Vec<MetricFamily>) + Send + Sync + 'static {
    let _ = active();
    |out| {
        if let Some(a) = active() {
            scrape::collect_dir(&a.dir, &a.stats, true, out);
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

/// The path of this process's file, if it has one (tests, through `__private`).
pub(crate) fn own_file() -> Option<PathBuf> {
    own_writer().map(|(_, w)| w.path())
}
