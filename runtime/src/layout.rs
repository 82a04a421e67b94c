//! Cell layouts: how many 8-byte cells one series has, and which cell holds what.
//!
//! This is the one definition of the layouts. The metric types reach their cells through the
//! indices below and the heap store allocates [`Layout::len`] cells; the multiprocess writer
//! sizes a series record with it, the reader checks a record's cell count against it, and the
//! aggregator and the compactor find buckets, sums and timestamps with it. The layouts are part
//! of the multiprocess file format (see `multiprocess_store/file.rs`): changing one changes the format.
//!
//! | kind | cells |
//! |---|---|
//! | counter | `u64` whole increments, `f64` fractional part |
//! | gauge | `f64` value |
//! | gauge in a `mostrecent` mode | `f64` value, `u64` Unix time of the update in nanoseconds, `u64` sequence lock (odd while an update is in progress) |
//! | histogram with `n` bounds | `n + 1` `u64` bucket counts (per bucket, not cumulative; the last is `+Inf`), then the `f64` sum |
//! | histogram with native buckets | the classic cells above (none for a native-only histogram), then [`native::HEADER`] header cells, `max_buckets` bucket cells that both signs share and [`native::JOURNAL`] journal cells (see [`native`]) |
//! | summary | `u64` count, `f64` sum |
//! | info | none |
//!
//! Invariants: every index a kind's module gives is below that kind's [`Layout::len`]. The kinds
//! summed across processes (counter, histogram, summary) keep `u64` counts first and the
//! floating-point total that aggregation sums exactly ([`Layout::float_total`]) last, so the
//! aggregator merges them all with one loop. This module depends on nothing but [`MetricKind`].
//!
//! # Where variable-width state plugs in
//!
//! A layout is a value computed from a family's declaration, not a constant per kind, so state
//! whose size a family's configuration decides is added here and the stores follow:
//! - native histogram buckets: a new private shape (say `Native { max_buckets }`) whose
//!   [`len`](Layout::len) counts its fixed cells (count, sum, zero bucket, schema, zero
//!   threshold) and its bucket arrays, with index functions in a module like [`histogram`];
//!   the family record carries `max_buckets` beside the bounds, and the reader rebuilds the
//!   layout with [`Layout::of`] as it does for bounds;
//! - exemplar slots: a field of [`Layout`] saying how many slots follow the value cells and an
//!   index function for slot `i`, counted in [`len`](Layout::len), so the heap store, the writer,
//!   the reader and the compactor size them with no change of their own;
//! - bytes per series: a series' cells take `8 * len()` bytes; how the heap store pads them
//!   (whole cache lines today, see `cell.rs`) is the store's choice, made from the layout in
//!   `store.rs`, the one place a series' cells are allocated.
//! - stripes: a contended histogram series gets up to `min(cores, 8) - 1` more runs of exactly
//!   this layout (`metric/stripes.rs`), padded to 128-byte units on the heap and whole series
//!   records in a multiprocess file, which readers sum with the first as records of one key.
//!   The layout itself does not change, so neither does the format.

use std::ops::Range;

use crate::model::MetricKind;

/// The cells of one series of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    shape: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Counter,
    Gauge,
    StampedGauge,
    Histogram {
        bounds: usize,
    },
    /// A histogram keeping native buckets in a window of `window` cells (`max_buckets`) that
    /// both signs share, after its classic cells (`bounds` finite bounds; 0: native only, no
    /// classic cells at all).
    Native {
        bounds: usize,
        window: usize,
    },
    Summary,
    /// Info series, and kinds that have no cells.
    Empty,
}

impl Layout {
    /// The layout of a series of `kind`; `stamped` for a gauge whose mode keeps the time of its
    /// last update ([`GaugeMode::is_stamped`](crate::GaugeMode)), `bounds` finite buckets for a
    /// histogram. Arguments that do not apply to `kind` are ignored.
    pub(crate) const fn of(kind: MetricKind, stamped: bool, bounds: usize) -> Layout {
        let shape = match kind {
            MetricKind::Counter => Shape::Counter,
            MetricKind::Gauge if stamped => Shape::StampedGauge,
            MetricKind::Gauge => Shape::Gauge,
            MetricKind::Histogram => Shape::Histogram { bounds },
            MetricKind::Summary => Shape::Summary,
            MetricKind::Info | MetricKind::Unknown => Shape::Empty,
        };
        Layout { shape }
    }

