//! Memory per series: promtrack against the peer crates, counted by a global allocator wrapper.
//!
//! ```text
//! cargo bench -p promtrack-benches --bench memory              # every crate and shape, 3 runs each
//! cargo bench -p promtrack-benches --bench memory -- --runs 5  # more fresh processes per cell
//! ```
//!
//! Each (crate, shape) cell is measured in [`RUNS`] fresh processes (this binary runs itself with
//! `--child <crate> <shape>`), and every figure is the median of those runs, so one process's
//! allocator history (freed blocks reused, arenas already grown) never leaks into another cell.
//! A child builds its inputs (the label values as `String`s, and for the crates whose lookups
//! take owned keys the keys themselves), then the crate's registry and one empty registered family,
//! and takes a snapshot; then it creates the shape's `N` series (one update each, as a first
//! request would), lets the crate settle (`metrics`' upkeep, which moves raw histogram samples into
//! buckets), and takes a second snapshot. Per series is the difference over `N`: the empty registry
//! and the inputs are in both snapshots and cancel out. What a snapshot holds:
//!
//! * `bytes`: heap bytes requested and still held (`Layout::size` of every live block), the
//!   crate's own figure, independent of the allocator;
//! * `usable`: the same blocks as glibc sized them (`malloc_usable_size`), which adds rounding to
//!   16 bytes and the slack of over-aligned blocks; not the chunk headers;
//! * `allocs` and `reallocs`: calls made while the series were created, transient ones included
//!   (`allocs` is what "allocations per new series" counts);
//! * `rss`: resident set size from `/proc/self/statm`, which adds chunk headers, fragmentation and
//!   page granularity: the machine's view, noisier than the others.
//!
//! Why a bench target and not an example: the peers are dev-dependencies of this crate only, and
//! `cargo bench` builds with the optimised profile every other comparison here uses; with
//! `harness = false` the binary is an ordinary `main`, so it can be its own child process.
//!
//! Shapes (label values the same length in both counter shapes, so only sharing differs):
//!
//! | shape            | metric                                | labels and values                                               |
//! |------------------|---------------------------------------|-----------------------------------------------------------------|
//! | `counter_shared` | counter, `N` = 10 000                 | `path` = `/api/v1/items/00NN` (100 values) × `tenant` = `tenant-00NN` (100 values): each value in 100 series |
//! | `counter_unique` | counter, `N` = 10 000                 | `path` = `/api/v1/items/NNNN`, `tenant` = `tenant-NNNN`, both the series' own   |
//! | `histogram`      | histogram, 11 buckets, `N` = 1 000    | `method` (4 values) × `path` (50) × `status` (5)                    |
//!
//! Each crate's own way in, inputs prepared beforehand: `prometheus` and promtrack take `&str`s;
//! `prometheus-client` gets a ready key struct of owned `String`s by reference (it clones it on a
//! miss); `metrics` gets a ready `metrics::Key` through `Recorder::register_*`, what its macros
//! call (the exporter clones it); `measured` interns the `&str`s in a `lasso::ThreadedRodeo` per
//! label (its documented way for values known only at run time, as in `core`), the rodeo counted.
//!
//! The last line is `result: <crate>.<shape>.<figure>=<per series> …` for `scripts/benchmarks.py`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

// --------------------------------------------------------------------------------------------
// The counting allocator
// --------------------------------------------------------------------------------------------

/// The system allocator, counting what passes through it.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static USABLE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static REALLOCS: AtomicUsize = AtomicUsize::new(0);

/// The size glibc gave the block at `p`, or its requested size elsewhere.
fn usable(p: *mut u8, requested: usize) -> isize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `p` is a live block from the system allocator (glibc's malloc family).
    let size = unsafe { libc::malloc_usable_size(p.cast()) };
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let size = {
        let _ = p;
        requested
    };
    let _ = requested;
    size as isize
}

// SAFETY: every call is forwarded to `System` unchanged; the wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            USABLE.fetch_add(usable(p, layout.size()), Ordering::Relaxed);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            USABLE.fetch_add(usable(p, layout.size()), Ordering::Relaxed);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        USABLE.fetch_sub(usable(p, layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's block and layout, forwarded.
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_usable = usable(p, layout.size());
        // SAFETY: the caller's block, layout and size, forwarded.
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            USABLE.fetch_add(usable(q, new_size) - old_usable, Ordering::Relaxed);
            REALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What a child reads before and after creating its series.
#[derive(Clone, Copy)]
struct Snapshot {
    bytes: isize,
    usable: isize,
    allocs: usize,
    reallocs: usize,
    rss: isize,
}

