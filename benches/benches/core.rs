//! promtrack against the peer Prometheus client crates, side by side, in one run.
//!
//! Run it with
//!
//! ```text
//! cargo bench -p promtrack-benches --bench core                     # everything (a few minutes)
//! cargo bench -p promtrack-benches --bench core -- histogram_observe  # one group
//! scripts/benchmarks.py                                             # every bench → BENCHMARKS.md
//! ```
//!
//! Every group holds one function per crate, named after the crate, and every function in a group
//! does the same work: same metric kind, same label names and values, same buckets, same number of
//! series. Peers (exact versions in `Cargo.toml`): `prometheus` (tikv/rust-prometheus),
//! `prometheus-client` (prometheus/client_rust), `metrics` + `metrics-exporter-prometheus`, and
//! `measured`.
//!
//! | group                    | what one iteration is                                                       |
//! |--------------------------|-----------------------------------------------------------------------------|
//! | `counter_inc_resolved`   | `+1` on a counter handle resolved before the measurement                    |
//! | `counter_lookup_2labels` | find the series for two run-time string labels (`method`, `status`), `+1`   |
//! | `histogram_observe`      | one observation on a resolved histogram, 11 default buckets                 |
//! | `encode_text`            | Prometheus text of 10 000 counter + 1 000 histogram series into a new buffer |
//! | `counter_inc_contended`  | two threads each `+1` the same resolved counter; time is wall time / iters  |
//! | `counter_lookup_index`   | `counter_lookup_2labels` for promtrack's table against map crates (below)   |
//!
//! What is and is not "the same work" where the crates' APIs differ (each is the crate's own way):
//!
//! * `metrics` has no free-standing handles: a handle comes from a recorder. Each fixture builds its
//!   own `PrometheusRecorder` and resolves handles through `metrics::with_local_recorder` (the
//!   macros are what users call), so no global state is shared between groups. Where a lookup is
//!   part of the measurement (`counter_lookup_2labels`) the `with_local_recorder` scope, a
//!   thread-local swap of a couple of nanoseconds, is inside the timed closure.
//! * Run-time string labels: `prometheus`, `measured` and promtrack take `&str`s; `prometheus-client`
//!   (`Family` keys are owned `S: Clone + Hash + Eq`) and `metrics` (label values are
//!   `Cow<'static, str>`) can only take run-time strings as owned `String`s, so those two copy
//!   both values on every lookup. That copy is part of what the group measures: it is what a
//!   caller of those crates with a request's method and status in hand has to do.
//!   `measured` interns run-time strings in a `lasso::ThreadedRodeo` per label (its documented
//!   way for labels not known at start-up).
//! * `metrics-exporter-prometheus` histograms append each raw observation to a lock-free bucket and
//!   only sort them into buckets at upkeep or scrape time (`run_upkeep`/`render`). So that it does
//!   the same work as the others (and does not grow without bound), `histogram_observe` drains it
//!   with `run_upkeep` every [`METRICS_DRAIN_EVERY`] observations inside the timed loop: its figure
//!   is the whole cost of an observation, amortised, not just the append on the caller's thread
//!   (each append also reads a clock, `quanta::Instant::now()`, for sample expiry).
//! * `prometheus-client`'s `Histogram` is an `Arc<Mutex<…>>`; `measured`'s histogram takes a
//!   `parking_lot` read lock per observation. That is their hot path; nothing is adjusted for it.
//! * `encode_text` includes everything a scrape does: `Registry::gather` for `prometheus`, draining
//!   pending histogram samples (none: the fixture is rendered once before timing) for `metrics`.
//!   Output sizes are printed to stderr when the group's fixtures are built, to compare; set
//!   `PROMTRACK_BENCH_DUMP=<dir>` to also write each crate's exposition to `<dir>/<crate>.txt`.
//!
//! Every timed closure returns `()`: a crate whose `inc` returns the previous value
//! (`prometheus-client`) is called as a caller would, dropping it; feeding it to `black_box`
//! turns its `lock add` into a `lock xadd`, measurably slower on some CPUs.
//!
//! `counter_lookup_index` is not a peer comparison: it asks whether promtrack's hand-written
//! insert-only table (`runtime/src/family/table.rs`) earns its place against a concurrent map crate
//! (issue 10: keep it only if it is at least 1.2× faster with 1 and with 2 threads). Everything but
//! the index structure is the same on both sides: the label values are packed into the same words
//! and hashed with the same function (`promtrack::__private::index_bench`, the steps of
//! `Family::with` before its table is probed), the map's hasher only passes that hash through,
//! keys are compared by the same code, and the value found is a promtrack `Counter` on heap cells,
//! incremented. `table` is `Family::with(..).inc()`, exactly promtrack's row of
//! `counter_lookup_2labels`. `papaya` pins a guard per lookup (a lookup hands out a reference, so
//! it needs one) and stores the counter in the map; `scc` is `scc::HashMap::read_sync` (a shared
//! lock on the key's bucket for the read). Functions are `<case>/<index>`: `1_thread` is
//! `counter_lookup_2labels`; `2_threads` is the same lookup of the same series on two threads at
//! once (the requests of a busy endpoint; the counter's cache line moves between the cores, as in
//! `counter_inc_contended`); `2_threads_distinct` has each thread look up its own series (`GET`
//! and `POST`, both `200`), so only the index's read path is shared.
//!
//! The machine these run on may be small and noisy: compare figures from one run only, and read
//! `counter_inc_contended` as "how bad is cache-line ping-pong", not as a throughput promise.

