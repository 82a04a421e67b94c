//! Multiprocess mode against in-process, and the scrape of a multiprocess directory.
//!
//! ```text
//! cargo bench -p promtrack-benches --bench multiprocess              # hot path, both modes
//! benches/multiprocess_vs_python.sh                                  # scrape vs prometheus_client
//! ```
//!
//! | group | one iteration |
//! |---|---|
//! | `mp_counter_inc/{in_process,multiprocess}` | `+1` on a resolved counter handle |
//! | `mp_counter_lookup_2labels/{..}` | find the series of two string labels, `+1` |
//! | `mp_histogram_observe/{..}` | one observation on a resolved histogram (11 buckets) |
//!
//! Multiprocess mode is process-wide and must be on before the first series exists, so the
//! binary measures in-process first, then runs itself again with `PROMTRACK_BENCH_MP=1` for the
//! multiprocess half (same groups, other function names).
//!
//! The same binary also serves the Python comparison script: `… -- gen DIR FILES SERIES` writes
//! FILES process files of SERIES label values (a counter and a histogram each), and
//! `… -- scrape DIR ITERS` prints the mean time of a scrape of DIR (read and aggregate every
//! file, no compaction, and encode the Prometheus text).

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::Instant;

use criterion::Criterion;
use promtrack::{Counter, Family, Histogram};

const MP_ENV: &str = "PROMTRACK_BENCH_MP";

fn hot_path(c: &mut Criterion, mode: &str) {
    let counter = Family::<(), Counter>::new("bench_jobs_total", "Jobs.");
    let labelled = Family::<[&str; 2], Counter>::new("bench_requests_total", "Requests.")
        .label_names(["method", "status"]);
    let histogram = Family::<(), Histogram>::new("bench_latency_seconds", "Latency.");
    let handle = counter.with(&());
    let h = histogram.with(&());
    labelled.with(&["GET", "200"]).inc();

    c.benchmark_group("mp_counter_inc")
        .bench_function(mode, |b| b.iter(|| black_box(handle).inc()));
    c.benchmark_group("mp_counter_lookup_2labels")
        .bench_function(mode, |b| {
            b.iter(|| labelled.with(black_box(&["GET", "200"])).inc())
        });
    let mut v = 0.0f64;
    c.benchmark_group("mp_histogram_observe")
        .bench_function(mode, |b| {
            b.iter(|| {
                v = if v > 2.0 { 0.0001 } else { v + 0.0137 };
                black_box(h).observe(v)
            })
        });
}

/// One process file of `series` label values: `gen_requests_total{path}` and
/// `gen_latency_seconds{path}` (default buckets). Stays alive until killed by the parent.
fn gen_child(series: usize) {
    let counter = Family::<[String; 1], Counter>::new("gen_requests_total", "Requests.")
        .label_names(["path"]);
    let histogram = Family::<[String; 1], Histogram>::new("gen_latency_seconds", "Latency.")
        .label_names(["path"]);
    for i in 0..series {
        let path = [format!("/path/{i}")];
        counter.with(&path).inc_by(i as f64);
        histogram.with(&path).observe(i as f64 / series as f64);
    }
    println!("ready");
    std::thread::sleep(std::time::Duration::from_secs(3600));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pos: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match pos.as_slice() {
        ["gen", dir, files, series] => {
            let (files, series): (usize, usize) = (files.parse().unwrap(), series.parse().unwrap());
            let mut children = Vec::new();
            for _ in 0..files {
                let mut child = Command::new(std::env::current_exe().unwrap())
                    .args(["gen-child", &series.to_string()])
                    .env("PROMETHEUS_MULTIPROC_DIR", dir)
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut line = String::new();
                std::io::BufRead::read_line(
                    &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
                    &mut line,
                )
                .unwrap();
                children.push(child);
            }
            // SIGKILL: no exit hook, so every process keeps its own file.
            for mut c in children {
                c.kill().unwrap();
                c.wait().unwrap();
            }
        }
        ["gen-child", series] => gen_child(series.parse().unwrap()),
        ["scrape", dir, iters] => {
            let registry = promtrack::Registry::new();
            registry.register_collector(
                promtrack::multiprocess::DirCollector::new(dir)
                    .unwrap()
                    .compaction(false),
            );
            let iters: u32 = iters.parse().unwrap();
            let text =
                promtrack::expose::encode_to_string(&registry, promtrack::expose::Format::Text);
            let start = Instant::now();
            for _ in 0..iters {
                black_box(promtrack::expose::encode_to_string(
                    &registry,
                    promtrack::expose::Format::Text,
                ));
            }
            let per = start.elapsed() / iters;
            println!(
                "{:.3} ms per scrape ({} bytes of text)",
                per.as_secs_f64() * 1e3,
                text.len()
            );
        }
        _ => {
            let mp = std::env::var_os(MP_ENV).is_some();
            let dir = std::env::temp_dir().join(format!("promtrack-bench-{}", std::process::id()));
            if mp {
                promtrack::multiprocess::dir(&dir).unwrap();
            }
            let mut c = Criterion::default().configure_from_args();
            hot_path(&mut c, if mp { "multiprocess" } else { "in_process" });
            c.final_summary();
            if mp {
                let _ = std::fs::remove_dir_all(&dir);
            } else {
                let status = Command::new(std::env::current_exe().unwrap())
                    .args(&args[1..])
                    .env(MP_ENV, "1")
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
    }
}
