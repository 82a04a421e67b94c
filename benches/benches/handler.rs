//! What a handler attribute costs: the same handler instrumented by `#[counter]` +
//! `#[histogram]` and instrumented by hand with the runtime API, side by side in one run —
//! once called directly (the attribute's own overhead, nothing else around it) and once through
//! an axum router with `oneshot` (what a request pays). The target: the attribute costs
//! at most 1.05× the hand-written version.
//!
//! `cargo bench -p promtrack-benches --bench handler`

use std::hint::black_box;
use std::sync::LazyLock;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use promtrack as metrics;
use promtrack::{Counter, Family, Histogram};
use tower::ServiceExt;

#[metrics::counter(
    "bench_attr_calls_total",
    "Calls, counted by the attribute.",
    labels(route = "hello")
)]
#[metrics::histogram(
    "bench_attr_seconds",
    "Duration, observed by the attribute.",
    labels(route = "hello")
)]
async fn with_attributes() -> &'static str {
    black_box("hello")
}

static CALLS: LazyLock<Family<[&'static str; 1], Counter>> = LazyLock::new(|| {
    promtrack::default_registry()
        .get_or_register(
            Family::<[&str; 1], Counter>::new("bench_hand_calls_total", "Calls, counted by hand.")
                .label_names(["route"]),
        )
        .unwrap()
});

static SECONDS: LazyLock<Family<[&'static str; 1], Histogram>> = LazyLock::new(|| {
    promtrack::default_registry()
        .get_or_register(
            Family::<[&str; 1], Histogram>::new(
                "bench_hand_seconds",
                "Duration, observed by hand.",
            )
            .label_names(["route"]),
        )
        .unwrap()
});

/// The same work written against the runtime API, with series resolved once as the attribute
/// does (a hand-written handler that looked its series up on every call would be slower).
async fn by_hand() -> &'static str {
    static SERIES: LazyLock<(&'static Counter, &'static Histogram)> =
        LazyLock::new(|| (CALLS.with(&["hello"]), SECONDS.with(&["hello"])));
    let (calls, seconds) = *SERIES;
    let started = Instant::now();
    let response = black_box("hello");
    seconds.observe(started.elapsed().as_secs_f64());
    calls.inc();
    response
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let mut direct = c.benchmark_group("handler_direct");
    direct.bench_function("by_hand", |b| b.iter(|| rt.block_on(by_hand())));
    direct.bench_function("attributes", |b| b.iter(|| rt.block_on(with_attributes())));
    direct.finish();

    let hand = Router::new().route("/", get(by_hand));
    let attr = Router::new().route("/", get(with_attributes));
    let send = |app: &Router| {
        let app = app.clone();
        rt.block_on(async move {
            let response = app
                .oneshot(Request::get("/").body(Body::empty()).unwrap())
                .await
                .unwrap();
            drop(response);
        })
    };
    let mut routed = c.benchmark_group("handler_router");
    routed.bench_function("by_hand", |b| b.iter(|| send(&hand)));
    routed.bench_function("attributes", |b| b.iter(|| send(&attr)));
    routed.finish();

    // Both did the same work: the same number of calls were counted each way.
    let text = promtrack::expose::encode_to_string(
        promtrack::default_registry(),
        promtrack::expose::Format::Text,
    );
    let count = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(count("bench_attr_calls_total{") > 0.0 && count("bench_hand_calls_total{") > 0.0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
