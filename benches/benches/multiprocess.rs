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
//! file, no compaction, and encode the Prometheus text). `… -- restarts DIR LIVE SERIES
//! RESTARTS ITERS` keeps LIVE writers of that shape running, times a scrape (with compaction,
//! as in production), then lets RESTARTS more writers of the same shape come and go — half exit
//! cleanly, half are killed with SIGKILL, each followed by a scrape that compacts — and times
//! the scrape again (printed as `key=value` pairs): the archive keeps it close to the first.
//! `… -- gen-native DIR FILES SERIES [MAX_BUCKETS]` writes FILES process files of SERIES native
//! histogram series each (`gen_native_seconds{path}`, native only, `max_buckets` 160 unless
//! given, 20 populated buckets, schema 3 or 2 by file, so the merge reduces), byte by byte in
//! the documented format (runtime/src/multiprocess_store/file.rs: a classic histogram with the
//! native-only placeholder bound, native settings and the native state — the cells a native
//! histogram observes into, `20 + max_buckets` of them — in extension records), as a
//! process that observed them and died leaves them: writing them through the API would take a
//! process per file. `… -- native-scrape FILES SERIES MAX_BUCKETS ITERS` writes such a
//! directory (under the temporary directory, removed after), scrapes it once to warm up, then
//! ITERS times, and prints `result: key=value …` — the directory's size, the wall and the CPU
//! time per scrape: the process's (`cpu_ms`, `getrusage`: every thread, the scrape's copying
//! helpers included) and the scraping thread's alone (`thread_cpu_ms`) — for
//! `scripts/benchmarks.py`.

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
    // Until the parent says `exit` (a clean exit folds this file into the archive) or kills us.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    std::process::exit(0);
}

/// A writer process of the `gen-child` shape, started and ready.
fn spawn_writer(dir: &str, series: usize) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["gen-child", &series.to_string()])
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// Mean time of `iters` scrapes of `dir` into Prometheus text, and the text's length.
fn time_scrapes(registry: &promtrack::Registry, iters: u32) -> (f64, usize) {
    let text = promtrack::expose::encode_to_string(registry, promtrack::expose::Format::Text);
    let start = Instant::now();
    for _ in 0..iters {
        black_box(promtrack::expose::encode_to_string(
            registry,
            promtrack::expose::Format::Text,
        ));
    }
    (
        start.elapsed().as_secs_f64() * 1e3 / iters as f64,
        text.len(),
    )
}

/// This thread's time on a CPU so far, in nanoseconds (`None` off Linux).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The process's time on a CPU so far (user and system, every thread, the scrape's copying
/// helpers included), in nanoseconds.
fn process_cpu_ns() -> Option<u64> {
    // SAFETY: `getrusage` writes the `rusage` it is given and nothing else; an all-zero
    // `rusage` is a valid value of that plain C struct.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0).then_some(u)
    }?;
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    Some(ns(usage.ru_utime) + ns(usage.ru_stime))
}