use std::hint::black_box;
use std::sync::LazyLock;
use std::time::Instant;

use criterion::{Bencher, Criterion, SamplingMode, criterion_group, criterion_main};

#[path = "common/pinned.rs"]
mod pinned;

// --------------------------------------------------------------------------------------------
// Shared inputs
// --------------------------------------------------------------------------------------------

/// Prometheus' default buckets (the same 11 in every crate; checked in each fixture).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Observed values, cycled through: they land in different buckets, one above the last bound.
const OBSERVATIONS: [f64; 8] = [0.003, 0.02, 0.04, 0.2, 0.7, 3.0, 0.09, 12.0];

/// Number of counter series in the `encode_text` fixture (one family, labels `method`, `route`).
const ENCODE_COUNTERS: usize = 10_000;
/// Number of histogram series in the `encode_text` fixture (one family, label `route`).
const ENCODE_HISTOGRAMS: usize = 1_000;

/// `metrics-exporter-prometheus` histogram drain period in `histogram_observe` (see module docs).
const METRICS_DRAIN_EVERY: u64 = 1 << 16;

const COUNTER_NAME: &str = "bench_total";
const REQUESTS_NAME: &str = "requests_total";
const LATENCY_NAME: &str = "latency_seconds";
const SCRAPE_COUNTER: &str = "http_requests_total";
const SCRAPE_HISTOGRAM: &str = "http_request_duration_seconds";
const HELP: &str = "Benchmark metric.";

/// The run-time label values of `counter_lookup_2labels`: `String`s the optimiser cannot see into.
fn request_labels() -> (String, String) {
    (
        black_box(String::from("GET")),
        black_box(String::from("200")),
    )
}

/// Label values of the `encode_text` fixture: 10 000 distinct (`method`, `route`) pairs for the
/// counters, 1 000 distinct `route`s for the histograms.
struct ScrapeLabels {
    counters: Vec<(String, String)>,
    histograms: Vec<String>,
}

fn scrape_labels() -> ScrapeLabels {
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    ScrapeLabels {
        counters: (0..ENCODE_COUNTERS)
            .map(|i| {
                (
                    METHODS[i % METHODS.len()].to_owned(),
                    format!("/api/v1/items/{}", i / METHODS.len()),
                )
            })
            .collect(),
        histograms: (0..ENCODE_HISTOGRAMS)
            .map(|i| format!("/api/v1/items/{i}"))
            .collect(),
    }
}

/// The value of the `i`-th observation.
#[inline(always)]
fn observation(i: usize) -> f64 {
    OBSERVATIONS[i % OBSERVATIONS.len()]
}

/// Cycles through [`OBSERVATIONS`], the array read through `black_box` so no value is constant.
struct Observations {
    values: [f64; 8],
    i: usize,
}

impl Observations {
    fn new() -> Self {
        Self {
            values: black_box(OBSERVATIONS),
            i: 0,
        }
    }

    #[inline(always)]
    fn next(&mut self) -> f64 {
        self.i = self.i.wrapping_add(1);
        self.values[self.i % self.values.len()]
    }
}

/// Two threads, each pinned to a CPU of its own (`common/pinned.rs`), each call `inc` `iters`
/// times; returns the wall time from a common start until both are done.
fn two_threads(b: &mut Bencher<'_>, inc: impl Fn() + Sync) {
    b.iter_custom(|iters| {
        pinned::run(|_| {
            for _ in 0..iters {
                inc();
            }
        })
    });
}

