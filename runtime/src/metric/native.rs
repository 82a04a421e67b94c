//! Native (exponential, sparse) histogram state in a fixed run of cells: observe, reduce,
//! read.
//!
//! The cells (`layout.rs`, module `native`) hold a header, the zero bucket, one window of
//! `max_buckets` cells that both signs share and a reduction's journal, so a series' size is
//! fixed when it is created and the same state can live in a multiprocess file. Bucket cells
//! are *tagged* with the generation of the layout (schema, zero threshold, window offsets and
//! the split of the window between the signs) they follow.
//!
//! - **Observe** (lock-free): read the generation and the layout, find the cell, then one
//!   compare-and-swap that adds 1 only if the cell still carries the tag the layout was read
//!   under; then the sum (read before that compare-and-swap, added after it). A value
//!   outside the window, a full count, a layout change in progress or a failed tag all take
//!   the slow path.
//! - **Slow path**: the per-series lock (a cell, so the series handle does not grow), then the
//!   value is placed under the current layout; if its bucket is outside its sign's window,
//!   the layout is *rewritten*.
//! - **Rewrite** (under the lock): the generation turns odd; every tagged cell is *frozen*: a
//!   compare-and-swap moves it to another tag with its count kept, which hands the rewriter
//!   exactly the counts observed so far and makes every observer still holding the old tag
//!   fail its compare-and-swap and retry — no count is lost, none lands in a bucket whose
//!   meaning changed. The counts are reduced as client_golang does (reset after `min_reset`
//!   if resets are allowed, else widen the zero bucket up to `max_zero_threshold`, else halve
//!   the resolution, until the keys of both signs span at most `max_buckets` cells; at schema
//!   −4 the zero bucket widens past its maximum, so memory stays bounded); the windows are
//!   placed over the keys, the split between them moved to where the keys need it; the new
//!   layout goes to the journal cells, each new bucket's count is moved
//!   into its cell under the new tag one source cell at a time through the journal's `MOVE`
//!   cell, the header takes the new layout and the generation turns even again. Every store
//!   leaves each count in exactly one place a reader of a dead file looks ([`Tags`]), so a
//!   process killed anywhere in a reduction loses nothing ([`decode_dead`]).
//! - **Read** ([`decode`]): a copy of the cells is consistent when its generation is even and
//!   every tagged cell carries that generation's tag; a copy taken across a rewrite fails that
//!   check and is taken again. [`decode`] is pure, so the multiprocess reader runs it on cells
//!   it copied from another process's file.
//!
//! Invariants: a tagged cell changes tag only under the lock with the generation odd; the
//! count of a histogram is the sum of its buckets (zero bucket included), so a consistent copy
//! never shows a count below its buckets; nothing here panics or allocates on the observe path.
//! A bucket holds at most 2^48 − 1 observations; one more is dropped and counted as an invalid
//! update.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::count_invalid_update;
use crate::cell::{Cells, add_f64, add_f64_from, store_f64};
use crate::exponential::{self, SCHEMA_MIN, clamp_schema, key, upper_bound};
use crate::layout::native::{self as layout, COUNT_MASK, Form, tag};
use crate::model::{NativeBuckets, reduced_key};

/// client_golang's `DefNativeHistogramZeroThreshold`: 2^-128.
pub const DEFAULT_ZERO_THRESHOLD: f64 = f64::from_bits((1023 - 128) << 52);
/// The most window cells (`max_buckets`) a native histogram may ask for.
pub const MAX_BUCKETS_LIMIT: u32 = 4096;

/// A native histogram's settings. Every setting has client_golang's meaning.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`bucket_factor`](Self::bucket_factor) | 1.1 | the largest growth factor from one bucket to the next; the schema is the one whose factor `2^(2^-schema)` is the largest at or below this (1.1 gives schema 3, factor 1.0905) |
/// | [`max_buckets`](Self::max_buckets) | 160 | the window of bucket cells both signs share: the histogram is reduced when the span of its positive keys plus that of its negative keys would pass it (client_golang counts the populated buckets, at most that span); a series takes `8 × (20 + max_buckets)` bytes (1,440 at 160). One sign (durations, sizes) has the whole window; a histogram of both signs shares it, so it is reduced where two windows would have held both spans |
/// | [`zero_threshold`](Self::zero_threshold) | 2^-128 | observations with `|v|` at or below it count in the zero bucket; 0 is allowed (only exact zeros, and the exposition then carries the no-op span Prometheus needs to see the histogram as native) |
/// | [`max_zero_threshold`](Self::max_zero_threshold) | 0 | how far reductions may widen the zero bucket before they halve the resolution; below `zero_threshold` (the default) means never |
/// | [`min_reset`](Self::min_reset) | 0 (never) | after a reduction, how long after the last reset the histogram may instead be reset to its configured resolution (one process only; ignored when classic buckets are kept, and in multiprocess mode) |
/// | [`classic`](Self::classic) | false | keep the family's classic buckets too (one message carries both) |
///
/// ```
/// use std::time::Duration;
/// use promtrack::{Family, Histogram, NativeConfig};
///
/// let latency = Family::<(), Histogram>::new("native_doc_seconds", "Latency.")
///     .native(NativeConfig::default().max_buckets(100).min_reset(Duration::from_secs(3600)));
/// latency.observe(0.25);
/// assert_eq!(latency.count(), 1);
/// ```
///
/// The same settings in the attribute, checked at compile time (`min_reset` is a duration
/// string: `"90s"`, `"30m"`, `"1h30m"`, `"0"`); with `buckets = [..]` too, the classic buckets
/// are kept:
///
/// ```
/// #[promtrack::histogram("native_attr_doc_seconds", "Work time.", native(bucket_factor = 1.1, min_reset = "1h"))]
/// fn work() {}
///
/// #[promtrack::histogram("native_both_doc_seconds", "Both.", buckets = [0.1, 1.0], native)]
/// fn both() {}
///
/// work();
/// both();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NativeConfig {
    pub(crate) bucket_factor: f64,
    pub(crate) max_buckets: u32,
    pub(crate) zero_threshold: f64,
    pub(crate) max_zero_threshold: f64,
    pub(crate) min_reset: Duration,
    pub(crate) classic: bool,
}

impl Default for NativeConfig {
    fn default() -> Self {
        Self {
            bucket_factor: 1.1,
            max_buckets: 160,
            zero_threshold: DEFAULT_ZERO_THRESHOLD,
            max_zero_threshold: 0.0,
            min_reset: Duration::ZERO,
            classic: false,
        }
    }
}

impl NativeConfig {
    /// The bucket growth factor (> 1); see the table above.
    pub fn bucket_factor(mut self, factor: f64) -> Self {
        self.bucket_factor = factor;
        self
    }

    /// Populated buckets before a reduction, 1 ..= 4096.
    pub fn max_buckets(mut self, n: u32) -> Self {
        self.max_buckets = n;
        self
    }

    /// The zero bucket's initial half-width (finite, ≥ 0).
    pub fn zero_threshold(mut self, threshold: f64) -> Self {
        self.zero_threshold = threshold;
        self
    }

