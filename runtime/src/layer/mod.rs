//! The axum layer: default HTTP metrics for every route, and everything a
//! `prometheus_flask_exporter` user configured in `PrometheusMetrics(app, ...)`.
//!
//! ```
//! use axum::{Router, routing::get};
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .merge(promtrack::metrics_router())   // GET /metrics, never counted itself
//!     .layer(promtrack::layer());           // the default HTTP metrics
//! ```
//!
//! # The default metrics
//!
//! | family (prefix `axum`, see [`prefix`](MetricsLayerBuilder::prefix)) | type | labels |
//! |---|---|---|
//! | `axum_http_request_duration_seconds` | histogram (or summary) | `method`, `path`, `status` |
//! | `axum_http_request_total` | counter | `method`, `status` |
//! | `axum_http_request_exceptions_total` | counter | `method`, `path`, `status` |
//! | `axum_http_requests_in_progress` | gauge (multiprocess: `livesum`) | `method`, `path` |
//! | `axum_exporter_info` | info | `version` |
//!
//! ExtraLabel labels ([`static_label`](MetricsLayerBuilder::static_label),
//! [`label_from_request`](MetricsLayerBuilder::label_from_request),
//! [`label_from_response`](MetricsLayerBuilder::label_from_response)) follow these, in the
//! order they were added; response labels are not on the in-progress gauge. Opt-in:
//! `axum_http_request_size_bytes` and `axum_http_response_size_bytes`
//! ([`body_sizes`](MetricsLayerBuilder::body_sizes)).
//!
//! - `path` is the matched route template (`/users/{id}`), never the raw path, so its values
//!   are bounded by the routes you wrote. Nested routers (`Router::nest`) report the full
//!   template (`/api/users/{id}`). Requests that match no route — 404s, a `fallback` handler —
//!   share the value [`UNMATCHED_PATH`] (`_unmatched`), which no template can take.
//! - `method` is the method name for the nine standard methods and [`OTHER_METHOD`] (`_OTHER`)
//!   for any other.
//! - `status` is the code (`404`) or, with [`StatusLabel::Class`], the class (`4xx`).
//! - `exceptions` counts handler panics only; error responses show in `status`.
//!
//! # Where the layer goes
//!
//! Route templates exist where axum provides [`MatchedPath`](axum::extract::MatchedPath):
//! add the layer with `Router::layer` (every route, the fallback and 404s) or
//! `Router::route_layer` (matched routes only: unmatched requests are then not counted at all).
//! It works the same with `merge`, `nest`, `fallback` and `with_state`, and the instrumented
//! router can itself be wrapped in more tower middleware.
//!
//! Applied another way, the layer still counts every request but cannot see templates:
//! - around the whole router as a service (`ServiceBuilder::new().layer(layer).service(app)`),
//!   it runs before routing, so every request reports `path="_unmatched"`;
//! - for a service mounted with `Router::nest_service`, axum sets no template for the outer
//!   router: its requests report `path="_unmatched"` too. Use `Router::nest` for routers, or add
//!   a layer inside the nested service.
//!
//! # Excluding routes: `#[do_not_track]`, `#[exclude_all_metrics]`, excluded paths
//!
//! A handler marked `#[do_not_track]` is left out of the default metrics (but not of
//! [`RouteMetric`]s); one marked `#[exclude_all_metrics]` is left out of every metric, its own
//! attributes included. The marks are made from inside the handler, through a request-scoped
//! context that the layer sets up for each request — so no handler changes
//! its signature, and a handler called directly in a unit test works unchanged.
//!
//! A mark is only known once the handler runs, and an extractor may reject a request before
//! that. So the layer learns, per route template, whether its handler is tracked, and holds
//! back what it cannot decide yet: until a route is known, its in-progress gauge is not raised,
//! and a request answered with a 4xx without a mark (maybe an extractor's rejection) is held
//! back. The first marked request makes the route untracked for good; the first unmarked one
//! answered otherwise makes it tracked, and the held-back requests are recorded then. The
//! result: **no series of an untracked route is ever exposed**, in-progress gauge included.
//! The price: a route that has only ever answered 4xx since the process started shows nothing
//! until its first other answer (at most 64 such requests per route are held, then dropped),
//! and a route's first requests never show in the in-progress gauge.
//! The details and their bounds are in the source of `routes.rs`; what it means for you:
//!
//! - What is learned is per route template, for all its methods: put an untracked handler on
//!   a path of its own (`/healthz`). Beside tracked methods of the same path, its requests are
//!   still left out one by one, but the in-progress gauge of its method may show (at 0 once
//!   they are done).
//! - The context is task-local: it is current while the layer polls the request's future.
//!   It reaches everything the handler awaits in its own task, and `tower::buffer` (whose worker hands the future back to the caller's task), but
//!   not a handler run on another task — a middleware between the layer and the handler that
//!   `tokio::spawn`s the inner service, say. There a mark is lost and the route counts as
//!   tracked. Put such middleware outside the layer (apply it after `.layer(promtrack::layer())`),
//!   or exclude the route by path.
//! - [`excluded_paths`](MetricsLayerBuilder::excluded_paths) is decided before the request runs:
//!   use it when a route must be excluded whatever its handler does.
//!
//! # Streaming responses and WebSockets
//!
//! By default ([`RequestEnd::ResponseHead`]) a request ends when the inner service returns the
//! response head, as in the Python exporter: a server-sent-events stream or a large download
//! is not part of the duration, and leaves the in-progress gauge when its head is sent. With
//! [`RequestEnd::BodyEnd`] it ends when the body has been sent to the end or dropped (the
//! client went away): SSE streams stay in progress while they are open. A WebSocket upgrade is
//! a `101` response with an empty body, so in both modes the request ends with the upgrade,
//! and the socket's life belongs to the task that serves it. To measure the connection
//! instead, the handler takes an [`OpenRequest`] and moves it into that task: the request then
//! stays in progress, and its duration runs, until the guard is dropped (the same serves work
//! a handler answers early, `202 Accepted`, and finishes in the background).
//!
//! A request cancelled before its response head (the client went away) records nothing; the
//! in-progress gauge it raised goes back down.
//!
//! # Panics
//!
//! No panic escapes the layer from a handler or from a body it follows (see below which). A
//! panic before the response head (in the handler, an extractor, a middleware inside the
//! layer) is answered with `500 Internal Server Error` and counted once in `exceptions` (and in
//! `duration` and `total` with `status="500"`); the process keeps serving. A panic while the
//! response body streams cannot change the status that already went out: the body ends with an
//! error, the server aborts that connection, and the request is counted once in `exceptions`,
//! with the status that was sent. A build with `panic = "abort"` cannot catch anything: the
//! process ends at the first panic.
//!
//! Which bodies the layer follows: every body whose size it is not told, and every body when
//! the request ends at the body's end ([`RequestEnd::BodyEnd`]) or its size is recorded
//! ([`body_sizes`](MetricsLayerBuilder::body_sizes)). With the defaults, a body that reports
//! its exact size (`size_hint().exact()`: axum's bodies made of bytes, a `String`, `Json`, an
//! empty body) is passed on unwrapped once its request is recorded at the head, which spares an
//! allocation per request: such bodies run no application code while they are sent. A
//! hand-written `HttpBody` that reports an exact size and panics in `poll_frame` is then
//! neither caught nor counted in `exceptions`: it ends the server's task for that connection
//! (the server keeps serving). A streamed body (`Body::from_stream`, SSE) reports no exact
//! size and is always followed.
//!
//! # The metrics endpoint
//!
//! The endpoint built by [`MetricsRouter`](crate::MetricsRouter) (and
//! [`metrics_router`](crate::metrics_router)) marks its requests through the request context
//! ([`mark_metrics_endpoint`], which a hand-written endpoint can call too), so the layer leaves
//! scrapes out wherever the endpoint is mounted and whatever its path;
//! [`track_metrics_endpoint`](MetricsLayerBuilder::track_metrics_endpoint) counts them. Any
//! tower layer can guard the endpoint (the exporter's `metrics_decorator`): add it to the
//! metrics router before merging it, `metrics_router().route_layer(auth)`.

