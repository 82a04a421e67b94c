//! [`Gauge`]: a value that goes up and down, stored as one `f64` cell.

use super::{Metric, private::Sealed};
use crate::cell::{Cells, add_f64, load_f64, store_f64};
use crate::model::{MetricKind, Point};

/// A value that goes up and down.
///
/// ```
/// use promtrack::{Family, Gauge};
///
/// let depth = Family::<[&str; 1], Gauge>::new("queue_depth", "Jobs waiting.")
///     .label_names(["queue"]);
/// depth.with(&["email"]).set(4.0);
/// depth.with(&["email"]).dec();
/// assert_eq!(depth.with(&["email"]).get(), 3.0);
/// ```
pub struct Gauge {
    cells: Cells,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        store_f64(self.cells.at(0), v);
    }

    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: f64) {
        add_f64(self.cells.at(0), v);
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        load_f64(self.cells.at(0))
    }

    /// Adds one now and subtracts it when the returned guard drops — also on panic and when an
    /// async future holding it is dropped before completion. The in-progress pattern:
    ///
    /// ```
    /// # use promtrack::{Family, Gauge};
    /// let busy = Family::<(), Gauge>::new("jobs_in_progress", "Jobs running.");
    /// {
    ///     let _running = busy.track();
    ///     assert_eq!(busy.get(), 1.0);
    /// }
    /// assert_eq!(busy.get(), 0.0);
    /// ```
    #[inline]
    pub fn track(&self) -> InFlight<'_> {
        self.inc();
        InFlight { gauge: self }
    }
}

/// Decrements its gauge when dropped; see [`Gauge::track`].
#[must_use = "the gauge goes back down as soon as this guard is dropped"]
pub struct InFlight<'a> {
    gauge: &'a Gauge,
}

impl Drop for InFlight<'_> {
    #[inline]
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Sealed for Gauge {
    type Config = ();
    const SAMPLE_SUFFIXES: &'static [&'static str] = &[];

    fn cell_count(_: &()) -> usize {
        1
    }

    fn from_cells(cells: Cells, _: &()) -> Self {
        assert!(cells.len() >= 1);
        Self { cells }
    }

    fn point<'a>(&'a self, _: &'a (), _: &'a mut Vec<u64>) -> Point<'a> {
        Point::Gauge(self.get())
    }

    fn validate(_: &str, _: &[Box<str>], _: &()) -> Result<(), String> {
        Ok(())
    }
}

impl Metric for Gauge {
    const KIND: MetricKind = MetricKind::Gauge;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_decrements_on_panic() {
        let g = Gauge::from_cells(Cells::heap(1), &());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _t = g.track();
            assert_eq!(g.get(), 1.0);
            panic!("boom");
        }));
        assert!(result.is_err());
        assert_eq!(g.get(), 0.0);
    }

    #[test]
    fn set_add_sub() {
        let g = Gauge::from_cells(Cells::heap(1), &());
        g.set(10.0);
        g.add(2.5);
        g.sub(0.5);
        assert_eq!(g.get(), 12.0);
        g.set(f64::NAN);
        assert!(g.get().is_nan());
    }
}
