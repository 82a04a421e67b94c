//! The per-process file: its byte layout, and the [`Writer`] that appends records to it and
//! hands out cells inside it.
//!
//! # Byte layout
//!
//! Each process writes one file, `p-<pid>-<id>.db`, and nobody else writes it. The file starts
//! with a header, followed by 8-byte aligned records appended one after the other. Layout
//! version 1 (all integers native-endian; a file from a host of the other endianness reads as
//! an unknown version and is skipped):
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
//! | 1 | family | `u8 kind` (1 counter, 2 gauge, 3 histogram, 4 summary, 5 info), `u8 gauge mode` (index in `GaugeMode::ALL`), `u16 label count`, `u32 bound count`, the bounds as `f64`, then `u32 length + UTF-8` for the name, the help and each label name |
//! | 2 | series | `u32` offset of its family record, `u32 cell count`, the cells (8 bytes each), `u32 key length`, the key (label values, each followed by `0xFF`) |
//! | 3 | absorbed | archive only: `u32 count`, `u32 0`, the absorbed file ids as `u64` |
//!
//! ## Extension records
//!
//! State that some series have and most don't (native histogram buckets, exemplars) lives in
//! *extension records*: tag 0 with a non-zero *sub-tag* in the header's last `u16`. A reader of
//! the first release of this layout skips every tag-0 record by its length without looking at
//! that `u16`, so it reads a file with extension records exactly as it reads one without:
//! every counter, gauge and classic histogram total is kept (`scripts/rolling-deploy.sh`
//! builds that reader from git and checks it). A new tag or a version bump would instead make
//! it reject or skip the whole file. Readers skip extension records whose sub-tag they do not
//! know, so the next extension is skippable too, and skip (and count) one that does not
//! validate, keeping the rest of the file.
//!
//! An extension record *attaches* cells to an earlier record:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | length (a multiple of 8) |
//! | 4 | 2 | tag `0` |
//! | 6 | 2 | sub-tag (below) |
//! | 8 | 4 | distance back to the record it attaches to (its offset = this record's − distance) |
//! | 12 | 4 | reserved (0) |
//! | 16 | 4 | `n`: cell count |
//! | 20 | 4 | reserved (0) |
//! | 24 | 8n | the cells |
//!
//! | sub-tag | attaches to | cells |
//! |---|---|---|
//! | 1 native settings | a histogram family record | `i64` schema (−4..=8), `u64` max buckets, `f64` zero threshold, `f64` max zero threshold, `u64` flags (bit 0: native only, see below) |
//! | 2 native state, twin form | a series of a family with native settings | written by earlier releases, read still: the native state with a window of `max_buckets` cells per sign (`layout.rs`, `native::Form::Twin`), `15 + 2 × max_buckets` cells, then, inside the record's length but not counted in `n`, the reduction's 4 journal cells when the writer had them (`ext_cell_count`) |
//! | 3 exemplars | a counter series (1 slot) or a histogram series (one slot per classic bucket, `+Inf` included) | slots of 6 cells, the in-process slot's layout (`exemplar.rs`, `SLOT_WORDS`): `u64` sequence (odd while written, even when complete), trace id as a big-endian `u128` split into its high and low `u64`, `u64` span id (0: none), `f64` value, `u64` Unix time in ns (0: empty); a trace id of 0 marks labels kept in the writing process, not shown by other processes |
//! | 5 native state | a series of a family with native settings | the native shape's cells (`layout.rs`, `native`): the very cells the process's native histogram observes into (`metric/native.rs`), a header, one window of `max_buckets` cells that both signs share and the reduction's journal, `20 + max_buckets` of them — 8 × (20 + max_buckets) bytes, 1,440 at the default 160 — fixed when the series is created. Never reset in multiprocess mode (past the bound the histogram widens its zero bucket or halves its resolution); readers decode them with `native::decode_bytes` and never merge a copy taken in the middle of a reduction (`read.rs`); the journal (the next schema, zero threshold, offsets and split, and the count in flight) lets a reader of a process killed in the middle of a reduction find every count (`decode_dead`). A new sub-tag rather than a change to sub-tag 2: the previous release skips it and keeps the count and the sum, where it would have read the shared window as two |
//! | 4 native sparse | a series of a family with native settings | archive: `i64` schema, `f64` zero threshold, `u64` zero count, `u64` positive and `u64` negative bucket counts `p`, `q`, then `p + q` pairs of `i64` index, `u64` count (`native_merge.rs`) |
//!
//! The distance is relative, so a family record and its settings, or a series and its native
//! state, are encoded once and appended together (one publication). Exemplar slots are
//! appended lazily, at a series' first exemplar (most series never get one), once per series
//! (`exemplar.rs` claims the series before it asks `mode.rs`; a reader skips and counts a second
//! record). A native
//! histogram's count and sum stay in its series record's classic cells (the `+Inf` bucket and
//! the sum; a native-only histogram is a classic one with no bounds), so a reader that skips
//! the extension keeps them; the native state holds the buckets only. A histogram without a
//! finite bound makes that reader reject the whole file, so a native-only histogram declares
//! the single bound `f64::MAX` (`NATIVE_ONLY_BOUNDS`) and sets the native-only flag; a
//! native-aware reader shows it with `+Inf` only. During a rolling deploy,
//! a process of the older release may be the one that compacts: it folds a dead new process's
//! counts into the archive but not its extensions, so that process's native buckets leave the
//! merged native histogram (its count and sum stay); a native-aware scrape then sees the native
//! buckets drop once — the cost of letting old readers keep every total.
//!
//! The cells of a series record are laid out as `layout.rs` defines for the family's kind, gauge
//! mode and bound count (the table there is part of this format): counter 2, gauge 1 (3 in the
//! `mostrecent` modes: value, time, sequence lock), histogram one per bucket, `+Inf` and the
//! sum, summary 2, info none.
//!
//! Readers (`read.rs`) read every layout version up to their own (a rolling deploy mixes
//! versions, and skipping an older file would make counters drop) and skip, and count, newer
//! ones. A change to this layout that an older reader cannot skip is a new version; new state
//! that it can skip is a new extension sub-tag.
//!
//! Invariants:
//! - A record is written completely, then published by a release store of the header's `used`
//!   field. Bytes below `used` never change again, except the value cells, which are atomics.
//! - The file is mapped in *segments*. A segment, once mapped, is never unmapped or moved while
//!   the process lives, so the raw cell pointers that series handles hold stay valid. A record
//!   never straddles two segments (the tail of a segment that cannot hold the next record is
//!   covered by a padding record).
//! - Space is allocated on disk (`fallocate`) before a segment is mapped, so running out of disk
//!   is an error at growth time — the new series is dropped and counted in the header's
//!   `dropped` cell — never a `SIGBUS` on a later write.
//! - Only this process writes this file: readers open it read-only, and the writer holds an
//!   exclusive advisory lock on it for its lifetime (see `lock.rs`).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::metric::{FamilyDecl, GaugeMode};
use crate::model::MetricKind;
use crate::sync;

