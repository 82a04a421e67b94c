//! [`Histogram`]: observations counted into buckets.
//!
//! Cells (`layout.rs`): one `u64` per finite bucket, one for `+Inf`, then the `f64` sum. Buckets are stored
//! per bucket, not cumulatively, so an observation touches exactly one bucket cell; the count is
//! the sum of the buckets and needs no cell of its own. Encoders accumulate at scrape time.
//!
//! A series observed from several cores at once gets stripes (`stripes.rs`): more copies of
//! these cells, one per way, written by the threads whose probe names them and added up by
//! every read. A series never contended keeps its one set of cells. Exemplars are not striped:
//! they hang off the `Histogram`, not off its cells.
//!
//! A histogram may also keep native buckets ([`NativeConfig`]): their cells follow the classic
//! ones, or stand alone for a native-only histogram, whose `bounds` are then empty (a classic
//! histogram always has one). The native state and its rules live in `native.rs`. A histogram
//! with native buckets is never striped: its native cells take every observation on one set of
//! cells anyway, and a stripe would copy them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::native::{Native, NativeConfig};
use super::stripes::Stripes;
use super::{Metric, check_reserved, count_invalid_update, private::Sealed};
use crate::cell::{Cells, load_f64};
use crate::clock::Tick;
use crate::exemplar::{ExemplarError, Now, Offer, SeriesExemplars, TraceContext};
use crate::layout::histogram as layout;
use crate::model::{Exemplars, MetricKind, Point};

/// The Prometheus client libraries' default buckets, in seconds: suited to request latencies.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram family's configuration: the upper bounds of its finite buckets, and its native
/// settings if it keeps native buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    pub(crate) bounds: Arc<[f64]>,
    pub(crate) native: Option<NativeConfig>,
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            bounds: DEFAULT_BUCKETS.into(),
            native: None,
        }
    }
}

impl Buckets {
    /// Whether the classic buckets are kept (always, but for a native-only histogram).
    fn classic(&self) -> bool {
        self.native.as_ref().is_none_or(NativeConfig::keeps_classic)
    }
}

/// Observations counted into buckets, with their count and sum.
///
/// ```
/// use promtrack::{Family, Histogram};
///
/// let latency = Family::<(), Histogram>::new("lookup_seconds", "Lookup time.")
///     .buckets(&[0.01, 0.1, 1.0]);
/// latency.observe(0.05);
/// latency.observe(3.0);
/// assert_eq!(latency.count(), 2);
/// assert_eq!(latency.sum(), 3.05);
/// ```
pub struct Histogram {
    bounds: Arc<[f64]>,
    cells: Cells,
    /// Null until the first exemplar (`exemplar.rs`); one slot per classic bucket.
    exemplars: SeriesExemplars,
    stripes: Stripes,
    /// Where the native cells start in `cells` when this histogram has classic bounds too (0:
    /// none). After the classic cells on the heap; in a multiprocess file, after the classic
    /// cells of the series record and the record's tail (the native state is an extension
    /// record of its own, `multiprocess_store/file.rs`), so the cells span both records.
    native_base: u32,
}

impl Histogram {
    /// Records one observation. NaN is dropped and counted in `promtrack_invalid_updates_total`.
    #[inline]
    pub fn observe(&self, v: f64) {
        self.record(v);
    }