fn snapshot() -> Snapshot {
    // Read the counters after statm: reading it allocates (the file's contents).
    let rss = resident_bytes();
    Snapshot {
        bytes: LIVE.load(Ordering::Relaxed),
        usable: USABLE.load(Ordering::Relaxed),
        allocs: ALLOCS.load(Ordering::Relaxed),
        reallocs: REALLOCS.load(Ordering::Relaxed),
        rss,
    }
}

/// Resident set size, from the second field of `/proc/self/statm` (pages); 0 where there is none.
fn resident_bytes() -> isize {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as isize;
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<isize>().ok())
        .map_or(0, |pages| pages * page)
}

// --------------------------------------------------------------------------------------------
// Shapes
// --------------------------------------------------------------------------------------------

const SHAPES: [&str; 3] = ["counter_shared", "counter_unique", "histogram"];
const CRATES: [&str; 5] = [
    "prometheus",
    "prometheus-client",
    "metrics",
    "measured",
    "promtrack",
];
/// Fresh processes per (crate, shape), unless `--runs` says otherwise.
const RUNS: usize = 3;

const COUNTER_SERIES: usize = 10_000;
const HISTOGRAM_SERIES: usize = 1_000;
const COUNTER_NAME: &str = "requests_total";
const HISTOGRAM_NAME: &str = "request_duration_seconds";
const HELP: &str = "Benchmark metric.";
/// Prometheus' default buckets, as in `core`.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const STATUSES: [&str; 5] = ["200", "201", "400", "404", "500"];

/// The label values of every series of a shape, as owned strings made before the first snapshot.
enum Inputs {
    /// (`path`, `tenant`) per counter series.
    Counter(Vec<[String; 2]>),
    /// (`method`, `path`, `status`) per histogram series.
    Histogram(Vec<[String; 3]>),
}

fn inputs(shape: &str) -> Inputs {
    let path = |i: usize| format!("/api/v1/items/{i:04}");
    let tenant = |i: usize| format!("tenant-{i:04}");
    match shape {
        "counter_shared" => Inputs::Counter(
            (0..COUNTER_SERIES)
                .map(|i| [path(i % 100), tenant(i / 100)])
                .collect(),
        ),
        "counter_unique" => {
            Inputs::Counter((0..COUNTER_SERIES).map(|i| [path(i), tenant(i)]).collect())
        }
        "histogram" => Inputs::Histogram(
            (0..HISTOGRAM_SERIES)
                .map(|i| {
                    [
                        METHODS[i % 4].to_owned(),
                        path(i / 4 % 50),
                        STATUSES[i / 200].to_owned(),
                    ]
                })
                .collect(),
        ),
        other => panic!("unknown shape `{other}`; shapes: {SHAPES:?}"),
    }
}

/// The observation recorded in the `i`-th histogram series: spread over the buckets.
fn observation(i: usize) -> f64 {
    [0.003, 0.02, 0.04, 0.2, 0.7, 3.0, 0.09, 12.0][i % 8]
}

/// One crate's run of one shape: builds the empty registry, calls `before`, creates the series,
/// calls `after`, and keeps everything alive until then.
type Measure = fn(&Inputs, &mut dyn FnMut());

// --------------------------------------------------------------------------------------------
// The crates
// --------------------------------------------------------------------------------------------

/// tikv/rust-prometheus.
fn prometheus_(inputs: &Inputs, mark: &mut dyn FnMut()) {
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
    let registry = Registry::new();
    match inputs {
        Inputs::Counter(values) => {
            let vec =
                IntCounterVec::new(Opts::new(COUNTER_NAME, HELP), &["path", "tenant"]).unwrap();
            registry.register(Box::new(vec.clone())).unwrap();
            mark();
            for [p, t] in values {
                vec.with_label_values(&[p.as_str(), t.as_str()]).inc();
            }
            mark();
        }
        Inputs::Histogram(values) => {
            let vec = HistogramVec::new(
                HistogramOpts::new(HISTOGRAM_NAME, HELP).buckets(BUCKETS.to_vec()),
                &["method", "path", "status"],
            )
            .unwrap();
            registry.register(Box::new(vec.clone())).unwrap();
            mark();
            for (i, [m, p, s]) in values.iter().enumerate() {
                vec.with_label_values(&[m.as_str(), p.as_str(), s.as_str()])
                    .observe(observation(i));
            }
            mark();
        }
    }
    black_box(&registry);
}

