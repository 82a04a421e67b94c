//! Shared by the `multiprocess_*` tests: worker processes (this test binary run again with
//! `PROMTRACK_TEST_WORKER=1`) driven line by line over stdin, and readers of the aggregate.
//!
//! Worker commands (each answered with one line, `@ok` or `@` and the requested value):
//! - `inc <label> <n>`: `jobs_total{k=<label>}` += n
//! - `exinc <label> <trace>`: `jobs_total{k=<label>}` += 1 with the exemplar `trace_id=<trace>`
//!   (32 lowercase hex digits)
//! - `exobs <value> <trace>`: `latency_seconds` observes `value` with that exemplar
//! - `obs <value> <n>`: `latency_seconds` observes `value` n times
//! - `par <label> <threads> <value> <n>`: `threads` threads at once each observe `value` n times
//!   into `par_seconds{k=<label>}` (one hot series: it gets stripes, see `metric/stripes.rs`)
//! - `gauge <mode> <value>`: sets `g_<mode>` (a gauge in that mode) to `value`
//! - `grow <from> <to>`: creates `grow_total{i=…}` series `from..to`, each at 1
//! - `fork <n>`: sets `g_all` to 1 and adds 1 to `jobs_total{k="fork"}`, then forks a child
//!   that sets `g_all` to 2, adds n and dies without exit hooks; replies with the child's pid
//! - `nat <only|both> <value> <n>`: observes `value` n times into `native_seconds` (native
//!   only) or `both_seconds` (bound 1 and native), both with `max_buckets` 8 so that a wide
//!   spread of values makes them reduce; declared at their first use
//! - `exnat <only|both> <value> <trace>`: one observation of `value` into the same histogram,
//!   with the exemplar `trace_id=<trace>`
//! - `natkill <step> <value>`: arms the failpoint that aborts this process at the `step`th store
//!   of its native reductions (`__private::kill_at_reduction_step`), observes `value` once into
//!   `native_seconds` (after a `nat`), and if still alive replies with the stores its reductions
//!   made
//! - `file`: prints this process's file path
//! - `exit`: exits cleanly (folding its file into the archive)
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use promtrack::model::{MetricFamily, Value};
use promtrack::multiprocess::DirCollector;
use promtrack::{Counter, Family, Gauge, GaugeMode, Histogram, NativeConfig};

const WORKER_ENV: &str = "PROMTRACK_TEST_WORKER";

/// The worker's native histogram `which` (`only` or `both`), declaring both at the first use.
fn native_family<'a>(
    native: &'a mut Option<[Family<(), Histogram>; 2]>,
    which: &str,
) -> &'a Family<(), Histogram> {
    let [only, both] = native.get_or_insert_with(|| {
        let config = NativeConfig::default().max_buckets(8);
        [
            Family::<(), Histogram>::new("native_seconds", "Native only.").native(config.clone()),
            Family::<(), Histogram>::new("both_seconds", "Classic and native.")
                .buckets(&[1.0])
                .native(config.classic(true)),
        ]
    });
    if which == "only" { only } else { both }
}

/// The worker's body, when this binary was started as a worker; returns at once otherwise.
pub fn worker_if_asked() {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    let jobs = Family::<[String; 1], Counter>::new("jobs_total", "Jobs.").label_names(["k"]);
    let grow = Family::<[String; 1], Counter>::new("grow_total", "Growth.").label_names(["i"]);
    let latency = Family::<(), Histogram>::new("latency_seconds", "Latency.").buckets(&[0.1, 1.0]);
    let par = Family::<[String; 1], Histogram>::new("par_seconds", "Contended.")
        .label_names(["k"])
        .buckets(&[0.1, 1.0]);
    let gauges: Vec<(GaugeMode, Family<(), Gauge>)> = GaugeMode::ALL
        .iter()
        .map(|&m| {
            (
                m,
                Family::<(), Gauge>::new(format!("g_{m}"), "A gauge.").mode(m),
            )
        })
        .collect();
    let mut native: Option<[Family<(), Histogram>; 2]> = None;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["inc", label, n] => {
                let c = jobs.with(&[label.to_string()]);
                for _ in 0..n.parse::<u64>().unwrap() {
                    c.inc();
                }
                "ok".to_string()
            }
            ["exinc", label, trace] => {
                jobs.with(&[label.to_string()])
                    .inc_with_exemplar(&[("trace_id", trace)])
                    .unwrap();
                "ok".to_string()
            }
            ["exobs", v, trace] => {
                latency
                    .observe_with_exemplar(v.parse().unwrap(), &[("trace_id", trace)])
                    .unwrap();
                "ok".to_string()
            }
            ["nat", which, v, n] => {
                let h = native_family(&mut native, which);
                for _ in 0..n.parse::<u64>().unwrap() {
                    h.observe(v.parse().unwrap());
                }
                "ok".to_string()
            }
            ["exnat", which, v, trace] => {
                native_family(&mut native, which)
                    .observe_with_exemplar(v.parse().unwrap(), &[("trace_id", trace)])
                    .unwrap();
                "ok".to_string()
            }
            ["natkill", step, v] => {
                let [only, _] = native.as_ref().expect("`nat` first");
                promtrack::__private::kill_at_reduction_step(step.parse().unwrap());
                only.observe(v.parse().unwrap());
                let steps = promtrack::__private::reduction_steps();
                promtrack::__private::kill_at_reduction_step(0);
                steps.to_string()
            }
            ["obs", v, n] => {
                for _ in 0..n.parse::<u64>().unwrap() {
                    latency.observe(v.parse().unwrap());
                }
                "ok".to_string()
            }
            ["par", label, threads, v, n] => {
                let h = par.with(&[label.to_string()]);
                let (v, n): (f64, u64) = (v.parse().unwrap(), n.parse().unwrap());
                std::thread::scope(|s| {
                    for _ in 0..threads.parse::<usize>().unwrap() {
                        s.spawn(|| {
                            for _ in 0..n {
                                h.observe(v);
                            }
                        });
                    }
                });
                "ok".to_string()
            }
            ["gauge", mode, v] => {
                let g = &gauges.iter().find(|(m, _)| m.as_str() == *mode).unwrap().1;
                g.set(v.parse().unwrap());
                "ok".to_string()
            }
            ["grow", from, to] => {
                for i in from.parse::<u64>().unwrap()..to.parse().unwrap() {
                    grow.with(&[i.to_string()]).inc();
                }
                "ok".to_string()
            }
            ["fork", n] => {
                let n: u64 = n.parse().unwrap();
                // Resolve the handles before forking: the child inherits them.
                let c = jobs.with(&["fork".to_string()]);
                let g = &gauges[0].1; // mode `all`
                c.inc();
                g.set(1.0);
                // SAFETY: the child only touches atomics and leaves with `_exit`.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    g.set(2.0);
                    for _ in 0..n {
                        c.inc();
                    }
                    // No exit hook: the child's file stays, dead, for the test to look at.
                    unsafe { libc::_exit(0) };
                }
                let mut status = 0;
                // SAFETY: waits for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                pid.to_string()
            }
            ["file"] => promtrack::__private::multiprocess_own_file()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            ["exit"] => {
                writeln!(out, "@ok").unwrap();
                out.flush().unwrap();
                std::process::exit(0);
            }
            _ => format!("unknown command {line}"),
        };
        writeln!(out, "@{reply}").unwrap();
        out.flush().unwrap();
    }
    std::process::exit(0);
}

