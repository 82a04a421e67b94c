//! Arbitrary bytes as a file of a multiprocess directory: a scrape must skip the file and count
//! it, or read it — never panic, allocate beyond the file's size, or loop — and the valid
//! file beside it must still be aggregated.
//!
//! Each input is written as a worker file `p-<pid>-<id>.db` into a fresh `0700` directory,
//! next to [`WORKER_FILE`] (a file the real writer produced, see `fuzz_seeds`) that this
//! process keeps locked, so it reads as a live writer's. The directory is then scraped the way
//! a user's registry does, through [`DirCollector`] with its default compaction (the fuzzed
//! file's writer is dead, so a scrape that can read it folds it into `archive.db`), in both
//! formats. Then:
//! - both expositions read back strictly ([`crate::exposition`]): a file's content must never
//!   make the exposition invalid;
//! - a file that is still there after the first scrape was skipped: it was counted exactly
//!   once in `promtrack_multiprocess_read_errors_total`, and the exposition equals the valid
//!   file's alone, sample for sample;
//! - a file that is gone was read and folded: nothing was skipped (neither the valid file nor
//!   the archive written from the fuzzed one), and every series of the valid file is still
//!   there (the fuzzed file's values may add to them).
//!
//! Memory: the reader copies the file and keeps at most its size beside the copies (read.rs); the fuzz script
//! runs this target with `-malloc_limit_mb`, so an allocation sized from a length field fails
//! the run.

use std::fs::{DirBuilder, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use promtrack::Registry;
use promtrack::expose::{Format, encode_to_string};
use promtrack::multiprocess::DirCollector;

use crate::exposition::{self, Sample};

/// A worker file written by promtrack's own writer: counters, every gauge mode, a histogram, a
/// summary and an info family, with ASCII and non-ASCII label values. Regenerate it and the
/// seeds with `cargo run -p promtrack-fuzz-checks --bin fuzz_seeds`.
pub const WORKER_FILE: &[u8] = include_bytes!("../fixtures/worker.db");

/// A series of [`WORKER_FILE`] and its value, to tell that the valid file was aggregated.
pub const WORKER_SAMPLE: (&str, &str) = ("fuzz_worker_requests_total", "3");

const META: &str = "promtrack_multiprocess_";

/// The file name a worker with this header would have; `None` for a file too short for one.
fn worker_name(bytes: &[u8]) -> Option<String> {
    let pid = u32::from_ne_bytes(bytes.get(32..36)?.try_into().ok()?);
    let id = u64::from_ne_bytes(bytes.get(24..32)?.try_into().ok()?);
    Some(format!("p-{pid}-{id:016x}.db"))
}

/// A fresh private directory, removed on drop. Under `/dev/shm` when there is one: the
/// compaction's `fsync`s then cost nothing.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!(
            "promtrack-fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Scratch(path)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> File {
        let path = self.0.join(name);
        let mut f = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the valid worker file and locks it as its live writer would.
fn place_worker(dir: &Scratch) -> File {
    let name = worker_name(WORKER_FILE).expect("the fixture has a header");
    let file = dir.write(&name, WORKER_FILE);
    // SAFETY: a plain system call on a descriptor we own.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(locked, 0, "cannot lock the worker file");
    file
}

/// What one scrape of a directory showed.
struct Scrape {
    samples: Vec<Sample>,
    /// `promtrack_multiprocess_read_errors_total` summed over the reasons that mean a file was
    /// skipped (`corrupt`, `unknown_version`, `io`).
    skipped: f64,
}

fn scrape(dir: &Path) -> Scrape {
    let registry = Registry::new();
    let collector =
        DirCollector::new(dir).unwrap_or_else(|e| panic!("the scratch directory is refused: {e}"));
    registry.register_collector(collector);
    let mut text_samples = None;
    for format in [Format::Text, Format::OpenMetrics] {
        let text = encode_to_string(&registry, format);
        let exp = exposition::parse(&text, format)
            .unwrap_or_else(|e| panic!("{format:?} exposition of the directory: {e}\n{text}"));
        if format == Format::Text {
            text_samples = Some(exp.samples);
        }
    }
    // The counters add up over the two scrapes: the first one's (which did any compaction)
    // are the ones to judge.
    let samples = text_samples.unwrap_or_default();
    let skipped = samples
        .iter()
        .filter(|s| s.name == "promtrack_multiprocess_read_errors_total")
        .filter(|s| {
            s.labels
                .iter()
                .any(|(n, v)| n == "reason" && v != "conflict")
        })
        .map(|s| s.value.parse::<f64>().unwrap_or(f64::NAN))
        .sum();
    Scrape { samples, skipped }
}

/// The valid file's samples alone (meta families left out), scraped once per process.
fn baseline() -> &'static [Sample] {
    static BASELINE: OnceLock<Vec<Sample>> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let dir = Scratch::new();
        let _lock = place_worker(&dir);
        let s = scrape(&dir.0);
        assert_eq!(s.skipped, 0.0, "the valid worker file was skipped");
        let samples: Vec<Sample> = s
            .samples
            .into_iter()
            .filter(|s| !s.name.starts_with(META))
            .collect();
        assert!(
            samples
                .iter()
                .any(|s| s.name == WORKER_SAMPLE.0 && s.value == WORKER_SAMPLE.1),
            "the worker file's counter is missing: {samples:?}"
        );
        samples
    })
}

/// Checks `bytes` as a file of the directory (see the module docs). Panics naming what broke.
pub fn check(bytes: &[u8]) {
    let baseline = baseline();
    let dir = Scratch::new();
    let _lock = place_worker(&dir);
    let worker = worker_name(WORKER_FILE);
    // Named as a worker with its header would be, so that it passes for one; a short file, or
    // one claiming the valid worker's name, under a name of its own.
    let name = worker_name(bytes)
        .filter(|n| Some(n) != worker.as_ref())
        .unwrap_or_else(|| "p-4000000000-00000000000000ff.db".to_owned());
    drop(dir.write(&name, bytes));
    let s = scrape(&dir.0);
    let got: Vec<&Sample> = s
        .samples
        .iter()
        .filter(|s| !s.name.starts_with(META))
        .collect();
    // A file that was read is dead (nobody holds its lock), so the first scrape folded it into
    // the archive and removed it; a skipped one stays where it is.
    if dir.0.join(&name).exists() {
        assert_eq!(
            s.skipped, 1.0,
            "the fuzzed file was neither skipped once nor folded"
        );
        let want: Vec<&Sample> = baseline.iter().collect();
        assert_eq!(got, want, "a skipped file changed the exposition");
    } else {
        assert_eq!(
            s.skipped, 0.0,
            "the fuzzed file was folded, yet a file was skipped: the archive written from it, or the valid file"
        );
        for b in baseline {
            let key = b.key();
            assert!(
                got.iter().any(|s| s.key() == key),
                "the valid file's series {key} is missing"
            );
        }
    }
}
