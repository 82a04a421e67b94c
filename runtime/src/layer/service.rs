//! [`MetricsService`]: what the layer wraps each route in, and the per-request state it
//! carries from the request to the end of the response.
//!
//! A request's life, as the layer sees it:
//! 1. `call`: read the route template, the method and the configured labels; decide from the
//!    path whether the request is excluded; raise the in-progress gauges if the route is known
//!    to be tracked; start the inner service inside a fresh [`RequestContext`].
//! 2. The inner future is polled inside the context (the handler's marks land there) and
//!    under `catch_unwind`: a panic becomes a `500 Internal Server Error`, counted once.
//! 3. The response head: with [`RequestEnd::ResponseHead`] the request is recorded here; the
//!    state then travels in the response body ([`TrackedBody`]), which records the body's size,
//!    its end (with [`RequestEnd::BodyEnd`]) and a panic while streaming.
//! 4. Dropping the state lowers the in-progress gauges it raised, whatever happened — a
//!    cancelled request (the client went away before the head) included, which records nothing
//!    else.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::MatchedPath;
use http::{Request, Response, StatusCode, header};
use tokio::task::futures::TaskLocalFuture;
use tower::Service;

use super::Shared;
use super::body::{CountedBody, TrackedBody};
use super::cache::SeriesCache;
use super::config::{Grouping, RequestEnd};
use super::families::{Outcome, PathValue, Scope, SeriesRef};
use super::labels::{MethodLabel, UNMATCHED_PATH, Values};
use super::routes::{Route, Verdict};
use crate::Gauge;
use crate::context::{Exclusion, RequestContext};

/// The service [`MetricsLayer`](super::MetricsLayer) wraps around each route (or around
/// whatever it is applied to).
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    /// One `Arc` for all a service needs: axum clones the service for every request, and each
    /// request's state keeps a reference, so every reference count here is an atomic that the
    /// server's threads contend for.
    instance: Arc<Instance>,
}

/// What a service instance and its clones share.
pub(crate) struct Instance {
    shared: Arc<Shared>,
    /// The route this service instance saw first. Added with `Router::layer`, each route gets
    /// its own instance (shared by its clones), so this spares the route table's lock and
    /// hash on every request; a mismatch (the layer applied around several routes) falls back
    /// to the table.
    last: OnceLock<(Box<str>, Arc<Route>)>,
}

impl<S> MetricsService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            instance: Arc::new(Instance {
                shared,
                last: OnceLock::new(),
            }),
        }
    }

    /// What is known of the request's route: its verdict, or the route itself while there
    /// is something to learn (cloning its `Arc` only then keeps a contended atomic off the
    /// common path); and whether it is the route this instance remembers (whose series it
    /// may cache).
    #[inline]
    fn route(&self, template: Option<&str>) -> (RouteRef, bool) {
        let known = |route: &Arc<Route>| match route.verdict() {
            Verdict::Unknown => RouteRef::Learning(route.clone()),
            verdict => RouteRef::Known(verdict),
        };
        let instance = &*self.instance;
        if let (Some(t), Some((cached, route))) = (template, instance.last.get()) {
            if **cached == *t {
                return (known(route), true);
            }
        }
        let route = instance.shared.routes.get(template);
        let own = template.is_some_and(|t| {
            let (remembered, _) = instance.last.get_or_init(|| (t.into(), route.clone()));
            **remembered == *t
        });
        (known(&route), own)
    }
}

impl<S> std::fmt::Debug for MetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

/// A request's route: known when the request started, or still being learned.
enum RouteRef {
    Known(Verdict),
    Learning(Arc<Route>),
}

impl RouteRef {
    fn verdict(&self) -> Verdict {
        match self {
            RouteRef::Known(v) => *v,
            RouteRef::Learning(r) => r.verdict(),
        }
    }
}

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the response head.
    Running,
    /// The head is out; recording waits for the body's end (`RequestEnd::BodyEnd`).
    Streaming,
    /// Recorded; only the response size (and a body panic) may still be reported.
    Recorded,
    /// Nothing left to do.
    Done,
}