/// A worker process.
pub struct Worker {
    pub child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    /// Starts a worker writing to `dir` (through `PROMETHEUS_MULTIPROC_DIR`).
    pub fn start(dir: &Path) -> Worker {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, env: &[(&str, &str)]) -> Worker {
        Self::start_configured(dir, env, |_| {})
    }

    /// Like [`start_with`](Self::start_with), with a last say on the command (resource limits).
    pub fn start_configured(
        dir: &Path,
        env: &[(&str, &str)],
        configure: impl FnOnce(&mut Command),
    ) -> Worker {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["worker", "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(WORKER_ENV, "1")
            .env("PROMETHEUS_MULTIPROC_DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        configure(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut w = Worker {
            child,
            stdin,
            stdout,
        };
        // Started: its families exist, its file too, its start-up compaction is over.
        w.send("file");
        w
    }

    /// Sends a command and returns its reply.
    pub fn send(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "worker died on {cmd:?}");
            // The test harness prints lines of its own; replies start with `@`.
            if let Some(reply) = line.trim().strip_prefix('@') {
                return reply.to_string();
            }
        }
    }

    /// Sends a command and returns its reply, or `None` if the worker died on it (then reaped).
    pub fn send_or_death(&mut self, cmd: &str) -> Option<String> {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap() == 0 {
                let status = self.child.wait().unwrap();
                assert!(!status.success(), "{cmd:?}: exited cleanly");
                return None;
            }
            if let Some(reply) = line.trim().strip_prefix('@') {
                return Some(reply.to_string());
            }
        }
    }

    pub fn ok(&mut self, cmd: &str) {
        assert_eq!(self.send(cmd), "ok", "{cmd}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`, and wait for the death.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A clean exit.
    pub fn exit(mut self) {
        self.ok("exit");
        assert!(self.child.wait().unwrap().success());
    }
}

/// A worker left behind by a failing test must not outlive it (nor keep its files busy).
impl Drop for Worker {
    fn drop(&mut self) {
        // A worker already waited for is not signalled again (std tracks its status).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh, private directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!(
        "promtrack-mp-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&base).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
    base
}

/// One scrape of `dir`.
pub fn scrape(dir: &Path) -> Vec<MetricFamily> {
    DirCollector::new(dir).unwrap().collect_families()
}

/// One scrape that never compacts (to observe dead files before they are folded).
pub fn scrape_no_compaction(dir: &Path) -> Vec<MetricFamily> {
    DirCollector::new(dir)
        .unwrap()
        .compaction(false)
        .collect_families()
}

pub fn family<'a>(fams: &'a [MetricFamily], name: &str) -> Option<&'a MetricFamily> {
    fams.iter().find(|f| f.name == name)
}

/// The value of the series of `name` whose labels include all of `labels`.
pub fn value(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<Value> {
    family(fams, name)?
        .series
        .iter()
        .find(|s| {
            labels
                .iter()
                .all(|(n, v)| s.labels.iter().any(|(ln, lv)| ln == n && lv == v))
        })
        .map(|s| s.value.clone())
}

pub fn counter(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(fams, name, labels) {
        Some(Value::Counter(v)) => v,
        None => 0.0,
        other => panic!("{name}: {other:?}"),
    }
}

pub fn gauge(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    match value(fams, name, labels) {
        Some(Value::Gauge(v)) => Some(v),
        None => None,
        other => panic!("{name}: {other:?}"),
    }
}

/// (count, sum) of a histogram.
pub fn histogram(fams: &[MetricFamily], name: &str) -> (u64, f64) {
    match value(fams, name, &[]) {
        Some(Value::Histogram { counts, sum, .. }) => (counts.iter().sum(), sum),
        None => (0, 0.0),
        other => panic!("{name}: {other:?}"),
    }
}

/// Read errors by reason.
pub fn read_errors(fams: &[MetricFamily], reason: &str) -> f64 {
    counter(
        fams,
        "promtrack_multiprocess_read_errors_total",
        &[("reason", reason)],
    )
}

/// Files in the directory.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
