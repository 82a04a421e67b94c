//! Exemplars from the current span's OpenTelemetry context (feature `opentelemetry`, issue 14),
//! through a real axum router with tower-http's `TraceLayer` and `tracing-opentelemetry`'s layer
//! in the subscriber — the set-up the README's "Where the trace comes from" shows. The request
//! carries no `traceparent`, so an exemplar can only come from the span: its trace id and a
//! span id (which a header never gives). With `TraceLayer` added *inside* promtrack's layer
//! instead, the layer records outside the span and attaches none, while the handler's own
//! attribute, which runs inside it, still does: the ordering the README asks for is the one
//! that works.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use promtrack::Registry;
use promtrack::expose::{Format, encode};
use promtrack::layer::MetricsLayer;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// The trace a gateway started, as its propagator would hand it to this server's span.
const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const TRACE_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[promtrack::histogram("lo_handler_seconds", "A handler inside the request's span.")]
async fn handler() -> &'static str {
    "traced"
}

/// The request's span, made by `TraceLayer`, with the gateway's trace as its remote parent
/// (`sampled` or not).
fn span_for(sampled: bool) -> impl Fn(&Request<Body>) -> tracing::Span + Clone {
    move |_request| {
        let span = tracing::info_span!("request");
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let parent = SpanContext::new(
            TraceId::from_bytes(TRACE),
            SpanId::from_bytes([0x07; 8]),
            flags,
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
        span
    }
}

/// One `GET /` through `app` with `tracing-opentelemetry`'s layer, on the SDK's tracer
/// (parent-based sampling, its default), as the thread's subscriber (the test runtime is
/// single-threaded, so every poll sees it); the OpenMetrics exposition of `registry` after it.
async fn one_request(app: Router, registry: &Registry) -> String {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("layer_otel")));
    let _guard = tracing::subscriber::set_default(subscriber);
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    let mut body = Vec::new();
    encode(registry, Format::OpenMetrics, &mut body);
    String::from_utf8(body).unwrap()
}

fn layer(registry: &Registry) -> MetricsLayer {
    MetricsLayer::builder()
        .registry(registry)
        .buckets(&[0.5, 1.0])
        .exporter_info(false)
        .build()
        .unwrap()
}

/// The exemplar label sets on lines starting with `series`.
fn exemplars<'a>(text: &'a str, series: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.split_once(" # {").map(|(_, e)| e))
        .map(|e| e.split_once('}').map_or(e, |(labels, _)| labels))
        .collect()
}

/// `trace_id` of the gateway's trace and the `span_id` of this server's span (16 hex digits, not
/// the remote parent's `0707…`), in the order OpenMetrics exemplars are written here.
fn assert_span_exemplar(labels: &str) {
    let (trace, span) = labels
        .split_once(',')
        .unwrap_or_else(|| panic!("no span id in exemplar {{{labels}}}"));
    assert_eq!(trace, format!("trace_id=\"{TRACE_HEX}\""));
    let span = span
        .strip_prefix("span_id=\"")
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a span_id label: {span}"));
    assert_eq!(span.len(), 16, "span id {span}");
    assert!(
        span.bytes().all(|b| b.is_ascii_hexdigit()),
        "span id {span}"
    );
    assert_ne!(
        span, "0707070707070707",
        "the caller's span id, not this server's"
    );
}

#[tokio::test]
async fn trace_layer_outside_gives_the_layer_and_the_handler_the_spans_trace_and_span_ids() {
    let registry = Registry::new();
    let app = Router::new()
        .route("/", get(handler))
        .layer(layer(&registry)) // inner: records inside the span
        .layer(TraceLayer::new_for_http().make_span_with(span_for(true))); // outer: opens it
    let text = one_request(app, &registry).await;

    let bucket = exemplars(
        &text,
        r#"axum_http_request_duration_seconds_bucket{method="GET",path="/",status="200",le="0.5"}"#,
    );
    assert_eq!(bucket.len(), 1, "duration bucket exemplars in:\n{text}");
    assert_span_exemplar(bucket[0]);
    let counter = exemplars(&text, "axum_http_request_total{");
    assert_eq!(counter.len(), 1, "request counter exemplars in:\n{text}");
    assert_span_exemplar(counter[0]);

    // The handler's attribute is in the default registry, beside other tests' metrics.
    let mut body = Vec::new();
    encode(
        promtrack::default_registry(),
        Format::OpenMetrics,
        &mut body,
    );
    let global = String::from_utf8(body).unwrap();
    let handler = exemplars(&global, "lo_handler_seconds_bucket{");
    assert!(
        handler.iter().any(|labels| labels.contains(TRACE_HEX)),
        "no exemplar of the span on the handler's histogram in:\n{global}"
    );
}

#[tokio::test]
async fn an_unsampled_span_gives_no_exemplar() {
    let registry = Registry::new();
    let app = Router::new()
        .route("/", get(|| async { "untraced" }))
        .layer(layer(&registry))
        .layer(TraceLayer::new_for_http().make_span_with(span_for(false)));
    let text = one_request(app, &registry).await;
    assert!(
        text.contains("axum_http_request_total{"),
        "the request was counted:\n{text}"
    );
    assert!(
        !text.contains(" # {"),
        "an exemplar without sampling in:\n{text}"
    );
}

#[tokio::test]
async fn trace_layer_inside_leaves_the_layer_outside_the_span() {
    let registry = Registry::new();
    let app = Router::new()
        .route("/", get(|| async { "inside" }))
        .layer(TraceLayer::new_for_http().make_span_with(span_for(true))) // inner: wrong order
        .layer(layer(&registry));
    let text = one_request(app, &registry).await;
    assert!(
        text.contains("axum_http_request_total{"),
        "the request was counted:\n{text}"
    );
    assert!(
        !text.contains(" # {"),
        "the layer recorded inside a span it is outside of:\n{text}"
    );
}