/// Prints the size of one crate's exposition of the `encode_text` fixture and, when
/// `PROMTRACK_BENCH_DUMP` names a directory, writes it there as `<crate>.txt` (to check the
/// expositions, e.g. with an exposition validator, or to diff them).
fn note_output(krate: &str, text: &[u8]) {
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    eprintln!(
        "encode_text fixture: {krate:>17}: {:>8} bytes, {lines:>6} lines",
        text.len()
    );
    if let Some(dir) = std::env::var_os("PROMTRACK_BENCH_DUMP") {
        let path = std::path::Path::new(&dir).join(format!("{krate}.txt"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

// --------------------------------------------------------------------------------------------
// Per-crate fixtures
// --------------------------------------------------------------------------------------------

/// tikv/rust-prometheus.
mod prom {
    use prometheus::{
        Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
        TextEncoder,
    };

    use super::*;

    pub fn counter() -> IntCounter {
        IntCounter::new(COUNTER_NAME, HELP).unwrap()
    }

    /// The 2-label family, with the (`GET`, `200`) series already created.
    pub fn counter_vec() -> IntCounterVec {
        let vec =
            IntCounterVec::new(Opts::new(REQUESTS_NAME, HELP), &["method", "status"]).unwrap();
        vec.with_label_values(&["GET", "200"]);
        vec
    }

    pub fn histogram() -> Histogram {
        assert_eq!(prometheus::DEFAULT_BUCKETS, &BUCKETS);
        Histogram::with_opts(HistogramOpts::new(LATENCY_NAME, HELP).buckets(BUCKETS.to_vec()))
            .unwrap()
    }

    pub fn scrape(labels: &ScrapeLabels) -> Registry {
        let registry = Registry::new();
        let counters =
            IntCounterVec::new(Opts::new(SCRAPE_COUNTER, HELP), &["method", "route"]).unwrap();
        let histograms = HistogramVec::new(
            HistogramOpts::new(SCRAPE_HISTOGRAM, HELP).buckets(BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap();
        registry.register(Box::new(counters.clone())).unwrap();
        registry.register(Box::new(histograms.clone())).unwrap();
        for (method, route) in &labels.counters {
            counters
                .with_label_values(&[method.as_str(), route.as_str()])
                .inc();
        }
        for (i, route) in labels.histograms.iter().enumerate() {
            histograms
                .with_label_values(&[route.as_str()])
                .observe(observation(i));
        }
        registry
    }

    pub fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut out)
            .unwrap();
        out
    }
}

/// prometheus/client_rust.
mod pclient {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::*;

    /// Label values must be owned: `Family` keys are `Clone + Hash + Eq` values.
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct Request {
        pub method: String,
        pub status: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct MethodRoute {
        pub method: String,
        pub route: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct Route {
        pub route: String,
    }

    type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

    fn new_histogram() -> Histogram {
        Histogram::new(BUCKETS)
    }

    pub fn counter() -> Counter {
        Counter::default()
    }

    /// The 2-label family, with the (`GET`, `200`) series already created.
    pub fn counter_vec() -> Family<Request, Counter> {
        let family = Family::<Request, Counter>::default();
        let _ = family.get_or_create(&Request {
            method: "GET".into(),
            status: "200".into(),
        });
        family
    }

    pub fn histogram() -> Histogram {
        new_histogram()
    }

    pub fn scrape(labels: &ScrapeLabels) -> Registry {
        let mut registry = Registry::default();
        let counters = Family::<MethodRoute, Counter>::default();
        let histograms = HistogramFamily::<Route>::new_with_constructor(new_histogram);
        // Counters are registered without `_total` (encoding appends it), and the help text
        // without its final `.` (encoding appends one).
        let help = HELP.trim_end_matches('.');
        registry.register(
            SCRAPE_COUNTER.trim_end_matches("_total"),
            help,
            counters.clone(),
        );
        registry.register(SCRAPE_HISTOGRAM, help, histograms.clone());
        for (method, route) in &labels.counters {
            counters
                .get_or_create(&MethodRoute {
                    method: method.clone(),
                    route: route.clone(),
                })
                .inc();
        }
        for (i, route) in labels.histograms.iter().enumerate() {
            histograms
                .get_or_create(&Route {
                    route: route.clone(),
                })
                .observe(observation(i));
        }
        registry
    }

    /// Prometheus text 0.0.4 (`encoding::text` would be OpenMetrics).
    pub fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry).unwrap();
        out
    }
}

/// metrics + metrics-exporter-prometheus.
mod metrics_rs {
    use metrics::{Counter, Histogram};
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

    use super::*;

    /// A recorder of its own for each fixture; histograms with the default buckets (without
    /// `set_buckets` the exporter renders histograms as summaries).
    pub fn recorder() -> PrometheusRecorder {
        PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .unwrap()
            .build_recorder()
    }

    /// The handle `metrics::counter!` resolves to, held on to by the caller (the same handle
    /// `recorder.register_counter(..)` returns; resolving through the macro is what users write).
    /// `increment` is a virtual call into the exporter's storage: an atomic add on the value and
    /// one on the series' generation (used for idle-series expiry).
    pub fn counter(recorder: &PrometheusRecorder) -> Counter {
        metrics::with_local_recorder(recorder, || {
            metrics::describe_counter!(COUNTER_NAME, HELP);
            metrics::counter!(COUNTER_NAME)
        })
    }

    /// The recorder holding the 2-label family, with the (`GET`, `200`) series already created.
    pub fn counter_vec() -> PrometheusRecorder {
        let recorder = recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(REQUESTS_NAME, HELP);
            metrics::counter!(REQUESTS_NAME, "method" => "GET", "status" => "200").increment(0);
        });
        recorder
    }

    pub fn histogram(recorder: &PrometheusRecorder) -> Histogram {
        metrics::with_local_recorder(recorder, || {
            metrics::describe_histogram!(LATENCY_NAME, HELP);
            metrics::histogram!(LATENCY_NAME)
        })
    }

    pub fn scrape(labels: &ScrapeLabels) -> (PrometheusRecorder, PrometheusHandle) {
        let recorder = recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(SCRAPE_COUNTER, HELP);
            metrics::describe_histogram!(SCRAPE_HISTOGRAM, HELP);
            for (method, route) in &labels.counters {
                metrics::counter!(SCRAPE_COUNTER, "method" => method.clone(), "route" => route.clone())
                    .increment(1);
            }
            for (i, route) in labels.histograms.iter().enumerate() {
                metrics::histogram!(SCRAPE_HISTOGRAM, "route" => route.clone())
                    .record(observation(i));
            }
        });
        let handle = recorder.handle();
        // Sort the raw samples into buckets now, so the timed renders all do the same work.
        handle.run_upkeep();
        (recorder, handle)
    }

    pub fn encode(handle: &PrometheusHandle) -> String {
        handle.render()
    }
}

/// measured.
mod measured_ {
    use measured::lasso::ThreadedRodeo;
    use measured::metric::histogram::Thresholds;
    use measured::text::TextEncoder;
    use measured::{Counter, CounterVec, Histogram, HistogramVec, LabelGroup, MetricGroup};

    use super::*;

