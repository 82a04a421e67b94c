//! [`MetricsService`]: what the layer wraps each route in, and [`ResponseFuture`], which runs
//! the inner service's future for one request.
//!
//! A request's life, as the service sees it (the state it carries is `request.rs`'s):
//! 1. `call`: find the route; decide from the path what the request is excluded from; read the
//!    method, the path label and the configured labels; start the request's state (which
//!    raises the in-progress gauges); call the inner service.
//! 2. The inner future is polled with the request's marks current (the handler's marks land
//!    there, see `context.rs`) and under `catch_unwind`: a panic becomes a
//!    `500 Internal Server Error`, counted once.
//! 3. The response head: the state records the request (or waits for the body, or for the last
//!    [`OpenRequest`](super::OpenRequest) guard), then travels in the response body
//!    ([`TrackedBody`]), which reports the body's size, its end and a panic while streaming —
//!    unless the body reports its exact size and the state needs nothing more from it (then
//!    the state ends at the head, and the body goes out unwrapped).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::MatchedPath;
use http::{Request, Response, StatusCode, header};
use tower::Service;

use super::LayerState;
use super::body::{CountedBody, TrackedBody};
use super::config::Grouping;
use super::families::PathValue;
use super::hold::Hold;
use super::http_labels::{ExtraValues, MethodLabel, UNMATCHED_PATH};
use super::request::{RequestState, RouteVerdict, StateBox};
use super::routes::Route;
use crate::context::{Exclusion, Tick};

/// The service [`MetricsLayer`](super::MetricsLayer) wraps around each route (or around
/// whatever it is applied to).
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    /// One `Arc` for all a service needs: axum clones the service for every request, and each
    /// request's state keeps a reference, so every reference count here is an atomic that the
    /// server's threads contend for.
    service: Arc<ServiceState>,
}

/// What a service instance and its clones share.
pub(crate) struct ServiceState {
    pub(crate) layer: Arc<LayerState>,
    /// The route this service instance saw first. Added with `Router::layer`, each route gets
    /// its own instance (shared by its clones), so this spares the route table's lock and
    /// hash on every request; a mismatch (the layer applied around several routes) falls back
    /// to the table. Its template is axum's, shared: the requests of the route carry the same
    /// `Arc`, so a pointer comparison recognises them (a string comparison the others).
    pub(crate) own_route: OnceLock<(MatchedPath, Arc<Route>)>,
}

impl<S> MetricsService<S> {
    pub(crate) fn new(inner: S, layer: Arc<LayerState>) -> Self {
        Self {
            inner,
            service: Arc::new(ServiceState {
                layer,
                own_route: OnceLock::new(),
            }),
        }
    }

    /// What is known of the request's route: its verdict, or the route itself while there
    /// is something to learn (cloning its `Arc` only then keeps a contended atomic off the
    /// common path); and whether it is the route this instance remembers (whose series it
    /// may cache).
    #[inline]
    fn route(&self, template: Option<&MatchedPath>) -> (RouteVerdict, bool) {
        let known = |route: &Arc<Route>| match route.verdict() {
            None => RouteVerdict::Learning(route.clone()),
            Some(verdict) => RouteVerdict::Known(verdict),
        };
        let service = &*self.service;
        let same = |a: &MatchedPath, b: &MatchedPath| {
            let (a, b) = (a.as_str(), b.as_str());
            std::ptr::eq(a, b) || a == b
        };
        if let (Some(t), Some((cached, route))) = (template, service.own_route.get()) {
            if same(cached, t) {
                return (known(route), true);
            }
        }
        let route = service.layer.routes.get(template.map(MatchedPath::as_str));
        let own = template.is_some_and(|t| {
            let (remembered, _) = service.own_route.get_or_init(|| (t.clone(), route.clone()));
            same(remembered, t)
        });
        (known(&route), own)
    }
}

impl<S> std::fmt::Debug for MetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

impl LayerState {
    /// What the request's path excludes it from (`excluded_paths`, `exclude_user_defaults`).
    /// Takes the URI: its path is only computed where paths are excluded.
    #[inline]
    fn path_exclusion(&self, uri: &http::Uri) -> Exclusion {
        match &self.excluded {
            Some(set) if set.is_match(uri.path()) => match self.exclude_user_defaults {
                true => Exclusion::All,
                false => Exclusion::Defaults,
            },
            _ => Exclusion::None,
        }
    }

    /// The request's `path` label value, by the configured grouping. Always inlined: its two
    /// callers in `read_request` kept it out of line, a call and a move of the template more
    /// per request.
    #[inline(always)]
    fn path_value(
        &self,
        template: Option<MatchedPath>,
        parts: Option<&http::request::Parts>,
        uri: &http::Uri,
    ) -> PathValue {
        match &self.group_by {
            Grouping::Template => {
                template.map_or(PathValue::Static(UNMATCHED_PATH), PathValue::Matched)
            }
            Grouping::RawPath => PathValue::Owned(uri.path().into()),
            // `request_parts` is set for this grouping: the parts are always there.
            Grouping::Request(f) => parts.map_or(PathValue::Static(UNMATCHED_PATH), |p| {
                PathValue::Owned(f(p))
            }),
        }
    }

