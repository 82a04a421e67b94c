//! [`Registry`]: the set of families and collectors one `/metrics` endpoint exposes.
//!
//! Registration is where declarations are checked: names, label names, kind-specific rules
//! (`_total`, `le`, buckets), and clashes with what is already registered. Two families clash
//! when any sample name one of them writes, in either format, could be written by the other
//! (a counter `jobs_total` and a gauge `jobs` are both the OpenMetrics family `jobs`; a
//! histogram `x` owns `x_bucket`, `x_count`, `x_sum`). The error names both declaration sites.
//!
//! A scrape visits every source in one deterministic order — families sorted by name — and
//! holds no lock that the hot path takes.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, origin};
use crate::family::{Family, SharedFamily};
use crate::labels::{LabelSet, is_valid_label_name, is_valid_metric_name};
use crate::metric::Metric;
use crate::model::{FamilyDesc, MetricFamily, MetricKind, Series, Value, Visitor};

/// Produces whole families at scrape time, from state that lives outside promtrack (a
/// connection pool, a cache, another metrics system).
///
/// ```
/// use promtrack::{Collector, Registry};
/// use promtrack::model::{MetricFamily, MetricKind, Series, Value};
///
/// struct Pool;
/// impl Collector for Pool {
///     fn collect(&self, out: &mut Vec<MetricFamily>) {
///         out.push(
///             MetricFamily::new("pool_connections", "Open connections.", MetricKind::Gauge)
///                 .with_series(Series::new(Value::Gauge(4.0)).label("state", "idle")),
///         );
///     }
/// }
///
/// let registry = Registry::new();
/// registry.register_collector(Pool);
/// let text = promtrack::expose::encode_to_string(&registry, promtrack::expose::Format::Text);
/// assert!(text.contains("pool_connections{state=\"idle\"} 4\n"));
/// ```
pub trait Collector: Send + Sync + 'static {
    /// Appends this collector's families. Called on every scrape; keep it quick.
    fn collect(&self, out: &mut Vec<MetricFamily>);
}

/// A registered family, with its type erased.
trait ErasedFamily: Send + Sync + 'static {
    fn desc(&self) -> FamilyDesc<'_>;
    fn visit(&self, v: &mut dyn Visitor, scratch: &mut Vec<u64>);
    fn overflow_hits(&self) -> u64;
    /// What registration compares besides name, kind and help.
    fn declaration(&self) -> Declaration<'_>;
    /// Whether `existing` has the same configuration; `None` if it is a family of another type.
    /// Registration's one kind-specific comparison.
    fn same_config(&self, existing: &dyn Any) -> Option<bool>;
    /// The kind-specific checks of the declaration (`Sealed::validate`), as a sentence.
    fn validate_kind(&self) -> Result<(), String>;
}

/// A family's declaration besides its name, kind and help, type-erased.
struct Declaration<'a> {
    label_names: &'a [Box<str>],
    config: &'a dyn std::fmt::Debug,
    max_series: usize,
}

impl<M: Metric> ErasedFamily for SharedFamily<M> {
    fn desc(&self) -> FamilyDesc<'_> {
        SharedFamily::desc(self)
    }
    fn visit(&self, v: &mut dyn Visitor, scratch: &mut Vec<u64>) {
        SharedFamily::visit(self, v, scratch)
    }
    fn overflow_hits(&self) -> u64 {
        SharedFamily::overflow_hits(self)
    }
    fn declaration(&self) -> Declaration<'_> {
        Declaration {
            label_names: &self.opts.label_names,
            config: &self.opts.config,
            max_series: self.opts.max_series,
        }
    }
    fn same_config(&self, existing: &dyn Any) -> Option<bool> {
        let old = existing.downcast_ref::<Self>()?;
        Some(old.opts.config == self.opts.config)
    }
    fn validate_kind(&self) -> Result<(), String> {
        M::validate(&self.opts.name, &self.opts.label_names, &self.opts.config)
    }
}

