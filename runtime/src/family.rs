//! [`Family`]: a named metric over a label set, and the series it holds.
//!
//! A family owns its series for its whole life: series are created on first use of a label set
//! and never removed, so a lookup can hand out a plain `&M` with no reference count. Lookups go,
//! fastest first:
//! 1. a label set of fixed cardinality (enums, bools, `()`) indexes a dense array of pointers;
//! 2. otherwise the values are written into a stack buffer, hashed once, and found in an
//!    insert-only table read without locks (see `table.rs`);
//! 3. only a label set never seen before takes the family's mutex to create its series.
//!
//! Steps 1 and 2 (a hit) are inlined into the caller, with the query's `write_values`, so the
//! key writer's counters and hash stay in registers: out of line, a hit took 2.7 times as long
//! (BENCHMARKS.md, issue 12.1). Step 3 is a call, out of line and cold. Each call site of
//! [`Family::with`] so carries its own copy of the hit path, about 1.2 KB of code for two
//! string values.
//!
//! Memory is bounded: past `max_series` distinct label sets (10 000 by default), new label sets
//! share one overflow series whose every label value is [`OVERFLOW_LABEL_VALUE`], and each such
//! lookup is counted in `promtrack_cardinality_overflow_total{family="…"}`.

mod record;
mod series;
mod table;

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::panic::Location;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::key::{KeyRef, KeyWords};
use crate::labels::{KeyWriter, LabelQuery, LabelSet, WrittenKey};
use crate::metric::{FamilyDecl, Histogram, Metric};
use crate::model::{FamilyDesc, Labels, Visitor};
use record::{Header, Prefix, Record, Shape};
use series::{Miss, Series};
use table::Table;

/// The default cap on distinct label sets per family.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// The value of every label of a family's overflow series (see the module docs).
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

/// Label sets with at most this many possible values get a dense array instead of a table.
const MAX_DENSE: usize = 4096;

/// A metric family: a name, help text, label names, and one series per distinct label set.
///
/// `Family` is a cheap handle (`Clone` shares the same series). Build it, optionally configure
/// it, register it with a [`Registry`](crate::Registry), then look series up with
/// [`with`](Self::with). For a family without labels (`L = ()`), the family dereferences to its
/// one series.
///
/// ```
/// use promtrack::{Counter, Family, Histogram, Registry};
///
/// let registry = Registry::new();
/// let requests = Family::<[&str; 2], Counter>::new("http_requests_total", "Requests.")
///     .label_names(["method", "status"]);
/// let latency = Family::<(), Histogram>::new("http_latency_seconds", "Latency.")
///     .buckets(&[0.01, 0.1, 1.0]);
/// registry.register(&requests)?;
/// registry.register(&latency)?;
///
/// requests.with(&["GET", "200"]).inc();
/// latency.observe(0.042);
/// # Ok::<(), promtrack::Error>(())
/// ```
pub struct Family<L, M: Metric> {
    pub(crate) core: Arc<SharedFamily<M>>,
    /// Covariant in `L`: a family stores no `L`, only keys of the bytes its values write, so a
    /// `Family<[&'static str; 2], _>` may serve as a `Family<[&'a str; 2], _>` and be queried
    /// with a request's `&str` (see [`LabelQuery`]). `fn() -> L` is `Send + Sync` for any `L`.
    _labels: PhantomData<fn() -> L>,
}

impl<L, M: Metric> Clone for Family<L, M> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            _labels: PhantomData,
        }
    }
}

impl<L, M: Metric> std::fmt::Debug for Family<L, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.core.opts.name)
            .field("kind", &M::KIND)
            .field("label_names", &self.core.opts.label_names)
            .finish_non_exhaustive()
    }
}

/// A family's declaration: everything that two declarations of one name must agree on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Opts<C> {
    pub(crate) name: Box<str>,
    pub(crate) help: Box<str>,
    pub(crate) label_names: Box<[Box<str>]>,
    pub(crate) config: C,
    pub(crate) max_series: usize,
}

impl<L: LabelSet, M: Metric> Family<L, M> {
    /// A family named `name` with `help` text. Label names come from `L` (a derived label set);
    /// for array label sets give them with [`label_names`](Self::label_names).
    ///
    /// Names are checked when the family is registered, not here.
    #[track_caller]
    pub fn new(name: impl Into<Box<str>>, help: impl Into<Box<str>>) -> Self {
        Self::from_opts(
            Opts {
                name: name.into(),
                help: help.into(),
                label_names: L::NAMES.iter().map(|&n| n.into()).collect(),
                config: Default::default(),
                max_series: DEFAULT_MAX_SERIES,
            },
            Location::caller(),
        )
    }

