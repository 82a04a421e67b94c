//! One scrape of a multiprocess directory: fold dead processes' files if there are any, then
//! aggregate every file with the archive into families, with promtrack's own
//! `promtrack_multiprocess_*` families and the live writers' `process_*` metrics.
//!
//! Each file is aggregated as soon as it is copied, while the next ones are (`snapshot.rs`,
//! `aggregate.rs`, `Streaming`). That aggregate is kept only if it holds exactly the files the
//! scrape counts — none skipped after its copy as a dead twin or as absorbed by the archive —
//! and no conflict, whose winner depends on the order; otherwise the files are aggregated
//! again, in order, from the copies already taken.
//!
//! Invariants: a scrape never fails (what it cannot read is counted and skipped, `stats.rs`),
//! and never counts a file twice: files the archive absorbed are skipped (`snapshot.rs`).

use std::path::Path;
use std::sync::atomic::Ordering;

use super::aggregate::{Aggregate, InputFile, Streaming, scrape_order};
use super::read::{Parsed, ReadError};
use super::snapshot::{self, ArchiveError, DirSnapshot, Found};
use super::{Stats, compact};
use crate::model::{MetricFamily, MetricKind, Series, Value};

/// Aggregates the directory at `path` into `out`, folding dead files into the archive first
/// when `compact` allows it.
pub(crate) fn collect_dir(path: &Path, stats: &Stats, compact: bool, out: &mut Vec<MetricFamily>) {
    let (first, second);
    let mut streaming = Streaming::new();
    first = DirSnapshot::list(path, stats);
    first.copy(stats, &mut |f| stream(&mut streaming, f));
    let mut files = first.process_files(Some(stats));
    let mut snapshot = &first;
    if compact && files.iter().any(|(f, _)| !f.live) {
        let run = compact::Run {
            wait: false,
            own: None,
            wipe: false,
        };
        // Compacted or not, read again: what we opened may now be absorbed.
        if let Ok(Some(_)) = compact::compact(path, stats, run) {
            second = DirSnapshot::list(path, stats);
            streaming = Streaming::new();
            second.copy(stats, &mut |f| stream(&mut streaming, f));
            files = second.process_files(None);
            snapshot = &second;
        }
    }
    let archive = match snapshot.archive() {
        Ok(Some(a)) if a.info.archive => Some(a),
        Ok(Some(_)) => {
            stats.count(ReadError::Corrupt("archive.db is not an archive"));
            None
        }
        Ok(None) => None,
        Err(ArchiveError::Unreadable(e) | ArchiveError::Corrupt(e)) => {
            stats.count(e);
            None
        }
    };
    let mut sources = in_order(files, archive.as_ref());
    let live_writers: Vec<(u32, u64)> = sources
        .iter()
        .filter(|s| s.live)
        .map(|s| (s.parsed.info.pid, s.parsed.info.start_ticks))
        .collect();
    let files = sources.len();
    // The streamed aggregate holds every file copied that parses, `sources` those but dead
    // twins and files the archive absorbed: the same files exactly when there are as many.
    let streamed = streaming.len() == files && streaming.conflicts() == 0;
    let agg = if streamed {
        streaming.finish(archive)
    } else {
        if let Some(a) = archive {
            sources.push(InputFile {
                parsed: a,
                live: false,
            });
        }
        Aggregate::scrape(&sources)
    };
    stats.add_conflicts(agg.conflicts);
    stats.add_bad_extensions(agg.bad_extensions + agg.torn_native);
    let dropped = agg.dropped + stats.unrecorded.load(Ordering::Relaxed);
    out.extend(agg.into_families());
    drop(sources);
    out.push(stats.family());
    out.push(stats.extension_family());
    out.push(
        MetricFamily::new(
            "promtrack_multiprocess_dropped_total",
            "Series that writers could not put in their multiprocess file (disk full, file not creatable): their updates are missing from the aggregate.",
            MetricKind::Counter,
        )
        .with_series(Series::new(Value::Counter(dropped as f64))),
    );
    out.push(
        MetricFamily::new(
            "promtrack_multiprocess_files",
            "Process files read by this scrape (live writers, and dead ones not yet compacted).",
            MetricKind::Gauge,
        )
        .with_series(Series::new(Value::Gauge(files as f64))),
    );
    process_metrics(&live_writers, out);
}

