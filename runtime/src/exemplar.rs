//! Exemplars: one observation tied to the trace it came from (issue 14), kept per counter series
//! and per classic histogram bucket.
//!
//! What is kept, and when it is replaced:
//! - A counter series has one slot, a histogram series one per classic bucket (`+Inf`
//!   included). The slots of a series are allocated on its first exemplar: a series that never
//!   gets one costs a null pointer ([`SeriesExemplars`], 8 bytes).
//! - **The rule.** A slot holds the latest exemplar accepted for it. A series accepts at most one
//!   exemplar per [`MIN_INTERVAL_MS`] (90 ms, client_java's sampling interval), whatever its
//!   bucket, except that an *empty* slot always accepts: the first exemplar of a rare bucket (the
//!   slow requests one wants to see) is never lost to a busy neighbour. The interval is measured
//!   on the monotonic clock in units of 2^20 ns: two acceptances are more than 86 units (90.2 ms)
//!   apart, whatever the readings' rounding. A skipped
//!   exemplar costs one coarse clock read, one load of the series' rate-limit word (the time of
//!   the last acceptance and which slots are filled, [`Gate`]), a subtraction and a bit test; a
//!   busy series pays a steady cost, about eleven writes a second. A caller that has read the
//!   monotonic clock anyway (a `Tick`: the layer's request end, a timed call) passes it
//!   instead, and the skip costs the load and the tests alone.
//! - Label sets follow OpenMetrics: valid label names, each once, names and values together at
//!   most [`MAX_LABEL_CHARS`] (128) UTF-8 characters. A longer or malformed set is refused with an
//!   [`ExemplarError`] and counted in `promtrack_invalid_updates_total`, never truncated (a
//!   truncated trace id points at the wrong trace).
//!
//! The slot, 48 bytes of atomics (`#[repr(C)]`, so a multiprocess file can hold the same
//! layout): a sequence number, the trace id (two words), the span id (0: none), the value (`f64`
//! bits), the Unix time in nanoseconds (0: empty slot). A writer takes the slot by moving the
//! sequence from even to odd (a compare-and-swap: a second writer meanwhile skips, an exemplar
//! is a sample), writes, and publishes the next even number; a reader retries while the number is
//! odd or changed under it, so it never returns a torn exemplar (checked by the `loom_*` model
//! below and by Miri, `scripts/soundness.sh`).
//!
//! Label sets other than `trace_id` (32 lowercase hex digits, not all zero), optionally with
//! `span_id` (16), stay in this process: the slot's trace id is then 0 and the labels sit beside
//! the slots under a mutex that only such writers (at most one per series per 90 ms) and
//! scrapes take. A multiprocess file keeps the 48-byte slots only, so such labels are not seen
//! across processes.
//!
//! Where the slots live: on the heap, or — in multiprocess mode — in this process's file,
//! through a hook the multiprocess store registers ([`set_external`]; the same layering as
//! `metric/stripes.rs`). The store appends the series' slots to its file once, at its first
//! exemplar: the first thread to offer one claims the series' pointer (a compare-and-swap from
//! null to a claim marker), asks the hook, and publishes the block; a thread that finds the claim
//! marker skips its exemplar (never its observation, which was recorded before). If the hook has
//! no room (file full, a forked child without a file), the slots go on the heap: the exemplar is
//! then seen in process only, never lost to a panic.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::cell::Cells;
use crate::sync::{AtomicPtr, AtomicU64, Ordering};

// The seqlock's fences, from loom in a model-checking build as `sync.rs` does for the atomics.
#[cfg(promtrack_loom)]
use loom::sync::atomic::fence;
#[cfg(not(promtrack_loom))]
use std::sync::atomic::fence;

/// OpenMetrics' limit on an exemplar's label set: names and values together, in characters.
pub(crate) const MAX_LABEL_CHARS: usize = 128;

/// The least time between two exemplars accepted by one series (see the module docs).
pub(crate) const MIN_INTERVAL_MS: u64 = 90;

/// A W3C trace context's ids: what an exemplar carries when it comes from a trace.
///
/// ```
/// use promtrack::TraceContext;
///
/// let ctx = TraceContext::new([0x4b; 16], Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]));
/// assert!(ctx.is_some());
/// assert!(TraceContext::new([0; 16], None).is_none()); // an all-zero trace id is invalid
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: Option<[u8; 8]>,
}

impl TraceContext {
    /// The ids, or `None` for an all-zero trace id (invalid in W3C Trace Context). An all-zero
    /// span id counts as none.
    pub fn new(trace_id: [u8; 16], span_id: Option<[u8; 8]>) -> Option<Self> {
        (trace_id != [0; 16]).then_some(Self {
            trace_id,
            span_id: span_id.filter(|s| *s != [0; 8]),
        })
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id, if any.
    pub fn span_id(&self) -> Option<[u8; 8]> {
        self.span_id
    }
}

/// Why an exemplar's labels were refused. The observation itself is always recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExemplarError {
    /// Names and values take more than 128 characters.
    TooLong {
        /// The characters the set took.
        chars: usize,
    },
    /// A name that is not a valid label name.
    InvalidName(String),
    /// A name given twice.
    DuplicateName(String),
}

impl std::fmt::Display for ExemplarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExemplarError::TooLong { chars } => write!(
                f,
                "the exemplar's labels take {chars} characters (names and values together), \
                 OpenMetrics allows at most 128: drop a label or shorten a value (it is never \
                 truncated)"
            ),
            ExemplarError::InvalidName(name) => write!(
                f,
                "`{name}` is not a valid exemplar label name: use ASCII letters, digits and \
                 underscores, not starting with a digit or `__`"
            ),
            ExemplarError::DuplicateName(name) => write!(
                f,
                "the exemplar label `{name}` is given twice: give each name once"
            ),
        }
    }
}

