//! The axum layer's overhead per request: one router with the layer, one without, the same
//! hello-world handler, each request sent with `tower::ServiceExt::oneshot` on a current-thread
//! runtime. The difference of the two medians is what the layer costs (issue: at most 1 µs).
//! Two more routers split that cost: `noop_layer` is what axum charges for any layer (an
//! identity `MapResponseLayer`), `layer_without_metrics` the layer with every default off
//! (request context, panic guard, body wrapper).
//!
//! `cargo bench -p promtrack-benches --bench layer`

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

async fn hello() -> &'static str {
    "hello"
}

async fn user(Path(id): Path<u32>) -> String {
    id.to_string()
}

fn router() -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/users/{id}", get(user))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let registry = promtrack::Registry::new();
    let bare = router().with_state(());
    let layered = router()
        .layer(
            promtrack::layer::MetricsLayer::builder()
                .registry(&registry)
                .build()
                .unwrap(),
        )
        .with_state(());

    // As `axum::serve` does (`into_make_service` calls `with_state`): handlers become routes,
    // and the layer is applied to each, once. A `Router` called as a service without it would
    // build every route's layered service again for each request.
    let send = |app: &Router, uri: &'static str| {
        let app = app.clone();
        rt.block_on(async move {
            let response = app
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            // Dropping the body ends the request for the layer, as a server would.
            drop(response);
        })
    };

    // What axum charges for any layer (it boxes the layered route and its future again).
    let noop = router()
        .layer(tower::util::MapResponseLayer::new(
            |r: axum::response::Response| r,
        ))
        .with_state(());
    // The layer's fixed cost (context, panic guard, body wrapper) without any metric.
    let no_metrics = router()
        .layer(
            promtrack::layer::MetricsLayer::builder()
                .registry(&promtrack::Registry::new())
                .export_defaults(false)
                .build()
                .unwrap(),
        )
        .with_state(());

    let mut group = c.benchmark_group("layer");
    for (uri, name) in [("/", "hello"), ("/users/42", "path_param")] {
        // Warm the route so the layer knows it is tracked (its steady state).
        send(&layered, uri);
        group.bench_function(format!("{name}/bare"), |b| b.iter(|| send(&bare, uri)));
        group.bench_function(format!("{name}/with_layer"), |b| {
            b.iter(|| send(&layered, uri))
        });
        if name == "hello" {
            group.bench_function("hello/noop_layer", |b| b.iter(|| send(&noop, uri)));
            group.bench_function("hello/layer_without_metrics", |b| {
                b.iter(|| send(&no_metrics, uri))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