/// `None` if the `new` family's declaration is the `existing` one's (same type, help, label
/// names, configuration, series cap); else what differs, besides kind and help
/// (`kind_or_help_difference`).
fn difference(new: &dyn ErasedFamily, existing: &Registered) -> Option<String> {
    let (old, here) = (existing.family.declaration(), new.declaration());
    let Some(same_config) = new.same_config(existing.any.as_ref()) else {
        return Some(ALREADY_REGISTERED.to_owned());
    };
    Some(if old.label_names != here.label_names {
        differs(
            "the label names differ",
            &old.label_names,
            &here.label_names,
            "use the same labels",
        )
    } else if !same_config {
        differs(
            "the configuration differs",
            old.config,
            here.config,
            "declare it identically",
        )
    } else if old.max_series != here.max_series {
        format!(
            "the series cap differs ({} there, {} here); declare it identically",
            old.max_series, here.max_series
        )
    } else if existing.family.desc().help != new.desc().help {
        ALREADY_REGISTERED.to_owned()
    } else {
        return None;
    })
}

struct Registered {
    family: Arc<dyn ErasedFamily>,
    /// The same core, for handing out typed handles again (`get_or_register`).
    any: Arc<dyn Any + Send + Sync>,
    origin: &'static Location<'static>,
}

/// What [`Registry::add`] does with a family already registered under the same name.
#[derive(Clone, Copy, PartialEq)]
enum OnExisting {
    /// `register`: succeed only if it is this very family (registered twice), else a conflict.
    Refuse,
    /// `get_or_register`: hand out the existing family if its declaration is identical.
    ShareIdentical,
}

/// What [`Registry::add`] did.
enum Added {
    /// The family was registered.
    Inserted,
    /// A family was already registered under its name and passes [`OnExisting`]: this one.
    Existing(Arc<dyn Any + Send + Sync>),
}

#[derive(Default)]
struct State {
    families: BTreeMap<Box<str>, Registered>,
    /// Every sample and family name a registered source may write, to the family owning it.
    claimed: HashMap<String, (String, &'static Location<'static>)>,
    collectors: Vec<Arc<dyn Collector>>,
}

struct Inner {
    state: RwLock<State>,
    /// Whether promtrack's own `promtrack_*` families are always written (the default
    /// registry) or only once they are non-zero (user registries, so that tests comparing
    /// whole expositions see only their own families).
    always_self_metrics: bool,
    /// Families skipped at scrape time because a collector produced something invalid.
    collector_errors: AtomicU64,
    /// Whether a collector exposes this registry's own families instead (the default registry
    /// in multiprocess mode, see `store.rs`), so that they are not written twice.
    families_exposed_elsewhere: fn() -> bool,
}

