//! The families the layer records into, built and registered once by
//! [`MetricsLayerBuilder::build`](super::MetricsLayerBuilder::build), and [`Outcome`]: what one
//! request contributes to them.
//!
//! Label order is fixed: `method`, `path`, `status` (each where the metric has it), then the
//! user's extra labels in the order they were added. Series are looked up with
//! `Family::with_writer`, so a request costs a few lookups of a stack-built key, no allocation
//! for a label set seen before.

use std::panic::Location;

use axum::extract::MatchedPath;
use http::StatusCode;

use super::config::{DEFAULT_SIZE_BUCKETS, Latency, MetricsLayerBuilder, RouteKind};
use super::labels::{Extra, MethodLabel, StatusLabel, Values};
use crate::family::Opts;
use crate::labels::{KeyWriter, LabelSet};
use crate::metric::Metric;
use crate::{Counter, DEFAULT_MAX_SERIES, Error, Family, Gauge, GaugeMode, Histogram, Info};
use crate::{Registry, Summary};

/// A label set whose names are only known at run time (they include the user's extra labels);
/// values are written with `Family::with_writer`.
pub(crate) struct Dynamic;

impl LabelSet for Dynamic {
    const NAMES: &'static [&'static str] = &[];
    /// Tells the registry that the names are given at run time (see `registry::validate`).
    const ARITY: usize = usize::MAX;
    fn write_values(&self, _: &mut KeyWriter<'_>) {}
}

/// A family with label names chosen at run time.
pub(crate) fn family<M: Metric>(
    name: String,
    help: &str,
    labels: impl IntoIterator<Item = impl Into<Box<str>>>,
    origin: &'static Location<'static>,
) -> Family<Dynamic, M> {
    Family::from_opts(
        Opts {
            name: name.into(),
            help: help.into(),
            label_names: labels.into_iter().map(Into::into).collect(),
            config: Default::default(),
            max_series: DEFAULT_MAX_SERIES,
        },
        origin,
    )
}

/// The `path` label value of one request: the matched template is shared, not copied.
#[derive(Clone, Debug)]
pub(crate) enum PathValue {
    Matched(MatchedPath),
    Static(&'static str),
    Owned(Box<str>),
}

impl PathValue {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            PathValue::Matched(m) => m.as_str(),
            PathValue::Static(s) => s,
            PathValue::Owned(s) => s,
        }
    }
}

/// A series handle kept across a request (or in a route's cache): a pointer, because the series
/// lives in a family its holder owns through an `Arc` (a borrow could not name that lifetime).
pub(crate) struct SeriesRef<M>(std::ptr::NonNull<M>);

impl<M> Clone for SeriesRef<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for SeriesRef<M> {}

// SAFETY: it points to a metric, which is `Send + Sync` (atomics), and is only dereferenced
// while its family is alive (see `SeriesRef::get`).
unsafe impl<M: Sync> Send for SeriesRef<M> {}
unsafe impl<M: Sync> Sync for SeriesRef<M> {}

impl<M> SeriesRef<M> {
    fn new(series: &M) -> Self {
        Self(std::ptr::NonNull::from(series))
    }

    /// # Safety
    /// The family the series came from must still be alive.
    unsafe fn get(&self) -> &M {
        // SAFETY: guaranteed by the caller; families never free a series before they drop.
        unsafe { self.0.as_ref() }
    }
}

/// What one request records.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub(crate) method: MethodLabel,
    pub(crate) path: PathValue,
    pub(crate) status: StatusCode,
    pub(crate) seconds: f64,
    pub(crate) panicked: bool,
    pub(crate) request_size: Option<u64>,
    pub(crate) response_size: Option<u64>,
    /// Values of the default metrics' extra labels.
    pub(crate) values: Values,
    /// Values of each route metric's labels, in `Families::routes` order.
    pub(crate) route_values: Vec<Values>,
}

/// Which metrics a request is recorded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scope {
    /// Defaults and route metrics.
    All,
    /// Route metrics only: `#[do_not_track]`, or an excluded path with
    /// `exclude_user_defaults(false)`.
    RoutesOnly,
    /// Nothing: `#[exclude_all_metrics]`, the metrics endpoint, an excluded path.
    Nothing,
}

impl Scope {
    pub(crate) fn defaults(self) -> bool {
        self == Scope::All
    }
    pub(crate) fn routes(self) -> bool {
        matches!(self, Scope::All | Scope::RoutesOnly)
    }
}

enum DurationFamily {
    Histogram(Family<Dynamic, Histogram>),
    Summary(Family<Dynamic, Summary>),
}