    /// Run-time strings are interned per label in a `lasso::ThreadedRodeo`.
    #[derive(Clone, Copy, LabelGroup)]
    #[label(set = RequestSet)]
    pub struct Request<'a> {
        #[label(dynamic_with = ThreadedRodeo, default)]
        pub method: &'a str,
        #[label(dynamic_with = ThreadedRodeo, default)]
        pub status: &'a str,
    }

    #[derive(Clone, Copy, LabelGroup)]
    #[label(set = MethodRouteSet)]
    pub struct MethodRoute<'a> {
        #[label(dynamic_with = ThreadedRodeo, default)]
        pub method: &'a str,
        #[label(dynamic_with = ThreadedRodeo, default)]
        pub route: &'a str,
    }

    #[derive(Clone, Copy, LabelGroup)]
    #[label(set = RouteSet)]
    pub struct Route<'a> {
        #[label(dynamic_with = ThreadedRodeo, default)]
        pub route: &'a str,
    }

    /// The `encode_text` fixture: field names are the family names, doc comments the help.
    #[derive(MetricGroup)]
    pub struct Scrape {
        /// Benchmark metric.
        http_requests_total: CounterVec<MethodRouteSet>,
        /// Benchmark metric.
        http_request_duration_seconds: HistogramVec<RouteSet, 11>,
    }

    pub fn counter() -> Counter {
        Counter::new()
    }

    /// The 2-label family, with the (`GET`, `200`) series already created.
    pub fn counter_vec() -> CounterVec<RequestSet> {
        let vec = CounterVec::<RequestSet>::new();
        vec.inc_by(
            Request {
                method: "GET",
                status: "200",
            },
            0,
        );
        vec
    }

    pub fn histogram() -> Histogram<11> {
        Histogram::with_metadata(Thresholds::with_buckets(BUCKETS))
    }

    pub fn scrape(labels: &ScrapeLabels) -> Scrape {
        let scrape = Scrape {
            http_requests_total: CounterVec::new(),
            http_request_duration_seconds: HistogramVec::with_metadata(Thresholds::with_buckets(
                BUCKETS,
            )),
        };
        for (method, route) in &labels.counters {
            scrape
                .http_requests_total
                .inc(MethodRoute { method, route });
        }
        for (i, route) in labels.histograms.iter().enumerate() {
            scrape
                .http_request_duration_seconds
                .observe(Route { route }, observation(i));
        }
        scrape
    }

    pub fn encode(scrape: &Scrape) -> Vec<u8> {
        let mut enc = TextEncoder::new(Vec::new());
        scrape.collect_group_into(&mut enc).unwrap();
        enc.flush().unwrap();
        enc.writer
    }
}

/// promtrack (this workspace's runtime crate).
mod promtrack_ {
    use promtrack::expose::{self, Format};
    use promtrack::{Counter, Family, Histogram, Registry};

    use super::*;

    pub fn counter() -> Family<(), Counter> {
        Family::new(COUNTER_NAME, HELP)
    }

    /// The 2-label family, with the (`GET`, `200`) series already created.
    pub fn counter_vec<'a>() -> Family<[&'a str; 2], Counter> {
        let family = Family::<[&str; 2], Counter>::new(REQUESTS_NAME, HELP)
            .label_names(["method", "status"]);
        family.with(&["GET", "200"]);
        family
    }

    pub fn histogram() -> Family<(), Histogram> {
        assert_eq!(promtrack::DEFAULT_BUCKETS, &BUCKETS[..]);
        Family::<(), Histogram>::new(LATENCY_NAME, HELP).buckets(promtrack::DEFAULT_BUCKETS)
    }

    /// The families are returned with the registry so they outlive it in any design.
    pub struct Scrape<'a> {
        registry: Registry,
        _counters: Family<[&'a str; 2], Counter>,
        _histograms: Family<[&'a str; 1], Histogram>,
    }

    /// 10 000 counter series is exactly promtrack's default per-family cap (`max_series`), so
    /// there is no overflow series; the line count printed by `note_output` would show one.
    pub fn scrape(labels: &ScrapeLabels) -> Scrape<'_> {
        let registry = Registry::new();
        let counters = Family::<[&str; 2], Counter>::new(SCRAPE_COUNTER, HELP)
            .label_names(["method", "route"]);
        let histograms = Family::<[&str; 1], Histogram>::new(SCRAPE_HISTOGRAM, HELP)
            .label_names(["route"])
            .buckets(promtrack::DEFAULT_BUCKETS);
        registry.register(&counters).unwrap();
        registry.register(&histograms).unwrap();
        for (method, route) in &labels.counters {
            counters.with(&[method.as_str(), route.as_str()]).inc();
        }
        for (i, route) in labels.histograms.iter().enumerate() {
            histograms.with(&[route.as_str()]).observe(observation(i));
        }
        Scrape {
            registry,
            _counters: counters,
            _histograms: histograms,
        }
    }

    pub fn encode(scrape: &Scrape<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        expose::encode(&scrape.registry, Format::Text, &mut out);
        out
    }
}

/// promtrack's series index against concurrent map crates, with promtrack's keys, hash and
/// counters (see the module docs and `counter_lookup_index`).
mod index {
    use std::hash::{BuildHasher, Hash, Hasher};

    use promtrack::__private::index_bench::{self, LookupKey, SeriesKey};
    use promtrack::{Counter, Family};

    use super::*;