    /// The widest zero bucket reductions may make (finite, ≥ 0).
    pub fn max_zero_threshold(mut self, threshold: f64) -> Self {
        self.max_zero_threshold = threshold;
        self
    }

    /// The least time between two resets; zero: never reset.
    pub fn min_reset(mut self, d: Duration) -> Self {
        self.min_reset = d;
        self
    }

    /// Whether the family's classic buckets are kept beside the native ones.
    pub fn classic(mut self, keep: bool) -> Self {
        self.classic = keep;
        self
    }

    /// The schema the bucket factor gives, −4 ..= 8.
    pub fn schema(&self) -> i8 {
        exponential::schema_for_factor(self.bucket_factor)
    }

    /// The native cells of one series (`layout.rs`, `native::len`): 8 bytes each, so a series
    /// takes `8 × (20 + max_buckets)` bytes for its native state, in a multiprocess file as on
    /// the heap.
    pub(crate) fn cells(&self) -> usize {
        layout::len(self.max_buckets as usize)
    }

    /// Whether classic buckets are kept too.
    pub(crate) fn keeps_classic(&self) -> bool {
        self.classic
    }

    /// Checks every setting, as a sentence naming the setting and the fix.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.bucket_factor > 1.0 && self.bucket_factor.is_finite()) {
            return Err(format!(
                "native histogram bucket_factor {} must be finite and above 1 (1.1 is usual)",
                self.bucket_factor
            ));
        }
        if !(1..=MAX_BUCKETS_LIMIT).contains(&self.max_buckets) {
            return Err(format!(
                "native histogram max_buckets {} must be between 1 and {MAX_BUCKETS_LIMIT} (160 is usual)",
                self.max_buckets
            ));
        }
        for (name, t) in [
            ("zero_threshold", self.zero_threshold),
            ("max_zero_threshold", self.max_zero_threshold),
        ] {
            if !(t >= 0.0 && t.is_finite()) {
                return Err(format!(
                    "native histogram {name} {t} must be finite and not negative"
                ));
            }
        }
        Ok(())
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The native cells of one series: `cells` from index `base` on.
#[derive(Clone, Copy)]
pub(crate) struct Native<'a> {
    cells: &'a Cells,
    base: usize,
}

// `place` picks a sign's offset cell by adding the sign bit, and its window's first cell by
// adding the positive window's cells to the sign's.
const _: () = assert!(
    layout::NEGATIVE_OFFSET == layout::POSITIVE_OFFSET + 1
        && layout::first([7, 3], 1) == layout::first([7, 3], 0) + 7
        && layout::split(7, 3) == 7 | 3 << 32
);

/// What one tagged compare-and-swap did.
enum Bump {
    /// Counted; `true` when the cell was empty before.
    Counted(bool),
    /// The cell carries another generation's tag.
    Stale,
    /// The cell's count is full.
    Full,
}

/// Where an observation goes under the current layout.
enum Place {
    Cell(usize),
    /// Outside its sign's window.
    Outside,
}

impl<'a> Native<'a> {
    /// The native cells after `base` cells; `cells` must hold `base + layout::len(max_buckets)`
    /// cells, which [`init`](Self::init) checks.
    #[inline]
    pub(crate) fn new(cells: &'a Cells, base: usize) -> Self {
        Self { cells, base }
    }

