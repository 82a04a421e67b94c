//! The request-scoped context through which handler attributes talk to the axum layer.
//!
//! The layer runs each request's inner service inside `RequestContext::scope`; a handler
//! marked `#[do_not_track]` or `#[exclude_all_metrics]` records its [`Exclusion`] there with
//! [`exclude`], and the layer reads it when the response is ready. Handler attributes consult
//! [`current_exclusion`] so that `#[exclude_all_metrics]` (and excluded paths, when the layer is
//! configured so) also silence them.
//!
//! The context is a tokio task-local: it reaches every future the handler awaits *in the same
//! task* — `tower::buffer::Buffer` included, whose worker hands the future back to the caller's
//! task. It does not cross `tokio::spawn` (a spawned task starts without it), so a middleware
//! that spawns the inner service loses marks and the request is tracked as usual; the layer's
//! documentation says how to place it so that does not happen. Outside any context (no layer, a direct call in a unit test) marks do nothing.
//!
//! Besides exclusions, the context carries one fact the layer needs and only the inner service
//! knows: that the request was answered by the metrics endpoint ([`mark_metrics_endpoint`]),
//! which the layer does not count unless asked to.

use std::sync::Arc;
#[cfg(feature = "axum")]
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

#[cfg(feature = "axum")]
use crate::layer::hold::Hold;

/// What a request is excluded from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Exclusion {
    /// Tracked by everything.
    #[default]
    None = 0,
    /// Excluded from the layer's default HTTP metrics (`#[do_not_track]`).
    Defaults = 1,
    /// Excluded from every metric, handler attributes included (`#[exclude_all_metrics]`).
    All = 2,
}

impl Exclusion {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Exclusion::None,
            1 => Exclusion::Defaults,
            _ => Exclusion::All,
        }
    }
}

/// One request's shared state, owned by the layer and reachable from the handler's task.
///
/// A context made with [`new`](Self::new) is shared by its clones: marks made inside
/// `scope` are seen afterwards through the original. The layer's own contexts
/// live inline in the request's future instead (no allocation, no reference count): the layer
/// takes the context back out of the future when it completes.
#[derive(Debug)]
pub struct RequestContext {
    inner: Repr,
}

#[derive(Debug)]
enum Repr {
    Shared(Arc<Marks>),
    /// Owned by one future; a clone is a snapshot.
    // Only the axum layer makes inline contexts.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Inline(Marks),
}

impl Clone for RequestContext {
    fn clone(&self) -> Self {
        let inner = match &self.inner {
            Repr::Shared(marks) => Repr::Shared(marks.clone()),
            Repr::Inline(marks) => Repr::Inline(Marks {
                exclusion: AtomicU8::new(marks.exclusion.load(Ordering::Relaxed)),
                metrics_endpoint: AtomicBool::new(marks.metrics_endpoint.load(Ordering::Relaxed)),
                #[cfg(feature = "axum")]
                hold: marks.hold.clone(),
            }),
        };
        Self { inner }
    }
}

impl Default for RequestContext {
    fn default() -> Self {
        Self::new(Exclusion::None)
    }
}

#[derive(Debug, Default)]
struct Marks {
    exclusion: AtomicU8,
    metrics_endpoint: AtomicBool,
    /// Set when the handler keeps the request open past its response
    /// ([`OpenRequest`](crate::layer::OpenRequest)); a snapshot shares it.
    #[cfg(feature = "axum")]
    hold: OnceLock<Arc<Hold>>,
}

impl Marks {
    fn new(initial: Exclusion) -> Self {
        note_exclusion(initial);
        Self {
            exclusion: AtomicU8::new(initial as u8),
            metrics_endpoint: AtomicBool::new(false),
            #[cfg(feature = "axum")]
            hold: OnceLock::new(),
        }
    }
}

#[cfg(feature = "axum")]
tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// Whether any request was ever excluded from every metric. Until one is, handler metrics skip
/// the task-local lookup of [`all_excluded`] and pay one relaxed load instead. Set once, never
/// cleared.
static ANY_EXCLUDED_FROM_ALL: AtomicBool = AtomicBool::new(false);

fn note_exclusion(what: Exclusion) {
    if what == Exclusion::All {
        ANY_EXCLUDED_FROM_ALL.store(true, Ordering::Relaxed);
    }
}

impl RequestContext {
    /// A fresh context, starting at `initial` (the layer starts excluded paths at
    /// [`Exclusion::All`] when excluded paths also skip handler metrics).
    pub fn new(initial: Exclusion) -> Self {
        Self {
            inner: Repr::Shared(Arc::new(Marks::new(initial))),
        }
    }

