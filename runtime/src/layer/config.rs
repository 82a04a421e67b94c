//! The layer's configuration: [`MetricsLayerBuilder`] and the options it takes, one for each
//! knob of `prometheus_flask_exporter`'s `PrometheusMetrics` (see the module docs of
//! [`layer`](super) for the table).
//!
//! Nothing here is checked until [`build`](MetricsLayerBuilder::build): that is where names,
//! buckets and patterns are validated and the families registered, so that every mistake is a
//! start-up `Err` naming the setting and the fix, never a failure in a request.

use http::{request, response};

use super::exemplars::ExemplarConfig;
use super::http_labels::{ExtraLabel, RequestFn, StatusLabel};
use crate::{LabelValue, NativeConfig, Registry, TraceContext};

/// How requests are grouped into the `path` label.
#[derive(Clone, Default)]
pub struct GroupBy(pub(crate) Grouping);

#[derive(Clone, Default)]
pub(crate) enum Grouping {
    #[default]
    Template,
    RawPath,
    Request(RequestFn),
}

impl std::fmt::Debug for GroupBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Grouping::Template => "GroupBy::template()",
            Grouping::RawPath => "GroupBy::raw_path()",
            Grouping::Request(_) => "GroupBy::request(..)",
        })
    }
}

impl GroupBy {
    /// The matched route template, `/users/{id}` (the default): one series per route.
    pub fn template() -> Self {
        Self(Grouping::Template)
    }

    /// The raw request path, `/users/42`. One series per distinct path: only for services whose
    /// paths are few and fixed. The families' series cap (10 000 label sets each, see
    /// [`Family::max_series`](crate::Family::max_series)) still bounds memory; past it, new
    /// paths share the overflow series.
    pub fn raw_path() -> Self {
        Self(Grouping::RawPath)
    }

    /// A value computed from the request (the exporter's `group_by` function).
    ///
    /// ```
    /// use promtrack::layer::GroupBy;
    /// // Group by API version instead of route.
    /// let by_version = GroupBy::request(|req| {
    ///     req.uri.path().split('/').nth(1).unwrap_or("").to_owned()
    /// });
    /// ```
    pub fn request<V: LabelValue>(
        f: impl Fn(&request::Parts) -> V + Send + Sync + 'static,
    ) -> Self {
        match ExtraLabel::request("path", f).source {
            super::http_labels::ExtraSource::Request(f) => Self(Grouping::Request(f)),
            _ => unreachable!("ExtraLabel::request builds a request source"),
        }
    }
}

/// How request latency is exposed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Latency {
    /// A histogram with the configured buckets (the default).
    #[default]
    Histogram,
    /// A summary: count and sum only, no buckets (the exporter's
    /// `default_latency_as_histogram=False`).
    Summary,
}

/// When a request ends, for its duration and for the in-progress gauge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequestEnd {
    /// When the inner service returns the response head (the default, and what the Python
    /// exporter measures). A streamed body (SSE, a large download) is not part of the duration.
    #[default]
    ResponseHead,
    /// When the response body has been sent to the end, or dropped because the client went
    /// away. A server-sent-events stream is in progress as long as it is open.
    BodyEnd,
}

/// Whether a default metric is on. `Default` is every default on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Switches {
    pub(crate) duration: bool,
    pub(crate) total: bool,
    pub(crate) exceptions: bool,
    pub(crate) in_progress: bool,
    pub(crate) exporter_info: bool,
    pub(crate) body_sizes: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            duration: true,
            total: true,
            exceptions: true,
            in_progress: true,
            exporter_info: true,
            body_sizes: false,
        }
    }
}