    #[inline(always)]
    fn at(&self, i: usize) -> &'a AtomicU64 {
        self.cells.at(self.base + i)
    }

    /// The cells of the positive and the negative window, as the `WINDOW` cell splits them.
    #[inline(always)]
    fn windows(&self) -> [usize; 2] {
        Form::Shared
            .windows(self.at(layout::WINDOW).load(Ordering::Acquire))
            .map(|w| w as usize)
    }

    /// The window's cells, both signs' (`max_buckets`; a rewrite moves the split, never this).
    #[inline(always)]
    fn window(&self) -> usize {
        let [positive, negative] = self.windows();
        positive + negative
    }

    /// Writes the configuration into fresh, zeroed cells. `allow_reset` is false in
    /// multiprocess mode (a reset would make the merged totals drop). Returns false, leaving the
    /// cells alone, when they are too few for `config`.
    pub(crate) fn init(&self, config: &NativeConfig, allow_reset: bool) -> bool {
        let window = config.max_buckets.clamp(1, MAX_BUCKETS_LIMIT) as usize;
        if self.cells.len() < self.base + layout::len(window) {
            return false;
        }
        let schema = i64::from(config.schema()) as u64;
        let zt = config.zero_threshold.to_bits();
        let set = |i, v| self.at(i).store(v, Ordering::Relaxed);
        set(layout::SCHEMA, schema);
        set(layout::INITIAL_SCHEMA, schema);
        set(layout::ZERO_THRESHOLD, zt);
        set(layout::INITIAL_ZERO_THRESHOLD, zt);
        set(
            layout::MAX_ZERO_THRESHOLD,
            config.max_zero_threshold.to_bits(),
        );
        let min_reset = if allow_reset && !config.classic {
            u64::try_from(config.min_reset.as_nanos()).unwrap_or(u64::MAX)
        } else {
            0
        };
        set(layout::MIN_RESET, min_reset);
        set(layout::LAST_RESET, now_nanos());
        // Centred on 1: at schema 3 and 160 cells, 2^-10 ..= 2^10 before any move. The whole
        // window is the positive one's: most histograms never see a negative value, and the
        // first that does moves the split.
        let offset = -((window / 2) as i64);
        set(layout::POSITIVE_OFFSET, offset as u64);
        set(layout::NEGATIVE_OFFSET, offset as u64);
        // Last, released: a multiprocess reader that finds the window set finds the rest of
        // the header too (it takes a state whose window is 0 for one not written yet).
        self.at(layout::WINDOW)
            .store(layout::split(window, 0), Ordering::Release);
        true
    }

    /// Forbids resets from now on (multiprocess mode).
    #[allow(dead_code)] // called by the multiprocess store
    pub(crate) fn forbid_reset(&self) {
        self.at(layout::MIN_RESET).store(0, Ordering::Relaxed);
    }

    /// Records one observation; `v` is not NaN (the histogram drops NaN first).
    #[inline(always)]
    pub(crate) fn observe(&self, v: f64) {
        let generation = self.at(layout::GENERATION).load(Ordering::Acquire);
        if generation & 1 == 0 {
            if let Place::Cell(i) = self.place(v) {
                // The sum is read before the bucket's compare-and-swap: a load issued after a
                // locked instruction waits for it to finish, and the sum's address, unlike the
                // bucket's, is known at once (BENCHMARKS.md, native observe). The bucket is
                // still counted first.
                let sum = self.at(layout::SUM);
                let old_sum = sum.load(Ordering::Relaxed);
                if let Bump::Counted(was_empty) = bump(self.at(i), tag(generation)) {
                    add_f64_from(sum, old_sum, v);
                    if was_empty && i != layout::ZERO_COUNT {
                        self.count_populated();
                    }
                    return;
                }
            }
        }
        self.observe_slow(v);
    }

    /// The cell `v` goes in under the layout as read now.
    #[inline(always)]
    fn place(&self, v: f64) -> Place {
        let zt = f64::from_bits(self.at(layout::ZERO_THRESHOLD).load(Ordering::Acquire));
        let a = v.abs();
        if a <= zt {
            return Place::Cell(layout::ZERO_COUNT);
        }
        // `key` clamps the schema itself (a cell holds a valid one anyway): no second clamp.
        let schema = self.at(layout::SCHEMA).load(Ordering::Acquire) as i8;
        let k = i64::from(key(a, schema));
        // Acquire, like the offsets: a split written by a later rewrite comes after that
        // rewrite froze the cells, so the compare-and-swap then fails (see `bump`).
        let split = self.at(layout::WINDOW).load(Ordering::Acquire);
        // Past the zero bucket the sign bit is the sign (±0 stopped above, NaN never comes):
        // integer steps that pick the sign's offset cell, its half of the split and its first
        // cell, no second float compare.
        let negative = (v.to_bits() >> 63) as usize;
        let offset = self
            .at(layout::POSITIVE_OFFSET + negative)
            .load(Ordering::Acquire) as i64;
        let cells = u64::from((split >> (32 * negative)) as u32);
        let first = layout::HEADER + (split as u32 as usize & negative.wrapping_neg());
        let i = k.wrapping_sub(offset) as u64;
        if i < cells {
            Place::Cell(first + i as usize)
        } else {
            Place::Outside
        }
    }

    #[cold]
    #[inline(never)]
    fn observe_slow(self, v: f64) {
        let _lock = Lock::take(self.at(layout::LOCK));
        // Each round either counts `v` or rewrites the layout so that `v` fits; a rewrite
        // always makes room (at worst by widening the zero bucket over `v`), so two rounds do.
        for _ in 0..4 {
            let generation = self.at(layout::GENERATION).load(Ordering::Acquire);
            match self.place(v) {
                Place::Cell(i) => match bump(self.at(i), tag(generation)) {
                    Bump::Counted(was_empty) => {
                        add_f64(self.at(layout::SUM), v);
                        if was_empty && i != layout::ZERO_COUNT {
                            self.count_populated();
                        }
                        return;
                    }
                    Bump::Full => break,
                    // Only a lock holder changes tags: cannot happen, but retrying is safe.
                    Bump::Stale => {}
                },
                Place::Outside => self.rewrite(Some(v)),
            }
        }
        count_invalid_update();
    }

    /// One more window cell populated. Only a hint, for readers sizing their vectors: every
    /// populated bucket has its own window cell, so the window alone bounds them, and no count
    /// of them decides a reduction.
    #[inline(always)]
    fn count_populated(&self) {
        self.at(layout::POPULATED).fetch_add(1, Ordering::Relaxed);
    }

    /// Reduces the state under the lock (the caller's) until its buckets (and `pending`'s
    /// bucket) fit the window, so that a process killed at any store of it
    /// leaves cells that [`decode_dead`] reads with every count (see [`Tags`] for the phases).
    fn rewrite(&self, pending: Option<f64>) {
        let old_windows = self.windows();
        let generation = self.at(layout::GENERATION).load(Ordering::Relaxed);
        self.at(layout::GENERATION)
            .store(generation.wrapping_add(1), Ordering::Release);
        let tags = Tags::of(generation);
        let set = |i: usize, v: u64| {
            self.at(i).store(v, Ordering::Release);
            self.step();
        };
        // Freeze: each count stays in its cell under the frozen tag, so observers still
        // holding the old tag fail their compare-and-swap from now on, and a dead copy keeps
        // every count.
        let freeze = |i: usize| {
            let cell = self.at(i);
            let mut old = cell.load(Ordering::Relaxed);
            loop {
                let count = if old & !COUNT_MASK == tags.old {
                    old & COUNT_MASK
                } else {
                    0 // not a count of this layout (a torn fork copy): dropped, as decode does
                };
                // SeqCst: pairs with the observers' compare-and-swap (see `bump`).
                match cell.compare_exchange_weak(
                    old,
                    tags.frozen | count,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return count,
                    Err(actual) => old = actual,
                }
            }
        };
        let schema = clamp_schema(self.at(layout::SCHEMA).load(Ordering::Relaxed) as i64);
        let mut b = NativeBuckets {
            schema,
            zero_threshold: f64::from_bits(self.at(layout::ZERO_THRESHOLD).load(Ordering::Relaxed)),
            zero_count: freeze(layout::ZERO_COUNT),
            positive: Vec::new(),
            negative: Vec::new(),
        };
        self.step();
        let offsets = [layout::POSITIVE_OFFSET, layout::NEGATIVE_OFFSET]
            .map(|o| self.at(o).load(Ordering::Relaxed) as i64);
        for (sign, cells) in old_windows.into_iter().enumerate() {
            let first = layout::first(old_windows, sign);
            let out = if sign == 0 {
                &mut b.positive
            } else {
                &mut b.negative
            };
            for i in 0..cells {
                let c = freeze(first + i);
                self.step();
                if c > 0 {
                    out.push(((offsets[sign] + i as i64) as i32, c));
                }
            }
        }
        let old = b.clone();
        let from = Windows {
            offsets,
            cells: old_windows,
        };
        let mut ops = Vec::new();
        let to = self.reduce(&mut b, from, pending, &mut ops);

        // The journal: the layout the counts move to, before the first count moves.
        let journal = layout::journal(old_windows);
        set(journal + layout::NEXT_SCHEMA, i64::from(b.schema) as u64);
        set(
            journal + layout::NEXT_ZERO_THRESHOLD,
            b.zero_threshold.to_bits(),
        );
        set(journal + layout::NEXT_OFFSETS, pack_offsets(to.offsets));
        set(journal + layout::NEXT_WINDOW, to.split());
        for m in moves(&old, from, &ops, to) {
            // One source at a time: marked moving, added to the count held in the journal
            // (which flips the toggle, so a reader knows the mark is in it), then emptied.
            let mut held = 0u64;
            let mut toggle = 0;
            for &(source, count) in &m.sources {
                toggle ^= 1;
                set(source, tags.moving[toggle] | count);
                held = held.saturating_add(count);
                set(journal + layout::MOVE, encode_move(m.target, held, toggle));
                set(source, tags.new);
            }
            set(m.target, tags.new | saturate(held));
            set(journal + layout::MOVE, 0);
        }
        // Frozen cells left are empty ones (or counts a reset dropped).
        for i in std::iter::once(layout::ZERO_COUNT).chain(layout::HEADER..journal) {
            if self.at(i).load(Ordering::Relaxed) & !COUNT_MASK != tags.new {
                set(i, tags.new);
            }
        }
        set(layout::SCHEMA, i64::from(b.schema) as u64);
        set(layout::ZERO_THRESHOLD, b.zero_threshold.to_bits());
        set(layout::POSITIVE_OFFSET, to.offsets[0] as u64);
        set(layout::NEGATIVE_OFFSET, to.offsets[1] as u64);
        set(layout::WINDOW, to.split());
        set(layout::POPULATED, b.bucket_count() as u64);
        self.at(layout::GENERATION)
            .store(tags.next_generation, Ordering::Release);
    }

    /// A store of a reduction done: where the tests stop one (see [`kill_at_reduction_step`]).
    #[inline]
    fn step(&self) {
        #[cfg(test)]
        tests::at_step(self);
        let at = KILL_AT_STEP.load(Ordering::Relaxed);
        if at > 0 && STEPS.fetch_add(1, Ordering::Relaxed) + 1 == at {
            kill_self();
        }
    }

    /// Reduces `b` until its buckets, and `pending`'s, fit the window: the span of its positive
    /// keys plus that of its negative keys at most the window's cells. Then places the windows
    /// and returns them: `from` as it is if it holds every key, else each sign's window over
    /// its keys, the cells left over shared by the signs that have keys. Records each step in
    /// `ops`, so that [`moves`] can tell where every old bucket went.
    fn reduce(
        &self,
        b: &mut NativeBuckets,
        from: Windows,
        pending: Option<f64>,
        ops: &mut Vec<Op>,
    ) -> Windows {
        let window = from.cells[0] + from.cells[1];
        let max_zt = f64::from_bits(self.at(layout::MAX_ZERO_THRESHOLD).load(Ordering::Relaxed));
        // `pending`'s sign and key, unless it falls in the zero bucket.
        let pending_key = |b: &NativeBuckets| {
            pending
                .filter(|v| v.abs() > b.zero_threshold)
                .map(|v| (v > 0.0, key(v.abs(), b.schema)))
        };
        // Every round moves a bucket into the zero bucket, lowers the schema or resets; at most
        // 13 schemas and `window` buckets, so this bound is never reached.
        for _ in 0..2 * window + 64 {
            let pending_key = pending_key(b);
            if spans(b, pending_key).iter().map(|s| s.cells()).sum::<u64>() <= window as u64 {
                break;
            }
            if self.reset_due() {
                let initial = |i| self.at(i).load(Ordering::Relaxed);
                *b = NativeBuckets {
                    schema: clamp_schema(initial(layout::INITIAL_SCHEMA) as i64),
                    zero_threshold: f64::from_bits(initial(layout::INITIAL_ZERO_THRESHOLD)),
                    ..NativeBuckets::default()
                };
                store_f64(self.at(layout::SUM), 0.0);
                self.at(layout::LAST_RESET)
                    .store(now_nanos(), Ordering::Relaxed);
                ops.push(Op::Reset);
                continue;
            }
            // The bucket closest to zero, the pending one included.
            let smallest = b
                .positive
                .first()
                .into_iter()
                .chain(b.negative.first())
                .map(|&(k, _)| k)
                .chain(pending_key.map(|(_, k)| k))
                .min();
            let Some(smallest) = smallest else { break };
            let widened = upper_bound(smallest, b.schema);
            if widened <= max_zt || b.schema <= SCHEMA_MIN {
                // At the lowest schema the zero bucket widens past its maximum: memory stays
                // bounded, and the counts stay exact.
                ops.push(Op::Widen(b.widen_zero_threshold(widened)));
            } else {
                b.reduce_to_schema(b.schema - 1);
                ops.push(Op::Schema(b.schema));
            }
        }
        let spans = spans(b, pending_key(b));
        #[cfg(test)]
        let shift = tests::SHIFT.with(|s| s.get());
        #[cfg(not(test))]
        let shift: Option<i64> = None;
        if shift.is_none() && (0..2).all(|sign| from.holds(sign, spans[sign])) {
            return from;
        }
        let slack = (window as u64).saturating_sub(spans[0].cells() + spans[1].cells());
        // Half the spare cells to each sign that has keys, all of them to the one that alone
        // has; the tests share them by their shift, so that reductions move the split too.
        let positive_share = match (spans[0], spans[1], shift) {
            (_, Span::Empty, _) => slack,
            (Span::Empty, _, _) => 0,
            (_, _, Some(shift)) => shift.rem_euclid(slack as i64 + 1) as u64,
            _ => slack / 2,
        };
        let shares = [positive_share, slack - positive_share];
        let mut to = from;
        for sign in 0..2 {
            to.cells[sign] = (spans[sign].cells() + shares[sign]) as usize;
            if let Span::Keys(lo, _) = spans[sign] {
                // Centred, so that values drifting either way find room; the tests move the
                // windows on every rewrite, so that a count landing under a stale layout would
                // show in the wrong bucket.
                let before = shift.map_or(shares[sign] as i64 / 2, |shift| {
                    shift.rem_euclid(shares[sign] as i64 + 1)
                });
                to.offsets[sign] = i64::from(lo) - before;
            }
        }
        to
    }

    fn reset_due(&self) -> bool {
        let min_reset = self.at(layout::MIN_RESET).load(Ordering::Relaxed);
        min_reset > 0
            && now_nanos().saturating_sub(self.at(layout::LAST_RESET).load(Ordering::Relaxed))
                >= min_reset
    }

    /// A consistent copy of the cells, read without blocking observers: taken again while a
    /// rewrite is in progress, and under the lock after a few failed tries (only a rewrite
    /// holds it, briefly).
    pub(crate) fn snapshot(&self, copy: &mut Vec<u64>) -> Snapshot {
        let len = layout::len(self.window());
        let take = |copy: &mut Vec<u64>| {
            copy.clear();
            copy.extend((0..len).map(|i| self.at(i).load(Ordering::Acquire)));
            decode(copy)
        };
        for _ in 0..8 {
            if let Ok(s) = take(copy) {
                return s;
            }
            std::thread::yield_now();
        }
        let _lock = Lock::take(self.at(layout::LOCK));
        take(copy).unwrap_or_default()
    }
}