/// prometheus/client_rust.
fn prometheus_client_(inputs: &Inputs, mark: &mut dyn FnMut()) {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct CounterKey {
        path: String,
        tenant: String,
    }
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct HistogramKey {
        method: String,
        path: String,
        status: String,
    }
    fn new_histogram() -> Histogram {
        Histogram::new(BUCKETS)
    }

    let mut registry = Registry::default();
    match inputs {
        Inputs::Counter(values) => {
            let keys: Vec<CounterKey> = values
                .iter()
                .map(|[p, t]| CounterKey {
                    path: p.clone(),
                    tenant: t.clone(),
                })
                .collect();
            let family = Family::<CounterKey, Counter>::default();
            registry.register("requests", "Benchmark metric", family.clone());
            mark();
            for key in &keys {
                family.get_or_create(key).inc();
            }
            mark();
        }
        Inputs::Histogram(values) => {
            let keys: Vec<HistogramKey> = values
                .iter()
                .map(|[m, p, s]| HistogramKey {
                    method: m.clone(),
                    path: p.clone(),
                    status: s.clone(),
                })
                .collect();
            let family = Family::<HistogramKey, Histogram, fn() -> Histogram>::new_with_constructor(
                new_histogram,
            );
            registry.register(HISTOGRAM_NAME, "Benchmark metric", family.clone());
            mark();
            for (i, key) in keys.iter().enumerate() {
                family.get_or_create(key).observe(observation(i));
            }
            mark();
        }
    }
    black_box(&registry);
}

/// metrics + metrics-exporter-prometheus.
fn metrics_(inputs: &Inputs, mark: &mut dyn FnMut()) {
    use metrics::{Key, Label, Level, Metadata, Recorder};
    use metrics_exporter_prometheus::PrometheusBuilder;

    let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
    let recorder = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    match inputs {
        Inputs::Counter(values) => {
            let keys: Vec<Key> = values
                .iter()
                .map(|[p, t]| {
                    Key::from_parts(
                        COUNTER_NAME,
                        vec![
                            Label::new("path", p.clone()),
                            Label::new("tenant", t.clone()),
                        ],
                    )
                })
                .collect();
            mark();
            for key in &keys {
                recorder.register_counter(key, &metadata).increment(1);
            }
            handle.run_upkeep();
            mark();
        }
        Inputs::Histogram(values) => {
            let keys: Vec<Key> = values
                .iter()
                .map(|[m, p, s]| {
                    Key::from_parts(
                        HISTOGRAM_NAME,
                        vec![
                            Label::new("method", m.clone()),
                            Label::new("path", p.clone()),
                            Label::new("status", s.clone()),
                        ],
                    )
                })
                .collect();
            mark();
            for (i, key) in keys.iter().enumerate() {
                recorder
                    .register_histogram(key, &metadata)
                    .record(observation(i));
            }
            handle.run_upkeep();
            mark();
        }
    }
    black_box(&recorder);
}

/// measured, run-time strings interned per label (see the module docs).
fn measured_(inputs: &Inputs, mark: &mut dyn FnMut()) {
    use measured::lasso::ThreadedRodeo;
    use measured::metric::histogram::Thresholds;
    use measured::{CounterVec, HistogramVec, LabelGroup};

    #[derive(Clone, Copy, LabelGroup)]
    #[label(set = CounterSet)]
    struct CounterLabels<'a> {
        #[label(dynamic_with = ThreadedRodeo, default)]
        path: &'a str,
        #[label(dynamic_with = ThreadedRodeo, default)]
        tenant: &'a str,
    }
    #[derive(Clone, Copy, LabelGroup)]
    #[label(set = HistogramSet)]
    struct HistogramLabels<'a> {
        #[label(dynamic_with = ThreadedRodeo, default)]
        method: &'a str,
        #[label(dynamic_with = ThreadedRodeo, default)]
        path: &'a str,
        #[label(dynamic_with = ThreadedRodeo, default)]
        status: &'a str,
    }

    match inputs {
        Inputs::Counter(values) => {
            let vec = CounterVec::<CounterSet>::new();
            mark();
            for [path, tenant] in values {
                vec.inc(CounterLabels { path, tenant });
            }
            mark();
            black_box(&vec);
        }
        Inputs::Histogram(values) => {
            let vec =
                HistogramVec::<HistogramSet, 11>::with_metadata(Thresholds::with_buckets(BUCKETS));
            mark();
            for (i, [method, path, status]) in values.iter().enumerate() {
                vec.observe(
                    HistogramLabels {
                        method,
                        path,
                        status,
                    },
                    observation(i),
                );
            }
            mark();
            black_box(&vec);
        }
    }
}

