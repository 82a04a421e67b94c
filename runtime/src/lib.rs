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
//! With the `axum` feature (on by default), [`metrics_router`] serves `GET /metrics` from the
//! default registry, and [`serve_metrics`] serves it on a port of its own.
//!
//! # Features
//! - `axum` (default): [`metrics_router`], [`serve_metrics`], `LabelValue` for `http` types.
//! - `gzip` (default): compressed scrapes when the scraper asks for them.
//! - `process` (default): `process_*` metrics on Linux.
//! - `prometheus`: expose a `prometheus::Registry` (rust-prometheus) alongside, see
//!   [`interop`].
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod cell;
pub mod context;
mod error;
pub mod expose;
mod family;
pub mod labels;
mod metric;
pub mod model;
#[cfg(all(feature = "process", target_os = "linux"))]
mod process;
mod registry;
#[cfg(feature = "axum")]
mod serve;

#[cfg(feature = "prometheus")]
pub mod interop;

pub use error::Error;
pub use family::{DEFAULT_MAX_SERIES, Family, OVERFLOW_LABEL_VALUE};
pub use labels::{LabelSet, LabelValue};
pub use metric::{
    Buckets, Counter, DEFAULT_BUCKETS, Gauge, GaugeMode, Histogram, InFlight, Info, Metric, Summary,
};
pub use registry::{Collector, Registry, default_registry};
#[cfg(feature = "axum")]
pub use serve::{Auth, MetricsRouter, metrics_router, serve_metrics};