/// The keys of one sign's buckets: none, or the lowest and the highest.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Span {
    Empty,
    Keys(i32, i32),
}

impl Span {
    /// The window cells the keys take.
    fn cells(self) -> u64 {
        match self {
            Span::Empty => 0,
            Span::Keys(lo, hi) => (i64::from(hi) - i64::from(lo) + 1) as u64,
        }
    }
}

/// The spans of `b`'s positive and negative keys, with the pending key (`(positive, key)`).
fn spans(b: &NativeBuckets, pending: Option<(bool, i32)>) -> [Span; 2] {
    [(true, &b.positive), (false, &b.negative)].map(|(positive, buckets)| {
        let keys = buckets
            .first()
            .map(|&(k, _)| (k, buckets[buckets.len() - 1].0))
            .into_iter()
            .chain(pending.filter(|&(p, _)| p == positive).map(|(_, k)| (k, k)))
            .reduce(|(lo, hi), (l, h)| (lo.min(l), hi.max(h)));
        keys.map_or(Span::Empty, |(lo, hi)| Span::Keys(lo, hi))
    })
}

/// Where the windows are: each sign's offset (the key of its first cell) and cells.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Windows {
    offsets: [i64; 2],
    cells: [usize; 2],
}

impl Windows {
    /// Whether the sign's window holds every key of `span`.
    fn holds(&self, sign: usize, span: Span) -> bool {
        match span {
            Span::Empty => true,
            Span::Keys(lo, hi) => {
                i64::from(lo) >= self.offsets[sign]
                    && i64::from(hi) < self.offsets[sign] + self.cells[sign] as i64
            }
        }
    }

