//! `#[do_not_track]`, `#[exclude_all_metrics]` and excluded paths through the layer: no series
//! of an untracked route is ever exposed — not its in-progress gauge while the first request
//! runs, not a request an extractor rejected before the handler could mark it — and where the
//! request-scoped context stops reaching (a spawned task) is what the docs say.

#[path = "layer_support/mod.rs"]
mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use promtrack as metrics;
use promtrack::__private::{Exclusion, current_exclusion, exclude};
use promtrack::expose::{Format, encode_to_string};
use promtrack::layer::RouteMetric;
use support::*;
use tokio::sync::oneshot;

/// `?n=<u32>`, or a 400 rejection before the handler runs (like axum's `Query` would).
struct NeedN(u32);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NeedN {
    type Rejection = (StatusCode, &'static str);
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .uri
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok())
            .map(NeedN)
            .ok_or((StatusCode::BAD_REQUEST, "missing ?n="))
    }
}

fn default_text() -> String {
    encode_to_string(metrics::default_registry(), Format::Text)
}

#[metrics::do_not_track]
async fn healthz(NeedN(n): NeedN) -> String {
    format!("ok {n}")
}

#[tokio::test]
async fn an_untracked_route_never_shows_even_when_its_first_request_is_rejected() {
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(|| async { "home" }))
        .layer(
            b.register_default(
                RouteMetric::counter("ex_route_total", "Per route.")
                    .label_from_request("route", |r| metrics::layer::route_template(r).to_owned()),
            )
            .build()
            .unwrap(),
        );
    // The extractor rejects before the handler can mark the request.
    assert_eq!(send(&app, req("/healthz")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(send(&app, req("/healthz")).await.0, StatusCode::BAD_REQUEST);
    assert!(
        lines_with(&registry, "/healthz").is_empty(),
        "{}",
        scrape(&registry)
    );
    // The handler runs and marks: the route is untracked for good.
    assert_eq!(send(&app, req("/healthz?n=1")).await.0, StatusCode::OK);
    assert_eq!(send(&app, req("/healthz")).await.0, StatusCode::BAD_REQUEST);
    send(&app, req("/")).await;
    let text = scrape(&registry);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("axum_") && l.contains("/healthz")),
        "{text}"
    );
    assert!(!text.contains("status=\"400\""), "{text}");
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="200"}"#
        ),
        Some(1.0)
    );
    // `#[do_not_track]` only skips the defaults: metrics for every route still count each
    // request, the held-back rejections included.
    assert_eq!(
        value(&text, r#"ex_route_total{route="/healthz"}"#),
        Some(4.0),
        "{text}"
    );
}

#[tokio::test]
async fn the_in_progress_gauge_of_a_route_not_yet_known_is_not_raised() {
    let (registry, b) = builder();
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some((entered_tx, release_rx))));
    let app: Router = Router::new()
        .route(
            "/slow-health",
            get(move || {
                let slot = slot.clone();
                async move {
                    exclude(Exclusion::Defaults);
                    let first = slot.lock().unwrap().take();
                    if let Some((entered, release)) = first {
                        entered.send(()).unwrap();
                        release.await.unwrap();
                    }
                    "ok"
                }
            }),
        )
        .layer(b.build().unwrap());
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req("/slow-health")).await }
    });
    entered_rx.await.unwrap();
    // Mid-request: nothing of the route exists.
    assert!(
        lines_with(&registry, "/slow-health").is_empty(),
        "{}",
        scrape(&registry)
    );
    release_tx.send(()).unwrap();
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    send(&app, req("/slow-health")).await;
    assert!(
        lines_with(&registry, "/slow-health").is_empty(),
        "{}",
        scrape(&registry)
    );
}

#[tokio::test]
async fn a_tracked_route_records_its_held_back_rejections_once_known() {
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route("/n", get(|NeedN(n): NeedN| async move { n.to_string() }))
        .layer(b.build().unwrap());
    send(&app, req("/n")).await; // 400, held back
    assert!(lines_with(&registry, "path=\"/n\"").is_empty());
    send(&app, req("/n?n=3")).await; // 200: tracked; the 400 is recorded now
    let text = scrape(&registry);
    let count = |status| {
        value(
            &text,
            &format!(
                r#"axum_http_request_duration_seconds_count{{method="GET",path="/n",status="{status}"}}"#
            ),
        )
    };
    assert_eq!(count(400), Some(1.0), "{text}");
    assert_eq!(count(200), Some(1.0));
    // Known now: a later rejection is recorded at once.
    send(&app, req("/n")).await;
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_duration_seconds_count{method="GET",path="/n",status="400"}"#
        ),
        Some(2.0)
    );
}

#[metrics::exclude_all_metrics]
#[metrics::counter(
    "ex_all_handler_calls_total",
    "Calls of a handler excluded from everything."
)]
async fn secret() -> &'static str {
    "shh"
}