    /// Reads what the layer records of the request's head into `state` — its `path` label
    /// value, the configured labels and its exemplar's trace (into its marks, where handler
    /// attributes find it too) — and wraps its body where its size is counted.
    /// Returns the request to pass on.
    #[inline]
    fn read_request<B>(
        &self,
        request: Request<B>,
        template: Option<MatchedPath>,
        state: &mut RequestState,
    ) -> Request<Body>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let families = &self.families;
        if !self.request_parts {
            // Nothing is computed from the request's head: it goes through untouched.
            state
                .marks
                .set_traced(self.exemplars.read_headers(request.headers()));
            let outcome = &mut state.outcome;
            outcome.path = self.path_value(template, None, request.uri());
            if families.has_route_metrics() {
                outcome.configured().route_values = families
                    .route_labels()
                    .map(|_| ExtraValues::default())
                    .collect();
            }
            return request.map(Body::new);
        }
        let (parts, body) = request.into_parts();
        state.marks.set_traced(self.exemplars.read_parts(&parts));
        let outcome = &mut state.outcome;
        outcome.path = self.path_value(template, Some(&parts), &parts.uri);
        let configured = outcome.configured();
        configured.values = ExtraValues::from_request(&families.extras, &parts);
        configured.route_values = families
            .route_labels()
            .map(|labels| ExtraValues::from_request(labels, &parts))
            .collect();
        let body = if !families.wants_request_size() {
            Body::new(body)
        } else if let Some(n) = content_length(&parts.headers) {
            configured.request_size = Some(n);
            Body::new(body)
        } else {
            let read = Arc::new(AtomicU64::new(0));
            configured.request_read = Some(read.clone());
            Body::new(CountedBody::new(body, read))
        };
        Request::from_parts(parts, body)
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

    /// The one place the request's head is read: what recording needs of it (the path label,
    /// the configured labels, a per-request value such as an exemplar's trace id) goes into
    /// the request's `Outcome` here, which `Families::record` reads when the request ends.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let start = Tick::now();
        let layer = &*self.service.layer;
        let template = request.extensions().get::<MatchedPath>().cloned();
        let unmatched = template.is_none();
        let path_exclusion = layer.path_exclusion(request.uri());
        // The series cache is reached through the route this instance remembers (no
        // contended `Arc` clone): it serves requests of that route.
        let (route, own_route) = self.route(template.as_ref());
        let cached = own_route && layer.cacheable;
        let mut state = RequestState::start(
            self.service.clone(),
            route,
            cached,
            start,
            path_exclusion,
            unmatched,
            MethodLabel::of(request.method()),
        );
        if layer.families.wants_response_size() {
            state.outcome.configured().response_size = Some(0);
        }
        let request = layer.read_request(request, template, &mut state);
        state.raise_in_progress();
        // `call` may run code of the inner service (and panic) before any future exists. That
        // code sees the request's marks only where it can make a difference: on a path
        // excluded from everything, whose marks start so, so that handler metrics of a
        // service's `call` stay silent there. Elsewhere the handler's marks are made in its
        // future, the only place attributes put them.
        let inner = &mut self.inner;
        let call = || catch_unwind(AssertUnwindSafe(|| inner.call(request)));
        let called = match path_exclusion {
            Exclusion::All => state.marks.enter(call),
            _ => call(),
        };
        let state = Some(state);
        match called {
            Ok(future) => ResponseFuture {
                inner: Some(future),
                state,
            },
            // `call` panicked.
            Err(_panic) => ResponseFuture { inner: None, state },
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
    /// The future of [`MetricsService`]: the inner service's, run with the request's marks
    /// current and with panics caught.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        // Boxed: the future is moved several times before the server pins it, and the state
        // then moves on into the response body. (Inline, it would spare one allocation but
        // cost more in copies: measured slower under load.)
        state: Option<StateBox>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // A cancelled request's future is dropped with its marks current, as it ran.
            if let (Some(state), Some(_)) = (this.state.as_deref(), this.inner.as_ref().as_pin_ref()) {
                let mut inner = this.inner;
                state.marks.enter(|| inner.set(None));
            }
        }
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
        let Some(state) = this.state.as_deref() else {
            // Polled again after completion: a contract violation of the caller. Answer
            // rather than panic in a request path.
            return Poll::Ready(Ok(internal_error()));
        };
        let result = match this.inner.as_mut().as_pin_mut() {
            // `call` panicked.
            None => None,
            Some(future) => {
                // The inner future's answer is written into `polled` (a `Result` of it out
                // of `catch_unwind` was one copy of the response more).
                let mut polled = Poll::Pending;
                let poll = || catch_unwind(AssertUnwindSafe(|| polled = future.poll(cx)));
                let caught = state.marks.enter(poll);
                match polled {
                    _ if caught.is_err() => None,
                    Poll::Pending => return Poll::Pending,
                    // The common case answers from here: the response moves twice less
                    // than through `result` and `respond` (`scripts/callgrind-layer.sh`).
                    Poll::Ready(Ok(response)) => {
                        // Dropped now, as below.
                        this.inner.set(None);
                        let Some(state) = this.state.take() else {
                            return Poll::Ready(Ok(internal_error()));
                        };
                        return Poll::Ready(Ok(answer(state, response)));
                    }
                    Poll::Ready(result) => Some(result),
                }
            }
        };
        // Drop the inner future now (a panicked one must never be polled again). It is done:
        // what is left to drop holds no handler code that could still mark the request.
        this.inner.set(None);
        let Some(state) = this.state.take() else {
            return Poll::Ready(Ok(internal_error()));
        };
        Poll::Ready(respond(state, result))
    }
}