/// The file's magic bytes.
pub(crate) const MAGIC: [u8; 8] = *b"promtrk\0";
/// The layout version this build writes. Readers read every version up to this one.
pub(crate) const VERSION: u32 = 1;
/// Length of the file header.
pub(crate) const HEADER_LEN: usize = 64;

// Header field offsets.
pub(crate) const H_VERSION: usize = 8;
pub(crate) const H_HEADER_LEN: usize = 12;
pub(crate) const H_USED: usize = 16;
pub(crate) const H_ID: usize = 24;
pub(crate) const H_PID: usize = 32;
pub(crate) const H_FLAGS: usize = 36;
pub(crate) const H_START_TICKS: usize = 40;
pub(crate) const H_DROPPED: usize = 48;

/// Header flag: this file is the archive of dead processes.
pub(crate) const FLAG_ARCHIVE: u32 = 1;

// Record tags.
pub(crate) const TAG_PADDING: u16 = 0;
pub(crate) const TAG_FAMILY: u16 = 1;
pub(crate) const TAG_SERIES: u16 = 2;
pub(crate) const TAG_ABSORBED: u16 = 3;

// Extension sub-tags (see the module docs).
pub(crate) const EXT_NATIVE_SETTINGS: u16 = 1;
pub(crate) const EXT_NATIVE_TWIN: u16 = 2;
pub(crate) const EXT_EXEMPLARS: u16 = 3;
pub(crate) const EXT_NATIVE_SPARSE: u16 = 4;
pub(crate) const EXT_NATIVE_SHARED: u16 = 5;

/// The form of a native state's cells in an extension record of sub-tag `ext` (`None`: not a
/// native state).
pub(crate) fn native_form(ext: u16) -> Option<crate::layout::native::Form> {
    use crate::layout::native::Form;
    match ext {
        EXT_NATIVE_SHARED => Some(Form::Shared),
        EXT_NATIVE_TWIN => Some(Form::Twin),
        _ => None,
    }
}
/// Where an extension record's cells start.
pub(crate) const EXT_CELLS: usize = 24;
/// Cells of native settings.
pub(crate) const NATIVE_SETTINGS_LEN: usize = 5;
/// Native settings flag: the histogram is native only, its family record's bounds are
/// [`NATIVE_ONLY_BOUNDS`].
pub(crate) const NATIVE_ONLY: u64 = 1;
/// The classic bounds a native-only histogram's family record declares: a reader of the first
/// release rejects a histogram without a finite bound (and with it the whole file), so a
/// native-only histogram is written as a classic one with this single bound, which every finite
/// observation falls under. Its series' classic cells are then: the finite observations, the
/// others (`±Inf`, NaN), the sum. A native-aware reader shows it with `+Inf` only.
pub(crate) const NATIVE_ONLY_BOUNDS: [f64; 1] = [f64::MAX];

/// Upper bound on one record, so that a declaration with an absurd help text cannot make a
/// writer map gigabytes (and a reader need not trust a larger length).
pub(crate) const MAX_RECORD: usize = 1 << 20;
/// Files never grow past this: offsets are stored as `u32`.
pub(crate) const MAX_FILE: u64 = u32::MAX as u64 & !7;

const FIRST_SEGMENT: usize = 64 * 1024;
const MAX_SEGMENT: usize = 8 * 1024 * 1024;

/// The kind byte of a family record.
pub(crate) fn kind_code(kind: MetricKind) -> u8 {
    match kind {
        MetricKind::Counter => 1,
        MetricKind::Gauge => 2,
        MetricKind::Histogram => 3,
        MetricKind::Summary => 4,
        MetricKind::Info => 5,
        _ => 0,
    }
}

/// The kind a family record's kind byte stands for.
pub(crate) fn kind_from_code(code: u8) -> Option<MetricKind> {
    Some(match code {
        1 => MetricKind::Counter,
        2 => MetricKind::Gauge,
        3 => MetricKind::Histogram,
        4 => MetricKind::Summary,
        5 => MetricKind::Info,
        _ => return None,
    })
}

/// The mode byte of a family record (its index in [`GaugeMode::ALL`]).
pub(crate) fn mode_code(mode: GaugeMode) -> u8 {
    GaugeMode::ALL.iter().position(|&m| m == mode).unwrap_or(0) as u8
}

