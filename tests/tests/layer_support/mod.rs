//! Helpers shared by the `layer_*` tests: real requests through a router with `oneshot`, and
//! sample values read back from a real exposition of the registry.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use promtrack::Registry;
use promtrack::expose::{Format, encode_to_string};
use promtrack::layer::{MetricsLayer, MetricsLayerBuilder};
use tower::ServiceExt;

/// A builder recording into a fresh registry (so tests in one binary do not share series).
pub fn builder() -> (Registry, MetricsLayerBuilder) {
    let registry = Registry::new();
    let builder = MetricsLayer::builder().registry(&registry);
    (registry, builder)
}

/// The registry's exposition in the Prometheus text format.
pub fn scrape(registry: &Registry) -> String {
    encode_to_string(registry, Format::Text)
}

/// The value of one sample, written as in the exposition: `name{a="b",c="d"}`.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

/// Like [`value`], reading the registry.
pub fn sample(registry: &Registry, series: &str) -> Option<f64> {
    value(&scrape(registry), series)
}

/// Every sample line mentioning `needle`.
pub fn lines_with(registry: &Registry, needle: &str) -> Vec<String> {
    scrape(registry)
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(needle))
        .map(str::to_owned)
        .collect()
}

pub fn req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Sends a request and reads the whole response body.
pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