    /// The cell holding key `key` of a sign, if the sign's window has it.
    fn cell(&self, sign: usize, key: i32) -> Option<usize> {
        usize::try_from(i64::from(key) - self.offsets[sign])
            .ok()
            .filter(|&i| i < self.cells[sign])
            .map(|i| layout::first(self.cells, sign) + i)
    }

    /// The sign and key window cell `i` (of `HEADER..journal`) holds.
    fn key_of(&self, i: usize) -> Result<(usize, i32), DecodeError> {
        let sign = usize::from(i >= layout::first(self.cells, 1));
        let key = self.offsets[sign] + (i - layout::first(self.cells, sign)) as i64;
        Ok((sign, i32::try_from(key).map_err(|_| DecodeError::Invalid)?))
    }

    /// The `WINDOW` cell of this split.
    fn split(&self) -> u64 {
        layout::split(self.cells[0], self.cells[1])
    }
}

/// One step of a reduction, as [`destination`] replays it on a single bucket.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// The zero bucket widened to this threshold: every bucket whose upper bound is at or below
    /// it moved in (`NativeBuckets::widen_zero_threshold` returns the threshold it reached).
    Widen(f64),
    /// The resolution lowered to this schema.
    Schema(i8),
    /// Every count dropped: a reset (one process only).
    Reset,
}

/// Where the old bucket `key` (`None`: the zero bucket) at `schema` went after `ops`: `Some(None)`
/// the zero bucket, `Some(Some(k))` bucket `k`, `None` dropped by a reset. The replay agrees with
/// the reduction of the whole set because a widening to `t` takes exactly the buckets whose
/// upper bound is at most `t`, and lowering the schema maps each key on its own.
fn destination(ops: &[Op], mut schema: i8, mut key: Option<i32>) -> Option<Option<i32>> {
    for &op in ops {
        match (op, key) {
            (Op::Reset, _) => return None,
            (Op::Widen(t), Some(k)) if upper_bound(k, schema) <= t => key = None,
            (Op::Schema(s), Some(k)) => {
                key = Some(reduced_key(k, i64::from(schema) - i64::from(s)));
                schema = s;
            }
            (Op::Schema(s), None) => schema = s,
            (Op::Widen(_), _) => {}
        }
    }
    Some(key)
}

/// The tags of a reduction's phases, which [`decode_dead`] reads a killed reduction by. From
/// the generation `g` (even) it starts at, the generation odd meanwhile:
/// 1. *freeze*: each cell goes from `old` to `frozen` with its count (observers holding `old`
///    fail from then on);
/// 2. *journal*: the next schema, zero threshold and offsets go to the journal cells;
/// 3. *moves*, one new bucket at a time, each in an order that never overwrites a frozen count
///    still to move (see [`moves`]): each source cell is marked `moving[t]` with its count, the
///    journal's `MOVE` cell then takes target, the count held so far and toggle `t` (so a
///    reader knows which mark it includes), and the source is emptied to `new`; then the
///    target takes `new` and the count held, and `MOVE` goes back to 0;
/// 4. the cells left `frozen` (empty) go to `new`, the header takes the journal's layout, and
///    the generation turns `g + 8`, whose tag is `new`.
///
/// At every store a count is in exactly one place a reader looks: a cell under the old layout
/// (`old`, `frozen`, `moving` not yet held), the count held, or a cell under the new layout.
struct Tags {
    old: u64,
    frozen: u64,
    moving: [u64; 2],
    new: u64,
    next_generation: u64,
}

impl Tags {
    fn of(g: u64) -> Self {
        let at = |d: u64| tag(g.wrapping_add(d));
        Tags {
            old: at(0),
            frozen: at(2),
            moving: [at(4), at(6)],
            new: at(8),
            next_generation: g.wrapping_add(8),
        }
    }
}

/// A new bucket's count on its way: the cells it comes from, each with its count.
struct Move {
    target: usize,
    sources: Vec<(usize, u64)>,
}

/// The moves that take `old` (frozen in its cells at `from`) to its reduction by `ops` at
/// `to`, in an order where no move writes a cell whose own frozen count has yet to move: the
/// zero bucket first (its cell is no window's); then the sign whose window does not grow into
/// the other's old cells (the positive one when the split moves down or stays, else the
/// negative one), then the other, whose targets in the first one's old cells the first one
/// emptied. Within a sign, the buckets whose target lies within their sources' span (they
/// write only their own cells); then those moving down, lowest target first; then those moving
/// up, highest first. Why that suffices: keys map monotonically to cells in both layouts, so
/// the frozen count in the target cell `q` of a bucket moving down, if it is the same sign's,
/// goes to a target below `q`, which moved before it (and symmetrically upwards).
fn moves(old: &NativeBuckets, from: Windows, ops: &[Op], to: Windows) -> Vec<Move> {
    // (target, source, count) of every populated old cell.
    let mut flows: Vec<(usize, usize, u64)> = Vec::with_capacity(old.bucket_count() + 1);
    if old.zero_count > 0 && destination(ops, old.schema, None).is_some() {
        flows.push((layout::ZERO_COUNT, layout::ZERO_COUNT, old.zero_count));
    }
    for (sign, buckets) in [&old.positive, &old.negative].into_iter().enumerate() {
        for &(k, c) in buckets {
            let target = match destination(ops, old.schema, Some(k)) {
                None => continue,
                Some(None) => Some(layout::ZERO_COUNT),
                Some(Some(k)) => to.cell(sign, k),
            };
            debug_assert!(target.is_some(), "a reduced bucket outside its window");
            if let (Some(target), Some(source)) = (target, from.cell(sign, k)) {
                flows.push((target, source, c));
            }
        }
    }
    // A rewrite is rare and under the lock: the crate's one cold sort, not two more copies of
    // the standard library's.
    crate::sort::sort_by(&mut flows, Ord::cmp);
    let mut out: Vec<Move> = Vec::new();
    for (target, source, count) in flows {
        match out.last_mut() {
            Some(m) if m.target == target => m.sources.push((source, count)),
            _ => out.push(Move {
                target,
                sources: vec![(source, count)],
            }),
        }
    }
    let negative_first = to.cells[0] > from.cells[0];
    let order = |m: &Move| {
        let lo = m.sources.first().map_or(0, |s| s.0);
        let hi = m.sources.last().map_or(0, |s| s.0);
        let q = m.target as i64;
        if m.target == layout::ZERO_COUNT {
            return (0, 0, 0);
        }
        let negative = m.target >= layout::first(to.cells, 1);
        let sign = 1 + i64::from(negative != negative_first);
        if (lo..=hi).contains(&m.target) {
            (sign, 1, q)
        } else if m.target < lo {
            (sign, 2, q)
        } else {
            (sign, 3, -q)
        }
    };
    crate::sort::sort_by(&mut out, |a, b| order(a).cmp(&order(b)));
    out
}