/// Appends `bytes` and zero padding up to a multiple of 8.
fn put_padded(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.resize(out.len().next_multiple_of(8), 0);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_ne_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Starts a record; [`finish_record`] fills in its length.
fn start_record(out: &mut Vec<u8>, tag: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&tag.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    start
}

fn finish_record(out: &mut Vec<u8>, start: usize) {
    out.resize(out.len().next_multiple_of(8), 0);
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Encodes a family record: what `decl` declares.
pub(crate) fn encode_family(out: &mut Vec<u8>, d: &FamilyDecl<'_>) {
    let start = start_record(out, TAG_FAMILY);
    out.push(kind_code(d.kind));
    out.push(mode_code(d.mode));
    out.extend_from_slice(&(d.label_names.len() as u16).to_ne_bytes());
    out.extend_from_slice(&(d.bounds.len() as u32).to_ne_bytes());
    for b in d.bounds {
        out.extend_from_slice(&b.to_bits().to_ne_bytes());
    }
    put_str(out, d.name);
    put_str(out, d.help);
    for n in d.label_names {
        put_str(out, n);
    }
    finish_record(out, start);
}

/// Encodes a series record whose cells hold `cells`, for family record at `family_off`.
/// Returns the offset of the first cell within `out`.
pub(crate) fn encode_series(
    out: &mut Vec<u8>,
    family_off: u32,
    cells: &[u64],
    key: &[u8],
) -> usize {
    let start = start_record(out, TAG_SERIES);
    out.extend_from_slice(&family_off.to_ne_bytes());
    out.extend_from_slice(&(cells.len() as u32).to_ne_bytes());
    let first_cell = out.len();
    for c in cells {
        out.extend_from_slice(&c.to_ne_bytes());
    }
    out.extend_from_slice(&(key.len() as u32).to_ne_bytes());
    put_padded(out, key);
    finish_record(out, start);
    first_cell - start
}

/// Encodes an extension record with sub-tag `ext` attaching `cells` to the record `back`
/// bytes before it. Returns the offset of its first cell within `out`.
pub(crate) fn encode_extension(out: &mut Vec<u8>, ext: u16, back: u32, cells: &[u64]) -> usize {
    let start = out.len();
    out.reserve(EXT_CELLS + 8 * cells.len());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&TAG_PADDING.to_ne_bytes());
    out.extend_from_slice(&ext.to_ne_bytes());
    out.extend_from_slice(&back.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&(cells.len() as u32).to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    let at = out.len();
    out.resize(at + 8 * cells.len(), 0);
    for (to, c) in out[at..].chunks_exact_mut(8).zip(cells) {
        to.copy_from_slice(&c.to_ne_bytes());
    }
    finish_record(out, start);
    EXT_CELLS
}

/// [`encode_extension`] whose last `tail` cells follow the counted ones inside the record: a
/// twin-form native state's journal as earlier releases wrote it (see the module docs and
/// [`ext_cell_count`]), for the tests of the files they left.
#[cfg(test)]
pub(crate) fn encode_extension_with_tail(
    out: &mut Vec<u8>,
    ext: u16,
    back: u32,
    cells: &[u64],
    tail: usize,
) -> usize {
    let start = out.len();
    let at = encode_extension(out, ext, back, cells);
    let counted = cells.len().saturating_sub(tail) as u32;
    out[start + 16..start + 20].copy_from_slice(&counted.to_ne_bytes());
    at
}

/// The cells a reader takes from an extension record of sub-tag `ext`, `n` cells by its
/// header and `rec_len` bytes long: the `n`, and for a twin-form native state the reduction's
/// journal when the record goes on with it (see the module docs).
pub(crate) fn ext_cell_count(ext: u16, n: usize, rec_len: usize) -> usize {
    let journal = crate::layout::native::TWIN_JOURNAL;
    if ext == EXT_NATIVE_TWIN && rec_len >= EXT_CELLS + 8 * (n + journal) {
        n + journal
    } else {
        n
    }
}

/// Native histogram settings as the cells of an [`EXT_NATIVE_SETTINGS`] record.
pub(crate) fn native_settings_cells(
    schema: i8,
    max_buckets: u32,
    zero_threshold: f64,
    max_zero_threshold: f64,
    native_only: bool,
) -> [u64; NATIVE_SETTINGS_LEN] {
    [
        i64::from(schema) as u64,
        u64::from(max_buckets),
        zero_threshold.to_bits(),
        max_zero_threshold.to_bits(),
        if native_only { NATIVE_ONLY } else { 0 },
    ]
}

/// Encodes the archive's list of absorbed file ids.
pub(crate) fn encode_absorbed(out: &mut Vec<u8>, ids: &[u64]) {
    let start = start_record(out, TAG_ABSORBED);
    out.extend_from_slice(&(ids.len() as u32).to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_ne_bytes());
    }
    finish_record(out, start);
}

/// A file header.
pub(crate) fn encode_header(id: u64, pid: u32, flags: u32, start_ticks: u64, used: u64) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[H_VERSION..H_VERSION + 4].copy_from_slice(&VERSION.to_ne_bytes());
    h[H_HEADER_LEN..H_HEADER_LEN + 4].copy_from_slice(&(HEADER_LEN as u32).to_ne_bytes());
    h[H_USED..H_USED + 8].copy_from_slice(&used.to_ne_bytes());
    h[H_ID..H_ID + 8].copy_from_slice(&id.to_ne_bytes());
    h[H_PID..H_PID + 4].copy_from_slice(&pid.to_ne_bytes());
    h[H_FLAGS..H_FLAGS + 4].copy_from_slice(&flags.to_ne_bytes());
    h[H_START_TICKS..H_START_TICKS + 8].copy_from_slice(&start_ticks.to_ne_bytes());
    h
}

