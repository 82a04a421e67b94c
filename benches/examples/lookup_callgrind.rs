//! Instructions per lookup of `counter_lookup_2labels_static` and
//! `histogram_lookup_3labels_static` (benches/core.rs), promtrack and rust-prometheus, for
//! callgrind: `lookup_callgrind MODE N` runs N iterations of one case. Run it twice, with N and
//! 2N, and divide the difference of the two instruction totals by N (start-up cancels out);
//! `scripts/callgrind-lookup.sh` does that for the four main modes.
//!
//! Modes: `counter` and `histogram` (promtrack, a `family!` static holding `[String; N]` queried
//! with borrowed `&str`s, a hit), `derived-counter` and `derived-histogram` (the same, the family
//! labelled by a struct deriving `LabelSet` with `String` fields, queried with its borrowed form
//! `…Ref<'_>`), `derived-mixed` (a derived set with a `String`, an enum and a `u16` field),
//! `prom-counter` and `prom-histogram` (rust-prometheus'
//! `with_label_values` on a `static` vec, a hit). Values as in the criterion groups. For
//! splitting a case's cost: `counter-noinc` (the lookup alone), `floor-counter` and
//! `floor-histogram` (the update alone, on a series found once).

use std::hint::black_box;
use std::sync::LazyLock;

promtrack::family! {
    static COUNTERS: promtrack::Family<[String; 2], promtrack::Counter> =
        ("static_requests_total", "Benchmark metric.", label_names = ["method", "status"]);
    static HISTOGRAMS: promtrack::Family<[String; 3], promtrack::Histogram> = (
        "static_latency_seconds",
        "Benchmark metric.",
        label_names = ["method", "route", "status"]
    );
}

/// The derived label sets of the `derived-*` modes, queried with `RequestRef` and `RouteRef`.
#[derive(promtrack::LabelSet)]
struct Request {
    method: String,
    status: String,
}

#[derive(promtrack::LabelSet)]
struct Route {
    method: String,
    route: String,
    status: String,
}

#[derive(promtrack::LabelValue)]
enum Priority {
    Low,
    High,
}

#[derive(promtrack::LabelSet)]
struct Job {
    queue: String,
    priority: Priority,
    attempt: u16,
}

promtrack::family! {
    static DERIVED_JOBS: promtrack::Family<Job, promtrack::Counter> =
        ("derived_jobs_total", "Benchmark metric.");
    static DERIVED_COUNTERS: promtrack::Family<Request, promtrack::Counter> =
        ("derived_requests_total", "Benchmark metric.");
    static DERIVED_HISTOGRAMS: promtrack::Family<Route, promtrack::Histogram> =
        ("derived_latency_seconds", "Benchmark metric.");
}

static PROM_COUNTERS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    prometheus::IntCounterVec::new(
        prometheus::Opts::new("requests_total", "h"),
        &["method", "status"],
    )
    .unwrap()
});
static PROM_HISTOGRAMS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("latency_seconds", "h"),
        &["method", "route", "status"],
    )
    .unwrap()
});

const OBSERVATIONS: [f64; 8] = [0.003, 0.02, 0.07, 0.2, 0.6, 1.5, 4.0, 0.04];

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let (method, route, status) = (
        String::from("GET"),
        String::from("/api/v1/users/{id}"),
        String::from("200"),
    );
    let values = black_box(OBSERVATIONS);
    match mode.as_str() {
        "counter" => {
            COUNTERS.with(&["GET", "200"]);
            for _ in 0..n {
                COUNTERS
                    .with(&[black_box(method.as_str()), black_box(status.as_str())])
                    .inc();
            }
        }
        "histogram" => {
            HISTOGRAMS.with(&["GET", "/api/v1/users/{id}", "200"]);
            for i in 0..n {
                HISTOGRAMS
                    .with(&[
                        black_box(method.as_str()),
                        black_box(route.as_str()),
                        black_box(status.as_str()),
                    ])
                    .observe(values[i % 8]);
            }
        }
        "derived-counter" => {
            let query = |method, status| RequestRef { method, status };
            DERIVED_COUNTERS.with(&query("GET", "200"));
            for _ in 0..n {
                DERIVED_COUNTERS
                    .with(&query(
                        black_box(method.as_str()),
                        black_box(status.as_str()),
                    ))
                    .inc();
            }
        }
        "derived-histogram" => {
            let query = |method, route, status| RouteRef {
                method,
                route,
                status,
            };
            DERIVED_HISTOGRAMS.with(&query("GET", "/api/v1/users/{id}", "200"));
            for i in 0..n {
                DERIVED_HISTOGRAMS
                    .with(&query(
                        black_box(method.as_str()),
                        black_box(route.as_str()),
                        black_box(status.as_str()),
                    ))
                    .observe(values[i % 8]);
            }
        }
        "derived-mixed" => {
            let query = |queue, priority, attempt| JobRef {
                queue,
                priority,
                attempt,
            };
            DERIVED_JOBS.with(&query("email", Priority::High, 3));
            for _ in 0..n {
                let high = black_box(true);
                DERIVED_JOBS
                    .with(&query(
                        black_box(method.as_str()),
                        if high { Priority::High } else { Priority::Low },
                        black_box(3),
                    ))
                    .inc();
            }
        }
        "prom-counter" => {
            PROM_COUNTERS.with_label_values(&["GET", "200"]);
            for _ in 0..n {
                PROM_COUNTERS
                    .with_label_values(&[black_box(method.as_str()), black_box(status.as_str())])
                    .inc();
            }
        }
        "prom-histogram" => {
            PROM_HISTOGRAMS.with_label_values(&["GET", "/api/v1/users/{id}", "200"]);
            for i in 0..n {
                PROM_HISTOGRAMS
                    .with_label_values(&[
                        black_box(method.as_str()),
                        black_box(route.as_str()),
                        black_box(status.as_str()),
                    ])
                    .observe(values[i % 8]);
            }
        }
        "counter-noinc" => {
            COUNTERS.with(&["GET", "200"]);
            for _ in 0..n {
                black_box(COUNTERS.with(&[black_box(method.as_str()), black_box(status.as_str())]));
            }
        }
        "floor-counter" => {
            let c = COUNTERS.with(&["GET", "200"]);
            for _ in 0..n {
                black_box(c).inc();
            }
        }
        "floor-histogram" => {
            let h = HISTOGRAMS.with(&["GET", "/api/v1/users/{id}", "200"]);
            for i in 0..n {
                black_box(h).observe(values[i % 8]);
            }
        }
        _ => {
            eprintln!(
                "usage: lookup_callgrind counter|histogram|derived-counter|derived-histogram|derived-mixed|prom-counter|prom-histogram|counter-noinc|floor-counter|floor-histogram N"
            );
            std::process::exit(2);
        }
    }
}
