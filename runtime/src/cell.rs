//! Value cells: the 8-byte atomics every sample value lives in (ARCHITECTURE.md, *One value cell*).
//!
//! A [`Cells`] block is a run of `AtomicU64`s that never moves once handed out. In one process
//! the cells sit inline in their series' record (`family/record.rs`), or in a heap block of
//! their own ([`Cells::heap`]); in multiprocess mode they are in this process's memory-mapped
//! file, which is never unmapped while the process lives. Either way a metric handle reaches its
//! value with one pointer load and one atomic instruction: no lock, no hash, no allocation.
//!
//! Floating-point values are stored as their IEEE-754 bit pattern; integer counts (counter
//! increments by whole numbers, histogram buckets) are stored as plain `u64`s so that the common
//! case is a single `fetch_add`.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// One cache line of cells. Heap cells are allocated in whole lines so that a series' hot
/// cells never share a line with another series' cells or with read-only data a scrape or a
/// lookup reads: two threads updating two series never slow each other down.
#[repr(align(64))]
#[allow(dead_code)] // the cells are reached through `Cells::ptr`, never by field
struct Line([AtomicU64; 8]);

/// The size and alignment of a cache line, for blocks that give hot cells a line of their own.
pub(crate) const LINE: usize = align_of::<Line>();

/// A fixed-length run of atomic cells that never moves.
///
/// 16 bytes: every series holds one, so its size is paid per series (see ARCHITECTURE.md,
/// *The series record*).
pub struct Cells {
    ptr: NonNull<AtomicU64>,
    len: u32,
    /// Where the cells live. A tag and a raw pointer, not a `Box`, because `ptr` aliases an
    /// owned block for the cells' whole life.
    home: Home,
}

/// Where a [`Cells`] block lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Home {
    /// A heap block of `lines(len)` [`Line`]s these cells own (from `Box::leak`, freed on drop).
    Owned,
    /// A mapping that outlives the process's metrics (multiprocess mode): the only home whose
    /// address [`Cells::external_ptr`] hands to the store that wrote around it.
    Mapped,
    /// Memory another value owns and frees after these cells: the series record holding them
    /// (`family/record.rs`), or a histogram's stripe block (`metric/stripes.rs`).
    Borrowed,
}

/// The number of [`Line`]s a heap block of `len` cells takes.
fn lines(len: usize) -> usize {
    len.div_ceil(8).max(1)
}

// SAFETY: the cells are atomics, shared by design; the pointer is either into `owned` (a heap
// block this value frees on drop) or into a mapping that is never unmapped while the process
// runs.
unsafe impl Send for Cells {}
unsafe impl Sync for Cells {}

impl Cells {
    /// `len` zeroed cells on the heap.
    pub(crate) fn heap(len: usize) -> Self {
        let owned: Box<[Line]> = (0..lines(len))
            .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        let owned = NonNull::from(Box::leak(owned));
        Self {
            ptr: owned.cast(),
            len: u32::try_from(len).expect("a series has fewer than 2^32 cells"),
            home: Home::Owned,
        }
    }

    /// Cells in a memory-mapped file (multiprocess mode).
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised, 8-byte aligned `AtomicU64`s that stay valid and
    /// are never unmapped for the rest of the process's life, inside a record the multiprocess
    /// store wrote (it reads around them, see [`external_ptr`](Self::external_ptr)).
    #[allow(dead_code)] // used by the multiprocess store
    pub(crate) unsafe fn external(ptr: NonNull<AtomicU64>, len: usize) -> Self {
        Self {
            ptr,
            len: u32::try_from(len).expect("a series has fewer than 2^32 cells"),
            home: Home::Mapped,
        }
    }

    /// Cells in memory another value owns: the series record holding them, or a stripe block.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised, 8-byte aligned `AtomicU64`s that stay valid for as
    /// long as the returned value and anything borrowing from it (the owner frees them only
    /// after this value is dropped).
    pub(crate) unsafe fn borrowed(ptr: NonNull<AtomicU64>, len: usize) -> Self {
        Self {
            ptr,
            len: u32::try_from(len).expect("a series has fewer than 2^32 cells"),
            home: Home::Borrowed,
        }
    }

