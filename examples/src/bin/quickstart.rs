//! The quickstart: an axum app with a few routes and a `/metrics` endpoint.
//!
//! `cargo run -p promtrack-examples --bin quickstart` then open the printed URL.
//! Set `PORT` to listen elsewhere than 3000 (`PORT=0` picks a free port).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use promtrack::{Counter, Family, Histogram};

/// Users looked up, by whether they were found.
static LOOKUPS: LazyLock<Family<[&'static str; 1], Counter>> = LazyLock::new(|| {
    promtrack::default_registry()
        .get_or_register(
            Family::<[&str; 1], Counter>::new(
                "quickstart_user_lookups_total",
                "User lookups, by outcome.",
            )
            .label_names(["outcome"]),
        )
        .expect("a valid, unique declaration")
});

/// Time spent looking users up.
static LOOKUP_SECONDS: LazyLock<Family<(), Histogram>> = LazyLock::new(|| {
    promtrack::default_registry()
        .get_or_register(
            Family::<(), Histogram>::new(
                "quickstart_user_lookup_seconds",
                "Time spent looking a user up.",
            )
            .buckets(&[0.0005, 0.001, 0.005, 0.01, 0.05]),
        )
        .expect("a valid, unique declaration")
});

async fn index() -> &'static str {
    "promtrack quickstart: try /users/42 and /metrics\n"
}

#[derive(serde::Serialize)]
struct User {
    id: u64,
    name: String,
}

async fn get_user(Path(id): Path<u64>) -> Result<Json<User>, axum::http::StatusCode> {
    let started = std::time::Instant::now();
    let found = id % 10 != 0; // every tenth user is missing, so both outcomes show
    LOOKUP_SECONDS.observe_duration(started.elapsed());
    LOOKUPS
        .with(&[if found { "found" } else { "missing" }])
        .inc();
    if found {
        Ok(Json(User {
            id,
            name: format!("user{id}"),
        }))
    } else {
        Err(axum::http::StatusCode::NOT_FOUND)
    }
}

async fn healthz() -> &'static str {
    "ok"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Declare the families before the first scrape, so it already shows them at zero.
    LazyLock::force(&LOOKUPS);
    LazyLock::force(&LOOKUP_SECONDS);

    let app = Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(get_user))
        .route("/healthz", get(healthz))
        .merge(promtrack::metrics_router());

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