/// The inner service's answer (`None`: it panicked), handed to the request's state; `poll`
/// hands a response to [`answer`] itself.
fn respond<ResBody, E>(
    mut state: StateBox,
    result: Option<Result<Response<ResBody>, E>>,
) -> Result<Response<Body>, E>
where
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    match result {
        Some(Ok(response)) => Ok(answer(state, response)),
        // The inner service failed (never with axum's routers, whose error is `Infallible`):
        // nothing to record; dropping the state lowers the gauges.
        Some(Err(e)) => Err(e),
        None => {
            state.outcome.panicked = true;
            let (parts, body) = internal_error().into_parts();
            state.head(parts.status, Some(&parts), false);
            Ok(Response::from_parts(
                parts,
                Body::new(TrackedBody::new(body, state)),
            ))
        }
    }
}

/// The inner service's response, handed to the request's state.
#[inline]
fn answer<ResBody>(mut state: StateBox, mut response: Response<ResBody>) -> Response<Body>
where
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    // A handler that keeps its request open past the response (`OpenRequest`).
    let hold = state.marks.attached::<Hold>().filter(|h| h.is_open());
    let held = hold.is_some();
    // The response stays in place unless its head is read for labels (moving it through
    // an `if` expression was a copy more in the common case).
    if state.layer().response_labels {
        let (parts, body) = response.into_parts();
        state.head(parts.status, Some(&parts), held);
        response = Response::from_parts(parts, body);
    } else {
        state.head(response.status(), None, held);
    }
    // Parked, the state ends when the last guard drops; if the guards went meanwhile, it ends
    // with the body.
    let state = match hold {
        Some(hold) => match hold.park(state) {
            Ok(()) => return response.map(Body::new),
            Err(state) => state,
        },
        None => state,
    };
    // A body that reports its exact size is taken for one that runs no application code
    // while it is sent (axum's `Full`: bytes, a `String`, `Json`, an empty body): once the
    // request is recorded there is nothing left to see in it, and not wrapping it spares the
    // wrapper's allocation (`scripts/callgrind-layer.sh`: −189 instructions). A stream
    // reports no exact size and is followed, so that its panic is still caught and counted.
    if !state.follows_body() && response.body().size_hint().exact().is_some() {
        drop(state);
        return response.map(Body::new);
    }
    response.map(|body| Body::new(TrackedBody::new(body, state)))
}

/// The answer to a request whose handler panicked.
fn internal_error() -> Response<Body> {
    let mut response = Response::new(Body::from("Internal Server Error"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::Registry;
    use crate::layer::request::tests::{service, start};

    /// A body of unknown size, as one made with `Body::from_stream` (empty here).
    struct Streamed;

    impl HttpBody for Streamed {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            Poll::Ready(None)
        }
    }

    /// With every default, a body of known size is not wrapped: the request's state ends with
    /// the response head (its memory is the next request's) and the request is recorded. A
    /// streamed body keeps the state until it ends.
    #[test]
    fn only_a_streamed_body_carries_the_state() {
        let registry = Registry::new();
        let service = service(&registry);
        let state = start(&service);
        let at = &*state as *const RequestState;
        let response = answer(state, Response::new(Body::from("hello")));
        let next = start(&service);
        assert_eq!(&*next as *const RequestState, at, "the state was kept");
        assert_eq!(response.body().size_hint().exact(), Some(5));
        let text = crate::expose::encode_to_string(&registry, crate::expose::Format::Text);
        let line = "axum_http_request_total{method=\"GET\",status=\"200\"} 1\n";
        assert!(text.contains(line), "missing {line:?} in\n{text}");

        let at = &*next as *const RequestState;
        let response = answer(next, Response::new(Streamed));
        let other = start(&service);
        assert_ne!(
            &*other as *const RequestState, at,
            "the body lost the state"
        );
        drop(response);
    }
}
