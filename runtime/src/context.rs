//! The request context: how handler attributes and the metrics endpoint talk to the axum layer
//! without a parameter in any signature.
//!
//! The layer owns one [`RequestMarks`] per request and makes it current with
//! [`RequestMarks::enter`] around each poll of the request's inner future. Inside, a handler
//! marked `#[do_not_track]` or `#[exclude_all_metrics]` raises the request's [`Exclusion`] with
//! [`exclude`], the metrics endpoint says it answered with [`mark_metrics_endpoint`], and handler
//! metrics ask [`all_excluded`] whether to stay silent. Outside any context (no layer, a direct
//! call in a unit test) marks do nothing and nothing is excluded.
//!
//! The marks also carry one value of the layer's choosing ([`attach`], [`RequestMarks::attached`]),
//! which this module stores without knowing its type: the layer depends on the context, never
//! the reverse. And they carry the request's [`Traced`] — the trace the layer read from its
//! head (a sampled `traceparent`, or the user's `exemplar_from_request`), or that exemplars are
//! off — so that handler attributes attach the same exemplar as the layer ([`current_trace`]).
//!
//! Invariants:
//! - The current marks are a thread-local pointer, set only for the duration of `enter` (and
//!   restored on the way out, unwinding included), so it never outlives the borrow it came
//!   from. Like a tokio task-local, it reaches every future the handler awaits *in the same
//!   task* — `tower::buffer::Buffer` included, whose worker hands the future back to the
//!   caller's task — and not a task the handler spawns (polled elsewhere, without it).
//! - Exclusions only grow (`All` wins over `Defaults` whatever the order of the attributes).
//!
//! It re-exports [`Tick`] (`clock.rs`), the clock reading both the layer and the duration
//! attributes take at a call's start and end, so the two measure durations alike.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

pub use crate::clock::Tick;
use crate::exemplar::TraceContext;

/// What a request is excluded from, ordered from least to most: the one vocabulary of the
/// handler's marks, of what the layer learned about a route and of what a request records
/// (the strongest of those wins, [`Ord::max`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Exclusion {
    /// Tracked by everything.
    #[default]
    None = 0,
    /// Excluded from the layer's default HTTP metrics (`#[do_not_track]`, or an excluded path
    /// when excluded paths keep the user's metrics).
    Defaults = 1,
    /// Excluded from every metric, handler attributes included (`#[exclude_all_metrics]`, the
    /// metrics endpoint, an excluded path).
    All = 2,
}

impl Exclusion {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => Exclusion::None,
            1 => Exclusion::Defaults,
            _ => Exclusion::All,
        }
    }

    /// Whether a request excluded so is recorded in the layer's default metrics.
    #[inline]
    pub(crate) fn records_defaults(self) -> bool {
        self == Exclusion::None
    }

    /// Whether a request excluded so is recorded in the layer's route metrics
    /// (`register_default`).
    #[inline]
    pub(crate) fn records_routes(self) -> bool {
        self != Exclusion::All
    }
}

/// What a request's exemplars carry, as the layer decided when it read the request's head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Traced {
    /// The layer's exemplars are off (`MetricsLayerBuilder::exemplars(false)`): the request's
    /// metrics, handler attributes included, attach none.
    Off,
    /// No trace came with the request (a traced span may still give one, see `otel.rs`); also
    /// what a call outside any request context sees.
    #[default]
    Untraced,
    /// The request's trace.
    Trace(TraceContext),
}

impl Traced {
    /// The request's trace, if any.
    #[inline]
    pub(crate) fn trace(self) -> Option<TraceContext> {
        match self {
            Traced::Trace(t) => Some(t),
            Traced::Off | Traced::Untraced => None,
        }
    }

    /// The request's trace, if any, borrowed.
    #[inline]
    pub(crate) fn trace_ref(&self) -> Option<&TraceContext> {
        match self {
            Traced::Trace(t) => Some(t),
            Traced::Off | Traced::Untraced => None,
        }
    }
}

/// What one request's handler told the layer. Shared by reference while the handler runs (the
/// handler's task only reads and raises it), read by the layer when the response is ready.
#[derive(Default)]
pub(crate) struct RequestMarks {
    exclusion: AtomicU8,
    metrics_endpoint: AtomicBool,
    /// The layer's value for this request (an `OpenRequest`'s hold), created on first use.
    attached: OnceLock<Arc<dyn Any + Send + Sync>>,
    /// Set by the layer before the handler runs (`&mut`), read-only after.
    traced: Traced,
}

