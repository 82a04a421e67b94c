//! The layer's duration histogram made native (`MetricsLayerBuilder::native`, issue 13),
//! through a real axum router: the protobuf exposition carries its native buckets (decoded by
//! Python's `protobuf` package through `../shared/tools/exposition-check`, which also accepts
//! every format), native only or beside the classic buckets; text shows a native-only one as a
//! valid classic histogram with the single `le="+Inf"` bucket; what cannot go together is an
//! error at `build` naming the fix. Without the checker the tests that need it show as ignored
//! (under `CI=true` they fail): see `tests/build.rs`.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use promtrack::expose::{Format, encode};
use promtrack::layer::{Latency, MetricsLayer, MetricsLayerBuilder};
use promtrack::{NativeConfig, Registry};
use tower::ServiceExt;

#[path = "checker_support/mod.rs"]
mod checker_support;
use checker_support::{python_pb, write};

const REQUESTS: usize = 5;

fn builder(registry: &Registry) -> MetricsLayerBuilder {
    MetricsLayer::builder()
        .registry(registry)
        .exporter_info(false)
        .in_progress(false)
}

/// `REQUESTS` requests to `/` through a layer built by `layer`, on a fresh registry.
async fn served(layer: impl FnOnce(&Registry) -> MetricsLayerBuilder) -> Registry {
    let registry = Registry::new();
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(layer(&registry).build().unwrap());
    for _ in 0..REQUESTS {
        let request = Request::get("/").body(Body::empty()).unwrap();
        drop(app.clone().oneshot(request).await.unwrap());
    }
    registry
}

fn exposition(registry: &Registry, format: Format) -> Vec<u8> {
    let mut body = Vec::new();
    encode(registry, format, &mut body);
    body
}

const SERIES: &str =
    r#"axum_http_request_duration_seconds_bucket{method="GET",path="/",status="200","#;