/// promtrack.
fn promtrack_(inputs: &Inputs, mark: &mut dyn FnMut()) {
    use promtrack::{Counter, Family, Histogram, Registry};
    let registry = Registry::new();
    match inputs {
        Inputs::Counter(values) => {
            let family = Family::<[&str; 2], Counter>::new(COUNTER_NAME, HELP)
                .label_names(["path", "tenant"]);
            registry.register(&family).unwrap();
            mark();
            for [p, t] in values {
                family.with(&[p.as_str(), t.as_str()]).inc();
            }
            mark();
            black_box(&family);
        }
        Inputs::Histogram(values) => {
            let family = Family::<[&str; 3], Histogram>::new(HISTOGRAM_NAME, HELP)
                .label_names(["method", "path", "status"])
                .buckets(&BUCKETS);
            registry.register(&family).unwrap();
            mark();
            for (i, [m, p, s]) in values.iter().enumerate() {
                family
                    .with(&[m.as_str(), p.as_str(), s.as_str()])
                    .observe(observation(i));
            }
            mark();
            black_box(&family);
        }
    }
    black_box(&registry);
}

fn measure_of(krate: &str) -> Measure {
    match krate {
        "prometheus" => prometheus_,
        "prometheus-client" => prometheus_client_,
        "metrics" => metrics_,
        "measured" => measured_,
        "promtrack" => promtrack_,
        other => panic!("unknown crate `{other}`; crates: {CRATES:?}"),
    }
}

// --------------------------------------------------------------------------------------------
// Parent and child
// --------------------------------------------------------------------------------------------

/// The figures of one child, totals over its `n` series.
struct Figures {
    n: usize,
    bytes: f64,
    usable: f64,
    allocs: f64,
    reallocs: f64,
    rss: f64,
}

const FIGURES: [&str; 5] = ["bytes", "usable", "allocs", "reallocs", "rss"];

impl Figures {
    fn get(&self, name: &str) -> f64 {
        match name {
            "bytes" => self.bytes,
            "usable" => self.usable,
            "allocs" => self.allocs,
            "reallocs" => self.reallocs,
            "rss" => self.rss,
            _ => unreachable!(),
        }
    }
}

/// In the child: measures one crate on one shape and prints `n=… bytes=… …` (totals).
fn child(krate: &str, shape: &str) {
    let inputs = inputs(shape);
    let n = match &inputs {
        Inputs::Counter(v) => v.len(),
        Inputs::Histogram(v) => v.len(),
    };
    let mut marks = Vec::with_capacity(2);
    measure_of(krate)(&inputs, &mut || marks.push(snapshot()));
    let [before, after] = marks[..] else {
        panic!("{krate} took {} snapshots instead of 2", marks.len());
    };
    println!(
        "n={n} bytes={} usable={} allocs={} reallocs={} rss={}",
        after.bytes - before.bytes,
        after.usable - before.usable,
        after.allocs - before.allocs,
        after.reallocs - before.reallocs,
        after.rss - before.rss,
    );
}

/// In the parent: runs a child and reads its figures.
fn run_child(krate: &str, shape: &str) -> Figures {
    let exe = std::env::current_exe().expect("the path of this binary");
    let out = Command::new(exe)
        .args(["--child", krate, shape])
        .output()
        .expect("running a child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child for {krate} {shape} failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> f64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}=` in the child's output: {stdout}"))
    };
    Figures {
        n: field("n") as usize,
        bytes: field("bytes"),
        usable: field("usable"),
        allocs: field("allocs"),
        reallocs: field("reallocs"),
        rss: field("rss"),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2]);
        return;
    }
    // `cargo bench` passes `--bench`; anything else is ours.
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .map(|i| {
            args.get(i + 1)
                .and_then(|r| r.parse::<usize>().ok())
                .filter(|&r| r > 0)
                .expect("--runs takes a positive number")
        })
        .unwrap_or(RUNS);

    let mut result = Vec::new();
    println!("per series, median of {runs} fresh processes each");
    for shape in SHAPES {
        println!(
            "\n{shape}\n{:>18} {:>7} {:>7} {:>7} {:>8} {:>7}",
            "crate", "bytes", "usable", "allocs", "reallocs", "rss"
        );
        for krate in CRATES {
            let runs: Vec<Figures> = (0..runs).map(|_| run_child(krate, shape)).collect();
            let n = runs[0].n as f64;
            let per = |name: &str| median(runs.iter().map(|f| f.get(name) / n).collect());
            println!(
                "{krate:>18} {:>7.1} {:>7.1} {:>7.2} {:>8.2} {:>7.1}",
                per("bytes"),
                per("usable"),
                per("allocs"),
                per("reallocs"),
                per("rss")
            );
            for figure in FIGURES {
                result.push(format!("{krate}.{shape}.{figure}={:.2}", per(figure)));
            }
            result.push(format!("{krate}.{shape}.n={}", runs[0].n));
        }
    }
    println!("\nresult: runs={runs} {}", result.join(" "));
}
