//! The directory's files under stress: growth past the first mapping while another process
//! scrapes, pid reuse, corrupt and hostile files next to good ones, refused directories.

mod multiprocess_support;
use multiprocess_support::*;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use promtrack::multiprocess::{DirCollector, Options};

#[test]
fn worker() {
    worker_if_asked();
}

#[test]
fn growth_past_the_first_mapping_while_another_process_scrapes() {
    let dir = temp_dir("growth");
    let mut w = Worker::start(&dir);
    let total = 9_000u64; // about 450 kB of records: segments past the first 64 KiB (under the series cap)
    let scraper = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let collector = DirCollector::new(&dir).unwrap();
            let mut last = 0usize;
            let mut scrapes = 0;
            while last < total as usize {
                let fams = collector.collect_families();
                let n = family(&fams, "grow_total").map_or(0, |f| f.series.len());
                assert!(n >= last, "series went from {last} to {n}");
                if let Some(f) = family(&fams, "grow_total") {
                    // A series is published at 0 and then incremented once: a scrape between
                    // the two sees 0. Nothing else may ever be seen.
                    for s in &f.series {
                        assert!(
                            matches!(s.value, promtrack::model::Value::Counter(v) if v == 0.0 || v == 1.0),
                            "{:?}",
                            s.value
                        );
                    }
                }
                assert_eq!(read_errors(&fams, "corrupt"), 0.0);
                last = n;
                scrapes += 1;
            }
            scrapes
        })
    };
    for chunk in (0..total).step_by(500) {
        w.ok(&format!("grow {chunk} {}", chunk + 500));
    }
    let scrapes = scraper.join().unwrap();
    assert!(scrapes > 1);
    let size = std::fs::metadata(w.send("file")).unwrap().len();
    assert!(size > 64 * 1024 * 4, "the file grew to {size} bytes");
    w.kill9();
    let fams = scrape(&dir);
    let grown = family(&fams, "grow_total").unwrap();
    assert_eq!(grown.series.len(), total as usize);
    assert!(
        grown
            .series
            .iter()
            .all(|s| s.value == promtrack::model::Value::Counter(1.0)),
        "every series counted exactly once"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Copies `src` to `dst` with the header's file id (and optionally pid) replaced.
fn forge(src: &Path, dst: &Path, id: u64, pid: Option<u32>) {
    let mut bytes = std::fs::read(src).unwrap();
    bytes[24..32].copy_from_slice(&id.to_ne_bytes());
    if let Some(pid) = pid {
        bytes[32..36].copy_from_slice(&pid.to_ne_bytes());
    }
    std::fs::write(dst, bytes).unwrap();
}

#[test]
fn a_dead_file_with_a_live_process_pid_is_dead_and_the_live_one_is_not() {
    let dir = temp_dir("pidreuse");
    let mut w = Worker::start(&dir);
    w.ok("inc a 7");
    w.ok("gauge livesum 2");
    let file = w.send("file");
    // A dead writer's file that names the live worker's pid: the pid was reused.
    forge(
        Path::new(&file),
        &dir.join("p-reused.db"),
        42,
        Some(w.pid()),
    );
    let fams = scrape(&dir);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), 14.0);
    assert_eq!(
        gauge(&fams, "g_livesum", &[]),
        Some(2.0),
        "the dead copy is not live"
    );
    assert!(
        !dir.join("p-reused.db").exists(),
        "the dead file was folded"
    );
    assert!(Path::new(&file).exists(), "the live file was not");
    w.ok("inc a 1");
    let fams = scrape(&dir);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), 15.0);
    w.kill9();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_and_hostile_files_are_skipped_and_counted() {
    let dir = temp_dir("corrupt");
    let mut w = Worker::start(&dir);
    w.ok("inc a 5");
    let good = std::fs::read(w.send("file")).unwrap();
    let used = u64::from_ne_bytes(good[16..24].try_into().unwrap()) as usize;
    // Garbage, a truncated file, a foreign version, a hostile record length, a FIFO, a
    // symlink, an empty file.
    std::fs::write(dir.join("garbage.db"), vec![0xAB; 4096]).unwrap();
    std::fs::write(dir.join("truncated.db"), &good[..used / 2]).unwrap();
    let mut future = good.clone();
    future[8..12].copy_from_slice(&99u32.to_ne_bytes());
    future[24..32].copy_from_slice(&1u64.to_ne_bytes());
    std::fs::write(dir.join("future.db"), future).unwrap();
    let mut hostile = good.clone();
    hostile[64..68].copy_from_slice(&u32::MAX.to_ne_bytes());
    hostile[24..32].copy_from_slice(&2u64.to_ne_bytes());
    std::fs::write(dir.join("hostile.db"), hostile).unwrap();
    let mut bad_name = good.clone();
    let at = bad_name
        .windows(10)
        .position(|w| w == b"jobs_total")
        .unwrap();
    bad_name[at + 4] = b'\n';
    bad_name[24..32].copy_from_slice(&3u64.to_ne_bytes());
    std::fs::write(dir.join("badname.db"), bad_name).unwrap();
    std::fs::write(dir.join("empty.db"), b"").unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo.db").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/etc/hostname", dir.join("link.db")).unwrap();

    let fams = scrape(&dir);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), 5.0);
    assert_eq!(read_errors(&fams, "unknown_version"), 1.0);
    // garbage, truncated, hostile, bad name, empty, fifo
    assert_eq!(read_errors(&fams, "corrupt"), 6.0);
    assert_eq!(read_errors(&fams, "io"), 1.0, "the symlink is not followed");
    // Nothing of theirs is deleted, nothing of ours is lost; the exposition stays valid.
    let registry = promtrack::Registry::new();
    registry.register_collector(DirCollector::new(&dir).unwrap());
    let text = promtrack::expose::encode_to_string(&registry, promtrack::expose::Format::Text);
    assert!(text.contains("jobs_total{k=\"a\"} 5\n"), "{text}");
    assert!(!text.contains("jobs\n"));
    w.kill9();
    let fams = scrape(&dir);
    assert_eq!(counter(&fams, "jobs_total", &[("k", "a")]), 5.0);
    for f in [
        "garbage.db",
        "future.db",
        "hostile.db",
        "fifo.db",
        "link.db",
    ] {
        assert!(std::fs::symlink_metadata(dir.join(f)).is_ok(), "{f}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn refused(dir: &Path) -> String {
    match DirCollector::new(dir) {
        Ok(_) => panic!("{} was accepted", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsafe_directories_are_refused_with_the_reason_and_the_fix() {
    let base = temp_dir("refused");
    // World-writable without the sticky bit (a Kubernetes emptyDir).
    let open = base.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let msg = refused(&open);
    assert!(
        msg.contains("without the sticky bit") && msg.contains("chmod"),
        "{msg}"
    );
    assert!(
        msg.contains("shared_volume") && msg.contains("PROMTRACK_MULTIPROC_SHARED"),
        "{msg}"
    );
    // ... accepted with the opt-in, through a private subdirectory.
    DirCollector::with_options(&Options::new(&open).shared_volume(true)).unwrap();
    let private = std::fs::read_dir(&open)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        private
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("promtrack-")
    );
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    // Group-writable too.
    let group = base.join("group");
    std::fs::create_dir(&group).unwrap();
    std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o770)).unwrap();
    assert!(refused(&group).contains("its group"));
    // The sticky bit makes a shared directory acceptable (others cannot remove our files).
    let sticky = base.join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    DirCollector::new(&sticky).unwrap();
    // A symlink.
    let link = base.join("link");
    std::os::unix::fs::symlink(&sticky, &link).unwrap();
    let msg = refused(&link);
    assert!(
        msg.contains("symlink") && msg.contains("real directory"),
        "{msg}"
    );
    // Owned by someone else (the tests run as root in CI; as another user, chown fails and
    // this case is covered by the user's own /tmp being owned by root instead).
    let theirs = base.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = if std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).is_ok() {
        theirs.clone()
    } else {
        std::path::PathBuf::from("/")
    };
    let msg = refused(&target);
    assert!(
        msg.contains("is owned by uid") && msg.contains("chown"),
        "{msg}"
    );
    // A missing directory is created 0700.
    let fresh = base.join("a/b/metrics");
    DirCollector::new(&fresh).unwrap();
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_worker_pointed_at_a_refused_directory_says_why_and_keeps_running() {
    let base = temp_dir("refused-env");
    let open = base.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut w = Worker::start(&open);
    w.ok("inc a 1");
    assert_eq!(w.send("file"), "", "no file in a refused directory");
    w.exit();
    // With the opt-in in the environment, it writes into the private subdirectory.
    let mut w = Worker::start_with(&open, &[("PROMTRACK_MULTIPROC_SHARED", "1")]);
    w.ok("inc a 1");
    let file = w.send("file");
    assert!(file.contains("/promtrack-"), "{file}");
    w.kill9();
    std::fs::remove_dir_all(&base).unwrap();
}