    /// This layout with native histogram buckets, a window of `window` cells (a histogram's only;
    /// other kinds are returned unchanged). With `classic` false the classic cells are left out.
    pub(crate) const fn with_native(self, window: usize, classic: bool) -> Layout {
        match self.shape {
            Shape::Histogram { bounds } | Shape::Native { bounds, .. } => Layout {
                shape: Shape::Native {
                    bounds: if classic { bounds } else { 0 },
                    window,
                },
            },
            _ => self,
        }
    }

    /// Where a histogram's native cells start (`None` for a layout without them).
    #[allow(dead_code)] // read by the multiprocess store
    pub(crate) const fn native_base(self) -> Option<usize> {
        match self.shape {
            Shape::Native { bounds, .. } => Some(native::base(bounds)),
            _ => None,
        }
    }

    /// Number of cells.
    pub(crate) const fn len(self) -> usize {
        match self.shape {
            Shape::Native { bounds, window } => native::base(bounds) + native::len(window),
            Shape::Counter => counter::LEN,
            Shape::Gauge => gauge::LEN,
            Shape::StampedGauge => gauge::STAMPED_LEN,
            Shape::Histogram { bounds } => histogram::len(bounds),
            Shape::Summary => summary::LEN,
            Shape::Empty => 0,
        }
    }

    /// The cell holding the `f64` total that aggregation across processes sums exactly (a
    /// counter's fractional part, a histogram's or a summary's sum); `None` for gauges and infos,
    /// which are not summed that way.
    #[allow(dead_code)] // read by the multiprocess aggregator only
    pub(crate) const fn float_total(self) -> Option<usize> {
        match self.shape {
            Shape::Counter => Some(counter::FRACTION),
            Shape::Histogram { bounds } => Some(histogram::sum(bounds)),
            Shape::Native { bounds, .. } if bounds > 0 => Some(histogram::sum(bounds)),
            Shape::Native { .. } => Some(native::SUM),
            Shape::Summary => Some(summary::SUM),
            Shape::Gauge | Shape::StampedGauge | Shape::Empty => None,
        }
    }
}

/// A counter's cells.
pub(crate) mod counter {
    /// Whole-number increments, a `u64`: `inc()` is one `fetch_add`.
    pub(crate) const WHOLE: usize = 0;
    /// Fractional increments, an `f64`.
    pub(crate) const FRACTION: usize = 1;
    pub(crate) const LEN: usize = 2;
}

/// A gauge's cells.
pub(crate) mod gauge {
    /// The value, an `f64`.
    pub(crate) const VALUE: usize = 0;
    /// Stamped gauges only: the Unix time of the last update, in nanoseconds.
    pub(crate) const TIME: usize = 1;
    /// Stamped gauges only: the sequence lock, odd while an update is in progress.
    pub(crate) const SEQUENCE: usize = 2;
    pub(crate) const LEN: usize = 1;
    pub(crate) const STAMPED_LEN: usize = 3;

    /// Cells of a gauge, stamped or not.
    pub(crate) const fn len(stamped: bool) -> usize {
        if stamped { STAMPED_LEN } else { LEN }
    }
}

/// A histogram's cells, for `bounds` finite bucket bounds.
pub(crate) mod histogram {
    use super::Range;

    /// The bucket counts, `+Inf` last (`bounds + 1` cells, `u64`, not cumulative).
    pub(crate) const fn buckets(bounds: usize) -> Range<usize> {
        0..bounds + 1
    }

    /// The sum of observations, an `f64`.
    pub(crate) const fn sum(bounds: usize) -> usize {
        bounds + 1
    }

    pub(crate) const fn len(bounds: usize) -> usize {
        bounds + 2
    }
}

