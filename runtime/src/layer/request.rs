//! [`RequestState`]: one request's state machine, from the service's `call` to the end of its
//! response body, and what it records at each step.
//!
//! ```text
//! Running ──head──▶ Recorded ──body end──▶ Done      (RequestEnd::ResponseHead)
//!    │      └─────▶ Streaming ──body end──▶ Done      (RequestEnd::BodyEnd, or a held request)
//!    └──cancelled / dropped──▶ (gauges lowered, nothing recorded)
//! ```
//!
//! Invariants:
//! - A request is recorded at most once (`finish` moves the phase past `Streaming`), and its
//!   panic is counted at most once.
//! - Whatever happens — a cancelled request (the client went away before the head) included —
//!   dropping the state lowers exactly the in-progress gauges it raised.
//! - What a request records is the strongest of three [`Exclusion`]s: the route's verdict,
//!   its path's, and its handler's marks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::StatusCode;

use super::LayerState;
use super::cache::SeriesCache;
use super::config::RequestEnd;
use super::exemplars::with_record_trace;
use super::families::{Outcome, PathValue, SeriesRef};
use super::http_labels::{MethodLabel, UNMATCHED_PATH};
use super::routes::Route;
use super::service::ServiceState;
use crate::Gauge;
use crate::context::{Exclusion, RequestMarks, Tick};

/// A request's route: its verdict when the request started, or the route itself while its
/// verdict is still being learned.
pub(crate) enum RouteVerdict {
    Known(Exclusion),
    Learning(Arc<Route>),
}

impl RouteVerdict {
    /// The route's verdict now (`None`: not known yet).
    pub(crate) fn get(&self) -> Option<Exclusion> {
        match self {
            RouteVerdict::Known(v) => Some(*v),
            RouteVerdict::Learning(r) => r.verdict(),
        }
    }
}

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the response head.
    Running,
    /// The head is out; recording waits for the body's end (`RequestEnd::BodyEnd`, or a held
    /// request's last guard).
    Streaming,
    /// Recorded; only the response size (and a body panic) may still be reported.
    Recorded,
    /// Nothing left to do.
    Done,
}

/// One request's state, from `call` to the end of its response body.
pub(crate) struct RequestState {
    service: Arc<ServiceState>,
    route: RouteVerdict,
    /// Whether the route's series cache serves this request.
    cached: bool,
    /// What the handler marked, made current around each poll of the inner service.
    pub(crate) marks: RequestMarks,
    start: Tick,
    /// What the request's path excludes it from (`excluded_paths`).
    path_exclusion: Exclusion,
    /// The exclusion the in-progress gauges were raised under, to lower the same ones, and
    /// the default gauge's series.
    raised: Option<(Exclusion, Option<SeriesRef<Gauge>>)>,
    unmatched: bool,
    phase: Phase,
    pub(crate) outcome: Outcome,
}

