//! A family's series with their metric type erased: creation, the overflow series, the scrape's
//! order, freeing. None of it touches a metric but through a closure or a function pointer
//! ([`Shape`]), so it is compiled once, not once per metric kind: as generic code (one copy per
//! `Family<_, M>`'s `M`) it made the build-weight app's binary about 33 KB larger (BENCHMARKS.md,
//! *Build time and binary size*, branch `binary5`). The lookup's hit path stays typed and
//! inlined, and the scrape's loop over the series stays generic (`family.rs`).
//!
//! Invariants:
//! - Every record is created by [`Series::insert`] with this family's [`Shape`], published in
//!   the table only once fully written, listed in `all` (or as `overflow`, which is also in
//!   `all`), and freed once, when the `Series` drops.
//! - New series are created, and `all` is reordered, only under the lock.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cell::Cells;
use crate::key::{KeyRef, word_form_values, words_of};
use crate::metric::FamilyDecl;
use crate::model::KeyLabels;

use super::OVERFLOW_LABEL_VALUE;
use super::record::{Prefix, RawRecord, Shape};
use super::table::Table;

/// Everything the lookups do not read, behind the family's lock.
struct State {
    /// Every series, owned here (freed in `Series::drop`).
    all: Vec<RawRecord>,
    /// Whether `all` is sorted by key (new series are appended; a scrape sorts).
    sorted: bool,
    overflow: Option<RawRecord>,
}

/// The kind-independent part of a family: its series, and what creating them needs.
pub(super) struct Series {
    shape: Shape,
    state: Mutex<State>,
    overflow_hits: AtomicU64,
    /// Whether some series' value needs escaping in the text formats (`\\`, `"`, line feed):
    /// until one does, a scrape copies the values as they are. Only ever set, under the lock.
    pub(super) escaping: AtomicBool,
}

// SAFETY: the records are owned by this value and only shared for reading (their metric's cells
// are atomics); their metrics are `Send + Sync` (`Shape::of` requires it).
unsafe impl Send for Series {}
unsafe impl Sync for Series {}

/// A key the lock-free read did not find: its `arity` values in word form, hashed to `hash`
/// with the family's seed.
pub(super) struct Miss<'a> {
    pub(super) hash: u64,
    pub(super) key: KeyRef<'a>,
    pub(super) arity: usize,
}

/// What [`Series::insert`] found or made.
pub(super) struct Inserted {
    pub(super) record: RawRecord,
    /// Whether the record is this key's own new series (not one another thread created
    /// meanwhile, nor the overflow series).
    pub(super) new: bool,
}

impl Series {
    /// No series yet; records of the given shape. Out of line: the families' constructors are
    /// generic.
    #[inline(never)]
    pub(super) fn new(shape: Shape) -> Self {
        Self {
            shape,
            state: Mutex::new(State {
                all: Vec::new(),
                sorted: true,
                overflow: None,
            }),
            overflow_hits: AtomicU64::new(0),
            escaping: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the series of a key the lock-free read did not find, or finds it if another
    /// thread created it meanwhile, or routes it to the overflow series if it has the wrong
    /// arity or the family is full (`decl`'s label names, `max_series` series). `seed` is the
    /// family's.
    ///
    /// # Safety
    /// `table` is this family's table, and `write` writes, at the address it is given, a
    /// metric of the type this `Series`' shape is of, built on the cells it is given.
    pub(super) unsafe fn insert(
        &self,
        table: &Table<Prefix>,
        seed: u64,
        miss: Miss<'_>,
        decl: &FamilyDecl<'_>,
        max_series: usize,
        write: &mut dyn FnMut(Cells, NonNull<u8>),
    ) -> Inserted {
        let Miss { hash, key, arity } = miss;
        let mut state = self.lock();
        if let Some(record) = self.find(table, hash, &key) {
            return Inserted { record, new: false };
        }
        let new = arity == decl.label_names.len() && state.all.len() < max_series;
        let record = if new {
            // SAFETY: the caller's contract, and we hold the lock.
            unsafe { self.create(&mut state, table, hash, key, decl, write) }
        } else {
            self.overflow_hits.fetch_add(1, Ordering::Relaxed);
            match state.overflow {
                Some(record) => record,
                // SAFETY: as above.
                None => unsafe { self.create_overflow(&mut state, table, seed, decl, write) },
            }
        };
        Inserted { record, new }
    }

    /// The record of `key` in `table`, if there is one.
    fn find(&self, table: &Table<Prefix>, hash: u64, key: &KeyRef<'_>) -> Option<RawRecord> {
        table
            .find(hash, |p| Self::raw(p).matches(&self.shape, key))
            .map(Self::raw)
    }

    /// A record the table handed out.
    fn raw(p: NonNull<Prefix>) -> RawRecord {
        // SAFETY: the table holds only pointers of records `create` made, freed only on drop.
        unsafe { RawRecord::from_ptr(p) }
    }

    /// The overflow series, created on its first need.
    ///
    /// # Safety
    /// As for [`insert`](Self::insert); `state` is this family's, locked.
    #[cold]
    unsafe fn create_overflow(
        &self,
        state: &mut State,
        table: &Table<Prefix>,
        seed: u64,
        decl: &FamilyDecl<'_>,
        write: &mut dyn FnMut(Cells, NonNull<u8>),
    ) -> RawRecord {
        let words = overflow_key(decl.label_names.len());
        let key = KeyRef { words: &words };
        let hash = key.hash(seed);
        // A caller may have used the overflow value itself: then it is the same series.
        let record = match self.find(table, hash, &key) {
            Some(record) => record,
            // SAFETY: the caller's contract.
            None => unsafe { self.create(state, table, hash, key, decl, write) },
        };
        state.overflow = Some(record);
        record
    }

    /// Creates and publishes the record of a new series (`record.rs`): one allocation, the
    /// cells inline unless the storage seam puts them in this process's file.
    ///
    /// # Safety
    /// As for [`insert`](Self::insert); `state` is this family's, locked, and `key` is new.
    unsafe fn create(
        &self,
        state: &mut State,
        table: &Table<Prefix>,
        hash: u64,
        key: KeyRef<'_>,
        decl: &FamilyDecl<'_>,
        write: &mut dyn FnMut(Cells, NonNull<u8>),
    ) -> RawRecord {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let external = crate::store::external_cells(decl, key);
        // SAFETY: the caller's contract on `write`.
        let series = unsafe {
            RawRecord::new(
                &self.shape,
                hash,
                created,
                key.words,
                decl.layout().len(),
                external,
                write,
            )
        };
        let key = series.key(&self.shape);
        if key.iter().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
            self.escaping.store(true, Ordering::Relaxed);
        }
        // SAFETY: we hold the family's lock, the key is new, and `state.all` keeps the record
        // alive and unmoved until the `Series` drops, after the table's last reader.
        unsafe { table.insert(series.as_ptr()) };
        if state.sorted {
            if let Some(last) = state.all.last() {
                state.sorted = cmp_values(last.key(&self.shape), key).is_lt();
            }
        }
        state.all.push(series);
        series
    }

    /// Number of series, the overflow series included.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().all.len()
    }