    /// Sets the label names, for label sets that carry none (arrays of values).
    #[track_caller]
    pub fn label_names<const N: usize>(self, names: [&str; N]) -> Self {
        let mut opts = self.core.opts.clone();
        opts.label_names = names.iter().map(|&n| n.into()).collect();
        Self::from_opts(opts, self.core.origin)
    }

    /// Sets the cap on distinct label sets (default [`DEFAULT_MAX_SERIES`]).
    pub fn max_series(self, max: usize) -> Self {
        let mut opts = self.core.opts.clone();
        opts.max_series = max.max(1);
        Self::from_opts(opts, self.core.origin)
    }

    pub(crate) fn from_core(core: Arc<SharedFamily<M>>) -> Self {
        Self {
            core,
            _labels: PhantomData,
        }
    }

    pub(crate) fn from_opts(opts: Opts<M::Config>, origin: &'static Location<'static>) -> Self {
        Self {
            core: Arc::new(SharedFamily::new(opts, L::CARDINALITY, origin)),
            _labels: PhantomData,
        }
    }

    /// Creates the one series of a family without labels, at zero, so that the first scrape
    /// shows it (a missing series breaks alerts and `rate()`). Called on registration, not on
    /// construction, so that builder steps (`.buckets()`, `.mode()`) create no throwaway series.
    pub(crate) fn create_unlabelled_series(&self) {
        if L::ARITY == 0 && self.core.opts.label_names.is_empty() {
            let key = KeyRef { words: &[] };
            self.core.insert(key.hash(self.core.seed), key, 0, Some(0));
        }
    }

    /// The series for `labels`, created (at zero) if it is new.
    ///
    /// `labels` is an `L`, or borrowed values that write the same label values as an `L`
    /// ([`LabelQuery`]): `[&str; 2]` for a `Family<[String; 2], _>`. Never panics and never
    /// allocates for a label set seen before; a new series stores its own copy of the values. A
    /// query with the wrong number of values (possible only with slices) is routed to the
    /// overflow series.
    ///
    /// ```
    /// use promtrack::{Counter, Family};
    ///
    /// promtrack::family! {
    ///     static REQUESTS: Family<[String; 2], Counter> =
    ///         ("doc_with_requests_total", "Requests.", label_names = ["method", "path"]);
    /// }
    /// fn handle(method: &str, path: &str) {
    ///     REQUESTS.with(&[method, path]).inc();
    /// }
    /// handle("GET", &format!("/users/{}", 7));
    /// assert_eq!(REQUESTS.with(&["GET", "/users/7"]).get(), 1.0);
    /// ```
    #[inline(always)]
    pub fn with<Q: LabelQuery<L> + ?Sized>(&self, labels: &Q) -> &M {
        if L::CARDINALITY.is_some() {
            if let Some(slot) = self.core.dense.get(labels.cardinality_index()) {
                let p = slot.load(Ordering::Acquire);
                if !p.is_null() {
                    // SAFETY: published series live as long as the core.
                    return unsafe { &(*p).metric };
                }
            }
            // Only a set's first lookup gets here: out of line, so that each call site keeps
            // only the dense index.
            return self.first_dense_lookup(labels);
        }
        self.find_in_table(labels)
    }

    /// The table path of [`with`](Self::with): the query's values written into a key on the
    /// stack, hashed, probed for; inlined with `with`, the miss out of line.
    ///
    /// The values are written here, not through a closure handed to `SharedFamily::lookup`: a
    /// closure is only a hint to inline, dropped once this is inlined into a large caller; the
    /// key writer then lives in memory and a hit costs about three times as much.
    #[inline(always)]
    fn find_in_table<Q: LabelQuery<L> + ?Sized>(&self, labels: &Q) -> &M {
        let core = &*self.core;
        let dense = L::CARDINALITY.map(|_| labels.cardinality_index());
        let mut words = KeyWords::new();
        let mut writer = KeyWriter::new(&mut words, core.seed);
        labels.write_values(&mut writer);
        core.find_or_insert(writer.finish(), dense)
    }

    /// The first lookup of a set of fixed cardinality, which publishes its dense slot.
    #[cold]
    #[inline(never)]
    fn first_dense_lookup<Q: LabelQuery<L> + ?Sized>(&self, labels: &Q) -> &M {
        self.find_in_table(labels)
    }