impl std::error::Error for ExemplarError {}

/// An exemplar as the snapshot model and the encoders see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Label names and values, unescaped (`trace_id`, `span_id`, or the user's own).
    pub labels: Vec<(Cow<'static, str>, String)>,
    /// The observed value (a counter's: the increment).
    pub value: f64,
    /// When it was observed, Unix seconds.
    pub timestamp: Option<f64>,
}

/// 48 bytes of atomics; see the module docs for the protocol. `#[repr(C)]` so the same layout
/// can live in a multiprocess file.
#[repr(C)]
pub(crate) struct Slot {
    seq: AtomicU64,
    trace: [AtomicU64; 2],
    span: AtomicU64,
    value: AtomicU64,
    time_ns: AtomicU64,
}

#[cfg(not(promtrack_loom))]
const _: () = assert!(size_of::<Slot>() == 48);

/// One slot's content, as written and read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SlotData {
    /// Big-endian trace id; 0 for a label set kept beside the slots.
    pub(crate) trace: u128,
    /// Big-endian span id; 0 for none.
    pub(crate) span: u64,
    pub(crate) value: f64,
    /// Unix time in nanoseconds; never 0 in a written slot.
    pub(crate) time_ns: u64,
}

/// A slot's size in 8-byte words, in this order: sequence, trace id (high, low), span id, value
/// (`f64` bits), Unix time in nanoseconds. The layout a multiprocess file stores.
pub(crate) const SLOT_WORDS: usize = 6;

#[cfg(not(promtrack_loom))]
const _: () = assert!(size_of::<Slot>() == 8 * SLOT_WORDS && align_of::<Slot>() == 8);

/// Makes the slots of a series that live outside the heap: `slots` slots for the series whose
/// cells are `primary`, or `None` if it cannot (the slots then go on the heap). Registered by
/// the multiprocess store, which owns the mapping.
pub(crate) type ExternalSlots = fn(primary: &Cells, slots: usize) -> Option<&'static [Slot]>;

static EXTERNAL: OnceLock<ExternalSlots> = OnceLock::new();

/// Registers how slots of series whose cells live outside the heap are made (see the module
/// docs). Without it every series' slots are on the heap.
#[allow(dead_code)] // called by the multiprocess store only
pub(crate) fn set_external(make: ExternalSlots) {
    let _ = EXTERNAL.set(make);
}

impl Slot {
    /// `n` slots over `6 n` cells that stay valid for the rest of the process's life (a
    /// multiprocess file's exemplar record).
    ///
    /// # Safety
    /// `first` points at `SLOT_WORDS * n` initialised, 8-byte aligned `AtomicU64`s that are never
    /// unmapped or freed while the process lives, and that are only ever accessed atomically.
    #[allow(dead_code)] // called by the multiprocess store only
    pub(crate) unsafe fn external(
        first: std::ptr::NonNull<std::sync::atomic::AtomicU64>,
        n: usize,
    ) -> &'static [Slot] {
        // SAFETY: `Slot` is `#[repr(C)]` of six `AtomicU64`s (asserted above: same size and
        // alignment as six cells, no padding), so `6 n` cells are `n` slots; validity and
        // lifetime are the caller's guarantee.
        unsafe { std::slice::from_raw_parts(first.as_ptr().cast::<Slot>(), n) }
    }
}

impl SlotData {
    /// A slot copied out of another process's file as words (see [`SLOT_WORDS`]); `None` if it
    /// is empty or was copied mid-write (odd sequence). A copy can still be torn between two
    /// writes: the reader must compare the sequence word of two copies, as it does for cells.
    #[cfg_attr(not(all(feature = "multiprocess", unix)), allow(dead_code))] // the multiprocess store's
    pub(crate) fn from_words(w: &[u64; SLOT_WORDS]) -> Option<SlotData> {
        (w[0] & 1 == 0 && w[5] != 0).then(|| SlotData {
            trace: (u128::from(w[1]) << 64) | u128::from(w[2]),
            span: w[3],
            value: f64::from_bits(w[4]),
            time_ns: w[5],
        })
    }

    /// [`from_words`](Self::from_words) of a run of cells as a reader's copy holds it; `None`
    /// also when the run is not [`SLOT_WORDS`] long.
    #[cfg_attr(not(all(feature = "multiprocess", unix)), allow(dead_code))] // the multiprocess store's
    pub(crate) fn decode(cells: &[u64]) -> Option<SlotData> {
        Self::from_words(cells.try_into().ok()?)
    }

    /// The words of a slot holding `self` with sequence number `seq` (what a file holds).
    #[cfg_attr(not(test), allow(dead_code))] // tests write files by hand
    pub(crate) fn to_words(self, seq: u64) -> [u64; SLOT_WORDS] {
        [
            seq,
            (self.trace >> 64) as u64,
            self.trace as u64,
            self.span,
            self.value.to_bits(),
            self.time_ns,
        ]
    }

    /// The exemplar a slot without in-process labels holds (`trace_id`, `span_id`).
    pub(crate) fn exemplar(&self) -> Exemplar {
        Exemplar {
            labels: trace_labels(self.trace, self.span),
            value: self.value,
            timestamp: Some(self.time_ns as f64 / 1e9),
        }
    }
}

/// How often a scrape retries a slot a writer keeps busy before it leaves the exemplar out.
const READ_TRIES: usize = 64;

impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            trace: [AtomicU64::new(0), AtomicU64::new(0)],
            span: AtomicU64::new(0),
            value: AtomicU64::new(0),
            time_ns: AtomicU64::new(0),
        }
    }

    /// Whether nothing was ever written (a racy hint, good enough for the rate limit).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.time_ns.load(Ordering::Relaxed) == 0
    }

    /// Writes `d`, or returns `false` when another writer holds the slot. `between` runs while
    /// the slot is held (odd sequence): the in-process labels are swapped there.
    pub(crate) fn write(&self, d: &SlotData, between: impl FnOnce()) -> bool {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 == 1
            || self
                .seq
                .compare_exchange(s, s.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        // Orders the odd sequence before the data: a reader that sees any of the data below
        // sees the odd (or a later) sequence on its second load.
        fence(Ordering::Release);
        between();
        self.trace[0].store((d.trace >> 64) as u64, Ordering::Relaxed);
        self.trace[1].store(d.trace as u64, Ordering::Relaxed);
        self.span.store(d.span, Ordering::Relaxed);
        self.value.store(d.value.to_bits(), Ordering::Relaxed);
        self.time_ns.store(d.time_ns, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
        true
    }

    /// The slot's content, never torn; `None` if empty or if a writer kept it busy.
    /// `between` runs after the data is loaded and before the sequence is checked again, with
    /// the data: the in-process labels are cloned there.
    pub(crate) fn read<T>(&self, mut between: impl FnMut(&SlotData) -> T) -> Option<(SlotData, T)> {
        for _ in 0..READ_TRIES {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                backoff();
                continue;
            }
            let d = SlotData {
                trace: (u128::from(self.trace[0].load(Ordering::Relaxed)) << 64)
                    | u128::from(self.trace[1].load(Ordering::Relaxed)),
                span: self.span.load(Ordering::Relaxed),
                value: f64::from_bits(self.value.load(Ordering::Relaxed)),
                time_ns: self.time_ns.load(Ordering::Relaxed),
            };
            let extra = between(&d);
            // Orders the data loads before the second sequence load (pairs with the writer's
            // release fence).
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return (d.time_ns != 0).then_some((d, extra));
            }
        }
        None
    }
}

/// Lets a writer in the middle of a write finish (loom: lets the model schedule it).
#[inline]
fn backoff() {
    #[cfg(promtrack_loom)]
    loom::thread::yield_now();
    #[cfg(not(promtrack_loom))]
    std::hint::spin_loop();
}

/// A label set kept in process beside a slot (see the module docs).
type Custom = Option<Box<[(Box<str>, Box<str>)]>>;

/// Where a series' slots are: its own heap allocation, or this process's multiprocess file.
enum Slots {
    Heap(Box<[Slot]>),
    File(&'static [Slot]),
}

/// A series' exemplar state, allocated on its first exemplar.
pub(crate) struct Block {
    /// The rate limit's whole state, so that a skip is one load of it ([`Gate`]).
    gate: AtomicU64,
    slots: Slots,
    custom: OnceLock<Box<[Mutex<Custom>]>>,
}

/// The rate limit's state, one word: the low 32 bits hold the time of the last accepted
/// exemplar in [`Now`] units, less [`SLACK`]; bit `32 + k` says that every slot `i` with
/// `i % 32 == k` is filled (or being written) — for a series of at most 32 slots, that slot `k`
/// is. A skip — within the interval, its slot filled — is one load of this word, a subtraction
/// and a bit test.
///
/// Why these widths: the time subtracts modulo 2^32 (2^52 ns, 52 days); a series idle for a
/// multiple of that looks, for one interval, as if it had just accepted, which skips one
/// exemplar. Storing the time less `SLACK` makes a reading up to `SLACK` behind the last
/// acceptance (a coarse reading a tick behind a `Tick`) subtract to a small number: within the
/// interval, not 2^32 units later. The filled bits are a hint that is never wrong when set (a
/// slot is never emptied): a clear bit sends the offer to the slow path, which asks the slot.
#[derive(Clone, Copy)]
struct Gate(u64);

/// How far a reading may lag the last acceptance and still count as within the interval, in
/// [`Now`] units (16.8 ms: a coarse clock lags a fine one by one tick, 1–4 ms).
const SLACK: u32 = 16;

/// [`MIN_INTERVAL_MS`] in [`Now`] units, rounded up, plus one for the readings' rounding down:
/// 87, so that two acceptances are always more than 86 units (90.2 ms) apart.
const INTERVAL: u32 = (MIN_INTERVAL_MS * 1_000_000).div_ceil(1 << Now::SHIFT) as u32 + 1;

impl Gate {
    /// The bit of slot `i`'s class (`i % 32`).
    fn filled_bit(i: usize) -> u64 {
        1 << (32 + i % 32)
    }

    /// Whether an exemplar for slot `i` at `now` is skipped: within the interval of the last
    /// acceptance, and its slot's class filled.
    #[inline(always)]
    fn skips(self, now: Now, i: usize) -> bool {
        self.within(now) && ((self.0 >> 32) as u32 >> (i % 32)) & 1 != 0
    }

    #[inline(always)]
    fn within(self, now: Now) -> bool {
        now.0.wrapping_sub(self.0 as u32) < INTERVAL + SLACK
    }

    /// The state after accepting an exemplar for slot `i` at `now`, with `class_full`: whether
    /// every slot of `i`'s class will then be filled.
    fn accepted(self, now: Now, i: usize, class_full: bool) -> Gate {
        let filled = self.0 & !u64::from(u32::MAX);
        let bit = if class_full { Self::filled_bit(i) } else { 0 };
        Gate(filled | bit | u64::from(now.0.wrapping_sub(SLACK)))
    }
}

impl Block {
    fn new(slots: Slots) -> Self {
        Self {
            gate: AtomicU64::new(0),
            slots,
            custom: OnceLock::new(),
        }
    }

    #[inline(always)]
    fn gate(&self) -> Gate {
        Gate(self.gate.load(Ordering::Relaxed))
    }

