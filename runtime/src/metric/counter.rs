//! [`Counter`]: a monotonically increasing value.
//!
//! Two cells (`layout.rs`): a `u64` for whole-number increments — so `inc()` is a single
//! `fetch_add` — and an `f64` for fractional ones. The value is their sum.

use std::sync::atomic::Ordering;

use super::{Metric, check_name_suffix, count_invalid_update, private::Sealed};
use crate::cell::{Cells, add_f64, load_f64};
use crate::layout::counter::{FRACTION, LEN, WHOLE};
use crate::model::{MetricKind, Point};

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

    /// The current value.
    pub fn get(&self) -> f64 {
        self.cells.at(WHOLE).load(Ordering::Relaxed) as f64 + load_f64(self.cells.at(FRACTION))
    }
}

impl Sealed for Counter {
    type Config = ();

    fn from_cells(cells: Cells, _: &()) -> Self {
        assert!(cells.len() >= LEN);
        Self { cells }
    }

    fn point<'a>(&'a self, _: &'a (), _: &'a mut Vec<u64>) -> Point<'a> {
        Point::Counter(self.get())
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