    /// Every series' key (word form), in creation order unless a scrape sorted them.
    #[cfg(test)]
    pub(super) fn keys(&self) -> Vec<Vec<u8>> {
        let state = self.lock();
        state
            .all
            .iter()
            .map(|s| s.key(&self.shape).to_vec())
            .collect()
    }

    /// Lookups routed to the overflow series.
    pub(super) fn overflow_hits(&self) -> u64 {
        self.overflow_hits.load(Ordering::Relaxed)
    }

    /// Every series, ordered by label values, for a scrape: the family's lock, held until the
    /// returned value drops. Lookups of existing series go on unhindered meanwhile; only the
    /// creation of a new series waits for the scrape to finish with this family.
    ///
    /// The lock and the sort are here, compiled once; the loop over the series is the caller's,
    /// generic, so that a series' scrape calls its metric directly (a `dyn` call per series
    /// cost the scrape 2 to 4 % more instructions, `scripts/callgrind-scrape.sh`).
    pub(super) fn sorted(&self) -> Sorted<'_> {
        let mut state = self.lock();
        let shape = &self.shape;
        if !state.sorted {
            crate::sort::sort_by(&mut state.all, |a, b| {
                cmp_values(a.key(shape), b.key(shape))
            });
            state.sorted = true;
        }
        Sorted {
            // Set under the lock, as every series is created: read here, under it too.
            escape: self.escaping.load(Ordering::Relaxed),
            state,
            shape,
        }
    }
}

/// A family's series in label-value order, its lock held ([`Series::sorted`]).
pub(super) struct Sorted<'a> {
    state: MutexGuard<'a, State>,
    shape: &'a Shape,
    escape: bool,
}

impl Sorted<'_> {
    /// Each series with its label pairs, from `label_names` and its key.
    #[inline]
    pub(super) fn each<'a>(
        &'a self,
        label_names: &'a [Box<str>],
    ) -> impl Iterator<Item = (RawRecord, KeyLabels<'a>)> + 'a {
        self.state.all.iter().map(|&s| {
            (
                s,
                KeyLabels::new(label_names, s.key(self.shape), self.escape),
            )
        })
    }
}

impl Drop for Series {
    #[inline(never)]
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for s in state.all.drain(..) {
            // SAFETY: every record was made in `create` with this shape and is freed once,
            // here; the table and the dense array only borrow them and are not read after this,
            // and every handle borrowed the family.
            unsafe { s.free(&self.shape) };
        }
    }
}

/// The key (word form, `key.rs`) of the overflow series of a family with `arity` labels: every
/// value [`OVERFLOW_LABEL_VALUE`].
fn overflow_key(arity: usize) -> Vec<u64> {
    let mut key = Vec::new();
    for _ in 0..arity {
        key.extend_from_slice(OVERFLOW_LABEL_VALUE.as_bytes());
        key.push(crate::labels::KEY_SEPARATOR);
    }
    words_of(&key)
}

/// Orders keys in word form (`key.rs`) like the tuples of values they hold (`("/", "200")`
/// before `("/users", "200")`).
pub(super) fn cmp_values(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    word_form_values(a).cmp(word_form_values(b))
}