    /// The series whose label values `write` writes, in label-name order. For the layer and for
    /// generated code (through `__private::with_writer`), whose label values have heterogeneous
    /// types known only to the compiler; users call [`with`](Self::with).
    #[inline]
    pub(crate) fn with_writer(&self, write: impl FnOnce(&mut KeyWriter<'_>)) -> &M {
        self.core.lookup(write, None)
    }

    /// The family's name.
    pub fn name(&self) -> &str {
        &self.core.opts.name
    }
}

impl<L: LabelSet> Family<L, Histogram> {
    /// Sets the histogram's bucket upper bounds (finite, strictly increasing; `+Inf` is added).
    /// Bounds are checked when the family is registered.
    pub fn buckets(self, bounds: &[f64]) -> Self {
        let mut opts = self.core.opts.clone();
        opts.config.bounds = bounds.into();
        Self::from_opts(opts, self.core.origin)
    }

    /// Keeps native (exponential) buckets: native only, or beside the classic buckets with
    /// [`NativeConfig::classic`](crate::NativeConfig::classic). Settings are checked when the
    /// family is registered.
    pub fn native(self, native: crate::NativeConfig) -> Self {
        let mut opts = self.core.opts.clone();
        opts.config.native = Some(native);
        Self::from_opts(opts, self.core.origin)
    }
}

impl<L: LabelSet> Family<L, crate::Gauge> {
    /// Sets how this gauge's values from several processes combine in multiprocess mode
    /// (default [`GaugeMode::All`](crate::GaugeMode::All), as in Python).
    pub fn mode(self, mode: crate::GaugeMode) -> Self {
        let mut opts = self.core.opts.clone();
        opts.config = mode;
        Self::from_opts(opts, self.core.origin)
    }
}

impl<M: Metric> std::ops::Deref for Family<(), M> {
    type Target = M;

    /// The one series of a family without labels.
    #[inline]
    fn deref(&self) -> &M {
        self.with(&())
    }
}

/// What every handle of one family shares: its declaration and its series.
///
/// Generic only where the lookup's hit path needs the metric's type (`dense`, the records'
/// typed view) and where a series' metric is built, scraped or dropped; the rest is
/// [`Series`], compiled once for every kind (`series.rs`).
pub(crate) struct SharedFamily<M: Metric> {
    pub(crate) opts: Opts<M::Config>,
    pub(crate) origin: &'static Location<'static>,
    /// Seeds this family's key hashes, at random, so that clients cannot aim collisions.
    seed: u64,
    dense: Box<[AtomicPtr<Header<M>>]>,
    /// Pointers to whole records (`record.rs`) of metric type `M`.
    table: Table<Prefix>,
    series: Series,
}

impl<M: Metric> SharedFamily<M> {
    fn new(
        opts: Opts<M::Config>,
        cardinality: Option<usize>,
        origin: &'static Location<'static>,
    ) -> Self {
        let dense_len = cardinality.filter(|&n| n <= MAX_DENSE).unwrap_or(0);
        Self {
            opts,
            origin,
            seed: new_seed(),
            dense: (0..dense_len)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            table: Table::new(),
            series: Series::new(Shape::of::<M>()),
        }
    }