/// A random-enough file id: unique per process start (time, pid, address-space layout).
pub(crate) fn new_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    let id = h.finish();
    if id == 0 { 1 } else { id }
}

/// This process's start time, in clock ticks since boot (field 22 of `/proc/self/stat`), or 0.
/// Recorded so that a reader can tell whether `/proc/<pid>` still is the process that wrote a
/// file (pids are reused, and a reader in another pid namespace sees other pids).
pub(crate) fn start_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().nth(19))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One mapped range of the file.
struct Segment {
    ptr: NonNull<u8>,
    file_off: u64,
    len: usize,
}

/// A tiny lock for the writer's cold path. Not a `Mutex`, because the fork handlers must take
/// it in one function and release it in another (see `mode.rs`).
pub(crate) struct SpinLock(AtomicBool);

impl SpinLock {
    pub(crate) const fn new() -> Self {
        Self(AtomicBool::new(false))
    }
    pub(crate) fn lock(&self) {
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }
    pub(crate) fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// State behind the writer's lock.
struct Inner {
    file: File,
    path: PathBuf,
    segments: Vec<Segment>,
    /// Where the next record goes (equals the published `used`).
    end: u64,
    /// Family records already written, by their encoded bytes.
    families: HashMap<Vec<u8>, u32>,
    scratch: Vec<u8>,
}

/// This process's file: appends records, hands out cells.
pub(crate) struct Writer {
    lock: SpinLock,
    inner: std::cell::UnsafeCell<Inner>,
    id: AtomicU64,
    /// Set in a forked child that could not get a file of its own: it must never write to,
    /// grow or fold the file it inherited, which is still its parent's.
    detached: std::sync::atomic::AtomicBool,
    /// Set when a panic interrupted work under the lock: `inner` may be half-updated (a record
    /// reserved but not written), so no new record is appended after that — new series live
    /// in process memory, counted as dropped — rather than risk a file readers must skip.
    poisoned: std::sync::atomic::AtomicBool,
    /// Segment 0's base: the header lives there for good.
    header: NonNull<u8>,
}

// SAFETY: `inner` is only touched with `lock` held; the mapped memory is shared by design and
// only accessed through atomics or before publication.
unsafe impl Send for Writer {}
unsafe impl Sync for Writer {}

impl Writer {
    /// Creates this process's file in `dir` (a directory that passed the checks in `dir.rs`):
    /// under a temporary name, locked, with its header written, then renamed to its final name
    /// so that no reader ever sees it unlocked or headerless.
    pub(crate) fn create(dir: &Path) -> io::Result<Writer> {
        let pid = std::process::id();
        let id = new_id();
        let tmp = dir.join(format!(".new-{pid}-{id:016x}"));
        let path = dir.join(format!("p-{pid}-{id:016x}.db"));
        let file = super::dir::create_private(&tmp)?;
        let result = (|| {
            super::lock::lock_exclusive(&file)?;
            fallocate(&file, 0, FIRST_SEGMENT as u64)?;
            let seg = map_segment(&file, 0, FIRST_SEGMENT)?;
            let header = encode_header(id, pid, 0, start_ticks("self"), HEADER_LEN as u64);
            // SAFETY: the segment is FIRST_SEGMENT bytes, mapped writable, and only ours.
            unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), seg.ptr.as_ptr(), HEADER_LEN) };
            std::fs::rename(&tmp, &path)?;
            Ok(seg)
        })();
        let seg = match result {
            Ok(seg) => seg,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let header = seg.ptr;
        Ok(Writer {
            lock: SpinLock::new(),
            inner: std::cell::UnsafeCell::new(Inner {
                file,
                path,
                segments: vec![seg],
                end: HEADER_LEN as u64,
                families: HashMap::new(),
                scratch: Vec::new(),
            }),
            id: AtomicU64::new(id),
            detached: std::sync::atomic::AtomicBool::new(false),
            poisoned: std::sync::atomic::AtomicBool::new(false),
            header,
        })
    }

    /// Whether this is a forked child's writer cut off from its parent's file (see
    /// [`detach_after_fork`](Self::detach_after_fork)).
    pub(crate) fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Relaxed)
    }

    /// The file's id (recorded in the header and in the file name).
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// The header's cell at byte offset `off`.
    fn header_cell(&self, off: usize) -> &AtomicU64 {
        // SAFETY: the header is in segment 0, never unmapped; `off` is 8-aligned below 64.
        unsafe { &*(self.header.as_ptr().add(off) as *const AtomicU64) }
    }

    /// Counts something this file failed to record (a series dropped for lack of disk).
    pub(crate) fn count_dropped(&self) {
        self.header_cell(H_DROPPED).fetch_add(1, Ordering::Relaxed);
    }

    /// The path of the file.
    pub(crate) fn path(&self) -> PathBuf {
        self.with(|inner| inner.path.clone())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        /// Releases the lock however `f` ends: after a panic, a lock left held would make every
        /// later series creation of this process spin for ever, in a request path.
        struct Release<'a>(&'a Writer);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.poisoned.store(true, Ordering::Relaxed);
                }
                self.0.lock.unlock();
            }
        }
        self.lock.lock();
        let _release = Release(self);
        // SAFETY: the lock gives exclusive access to `inner`.
        f(unsafe { &mut *self.inner.get() })
    }

    /// The writer's lock, for the fork handlers.
    pub(crate) fn raw_lock(&self) -> &SpinLock {
        &self.lock
    }

    /// Appends a series record for `key` in the declared family, with the zeroed cells of its
    /// layout, and returns a pointer to its first cell (valid for the rest of the process's
    /// life).
    pub(crate) fn alloc_series(
        &self,
        decl: &FamilyDecl<'_>,
        key: &[u8],
    ) -> io::Result<NonNull<AtomicU64>> {
        self.alloc_series_with(decl, &[], key, &[])
            .map(|(cells, _)| cells)
    }

    /// [`alloc_series`](Self::alloc_series) with extension records (see the module docs):
    /// `family_ext` attached to the family record (a family declared with other extensions is
    /// another declaration: the last one in a file is the one in use), and `series_ext`, each a
    /// sub-tag and a cell count, attached to the series with zeroed cells. The series and its
    /// extensions are published together. Returns the series' first cell and the first cell of
    /// each of `series_ext`, in order; all valid for the rest of the process's life.
    pub(crate) fn alloc_series_with(
        &self,
        decl: &FamilyDecl<'_>,
        family_ext: &[(u16, &[u64])],
        key: &[u8],
        series_ext: &[(u16, usize)],
    ) -> io::Result<(NonNull<AtomicU64>, Vec<NonNull<AtomicU64>>)> {
        self.writable()?;
        self.with(|inner| {
            self.not_poisoned()?;
            let mut fam = std::mem::take(&mut inner.scratch);
            fam.clear();
            encode_family(&mut fam, decl);
            for (ext, cells) in family_ext {
                let back = fam.len() as u32;
                encode_extension(&mut fam, *ext, back, cells);
            }
            let family_off = match inner.families.get(&fam) {
                Some(&off) => off,
                None => {
                    let (off, _) = append(inner, self.header, &fam)?;
                    inner.families.insert(fam.clone(), off);
                    off
                }
            };
            let mut rec = fam;
            rec.clear();
            let zeroed = vec![0; decl.layout().len()];
            let cells_at = encode_series(&mut rec, family_off, &zeroed, key);
            let mut ext_at = Vec::with_capacity(series_ext.len());
            for &(ext, n) in series_ext {
                let back = rec.len();
                let zeroed = vec![0; n];
                ext_at.push(back + encode_extension(&mut rec, ext, back as u32, &zeroed));
            }
            let result = append(inner, self.header, &rec);
            inner.scratch = rec;
            let (_, ptr) = result?;
            // SAFETY: `ptr` points into a live segment at the record; the cells start
            // `cells_at` (and each extension's `ext_at`) bytes later, 8-aligned (records and
            // segments are 8-aligned), inside the record just written.
            let at = |n: usize| unsafe { NonNull::new_unchecked(ptr.as_ptr().add(n).cast()) };
            Ok((at(cells_at), ext_at.into_iter().map(at).collect()))
        })
    }

    /// Appends an extension record of `n` zeroed cells with sub-tag `ext` to the series whose
    /// first cell is `cells` (a pointer [`alloc_series`](Self::alloc_series) returned), and
    /// returns its first cell: how a series gets its exemplar slots at its first exemplar.
    pub(crate) fn attach(
        &self,
        cells: NonNull<AtomicU64>,
        ext: u16,
        n: usize,
    ) -> io::Result<NonNull<AtomicU64>> {
        self.writable()?;
        self.with(|inner| {
            self.not_poisoned()?;
            let addr = cells.as_ptr() as usize;
            let series_off = inner
                .segments
                .iter()
                .find(|s| {
                    (s.ptr.as_ptr() as usize..s.ptr.as_ptr() as usize + s.len).contains(&addr)
                })
                .map(|s| s.file_off + (addr - s.ptr.as_ptr() as usize) as u64)
                .and_then(|cells_off| cells_off.checked_sub(16))
                .filter(|&off| off >= HEADER_LEN as u64 && off < inner.end)
                .ok_or_else(|| io::Error::other("not a series of this process's file"))?;
            let len = EXT_CELLS + 8 * n;
            let off = reserve(inner, len)?;
            let mut rec = std::mem::take(&mut inner.scratch);
            rec.clear();
            let at = encode_extension(&mut rec, ext, (off - series_off) as u32, &vec![0; n]);
            let result = append(inner, self.header, &rec);
            inner.scratch = rec;
            let (_, ptr) = result?;
            // SAFETY: as in `alloc_series_with`: inside the record just written, 8-aligned.
            Ok(unsafe { NonNull::new_unchecked(ptr.as_ptr().add(at).cast()) })
        })
    }

    fn writable(&self) -> io::Result<()> {
        if self.is_detached() {
            // New series of a detached child live on the heap (lost to the aggregate, and
            // counted by the caller), never in the parent's file.
            return Err(io::Error::other(
                "this forked process has no metrics file of its own",
            ));
        }
        Ok(())
    }

    fn not_poisoned(&self) -> io::Result<()> {
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(io::Error::other(
                "a panic interrupted this process's metrics file writer; new series stay in process memory",
            ));
        }
        Ok(())
    }

    /// Rewrites this file for a forked child: a new file with the same records and zeroed
    /// values, mapped over the very same addresses, so that every handle the child inherited
    /// now writes to the child's file. Called in the child, right after `fork`, with the lock
    /// held by the fork handlers and no other thread running.
    ///
    /// # Safety
    /// The caller holds [`raw_lock`](Self::raw_lock).
    pub(crate) unsafe fn reopen_after_fork(&self, dir: &Path) -> io::Result<()> {
        let pid = std::process::id();
        let id = new_id();
        // SAFETY: the caller holds the lock.
        let inner = unsafe { &mut *self.inner.get() };
        let tmp = dir.join(format!(".new-{pid}-{id:016x}"));
        let path = dir.join(format!("p-{pid}-{id:016x}.db"));
        let file = super::dir::create_private(&tmp)?;
        super::lock::lock_exclusive(&file)?;
        let total: u64 = inner
            .segments
            .last()
            .map_or(0, |s| s.file_off + s.len as u64);
        fallocate(&file, 0, total)?;
        // Copy the records, then zero every value: the parent's counts stay the parent's.
        let mut bytes = vec![0u8; inner.end as usize];
        for seg in &inner.segments {
            let from = seg.file_off as usize;
            let to = (seg.file_off as usize + seg.len).min(bytes.len());
            if from < to {
                // SAFETY: the segment is mapped for `len` bytes.
                let src = unsafe { std::slice::from_raw_parts(seg.ptr.as_ptr(), to - from) };
                bytes[from..to].copy_from_slice(src);
            }
        }
        zero_values(&mut bytes);
        let header = encode_header(id, pid, 0, start_ticks("self"), inner.end);
        bytes[..HEADER_LEN].copy_from_slice(&header);
        write_all_at(&file, &bytes, 0)?;
        for seg in &inner.segments {
            remap_fixed(&file, seg)?;
        }
        std::fs::rename(&tmp, &path)?;
        inner.file = file; // drops the inherited descriptor: the parent's lock stays the parent's
        inner.path = path;
        self.id.store(id, Ordering::Relaxed);
        Ok(())
    }

    /// Replaces every mapping with private anonymous memory: the last resort of a forked child
    /// that could not create its own file. Its updates then stay in its memory (lost to the
    /// aggregate, and counted) instead of landing in its parent's file.
    ///
    /// # Safety
    /// The caller holds [`raw_lock`](Self::raw_lock).
    pub(crate) unsafe fn detach_after_fork(&self) {
        self.detached.store(true, Ordering::Relaxed);
        // SAFETY: the caller holds the lock.
        let inner = unsafe { &mut *self.inner.get() };
        for seg in &inner.segments {
            // SAFETY: replaces our own mapping in place with zeroed private memory of the same
            // size; pointers into it stay valid.
            let p = unsafe {
                libc::mmap(
                    seg.ptr.as_ptr().cast(),
                    seg.len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                // The child would go on adding to its parent's counts: better no child at all.
                std::process::abort();
            }
        }
        // Close the inherited descriptor: while the child held it, the parent's lock would
        // outlive the parent, and its file would look live for ever.
        if let Ok(null) = std::fs::File::open("/dev/null") {
            inner.file = null;
        }
    }
}

