//! `native_histogram_observe`: one observation on a resolved histogram, three ways (issue 13).
//!
//! ```text
//! cargo bench -p promtrack-benches --bench native
//! ```
//!
//! | function                    | the histogram                                                     |
//! |-----------------------------|-------------------------------------------------------------------|
//! | `promtrack_classic`         | promtrack, 11 default buckets (as `histogram_observe` in core.rs) |
//! | `promtrack_native`          | promtrack, native only, `NativeConfig::default()` (factor 1.1, 160 buckets) |
//! | `prometheus-client_native`  | prometheus-client 0.26, `Histogram::new_native(NativeHistogramConfig::new(1.1))` |
//!
//! The values cycle through the same eight latencies as core.rs's `histogram_observe`, so every
//! native observation finds its bucket already populated after the first eight (the steady
//! state of a service). prometheus-client's native histogram is a `parking_lot::Mutex` around
//! a sorted bucket vector; promtrack's is lock-free (`runtime/src/metric/native.rs`).
//! Targets: promtrack's native observe at most 1.5 × its classic one, and at most
//! prometheus-client's native one, same run.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

const OBSERVATIONS: [f64; 8] = [0.003, 0.02, 0.04, 0.2, 0.7, 3.0, 0.09, 12.0];

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

fn native_histogram_observe(c: &mut Criterion) {
    let mut g = c.benchmark_group("native_histogram_observe");

    let classic = promtrack::Family::<(), promtrack::Histogram>::new("classic_seconds", "C.")
        .buckets(promtrack::DEFAULT_BUCKETS);
    let h = classic.with(&());
    g.bench_function("promtrack_classic", |b| {
        let mut values = Observations::new();
        b.iter(|| h.observe(values.next()))
    });

    let native = promtrack::Family::<(), promtrack::Histogram>::new("native_seconds", "N.")
        .native(promtrack::NativeConfig::default());
    let h = native.with(&());
    g.bench_function("promtrack_native", |b| {
        let mut values = Observations::new();
        b.iter(|| h.observe(values.next()))
    });

    use prometheus_client::metrics::histogram::{Histogram, NativeHistogramConfig};
    let h = Histogram::new_native(NativeHistogramConfig::new(1.1));
    g.bench_function("prometheus-client_native", |b| {
        let mut values = Observations::new();
        b.iter(|| h.observe(values.next()))
    });

    g.finish();
}

criterion_group!(native, native_histogram_observe);
criterion_main!(native);
