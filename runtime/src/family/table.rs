//! An insert-only hash table whose reads take no lock and write nothing.
//!
//! Label lookups are the hot path of every labelled metric, so a read here is: one acquire load
//! of the slot array, then acquire loads of slots until the key or an empty slot is found. No
//! reference count is touched, no lock is taken, nothing is written, so readers on many cores
//! never contend on a cache line.
//!
//! Invariants that make this sound:
//! - Entries are only ever added, never removed or replaced, while the table lives. A slot goes
//!   from null to a pointer exactly once.
//! - Writers are serialised by the caller (the family's mutex); this type has no writer lock.
//! - Growing publishes a new, larger slot array with a release store; the old array is kept
//!   (`retired`) until the table is dropped, because a reader may still be probing it (a reader
//!   holds no reference count and announces nothing, so nothing tells when the last one left).
//!   The sizes double, so retired arrays take less memory than the live one.
//! - Entries are owned by the caller, who must keep them alive as long as the table.

use crate::sync::{AtomicPtr, Ordering};
use std::ptr::{self, NonNull};

/// What the table stores a pointer to: something with a precomputed hash.
pub(crate) trait Keyed {
    fn hash(&self) -> u64;
}

struct Slots<T> {
    mask: usize,
    slots: Box<[AtomicPtr<T>]>,
}

impl<T> Slots<T> {
    fn with_capacity(capacity: usize) -> Box<Self> {
        let len = capacity.next_power_of_two().max(8);
        Box::new(Self {
            mask: len - 1,
            slots: (0..len).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
        })
    }
}

pub(crate) struct Table<T> {
    current: AtomicPtr<Slots<T>>,
    /// Entries in `current`, and the older arrays still reachable by readers. Only touched by
    /// the single writer at a time.
    writer: std::cell::UnsafeCell<Writer<T>>,
}

struct Writer<T> {
    len: usize,
    /// Replaced arrays (from `Box::into_raw`), freed on drop. Raw pointers, not `Box`es: a
    /// `Box` asserts it is the only access to its contents, and readers may still be probing
    /// these arrays (Miri reports the `Box` as a data race with them).
    retired: Vec<NonNull<Slots<T>>>,
}

// SAFETY: `T`s are shared through `&T` (so `T: Sync` is required), and handed between threads
// (`T: Send`). `writer` is only accessed by callers holding the owner's lock (see `insert`).
unsafe impl<T: Send + Sync> Send for Table<T> {}
unsafe impl<T: Send + Sync> Sync for Table<T> {}

impl<T: Keyed> Table<T> {
    /// Out of line: every family builds one, and the families' constructors are generic.
    #[inline(never)]
    pub(crate) fn new() -> Self {
        Self {
            current: AtomicPtr::new(Box::into_raw(Slots::with_capacity(8))),
            writer: std::cell::UnsafeCell::new(Writer {
                len: 0,
                retired: Vec::new(),
            }),
        }
    }

    /// Finds the entry with this hash whose key `matches`. Entries are handed out as the
    /// pointers that were inserted, with their provenance: an entry may own more memory than a
    /// `T` (a series record's key and cells follow its header), which a `&T` could not reach.
    #[inline(always)]
    pub(crate) fn find(
        &self,
        hash: u64,
        matches: impl Fn(NonNull<T>) -> bool,
    ) -> Option<NonNull<T>> {
        // SAFETY: `current` always points to a live `Slots` (replaced arrays are retired, not
        // freed, until drop).
        let slots = unsafe { &*self.current.load(Ordering::Acquire) };
        let mut i = hash as usize & slots.mask;
        loop {
            // SAFETY: `i <= mask`, and `mask + 1` is the slot count (`Slots::with_capacity`).
            let p = unsafe { slots.slots.get_unchecked(i) }.load(Ordering::Acquire);
            if p.is_null() {
                return None;
            }
            // SAFETY: non-null slots point to entries the owner keeps alive as long as the table.
            if unsafe { &*p }.hash() == hash {
                let entry = NonNull::new(p).expect("not null");
                if matches(entry) {
                    return Some(entry);
                }
            }
            i = (i + 1) & slots.mask;
        }
    }