/// A set of metric families and collectors to expose.
///
/// Most applications use the [`default_registry`], which the macros, the axum layer and
/// `metrics_router()` share. Create your own to keep tests that run in
/// one binary apart from each other.
///
/// ```
/// use promtrack::{Counter, Family, Registry};
///
/// let registry = Registry::new();
/// let jobs = Family::<(), Counter>::new("jobs_total", "Jobs run.");
/// registry.register(&jobs)?;
/// jobs.inc();
/// let text = promtrack::expose::encode_to_string(&registry, promtrack::expose::Format::Text);
/// assert!(text.contains("jobs_total 1\n"));
/// # Ok::<(), promtrack::Error>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        f.debug_struct("Registry")
            .field("families", &state.families.keys().collect::<Vec<_>>())
            .field("collectors", &state.collectors.len())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::build(false, || false)
    }

    fn build(always_self_metrics: bool, families_exposed_elsewhere: fn() -> bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                always_self_metrics,
                collector_errors: AtomicU64::new(0),
                families_exposed_elsewhere,
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a family. Fails if the declaration is invalid or if any registered source
    /// already claims one of its names — including an identical declaration: registering the
    /// same name twice is almost always a mistake (two handles, one exposed). To share one
    /// family between several declaration sites, use [`get_or_register`](Self::get_or_register).
    #[track_caller]
    pub fn register<L: LabelSet, M: Metric>(&self, family: &Family<L, M>) -> Result<(), Error> {
        let create = || family.create_unlabelled_series();
        let core = family.core.clone();
        self.add(
            core.clone(),
            core,
            family.core.origin,
            L::ARITY,
            OnExisting::Refuse,
            &create,
        )?;
        Ok(())
    }

    /// Returns the family already registered under this name if its declaration is identical
    /// (same kind, help, label names and buckets), or registers this one. Several declaration
    /// sites of one metric share its series this way; a differing declaration is an error that
    /// names both sites.
    #[track_caller]
    pub fn get_or_register<L: LabelSet, M: Metric>(
        &self,
        family: Family<L, M>,
    ) -> Result<Family<L, M>, Error> {
        let create = || family.create_unlabelled_series();
        let core = family.core.clone();
        match self.add(
            core.clone(),
            core,
            family.core.origin,
            L::ARITY,
            OnExisting::ShareIdentical,
            &create,
        )? {
            Added::Inserted => Ok(family),
            // `ShareIdentical` hands back only a family of the same type.
            Added::Existing(same) => Ok(same
                .downcast::<SharedFamily<M>>()
                .map_or(family, Family::from_core)),
        }
    }

    /// Registration, compiled once instead of once per (label set, kind) pair a program
    /// declares: `register` and `get_or_register` only erase the declaration's type (`family`
    /// and `any` are the same core; `arity` is its label set's `L::ARITY`). The declaration is
    /// checked first. `create_unlabelled_series` runs once the family is in, under the
    /// registry's lock, so that no scrape sees it without that series.
    #[inline(never)]
    fn add(
        &self,
        family: Arc<dyn ErasedFamily>,
        any: Arc<dyn Any + Send + Sync>,
        origin: &'static Location<'static>,
        arity: usize,
        on_existing: OnExisting,
        create_unlabelled_series: &dyn Fn(),
    ) -> Result<Added, Error> {
        let desc = family.desc();
        validate_names(desc.name, family.declaration().label_names, arity, origin)?;
        family
            .validate_kind()
            .map_err(|reason| invalid_metric(desc.name, origin, reason))?;
        let mut state = self.write();
        if let Some(existing) = state.families.get(desc.name) {
            let difference = match on_existing {
                OnExisting::Refuse if Arc::ptr_eq(&existing.any, &any) => None,
                // Identical, but `register` wants a family of its own.
                OnExisting::Refuse => Some(
                    difference(family.as_ref(), existing)
                        .unwrap_or_else(|| ALREADY_REGISTERED.to_owned()),
                ),
                OnExisting::ShareIdentical => difference(family.as_ref(), existing),
            };
            let Some(difference) = difference else {
                return Ok(Added::Existing(existing.any.clone()));
            };
            // Same name, different declaration: say exactly what differs.
            let reason =
                kind_or_help_difference(existing, desc.kind, desc.help).unwrap_or(difference);
            return Err(conflict(existing, desc.name, origin, reason));
        }
        claim(&mut state, desc.name, desc.kind, origin)?;
        state.families.insert(
            desc.name.into(),
            Registered {
                family: family.clone(),
                any,
                origin,
            },
        );
        create_unlabelled_series();
        Ok(Added::Inserted)
    }

    /// Adds a collector, called on every scrape.
    pub fn register_collector(&self, collector: impl Collector) {
        self.write().collectors.push(Arc::new(collector));
    }

    /// Registers a gauge whose value `f` computes at scrape time (a pool size, a queue depth).
    ///
    /// ```
    /// let registry = promtrack::Registry::new();
    /// registry.register_gauge_fn("workers_idle", "Idle workers.", || 3.0)?;
    /// let text = promtrack::expose::encode_to_string(&registry, promtrack::expose::Format::Text);
    /// assert!(text.contains("workers_idle 3\n"));
    /// # Ok::<(), promtrack::Error>(())
    /// ```
    #[track_caller]
    pub fn register_gauge_fn(
        &self,
        name: &str,
        help: &str,
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Result<(), Error> {
        let location = Location::caller();
        if !is_valid_metric_name(name) {
            return Err(invalid_name(name, location));
        }
        let mut state = self.write();
        claim(&mut state, name, MetricKind::Gauge, location)?;
        let (name, help) = (name.to_owned(), help.to_owned());
        state.collectors.push(Arc::new(GaugeFn {
            family: MetricFamily::new(name, help, MetricKind::Gauge),
            f,
        }));
        Ok(())
    }

    /// Visits every family: registered ones, collectors' and promtrack's own, sorted by name.
    /// `include` filters by family name (the `name[]=` query parameter).
    pub fn visit(&self, v: &mut dyn Visitor, include: &dyn Fn(&FamilyDesc<'_>) -> bool) {
        let mut owned = Vec::new();
        let collectors: Vec<Arc<dyn Collector>> = self.read().collectors.clone();
        // Collectors run without our lock held: they may register things themselves.
        for c in &collectors {
            c.collect(&mut owned);
        }
        let state = self.read();
        // In multiprocess mode the default registry's own families are exposed from the files
        // (this process's among them), so they are not visited here as well.
        let from_files = (self.inner.families_exposed_elsewhere)();
        owned.retain(|f| {
            let ok =
                check_collected(f) && (from_files || !state.families.contains_key(f.name.as_str()));
            if !ok {
                self.inner.collector_errors.fetch_add(1, Ordering::Relaxed);
            }
            ok
        });
        crate::sort::sort_by(&mut owned, |a, b| a.name.cmp(&b.name));
        owned.dedup_by(|b, a| {
            let dup = a.name == b.name;
            if dup {
                self.inner.collector_errors.fetch_add(1, Ordering::Relaxed);
            }
            dup
        });
        // Last, so that they include what this scrape found wrong.
        self.self_metrics(&state, &mut owned);
        crate::sort::sort_by(&mut owned, |a, b| a.name.cmp(&b.name));

        let mut scratch = Vec::new();
        let mut registered = state.families.values().filter(|_| !from_files).peekable();
        let mut owned = owned.iter().peekable();
        loop {
            let take_registered = match (registered.peek(), owned.peek()) {
                (Some(r), Some(o)) => r.family.desc().name < o.name.as_str(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_registered {
                let r = registered.next().expect("peeked");
                if include(&r.family.desc()) {
                    r.family.visit(v, &mut scratch);
                }
            } else {
                let o = owned.next().expect("peeked");
                let desc = FamilyDesc {
                    name: &o.name,
                    help: &o.help,
                    kind: o.kind,
                };
                if include(&desc) {
                    o.visit(v);
                }
            }
        }
    }

    /// promtrack's own families: written always by the default registry, and by others only
    /// once something happened in them.
    fn self_metrics(&self, state: &State, out: &mut Vec<MetricFamily>) {
        let always = self.inner.always_self_metrics;
        let mut overflow = MetricFamily::new(
            "promtrack_cardinality_overflow_total",
            "Lookups of new label sets folded into a family's overflow series because the family reached its series cap.",
            MetricKind::Counter,
        );
        for (name, r) in &state.families {
            let hits = r.family.overflow_hits();
            if hits > 0 {
                overflow.series.push(
                    Series::new(Value::Counter(hits as f64)).label("family", name.to_string()),
                );
            }
        }
        if always || !overflow.series.is_empty() {
            out.push(overflow);
        }
        // The count is process-wide, so only the process-wide registry shows it: a test's own
        // registry must not see another test's invalid updates.
        if always {
            let invalid = crate::metric::invalid_updates();
            out.push(
                MetricFamily::new(
                    "promtrack_invalid_updates_total",
                    "Updates dropped because their value was invalid (negative, NaN or infinite counter increments, NaN observations).",
                    MetricKind::Counter,
                )
                .with_series(Series::new(Value::Counter(invalid as f64))),
            );
            // Process-wide too: the scrapes this process answered, per negotiated format —
            // unless a multiprocess directory's collector already wrote them.
            if !out.iter().any(|f| f.name == "promtrack_scrapes_total") {
                out.push(scrapes_family());
            }
        }
        let errors = self.inner.collector_errors.load(Ordering::Relaxed);
        if always || errors > 0 {
            out.push(
                MetricFamily::new(
                    "promtrack_collector_errors_total",
                    "Families a collector produced that were skipped: an invalid name, a value of the wrong kind, or a name another source already uses.",
                    MetricKind::Counter,
                )
                .with_series(Series::new(Value::Counter(errors as f64))),
            );
        }
    }
}

/// The registry shared by the macros, the axum layer and `metrics_router()`.
///
/// It always exposes promtrack's own `promtrack_*` families and, with the `process` feature on
/// Linux, the standard `process_*` metrics.
pub fn default_registry() -> &'static Registry {
    static DEFAULT: OnceLock<Registry> = OnceLock::new();
    DEFAULT.get_or_init(|| {
        // What it collects besides its families, and when it exposes them from files instead,
        // is decided by the storage seam.
        let registry = Registry::build(true, crate::store::default_registry_reads_files);
        for collect in crate::store::default_registry_sources() {
            registry.register_collector(SeamCollector(collect));
        }
        // Then every declaration the linker collected: the first scrape shows them all.
        for declaration in DECLARATIONS {
            declaration.register(&registry);
        }
        registry
    })
}

/// Something the default registry registers when it is created: a declaration the macros
/// generate (`declare.rs` implements it). The default registry owns this extension point so
/// that it names no module above it; the declarations plug in.
#[doc(hidden)]
pub trait Declared: Sync {
    fn register(&'static self, registry: &Registry);
}

/// Every declaration in the program, collected by the linker; the macros' generated code
/// names it as `__private::DECLARATIONS`.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static DECLARATIONS: [&'static dyn Declared];

/// A source of the default registry that `store.rs` provides.
struct SeamCollector(crate::store::Collect);

impl Collector for SeamCollector {
    fn collect(&self, out: &mut Vec<MetricFamily>) {
        (self.0)(out);
    }
}

struct GaugeFn<F> {
    family: MetricFamily,
    f: F,
}

impl<F: Fn() -> f64 + Send + Sync + 'static> Collector for GaugeFn<F> {
    fn collect(&self, out: &mut Vec<MetricFamily>) {
        let mut family = self.family.clone();
        family.series.push(Series::new(Value::Gauge((self.f)())));
        out.push(family);
    }
}

fn invalid_name(name: &str, location: &Location<'_>) -> Error {
    Error::InvalidMetric {
        name: name.into(),
        origin: origin(location),
        reason:
            "a metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*; replace other characters with `_`"
                .into(),
    }
}

/// The checks every kind shares: the metric name, the label names, their number. `arity` is
/// `L::ARITY`.
fn validate_names(
    name: &str,
    label_names: &[Box<str>],
    arity: usize,
    location: &'static Location<'static>,
) -> Result<(), Error> {
    if !is_valid_metric_name(name) {
        return Err(invalid_name(name, location));
    }
    let fail = |reason: String| invalid_metric(name, location, reason);
    for (i, label) in label_names.iter().enumerate() {
        if !is_valid_label_name(label) {
            return Err(fail(format!(
                "`{label}` is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with `__`"
            )));
        }
        if label_names[..i].contains(label) {
            return Err(fail(format!(
                "the label `{label}` is listed twice; remove one"
            )));
        }
    }
    // `usize::MAX`: a label set whose names are only known at run time (the axum layer's, with
    // user-added labels); each lookup's arity is checked instead (a mismatch goes to overflow).
    if arity != usize::MAX && label_names.len() != arity {
        return Err(fail(format!(
            "{} label names were given for label sets of {} values; give one name per value with `.label_names([..])`",
            label_names.len(),
            arity
        )));
    }
    Ok(())
}

fn invalid_metric(name: &str, location: &Location<'_>, reason: String) -> Error {
    Error::InvalidMetric {
        name: name.into(),
        origin: origin(location),
        reason,
    }
}

/// Every name a family of this kind and name may write, in either format.
pub(crate) fn claimed_names(name: &str, kind: MetricKind) -> Vec<String> {
    let base = kind.base_name(name);
    std::iter::once(base.to_owned())
        .chain(std::iter::once(name.to_owned()))
        .chain(kind.sample_suffixes().iter().map(|s| format!("{base}{s}")))
        .collect()
}

fn claim(
    state: &mut State,
    name: &str,
    kind: MetricKind,
    location: &'static Location<'static>,
) -> Result<(), Error> {
    let names = claimed_names(name, kind);
    for n in &names {
        if let Some((owner, owner_location)) = state.claimed.get(n) {
            let reason = if owner == name {
                ALREADY_REGISTERED.to_owned()
            } else {
                format!("both would write samples named `{n}`; rename one of them")
            };
            return Err(Error::Conflict {
                name: name.into(),
                origin: origin(location),
                existing: owner.clone(),
                existing_origin: origin(owner_location),
                reason,
            });
        }
    }
    for n in names {
        state.claimed.insert(n, (name.to_owned(), location));
    }
    Ok(())
}

/// A declaration of `name` at `location` clashing with the `existing` one of the same name.
#[inline(never)]
fn conflict(existing: &Registered, name: &str, location: &Location<'_>, reason: String) -> Error {
    Error::Conflict {
        name: name.to_owned(),
        origin: origin(location),
        existing: name.to_owned(),
        existing_origin: origin(existing.origin),
        reason,
    }
}

const ALREADY_REGISTERED: &str = "the name is already registered; register a family once and share the handle, or use `get_or_register` for identical declarations";

/// How a declaration of `kind` with `help` differs from the `existing` one in kind or help.
#[inline(never)]
fn kind_or_help_difference(existing: &Registered, kind: MetricKind, help: &str) -> Option<String> {
    let desc = existing.family.desc();
    if desc.kind != kind {
        return Some(format!(
            "it is declared as a {:?} there and as a {:?} here; use one kind per name",
            desc.kind, kind
        ));
    }
    (desc.help != help).then(|| {
        format!(
            "the help text differs (\"{}\" there, \"{help}\" here); use the same text",
            desc.help
        )
    })
}

/// `"{what} ({there:?} there, {here:?} here); {fix}"`.
fn differs(
    what: &str,
    there: &dyn std::fmt::Debug,
    here: &dyn std::fmt::Debug,
    fix: &str,
) -> String {
    format!("{what} ({there:?} there, {here:?} here); {fix}")
}

/// Whether a collector's family can be written as is.
fn check_collected(f: &MetricFamily) -> bool {
    is_valid_metric_name(&f.name)
        && f.series.iter().all(|s| {
            s.value.kind() == f.kind && s.labels.iter().all(|(n, _)| is_valid_label_name(n))
        })
        && f.kind
            .name_suffix()
            .is_none_or(|suffix| f.name.ends_with(suffix))
}

/// The `format` label values of `promtrack_scrapes_total`: one series for each exposition format
/// this build can write, in exposition order.
const SCRAPE_FORMATS: &[&str] = &[
    "openmetrics",
    #[cfg(feature = "protobuf")]
    "protobuf",
    "text",
];

/// Scrapes answered in this process, per entry of [`SCRAPE_FORMATS`]. The count lives here,
/// below the encoders, so that the encoder answering a scrape counts it (`expose::Scrape`) and
/// the registry exposes it without importing the encoders that read it.
static SCRAPES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Counts one scrape answered in the format whose `format` label is `label`.
pub(crate) fn count_scrape(label: &str) {
    if let Some(i) = SCRAPE_FORMATS.iter().position(|&f| f == label) {
        SCRAPES[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// `promtrack_scrapes_total{format}`: the scrapes this process answered, per negotiated format,
/// one series per format this build can write (zero until one is asked for).
pub(crate) fn scrapes_family() -> MetricFamily {
    let mut family = MetricFamily::new(
        "promtrack_scrapes_total",
        "Scrapes answered by this process, by the exposition format negotiated from their Accept header.",
        MetricKind::Counter,
    );
    for (format, count) in SCRAPE_FORMATS.iter().zip(&SCRAPES) {
        let n = count.load(Ordering::Relaxed);
        family
            .series
            .push(Series::new(Value::Counter(n as f64)).label("format", *format));
    }
    family
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::{Format, encode_to_string};
    use crate::{Counter, Gauge, Histogram};

    #[test]
    fn registering_twice_names_both_places() {
        let r = Registry::new();
        let a = Family::<(), Counter>::new("jobs_total", "Jobs.");
        let b = Family::<(), Gauge>::new("jobs_total", "Jobs.");
        r.register(&a).unwrap();
        let err = r.register(&b).unwrap_err().to_string();
        assert!(err.contains("registry.rs"), "{err}");
        assert!(
            err.contains("Counter there") && err.contains("Gauge here"),
            "{err}"
        );
        // Registering the very same family again is harmless.
        r.register(&a).unwrap();
    }

    #[test]
    fn sample_name_clashes_are_found_across_kinds() {
        let r = Registry::new();
        r.register(&Family::<(), Histogram>::new("latency", "h"))
            .unwrap();
        let err = r
            .register(&Family::<(), Gauge>::new("latency_count", "h"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("samples named `latency_count`"), "{err}");
        r.register(&Family::<(), Counter>::new("jobs_total", "h"))
            .unwrap();
        // In OpenMetrics both would be the family `jobs`.
        assert!(r.register(&Family::<(), Gauge>::new("jobs", "h")).is_err());
    }

    #[test]
    fn get_or_register_shares_identical_declarations_only() {
        let r = Registry::new();
        let a = r
            .get_or_register(
                Family::<[&str; 1], Counter>::new("hits_total", "Hits.").label_names(["k"]),
            )
            .unwrap();
        let b = r
            .get_or_register(
                Family::<[&str; 1], Counter>::new("hits_total", "Hits.").label_names(["k"]),
            )
            .unwrap();
        a.with(&["x"]).inc();
        assert_eq!(b.with(&["x"]).get(), 1.0);
        let err = r
            .get_or_register(
                Family::<[&str; 1], Counter>::new("hits_total", "Hits.").label_names(["j"]),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("label names differ"), "{err}");
        let err = r
            .get_or_register(
                Family::<[&str; 1], Counter>::new("hits_total", "Other.").label_names(["k"]),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("help text differs"), "{err}");
    }

    #[test]
    fn invalid_declarations_say_what_to_do() {
        let r = Registry::new();
        let cases: Vec<(Result<(), Error>, &str)> = vec![
            (
                r.register(&Family::<(), Counter>::new("jobs", "h")),
                "jobs_total",
            ),
            (
                r.register(&Family::<(), Gauge>::new("bad-name", "h")),
                "[a-zA-Z_:]",
            ),
            (
                r.register(&Family::<[&str; 1], Gauge>::new("g", "h").label_names(["__x"])),
                "not a valid label name",
            ),
            (
                r.register(&Family::<[&str; 2], Gauge>::new("g", "h").label_names(["a", "a"])),
                "listed twice",
            ),
            (
                r.register(&Family::<[&str; 2], Gauge>::new("g", "h").label_names(["a"])),
                "one name per value",
            ),
            (
                r.register(&Family::<[&str; 1], Histogram>::new("h", "h").label_names(["le"])),
                "`le` is reserved",
            ),
            (
                r.register(&Family::<(), Histogram>::new("h", "h").buckets(&[1.0, 0.5])),
                "increase strictly",
            ),
        ];
        for (result, needle) in cases {
            let err = result.unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }

    #[test]
    fn registries_are_independent() {
        let (r1, r2) = (Registry::new(), Registry::new());
        let a = Family::<(), Counter>::new("a_total", "h");
        let b = Family::<(), Counter>::new("a_total", "h");
        r1.register(&a).unwrap();
        r2.register(&b).unwrap();
        a.inc();
        assert!(encode_to_string(&r1, Format::Text).contains("a_total 1\n"));
        assert!(encode_to_string(&r2, Format::Text).contains("a_total 0\n"));
    }

    #[test]
    fn collectors_and_families_come_out_sorted_and_deduplicated() {
        struct C;
        impl Collector for C {
            fn collect(&self, out: &mut Vec<MetricFamily>) {
                out.push(MetricFamily::new("b", "from collector", MetricKind::Gauge));
                out.push(MetricFamily::new("d", "h", MetricKind::Gauge));
                out.push(MetricFamily::new("b", "again", MetricKind::Gauge));
                // Wrong kind for its value: skipped.
                out.push(
                    MetricFamily::new("e", "h", MetricKind::Gauge)
                        .with_series(Series::new(Value::Counter(1.0))),
                );
            }
        }
        let r = Registry::new();
        r.register(&Family::<(), Gauge>::new("c", "h")).unwrap();
        r.register(&Family::<(), Gauge>::new("a", "h")).unwrap();
        r.register_collector(C);
        let text = encode_to_string(&r, Format::Text);
        let order: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            order,
            ["a", "b", "c", "d", "promtrack_collector_errors_total"]
        );
        assert!(
            text.contains("promtrack_collector_errors_total 2\n"),
            "{text}"
        );
    }

    #[test]
    fn overflow_is_counted_per_family() {
        let r = Registry::new();
        let f = Family::<[String; 1], Counter>::new("u_total", "h")
            .label_names(["user"])
            .max_series(2);
        r.register(&f).unwrap();
        for i in 0..5 {
            f.with(&[i.to_string()]).inc();
        }
        let text = encode_to_string(&r, Format::Text);
        assert!(
            text.contains("promtrack_cardinality_overflow_total{family=\"u_total\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("u_total{user=\"__overflow__\"} 3\n"),
            "{text}"
        );
    }
}