    /// The first cell's address if these cells live in a mapping the multiprocess store wrote,
    /// so that it can find what it wrote around them; `None` for every other home.
    #[allow(dead_code)] // read by the multiprocess store's stripe hook
    pub(crate) fn external_ptr(&self) -> Option<NonNull<AtomicU64>> {
        (self.home == Home::Mapped).then_some(self.ptr)
    }

    /// Number of cells.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Cell `i`. Callers index only below the length their metric type asked for, which
    /// `debug_assert` checks; release builds skip the bounds check on the hot path.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.len(), "cell {i} out of {}", self.len);
        // SAFETY: `i < len` by the metric types' construction (checked in debug builds), and
        // the block is valid for `len` cells by `Cells`' invariant.
        unsafe { &*self.ptr.as_ptr().add(i) }
    }
}

impl Drop for Cells {
    fn drop(&mut self) {
        if self.home == Home::Owned {
            let block = std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr().cast::<Line>(),
                lines(self.len()),
            );
            // SAFETY: an owned `ptr` came from `Box::leak` of `lines(len)` lines in `heap` (with
            // its provenance) and is freed once, here; no reference to the cells outlives
            // `self` (handles borrow their `Cells`).
            drop(unsafe { Box::from_raw(block) });
        }
    }
}

/// Adds `v` to the `f64` stored in `cell`.
#[inline]
pub(crate) fn add_f64(cell: &AtomicU64, v: f64) {
    add_f64_from(cell, cell.load(Ordering::Relaxed), v);
}

/// [`add_f64`] starting from `old`, the cell's bits as the caller read them earlier: a caller
/// with another locked instruction to issue first loads the sum before it, so that no load
/// waits behind that instruction (a stale `old` only costs one more compare-and-swap).
#[inline]
pub(crate) fn add_f64_from(cell: &AtomicU64, mut old: u64, v: f64) {
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
        assert_eq!(
            c.at(0) as *const AtomicU64 as usize % 64,
            0,
            "cache-line aligned"
        );
        let big = Cells::heap(20);
        big.at(19).store(7, Ordering::Relaxed);
        assert_eq!(big.at(19).load(Ordering::Relaxed), 7);
        add_f64(c.at(2), 1.5);
        add_f64(c.at(2), 2.25);
        assert_eq!(load_f64(c.at(2)), 3.75);
        assert_eq!(c.at(0).load(Ordering::Relaxed), 0);
    }

    #[test]
    fn concurrent_float_adds_lose_nothing() {
        // Fewer under Miri, which interprets every instruction; four threads still contend.
        let adds = if cfg!(miri) { 100 } else { 10_000 };
        let c = Cells::heap(1);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..adds {
                        add_f64(c.at(0), 0.5);
                    }
                });
            }
        });
        assert_eq!(load_f64(c.at(0)), 4.0 * 0.5 * adds as f64);
    }

    /// Cells over memory the caller owns (a mapped file in multiprocess mode; a heap buffer
    /// standing in for it here, so that Miri checks the pointer arithmetic and that dropping
    /// the `Cells` leaves the memory alone).
    #[test]
    fn external_cells_use_the_callers_memory_and_do_not_free_it() {
        let backing: Vec<AtomicU64> = (0..4).map(AtomicU64::new).collect();
        // From the whole buffer, not `&backing[1]`: a pointer from a reference to one element
        // may not reach its neighbours (Miri reports exactly that).
        let ptr = NonNull::new(backing.as_ptr().wrapping_add(1).cast_mut()).expect("not null");
        // SAFETY: three initialised, aligned atomics that outlive `cells`.
        let cells = unsafe { Cells::external(ptr, 3) };
        assert_eq!(cells.len(), 3);
        assert_eq!(cells.at(2).load(Ordering::Relaxed), 3);
        add_f64(cells.at(0), 0.5);
        store_f64(cells.at(2), 2.0);
        drop(cells);
        assert_eq!(load_f64(&backing[1]), f64::from_bits(1) + 0.5);
        assert_eq!(load_f64(&backing[3]), 2.0);
        assert_eq!(backing[0].load(Ordering::Relaxed), 0);
    }
}