    /// The label values of a series: two strings, as in `counter_lookup_2labels`.
    pub type Labels<'a> = [&'a str; 2];

    /// A key as a map stores it; hashes as its precomputed hash.
    pub struct Key(SeriesKey);

    impl Hash for Key {
        #[inline(always)]
        fn hash<H: Hasher>(&self, h: &mut H) {
            h.write_u64(self.0.hash());
        }
    }

    impl PartialEq for Key {
        fn eq(&self, other: &Self) -> bool {
            self.0.same(&other.0)
        }
    }

    impl Eq for Key {}

    /// A key being looked up; hashes as its precomputed hash, compares as the family's table does.
    pub struct Query<'a>(LookupKey<'a>);

    impl Hash for Query<'_> {
        #[inline(always)]
        fn hash<H: Hasher>(&self, h: &mut H) {
            h.write_u64(self.0.hash());
        }
    }

    impl equivalent::Equivalent<Key> for Query<'_> {
        #[inline(always)]
        fn equivalent(&self, key: &Key) -> bool {
            self.0.matches(&key.0)
        }
    }

    impl scc::Equivalent<Key> for Query<'_> {
        #[inline(always)]
        fn equivalent(&self, key: &Key) -> bool {
            self.0.matches(&key.0)
        }
    }

    /// The maps' hasher: passes the key's precomputed hash through, so that the maps hash nothing
    /// themselves and see the same hash the family's table sees.
    #[derive(Clone, Copy, Default)]
    pub struct PassThrough;

    #[derive(Default)]
    pub struct PassThroughHasher(u64);

    impl BuildHasher for PassThrough {
        type Hasher = PassThroughHasher;
        #[inline(always)]
        fn build_hasher(&self) -> PassThroughHasher {
            PassThroughHasher(0)
        }
    }

    impl Hasher for PassThroughHasher {
        #[inline(always)]
        fn write_u64(&mut self, hash: u64) {
            self.0 = hash;
        }
        /// Keys only ever write their one `u64`; anything else is folded in so that it still hashes.
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            }
        }
        #[inline(always)]
        fn finish(&self) -> u64 {
            self.0
        }
    }

    /// A seed drawn as a family draws its own.
    pub fn seed() -> u64 {
        std::hash::RandomState::new().hash_one(0u8)
    }

    /// promtrack's family (its table), with `series` already created.
    pub fn table<'a>(series: &[Labels<'a>]) -> Family<Labels<'a>, Counter> {
        let family = Family::<Labels<'a>, Counter>::new(REQUESTS_NAME, HELP)
            .label_names(["method", "status"]);
        for labels in series {
            family.with(labels);
        }
        family
    }

    pub type Papaya = papaya::HashMap<Key, Counter, PassThrough>;

    /// A papaya map holding `series`.
    pub fn papaya(series: &[Labels<'_>], seed: u64) -> Papaya {
        let map = Papaya::with_hasher(PassThrough);
        for labels in series {
            papaya_inc(&map, labels, seed);
        }
        map
    }

    /// Finds or creates the series of `labels` and adds one, as `Family::with(..).inc()` does.
    #[inline(always)]
    pub fn papaya_inc(map: &Papaya, labels: &Labels<'_>, seed: u64) {
        let map = map.pin();
        index_bench::with_key(labels, seed, |key| match map.get(&Query(key)) {
            Some(counter) => counter.inc(),
            None => papaya_create(&map, key),
        })
    }

    #[cold]
    #[inline(never)]
    fn papaya_create(
        map: &papaya::HashMapRef<'_, Key, Counter, PassThrough, impl papaya::Guard>,
        key: LookupKey<'_>,
    ) {
        map.get_or_insert_with(Key(key.to_stored()), index_bench::counter)
            .inc();
    }

    pub type Scc = scc::HashMap<Key, Counter, PassThrough>;

    /// An scc map holding `series`.
    pub fn scc(series: &[Labels<'_>], seed: u64) -> Scc {
        let map = Scc::with_hasher(PassThrough);
        for labels in series {
            scc_inc(&map, labels, seed);
        }
        map
    }

    /// Finds or creates the series of `labels` and adds one, as `Family::with(..).inc()` does.
    #[inline(always)]
    pub fn scc_inc(map: &Scc, labels: &Labels<'_>, seed: u64) {
        index_bench::with_key(labels, seed, |key| {
            if map
                .read_sync(&Query(key), |_, counter| counter.inc())
                .is_none()
            {
                scc_create(map, key);
            }
        })
    }

    #[cold]
    #[inline(never)]
    fn scc_create(map: &Scc, key: LookupKey<'_>) {
        map.entry_sync(Key(key.to_stored()))
            .or_insert_with(index_bench::counter)
            .get()
            .inc();
    }

    /// Like `two_threads`, but each thread is told which it is (0 or 1).
    pub fn two_threads_each(b: &mut Bencher<'_>, inc: impl Fn(usize) + Sync) {
        b.iter_custom(|iters| {
            super::pinned::run(|thread| {
                for _ in 0..iters {
                    inc(thread);
                }
            })
        });
    }
}

// --------------------------------------------------------------------------------------------
// Groups
// --------------------------------------------------------------------------------------------

fn counter_inc_resolved(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_inc_resolved");

    let counter = prom::counter();
    g.bench_function("prometheus", |b| {
        b.iter(|| {
            counter.inc();
        })
    });

    let counter = pclient::counter();
    // `inc` returns the previous value; a caller drops it (using it costs a `lock xadd`).
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            counter.inc();
        })
    });

    let recorder = metrics_rs::recorder();
    let counter = metrics_rs::counter(&recorder);
    g.bench_function("metrics", |b| {
        b.iter(|| {
            counter.increment(1);
        })
    });

    let counter = measured_::counter();
    g.bench_function("measured", |b| {
        b.iter(|| {
            counter.inc();
        })
    });

    let family = promtrack_::counter();
    let counter = family.with(&());
    g.bench_function("promtrack", |b| {
        b.iter(|| {
            counter.inc();
        })
    });

    g.finish();
}