impl RequestState {
    /// A request that starts, on the heap where it will live until its response body ends; its marks
    /// start excluded where its path excludes it from everything (so that handler metrics of
    /// the inner service stay silent there). Its outcome starts with the method alone (built
    /// here, in place: built by the caller it was one more copy); the caller fills in what it
    /// reads of the request, then raises the in-progress gauges
    /// ([`raise_in_progress`](Self::raise_in_progress)).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn start(
        service: Arc<ServiceState>,
        route: RouteVerdict,
        cached: bool,
        start: Tick,
        path_exclusion: Exclusion,
        unmatched: bool,
        method: MethodLabel,
    ) -> StateBox {
        let initial = match path_exclusion {
            Exclusion::All => Exclusion::All,
            _ => Exclusion::None,
        };
        let memory = StateBox::memory();
        StateBox::new(
            memory,
            Self {
                service,
                route,
                cached,
                marks: RequestMarks::new(initial),
                start,
                path_exclusion,
                raised: None,
                unmatched,
                phase: Phase::Running,
                outcome: Outcome::new(method, PathValue::Static(UNMATCHED_PATH)),
            },
        )
    }

    pub(crate) fn layer(&self) -> &LayerState {
        &self.service.layer
    }

    /// The series cache of the request's route, where it may serve this request.
    #[inline]
    fn cache(&self) -> Option<&SeriesCache> {
        let (_, route) = self.service.own_route.get().filter(|_| self.cached)?;
        Some(&route.series)
    }

    /// Raises the in-progress gauges, where the route is known to be tracked (see
    /// `routes.rs`). The common request — a tracked route, a path that excludes nothing, its
    /// gauge already in the route's cache, no route metrics — is served inline; the rest by
    /// [`raise_in_progress_slow`](Self::raise_in_progress_slow), out of line.
    #[inline(always)]
    pub(crate) fn raise_in_progress(&mut self) {
        if let (RouteVerdict::Known(Exclusion::None), Exclusion::None) =
            (&self.route, self.path_exclusion)
        {
            let families = &self.service.layer.families;
            if let (Some(cache), false) = (self.cache(), families.has_route_metrics()) {
                if let Some(Some(gauge)) = cache.cached_in_progress(self.outcome.method) {
                    let gauge = families.raise_in_progress(Some(gauge), &[], Exclusion::None);
                    self.raised = Some((Exclusion::None, gauge));
                    return;
                }
            }
        }
        self.raise_in_progress_slow();
    }

    #[inline(never)]
    fn raise_in_progress_slow(&mut self) {
        let families = &self.layer().families;
        let Some(verdict) = self.route.get() else {
            return;
        };
        let exclusion = verdict.max(self.path_exclusion);
        if !families.has_in_progress() || exclusion == Exclusion::All {
            return;
        }
        let lookup = || families.in_progress_series(&self.outcome);
        let default = match (exclusion.records_defaults(), self.cache()) {
            (false, _) => None,
            (true, Some(cache)) => cache.in_progress(self.outcome.method, lookup),
            (true, None) => lookup(),
        };
        let gauge = families.raise_in_progress(default, self.outcome.route_values(), exclusion);
        self.raised = Some((exclusion, gauge));
    }

    fn lower_in_progress(&mut self) {
        if let Some((exclusion, gauge)) = self.raised.take() {
            self.service.layer.families.lower_in_progress(
                gauge,
                self.outcome.route_values(),
                exclusion,
            );
        }
    }

    /// What the handler's marks exclude the request from (the metrics endpoint: everything,
    /// unless it is tracked).
    fn marked(&self) -> Exclusion {
        if self.marks.is_metrics_endpoint() && !self.layer().track_metrics_endpoint {
            return Exclusion::All;
        }
        self.marks.exclusion()
    }

    /// Whether what is reported after the request was recorded (its response size, a body
    /// panic) goes into the default metrics: a route known to be tracked, a path and a
    /// handler that exclude nothing.
    fn tracked_after_recording(&self) -> bool {
        self.route.get() == Some(Exclusion::None)
            && self.path_exclusion.max(self.marked()) == Exclusion::None
    }

    /// The response head is known. A `held` request (an [`OpenRequest`] is alive) does not
    /// end here: it ends when its state is dropped.
    ///
    /// [`OpenRequest`]: super::OpenRequest
    ///
    /// Inlined: out of line, its call and the status and response parts passed to it cost
    /// about 32 instructions per request (`scripts/callgrind-layer.sh`, over the identity
    /// layer).
    #[inline]
    pub(crate) fn head(
        &mut self,
        status: StatusCode,
        response: Option<&http::response::Parts>,
        held: bool,
    ) {
        self.outcome.status = status;
        if let Some(parts) = response {
            let f = &self.service.layer.families;
            let configured = self.outcome.configured();
            configured.values.add_response(&f.extras, parts);
            for (v, labels) in configured.route_values.iter_mut().zip(f.route_labels()) {
                v.add_response(labels, parts);
            }
        }
        if held {
            // The response body is not tracked then: its size is not known, not recorded as 0.
            if let Some(c) = self.outcome.configured.as_mut() {
                c.response_size = None;
            }
            self.phase = Phase::Streaming;
            return;
        }
        match self.layer().request_end {
            RequestEnd::ResponseHead => self.finish(false),
            RequestEnd::BodyEnd => self.phase = Phase::Streaming,
        }
    }

    /// Records the request: the duration ends now.
    fn finish(&mut self, body_done: bool) {
        let end = Tick::now();
        self.outcome.seconds = end.seconds_from(self.start);
        // Before the body's end its size is not known yet: it is recorded then (`body_end`).
        let mut response_size = None;
        if let Some(c) = self.outcome.configured.as_mut() {
            if let Some(read) = &c.request_read {
                c.request_size = Some(read.load(Ordering::Relaxed));
            }
            if !body_done {
                response_size = c.response_size.take();
            }
        }
        self.lower_in_progress();
        self.phase = if body_done {
            Phase::Done
        } else {
            Phase::Recorded
        };
        if self.path_exclusion == Exclusion::All {
            // An excluded path: nothing to record, and its marks (the layer's own) teach
            // nothing about the route.
            return;
        }
        let status = self.outcome.status;
        let decisive = self.unmatched || !status.is_client_error();
        let marked = self.marked();
        let families = &self.service.layer.families;
        with_record_trace(self.marks.traced_ref(), |trace| match &self.route {
            RouteVerdict::Learning(route) => route.settle(
                families,
                &self.outcome,
                marked,
                decisive,
                self.path_exclusion,
                trace,
                end,
            ),
            // Known before the request started: a mark now is honoured for this request.
            &RouteVerdict::Known(verdict) => {
                let exclusion = verdict.max(self.path_exclusion).max(marked);
                // Only a request recorded in the defaults resolves its series: the cache must
                // not create a series an untracked request would not.
                let mut spare = None;
                let series = self
                    .cache()
                    .filter(|_| exclusion.records_defaults())
                    .map(|cache| {
                        let resolve = || families.resolve(&self.outcome);
                        cache.finished(self.outcome.method, status, resolve, &mut spare)
                    });
                families.record(&self.outcome, exclusion, series, trace, end);
            }
        });
        if let (Some(c), Some(size)) = (self.outcome.configured.as_mut(), response_size) {
            c.response_size = Some(size);
        }
    }

    /// Whether the response body has anything left to report: its end (the request is not
    /// recorded yet) or its size. Otherwise only a panic while it streams would be, which a
    /// body of known size cannot have (see `answer` in `service.rs`).
    pub(crate) fn follows_body(&self) -> bool {
        self.phase != Phase::Recorded || self.outcome.response_size().is_some()
    }

    /// Bytes of response body went out.
    pub(crate) fn body_bytes(&mut self, n: usize) {
        if let Some(size) = self
            .outcome
            .configured
            .as_mut()
            .and_then(|c| c.response_size.as_mut())
        {
            *size += n as u64;
        }
    }

    /// The response body ended (or failed).
    pub(crate) fn body_end(&mut self) {
        match self.phase {
            Phase::Streaming => self.finish(true),
            Phase::Recorded => {
                self.phase = Phase::Done;
                if self.outcome.response_size().is_some() && self.tracked_after_recording() {
                    self.layer().families.record_response_size(&self.outcome);
                }
            }
            Phase::Running | Phase::Done => {}
        }
    }

    /// The response body panicked: count it once, as an exception of this request.
    pub(crate) fn body_panicked(&mut self) {
        match self.phase {
            Phase::Streaming => {
                self.outcome.panicked = true;
                self.finish(true);
            }
            Phase::Recorded => {
                self.phase = Phase::Done;
                if self.tracked_after_recording() {
                    self.outcome.panicked = true;
                    self.layer().families.count_exception(&self.outcome);
                }
            }
            Phase::Running | Phase::Done => {}
        }
    }
}

