//! The series record: one heap allocation per series, holding everything a lookup and a scrape
//! of that series need and nothing else (see ARCHITECTURE.md, *The series record*).
//!
//! ```text
//! | Header<M>: hash, created, key length, inline cell count, the metric handle |
//! | key: the label values in word form (`key.rs`: each value and its 0xFF zero-padded to whole words) |
//! | inline cells: `AtomicU64` × n (one process; none when the cells are in a file) |
//! ```
//!
//! The key comes first, at a fixed offset, so that a lookup's comparison needs no offset read
//! from the header; the cells are reached through the metric handle, whatever their offset.
//!
//! The key is the only copy of the label values: lookups compare it word by word in place,
//! scrapes render `name="value"` pairs from it. In one process the metric's cells are inline, so
//! its handle points a few bytes past itself; in multiprocess mode they are in this process's
//! file and the record holds only the handle.
//!
//! Invariants:
//! - A record is written completely before it is published (the table's release store), and
//!   only its cells change afterwards.
//! - A [`Record`] carries the provenance of the whole allocation: the key and the inline cells
//!   lie past the header, so they are reached from the record's raw pointer, never from a
//!   `&Header` (whose reach ends at the header; Miri checks this).
//! - The inline cells outlive the metric handle that points at them: [`Record::free`] drops the
//!   handle before it frees the block.

