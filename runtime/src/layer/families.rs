//! The families the layer records into, built and registered once by
//! [`MetricsLayerBuilder::build`](super::MetricsLayerBuilder::build), and [`Outcome`]: what one
//! request contributes to them.
//!
//! Label order is fixed: `method`, `path`, `status` (each where the metric has it), then the
//! user's extra labels in the order they were added. Each default family is one entry of a
//! table ([`DefaultFamily`]): its name, help and label names, and the writer of its label
//! values, so that registration and every lookup agree by construction. Series are looked up
//! with `Family::with_writer`, so a request costs a few lookups of a stack-built key, no
//! allocation for a label set seen before.

use std::panic::Location;

use axum::extract::MatchedPath;
use http::StatusCode;

use super::config::{DEFAULT_SIZE_BUCKETS, Latency, MetricsLayerBuilder, RouteKind};
use super::http_labels::{ExtraLabel, ExtraValues, MethodLabel, StatusLabel};
use crate::context::{Exclusion, Tick};
use crate::exemplar::TraceContext;
use crate::family::Opts;
use crate::labels::{KeyWriter, LabelSet};
use crate::metric::Metric;
use crate::{Counter, DEFAULT_MAX_SERIES, Error, Family, Gauge, GaugeMode, Histogram, Info};
use crate::{Registry, Summary};

/// A label set whose names are only known at run time (they include the user's extra labels);
/// values are written with `Family::with_writer`.
pub(crate) struct RuntimeLabels;

impl LabelSet for RuntimeLabels {
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
) -> Family<RuntimeLabels, M> {
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

/// The `path` label value of one request: the matched template is state, not copied.
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
///
/// Small on purpose: it lives in the request's state, which moves with the response future
/// and into the response body, so every byte here is copied a few times per request. What
/// only some configurations need is in [`Configured`], boxed, and absent with the defaults.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub(crate) method: MethodLabel,
    pub(crate) path: PathValue,
    pub(crate) status: StatusCode,
    pub(crate) seconds: f64,
    pub(crate) panicked: bool,
    /// `None` unless the configuration computes labels, registers route metrics or records
    /// body sizes.
    pub(crate) configured: ConfiguredSlot,
}

/// [`Outcome::configured`]: the boxed parts, or none. Its `Drop` tests for them inline, so that
/// a request of the defaults, which has none, makes no call: the `Box`'s drop glue, out of line,
/// saved six registers before its own test (`scripts/callgrind-layer.sh`).
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfiguredSlot(Option<Box<Configured>>);

