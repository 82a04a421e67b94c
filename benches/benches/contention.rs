//! One histogram series observed from two threads at once, promtrack against the peer crates
//! (issue 12.2): the duration histogram of a busy route, which every worker thread observes into.
//!
//! ```text
//! cargo bench -p promtrack-benches --bench contention     # the group below
//! scripts/benchmarks.py                                    # every bench → BENCHMARKS.md
//! ```
//!
//! | group                         | what one iteration is                                           |
//! |-------------------------------|-----------------------------------------------------------------|
//! | `histogram_observe_contended` | two threads each observe into the same resolved histogram (11 default buckets); time is wall time / iterations per thread |
//!
//! The fixtures are those of `histogram_observe` in `benches/core.rs` (same buckets, same cycled
//! values, each crate's own hot path; its notes on what "the same work" means apply here): one
//! histogram per crate, shared by both threads, each pinned to a CPU of its own for the sample
//! (`common/pinned.rs`: spawned and pinned outside the timed region, released by a barrier).
//! `metrics-exporter-prometheus` buckets observations at upkeep, so each thread drains it every
//! [`METRICS_DRAIN_EVERY`] of its observations inside the timed loop, as `histogram_observe` does.
//!
//! promtrack's series is striped (`runtime/src/metric/stripes.rs`) during criterion's warm-up,
//! once its sum's compare-exchange has failed often enough: the figures are those of a hot series
//! in a long-running service, which is what the group is about.

use std::hint::black_box;

use criterion::{Bencher, Criterion, criterion_group, criterion_main};

#[path = "common/pinned.rs"]
mod pinned;

/// Prometheus' default buckets (the same 11 in every crate).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Observed values, cycled through: they land in different buckets, one above the last bound.
const OBSERVATIONS: [f64; 8] = [0.003, 0.02, 0.04, 0.2, 0.7, 3.0, 0.09, 12.0];
/// `metrics-exporter-prometheus` drain period, per thread (see the module docs).
const METRICS_DRAIN_EVERY: u64 = 1 << 16;
const LATENCY_NAME: &str = "latency_seconds";
const HELP: &str = "Benchmark metric.";

/// Two threads, each pinned to a CPU of its own (`common/pinned.rs`), each run
/// `observe(iters, values)` once; returns the wall time from a common start until both are done.
fn two_threads(b: &mut Bencher<'_>, observe: impl Fn(u64, &[f64; 8]) + Sync) {
    b.iter_custom(|iters| {
        let values = [black_box(OBSERVATIONS), black_box(OBSERVATIONS)];
        pinned::run(|thread| observe(iters, &values[thread]))
    });
}

/// The loop every crate's function runs: `iters` observations cycling through `values`.
#[inline(always)]
fn each(iters: u64, values: &[f64; 8], mut observe: impl FnMut(f64)) {
    for i in 0..iters {
        observe(values[i as usize % values.len()]);
    }
}

fn histogram_observe_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram_observe_contended");
    eprintln!(
        "histogram_observe_contended: each thread pinned to a CPU of its own: {}",
        pinned::pinned()
    );

    assert_eq!(prometheus::DEFAULT_BUCKETS, &BUCKETS);
    let histogram = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new(LATENCY_NAME, HELP).buckets(BUCKETS.to_vec()),
    )
    .unwrap();
    g.bench_function("prometheus", |b| {
        two_threads(b, |iters, values| {
            each(iters, values, |v| histogram.observe(v))
        })
    });

    let histogram = prometheus_client::metrics::histogram::Histogram::new(BUCKETS);
    g.bench_function("prometheus-client", |b| {
        two_threads(b, |iters, values| {
            each(iters, values, |v| histogram.observe(v))
        })
    });

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .unwrap()
        .build_recorder();
    let histogram = metrics::with_local_recorder(&recorder, || {
        metrics::describe_histogram!(LATENCY_NAME, HELP);
        metrics::histogram!(LATENCY_NAME)
    });
    let handle = recorder.handle();
    g.bench_function("metrics", |b| {
        two_threads(b, |iters, values| {
            let mut left = iters;
            let mut i = 0;
            while left > 0 {
                let chunk = left.min(METRICS_DRAIN_EVERY);
                for _ in 0..chunk {
                    histogram.record(values[i % values.len()]);
                    i += 1;
                }
                // Bucketing happens here for this crate (see the module docs).
                handle.run_upkeep();
                left -= chunk;
            }
        })
    });

    let histogram = measured::Histogram::<11>::with_metadata(
        measured::metric::histogram::Thresholds::with_buckets(BUCKETS),
    );
    g.bench_function("measured", |b| {
        two_threads(b, |iters, values| {
            each(iters, values, |v| histogram.observe(v))
        })
    });

    assert_eq!(promtrack::DEFAULT_BUCKETS, &BUCKETS[..]);
    let family = promtrack::Family::<(), promtrack::Histogram>::new(LATENCY_NAME, HELP)
        .buckets(promtrack::DEFAULT_BUCKETS);
    let histogram = family.with(&());
    g.bench_function("promtrack", |b| {
        two_threads(b, |iters, values| {
            each(iters, values, |v| histogram.observe(v))
        })
    });

    g.finish();
}

criterion_group!(benches, histogram_observe_contended);
criterion_main!(benches);