/// The journal's `MOVE` cell for a count `held` on its way to cell `target`, including the
/// source marked `moving[toggle]`.
fn encode_move(target: usize, held: u64, toggle: usize) -> u64 {
    held.min(COUNT_MASK) | ((target as u64 + 1) << 48) | ((toggle as u64 & 1) << 62)
}

/// `(target, held, toggle)` of a `MOVE` cell; `None` when no move is in flight.
fn decode_move(m: u64) -> Option<(usize, u64, usize)> {
    let target = ((m >> 48) & 0x3fff) as usize;
    (target > 0).then(|| (target - 1, m & COUNT_MASK, (m >> 62) as usize & 1))
}

/// The journal's `NEXT_OFFSETS` cell (keys, hence offsets, are `i32`).
fn pack_offsets(offsets: [i64; 2]) -> u64 {
    u64::from(offsets[0] as i32 as u32) | (u64::from(offsets[1] as i32 as u32) << 32)
}

fn unpack_offsets(cell: u64) -> [i64; 2] {
    [
        i64::from(cell as u32 as i32),
        i64::from((cell >> 32) as u32 as i32),
    ]
}

/// Test support: the store of this process's reductions (counting from 1 after the call) at
/// which it aborts — a worker killed in the middle of a reduction, for the tests of the files
/// such workers leave; 0: never. Reached through `__private`; not a public API.
static KILL_AT_STEP: AtomicU64 = AtomicU64::new(0);
/// Stores of reductions since [`kill_at_reduction_step`], counted while one is armed.
static STEPS: AtomicU64 = AtomicU64::new(0);

/// Arms (`n > 0`) or disarms the failpoint: this process aborts, without unwinding or exit
/// hooks, at the `n`th store of its native histograms' reductions from now.
pub fn kill_at_reduction_step(n: u64) {
    STEPS.store(0, Ordering::Relaxed);
    KILL_AT_STEP.store(n, Ordering::Relaxed);
}

/// The stores of reductions done since the failpoint was armed.
pub fn reduction_steps() -> u64 {
    STEPS.load(Ordering::Relaxed)
}

#[cold]
fn kill_self() {
    std::process::abort();
}

fn saturate(count: u64) -> u64 {
    if count > COUNT_MASK {
        count_invalid_update();
        COUNT_MASK
    } else {
        count
    }
}

/// Adds 1 to a tagged cell if it carries `expected`.
///
/// A compare-and-swap, not a `fetch_add` whose returned tag is checked afterwards (one cell
/// load less): a stale add would sit under the new tag, in a cell that now means another
/// bucket, until its observer undid it, however long that observer is preempted; a scrape
/// after the rewrite would count it there, the next one see the bucket drop (a reset), and a
/// process killed in between would leave it in its file (BENCHMARKS.md, native observe).
#[inline(always)]
fn bump(cell: &AtomicU64, expected: u64) -> Bump {
    let mut old = cell.load(Ordering::Relaxed);
    loop {
        // One comparison for both: with the expected tag the difference is the count, below
        // the mask unless full; with another tag it is at least 2^48 (or wraps around).
        if old.wrapping_sub(expected) >= COUNT_MASK {
            return if old & !COUNT_MASK == expected {
                Bump::Full
            } else {
                Bump::Stale
            };
        }
        // SeqCst: a rewrite freezes the cell with a swap after making the generation odd;
        // either this succeeds before the freeze (and the rewrite takes the count) or it sees
        // the new tag and fails.
        match cell.compare_exchange_weak(old, old + 1, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return Bump::Counted(old & COUNT_MASK == 0),
            Err(actual) => old = actual,
        }
    }
}

/// The per-series lock: a cell holding 0 (free) or 1 (held). Only writers changing the layout
/// take it, rarely and briefly; waiting yields the CPU.
struct Lock<'a>(&'a AtomicU64);

impl<'a> Lock<'a> {
    fn take(cell: &'a AtomicU64) -> Self {
        let mut spins = 0u32;
        while cell
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Lock(cell)
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// A native histogram read from its cells.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// The buckets.
    pub(crate) buckets: NativeBuckets,
    /// Observations: the zero bucket plus every bucket.
    pub(crate) count: u64,
    /// Sum of observations.
    pub(crate) sum: f64,
}

/// Why a copy of native cells could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Taken while the layout was being rewritten: copy again.
    Torn,
    /// Not native histogram cells (wrong length, impossible header): skip them.
    Invalid,
}

/// Turns a copy of one series' native cells (`layout::native::len(max_buckets)` of them, from
/// its native base on) into its buckets, count and sum. Pure and total: the multiprocess reader
/// calls it on cells copied from another process's file, which it does not trust.
pub(crate) fn decode(cells: &[u64]) -> Result<Snapshot, DecodeError> {
    decode_cells(cells, Form::Shared, false)
}

/// [`decode`] (or [`decode_dead`] if `dead`) of cells in `form`.
fn decode_cells(cells: &[u64], form: Form, dead: bool) -> Result<Snapshot, DecodeError> {
    // OR of the differences, no early exit: the compiler turns it into wide compares.
    let all_equal = |from: usize, n: usize, v: u64| {
        cells[from..from + n].iter().fold(0, |a, &c| a | (c ^ v)) == 0
    };
    decode_as(cells.len(), |i| cells[i], all_equal, form, dead)
}

/// [`decode`] (or [`decode_dead`] if `dead`) of cells in `form` stored as native-endian bytes
/// (a copy of a multiprocess file), read in place.
#[cfg_attr(not(all(feature = "multiprocess", unix)), allow(dead_code))] // the multiprocess store's
pub(crate) fn decode_bytes(bytes: &[u8], form: Form, dead: bool) -> Result<Snapshot, DecodeError> {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        u64::from_ne_bytes(w)
    };
    // Two cells at a time, OR-ed without an early exit: folded a cell at a time, the compiler
    // made a compare and a branch of each cell, and this scan is most of a multiprocess
    // scrape's decoding (BENCHMARKS.md, native scrape). `n` is even where it matters (the
    // scan's blocks); an odd last cell is compared alone.
    let all_equal = |from: usize, n: usize, v: u64| {
        let run = &bytes[8 * from..8 * (from + n)];
        let pair = u128::from(v) | (u128::from(v) << 64);
        let mut pairs = run.chunks_exact(16);
        let differ = pairs.by_ref().fold(0, |a, c| {
            a | (u128::from_ne_bytes(c.try_into().unwrap_or_default()) ^ pair)
        });
        let last = pairs.remainder();
        differ == 0 && (last.is_empty() || last == v.to_ne_bytes())
    };
    decode_as(bytes.len() / 8, word, all_equal, form, dead)
}

