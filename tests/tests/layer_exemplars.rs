//! The layer's automatic exemplars (issue 14), through a real axum router: a sampled
//! `traceparent` puts its trace id on the duration histogram's bucket and on the request
//! counter, in OpenMetrics (read by client_python's strict parser) and protobuf (decoded by
//! Python's `protobuf` package), both accepted by `../shared/tools/exposition-check`; an
//! unsampled, malformed or version-`ff` header, a distrusted one, or switched-off exemplars give
//! none; `exemplar_from_request` gives its own; a held request (its route still being learned)
//! keeps its trace; the `#[histogram]` and `#[counter]` attributes of a handler the layer runs
//! attach the same trace, unless `exemplars = false`. Without the checker the tests that need it
//! show as ignored (under `CI=true` they fail): see `tests/build.rs`.

use axum::Router;
use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use promtrack::expose::{Format, encode};
use promtrack::layer::{MetricsLayer, MetricsLayerBuilder};
use promtrack::{Registry, TraceContext};
use tower::ServiceExt;

#[path = "checker_support/mod.rs"]
mod checker_support;
use checker_support::{check, python, python_pb, write};

const T1: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const T2: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent(trace: &str, flags: &str) -> String {
    format!("00-{trace}-{PARENT}-{flags}")
}

fn builder(registry: &Registry) -> MetricsLayerBuilder {
    MetricsLayer::builder()
        .registry(registry)
        .buckets(&[0.5, 1.0])
        .exporter_info(false)
}

async fn hello() -> &'static str {
    "hello"
}

/// Sends one `GET path` with `headers` through `app`, and drops the response (which ends the
/// request for the layer, as a server would).
async fn send(app: &Router, path: &str, headers: &[(&str, &str)]) -> StatusCode {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

fn exposition(registry: &Registry, format: Format) -> Vec<u8> {
    let mut body = Vec::new();
    encode(registry, format, &mut body);
    body
}

fn openmetrics(registry: &Registry) -> String {
    String::from_utf8(exposition(registry, Format::OpenMetrics)).unwrap()
}

/// The OpenMetrics lines carrying an exemplar.
fn exemplar_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains(" # {")).collect()
}

/// The line of `series` (name and labels as written), which must carry an exemplar of `trace`
/// and no span id (a `traceparent`'s parent id is the caller's span, not ours).
fn assert_exemplar(text: &str, series: &str, trace: &str) {
    let want = format!(" # {{trace_id=\"{trace}\"}} ");
    assert!(
        text.lines()
            .any(|l| l.starts_with(series) && l.contains(&want)),
        "no exemplar of {trace} on {series} in:\n{text}"
    );
}

/// `sample name | exemplar labels` per exemplar, as client_python's strict parser reads them.
const OM_DUMP: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for f in text_string_to_metric_families(open(sys.argv[2]).read()):
    for s in f.samples:
        if s.exemplar is not None:
            print(s.name, json.dumps(s.labels, sort_keys=True), "|", json.dumps(s.exemplar.labels, sort_keys=True))
"#;

/// `family | bucket bound or - | exemplar labels` per exemplar of the protobuf exposition.
const PB_DUMP: &str = r#"
def show(name, where, e):
    print(name, "|", where, "|", json.dumps({l.name: l.value for l in e.label}, sort_keys=True))
for f in families:
    for m in f.metric:
        if m.HasField("counter") and m.counter.HasField("exemplar"):
            show(f.name, "-", m.counter.exemplar)
        if m.HasField("histogram"):
            for b in m.histogram.bucket:
                if b.HasField("exemplar"):
                    show(f.name, b.upper_bound, b.exemplar)
"#;

/// One sampled request on a fresh registry: its trace on the bucket it fell in and on the
/// counter, nowhere else.
async fn one_sampled_request() -> Registry {
    let registry = Registry::new();
    let app = Router::new()
        .route("/", get(hello))
        .layer(builder(&registry).build().unwrap());
    let header = traceparent(T1, "01");
    assert_eq!(
        send(&app, "/", &[("traceparent", &header)]).await,
        StatusCode::OK
    );
    registry
}