/// The series of the duration family, whichever its kind.
#[derive(Clone, Copy)]
enum DurationRef {
    Histogram(SeriesRef<Histogram>),
    Summary(SeriesRef<Summary>),
}

/// The series a finished request of one route, method and status counts in: `duration` and
/// `total`, looked up once and then kept by the route's cache (`cache.rs`).
#[derive(Clone, Copy)]
pub(crate) struct Resolved {
    duration: Option<DurationRef>,
    total: Option<SeriesRef<Counter>>,
}

enum RouteFamilyKind {
    Counter(Family<Dynamic, Counter>),
    Histogram(Family<Dynamic, Histogram>),
    Summary(Family<Dynamic, Summary>),
    InProgress(Family<Dynamic, Gauge>),
}

struct RouteFamily {
    labels: Box<[Extra]>,
    kind: RouteFamilyKind,
}

/// Every family the layer records into; `None` for defaults switched off.
pub(crate) struct Families {
    pub(crate) status: StatusLabel,
    pub(crate) extras: Box<[Extra]>,
    duration: Option<DurationFamily>,
    total: Option<Family<Dynamic, Counter>>,
    exceptions: Option<Family<Dynamic, Counter>>,
    in_progress: Option<Family<Dynamic, Gauge>>,
    request_size: Option<Family<Dynamic, Histogram>>,
    response_size: Option<Family<Dynamic, Histogram>>,
    routes: Box<[RouteFamily]>,
}

impl Families {
    /// Builds and registers every family the configuration asks for.
    pub(crate) fn register(
        b: &MetricsLayerBuilder,
        registry: &Registry,
        origin: &'static Location<'static>,
    ) -> Result<Self, Error> {
        let p = &b.prefix;
        let names = |base: &[&str], response: bool| {
            base.iter()
                .map(|&n| Box::<str>::from(n))
                .chain(
                    b.labels
                        .iter()
                        .filter(|e| response || !e.is_response())
                        .map(|e| e.name.clone()),
                )
                .collect::<Vec<_>>()
        };
        let mps = ["method", "path", "status"];
        let s = &b.switches;
        let buckets = b.buckets.as_deref().unwrap_or(crate::DEFAULT_BUCKETS);
        let size_buckets = b.size_buckets.as_deref().unwrap_or(DEFAULT_SIZE_BUCKETS);

        let duration =
            if !s.duration {
                None
            } else {
                let name = format!("{p}_http_request_duration_seconds");
                let help = "Duration of HTTP requests in seconds.";
                Some(match b.latency {
                    Latency::Histogram => DurationFamily::Histogram(registry.get_or_register(
                        family(name, help, names(&mps, true), origin).buckets(buckets),
                    )?),
                    Latency::Summary => DurationFamily::Summary(
                        registry.get_or_register(family(name, help, names(&mps, true), origin))?,
                    ),
                })
            };
        let total = s
            .total
            .then(|| {
                registry.get_or_register(family(
                    format!("{p}_http_request_total"),
                    "Total number of HTTP requests.",
                    names(&["method", "status"], true),
                    origin,
                ))
            })
            .transpose()?;
        let exceptions = s
            .exceptions
            .then(|| {
                registry.get_or_register(family(
                    format!("{p}_http_request_exceptions_total"),
                    "Total number of HTTP requests whose handler panicked.",
                    names(&mps, true),
                    origin,
                ))
            })
            .transpose()?;
        let in_progress = s
            .in_progress
            .then(|| {
                // Summed over live processes in multiprocess mode: a dead worker's requests
                // are no longer in progress.
                registry.get_or_register(
                    family(
                        format!("{p}_http_requests_in_progress"),
                        "Number of HTTP requests in progress.",
                        names(&["method", "path"], false),
                        origin,
                    )
                    .mode(GaugeMode::LiveSum),
                )
            })
            .transpose()?;
        let size = |what: &str, help: &str| {
            registry.get_or_register(
                family(
                    format!("{p}_http_{what}_size_bytes"),
                    help,
                    names(&mps, true),
                    origin,
                )
                .buckets(size_buckets),
            )
        };
        let (request_size, response_size) = if s.body_sizes {
            (
                Some(size("request", "Size of HTTP request bodies in bytes.")?),
                Some(size("response", "Size of HTTP response bodies in bytes.")?),
            )
        } else {
            (None, None)
        };
        if s.exporter_info {
            let info = registry.get_or_register(
                Family::<[&str; 1], Info>::new(
                    format!("{p}_exporter_info"),
                    "Information about the promtrack axum layer.",
                )
                .label_names(["version"]),
            )?;
            info.with(&[env!("CARGO_PKG_VERSION")]);
        }

        let mut routes = Vec::new();
        for m in &b.route_metrics {
            let labels = m.labels.iter().map(|e| e.name.clone());
            let name = m.name.clone();
            let kind = match m.kind {
                RouteKind::Counter => RouteFamilyKind::Counter(
                    registry.get_or_register(family(name, &m.help, labels, origin))?,
                ),
                RouteKind::Histogram => {
                    let bounds = m.buckets.as_deref().unwrap_or(crate::DEFAULT_BUCKETS);
                    RouteFamilyKind::Histogram(
                        registry.get_or_register(
                            family(name, &m.help, labels, origin).buckets(bounds),
                        )?,
                    )
                }
                RouteKind::Summary => RouteFamilyKind::Summary(
                    registry.get_or_register(family(name, &m.help, labels, origin))?,
                ),
                RouteKind::InProgress => {
                    if let Some(e) = m.labels.iter().find(|e| e.is_response()) {
                        return Err(Error::InvalidConfig {
                            setting: format!("the label `{}` of `{}`", e.name, m.name),
                            reason: "an in-progress gauge goes up before there is a response, so its labels cannot come from the response; use `label_from_request` or `static_label`".into(),
                        });
                    }
                    RouteFamilyKind::InProgress(registry.get_or_register(
                        family(name, &m.help, labels, origin).mode(GaugeMode::LiveSum),
                    )?)
                }
            };
            routes.push(RouteFamily {
                labels: m.labels.clone().into(),
                kind,
            });
        }

        Ok(Self {
            status: b.status,
            extras: b.labels.clone().into(),
            duration,
            total,
            exceptions,
            in_progress,
            request_size,
            response_size,
            routes: routes.into(),
        })
    }