/// Zeroes the value cells of every series record in `bytes` (a copy of a file up to `used`).
fn zero_values(bytes: &mut [u8]) {
    let mut off = HEADER_LEN;
    while off + 8 <= bytes.len() {
        let len = u32::from_ne_bytes(bytes[off..off + 4].try_into().expect("4 bytes")) as usize;
        let tag = u16::from_ne_bytes(bytes[off + 4..off + 6].try_into().expect("2 bytes"));
        if len < 8 || off + len > bytes.len() {
            return;
        }
        let ext = u16::from_ne_bytes(bytes[off + 6..off + 8].try_into().expect("2 bytes"));
        // Value cells: a series' own, and its extensions' (not a family's settings).
        // Where the cells and their count are.
        let cells_at = match (tag, ext) {
            (TAG_SERIES, _) => Some((16, 12)),
            (
                TAG_PADDING,
                EXT_NATIVE_SHARED | EXT_NATIVE_TWIN | EXT_EXEMPLARS | EXT_NATIVE_SPARSE,
            ) => Some((EXT_CELLS, 16)),
            _ => None,
        };
        if let Some((at, count)) = cells_at.filter(|&(at, _)| len >= at) {
            let n = u32::from_ne_bytes(
                bytes[off + count..off + count + 4]
                    .try_into()
                    .expect("4 bytes"),
            ) as usize;
            let n = if tag == TAG_PADDING {
                ext_cell_count(ext, n, len)
            } else {
                n
            };
            let end = (off + at + n * 8).min(off + len);
            if (tag, ext) == (TAG_PADDING, EXT_NATIVE_SHARED) {
                // The child's native histograms go on with their layout and no counts: the
                // state keeps its header (zeroes would be no layout at all). The file is this
                // release's, so its states are in this release's form.
                let mut cells: Vec<u64> = bytes[off + at..end]
                    .chunks_exact(8)
                    .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                crate::metric::native::clear_counts(&mut cells);
                for (c, b) in cells.iter().zip(bytes[off + at..end].chunks_exact_mut(8)) {
                    b.copy_from_slice(&c.to_ne_bytes());
                }
            } else {
                bytes[off + at..end].fill(0);
            }
        }
        off += len;
    }
}

