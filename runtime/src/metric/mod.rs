//! The metric types: what a series counts and how its cells are laid out.
//!
//! Every type is a thin view over [`Cells`]: its methods are the hot path, one or two atomic
//! instructions each. Types are created by a [`Family`](crate::Family), never alone, so every
//! series has a name, help text and labels and can be exposed.
//!
//! Invalid updates — a negative, NaN or infinite counter increment, a NaN observation — never
//! panic: they are dropped and counted in `promtrack_invalid_updates_total`, which the default
//! registry exposes. A request path must never die because a computed value was odd, and a
//! counter that went backwards or to NaN would corrupt every `rate()` over it for good.

mod counter;
mod gauge;
pub(crate) mod histogram;
mod info;
mod summary;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

pub use counter::Counter;
pub use gauge::{Gauge, GaugeMode, InFlight};
pub use histogram::{Buckets, DEFAULT_BUCKETS, Histogram};
pub use info::Info;
pub use summary::Summary;

use crate::cell::Cells;
use crate::model::{MetricKind, Point};

/// A metric type a [`Family`](crate::Family) can hold: [`Counter`], [`Gauge`], [`Histogram`],
/// [`Summary`] or [`Info`]. Sealed: the cell layouts are part of the multiprocess file format.
pub trait Metric: private::Sealed + Send + Sync + Sized + 'static {
    /// The family type this metric is exposed as.
    const KIND: MetricKind;
}

pub(crate) mod private {
    use super::*;

    /// The parts of [`Metric`] that only this crate implements.
    pub trait Sealed {
        /// Per-family configuration (histogram buckets).
        type Config: Clone + PartialEq + Debug + Default + Send + Sync + 'static;
        /// How many cells one series needs.
        fn cell_count(config: &Self::Config) -> usize;
        /// Wraps freshly allocated, zeroed cells.
        fn from_cells(cells: Cells, config: &Self::Config) -> Self;
        /// The series' current value(s); histograms load their buckets into `scratch`.
        fn point<'a>(&'a self, config: &'a Self::Config, scratch: &'a mut Vec<u64>) -> Point<'a>;
        /// Kind-specific checks on a family's name, label names and configuration, as a
        /// sentence saying what is wrong and how to fix it.
        fn validate(
            name: &str,
            label_names: &[Box<str>],
            config: &Self::Config,
        ) -> Result<(), String>;
        /// The suffixes of the sample names this kind writes (`_bucket`, `_count`, ...), so that
        /// the registry can refuse two families whose samples would collide.
        const SAMPLE_SUFFIXES: &'static [&'static str];
    }
}

/// Updates dropped because their value was invalid (see the module docs).
static INVALID_UPDATES: AtomicU64 = AtomicU64::new(0);

#[cold]
#[inline(never)]
pub(crate) fn count_invalid_update() {
    INVALID_UPDATES.fetch_add(1, Ordering::Relaxed);
}

/// How many updates were dropped as invalid since the process started.
pub(crate) fn invalid_updates() -> u64 {
    INVALID_UPDATES.load(Ordering::Relaxed)
}

/// Refuses labels a kind reserves for its own samples.
fn check_reserved(label_names: &[Box<str>], reserved: &str, kind: &str) -> Result<(), String> {
    if label_names.iter().any(|n| &**n == reserved) {
        return Err(format!(
            "the label name `{reserved}` is reserved for {kind} samples; rename the label"
        ));
    }
    Ok(())
}
