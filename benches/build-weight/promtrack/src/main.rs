//! Bare axum + promtrack: the layer, `metrics_router()` and one `#[histogram]`.

use axum::{Router, routing::get};

#[promtrack::histogram("hello_seconds", "Time spent in the hello handler.")]
async fn hello() -> &'static str {
    "hello"
}

#[tokio::main]
async fn main() {
    let app = Router::new()
        .route("/", get(hello))
        .merge(promtrack::metrics_router())
        .layer(promtrack::layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
