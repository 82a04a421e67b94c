//! What this process's scrapes of a multiprocess directory could not read, and the series it
//! could not put in its file: counted here, exposed as `promtrack_multiprocess_*` families.
//!
//! Invariant: counts only grow (they are exposed as counters), and are per process, shared by
//! every scrape of one directory.

use std::sync::atomic::{AtomicU64, Ordering};

use super::read::ReadError;
use crate::model::{MetricFamily, MetricKind, Series, Value};

/// Read errors and conflicts seen by this process's scrapes.
#[derive(Default)]
pub(crate) struct Stats {
    corrupt: AtomicU64,
    version: AtomicU64,
    io: AtomicU64,
    conflict: AtomicU64,
    /// Extension records skipped (see `read.rs`).
    extension: AtomicU64,
    /// Series this process could not put in its file (no file, or no disk).
    pub(crate) unrecorded: AtomicU64,
}

impl Stats {
    pub(crate) fn count(&self, e: ReadError) {
        match e {
            ReadError::Corrupt(_) => &self.corrupt,
            ReadError::Version(_) => &self.version,
            ReadError::Io => &self.io,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_conflicts(&self, n: u64) {
        self.conflict.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_bad_extensions(&self, n: u64) {
        self.extension.fetch_add(n, Ordering::Relaxed);
    }

    /// Extension records skipped: not a file skipped, so not a read error (the rest of the
    /// file was read).
    pub(crate) fn extension_family(&self) -> MetricFamily {
        MetricFamily::new(
            "promtrack_multiprocess_skipped_extensions_total",
            "Extension records of multiprocess files (native histogram state, exemplar slots) skipped by this process's scrapes because they did not validate, or native states of live processes left out of one scrape because every copy was taken in the middle of a reduction; the rest of their files was read.",
            MetricKind::Counter,
        )
        .with_series(Series::new(Value::Counter(
            self.extension.load(Ordering::Relaxed) as f64,
        )))
    }

    pub(crate) fn family(&self) -> MetricFamily {
        let mut f = MetricFamily::new(
            "promtrack_multiprocess_read_errors_total",
            "Files of the multiprocess directory skipped by this process's scrapes (corrupt, unknown_version, io), and series skipped because their family was declared differently by another process (conflict).",
            MetricKind::Counter,
        );
        for (reason, n) in [
            ("conflict", &self.conflict),
            ("corrupt", &self.corrupt),
            ("io", &self.io),
            ("unknown_version", &self.version),
        ] {
            f.series.push(
                Series::new(Value::Counter(n.load(Ordering::Relaxed) as f64))
                    .label("reason", reason),
            );
        }
        f
    }
}