    /// A context owned by one request's future, which hands it back when done (see
    /// [`scoped`](Self::scoped)): the layer's, with nothing to allocate.
    #[cfg(feature = "axum")]
    pub(crate) fn inline(initial: Exclusion) -> Self {
        Self {
            inner: Repr::Inline(Marks::new(initial)),
        }
    }

    fn marks(&self) -> &Marks {
        match &self.inner {
            Repr::Shared(marks) => marks,
            Repr::Inline(marks) => marks,
        }
    }

    /// Like [`scope`](Self::scope), as a future type that can be named (the layer stores it).
    /// The context moves into the future; `TaskLocalFuture::take_value` gives it back, with
    /// the marks made inside.
    #[cfg(feature = "axum")]
    pub(crate) fn scoped<F: std::future::Future>(
        self,
        future: F,
    ) -> tokio::task::futures::TaskLocalFuture<RequestContext, F> {
        CONTEXT.scope(self, future)
    }

    /// Runs `f` with this context current (for synchronous work such as a service's `call`),
    /// and returns the context with the marks `f` made.
    #[cfg(feature = "axum")]
    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> (R, Self) {
        CONTEXT.sync_scope(self, || {
            let r = f();
            // A snapshot of an inline context, a new reference to a shared one.
            (r, CONTEXT.with(Self::clone))
        })
    }

    /// The hold of a handler that keeps this request open, if it took one.
    #[cfg(feature = "axum")]
    pub(crate) fn hold(&self) -> Option<&Arc<Hold>> {
        self.marks().hold.get()
    }

    /// Whether the metrics endpoint answered this request (see [`mark_metrics_endpoint`]).
    pub fn is_metrics_endpoint(&self) -> bool {
        self.marks().metrics_endpoint.load(Ordering::Relaxed)
    }

    /// Runs `future` with this context current.
    #[cfg(feature = "axum")]
    pub async fn scope<F: std::future::Future>(&self, future: F) -> F::Output {
        CONTEXT.scope(self.clone(), future).await
    }

    /// The strongest exclusion recorded so far.
    pub fn exclusion(&self) -> Exclusion {
        Exclusion::from_u8(self.marks().exclusion.load(Ordering::Relaxed))
    }

    // Marks are only made inside a task-local scope, which needs the axum feature's tokio.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    fn raise(&self, to: Exclusion) {
        note_exclusion(to);
        self.marks()
            .exclusion
            .fetch_max(to as u8, Ordering::Relaxed);
    }
}

/// Records that the current request is excluded (`#[do_not_track]`, `#[exclude_all_metrics]`).
/// Exclusions only grow: `All` wins over `Defaults` whatever the order of the attributes.
#[inline]
pub fn exclude(what: Exclusion) {
    #[cfg(feature = "axum")]
    let _ = CONTEXT.try_with(|c| c.raise(what));
    #[cfg(not(feature = "axum"))]
    let _ = what;
}

/// Records that the metrics endpoint answers the current request, so that the layer leaves it
/// out of the default HTTP metrics wherever the endpoint is mounted (unless the layer is told to
/// track it). `MetricsRouter` calls this; a hand-written metrics
/// endpoint can too.
#[inline]
pub fn mark_metrics_endpoint() {
    #[cfg(feature = "axum")]
    let _ = CONTEXT.try_with(|c| c.marks().metrics_endpoint.store(true, Ordering::Relaxed));
}

/// A new guard on the current request's hold (`None` outside a request context).
#[cfg(feature = "axum")]
pub(crate) fn hold() -> Option<Arc<Hold>> {
    CONTEXT
        .try_with(|c| c.marks().hold.get_or_init(Default::default).guard())
        .ok()
}

/// Whether the current request is excluded from every metric (`#[exclude_all_metrics]`, or an
/// excluded path when the layer also skips handler metrics there). The hot-path check of every
/// handler metric: one relaxed load until some request was ever excluded from all.
#[inline]
pub fn all_excluded() -> bool {
    ANY_EXCLUDED_FROM_ALL.load(Ordering::Relaxed) && current_exclusion() == Exclusion::All
}

/// The current request's exclusion; [`Exclusion::None`] outside any request context.
#[inline]
pub fn current_exclusion() -> Exclusion {
    #[cfg(feature = "axum")]
    return CONTEXT
        .try_with(RequestContext::exclusion)
        .unwrap_or_default();
    #[cfg(not(feature = "axum"))]
    Exclusion::None
}

#[cfg(all(test, feature = "axum"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn marks_reach_the_layer_and_only_grow() {
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
        assert_eq!(current_exclusion(), Exclusion::None);
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
}