/// One request's state, from `call` to the end of its response body.
pub(crate) struct RequestState {
    instance: Arc<Instance>,
    route: RouteRef,
    /// Whether the instance's series cache serves this request.
    cached: bool,
    context: RequestContext,
    start: Instant,
    /// What this request may record at most (excluded paths record less or nothing).
    floor: Scope,
    /// The scope the in-progress gauges were raised in, to lower the same ones, and the
    /// default gauge's series.
    raised: Option<(Scope, Option<SeriesRef<Gauge>>)>,
    unmatched: bool,
    request_read: Option<Arc<AtomicU64>>,
    phase: Phase,
    outcome: Outcome,
}

impl RequestState {
    fn shared(&self) -> &Shared {
        &self.instance.shared
    }

    /// The series cache of the request's route, where it may serve this request.
    fn cache(&self) -> Option<&SeriesCache> {
        let (_, route) = self.instance.last.get().filter(|_| self.cached)?;
        Some(&route.series)
    }

    /// The verdict the handler's marks amount to (`Tracked` for none).
    fn marked(&self) -> Verdict {
        if self.context.is_metrics_endpoint() && !self.shared().track_metrics_endpoint {
            return Verdict::Nothing;
        }
        match self.context.exclusion() {
            Exclusion::None => Verdict::Tracked,
            Exclusion::Defaults => Verdict::Defaults,
            Exclusion::All => Verdict::Nothing,
        }
    }

    fn lower_in_progress(&mut self) {
        if let Some((scope, gauge)) = self.raised.take() {
            self.instance.shared.families.lower_in_progress(
                gauge,
                &self.outcome.route_values,
                scope,
            );
        }
    }

    /// The response head is known. A `held` request (an [`OpenRequest`] is alive) does not
    /// end here: it ends when its state is dropped.
    ///
    /// [`OpenRequest`]: super::OpenRequest
    fn head(&mut self, status: StatusCode, response: Option<&http::response::Parts>, held: bool) {
        self.outcome.status = status;
        if let Some(parts) = response {
            let f = &self.instance.shared.families;
            self.outcome.values.add_response(&f.extras, parts);
            for (v, labels) in self.outcome.route_values.iter_mut().zip(f.route_labels()) {
                v.add_response(labels, parts);
            }
        }
        if held {
            // The response body is not tracked then: its size is not known, not recorded as 0.
            self.outcome.response_size = None;
            self.phase = Phase::Streaming;
            return;
        }
        match self.shared().request_end {
            RequestEnd::ResponseHead => self.finish(false),
            RequestEnd::BodyEnd => self.phase = Phase::Streaming,
        }
    }

    /// Records the request: the duration ends now.
    fn finish(&mut self, body_done: bool) {
        self.outcome.seconds = self.start.elapsed().as_secs_f64();
        if let Some(read) = &self.request_read {
            self.outcome.request_size = Some(read.load(Ordering::Relaxed));
        }
        // Before the body's end its size is not known yet: it is recorded then (`body_end`).
        let response_size = if body_done {
            None
        } else {
            self.outcome.response_size.take()
        };
        self.lower_in_progress();
        self.phase = if body_done {
            Phase::Done
        } else {
            Phase::Recorded
        };
        if self.floor == Scope::Nothing {
            // An excluded path: nothing to record, and its marks (the layer's own) teach
            // nothing about the route.
            return;
        }
        let status = self.outcome.status;
        let decisive = self.unmatched || !status.is_client_error();
        let marked = self.marked();
        match &self.route {
            RouteRef::Learning(route) => route.settle(
                &self.instance.shared.families,
                &self.outcome,
                marked,
                decisive,
                self.floor,
            ),
            // Known before the request started: a mark now is honoured for this request.
            RouteRef::Known(verdict) => {
                let scope = verdict.scope().max(self.floor).max(marked.scope());
                let families = &self.instance.shared.families;
                // Only a request recorded in the defaults resolves its series: the cache must
                // not create a series an untracked request would not.
                let resolved = self.cache().filter(|_| scope.defaults()).map(|cache| {
                    cache.finished(self.outcome.method, status, || {
                        families.resolve(&self.outcome)
                    })
                });
                families.record(&self.outcome, scope, resolved.as_ref());
            }
        }
        if response_size.is_some() {
            self.outcome.response_size = response_size;
        }
    }

    /// Bytes of response body went out.
    pub(crate) fn body_bytes(&mut self, n: usize) {
        if let Some(size) = &mut self.outcome.response_size {
            *size += n as u64;
        }
    }

