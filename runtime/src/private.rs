//! What macro-generated code reaches through `::promtrack::__private`. Not a public API: its
//! shape may change in any release, which is why `promtrack` depends on `promtrack-macros` with
//! an exact version.
//!
//! The handler attributes expand to a `static` [`Site`] (the declaration, registered at
//! start-up through `DECLARATIONS`), then per call: the exclusion check, the series lookup,
//! and a [`Call`] guard that records when the call ends. The guard is what carries the
//! documented panic and cancellation semantics, so they hold whatever the caller's edition.
//!
//! A counter's or histogram's call attaches an exemplar ([`exemplar_trace`]) unless the
//! attribute says `exemplars = false`, which the guards take as their `EXEMPLARS` parameter.

// The request context: `exclude` and `Exclusion` for the generated code of `#[do_not_track]`
// and `#[exclude_all_metrics]`; the rest for tests that run a handler as the layer would.
pub use crate::context::{Exclusion, RequestContext, Tick, current_exclusion, exclude};
pub use crate::declare::{Configure, LazyFamily, NativeSpec, Site, Spec, refused_declarations};
pub use crate::labels::{KeyWriter, LabelQuery, LabelSet, LabelValue, OwnedStr, ValueWriter};
pub use crate::metric::{Counter, Gauge, GaugeMode, Histogram, InFlight, Info, Summary};
pub use crate::registry::{DECLARATIONS, Declared};
pub use core::option::Option;
pub use core::panic::Location;
pub use linkme;

use crate::context::Traced;
use crate::exemplar::TraceContext;
use crate::key::KeyWords;
use crate::labels::key_values;

/// The path of this process's multiprocess file, if it has one: for tests that corrupt or
/// inspect it. `None` in single-process mode or before the process created its first series.
pub fn multiprocess_own_file() -> Option<std::path::PathBuf> {
    crate::store::own_file()
}

/// Test support for files whose writer died inside a native histogram's reduction: abort this
/// process at the `n`th store of its reductions from now (0: never), and the stores done since.
pub use crate::metric::native::{kill_at_reduction_step, reduction_steps};

/// [`Histogram::observe_with_trace`] with the exemplar rate limit's clock read by the caller
/// (`now`, a [`Tick`] taken anyway to time the observation): the form for code that timed the
/// call, and what `benches/exemplar.rs` measures.
#[inline]
pub fn observe_with_trace_at(h: &Histogram, v: f64, trace: crate::TraceContext, now: Tick) {
    h.observe_with_trace_at(v, trace, now);
}

/// [`Counter::inc_with_trace`] with the caller's clock reading, as
/// [`observe_with_trace_at`].
#[inline]
pub fn inc_with_trace_at(c: &Counter, trace: crate::TraceContext, now: Tick) {
    c.inc_with_trace_at(trace, now);
}

/// Whether the current request is excluded from every metric (`#[exclude_all_metrics]`).
#[inline]
pub fn excluded() -> bool {
    crate::context::all_excluded()
}

/// The trace a handler metric's exemplar carries, read when the call is recorded: with the
/// `opentelemetry` feature, the current `tracing` span's (our span id included); else the
/// trace the layer read from the request's head (see `context.rs`); none when the layer's
/// exemplars are off for this request, or outside any request and span.
#[inline]
pub fn exemplar_trace() -> Option<TraceContext> {
    let traced = crate::context::current_trace();
    if traced == Traced::Off {
        return None;
    }
    #[cfg(feature = "opentelemetry")]
    if let Some(span) = crate::otel::current_trace() {
        return Some(span);
    }
    traced.trace()
}

/// What a call records into: a count, or a duration.
pub trait Record: Sync + 'static {
    /// What is taken when the call starts (`()` for a count, the start time for a duration).
    type Start: Copy;
    /// Takes it.
    fn start() -> Self::Start;
    /// Records one call that started at `start`, with the current trace as its exemplar if
    /// `exemplars` (a summary has none).
    fn record(&self, start: Self::Start, exemplars: bool);
}

impl Record for Counter {
    type Start = ();
    #[inline]
    fn start() {}
    #[inline]
    fn record(&self, _: (), exemplars: bool) {
        match exemplars.then(exemplar_trace).flatten() {
            Some(trace) => self.inc_with_trace(trace),
            None => self.inc(),
        }
    }
}

impl Record for Histogram {
    type Start = Tick;
    #[inline]
    fn start() -> Tick {
        Tick::now()
    }
    /// Always inlined into the handler's future, with the exemplar's offer kept out of line:
    /// as a call of its own it saved and restored six registers per call, about 13
    /// instructions (`scripts/callgrind-layer.sh`; 88 bytes of code more for one site).
    #[inline(always)]
    fn record(&self, start: Tick, exemplars: bool) {
        let end = Tick::now();
        let seconds = end.seconds_from(start);
        match exemplars.then(exemplar_trace).flatten() {
            // The end reading doubles as the exemplar rate limit's clock: no second read.
            Some(trace) => observe_traced(self, seconds, trace, end),
            None => self.observe(seconds),
        }
    }
}