/// Buckets of the body size histograms, in bytes: powers of 4 from 64 B to 64 MiB.
pub const DEFAULT_SIZE_BUCKETS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// A metric recorded for every route (the exporter's `register_default`): a counter, a
/// histogram or summary of the request duration, or an in-progress gauge, with labels fixed or
/// computed from the request or the response.
///
/// Recorded for every request the layer tracks, including routes marked `#[do_not_track]`
/// (which only opt out of the default metrics), but not for `#[exclude_all_metrics]` routes nor,
/// unless [`exclude_user_defaults`](MetricsLayerBuilder::exclude_user_defaults) is off,
/// excluded paths.
///
/// ```
/// use promtrack::layer::{MetricsLayer, RouteMetric};
///
/// let layer = MetricsLayer::builder()
///     .registry(&promtrack::Registry::new())
///     .register_default(
///         RouteMetric::counter("app_by_path_total", "Requests by raw path.")
///             .label_from_request("path", |req| req.uri.path().to_owned())
///             .label_from_response("cache", |res| {
///                 res.headers.contains_key("x-cache-hit")
///             }),
///     )
///     .build()?;
/// # Ok::<(), promtrack::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RouteMetric {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) kind: RouteKind,
    pub(crate) buckets: Option<Vec<f64>>,
    pub(crate) labels: Vec<ExtraLabel>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteKind {
    Counter,
    Histogram,
    Summary,
    InProgress,
}

impl RouteMetric {
    fn new(name: &str, help: &str, kind: RouteKind) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            buckets: None,
            labels: Vec::new(),
        }
    }

    /// Counts requests (the name must end in `_total`).
    pub fn counter(name: &str, help: &str) -> Self {
        Self::new(name, help, RouteKind::Counter)
    }

    /// Observes each request's duration in seconds into a histogram.
    pub fn histogram(name: &str, help: &str) -> Self {
        Self::new(name, help, RouteKind::Histogram)
    }

    /// Observes each request's duration in seconds into a summary.
    pub fn summary(name: &str, help: &str) -> Self {
        Self::new(name, help, RouteKind::Summary)
    }

    /// Tracks requests in progress in a gauge (up when a request starts, down when it ends).
    /// Its labels cannot come from the response, which does not exist yet when it goes up.
    pub fn in_progress(name: &str, help: &str) -> Self {
        Self::new(name, help, RouteKind::InProgress)
    }

    /// Histogram buckets (seconds), for [`histogram`](Self::histogram).
    pub fn buckets(mut self, bounds: &[f64]) -> Self {
        self.buckets = Some(bounds.to_vec());
        self
    }

    /// A label with a fixed value.
    pub fn static_label(mut self, name: &str, value: impl LabelValue) -> Self {
        self.labels.push(ExtraLabel::fixed(name, value));
        self
    }

    /// A label computed from the request head, before the handler runs.
    pub fn label_from_request<V: LabelValue>(
        mut self,
        name: &str,
        f: impl Fn(&request::Parts) -> V + Send + Sync + 'static,
    ) -> Self {
        self.labels.push(ExtraLabel::request(name, f));
        self
    }

    /// A label computed from the response head.
    pub fn label_from_response<V: LabelValue>(
        mut self,
        name: &str,
        f: impl Fn(&response::Parts) -> V + Send + Sync + 'static,
    ) -> Self {
        self.labels.push(ExtraLabel::response(name, f));
        self
    }
}