    #[inline]
    fn slots(&self) -> &[Slot] {
        match &self.slots {
            Slots::Heap(s) => s,
            Slots::File(s) => s,
        }
    }

    /// Whether the slots live in this process's multiprocess file.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn in_file(&self) -> bool {
        matches!(self.slots, Slots::File(_))
    }

    /// Slot `i`'s exemplar, if any.
    pub(crate) fn get(&self, i: usize) -> Option<Exemplar> {
        let slot = self.slots().get(i)?;
        let custom = self.custom.get().and_then(|c| c.get(i));
        let (d, labels) = slot.read(|d| match (d.trace, custom) {
            (0, Some(m)) => m.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            _ => None,
        })?;
        let mut e = d.exemplar();
        if let Some(pairs) = labels.filter(|_| d.trace == 0) {
            e.labels = pairs
                .iter()
                .map(|(n, v)| (Cow::Owned(n.to_string()), v.to_string()))
                .collect();
        }
        Some(e)
    }
}

/// `trace_id` and `span_id` labels, in lowercase hex; none for a zero trace id.
pub(crate) fn trace_labels(trace: u128, span: u64) -> Vec<(Cow<'static, str>, String)> {
    let mut labels = Vec::with_capacity(2);
    if trace != 0 {
        labels.push((Cow::Borrowed("trace_id"), format!("{trace:032x}")));
        if span != 0 {
            labels.push((Cow::Borrowed("span_id"), format!("{span:016x}")));
        }
    }
    labels
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("slots", &self.slots().len())
            .field("in_file", &self.in_file())
            .finish_non_exhaustive()
    }
}

/// What an exemplar carries, before it is stored.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Offer<'a> {
    /// Ids from a trace: stored in the slot itself. Borrowed, so an offer the rate limit skips
    /// copies nothing.
    Trace(&'a TraceContext),
    /// Labels given by hand, already checked by [`check_labels`].
    Labels(&'a [(&'a str, &'a str)]),
}

impl<'a> Offer<'a> {
    /// Checks a hand-written label set against OpenMetrics' rules. Whether it is the
    /// `trace_id` / `span_id` form, stored in the slot itself, is decided only when the
    /// exemplar is accepted ([`trace_form`]): a skipped one costs the check alone.
    pub(crate) fn from_labels(labels: &'a [(&'a str, &'a str)]) -> Result<Self, ExemplarError> {
        check_labels(labels)?;
        Ok(Offer::Labels(labels))
    }
}

/// The trace context a label set spells: `trace_id` (32 lowercase hex digits, not all zero),
/// optionally with `span_id` (16, not all zero), and nothing else.
fn trace_form(labels: &[(&str, &str)]) -> Option<TraceContext> {
    let find = |name| labels.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let trace = parse_hex::<16>(find("trace_id")?)?;
    match find("span_id") {
        None if labels.len() == 1 => TraceContext::new(trace, None),
        Some(span) if labels.len() == 2 => {
            let span = parse_hex::<8>(span).filter(|s| *s != [0; 8])?;
            TraceContext::new(trace, Some(span))
        }
        _ => None,
    }
}

/// Exactly `2 * N` lowercase hex digits.
fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

#[inline]
pub(crate) fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// OpenMetrics' rules for an exemplar's label set.
pub(crate) fn check_labels(labels: &[(&str, &str)]) -> Result<(), ExemplarError> {
    let mut bytes = 0;
    for (i, (name, value)) in labels.iter().enumerate() {
        if !is_valid_label_name(name) {
            return Err(ExemplarError::InvalidName((*name).to_owned()));
        }
        if labels[..i].iter().any(|(n, _)| n == name) {
            return Err(ExemplarError::DuplicateName((*name).to_owned()));
        }
        bytes += name.len() + value.len();
    }
    // A character takes at least one byte: only a set over the limit in bytes has its
    // characters counted (names are ASCII, so their bytes are their characters).
    if bytes > MAX_LABEL_CHARS {
        let chars = labels
            .iter()
            .map(|(n, v)| n.len() + v.chars().count())
            .sum();
        if chars > MAX_LABEL_CHARS {
            return Err(ExemplarError::TooLong { chars });
        }
    }
    Ok(())
}

/// The label-name rule of `labels.rs` (which sits on this module's layer, so it is not
/// imported): `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`. Read as bytes: a non-ASCII
/// character's bytes fail the rule as the character does.
fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !name.starts_with("__")
}

/// A series' exemplars: a pointer, null until the first exemplar, [`CLAIMED`] while the first
/// exemplar's thread makes the block. Owns its [`Block`].
pub(crate) struct SeriesExemplars {
    block: AtomicPtr<Block>,
}

/// The block pointer while one thread makes the block: never a valid `Block` address (a `Block`
/// is 8-byte aligned), so `block` tells it from a published one by a comparison.
const CLAIMED: *mut Block = std::ptr::without_provenance_mut(1);

/// Whether `p` points at a published block (neither null nor [`CLAIMED`]).
#[inline]
fn published(p: *mut Block) -> bool {
    p.addr() > CLAIMED.addr()
}

