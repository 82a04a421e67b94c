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
pub(crate) mod native;
pub(crate) mod stripes;
mod summary;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

pub use counter::Counter;
pub use gauge::{Gauge, GaugeMode, InFlight};
pub use histogram::{Buckets, DEFAULT_BUCKETS, Histogram};
pub use info::Info;
pub use native::NativeConfig;
pub use summary::Summary;

use crate::cell::Cells;
use crate::layout::Layout;
use crate::model::{Exemplars, MetricKind, Point};

/// A metric type a [`Family`](crate::Family) can hold: [`Counter`], [`Gauge`], [`Histogram`],
/// [`Summary`] or [`Info`]. Sealed: the cell layouts (`layout.rs`) are part of the multiprocess
/// file format.
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
        /// The gauge mode this configuration declares ([`GaugeMode::All`] but for gauges).
        fn mode(_config: &Self::Config) -> GaugeMode {
            GaugeMode::All
        }
        /// The bucket bounds this configuration declares (none but for histograms).
        fn bounds(_config: &Self::Config) -> &[f64] {
            &[]
        }
        /// A histogram's native settings, if it keeps native buckets.
        fn native(_config: &Self::Config) -> Option<&NativeConfig> {
            None
        }
        /// Wraps freshly allocated, zeroed cells of the layout [`FamilyDecl::layout`] gives.
        fn from_cells(cells: Cells, config: &Self::Config) -> Self;
        /// The series' current value(s); histograms load their buckets into `scratch`.
        fn point<'a>(&'a self, config: &'a Self::Config, scratch: &'a mut Vec<u64>) -> Point<'a>;
        /// The series' exemplars (counters and histograms keep them).
        fn exemplars(&self) -> Exemplars<'_> {
            Exemplars::NONE
        }

        /// Hands the series' current value(s) to `f`: [`point`](Self::point), but for values
        /// that need owned storage while they are visited (native histogram buckets).
        fn visit_point(
            &self,
            config: &Self::Config,
            scratch: &mut Vec<u64>,
            f: &mut dyn FnMut(Point<'_>),
        ) {
            f(self.point(config, scratch));
        }
        /// Kind-specific checks on a family's name, label names and configuration, as a
        /// sentence saying what is wrong and how to fix it.
        fn validate(
            name: &str,
            label_names: &[Box<str>],
            config: &Self::Config,
        ) -> Result<(), String>;
    }
}

/// A family's declaration as a storage backend sees it: everything a multiprocess file's family
/// record holds, and what the cell layout of its series follows from. Typed, so that no backend
/// needs to know the metric types' configurations.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // the heap reads only the layout; the multiprocess file reads every field
pub(crate) struct FamilyDecl<'a> {
    pub(crate) name: &'a str,
    pub(crate) help: &'a str,
    pub(crate) label_names: &'a [Box<str>],
    pub(crate) kind: MetricKind,
    /// [`GaugeMode::All`] but for gauges.
    pub(crate) mode: GaugeMode,
    /// Empty but for histograms (and empty for a native-only one).
    pub(crate) bounds: &'a [f64],
    /// A histogram's native settings, if it keeps native buckets.
    pub(crate) native: Option<&'a NativeConfig>,
}

impl FamilyDecl<'_> {
    /// The layout of each of the family's series.
    pub(crate) fn layout(&self) -> Layout {
        let layout = Layout::of(self.kind, self.mode.is_stamped(), self.bounds.len());
        match self.native {
            Some(n) => layout.with_native(n.max_buckets as usize, !self.bounds.is_empty()),
            None => layout,
        }
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

/// Refuses a name without the suffix `kind`'s names carry ([`MetricKind::name_suffix`]);
/// `what` names the kind in the message ("a counter").
fn check_name_suffix(name: &str, kind: MetricKind, what: &str) -> Result<(), String> {
    match kind.name_suffix() {
        Some(suffix) if !name.ends_with(suffix) || name == suffix => Err(format!(
            "{what}'s name must end in `{suffix}`; call it `{name}{suffix}`"
        )),
        _ => Ok(()),
    }
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
