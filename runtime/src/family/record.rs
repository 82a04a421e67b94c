//! The series record: one heap allocation per series, holding everything a lookup and a scrape
//! of that series need and nothing else (see ARCHITECTURE.md, *The series record*).
//!
//! ```text
//! | Header<M>: Prefix (hash, created, key length, inline cell count), the metric handle |
//! | key: the label values in word form (`key.rs`: each value and its 0xFF zero-padded to whole words) |
//! | inline cells: `AtomicU64` × n (one process; none when the cells are in a file) |
//! ```
//!
//! The key comes first, at a fixed offset, so that a lookup's comparison needs no offset read
//! from the header; the cells are reached through the metric handle, whatever their offset.
//!
//! Two views of a record: [`Record<M>`], the lookup's, with the key's and the metric's offsets
//! known at compile time; [`RawRecord`], everyone else's, with the offsets and the metric's drop
//! read from the kind's [`Shape`], so that the code behind it is compiled once for every kind.
//!
//! The key is the only copy of the label values: lookups compare it word by word in place,
//! scrapes render `name="value"` pairs from it. In one process the metric's cells are inline, so
//! its handle points a few bytes past itself; in multiprocess mode they are in this process's
//! file and the record holds only the handle.
//!
//! Invariants:
//! - A record is written completely before it is published (the table's release store), and
//!   only its cells change afterwards.
//! - A [`Record`] or [`RawRecord`] carries the provenance of the whole allocation: the key and the inline cells
//!   lie past the header, so they are reached from the record's raw pointer, never from a
//!   `&Header` (whose reach ends at the header; Miri checks this).
//! - A `RawRecord` is only ever read with the `Shape` of the kind it was made with.
//! - The inline cells outlive the metric handle that points at them: [`RawRecord::free`] drops
//!   the handle before it frees the block.

use std::alloc::{self, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU64;

use crate::cell::{Cells, LINE};
use crate::key::KeyRef;

use super::table::Keyed;

/// The kind-independent start of every record's header: all the code that does not touch the
/// metric (creation, the table, the scrape's order, freeing) reads only this, and so is compiled
/// once rather than once per metric kind.
#[repr(C)]
pub(crate) struct Prefix {
    hash: u64,
    created: f64,
    /// The key's length in words.
    key_words: u32,
    inline_cells: u32,
}

/// The fixed part of a record: the [`Prefix`], then the metric handle. `repr(C)`, so a pointer to
/// a record is a pointer to its prefix whatever `M` is. The key and the cells follow it in the
/// same block.
#[repr(C)]
pub(crate) struct Header<M> {
    prefix: Prefix,
    pub(crate) metric: M,
}

impl Keyed for Prefix {
    #[inline(always)]
    fn hash(&self) -> u64 {
        self.hash
    }
}

/// Where the records of one metric kind keep their parts, and how their metric is dropped:
/// everything the kind-independent code ([`RawRecord`]) needs to know of `M`.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    /// `size_of::<Header<M>>()`: where the key starts (see [`key_at`]).
    key_at: usize,
    /// `align_of::<Header<M>>()`.
    align: usize,
    /// Where the metric lies in the header.
    metric_at: usize,
    /// Drops the metric at the address it is given.
    drop_metric: unsafe fn(NonNull<u8>),
}

impl Shape {
    /// The shape of the records of metrics of type `M` (`Send + Sync`: records are shared
    /// between threads through the family's table).
    pub(crate) const fn of<M: Send + Sync>() -> Self {
        /// # Safety
        /// `at` is a live, initialised `M` that is not used again.
        unsafe fn drop_metric<M>(at: NonNull<u8>) {
            // SAFETY: the caller's contract.
            unsafe { ptr::drop_in_place(at.cast::<M>().as_ptr()) }
        }
        Shape {
            key_at: key_at::<M>(),
            align: align_of::<Header<M>>(),
            metric_at: std::mem::offset_of!(Header<M>, metric),
            drop_metric: drop_metric::<M>,
        }
    }
}

/// A pointer to a whole record of a known metric type (see the module docs): the view of the
/// lookup's hit path, which reads the key and the metric at offsets known at compile time.
pub(crate) struct Record<M>(NonNull<Header<M>>);