/// Appends an encoded record, growing the file first if needed; returns its file offset and
/// address. Publishes it with a release store of `used`.
fn append(inner: &mut Inner, header: NonNull<u8>, rec: &[u8]) -> io::Result<(u32, NonNull<u8>)> {
    if rec.len() > MAX_RECORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a metric declaration is larger than 1 MiB (help text or label values too long)",
        ));
    }
    let off = reserve(inner, rec.len())?;
    let seg = inner.segments.last().expect("segment 0 always exists");
    // SAFETY: `grow` guaranteed [off, off + len) lies within the last segment.
    let dst = unsafe { seg.ptr.as_ptr().add((off - seg.file_off) as usize) };
    inner.end = off + rec.len() as u64;
    // SAFETY: the header's `used` cell, in segment 0. (In a `cfg(promtrack_loom)` build this is
    // loom's, but no `Writer` runs there: only the model of `publish` does.)
    let used = unsafe { &*(header.as_ptr().add(H_USED) as *const sync::AtomicU64) };
    publish(
        // SAFETY: [off, off + len) is inside the last segment, past `used`: no reader reads it
        // and no reference to it exists until `publish` moves `used` over it.
        || unsafe { std::ptr::copy_nonoverlapping(rec.as_ptr(), dst, rec.len()) },
        used,
        inner.end,
    );
    // SAFETY: `dst` is inside a mapping, so not null.
    Ok((off as u32, unsafe { NonNull::new_unchecked(dst) }))
}

