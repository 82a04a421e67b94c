//! Exact totals over real worker processes that are killed with SIGKILL, exit cleanly and are
//! restarted, and a bounded directory after many restarts.

mod multiprocess_support;
use multiprocess_support::*;

#[test]
fn worker() {
    worker_if_asked();
}

#[test]
fn totals_are_exact_across_kills_clean_exits_and_restarts() {
    let dir = temp_dir("totals");
    let mut expected = 0u64;
    let mut workers: Vec<Worker> = (0..4).map(|_| Worker::start(&dir)).collect();
    for round in 0..6 {
        for (i, w) in workers.iter_mut().enumerate() {
            let n = 100 + 10 * i as u64 + round;
            w.ok(&format!("inc a {n}"));
            w.ok(&format!("obs 0.5 {n}"));
            expected += n;
        }
        // Scrape from another process while workers live and die.
        let fams = scrape(&dir);
        assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), expected as f64);
        assert_eq!(histogram(&fams, "latency_seconds").0, expected);
        // Kill one with SIGKILL, let another exit cleanly, restart both.
        let killed = workers.remove(0);
        killed.kill9();
        if round % 2 == 0 {
            workers.remove(0).exit();
            workers.push(Worker::start(&dir));
        }
        workers.push(Worker::start(&dir));
        let fams = scrape(&dir);
        assert_eq!(
            counter(&fams, "jobs_total", &[("k", "a")]),
            expected as f64,
            "round {round}"
        );
        let (count, sum) = histogram(&fams, "latency_seconds");
        assert_eq!(count, expected);
        assert_eq!(sum, expected as f64 * 0.5);
        // Dead files were folded: the live workers' files, the archive and the lock.
        assert!(files(&dir).len() <= workers.len() + 2, "{:?}", files(&dir));
    }
    for w in workers {
        w.kill9();
    }
    let fams = scrape(&dir);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), expected as f64);
    assert_eq!(files(&dir), ["archive.db", "compact.lock"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_thousand_restarts_keep_the_directory_small_and_totals_exact() {
    let dir = temp_dir("restarts");
    let live: Vec<Worker> = (0..2)
        .map(|_| {
            let mut w = Worker::start(&dir);
            w.ok("inc a 1");
            w
        })
        .collect();
    let before = std::time::Instant::now();
    let baseline = time_scrape(&dir);
    // 1000 short-lived workers: each counts 3 and exits, half cleanly, half by SIGKILL.
    let restarts = 1000;
    let mut expected = 2u64;
    for i in 0..restarts {
        let mut w = Worker::start(&dir);
        w.ok("inc a 3");
        w.ok("obs 2 1");
        expected += 3;
        if i % 2 == 0 {
            w.exit()
        } else {
            w.kill9()
        }
        if i % 100 == 99 {
            let fams = scrape(&dir);
            assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), expected as f64);
        }
        assert!(files(&dir).len() <= live.len() + 3, "{:?}", files(&dir));
    }
    let fams = scrape(&dir);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), expected as f64);
    assert_eq!(
        histogram(&fams, "latency_seconds"),
        (restarts, 2.0 * restarts as f64)
    );
    assert!(files(&dir).len() <= live.len() + 2, "{:?}", files(&dir));
    let after = time_scrape(&dir);
    eprintln!(
        "1000 restarts in {:?}; scrape before {baseline:?}, after {after:?}",
        before.elapsed()
    );
    for w in live {
        w.kill9();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn time_scrape(dir: &std::path::Path) -> std::time::Duration {
    let collector = promtrack::multiprocess::DirCollector::new(dir).unwrap();
    let start = std::time::Instant::now();
    for _ in 0..20 {
        std::hint::black_box(collector.collect_families());
    }
    start.elapsed() / 20
}

/// A float total (a histogram's `_sum`) never goes backwards when a dead worker's file is
/// folded into the archive. Summed one rounding at a time, it did: 1.0 in the archive and
/// two live workers at 2^-53 each expose 1 + 2^-52; folding one worker rounded
/// 1.0 + 2^-53 to 1.0, and the next scrape exposed 1.0 — one ulp less, which Prometheus takes
/// for a counter reset (`rate()` of the sum then jumps by the whole total). Seen with the
/// load-with-faults script: a worker killed while the service is idle.
#[test]
fn float_totals_never_go_backwards_when_a_dead_file_is_folded() {
    let dir = temp_dir("float-totals");
    let half_ulp = 2f64.powi(-53); // half an ulp of 1.0: 1.0 + half_ulp rounds to 1.0
    let mut first = Worker::start(&dir);
    first.ok("obs 1 1");
    first.exit(); // the archive now holds 1.0
    let mut a = Worker::start(&dir);
    let mut b = Worker::start(&dir);
    a.ok(&format!("obs {half_ulp:?} 1"));
    b.ok(&format!("obs {half_ulp:?} 1"));
    let before = histogram(&scrape(&dir), "latency_seconds").1;
    // The exact sum, rounded once.
    assert_eq!(before, 1.0 + 2f64.powi(-52));
    a.kill9();
    let after_a = histogram(&scrape(&dir), "latency_seconds").1;
    assert!(
        after_a >= before,
        "{before:e} -> {after_a:e} after folding one worker"
    );
    b.kill9();
    let after_b = histogram(&scrape(&dir), "latency_seconds").1;
    assert!(
        after_b >= after_a,
        "{after_a:e} -> {after_b:e} after folding the other"
    );
    // Each fold may round up by one ulp at most: never more than that above the exact sum.
    assert!(after_b <= before + 2.0 * f64::EPSILON, "{after_b:e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Workers create the same series in different orders, and each some of its own: every file's
/// series land in the right rows however they line up with the rows earlier files made (the
/// aggregation tries the row after the last one first, then looks the key up).
#[test]
fn series_created_in_different_orders_sum_exactly() {
    let dir = temp_dir("orders");
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&dir)).collect();
    let orders: [&[&str]; 3] = [
        &["a", "b", "c", "d"],
        &["d", "c", "b", "a"],
        &["b", "x", "a", "d", "y"],
    ];
    for (w, order) in workers.iter_mut().zip(orders) {
        for (n, label) in order.iter().enumerate() {
            w.ok(&format!("inc {label} {}", n + 1));
        }
    }
    let mut expected = std::collections::BTreeMap::<&str, u64>::new();
    for order in orders {
        for (n, label) in order.iter().enumerate() {
            *expected.entry(label).or_default() += n as u64 + 1;
        }
    }
    let fams = scrape(&dir);
    for (label, total) in &expected {
        assert_eq!(
            counter(&fams, "jobs_total", &[("k", label)]),
            *total as f64,
            "k={label}"
        );
    }
    let series = family(&fams, "jobs_total").unwrap().series.len();
    assert_eq!(series, expected.len());
    for w in workers.drain(..) {
        w.kill9();
    }
    // Folded into the archive, in whatever order the dead files are read: the same totals.
    let fams = scrape(&dir);
    for (label, total) in &expected {
        assert_eq!(counter(&fams, "jobs_total", &[("k", label)]), *total as f64);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `used`, the end of a process file's published records (`multiprocess_store/file.rs`).
fn used(file: &str) -> u64 {
    let bytes = std::fs::read(file.trim_start_matches('@')).unwrap();
    u64::from_ne_bytes(bytes[16..24].try_into().unwrap())
}

/// A histogram series observed from several threads of each worker gets stripes, which in
/// multiprocess mode are more records of the same family and key in the worker's file: the
/// aggregate sums them exactly, live and after the workers die (folded into the archive).
#[test]
fn contended_histograms_get_stripes_in_the_file_and_sum_exactly() {
    let dir = temp_dir("stripes");
    let mut workers: Vec<Worker> = (0..2).map(|_| Worker::start(&dir)).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut expected, mut grew) = (0u64, false);
    // Contention is not certain in any one round on a busy machine; a few rounds of four
    // threads each make it so.
    for round in 0..20 {
        for w in &mut workers {
            w.ok("par a 1 0.5 1");
            let file = w.send("file");
            let before = used(&file);
            w.ok("par a 4 0.5 50000");
            expected += 200_001;
            grew |= used(&file) > before;
        }
        let fams = scrape(&dir);
        let (count, sum) = match value(&fams, "par_seconds", &[("k", "a")]) {
            Some(promtrack::model::Value::Histogram { counts, sum, .. }) => {
                (counts.iter().sum::<u64>(), sum)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(count, expected, "round {round}");
        assert_eq!(sum, expected as f64 * 0.5, "round {round}");
        assert_eq!(family(&fams, "par_seconds").unwrap().series.len(), 1);
        if grew && round >= 1 {
            break;
        }
    }
    assert!(
        grew || cores < 2,
        "four threads on {cores} cores never striped the series"
    );
    for w in workers {
        w.kill9();
    }
    let fams = scrape(&dir);
    match value(&fams, "par_seconds", &[("k", "a")]) {
        Some(promtrack::model::Value::Histogram { counts, sum, .. }) => {
            assert_eq!(counts.iter().sum::<u64>(), expected);
            assert_eq!(sum, expected as f64 * 0.5);
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
