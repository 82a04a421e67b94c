//! Prints an exposition whose label values are as hostile as UTF-8 allows — quotes,
//! backslashes, line feeds, emoji, the empty string, 10 KB of text — so that CI can check it
//! with parsers promtrack did not write (`promtool`, the Python client's strict parsers).
//!
//! `cargo run -p promtrack-examples --bin hostile_labels -- [text|openmetrics]`

use promtrack::expose::{Format, encode_to_string};
use promtrack::{Counter, Family, Histogram, Info, Registry};

fn main() {
    let format = match std::env::args().nth(1).as_deref() {
        Some("openmetrics") => Format::OpenMetrics,
        Some("text") | None => Format::Text,
        Some(other) => {
            eprintln!("unknown format `{other}`: use `text` or `openmetrics`");
            std::process::exit(2);
        }
    };
    let long = "x\\\"\n".repeat(2_500); // 10 000 bytes, every one of them needing care
    let values: [&str; 9] = [
        "plain",
        "",
        "quote \" inside",
        "back\\slash",
        "line\nfeed",
        "emoji 😀 and ünïcödé",
        "trailing backslash \\",
        "{braces},commas=\"equals\"",
        &long,
    ];

    let registry = Registry::new();
    let requests = Family::<[&str; 1], Counter>::new(
        "hostile_requests_total",
        "Help with \\ backslash,\nnewline and \"quotes\".",
    )
    .label_names(["value"]);
    let latency = Family::<[&str; 1], Histogram>::new("hostile_latency_seconds", "Latency.")
        .label_names(["value"])
        .buckets(&[1e-12, 0.5, 1e21]);
    let info =
        Family::<[&str; 1], Info>::new("hostile_build_info", "Build.").label_names(["value"]);
    for family in [
        registry.register(&requests),
        registry.register(&latency),
        registry.register(&info),
    ] {
        if let Err(e) = family {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    for (i, v) in values.iter().enumerate() {
        requests.with(&[v]).inc_by(i as f64 + 0.5);
        latency.with(&[v]).observe(i as f64 * 0.25);
        info.with(&[v]);
    }
    print!("{}", encode_to_string(&registry, format));
}