/// Configures a [`MetricsLayer`](super::MetricsLayer); [`layer()`](super::layer) is
/// `MetricsLayer::builder().build()` with every default.
///
/// ```
/// use promtrack::layer::{GroupBy, Latency, MetricsLayer, StatusLabel};
///
/// let layer = MetricsLayer::builder()
///     .registry(&promtrack::Registry::new())
///     .prefix("shop")                                 // shop_http_request_total, ...
///     .buckets(&[0.01, 0.05, 0.25, 1.0])
///     .status(StatusLabel::Class)                     // status="2xx"
///     .static_label("service", "checkout")
///     .label_from_request("tenant", |req| {
///         req.headers.get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned()
///     })
///     .excluded_paths(["/static/", "/favicon\\.ico$"])
///     .build()?;
/// # Ok::<(), promtrack::Error>(())
/// ```
///
/// # Exemplars: from a latency spike to its trace
///
/// The duration histogram (one exemplar per bucket) and the request counter carry an
/// exemplar for each traced request, and so do the `#[histogram]` and `#[counter]` attributes
/// of handlers it runs (unless one says `exemplars = false`). The trace comes from, first to
/// last:
///
/// 1. with the `opentelemetry` feature, the current `tracing` span's OpenTelemetry context
///    when the request is recorded: its trace id and this server's span id
#[cfg_attr(
    feature = "opentelemetry",
    doc = "   ([`otel::current_trace`](crate::otel::current_trace) tells the requirements);"
)]
#[cfg_attr(
    not(feature = "opentelemetry"),
    doc = "   (`otel::current_trace`, built with the feature, tells the requirements);"
)]
/// 2. the function given to [`exemplar_from_request`](Self::exemplar_from_request);
/// 3. a well-formed W3C `traceparent` header whose `sampled` flag is set: its trace id only
///    (its parent id is the caller's span, not this server's), unless
///    [`trust_traceparent(false)`](Self::trust_traceparent).
///
/// A request with none of these records plain observations. Each series keeps the latest
/// exemplar per bucket, at most one new one per 90 ms (see [`Histogram`](crate::Histogram));
/// OpenMetrics and protobuf scrapes show them, Prometheus' text format has none.
///
/// **Order with the tracing layer.** The span must be entered while promtrack's layer records,
/// so add tower-http's `TraceLayer` (which `tracing-opentelemetry` turns into an OpenTelemetry
/// span) *outside* promtrack's layer: axum's last `.layer` call is the outermost.
///
/// ```
/// use axum::{Router, routing::get};
/// use promtrack::layer::MetricsLayer;
///
/// let metrics = MetricsLayer::builder()
///     .registry(&promtrack::Registry::new())
///     .build()?;
/// # let trace_layer = tower::layer::util::Identity::new();
/// // let trace_layer = tower_http::trace::TraceLayer::new_for_http();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(metrics)      // inside: records ...
///     .layer(trace_layer); // ... while this layer's span is entered
/// # Ok::<(), promtrack::Error>(())
/// ```
///
/// Behind a proxy that sets trace ids of its own, read them instead:
///
/// ```
/// use promtrack::{TraceContext, layer::MetricsLayer};
///
/// fn parse_hex16(s: &str) -> Option<[u8; 16]> {
///     u128::from_str_radix(s, 16).ok().map(u128::to_be_bytes).filter(|_| s.len() == 32)
/// }
///
/// let layer = MetricsLayer::builder()
///     .registry(&promtrack::Registry::new())
///     .trust_traceparent(false) // clients set the sampled flag themselves: ignore it
///     .exemplar_from_request(|req| {
///         let id = req.headers.get("x-edge-trace-id")?.to_str().ok()?;
///         TraceContext::new(parse_hex16(id)?, None)
///     })
///     .build()?;
/// # Ok::<(), promtrack::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct MetricsLayerBuilder {
    pub(crate) registry: Option<Registry>,
    pub(crate) prefix: String,
    pub(crate) switches: Switches,
    pub(crate) group_by: GroupBy,
    pub(crate) buckets: Option<Vec<f64>>,
    pub(crate) native: Option<NativeConfig>,
    pub(crate) size_buckets: Option<Vec<f64>>,
    pub(crate) latency: Latency,
    pub(crate) status: StatusLabel,
    pub(crate) labels: Vec<ExtraLabel>,
    pub(crate) excluded_paths: Vec<String>,
    pub(crate) exclude_user_defaults: bool,
    pub(crate) request_end: RequestEnd,
    pub(crate) track_metrics_endpoint: bool,
    pub(crate) route_metrics: Vec<RouteMetric>,
    pub(crate) exemplars: ExemplarConfig,
}