/// A duration with its exemplar: out of line, so that the common call without one stays small
/// where it is inlined.
#[inline(never)]
fn observe_traced(h: &Histogram, seconds: f64, trace: TraceContext, end: Tick) {
    h.observe_with_trace_at(seconds, trace, end);
}

impl Record for Summary {
    type Start = Tick;
    #[inline]
    fn start() -> Tick {
        Tick::now()
    }
    #[inline]
    fn record(&self, start: Tick, _: bool) {
        self.observe(start.seconds_since());
    }
}

/// One call of an async function whose series is known before its body runs.
///
/// Records on [`finish`](Self::finish) (the body returned, `Ok` or `Err` alike) and, if dropped
/// unfinished, only while a panic unwinds: a future dropped before completion (a cancelled
/// request) records nothing.
///
/// It holds the series and the start alone (no "finished" flag: `finish` consumes it without
/// running its `Drop`), so that the handler's future, which keeps it across the body's
/// `.await`, stays small.
#[must_use]
pub struct Call<M: Record, const EXEMPLARS: bool = true> {
    metric: &'static M,
    start: M::Start,
}

impl<M: Record, const EXEMPLARS: bool> Call<M, EXEMPLARS> {
    /// Starts a call that records into `metric`.
    #[inline]
    pub fn start(metric: &'static M) -> Self {
        Self {
            metric,
            start: M::start(),
        }
    }

    /// Ends a call that completed: records it unless the request is excluded.
    #[inline]
    pub fn finish(self) {
        // Its `Drop` is for calls that did not finish.
        let this = std::mem::ManuallyDrop::new(self);
        if !excluded() {
            this.metric.record(this.start, EXEMPLARS);
        }
    }
}

impl<M: Record, const EXEMPLARS: bool> Drop for Call<M, EXEMPLARS> {
    /// A call dropped unfinished: recorded only while a panic unwinds (a cancelled call is not).
    #[inline]
    fn drop(&mut self) {
        if std::thread::panicking() && !excluded() {
            self.metric.record(self.start, EXEMPLARS);
        }
    }
}

/// A sync call: records whenever it ends, returned or panicked (a sync call cannot be
/// cancelled).
#[must_use]
pub struct SyncCall<M: Record, const EXEMPLARS: bool = true> {
    metric: &'static M,
    start: M::Start,
}

impl<M: Record, const EXEMPLARS: bool> SyncCall<M, EXEMPLARS> {
    /// Starts a call that records into `metric`.
    #[inline]
    pub fn start(metric: &'static M) -> Self {
        Self {
            metric,
            start: M::start(),
        }
    }
}

impl<M: Record, const EXEMPLARS: bool> Drop for SyncCall<M, EXEMPLARS> {
    #[inline]
    fn drop(&mut self) {
        if !excluded() {
            self.metric.record(self.start, EXEMPLARS);
        }
    }
}

/// The start of a call whose series depends on its return value: nothing is recorded unless
/// [`finish`](Self::finish) is called with that series.
#[must_use]
pub struct Pending<M: Record, const EXEMPLARS: bool = true> {
    start: M::Start,
}

impl<M: Record, const EXEMPLARS: bool> Pending<M, EXEMPLARS> {
    /// Takes the start.
    #[inline]
    pub fn start() -> Self {
        Self { start: M::start() }
    }

    /// Records the call into the series chosen by `series`, unless the request is excluded.
    #[inline]
    pub fn finish(self, series: impl FnOnce() -> &'static M) {
        if !excluded() {
            series().record(self.start, EXEMPLARS);
        }
    }
}