    /// Adds an entry whose key is not in the table yet.
    ///
    /// # Safety
    /// Callers must serialise `insert` calls (hold a lock), must not insert a key twice, and
    /// must keep `entry` alive and unmoved for as long as the table lives.
    pub(crate) unsafe fn insert(&self, entry: *mut T) {
        // SAFETY: the caller serialises writers, so this is the only access to `writer`.
        let writer = unsafe { &mut *self.writer.get() };
        // SAFETY: as in `get`.
        let mut slots = unsafe { &*self.current.load(Ordering::Acquire) };
        // Keep the load factor at or below three quarters: linear probing stays short (about 2.5
        // probes for a hit at the worst), and a slot array costs 8 to 14 bytes per series (see
        // ARCHITECTURE.md, *The series record*).
        if (writer.len + 1) * 4 > slots.slots.len() * 3 {
            let grown = Slots::with_capacity(slots.slots.len() * 2);
            for slot in slots.slots.iter() {
                let p = slot.load(Ordering::Relaxed);
                if !p.is_null() {
                    // SAFETY: entries are alive (caller's contract).
                    Self::place(&grown, unsafe { &*p }.hash(), p);
                }
            }
            let grown = Box::into_raw(grown);
            let old = self.current.swap(grown, Ordering::AcqRel);
            // Readers may still use `old`, so it is kept, as a raw pointer (see `retired`).
            writer
                .retired
                .push(NonNull::new(old).expect("`current` is never null"));
            // SAFETY: just published, alive until drop.
            slots = unsafe { &*grown };
        }
        // SAFETY: caller's contract.
        Self::place(slots, unsafe { &*entry }.hash(), entry);
        writer.len += 1;
    }

    fn place(slots: &Slots<T>, hash: u64, entry: *mut T) {
        let mut i = hash as usize & slots.mask;
        while !slots.slots[i].load(Ordering::Relaxed).is_null() {
            i = (i + 1) & slots.mask;
        }
        slots.slots[i].store(entry, Ordering::Release);
    }
}