fn counter_lookup_2labels(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_lookup_2labels");
    let (method, status) = request_labels();
    // Each iteration reads the values through `black_box`, so nothing is hoisted out of the loop.
    let labels = || (black_box(method.as_str()), black_box(status.as_str()));

    let vec = prom::counter_vec();
    g.bench_function("prometheus", |b| {
        b.iter(|| {
            let (method, status) = labels();
            vec.with_label_values(&[method, status]).inc();
        })
    });

    let family = pclient::counter_vec();
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            let (method, status) = labels();
            let key = pclient::Request {
                method: method.to_owned(),
                status: status.to_owned(),
            };
            family.get_or_create(&key).inc();
        })
    });

    let recorder = metrics_rs::counter_vec();
    g.bench_function("metrics", |b| {
        b.iter(|| {
            let (method, status) = labels();
            metrics::with_local_recorder(&recorder, || {
                metrics::counter!(REQUESTS_NAME, "method" => method.to_owned(), "status" => status.to_owned())
                    .increment(1);
            })
        })
    });

    let vec = measured_::counter_vec();
    g.bench_function("measured", |b| {
        b.iter(|| {
            let (method, status) = labels();
            vec.inc(measured_::Request { method, status });
        })
    });

    let family = promtrack_::counter_vec();
    g.bench_function("promtrack", |b| {
        b.iter(|| {
            let (method, status) = labels();
            family.with(&[method, status]).inc();
        })
    });

    g.finish();
}

fn histogram_observe(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram_observe");

    let histogram = prom::histogram();
    g.bench_function("prometheus", |b| {
        let mut values = Observations::new();
        b.iter(|| {
            histogram.observe(values.next());
        })
    });

    let histogram = pclient::histogram();
    g.bench_function("prometheus-client", |b| {
        let mut values = Observations::new();
        b.iter(|| {
            histogram.observe(values.next());
        })
    });

    let recorder = metrics_rs::recorder();
    let histogram = metrics_rs::histogram(&recorder);
    let handle = recorder.handle();
    g.bench_function("metrics", |b| {
        let mut values = Observations::new();
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(METRICS_DRAIN_EVERY);
                for _ in 0..chunk {
                    histogram.record(values.next());
                }
                // Bucketing happens here for this crate (see the module docs).
                handle.run_upkeep();
                left -= chunk;
            }
            start.elapsed()
        })
    });

    let histogram = measured_::histogram();
    g.bench_function("measured", |b| {
        let mut values = Observations::new();
        b.iter(|| {
            histogram.observe(values.next());
        })
    });

    let family = promtrack_::histogram();
    let histogram = family.with(&());
    g.bench_function("promtrack", |b| {
        let mut values = Observations::new();
        b.iter(|| {
            histogram.observe(values.next());
        })
    });

    g.finish();
}

fn encode_text(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_text");
    // Milliseconds per iteration: flat sampling keeps the group within its measurement time.
    g.sampling_mode(SamplingMode::Flat).sample_size(30);
    let labels = scrape_labels();

    let registry = prom::scrape(&labels);
    note_output("prometheus", prom::encode(&registry).as_bytes());
    g.bench_function("prometheus", |b| b.iter(|| prom::encode(&registry)));
    drop(registry);

    let registry = pclient::scrape(&labels);
    note_output("prometheus-client", pclient::encode(&registry).as_bytes());
    g.bench_function("prometheus-client", |b| {
        b.iter(|| pclient::encode(&registry))
    });
    drop(registry);

    let (recorder, handle) = metrics_rs::scrape(&labels);
    note_output("metrics", metrics_rs::encode(&handle).as_bytes());
    g.bench_function("metrics", |b| b.iter(|| metrics_rs::encode(&handle)));
    drop((recorder, handle));

    let scrape = measured_::scrape(&labels);
    note_output("measured", &measured_::encode(&scrape));
    g.bench_function("measured", |b| b.iter(|| measured_::encode(&scrape)));
    drop(scrape);

    let scrape = promtrack_::scrape(&labels);
    note_output("promtrack", &promtrack_::encode(&scrape));
    g.bench_function("promtrack", |b| b.iter(|| promtrack_::encode(&scrape)));
    drop(scrape);

    g.finish();
}

fn counter_inc_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_inc_contended");
    eprintln!(
        "counter_inc_contended: each thread pinned to a CPU of its own: {}",
        pinned::pinned()
    );

    let counter = prom::counter();
    g.bench_function("prometheus", |b| {
        two_threads(b, || {
            counter.inc();
        })
    });

    let counter = pclient::counter();
    g.bench_function("prometheus-client", |b| {
        two_threads(b, || {
            counter.inc();
        })
    });

    let recorder = metrics_rs::recorder();
    let counter = metrics_rs::counter(&recorder);
    g.bench_function("metrics", |b| {
        two_threads(b, || {
            counter.increment(1);
        })
    });

    let counter = measured_::counter();
    g.bench_function("measured", |b| {
        two_threads(b, || {
            counter.inc();
        })
    });

    let family = promtrack_::counter();
    let counter = family.with(&());
    g.bench_function("promtrack", |b| {
        two_threads(b, || {
            counter.inc();
        })
    });

    g.finish();
}

