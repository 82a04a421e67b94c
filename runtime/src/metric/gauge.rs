//! [`Gauge`]: a value that goes up and down, stored as one `f64` cell, and [`GaugeMode`]: how
//! the gauges of several processes combine in multiprocess mode.
//!
//! A gauge in a `mostrecent` mode keeps three cells (`layout.rs`): the value, the Unix time of its
//! last update in nanoseconds, and a sequence lock (odd while an update is in progress), so that a
//! reader in another process never pairs a value with another update's time. Its updates
//! take the sequence lock (a compare-and-swap); every other gauge stays one atomic operation.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Metric, private::Sealed};
use crate::cell::{Cells, add_f64, load_f64, store_f64};
use crate::layout::gauge::{self as layout, SEQUENCE, TIME, VALUE};
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
    /// Whether the value carries a timestamp under a sequence lock (`mostrecent` modes).
    stamped: bool,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        if self.stamped {
            self.stamped_update(|_| v);
        } else {
            store_f64(self.cells.at(VALUE), v);
        }
    }

    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: f64) {
        if self.stamped {
            self.stamped_update(|old| old + v);
        } else {
            add_f64(self.cells.at(VALUE), v);
        }
    }

    /// Updates value and timestamp together under the sequence lock.
    #[cold]
    fn stamped_update(&self, f: impl FnOnce(f64) -> f64) {
        let seq = self.cells.at(SEQUENCE);
        let mut s = seq.load(Ordering::Relaxed);
        loop {
            if s % 2 == 0 {
                match seq.compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed) {
                    // The seqlock writer's fence: the odd sequence number is visible before
                    // any of the stores below (an acquire CAS alone does not order them).
                    Ok(_) => {
                        std::sync::atomic::fence(Ordering::Release);
                        break;
                    }
                    Err(actual) => s = actual,
                }
            } else {
                std::hint::spin_loop();
                s = seq.load(Ordering::Relaxed);
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        store_f64(self.cells.at(VALUE), f(load_f64(self.cells.at(VALUE))));
        self.cells.at(TIME).store(now, Ordering::Relaxed);
        seq.store(s + 2, Ordering::Release);
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
        load_f64(self.cells.at(VALUE))
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

/// How one gauge's values from several worker processes combine into the exposed value, in
/// multiprocess mode. The names and meanings are those of Python's `prometheus_client`; `live*`
/// modes only count processes that are still running. Ignored in single-process mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GaugeMode {
    /// One series per process, with a `pid` label (the default, as in Python).
    #[default]
    All,
    /// Like `All`, live processes only.
    LiveAll,
    /// The sum over processes.
    Sum,
    /// The sum over live processes (the default for in-progress gauges).
    LiveSum,
    /// The maximum over processes.
    Max,
    /// The maximum over live processes.
    LiveMax,
    /// The minimum over processes.
    Min,
    /// The minimum over live processes.
    LiveMin,
    /// The value most recently set, by any process.
    MostRecent,
    /// The value most recently set by a live process.
    LiveMostRecent,
}

impl GaugeMode {
    /// Every mode, in declaration order.
    pub const ALL: [GaugeMode; 10] = [
        GaugeMode::All,
        GaugeMode::LiveAll,
        GaugeMode::Sum,
        GaugeMode::LiveSum,
        GaugeMode::Max,
        GaugeMode::LiveMax,
        GaugeMode::Min,
        GaugeMode::LiveMin,
        GaugeMode::MostRecent,
        GaugeMode::LiveMostRecent,
    ];

    /// The Python name: `all`, `liveall`, `sum`, `livesum`, `max`, `livemax`, `min`, `livemin`,
    /// `mostrecent`, `livemostrecent`.
    pub const fn as_str(self) -> &'static str {
        match self {
            GaugeMode::All => "all",
            GaugeMode::LiveAll => "liveall",
            GaugeMode::Sum => "sum",
            GaugeMode::LiveSum => "livesum",
            GaugeMode::Max => "max",
            GaugeMode::LiveMax => "livemax",
            GaugeMode::Min => "min",
            GaugeMode::LiveMin => "livemin",
            GaugeMode::MostRecent => "mostrecent",
            GaugeMode::LiveMostRecent => "livemostrecent",
        }
    }

    /// Whether only live processes count.
    pub const fn is_live(self) -> bool {
        matches!(
            self,
            GaugeMode::LiveAll
                | GaugeMode::LiveSum
                | GaugeMode::LiveMax
                | GaugeMode::LiveMin
                | GaugeMode::LiveMostRecent
        )
    }

    /// Whether gauges in this mode keep the time of their last update, under a sequence lock,
    /// beside their value (the `mostrecent` modes; see the module docs).
    pub(crate) const fn is_stamped(self) -> bool {
        matches!(self, GaugeMode::MostRecent | GaugeMode::LiveMostRecent)
    }
}

impl std::fmt::Display for GaugeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for GaugeMode {
    type Err = String;

    /// Parses a Python mode name.
    fn from_str(s: &str) -> Result<Self, String> {
        GaugeMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown gauge mode `{s}`; use one of: {}",
                    GaugeMode::ALL.map(GaugeMode::as_str).join(", ")
                )
            })
    }
}

impl Sealed for Gauge {
    type Config = GaugeMode;

    fn mode(mode: &GaugeMode) -> GaugeMode {
        *mode
    }

    fn from_cells(cells: Cells, mode: &GaugeMode) -> Self {
        let stamped = mode.is_stamped();
        assert!(cells.len() >= layout::len(stamped));
        Self { cells, stamped }
    }

    fn point<'a>(&'a self, _: &'a GaugeMode, _: &'a mut Vec<u64>) -> Point<'a> {
        Point::Gauge(self.get())
    }

    fn validate(_: &str, _: &[Box<str>], _: &GaugeMode) -> Result<(), String> {
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
        let g = Gauge::from_cells(Cells::heap(1), &GaugeMode::All);
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
        let g = Gauge::from_cells(Cells::heap(1), &GaugeMode::All);
        g.set(10.0);
        g.add(2.5);
        g.sub(0.5);
        assert_eq!(g.get(), 12.0);
        g.set(f64::NAN);
        assert!(g.get().is_nan());
    }

    #[test]
    fn mostrecent_gauges_stamp_their_updates() {
        let g = Gauge::from_cells(Cells::heap(layout::len(true)), &GaugeMode::MostRecent);
        g.set(2.0);
        g.inc();
        assert_eq!(g.get(), 3.0);
        let ts = g.cells.at(TIME).load(Ordering::Relaxed);
        assert!(ts > 1_600_000_000_000_000_000, "{ts}");
        assert_eq!(
            g.cells.at(SEQUENCE).load(Ordering::Relaxed),
            4,
            "two updates, lock released"
        );
    }
}

#[cfg(test)]
mod mode_tests {
    use super::GaugeMode;

    #[test]
    fn modes_parse_by_their_python_names() {
        for m in GaugeMode::ALL {
            assert_eq!(m.as_str().parse::<GaugeMode>(), Ok(m));
        }
        let err = "livest".parse::<GaugeMode>().unwrap_err();
        assert!(err.contains("livemostrecent"), "{err}");
        assert!(GaugeMode::LiveSum.is_live() && !GaugeMode::Sum.is_live());
    }
}
