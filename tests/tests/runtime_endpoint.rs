//! The `/metrics` endpoint as a scraper sees it: formats, gzip, HEAD, filters, auth, and
//! rust-prometheus families side by side with promtrack's, over real HTTP requests to an axum
//! router.

use std::io::Read;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use promtrack::{Counter, Family, Histogram, MetricsRouter, Registry};
use tower::ServiceExt;

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

async fn get(app: &Router, uri: &str, headers: &[(header::HeaderName, &str)]) -> Reply {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

fn app_with_both_kinds_of_metrics() -> Router {
    let registry = Registry::new();
    let ours =
        Family::<[&str; 1], Counter>::new("orders_total", "Orders placed.").label_names(["kind"]);
    let latency =
        Family::<(), Histogram>::new("checkout_seconds", "Checkout time.").buckets(&[0.1, 1.0]);
    registry.register(&ours).unwrap();
    registry.register(&latency).unwrap();
    ours.with(&["book"]).inc_by(2.0);
    latency.observe(0.25);

    let theirs = prometheus::Registry::new();
    let legacy = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("legacy_pool_size", "Pool size."),
        &["pool"],
    )
    .unwrap();
    theirs.register(Box::new(legacy.clone())).unwrap();
    legacy.with_label_values(&["db"]).set(7);
    registry.register_collector(promtrack::interop::PrometheusRegistry::new(theirs));

    MetricsRouter::new().registry(&registry).build()
}

#[tokio::test]
async fn prometheus_gets_openmetrics_with_both_sources_in_name_order() {
    let app = app_with_both_kinds_of_metrics();
    let reply = get(&app, "/metrics", &[(header::ACCEPT, PROMETHEUS_ACCEPT)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = String::from_utf8(reply.body).unwrap();
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    assert_eq!(
        families,
        [
            "checkout_seconds histogram",
            "legacy_pool_size gauge",
            "orders counter"
        ]
    );
    assert!(body.contains("orders_total{kind=\"book\"} 2\n"), "{body}");
    assert!(body.contains("legacy_pool_size{pool=\"db\"} 7\n"), "{body}");
    assert!(
        body.contains("checkout_seconds_bucket{le=\"1\"} 1\n"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn gzip_is_used_when_asked_and_decodes_to_the_plain_body() {
    let app = app_with_both_kinds_of_metrics();
    let plain = get(&app, "/metrics", &[]).await;
    assert!(!plain.headers.contains_key(header::CONTENT_ENCODING));
    let zipped = get(
        &app,
        "/metrics",
        &[(header::ACCEPT_ENCODING, "gzip, deflate")],
    )
    .await;
    assert_eq!(zipped.headers[header::CONTENT_ENCODING], "gzip");
    let mut decoded = Vec::new();
    flate2_decode(&zipped.body, &mut decoded);
    assert_eq!(decoded, plain.body);
}

fn flate2_decode(input: &[u8], out: &mut Vec<u8>) {
    flate2::read::GzDecoder::new(input)
        .read_to_end(out)
        .unwrap();
}

#[tokio::test]
async fn head_and_name_filter() {
    let app = app_with_both_kinds_of_metrics();
    let head = app
        .clone()
        .oneshot(Request::head("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        head.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );

    let filtered = get(
        &app,
        "/metrics?name[]=orders_total&name[]=legacy_pool_size",
        &[],
    )
    .await;
    let body = String::from_utf8(filtered.body).unwrap();
    assert!(body.contains("orders_total{kind=\"book\"} 2"));
    assert!(body.contains("legacy_pool_size"));
    assert!(!body.contains("checkout_seconds"), "{body}");
}

#[tokio::test]
async fn the_default_router_serves_the_default_registry() {
    let requests = promtrack::default_registry()
        .get_or_register(Family::<(), Counter>::new(
            "endpoint_test_default_total",
            "A test counter.",
        ))
        .unwrap();
    requests.inc();
    let app: Router = Router::new().merge(promtrack::metrics_router());
    let body = String::from_utf8(get(&app, "/metrics", &[]).await.body).unwrap();
    assert!(body.contains("endpoint_test_default_total 1\n"), "{body}");
    #[cfg(target_os = "linux")]
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_virtual_memory_bytes",
    ] {
        assert!(body.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    assert!(body.contains("promtrack_invalid_updates_total "));
}
