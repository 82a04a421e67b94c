//! A live worker's file truncated again and again (as a process of the same user or a disk tool
//! could) while another process scrapes the directory: the scraper reads files by copying them
//! (runtime/src/multiprocess/read.rs), so it survives — no `SIGBUS` — counts the file as
//! skipped whenever it is short, and the other workers' totals stay exact throughout.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

mod multiprocess_support;
use multiprocess_support::*;

#[test]
fn worker() {
    worker_if_asked();
}

/// Files skipped by a collector so far, whatever the reason.
fn skipped(fams: &[promtrack::model::MetricFamily]) -> f64 {
    ["corrupt", "io", "unknown_version"]
        .iter()
        .map(|r| read_errors(fams, r))
        .sum()
}

#[test]
fn a_file_truncated_under_scrapes_is_skipped_and_counted_and_the_others_stay_exact() {
    let dir = temp_dir("truncation");
    let mut victim = Worker::start(&dir);
    victim.ok("inc victim 7");
    victim.ok("obs 0.5 3");
    let path = victim.send("file");
    let mut others: Vec<Worker> = (0..3).map(|_| Worker::start(&dir)).collect();
    for w in &mut others {
        w.ok("inc other 5");
        w.ok("obs 0.5 2");
    }
    // The victim is idle from here on (blocked on its stdin), so its file holds still and can
    // be put back as it was after every cut; truncating it under a writer that is writing
    // would kill the writer, which is not what this test is about.
    let original = std::fs::read(&path).unwrap();
    let used = u64::from_ne_bytes(original[16..24].try_into().unwrap()) as usize;
    // Into the header, between its fields, into records, to just short of `used`, to `used`
    // exactly (the allocated tail only: the file still reads whole), and to nothing.
    let cuts: Vec<usize> = vec![0, 8, 20, 63, 64, used / 3, used / 2 + 3, used - 8, used, 1];
    let stop = Arc::new(AtomicBool::new(false));
    let truncations = Arc::new(AtomicU64::new(0));
    let cutter = {
        let (stop, truncations, path) = (stop.clone(), truncations.clone(), path.clone());
        let original = original.clone();
        std::thread::spawn(move || {
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let cut = cuts[i % cuts.len()];
                file.set_len(cut as u64).unwrap();
                truncations.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
                file.write_all_at(&original[cut..], cut as u64).unwrap();
                i += 1;
            }
        })
    };
    let collector = promtrack::multiprocess::DirCollector::new(&dir).unwrap();
    let (mut read_whole, mut read_skipped, mut before) = (0, 0, 0.0);
    let mut scrapes = 0;
    while scrapes < 200 || (read_skipped < 5 && scrapes < 20_000) {
        scrapes += 1;
        let fams = collector.collect_families();
        let now = skipped(&fams);
        let victim_seen = value(&fams, "jobs_total", &[("k", "victim")]).is_some();
        assert_eq!(counter(&fams, "jobs_total", &[("k", "other")]), 15.0);
        let files = gauge(&fams, "promtrack_multiprocess_files", &[]).unwrap();
        if victim_seen {
            // Read whole, with exactly what it holds, and not counted.
            assert_eq!(counter(&fams, "jobs_total", &[("k", "victim")]), 7.0);
            assert_eq!(histogram(&fams, "latency_seconds"), (9, 4.5));
            assert_eq!((now - before, files), (0.0, 4.0), "scrape {scrapes}");
            read_whole += 1;
        } else {
            // Skipped, and counted once.
            assert_eq!(histogram(&fams, "latency_seconds"), (6, 3.0));
            assert_eq!((now - before, files), (1.0, 3.0), "scrape {scrapes}");
            read_skipped += 1;
        }
        before = now;
    }
    stop.store(true, Ordering::Relaxed);
    cutter.join().unwrap();
    assert!(
        read_skipped >= 5,
        "{scrapes} scrapes during {} truncations never met a short file",
        truncations.load(Ordering::Relaxed)
    );
    // Put back, the file reads whole again, and its writer lived through it all.
    victim.ok("inc victim 1");
    let fams = collector.collect_families();
    assert_eq!(counter(&fams, "jobs_total", &[("k", "victim")]), 8.0);
    assert_eq!(skipped(&fams), before);
    eprintln!(
        "{scrapes} scrapes: {read_whole} read the truncated file whole, {read_skipped} skipped it"
    );
    drop(others);
    std::fs::remove_dir_all(&dir).unwrap();
}
