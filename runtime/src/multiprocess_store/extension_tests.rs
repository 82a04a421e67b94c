//! Extension records end to end, with real worker processes: each worker is this test binary
//! run again (`worker_process`, selected by [`WORKER_ENV`]), writing its own file with the real
//! [`Writer`] — a counter and a native histogram, the native state and the exemplar slots in
//! extension records — then either staying alive or dying with its file left behind. The
//! parent aggregates the directory as a scrape does, compacts it, and checks every total, the
//! merged native buckets and the exemplars, before and after.
//!
//! Also run by `scripts/rolling-deploy.sh`: [`rolling_deploy_against_todays_reader`] writes
//! such a directory and has the reader of the last release before extension records — built
//! from git by the script — read it, and reads that reader's own files.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use super::aggregate::{Aggregate, InputFile, Purpose, SeriesExemplars};
use super::file::{
    EXT_EXEMPLARS, EXT_NATIVE_SETTINGS, EXT_NATIVE_SHARED, EXT_NATIVE_TWIN, NATIVE_ONLY_BOUNDS,
    Writer, native_settings_cells,
};
use super::native_merge;
use super::snapshot::DirSnapshot;
use super::{Stats, compact};
use crate::exemplar::{SLOT_WORDS, Slot, SlotData};
use crate::metric::{FamilyDecl, GaugeMode};
use crate::model::{MetricFamily, MetricKind, NativeBuckets, Value};

/// Set in a worker: `<directory> <worker number> <live|dead>`.
const WORKER_ENV: &str = "PROMTRACK_EXTENSION_WORKER";

/// A declaration of mode `all` (what the gauges of these tests use), help "Help.".
pub(super) fn decl<'a>(
    name: &'a str,
    kind: MetricKind,
    labels: &'a [Box<str>],
    bounds: &'a [f64],
) -> FamilyDecl<'a> {
    FamilyDecl {
        name,
        help: "Help.",
        label_names: labels,
        kind,
        mode: GaugeMode::All,
        bounds,
        native: None,
    }
}

/// Worker `i`'s native buckets: schema `4 - i`, so the merge must reduce.
fn native_of(i: u8) -> NativeBuckets {
    NativeBuckets {
        schema: 4 - i as i8,
        zero_threshold: 0.0,
        zero_count: u64::from(i),
        positive: vec![(1, u64::from(i)), (8 * i32::from(i), 2)],
        negative: vec![(3, 1)],
    }
}

fn exemplar_of(i: u8, slot: u8) -> SlotData {
    SlotData {
        trace: u128::from_be_bytes([i; 16]),
        span: u64::from_be_bytes([slot; 8]),
        value: f64::from(slot),
        time_ns: 100 * u64::from(i),
    }
}

/// Cell `i` of a run the writer handed out.
fn cell(run: std::ptr::NonNull<AtomicU64>, i: usize) -> &'static AtomicU64 {
    // SAFETY: the writer's runs stay mapped for the life of the process (file.rs), and `i` is
    // below the run's length at every call here.
    unsafe { &*run.as_ptr().add(i) }
}

