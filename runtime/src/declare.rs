//! Metrics declared by the macros: the statics they generate, their registration with the
//! [default registry](crate::default_registry) at start-up, and [`check_declarations`].
//!
//! Every declaration is a `static` in the user's code: a [`Site`] for a handler attribute
//! (`#[counter]`, `#[histogram]`, …), a [`LazyFamily`] for [`family!`](crate::family). Each is
//! also listed, at link time, in a distributed slice; when the default registry is created it
//! registers every listed declaration, so the first scrape shows every family with HELP and
//! TYPE, and every series whose labels are all static at 0.
//!
//! Registration on first use is the fallback, and always correct: a declaration whose link-time
//! entry is missing (a target without link-section support) registers itself the first time
//! the code that uses it runs.
//!
//! Invariants:
//! - A declaration registers at most once (a `OnceLock`), with the registry it was first handed;
//!   identical declarations at several sites share one family through
//!   [`Registry::get_or_register`].
//! - A declaration that conflicts with another one (same name, different kind, labels, help or
//!   buckets) never panics where it is used: it is recorded, reported once on stderr, and records
//!   into a family that no registry exposes. [`check_declarations`] — called by
//!   `metrics_router()` — turns recorded conflicts into a start-up panic.
//! - The hot path of a site whose labels are all static is one acquire load of a cached pointer
//!   (a plain load on x86-64) before the metric's own atomic update.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::error::Error;
use crate::family::{DEFAULT_MAX_SERIES, Family, Opts};
use crate::labels::LabelSet;
use crate::metric::{
    Buckets, Counter, Gauge, GaugeMode, Histogram, Info, Metric, NativeConfig, Summary,
};
use crate::registry::{Declared, Registry, default_registry};

/// Everything a declaration states about its family, known at compile time.
#[doc(hidden)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    /// Label names; empty for a [`LazyFamily`] of a derived label set (the set knows them).
    pub label_names: &'static [&'static str],
    /// Histogram bucket bounds; `None` for the defaults.
    pub buckets: Option<&'static [f64]>,
    /// A histogram's native settings (`native(..)`); `None`: classic only.
    pub native: Option<NativeSpec>,
    /// Gauge aggregation in multiprocess mode.
    pub mode: GaugeMode,
    /// Where the macro was invoked: reported in conflicts.
    pub location: &'static Location<'static>,
}

/// A histogram's `native(..)` as the macro checked it; `None` fields take
/// [`NativeConfig`]'s defaults.
#[doc(hidden)]
pub struct NativeSpec {
    pub bucket_factor: Option<f64>,
    pub max_buckets: Option<u32>,
    pub zero_threshold: Option<f64>,
    pub max_zero_threshold: Option<f64>,
    pub min_reset_nanos: Option<u64>,
    /// Whether the declaration lists classic buckets too.
    pub classic: bool,
}

impl NativeSpec {
    fn config(&self) -> NativeConfig {
        let mut c = NativeConfig::default().classic(self.classic);
        if let Some(f) = self.bucket_factor {
            c = c.bucket_factor(f);
        }
        if let Some(n) = self.max_buckets {
            c = c.max_buckets(n);
        }
        if let Some(t) = self.zero_threshold {
            c = c.zero_threshold(t);
        }
        if let Some(t) = self.max_zero_threshold {
            c = c.max_zero_threshold(t);
        }
        if let Some(n) = self.min_reset_nanos {
            c = c.min_reset(std::time::Duration::from_nanos(n));
        }
        c
    }
}

/// Builds a metric type's per-family configuration from a [`Spec`].
#[doc(hidden)]
pub trait Configure: Metric {
    fn config(spec: &Spec) -> Self::Config;
}

impl Configure for Counter {
    fn config(_: &Spec) {}
}
impl Configure for Summary {
    fn config(_: &Spec) {}
}
impl Configure for Info {
    fn config(_: &Spec) {}
}
impl Configure for Gauge {
    fn config(spec: &Spec) -> GaugeMode {
        spec.mode
    }
}
impl Configure for Histogram {
    fn config(spec: &Spec) -> Buckets {
        let mut config = Buckets::default();
        if let Some(b) = spec.buckets {
            config.bounds = b.into();
        }
        config.native = spec.native.as_ref().map(NativeSpec::config);
        config
    }
}

/// Declarations refused by the registry: conflicts and invalid declarations.
static REFUSED: Mutex<Vec<Refusal>> = Mutex::new(Vec::new());
/// How many declarations were refused (also those reached first inside a request).
static REFUSED_COUNT: AtomicU64 = AtomicU64::new(0);

struct Refusal {
    message: String,
    error: Error,
}