    /// Records `v` and returns the classic bucket it went in (0 for a native-only histogram,
    /// whose one exemplar slot that is), or `None` for NaN: the one bucket search an observe
    /// with an exemplar shares with its offer.
    #[inline(always)]
    fn record(&self, v: f64) -> Option<usize> {
        if v.is_nan() {
            count_invalid_update();
            return None;
        }
        if self.bounds.is_empty() {
            Native::new(&self.cells, 0).observe(v);
            return Some(0);
        }
        // The native bucket first: a reader takes the classic cells before the native ones
        // (`visit_point`; a multiprocess file's copy, where a series' own classic cells come
        // first), so it does not find the classic count ahead of the native buckets' (a
        // stripe's cells, appended later, aside) — Prometheus rejects a native
        // histogram whose count is not its buckets' total, and the count written is the
        // larger of the two. A process killed between the two stores leaves the native side
        // one ahead, which is as valid (`multiprocess` module docs).
        if let Some(native) = self.native() {
            native.observe(v);
        }
        let bucket = self.bucket_of(v);
        let cells = self.cells_for_this_thread();
        cells.at(bucket).fetch_add(1, Ordering::Relaxed);
        let sum = cells.at(layout::sum(self.bounds.len()));
        // The sum's compare-exchange, first try spelled out: its failure means another thread
        // wrote this line between our load and our write, the contention signal stripes need.
        let old = sum.load(Ordering::Relaxed);
        let new = (f64::from_bits(old) + v).to_bits();
        if sum
            .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.add_contended(sum, v);
        }
        Some(bucket)
    }

    /// The native buckets' cells, if this histogram keeps them.
    #[inline]
    fn native(&self) -> Option<Native<'_>> {
        if self.bounds.is_empty() {
            return Some(Native::new(&self.cells, 0));
        }
        (self.native_base != 0).then(|| Native::new(&self.cells, self.native_base as usize))
    }

    /// The cells this thread observes into: the series' own, or its stripe once it has them.
    #[inline(always)]
    fn cells_for_this_thread(&self) -> &Cells {
        self.stripes.for_this_thread(&self.cells)
    }

    /// Completes an addition to the sum whose first compare-exchange failed, and tells the
    /// stripes.
    #[cold]
    #[inline(never)]
    fn add_contended(&self, sum: &std::sync::atomic::AtomicU64, v: f64) {
        crate::cell::add_f64(sum, v);
        // Native cells are not striped (see the module docs), and a stripe would copy them.
        if self.cells.len() == layout::len(self.bounds.len()) {
            self.stripes.contended(&self.cells);
        }
    }

    /// The primary cells, then every stripe.
    fn ways(&self) -> impl Iterator<Item = &Cells> {
        std::iter::once(&self.cells).chain(self.stripes.each())
    }

    /// Observations in bucket `i`, over every way.
    fn bucket_count(&self, i: usize) -> u64 {
        self.ways()
            .map(|c| c.at(i).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Records one observation and offers an exemplar carrying `labels` for its bucket, say
    /// `&[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]`. Each bucket keeps its latest
    /// exemplar; the series accepts at most one per 90 ms, but an empty bucket always takes its
    /// first (see `exemplar.rs`), so a valid exemplar may be skipped. A label set OpenMetrics
    /// refuses (names and values over 128 characters, an invalid or repeated name) is returned
    /// as the error and counted in `promtrack_invalid_updates_total`; the observation is
    /// recorded either way.
    ///
    /// ```
    /// # use promtrack::{Family, Histogram};
    /// let latency = Family::<(), Histogram>::new("lookup_seconds", "Lookup time.");
    /// latency.observe_with_exemplar(0.042, &[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")])?;
    /// assert_eq!(latency.count(), 1);
    /// # Ok::<(), promtrack::ExemplarError>(())
    /// ```
    pub fn observe_with_exemplar(
        &self,
        v: f64,
        labels: &[(&str, &str)],
    ) -> Result<(), ExemplarError> {
        match Offer::from_labels(labels) {
            Ok(offer) => {
                self.observe_offering(v, offer, Now::coarse());
                Ok(())
            }
            Err(e) => {
                self.observe(v);
                count_invalid_update();
                Err(e)
            }
        }
    }

    /// Records one observation, with the trace's ids (`trace_id`, `span_id`) as its bucket's
    /// exemplar: the form the layer and traced code use, with nothing to check or allocate.
    #[inline]
    pub fn observe_with_trace(&self, v: f64, trace: TraceContext) {
        self.observe_offering(v, Offer::Trace(&trace), Now::coarse());
    }

    /// [`observe_with_trace`](Self::observe_with_trace) with the rate limit's clock read by
    /// the caller (`now`, taken anyway to time the observation): no clock read of its own.
    #[inline]
    pub(crate) fn observe_with_trace_at(&self, v: f64, trace: TraceContext, now: Tick) {
        self.observe_offering(v, Offer::Trace(&trace), Now::from_tick(now));
    }

    /// The exemplar goes to the series' own slots, whichever cells the observation went to,
    /// for the bucket the observation found.
    #[inline(always)]
    fn observe_offering(&self, v: f64, offer: Offer<'_>, now: Now) {
        if let Some(bucket) = self.record(v) {
            let slots = self.bounds.len() + 1;
            self.exemplars
                .offer(&self.cells, slots, bucket, v, offer, now);
        }
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Index of the bucket `v` (not NaN) falls in: the first whose bound is `>= v` (Prometheus'
    /// `le`), the last index (`+Inf`) if none is. The bounds increase strictly.
    #[inline]
    #[expect(
        clippy::neg_cmp_op_on_partial_ord,
        reason = "`!(b < v)` on purpose: see the comment on the scan"
    )]
    fn bucket_of(&self, v: f64) -> usize {
        debug_assert!(!v.is_nan(), "NaN is dropped before the bucket search");
        let bounds = &*self.bounds;
        if bounds.len() > 16 {
            return bounds.partition_point(|&b| b < v);
        }
        // Typical histograms have about a dozen buckets: a linear scan, its branches predicted
        // on the common (small) values, the first bucket found by one compare. Two bounds a
        // step, each a compare against memory and a branch (`!(b < v)` is `v <= b` for a `v`
        // not NaN, and compiles to `ucomisd v, [b]`; `v <= b` needs `b` loaded first): 28
        // instructions for the bench's values against 41 for `position(|&b| v <= b)`
        // (BENCHMARKS.md, branch `lookup5`).
        let mut pairs = bounds.chunks_exact(2);
        let mut i = 0;
        for pair in &mut pairs {
            if !(pair[0] < v) {
                return i;
            }
            if !(pair[1] < v) {
                return i + 1;
            }
            i += 2;
        }
        match pairs.remainder() {
            [last] if *last < v => i + 1,
            _ => i,
        }
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        if self.bounds.is_empty() {
            return Native::new(&self.cells, 0).snapshot(&mut Vec::new()).count;
        }
        layout::buckets(self.bounds.len())
            .map(|i| self.bucket_count(i))
            .fold(0, u64::wrapping_add)
    }

    /// Sum of observations.
    ///
    /// On a striped series, the ways' partial sums added in a fixed order: as exact as the
    /// running sum itself (each way's sum rounds once per observation, like the one sum did),
    /// within a few ulps of it, and still never decreasing while observations are not negative
    /// (floating-point addition is monotonic in each operand). The multiprocess aggregate sums
    /// the ways' records exactly.
    pub fn sum(&self) -> f64 {
        if self.bounds.is_empty() {
            return Native::new(&self.cells, 0).snapshot(&mut Vec::new()).sum;
        }
        let i = layout::sum(self.bounds.len());
        self.ways().map(|c| load_f64(c.at(i))).sum()
    }

    /// The finite upper bounds (none for a native-only histogram).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }
}

impl Sealed for Histogram {
    type Config = Buckets;

    fn bounds(config: &Buckets) -> &[f64] {
        if config.classic() {
            &config.bounds
        } else {
            &[]
        }
    }

    fn native(config: &Buckets) -> Option<&NativeConfig> {
        config.native.as_ref()
    }

    fn from_cells(cells: Cells, config: &Buckets) -> Self {
        let mut bounds: Arc<[f64]> = if config.classic() {
            config.bounds.clone()
        } else {
            Arc::new([])
        };
        let mut native_base = 0;
        if let Some(native) = &config.native {
            // The native cells end the run (see `native_base`).
            let base = cells.len().saturating_sub(native.cells());
            if bounds.is_empty() && base > 0 {
                // A native-only histogram in a multiprocess file: its series record declares
                // the one classic bound `f64::MAX` (so that a reader without native support
                // keeps its count and sum), which this histogram then counts too.
                bounds = Arc::new([f64::MAX]);
            }
            assert!(
                base >= if bounds.is_empty() {
                    0
                } else {
                    layout::len(bounds.len())
                }
            );
            // No reset in a multiprocess file: it would make the merged totals drop.
            let ok = Native::new(&cells, base).init(native, cells.external_ptr().is_none());
            assert!(ok, "the store allocates the layout the family declares");
            native_base = base as u32;
        } else {
            assert!(cells.len() >= layout::len(bounds.len()));
        }
        Self {
            bounds,
            cells,
            exemplars: SeriesExemplars::default(),
            stripes: Stripes::default(),
            native_base,
        }
    }

    fn visit_point(&self, config: &Buckets, scratch: &mut Vec<u64>, f: &mut dyn FnMut(Point<'_>)) {
        let Some(native) = self.native() else {
            return f(self.point(config, scratch));
        };
        let mut copy = Vec::new();
        if !config.classic() {
            let snapshot = native.snapshot(&mut copy);
            scratch.clear();
            scratch.push(snapshot.count);
            return f(Point::Histogram {
                bounds: &[],
                counts: scratch,
                sum: snapshot.sum,
                native: Some(&snapshot.buckets),
            });
        }
        // The classic cells before the native ones (see `record`).
        let classic = self.point(config, scratch);
        let snapshot = native.snapshot(&mut copy);
        match classic {
            Point::Histogram {
                bounds,
                counts,
                sum,
                ..
            } => f(Point::Histogram {
                bounds,
                counts,
                sum,
                native: Some(&snapshot.buckets),
            }),
            other => f(other),
        }
    }

    fn point<'a>(&'a self, _: &'a Buckets, scratch: &'a mut Vec<u64>) -> Point<'a> {
        scratch.clear();
        scratch.extend(layout::buckets(self.bounds.len()).map(|i| self.bucket_count(i)));
        Point::Histogram {
            bounds: &self.bounds,
            counts: scratch,
            sum: self.sum(),
            native: None,
        }
    }

    fn exemplars(&self) -> Exemplars<'_> {
        Exemplars::live(self.exemplars.block())
    }

    fn validate(_: &str, label_names: &[Box<str>], config: &Buckets) -> Result<(), String> {
        check_reserved(label_names, "le", "histogram")?;
        if let Some(native) = &config.native {
            native.validate()?;
        }
        if config.classic() {
            validate_bounds(&config.bounds)?;
        }
        Ok(())
    }
}

