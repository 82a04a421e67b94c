//! Stripes: extra copies of a hot histogram series' cells, so that threads on different cores
//! stop writing the same cache lines (ARCHITECTURE.md, *One value cell*, and its exception for
//! contended series).
//!
//! A histogram observe is two read-modify-writes on its series' cells: a bucket's `fetch_add`
//! and the sum's compare-and-swap. When several cores observe into one series, every observe
//! moves those lines between cores. A series that shows contention — its sum's first
//! compare-exchange failing because another thread wrote in between, [`THRESHOLD`] times within
//! [`WINDOW_MS`] milliseconds of the first — gets `ways() - 1` extra stripes of its cells, allocated once and
//! published through one pointer; each thread then writes the stripe its probe names
//! (a per-thread index, assigned round-robin and moved on when it still collides, as Java's
//! `LongAdder` does). Reads (`count`, `sum`, a scrape) add the primary cells and every stripe.
//!
//! Invariants:
//! - Series never contended never pay: no stripe memory, and the observe path reads one more
//!   pointer, null. The stripe set is allocated at most once per series (the first thread to
//!   claim it allocates; the others keep the primary cells until it is published) and lives as
//!   long as the series; memory stays bounded by `ways() - 1` stripes per series.
//! - Every stripe is zeroed before it is published (release store, acquire load), so a reader
//!   sees whole stripes; totals are the sums over primary + stripes, exact for the integer
//!   bucket counts.
//! - Heap stripes are padded to whole 128-byte units (two cache lines: adjacent-line
//!   prefetchers pull pairs), so no two stripes, and no stripe and anything else, share a line.
//! - Cells in a multiprocess file get their stripes from the store through [`set_external`]:
//!   sibling records of the same family and key in the same file, which readers sum like any
//!   records of one key. If the store cannot make them (file full), the series keeps its primary
//!   cells: never a panic, never unbounded growth.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use crate::cell::Cells;
use crate::sync::{AtomicPtr, AtomicU64, Ordering};

/// Failed first compare-exchanges within one window that make a series striped.
pub(crate) const THRESHOLD: u64 = 256;
/// The window in which [`THRESHOLD`] failures must happen, in milliseconds from the first:
/// contention now, not a few unlucky collisions over a day.
pub(crate) const WINDOW_MS: u64 = 1000;
/// At most this many ways (the primary cells and the stripes) per series.
pub(crate) const MAX_WAYS: usize = 8;

/// Bit of [`Stripes::contention`] set once a thread has claimed the allocation.
const CLAIMED: u64 = 1 << 63;
/// The count needs 9 bits; the milliseconds above it 47 (four thousand years).
const COUNT_BITS: u32 = 16;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// Makes one more stripe beside `primary`, which lives outside the heap; `None` if it cannot.
pub(crate) type ExternalStripe = fn(primary: &Cells) -> Option<Cells>;

static EXTERNAL: OnceLock<ExternalStripe> = OnceLock::new();

/// Registers how stripes of cells that live outside the heap are made (the multiprocess store,
/// which owns the mapping). Without it such cells are never striped.
#[allow(dead_code)] // called by the multiprocess store only
pub(crate) fn set_external(make: ExternalStripe) {
    let _ = EXTERNAL.set(make);
}

/// The number of ways a striped series has: the machine's online CPUs ([`cpus`]), at most
/// [`MAX_WAYS`]. One way on one CPU: threads sharing a core never bounce a line between caches.
pub(crate) fn ways() -> usize {
    static WAYS: OnceLock<usize> = OnceLock::new();
    *WAYS.get_or_init(|| cpus().clamp(1, MAX_WAYS))
}