impl std::fmt::Debug for RequestMarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMarks")
            .field("exclusion", &self.exclusion())
            .field("metrics_endpoint", &self.is_metrics_endpoint())
            .field("attached", &self.attached.get().is_some())
            .field("traced", &self.traced)
            .finish()
    }
}

impl RequestMarks {
    /// Marks starting at `initial` (the layer starts excluded paths excluded).
    #[inline]
    pub(crate) fn new(initial: Exclusion) -> Self {
        note_exclusion(initial);
        Self {
            exclusion: AtomicU8::new(initial as u8),
            metrics_endpoint: AtomicBool::new(false),
            attached: OnceLock::new(),
            traced: Traced::Untraced,
        }
    }

    /// What the request's exemplars carry (see [`Traced`]).
    #[inline]
    pub(crate) fn traced(&self) -> Traced {
        self.traced
    }

    /// The same, borrowed: the layer reads it once per request without copying it.
    #[inline]
    pub(crate) fn traced_ref(&self) -> &Traced {
        &self.traced
    }

    /// Sets what the request's exemplars carry: before the handler runs, hence `&mut`.
    /// [`Traced::Untraced`], what the marks start with, is not written.
    #[inline]
    pub(crate) fn set_traced(&mut self, traced: Traced) {
        if traced != Traced::Untraced {
            if Self::changes_attributes(traced) && !ANY_TRACED.load(Ordering::Relaxed) {
                ANY_TRACED.store(true, Ordering::Relaxed);
            }
            self.traced = traced;
        }
    }

    /// Whether a handler attribute must read `traced` from the marks: a trace gives its
    /// exemplar; [`Traced::Off`] matters only where the current span would give one (the
    /// `opentelemetry` feature), and without it reads as [`Traced::Untraced`] does.
    #[inline]
    fn changes_attributes(traced: Traced) -> bool {
        matches!(traced, Traced::Trace(_)) || cfg!(feature = "opentelemetry")
    }

    /// The strongest exclusion recorded so far.
    #[inline]
    pub(crate) fn exclusion(&self) -> Exclusion {
        Exclusion::from_u8(self.exclusion.load(Ordering::Relaxed))
    }

    /// Whether the metrics endpoint answered this request (see [`mark_metrics_endpoint`]).
    #[inline]
    pub(crate) fn is_metrics_endpoint(&self) -> bool {
        self.metrics_endpoint.load(Ordering::Relaxed)
    }

    fn raise(&self, to: Exclusion) {
        note_exclusion(to);
        self.exclusion.fetch_max(to as u8, Ordering::Relaxed);
    }

    /// The value [`attach`] created for this request, if any and if it is a `T`.
    #[inline]
    pub(crate) fn attached<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.attached.get()?.clone().downcast().ok()
    }

    /// Runs `f` with these marks current: what `f` (and whatever it polls on this thread)
    /// marks lands here.
    #[inline]
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Restores the previous marks when `enter` ends, by return or unwinding.
        struct Restore(Option<NonNull<RequestMarks>>);
        impl Drop for Restore {
            #[inline]
            fn drop(&mut self) {
                let _ = CURRENT.try_with(|c| c.set(self.0));
            }
        }
        let previous = CURRENT
            .try_with(|c| c.replace(Some(NonNull::from(self))))
            .ok()
            .flatten();
        let _restore = Restore(previous);
        f()
    }
}

thread_local! {
    /// The marks of the request being polled on this thread (see the module's invariants).
    static CURRENT: Cell<Option<NonNull<RequestMarks>>> = const { Cell::new(None) };
}

/// Runs `f` on the current request's marks, if there are any.
#[inline]
fn with_current<R>(f: impl FnOnce(&RequestMarks) -> R) -> Option<R> {
    let current = CURRENT.try_with(Cell::get).ok().flatten()?;
    // SAFETY: `CURRENT` holds a pointer only while the `enter` that set it is on this thread's
    // stack, holding the borrow it came from (the previous value is restored when `enter`
    // ends, unwinding included); the reference does not escape `f`.
    Some(f(unsafe { current.as_ref() }))
}