impl Drop for ConfiguredSlot {
    #[inline]
    fn drop(&mut self) {
        if let Some(configured) = self.0.take() {
            drop_configured(configured);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_configured(configured: Box<Configured>) {
    drop(configured);
}

impl std::ops::Deref for ConfiguredSlot {
    type Target = Option<Box<Configured>>;
    #[inline]
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ConfiguredSlot {
    #[inline]
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// The values of a request without computed labels.
static NO_VALUES: ExtraValues = ExtraValues::EMPTY;

/// The parts of an [`Outcome`] that only some configurations use.
#[derive(Clone, Debug, Default)]
pub(crate) struct Configured {
    pub(crate) request_size: Option<u64>,
    pub(crate) response_size: Option<u64>,
    /// Bytes of request body read, when there was no `Content-Length`.
    pub(crate) request_read: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Values of the default metrics' computed extra labels.
    pub(crate) values: ExtraValues,
    /// Values of each route metric's labels, in `Families::routes` order.
    pub(crate) route_values: Vec<ExtraValues>,
}

impl Outcome {
    /// What the layer records of a request before reading more than its method.
    #[inline]
    pub(crate) fn new(method: MethodLabel, path: PathValue) -> Self {
        Self {
            method,
            path,
            status: StatusCode::OK,
            seconds: 0.0,
            panicked: false,
            configured: ConfiguredSlot(None),
        }
    }

    /// The configured parts, created on first use.
    pub(crate) fn configured(&mut self) -> &mut Configured {
        self.configured.get_or_insert_with(Default::default)
    }

    #[inline]
    pub(crate) fn values(&self) -> &ExtraValues {
        self.configured.as_ref().map_or(&NO_VALUES, |c| &c.values)
    }

    #[inline]
    pub(crate) fn route_values(&self) -> &[ExtraValues] {
        self.configured.as_ref().map_or(&[], |c| &c.route_values)
    }

    #[inline]
    pub(crate) fn request_size(&self) -> Option<u64> {
        self.configured.as_ref().and_then(|c| c.request_size)
    }

    #[inline]
    pub(crate) fn response_size(&self) -> Option<u64> {
        self.configured.as_ref().and_then(|c| c.response_size)
    }
}

/// A label the layer computes itself for its default families.
#[derive(Clone, Copy, Debug)]
enum BuiltinLabel {
    Method,
    Path,
    Status,
}

impl BuiltinLabel {
    fn name(self) -> &'static str {
        match self {
            BuiltinLabel::Method => "method",
            BuiltinLabel::Path => "path",
            BuiltinLabel::Status => "status",
        }
    }
}

/// One default family: everything about it that its registration and its lookups must agree
/// on.
pub(crate) struct DefaultFamily {
    /// The name after `<prefix>_`.
    name: &'static str,
    help: &'static str,
    /// The built-in labels, in order; the user's extra labels follow.
    builtins: &'static [BuiltinLabel],
    /// Whether the extra labels computed from the response are on it (not on a family
    /// written before there is a response).
    response_extras: bool,
}

use BuiltinLabel::{Method, Path, Status};

/// The table of default families.
pub(crate) const DURATION: DefaultFamily = DefaultFamily {
    name: "http_request_duration_seconds",
    help: "Duration of HTTP requests in seconds.",
    builtins: &[Method, Path, Status],
    response_extras: true,
};
pub(crate) const TOTAL: DefaultFamily = DefaultFamily {
    name: "http_request_total",
    help: "Total number of HTTP requests.",
    builtins: &[Method, Status],
    response_extras: true,
};
pub(crate) const EXCEPTIONS: DefaultFamily = DefaultFamily {
    name: "http_request_exceptions_total",
    help: "Total number of HTTP requests whose handler panicked.",
    builtins: &[Method, Path, Status],
    response_extras: true,
};
pub(crate) const IN_PROGRESS: DefaultFamily = DefaultFamily {
    name: "http_requests_in_progress",
    help: "Number of HTTP requests in progress.",
    builtins: &[Method, Path],
    response_extras: false,
};
pub(crate) const REQUEST_SIZE: DefaultFamily = DefaultFamily {
    name: "http_request_size_bytes",
    help: "Size of HTTP request bodies in bytes.",
    builtins: &[Method, Path, Status],
    response_extras: true,
};
pub(crate) const RESPONSE_SIZE: DefaultFamily = DefaultFamily {
    name: "http_response_size_bytes",
    help: "Size of HTTP response bodies in bytes.",
    builtins: &[Method, Path, Status],
    response_extras: true,
};

impl DefaultFamily {
    /// The family, unregistered, with its label names (the built-ins, then `extras`).
    fn declare<M: Metric>(
        &self,
        prefix: &str,
        extras: &[ExtraLabel],
        origin: &'static Location<'static>,
    ) -> Family<RuntimeLabels, M> {
        let builtins = self.builtins.iter().map(|l| Box::<str>::from(l.name()));
        let extras = extras
            .iter()
            .filter(|e| self.response_extras || !e.is_response())
            .map(|e| e.name.clone());
        family(
            format!("{prefix}_{}", self.name),
            self.help,
            builtins.chain(extras),
            origin,
        )
    }

    /// Writes the label values of `o`'s series, in the order of [`declare`](Self::declare).
    #[inline]
    fn write(&self, families: &Families, o: &Outcome, w: &mut KeyWriter<'_>) {
        for label in self.builtins {
            w.value(match label {
                Method => o.method.as_str(),
                Path => o.path.as_str(),
                Status => families.status.render(&o.status),
            });
        }
        o.values().write(&families.extras, self.response_extras, w);
    }
}

enum DurationFamily {
    Histogram(Family<RuntimeLabels, Histogram>),
    Summary(Family<RuntimeLabels, Summary>),
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
pub(crate) struct FinishedSeries {
    duration: Option<DurationRef>,
    total: Option<SeriesRef<Counter>>,
}

enum RouteFamilyKind {
    Counter(Family<RuntimeLabels, Counter>),
    Histogram(Family<RuntimeLabels, Histogram>),
    Summary(Family<RuntimeLabels, Summary>),
    InProgress(Family<RuntimeLabels, Gauge>),
}

struct RouteFamily {
    labels: Box<[ExtraLabel]>,
    kind: RouteFamilyKind,
}

/// Every family the layer records into; `None` for defaults switched off.
pub(crate) struct Families {
    pub(crate) status: StatusLabel,
    pub(crate) extras: Box<[ExtraLabel]>,
    duration: Option<DurationFamily>,
    total: Option<Family<RuntimeLabels, Counter>>,
    exceptions: Option<Family<RuntimeLabels, Counter>>,
    in_progress: Option<Family<RuntimeLabels, Gauge>>,
    request_size: Option<Family<RuntimeLabels, Histogram>>,
    response_size: Option<Family<RuntimeLabels, Histogram>>,
    routes: Box<[RouteFamily]>,
}

/// What `MetricsLayerBuilder::native` cannot be combined with, as errors naming the fix (its
/// settings themselves are checked when the family registers).
fn check_native(b: &MetricsLayerBuilder) -> Result<(), Error> {
    let Some(native) = &b.native else {
        return Ok(());
    };
    let reason = if b.latency == Latency::Summary {
        "a summary has no buckets, native or classic: remove `native(..)`, or keep the default `latency(Latency::Histogram)`"
    } else if b.buckets.is_some() && !native.keeps_classic() {
        "`buckets(..)` sets classic buckets, which a native-only histogram does not keep: remove `buckets(..)`, or keep both with `native(NativeConfig::default().classic(true))`"
    } else {
        return Ok(());
    };
    Err(Error::InvalidConfig {
        setting: "`native(..)` of the layer's duration histogram".into(),
        reason: reason.into(),
    })
}

impl Families {
    /// Builds and registers every family the configuration asks for.
    pub(crate) fn register(
        b: &MetricsLayerBuilder,
        registry: &Registry,
        origin: &'static Location<'static>,
    ) -> Result<Self, Error> {
        check_native(b)?;
        let (p, extras) = (&*b.prefix, &*b.labels);
        let s = &b.switches;
        let buckets = b.buckets.as_deref().unwrap_or(crate::DEFAULT_BUCKETS);
        let size_buckets = b.size_buckets.as_deref().unwrap_or(DEFAULT_SIZE_BUCKETS);

        let duration = if !s.duration {
            None
        } else {
            Some(match b.latency {
                Latency::Histogram => {
                    let mut family = DURATION.declare(p, extras, origin).buckets(buckets);
                    if let Some(native) = &b.native {
                        family = family.native(native.clone());
                    }
                    DurationFamily::Histogram(registry.get_or_register(family)?)
                }
                Latency::Summary => DurationFamily::Summary(
                    registry.get_or_register(DURATION.declare(p, extras, origin))?,
                ),
            })
        };
        let total = s
            .total
            .then(|| registry.get_or_register(TOTAL.declare(p, extras, origin)))
            .transpose()?;
        let exceptions = s
            .exceptions
            .then(|| registry.get_or_register(EXCEPTIONS.declare(p, extras, origin)))
            .transpose()?;
        let in_progress = s
            .in_progress
            .then(|| {
                // Summed over live processes in multiprocess mode: a dead worker's requests
                // are no longer in progress.
                registry.get_or_register(
                    IN_PROGRESS
                        .declare(p, extras, origin)
                        .mode(GaugeMode::LiveSum),
                )
            })
            .transpose()?;
        let size = |table: &DefaultFamily| {
            registry.get_or_register(table.declare(p, extras, origin).buckets(size_buckets))
        };
        let (request_size, response_size) = if s.body_sizes {
            (Some(size(&REQUEST_SIZE)?), Some(size(&RESPONSE_SIZE)?))
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
    pub(crate) fn route_labels(&self) -> impl Iterator<Item = &[ExtraLabel]> {
        self.routes.iter().map(|r| &*r.labels)
    }

    /// Whether any in-progress gauge (default or route metric) exists.
    #[inline]
    pub(crate) fn has_in_progress(&self) -> bool {
        self.in_progress.is_some()
            || self
                .routes
                .iter()
                .any(|r| matches!(r.kind, RouteFamilyKind::InProgress(_)))
    }

    /// The default in-progress gauge's series for a starting request (only its method, path
    /// and request-time labels are read), if that gauge is on.
    pub(crate) fn in_progress_series(&self, o: &Outcome) -> Option<SeriesRef<Gauge>> {
        let f = self.in_progress.as_ref()?;
        Some(SeriesRef::new(
            f.with_writer(|w| IN_PROGRESS.write(self, o, w)),
        ))
    }

    /// Raises the in-progress gauges a request excluded so records in, as it starts: `default`
    /// is the default gauge's series (from [`in_progress_series`](Self::in_progress_series) or
    /// the route's cache) — looked up only when the defaults are recorded, since a lookup creates
    /// the series — and is handed back for [`lower_in_progress`](Self::lower_in_progress).
    #[inline]
    pub(crate) fn raise_in_progress(
        &self,
        default: Option<SeriesRef<Gauge>>,
        route_values: &[ExtraValues],
        exclusion: Exclusion,
    ) -> Option<SeriesRef<Gauge>> {
        debug_assert!(default.is_none() || exclusion.records_defaults());
        if let Some(gauge) = default {
            // SAFETY: the series came from one of `self`'s families (see `in_progress_series`),
            // which the caller keeps alive.
            unsafe { gauge.get() }.inc();
        }
        if exclusion.records_routes() {
            self.move_route_gauges(route_values, 1.0);
        }
        default
    }

    /// Lowers what [`raise_in_progress`](Self::raise_in_progress) raised.
    pub(crate) fn lower_in_progress(
        &self,
        default: Option<SeriesRef<Gauge>>,
        route_values: &[ExtraValues],
        exclusion: Exclusion,
    ) {
        if let Some(gauge) = default {
            // SAFETY: `gauge` came from one of `self`'s families, which the caller keeps
            // alive (it holds the `Arc<LayerState>` owning `self`); series are never freed before
            // their family.
            unsafe { gauge.get() }.dec();
        }
        if exclusion.records_routes() {
            self.move_route_gauges(route_values, -1.0);
        }
    }

    /// Whether any route metric (`register_default`) is configured.
    #[inline]
    pub(crate) fn has_route_metrics(&self) -> bool {
        !self.routes.is_empty()
    }

    #[inline]
    fn move_route_gauges(&self, route_values: &[ExtraValues], delta: f64) {
        if self.has_route_metrics() {
            self.move_route_gauges_slow(route_values, delta);
        }
    }

    #[cold]
    fn move_route_gauges_slow(&self, route_values: &[ExtraValues], delta: f64) {
        for (r, v) in self.routes.iter().zip(route_values) {
            if let RouteFamilyKind::InProgress(f) = &r.kind {
                f.with_writer(|w| v.write(&r.labels, false, w)).add(delta);
            }
        }
    }

    /// The `duration` and `total` series of a finished request.
    pub(crate) fn resolve(&self, o: &Outcome) -> FinishedSeries {
        let duration = |w: &mut KeyWriter<'_>| DURATION.write(self, o, w);
        FinishedSeries {
            duration: self.duration.as_ref().map(|d| match d {
                DurationFamily::Histogram(f) => {
                    DurationRef::Histogram(SeriesRef::new(f.with_writer(duration)))
                }
                DurationFamily::Summary(f) => {
                    DurationRef::Summary(SeriesRef::new(f.with_writer(duration)))
                }
            }),
            total: self
                .total
                .as_ref()
                .map(|f| SeriesRef::new(f.with_writer(|w| TOTAL.write(self, o, w)))),
        }
    }

    /// Records a finished request (everything but what `in_progress` handles). `resolved` is
    /// what [`resolve`](Self::resolve) gave for such a request, kept by the route's cache;
    /// `None` looks the series up. Every finished request reaches its duration and total
    /// series here and only here (from `RequestState::finish`, or `Route::settle` for a request
    /// held back while its route was being learned): where per-request data read in
    /// `MetricsService::call` is attached to an observation. `trace` is the exemplar of the
    /// duration histogram's bucket and of the request counter (`exemplars.rs`); a summary
    /// takes none. `now` is the clock reading that ended the request: the exemplars' rate
    /// limit reads it instead of the clock. Inlined: a request records here once, and out of
    /// line the call cost about 37 instructions per request (`scripts/callgrind-layer.sh`).
    #[inline]
    pub(crate) fn record(
        &self,
        o: &Outcome,
        exclusion: Exclusion,
        resolved: Option<&FinishedSeries>,
        trace: Option<&TraceContext>,
        now: Tick,
    ) {
        if exclusion.records_defaults() {
            // Read where the cache keeps it: copied out first, it was moved about.
            let owned;
            let resolved = match resolved {
                Some(r) => r,
                None => {
                    owned = self.resolve(o);
                    &owned
                }
            };
            // SAFETY (the three `get`s): `resolved` came from `self`'s families, which live as
            // long as `self`; series are never freed before their family.
            match (resolved.duration, trace) {
                (Some(DurationRef::Histogram(h)), None) => unsafe { h.get() }.observe(o.seconds),
                (Some(DurationRef::Histogram(h)), Some(t)) => {
                    unsafe { h.get() }.observe_with_trace_at(o.seconds, *t, now)
                }
                (Some(DurationRef::Summary(s)), _) => unsafe { s.get() }.observe(o.seconds),
                (None, _) => {}
            }
            match (resolved.total, trace) {
                (Some(total), None) => unsafe { total.get() }.inc(),
                (Some(total), Some(t)) => unsafe { total.get() }.inc_with_trace_at(*t, now),
                (None, _) => {}
            }
            if o.panicked {
                self.count_exception(o);
            }
            if let (Some(f), Some(size)) = (&self.request_size, o.request_size()) {
                f.with_writer(|w| REQUEST_SIZE.write(self, o, w))
                    .observe(size as f64);
            }
            if o.response_size().is_some() {
                self.record_response_size(o);
            }
        }
        if exclusion.records_routes() {
            for (r, v) in self.routes.iter().zip(o.route_values()) {
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
            f.with_writer(|w| EXCEPTIONS.write(self, o, w)).inc();
        }
    }

    /// Records the response size, once it is known.
    pub(crate) fn record_response_size(&self, o: &Outcome) {
        if let (Some(f), Some(size)) = (&self.response_size, o.response_size()) {
            f.with_writer(|w| RESPONSE_SIZE.write(self, o, w))
                .observe(size as f64);
        }
    }

    /// Whether response sizes are recorded.
    #[inline]
    pub(crate) fn wants_response_size(&self) -> bool {
        self.response_size.is_some()
    }

    /// Whether request sizes are recorded.
    #[inline]
    pub(crate) fn wants_request_size(&self) -> bool {
        self.request_size.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::MetricsLayer;

    /// The configured parts, dropped through the slot's own `Drop`, are freed with the
    /// outcome (and with each clone of it).
    #[test]
    fn an_outcome_drops_its_configured_parts() {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut o = Outcome::new(MethodLabel::of(&http::Method::GET), PathValue::Static("/"));
        o.configured().request_read = Some(read.clone());
        let copy = o.clone();
        assert_eq!(std::sync::Arc::strong_count(&read), 3);
        drop(o);
        drop(copy);
        assert_eq!(std::sync::Arc::strong_count(&read), 1);
    }

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