#[tokio::test]
async fn a_sampled_traceparent_gives_the_bucket_and_the_counter_its_trace_id() {
    let registry = one_sampled_request().await;
    let text = openmetrics(&registry);
    assert_exemplar(
        &text,
        r#"axum_http_request_duration_seconds_bucket{method="GET",path="/",status="200",le="0.5"}"#,
        T1,
    );
    assert_exemplar(
        &text,
        r#"axum_http_request_total{method="GET",status="200"}"#,
        T1,
    );
    assert_eq!(exemplar_lines(&text).len(), 2, "{text}");
    // Text 0.0.4 has no exemplars.
    let plain = String::from_utf8(exposition(&registry, Format::Text)).unwrap();
    assert!(!plain.contains(" # {"), "{plain}");
}

#[tokio::test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
async fn the_traceparent_exemplars_pass_independent_parsers() {
    let registry = one_sampled_request().await;
    let om = write(&exposition(&registry, Format::OpenMetrics), "sampled.om");
    check(&om, "openmetrics", &[]);
    let dump = python(OM_DUMP, &om);
    let want = [
        format!(
            r#"axum_http_request_duration_seconds_bucket {{"le": "0.5", "method": "GET", "path": "/", "status": "200"}} | {{"trace_id": "{T1}"}}"#
        ),
        format!(
            r#"axum_http_request_total {{"method": "GET", "status": "200"}} | {{"trace_id": "{T1}"}}"#
        ),
    ];
    for w in &want {
        assert!(dump.lines().any(|l| l == w), "missing {w}\nin:\n{dump}");
    }
    assert_eq!(dump.lines().count(), want.len(), "{dump}");

    let pb = write(&exposition(&registry, Format::Protobuf), "sampled.pb");
    check(&pb, "protobuf", &[]);
    let dump = python_pb(PB_DUMP, &pb);
    let want = [
        format!(r#"axum_http_request_duration_seconds | 0.5 | {{"trace_id": "{T1}"}}"#),
        format!(r#"axum_http_request_total | - | {{"trace_id": "{T1}"}}"#),
    ];
    for w in &want {
        assert!(dump.lines().any(|l| l == w), "missing {w}\nin:\n{dump}");
    }
    assert_eq!(dump.lines().count(), want.len(), "{dump}");
}

#[tokio::test]
async fn unsampled_malformed_and_unknown_version_ff_headers_give_none() {
    let registry = Registry::new();
    let app = Router::new()
        .route("/", get(hello))
        .layer(builder(&registry).build().unwrap());
    let unsampled = traceparent(T1, "00");
    let uppercase = traceparent(&T1.to_uppercase(), "01");
    let version_ff = format!("ff-{T1}-{PARENT}-01");
    let zero_trace = traceparent(&"0".repeat(32), "01");
    let short = format!("00-{}-{PARENT}-01", &T1[..31]);
    for header in [&unsampled, &uppercase, &version_ff, &zero_trace, &short] {
        send(&app, "/", &[("traceparent", header)]).await;
    }
    send(&app, "/", &[]).await;
    let text = openmetrics(&registry);
    assert!(
        text.contains("axum_http_request_total{method=\"GET\",status=\"200\"} 6\n"),
        "every request is counted:\n{text}"
    );
    assert!(exemplar_lines(&text).is_empty(), "{text}");
}

#[tokio::test]
async fn a_distrusted_traceparent_and_switched_off_exemplars_give_none() {
    for builder in [
        |r: &Registry| builder(r).trust_traceparent(false),
        |r: &Registry| builder(r).exemplars(false),
    ] {
        let registry = Registry::new();
        let app = Router::new()
            .route("/", get(hello))
            .layer(builder(&registry).build().unwrap());
        send(&app, "/", &[("traceparent", &traceparent(T1, "01"))]).await;
        let text = openmetrics(&registry);
        assert!(text.contains("axum_http_request_total{method=\"GET\",status=\"200\"} 1\n"));
        assert!(exemplar_lines(&text).is_empty(), "{text}");
    }
}

fn parse_trace(hex: &str) -> Option<TraceContext> {
    let id = u128::from_str_radix(hex, 16)
        .ok()
        .filter(|_| hex.len() == 32)?;
    TraceContext::new(id.to_be_bytes(), None)
}

#[tokio::test]
async fn exemplar_from_request_comes_before_the_header_and_falls_back_to_it() {
    let registry = Registry::new();
    let layer = builder(&registry)
        .exemplar_from_request(|req| parse_trace(req.headers.get("x-trace-id")?.to_str().ok()?))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/mine", get(hello))
        .route("/header", get(|| async { StatusCode::ACCEPTED }))
        .layer(layer);
    // Both given: the function's wins.
    send(
        &app,
        "/mine",
        &[("x-trace-id", T2), ("traceparent", &traceparent(T1, "01"))],
    )
    .await;
    // The function gives nothing: the header's.
    send(&app, "/header", &[("traceparent", &traceparent(T1, "01"))]).await;
    let text = openmetrics(&registry);
    assert_exemplar(
        &text,
        r#"axum_http_request_duration_seconds_bucket{method="GET",path="/mine",status="200",le="0.5"}"#,
        T2,
    );
    assert_exemplar(
        &text,
        r#"axum_http_request_duration_seconds_bucket{method="GET",path="/header",status="202",le="0.5"}"#,
        T1,
    );
    assert_exemplar(
        &text,
        r#"axum_http_request_total{method="GET",status="202"}"#,
        T1,
    );
}

#[tokio::test]
async fn a_request_held_while_its_route_is_learned_keeps_its_trace() {
    let registry = Registry::new();
    let app = Router::new()
        .route(
            "/items/{id}",
            get(|UrlPath(id): UrlPath<String>| async move {
                match id.as_str() {
                    "missing" => StatusCode::NOT_FOUND,
                    _ => StatusCode::OK,
                }
            }),
        )
        .layer(builder(&registry).build().unwrap());
    // A 4xx on a route not known yet is held back (it may be an extractor's rejection) ...
    let held = traceparent(T1, "01");
    send(&app, "/items/missing", &[("traceparent", &held)]).await;
    assert!(exemplar_lines(&openmetrics(&registry)).is_empty());
    // ... and recorded, with its own trace, when a decisive answer teaches the route.
    send(&app, "/items/7", &[("traceparent", &traceparent(T2, "01"))]).await;
    let text = openmetrics(&registry);
    assert_exemplar(
        &text,
        r#"axum_http_request_total{method="GET",status="404"}"#,
        T1,
    );
    assert_exemplar(
        &text,
        r#"axum_http_request_total{method="GET",status="200"}"#,
        T2,
    );
}

// Handler attributes record into the default registry: each family here is used by one test.

#[promtrack::histogram("lx_traced_handler_seconds", "A handler behind the layer.")]
#[promtrack::counter("lx_traced_handler_calls_total", "Its calls.")]
#[promtrack::counter(
    "lx_traced_handler_plain_total",
    "Its calls, without exemplars.",
    exemplars = false
)]
async fn traced_handler() -> &'static str {
    "traced"
}

