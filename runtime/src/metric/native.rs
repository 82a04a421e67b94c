//! Native (exponential, sparse) histogram state in a fixed run of cells: observe, reduce,
//! read.
//!
//! The cells (`layout.rs`, module `native`) hold a header, the zero bucket and a window of
//! `max_buckets` cells per sign, so a series' size is fixed when it is created and the same
//! state can live in a multiprocess file. Bucket cells are *tagged* with the generation of the
//! layout (schema, zero threshold, window offsets) they follow.
//!
//! - **Observe** (lock-free): read the generation and the layout, find the cell, then one
//!   compare-and-swap that adds 1 only if the cell still carries the tag the layout was read
//!   under; then the sum (read before that compare-and-swap, added after it). A value
//!   outside the window, a full count, a layout change in progress or a failed tag all take
//!   the slow path.
//! - **Slow path**: the per-series lock (a cell, so the series handle does not grow), then the
//!   value is placed under the current layout; if its bucket is outside the window or the
//!   window holds more than `max_buckets` populated buckets, the layout is *rewritten*.
//! - **Rewrite** (under the lock): the generation turns odd; every tagged cell is swapped to
//!   the next generation's tag with a count of 0, which hands the rewriter exactly the counts
//!   observed so far and makes every observer still holding the old tag fail its
//!   compare-and-swap and retry — no count is lost, none lands in a bucket whose meaning
//!   changed. The counts are reduced as client_golang does (reset after `min_reset` if resets
//!   are allowed, else widen the zero bucket up to `max_zero_threshold`, else halve the
//!   resolution; at schema −4 the zero bucket widens past its maximum, so memory stays
//!   bounded), written back under the new tag, and the generation turns even again.
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
use crate::layout::native::{self as layout, COUNT_MASK, tag};
use crate::model::NativeBuckets;

/// client_golang's `DefNativeHistogramZeroThreshold`: 2^-128.
pub const DEFAULT_ZERO_THRESHOLD: f64 = f64::from_bits((1023 - 128) << 52);
/// The most window cells per sign a native histogram may ask for.
pub const MAX_BUCKETS_LIMIT: u32 = 4096;

/// A native histogram's settings. Every setting has client_golang's meaning.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`bucket_factor`](Self::bucket_factor) | 1.1 | the largest growth factor from one bucket to the next; the schema is the one whose factor `2^(2^-schema)` is the largest at or below this (1.1 gives schema 3, factor 1.0905) |
/// | [`max_buckets`](Self::max_buckets) | 160 | populated buckets (both signs) before the histogram is reduced; also the window of cells kept per sign, so a series takes `8 × (15 + 2 × max_buckets)` bytes (2,680 at 160) |
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
    /// takes `8 × (15 + 2 × max_buckets)` bytes for its native state, in a multiprocess file as
    /// on the heap.
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

// `place` picks a sign's offset cell and window by adding the sign bit.
const _: () = assert!(
    layout::NEGATIVE_OFFSET == layout::POSITIVE_OFFSET + 1
        && layout::negative(7) == layout::positive(7) + 7
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
    /// Outside the window of `negative`'s sign, at `key`.
    Outside,
}

impl<'a> Native<'a> {
    /// The native cells after `base` cells; `cells` must hold `base + layout::len(window)`
    /// cells, which [`init`](Self::init) checks.
    #[inline]
    pub(crate) fn new(cells: &'a Cells, base: usize) -> Self {
        Self { cells, base }
    }

