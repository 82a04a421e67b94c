//! [`Counter`]: a monotonically increasing value.
//!
//! Two cells (`layout.rs`): a `u64` for whole-number increments — so `inc()` is a single
//! `fetch_add` — and an `f64` for fractional ones. The value is their sum.

use std::sync::atomic::Ordering;

use super::{Metric, check_name_suffix, count_invalid_update, private::Sealed};
use crate::cell::{Cells, add_f64, load_f64};
use crate::clock::Tick;
use crate::exemplar::{ExemplarError, Now, Offer, SeriesExemplars, TraceContext};
use crate::layout::counter::{FRACTION, LEN, WHOLE};
use crate::model::{Exemplars, MetricKind, Point};

/// Whole numbers below this are added to the integer cell exactly.
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

/// A monotonically increasing counter. Its family's name must end in `_total`.
///
/// ```
/// use promtrack::{Counter, Family};
///
/// let orders = Family::<(), Counter>::new("orders_total", "Orders placed.");
/// orders.inc();
/// orders.inc_by(2.5);
/// orders.inc_by(-1.0); // dropped and counted as invalid: counters never go down
/// assert_eq!(orders.get(), 3.5);
/// ```
pub struct Counter {
    cells: Cells,
    /// Null until the first exemplar (`exemplar.rs`).
    exemplars: SeriesExemplars,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.cells.at(WHOLE).fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `v`. A negative, NaN or infinite `v` is dropped and counted in
    /// `promtrack_invalid_updates_total`: it never panics, and the counter never goes backwards.
    #[inline]
    pub fn inc_by(&self, v: f64) {
        // `contains` is false for NaN.
        if (0.0..EXACT_INTEGER_LIMIT).contains(&v) && v.fract() == 0.0 {
            self.cells.at(WHOLE).fetch_add(v as u64, Ordering::Relaxed);
        } else if v.is_finite() && v > 0.0 {
            add_f64(self.cells.at(FRACTION), v);
        } else {
            count_invalid_update();
        }
    }

    /// Adds one and offers an exemplar carrying `labels`, say
    /// `&[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]`. The counter keeps the latest
    /// exemplar, replaced at most once per 90 ms (see `exemplar.rs`), so a valid exemplar may
    /// be skipped. A label set OpenMetrics refuses (names and values over 128 characters, an
    /// invalid or repeated name) is returned as the error and counted in
    /// `promtrack_invalid_updates_total`; the increment is made either way.
    ///
    /// ```
    /// # use promtrack::{Counter, Family};
    /// let orders = Family::<(), Counter>::new("orders_total", "Orders placed.");
    /// orders.inc_with_exemplar(&[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")])?;
    /// assert!(orders.inc_with_exemplar(&[("note", &"x".repeat(200))]).is_err());
    /// assert_eq!(orders.get(), 2.0);
    /// # Ok::<(), promtrack::ExemplarError>(())
    /// ```
    pub fn inc_with_exemplar(&self, labels: &[(&str, &str)]) -> Result<(), ExemplarError> {
        self.inc_by_with_exemplar(1.0, labels)
    }

    /// [`inc_by`](Self::inc_by) with an exemplar, as [`inc_with_exemplar`](Self::inc_with_exemplar).
    /// An invalid `v` is dropped and counted, with its exemplar.
    pub fn inc_by_with_exemplar(
        &self,
        v: f64,
        labels: &[(&str, &str)],
    ) -> Result<(), ExemplarError> {
        self.inc_by(v);
        let offer = Offer::from_labels(labels).inspect_err(|_| count_invalid_update())?;
        if v.is_finite() && v >= 0.0 {
            self.exemplars
                .offer(&self.cells, 1, 0, v, offer, Now::coarse());
        }
        Ok(())
    }

    /// Adds one, with the trace's ids (`trace_id`, `span_id`) as the exemplar: the form the
    /// layer and traced code use, with nothing to check or allocate.
    #[inline]
    pub fn inc_with_trace(&self, trace: TraceContext) {
        self.inc();
        self.exemplars
            .offer(&self.cells, 1, 0, 1.0, Offer::Trace(&trace), Now::coarse());
    }

    /// [`inc_with_trace`](Self::inc_with_trace) with the rate limit's clock read by the caller
    /// (`now`, taken anyway to time the request): no clock read of its own.
    #[inline]
    pub(crate) fn inc_with_trace_at(&self, trace: TraceContext, now: Tick) {
        self.inc();
        self.exemplars.offer(
            &self.cells,
            1,
            0,
            1.0,
            Offer::Trace(&trace),
            Now::from_tick(now),
        );
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.cells.at(WHOLE).load(Ordering::Relaxed) as f64 + load_f64(self.cells.at(FRACTION))
    }
}

impl Sealed for Counter {
    type Config = ();

    fn from_cells(cells: Cells, _: &()) -> Self {
        assert!(cells.len() >= LEN);
        Self {
            cells,
            exemplars: SeriesExemplars::default(),
        }
    }

    fn point<'a>(&'a self, _: &'a (), _: &'a mut Vec<u64>) -> Point<'a> {
        Point::Counter(self.get())
    }

    fn exemplars(&self) -> Exemplars<'_> {
        Exemplars::live(self.exemplars.block())
    }

    fn validate(name: &str, _: &[Box<str>], _: &()) -> Result<(), String> {
        check_name_suffix(name, MetricKind::Counter, "a counter")
    }
}

impl Metric for Counter {
    const KIND: MetricKind = MetricKind::Counter;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::invalid_updates;

    fn counter() -> Counter {
        Counter::from_cells(Cells::heap(LEN), &())
    }

    #[test]
    fn whole_and_fractional_increments_add_up() {
        let c = counter();
        c.inc();
        c.inc_by(2.0);
        c.inc_by(0.25);
        c.inc_by(0.0);
        assert_eq!(c.get(), 3.25);
    }

    #[test]
    fn invalid_increments_are_dropped_and_counted() {
        let c = counter();
        let before = invalid_updates();
        c.inc_by(-1.0);
        c.inc_by(f64::NAN);
        c.inc_by(f64::INFINITY);
        c.inc_by(f64::NEG_INFINITY);
        assert_eq!(c.get(), 0.0);
        // Other tests may count too; at least ours were.
        assert!(invalid_updates() >= before + 4);
    }

    #[test]
    fn huge_whole_increments_stay_finite() {
        let c = counter();
        c.inc_by(1e300);
        assert_eq!(c.get(), 1e300);
    }

    #[test]
    fn names_must_end_in_total() {
        assert!(Counter::validate("requests_total", &[], &()).is_ok());
        let err = Counter::validate("requests", &[], &()).unwrap_err();
        assert!(err.contains("requests_total"), "{err}");
    }
}