/// [`decode`] for the cells of a writer that is gone (a multiprocess file whose process died):
/// nothing will finish a rewrite it was killed in, so a copy taken across one is read as it
/// is, every count included (`decode_interrupted`: the cells under the old layout and those
/// under the journal's, merged). Cells without the journal (an earlier release's writer, whose
/// rewrite took the counts out before writing them back) read as the counts under the header
/// as it is, old and next tag alike: the counts that dead rewrite held in hand are lost,
/// nothing is counted twice or in a wrong bucket.
#[cfg_attr(not(test), allow(dead_code))] // the reader calls `decode_bytes(.., true)`
pub(crate) fn decode_dead(cells: &[u64]) -> Result<Snapshot, DecodeError> {
    decode_cells(cells, Form::Shared, true)
}

/// The windows' cells by a `WINDOW` cell, if they are a state's of `form`: `max_buckets`
/// cells in all, 1 ..= [`MAX_BUCKETS_LIMIT`] (per sign in the twin form).
fn windows_of(form: Form, window: u64) -> Option<[usize; 2]> {
    let [positive, negative] = form.windows(window);
    let limit = u64::from(MAX_BUCKETS_LIMIT);
    let ok = match form {
        Form::Shared => (1..=limit).contains(&(positive + negative)),
        Form::Twin => (1..=limit).contains(&positive),
    };
    // Each at most the limit, so the casts are exact.
    ok.then_some([positive as usize, negative as usize])
}

/// Clears the counts and the sum of a copy of native cells and leaves their layout (a
/// multiprocess file copied for a forked child, whose histograms go on from zero with the
/// parent's layout): the generation even, every tagged cell empty under its tag, the lock
/// free (its holder, if any, was a thread of the parent), the journal idle. Cells that are not
/// a native state of this release's form are zeroed.
#[cfg_attr(not(all(feature = "multiprocess", unix)), allow(dead_code))] // the multiprocess store's
pub(crate) fn clear_counts(cells: &mut [u64]) {
    let windows = cells
        .get(layout::WINDOW)
        .and_then(|&w| windows_of(Form::Shared, w));
    let Some(windows) = windows.filter(|&w| cells.len() == layout::len(w[0] + w[1])) else {
        cells.fill(0);
        return;
    };
    let generation = cells[layout::GENERATION].wrapping_add(1) & !1;
    let t = tag(generation);
    cells[layout::GENERATION] = generation;
    cells[layout::LOCK] = 0;
    cells[layout::POPULATED] = 0;
    cells[layout::SUM] = 0.0f64.to_bits();
    cells[layout::ZERO_COUNT] = t;
    let journal = layout::journal(windows);
    cells[layout::HEADER..journal].fill(t);
    // No move in flight (the parent's reduction, if any, is not the child's).
    cells[journal..].fill(0);
}

/// The cells of a native state of `max_buckets` holding `b` and `sum` (each sign's window
/// starts at its lowest bucket, the negative one as wide as its keys, the positive one the
/// rest): what a histogram that observed them writes, for tests that write files by hand.
/// `None` if the keys span more than the window.
#[cfg(test)]
pub(crate) fn state_of(b: &NativeBuckets, sum: f64, max_buckets: usize) -> Option<Vec<u64>> {
    let negative = spans(b, None)[1].cells() as usize;
    let windows = [max_buckets.checked_sub(negative)?, negative];
    let mut cells = state_in(b, sum, windows, layout::len(max_buckets))?;
    cells[layout::WINDOW] = layout::split(windows[0], windows[1]);
    Some(cells)
}

/// The twin form of [`state_of`] (a window of `window` cells per sign), with the journal or
/// without, as earlier releases wrote it: for the tests of files they left.
#[cfg(test)]
pub(crate) fn twin_state_of(
    b: &NativeBuckets,
    sum: f64,
    window: usize,
    journaled: bool,
) -> Option<Vec<u64>> {
    let mut cells = state_in(b, sum, [window; 2], layout::twin_len(window, journaled))?;
    cells[layout::WINDOW] = window as u64;
    Some(cells)
}

/// [`state_of`] in `len` cells with windows of `windows` cells, the `WINDOW` cell left 0.
#[cfg(test)]
fn state_in(b: &NativeBuckets, sum: f64, windows: [usize; 2], len: usize) -> Option<Vec<u64>> {
    let mut cells = vec![0u64; len];
    let schema = i64::from(b.schema) as u64;
    cells[layout::SCHEMA] = schema;
    cells[layout::INITIAL_SCHEMA] = schema;
    cells[layout::ZERO_THRESHOLD] = b.zero_threshold.to_bits();
    cells[layout::INITIAL_ZERO_THRESHOLD] = b.zero_threshold.to_bits();
    cells[layout::SUM] = sum.to_bits();
    cells[layout::ZERO_COUNT] = b.zero_count;
    cells[layout::POPULATED] = b.bucket_count() as u64;
    for (sign, buckets) in [&b.positive, &b.negative].into_iter().enumerate() {
        let lo = buckets.first().map_or(0, |&(k, _)| i64::from(k));
        cells[layout::POSITIVE_OFFSET + sign] = lo as u64;
        for &(k, c) in buckets {
            let i = usize::try_from(i64::from(k) - lo)
                .ok()
                .filter(|&i| i < windows[sign])?;
            cells[layout::first(windows, sign) + i] = c;
        }
    }
    Some(cells)
}

