//! Every gauge mode against its Python meaning, with live and dead worker processes, before
//! and after the dead ones are compacted; and a forked child writing to a file of its own.

mod multiprocess_support;
use multiprocess_support::*;

#[test]
fn worker() {
    worker_if_asked();
}

fn g(fams: &[promtrack::model::MetricFamily], mode: &str) -> Option<f64> {
    gauge(fams, &format!("g_{mode}"), &[])
}

fn g_pid(fams: &[promtrack::model::MetricFamily], mode: &str, pid: u32) -> Option<f64> {
    gauge(fams, &format!("g_{mode}"), &[("pid", &pid.to_string())])
}

const MODES: [&str; 10] = [
    "all",
    "liveall",
    "sum",
    "livesum",
    "max",
    "livemax",
    "min",
    "livemin",
    "mostrecent",
    "livemostrecent",
];

#[test]
fn every_mode_means_what_it_means_in_python() {
    let dir = temp_dir("gauges");
    let mut a = Worker::start(&dir);
    let mut b = Worker::start(&dir);
    let mut c = Worker::start(&dir);
    let (pa, pb, pc) = (a.pid(), b.pid(), c.pid());
    // Set in the order a, c, b: b (the maximum) is the most recent.
    for (w, v) in [(&mut a, 1.0), (&mut c, 3.0), (&mut b, 5.0)] {
        for m in MODES {
            w.ok(&format!("gauge {m} {v}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let fams = scrape_no_compaction(&dir);
    for (pid, v) in [(pa, 1.0), (pb, 5.0), (pc, 3.0)] {
        assert_eq!(g_pid(&fams, "all", pid), Some(v));
        assert_eq!(g_pid(&fams, "liveall", pid), Some(v));
    }
    assert_eq!(g(&fams, "sum"), Some(9.0));
    assert_eq!(g(&fams, "livesum"), Some(9.0));
    assert_eq!(g(&fams, "max"), Some(5.0));
    assert_eq!(g(&fams, "min"), Some(1.0));
    assert_eq!(g(&fams, "mostrecent"), Some(5.0));
    assert_eq!(g(&fams, "livemostrecent"), Some(5.0));

    // b dies by SIGKILL: `live*` drop it at once; `all` keeps it while its file is there.
    b.kill9();
    let fams = scrape_no_compaction(&dir);
    assert_eq!(g_pid(&fams, "all", pb), Some(5.0));
    assert_eq!(g_pid(&fams, "liveall", pb), None);
    assert_eq!(g_pid(&fams, "liveall", pa), Some(1.0));
    assert_eq!(g(&fams, "sum"), Some(9.0));
    assert_eq!(g(&fams, "livesum"), Some(4.0));
    assert_eq!(g(&fams, "max"), Some(5.0));
    assert_eq!(g(&fams, "livemax"), Some(3.0));
    assert_eq!(g(&fams, "min"), Some(1.0));
    assert_eq!(g(&fams, "livemin"), Some(1.0));
    assert_eq!(g(&fams, "mostrecent"), Some(5.0));
    assert_eq!(g(&fams, "livemostrecent"), Some(3.0));

    // After compaction the archive holds b's sum, max, min and mostrecent; its `all` series
    // is dropped (documented: Python keeps it forever).
    let fams = scrape(&dir);
    assert_eq!(g_pid(&fams, "all", pb), None);
    assert_eq!(g_pid(&fams, "all", pc), Some(3.0));
    assert_eq!(g(&fams, "sum"), Some(9.0));
    assert_eq!(g(&fams, "livesum"), Some(4.0));
    assert_eq!(g(&fams, "max"), Some(5.0));
    assert_eq!(g(&fams, "livemax"), Some(3.0));
    assert_eq!(g(&fams, "mostrecent"), Some(5.0));
    assert_eq!(g(&fams, "livemostrecent"), Some(3.0));

    // a exits cleanly (folds itself): only c is live.
    a.exit();
    let fams = scrape(&dir);
    assert_eq!(g(&fams, "sum"), Some(9.0));
    assert_eq!(g(&fams, "livesum"), Some(3.0));
    assert_eq!(g(&fams, "min"), Some(1.0));
    assert_eq!(g(&fams, "livemin"), Some(3.0));
    assert_eq!(g(&fams, "max"), Some(5.0));
    assert_eq!(g(&fams, "livemax"), Some(3.0));
    assert_eq!(g_pid(&fams, "liveall", pa), None);
    // c sets again: now the most recent everywhere.
    c.ok("gauge mostrecent 0.5");
    c.ok("gauge livemostrecent 0.5");
    let fams = scrape(&dir);
    assert_eq!(g(&fams, "mostrecent"), Some(0.5));
    assert_eq!(g(&fams, "livemostrecent"), Some(0.5));
    c.kill9();
    let fams = scrape(&dir);
    assert_eq!(g(&fams, "livesum"), None, "no live process left");
    assert_eq!(g(&fams, "sum"), Some(9.0));
    assert_eq!(g(&fams, "mostrecent"), Some(0.5));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_forked_child_writes_its_own_file() {
    let dir = temp_dir("fork");
    let mut w = Worker::start(&dir);
    let parent = w.pid();
    let child: u32 = w.send("fork 5").parse().unwrap();
    let fams = scrape_no_compaction(&dir);
    // Without the fork handler the child's `set(2)` would have landed in the parent's file.
    assert_eq!(g_pid(&fams, "all", parent), Some(1.0));
    assert_eq!(g_pid(&fams, "all", child), Some(2.0));
    assert_eq!(counter(&fams, "jobs_total", &[("k", "fork")]), 6.0);
    w.kill9();
    let fams = scrape(&dir);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "fork")]), 6.0);
    assert_eq!(files(&dir), ["archive.db", "compact.lock"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
