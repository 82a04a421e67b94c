//! Multiprocess mode's storage backend: the mode switch, this process's memory-mapped file,
//! and the shared directory of every process's files — read, aggregated and compacted. What
//! the mode means for users (and its public API) is documented in `multiprocess/`.
//!
//! Invariants:
//! - This module sits below the storage seam (`store.rs`), the family and the registry: it
//!   names nothing above `model.rs`, `metric/`, `layout.rs` and `process.rs`. The public API,
//!   the [`Collector`](crate::Collector) over a directory and the start-up declaration check
//!   live in `multiprocess/`, above the registry, and use this module.
//! - Only this process writes its file; every other file of the directory is read from a
//!   copy, so a hostile or truncated file can make a read fail (counted) but never panic.
//!
//! Map: `mode.rs` (is the mode on, where a new series' cells live, fork and exit hooks),
//! `file.rs` (the byte layout and the writer), `lock.rs` (liveness by `flock`), `dir.rs` (the
//! directory's permission checks), `read.rs` (parsing a copied file), `shrink.rs` (what is kept
//! of a copy: native states in their sparse form), `snapshot.rs` (one read of the whole
//! directory, files copied on several threads), `aggregate.rs` and `exact.rs` (combining files by kind and gauge
//! mode), `native_merge.rs` (native histograms across processes; exemplar slots are `exemplar.rs`'s,
//! attached to a series in the file by `mode.rs`), `compact.rs` (folding dead files into the archive), `scrape.rs` (one scrape's
//! families), `stats.rs` (what the scrapes skipped), `threads.rs` (the helper threads a scrape
//! copies and aggregates on).

mod aggregate;
mod compact;
pub(crate) mod dir;
mod exact;
#[cfg(test)]
mod extension_tests;
mod file;
mod lock;
mod mode;
mod native_merge;
mod read;
mod scrape;
mod shrink;
mod snapshot;
mod stats;
mod threads;

pub use dir::SHARED_ENV;
pub use mode::{ENV, ENV_LOWERCASE, WIPE_ENV, directory, is_enabled, mark_process_dead};
pub(crate) use mode::{Setup, on_default_registry, own_file, series_cells};
pub(crate) use scrape::collect_dir;
pub(crate) use stats::Stats;