#[tokio::test]
async fn exclude_all_metrics_silences_defaults_route_metrics_and_the_handlers_own() {
    let (registry, b) = builder();
    let app: Router = Router::new().route("/secret", get(secret)).layer(
        b.register_default(RouteMetric::counter("ex_all_route_total", "Per route."))
            .build()
            .unwrap(),
    );
    for _ in 0..3 {
        assert_eq!(
            send(&app, req("/secret")).await,
            (StatusCode::OK, "shh".into())
        );
    }
    let text = scrape(&registry);
    assert!(!text.contains("/secret"), "{text}");
    assert_eq!(value(&text, "ex_all_route_total"), None, "{text}");
    assert_eq!(
        value(&default_text(), "ex_all_handler_calls_total"),
        Some(0.0),
        "declared, at zero, never counted"
    );
}

#[metrics::counter(
    "ex_path_handler_calls_total",
    "Calls of a handler under an excluded path."
)]
async fn asset() -> &'static str {
    "bytes"
}

#[tokio::test]
async fn excluded_paths_skip_the_handler_attributes_unless_told_otherwise() {
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route("/static/{*file}", get(asset))
        .layer(b.excluded_paths(["/static/"]).build().unwrap());
    send(&app, req("/static/app.js")).await;
    assert!(scrape(&registry).lines().all(|l| !l.contains("/static")));
    assert_eq!(
        value(&default_text(), "ex_path_handler_calls_total"),
        Some(0.0)
    );

    let (registry, b) = builder();
    let app: Router = Router::new().route("/static/{*file}", get(asset)).layer(
        b.excluded_paths(["/static/"])
            .exclude_user_defaults(false)
            .register_default(RouteMetric::counter("ex_path_route_total", "Per route."))
            .build()
            .unwrap(),
    );
    send(&app, req("/static/app.js")).await;
    let text = scrape(&registry);
    assert!(text.lines().all(|l| !l.contains("/static")), "{text}");
    assert_eq!(value(&text, "ex_path_route_total"), Some(1.0), "{text}");
    assert_eq!(
        value(&default_text(), "ex_path_handler_calls_total"),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_mark_made_on_another_task_is_lost_and_the_route_counts_as_tracked() {
    // The documented boundary: the context is task-local.
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route(
            "/spawns",
            get(|| async {
                tokio::spawn(async { exclude(Exclusion::Defaults) })
                    .await
                    .unwrap();
                "ok"
            }),
        )
        .layer(b.build().unwrap());
    send(&app, req("/spawns")).await;
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_duration_seconds_count{method="GET",path="/spawns",status="200"}"#
        ),
        Some(1.0)
    );

    // Same for a middleware between the layer and the handler that runs the handler on a task
    // of its own.
    let (registry, b) = builder();
    let spawning = axum::middleware::from_fn(
        |request: Request<Body>, next: axum::middleware::Next| async move {
            tokio::spawn(next.run(request)).await.unwrap()
        },
    );
    let app: Router = Router::new()
        .route("/behind-spawn", get(healthz))
        .route_layer(spawning)
        .layer(b.build().unwrap());
    send(&app, req("/behind-spawn?n=1")).await;
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_total{method="GET",status="200"}"#
        ),
        Some(1.0),
        "the mark was lost"
    );
}

#[tokio::test]
async fn a_mark_crosses_tower_buffer() {
    // `Buffer`'s worker calls the inner service and hands its future back to the caller's
    // task, where the layer's context is current.
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route("/buffered-health", get(healthz))
        .route_layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    |_: axum::BoxError| async { StatusCode::SERVICE_UNAVAILABLE },
                ))
                .layer(tower::buffer::BufferLayer::new(8)),
        )
        .layer(b.build().unwrap());
    for _ in 0..3 {
        assert_eq!(
            send(&app, req("/buffered-health?n=2")).await.0,
            StatusCode::OK
        );
    }
    assert!(
        scrape(&registry)
            .lines()
            .all(|l| !l.contains("/buffered-health"))
    );
}

#[metrics::do_not_track]
#[metrics::histogram("ex_no_layer_seconds", "A handler in an app without the layer.")]
async fn without_layer() -> &'static str {
    assert_eq!(
        current_exclusion(),
        Exclusion::None,
        "no context, nothing to exclude"
    );
    "fine"
}

#[tokio::test]
async fn an_app_without_the_layer_runs_marked_handlers_unchanged() {
    let app: Router = Router::new().route("/", get(without_layer));
    assert_eq!(send(&app, req("/")).await, (StatusCode::OK, "fine".into()));
    assert_eq!(without_layer().await, "fine", "still callable directly");
    assert_eq!(
        value(&default_text(), "ex_no_layer_seconds_count"),
        Some(2.0)
    );
}