    #[inline(always)]
    fn at(&self, i: usize) -> &'a AtomicU64 {
        self.cells.at(self.base + i)
    }

    #[inline(always)]
    fn window(&self) -> usize {
        self.at(layout::WINDOW).load(Ordering::Relaxed) as usize
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
        // Centred on 1: at schema 3 and 160 cells, 2^-10 ..= 2^10 before any move.
        let offset = -((window / 2) as i64);
        set(layout::POSITIVE_OFFSET, offset as u64);
        set(layout::NEGATIVE_OFFSET, offset as u64);
        // Last, released: a multiprocess reader that finds the window set finds the rest of
        // the header too (it takes a state whose window is 0 for one not written yet).
        self.at(layout::WINDOW)
            .store(window as u64, Ordering::Release);
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
                        let populated = self.at(layout::POPULATED).fetch_add(1, Ordering::Relaxed);
                        if populated >= self.window() as u64 {
                            self.enforce_limit();
                        }
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
        let window = self.window();
        // Past the zero bucket the sign bit is the sign (±0 stopped above, NaN never comes):
        // integer steps that pick the sign's offset cell and window, no second float compare.
        let negative = (v.to_bits() >> 63) as usize;
        let offset = self
            .at(layout::POSITIVE_OFFSET + negative)
            .load(Ordering::Acquire) as i64;
        let first = layout::positive(window) + (window & negative.wrapping_neg());
        let i = k.wrapping_sub(offset) as u64;
        if i < window as u64 {
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
                            self.at(layout::POPULATED).fetch_add(1, Ordering::Relaxed);
                        }
                        if self.at(layout::POPULATED).load(Ordering::Relaxed) > self.window() as u64
                        {
                            self.rewrite(None);
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

    /// The window may hold more than `max_buckets` populated buckets: reduce under the lock.
    #[cold]
    #[inline(never)]
    fn enforce_limit(self) {
        let _lock = Lock::take(self.at(layout::LOCK));
        if self.at(layout::POPULATED).load(Ordering::Relaxed) > self.window() as u64 {
            self.rewrite(None);
        }
    }

    /// Takes every count out of the cells, reduces until the buckets (and `pending`'s bucket)
    /// fit the window and the limit, and writes them back under the next generation. Holds the
    /// lock (the caller's).
    fn rewrite(&self, pending: Option<f64>) {
        let window = self.window();
        let generation = self.at(layout::GENERATION).load(Ordering::Relaxed);
        self.at(layout::GENERATION)
            .store(generation.wrapping_add(1), Ordering::Release);
        let next = generation.wrapping_add(2);
        let new_tag = tag(next);
        // Freeze: every count observed so far comes out; later tagged CASes fail.
        let take = |i: usize| self.at(i).swap(new_tag, Ordering::AcqRel) & COUNT_MASK;
        let schema = clamp_schema(self.at(layout::SCHEMA).load(Ordering::Relaxed) as i64);
        let mut b = NativeBuckets {
            schema,
            zero_threshold: f64::from_bits(self.at(layout::ZERO_THRESHOLD).load(Ordering::Relaxed)),
            zero_count: take(layout::ZERO_COUNT),
            positive: Vec::new(),
            negative: Vec::new(),
        };
        let mut offsets = [layout::POSITIVE_OFFSET, layout::NEGATIVE_OFFSET]
            .map(|o| self.at(o).load(Ordering::Relaxed) as i64);
        for (sign, first) in [layout::positive(window), layout::negative(window)]
            .into_iter()
            .enumerate()
        {
            let out = if sign == 0 {
                &mut b.positive
            } else {
                &mut b.negative
            };
            for i in 0..window {
                let c = take(first + i);
                if c > 0 {
                    out.push(((offsets[sign] + i as i64) as i32, c));
                }
            }
        }

        self.reduce(&mut b, &mut offsets, pending, window);

        let set = |i: usize, v: u64| self.at(i).store(v, Ordering::Release);
        set(layout::SCHEMA, i64::from(b.schema) as u64);
        set(layout::ZERO_THRESHOLD, b.zero_threshold.to_bits());
        set(layout::POSITIVE_OFFSET, offsets[0] as u64);
        set(layout::NEGATIVE_OFFSET, offsets[1] as u64);
        set(layout::ZERO_COUNT, new_tag | saturate(b.zero_count));
        for (sign, first, buckets) in [
            (0, layout::positive(window), &b.positive),
            (1, layout::negative(window), &b.negative),
        ] {
            for &(k, c) in buckets {
                let i = (i64::from(k) - offsets[sign]) as usize;
                set(first + i, new_tag | saturate(c));
            }
        }
        set(layout::POPULATED, b.bucket_count() as u64);
        self.at(layout::GENERATION).store(next, Ordering::Release);
    }

    /// Reduces `b` until its buckets, and `pending`'s, fit `window` cells per sign and at most
    /// `window` buckets are populated; then places the windows (`offsets`).
    fn reduce(
        &self,
        b: &mut NativeBuckets,
        offsets: &mut [i64; 2],
        pending: Option<f64>,
        window: usize,
    ) {
        let max_zt = f64::from_bits(self.at(layout::MAX_ZERO_THRESHOLD).load(Ordering::Relaxed));
        // Every round moves a bucket into the zero bucket, lowers the schema or resets; at most
        // 13 schemas and 2 × window buckets, so this bound is never reached.
        for _ in 0..2 * window + 64 {
            let pending_key = pending
                .filter(|v| v.abs() > b.zero_threshold)
                .map(|v| (v > 0.0, key(v.abs(), b.schema)));
            if fits(b, pending_key, window) {
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
                b.widen_zero_threshold(widened);
            } else {
                b.reduce_to_schema(b.schema - 1);
            }
        }
        for (sign, buckets) in [&b.positive, &b.negative].into_iter().enumerate() {
            let keys = buckets
                .first()
                .map(|&(k, _)| (k, buckets[buckets.len() - 1].0))
                .into_iter()
                .chain(
                    pending
                        .filter(|v| v.abs() > b.zero_threshold && (*v > 0.0) == (sign == 0))
                        .map(|v| {
                            let k = key(v.abs(), b.schema);
                            (k, k)
                        }),
                )
                .reduce(|(lo, hi), (l, h)| (lo.min(l), hi.max(h)));
            let Some((lo, hi)) = keys else { continue };
            let (lo, hi) = (i64::from(lo), i64::from(hi));
            let slack = (window as i64 - (hi - lo + 1)).max(0);
            #[cfg(test)]
            if let Some(shift) = tests::SHIFT.with(|s| s.get()) {
                // The tests move the window on every rewrite, so that a count landing under a
                // stale layout would show in the wrong bucket.
                offsets[sign] = lo - shift.rem_euclid(slack + 1);
                continue;
            }
            let current = offsets[sign];
            if lo >= current && hi < current + window as i64 {
                continue;
            }
            // Centred, so that values drifting either way find room.
            offsets[sign] = lo - slack / 2;
        }
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

/// Whether every bucket of `b` and the pending key fit `window` cells per sign, with at most
/// `window` buckets populated.
fn fits(b: &NativeBuckets, pending: Option<(bool, i32)>, window: usize) -> bool {
    let mut populated = b.bucket_count();
    for (positive, buckets) in [(true, &b.positive), (false, &b.negative)] {
        let mut lo_hi = buckets
            .first()
            .map(|&(k, _)| (k, buckets[buckets.len() - 1].0));
        if let Some((_, k)) = pending.filter(|&(p, _)| p == positive) {
            if buckets.binary_search_by_key(&k, |&(k, _)| k).is_err() {
                populated += 1;
            }
            lo_hi = Some(lo_hi.map_or((k, k), |(lo, hi)| (lo.min(k), hi.max(k))));
        }
        if lo_hi.is_some_and(|(lo, hi)| i64::from(hi) - i64::from(lo) >= window as i64) {
            return false;
        }
    }
    populated <= window
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

/// Turns a copy of one series' native cells (`layout::native::len(window)` of them, from its
/// native base on) into its buckets, count and sum. Pure and total: the multiprocess reader
/// calls it on cells copied from another process's file, which it does not trust.
pub(crate) fn decode(cells: &[u64]) -> Result<Snapshot, DecodeError> {
    decode_as(cells.len(), |i| cells[i], false)
}

/// [`decode`] (or [`decode_dead`] if `dead`) on cells stored as native-endian bytes (a copy of
/// a multiprocess file), read in place.
#[cfg_attr(not(all(feature = "multiprocess", unix)), allow(dead_code))] // the multiprocess store's
pub(crate) fn decode_bytes(bytes: &[u8], dead: bool) -> Result<Snapshot, DecodeError> {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        u64::from_ne_bytes(w)
    };
    decode_as(bytes.len() / 8, word, dead)
}

/// [`decode`] for the cells of a writer that is gone (a multiprocess file whose process died):
/// nothing will finish a rewrite it was killed in, so a copy taken across one is read as it
/// is. A rewrite takes every count out (swapping each cell to the next generation's tag, with
/// a count of 0) before it changes the header, and writes the counts back after it: cells
/// still carrying the old tag are counts under the header as it is, and cells written back
/// carry the new tag under the new header. So every cell with either tag is a count under
/// the header as read; the counts the dead rewrite held in hand are lost (a process killed
/// inside the few microseconds of a reduction), nothing is counted twice or in a wrong
/// bucket.
#[cfg_attr(not(test), allow(dead_code))] // the reader calls `decode_bytes(.., true)`
pub(crate) fn decode_dead(cells: &[u64]) -> Result<Snapshot, DecodeError> {
    decode_as(cells.len(), |i| cells[i], true)
}

/// Clears the counts and the sum of a copy of native cells and leaves their layout (a
/// multiprocess file copied for a forked child, whose histograms go on from zero with the
/// parent's layout): the generation even, every tagged cell empty under its tag, the lock
/// free (its holder, if any, was a thread of the parent). Cells that are not a native state
/// are zeroed.
#[cfg_attr(not(all(feature = "multiprocess", unix)), allow(dead_code))] // the multiprocess store's
pub(crate) fn clear_counts(cells: &mut [u64]) {
    let window = cells.get(layout::WINDOW).map_or(0, |&w| w as usize);
    if window == 0 || window > MAX_BUCKETS_LIMIT as usize || cells.len() != layout::len(window) {
        cells.fill(0);
        return;
    }
    let generation = cells[layout::GENERATION].wrapping_add(1) & !1;
    let t = tag(generation);
    cells[layout::GENERATION] = generation;
    cells[layout::LOCK] = 0;
    cells[layout::POPULATED] = 0;
    cells[layout::SUM] = 0.0f64.to_bits();
    cells[layout::ZERO_COUNT] = t;
    cells[layout::HEADER..].fill(t);
}

/// The cells of a native state holding `b` and `sum` in a window of `window` cells per sign
/// (each sign's window starts at its lowest bucket): what a histogram that observed them
/// writes, for tests that write files by hand. `None` if a sign's buckets span more than the
/// window.
#[cfg(test)]
pub(crate) fn state_of(b: &NativeBuckets, sum: f64, window: usize) -> Option<Vec<u64>> {
    let mut cells = vec![0u64; layout::len(window)];
    let schema = i64::from(b.schema) as u64;
    cells[layout::SCHEMA] = schema;
    cells[layout::INITIAL_SCHEMA] = schema;
    cells[layout::ZERO_THRESHOLD] = b.zero_threshold.to_bits();
    cells[layout::INITIAL_ZERO_THRESHOLD] = b.zero_threshold.to_bits();
    cells[layout::WINDOW] = window as u64;
    cells[layout::SUM] = sum.to_bits();
    cells[layout::ZERO_COUNT] = b.zero_count;
    cells[layout::POPULATED] = b.bucket_count() as u64;
    for (offset, first, buckets) in [
        (
            layout::POSITIVE_OFFSET,
            layout::positive(window),
            &b.positive,
        ),
        (
            layout::NEGATIVE_OFFSET,
            layout::negative(window),
            &b.negative,
        ),
    ] {
        let lo = buckets.first().map_or(0, |&(k, _)| i64::from(k));
        cells[offset] = lo as u64;
        for &(k, c) in buckets {
            let i = usize::try_from(i64::from(k) - lo)
                .ok()
                .filter(|&i| i < window)?;
            cells[first + i] = c;
        }
    }
    Some(cells)
}

/// `len` cells, cell `i` read by `cell(i)` (called only below `len`).
#[inline]
fn decode_as(len: usize, cell: impl Fn(usize) -> u64, dead: bool) -> Result<Snapshot, DecodeError> {
    if len < layout::HEADER {
        return Err(DecodeError::Invalid);
    }
    let header: [u64; layout::HEADER] = std::array::from_fn(&cell);
    let window = usize::try_from(header[layout::WINDOW]).map_err(|_| DecodeError::Invalid)?;
    if window == 0 || window > MAX_BUCKETS_LIMIT as usize || len != layout::len(window) {
        return Err(DecodeError::Invalid);
    }
    let generation = header[layout::GENERATION];
    let torn = generation & 1 == 1;
    if torn && !dead {
        return Err(DecodeError::Torn);
    }
    let schema = header[layout::SCHEMA] as i64;
    let zero_threshold = f64::from_bits(header[layout::ZERO_THRESHOLD]);
    if !(exponential::SCHEMA_MIN as i64..=exponential::SCHEMA_MAX as i64).contains(&schema)
        || zero_threshold.is_nan()
        || zero_threshold < 0.0
    {
        return Err(DecodeError::Invalid);
    }
    let expected = tag(generation);
    // A dead writer's rewrite: the old tag (`tag` of an odd generation is its even
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
    let mut buckets = NativeBuckets {
        schema: schema as i8,
        zero_threshold,
        zero_count: count_of(header[layout::ZERO_COUNT])?,
        positive: Vec::new(),
        negative: Vec::new(),
    };
    for (offset, first, out) in [
        (
            layout::POSITIVE_OFFSET,
            layout::positive(window),
            &mut buckets.positive,
        ),
        (
            layout::NEGATIVE_OFFSET,
            layout::negative(window),
            &mut buckets.negative,
        ),
    ] {
        let offset = header[offset] as i64;
        if offset < i64::from(i32::MIN) || offset + window as i64 > i64::from(i32::MAX) {
            return Err(DecodeError::Invalid);
        }
        for i in 0..window {
            let c = cell(first + i);
            // Most window cells are empty: an empty cell of the expected tag is skipped with
            // one comparison.
            if c == expected {
                continue;
            }
            let c = count_of(c)?;
            if c > 0 {
                out.push(((offset + i as i64) as i32, c));
            }
        }
    }
    Ok(Snapshot {
        count: buckets.count(),
        sum: f64::from_bits(header[layout::SUM]),
        buckets,
    })
}

#[cfg(test)]
mod tests;