mod body;
mod cache;
mod config;
mod exemplars;
mod families;
mod hold;
mod http_labels;
mod request;
mod routes;
mod service;
mod traceparent;

use std::panic::Location;
use std::sync::Arc;

use regex_lite::Regex;
use tower::Layer;

pub use crate::context::mark_metrics_endpoint;
pub use config::{
    DEFAULT_SIZE_BUCKETS, GroupBy, Latency, MetricsLayerBuilder, RequestEnd, RouteMetric,
};
pub use hold::OpenRequest;
pub use http_labels::{OTHER_METHOD, StatusLabel, UNMATCHED_PATH, route_template};
pub use service::{MetricsService, ResponseFuture};

use crate::{Error, Info, Registry};
use config::Grouping;
use families::Families;
use routes::Routes;

/// The default HTTP metrics, with every default, recorded into the
/// [default registry](crate::default_registry). Shorthand for
/// `MetricsLayer::builder().build()`.
///
/// # Panics
///
/// At start-up, if a family of the same name but a different declaration is already
/// registered in the default registry (use [`MetricsLayer::builder`] to get the error as a
/// `Result`), or if two metric declarations of one name disagree (see
/// [`check_declarations`](crate::check_declarations)). Calling it several times is fine: the
/// layers share their families.
#[track_caller]
pub fn layer() -> MetricsLayer {
    if let Err(error) = crate::check_declarations() {
        panic!("promtrack::layer(): {error}");
    }
    match MetricsLayer::builder().build() {
        Ok(layer) => layer,
        Err(e) => panic!("promtrack::layer(): {e}"),
    }
}

