//! Link-time registration: what the macros declare is in the very first scrape, before any
//! instrumented code ran. A test binary of its own, so that nothing touches the default registry
//! before the scrape.

use promtrack as metrics;

#[metrics::counter(
    "r_never_called_total",
    "Never called.",
    labels(route = "/a", method = "GET")
)]
#[allow(dead_code)]
fn never_called() {}

#[metrics::histogram("r_dynamic_seconds", "Dynamic labels.", labels(user = name))]
#[allow(dead_code)]
fn dynamic(name: &str) -> usize {
    name.len()
}

#[metrics::gauge("r_in_progress", "Running.")]
#[allow(dead_code)]
async fn gauge_never_called() {}

mod nested {
    use promtrack::{Counter, Family};
    promtrack::family! {
        pub static UNUSED: Family<(), Counter> = ("r_family_total", "Standalone.");
    }
}

#[test]
fn the_first_scrape_shows_every_declared_family_and_static_series_at_zero() {
    let text = metrics::expose::encode_to_string(
        metrics::default_registry(),
        metrics::expose::Format::Text,
    );
    for expected in [
        "# HELP r_never_called_total Never called.\n# TYPE r_never_called_total counter\n",
        "r_never_called_total{route=\"/a\",method=\"GET\"} 0\n",
        "# HELP r_dynamic_seconds Dynamic labels.\n# TYPE r_dynamic_seconds histogram\n",
        "# TYPE r_in_progress gauge\n",
        "r_in_progress 0\n",
        "# TYPE r_family_total counter\n",
        "r_family_total 0\n",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // Dynamic labels: the family is there, but no series until a call says which.
    assert!(!text.contains("r_dynamic_seconds_count"), "{text}");
    metrics::check_declarations().unwrap();
}