impl Drop for RequestState {
    #[inline]
    fn drop(&mut self) {
        match self.phase {
            // The body was dropped before its end: the client went away, or the server
            // stopped polling an already finished body. The request ends here.
            Phase::Streaming => self.finish(true),
            Phase::Recorded => self.body_end(),
            // Cancelled before the head (the client hung up): nothing is recorded, but the
            // gauges go back down.
            Phase::Running | Phase::Done => self.lower_in_progress(),
        }
    }
}

/// A request's state on the heap, where it stays from `call` to the end of its response body
/// (it moves with the response future and into the body wrapper, so a pointer moves, not the
/// state; inline it would be copied at every move, measured as costly as the allocation).
///
/// Its allocation is reused: dropping a state keeps the memory in a one-slot spare of the
/// dropping thread, and the next request started on that thread takes it, so a steady stream
/// of requests allocates no state (`scripts/callgrind-layer.sh`: about 110 instructions per
/// request of `malloc` and `free`). One slot per thread bounds what is kept to one state's
/// size per thread; a thread that exits frees its spare.
pub(crate) struct StateBox(std::mem::ManuallyDrop<Box<RequestState>>);

thread_local! {
    /// This thread's spare allocation for a request's state: uninitialised memory.
    static SPARE: std::cell::Cell<Option<Box<std::mem::MaybeUninit<RequestState>>>> =
        const { std::cell::Cell::new(None) };
}