impl Default for MetricsLayerBuilder {
    fn default() -> Self {
        Self {
            registry: None,
            prefix: "axum".into(),
            switches: Switches::default(),
            group_by: GroupBy::default(),
            buckets: None,
            native: None,
            size_buckets: None,
            latency: Latency::default(),
            status: StatusLabel::default(),
            labels: Vec::new(),
            excluded_paths: Vec::new(),
            exclude_user_defaults: true,
            request_end: RequestEnd::default(),
            track_metrics_endpoint: false,
            route_metrics: Vec::new(),
            exemplars: ExemplarConfig::default(),
        }
    }
}

impl MetricsLayerBuilder {
    /// Registers into `registry` instead of the [default registry](crate::default_registry)
    /// (the exporter's `registry`).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The default metrics' name prefix, `axum` by default (the exporter's `defaults_prefix`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Turns every default metric on or off at once (the exporter's `export_defaults`). With
    /// them off, the layer still records [`register_default`](Self::register_default) metrics
    /// and provides the request context the handler attributes use.
    pub fn export_defaults(mut self, on: bool) -> Self {
        let sizes = self.switches.body_sizes;
        self.switches = Switches {
            duration: on,
            total: on,
            exceptions: on,
            in_progress: on,
            exporter_info: on,
            body_sizes: sizes && on,
        };
        self
    }

    /// `<prefix>_http_request_duration_seconds` on or off.
    pub fn duration(mut self, on: bool) -> Self {
        self.switches.duration = on;
        self
    }

    /// `<prefix>_http_request_total` on or off.
    pub fn requests_total(mut self, on: bool) -> Self {
        self.switches.total = on;
        self
    }

    /// `<prefix>_http_request_exceptions_total` on or off (panics are caught either way). A
    /// panic while a response body streams is counted where the layer follows the body: always
    /// for a body of unknown size (`Body::from_stream`), and for one of exact size only with
    /// [`body_sizes`](Self::body_sizes) or [`RequestEnd::BodyEnd`] (see the [layer's
    /// panics](super#panics)).
    pub fn exceptions(mut self, on: bool) -> Self {
        self.switches.exceptions = on;
        self
    }

    /// `<prefix>_http_requests_in_progress` on or off.
    pub fn in_progress(mut self, on: bool) -> Self {
        self.switches.in_progress = on;
        self
    }

    /// `<prefix>_exporter_info{version}` on or off.
    pub fn exporter_info(mut self, on: bool) -> Self {
        self.switches.exporter_info = on;
        self
    }