/// The process files a scrape aggregates, in its order ([`scrape_order`]: live files first, so
/// that their declaration wins a conflict, `aggregate.rs`): those the archive did not absorb.
pub(crate) fn in_order<'a>(
    mut files: Vec<(&'a Found, Parsed<'a>)>,
    archive: Option<&Parsed<'_>>,
) -> Vec<InputFile<'a>> {
    let absorbed = snapshot::absorbed(archive);
    crate::sort::sort_by(&mut files, |(fa, pa), (fb, pb)| {
        scrape_order(fa.live, &pa.info).cmp(&scrape_order(fb.live, &pb.info))
    });
    files
        .into_iter()
        .filter(|(_, p)| !absorbed.contains(&p.info.id))
        .map(|(f, parsed)| InputFile {
            parsed,
            live: f.live,
        })
        .collect()
}

/// Adds a file just copied to the scrape's streamed aggregate, if it is one the scrape reads:
/// it parses and is not an archive (what `DirSnapshot::process_files` keeps).
fn stream<'a>(streaming: &mut Streaming<'a>, f: &'a Found) {
    if let Ok(parsed) = Parsed::parse(&f.snapshot) {
        if !parsed.info.archive {
            streaming.add(parsed, f.live);
        }
    }
}

/// `process_*` of every live writer, labelled by pid (see the module docs).
#[cfg(all(feature = "process", target_os = "linux"))]
fn process_metrics(writers: &[(u32, u64)], out: &mut Vec<MetricFamily>) {
    let collector = crate::process::ProcessReader::new();
    let mut merged: Vec<MetricFamily> = Vec::new();
    for &(pid, ticks) in writers {
        let p = pid.to_string();
        if ticks == 0 || super::file::start_ticks(&p) != ticks {
            continue; // not visible from here, or not the same process any more
        }
        for fam in collector.read_at(&format!("/proc/{p}")).families() {
            let series = fam.series.into_iter().map(|s| s.label("pid", p.clone()));
            match merged.iter_mut().find(|m| m.name == fam.name) {
                Some(m) => m.series.extend(series),
                None => {
                    let mut m = MetricFamily::new(fam.name, fam.help, fam.kind);
                    m.series.extend(series);
                    merged.push(m);
                }
            }
        }
    }
    out.extend(merged);
}