/// Registers `family` or, if the registry refuses it, records why and hands back the family
/// unregistered: what it records then goes nowhere, but the code using it goes on.
fn register_or_record<L: LabelSet, M: Metric>(
    registry: &Registry,
    family: Family<L, M>,
) -> Family<L, M> {
    match registry.get_or_register(family.clone()) {
        Ok(registered) => registered,
        Err(error) => {
            REFUSED_COUNT.fetch_add(1, Ordering::Relaxed);
            let message = error.to_string();
            // Once per declaration: its `OnceLock` runs this once.
            eprintln!("promtrack: metric declaration ignored (it records nothing): {message}");
            REFUSED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Refusal { message, error });
            family
        }
    }
}

/// Checks that every metric the macros declared could be registered with the default
/// registry: no two declarations of one name differ in kind, labels, help or buckets.
///
/// Creates the default registry if needed (which registers every declaration). Returns the
/// first conflict, whose message names both declaration sites (file and line).
/// `metrics_router()` calls this and panics on an error, so a conflict
/// stops the service at start-up instead of silently dropping a metric.
///
/// ```
/// promtrack::check_declarations().expect("metric declarations agree");
/// ```
pub fn check_declarations() -> Result<(), Error> {
    default_registry();
    let refused = REFUSED.lock().unwrap_or_else(PoisonError::into_inner);
    match refused.first() {
        None => Ok(()),
        Some(first) => Err(copy_error(&first.error, &first.message)),
    }
}

/// How many macro declarations the registry refused so far (see [`check_declarations`]).
#[doc(hidden)]
pub fn refused_declarations() -> u64 {
    REFUSED_COUNT.load(Ordering::Relaxed)
}

fn copy_error(error: &Error, message: &str) -> Error {
    match error {
        Error::Conflict {
            name,
            origin,
            existing,
            existing_origin,
            reason,
        } => Error::Conflict {
            name: name.clone(),
            origin: origin.clone(),
            existing: existing.clone(),
            existing_origin: existing_origin.clone(),
            reason: reason.clone(),
        },
        Error::InvalidMetric {
            name,
            origin,
            reason,
        } => Error::InvalidMetric {
            name: name.clone(),
            origin: origin.clone(),
            reason: reason.clone(),
        },
        // Registration only fails with the two above; keep the message for anything else.
        other => Error::InvalidMetric {
            name: String::new(),
            origin: String::new(),
            reason: format!("{other}: {message}"),
        },
    }
}