impl<M> Clone for Record<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Record<M> {}

/// A pointer to a whole record whose metric type is erased, with its [`Shape`] given by the
/// caller: the view of the code that never touches the metric. `Copy`: the family owns the
/// records and frees each once, in its `Drop`.
#[derive(Clone, Copy)]
pub(crate) struct RawRecord(NonNull<Prefix>);

/// Where the key of a record starts: right after the header, whose size is a multiple of its
/// alignment, which is at least 8 (it holds a `u64`), so the key words are aligned.
const fn key_at<M>() -> usize {
    size_of::<Header<M>>()
}

/// Where the parts of a record with `cells` inline cells and a `key_words`-word key lie: the
/// block's layout and the cells' offset (the key is at `shape.key_at`; the cells follow the key,
/// aligned as it is).
///
/// One exception: the series of a family without labels (an empty key) is every caller's
/// series, the most contended there is, so its inline cells start a cache line of their own
/// ([`LINE`]) and the block is whole lines. Otherwise every update loads the handle's cell
/// pointer from the line another core is writing, and pays a second transfer of that line
/// before its own write (BENCHMARKS.md, `counter_inc_contended`). That costs at most one line
/// per family; a labelled series stays compact (ARCHITECTURE.md, *The series record*).
fn layout(shape: &Shape, cells: usize, key_words: usize) -> (Layout, usize) {
    let (cells_at, align) = if key_words == 0 && cells > 0 {
        (shape.key_at.next_multiple_of(LINE), LINE)
    } else {
        (shape.key_at + 8 * key_words, shape.align)
    };
    let size = cells_at + 8 * cells;
    let layout = Layout::from_size_align(size, align)
        .expect("a record is far smaller than isize::MAX")
        .pad_to_align();
    (layout, cells_at)
}

impl RawRecord {
    /// A new record of the series whose key is `key` (`key.rs`, word form), with `inline`
    /// zeroed cells in the record unless `external` cells are given, and the metric `write`
    /// writes on those cells, at the address it is given.
    ///
    /// # Safety
    /// `write` must write, at the address it is given, a metric of the type `shape` is the
    /// [`Shape::of`].
    pub(crate) unsafe fn new(
        shape: &Shape,
        hash: u64,
        created: f64,
        key: &[u64],
        inline: usize,
        external: Option<Cells>,
        write: &mut dyn FnMut(Cells, NonNull<u8>),
    ) -> Self {
        let inline = if external.is_some() { 0 } else { inline };
        let (layout, cells_at) = layout(shape, inline, key.len());
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
        // SAFETY: `metric_at` is the metric's place in the fresh block's header; the caller's
        // contract makes what `write` puts there a metric of the shape's type.
        write(cells, unsafe { block.add(shape.metric_at) });
        let prefix = block.cast::<Prefix>();
        // SAFETY: the block is fresh, large enough for the header and `key.len()` words at
        // `key_at`, and aligned for both; the prefix does not overlap the metric.
        unsafe {
            prefix.write(Prefix {
                hash,
                created,
                key_words: u32::try_from(key.len()).expect("label values under 32 GiB"),
                inline_cells: inline as u32,
            });
            // Little-endian, so that the record's bytes are the key's bytes on every target.
            let to = block.add(shape.key_at).cast::<u64>().as_ptr();
            for (i, &w) in key.iter().enumerate() {
                to.add(i).write(w.to_le());
            }
        }
        RawRecord(prefix)
    }

    /// Rebuilds a record from a pointer [`as_ptr`](Self::as_ptr) gave.
    ///
    /// # Safety
    /// `p` must come from `as_ptr` of a record not freed yet.
    #[inline(always)]
    pub(crate) unsafe fn from_ptr(p: NonNull<Prefix>) -> Self {
        RawRecord(p)
    }

    /// The pointer the table stores (it keeps the whole block's provenance).
    #[inline(always)]
    pub(crate) fn as_ptr(self) -> *mut Prefix {
        self.0.as_ptr()
    }

    /// The record as a record of its metric type.
    ///
    /// # Safety
    /// `M` must be the type this record's [`Shape`] is of.
    #[inline(always)]
    pub(crate) unsafe fn typed<M>(self) -> Record<M> {
        Record(self.0.cast())
    }

