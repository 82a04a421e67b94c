//! What `scripts/callgrind-scrape.sh` counts the instructions of: the `encode_text` fixture of
//! `benches/benches/core.rs` (10 000 counter series labelled `method`, `route`; 1 000 histogram
//! series labelled `route`, Prometheus' 11 default buckets), encoded N times into a new buffer
//! each, as the criterion group does.
//!
//! `scrape_callgrind text|openmetrics|protobuf N`

use std::hint::black_box;

use promtrack::expose::{self, Format};
use promtrack::{Counter, Family, Histogram, Registry};

const OBSERVATIONS: [f64; 8] = [0.003, 0.02, 0.04, 0.2, 0.7, 3.0, 0.09, 12.0];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (format, n) = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("text"), Some(n)) => (Format::Text, n),
        (Some("openmetrics"), Some(n)) => (Format::OpenMetrics, n),
        (Some("protobuf"), Some(n)) => (Format::Protobuf, n),
        _ => {
            eprintln!("usage: scrape_callgrind text|openmetrics|protobuf N");
            std::process::exit(2);
        }
    };
    let n: usize = n.parse().unwrap_or_else(|_| {
        eprintln!("N must be a number of scrapes, not {n:?}");
        std::process::exit(2);
    });

    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    let counter_labels: Vec<(String, String)> = (0..10_000)
        .map(|i| {
            (
                METHODS[i % METHODS.len()].to_owned(),
                format!("/api/v1/items/{}", i / METHODS.len()),
            )
        })
        .collect();
    let histogram_labels: Vec<String> = (0..1_000).map(|i| format!("/api/v1/items/{i}")).collect();

    let registry = Registry::new();
    let counters = Family::<[&str; 2], Counter>::new("http_requests_total", "Benchmark metric.")
        .label_names(["method", "route"]);
    let histograms =
        Family::<[&str; 1], Histogram>::new("http_request_duration_seconds", "Benchmark metric.")
            .label_names(["route"])
            .buckets(promtrack::DEFAULT_BUCKETS);
    registry.register(&counters).unwrap();
    registry.register(&histograms).unwrap();
    for (method, route) in &counter_labels {
        counters.with(&[method.as_str(), route.as_str()]).inc();
    }
    for (i, route) in histogram_labels.iter().enumerate() {
        histograms
            .with(&[route.as_str()])
            .observe(OBSERVATIONS[i % OBSERVATIONS.len()]);
    }

    let mut bytes = 0;
    for _ in 0..n {
        let mut out = Vec::new();
        expose::encode(&registry, format, black_box(&mut out));
        bytes = out.len();
        drop(black_box(out));
    }
    eprintln!("{bytes} bytes per scrape");
}