    /// Adds `<prefix>_http_request_size_bytes` and `<prefix>_http_response_size_bytes`
    /// histograms {method, path, status} (off by default). The request size is its
    /// `Content-Length`, or the bytes the application read when there is none; the response
    /// size is the bytes of body sent.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.switches.body_sizes = on;
        self
    }

    /// Buckets of the body size histograms, in bytes (default [`DEFAULT_SIZE_BUCKETS`]).
    pub fn size_buckets(mut self, bounds: &[f64]) -> Self {
        self.size_buckets = Some(bounds.to_vec());
        self
    }

    /// How the `path` label groups requests (the exporter's `group_by`); the route template
    /// by default.
    pub fn group_by(mut self, group_by: GroupBy) -> Self {
        self.group_by = group_by;
        self
    }

    /// Buckets of the duration histogram, in seconds (the exporter's `buckets`); default
    /// [`DEFAULT_BUCKETS`](crate::DEFAULT_BUCKETS).
    pub fn buckets(mut self, bounds: &[f64]) -> Self {
        self.buckets = Some(bounds.to_vec());
        self
    }

    /// Makes the duration histogram native (exponential buckets, see
    /// [`NativeConfig`] for every setting and its default): native only, or beside the classic
    /// [`buckets`](Self::buckets) with [`NativeConfig::classic`]. Native buckets travel in the
    /// protobuf exposition (Prometheus 2.x with `--enable-feature=native-histograms`, 3.x with
    /// `scrape_native_histograms: true`); a text or OpenMetrics scraper sees a native-only
    /// histogram as one `le="+Inf"` bucket with its count and sum. Checked by
    /// [`build`](Self::build): a setting out of range, `buckets(..)` with a native-only
    /// histogram (it keeps no classic buckets: add `.classic(true)` or drop `buckets`), or a
    /// [`Latency::Summary`] (a summary has no buckets) is an error naming the fix.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use promtrack::{NativeConfig, Registry, expose::{Format, encode}};
    /// use tower::ServiceExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let registry = Registry::new();
    /// let layer = promtrack::layer::MetricsLayer::builder()
    ///     .registry(&registry)
    ///     .native(NativeConfig::default().max_buckets(100))
    ///     .build()?;
    /// let app = Router::new().route("/", get(|| async { "hi" })).layer(layer);
    /// let request = axum::http::Request::get("/").body(axum::body::Body::empty()).unwrap();
    /// drop(app.oneshot(request).await.unwrap());
    ///
    /// // Text carries no native buckets: the one `+Inf` bucket, then the count and sum.
    /// let mut text = Vec::new();
    /// encode(&registry, Format::Text, &mut text);
    /// let text = String::from_utf8(text).unwrap();
    /// assert!(text.contains(
    ///     "axum_http_request_duration_seconds_bucket{method=\"GET\",path=\"/\",status=\"200\",le=\"+Inf\"} 1\n"
    /// ));
    /// assert!(!text.contains("le=\"0.005\""));
    ///
    /// // Both: the classic buckets of `buckets(..)` and the native ones.
    /// let both = promtrack::layer::MetricsLayer::builder()
    ///     .registry(&Registry::new())
    ///     .buckets(&[0.1, 1.0])
    ///     .native(NativeConfig::default().classic(true))
    ///     .build()?;
    /// # Ok::<(), promtrack::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn native(mut self, native: NativeConfig) -> Self {
        self.native = Some(native);
        self
    }

    /// Latency as a histogram (default) or a summary (the exporter's
    /// `default_latency_as_histogram`).
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// The `status` label as a code (default) or a class.
    pub fn status(mut self, status: StatusLabel) -> Self {
        self.status = status;
        self
    }

    /// A label with a fixed value on every default metric (the exporter's `default_labels`
    /// with a constant).
    pub fn static_label(mut self, name: &str, value: impl LabelValue) -> Self {
        self.labels.push(ExtraLabel::fixed(name, value));
        self
    }

    /// A label computed from the request head on every default metric (the exporter's
    /// `default_labels` with a callable reading the request).
    pub fn label_from_request<V: LabelValue>(
        mut self,
        name: &str,
        f: impl Fn(&request::Parts) -> V + Send + Sync + 'static,
    ) -> Self {
        self.labels.push(ExtraLabel::request(name, f));
        self
    }

    /// A label computed from the response head on every default metric except the in-progress
    /// gauge, which goes up before there is a response (the exporter's `default_labels` with a
    /// callable receiving the response).
    pub fn label_from_response<V: LabelValue>(
        mut self,
        name: &str,
        f: impl Fn(&response::Parts) -> V + Send + Sync + 'static,
    ) -> Self {
        self.labels.push(ExtraLabel::response(name, f));
        self
    }

    /// Requests whose path matches one of these regular expressions are not tracked (the
    /// exporter's `excluded_paths`). As with Python's `re.match`, a pattern matches at the
    /// start of the path: `"/static/"` excludes everything below `/static/`; end it with `$`
    /// to match a whole path. Invalid patterns are reported by [`build`](Self::build).
    ///
    /// Patterns are compiled by [`regex-lite`](https://docs.rs/regex-lite) (the syntax of the
    /// `regex` crate, which is Python's for everything an excluded path needs) and matched
    /// against the path as the request carries it, percent-encoded, so ASCII: `\w`, `\d`,
    /// `\s` and `(?i)` are ASCII-only and Unicode classes (`\p{L}`) are not supported.
    pub fn excluded_paths<I, P>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.excluded_paths
            .extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Whether excluded paths also skip [`register_default`](Self::register_default) metrics
    /// and the handler attributes (`#[histogram]`, `#[counter]`, …), as if the handler were
    /// marked `#[exclude_all_metrics]`. On by default, like the exporter's
    /// `exclude_user_defaults`; off, excluded paths only skip the default metrics.
    pub fn exclude_user_defaults(mut self, on: bool) -> Self {
        self.exclude_user_defaults = on;
        self
    }

    /// When a request ends, for its duration and the in-progress gauge; see [`RequestEnd`].
    pub fn request_end(mut self, end: RequestEnd) -> Self {
        self.request_end = end;
        self
    }

    /// Counts scrapes of the metrics endpoint like any other request. Off by default: the
    /// endpoint built by [`MetricsRouter`](crate::MetricsRouter) marks its requests, and the
    /// layer leaves them out wherever the endpoint is mounted and whatever its path.
    pub fn track_metrics_endpoint(mut self, on: bool) -> Self {
        self.track_metrics_endpoint = on;
        self
    }

    /// Records `metric` for every tracked request (the exporter's `register_default`).
    pub fn register_default(mut self, metric: RouteMetric) -> Self {
        self.route_metrics.push(metric);
        self
    }

    /// Whether traced requests attach exemplars (see [*Exemplars*](Self#exemplars-from-a-latency-spike-to-its-trace)):
    /// on by default. Off, the layer reads no trace at all, and the `#[histogram]` and
    /// `#[counter]` attributes of the requests it serves attach none either.
    ///
    /// ```
    /// let layer = promtrack::layer::MetricsLayer::builder()
    ///     .registry(&promtrack::Registry::new())
    ///     .exemplars(false)
    ///     .build()?;
    /// # Ok::<(), promtrack::Error>(())
    /// ```
    pub fn exemplars(mut self, on: bool) -> Self {
        self.exemplars.on = on;
        self
    }

    /// Whether a sampled W3C `traceparent` header gives the request's exemplar trace: on by
    /// default. Turn it off for a server whose clients set the `sampled` flag themselves
    /// (anyone on the internet can): an exemplar would then link to a trace no collector kept.
    /// [`exemplar_from_request`](Self::exemplar_from_request) and, with the `opentelemetry`
    /// feature, the current span still give traces.
    ///
    /// ```
    /// let layer = promtrack::layer::MetricsLayer::builder()
    ///     .registry(&promtrack::Registry::new())
    ///     .trust_traceparent(false)
    ///     .build()?;
    /// # Ok::<(), promtrack::Error>(())
    /// ```
    pub fn trust_traceparent(mut self, on: bool) -> Self {
        self.exemplars.trust_traceparent = on;
        self
    }

    /// Computes the request's exemplar trace from its head, once per request, before the
    /// handler runs. Asked before the `traceparent` header: its `None` falls back to the
    /// header (when trusted). It runs under `catch_unwind`; a panic counts as `None`. The
    /// request is taken apart to call it (about the cost of a computed label).
    ///
    /// ```
    /// use promtrack::{TraceContext, layer::MetricsLayer};
    ///
    /// // A gateway puts the trace id in `x-trace-id`, 32 hex digits.
    /// let layer = MetricsLayer::builder()
    ///     .registry(&promtrack::Registry::new())
    ///     .exemplar_from_request(|req| {
    ///         let hex = req.headers.get("x-trace-id")?.to_str().ok()?;
    ///         let id = u128::from_str_radix(hex, 16).ok()?;
    ///         TraceContext::new(id.to_be_bytes(), None)
    ///     })
    ///     .build()?;
    /// # Ok::<(), promtrack::Error>(())
    /// ```
    pub fn exemplar_from_request(
        mut self,
        f: impl Fn(&request::Parts) -> Option<TraceContext> + Send + Sync + 'static,
    ) -> Self {
        self.exemplars.from_request = Some(std::sync::Arc::new(f));
        self
    }
}
