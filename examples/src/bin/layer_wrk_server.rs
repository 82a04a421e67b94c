//! The server `scripts/wrk-layer.sh` loads: a hello-world handler, either bare
//! (`layer_wrk_server bare ADDR`) or behind `promtrack::layer()` with one `#[histogram]` on the
//! handler and `/metrics` merged in (`layer_wrk_server layer ADDR`). Two more modes split the
//! cost: `histogram` (the attribute, no layer) and `layer-only` (the layer, no attribute); and
//! `noop` puts an identity tower layer on the route: what axum charges for any layer. Two peers
//! wrap the plain handler: `axum-prometheus` (its `PrometheusMetricLayer`, `/metrics` beside)
//! and `trace` (tower-http's `TraceLayer::new_for_http()`, no subscriber installed).
//! `layer-noexemplars` is the `layer` app with the layer's exemplars switched off
//! (`MetricsLayerBuilder::exemplars(false)`): no `traceparent` probe, no exemplar offers.
//!
//! `layer_wrk_server requests MODE N` sends N requests to the same app with `oneshot` on one
//! thread, without a socket: what `scripts/callgrind-layer.sh` counts instructions of. Two more
//! modes exist there only, both the `layer` app with the headers a real request has (`Host`, as
//! wrk sends, and one more): `layer-traced` with a sampled `traceparent` on every request (each
//! with its own trace id), `layer-untraced` with the same value under another name
//! (`x-request-id`), so that the two differ only in what the layer does with the header.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use promtrack as metrics;
use tower::ServiceExt;

async fn hello() -> &'static str {
    "Hello, World!"
}

#[metrics::histogram("wrk_hello_seconds", "Time spent in the hello handler.")]
async fn hello_instrumented() -> &'static str {
    "Hello, World!"
}

const MODES: &str = "bare|layer|layer-noexemplars|histogram|layer-only|noop|axum-prometheus|trace";
/// The modes of `requests` only: the `layer` app, requests with headers.
const REQUEST_MODES: &str = "layer-untraced|layer-traced";

fn app(mode: &str) -> Option<Router> {
    Some(match mode {
        "bare" => Router::new().route("/", get(hello)),
        "layer" => Router::new()
            .route("/", get(hello_instrumented))
            .merge(metrics::metrics_router())
            .layer(metrics::layer()),
        // The `layer` app with the layer's exemplars off: what the `traceparent` probe costs.
        "layer-noexemplars" => Router::new()
            .route("/", get(hello_instrumented))
            .merge(metrics::metrics_router())
            .layer(
                metrics::layer::MetricsLayer::builder()
                    .exemplars(false)
                    .build()
                    .expect("the default registry takes the layer's families"),
            ),
        "histogram" => Router::new().route("/", get(hello_instrumented)),
        "noop" => Router::new()
            .route("/", get(hello))
            .layer(tower::util::MapResponseLayer::new(
                |r: axum::response::Response| r,
            )),
        "layer-only" => Router::new().route("/", get(hello)).layer(metrics::layer()),
        "axum-prometheus" => {
            let (layer, handle) = axum_prometheus::PrometheusMetricLayer::pair();
            Router::new()
                .route("/", get(hello))
                .route("/metrics", get(move || async move { handle.render() }))
                .layer(layer)
        }
        "trace" => Router::new()
            .route("/", get(hello))
            .layer(tower_http::trace::TraceLayer::new_for_http()),
        _ => return None,
    })
}

fn usage() -> ! {
    eprintln!(
        "usage: layer_wrk_server {MODES} [ADDR]\n       layer_wrk_server requests {MODES}|{REQUEST_MODES} N"
    );
    std::process::exit(2);
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next().unwrap_or_default();
    if first == "requests" {
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        // Inside the runtime: axum-prometheus spawns its upkeep task when its layer is built.
        let _entered = rt.enter();
        let mode = args.next().unwrap_or_default();
        let (headers, traced) = match mode.as_str() {
            "layer-untraced" => (true, false),
            "layer-traced" => (true, true),
            _ => (false, false),
        };
        let app = app(if headers { "layer" } else { &mode }).unwrap_or_else(|| usage());
        let n: u64 = args
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| usage());
        // As `axum::serve` builds it: handlers become routes, and layers are applied, once.
        let app = app.with_state(());
        rt.block_on(async move {
            for i in 0..n {
                let mut request = axum::http::Request::get("/");
                if headers {
                    request = request.header("host", "127.0.0.1:8080");
                }
                if headers {
                    // A new trace per request, sampled, as a traced client sends it.
                    let value = format!("00-{:032x}-00f067aa0ba902b7-01", i + 1);
                    let name = if traced {
                        "traceparent"
                    } else {
                        "x-request-id"
                    };
                    request = request.header(name, value);
                }
                let request = request.body(Body::empty()).unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                // Dropping the body ends the request for the layer, as a server would.
                drop(response);
            }
        });
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new()?;
    let _entered = rt.enter();
    let app = app(&first).unwrap_or_else(|| usage());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        axum::serve(listener, app).await
    })
}