/// promtrack's table against map crates on the lookup of `counter_lookup_2labels` (see the
/// module docs). Each function builds its own fixture, so the indexes share no cache lines.
fn counter_lookup_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_lookup_index");
    let (method, status) = request_labels();
    let post = black_box(String::from("POST"));
    let seed = index::seed();
    // Read through `black_box` on each iteration, as in `counter_lookup_2labels`.
    let labels = || [black_box(method.as_str()), black_box(status.as_str())];
    // Thread 0 looks up (`GET`, `200`), thread 1 (`POST`, `200`).
    let own_labels = |thread: usize| {
        let m = if thread == 0 { &method } else { &post };
        [black_box(m.as_str()), black_box(status.as_str())]
    };
    let one: &[index::Labels<'_>] = &[["GET", "200"]];
    let both: &[index::Labels<'_>] = &[["GET", "200"], ["POST", "200"]];

    let family = index::table(one);
    g.bench_function("1_thread/table", |b| {
        b.iter(|| {
            let [method, status] = labels();
            family.with(&[method, status]).inc();
        })
    });
    let map = index::papaya(one, seed);
    g.bench_function("1_thread/papaya", |b| {
        b.iter(|| index::papaya_inc(&map, &labels(), seed))
    });
    let map = index::scc(one, seed);
    g.bench_function("1_thread/scc", |b| {
        b.iter(|| index::scc_inc(&map, &labels(), seed))
    });

    let family = index::table(one);
    g.bench_function("2_threads/table", |b| {
        two_threads(b, || {
            let [method, status] = labels();
            family.with(&[method, status]).inc();
        })
    });
    let map = index::papaya(one, seed);
    g.bench_function("2_threads/papaya", |b| {
        two_threads(b, || index::papaya_inc(&map, &labels(), seed))
    });
    let map = index::scc(one, seed);
    g.bench_function("2_threads/scc", |b| {
        two_threads(b, || index::scc_inc(&map, &labels(), seed))
    });

    let family = index::table(both);
    g.bench_function("2_threads_distinct/table", |b| {
        index::two_threads_each(b, |t| {
            let [method, status] = own_labels(t);
            family.with(&[method, status]).inc();
        })
    });
    let map = index::papaya(both, seed);
    g.bench_function("2_threads_distinct/papaya", |b| {
        index::two_threads_each(b, |t| index::papaya_inc(&map, &own_labels(t), seed))
    });
    let map = index::scc(both, seed);
    g.bench_function("2_threads_distinct/scc", |b| {
        index::two_threads_each(b, |t| index::scc_inc(&map, &own_labels(t), seed))
    });

    g.finish();
}

criterion_group!(
    core,
    counter_inc_resolved,
    counter_lookup_2labels,
    counter_lookup_2labels_static,
    histogram_lookup_3labels_static,
    histogram_observe,
    encode_text,
    counter_inc_contended,
    counter_lookup_index
);
criterion_main!(core);

// --------------------------------------------------------------------------------------------
// Static families, run-time label values (issue 12.1)
// --------------------------------------------------------------------------------------------
//
// | group                             | what one iteration is                                     |
// |-----------------------------------|-----------------------------------------------------------|
// | `counter_lookup_2labels_static`   | as `counter_lookup_2labels`, on a family in a `static`    |
// | `histogram_lookup_3labels_static` | find the series for three run-time string labels          |
// |                                   | (`method`, `route`, `status`) in a `static`, one observe  |
//
// What services write: the family is a `static` (`LazyLock`, or promtrack's `family!`), and the
// label values are a request's borrowed `&str`s, so the label type cannot borrow them for
// `'static`. promtrack's family stores `[String; N]` and is queried with `[&str; N]` (no
// allocation on a hit); rust-prometheus and measured take `&str`s as in the local groups;
// prometheus-client and metrics copy the values into owned keys, as in `counter_lookup_2labels`.
// Each series is created before the measurement: every iteration is a hit.

/// The run-time label values of `histogram_lookup_3labels_static`.
fn route_labels() -> (String, String, String) {
    (
        black_box(String::from("GET")),
        black_box(String::from("/api/v1/users/{id}")),
        black_box(String::from("200")),
    )
}

mod statics {
    use super::*;

    pub static PROM_COUNTERS: LazyLock<prometheus::IntCounterVec> =
        LazyLock::new(prom::counter_vec);
    pub static PROM_HISTOGRAMS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
        let vec = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(LATENCY_NAME, HELP).buckets(BUCKETS.to_vec()),
            &["method", "route", "status"],
        )
        .unwrap();
        let (method, route, status) = route_labels();
        vec.with_label_values(&[&method, &route, &status]);
        vec
    });

    /// Owned keys, as in `pclient`.
    #[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
    pub struct RouteRequest {
        pub method: String,
        pub route: String,
        pub status: String,
    }

    type PclientHistograms = prometheus_client::metrics::family::Family<
        RouteRequest,
        prometheus_client::metrics::histogram::Histogram,
        fn() -> prometheus_client::metrics::histogram::Histogram,
    >;

    pub static PCLIENT_COUNTERS: LazyLock<
        prometheus_client::metrics::family::Family<
            pclient::Request,
            prometheus_client::metrics::counter::Counter,
        >,
    > = LazyLock::new(pclient::counter_vec);
    pub static PCLIENT_HISTOGRAMS: LazyLock<PclientHistograms> = LazyLock::new(|| {
        let family = PclientHistograms::new_with_constructor(|| {
            prometheus_client::metrics::histogram::Histogram::new(BUCKETS)
        });
        let (method, route, status) = route_labels();
        let _ = family.get_or_create(&RouteRequest {
            method,
            route,
            status,
        });
        family
    });

    #[derive(Clone, Copy, measured::LabelGroup)]
    #[label(set = RouteRequestSet)]
    pub struct MeasuredRouteRequest<'a> {
        #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
        pub method: &'a str,
        #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
        pub route: &'a str,
        #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
        pub status: &'a str,
    }

    pub static MEASURED_COUNTERS: LazyLock<measured::CounterVec<measured_::RequestSet>> =
        LazyLock::new(measured_::counter_vec);
    pub static MEASURED_HISTOGRAMS: LazyLock<measured::HistogramVec<RouteRequestSet, 11>> =
        LazyLock::new(|| {
            let vec = measured::HistogramVec::with_metadata(
                measured::metric::histogram::Thresholds::with_buckets(BUCKETS),
            );
            let (method, route, status) = route_labels();
            vec.observe(
                MeasuredRouteRequest {
                    method: &method,
                    route: &route,
                    status: &status,
                },
                0.0,
            );
            vec
        });

    promtrack::family! {
        /// Owned label storage, queried with borrowed values.
        pub static PROMTRACK_COUNTERS: promtrack::Family<[String; 2], promtrack::Counter> =
            ("static_requests_total", "Benchmark metric.", label_names = ["method", "status"]);
        pub static PROMTRACK_HISTOGRAMS: promtrack::Family<[String; 3], promtrack::Histogram> = (
            "static_latency_seconds",
            "Benchmark metric.",
            label_names = ["method", "route", "status"]
        );
    }
}

