//! The quickstart: an axum app with a few routes, handler metrics from attributes, the default
//! HTTP metrics from the layer, and `/metrics`.
//!
//! `cargo run -p promtrack-examples --bin quickstart`, then open the printed URL.
//! `PORT` picks another port than 3000 (`PORT=0`: any free one).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use promtrack as metrics;

#[derive(serde::Serialize)]
struct User {
    id: u64,
    name: String,
}

async fn index() -> &'static str {
    "promtrack quickstart: try /users/42, /users/40 (missing) and /metrics\n"
}

/// Every tenth user is missing, so that both outcomes show.
#[metrics::histogram(
    "quickstart_user_lookup_seconds",
    "Time spent looking a user up.",
    labels(source = "memory"),
    buckets = [0.0005, 0.001, 0.005, 0.01, 0.05]
)]
#[metrics::counter(
    "quickstart_user_lookups_total",
    "User lookups, by whether the user was found.",
    labels(found = |ret: &Result<Json<User>, StatusCode>| ret.is_ok())
)]
async fn get_user(Path(id): Path<u64>) -> Result<Json<User>, StatusCode> {
    if id % 10 == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(User {
        id,
        name: format!("user{id}"),
    }))
}

/// Health checks are polled constantly; keep them out of the request metrics.
#[metrics::do_not_track]
async fn healthz() -> &'static str {
    "ok"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(get_user))
        .route("/healthz", get(healthz))
        .merge(metrics::metrics_router())
        .layer(metrics::layer());

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let addr = listener.local_addr()?;
    println!("quickstart listening: open http://{addr}/metrics (and http://{addr}/users/42)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