/// A tower [`Layer`] recording the default HTTP metrics of the requests it wraps; see the
/// [module documentation](self).
#[derive(Clone)]
pub struct MetricsLayer {
    state: Arc<LayerState>,
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("registry", &self.state.registry)
            .finish_non_exhaustive()
    }
}

/// What every clone of a layer and its services share.
pub(crate) struct LayerState {
    registry: Registry,
    families: Families,
    routes: Routes,
    group_by: Grouping,
    /// The excluded-path patterns as one regex, each alternative anchored at the path's start.
    excluded: Option<Regex>,
    exclude_user_defaults: bool,
    request_end: RequestEnd,
    track_metrics_endpoint: bool,
    /// Whether any label is computed from the response head.
    response_labels: bool,
    /// Whether a request must be taken apart (`Request::into_parts`) for what the layer reads
    /// of it: labels or a path computed from its head, or its body counted. Moving the parts
    /// out and back is a few hundred bytes of copying that most configurations need not pay.
    request_parts: bool,
    /// Whether the default metrics' label values follow from the route, the method and the
    /// status alone (template grouping, static extra labels): then each route caches its
    /// series (`cache.rs`).
    cacheable: bool,
    /// Where each request's exemplar trace comes from (`exemplars.rs`).
    exemplars: exemplars::ExemplarConfig,
}

impl MetricsLayer {
    /// A builder for a configured layer.
    pub fn builder() -> MetricsLayerBuilder {
        MetricsLayerBuilder::default()
    }

    /// The registry the layer records into.
    pub fn registry(&self) -> &Registry {
        &self.state.registry
    }

    /// Registers an info metric, a constant 1 carrying `labels` (the exporter's
    /// `metrics.info(name, help, **labels)`), in the layer's registry.
    ///
    /// ```
    /// let layer = promtrack::layer::MetricsLayer::builder()
    ///     .registry(&promtrack::Registry::new())
    ///     .build()?;
    /// layer.info("app_info", "Application information.", &[("version", "1.4.2")])?;
    /// # Ok::<(), promtrack::Error>(())
    /// ```
    #[track_caller]
    pub fn info(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<(), Error> {
        let family = families::family::<Info>(
            name.into(),
            help,
            labels.iter().map(|(n, _)| *n),
            Location::caller(),
        );
        let family = self.state.registry.get_or_register(family)?;
        family.with_writer(|w| {
            for (_, v) in labels {
                w.value(*v);
            }
        });
        Ok(())
    }
}

impl MetricsLayerBuilder {
    /// Checks the configuration and registers the families. Fails with an error naming the
    /// setting and the fix: an invalid prefix or label name, unsorted buckets, an excluded-path
    /// pattern that does not compile, a response label on an in-progress gauge, or a family
    /// already registered with another declaration.
    #[track_caller]
    pub fn build(self) -> Result<MetricsLayer, Error> {
        let origin = Location::caller();
        let registry = self
            .registry
            .clone()
            .unwrap_or_else(|| crate::default_registry().clone());
        let excluded = if self.excluded_paths.is_empty() {
            None
        } else {
            for p in &self.excluded_paths {
                if let Err(e) = Regex::new(p) {
                    return Err(Error::InvalidConfig {
                        setting: format!("the excluded path pattern `{p}`"),
                        reason: format!(
                            "{e}; write a regular expression matched against the start of the request path, such as `/static/` or `/health$`"
                        ),
                    });
                }
            }
            // Each pattern compiled alone above, so each is a whole group here.
            let anchored: Vec<String> = self
                .excluded_paths
                .iter()
                .map(|p| format!("^(?:{p})"))
                .collect();
            Some(
                Regex::new(&anchored.join("|")).map_err(|e| Error::InvalidConfig {
                    setting: "the excluded path patterns".into(),
                    reason: format!("{e}; use fewer or simpler patterns"),
                })?,
            )
        };
        let families = Families::register(&self, &registry, origin)?;
        let response_labels = self.labels.iter().any(|e| e.is_response())
            || self
                .route_metrics
                .iter()
                .any(|m| m.labels.iter().any(|e| e.is_response()));
        let request_parts = matches!(self.group_by.0, Grouping::Request(_))
            || self.switches.body_sizes
            || self.exemplars.needs_parts()
            || self.labels.iter().any(|e| e.is_request())
            || self
                .route_metrics
                .iter()
                .any(|m| m.labels.iter().any(|e| e.is_request()));
        let cacheable = matches!(self.group_by.0, Grouping::Template)
            && self
                .labels
                .iter()
                .all(|e| !e.is_request() && !e.is_response());
        Ok(MetricsLayer {
            state: Arc::new(LayerState {
                registry,
                families,
                routes: Routes::default(),
                group_by: self.group_by.0,
                excluded,
                exclude_user_defaults: self.exclude_user_defaults,
                request_end: self.request_end,
                track_metrics_endpoint: self.track_metrics_endpoint,
                response_labels,
                request_parts,
                cacheable,
                exemplars: self.exemplars,
            }),
        })
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService::new(inner, self.state.clone())
    }
}