    /// The kind-independent part of the header.
    ///
    /// The family keeps every record alive until it drops, so callers holding the family may
    /// pick the lifetime.
    #[inline(always)]
    fn prefix<'a>(self) -> &'a Prefix {
        // SAFETY: records are fully written before anyone holds a `RawRecord`, and live until
        // `free`, which the family calls only when nothing borrows it any more.
        unsafe { self.0.as_ref() }
    }

    #[cfg(test)]
    pub(crate) fn hash(self) -> u64 {
        self.prefix().hash
    }

    #[inline(always)]
    pub(crate) fn created(self) -> f64 {
        self.prefix().created
    }

    /// The key in word form, as bytes (`key.rs`; its values: `key::word_form_values`), of a
    /// record of the `shape` given.
    #[inline(always)]
    pub(crate) fn key<'a>(self, shape: &Shape) -> &'a [u8] {
        let words = self.prefix().key_words as usize;
        // SAFETY: `key_words` words at `key_at` are inside the block (see `layout`),
        // initialised in `new` and never written after publication; `self.0` carries the whole
        // block's provenance.
        unsafe {
            std::slice::from_raw_parts(self.0.cast::<u8>().as_ptr().add(shape.key_at), 8 * words)
        }
    }

    /// Whether `key` is the key of this record, whose key starts at `key_at`: word count, then
    /// the words compared in place (`key::stored_key_matches`).
    #[inline(always)]
    fn matches_at(self, key_at: usize, key: &KeyRef<'_>) -> bool {
        let words = self.prefix().key_words as usize;
        if words != key.words.len() {
            return false;
        }
        // SAFETY: as in `key`; the words are 8-aligned (see `key_at`).
        let stored = unsafe {
            std::slice::from_raw_parts(
                self.0.cast::<u8>().as_ptr().add(key_at).cast::<u64>(),
                words,
            )
        };
        crate::key::stored_key_matches(stored, key)
    }

    /// Whether `key` is the key of this record, of the `shape` given (the creation path's
    /// comparison; the lookup's is [`Record::matches`]).
    pub(crate) fn matches(self, shape: &Shape, key: &KeyRef<'_>) -> bool {
        self.matches_at(shape.key_at, key)
    }

    /// Drops the metric, then frees the block.
    ///
    /// # Safety
    /// Called once per record, with the record's own shape, when nothing borrows it (the table,
    /// the dense array and every handle are gone).
    pub(crate) unsafe fn free(self, shape: &Shape) {
        let h = self.prefix();
        let (layout, _) = layout(shape, h.inline_cells as usize, h.key_words as usize);
        let block = self.0.cast::<u8>();
        // SAFETY: the caller's contract; the metric (and its `Cells`) go first, then the block
        // holding the cells it pointed at.
        unsafe {
            (shape.drop_metric)(block.add(shape.metric_at));
            alloc::dealloc(block.as_ptr(), layout);
        }
    }
}

impl<M> Record<M> {
    /// Rebuilds a record from a pointer the table or the dense array gave.
    ///
    /// # Safety
    /// `p` must point to a record of metric type `M` not freed yet.
    #[inline(always)]
    pub(crate) unsafe fn from_ptr(p: NonNull<Header<M>>) -> Self {
        Record(p)
    }

    /// The pointer the dense array stores (it keeps the whole block's provenance).
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

