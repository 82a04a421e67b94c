//! The storage seam: where a series' cells live, and what the default registry exposes besides
//! its own families. Outside `multiprocess/`, `multiprocess_store/` and `lib.rs`, this is the only module that knows
//! multiprocess mode exists; the `cfg`s naming it stay here.
//!
//! - A new series' cells come from this process's multiprocess file while the mode is on, so
//!   that every process's scrape sees them, and from the heap otherwise (or when the file
//!   cannot take them). A family says what it is with a typed [`FamilyDecl`]; the layout of its
//!   cells follows from that declaration (`layout.rs`), whichever store holds them.
//! - The default registry collects the `process_*` metrics of this process — or, in
//!   multiprocess mode, of every live writer of the directory, which the directory's aggregate
//!   includes — and the aggregate itself, which then replaces its own families.
//!
//! Invariant: a series' cells never move and live as long as the series (both stores guarantee
//! it, see `cell.rs`). This module sits below the family and the registry: it hands the
//! registry plain functions rather than importing it, and it calls multiprocess mode's
//! storage backend (`multiprocess_store/`), never the public `multiprocess/` module, whose
//! `DirCollector` is a `Collector` above the registry.

use crate::cell::Cells;
use crate::key::KeyRef;
use crate::metric::FamilyDecl;
use crate::model::MetricFamily;

/// The cells of a new series of the family `decl`, whose label values are `key` (`key.rs`),
/// zeroed, when they live outside the series' own record: in this process's multiprocess file.
/// `None` means the heap: the family then puts them inline in the series record
/// (`family/record.rs`), sized by `decl.layout()`. Called by the family, under its lock, when
/// it creates a series: the cold path.
pub(crate) fn external_cells(decl: &FamilyDecl<'_>, key: KeyRef<'_>) -> Option<Cells> {
    #[cfg(all(feature = "multiprocess", unix))]
    {
        // The file records the joined form.
        key.with_joined(|key| crate::multiprocess_store::series_cells(decl, key))
    }
    #[cfg(not(all(feature = "multiprocess", unix)))]
    {
        let _ = (decl, key); // the heap does not record label values
        None
    }
}

/// Something the default registry collects on every scrape.
pub(crate) type Collect = Box<dyn Fn(&mut Vec<MetricFamily>) + Send + Sync>;

/// What the default registry collects besides its own families (see the module docs). Called
/// once, when the default registry is created; consults the multiprocess environment then.
pub(crate) fn default_registry_sources() -> Vec<Collect> {
    [process_metrics(), directory()]
        .into_iter()
        .flatten()
        .collect()
}

/// The `process_*` metrics of this process, or none in multiprocess mode: the directory's
/// aggregate has every live writer's then, this process's among them.
fn process_metrics() -> Option<Collect> {
    #[cfg(all(feature = "process", target_os = "linux"))]
    {
        let this_process = crate::process::ProcessReader::new();
        Some(Box::new(move |out: &mut Vec<MetricFamily>| {
            if !default_registry_reads_files() {
                out.extend(this_process.read().families());
            }
        }))
    }
    #[cfg(not(all(feature = "process", target_os = "linux")))]
    {
        None
    }
}

/// The directory's aggregate, while multiprocess mode is on.
fn directory() -> Option<Collect> {
    #[cfg(all(feature = "multiprocess", unix))]
    {
        Some(Box::new(crate::multiprocess_store::on_default_registry()))
    }
    #[cfg(not(all(feature = "multiprocess", unix)))]
    {
        None
    }
}

/// Whether the default registry exposes a multiprocess directory's aggregate instead of its
/// own families (whose values are this process's file, read like every other). Asked on every
/// scrape: the mode may be switched on after the registry was created.
pub(crate) fn default_registry_reads_files() -> bool {
    #[cfg(all(feature = "multiprocess", unix))]
    {
        crate::multiprocess_store::is_enabled()
    }
    #[cfg(not(all(feature = "multiprocess", unix)))]
    {
        false
    }
}

/// The path of this process's multiprocess file, if it has one (tests reach it through
/// `__private`).
pub(crate) fn own_file() -> Option<std::path::PathBuf> {
    #[cfg(all(feature = "multiprocess", unix))]
    {
        crate::multiprocess_store::own_file()
    }
    #[cfg(not(all(feature = "multiprocess", unix)))]
    {
        None
    }
}
