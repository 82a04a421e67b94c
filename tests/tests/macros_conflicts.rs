//! Two declarations of one name that disagree: found when the registry is first touched,
//! reported with both places, and never a panic where the later declaration is used.

use promtrack as metrics;

#[metrics::counter("c_jobs_total", "Jobs run.", labels(queue = "email"))]
fn first() {}

#[metrics::counter("c_jobs_total", "Jobs run.", labels(kind = "email"))]
fn second() {}

#[metrics::counter("c_shared_total", "Shared.")]
fn shared_a() {}

#[metrics::counter("c_shared_total", "Shared.")]
fn shared_b() {}

#[test]
fn conflicts_name_both_places_and_fail_fast_at_start_up_only() {
    let err = metrics::check_declarations().unwrap_err().to_string();
    assert!(err.contains("c_jobs_total"), "{err}");
    assert!(err.contains("label names differ"), "{err}");
    // Both declaration sites, file and line.
    let lines: Vec<String> = [6, 9]
        .iter()
        .map(|l| format!("tests/tests/macros_conflicts.rs:{l}"))
        .collect();
    for line in &lines {
        assert!(err.contains(line.as_str()), "{line} not in {err}");
    }

    // Used anyway (a request path): no panic; the later declaration records nothing.
    first();
    second();
    shared_a();
    shared_b();
    assert!(metrics::__private::refused_declarations() >= 1);
    let text = metrics::expose::encode_to_string(
        metrics::default_registry(),
        metrics::expose::Format::Text,
    );
    let jobs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("c_jobs_total{"))
        .collect();
    assert_eq!(jobs.len(), 1, "{text}");
    assert!(jobs[0].ends_with(" 1"), "{text}");
    // Identical declarations share one series.
    assert!(text.contains("c_shared_total 2\n"), "{text}");

    // Serving metrics fails fast, with the same message.
    let panic = std::panic::catch_unwind(metrics::metrics_router::<()>).unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("c_jobs_total"), "{message}");
    // So does adding the default HTTP metrics.
    let panic = std::panic::catch_unwind(metrics::layer).unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("c_jobs_total"), "{message}");
}