#[promtrack::counter(
    "lx_quiet_handler_calls_total",
    "Calls behind a layer without exemplars."
)]
async fn quiet_handler() -> &'static str {
    "quiet"
}

#[tokio::test]
async fn handler_attributes_attach_the_request_trace_unless_told_not_to() {
    let registry = Registry::new();
    let app = Router::new()
        .route("/traced", get(traced_handler))
        .layer(builder(&registry).build().unwrap());
    send(&app, "/traced", &[("traceparent", &traceparent(T2, "01"))]).await;
    let text = openmetrics(promtrack::default_registry());
    // On the bucket the call fell in, whichever that is (a loaded machine may be slow).
    assert_exemplar(&text, "lx_traced_handler_seconds_bucket{", T2);
    assert_exemplar(&text, "lx_traced_handler_calls_total ", T2);
    let plain = text
        .lines()
        .find(|l| l.starts_with("lx_traced_handler_plain_total "))
        .unwrap_or_else(|| panic!("no lx_traced_handler_plain_total in\n{text}"));
    assert_eq!(plain, "lx_traced_handler_plain_total 1");
}

#[tokio::test]
async fn a_layer_without_exemplars_keeps_its_handlers_attributes_from_attaching_them() {
    let registry = Registry::new();
    let app = Router::new()
        .route("/quiet", get(quiet_handler))
        .layer(builder(&registry).exemplars(false).build().unwrap());
    send(&app, "/quiet", &[("traceparent", &traceparent(T2, "01"))]).await;
    let text = openmetrics(promtrack::default_registry());
    let line = text
        .lines()
        .find(|l| l.starts_with("lx_quiet_handler_calls_total "))
        .unwrap_or_else(|| panic!("no lx_quiet_handler_calls_total in\n{text}"));
    assert_eq!(line, "lx_quiet_handler_calls_total 1");
}