/// The CPUs online, whichever thread asks. Not `available_parallelism`: on Linux that is the
/// *calling thread's* affinity, and the first observe of a contended series may well come from
/// a thread pinned to one CPU (a thread-per-core runtime's worker, a `taskset` worker, the
/// contended benches' harness), which made every series of the process unstripable. Counting
/// more CPUs than a cgroup's quota lets run at once costs only memory, and only for a series
/// already shown contended (two threads writing it at the same time): bounded by `MAX_WAYS`.
#[cfg(unix)]
fn cpus() -> usize {
    // SAFETY: `sysconf` only reads a system value; `_SC_NPROCESSORS_ONLN` is defined on every
    // Unix libc supports and yields -1 (mapped to 1 below) where unknown.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1)
}

#[cfg(not(unix))]
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The lazily allocated stripes of one series.
pub(crate) struct Stripes {
    /// Until claimed: the start of the current window (milliseconds from [`epoch_ms`], above
    /// [`COUNT_BITS`]) and the failures counted in it (below). Then [`CLAIMED`].
    contention: AtomicU64,
    /// Null until the stripe set is published; then never changes until drop.
    set: AtomicPtr<Set>,
}

/// The extra stripes, each `len` cells, in their own padded units.
struct Set {
    /// Dropped before `_heap`, whose memory the heap stripes point into.
    stripes: Box<[Cells]>,
    _heap: Option<Box<[Unit]>>,
}

/// 128 bytes of cells, aligned so that a stripe starts a pair of cache lines.
#[repr(align(128))]
#[allow(dead_code)] // the cells are reached through `Cells`, never by field
struct Unit([std::sync::atomic::AtomicU64; 16]);