/// `len` cells in `form`, cell `i` read by `cell(i)` (called only below `len`);
/// `all_equal(from, n, v)`: whether cells `from..from + n` (below `len`) all hold `v`.
#[inline]
fn decode_as(
    len: usize,
    cell: impl Fn(usize) -> u64,
    all_equal: impl Fn(usize, usize, u64) -> bool,
    form: Form,
    dead: bool,
) -> Result<Snapshot, DecodeError> {
    if len < layout::HEADER {
        return Err(DecodeError::Invalid);
    }
    let header: [u64; layout::HEADER] = std::array::from_fn(&cell);
    let windows = windows_of(form, header[layout::WINDOW]).ok_or(DecodeError::Invalid)?;
    let journal = layout::journal(windows);
    let journaled = len == journal + form.journal_len();
    // An older writer's twin form may end at the windows.
    let unjournaled = form == Form::Twin && len == journal;
    if !(journaled || unjournaled) {
        return Err(DecodeError::Invalid);
    }
    let generation = header[layout::GENERATION];
    let torn = generation & 1 == 1;
    if torn && !dead {
        return Err(DecodeError::Torn);
    }
    let schema = header[layout::SCHEMA] as i64;
    let zero_threshold = f64::from_bits(header[layout::ZERO_THRESHOLD]);
    if !valid_layout(schema, zero_threshold) {
        return Err(DecodeError::Invalid);
    }
    if torn && journaled {
        return decode_interrupted(&header, form, windows, cell);
    }
    let expected = tag(generation);
    // An older writer's (no journal) dead rewrite: the old tag (`tag` of an odd generation is its even
    // predecessor's) or the next one (see `decode_dead`).
    let next = if torn {
        tag(generation.wrapping_add(1))
    } else {
        expected
    };
    let count_of = |c: u64| {
        let t = c & !COUNT_MASK;
        if t == expected || t == next {
            Ok(c & COUNT_MASK)
        } else if dead {
            Ok(0)
        } else {
            Err(DecodeError::Torn)
        }
    };
    // Sized by the populated count (a hint, bounded by the window): a scrape decodes every
    // process's state, and growing the vector push by push was a fifth of its instructions.
    let populated =
        usize::try_from(header[layout::POPULATED]).map_or(windows[0], |p| p.min(windows[0]));
    let mut buckets = NativeBuckets {
        schema: schema as i8,
        zero_threshold,
        zero_count: count_of(header[layout::ZERO_COUNT])?,
        positive: Vec::with_capacity(populated),
        negative: Vec::new(),
    };
    for (sign, out) in [&mut buckets.positive, &mut buckets.negative]
        .into_iter()
        .enumerate()
    {
        let offset = header[layout::POSITIVE_OFFSET + sign] as i64;
        let (first, window) = (layout::first(windows, sign), windows[sign]);
        if offset < i64::from(i32::MIN) || offset + window as i64 > i64::from(i32::MAX) {
            return Err(DecodeError::Invalid);
        }
        // Most window cells are empty (the expected tag, no count): runs of them are skipped
        // a block at a time, the rest with one comparison each.
        const BLOCK: usize = 8;
        let mut i = 0;
        while i < window {
            if i + BLOCK <= window && all_equal(first + i, BLOCK, expected) {
                i += BLOCK;
                continue;
            }
            let end = (i + BLOCK).min(window);
            for i in i..end {
                let c = cell(first + i);
                if c == expected {
                    continue;
                }
                let c = count_of(c)?;
                if c > 0 {
                    out.push(((offset + i as i64) as i32, c));
                }
            }
            i = end;
        }
    }
    Ok(Snapshot {
        count: buckets.count(),
        sum: f64::from_bits(header[layout::SUM]),
        buckets,
    })
}

/// Whether a schema and a zero threshold read from cells are a layout.
fn valid_layout(schema: i64, zero_threshold: f64) -> bool {
    (exponential::SCHEMA_MIN as i64..=exponential::SCHEMA_MAX as i64).contains(&schema)
        && zero_threshold >= 0.0
}

/// [`decode_dead`] of a state whose writer died in the middle of a reduction (see [`Tags`]):
/// the cells still under the old layout (`old`, `frozen`, and `moving` unless the count held
/// includes them) read under the header, the cells already moved under the journal's layout,
/// and the count held added to its target unless it landed there. The two are merged as
/// processes' histograms are ([`NativeBuckets::merge`]), so every count is in a bucket that
/// holds its observations and the totals are exact.
fn decode_interrupted(
    header: &[u64; layout::HEADER],
    form: Form,
    windows: [usize; 2],
    cell: impl Fn(usize) -> u64,
) -> Result<Snapshot, DecodeError> {
    let tags = Tags::of(header[layout::GENERATION] & !1);
    let journal = layout::journal(windows);
    let in_flight = decode_move(cell(journal + layout::MOVE));
    let layout_of = |schema: i64, zero_threshold: u64| NativeBuckets {
        schema: clamp_schema(schema),
        zero_threshold: f64::from_bits(zero_threshold),
        ..NativeBuckets::default()
    };
    let mut old = layout_of(
        header[layout::SCHEMA] as i64,
        header[layout::ZERO_THRESHOLD],
    );
    let next_schema = cell(journal + layout::NEXT_SCHEMA) as i64;
    let next_zero_threshold = cell(journal + layout::NEXT_ZERO_THRESHOLD);
    let mut new = layout_of(next_schema, next_zero_threshold);
    let from = Windows {
        offsets: [layout::POSITIVE_OFFSET, layout::NEGATIVE_OFFSET].map(|o| header[o] as i64),
        cells: windows,
    };
    // The twin form's split never moves. The shared form's next split is checked where a
    // count needs it: before the journal is written its cell may hold anything.
    let next_windows = match form {
        Form::Twin => Some(windows),
        Form::Shared => windows_of(form, cell(journal + layout::NEXT_WINDOW))
            .filter(|&w| layout::journal(w) == journal),
    };
    let to = next_windows.map(|cells| Windows {
        offsets: unpack_offsets(cell(journal + layout::NEXT_OFFSETS)),
        cells,
    });
    // Which layout each cell's count follows (`None`: no count a reader takes).
    let layout_of_cell = |c: u64| {
        let t = c & !COUNT_MASK;
        if t == tags.old || t == tags.frozen {
            Some(false)
        } else if t == tags.moving[0] || t == tags.moving[1] {
            let toggle = usize::from(t == tags.moving[1]);
            Some(false).filter(|_| in_flight.is_none_or(|(_, _, t)| t != toggle))
        } else if t == tags.new {
            Some(true)
        } else {
            None
        }
    };
    // Where cell `i`'s count goes under one of the layouts: the zero bucket (`None`) or a key.
    let key_of = |i: usize, w: Option<Windows>| -> Result<Option<(usize, i32)>, DecodeError> {
        if i == layout::ZERO_COUNT {
            return Ok(None);
        }
        w.ok_or(DecodeError::Invalid)?.key_of(i).map(Some)
    };
    let add = |b: &mut NativeBuckets, at: Option<(usize, i32)>, count: u64| {
        let Some((sign, key)) = at else {
            b.zero_count = b.zero_count.saturating_add(count);
            return;
        };
        let side = if sign == 0 {
            &mut b.positive
        } else {
            &mut b.negative
        };
        match side.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(j) => side[j].1 = side[j].1.saturating_add(count),
            Err(j) => side.insert(j, (key, count)),
        }
    };
    let mut moved_any = false;
    for i in std::iter::once(layout::ZERO_COUNT).chain(layout::HEADER..journal) {
        let c = cell(i);
        let count = c & COUNT_MASK;
        match layout_of_cell(c) {
            Some(_) if count == 0 => {}
            Some(false) => add(&mut old, key_of(i, Some(from))?, count),
            Some(true) => {
                moved_any = true;
                add(&mut new, key_of(i, to)?, count);
            }
            None => {}
        }
    }
    if let Some((target, held, _)) = in_flight {
        if target != layout::ZERO_COUNT && !(layout::HEADER..journal).contains(&target) {
            return Err(DecodeError::Invalid);
        }
        let landed = cell(target);
        if !(landed & !COUNT_MASK == tags.new && landed & COUNT_MASK > 0) && held > 0 {
            moved_any = true;
            add(&mut new, key_of(target, to)?, held);
        }
    }
    if moved_any {
        if !valid_layout(next_schema, new.zero_threshold) {
            return Err(DecodeError::Invalid);
        }
        old.merge(&new);
    }
    Ok(Snapshot {
        count: old.count(),
        sum: f64::from_bits(header[layout::SUM]),
        buckets: old,
    })
}

#[cfg(test)]
mod tests;