impl Default for SeriesExemplars {
    fn default() -> Self {
        Self {
            block: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

impl SeriesExemplars {
    /// The slots, if any exemplar was ever offered.
    #[inline]
    pub(crate) fn block(&self) -> Option<&Block> {
        let p = self.block.load(Ordering::Acquire);
        // SAFETY: a published pointer was stored (release) by `block_or_alloc` from a live
        // `Box`, is never replaced, and is freed only in `drop`, which `&self` excludes.
        published(p).then(|| unsafe { &*p })
    }

    /// The block, made by this thread if no other claimed it first; `None` while another
    /// thread makes it (this exemplar is skipped: one sample of many).
    #[cold]
    #[inline(never)]
    fn block_or_alloc(&self, cells: &Cells, slots: usize) -> Option<&Block> {
        if let Err(current) = self.block.compare_exchange(
            std::ptr::null_mut(),
            CLAIMED,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            // SAFETY: published by the claiming thread; see `block`.
            return published(current).then(|| unsafe { &*current });
        }
        // Only the claiming thread gets here, once per series: the file's slots are appended
        // at most once.
        let external = EXTERNAL.get().and_then(|make| make(cells, slots));
        let slots = match external {
            Some(file) if file.len() == slots => Slots::File(file),
            _ => Slots::Heap((0..slots).map(|_| Slot::new()).collect()),
        };
        let new = Box::into_raw(Box::new(Block::new(slots)));
        self.block.store(new, Ordering::Release);
        // SAFETY: just published; see `block`.
        Some(unsafe { &*new })
    }

    /// Offers an exemplar for slot `i` of a series with `slots` slots whose cells are `cells`
    /// (the series' own, not a stripe's: the store attaches the slots to them), under the rate
    /// limit of the module docs, at `now` ([`Now::coarse`], or a [`Tick`](crate::clock::Tick)
    /// the caller took anyway: the same clock, so the two mix). `i` out of range is ignored.
    ///
    /// The skip is all that is inlined: the block pointer and one load of its [`Gate`]. The
    /// rest (the first exemplar's block, the bounds check, the write) is out of line.
    #[inline(always)]
    pub(crate) fn offer(
        &self,
        cells: &Cells,
        slots: usize,
        i: usize,
        value: f64,
        what: Offer<'_>,
        now: Now,
    ) {
        if !self.block().is_some_and(|b| b.gate().skips(now, i)) {
            self.offer_slow(cells, slots, i, value, what, now);
        }
    }

    /// The rest of [`offer`](Self::offer): the block made if need be, the rule checked again,
    /// on the slot itself (another thread may have accepted meanwhile; the gate's filled bits
    /// are a hint), the exemplar stored.
    #[cold]
    #[inline(never)]
    fn offer_slow(
        &self,
        cells: &Cells,
        slots: usize,
        i: usize,
        value: f64,
        what: Offer<'_>,
        now: Now,
    ) {
        let block = match self.block() {
            Some(b) => b,
            None => match self.block_or_alloc(cells, slots) {
                Some(b) => b,
                None => return,
            },
        };
        let Some(slot) = block.slots().get(i) else {
            return;
        };
        let gate = block.gate();
        if gate.within(now) && !slot.is_empty() {
            return;
        }
        block.store(slot, i, gate, now, value, what);
    }
}

impl Block {
    fn store(&self, slot: &Slot, i: usize, gate: Gate, now: Now, value: f64, what: Offer<'_>) {
        // Slot `i`'s class is full once it is written if every other slot of it is filled:
        // always so for a series of at most 32 slots. A class filled by a racing writer
        // meanwhile keeps its bit clear until its next acceptance: a hint, never wrong.
        let class_full = self
            .slots()
            .iter()
            .skip(i % 32)
            .step_by(32)
            .enumerate()
            .all(|(k, s)| i % 32 + 32 * k == i || !s.is_empty());
        // One writer per window: a thread that loses this race skips (an exemplar is a sample).
        if self
            .gate
            .compare_exchange(
                gate.0,
                gate.accepted(now, i, class_full).0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        self.write(slot, i, value, what);
    }

    /// Writes an accepted exemplar into `slot`.
    fn write(&self, slot: &Slot, i: usize, value: f64, what: Offer<'_>) {
        let time_ns = unix_nanos();
        let parsed;
        let what = match what {
            Offer::Labels(labels) => match trace_form(labels) {
                Some(ctx) => {
                    parsed = ctx;
                    Offer::Trace(&parsed)
                }
                None => what,
            },
            trace => trace,
        };
        match what {
            Offer::Trace(ctx) => {
                let d = SlotData {
                    trace: u128::from_be_bytes(ctx.trace_id),
                    span: ctx.span_id.map_or(0, u64::from_be_bytes),
                    value,
                    time_ns,
                };
                slot.write(&d, || {});
            }
            Offer::Labels(labels) => {
                let custom = self
                    .custom
                    .get_or_init(|| (0..self.slots().len()).map(|_| Mutex::new(None)).collect());
                let pairs: Box<[(Box<str>, Box<str>)]> = labels
                    .iter()
                    .map(|(n, v)| ((*n).into(), (*v).into()))
                    .collect();
                let d = SlotData {
                    trace: 0,
                    span: 0,
                    value,
                    time_ns,
                };
                slot.write(&d, || {
                    *custom[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(pairs);
                });
            }
        }
    }
}

impl Drop for SeriesExemplars {
    fn drop(&mut self) {
        let p = self.block.load(Ordering::Acquire);
        if published(p) {
            // SAFETY: published from a `Box` by `block_or_alloc`; `&mut self` means no reader.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Unix time in nanoseconds, never 0 (0 marks an empty slot).
fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        .max(1)
}

/// A reading of the monotonic clock for the rate limit, in units of 2^20 ns (1.05 ms), modulo
/// 2^32: a shift of a [`Tick`](crate::clock::Tick)'s nanoseconds, where milliseconds would take
/// a division.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Now(u32);

impl Now {
    const SHIFT: u32 = 20;

    /// A [`Tick`](crate::clock::Tick) the caller took anyway (the layer's request end, a timed
    /// call): no clock read of its own.
    #[inline(always)]
    pub(crate) fn from_tick(t: crate::clock::Tick) -> Self {
        Self::from_nanos(t.nanos())
    }

    #[inline(always)]
    fn from_nanos(ns: u64) -> Self {
        Self((ns >> Self::SHIFT) as u32)
    }

    /// The clock read now, coarsely: `CLOCK_MONOTONIC_COARSE` on Linux (a vDSO read of the last
    /// tick; the tick, 1–4 ms, is far below [`MIN_INTERVAL_MS`]), elsewhere the clock
    /// [`Tick`](crate::clock::Tick) reads. Either way the clock and origin of `Tick`
    /// (`CLOCK_MONOTONIC` on Linux, whose coarse form this is), so the two mix.
    #[inline]
    pub(crate) fn coarse() -> Self {
        #[cfg(target_os = "linux")]
        {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec; the clock id is valid on Linux ≥ 2.6.32.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
            Self::from_nanos(
                (ts.tv_sec as u64)
                    .wrapping_mul(1_000_000_000)
                    .wrapping_add(ts.tv_nsec as u64),
            )
        }
        #[cfg(not(target_os = "linux"))]
        {
            Self::from_tick(crate::clock::Tick::now())
        }
    }
}

#[cfg(all(test, not(promtrack_loom)))]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// The messages as the thiserror derive wrote them, word for word.
    #[test]
    fn error_messages() {
        let cases = [
            (
                ExemplarError::TooLong { chars: 129 },
                "the exemplar's labels take 129 characters (names and values together), OpenMetrics allows at most 128: drop a label or shorten a value (it is never truncated)",
            ),
            (
                ExemplarError::InvalidName("__x".into()),
                "`__x` is not a valid exemplar label name: use ASCII letters, digits and underscores, not starting with a digit or `__`",
            ),
            (
                ExemplarError::DuplicateName("a".into()),
                "the exemplar label `a` is given twice: give each name once",
            ),
        ];
        for (e, message) in cases {
            assert_eq!(e.to_string(), message);
        }
    }

    #[test]
    fn label_sets_follow_openmetrics() {
        assert!(check_labels(&[]).is_ok());
        assert!(check_labels(&[("trace_id", TRACE)]).is_ok());
        // 128 characters exactly: accepted; 129: refused, with the count.
        let v = "é".repeat(128 - 5);
        assert!(check_labels(&[("shard", &v)]).is_ok());
        let v = "é".repeat(128 - 4);
        assert_eq!(
            check_labels(&[("shard", &v)]),
            Err(ExemplarError::TooLong { chars: 129 })
        );
        assert!(matches!(
            check_labels(&[("1x", "a")]),
            Err(ExemplarError::InvalidName(_))
        ));
        assert!(matches!(
            check_labels(&[("a", "1"), ("a", "2")]),
            Err(ExemplarError::DuplicateName(_))
        ));
        // Over 128 bytes but not over 128 characters: accepted.
        let v = "é".repeat(100);
        assert!(check_labels(&[("shard", &v)]).is_ok());
        for bad in ["é", "aé", "", "__x", "a-b"] {
            assert!(
                matches!(
                    check_labels(&[(bad, "1")]),
                    Err(ExemplarError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        let msg = ExemplarError::TooLong { chars: 129 }.to_string();
        assert!(msg.contains("128") && msg.contains("129"), "{msg}");
    }

    #[test]
    fn trace_shaped_labels_are_stored_in_the_slot() {
        let labels = [("trace_id", TRACE), ("span_id", "00f067aa0ba902b7")];
        let ctx = trace_form(&labels).unwrap();
        assert_eq!(ctx.trace_id()[0], 0x4b);
        assert_eq!(ctx.span_id().unwrap()[7], 0xb7);
        assert!(
            trace_form(&[("trace_id", TRACE)])
                .unwrap()
                .span_id()
                .is_none()
        );
        // Uppercase, zero ids, or extra labels: kept as written.
        for labels in [
            &[("trace_id", "4BF92F3577B34DA6A3CE929D0E0E4736")][..],
            &[("trace_id", "00000000000000000000000000000000")],
            &[("trace_id", TRACE), ("user", "x")],
            &[("trace_id", TRACE), ("span_id", "0000000000000000")],
            &[("span_id", "00f067aa0ba902b7")],
        ] {
            assert!(trace_form(labels).is_none(), "{labels:?}");
        }
        // Stored as ids: read back in canonical order, span id second.
        let e = SeriesExemplars::default();
        let labels = [("span_id", "00f067aa0ba902b7"), ("trace_id", TRACE)];
        e.offer(
            &Cells::heap(2),
            1,
            0,
            1.0,
            Offer::from_labels(&labels).unwrap(),
            Now::coarse(),
        );
        let got = e.block().unwrap().get(0).unwrap();
        assert_eq!(got.labels[0], (Cow::Borrowed("trace_id"), TRACE.to_owned()));
        assert_eq!(got.labels[1].1, "00f067aa0ba902b7");
    }

    #[test]
    fn a_slot_reads_back_what_was_written() {
        let s = Slot::new();
        assert!(s.read(|_| ()).is_none());
        let d = SlotData {
            trace: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span: 7,
            value: 0.042,
            time_ns: 1_733_150_000_123_000_000,
        };
        assert!(s.write(&d, || {}));
        assert_eq!(s.read(|_| ()).unwrap().0, d);
        assert_eq!(s.seq.load(Ordering::Relaxed), 2);
        // The same slot as another process's file holds it, copied as words.
        let words = [
            2,
            (d.trace >> 64) as u64,
            d.trace as u64,
            7,
            0.042f64.to_bits(),
            d.time_ns,
        ];
        assert_eq!(SlotData::from_words(&words), Some(d));
        assert_eq!(d.to_words(2), words);
        assert_eq!(SlotData::decode(&words[..5]), None, "a short run");
        assert_eq!(SlotData::from_words(&[3, 1, 1, 1, 1, 1]), None);
        assert_eq!(SlotData::from_words(&[0; SLOT_WORDS]), None);
    }

    /// A reading `ms` milliseconds after an origin an hour into the clock.
    fn at_ms(ms: u64) -> Now {
        Now::from_nanos((3_600_000 + ms) * 1_000_000)
    }

    #[test]
    fn the_first_exemplar_is_kept_and_the_rate_limit_holds_the_next() {
        let e = SeriesExemplars::default();
        let cells = Cells::heap(5);
        assert!(e.block().is_none());
        let t1 = TraceContext::new([1; 16], None).unwrap();
        let t2 = TraceContext::new([2; 16], Some([3; 8])).unwrap();
        e.offer(&cells, 3, 0, 0.5, Offer::Trace(&t1), at_ms(0));
        let b = e.block().unwrap();
        assert_eq!(b.slots().len(), 3);
        assert!(!b.in_file(), "no store registered: on the heap");
        let got = b.get(0).unwrap();
        assert_eq!(got.labels, trace_labels(u128::from_be_bytes([1; 16]), 0));
        assert_eq!(got.value, 0.5);
        // The same slot within 90 ms: skipped.
        e.offer(&cells, 3, 0, 0.7, Offer::Trace(&t2), at_ms(10));
        assert_eq!(b.get(0).unwrap().value, 0.5);
        // An empty slot accepts at once.
        e.offer(&cells, 3, 2, 9.0, Offer::Trace(&t2), at_ms(11));
        let got = b.get(2).unwrap();
        assert_eq!(got.value, 9.0);
        assert_eq!(got.labels[1].1, "0303030303030303");
        // Out of range: ignored.
        e.offer(&cells, 3, 3, 1.0, Offer::Trace(&t2), at_ms(500));
        assert!(b.get(3).is_none());
    }

    #[test]
    fn the_interval_is_90_ms_and_a_reading_from_behind_is_within_it() {
        let e = SeriesExemplars::default();
        let cells = Cells::heap(2);
        let t = TraceContext::new([1; 16], None).unwrap();
        let at = |ms, value| e.offer(&cells, 2, 0, value, Offer::Trace(&t), at_ms(ms));
        let value = || e.block().unwrap().get(0).unwrap().value;
        at(0, 1.0);
        assert_eq!(value(), 1.0, "an empty slot accepts");
        at(MIN_INTERVAL_MS - 1, 2.0);
        assert_eq!(value(), 1.0, "within the interval: skipped");
        // A reading behind the last accepted one (a coarse clock a tick behind a fine one)
        // is within the interval, not 2^32 units later.
        at(0, 3.0);
        let behind = Now::from_nanos(3_600_000 * 1_000_000 - 4_000_000);
        e.offer(&cells, 2, 0, 3.5, Offer::Trace(&t), behind);
        assert_eq!(value(), 1.0, "a reading from behind: skipped");
        // The other slot is empty: it accepts within the interval, and restarts it.
        e.offer(&cells, 2, 1, 4.0, Offer::Trace(&t), at_ms(1));
        assert_eq!(e.block().unwrap().get(1).unwrap().value, 4.0);
        at(1 + MIN_INTERVAL_MS - 1, 4.5);
        assert_eq!(value(), 1.0, "within the restarted interval: skipped");
        at(1 + MIN_INTERVAL_MS + 3, 5.0);
        assert_eq!(value(), 5.0, "after the interval: accepted");
        // Ticks and the coarse clock are one clock: a tick read now is within a few ms of it.
        let (tick, coarse) = (Now::from_tick(crate::clock::Tick::now()), Now::coarse());
        assert!(
            tick.0.abs_diff(coarse.0) < INTERVAL,
            "{tick:?} vs {coarse:?}"
        );
    }

    /// Whatever the readings' rounding to units: never two acceptances within 90 ms, and the
    /// next one taken by 93 ms.
    #[test]
    fn no_two_acceptances_within_90_ms_whatever_the_rounding() {
        let t = TraceContext::new([1; 16], None).unwrap();
        let cells = Cells::heap(1);
        for offset in (0..1u64 << Now::SHIFT).step_by(4_099) {
            let e = SeriesExemplars::default();
            let start = 3_600_000_000_000 + offset;
            let offer = |after_ns, value| {
                let now = Now::from_nanos(start + after_ns);
                e.offer(&cells, 1, 0, value, Offer::Trace(&t), now);
                e.block().unwrap().get(0).unwrap().value
            };
            assert_eq!(offer(0, 1.0), 1.0);
            assert_eq!(
                offer(MIN_INTERVAL_MS * 1_000_000 - 1, 2.0),
                1.0,
                "offset {offset}"
            );
            assert_eq!(offer(93_000_000, 3.0), 3.0, "offset {offset}");
        }
    }

    #[test]
    fn the_clock_wraps_without_a_stuck_series() {
        let e = SeriesExemplars::default();
        let cells = Cells::heap(1);
        let t = TraceContext::new([1; 16], None).unwrap();
        let value = || e.block().unwrap().get(0).unwrap().value;
        e.offer(&cells, 1, 0, 1.0, Offer::Trace(&t), Now(u32::MAX - 10));
        e.offer(&cells, 1, 0, 2.0, Offer::Trace(&t), Now(20));
        assert_eq!(value(), 1.0, "31 units later, across the wrap: within");
        e.offer(&cells, 1, 0, 3.0, Offer::Trace(&t), Now(INTERVAL));
        assert_eq!(value(), 3.0, "an interval later, across the wrap: accepted");
    }

    #[test]
    fn slots_32_apart_share_a_filled_bit_and_each_keeps_the_rule() {
        let slots = 40;
        let e = SeriesExemplars::default();
        let cells = Cells::heap(slots + 1);
        let t = TraceContext::new([1; 16], None).unwrap();
        let offer = |i, value, ms| e.offer(&cells, slots, i, value, Offer::Trace(&t), at_ms(ms));
        let value = |i| e.block().unwrap().get(i).map(|x| x.value);
        let bit = |i| e.block().unwrap().gate().0 & Gate::filled_bit(i) != 0;
        assert_eq!(Gate::filled_bit(3), Gate::filled_bit(35));
        assert_ne!(Gate::filled_bit(3), Gate::filled_bit(4));
        offer(3, 1.0, 0);
        assert!(!bit(3), "slot 35 of the class is empty");
        offer(3, 2.0, 1);
        assert_eq!(value(3), Some(1.0), "filled, within the interval: skipped");
        offer(35, 3.0, 2);
        assert_eq!(value(35), Some(3.0), "empty: accepted within the interval");
        assert!(bit(3), "both slots of the class filled");
        offer(35, 4.0, 3);
        offer(3, 4.0, 4);
        assert_eq!((value(3), value(35)), (Some(1.0), Some(3.0)), "skipped");
        offer(4, 5.0, 5);
        assert_eq!(value(4), Some(5.0), "another class: its own bit");
        offer(35, 6.0, 5 + MIN_INTERVAL_MS + 3);
        assert_eq!(value(35), Some(6.0), "after the interval: accepted");
    }

    #[test]
    fn slots_over_external_cells_are_the_cells() {
        // Twelve cells that outlive the test, as a multiprocess file's record would: a static
        // (not a leaked box, which Miri reports as a leak).
        static CELLS: [std::sync::atomic::AtomicU64; 2 * SLOT_WORDS] =
            [const { std::sync::atomic::AtomicU64::new(0) }; 2 * SLOT_WORDS];
        let cells = &CELLS;
        // SAFETY: 12 cells in a static (never freed), only accessed atomically; the pointer is
        // taken from the whole array, not its first cell, so it may reach all twelve (Miri).
        let slots = unsafe { Slot::external(std::ptr::NonNull::from(cells).cast(), 2) };
        let block = Block::new(Slots::File(slots));
        assert!(block.in_file());
        let d = SlotData {
            trace: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            span: 9,
            value: 0.25,
            time_ns: 77,
        };
        assert!(block.slots()[1].write(&d, || {}));
        // The words a reader of the file copies, in the documented order.
        let words: [u64; SLOT_WORDS] =
            std::array::from_fn(|k| cells[SLOT_WORDS + k].load(Ordering::Relaxed));
        assert_eq!(words[0], 2);
        assert_eq!(SlotData::from_words(&words), Some(d));
        assert_eq!(block.get(1).unwrap().value, 0.25);
        assert!(block.get(0).is_none());
    }

    #[test]
    fn custom_labels_stay_beside_the_slot() {
        let e = SeriesExemplars::default();
        let labels = [("user", "ann"), ("trace_id", TRACE)];
        e.offer(
            &Cells::heap(2),
            1,
            0,
            2.0,
            Offer::from_labels(&labels).unwrap(),
            Now::coarse(),
        );
        let got = e.block().unwrap().get(0).unwrap();
        assert_eq!(
            got.labels,
            [
                (Cow::Borrowed("user"), "ann".to_string()),
                (Cow::Borrowed("trace_id"), TRACE.to_string())
            ]
        );
        assert!(got.timestamp.unwrap() > 1.7e9);
    }

    #[test]
    fn concurrent_writers_and_a_reader_never_see_a_torn_slot() {
        let s = Slot::new();
        std::thread::scope(|scope| {
            for w in 1..=2u64 {
                let s = &s;
                scope.spawn(move || {
                    for k in 1..=200u64 {
                        let x = w * 1000 + k;
                        let d = SlotData {
                            trace: u128::from(x) << 64 | u128::from(x),
                            span: x,
                            value: x as f64,
                            time_ns: x,
                        };
                        s.write(&d, || {});
                    }
                });
            }
            for _ in 0..200 {
                if let Some((d, ())) = s.read(|_| ()) {
                    let x = d.span;
                    assert_eq!(d.trace, u128::from(x) << 64 | u128::from(x));
                    assert_eq!((d.value, d.time_ns), (x as f64, x));
                }
            }
        });
    }
}

#[cfg(all(test, promtrack_loom))]
mod loom_tests {
    use super::*;

    /// A writer against a reader: the reader sees the empty slot, or all of one write.
    #[test]
    fn loom_exemplar_slot_is_never_torn() {
        loom::model(|| {
            let s = loom::sync::Arc::new(Slot::new());
            let w = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let d = SlotData {
                        trace: 5 << 64 | 5,
                        span: 5,
                        value: 5.0,
                        time_ns: 5,
                    };
                    s.write(&d, || {});
                })
            };
            if let Some((d, ())) = s.read(|_| ()) {
                assert_eq!(
                    (d.trace, d.span, d.value, d.time_ns),
                    (5 << 64 | 5, 5, 5.0, 5)
                );
            }
            w.join().unwrap();
        });
    }

    /// Two writers: one wins, the other skips; the slot holds one whole write.
    #[test]
    fn loom_exemplar_slot_two_writers() {
        loom::model(|| {
            let s = loom::sync::Arc::new(Slot::new());
            let ws: Vec<_> = (1..=2u64)
                .map(|x| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        let d = SlotData {
                            trace: u128::from(x),
                            span: x,
                            value: x as f64,
                            time_ns: x,
                        };
                        s.write(&d, || {});
                    })
                })
                .collect();
            for w in ws {
                w.join().unwrap();
            }
            let (d, ()) = s.read(|_| ()).unwrap();
            assert_eq!(d.trace, u128::from(d.span));
            assert_eq!((d.value, d.time_ns), (d.span as f64, d.span));
        });
    }
}