    /// The response body ended (or failed).
    pub(crate) fn body_end(&mut self) {
        match self.phase {
            Phase::Streaming => self.finish(true),
            Phase::Recorded => {
                self.phase = Phase::Done;
                let scope = self.route.verdict();
                if self.outcome.response_size.is_some()
                    && scope == Verdict::Tracked
                    && self.floor == Scope::All
                    && self.marked() == Verdict::Tracked
                {
                    self.instance
                        .shared
                        .families
                        .record_response_size(&self.outcome);
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
                let allowed = self
                    .route
                    .verdict()
                    .scope()
                    .max(self.floor)
                    .max(self.marked().scope());
                if allowed == Scope::All && self.route.verdict() == Verdict::Tracked {
                    self.outcome.panicked = true;
                    self.instance.shared.families.count_exception(&self.outcome);
                }
            }
            Phase::Running | Phase::Done => {}
        }
    }
}

impl Drop for RequestState {
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

impl<S, B, ResBody> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let start = Instant::now();
        let shared = &*self.instance.shared;
        let template = request.extensions().get::<MatchedPath>().cloned();
        let unmatched = template.is_none();
        let excluded = shared
            .excluded
            .as_ref()
            .is_some_and(|set| set.is_match(request.uri().path()));
        let (floor, initial) = match (excluded, shared.exclude_user_defaults) {
            (false, _) => (Scope::All, Exclusion::None),
            (true, true) => (Scope::Nothing, Exclusion::All),
            (true, false) => (Scope::RoutesOnly, Exclusion::None),
        };
        // The series cache is reached through the route this instance remembers (no
        // contended `Arc` clone): it serves requests of that route.
        let (route, own_route) = self.route(template.as_ref().map(MatchedPath::as_str));
        let cached = own_route && shared.cacheable;
        let method = MethodLabel::of(request.method());

        let families = &shared.families;
        let path = |parts: Option<&http::request::Parts>, uri: &http::Uri| match &shared.group_by {
            Grouping::Template => {
                template.map_or(PathValue::Static(UNMATCHED_PATH), PathValue::Matched)
            }
            Grouping::RawPath => PathValue::Owned(uri.path().into()),
            // `request_parts` is set for this grouping: the parts are always there.
            Grouping::Request(f) => parts.map_or(PathValue::Static(UNMATCHED_PATH), |p| {
                PathValue::Owned(f(p))
            }),
        };
        let mut request_size = None;
        let mut request_read = None;
        let (request, path, values, route_values) = if shared.request_parts {
            let (parts, body) = request.into_parts();
            let path = path(Some(&parts), &parts.uri);
            let values = Values::from_request(&families.extras, &parts);
            let route_values: Vec<Values> = families
                .route_labels()
                .map(|labels| Values::from_request(labels, &parts))
                .collect();
            let body = if families.wants_request_size() {
                match content_length(&parts.headers) {
                    Some(n) => {
                        request_size = Some(n);
                        Body::new(body)
                    }
                    None => {
                        let read = Arc::new(AtomicU64::new(0));
                        request_read = Some(read.clone());
                        Body::new(CountedBody::new(body, read))
                    }
                }
            } else {
                Body::new(body)
            };
            let request = Request::from_parts(parts, body);
            (request, path, values, route_values)
        } else {
            // Nothing is computed from the request's head: it goes through untouched.
            let path = path(None, request.uri());
            let route_values = families.route_labels().map(|_| Values::default()).collect();
            (
                request.map(Body::new),
                path,
                Values::default(),
                route_values,
            )
        };

