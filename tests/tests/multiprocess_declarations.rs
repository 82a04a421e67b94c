//! `multiprocess::dir()` is a start-up call, so it runs the fail-fast declaration check too:
//! two declarations of one name that disagree come back as its error, naming both places —
//! with the mode on, and the declarations that agree in this process's file.

use promtrack as metrics;

mod multiprocess_support;
use multiprocess_support::*;

#[metrics::counter("d_jobs_total", "Jobs run.", labels(queue = "email"))]
fn first() {}

#[metrics::counter("d_jobs_total", "Jobs run.", labels(kind = "email"))]
fn second() {}

#[metrics::counter("d_fine_total", "Declared once.")]
fn fine() {}

#[test]
fn dir_returns_the_declaration_conflict_with_both_places() {
    let dir = temp_dir("declarations");
    let err = metrics::multiprocess::dir(&dir).unwrap_err().to_string();
    assert!(err.contains("d_jobs_total"), "{err}");
    assert!(err.contains("label names differ"), "{err}");
    for line in [10, 13] {
        let place = format!("tests/tests/multiprocess_declarations.rs:{line}");
        assert!(err.contains(&place), "{place} not in {err}");
    }
    // Calling it again says the same: the check is not a one-shot.
    let again = metrics::multiprocess::dir(&dir).unwrap_err().to_string();
    assert_eq!(again, err);

    // The mode is on and the declarations were registered into this process's file, so a
    // service that chose to go on anyway still counts (and a request path never panics).
    assert!(metrics::multiprocess::is_enabled());
    first();
    second();
    fine();
    let own = metrics::__private::multiprocess_own_file().expect("this process has a file");
    assert!(own.starts_with(&dir), "{own:?}");
    let fams = scrape_no_compaction(&dir);
    assert_eq!(counter(&fams, "d_fine_total", &[]), 1.0);
    // One of the two disagreeing declarations won (link order decides); the other records
    // nothing.
    let jobs = family(&fams, "d_jobs_total").expect("the family that won is exposed");
    assert_eq!(jobs.series.len(), 1, "{jobs:?}");
    assert_eq!(counter(&fams, "d_jobs_total", &[]), 1.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
