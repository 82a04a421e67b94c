//! Prometheus metrics for axum services: attribute macros on handlers, typed label sets, a
//! `/metrics` endpoint, and a multiprocess mode that is correct where Python's is not.
//!
//! ```
//! use promtrack::{Counter, Family, Histogram};
//!
//! // Declare families; register them once (here with the default registry).
//! let requests = Family::<[&str; 2], Counter>::new("app_requests_total", "Requests handled.")
//!     .label_names(["method", "status"]);
//! let latency = Family::<(), Histogram>::new("app_latency_seconds", "Handler latency.");
//! promtrack::default_registry().register(&requests)?;
//! promtrack::default_registry().register(&latency)?;
//!
//! // The hot path: a lookup without locks or allocation, then one atomic add.
//! requests.with(&["GET", "200"]).inc();
//! latency.observe(0.012);
//! # Ok::<(), promtrack::Error>(())
//! ```
//!
//! # Macros
//!
//! The attributes [`counter`], [`histogram`], [`summary`] and [`gauge`] instrument a function
//! (sync or async, free or a method, an axum handler or not) without changing its signature;
//! [`do_not_track`] and [`exclude_all_metrics`] exclude a handler from the axum layer's metrics.
//! `#[derive(LabelSet)]` and `#[derive(LabelValue)]` make typed label sets, and [`family!`]
//! declares a standalone family. Names, labels and buckets are checked at compile time; every
//! declared family is registered with the [default registry](default_registry) at start-up
//! (collected at link time), so the first scrape shows it. [`check_declarations`] reports two
//! declarations of one name that disagree.
//!
//! ```
//! use promtrack as metrics;
//!
//! #[metrics::counter("lib_doc_lookups_total", "User lookups.", labels(source = "db"))]
//! #[metrics::histogram("lib_doc_lookup_seconds", "Time to look a user up.", buckets = [0.01, 0.1])]
//! fn lookup(id: u64) -> Option<String> {
//!     (id == 1).then(|| "ada".to_owned())
//! }
//!
//! lookup(1);
//! let text = metrics::expose::encode_to_string(
//!     metrics::default_registry(),
//!     metrics::expose::Format::Text,
//! );
//! assert!(text.contains("lib_doc_lookups_total{source=\"db\"} 1\n"));
//! ```
//!
//! With the `axum` feature (on by default), `metrics_router()` serves `GET /metrics` from the
//! default registry, `serve_metrics()` serves it on a port of its own, and `layer()` adds the
//! default HTTP metrics.
//!
//! # Features
//! - `axum` (default): `layer()`, `metrics_router()`, `serve_metrics()`, `LabelValue` for
//!   `http` types.
//! - `multiprocess` (default): `multiprocess::dir()` and the directory aggregation (Unix).
//! - `gzip` (default): compressed scrapes when the scraper asks for them.
//! - `process` (default): `process_*` metrics on Linux.
//! - `prometheus`: expose a `prometheus::Registry` (rust-prometheus) alongside, with
//!   `interop::PrometheusRegistry`.
//! - `opentelemetry`: `otel::current_trace()`, the current `tracing` span's OpenTelemetry ids
//!   as an exemplar's trace context (`tracing-opentelemetry` 0.34, `opentelemetry` 0.33).
//! - `push`: `push::Pusher`, a blocking Pushgateway client for batch jobs (plain HTTP);
//!   `push-tls` adds `https://` gateways.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod cell;
mod clock;
// The axum layer is the only reader of the request context; without it, handler attributes
// still mark and query it (and find no request).
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
mod context;
mod declare;
mod error;
mod exemplar;
mod exponential;
pub mod expose;
mod family;
mod key;
pub mod labels;
#[cfg(feature = "axum")]
pub mod layer;
mod layout;
mod metric;
pub mod model;
#[cfg(all(feature = "multiprocess", unix))]
pub mod multiprocess;
#[cfg(all(feature = "multiprocess", not(unix)))]
#[path = "multiprocess_unsupported.rs"]
pub mod multiprocess;
#[cfg(all(feature = "multiprocess", unix))]
mod multiprocess_store;
#[cfg(feature = "opentelemetry")]
pub mod otel;
#[cfg(all(feature = "process", target_os = "linux"))]
mod process;
#[cfg(feature = "push")]
pub mod push;
mod registry;
#[cfg(feature = "axum")]
mod serve;
mod sort;
mod store;
mod sync;

#[cfg(feature = "prometheus")]
pub mod interop;

pub use declare::{LazyFamily, check_declarations};
pub use error::Error;
pub use exemplar::{ExemplarError, TraceContext};
pub use family::{DEFAULT_MAX_SERIES, Family, OVERFLOW_LABEL_VALUE};
pub use labels::{LabelQuery, LabelSet, LabelValue};
#[cfg(feature = "axum")]
pub use layer::{MetricsLayer, layer};
pub use metric::{
    Counter, DEFAULT_BUCKETS, Gauge, GaugeMode, Histogram, InFlight, Info, Metric, NativeConfig,
    Summary,
};
pub use promtrack_macros::{
    LabelSet, LabelValue, counter, do_not_track, exclude_all_metrics, family, gauge, histogram,
    summary,
};
pub use registry::{Collector, Registry, default_registry};
#[cfg(feature = "axum")]
pub use serve::{Auth, MetricsRouter, metrics_router, serve_metrics};
