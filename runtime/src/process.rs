//! The standard `process_*` metrics, read from `/proc` on Linux at scrape time.
//!
//! Names and meanings follow the Prometheus client libraries, so existing dashboards work:
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`. A value that cannot be
//! read (a restricted `/proc`) is left out rather than guessed.
//!
//! This module only reads: whose metrics a registry exposes — this process's, or every live
//! writer's in multiprocess mode — is decided where the default registry is wired (`store.rs`).

use crate::model::{MetricFamily, MetricKind, Series, Value};

/// Reads a process's metrics from its `/proc` directory.
pub(crate) struct ProcessReader {
    ticks_per_second: f64,
    page_size: f64,
    boot_time: Option<f64>,
}

impl ProcessReader {
    pub(crate) fn new() -> Self {
        // SAFETY: `sysconf` only reads configuration values.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Self {
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: if page > 0 { page as f64 } else { 4096.0 },
            boot_time: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| parse_boot_time(&s)),
        }
    }

    /// Reads the current values; each is `None` when unreadable.
    pub(crate) fn read(&self) -> ProcessStats {
        self.read_at("/proc/self")
    }

    /// Reads the values of the process whose `/proc` directory is `proc_dir` (multiprocess
    /// mode exposes every worker's).
    pub(crate) fn read_at(&self, proc_dir: &str) -> ProcessStats {
        let stat = std::fs::read_to_string(format!("{proc_dir}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s));
        ProcessStats {
            cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / self.ticks_per_second),
            resident_bytes: stat.map(|s| s.rss_pages as f64 * self.page_size),
            virtual_bytes: stat.map(|s| s.vsize as f64),
            start_time: stat
                .and_then(|s| Some(self.boot_time? + s.start_ticks as f64 / self.ticks_per_second)),
            open_fds: std::fs::read_dir(format!("{proc_dir}/fd"))
                .ok()
                .map(|d| d.count().saturating_sub(1) as f64), // minus the directory's own fd
            max_fds: std::fs::read_to_string(format!("{proc_dir}/limits"))
                .ok()
                .and_then(|s| parse_max_fds(&s)),
        }
    }
}

/// One reading of the process metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) resident_bytes: Option<f64>,
    pub(crate) virtual_bytes: Option<f64>,
    pub(crate) start_time: Option<f64>,
    pub(crate) open_fds: Option<f64>,
    pub(crate) max_fds: Option<f64>,
}

impl ProcessStats {
    /// The families, for the values that could be read.
    pub(crate) fn families(&self) -> Vec<MetricFamily> {
        use MetricKind::{Counter, Gauge};
        // A table walked by one loop, not six inlined copies of building a family.
        let rows = [
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                Counter,
                self.cpu_seconds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                Gauge,
                self.max_fds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                Gauge,
                self.open_fds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Gauge,
                self.resident_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                Gauge,
                self.start_time,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Gauge,
                self.virtual_bytes,
            ),
        ];
        let mut out = Vec::with_capacity(rows.len());
        for (name, help, kind, v) in rows {
            let Some(v) = v else { continue };
            let value = if kind == Counter {
                Value::Counter(v)
            } else {
                Value::Gauge(v)
            };
            out.push(MetricFamily::new(name, help, kind).with_series(Series::new(value)));
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(s: &str) -> Option<Stat> {
    let rest = &s[s.rfind(')')? + 1..];
    // After ')': field 3 (state) is index 0.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

fn parse_boot_time(s: &str) -> Option<f64> {
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| whole(v.trim()))
}

fn parse_max_fds(s: &str) -> Option<f64> {
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(f64::INFINITY)
    } else {
        whole(soft)
    }
}

/// A whole number of `/proc` as an `f64`: read as an integer, so that the standard library's
/// float parser (17 KB of the release binary) is not linked for it.
fn whole(s: &str) -> Option<f64> {
    s.parse::<u64>().ok().map(|v| v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_command_name() {
        let line = "4242 (we ird) (name) S 1 4242 4242 0 -1 4194560 2210 0 0 0 150 25 0 0 20 0 3 0 98765 123456789 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 150,
                stime: 25,
                start_ticks: 98765,
                vsize: 123456789,
                rss_pages: 4321
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        assert_eq!(
            parse_boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
    }

    #[test]
    fn this_process_reads_plausibly() {
        let stats = ProcessReader::new().read();
        assert!(stats.resident_bytes.unwrap() > 1e5);
        assert!(stats.virtual_bytes.unwrap() >= stats.resident_bytes.unwrap());
        assert!(stats.open_fds.unwrap() >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = stats.start_time.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
        assert_eq!(stats.families().len(), 6);
    }
}