#[cfg(not(all(feature = "process", target_os = "linux")))]
fn process_metrics(_: &[(u32, u64)], _: &mut Vec<MetricFamily>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::metric::{FamilyDecl, GaugeMode};
    use crate::model::NativeBuckets;
    use crate::multiprocess_store::aggregate::Purpose;
    use crate::multiprocess_store::file::{
        EXT_NATIVE_SETTINGS, EXT_NATIVE_SHARED, FLAG_ARCHIVE, H_USED, encode_absorbed,
        encode_extension, encode_family, encode_header, encode_series, native_settings_cells,
    };

    /// A declaration without bounds, of gauge mode `mode`.
    fn decl<'a>(
        name: &'a str,
        kind: MetricKind,
        mode: GaugeMode,
        labels: &'a [Box<str>],
    ) -> FamilyDecl<'a> {
        FamilyDecl {
            mode,
            ..crate::multiprocess_store::extension_tests::decl(name, kind, labels, &[])
        }
    }

    /// A dead process file: a counter, a per-process gauge, a `mostrecent` gauge (declared
    /// `max` instead by a file whose `temp_mode` says so: a conflict) and a native-only
    /// histogram whose schema depends on the file.
    fn file(id: u64, pid: u32, temp_mode: GaugeMode) -> Vec<u8> {
        let mut b = encode_header(id, pid, 0, 0, 0);
        let labels: [Box<str>; 1] = ["k".into()];
        let n = u64::from(pid);
        let families = [
            (
                "jobs_total",
                MetricKind::Counter,
                GaugeMode::Sum,
                vec![n, 0.25f64.to_bits()],
            ),
            (
                "workers",
                MetricKind::Gauge,
                GaugeMode::All,
                vec![(n as f64).to_bits()],
            ),
            (
                "temp",
                MetricKind::Gauge,
                temp_mode,
                vec![(n as f64).to_bits(), 10 * id, 0],
            ),
            // Added one rounding at a time, tenths sum differently in different orders.
            (
                "load",
                MetricKind::Gauge,
                GaugeMode::Sum,
                vec![(0.1 * n as f64).to_bits()],
            ),
        ];
        for (name, kind, mode, cells) in families {
            let d = decl(name, kind, mode, &labels);
            let fam = b.len();
            encode_family(&mut b, &d);
            let cells = &cells[..Layout::of(kind, mode.is_stamped(), 0).len()];
            encode_series(&mut b, fam as u32, cells, b"a\xff");
        }
        let native = FamilyDecl {
            bounds: &crate::multiprocess_store::file::NATIVE_ONLY_BOUNDS,
            ..decl("lat_seconds", MetricKind::Histogram, GaugeMode::All, &[])
        };
        let fam = b.len();
        encode_family(&mut b, &native);
        let schema = 3 - (pid % 3) as i8;
        let settings = native_settings_cells(schema, 16, 0.0, 0.0, true);
        let back = (b.len() - fam) as u32;
        encode_extension(&mut b, EXT_NATIVE_SETTINGS, back, &settings);
        let at = b.len();
        encode_series(&mut b, fam as u32, &[3, 0, 1.5f64.to_bits()], b"");
        let buckets = NativeBuckets {
            schema,
            zero_count: 1,
            positive: vec![(pid as i32 % 5, 2)],
            ..Default::default()
        };
        let cells = crate::metric::native::state_of(&buckets, 1.5, 16).unwrap();
        let back = (b.len() - at) as u32;
        encode_extension(&mut b, EXT_NATIVE_SHARED, back, &cells);
        let used = b.len() as u64;
        b[H_USED..H_USED + 8].copy_from_slice(&used.to_ne_bytes());
        b
    }

    /// The families a scrape of `dir` shows, but promtrack's own.
    fn scraped(dir: &Path) -> String {
        let mut out = Vec::new();
        collect_dir(dir, &Stats::default(), false, &mut out);
        out.retain(|f| !f.name.starts_with("promtrack_") && !f.name.starts_with("process_"));
        format!("{out:?}")
    }

    /// The same directory aggregated one file after another in the scrape's order, the archive
    /// last: what the streamed aggregate must equal.
    fn aggregated_in_order(dir: &Path) -> String {
        let stats = Stats::default();
        let snap = DirSnapshot::read(dir, &stats);
        let archive = snap.archive().ok().flatten();
        let mut sources = in_order(snap.process_files(None), archive.as_ref());
        sources.extend(archive.map(|parsed| InputFile {
            parsed,
            live: false,
        }));
        format!(
            "{:?}",
            Aggregate::new(&sources, Purpose::Scrape).into_families()
        )
    }

    /// Files aggregated as their copies finish (several copying threads, in no fixed order)
    /// give what aggregating them in order gives: per-process rows in pid order with their
    /// labels (two files share a pid), native histograms merged; and when that order decides
    /// something (a name declared differently) or a file copied is not one to count (absorbed
    /// by the archive), the scrape aggregates in order again.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "opens files with O_NONBLOCK, which Miri does not support"
    )]
    fn a_scrape_aggregating_files_as_they_are_copied_equals_one_in_order() {
        let dir = std::env::temp_dir().join(format!(
            "promtrack-stream-{}-{:x}",
            std::process::id(),
            crate::multiprocess_store::file::new_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // Enough files for helper threads; pids out of the directory's order, one twice.
        let write = |id: u64, pid: u32, mode| {
            std::fs::write(
                dir.join(format!("p-{pid}-{id:016x}.db")),
                file(id, pid, mode),
            )
            .unwrap()
        };
        for i in 0..40u64 {
            write(0x100 + i, (37 * i as u32) % 41 + 1, GaugeMode::MostRecent);
        }
        write(0x200, 7, GaugeMode::MostRecent);
        let want = aggregated_in_order(&dir);
        assert!(
            want.contains("pid") && want.contains("7-00000200"),
            "{want}"
        );
        assert!(want.contains("NativeBuckets"), "{want}");
        assert_eq!(scraped(&dir), want);
        // The archive absorbed one of the files (a compaction between its copy and the
        // archive's): left out.
        let archived = 0x105u64;
        let mut archive = encode_header(0x999, 1, FLAG_ARCHIVE, 0, 0);
        encode_absorbed(&mut archive, &[archived]);
        let used = archive.len() as u64;
        archive[H_USED..H_USED + 8].copy_from_slice(&used.to_ne_bytes());
        std::fs::write(dir.join(snapshot::ARCHIVE), archive).unwrap();
        let want = aggregated_in_order(&dir);
        assert_ne!(want, aggregated_without_archive(&dir));
        assert_eq!(scraped(&dir), want);
        // `temp` declared `max` by the file of the lowest pid: its declaration wins, and the
        // other files' `temp` series are skipped (its value is that file's, 0).
        std::fs::remove_file(dir.join(snapshot::ARCHIVE)).unwrap();
        write(0x300, 0, GaugeMode::Max);
        let want = aggregated_in_order(&dir);
        assert!(want.contains(r#"name: "temp", help: "Help.", kind: Gauge, series: [Series { labels: [("k", "a")], value: Gauge(0.0)"#), "{want}");
        assert_eq!(scraped(&dir), want);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A `sum` gauge's value does not depend on the order its files are added in: the fixture's
    /// 0.1, 0.2 and 0.1 × 3 (0.30000000000000004) added one rounding at a time give
    /// 0.6000000000000001 in that order and 0.6 in the other; summed exactly, the double nearest
    /// their exact sum, 0.6000000000000001 (Python's `math.fsum`), in both.
    #[test]
    fn a_sum_gauge_is_the_same_in_any_order() {
        let bytes: Vec<Vec<u8>> = (1..=3)
            .map(|pid| file(0x100 + u64::from(pid), pid, GaugeMode::MostRecent))
            .collect();
        let snapshots: Vec<_> = bytes
            .into_iter()
            .map(crate::multiprocess_store::read::Snapshot::unshrunk)
            .collect();
        let load = |order: &[usize]| {
            let sources: Vec<InputFile<'_>> = order
                .iter()
                .map(|&i| InputFile {
                    parsed: Parsed::parse(&snapshots[i]).unwrap(),
                    live: false,
                })
                .collect();
            let fams = Aggregate::new(&sources, Purpose::Scrape).into_families();
            let load = fams.iter().find(|f| f.name == "load").unwrap();
            load.series[0].value.clone()
        };
        assert_eq!(load(&[0, 1, 2]), Value::Gauge(0.6000000000000001));
        assert_eq!(load(&[2, 1, 0]), Value::Gauge(0.6000000000000001));
    }

    fn aggregated_without_archive(dir: &Path) -> String {
        let keep = dir.join("kept-archive");
        std::fs::rename(dir.join(snapshot::ARCHIVE), &keep).unwrap();
        let s = aggregated_in_order(dir);
        std::fs::rename(&keep, dir.join(snapshot::ARCHIVE)).unwrap();
        s
    }
}
