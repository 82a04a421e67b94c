//! Exemplars across real worker processes: each worker's exemplar slots live in its own file,
//! the directory's OpenMetrics scrape shows the newest exemplar over the live workers per
//! counter series and per bucket, and a worker's exemplars are gone once it died and its file
//! was folded into the archive (its totals stay). The same holds for native histograms, whose
//! exemplars travel in protobuf's native field.

mod multiprocess_support;
use multiprocess_support::*;

#[path = "checker_support/mod.rs"]
mod checker_support;

use promtrack::expose::{Format, encode_to_string};
use promtrack::multiprocess::DirCollector;

#[test]
fn worker() {
    worker_if_asked();
}

const TA: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TB: &str = "0af7651916cd43dd8448eb211c80319c";
const TC: &str = "11111111111111111111111111111111";

/// The directory's OpenMetrics exposition.
fn openmetrics(dir: &std::path::Path) -> String {
    let registry = promtrack::Registry::new();
    registry.register_collector(DirCollector::new(dir).unwrap());
    encode_to_string(&registry, Format::OpenMetrics)
}

/// The exposition line that starts with `prefix`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in\n{text}"))
}

#[test]
fn a_workers_exemplar_is_scraped_from_its_file_and_dropped_once_it_died_and_was_folded() {
    let dir = temp_dir("exemplars");
    let mut a = Worker::start(&dir);
    let mut b = Worker::start(&dir);
    a.ok(&format!("exinc x {TA}"));
    a.ok(&format!("exobs 0.5 {TA}"));
    // Newer, in another process: B's counter exemplar replaces A's in the merged series;
    // its observation lands in another bucket, so both buckets show one.
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.ok(&format!("exinc x {TB}"));
    b.ok(&format!("exobs 0.05 {TB}"));

    let text = openmetrics(&dir);
    let counter = line(&text, "jobs_total{k=\"x\"}");
    assert!(
        counter.starts_with(&format!(
            "jobs_total{{k=\"x\"}} 2 # {{trace_id=\"{TB}\"}} 1 "
        )),
        "{counter}"
    );
    let le_01 = line(&text, "latency_seconds_bucket{le=\"0.1\"}");
    assert!(
        le_01.contains(&format!("# {{trace_id=\"{TB}\"}} 0.05 ")),
        "{le_01}"
    );
    let le_1 = line(&text, "latency_seconds_bucket{le=\"1\"}");
    assert!(
        le_1.contains(&format!("# {{trace_id=\"{TA}\"}} 0.5 ")),
        "{le_1}"
    );
    assert!(
        !line(&text, "latency_seconds_bucket{le=\"+Inf\"}").contains('#'),
        "no exemplar in an empty bucket"
    );
    // The slots are in the workers' files: the model carries them too (protobuf reads these).
    let fams = scrape(&dir);
    let series = &family(&fams, "jobs_total").unwrap().series[0];
    assert_eq!(series.exemplars.len(), 1);
    assert_eq!(series.exemplars[0].as_ref().unwrap().labels[0].1, TB);

    // B dies (SIGKILL): its exemplars go with its file at the next compacting scrape; A's stay,
    // and the totals keep B's counts.
    b.kill9();
    let text = openmetrics(&dir);
    assert_eq!(files(&dir).len(), 3, "A's file, the archive, the lock");
    let counter = line(&text, "jobs_total{k=\"x\"}");
    assert!(
        counter.starts_with(&format!(
            "jobs_total{{k=\"x\"}} 2 # {{trace_id=\"{TA}\"}} 1 "
        )),
        "{counter}"
    );
    let le_01 = line(&text, "latency_seconds_bucket{le=\"0.1\"}");
    assert!(
        !le_01.contains('#'),
        "the dead worker's exemplar is gone: {le_01}"
    );
    assert!(line(&text, "latency_seconds_count").starts_with("latency_seconds_count 2"));
    assert!(
        line(&text, "latency_seconds_bucket{le=\"1\"}").contains(TA),
        "the live worker's stays"
    );

    // A exits cleanly (its file folded at exit): no exemplar left, every total kept.
    a.exit();
    let text = openmetrics(&dir);
    assert!(!text.contains("trace_id"), "{text}");
    assert!(line(&text, "jobs_total{k=\"x\"}").starts_with("jobs_total{k=\"x\"} 2"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Each series keeps its own exemplar, whichever processes wrote its counts; a series whose only
/// exemplar came from a dead process shows none once that process's file was folded.
#[test]
fn exemplars_of_several_series_and_processes_stay_apart() {
    let dir = temp_dir("exemplar-series");
    let mut a = Worker::start(&dir);
    a.ok(&format!("exinc one {TA}"));
    a.ok(&format!("exinc two {TC}"));
    let mut b = Worker::start(&dir);
    b.ok("inc one 5");
    let text = openmetrics(&dir);
    assert!(line(&text, "jobs_total{k=\"one\"}").contains(TA), "{text}");
    assert!(line(&text, "jobs_total{k=\"two\"}").contains(TC), "{text}");
    line(&text, "jobs_total{k=\"one\"} 6 # "); // A's exemplar on the total of both

    a.kill9();
    b.ok("inc two 1");
    let text = openmetrics(&dir);
    assert!(!text.contains("trace_id"), "{text}");
    assert!(line(&text, "jobs_total{k=\"two\"}").starts_with("jobs_total{k=\"two\"} 2"));
    b.exit();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The directory's expositions with exemplars, in OpenMetrics and protobuf, accepted by parsers
/// promtrack did not write.
#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn the_directorys_exemplars_pass_independent_parsers() {
    let dir = temp_dir("exemplar-check");
    let mut a = Worker::start(&dir);
    let mut b = Worker::start(&dir);
    a.ok(&format!("exinc x {TA}"));
    b.ok(&format!("exobs 0.05 {TB}"));
    b.ok(&format!("exobs 5 {TC}"));
    let registry = promtrack::Registry::new();
    registry.register_collector(DirCollector::new(&dir).unwrap());
    for (format, name) in [
        (Format::OpenMetrics, "openmetrics"),
        (Format::Protobuf, "protobuf"),
    ] {
        let mut body = Vec::new();
        promtrack::expose::encode(&registry, format, &mut body);
        let path = dir.join(format!("exposition.{name}"));
        std::fs::write(&path, &body).unwrap();
        let checker = option_env!("PROMTRACK_TESTS_EXPOSITION_CHECK")
            .unwrap_or_else(|| panic!("needs ../shared/tools/exposition-check (see build.rs)"));
        let out = std::process::Command::new(checker)
            .arg(&path)
            .args(["--format", name])
            .output()
            .expect("the checker runs");
        assert!(
            out.status.success(),
            "exposition-check rejects the {name} exposition:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if format == Format::OpenMetrics {
            let text = String::from_utf8(body).unwrap();
            assert!(
                text.contains(TA) && text.contains(TB) && text.contains(TC),
                "{text}"
            );
        }
    }
    a.exit();
    b.exit();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The directory's protobuf exposition, decoded by Python's `protobuf` package, as the
/// `native | exemplar` and `bucket | exemplar` lines of `native_seconds` and `both_seconds`
/// (timestamps checked to be there, then left out), sorted.
fn native_exemplars(dir: &std::path::Path) -> Vec<String> {
    let registry = promtrack::Registry::new();
    registry.register_collector(DirCollector::new(dir).unwrap());
    let mut body = Vec::new();
    promtrack::expose::encode(&registry, Format::Protobuf, &mut body);
    let path = checker_support::write(&body, "mp-native-exemplars.pb");
    checker_support::check(&path, "protobuf", &[]);
    let dump = checker_support::python_pb(checker_support::PB_NATIVE_EXEMPLARS, &path);
    let mut lines: Vec<String> = dump
        .lines()
        .filter(|l| l.starts_with("native_seconds |") || l.starts_with("both_seconds |"))
        .filter(|l| !l.contains("| schema"))
        .map(|l| {
            let (rest, ts) = l.rsplit_once(" | ").unwrap();
            assert!(ts.parse::<f64>().is_ok(), "no timestamp: {l}");
            rest.replace(" | {} | ", " | ")
        })
        .collect();
    lines.sort();
    lines
}

/// A native histogram's exemplars across processes: the newest over the live workers per
/// classic bucket (a native-only histogram has one, its `+Inf`), in the native field and on the
/// buckets; a dead worker's go at compaction, its counts stay.
#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn native_histogram_exemplars_merge_over_live_workers_and_go_with_a_dead_one() {
    let dir = temp_dir("exemplar-native");
    let mut a = Worker::start(&dir);
    let mut b = Worker::start(&dir);
    a.ok(&format!("exnat only 0.25 {TA}"));
    a.ok(&format!("exnat both 0.25 {TA}"));
    // Newer, in the other process: B's replaces A's where they share a bucket.
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.ok(&format!("exnat only 3 {TB}"));
    b.ok(&format!("exnat both 3 {TB}"));

    let ex = |trace: &str, v: &str| format!("{{\"trace_id\": \"{trace}\"}} | {v}");
    let mut want = vec![
        format!("native_seconds | native | {}", ex(TB, "3.0")),
        format!("native_seconds | inf | {}", ex(TB, "3.0")),
        format!("both_seconds | native | {}", ex(TA, "0.25")),
        format!("both_seconds | native | {}", ex(TB, "3.0")),
        format!("both_seconds | 1.0 | {}", ex(TA, "0.25")),
        format!("both_seconds | inf | {}", ex(TB, "3.0")),
    ];
    want.sort();
    assert_eq!(native_exemplars(&dir), want);

    // B dies: its exemplars go with its file at the next compacting scrape, A's come back as the
    // newest left, and both histograms keep B's observation.
    b.kill9();
    let fams = scrape(&dir);
    assert_eq!(histogram(&fams, "native_seconds"), (2, 3.25));
    assert_eq!(histogram(&fams, "both_seconds"), (2, 3.25));
    let mut want = vec![
        format!("native_seconds | native | {}", ex(TA, "0.25")),
        format!("native_seconds | inf | {}", ex(TA, "0.25")),
        format!("both_seconds | native | {}", ex(TA, "0.25")),
        format!("both_seconds | 1.0 | {}", ex(TA, "0.25")),
    ];
    want.sort();
    assert_eq!(native_exemplars(&dir), want);
    a.exit();
    std::fs::remove_dir_all(&dir).unwrap();
}