/// The family and cached series of one handler attribute. `N` is its number of labels.
#[doc(hidden)]
pub struct Site<M: Metric, const N: usize> {
    spec: Spec,
    /// The label values when every one is a literal: that series is created at registration.
    fixed: Option<[&'static str; N]>,
    family: OnceLock<Family<[&'static str; N], M>>,
    /// The series for `fixed`, once resolved.
    series: AtomicPtr<M>,
}

impl<M: Configure, const N: usize> Site<M, N> {
    /// A site; `const` so that it can be a `static` in generated code.
    pub const fn new(spec: Spec, fixed: Option<[&'static str; N]>) -> Self {
        Self {
            spec,
            fixed,
            family: OnceLock::new(),
            series: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The site's family, registered with the default registry on first use.
    #[inline]
    pub fn family(&'static self) -> &'static Family<[&'static str; N], M> {
        match self.family.get() {
            Some(family) => family,
            None => self.family_slow(),
        }
    }

    #[cold]
    #[inline(never)]
    fn family_slow(&'static self) -> &'static Family<[&'static str; N], M> {
        // First the default registry (whose creation registers every link-time declaration,
        // this one included): initialising our `OnceLock` inside its creation would deadlock.
        let registry = default_registry();
        self.family.get_or_init(|| self.build(registry))
    }

    fn build(&self, registry: &Registry) -> Family<[&'static str; N], M> {
        let family = Family::<[&'static str; N], M>::from_opts(
            Opts {
                name: self.spec.name.into(),
                help: self.spec.help.into(),
                label_names: self.spec.label_names.iter().map(|&n| n.into()).collect(),
                config: M::config(&self.spec),
                max_series: DEFAULT_MAX_SERIES,
            },
            self.spec.location,
        );
        let family = register_or_record(registry, family);
        if let Some(values) = &self.fixed {
            // Created now, at zero, so the first scrape shows it.
            let series: *const M = family.with(values);
            self.series.store(series.cast_mut(), Ordering::Release);
        }
        family
    }

    /// The series of a site whose labels are all literals.
    #[inline]
    pub fn series(&'static self) -> &'static M {
        let p = self.series.load(Ordering::Acquire);
        if p.is_null() {
            return self.series_slow();
        }
        // SAFETY: `p` was stored from a `&M` into a family held by this `'static` site, whose
        // series are never freed while the family lives; the acquire load pairs with the
        // release store that published it.
        unsafe { &*p }
    }

    #[cold]
    #[inline(never)]
    fn series_slow(&'static self) -> &'static M {
        let family = self.family();
        match &self.fixed {
            Some(values) => family.with(values),
            // Generated code calls `series` only for sites with fixed values; be total anyway.
            None => family.with_writer(|_| {}),
        }
    }
}

impl<M: Configure, const N: usize> Declared for Site<M, N> {
    fn register(&'static self, registry: &Registry) {
        self.family.get_or_init(|| self.build(registry));
    }
}

/// A metric family declared with [`family!`](crate::family): a `static` that registers itself
/// with the [default registry](crate::default_registry) at start-up and dereferences to a
/// [`Family`].
///
/// ```
/// use promtrack::{Counter, Family, LabelSet, LabelValue};
///
/// #[derive(LabelValue)]
/// enum Queue { Email, Billing }
///
/// #[derive(LabelSet)]
/// struct Job { queue: Queue, retried: bool }
///
/// promtrack::family! {
///     /// Jobs run, by queue.
///     static JOBS: Family<Job, Counter> = ("doc_jobs_total", "Jobs run.");
/// }
///
/// JOBS.with(&Job { queue: Queue::Email, retried: false }).inc();
/// assert_eq!(JOBS.with(&Job { queue: Queue::Email, retried: false }).get(), 1.0);
/// ```
pub struct LazyFamily<L, M: Metric> {
    spec: Spec,
    family: OnceLock<Family<L, M>>,
    _labels: PhantomData<fn(&L)>,
}

impl<L: LabelSet, M: Configure> LazyFamily<L, M> {
    /// Generated by [`family!`](crate::family); use that.
    #[doc(hidden)]
    pub const fn new(spec: Spec) -> Self {
        Self {
            spec,
            family: OnceLock::new(),
            _labels: PhantomData,
        }
    }

    fn build(&self, registry: &Registry) -> Family<L, M> {
        let label_names = if self.spec.label_names.is_empty() {
            L::NAMES
        } else {
            self.spec.label_names
        };
        let family = Family::from_opts(
            Opts {
                name: self.spec.name.into(),
                help: self.spec.help.into(),
                label_names: label_names.iter().map(|&n| n.into()).collect(),
                config: M::config(&self.spec),
                max_series: DEFAULT_MAX_SERIES,
            },
            self.spec.location,
        );
        register_or_record(registry, family)
    }
}

impl<L: LabelSet, M: Configure> std::ops::Deref for LazyFamily<L, M> {
    type Target = Family<L, M>;

    fn deref(&self) -> &Family<L, M> {
        // First the default registry (whose creation registers every link-time declaration,
        // this one included): initialising our `OnceLock` inside its creation would deadlock.
        match self.family.get() {
            Some(family) => family,
            None => {
                let registry = default_registry();
                self.family.get_or_init(|| self.build(registry))
            }
        }
    }
}

impl<L: LabelSet + 'static, M: Configure> Declared for LazyFamily<L, M> {
    fn register(&'static self, registry: &Registry) {
        self.family.get_or_init(|| self.build(registry));
    }
}

impl<L, M: Metric> std::fmt::Debug for LazyFamily<L, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyFamily")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SITE: Site<Counter, 1> = Site::new(
        Spec {
            name: "declare_test_site_calls_total",
            help: "Calls.",
            label_names: &["kind"],
            buckets: None,
            native: None,
            mode: GaugeMode::All,
            location: Location::caller(),
        },
        Some(["fixed"]),
    );

    /// Registering a site publishes its fixed series; `series()` on other threads then reads
    /// that pointer (the one `unsafe` here) and reaches the very series the family holds.
    #[test]
    fn a_registered_site_hands_out_its_family_series_on_every_thread() {
        let registry = Registry::new();
        SITE.register(&registry);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..10 {
                        SITE.series().inc();
                    }
                });
            }
        });
        let family = SITE.family.get().expect("registered");
        assert!(std::ptr::eq(SITE.series(), family.with(&["fixed"])));
        assert_eq!(family.with(&["fixed"]).get(), 20.0);
    }

    /// The attribute's `native(..)` settings override the defaults one by one; `buckets` too
    /// keeps the classic buckets.
    #[test]
    fn native_specs_become_configs() {
        let spec = NativeSpec {
            bucket_factor: Some(2.0),
            max_buckets: None,
            zero_threshold: Some(0.0),
            max_zero_threshold: None,
            min_reset_nanos: Some(3_600_000_000_000),
            classic: true,
        };
        let want = NativeConfig::default()
            .bucket_factor(2.0)
            .zero_threshold(0.0)
            .min_reset(std::time::Duration::from_secs(3600))
            .classic(true);
        assert_eq!(spec.config(), want);
        assert_eq!(want.schema(), 0);
    }
}