    /// Finds or creates the series of the values `write` writes (see `key.rs`).
    #[inline(always)]
    fn lookup(&self, write: impl FnOnce(&mut KeyWriter<'_>), dense: Option<usize>) -> &M {
        let mut words = KeyWords::new();
        let mut writer = KeyWriter::new(&mut words, self.seed);
        write(&mut writer);
        self.find_or_insert(writer.finish(), dense)
    }

    /// The series of the `written` key: a hit is a probe and a comparison, inlined into the
    /// caller; a miss calls out of line to [`insert`](Self::insert).
    #[inline(always)]
    fn find_or_insert(&self, written: WrittenKey<'_>, dense: Option<usize>) -> &M {
        let WrittenKey { key, hash, values } = written;
        match self.table.find(hash, |p| Self::record(p).matches(&key)) {
            Some(p) => &Self::record(p).header().metric,
            None => self.insert(hash, key, values, dense),
        }
    }

    /// A record the table or the dense array handed out.
    #[inline(always)]
    fn record(p: NonNull<Prefix>) -> Record<M> {
        // SAFETY: the table and the dense array hold only pointers of records this family
        // created (`Series::insert`, with `M`'s shape) and frees only when it drops.
        unsafe { Record::from_ptr(p.cast()) }
    }

    /// Creates the series for a key not found by the lock-free read, or finds it if another
    /// thread created it meanwhile (`Series::insert`, compiled once for every kind); publishes
    /// its dense slot.
    #[cold]
    #[inline(never)]
    fn insert(&self, hash: u64, key: KeyRef<'_>, arity: usize, dense: Option<usize>) -> &M {
        let config = &self.opts.config;
        // SAFETY: `table` is this family's, and `write` writes an `M`, the type of the
        // series' shape (`new`), at the metric's place it is handed.
        let inserted = unsafe {
            self.series.insert(
                &self.table,
                self.seed,
                Miss { hash, key, arity },
                &self.decl(),
                self.opts.max_series,
                &mut |cells, at| at.cast::<M>().write(M::from_cells(cells, config)),
            )
        };
        // SAFETY: this family's records are of its metric type `M`.
        let series = unsafe { inserted.record.typed::<M>() };
        if inserted.new {
            if let Some(slot) = dense.and_then(|i| self.dense.get(i)) {
                slot.store(series.as_ptr(), Ordering::Release);
            }
        }
        &series.header().metric
    }

    /// What this family declares to the store of its series (`store.rs`).
    fn decl(&self) -> FamilyDecl<'_> {
        FamilyDecl {
            name: &self.opts.name,
            help: &self.opts.help,
            label_names: &self.opts.label_names,
            kind: M::KIND,
            mode: M::mode(&self.opts.config),
            bounds: M::bounds(&self.opts.config),
            native: M::native(&self.opts.config),
        }
    }

    /// Number of series, the overflow series included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// Lookups routed to the overflow series.
    pub(crate) fn overflow_hits(&self) -> u64 {
        self.series.overflow_hits()
    }

    pub(crate) fn desc(&self) -> FamilyDesc<'_> {
        FamilyDesc {
            name: &self.opts.name,
            help: &self.opts.help,
            kind: M::KIND,
        }
    }

    /// Visits the header and every series, ordered by label values, under the family's lock
    /// (`Series::sorted`).
    pub(crate) fn visit(&self, v: &mut dyn Visitor, scratch: &mut Vec<u64>) {
        v.family(&self.desc());
        let sorted = self.series.sorted();
        for (s, labels) in sorted.each(&self.opts.label_names) {
            // SAFETY: this family's records are of its metric type `M`.
            let metric = &unsafe { s.typed::<M>() }.header().metric;
            let exemplars = metric.exemplars();
            metric.visit_point(&self.opts.config, scratch, &mut |point| {
                v.series_with_exemplars(Labels::Key(labels), point, Some(s.created()), exemplars);
            });
        }
    }
}