impl Default for Stripes {
    fn default() -> Self {
        Self {
            contention: AtomicU64::new(0),
            set: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

impl Stripes {
    /// The cells this thread writes: the primary ones until the series is striped.
    #[inline(always)]
    pub(crate) fn for_this_thread<'a>(&'a self, primary: &'a Cells) -> &'a Cells {
        let set = self.set.load(Ordering::Acquire);
        if set.is_null() {
            return primary;
        }
        // SAFETY: a non-null `set` came from `Box::into_raw` in `publish`, was completely
        // initialised before the release store the acquire load above pairs with, and is freed
        // only by `drop`, which `&self` excludes.
        let set = unsafe { &*set };
        match probe().checked_sub(1) {
            Some(i) => set.stripes.get(i).unwrap_or(primary),
            None => primary,
        }
    }

    /// Every stripe (not the primary cells), for reads that sum them.
    pub(crate) fn each(&self) -> &[Cells] {
        let set = self.set.load(Ordering::Acquire);
        if set.is_null() {
            return &[];
        }
        // SAFETY: as in `for_this_thread`.
        unsafe { &(*set).stripes }
    }

    /// Notes that this thread's first compare-exchange on `primary`'s series failed: counts it,
    /// and stripes the series once it is contended; once striped, moves this thread to another
    /// way. The cold path.
    #[cold]
    #[inline(never)]
    pub(crate) fn contended(&self, primary: &Cells) {
        if !self.set.load(Ordering::Acquire).is_null() {
            advance_probe();
            return;
        }
        if self.claim(epoch_ms()) {
            self.publish(primary);
        }
    }

    /// Counts one failure at `now` (milliseconds, [`epoch_ms`]); true for the one thread that
    /// claims the allocation.
    fn claim(&self, now: u64) -> bool {
        let seen = self.contention.load(Ordering::Relaxed);
        if seen & CLAIMED != 0 || ways() < 2 {
            return false;
        }
        let (start, count) = (seen >> COUNT_BITS, seen & COUNT_MASK);
        let next = if now.saturating_sub(start) >= WINDOW_MS {
            now << COUNT_BITS | 1
        } else if count + 1 >= THRESHOLD {
            CLAIMED
        } else {
            seen + 1
        };
        // One attempt: a count lost to a concurrent update only delays striping a little.
        self.contention
            .compare_exchange(seen, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
            && next == CLAIMED
    }

    /// Allocates and publishes the stripes (only the thread that claimed them gets here).
    fn publish(&self, primary: &Cells) {
        let Some(set) = Set::new(primary, ways() - 1) else {
            return; // the primary cells stay in use, for good
        };
        let set = Box::into_raw(Box::new(set));
        // Release: the zeroed stripes before the pointer. Only the claimant stores, once.
        self.set.store(set, Ordering::Release);
    }
}

impl Drop for Stripes {
    fn drop(&mut self) {
        let set = self.set.load(Ordering::Acquire);
        if !set.is_null() {
            // SAFETY: from `Box::into_raw` in `publish`, freed once, here; no borrow of the
            // stripes outlives `&self`.
            drop(unsafe { Box::from_raw(set) });
        }
    }
}

impl Set {
    /// `extra` stripes of `primary.len()` cells: beside it in the same mapping if it lives
    /// outside the heap (as many as the store could make), padded units on the heap otherwise.
    fn new(primary: &Cells, extra: usize) -> Option<Set> {
        let len = primary.len();
        if primary.external_ptr().is_some() {
            let make = EXTERNAL.get()?;
            let stripes: Box<[Cells]> = (0..extra).map_while(|_| make(primary)).collect();
            return (!stripes.is_empty()).then_some(Set {
                stripes,
                _heap: None,
            });
        }
        let units_per_stripe = len.div_ceil(16).max(1);
        let heap: Box<[Unit]> = (0..units_per_stripe * extra)
            .map(|_| {
                Unit(std::array::from_fn(|_| {
                    std::sync::atomic::AtomicU64::new(0)
                }))
            })
            .collect();
        let base = heap.as_ptr().cast::<std::sync::atomic::AtomicU64>();
        let stripes = (0..extra)
            .map(|i| {
                // Derived from the whole block (not from one unit), so the pointer may reach
                // every cell of its stripe.
                let ptr = base.wrapping_add(i * units_per_stripe * 16).cast_mut();
                let ptr = std::ptr::NonNull::new(ptr).expect("a box is never null");
                // SAFETY: `len` zeroed, aligned atomics inside `heap`, which this `Set` owns
                // and frees only after these `Cells` (field order); they are lent out only as
                // borrows of the `Set`, so none outlives the memory.
                unsafe { Cells::borrowed(ptr, len) }
            })
            .collect();
        Some(Set {
            stripes,
            _heap: Some(heap),
        })
    }
}

/// Milliseconds since the first contended observe of the process, from 1 (0 is "no window
/// yet"): a coarse clock, read only on the cold path.
fn epoch_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ms = EPOCH.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX).min(1 << 46) + 1
}

thread_local! {
    /// This thread's way in `0..ways()`; `usize::MAX` until first used.
    static PROBE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Threads take ways round-robin.
static NEXT_PROBE: AtomicUsize = AtomicUsize::new(0);

/// This thread's way; 0 (the primary cells) while its thread-locals are being destroyed.
#[inline(always)]
fn probe() -> usize {
    PROBE
        .try_with(|p| {
            let way = p.get();
            if way != usize::MAX {
                return way;
            }
            let way = NEXT_PROBE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ways();
            p.set(way);
            way
        })
        .unwrap_or(0)
}

/// Moves this thread to the next way: its stripe is still written by another core.
fn advance_probe() {
    let way = (probe() + 1) % ways();
    let _ = PROBE.try_with(|p| p.set(way));
}

#[cfg(all(test, not(promtrack_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn contend(stripes: &Stripes, primary: &Cells, times: u64) {
        for _ in 0..times {
            stripes.contended(primary);
        }
    }

    /// A thread pinned to one CPU sees the whole machine's ways, as an unpinned one does: it
    /// may be the first to observe into a contended series.
    #[test]
    #[cfg(all(target_os = "linux", not(miri)))]
    fn a_pinned_thread_counts_every_cpu() {
        let unpinned = cpus();
        let pinned = std::thread::spawn(|| {
            // SAFETY: a zeroed `cpu_set_t` is an empty set; CPU 0 is below CPU_SETSIZE; pid 0
            // is this (spawned, soon finished) thread.
            let pinned = unsafe {
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut one);
                libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &one) == 0
            };
            assert!(pinned, "could not pin the test thread to CPU 0");
            cpus()
        })
        .join()
        .unwrap();
        assert_eq!(pinned, unpinned);
        assert!(unpinned >= std::thread::available_parallelism().map_or(1, |n| n.get()));
    }

    #[test]
    fn a_series_is_striped_once_contended_and_not_before() {
        let primary = Cells::heap(13);
        let stripes = Stripes::default();
        contend(&stripes, &primary, THRESHOLD - 1);
        assert!(stripes.each().is_empty(), "striped before the threshold");
        contend(&stripes, &primary, 1);
        if ways() < 2 {
            assert!(stripes.each().is_empty(), "one core: never striped");
            return;
        }
        assert_eq!(stripes.each().len(), ways() - 1);
        for s in stripes.each() {
            assert_eq!(s.len(), 13);
            let addr = s.at(0) as *const _ as usize;
            assert_eq!(addr % 128, 0, "a stripe starts a pair of cache lines");
            assert!((0..13).all(|i| s.at(i).load(Relaxed) == 0));
        }
        let first = stripes.each().as_ptr();
        contend(&stripes, &primary, 4 * THRESHOLD);
        assert_eq!(stripes.each().as_ptr(), first, "allocated once");
    }

    #[test]
    fn each_thread_writes_one_of_the_ways() {
        let primary = Cells::heap(3);
        let stripes = Stripes::default();
        assert!(std::ptr::eq(stripes.for_this_thread(&primary), &primary));
        contend(&stripes, &primary, THRESHOLD);
        let mine = stripes.for_this_thread(&primary);
        let ways: Vec<*const Cells> = std::iter::once(&primary as *const Cells)
            .chain(stripes.each().iter().map(|c| c as *const Cells))
            .collect();
        assert!(ways.contains(&(mine as *const Cells)));
        if ways.len() > 1 {
            stripes.contended(&primary); // striped: moves this thread on
            let moved = stripes.for_this_thread(&primary) as *const Cells;
            assert_ne!(moved, mine as *const Cells);
        }
    }
}

