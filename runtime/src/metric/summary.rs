//! [`Summary`]: the count and sum of observations.
//!
//! There are no quantiles, on purpose. Quantiles computed in one process cannot be aggregated
//! across processes or instances (the mean of two p99s is not a p99), they cost a lock or a
//! sketch per observation, and the Python multiprocess mode our users come from drops them too.
//! Use a [`Histogram`](crate::Histogram) and `histogram_quantile()` when you need quantiles.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Metric, check_reserved, count_invalid_update, private::Sealed};
use crate::cell::{Cells, add_f64, load_f64};
use crate::layout::summary::{COUNT, LEN, SUM};
use crate::model::{MetricKind, Point};

/// Count and sum of observations (no quantiles; see the module docs for why).
///
/// ```
/// use promtrack::{Family, Summary};
///
/// let sizes = Family::<(), Summary>::new("upload_bytes", "Upload sizes.");
/// sizes.observe(100.0);
/// sizes.observe(50.0);
/// assert_eq!((sizes.count(), sizes.sum()), (2, 150.0));
/// ```
pub struct Summary {
    cells: Cells,
}

impl Summary {
    /// Records one observation. NaN is dropped and counted in `promtrack_invalid_updates_total`.
    #[inline]
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            count_invalid_update();
            return;
        }
        self.cells.at(COUNT).fetch_add(1, Ordering::Relaxed);
        add_f64(self.cells.at(SUM), v);
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.cells.at(COUNT).load(Ordering::Relaxed)
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        load_f64(self.cells.at(SUM))
    }
}

impl Sealed for Summary {
    type Config = ();

    fn from_cells(cells: Cells, _: &()) -> Self {
        assert!(cells.len() >= LEN);
        Self { cells }
    }

    fn point<'a>(&'a self, _: &'a (), _: &'a mut Vec<u64>) -> Point<'a> {
        Point::Summary {
            count: self.count(),
            sum: self.sum(),
        }
    }

    fn validate(_: &str, label_names: &[Box<str>], _: &()) -> Result<(), String> {
        check_reserved(label_names, "quantile", "summary")
    }
}

impl Metric for Summary {
    const KIND: MetricKind = MetricKind::Summary;
}
