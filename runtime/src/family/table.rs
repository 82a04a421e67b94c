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
//!   (`retired`) until the table is dropped, because a reader may still be probing it. The sizes
//!   double, so retired arrays take at most as much memory as the live one.
//! - Entries are owned by the caller, who must keep them alive as long as the table.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

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
    // Readers hold pointers to the boxed `Slots` itself, so it must not move into the Vec.
    #[allow(clippy::vec_box)]
    retired: Vec<Box<Slots<T>>>,
}

// SAFETY: `T`s are shared through `&T` (so `T: Sync` is required), and handed between threads
// (`T: Send`). `writer` is only accessed by callers holding the owner's lock (see `insert`).
unsafe impl<T: Send + Sync> Send for Table<T> {}
unsafe impl<T: Send + Sync> Sync for Table<T> {}

impl<T: Keyed> Table<T> {
    pub(crate) fn new() -> Self {
        Self {
            current: AtomicPtr::new(Box::into_raw(Slots::with_capacity(8))),
            writer: std::cell::UnsafeCell::new(Writer {
                len: 0,
                retired: Vec::new(),
            }),
        }
    }

    /// Finds the entry with this hash whose key `matches`.
    #[inline(always)]
    pub(crate) fn find(&self, hash: u64, matches: impl Fn(&T) -> bool) -> Option<&T> {
        // SAFETY: `current` always points to a live `Slots` (replaced arrays are retired, not
        // freed, until drop).
        let slots = unsafe { &*self.current.load(Ordering::Acquire) };
        let mut i = hash as usize & slots.mask;
        loop {
            let p = slots.slots[i].load(Ordering::Acquire);
            if p.is_null() {
                return None;
            }
            // SAFETY: non-null slots point to entries the owner keeps alive as long as the table.
            let entry = unsafe { &*p };
            if entry.hash() == hash && matches(entry) {
                return Some(entry);
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
        // Keep the load factor at or below one half so probe runs stay short.
        if (writer.len + 1) * 2 > slots.slots.len() {
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
            // SAFETY: `old` came from `Box::into_raw`; readers may still use it, so it is kept.
            writer.retired.push(unsafe { Box::from_raw(old) });
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
    fn drop(&mut self) {
        // SAFETY: `current` came from `Box::into_raw` and no reader outlives the table.
        drop(unsafe { Box::from_raw(*self.current.get_mut()) });
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
        let table = Table::new();
        let hash_of = |x: u32| u64::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut owned = Vec::new();
        for i in 0..1000u32 {
            let key = i.to_string().into_bytes();
            // Force collisions: every 10 keys share a hash.
            let hash = hash_of(i / 10);
            let e = Box::into_raw(Box::new(E { hash, key }));
            owned.push(e);
            unsafe { table.insert(e) };
        }
        for i in 0..1000u32 {
            let key = i.to_string().into_bytes();
            let e = table
                .find(hash_of(i / 10), |e| e.key == key)
                .expect("present");
            assert_eq!(e.key, key);
        }
        assert!(table.find(hash_of(5), |e| e.key == b"nope").is_none());
        drop(table);
        for e in owned {
            drop(unsafe { Box::from_raw(e) });
        }
    }

    #[test]
    fn readers_on_other_threads_see_published_entries() {
        let table = Table::new();
        // Addresses as integers, so that the closures below may share them.
        let entries: Vec<usize> = (0..2000u64)
            .map(|i| {
                let e = E {
                    hash: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    key: i.to_le_bytes().to_vec(),
                };
                Box::into_raw(Box::new(e)) as usize
            })
            .collect();
        let lock = std::sync::Mutex::new(());
        std::thread::scope(|s| {
            s.spawn(|| {
                for &e in &entries {
                    let _g = lock.lock().unwrap();
                    unsafe { table.insert(e as *mut E) };
                }
            });
            s.spawn(|| {
                // Whatever is found must be the right entry; eventually everything is found.
                for i in (0..2000u64).rev() {
                    let hash = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    loop {
                        if let Some(e) = table.find(hash, |e| e.key == i.to_le_bytes()) {
                            assert_eq!(e.key, i.to_le_bytes());
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            });
        });
        drop(table);
        for e in entries {
            drop(unsafe { Box::from_raw(e as *mut E) });
        }
    }
}