fn native_scrape(files: usize, series: usize, window: usize, iters: u32) {
    let dir = std::env::temp_dir().join(format!("promtrack-native-scrape-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.to_str().unwrap();
    gen_native(path, files, series, window);
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let registry = promtrack::Registry::new();
    registry.register_collector(
        promtrack::multiprocess::DirCollector::new(path)
            .unwrap()
            .compaction(false),
    );
    let (cpu, thread) = (process_cpu_ns(), thread_cpu_ns());
    let (wall_ms, len) = time_scrapes(&registry, iters);
    // `time_scrapes` scrapes once more to warm up, untimed: its CPU time is in the deltas.
    let per_scrape = |a: Option<u64>, b: Option<u64>| {
        a.zip(b).map_or(f64::NAN, |(a, b)| {
            (b - a) as f64 / 1e6 / f64::from(iters + 1)
        })
    };
    let cpu_ms = per_scrape(cpu, process_cpu_ns());
    let thread_cpu_ms = per_scrape(thread, thread_cpu_ns());
    std::fs::remove_dir_all(&dir).unwrap();
    println!(
        "result: files={files} series={series} max_buckets={window} dir_bytes={bytes} \
         text_bytes={len} iters={iters} wall_ms={wall_ms:.1} cpu_ms={cpu_ms:.1} \
         thread_cpu_ms={thread_cpu_ms:.1}"
    );
}

fn restarts(dir: &str, live: usize, series: usize, restarts: usize, iters: u32) {
    let registry = promtrack::Registry::new();
    registry.register_collector(promtrack::multiprocess::DirCollector::new(dir).unwrap());
    let mut writers: Vec<_> = (0..live).map(|_| spawn_writer(dir, series)).collect();
    let (before, _) = time_scrapes(&registry, iters);
    for i in 0..restarts {
        let mut w = spawn_writer(dir, series);
        if i % 2 == 0 {
            use std::io::Write;
            writeln!(w.stdin.as_mut().unwrap(), "exit").unwrap();
        } else {
            w.kill().unwrap();
        }
        w.wait().unwrap();
        black_box(promtrack::expose::encode_to_string(
            &registry,
            promtrack::expose::Format::Text,
        ));
    }
    let files = std::fs::read_dir(dir).unwrap().count();
    let (after, _) = time_scrapes(&registry, iters);
    // key=value, for benches/multiprocess_vs_python.sh to pass on: a scrape with `live` writers
    // before and after `restarts` came and went, and what the directory then held.
    println!(
        "live={live} series={series} restarts={restarts} dir_files={files} before_ms={before:.3} after_ms={after:.3} after_over_before={:.2}",
        after / before
    );
    for mut w in writers.drain(..) {
        w.kill().unwrap();
        w.wait().unwrap();
    }
}

/// One record: `u32 length`, `u16 tag`, `u16 sub-tag`, then `body`, padded to 8 bytes.
fn record(out: &mut Vec<u8>, tag: u16, sub: u16, body: &[u8]) {
    let len = (8 + body.len()).next_multiple_of(8);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&tag.to_ne_bytes());
    out.extend_from_slice(&sub.to_ne_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().next_multiple_of(8), 0);
}

/// An extension record's body (file.rs): distance back, 0, cell count, 0, the cells.
fn extension_body(back: usize, cells: &[u64]) -> Vec<u8> {
    let mut b = Vec::new();
    for w in [back as u32, 0, cells.len() as u32, 0] {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    for c in cells {
        b.extend_from_slice(&c.to_ne_bytes());
    }
    b
}

fn gen_native(dir: &str, files: usize, series: usize, window: usize) {
    use std::os::unix::fs::OpenOptionsExt;
    for f in 0..files {
        let mut out = vec![0u8; 64];
        out[..8].copy_from_slice(b"promtrk\0");
        out[8..12].copy_from_slice(&1u32.to_ne_bytes());
        out[12..16].copy_from_slice(&64u32.to_ne_bytes());
        let id = 0x4e41_0000_0000_0000u64 | f as u64;
        out[24..32].copy_from_slice(&id.to_ne_bytes());
        out[32..36].copy_from_slice(&(f as u32 + 1).to_ne_bytes());
        let schema: i64 = 3 - (f % 2) as i64;
        // The family: histogram, 1 label, native only (one placeholder bound, `f64::MAX`), name,
        // help, label name.
        let family_off = out.len();
        let mut body = vec![3u8, 0];
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend_from_slice(&1u32.to_ne_bytes());
        body.extend_from_slice(&f64::MAX.to_bits().to_ne_bytes());
        for s in ["gen_native_seconds", "Latency.", "path"] {
            body.extend_from_slice(&(s.len() as u32).to_ne_bytes());
            body.extend_from_slice(s.as_bytes());
        }
        record(&mut out, 1, 0, &body);
        let back = out.len() - family_off;
        let settings = [
            schema as u64,
            window as u64,
            0f64.to_bits(),
            0f64.to_bits(),
            1,
        ];
        record(&mut out, 0, 1, &extension_body(back, &settings));
        for i in 0..series {
            let start = out.len();
            let mut body = Vec::new();
            body.extend_from_slice(&(family_off as u32).to_ne_bytes());
            body.extend_from_slice(&3u32.to_ne_bytes());
            body.extend_from_slice(&20u64.to_ne_bytes());
            body.extend_from_slice(&0u64.to_ne_bytes());
            body.extend_from_slice(&(i as f64).to_bits().to_ne_bytes());
            let mut key = format!("/path/{i}").into_bytes();
            key.push(0xFF);
            body.extend_from_slice(&(key.len() as u32).to_ne_bytes());
            body.extend_from_slice(&key);
            record(&mut out, 2, 0, &body);
            // The native state (runtime/src/layout.rs, `native`): generation 0 (so untagged
            // counts), the header, 20 positive buckets from key (i % 7) - 5 in a window centred
            // on key 0 that is the positive sign's alone, as a fresh histogram places it, then
            // the reduction's journal (5 cells, idle: zero).
            let mut state = vec![0u64; 15 + window + 5];
            let offset = -(window as i64 / 2);
            state[2] = schema as u64; // schema
            state[4] = offset as u64; // positive offset
            state[5] = offset as u64; // negative offset
            state[6] = 20; // populated
            state[7] = (i as f64).to_bits(); // sum
            state[9] = window as u64; // the split: all `window` cells positive, none negative
            state[10] = schema as u64; // initial schema
            for b in 0..20i64 {
                let k = b + (i % 7) as i64 - 5;
                if let Ok(at) = usize::try_from(k - offset) {
                    if at < window {
                        state[15 + at] = 1;
                    }
                }
            }
            let back = out.len() - start;
            record(&mut out, 0, 5, &extension_body(back, &state));
        }
        let used = out.len() as u64;
        out[16..24].copy_from_slice(&used.to_ne_bytes());
        let path = format!("{dir}/p-{}-{id:016x}.db", f + 1);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        std::io::Write::write_all(&mut file, &out).unwrap();
    }
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
            let children: Vec<_> = (0..files).map(|_| spawn_writer(dir, series)).collect();
            // SIGKILL: no exit hook, so every process keeps its own file.
            for mut c in children {
                c.kill().unwrap();
                c.wait().unwrap();
            }
        }
        ["gen-child", series] => gen_child(series.parse().unwrap()),
        ["gen-native", dir, files, series] => {
            gen_native(dir, files.parse().unwrap(), series.parse().unwrap(), 160)
        }
        ["gen-native", dir, files, series, window] => gen_native(
            dir,
            files.parse().unwrap(),
            series.parse().unwrap(),
            window.parse().unwrap(),
        ),
        ["native-scrape", files, series, window, iters] => native_scrape(
            files.parse().unwrap(),
            series.parse().unwrap(),
            window.parse().unwrap(),
            iters.parse().unwrap(),
        ),
        ["scrape", dir, iters] => {
            let registry = promtrack::Registry::new();
            registry.register_collector(
                promtrack::multiprocess::DirCollector::new(dir)
                    .unwrap()
                    .compaction(false),
            );
            let (ms, len) = time_scrapes(&registry, iters.parse().unwrap());
            println!("{ms:.3} ms per scrape ({len} bytes of text)");
        }
        ["restarts", dir, live, series, n, iters] => restarts(
            dir,
            live.parse().unwrap(),
            series.parse().unwrap(),
            n.parse().unwrap(),
            iters.parse().unwrap(),
        ),
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