/// A native histogram's cells, relative to [`base`](native::base) (after the classic cells).
///
/// The header, then the zero bucket, then one window of `max_buckets` bucket cells that both
/// signs share, then the reduction's [`JOURNAL`](native::JOURNAL) cells. The
/// [`WINDOW`](native::WINDOW) cell splits the window: the positive buckets take its first
/// cells, the negative ones the rest, and a reduction may move the split. Window cell `i` of a
/// sign holds the bucket whose key is that sign's offset plus `i`. Bucket cells
/// and the zero bucket are *tagged*: the top 16 bits hold [`tag`](native::tag) of the generation
/// whose layout (schema, zero threshold, offsets, split) they follow, the low 48 bits the
/// count. An observation is a compare-and-swap that expects the tag it read the layout under,
/// so an observation racing a change of layout fails and retries instead of landing in a
/// bucket that now means another range (see `metric/native.rs`).
///
/// Files of earlier releases hold the [`Form::Twin`](native::Form) of these cells (a window
/// of `max_buckets` cells per sign, twice the bytes); readers still decode it.
pub(crate) mod native {
    /// The generation: even while the layout is stable, odd while it is being changed.
    pub(crate) const GENERATION: usize = 0;
    /// 0 or 1: the per-series lock that writers changing the layout hold (never readers).
    pub(crate) const LOCK: usize = 1;
    /// The current schema, an `i64`.
    pub(crate) const SCHEMA: usize = 2;
    /// The current zero threshold, an `f64`.
    pub(crate) const ZERO_THRESHOLD: usize = 3;
    /// The key held by the first positive window cell, an `i64`.
    pub(crate) const POSITIVE_OFFSET: usize = 4;
    /// The key held by the first negative window cell, an `i64`.
    pub(crate) const NEGATIVE_OFFSET: usize = 5;
    /// How many window cells are non-empty: a hint for readers sizing their vectors, kept
    /// loosely between layout changes.
    pub(crate) const POPULATED: usize = 6;
    /// The sum of observations, an `f64`.
    pub(crate) const SUM: usize = 7;
    /// Unix time of the last reset (or of creation), nanoseconds.
    pub(crate) const LAST_RESET: usize = 8;
    /// The split of the window ([`split`]): the positive window's cells in the low 32 bits, the
    /// negative window's in the high 32; `max_buckets` in all. In the twin form, the cells of
    /// each sign's window.
    pub(crate) const WINDOW: usize = 9;
    /// The configured schema and zero threshold, restored by a reset.
    pub(crate) const INITIAL_SCHEMA: usize = 10;
    pub(crate) const INITIAL_ZERO_THRESHOLD: usize = 11;
    /// The widest zero threshold reductions may widen to, an `f64`.
    pub(crate) const MAX_ZERO_THRESHOLD: usize = 12;
    /// Nanoseconds after a reset before another one may happen; 0: never reset.
    pub(crate) const MIN_RESET: usize = 13;
    /// The zero bucket's count (tagged).
    pub(crate) const ZERO_COUNT: usize = 14;
    /// Cells before the window.
    pub(crate) const HEADER: usize = 15;

    /// Bits of a tagged cell that hold the count.
    pub(crate) const COUNT_MASK: u64 = (1 << 48) - 1;

    /// The tag of generation `generation` (even), in a tagged cell's top bits.
    pub(crate) const fn tag(generation: u64) -> u64 {
        ((generation >> 1) & 0xffff) << 48
    }

    /// Where the native cells start after `bounds` classic bounds (0: native only).
    pub(crate) const fn base(bounds: usize) -> usize {
        if bounds == 0 {
            0
        } else {
            super::histogram::len(bounds)
        }
    }