/// What worker `i` writes into a fresh file of `dir`: `jobs_total{k="a"}` += 10·i + 0.25·i
/// (two stripes: two series records of the same key), a histogram with bound 1 observed i
/// times at 0.5 and 2i times at 2 (sum 4.5·i) whose native state is [`native_of`], exemplars
/// on the counter and on the `+Inf` bucket. Returns the writer (its file stays locked while
/// it lives).
fn write_worker_file(dir: &Path, i: u8) -> Writer {
    let w = Writer::create(dir).expect("a worker file");
    let labels: [Box<str>; 1] = ["k".into()];
    let counter = decl("jobs_total", MetricKind::Counter, &labels, &[]);
    let n = u64::from(i);
    for stripe in 0..2 {
        let cells = w.alloc_series(&counter, b"a\xff").unwrap();
        cell(cells, 0).store(if stripe == 0 { 10 * n } else { 0 }, Ordering::Relaxed);
        let frac = if stripe == 0 {
            0.0
        } else {
            0.25 * f64::from(i)
        };
        cell(cells, 1).store(frac.to_bits(), Ordering::Relaxed);
        if stripe == 0 {
            let slots = w.attach(cells, EXT_EXEMPLARS, SLOT_WORDS).unwrap();
            assert!(slot_ref(slots, 0).write(&exemplar_of(i, 0), || {}));
        }
    }
    let bounds = [1.0];
    let hist = decl("latency_seconds", MetricKind::Histogram, &[], &bounds);
    let settings = native_settings_cells(4 - i as i8, 160, 0.0, 0.0, false);
    // This histogram's state as an earlier release wrote it: a window per sign and no journal
    // (the twin form with its journal, an uncounted tail the writer no longer writes, is in
    // `shrink::tests::file`); the native-only one's as this release does.
    let state = crate::metric::native::twin_state_of(&native_of(i), 4.5 * f64::from(i), 160, false)
        .expect("fits the window");
    let (cells, ext) = w
        .alloc_series_with(
            &hist,
            &[(EXT_NATIVE_SETTINGS, &settings)],
            b"",
            &[(EXT_NATIVE_TWIN, state.len())],
        )
        .unwrap();
    for (k, v) in [n, 2 * n, (4.5 * f64::from(i)).to_bits()]
        .into_iter()
        .enumerate()
    {
        cell(cells, k).store(v, Ordering::Relaxed);
    }
    for (k, &v) in state.iter().enumerate() {
        cell(ext[0], k).store(v, Ordering::Relaxed);
    }
    let slots = w.attach(cells, EXT_EXEMPLARS, 2 * SLOT_WORDS).unwrap();
    assert!(slot_ref(slots, 1).write(&exemplar_of(i, 1), || {}));
    // Native only: the 2·i + 3 finite observations of [`native_of`], summing to 0.5·i.
    let only = decl(
        "native_only_seconds",
        MetricKind::Histogram,
        &[],
        &NATIVE_ONLY_BOUNDS,
    );
    let settings = native_settings_cells(4 - i as i8, 160, 0.0, 0.0, true);
    let (cells, ext) = w
        .alloc_series_with(
            &only,
            &[(EXT_NATIVE_SETTINGS, &settings)],
            b"",
            &[(EXT_NATIVE_SHARED, crate::layout::native::len(160))],
        )
        .unwrap();
    cell(cells, 0).store(2 * n + 3, Ordering::Relaxed);
    cell(cells, 2).store((0.5 * f64::from(i)).to_bits(), Ordering::Relaxed);
    let state = crate::metric::native::state_of(&native_of(i), 0.5 * f64::from(i), 160)
        .expect("fits the window");
    for (k, &v) in state.iter().enumerate() {
        cell(ext[0], k).store(v, Ordering::Relaxed);
    }
    w
}

fn slot_ref(slots: std::ptr::NonNull<AtomicU64>, k: usize) -> &'static Slot {
    // SAFETY: as in `cell`: slot `k` lies inside the run the writer handed out, which stays
    // mapped for the life of the process and is only accessed atomically.
    let all = unsafe { Slot::external(slots, k + 1) };
    &all[k]
}

/// The worker's body: runs only in a process started by [`spawn`].
#[test]
#[ignore = "a worker process of the tests below, started by them"]
fn worker_process() {
    let Some(args) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let args = args.into_string().unwrap();
    let [dir, i, mode] = args.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{WORKER_ENV}={args}");
    };
    let w = write_worker_file(Path::new(dir), i.parse().unwrap());
    println!("@ready");
    if mode == "live" {
        // Alive (its file locked) until the parent closes stdin.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    // Dead: the process ends without compacting; its lock goes with it.
    drop(w);
}

fn spawn(dir: &Path, i: u8, mode: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "multiprocess_store::extension_tests::worker_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ENV, format!("{} {i} {mode}", dir.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.trim_end().ends_with("@ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "worker {i} died before writing"
        );
    }
    // The rest of its output (the test harness' report) must find a reader.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

fn temp_dir(what: &str) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!(
        "promtrack-{what}-{}-{:x}",
        std::process::id(),
        super::file::new_id()
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    dir
}

/// The directory aggregated as a scrape does (live files first, the archive last).
fn scrape(dir: &Path) -> (Vec<MetricFamily>, Vec<SeriesExemplars>, u64) {
    let stats = Stats::default();
    let snap = DirSnapshot::read(dir, &stats);
    let archive = snap.archive().ok().flatten();
    let mut sources = super::scrape::in_order(snap.process_files(Some(&stats)), archive.as_ref());
    sources.extend(archive.map(|parsed| InputFile {
        parsed,
        live: false,
    }));
    let agg = Aggregate::new(&sources, Purpose::Scrape);
    let bad = agg.bad_extensions;
    let (fams, ex) = agg.into_families_with_exemplars();
    (fams, ex, bad)
}

