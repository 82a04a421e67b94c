//! Bare axum + axum-prometheus 0.10: its layer and its `/metrics` route, as its README shows.

use axum::{Router, routing::get};
use axum_prometheus::PrometheusMetricLayer;

async fn hello() -> &'static str {
    "hello"
}

#[tokio::main]
async fn main() {
    let (layer, handle) = PrometheusMetricLayer::pair();
    let app = Router::new()
        .route("/", get(hello))
        .route("/metrics", get(|| async move { handle.render() }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
