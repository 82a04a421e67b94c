//! Every knob of the layer's builder, each checked through a real router and a real exposition.

#[path = "layer_support/mod.rs"]
mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use promtrack::layer::{GroupBy, Latency, MetricsLayer, RouteMetric, StatusLabel};
use promtrack::{Error, Registry};
use support::*;

fn routes(layer: MetricsLayer) -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/upload",
            post(|body: String| async move { body.len().to_string() }),
        )
        .layer(layer)
}

#[tokio::test]
async fn defaults_switch_off_one_by_one_or_all_at_once() {
    let (registry, b) = builder();
    let app = routes(
        b.duration(false)
            .in_progress(false)
            .exporter_info(false)
            .build()
            .unwrap(),
    );
    send(&app, req("/users/1")).await;
    let text = scrape(&registry);
    assert!(
        !text.contains("axum_http_request_duration_seconds"),
        "{text}"
    );
    assert!(!text.contains("axum_http_requests_in_progress"));
    assert!(!text.contains("axum_exporter_info"));
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="200"}"#
        ),
        Some(1.0)
    );

    let (registry, b) = builder();
    let app = routes(b.export_defaults(false).build().unwrap());
    send(&app, req("/users/1")).await;
    assert!(
        !scrape(&registry).contains("axum_"),
        "{}",
        scrape(&registry)
    );
}

