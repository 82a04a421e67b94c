//! What an exemplar costs on top of the update it rides on (issue 14).
//!
//! ```text
//! cargo bench -p promtrack-benches --bench exemplar
//! ```
//!
//! | group              | function       | what one iteration is                                        |
//! |--------------------|----------------|--------------------------------------------------------------|
//! | `exemplar_observe` | `plain`        | `observe(v)` on a resolved histogram, 11 default buckets      |
//! |                    | `with_trace`   | `observe_with_trace(v, ctx)`: the layer's form                |
//! |                    | `with_trace_at`| the same with a clock reading the caller took anyway (`Tick`) |
//! |                    | `with_labels`  | `observe_with_exemplar(v, &[("trace_id", "…")])`: by hand      |
//! | `exemplar_inc`     | `plain`        | `inc()` on a resolved counter                                 |
//! |                    | `with_trace`   | `inc_with_trace(ctx)`                                         |
//! |                    | `with_trace_at`| `inc_with_trace_at(ctx, tick)`                                |
//! | `exemplar_clock`   | `coarse_clock` | what a skipped exemplar adds: `CLOCK_MONOTONIC_COARSE`        |
//!
//! Every exemplar after the first of a window is skipped by the rate limit (one per series per
//! 90 ms), so the `with_*` functions measure the steady state of a busy series: the skip path,
//! plus one accepted write per 90 ms. Target (issue 14): `with_trace` at most 2× `plain`.
//! `with_trace_at` passes a `Tick` read once per 1,024 iterations, standing for the one the
//! layer or a timed call has already read to measure the duration: the exemplar's share
//! without a clock read of its own (a fixed reading would never accept again after 90 ms).
//! Instruction counts of the same functions: `scripts/callgrind-exemplar.sh`
//! (`benches/examples/exemplar_callgrind.rs`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use promtrack::__private::{Tick, inc_with_trace_at, observe_with_trace_at};
use promtrack::{Counter, Family, Histogram, TraceContext};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Latency-like values cycling over the default buckets.
struct Values(usize);
impl Values {
    fn next(&mut self) -> f64 {
        const V: [f64; 8] = [0.003, 0.02, 0.04, 0.07, 0.2, 0.4, 0.9, 3.0];
        self.0 = (self.0 + 1) % V.len();
        V[self.0]
    }
}

fn exemplar_observe(c: &mut Criterion) {
    let mut g = c.benchmark_group("exemplar_observe");
    let family = Family::<(), Histogram>::new("bench_exemplar_seconds", "B.");
    let h = family.with(&());
    let ctx = TraceContext::new([0x4b; 16], Some([0x07; 8])).unwrap();
    g.bench_function("plain", |b| {
        let mut v = Values(0);
        b.iter(|| h.observe(v.next()))
    });
    g.bench_function("with_trace", |b| {
        let mut v = Values(0);
        b.iter(|| h.observe_with_trace(v.next(), black_box(ctx)))
    });
    g.bench_function("with_trace_at", |b| {
        let mut v = Values(0);
        let mut tick = Tick::now();
        let mut n = 0u32;
        b.iter(|| {
            n = n.wrapping_add(1);
            if n % 1024 == 0 {
                tick = Tick::now();
            }
            observe_with_trace_at(h, v.next(), black_box(ctx), black_box(tick))
        })
    });
    g.bench_function("with_labels", |b| {
        let mut v = Values(0);
        b.iter(|| {
            let _ = h.observe_with_exemplar(v.next(), black_box(&[("trace_id", TRACE)]));
        })
    });
    g.finish();
}

fn exemplar_inc(c: &mut Criterion) {
    let mut g = c.benchmark_group("exemplar_inc");
    let family = Family::<(), Counter>::new("bench_exemplar_total", "B.");
    let counter = family.with(&());
    let ctx = TraceContext::new([0x4b; 16], None).unwrap();
    g.bench_function("plain", |b| b.iter(|| counter.inc()));
    g.bench_function("with_trace", |b| {
        b.iter(|| counter.inc_with_trace(black_box(ctx)))
    });
    g.bench_function("with_trace_at", |b| {
        let mut tick = Tick::now();
        let mut n = 0u32;
        b.iter(|| {
            n = n.wrapping_add(1);
            if n % 1024 == 0 {
                tick = Tick::now();
            }
            inc_with_trace_at(counter, black_box(ctx), black_box(tick))
        })
    });
    g.finish();
}

fn exemplar_clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("exemplar_clock");
    g.bench_function("coarse_clock", |b| {
        b.iter(|| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a valid, writable timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
            black_box(ts.tv_nsec)
        })
    });
    g.finish();
}

criterion_group!(exemplar, exemplar_observe, exemplar_inc, exemplar_clock);
criterion_main!(exemplar);
