//! The Flask app from the seed post, in axum with promtrack: what
//! `PrometheusMetrics(app)` plus `@metrics.do_not_track()` gave a Flask user, with one layer
//! and one router.
//!
//! ```text
//! cargo run -p promtrack-examples --bin flask_seed        # listens on 127.0.0.1:8000
//! curl localhost:8000/users/42 ; curl localhost:8000/items/book ; curl localhost:8000/healthz
//! curl localhost:8000/metrics
//! prometheus --config.file=examples/prometheus/flask_seed.yml   # scrapes it every 5 s
//! ```
//!
//! `PROMTRACK_ADDR` overrides the address (`127.0.0.1:0` picks a free port, printed on start).

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use promtrack as metrics;

async fn index() -> &'static str {
    "hello from the seed app\n"
}

async fn user(Path(id): Path<u64>) -> Json<serde_json_like::User> {
    Json(serde_json_like::User {
        id,
        name: format!("user {id}"),
    })
}

/// A handler metric labelled by the route's parameter, next to the layer's defaults.
#[metrics::histogram("seed_item_lookup_seconds", "Time to look an item up, by kind.",
                     labels(kind = kind.as_str()), buckets = [0.001, 0.01, 0.1, 1.0])]
async fn item(Path(kind): Path<String>) -> String {
    format!("an item of kind {kind}\n")
}

/// Probed by the orchestrator every few seconds: no default HTTP metrics.
#[metrics::do_not_track]
async fn healthz() -> &'static str {
    "ok\n"
}

mod serde_json_like {
    #[derive(serde::Serialize)]
    pub struct User {
        pub id: u64,
        pub name: String,
    }
}

fn app() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(user))
        .route("/items/{kind}", get(item))
        .route("/healthz", get(healthz))
        .merge(metrics::metrics_router()) // GET /metrics, not counted itself
        .layer(metrics::layer()) // axum_http_request_duration_seconds & co.
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("PROMTRACK_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await
}