impl<T> Drop for Table<T> {
    #[inline(never)]
    fn drop(&mut self) {
        for old in self.writer.get_mut().retired.drain(..) {
            // SAFETY: each came from `Box::into_raw`, is retired once, and no reader outlives
            // the table.
            drop(unsafe { Box::from_raw(old.as_ptr()) });
        }
        // SAFETY: `current` came from `Box::into_raw` and no reader outlives the table.
        // (A load, not `get_mut`: loom's atomics have no `get_mut`; `&mut self` makes any
        // ordering exact.)
        drop(unsafe { Box::from_raw(self.current.load(Ordering::Relaxed)) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E {
        hash: u64,
        key: Vec<u8>,
    }
    impl Keyed for E {
        fn hash(&self) -> u64 {
            self.hash
        }
    }

    #[test]
    fn finds_everything_inserted_across_growth_and_collisions() {
        // Fewer under Miri, which interprets every instruction; still seven grows.
        let n: u32 = if cfg!(miri) { 300 } else { 1000 };
        let table = Table::new();
        let hash_of = |x: u32| u64::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut owned = Vec::new();
        for i in 0..n {
            let key = i.to_string().into_bytes();
            // Force collisions: every 10 keys share a hash.
            let hash = hash_of(i / 10);
            let e = Box::into_raw(Box::new(E { hash, key }));
            owned.push(e);
            unsafe { table.insert(e) };
        }
        for i in 0..n {
            let key = i.to_string().into_bytes();
            let e = table
                .find(hash_of(i / 10), |e| unsafe { e.as_ref() }.key == key)
                .expect("present");
            assert_eq!(unsafe { e.as_ref() }.key, key);
        }
        assert!(
            table
                .find(hash_of(5), |e| unsafe { e.as_ref() }.key == b"nope")
                .is_none()
        );
        drop(table);
        for e in owned {
            drop(unsafe { Box::from_raw(e) });
        }
    }

    /// Entry pointers the test threads share (raw pointers are not `Sync`; integers would lose
    /// their provenance, which Miri checks).
    struct Entries(Vec<*mut E>);
    // SAFETY: the entries are only read through the table, and freed after the threads end.
    unsafe impl Sync for Entries {}
    impl Entries {
        fn iter(&self) -> impl Iterator<Item = *mut E> + '_ {
            self.0.iter().copied()
        }
    }

    /// Under Miri (`scripts/soundness.sh`) this is the regression test for retired arrays held
    /// as `Box`es: taking a `Box` of an array a reader was probing was a data race.
    #[test]
    fn readers_on_other_threads_see_published_entries() {
        // Fewer under Miri, which interprets every instruction; still six grows under a reader.
        let n: u64 = if cfg!(miri) { 200 } else { 2000 };
        let table = Table::new();
        let entries = Entries(
            (0..n)
                .map(|i| {
                    let e = E {
                        hash: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        key: i.to_le_bytes().to_vec(),
                    };
                    Box::into_raw(Box::new(e))
                })
                .collect(),
        );
        let lock = std::sync::Mutex::new(());
        std::thread::scope(|s| {
            s.spawn(|| {
                for e in entries.iter() {
                    let _g = lock.lock().unwrap();
                    unsafe { table.insert(e) };
                }
            });
            s.spawn(|| {
                // Whatever is found must be the right entry; eventually everything is found.
                for i in (0..n).rev() {
                    let hash = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    loop {
                        let key = i.to_le_bytes();
                        if let Some(e) = table.find(hash, |e| unsafe { e.as_ref() }.key == key) {
                            assert_eq!(unsafe { e.as_ref() }.key, key);
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            });
        });
        drop(table);
        for e in entries.0 {
            drop(unsafe { Box::from_raw(e) });
        }
    }
}

/// The insert / grow / publish protocol under loom, with a reader on another thread.
///
/// Entries carry their id in a `loom::cell::UnsafeCell` written by the inserting thread, so loom
/// reports a reader that reaches an entry not ordered after its creation (a slot or an array
/// published too weakly). The table starts with 8 slots and grows on the 7th insert; the model
/// inserts 5 entries before the reader starts and 2 while it runs, so the reader probes the
/// old or the new array, or both, during the grow. Hashes collide on purpose (probe runs).
///
/// The reader runs on a spawned thread: with the reader on the model's main thread and the
/// writer spawned, loom 0.7 explored a single interleaving (and missed a `Relaxed` slot store
/// that this version reports).
#[cfg(all(test, promtrack_loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::{Arc, Mutex};

    struct E {
        hash: u64,
        id: UnsafeCell<u64>,
    }
    // SAFETY: `id` is written once, at creation, before the entry is inserted.
    unsafe impl Sync for E {}
    impl Keyed for E {
        fn hash(&self) -> u64 {
            self.hash
        }
    }
    impl E {
        fn id(&self) -> u64 {
            // SAFETY: never written after creation (loom checks the ordering).
            self.id.with(|p| unsafe { *p })
        }
    }

    /// Hashes: 0..5 fill slots 0..4 of the first array; 8 and 16 collide with slot 0 in the
    /// first array (16 in the grown one too), so they are found only by probing past them.
    const HASHES: [u64; 7] = [0, 1, 2, 3, 4, 8, 16];

    struct Shared {
        table: Table<E>,
        lock: Mutex<()>,
    }

    fn entry(i: usize) -> usize {
        Box::into_raw(Box::new(E {
            hash: HASHES[i],
            id: UnsafeCell::new(i as u64),
        })) as usize
    }

    fn find(table: &Table<E>, i: usize) -> Option<u64> {
        // SAFETY: entries live as long as the table.
        table
            .find(HASHES[i], |e| unsafe { e.as_ref() }.id() == i as u64)
            .map(|e| unsafe { e.as_ref() }.id())
    }

    #[test]
    fn loom_readers_see_whole_entries_across_a_grow() {
        loom::model(|| {
            let shared = Arc::new(Shared {
                table: Table::new(),
                lock: Mutex::new(()),
            });
            let mut entries: Vec<usize> = (0..5).map(entry).collect();
            for &e in &entries {
                let _g = shared.lock.lock().unwrap();
                // SAFETY: under the lock, each entry once, freed after the table.
                unsafe { shared.table.insert(e as *mut E) };
            }
            // The reader runs on its own thread; the new entries are created after it started:
            // nothing but the table's publication orders their contents before its loads.
            let reader = {
                let shared = Arc::clone(&shared);
                loom::thread::spawn(move || {
                    // Entries inserted before the reader started are always found, whichever
                    // array it probes; the new ones may be missing, never half-seen or wrong.
                    for i in (0..HASHES.len()).rev() {
                        match find(&shared.table, i) {
                            Some(id) => assert_eq!(id, i as u64),
                            None => assert!(i >= 5, "entry {i} lost during the grow"),
                        }
                    }
                })
            };
            for i in 5..HASHES.len() {
                let e = entry(i);
                entries.push(e);
                let _g = shared.lock.lock().unwrap();
                // SAFETY: as above.
                unsafe { shared.table.insert(e as *mut E) };
            }
            reader.join().unwrap();
            for i in 0..HASHES.len() {
                assert_eq!(find(&shared.table, i), Some(i as u64));
            }
            drop(Arc::try_unwrap(shared).ok().expect("threads joined"));
            for e in entries {
                // SAFETY: from `Box::into_raw`, the table is gone.
                drop(unsafe { Box::from_raw(e as *mut E) });
            }
        });
    }
}