/// A request context of one's own: the marks of a request, shared by its clones, for running a
/// handler as the layer would (tests, another layer).
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    marks: Arc<RequestMarks>,
}

impl RequestContext {
    /// A fresh context, starting at `initial`.
    pub fn new(initial: Exclusion) -> Self {
        Self {
            marks: Arc::new(RequestMarks::new(initial)),
        }
    }

    /// Runs `future` with this context current in each of its polls.
    pub async fn scope<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| self.marks.enter(|| future.as_mut().poll(cx))).await
    }

    /// A fresh context whose request came with `trace`: the handler attributes it runs attach
    /// it as their exemplar, as behind the layer with a sampled `traceparent`.
    pub fn traced(initial: Exclusion, trace: TraceContext) -> Self {
        let mut marks = RequestMarks::new(initial);
        marks.set_traced(Traced::Trace(trace));
        Self {
            marks: Arc::new(marks),
        }
    }

    /// The strongest exclusion recorded so far.
    pub fn exclusion(&self) -> Exclusion {
        self.marks.exclusion()
    }

    /// Whether the metrics endpoint answered this request (see [`mark_metrics_endpoint`]).
    pub fn is_metrics_endpoint(&self) -> bool {
        self.marks.is_metrics_endpoint()
    }
}

/// Whether any request was ever excluded from every metric. Until one is, handler metrics skip
/// the thread-local lookup of [`all_excluded`] and pay one relaxed load instead. Set once,
/// never cleared.
static ANY_EXCLUDED_FROM_ALL: AtomicBool = AtomicBool::new(false);

/// Whether any request's marks ever held a trace (or, with the `opentelemetry` feature,
/// exemplars switched off: see `RequestMarks::changes_attributes`). Until one did, handler
/// metrics skip the thread-local lookup of [`current_trace`] (every request reads as untraced
/// to them) and pay one relaxed load instead. Set once, never cleared; read and written with
/// no other ordering (each request's marks are written before its handler runs, on the path
/// that hands the marks to it).
static ANY_TRACED: AtomicBool = AtomicBool::new(false);

#[inline]
fn note_exclusion(what: Exclusion) {
    if what == Exclusion::All {
        ANY_EXCLUDED_FROM_ALL.store(true, Ordering::Relaxed);
    }
}

/// Records that the current request is excluded (`#[do_not_track]`, `#[exclude_all_metrics]`).
/// Exclusions only grow: `All` wins over `Defaults` whatever the order of the attributes.
#[inline]
pub fn exclude(what: Exclusion) {
    with_current(|m| m.raise(what));
}

/// Records that the metrics endpoint answers the current request, so that the axum layer leaves
/// it out of the default HTTP metrics wherever the endpoint is mounted (unless the layer is told
/// to track it). `MetricsRouter` calls this; a hand-written metrics endpoint can too.
#[inline]
pub fn mark_metrics_endpoint() {
    with_current(|m| m.metrics_endpoint.store(true, Ordering::Relaxed));
}

/// The current request's value of type `T`, created with `T::default()` by the first call of a
/// request (`None` outside a request context, or if the request already holds a value of
/// another type).
pub(crate) fn attach<T: Any + Send + Sync + Default>() -> Option<Arc<T>> {
    with_current(|m| {
        let value = m.attached.get_or_init(|| Arc::new(T::default()));
        value.clone().downcast().ok()
    })
    .flatten()
}

/// Whether the current request is excluded from every metric (`#[exclude_all_metrics]`, or an
/// excluded path when the layer also skips handler metrics there). The hot-path check of every
/// handler metric: one relaxed load until some request was ever excluded from all.
#[inline]
pub fn all_excluded() -> bool {
    ANY_EXCLUDED_FROM_ALL.load(Ordering::Relaxed) && current_exclusion() == Exclusion::All
}

/// What the current request's exemplars carry, as handler attributes need it; [`Traced::Untraced`]
/// outside any request context (and for [`Traced::Off`] marks until some request was traced,
/// where the difference cannot matter: see `RequestMarks::changes_attributes`).
#[inline]
pub(crate) fn current_trace() -> Traced {
    if !ANY_TRACED.load(Ordering::Relaxed) {
        return Traced::Untraced;
    }
    with_current(RequestMarks::traced).unwrap_or_default()
}