    /// The extra labels of each route metric, to compute their values per request.
    pub(crate) fn route_labels(&self) -> impl Iterator<Item = &[Extra]> {
        self.routes.iter().map(|r| &*r.labels)
    }

    /// Whether any in-progress gauge (default or route metric) exists.
    pub(crate) fn has_in_progress(&self) -> bool {
        self.in_progress.is_some()
            || self
                .routes
                .iter()
                .any(|r| matches!(r.kind, RouteFamilyKind::InProgress(_)))
    }

    /// The default in-progress gauge's series for a request of `method` on `path`, if that
    /// gauge is on.
    pub(crate) fn in_progress_series(
        &self,
        method: MethodLabel,
        path: &str,
        values: &Values,
    ) -> Option<SeriesRef<Gauge>> {
        let f = self.in_progress.as_ref()?;
        Some(SeriesRef::new(f.with_writer(|w| {
            w.value(method.as_str());
            w.value(path);
            values.write(&self.extras, false, w);
        })))
    }

    /// Raises the in-progress gauges of `scope` for a request that starts: `default` is the
    /// default gauge's series (from [`in_progress_series`](Self::in_progress_series) or the
    /// route's cache) — looked up only when `scope` has the defaults, since a lookup creates
    /// the series — and is handed back for [`lower_in_progress`](Self::lower_in_progress).
    pub(crate) fn raise_in_progress(
        &self,
        default: Option<SeriesRef<Gauge>>,
        route_values: &[Values],
        scope: Scope,
    ) -> Option<SeriesRef<Gauge>> {
        debug_assert!(default.is_none() || scope.defaults());
        if let Some(gauge) = default {
            // SAFETY: the series came from one of `self`'s families (see `in_progress_series`),
            // which the caller keeps alive.
            unsafe { gauge.get() }.inc();
        }
        if scope.routes() {
            self.move_route_gauges(route_values, 1.0);
        }
        default
    }

    /// Lowers what [`raise_in_progress`](Self::raise_in_progress) raised.
    pub(crate) fn lower_in_progress(
        &self,
        default: Option<SeriesRef<Gauge>>,
        route_values: &[Values],
        scope: Scope,
    ) {
        if let Some(gauge) = default {
            // SAFETY: `gauge` came from one of `self`'s families, which the caller keeps
            // alive (it holds the `Arc<Shared>` owning `self`); series are never freed before
            // their family.
            unsafe { gauge.get() }.dec();
        }
        if scope.routes() {
            self.move_route_gauges(route_values, -1.0);
        }
    }

    fn move_route_gauges(&self, route_values: &[Values], delta: f64) {
        for (r, v) in self.routes.iter().zip(route_values) {
            if let RouteFamilyKind::InProgress(f) = &r.kind {
                f.with_writer(|w| v.write(&r.labels, false, w)).add(delta);
            }
        }
    }