/// Makes room for a record of `len` bytes in the last segment (growing the file if needed) and
/// returns the offset it will be appended at.
fn reserve(inner: &mut Inner, len: usize) -> io::Result<u64> {
    let seg = inner.segments.last().expect("segment 0 always exists");
    if inner.end + len as u64 > seg.file_off + seg.len as u64 {
        grow(inner, len)?;
    }
    Ok(inner.end)
}

/// Publishes a record: `write` puts its bytes in the file at and past `used`, then `used` moves
/// to `end` (the record's end) with a release store. A reader that acquire-loads `used` and
/// reads only below it therefore sees every byte of every record it reads, and the padding
/// `grow` wrote before it. The loom model `loom_publish_*` (tests below) runs this very function
/// against a concurrent reader over an in-memory stand-in for the file.
#[inline]
fn publish(write: impl FnOnce(), used: &sync::AtomicU64, end: u64) {
    write();
    used.store(end, sync::Ordering::Release);
}

/// Maps a new segment able to hold a record of `need` bytes, after covering the rest of the
/// current one with a padding record. Disk space is allocated before anything is published.
fn grow(inner: &mut Inner, need: usize) -> io::Result<()> {
    let last = inner.segments.last().expect("segment 0 always exists");
    let seg_end = last.file_off + last.len as u64;
    let len = (last.len * 2)
        .min(MAX_SEGMENT)
        .max(need.next_multiple_of(page_size()));
    if seg_end + len as u64 > MAX_FILE {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            "the multiprocess file reached 4 GiB; reduce the number of series",
        ));
    }
    fallocate(&inner.file, seg_end, len as u64)?;
    let seg = map_segment(&inner.file, seg_end, len)?;
    let gap = (seg_end - inner.end) as usize;
    if gap >= 8 {
        let mut pad = Vec::with_capacity(8);
        pad.extend_from_slice(&(gap as u32).to_ne_bytes());
        pad.extend_from_slice(&TAG_PADDING.to_ne_bytes());
        pad.extend_from_slice(&0u16.to_ne_bytes());
        let off = (inner.end - last.file_off) as usize;
        // SAFETY: [end, seg_end) is inside the last segment.
        unsafe { std::ptr::copy_nonoverlapping(pad.as_ptr(), last.ptr.as_ptr().add(off), 8) };
    }
    // Published together with the next record.
    inner.end = seg_end;
    inner.segments.push(seg);
    Ok(())
}

fn page_size() -> usize {
    // SAFETY: reads a configuration value.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// Allocates `[off, off + len)` on disk, so that writes there cannot fail with `SIGBUS`.
pub(crate) fn fallocate(file: &File, off: u64, len: u64) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: plain system call on a descriptor we own.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, off as i64, len as i64) };
        if r == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // File systems without `fallocate` (some overlay and network ones): fall back.
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
    }
    // SAFETY: plain system call on a descriptor we own; returns the error number.
    let r =
        unsafe { libc::posix_fallocate(file.as_raw_fd(), off as libc::off_t, len as libc::off_t) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

fn map_segment(file: &File, off: u64, len: usize) -> io::Result<Segment> {
    // SAFETY: maps `len` bytes of a file we own that has been allocated that far.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Segment {
        ptr: NonNull::new(p.cast()).expect("mmap never returns null on success"),
        file_off: off,
        len,
    })
}