/// A family's random key seed (`SharedFamily::seed`). Out of line: SipHash inlined into every
/// family constructor was a copy per (label set, kind).
#[inline(never)]
fn new_seed() -> u64 {
    std::hash::RandomState::new().hash_one(0u8)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::series::cmp_values;
    use super::*;
    use crate::key::words_of;
    use crate::model::KeyLabels;
    use crate::{Counter, Gauge};

    #[test]
    fn one_label_set_one_series() {
        let f = Family::<[&str; 2], Counter>::new("x_total", "h").label_names(["a", "b"]);
        f.with(&["1", "2"]).inc();
        f.with(&["1", "2"]).inc();
        f.with(&["1", "3"]).inc();
        assert_eq!(f.with(&["1", "2"]).get(), 2.0);
        assert_eq!(f.core.len(), 2);
        // The same handle, not a copy.
        assert!(ptr::eq(f.with(&["1", "3"]), f.with(&["1", "3"])));
    }

    #[test]
    fn borrowed_queries_find_the_series_of_the_owned_values() {
        let f = Family::<[String; 2], Counter>::new("x_total", "h").label_names(["a", "b"]);
        let owned = f.with(&["GET".to_string(), "/users".to_string()]);
        let path = String::from("/users");
        assert!(ptr::eq(f.with(&["GET", path.as_str()]), owned));
        assert!(ptr::eq(f.with(&[&"GET".to_string(), &path]), owned));
        assert!(ptr::eq(
            f.with(&[Cow::Borrowed("GET"), Cow::Borrowed("/users")]),
            owned
        ));
        assert!(ptr::eq(f.with(&["GET", "/users"][..]), owned));
        assert_eq!(f.core.len(), 1);
    }

    #[test]
    fn a_borrowed_miss_creates_a_series_that_owns_its_values() {
        let f = Family::<[String; 1], Counter>::new("x_total", "h").label_names(["path"]);
        let first = {
            let path = format!("/users/{}", 7);
            let series = f.with(&[path.as_str()]);
            series.inc();
            series
        }; // the query's string is gone; the series keeps its own copy
        let again = String::from("/users/7");
        assert!(ptr::eq(f.with(&[again.as_str()]), first));
        assert_eq!(f.with(&["/users/7".to_string()]).get(), 1.0);
        assert_eq!(f.core.series.keys(), [b"/users/7\xff\0\0\0\0\0\0\0"]);
    }

    /// What a `static` family declared with `[&str; N]` must accept: values borrowed for less
    /// than `'static` (this only has to compile).
    fn static_family_with_request_values(
        f: &'static Family<[&'static str; 2], Counter>,
        path: &str,
    ) -> f64 {
        f.with(&["GET", path]).get()
    }

    #[test]
    fn a_static_str_family_takes_shorter_lived_values() {
        // A `static`, as services declare families (and reachable from a static, so Miri's
        // leak check accepts it).
        static FAMILY: std::sync::LazyLock<Family<[&'static str; 2], Counter>> =
            std::sync::LazyLock::new(|| {
                Family::<[&str; 2], Counter>::new("x_total", "h").label_names(["method", "path"])
            });
        let f: &'static Family<[&'static str; 2], Counter> = &FAMILY;
        f.with(&["GET", "/a"]).inc();
        let path = String::from("/a");
        assert_eq!(static_family_with_request_values(f, &path), 1.0);
        assert_eq!(f.core.len(), 1);
    }

    /// A set of fixed cardinality, queried through [`LabelQuery`], keeps its dense index.
    struct Flag(bool);
    impl LabelSet for Flag {
        const NAMES: &'static [&'static str] = &["flag"];
        const ARITY: usize = 1;
        const CARDINALITY: Option<usize> = Some(2);
        fn cardinality_index(&self) -> usize {
            usize::from(self.0)
        }
        fn write_values(&self, out: &mut KeyWriter<'_>) {
            out.value(&self.0)
        }
    }

    #[test]
    fn fixed_cardinality_sets_keep_their_dense_index() {
        let f = Family::<Flag, Counter>::new("x_total", "h");
        let on = f.with(&Flag(true));
        let slot = f.core.dense[1].load(Ordering::Acquire);
        // SAFETY: a published series lives as long as the core.
        assert!(ptr::eq(unsafe { &(*slot).metric }, on));
        assert!(f.core.dense[0].load(Ordering::Acquire).is_null());
    }

    #[test]
    fn a_slice_of_the_wrong_length_goes_to_overflow() {
        let f = Family::<[String; 2], Counter>::new("x_total", "h").label_names(["a", "b"]);
        f.with(&["GET"][..]).inc();
        assert_eq!(f.core.overflow_hits(), 1);
    }

    #[test]
    fn keys_sort_like_tuples_of_values() {
        let key = |joined: &[u8]| {
            KeyRef {
                words: &words_of(joined),
            }
            .to_word_bytes()
        };
        let (root, users) = (
            key(b"GET\xff/\xff200\xff"),
            key(b"GET\xff/users\xff200\xff"),
        );
        assert!(cmp_values(&root, &users).is_lt());
        assert!(cmp_values(&users, &root).is_gt());
        assert!(cmp_values(&key(b"a\xff"), &key(b"a\xff")).is_eq());
    }

    #[test]
    fn a_scrape_renders_escaped_pairs_from_the_key() {
        let f = Family::<[String; 2], Counter>::new("x_total", "h").label_names(["a", "b"]);
        f.with(&["x", "\"\\\n"]).inc();
        assert!(f.core.series.escaping.load(Ordering::Relaxed));
        {
            let keys = f.core.series.keys();
            let k = KeyLabels::new(&f.core.opts.label_names, &keys[0], true);
            assert_eq!(k.pairs().collect::<Vec<_>>(), [("a", "x"), ("b", "\"\\\n")]);
        }
        let r = crate::Registry::new();
        r.register(&f).unwrap();
        let text = crate::expose::encode_to_string(&r, crate::expose::Format::Text);
        assert!(
            text.ends_with("x_total{a=\"x\",b=\"\\\"\\\\\\n\"} 1\n"),
            "{text}"
        );
    }

    /// Values no family value needs escaping in are copied a word at a time from the key
    /// (`expose/line.rs`), with values of every length around a word boundary.
    #[test]
    fn a_scrape_copies_plain_values_from_the_key_words() {
        let f = Family::<[String; 3], Counter>::new("x_total", "h").label_names(["a", "bb", "c"]);
        let values = ["", "1234567", "12345678"];
        f.with(&values).inc();
        assert!(!f.core.series.escaping.load(Ordering::Relaxed));
        let r = crate::Registry::new();
        r.register(&f).unwrap();
        let text = crate::expose::encode_to_string(&r, crate::expose::Format::Text);
        assert!(
            text.ends_with("x_total{a=\"\",bb=\"1234567\",c=\"12345678\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn unlabelled_family_derefs_to_its_series() {
        let f = Family::<(), Gauge>::new("g", "h");
        f.set(3.0);
        assert_eq!(f.with(&()).get(), 3.0);
        assert_eq!(f.core.len(), 1);
    }

    #[test]
    fn cap_folds_new_label_sets_into_the_overflow_series() {
        let f = Family::<[String; 1], Counter>::new("x_total", "h")
            .label_names(["user"])
            .max_series(3);
        for i in 0..10 {
            f.with(&[i.to_string()]).inc();
        }
        assert_eq!(f.core.len(), 4, "3 series plus the overflow one");
        assert_eq!(f.core.overflow_hits(), 7);
        assert_eq!(f.with(&[OVERFLOW_LABEL_VALUE.to_string()]).get(), 7.0);
        // Existing series still count on their own.
        f.with(&["0".to_string()]).inc();
        assert_eq!(f.with(&["0".to_string()]).get(), 2.0);
    }

    #[test]
    fn concurrent_creation_makes_one_series_per_label_set() {
        let f = Family::<[String; 1], Counter>::new("x_total", "h").label_names(["k"]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..500 {
                        f.with(&[(i % 50).to_string()]).inc();
                    }
                });
            }
        });
        assert_eq!(f.core.len(), 50);
        for i in 0..50 {
            assert_eq!(f.with(&[i.to_string()]).get(), 40.0);
        }
    }

    #[test]
    fn wrong_arity_goes_to_overflow_instead_of_panicking() {
        let f = Family::<[&str; 1], Counter>::new("x_total", "h").label_names(["a", "b"]);
        f.with(&["only one"]).inc();
        assert_eq!(f.core.overflow_hits(), 1);
    }

    /// Every kind's records go through the kind-independent code (`series.rs`): created with
    /// their kind's shape, found again, scraped through the typed view, freed with their kind's
    /// drop (under Miri: provenance, alignment and leaks of each shape).
    #[test]
    fn every_kind_is_created_scraped_and_freed_through_the_erased_records() {
        let counters = Family::<[&str; 1], Counter>::new("c_total", "h").label_names(["k"]);
        let histograms = Family::<[&str; 2], Histogram>::new("h_seconds", "h")
            .label_names(["k", "l"])
            .buckets(&[0.5, 1.0]);
        let summaries =
            Family::<[&str; 1], crate::Summary>::new("s_seconds", "h").label_names(["k"]);
        let infos = Family::<[&str; 3], crate::Info>::new("i_info", "h")
            .label_names(["k", "l", "m"])
            .max_series(1);
        for k in ["b", "a"] {
            counters.with(&[k]).inc();
            histograms.with(&[k, "x"]).observe(0.7);
            summaries.with(&[k]).observe(2.0);
            infos.with(&[k, "x", "y"]);
        }
        assert!(ptr::eq(counters.with(&["a"]), counters.with(&["a"])));
        assert_eq!(histograms.with(&["a", "x"]).count(), 1);
        assert_eq!(summaries.with(&["b"]).sum(), 2.0);
        assert_eq!((infos.core.len(), infos.core.overflow_hits()), (2, 1));
        let r = crate::Registry::new();
        r.register(&counters).unwrap();
        r.register(&histograms).unwrap();
        r.register(&summaries).unwrap();
        r.register(&infos).unwrap();
        let text = crate::expose::encode_to_string(&r, crate::expose::Format::Text);
        for line in [
            "c_total{k=\"a\"} 1\nc_total{k=\"b\"} 1\n",
            "h_seconds_bucket{k=\"a\",l=\"x\",le=\"1\"} 1\n",
            "s_seconds_sum{k=\"b\"} 2\n",
            "i_info{k=\"__overflow__\",l=\"__overflow__\",m=\"__overflow__\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
    }
}