#[tokio::test]
async fn prefix_buckets_and_summary_latency() {
    let (registry, b) = builder();
    let app = routes(b.prefix("shop").buckets(&[0.5, 5.0]).build().unwrap());
    send(&app, req("/users/1")).await;
    let text = scrape(&registry);
    assert!(
        text.contains("# TYPE shop_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"shop_http_request_duration_seconds_bucket{method="GET",path="/users/{id}",status="200",le="0.5"}"#
        ),
        Some(1.0)
    );
    assert!(!text.contains("le=\"0.005\""));
    assert!(text.contains("shop_exporter_info"));

    let (registry, b) = builder();
    let app = routes(b.latency(Latency::Summary).build().unwrap());
    send(&app, req("/users/1")).await;
    let text = scrape(&registry);
    assert!(
        text.contains("# TYPE axum_http_request_duration_seconds summary"),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_duration_seconds_count{method="GET",path="/users/{id}",status="200"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn group_by_raw_path_or_a_function_of_the_request() {
    let (registry, b) = builder();
    let app = routes(b.group_by(GroupBy::raw_path()).build().unwrap());
    send(&app, req("/users/1")).await;
    send(&app, req("/users/2")).await;
    let text = scrape(&registry);
    assert!(
        text.contains(r#"path="/users/1""#) && text.contains(r#"path="/users/2""#),
        "{text}"
    );

    let (registry, b) = builder();
    let app = routes(
        b.group_by(GroupBy::request(|r| {
            r.uri.path().split('/').nth(1).unwrap_or("").to_owned()
        }))
        .build()
        .unwrap(),
    );
    send(&app, req("/users/1")).await;
    send(&app, req("/users/2")).await;
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_duration_seconds_count{method="GET",path="users",status="200"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn status_as_a_class() {
    let (registry, b) = builder();
    let app = routes(b.status(StatusLabel::Class).build().unwrap());
    send(&app, req("/users/1")).await;
    send(&app, req("/no-such-route")).await;
    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="2xx"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="4xx"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn static_request_and_response_labels_on_every_default() {
    let (registry, b) = builder();
    let app = routes(
        b.static_label("service", "shop")
            .label_from_request("tenant", |r| {
                r.headers
                    .get("x-tenant")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned()
            })
            .label_from_response("cache", |r| r.headers.contains_key("x-cache"))
            .build()
            .unwrap(),
    );
    let request = Request::get("/users/1")
        .header("x-tenant", "acme")
        .body(Body::empty())
        .unwrap();
    send(&app, request).await;
    send(&app, req("/users/1")).await; // known now: in progress rises
    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="200",service="shop",tenant="acme",cache="false"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_duration_seconds_count{method="GET",path="/users/{id}",status="200",service="shop",tenant="none",cache="false"}"#
        ),
        Some(1.0)
    );
    // The in-progress gauge rises before there is a response: no response label.
    assert_eq!(
        value(
            &text,
            r#"axum_http_requests_in_progress{method="GET",path="/users/{id}",service="shop",tenant="none"}"#
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn body_size_histograms_are_opt_in() {
    let (registry, b) = builder();
    let app = routes(
        b.body_sizes(true)
            .size_buckets(&[10.0, 100.0])
            .build()
            .unwrap(),
    );
    let upload = Request::post("/upload")
        .body(Body::from("x".repeat(42)))
        .unwrap();
    let (status, body) = send(&app, upload).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "42"));
    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_size_bytes_sum{method="POST",path="/upload",status="200"}"#
        ),
        Some(42.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"axum_http_response_size_bytes_sum{method="POST",path="/upload",status="200"}"#
        ),
        Some(2.0)
    );

    let (registry, b) = builder();
    send(&app_default(b), req("/users/1")).await;
    assert!(!scrape(&registry).contains("size_bytes"));
}

fn app_default(b: promtrack::layer::MetricsLayerBuilder) -> Router {
    routes(b.build().unwrap())
}

#[tokio::test]
async fn register_default_metrics_and_info() {
    let (registry, b) = builder();
    let layer = b
        .register_default(
            RouteMetric::counter("cfg_by_path_total", "Requests by raw path.")
                .label_from_request("path", |r| r.uri.path().to_owned())
                .label_from_response("status", |r| r.status.as_u16()),
        )
        .register_default(
            RouteMetric::histogram("cfg_route_seconds", "Route latency.").buckets(&[1.0]),
        )
        .register_default(RouteMetric::in_progress("cfg_busy", "Busy.").static_label("pool", "web"))
        .build()
        .unwrap();
    layer
        .info("cfg_app_info", "Application info.", &[("version", "1.2.3")])
        .unwrap();
    let app = routes(layer);
    send(&app, req("/users/1")).await;
    send(&app, req("/users/2")).await;
    let text = scrape(&registry);
    assert_eq!(
        value(&text, r#"cfg_by_path_total{path="/users/1",status="200"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "cfg_route_seconds_count"), Some(2.0));
    assert_eq!(value(&text, r#"cfg_busy{pool="web"}"#), Some(0.0));
    assert_eq!(value(&text, r#"cfg_app_info{version="1.2.3"}"#), Some(1.0));
}

#[test]
fn configuration_mistakes_are_errors_that_name_the_fix() {
    let b = || MetricsLayer::builder().registry(&Registry::new());
    let err = |r: Result<MetricsLayer, Error>| r.unwrap_err().to_string();

    let e = err(b().excluded_paths(["/static/(unclosed"]).build());
    assert!(
        e.contains("/static/(unclosed") && e.contains("regular expression"),
        "{e}"
    );

    let e = err(b().buckets(&[1.0, 0.5]).build());
    assert!(e.contains("increase strictly"), "{e}");

    let e = err(b().prefix("my-app").build());
    assert!(e.contains("my-app_http_request"), "{e}");

    let e = err(b()
        .static_label("le", "x")
        .latency(Latency::Histogram)
        .build());
    assert!(e.contains("`le`"), "{e}");

    let e = err(b()
        .register_default(
            RouteMetric::in_progress("busy", "Busy.")
                .label_from_response("s", |r| r.status.as_u16()),
        )
        .build());
    assert!(e.contains("label_from_request"), "{e}");

    // A family of one of the default names, declared differently, already registered.
    let registry = Registry::new();
    let clash =
        promtrack::Family::<[&str; 1], promtrack::Counter>::new("axum_http_request_total", "Mine.")
            .label_names(["route"]);
    registry.register(&clash).unwrap();
    let e = err(MetricsLayer::builder().registry(&registry).build());
    assert!(e.contains("axum_http_request_total"), "{e}");
}