    fn write_mps(&self, o: &Outcome, w: &mut KeyWriter<'_>) {
        w.value(o.method.as_str());
        w.value(o.path.as_str());
        w.value(self.status.render(&o.status));
        o.values.write(&self.extras, true, w);
    }

    /// The `duration` and `total` series of a finished request.
    pub(crate) fn resolve(&self, o: &Outcome) -> Resolved {
        let mps = |w: &mut KeyWriter<'_>| self.write_mps(o, w);
        Resolved {
            duration: self.duration.as_ref().map(|d| match d {
                DurationFamily::Histogram(f) => {
                    DurationRef::Histogram(SeriesRef::new(f.with_writer(mps)))
                }
                DurationFamily::Summary(f) => {
                    DurationRef::Summary(SeriesRef::new(f.with_writer(mps)))
                }
            }),
            total: self.total.as_ref().map(|f| {
                SeriesRef::new(f.with_writer(|w| {
                    w.value(o.method.as_str());
                    w.value(self.status.render(&o.status));
                    o.values.write(&self.extras, true, w);
                }))
            }),
        }
    }

    /// Records a finished request (everything but what `in_progress` handles). `resolved` is
    /// what [`resolve`](Self::resolve) gave for such a request, kept by the route's cache;
    /// `None` looks the series up.
    pub(crate) fn record(&self, o: &Outcome, scope: Scope, resolved: Option<&Resolved>) {
        if scope.defaults() {
            let resolved = match resolved {
                Some(r) => *r,
                None => self.resolve(o),
            };
            // SAFETY (the three `get`s): `resolved` came from `self`'s families, which live as
            // long as `self`; series are never freed before their family.
            match resolved.duration {
                Some(DurationRef::Histogram(h)) => unsafe { h.get() }.observe(o.seconds),
                Some(DurationRef::Summary(s)) => unsafe { s.get() }.observe(o.seconds),
                None => {}
            }
            if let Some(total) = resolved.total {
                unsafe { total.get() }.inc();
            }
            if o.panicked {
                self.count_exception(o);
            }
            if let (Some(f), Some(size)) = (&self.request_size, o.request_size) {
                f.with_writer(|w| self.write_mps(o, w)).observe(size as f64);
            }
            if o.response_size.is_some() {
                self.record_response_size(o);
            }
        }
        if scope.routes() {
            for (r, v) in self.routes.iter().zip(&o.route_values) {
                let write = |w: &mut KeyWriter<'_>| v.write(&r.labels, true, w);
                match &r.kind {
                    RouteFamilyKind::Counter(f) => f.with_writer(write).inc(),
                    RouteFamilyKind::Histogram(f) => f.with_writer(write).observe(o.seconds),
                    RouteFamilyKind::Summary(f) => f.with_writer(write).observe(o.seconds),
                    RouteFamilyKind::InProgress(_) => {}
                }
            }
        }
    }

    /// Counts one panic (the caller makes sure it is counted once).
    pub(crate) fn count_exception(&self, o: &Outcome) {
        if let Some(f) = &self.exceptions {
            f.with_writer(|w| self.write_mps(o, w)).inc();
        }
    }

    /// Records the response size, once it is known.
    pub(crate) fn record_response_size(&self, o: &Outcome) {
        if let (Some(f), Some(size)) = (&self.response_size, o.response_size) {
            f.with_writer(|w| self.write_mps(o, w)).observe(size as f64);
        }
    }

    /// Whether response sizes are recorded.
    pub(crate) fn wants_response_size(&self) -> bool {
        self.response_size.is_some()
    }

    /// Whether request sizes are recorded.
    pub(crate) fn wants_request_size(&self) -> bool {
        self.request_size.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::MetricsLayer;

    #[test]
    fn in_progress_gauges_sum_over_live_processes() {
        let registry = Registry::new();
        let b = MetricsLayer::builder()
            .registry(&registry)
            .register_default(crate::layer::RouteMetric::in_progress("busy", "Busy."));
        let families = Families::register(&b, &registry, Location::caller()).unwrap();
        let default = families.in_progress.as_ref().unwrap();
        assert_eq!(default.core.opts.config, GaugeMode::LiveSum);
        match &families.routes[0].kind {
            RouteFamilyKind::InProgress(f) => assert_eq!(f.core.opts.config, GaugeMode::LiveSum),
            _ => panic!("expected an in-progress gauge"),
        }
    }
}