        // In-progress gauges go up only for routes known to be tracked (see `routes.rs`).
        let verdict = route.verdict();
        let raised = (verdict != Verdict::Unknown && families.has_in_progress())
            .then(|| verdict.scope().max(floor))
            .filter(|&s| s != Scope::Nothing);
        let outcome = Outcome {
            method,
            path,
            status: StatusCode::OK,
            seconds: 0.0,
            panicked: false,
            request_size,
            response_size: families.wants_response_size().then_some(0),
            values,
            route_values,
        };
        let raised = raised.map(|scope| {
            let lookup =
                || families.in_progress_series(method, outcome.path.as_str(), &outcome.values);
            let default = match scope.defaults() {
                false => None,
                true if cached => match self.instance.last.get() {
                    Some((_, own)) => own.series.in_progress(method, lookup),
                    None => lookup(),
                },
                true => lookup(),
            };
            let gauge = families.raise_in_progress(default, &outcome.route_values, scope);
            (scope, gauge)
        });
        let mut state = Box::new(RequestState {
            instance: self.instance.clone(),
            route,
            cached,
            context: RequestContext::inline(initial),
            start,
            floor,
            raised,
            unmatched,
            request_read,
            phase: Phase::Running,
            outcome,
        });
        // `call` may run code of the inner service (and panic) before any future exists. That
        // code sees the request's context only where it can make a difference: on an excluded
        // path, whose context starts excluded, so that handler metrics of a service's `call`
        // stay silent there. Elsewhere the handler's marks are made in its future, the only
        // place attributes put them; entering the context twice would cost every request.
        let inner = &mut self.inner;
        let called = if initial == Exclusion::None {
            catch_unwind(AssertUnwindSafe(|| inner.call(request)))
        } else {
            let (called, context) = (state.context.clone())
                .sync_scope(|| catch_unwind(AssertUnwindSafe(|| inner.call(request))));
            state.context = context;
            called
        };
        // The future gets its own copy of the context, handed back when it completes.
        let future = match called {
            Ok(future) => Some(state.context.clone().scoped(future)),
            Err(_panic) => None,
        };
        ResponseFuture {
            inner: future,
            state: Some(state),
        }
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pin_project_lite::pin_project! {
    /// The future of [`MetricsService`]: the inner service's, run in the request context and
    /// with panics caught.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<TaskLocalFuture<RequestContext, F>>,
        // Boxed: the future is moved several times before the server pins it, and the state
        // then moves on into the response body. (Inline, it would spare one allocation but
        // cost more in copies: measured slower under load.)
        state: Option<Box<RequestState>>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (result, context) = match this.inner.as_mut().as_pin_mut() {
            // `call` panicked.
            None => (None, None),
            Some(mut future) => {
                let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
                let result = match polled {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(result)) => Some(result),
                    Err(_panic) => None,
                };
                // The context, with the handler's marks (tokio puts it back even on a panic).
                (result, future.take_value())
            }
        };
        // Drop the inner future now (a panicked one must never be polled again). It is done:
        // what is left to drop holds no handler code that could still mark the context.
        this.inner.set(None);
        let Some(mut state) = this.state.take() else {
            // Polled again after completion: a contract violation of the caller. Answer
            // rather than panic in a request path.
            return Poll::Ready(Ok(internal_error()));
        };
        if let Some(context) = context {
            state.context = context;
        }
        match result {
            Some(Ok(response)) => {
                // A handler that keeps its request open past the response (`OpenRequest`).
                let hold = state.context.hold().filter(|h| h.is_open()).cloned();
                let held = hold.is_some();
                let response = if state.shared().response_labels {
                    let (parts, body) = response.into_parts();
                    state.head(parts.status, Some(&parts), held);
                    Response::from_parts(parts, body)
                } else {
                    state.head(response.status(), None, held);
                    response
                };
                // Parked, the state ends when the last guard drops; if the guards went
                // meanwhile, it ends with the body.
                let state = match hold {
                    Some(hold) => match hold.park(state) {
                        Ok(()) => return Poll::Ready(Ok(response.map(Body::new))),
                        Err(state) => state,
                    },
                    None => state,
                };
                Poll::Ready(Ok(
                    response.map(|body| Body::new(TrackedBody::new(body, state)))
                ))
            }
            // The inner service failed (never with axum's routers, whose error is
            // `Infallible`): nothing to record; dropping the state lowers the gauges.
            Some(Err(e)) => Poll::Ready(Err(e)),
            None => {
                state.outcome.panicked = true;
                let response = internal_error();
                let (parts, body) = response.into_parts();
                state.head(parts.status, Some(&parts), false);
                Poll::Ready(Ok(Response::from_parts(
                    parts,
                    Body::new(TrackedBody::new(body, state)),
                )))
            }
        }
    }
}

/// The answer to a request whose handler panicked.
fn internal_error() -> Response<Body> {
    let mut response = Response::new(Body::from("Internal Server Error"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
