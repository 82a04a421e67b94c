//! Instructions per update of `benches/benches/exemplar.rs`' functions, for callgrind:
//! `exemplar_callgrind MODE N` runs N iterations of one. Run it twice, with N and 2N, and divide
//! the difference of the two instruction totals by N (start-up cancels out);
//! `scripts/callgrind-exemplar.sh` does that for every mode.
//!
//! Modes, as the criterion functions: `plain` (`observe(v)`), `with-trace`
//! (`observe_with_trace(v, ctx)`, its own coarse clock read), `with-trace-at` (the caller's
//! clock reading, a `Tick` read once per 1,024 iterations), `with-labels`
//! (`observe_with_exemplar` by hand), `inc`, `inc-trace`, `inc-trace-at`, `clock` (the coarse
//! clock alone). Values cycle over the default buckets as in the criterion bench. Every
//! exemplar after the first of a 90 ms window is skipped, so under callgrind (about 50 times
//! slower than native) nearly every iteration is a skip.

use std::hint::black_box;

use promtrack::__private::{Tick, inc_with_trace_at, observe_with_trace_at};
use promtrack::{Counter, Family, Histogram, TraceContext};

const VALUES: [f64; 8] = [0.003, 0.02, 0.04, 0.07, 0.2, 0.4, 0.9, 3.0];
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let histograms = Family::<(), Histogram>::new("callgrind_exemplar_seconds", "B.");
    let counters = Family::<(), Counter>::new("callgrind_exemplar_total", "B.");
    let (h, c) = (histograms.with(&()), counters.with(&()));
    let ctx = TraceContext::new([0x4b; 16], Some([0x07; 8])).unwrap();
    let values = black_box(VALUES);
    // One exemplar first, so the series' block exists in every mode (as in a busy series).
    h.observe_with_trace(0.1, ctx);
    c.inc_with_trace(ctx);
    let mut tick = Tick::now();
    match mode.as_str() {
        "plain" => (0..n).for_each(|i| h.observe(values[i % 8])),
        "with-trace" => (0..n).for_each(|i| h.observe_with_trace(values[i % 8], *black_box(&ctx))),
        "with-trace-at" => (0..n).for_each(|i| {
            if i % 1024 == 0 {
                tick = Tick::now();
            }
            observe_with_trace_at(h, values[i % 8], *black_box(&ctx), black_box(tick))
        }),
        "with-labels" => (0..n).for_each(|i| {
            let _ = h.observe_with_exemplar(values[i % 8], black_box(&[("trace_id", TRACE)]));
        }),
        "inc" => (0..n).for_each(|_| c.inc()),
        "inc-trace" => (0..n).for_each(|_| c.inc_with_trace(*black_box(&ctx))),
        "inc-trace-at" => (0..n).for_each(|i| {
            if i % 1024 == 0 {
                tick = Tick::now();
            }
            inc_with_trace_at(c, *black_box(&ctx), black_box(tick))
        }),
        "clock" => (0..n).for_each(|_| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a valid, writable timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
            black_box(ts.tv_nsec);
        }),
        _ => {
            eprintln!(
                "usage: exemplar_callgrind plain|with-trace|with-trace-at|with-labels|inc|inc-trace|inc-trace-at|clock N"
            );
            std::process::exit(2);
        }
    }
    black_box((h, c));
}