use std::alloc::{self, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU64;

use crate::cell::{Cells, LINE};
use crate::key::KeyRef;

use super::table::Keyed;

/// The fixed part of a record; the cells and the key follow it in the same block.
#[repr(C)]
pub(crate) struct Header<M> {
    hash: u64,
    created: f64,
    /// The key's length in words.
    key_words: u32,
    inline_cells: u32,
    pub(crate) metric: M,
}

impl<M> Keyed for Header<M> {
    #[inline(always)]
    fn hash(&self) -> u64 {
        self.hash
    }
}

/// A pointer to a whole record (see the module docs). `Copy`: the family owns the records and
/// frees each once, in its `Drop`.
pub(crate) struct Record<M>(NonNull<Header<M>>);

impl<M> Clone for Record<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Record<M> {}

/// Where the key of a record starts: right after the header, whose size is a multiple of its
/// alignment, which is at least 8 (it holds a `u64`), so the key words are aligned.
const fn key_at<M>() -> usize {
    size_of::<Header<M>>()
}

/// Where the parts of a record with `cells` inline cells and a `key_words`-word key lie: the
/// block's layout, the cells' offset and the key's (see [`key_at`]; the cells follow the key,
/// aligned as it is).
///
/// One exception: the series of a family without labels (an empty key) is every caller's
/// series, the most contended there is, so its inline cells start a cache line of their own
/// ([`LINE`]) and the block is whole lines. Otherwise every update loads the handle's cell
/// pointer from the line another core is writing, and pays a second transfer of that line
/// before its own write (BENCHMARKS.md, `counter_inc_contended`). That costs at most one line
/// per family; a labelled series stays compact (ARCHITECTURE.md, *The series record*).
#[inline(always)]
fn layout<M>(cells: usize, key_words: usize) -> (Layout, usize, usize) {
    let key_at = key_at::<M>();
    let (cells_at, align) = if key_words == 0 && cells > 0 {
        (key_at.next_multiple_of(LINE), LINE)
    } else {
        (key_at + 8 * key_words, align_of::<Header<M>>())
    };
    let size = cells_at + 8 * cells;
    let layout = Layout::from_size_align(size, align)
        .expect("a record is far smaller than isize::MAX")
        .pad_to_align();
    (layout, cells_at, key_at)
}

impl<M> Record<M> {
    /// A new record of the series whose key is `key` (`key.rs`, word form),
    /// with `inline` zeroed cells in the record unless `external` cells are given, and the
    /// metric `make` builds on those cells.
    pub(crate) fn new(
        hash: u64,
        created: f64,
        key: &[u64],
        inline: usize,
        external: Option<Cells>,
        make: impl FnOnce(Cells) -> M,
    ) -> Self {
        let inline = if external.is_some() { 0 } else { inline };
        let (layout, cells_at, key_at) = layout::<M>(inline, key.len());
        // SAFETY: the layout is never zero-sized (the header has a hash).
        let block = unsafe { alloc::alloc_zeroed(layout) };
        let Some(block) = NonNull::new(block) else {
            alloc::handle_alloc_error(layout)
        };
        let cells = match external {
            Some(cells) => cells,
            None => {
                // SAFETY: `inline` zeroed (alloc_zeroed), aligned cells inside the block, which
                // lives until `free`, after the metric holding these `Cells` is dropped.
                unsafe { Cells::borrowed(block.add(cells_at).cast::<AtomicU64>(), inline) }
            }
        };
        let metric = make(cells);
        let header = block.cast::<Header<M>>();
        // SAFETY: the block is fresh, large enough for the header and `key.len()` words at
        // `key_at`, and aligned for both.
        unsafe {
            header.write(Header {
                hash,
                created,
                key_words: u32::try_from(key.len()).expect("label values under 32 GiB"),
                inline_cells: inline as u32,
                metric,
            });
            // Little-endian, so that the record's bytes are the key's bytes on every target.
            let to = block.add(key_at).cast::<u64>().as_ptr();
            for (i, &w) in key.iter().enumerate() {
                to.add(i).write(w.to_le());
            }
        }
        Record(header)
    }

    /// Rebuilds a record from a pointer [`as_ptr`](Self::as_ptr) gave.
    ///
    /// # Safety
    /// `p` must come from `as_ptr` of a record not freed yet.
    #[inline(always)]
    pub(crate) unsafe fn from_ptr(p: NonNull<Header<M>>) -> Self {
        Record(p)
    }

    /// The pointer the table and the dense array store (it keeps the whole block's provenance).
    #[inline(always)]
    pub(crate) fn as_ptr(self) -> *mut Header<M> {
        self.0.as_ptr()
    }

    /// The fixed part.
    ///
    /// The family keeps every record alive until it drops, so callers holding the family may
    /// pick the lifetime.
    #[inline(always)]
    pub(crate) fn header<'a>(self) -> &'a Header<M> {
        // SAFETY: records are fully written before anyone holds a `Record`, and live until
        // `free`, which the family calls only when nothing borrows it any more.
        unsafe { self.0.as_ref() }
    }

    #[cfg(test)]
    pub(crate) fn hash(self) -> u64 {
        self.header().hash
    }

    #[inline(always)]
    pub(crate) fn created(self) -> f64 {
        self.header().created
    }

    /// The key in word form, as bytes (`key.rs`; its values: `key::word_form_values`).
    #[inline(always)]
    pub(crate) fn key<'a>(self) -> &'a [u8] {
        let h = self.header();
        // SAFETY: `key_words` words at `key_at` are inside the block (see `layout`),
        // initialised in `new` and never written after publication; `self.0` carries the whole
        // block's provenance.
        unsafe {
            std::slice::from_raw_parts(
                self.0.cast::<u8>().as_ptr().add(key_at::<M>()),
                8 * h.key_words as usize,
            )
        }
    }

    /// Whether `key` is this record's key: word count, then the words compared in place
    /// (`key::stored_key_matches`).
    #[inline(always)]
    pub(crate) fn matches(self, key: &KeyRef<'_>) -> bool {
        let h = self.header();
        if h.key_words as usize != key.words.len() {
            return false;
        }
        // SAFETY: as in `key`; the words are 8-aligned (see `key_at`).
        let stored = unsafe {
            std::slice::from_raw_parts(
                self.0
                    .cast::<u8>()
                    .as_ptr()
                    .add(key_at::<M>())
                    .cast::<u64>(),
                h.key_words as usize,
            )
        };
        crate::key::stored_key_matches(stored, key)
    }

    /// Drops the metric, then frees the block.
    ///
    /// # Safety
    /// Called once per record, when nothing borrows it (the table, the dense array and every
    /// handle are gone).
    pub(crate) unsafe fn free(self) {
        let h = self.header();
        let (layout, _, _) = layout::<M>(h.inline_cells as usize, h.key_words as usize);
        // SAFETY: the caller's contract; the metric (and its `Cells`) go first, then the block
        // holding the cells it pointed at.
        unsafe {
            ptr::drop_in_place(ptr::addr_of_mut!((*self.0.as_ptr()).metric));
            alloc::dealloc(self.0.cast::<u8>().as_ptr(), layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::words_of;
    use std::sync::atomic::Ordering;

    /// The word form of a joined key, as the record stores it.
    fn words(joined: &[u8]) -> Vec<u64> {
        words_of(joined)
    }

    #[test]
    fn a_record_holds_its_key_and_inline_cells() {
        for key in [&b""[..], b"GET\xff", b"GET\xff/users/7\xff200\xff"] {
            let r = Record::new(7, 1.5, &words(key), 3, None, |cells| cells);
            let values: Vec<_> = crate::key::word_form_values(r.key()).collect();
            let want: Vec<_> = crate::labels::key_values(key).collect();
            assert_eq!(values, want);
            assert_eq!((r.hash(), r.created()), (7, 1.5));
            let cells = &r.header().metric;
            assert_eq!(cells.len(), 3);
            cells.at(2).fetch_add(5, Ordering::Relaxed);
            assert_eq!(cells.at(2).load(Ordering::Relaxed), 5);
            assert_eq!(cells.at(0).load(Ordering::Relaxed), 0);
            assert!(r.matches(&KeyRef { words: &words(key) }));
            let mut longer = key.to_vec();
            longer.extend_from_slice(b"x\xff");
            assert!(!r.matches(&KeyRef {
                words: &words(&longer)
            }));
            if !key.is_empty() {
                let mut other = key.to_vec();
                other[0] ^= 1;
                assert!(!r.matches(&KeyRef {
                    words: &words(&other)
                }));
            }
            // SAFETY: created above, freed once, nothing borrows it any more.
            unsafe { r.free() };
        }
    }

    /// The one series of a family without labels keeps its cells off the line holding its
    /// handle; a labelled series' cells follow its key, packed.
    #[test]
    fn only_a_label_less_series_gets_a_line_of_its_own() {
        let line_of = |p: *const AtomicU64| p as usize / LINE;
        let r = Record::new(1, 0.0, &[], 2, None, |cells| cells);
        let cells = r.header().metric.at(0) as *const AtomicU64;
        assert_eq!(cells as usize % LINE, 0, "the cells start a line");
        let handle = ptr::addr_of!(r.header().metric).cast::<AtomicU64>();
        assert_ne!(line_of(cells), line_of(handle));
        // SAFETY: created above, freed once, nothing borrows it any more.
        unsafe { r.free() };

        let key = words(b"GET\xff");
        let r = Record::new(1, 0.0, &key, 2, None, |cells| cells);
        let cells = r.header().metric.at(0) as *const AtomicU64 as usize;
        assert_eq!(
            cells - r.as_ptr() as usize,
            key_at::<Cells>() + 8 * key.len()
        );
        // SAFETY: as above.
        unsafe { r.free() };
    }

    #[test]
    fn external_cells_stay_where_they_are() {
        let backing: Vec<AtomicU64> = (0..2).map(AtomicU64::new).collect();
        let ptr = NonNull::new(backing.as_ptr().cast_mut()).expect("not null");
        // SAFETY: two initialised atomics that outlive the record.
        let cells = unsafe { Cells::external(ptr, 2) };
        let r = Record::new(1, 0.0, &words(b"a\xff"), 2, Some(cells), |cells| cells);
        assert_eq!(r.header().metric.at(1).load(Ordering::Relaxed), 1);
        assert_eq!(r.key(), b"a\xff\0\0\0\0\0\0");
        // SAFETY: as above.
        unsafe { r.free() };
        assert_eq!(backing[1].load(Ordering::Relaxed), 1);
    }
}