    /// Whether `key` is this record's key: [`RawRecord::matches_at`] with the key's offset a
    /// constant.
    #[inline(always)]
    pub(crate) fn matches(self, key: &KeyRef<'_>) -> bool {
        RawRecord(self.0.cast()).matches_at(key_at::<M>(), key)
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

    const SHAPE: Shape = Shape::of::<Cells>();

    /// A record whose metric is its bare cells, in both views.
    fn new(key: &[u64], inline: usize, external: Option<Cells>) -> (RawRecord, Record<Cells>) {
        // SAFETY: `write` writes a `Cells`, the type `SHAPE` is of.
        let raw = unsafe {
            RawRecord::new(&SHAPE, 7, 1.5, key, inline, external, &mut |cells, at| {
                at.cast::<Cells>().write(cells)
            })
        };
        // SAFETY: as above.
        (raw, unsafe { raw.typed() })
    }

    #[test]
    fn a_record_holds_its_key_and_inline_cells() {
        for key in [&b""[..], b"GET\xff", b"GET\xff/users/7\xff200\xff"] {
            let (raw, r) = new(&words(key), 3, None);
            let values: Vec<_> = crate::key::word_form_values(raw.key(&SHAPE)).collect();
            let want: Vec<_> = crate::labels::key_values(key).collect();
            assert_eq!(values, want);
            assert_eq!((raw.hash(), raw.created()), (7, 1.5));
            let cells = &r.header().metric;
            assert_eq!(cells.len(), 3);
            cells.at(2).fetch_add(5, Ordering::Relaxed);
            assert_eq!(cells.at(2).load(Ordering::Relaxed), 5);
            assert_eq!(cells.at(0).load(Ordering::Relaxed), 0);
            assert!(r.matches(&KeyRef { words: &words(key) }));
            assert!(raw.matches(&SHAPE, &KeyRef { words: &words(key) }));
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
                assert!(!raw.matches(
                    &SHAPE,
                    &KeyRef {
                        words: &words(&other)
                    }
                ));
            }
            // SAFETY: created above with this shape, freed once, nothing borrows it any more.
            unsafe { raw.free(&SHAPE) };
        }
    }

    /// The erased view finds the parts where the typed one does, for a metric larger than
    /// the prefix's alignment (the key's offset depends on it).
    #[test]
    fn both_views_agree_on_where_the_parts_are() {
        assert_eq!(SHAPE.key_at, size_of::<Header<Cells>>());
        assert_eq!(SHAPE.metric_at, size_of::<Prefix>());
        let (raw, r) = new(&words(b"a\xff"), 1, None);
        assert_eq!(raw.as_ptr().cast::<u8>(), r.as_ptr().cast::<u8>());
        assert_eq!(
            ptr::addr_of!(r.header().metric).cast::<u8>(),
            raw.as_ptr()
                .cast::<u8>()
                .wrapping_add(SHAPE.metric_at)
                .cast_const()
        );
        // SAFETY: as above.
        unsafe { raw.free(&SHAPE) };
    }

    /// The one series of a family without labels keeps its cells off the line holding its
    /// handle; a labelled series' cells follow its key, packed.
    #[test]
    fn only_a_label_less_series_gets_a_line_of_its_own() {
        let line_of = |p: *const AtomicU64| p as usize / LINE;
        let (raw, r) = new(&[], 2, None);
        let cells = r.header().metric.at(0) as *const AtomicU64;
        assert_eq!(cells as usize % LINE, 0, "the cells start a line");
        let handle = ptr::addr_of!(r.header().metric).cast::<AtomicU64>();
        assert_ne!(line_of(cells), line_of(handle));
        // SAFETY: created above with this shape, freed once, nothing borrows it any more.
        unsafe { raw.free(&SHAPE) };

        let key = words(b"GET\xff");
        let (raw, r) = new(&key, 2, None);
        let cells = r.header().metric.at(0) as *const AtomicU64 as usize;
        assert_eq!(
            cells - r.as_ptr() as usize,
            key_at::<Cells>() + 8 * key.len()
        );
        // SAFETY: as above.
        unsafe { raw.free(&SHAPE) };
    }

    #[test]
    fn external_cells_stay_where_they_are() {
        let backing: Vec<AtomicU64> = (0..2).map(AtomicU64::new).collect();
        let ptr = NonNull::new(backing.as_ptr().cast_mut()).expect("not null");
        // SAFETY: two initialised atomics that outlive the record.
        let cells = unsafe { Cells::external(ptr, 2) };
        let (raw, r) = new(&words(b"a\xff"), 2, Some(cells));
        assert_eq!(r.header().metric.at(1).load(Ordering::Relaxed), 1);
        assert_eq!(raw.key(&SHAPE), b"a\xff\0\0\0\0\0\0");
        // SAFETY: as above.
        unsafe { raw.free(&SHAPE) };
        assert_eq!(backing[1].load(Ordering::Relaxed), 1);
    }
}