fn counter_lookup_2labels_static(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_lookup_2labels_static");
    let (method, status) = request_labels();
    let labels = || (black_box(method.as_str()), black_box(status.as_str()));

    LazyLock::force(&statics::PROM_COUNTERS);
    g.bench_function("prometheus", |b| {
        b.iter(|| {
            let (method, status) = labels();
            statics::PROM_COUNTERS
                .with_label_values(&[method, status])
                .inc();
        })
    });

    LazyLock::force(&statics::PCLIENT_COUNTERS);
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            let (method, status) = labels();
            let key = pclient::Request {
                method: method.to_owned(),
                status: status.to_owned(),
            };
            statics::PCLIENT_COUNTERS.get_or_create(&key).inc();
        })
    });

    // No family object to hold in a `static`: the recorder is the registry, as in the local group.
    let recorder = metrics_rs::counter_vec();
    g.bench_function("metrics", |b| {
        b.iter(|| {
            let (method, status) = labels();
            metrics::with_local_recorder(&recorder, || {
                metrics::counter!(REQUESTS_NAME, "method" => method.to_owned(), "status" => status.to_owned())
                    .increment(1);
            })
        })
    });

    LazyLock::force(&statics::MEASURED_COUNTERS);
    g.bench_function("measured", |b| {
        b.iter(|| {
            let (method, status) = labels();
            statics::MEASURED_COUNTERS.inc(measured_::Request { method, status });
        })
    });

    statics::PROMTRACK_COUNTERS.with(&["GET", "200"]);
    g.bench_function("promtrack", |b| {
        b.iter(|| {
            let (method, status) = labels();
            statics::PROMTRACK_COUNTERS.with(&[method, status]).inc();
        })
    });

    g.finish();
}

fn histogram_lookup_3labels_static(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram_lookup_3labels_static");
    let (method, route, status) = route_labels();
    let labels = || {
        (
            black_box(method.as_str()),
            black_box(route.as_str()),
            black_box(status.as_str()),
        )
    };

    LazyLock::force(&statics::PROM_HISTOGRAMS);
    g.bench_function("prometheus", |b| {
        let mut values = Observations::new();
        b.iter(|| {
            let (method, route, status) = labels();
            statics::PROM_HISTOGRAMS
                .with_label_values(&[method, route, status])
                .observe(values.next());
        })
    });

    LazyLock::force(&statics::PCLIENT_HISTOGRAMS);
    g.bench_function("prometheus-client", |b| {
        let mut values = Observations::new();
        b.iter(|| {
            let (method, route, status) = labels();
            let key = statics::RouteRequest {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_owned(),
            };
            statics::PCLIENT_HISTOGRAMS
                .get_or_create(&key)
                .observe(values.next());
        })
    });

    // As in `histogram_observe`, drained by `run_upkeep` every `METRICS_DRAIN_EVERY` records.
    let recorder = metrics_rs::recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_histogram!(LATENCY_NAME, HELP);
        metrics::histogram!(LATENCY_NAME, "method" => "GET", "route" => "/api/v1/users/{id}", "status" => "200")
            .record(0.0);
    });
    let handle = recorder.handle();
    g.bench_function("metrics", |b| {
        let mut values = Observations::new();
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(METRICS_DRAIN_EVERY);
                metrics::with_local_recorder(&recorder, || {
                    for _ in 0..chunk {
                        let (method, route, status) = labels();
                        metrics::histogram!(LATENCY_NAME, "method" => method.to_owned(), "route" => route.to_owned(), "status" => status.to_owned())
                            .record(values.next());
                    }
                });
                handle.run_upkeep();
                left -= chunk;
            }
            start.elapsed()
        })
    });

    LazyLock::force(&statics::MEASURED_HISTOGRAMS);
    g.bench_function("measured", |b| {
        let mut values = Observations::new();
        b.iter(|| {
            let (method, route, status) = labels();
            statics::MEASURED_HISTOGRAMS.observe(
                statics::MeasuredRouteRequest {
                    method,
                    route,
                    status,
                },
                values.next(),
            );
        })
    });

    statics::PROMTRACK_HISTOGRAMS.with(&["GET", "/api/v1/users/{id}", "200"]);
    g.bench_function("promtrack", |b| {
        let mut values = Observations::new();
        b.iter(|| {
            let (method, route, status) = labels();
            statics::PROMTRACK_HISTOGRAMS
                .with(&[method, route, status])
                .observe(values.next());
        })
    });

    g.finish();
}
