//! A full disk while a process file grows: the new series is dropped and counted in
//! `promtrack_multiprocess_dropped_total`, the worker goes on serving (no `SIGBUS`, no panic),
//! and everything that did get space is still counted exactly.
//!
//! Two ways to run out of space, both real: a worker started with `RLIMIT_FSIZE` just above its
//! first mapping (`fallocate` then fails with `EFBIG`; `SIGXFSZ` is ignored so that it is an
//! error, not a death), which needs no privileges; and, where this process may mount one
//! (root in a container or VM), a 256 KiB tmpfs, where `fallocate` fails with `ENOSPC`
//! (elsewhere that test shows as ignored).

mod multiprocess_support;
use multiprocess_support::*;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

#[test]
fn worker() {
    worker_if_asked();
}

/// Files of the worker may not grow past `bytes`.
fn limit_file_size(cmd: &mut Command, bytes: u64) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Ignored signals stay ignored across exec: growth past the limit is EFBIG.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

fn dropped(fams: &[promtrack::model::MetricFamily]) -> f64 {
    counter(fams, "promtrack_multiprocess_dropped_total", &[])
}

/// Drives one worker out of space and checks what the aggregate says.
fn run_out_of_space(dir: &Path, mut w: Worker, series: u64) {
    w.ok("inc a 5");
    w.ok("obs 0.5 3");
    // Far more series than the space allows: the reply proves the worker went on.
    w.ok(&format!("grow 0 {series}"));
    // Series created before the disk filled: their cells are in the file already.
    w.ok("inc a 2");
    w.ok("obs 0.5 1");
    let fams = scrape_no_compaction(dir);
    let lost = dropped(&fams);
    let grown = family(&fams, "grow_total").map_or(0, |f| f.series.len()) as f64;
    assert!(
        lost > 0.0,
        "nothing was dropped: the file never ran out of space"
    );
    assert!(grown > 0.0, "nothing grew before the disk was full");
    // Every series either has its place in the file (and its 1) or was counted as dropped.
    assert_eq!(grown + lost, series as f64, "grown {grown}, dropped {lost}");
    let total: f64 = (0..series)
        .map(|i| counter(&fams, "grow_total", &[("i", &i.to_string())]))
        .sum();
    assert_eq!(total, grown);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), 7.0);
    assert_eq!(histogram(&fams, "latency_seconds"), (4, 2.0));
    // Still serving after the failures.
    w.ok("inc a 1");
    let fams = scrape_no_compaction(dir);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), 8.0);
    // A dead writer's drops stay counted once its file is folded into the archive.
    w.kill9();
    let fams = scrape(dir);
    assert_eq!(dropped(&fams), lost);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), 8.0);
}

#[test]
fn growth_past_a_file_size_limit_drops_the_series_and_counts_it() {
    let dir = temp_dir("fsize");
    // The first mapping is 64 KiB; the next segment cannot be allocated.
    let w = Worker::start_configured(&dir, &[], |cmd| limit_file_size(cmd, 100 * 1024));
    run_out_of_space(&dir, w, 5000);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Needs the privilege to mount (`tests/build.rs` looks for `CAP_SYS_ADMIN`), even under CI:
/// the `RLIMIT_FSIZE` test above covers the same path without it.
#[test]
#[cfg_attr(
    missing_cap_sys_admin,
    ignore = "needs root (CAP_SYS_ADMIN) to mount a tmpfs; the RLIMIT_FSIZE test covers the same path"
)]
fn growth_on_a_full_tmpfs_drops_the_series_and_counts_it() {
    let dir = temp_dir("enospc");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "promtrack-test"])
        .arg(&dir)
        .output()
        .expect("mount runs");
    if !mounted.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        panic!(
            "mounting a tmpfs failed, though the tests were built with CAP_SYS_ADMIN (a seccomp \
             or AppArmor profile may forbid mount, or they run with less privilege than their \
             build): {}",
            String::from_utf8_lossy(&mounted.stderr).trim()
        );
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _unmount = Unmount(&dir);
    // Segments of 64 and 128 KiB fit in 256 KiB; the next one (256 KiB) does not.
    let w = Worker::start(&dir);
    run_out_of_space(&dir, w, 8000);
}