/// The current request's exclusion; [`Exclusion::None`] outside any request context.
#[inline]
pub fn current_exclusion() -> Exclusion {
    with_current(RequestMarks::exclusion).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn marks_reach_the_context_and_only_grow() {
        let ctx = RequestContext::new(Exclusion::None);
        ctx.scope(async {
            assert_eq!(current_exclusion(), Exclusion::None);
            exclude(Exclusion::All);
            exclude(Exclusion::Defaults);
            assert_eq!(current_exclusion(), Exclusion::All);
        })
        .await;
        assert_eq!(ctx.exclusion(), Exclusion::All);
    }

    #[tokio::test]
    async fn outside_a_context_marks_do_nothing() {
        exclude(Exclusion::All);
        mark_metrics_endpoint();
        assert_eq!(current_exclusion(), Exclusion::None);
        assert!(attach::<u8>().is_none());
    }

    #[tokio::test]
    async fn spawned_tasks_do_not_inherit_the_context() {
        let ctx = RequestContext::new(Exclusion::None);
        ctx.scope(async {
            tokio::spawn(async { exclude(Exclusion::All) })
                .await
                .unwrap();
        })
        .await;
        assert_eq!(ctx.exclusion(), Exclusion::None);
    }

    #[test]
    fn nested_contexts_restore_the_outer_one_even_on_a_panic() {
        let outer = RequestMarks::new(Exclusion::None);
        let inner = RequestMarks::new(Exclusion::None);
        outer.enter(|| {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inner.enter(|| {
                    exclude(Exclusion::Defaults);
                    panic!("in the inner request");
                })
            }));
            assert!(caught.is_err());
            exclude(Exclusion::All);
        });
        assert_eq!(inner.exclusion(), Exclusion::Defaults);
        assert_eq!(outer.exclusion(), Exclusion::All);
        assert_eq!(current_exclusion(), Exclusion::None);
    }

    #[test]
    fn ticks_read_the_clock_instant_reads() {
        let start = Tick::now();
        let before = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let instant = before.elapsed().as_secs_f64();
        let tick = start.seconds_since();
        // The same clock: the tick, started first and read last, spans the `Instant`'s interval
        // (a different clock, or a unit error, would not stay within a second of it).
        assert!(instant >= 0.02, "{instant}");
        assert!(
            tick >= instant && tick < instant + 1.0,
            "{tick} vs {instant}"
        );
    }

    #[tokio::test]
    async fn the_request_trace_reaches_the_context_only_inside_it() {
        let trace = TraceContext::new([0x4b; 16], None).unwrap();
        let ctx = RequestContext::traced(Exclusion::None, trace);
        let seen = ctx.scope(async { current_trace() }).await;
        assert_eq!(seen, Traced::Trace(trace));
        assert_eq!(current_trace(), Traced::Untraced);
        let plain = RequestContext::new(Exclusion::None);
        assert_eq!(
            plain.scope(async { current_trace() }).await,
            Traced::Untraced
        );
    }

    /// Exemplars switched off reach handler attributes as no trace, whether they read the
    /// marks (the `opentelemetry` feature, or some request was traced) or not.
    #[test]
    fn exemplars_off_give_attributes_no_trace() {
        assert_eq!(
            RequestMarks::changes_attributes(Traced::Off),
            cfg!(feature = "opentelemetry")
        );
        let trace = TraceContext::new([0x4c; 16], None).unwrap();
        assert!(RequestMarks::changes_attributes(Traced::Trace(trace)));
        let mut marks = RequestMarks::new(Exclusion::None);
        marks.set_traced(Traced::Off);
        assert_eq!(marks.traced(), Traced::Off);
        assert!(marks.enter(crate::__private::exemplar_trace).is_none());
    }

    #[test]
    fn the_attached_value_is_created_once_per_request() {
        let marks = RequestMarks::new(Exclusion::None);
        let (a, b) = marks.enter(|| (attach::<AtomicU8>(), attach::<AtomicU8>()));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        assert!(
            marks
                .attached::<AtomicU8>()
                .is_some_and(|c| Arc::ptr_eq(&a, &c))
        );
        assert!(marks.attached::<AtomicBool>().is_none());
    }
}
