//! The server `scripts/wrk-layer.sh` loads: a hello-world handler, either bare
//! (`layer_wrk_server bare ADDR`) or behind `promtrack::layer()` with one `#[histogram]` on the
//! handler and `/metrics` merged in (`layer_wrk_server layer ADDR`). Two more modes split the
//! cost: `histogram` (the attribute, no layer) and `layer-only` (the layer, no attribute); and
//! `noop` puts an identity tower layer on the route: what axum charges for any layer.

use axum::Router;
use axum::routing::get;
use promtrack as metrics;

async fn hello() -> &'static str {
    "Hello, World!"
}

#[metrics::histogram("wrk_hello_seconds", "Time spent in the hello handler.")]
async fn hello_instrumented() -> &'static str {
    "Hello, World!"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let app = match mode.as_str() {
        "bare" => Router::new().route("/", get(hello)),
        "layer" => Router::new()
            .route("/", get(hello_instrumented))
            .merge(metrics::metrics_router())
            .layer(metrics::layer()),
        "histogram" => Router::new().route("/", get(hello_instrumented)),
        "noop" => Router::new()
            .route("/", get(hello))
            .layer(tower::util::MapResponseLayer::new(
                |r: axum::response::Response| r,
            )),
        "layer-only" => Router::new().route("/", get(hello)).layer(metrics::layer()),
        _ => {
            eprintln!("usage: layer_wrk_server bare|layer|histogram|layer-only|noop [ADDR]");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