/// Checks that bucket bounds are finite, strictly increasing and not empty.
pub(crate) fn validate_bounds(bounds: &[f64]) -> Result<(), String> {
    if bounds.is_empty() {
        return Err("a histogram needs at least one finite bucket bound".into());
    }
    if let Some(b) = bounds.iter().find(|b| !b.is_finite()) {
        return Err(format!(
            "bucket bound {b} is not finite; `+Inf` is always added, list only finite bounds"
        ));
    }
    if let Some(w) = bounds.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "bucket bounds must increase strictly, but {} is followed by {}; sort them and drop duplicates",
            w[0], w[1]
        ));
    }
    Ok(())
}

impl Metric for Histogram {
    const KIND: MetricKind = MetricKind::Histogram;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(bounds: &[f64]) -> Histogram {
        let cfg = Buckets {
            bounds: bounds.into(),
            native: None,
        };
        Histogram::from_cells(Cells::heap(layout::len(bounds.len())), &cfg)
    }

    #[test]
    fn observations_land_in_their_bucket_bounds_inclusive() {
        let h = histogram(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 7.0, -3.0] {
            h.observe(v);
        }
        let mut scratch = Vec::new();
        let cfg = Buckets {
            bounds: h.bounds.clone(),
            native: None,
        };
        match h.point(&cfg, &mut scratch) {
            Point::Histogram { counts, sum, .. } => {
                assert_eq!(counts, &[3, 2, 1]);
                assert_eq!(sum, 9.0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.count(), 6);
    }

    /// The bucket search against Prometheus' `le` rule written out (the first bound `>= v`,
    /// else `+Inf`), for every number of bounds from none to past the binary search's
    /// threshold (odd and even: the scan takes two bounds a step), at each bound, just either
    /// side of it, and at the extremes.
    #[test]
    fn every_bound_count_finds_the_le_bucket() {
        let rule =
            |bounds: &[f64], v: f64| bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len());
        for n in 0..=20 {
            let bounds: Vec<f64> = (0..n).map(|i| f64::from(i) * 0.5 - 2.0).collect();
            let h = histogram(&bounds);
            let mut values = vec![
                f64::NEG_INFINITY,
                f64::MIN,
                -1e300,
                -0.0,
                0.0,
                1e300,
                f64::MAX,
                f64::INFINITY,
            ];
            for &b in &bounds {
                values.extend([b, b.next_down(), b.next_up()]);
            }
            for v in values {
                let want = rule(&bounds, v);
                assert_eq!(h.bucket_of(v), want, "{n} bounds, {v}");
                if n > 0 {
                    let before = h.bucket_count(want);
                    h.observe(v);
                    assert_eq!(h.bucket_count(want), before + 1, "{n} bounds, {v}");
                }
            }
        }
        // `-0.0 <= 0.0`: a zero of either sign is in the bucket bounded by 0.
        let h = histogram(&[-1.0, 0.0, 1.0]);
        assert_eq!((h.bucket_of(-0.0), h.bucket_of(0.0)), (1, 1));
        // NaN is dropped, not counted in `+Inf` (nor anywhere).
        h.observe(f64::NAN);
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn many_buckets_use_binary_search_with_the_same_result() {
        let bounds: Vec<f64> = (1..=40).map(f64::from).collect();
        let h = histogram(&bounds);
        for v in [0.0, 1.0, 1.1, 39.5, 40.0, 41.0] {
            let linear = bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len());
            assert_eq!(h.bucket_of(v), linear, "{v}");
        }
    }

    /// Several threads on one series, striped and not: every observation counted, in its bucket,
    /// and the sum exact (the values and their totals are exact in binary).
    #[test]
    fn concurrent_observations_are_all_counted_striped_or_not() {
        let per_thread = if cfg!(miri) { 50 } else { 20_000 };
        let values = [0.25, 1.5, 4.0];
        for striped in [false, true] {
            let h = histogram(&[1.0, 2.0]);
            if striped {
                for _ in 0..crate::metric::stripes::THRESHOLD {
                    h.stripes.contended(&h.cells);
                }
                let ways = crate::metric::stripes::ways();
                assert_eq!(h.stripes.each().len(), ways - 1);
            }
            std::thread::scope(|s| {
                for t in 0..4 {
                    let h = &h;
                    s.spawn(move || {
                        for i in 0..per_thread {
                            h.observe(values[(i + t) % 3]);
                        }
                    });
                }
            });
            let n = 4 * per_thread as u64;
            assert_eq!(h.count(), n, "striped: {striped}");
            let mut scratch = Vec::new();
            let cfg = Buckets {
                bounds: h.bounds.clone(),
                native: None,
            };
            match h.point(&cfg, &mut scratch) {
                Point::Histogram { counts, sum, .. } => {
                    assert_eq!(counts.iter().sum::<u64>(), n);
                    assert!(counts.iter().all(|&c| c.abs_diff(n / 3) <= 4), "{counts:?}");
                    let expected: f64 = (0..4)
                        .map(|t| (0..per_thread).map(|i| values[(i + t) % 3]).sum::<f64>())
                        .sum();
                    assert_eq!(sum, expected, "striped: {striped}");
                    assert_eq!(h.sum(), expected);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn nan_is_dropped() {
        let h = histogram(&[1.0]);
        h.observe(f64::NAN);
        assert_eq!(h.count(), 0);
        assert_eq!(h.sum(), 0.0);
    }

    #[test]
    fn bounds_are_validated() {
        assert!(validate_bounds(&[0.1, 1.0]).is_ok());
        assert!(validate_bounds(&[]).is_err());
        assert!(
            validate_bounds(&[1.0, 1.0])
                .unwrap_err()
                .contains("increase strictly")
        );
        assert!(validate_bounds(&[2.0, 1.0]).is_err());
        assert!(
            validate_bounds(&[1.0, f64::INFINITY])
                .unwrap_err()
                .contains("not finite")
        );
        let err = Histogram::validate("x", &["le".into()], &Buckets::default()).unwrap_err();
        assert!(err.contains("`le`"), "{err}");
    }
}