/// Tracks a call in progress on `gauge`, unless the request is excluded.
#[inline]
pub fn track(gauge: impl FnOnce() -> &'static Gauge) -> Option<InFlight<'static>> {
    if excluded() {
        None
    } else {
        Some(gauge().track())
    }
}

/// Calls a return-value label closure; the bound gives the closure its parameter type, so users
/// may leave it out.
#[inline]
pub fn label_of<'a, T: ?Sized, V: LabelValue>(ret: &'a T, f: impl FnOnce(&'a T) -> V) -> V {
    f(ret)
}

/// Label values computed before the body ran, kept as text so that the body may consume the
/// arguments they came from. Only for functions with both argument and return-value labels;
/// it allocates the rendered values once per call.
pub struct Prerendered {
    key: Vec<u8>,
}

impl Prerendered {
    /// Renders the values `write` writes.
    #[inline]
    pub fn new(write: impl FnOnce(&mut KeyWriter<'_>)) -> Self {
        let mut words = KeyWords::new();
        let mut writer = KeyWriter::new(&mut words, 0);
        write(&mut writer);
        Self {
            key: writer.finish().key.to_bytes(),
        }
    }

    /// The values, in order.
    #[inline]
    pub fn values(&self) -> impl Iterator<Item = &str> {
        key_values(&self.key)
    }
}

/// Checks bucket bounds given as a constant expression, at compile time: the generated code
/// calls this in a `static`'s initializer, so a bad constant fails const evaluation with this
/// message.
pub const fn check_buckets(bounds: &'static [f64]) -> &'static [f64] {
    assert!(
        !bounds.is_empty(),
        "promtrack: a histogram needs at least one finite bucket bound"
    );
    let mut i = 0;
    while i < bounds.len() {
        assert!(
            bounds[i].is_finite(),
            "promtrack: bucket bounds must be finite; `+Inf` is always added, list only finite bounds"
        );
        if i > 0 {
            assert!(
                bounds[i - 1] < bounds[i],
                "promtrack: bucket bounds must increase strictly; sort them and drop duplicates"
            );
        }
        i += 1;
    }
    bounds
}

/// The cardinality of a derived label set: the product of its fields' cardinalities, when every
/// one is fixed and the product stays small enough to index.
pub const fn product(cardinalities: &[Option<usize>]) -> Option<usize> {
    let mut n: usize = 1;
    let mut i = 0;
    while i < cardinalities.len() {
        match cardinalities[i] {
            Some(c) => match n.checked_mul(c) {
                Some(m) => n = m,
                None => return None,
            },
            None => return None,
        }
        i += 1;
    }
    Some(n)
}

/// Series keys exactly as [`Family::with`](crate::Family::with) makes them, for the benchmark that
/// compares the family's own lock-free table with a concurrent map crate
/// (`counter_lookup_index` in `benches/benches/core.rs`). promtrack itself does not use this
/// module; it exists so that the two index structures can be compared with everything else equal:
/// the same key words, the same hash and seed, the same comparison, the same stored value.
#[doc(hidden)]
pub mod index_bench {
    use crate::cell::Cells;
    use crate::key::{KeyRef, KeyWords, stored_key_matches};
    use crate::labels::{KeyWriter, LabelSet};
    use crate::metric::Counter;
    use crate::metric::private::Sealed;

    /// A key being looked up: the label values packed into words, and their hash.
    #[derive(Clone, Copy)]
    pub struct LookupKey<'a> {
        key: KeyRef<'a>,
        hash: u64,
    }

    impl LookupKey<'_> {
        /// The key's hash under the seed it was made with.
        #[inline(always)]
        pub fn hash(&self) -> u64 {
            self.hash
        }

        /// Whether `stored` is this key: the comparison the family's table makes
        /// (`key::stored_key_matches`, as `Record::matches` calls it).
        #[inline(always)]
        pub fn matches(&self, stored: &SeriesKey) -> bool {
            stored_key_matches(&stored.words, &self.key)
        }

        /// The key as a series record stores it.
        pub fn to_stored(&self) -> SeriesKey {
            SeriesKey {
                words: self.key.words.iter().map(|w| w.to_le()).collect(),
                hash: self.hash,
            }
        }
    }

    /// A key as a series record stores it (its words, little-endian; a record holds them after
    /// its header and cells, in the same allocation), with its hash.
    pub struct SeriesKey {
        words: Box<[u64]>,
        hash: u64,
    }

    impl SeriesKey {
        /// The hash it was stored under.
        #[inline(always)]
        pub fn hash(&self) -> u64 {
            self.hash
        }

        /// Whether two stored keys are the same key.
        pub fn same(&self, other: &SeriesKey) -> bool {
            self.words == other.words
        }
    }

    /// Calls `f` with the key of `labels` hashed under `seed`: the steps of a family's lookup
    /// before its table is probed (values written into words on the stack, then hashed).
    #[inline(always)]
    pub fn with_key<L: LabelSet + ?Sized, R>(
        labels: &L,
        seed: u64,
        f: impl FnOnce(LookupKey<'_>) -> R,
    ) -> R {
        let mut words = KeyWords::new();
        let mut writer = KeyWriter::new(&mut words, seed);
        labels.write_values(&mut writer);
        let written = writer.finish();
        f(LookupKey {
            key: written.key,
            hash: written.hash,
        })
    }

    /// A counter at zero on heap cells: what a family's series holds outside multiprocess mode.
    pub fn counter() -> Counter {
        Counter::from_cells(Cells::heap(crate::layout::counter::LEN), &())
    }
}

/// The series of `family` whose label values `write` writes, in label-name order: the lookup
/// generated code makes when its label values have types known only to the compiler (users call
/// `Family::with`).
#[inline]
pub fn with_writer<L: LabelSet, M: crate::Metric>(
    family: &crate::Family<L, M>,
    write: impl FnOnce(&mut KeyWriter<'_>),
) -> &M {
    family.with_writer(write)
}