impl StateBox {
    /// Memory for a state: this thread's spare, or a new allocation. Taken before the state
    /// is built, so that it is built in place (built first and then moved in, it was copied
    /// once more).
    #[inline]
    fn memory() -> Box<std::mem::MaybeUninit<RequestState>> {
        match SPARE.try_with(std::cell::Cell::take) {
            Ok(Some(spare)) => spare,
            _ => Box::new_uninit(),
        }
    }

    #[inline]
    fn new(mut memory: Box<std::mem::MaybeUninit<RequestState>>, state: RequestState) -> Self {
        memory.write(state);
        // SAFETY: initialised by the `write` above.
        Self(std::mem::ManuallyDrop::new(unsafe { memory.assume_init() }))
    }
}

impl std::ops::Deref for StateBox {
    type Target = RequestState;
    #[inline]
    fn deref(&self) -> &RequestState {
        &self.0
    }
}

impl std::ops::DerefMut for StateBox {
    #[inline]
    fn deref_mut(&mut self) -> &mut RequestState {
        &mut self.0
    }
}

impl Drop for StateBox {
    fn drop(&mut self) {
        // SAFETY: `self.0` is taken exactly once, here, and not used after.
        let boxed = unsafe { std::mem::ManuallyDrop::take(&mut self.0) };
        let raw = Box::into_raw(boxed);
        // SAFETY: `raw` comes from a live `Box`, so it is valid, aligned and initialised; it is
        // dropped exactly once, here (the state's own `Drop` records the request).
        unsafe { std::ptr::drop_in_place(raw) };
        // SAFETY: the same allocation, now holding a dropped value: as `MaybeUninit`, which
        // has the layout of `RequestState`, it is a valid uninitialised box that frees the
        // memory with the layout it was allocated with.
        let spare = unsafe { Box::from_raw(raw.cast::<std::mem::MaybeUninit<RequestState>>()) };
        // The previous spare, if any, is freed; during the thread's teardown the closure does
        // not run and `spare` is freed with it.
        let _ = SPARE.try_with(move |slot| slot.set(Some(spare)));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::Registry;
    use crate::layer::MetricsLayer;

    /// A request of `GET /x` started on `service`, its route known to be tracked.
    pub(crate) fn start(service: &Arc<ServiceState>) -> StateBox {
        let known = RouteVerdict::Known(Exclusion::None);
        let start = Tick::now();
        let mut state = RequestState::start(
            service.clone(),
            known,
            false,
            start,
            Exclusion::None,
            false,
            MethodLabel::of(&http::Method::GET),
        );
        state.outcome.path = PathValue::Static("/x");
        state
    }

    /// A service of a layer with every default, recording into `registry`.
    pub(crate) fn service(registry: &Registry) -> Arc<ServiceState> {
        let layer = MetricsLayer::builder().registry(registry).build().unwrap();
        Arc::new(ServiceState {
            layer: layer.state.clone(),
            own_route: OnceLock::new(),
        })
    }

    /// A dropped state's memory serves the next request on the thread, and each state still
    /// records its request exactly once.
    #[test]
    fn a_dropped_state_lends_its_memory_to_the_next() {
        let registry = Registry::new();
        let service = service(&registry);
        let mut first = start(&service);
        first.head(StatusCode::OK, None, false);
        let at = &*first as *const RequestState;
        drop(first);
        let mut second = start(&service);
        assert_eq!(&*second as *const RequestState, at);
        second.head(StatusCode::OK, None, false);
        drop(second);
        let text = crate::expose::encode_to_string(&registry, crate::expose::Format::Text);
        let line = "axum_http_request_total{method=\"GET\",status=\"200\"} 2\n";
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}