/// The publication of the stripe set, model-checked: a thread observing concurrently with the
/// one that allocates sees either no stripes or whole, zeroed ones.
#[cfg(all(test, promtrack_loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_stripes_are_claimed_once_and_published_whole() {
        loom::model(|| {
            let primary = std::sync::Arc::new(Cells::heap(3));
            let stripes = std::sync::Arc::new(Stripes::default());
            // Two failures short of the threshold at millisecond 5: both threads' failures claim.
            stripes
                .contention
                .store((5 << COUNT_BITS) | (THRESHOLD - 2), Ordering::Relaxed);
            let contend = |s: &Stripes, p: &Cells| {
                // The claim may be lost to the other thread's count; retry as observes would.
                for _ in 0..2 {
                    if s.claim(5) {
                        s.publish(p);
                        return true;
                    }
                }
                false
            };
            let (p, s) = (primary.clone(), stripes.clone());
            let other = loom::thread::spawn(move || contend(&s, &p));
            let mine = contend(&stripes, &primary);
            for c in stripes.each() {
                assert!((0..3).all(|i| c.at(i).load(std::sync::atomic::Ordering::Relaxed) == 0));
            }
            let _ = stripes.for_this_thread(&primary);
            let theirs = other.join().unwrap();
            if ways() > 1 {
                assert!(!(mine && theirs), "allocated twice");
                assert!(mine || theirs, "never claimed");
                assert_eq!(stripes.each().len(), ways() - 1);
            }
        });
    }
}
