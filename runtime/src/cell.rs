//! Value cells: the 8-byte atomics every sample value lives in (DESIGN principle 1).
//!
//! A [`Cells`] block is a run of `AtomicU64`s that never moves once handed out. In one process
//! it owns a heap allocation; in multiprocess mode it points into this process's memory-mapped
//! file, which is never unmapped while the process lives. Either way a metric handle reaches its
//! value with one pointer load and one atomic instruction: no lock, no hash, no allocation.
//!
//! Floating-point values are stored as their IEEE-754 bit pattern; integer counts (counter
//! increments by whole numbers, histogram buckets) are stored as plain `u64`s so that the common
//! case is a single `fetch_add`.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fixed-length run of atomic cells that never moves.
pub struct Cells {
    ptr: NonNull<AtomicU64>,
    len: usize,
    /// Keeps a heap block alive; `None` when the cells live in a mapping that outlives the
    /// process's metrics (multiprocess mode).
    _owned: Option<Box<[AtomicU64]>>,
}

// SAFETY: the cells are atomics, shared by design; the pointer is either into `_owned` (moved
// together with it, and a boxed slice's heap block does not move) or into a mapping that is
// never unmapped while the process runs.
unsafe impl Send for Cells {}
unsafe impl Sync for Cells {}

impl Cells {
    /// `len` zeroed cells on the heap.
    pub(crate) fn heap(len: usize) -> Self {
        let owned: Box<[AtomicU64]> = (0..len.max(1)).map(|_| AtomicU64::new(0)).collect();
        let ptr = NonNull::from(&owned[0]);
        Self {
            ptr,
            len,
            _owned: Some(owned),
        }
    }

    /// Cells that live elsewhere (a memory-mapped file).
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised, 8-byte aligned `AtomicU64`s that stay valid and
    /// are never unmapped for the rest of the process's life.
    #[allow(dead_code)] // used by the multiprocess store
    pub(crate) unsafe fn external(ptr: NonNull<AtomicU64>, len: usize) -> Self {
        Self {
            ptr,
            len,
            _owned: None,
        }
    }

    /// Number of cells.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Cell `i`. Callers index only below the length their metric type asked for, which
    /// `debug_assert` checks; release builds skip the bounds check on the hot path.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.len, "cell {i} out of {}", self.len);
        // SAFETY: `i < len` by the metric types' construction (checked in debug builds), and
        // the block is valid for `len` cells by `Cells`' invariant.
        unsafe { &*self.ptr.as_ptr().add(i) }
    }
}

/// Adds `v` to the `f64` stored in `cell`.
#[inline]
pub(crate) fn add_f64(cell: &AtomicU64, v: f64) {
    let mut old = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(old) + v).to_bits();
        match cell.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => old = actual,
        }
    }
}

/// Reads the `f64` stored in `cell`.
#[inline]
pub(crate) fn load_f64(cell: &AtomicU64) -> f64 {
    f64::from_bits(cell.load(Ordering::Relaxed))
}

/// Stores `v` as an `f64` in `cell`.
#[inline]
pub(crate) fn store_f64(cell: &AtomicU64, v: f64) {
    cell.store(v.to_bits(), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_cells_start_at_zero_and_add() {
        let c = Cells::heap(3);
        assert_eq!(c.len(), 3);
        add_f64(c.at(2), 1.5);
        add_f64(c.at(2), 2.25);
        assert_eq!(load_f64(c.at(2)), 3.75);
        assert_eq!(c.at(0).load(Ordering::Relaxed), 0);
    }

    #[test]
    fn concurrent_float_adds_lose_nothing() {
        let c = Cells::heap(1);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        add_f64(c.at(0), 0.5);
                    }
                });
            }
        });
        assert_eq!(load_f64(c.at(0)), 20_000.0);
    }
}