fn remap_fixed(file: &File, seg: &Segment) -> io::Result<()> {
    // SAFETY: replaces our own mapping at the same address and size with the same range of
    // another file; the pointers into it stay valid.
    let p = unsafe {
        libc::mmap(
            seg.ptr.as_ptr().cast(),
            seg.len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            file.as_raw_fd(),
            seg.file_off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `bytes` at `off`.
pub(crate) fn write_all_at(file: &File, bytes: &[u8], off: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, off)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A native state's journal rides past the cells its record counts: an earlier reader
    /// takes the state alone, this one the state and the journal; other sub-tags and records
    /// without the journal keep their count.
    #[test]
    fn a_native_states_journal_is_its_records_uncounted_tail() {
        let journal = crate::layout::native::TWIN_JOURNAL;
        let mut rec = Vec::new();
        assert_eq!(
            encode_extension_with_tail(&mut rec, EXT_NATIVE_TWIN, 8, &[7; 10], journal),
            EXT_CELLS
        );
        assert_eq!(rec.len(), EXT_CELLS + 8 * 10);
        let counted = u32::from_ne_bytes(rec[16..20].try_into().unwrap()) as usize;
        assert_eq!(counted, 10 - journal);
        assert_eq!(ext_cell_count(EXT_NATIVE_TWIN, counted, rec.len()), 10);
        assert_eq!(ext_cell_count(EXT_EXEMPLARS, counted, rec.len()), counted);
        let mut older = Vec::new();
        encode_extension(&mut older, EXT_NATIVE_TWIN, 8, &[7; 6]);
        assert_eq!(ext_cell_count(EXT_NATIVE_TWIN, 6, older.len()), 6);
    }

    #[test]
    fn records_are_aligned_and_sized() {
        let mut out = Vec::new();
        encode_family(
            &mut out,
            &FamilyDecl {
                name: "x_seconds",
                help: "h",
                kind: MetricKind::Histogram,
                mode: GaugeMode::All,
                label_names: &["a".into()],
                bounds: &[0.1, 1.0],
                native: None,
            },
        );
        assert_eq!(out.len() % 8, 0);
        let at = encode_series(&mut out, 64, &[0; 4], b"v\xff");
        assert_eq!(at, 16);
        assert_eq!(out.len() % 8, 0);
    }

    /// A panic under the writer's lock releases it (no later call spins for ever) and poisons
    /// the writer: new series are refused, with an error the caller counts, instead of being
    /// appended after a record that may be half-written.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "creates a real file: fallocate and mmap are FFI Miri can't run"
    )]
    fn a_panic_under_the_lock_releases_it_and_poisons_the_writer() {
        let dir = std::env::temp_dir().join(format!(
            "promtrack-writer-panic-{}-{:x}",
            std::process::id(),
            new_id()
        ));
        std::fs::create_dir(&dir).unwrap();
        let w = Writer::create(&dir).unwrap();
        let decl = FamilyDecl {
            name: "jobs_total",
            help: "Jobs.",
            kind: MetricKind::Counter,
            mode: GaugeMode::All,
            label_names: &["kind".into()],
            bounds: &[],
            native: None,
        };
        assert!(w.alloc_series(&decl, b"a\xff").is_ok());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            w.with(|_| panic!("a bug under the lock"))
        }));
        assert!(panicked.is_err());
        // Released: this returns (it would spin for ever otherwise), and refuses.
        let err = w.alloc_series(&decl, b"b\xff").unwrap_err();
        assert!(err.to_string().contains("panic"), "{err}");
        assert!(w.path().starts_with(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The append-and-publish protocol under loom: a writer appends records with [`publish`] while
/// a reader acquire-loads `used` and reads every record below it, as `read.rs` does.
///
/// The file is an in-memory stand-in: one `loom::cell::UnsafeCell` per 8-byte word (records
/// are 8-byte aligned and sized), written non-atomically like the mapping, so loom reports any
/// read of a word that is not ordered after its write. What this checks of the real code: that
/// `publish` orders the record's bytes before the `used` a reader can observe.
#[cfg(all(test, promtrack_loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// The stand-in: a zeroed file of `words` words after the header's `used` cell.
    struct Mem {
        used: sync::AtomicU64,
        words: Vec<UnsafeCell<u64>>,
    }

    // SAFETY: words past `used` are written only by the one writer; words below it are only
    // read (the property the model checks).
    unsafe impl Sync for Mem {}

    impl Mem {
        fn new(words: usize) -> Self {
            Self {
                used: sync::AtomicU64::new(0),
                words: (0..words).map(|_| UnsafeCell::new(0)).collect(),
            }
        }

        /// The real writer's step: `rec` copied at `off`, then published.
        fn append(&self, off: u64, rec: &[u8]) -> u64 {
            let end = off + rec.len() as u64;
            publish(
                || {
                    for (i, word) in rec.chunks_exact(8).enumerate() {
                        let w = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
                        // SAFETY: past `used`, only this writer touches it.
                        self.words[off as usize / 8 + i].with_mut(|p| unsafe { *p = w });
                    }
                },
                &self.used,
                end,
            );
            end
        }

        fn word(&self, off: usize) -> u64 {
            // SAFETY: the reader reads only below `used` (loom reports it otherwise).
            self.words[off / 8].with(|p| unsafe { *p })
        }

        /// The reader's walk: every record below an acquire-loaded `used`, as (tag, first
        /// payload word); panics on a record that is cut or malformed.
        fn read(&self) -> Vec<(u16, u64)> {
            let used = self.used.load(sync::Ordering::Acquire) as usize;
            let mut out = Vec::new();
            let mut off = 0;
            while off < used {
                let head = self.word(off).to_ne_bytes();
                let len = u32::from_ne_bytes(head[..4].try_into().unwrap()) as usize;
                let tag = u16::from_ne_bytes(head[4..6].try_into().unwrap());
                assert!(len >= 16 && len % 8 == 0, "record length {len} at {off}");
                assert!(off + len <= used, "record at {off} crosses used {used}");
                out.push((tag, self.word(off + 8)));
                off += len;
            }
            out
        }
    }

    fn family_record() -> Vec<u8> {
        let mut out = Vec::new();
        encode_family(
            &mut out,
            &FamilyDecl {
                name: "x_total",
                help: "",
                kind: MetricKind::Counter,
                mode: GaugeMode::All,
                label_names: &[],
                bounds: &[],
                native: None,
            },
        );
        out
    }

    fn series_record(family_off: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_series(&mut out, family_off, &[0, 0], b"");
        out
    }

    /// Two records appended while a reader scans twice: every scan sees a prefix of the
    /// appended records, whole, and a later scan never sees fewer.
    #[test]
    fn loom_publish_orders_records_before_used() {
        loom::model(|| {
            let (fam, series) = (family_record(), series_record(0));
            let mem = Arc::new(Mem::new((fam.len() + series.len()) / 8));
            let writer = {
                let mem = Arc::clone(&mem);
                let (fam, series) = (fam.clone(), series.clone());
                loom::thread::spawn(move || {
                    let end = mem.append(0, &fam);
                    mem.append(end, &series);
                })
            };
            let first = mem.read();
            let second = mem.read();
            assert!(second.len() >= first.len() && second.starts_with(&first));
            let tags: Vec<u16> = second.iter().map(|r| r.0).collect();
            assert!([&[][..], &[TAG_FAMILY], &[TAG_FAMILY, TAG_SERIES]].contains(&&tags[..]));
            writer.join().unwrap();
            assert_eq!(mem.read().len(), 2);
        });
    }
}
