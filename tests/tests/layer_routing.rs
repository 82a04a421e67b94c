//! The layer's default metrics through real routers: label values, route templates with
//! every way of composing a router, where the layer can be applied, and the metrics endpoint
//! left out wherever it is mounted.

#[path = "layer_support/mod.rs"]
mod support;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Method, Request, StatusCode};
use axum::routing::get;
use promtrack::{MetricsRouter, layer::UNMATCHED_PATH};
use support::*;
use tower::{Layer, ServiceExt};

fn app() -> Router {
    Router::new().route("/", get(|| async { "home" })).route(
        "/users/{id}",
        get(|Path(id): Path<u32>| async move { format!("user {id}") }),
    )
}

#[tokio::test]
async fn defaults_use_the_route_template_a_bounded_method_and_the_status() {
    let (registry, b) = builder();
    let app = app().layer(b.build().unwrap());
    for id in [1, 2, 3] {
        assert_eq!(
            send(&app, req(&format!("/users/{id}"))).await.0,
            StatusCode::OK
        );
    }
    send(&app, req("/")).await;
    let purge = Request::builder()
        .method(Method::from_bytes(b"PURGE").unwrap())
        .uri("/users/1")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, purge).await.0, StatusCode::METHOD_NOT_ALLOWED);
    send(&app, req("/users/not-a-number")).await; // Path rejection: 400, the handler never ran

    let text = scrape(&registry);
    let v = |s: &str| value(&text, s);
    assert_eq!(
        v(
            r#"axum_http_request_duration_seconds_count{method="GET",path="/users/{id}",status="200"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        v(r#"axum_http_request_total{method="GET",status="200"}"#),
        Some(4.0)
    );
    assert_eq!(
        v(r#"axum_http_request_total{method="_OTHER",status="405"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"axum_http_request_total{method="GET",status="400"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"axum_http_requests_in_progress{method="GET",path="/users/{id}"}"#),
        Some(0.0)
    );
    assert_eq!(v(r#"axum_exporter_info{version="0.1.0"}"#), Some(1.0));
    // The raw path never becomes a label value.
    assert!(!text.contains("/users/1\""), "{text}");
    assert!(!text.contains("PURGE"), "{text}");
    // No panic, no exception series.
    assert!(
        !text.contains("axum_http_request_exceptions_total{"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE axum_http_request_exceptions_total counter"),
        "{text}"
    );
}

#[tokio::test]
async fn unmatched_requests_share_one_value_that_no_template_can_take() {
    let (registry, b) = builder();
    let app = app().layer(b.build().unwrap());
    for path in ["/wp-admin.php", "/.env", "/a/b/c"] {
        assert_eq!(send(&app, req(path)).await.0, StatusCode::NOT_FOUND);
    }
    assert!(!UNMATCHED_PATH.starts_with('/'));
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_duration_seconds_count{method="GET",path="_unmatched",status="404"}"#
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn nest_merge_fallback_with_state_and_outer_middleware() {
    #[derive(Clone)]
    struct AppState(&'static str);
    let (registry, b) = builder();
    let api = Router::new().route(
        "/items/{kind}",
        get(|Path(k): Path<String>| async move { k }),
    );
    let stateful = Router::new()
        .route(
            "/state",
            get(|State(s): State<AppState>| async move { s.0 }),
        )
        .with_state(AppState("s"));
    let app: Router = Router::new()
        .nest("/api/v1", api)
        .merge(stateful)
        .fallback(|| async { (StatusCode::NOT_FOUND, "nothing here") })
        .layer(b.build().unwrap());
    // The instrumented router inside more tower middleware.
    let wrapped = tower::ServiceBuilder::new()
        .layer(tower::util::MapResponseLayer::new(|r| r))
        .service(app);
    for uri in ["/api/v1/items/a", "/api/v1/items/b", "/state", "/nowhere"] {
        let response = wrapped.clone().oneshot(req(uri)).await.unwrap();
        assert!(response.status().is_success() || response.status() == StatusCode::NOT_FOUND);
    }
    let text = scrape(&registry);
    let count = |path: &str, status: u16| {
        value(
            &text,
            &format!(
                r#"axum_http_request_duration_seconds_count{{method="GET",path="{path}",status="{status}"}}"#
            ),
        )
    };
    assert_eq!(count("/api/v1/items/{kind}", 200), Some(2.0), "{text}");
    assert_eq!(count("/state", 200), Some(1.0));
    assert_eq!(count("_unmatched", 404), Some(1.0));
}

#[tokio::test]
async fn route_layer_counts_matched_routes_only() {
    let (registry, b) = builder();
    let app = app().route_layer(b.build().unwrap());
    send(&app, req("/users/7")).await;
    send(&app, req("/missing")).await;
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_total{method="GET",status="200"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_total{method="GET",status="404"}"#
        ),
        None
    );
}

#[tokio::test]
async fn outside_the_router_or_behind_nest_service_there_is_no_template() {
    // Around the whole router as a service: runs before routing.
    let (registry, b) = builder();
    let outside = b.build().unwrap().layer(app());
    let response = outside.clone().oneshot(req("/users/5")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_duration_seconds_count{method="GET",path="_unmatched",status="200"}"#
        ),
        Some(1.0)
    );

    // `nest_service`: the outer router sets no template.
    let (registry, b) = builder();
    let app = Router::new()
        .nest_service("/svc", app())
        .layer(b.build().unwrap());
    assert_eq!(send(&app, req("/svc/users/5")).await.0, StatusCode::OK);
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_duration_seconds_count{method="GET",path="_unmatched",status="200"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_metrics_endpoint_is_not_counted_wherever_it_is_mounted() {
    let (registry, b) = builder();
    let layer = b.build().unwrap();
    let metrics = MetricsRouter::new()
        .registry(&registry)
        .path("/internal/prom");
    let app: Router = Router::new()
        .route("/", get(|| async { "home" }))
        .nest("/admin", metrics.clone().build())
        .merge(metrics.path("/metrics").build())
        .layer(layer);
    for uri in ["/admin/internal/prom", "/metrics", "/metrics", "/"] {
        assert_eq!(send(&app, req(uri)).await.0, StatusCode::OK, "{uri}");
    }
    let text = scrape(&registry);
    assert!(!text.contains("prom\""), "{text}");
    assert!(!text.contains("path=\"/metrics\""), "{text}");
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="200"}"#
        ),
        Some(1.0),
        "{text}"
    );

    // ...unless asked.
    let (registry, b) = builder();
    let app: Router = Router::new()
        .merge(MetricsRouter::new().registry(&registry).build())
        .layer(b.track_metrics_endpoint(true).build().unwrap());
    send(&app, req("/metrics")).await;
    send(&app, req("/metrics")).await;
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_duration_seconds_count{method="GET",path="/metrics",status="200"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn any_tower_layer_guards_the_metrics_endpoint_and_rejections_are_not_counted() {
    use axum::middleware::{Next, from_fn};
    let (registry, b) = builder();
    async fn auth(request: Request<Body>, next: Next) -> axum::response::Response {
        if request
            .headers()
            .get("authorization")
            .is_some_and(|v| v == "Bearer ok")
        {
            next.run(request).await
        } else {
            axum::response::IntoResponse::into_response(StatusCode::UNAUTHORIZED)
        }
    }
    let app: Router = Router::new()
        .merge(
            MetricsRouter::new()
                .registry(&registry)
                .build()
                .route_layer(from_fn(auth)),
        )
        .layer(b.build().unwrap());
    assert_eq!(
        send(&app, req("/metrics")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let authorized = Request::get("/metrics")
        .header("authorization", "Bearer ok")
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&app, authorized).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("axum_exporter_info"), "{body}");
    assert_eq!(
        send(&app, req("/metrics")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        lines_with(&registry, "/metrics").is_empty(),
        "{:?}",
        lines_with(&registry, "/metrics")
    );
    assert!(lines_with(&registry, "status=\"401\"").is_empty());
}

#[tokio::test]
async fn the_default_layer_records_into_the_default_registry_and_layers_share_families() {
    let app: Router = app().layer(promtrack::layer()).layer(promtrack::layer());
    send(&app, req("/users/99")).await;
    let text = promtrack::expose::encode_to_string(
        promtrack::default_registry(),
        promtrack::expose::Format::Text,
    );
    // Two layers, one family; each layer counts the request once.
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
}

/// A route's series are looked up once and then served from its cache: with more (method,
/// status) pairs than the cache holds, interleaved, on a router built once as a server builds
/// it, every request still lands in exactly its own series — and the in-progress gauge of
/// every method is back at 0.
#[tokio::test]
async fn a_routes_cached_series_stay_exact_across_methods_and_statuses() {
    use axum::routing::post;
    let (registry, builder) = builder();
    let answer = |Path(code): Path<u16>| async move { StatusCode::from_u16(code).unwrap() };
    let app: Router = Router::new()
        .route("/answer/{code}", get(answer).post(answer).put(answer))
        .route("/other", post(|| async { "other" }))
        .layer(builder.build().unwrap())
        .with_state(());
    // 3 methods × 12 statuses = 36 pairs, more than the 16 a route caches.
    let codes: Vec<u16> = (200..206).chain(500..506).collect();
    for round in 0..4 {
        for code in &codes {
            for method in ["GET", "POST", "PUT"] {
                let request = Request::builder()
                    .method(method)
                    .uri(format!("/answer/{code}"))
                    .body(Body::empty())
                    .unwrap();
                let (status, _) = send(&app, request).await;
                assert_eq!(status.as_u16(), *code, "round {round}");
            }
            let other = Request::post("/other").body(Body::empty()).unwrap();
            send(&app, other).await;
        }
    }
    let text = scrape(&registry);
    for method in ["GET", "POST", "PUT"] {
        for code in &codes {
            let total = format!("axum_http_request_total{{method=\"{method}\",status=\"{code}\"}}");
            // `total` has no `path`: `/other`'s 48 POSTs answered 200 count there too.
            let expected = if (method, *code) == ("POST", 200) {
                52.0
            } else {
                4.0
            };
            assert_eq!(value(&text, &total), Some(expected), "{total}");
            let count = format!(
                "axum_http_request_duration_seconds_count{{method=\"{method}\",path=\"/answer/{{code}}\",status=\"{code}\"}}"
            );
            assert_eq!(value(&text, &count), Some(4.0), "{count}");
        }
        let busy = format!(
            "axum_http_requests_in_progress{{method=\"{method}\",path=\"/answer/{{code}}\"}}"
        );
        assert_eq!(value(&text, &busy), Some(0.0), "{busy}");
    }
    let other =
        "axum_http_request_duration_seconds_count{method=\"POST\",path=\"/other\",status=\"200\"}";
    assert_eq!(value(&text, other), Some(48.0));
}

/// A route's in-progress gauge is up while each of its requests runs, once the route is known
/// to be tracked — the first such request fills the route's series cache, the ones after raise
/// the gauge from it — and down after each. (The route's very first request, which teaches
/// the layer whether the route is tracked, raises no gauge: see `routes.rs`.)
#[tokio::test]
async fn the_in_progress_gauge_is_up_during_every_request_of_a_route() {
    let (registry, b) = builder();
    const SERIES: &str = r#"axum_http_requests_in_progress{method="GET",path="/busy"}"#;
    let app = Router::new()
        .route(
            "/busy",
            get(|State(registry): State<promtrack::Registry>| async move {
                format!("{:?}", sample(&registry, SERIES))
            }),
        )
        .with_state(registry.clone())
        .layer(b.build().unwrap());
    assert_eq!(send(&app, req("/busy")).await.0, StatusCode::OK);
    for _ in 0..3 {
        let (status, body) = send(&app, req("/busy")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "Some(1.0)");
        assert_eq!(sample(&registry, SERIES), Some(0.0));
    }
}