fn value<'a>(fams: &'a [MetricFamily], name: &str) -> &'a Value {
    &fams
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name}"))
        .series[0]
        .value
}

fn exemplars_of<'a>(
    fams: &[MetricFamily],
    ex: &'a [SeriesExemplars],
    name: &str,
) -> &'a [Option<SlotData>] {
    let fi = fams.iter().position(|f| f.name == name).unwrap();
    ex.iter()
        .find(|e| e.family == fi && e.series == 0)
        .map_or(&[], |e| &e.slots)
}

/// Two live workers and a dead one, merged exactly — classic cells, stripes, native buckets,
/// exemplars — then the dead one folded into the archive: the totals and buckets stay, its
/// exemplars go.
#[test]
#[cfg_attr(miri, ignore = "starts processes and maps files")]
fn two_live_workers_and_a_dead_one_merge_exactly_with_their_extensions() {
    let dir = temp_dir("extensions");
    let mut live = vec![spawn(&dir, 1, "live"), spawn(&dir, 2, "live")];
    let mut dead = spawn(&dir, 3, "dead");
    assert!(dead.wait().unwrap().success());
    let mut native = native_of(1);
    native_merge::merge(&mut native, &native_of(2));
    native_merge::merge(&mut native, &native_of(3));
    assert_eq!(native.schema, 1, "reduced to the lowest schema");
    let check = |fams: &[MetricFamily], bad: u64| {
        assert_eq!(bad, 0);
        assert_eq!(value(fams, "jobs_total"), &Value::Counter(60.0 + 1.5));
        assert_eq!(
            value(fams, "latency_seconds"),
            &Value::Histogram {
                bounds: vec![1.0],
                counts: vec![6, 12],
                sum: 27.0,
                native: Some(native.clone()),
            }
        );
        assert_eq!(
            value(fams, "native_only_seconds"),
            &Value::Histogram {
                bounds: vec![],
                counts: vec![21],
                sum: 3.0,
                native: Some(native.clone()),
            }
        );
    };
    let (fams, ex, bad) = scrape(&dir);
    check(&fams, bad);
    // The newest exemplar over the live processes: worker 2's, not the dead worker 3's.
    assert_eq!(
        exemplars_of(&fams, &ex, "jobs_total"),
        [Some(exemplar_of(2, 0))]
    );
    assert_eq!(
        exemplars_of(&fams, &ex, "latency_seconds"),
        [None, Some(exemplar_of(2, 1))]
    );
    let run = compact::Run {
        wait: true,
        own: None,
        wipe: false,
    };
    let done = compact::compact(&dir, &Stats::default(), run)
        .unwrap()
        .unwrap();
    assert_eq!(done.folded, 1);
    let (fams, ex, bad) = scrape(&dir);
    check(&fams, bad);
    assert_eq!(
        exemplars_of(&fams, &ex, "jobs_total"),
        [Some(exemplar_of(2, 0))]
    );
    // Every worker gone and folded: the archive alone keeps the totals and buckets, and no
    // exemplar.
    for mut c in live.drain(..) {
        drop(c.stdin.take());
        assert!(c.wait().unwrap().success());
    }
    compact::compact(&dir, &Stats::default(), run)
        .unwrap()
        .unwrap();
    let (fams, ex, bad) = scrape(&dir);
    check(&fams, bad);
    assert!(ex.is_empty(), "{ex:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One line per series of every family but the self-metrics: what a reader's totals are.
/// `scripts/rolling-deploy.sh` prints the old reader's the same way (keep the two in step).
fn totals(fams: &[MetricFamily]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fams.iter().filter(|f| !f.name.starts_with("promtrack_")) {
        for s in &f.series {
            let labels: Vec<String> = s.labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let v = match &s.value {
                Value::Counter(v) | Value::Gauge(v) => format!("{v:?}"),
                // Native only: the count (today's reader shows the placeholder bound too).
                Value::Histogram {
                    bounds,
                    counts,
                    sum,
                    ..
                } if bounds.is_empty() || bounds[..] == [f64::MAX] => {
                    format!("{} {sum:?}", counts.iter().sum::<u64>())
                }
                Value::Histogram { counts, sum, .. } => format!("{counts:?} {sum:?}"),
                Value::Summary { count, sum } => format!("{count} {sum:?}"),
                other => format!("{other:?}"),
            };
            out.push(format!("{} {{{}}} {v}", f.name, labels.join(",")));
        }
    }
    out.sort();
    out
}

/// The rolling-deploy proof (run by `scripts/rolling-deploy.sh`, which builds the reader of
/// the release before extension records from git, or of another release, and names it in
/// `PROMTRACK_OLD_READER`; `PROMTRACK_OLD_READER_KNOWS_NATIVE` if that release reads native
/// state):
/// - that reader, reading a directory of new files with native state and exemplars (two live
///   processes, a dead one, and an archive folded by the new code), shows every counter,
///   gauge and classic histogram total the new reader shows;
/// - the new reader reads the files that old reader's processes write (`write` mode: one
///   process left dead, one folded at a clean exit), with the totals the old one shows.
#[test]
#[ignore = "needs the old reader: run scripts/rolling-deploy.sh"]
fn rolling_deploy_against_todays_reader() {
    let old = std::env::var_os("PROMTRACK_OLD_READER")
        .expect("PROMTRACK_OLD_READER names the old reader binary (scripts/rolling-deploy.sh)");
    let old_read = |dir: &Path| -> Vec<String> {
        let out = Command::new(&old).arg("read").arg(dir).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    // New files, old reader.
    let dir = temp_dir("rolling-new");
    let mut gone = spawn(&dir, 3, "dead");
    assert!(gone.wait().unwrap().success());
    let run = compact::Run {
        wait: true,
        own: None,
        wipe: false,
    };
    compact::compact(&dir, &Stats::default(), run)
        .unwrap()
        .unwrap();
    let mut dead = spawn(&dir, 2, "dead");
    assert!(dead.wait().unwrap().success());
    let mut live = spawn(&dir, 1, "live");
    let (fams, _, bad) = scrape(&dir);
    assert_eq!(bad, 0);
    let new_totals = totals(&fams);
    assert_eq!(
        new_totals,
        [
            "jobs_total {k=a} 61.5".to_string(),
            "latency_seconds {} [6, 12] 27.0".to_string(),
            "native_only_seconds {} 21 3.0".to_string(),
        ]
    );
    let old_totals = old_read(&dir);
    if std::env::var_os("PROMTRACK_OLD_READER_KNOWS_NATIVE").is_some() {
        // A reader that knows native state but not this release's shared window (the release
        // before it) shows a native-only histogram's count from the native states it can read,
        // here the archive's: lower, with the same sum (README, "Native histograms"). Every
        // other total is kept.
        assert_eq!(old_totals.len(), new_totals.len(), "{old_totals:?}");
        for (old, new) in old_totals.iter().zip(&new_totals) {
            let fields = |l: &str| l.split(' ').map(str::to_owned).collect::<Vec<_>>();
            let (o, n) = (fields(old), fields(new));
            if n[0] == "native_only_seconds" {
                let count = |f: &[String]| f[2].parse::<u64>().unwrap();
                assert!(count(&o) < count(&n), "{old} vs {new}");
                assert_eq!((&o[..2], &o[3]), (&n[..2], &n[3]), "{old} vs {new}");
            } else {
                assert_eq!(old, new, "today's reader on new files");
            }
        }
    } else {
        assert_eq!(old_totals, new_totals, "today's reader on new files");
    }
    drop(live.stdin.take());
    assert!(live.wait().unwrap().success());
    std::fs::remove_dir_all(&dir).unwrap();

    // Old files, new reader.
    let dir = temp_dir("rolling-old");
    for mode in ["write-dead", "write-exit"] {
        let st = Command::new(&old).arg(mode).arg(&dir).status().unwrap();
        assert_eq!(st.success(), mode == "write-exit", "{mode}: {st}");
    }
    let old_totals = old_read(&dir);
    assert!(
        old_totals.iter().any(|l| l.starts_with("old_jobs_total ")),
        "{old_totals:?}"
    );
    let (fams, _, bad) = scrape(&dir);
    assert_eq!(bad, 0);
    assert_eq!(totals(&fams), old_totals, "the new reader on today's files");
    std::fs::remove_dir_all(&dir).unwrap();
    let _ = std::io::stdout().flush();
}
