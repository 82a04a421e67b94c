//! One scrape of a multiprocess directory: fold dead processes' files if there are any, then
//! aggregate every file with the archive into families, with promtrack's own
//! `promtrack_multiprocess_*` families and the live writers' `process_*` metrics.
//!
//! Invariants: a scrape never fails (what it cannot read is counted and skipped, `stats.rs`),
//! and never counts a file twice: files the archive absorbed are skipped (`snapshot.rs`).

use std::path::Path;
use std::sync::atomic::Ordering;

use super::aggregate::{Aggregate, InputFile};
use super::read::ReadError;
use super::snapshot::{self, ArchiveError, DirSnapshot};
use super::{Stats, compact};
use crate::model::{MetricFamily, MetricKind, Series, Value};

/// Aggregates the directory at `path` into `out`, folding dead files into the archive first
/// when `compact` allows it.
pub(crate) fn collect_dir(path: &Path, stats: &Stats, compact: bool, out: &mut Vec<MetricFamily>) {
    let first = DirSnapshot::read(path, stats);
    let mut files = first.process_files(Some(stats));
    let mut snapshot = &first;
    let second;
    if compact && files.iter().any(|(f, _)| !f.live) {
        let run = compact::Run {
            wait: false,
            own: None,
            wipe: false,
        };
        // Compacted or not, read again: what we opened may now be absorbed.
        if let Ok(Some(_)) = compact::compact(path, stats, run) {
            second = DirSnapshot::read(path, stats);
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
    let absorbed = snapshot::absorbed(archive.as_ref());
    // Live files first: the first declaration read wins a conflict (aggregate.rs).
    crate::sort::sort_by(&mut files, |(fa, pa), (fb, pb)| {
        (!fa.live, pa.info.pid, pa.info.id).cmp(&(!fb.live, pb.info.pid, pb.info.id))
    });
    let mut sources: Vec<InputFile<'_>> = files
        .into_iter()
        .filter(|(_, p)| !absorbed.contains(&p.info.id))
        .map(|(f, parsed)| InputFile {
            parsed,
            live: f.live,
        })
        .collect();
    let live_writers: Vec<(u32, u64)> = sources
        .iter()
        .filter(|s| s.live)
        .map(|s| (s.parsed.info.pid, s.parsed.info.start_ticks))
        .collect();
    let files = sources.len();
    if let Some(a) = archive {
        sources.push(InputFile {
            parsed: a,
            live: false,
        });
    }
    let agg = Aggregate::scrape(&sources);
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