#[tokio::test]
async fn text_shows_a_native_only_duration_as_one_inf_bucket() {
    let registry = served(|r| builder(r).native(NativeConfig::default())).await;
    let text = String::from_utf8(exposition(&registry, Format::Text)).unwrap();
    let buckets: Vec<&str> = text.lines().filter(|l| l.starts_with(SERIES)).collect();
    assert_eq!(
        buckets,
        [format!(r#"{SERIES}le="+Inf"}} {REQUESTS}"#)],
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "axum_http_request_duration_seconds_count{{method=\"GET\",path=\"/\",status=\"200\"}} {REQUESTS}\n"
        )),
        "{text}"
    );
    // Classic and native: text shows the classic buckets of `buckets(..)`.
    let both = served(|r| {
        builder(r)
            .buckets(&[0.5, 1.0])
            .native(NativeConfig::default().classic(true))
    })
    .await;
    let text = String::from_utf8(exposition(&both, Format::Text)).unwrap();
    let les: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(SERIES))
        .map(|l| l[SERIES.len()..].split('}').next().unwrap())
        .collect();
    assert_eq!(les, [r#"le="0.5""#, r#"le="1""#, r#"le="+Inf""#], "{text}");
}

#[tokio::test]
async fn what_cannot_go_together_is_an_error_naming_the_fix() {
    let registry = Registry::new();
    let cases = [
        (
            builder(&registry)
                .latency(Latency::Summary)
                .native(NativeConfig::default()),
            "a summary has no buckets",
        ),
        (
            builder(&registry)
                .buckets(&[0.5])
                .native(NativeConfig::default()),
            "classic(true)",
        ),
        (
            builder(&registry).native(NativeConfig::default().bucket_factor(1.0)),
            "bucket_factor",
        ),
    ];
    for (b, fix) in cases {
        let e = b.build().expect_err("refused").to_string();
        assert!(e.contains(fix), "{e}");
    }
    // Nothing half-registered: a correct layer builds on the same registry afterwards.
    builder(&registry)
        .native(NativeConfig::default())
        .build()
        .unwrap();
}

fn check(path: &Path, format: &str) {
    let count = format!(
        r#"axum_http_request_duration_seconds_count{{method="GET",path="/",status="200"}}={REQUESTS}"#
    );
    checker_support::check(path, format, &["--expect", &count]);
}

/// The duration histogram's protobuf fields, as Python's `protobuf` package decodes them:
/// `count schema zero_count native_total spans classic_bounds`, where `native_total` is the
/// zero bucket plus the positive buckets' delta-decoded counts (how many spans depends on the
/// durations measured, so only their presence is shown).
const PB_DUMP: &str = r#"
for f in families:
    if f.name != "axum_http_request_duration_seconds":
        continue
    for m in f.metric:
        h = m.histogram
        total, count = h.zero_count, 0
        for d in h.positive_delta:
            count += d
            total += count
        bounds = ",".join(repr(b.upper_bound) for b in h.bucket) or "-"
        print(h.sample_count, h.schema, h.zero_count, total, "spans" if h.positive_span else "no-spans", bounds)
"#;

fn native_fields(registry: &Registry, name: &str) -> Vec<String> {
    let path = write(&exposition(registry, Format::Protobuf), name);
    check(&path, "protobuf");
    python_pb(PB_DUMP, &path)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
async fn protobuf_carries_the_native_buckets_and_every_format_is_accepted() {
    // Native only, default settings: schema 3 (bucket factor 1.1), no classic bucket.
    let native = served(|r| builder(r).native(NativeConfig::default())).await;
    let fields = native_fields(&native, "native.pb");
    assert_eq!(
        fields,
        [format!("{REQUESTS} 3 0 {REQUESTS} spans -")],
        "{fields:?}"
    );
    for (format, arg, name) in [
        (Format::Text, "text", "native.txt"),
        (Format::OpenMetrics, "openmetrics", "native.om"),
    ] {
        check(&write(&exposition(&native, format), name), arg);
    }

    // Both, with a bucket factor of 2 (schema 0): the classic bounds and the native buckets in
    // one message.
    let both = served(|r| {
        builder(r)
            .buckets(&[0.5, 1.0])
            .native(NativeConfig::default().bucket_factor(2.0).classic(true))
    })
    .await;
    let fields = native_fields(&both, "both.pb");
    assert_eq!(
        fields,
        [format!("{REQUESTS} 0 0 {REQUESTS} spans 0.5,1.0")],
        "{fields:?}"
    );
}

/// A traced request on a native-only duration histogram: the exemplar sits on the one `+Inf`
/// bucket of OpenMetrics, and every format still passes the checker.
#[tokio::test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
async fn a_traced_request_on_a_native_only_histogram_keeps_every_format_valid() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let registry = Registry::new();
    let app = Router::new().route("/", get(|| async { "hi" })).layer(
        builder(&registry)
            .native(NativeConfig::default())
            .build()
            .unwrap(),
    );
    for _ in 0..REQUESTS {
        let request = Request::get("/")
            .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
            .body(Body::empty())
            .unwrap();
        drop(app.clone().oneshot(request).await.unwrap());
    }
    let om = String::from_utf8(exposition(&registry, Format::OpenMetrics)).unwrap();
    let inf = format!(r#"{SERIES}le="+Inf"}} {REQUESTS} # {{trace_id="{TRACE}"}} "#);
    assert!(om.lines().any(|l| l.starts_with(&inf)), "{om}");
    for (format, arg, name) in [
        (Format::Text, "text", "traced.txt"),
        (Format::OpenMetrics, "openmetrics", "traced.om"),
    ] {
        check(&write(&exposition(&registry, format), name), arg);
    }
    // Protobuf (checked inside): the native buckets are all there beside the exemplar.
    let fields = native_fields(&registry, "traced.pb");
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert!(
        fields[0].starts_with(&format!("{REQUESTS} 3 0 {REQUESTS} spans ")),
        "{fields:?}"
    );
}