    /// How a state's bucket cells are laid out, which the file's sub-tag tells
    /// (`multiprocess_store/file.rs`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Form {
        /// One window of `max_buckets` cells, split between the signs by the `WINDOW` cell,
        /// and [`JOURNAL`] journal cells: what this release writes.
        Shared,
        /// A window of `max_buckets` cells per sign (the `WINDOW` cell holds that count) and
        /// the journal's first [`TWIN_JOURNAL`] cells, or none (files of earlier releases).
        Twin,
    }

    impl Form {
        /// The cells of the positive and the negative window, by a `WINDOW` cell (unchecked).
        pub(crate) const fn windows(self, window: u64) -> [u64; 2] {
            match self {
                Form::Shared => [window & 0xffff_ffff, window >> 32],
                Form::Twin => [window, window],
            }
        }

        /// The journal cells after the windows (the twin form may also have none).
        pub(crate) const fn journal_len(self) -> usize {
            match self {
                Form::Shared => JOURNAL,
                Form::Twin => TWIN_JOURNAL,
            }
        }
    }

    /// The `WINDOW` cell of a window split into `positive` and `negative` cells.
    pub(crate) const fn split(positive: usize, negative: usize) -> u64 {
        positive as u64 | (negative as u64) << 32
    }

    /// The first cell of a sign's window (0 positive, 1 negative), for windows of `windows`
    /// cells.
    pub(crate) const fn first(windows: [usize; 2], sign: usize) -> usize {
        if sign == 0 {
            HEADER
        } else {
            HEADER + windows[0]
        }
    }

    /// The journal's first cell, after windows of `windows` cells.
    pub(crate) const fn journal(windows: [usize; 2]) -> usize {
        HEADER + windows[0] + windows[1]
    }

    /// The cells a reduction writes before it moves a count (see `metric/native.rs`), after
    /// the windows, relative to [`journal`]: the layout being moved to and the move in flight.
    pub(crate) const JOURNAL: usize = 5;
    /// The twin form's journal: the first four cells (no next split). Files written before
    /// the journal existed end at the windows; readers tell the two apart by the length.
    pub(crate) const TWIN_JOURNAL: usize = 4;
    /// The next schema, an `i64`.
    pub(crate) const NEXT_SCHEMA: usize = 0;
    /// The next zero threshold, an `f64`.
    pub(crate) const NEXT_ZERO_THRESHOLD: usize = 1;
    /// The next offsets: the positive one in the low 32 bits, the negative one in the high 32
    /// (keys are `i32`).
    pub(crate) const NEXT_OFFSETS: usize = 2;
    /// The move in flight, 0 for none: bits 0..48 the count held, bits 48..62 the target cell
    /// plus 1, bit 62 the toggle that marks which moving source cell the held count includes.
    pub(crate) const MOVE: usize = 3;
    /// The next `WINDOW` cell (the shared form's only).
    pub(crate) const NEXT_WINDOW: usize = 4;

    /// The native cells of a histogram of `max_buckets` buckets, in the form this release
    /// writes.
    pub(crate) const fn len(max_buckets: usize) -> usize {
        HEADER + max_buckets + JOURNAL
    }

    /// The cells of a twin-form state, with the journal or (an older writer's) without.
    #[cfg(test)]
    pub(crate) const fn twin_len(window: usize, journaled: bool) -> usize {
        HEADER + 2 * window + if journaled { TWIN_JOURNAL } else { 0 }
    }
}

/// A summary's cells.
pub(crate) mod summary {
    /// The number of observations, a `u64`.
    pub(crate) const COUNT: usize = 0;
    /// The sum of observations, an `f64`.
    pub(crate) const SUM: usize = 1;
    pub(crate) const LEN: usize = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers of the file format's documentation (`multiprocess_store/file.rs`), which files
    /// written by earlier versions follow.
    #[test]
    fn layouts_match_the_documented_file_format() {
        let len = |kind, stamped, bounds| Layout::of(kind, stamped, bounds).len();
        assert_eq!(len(MetricKind::Counter, true, 9), 2);
        assert_eq!(len(MetricKind::Gauge, false, 9), 1);
        assert_eq!(len(MetricKind::Gauge, true, 0), 3);
        assert_eq!(len(MetricKind::Histogram, false, 11), 13);
        assert_eq!(len(MetricKind::Summary, false, 0), 2);
        assert_eq!(len(MetricKind::Info, false, 0), 0);
        let native = |bounds, classic| {
            Layout::of(MetricKind::Histogram, false, bounds).with_native(160, classic)
        };
        assert_eq!(native(11, true).len(), 13 + 15 + 160 + 5);
        assert_eq!(native(11, true).native_base(), Some(13));
        assert_eq!(native(11, false).len(), 15 + 160 + 5);
        assert_eq!(native(11, false).native_base(), Some(0));
        assert_eq!(native(11, false).float_total(), Some(native::SUM));
        assert_eq!(native(11, true).float_total(), Some(12));
        assert_eq!(
            Layout::of(MetricKind::Counter, false, 0)
                .with_native(9, true)
                .len(),
            2
        );
    }

    #[test]
    fn float_totals_are_the_last_cell_and_indices_stay_in_bounds() {
        for kind in [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
            MetricKind::Summary,
            MetricKind::Info,
        ] {
            for stamped in [false, true] {
                for bounds in [1, 4] {
                    let l = Layout::of(kind, stamped, bounds);
                    if let Some(i) = l.float_total() {
                        assert_eq!(i, l.len() - 1, "{l:?}");
                    }
                }
            }
        }
        assert_eq!(histogram::buckets(3), 0..4);
        assert!(histogram::buckets(3).end <= histogram::sum(3));
        assert!(gauge::SEQUENCE < gauge::len(true) && gauge::VALUE < gauge::len(false));
    }
}
