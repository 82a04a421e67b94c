//! Reading a file of the directory: copied with `pread` into memory this process owns,
//! validated completely, never trusted.
//!
//! # Copies, not a mapping
//! Workers update their files through shared mappings while a scrape reads them. A reader that
//! mapped them too and formed `&[u8]` over the mapping would race with those stores (undefined
//! behaviour in Rust's memory model, whatever the hardware does), and a file shortened while
//! mapped — by a process of the same user, or a disk tool — would kill the scraper with
//! `SIGBUS` at its next touch of a page past the new end. Loading through atomics only would
//! cure the first and not the second: a truncation between the `fstat` and a load still
//! faults, and the only cure for that, a process-wide `SIGBUS` handler, is not a library's to
//! install. So the reader never maps: a [`Snapshot`] is the file copied by the kernel
//! (`pread`, std's `FileExt::read_at`) into a buffer this process owns. Rust code then reads
//! only memory nobody else writes, and a truncation makes a copy come back short: the file is
//! skipped and counted as corrupt (`promtrack_multiprocess_read_errors_total`), never a signal.
//!
//! # Torn values, and the agreement of two reads
//! The kernel's copy promises no 8-byte atomicity: a value cell stored to during the copy may
//! come back as a mix of its old and new bytes (a counter stepping from 2³²−1 to 2³² read as
//! 2³³−1, or as 0, which a scraper takes for a reset). So no value of a live writer's file is
//! taken from a single read. Such a file is copied twice; a series whose cells differ between
//! the copies has its cells — one
//! block: the buckets with their sum, a gauge with its timestamp and sequence — read again
//! until two consecutive reads agree byte for byte. A read is torn only if a store hit the cell
//! during the few nanoseconds its 8 bytes were copied; when two reads agree and either was not
//! torn, the value is one the cell really held. Taking a wrong value thus needs both reads
//! torn, by stores in each of two such windows, into the same bytes:
//! - a counter (or bucket, count, sum of a series that only grows) moves one way, and its low
//!   bytes keep moving, so two tears in different windows landing on the same bytes is a
//!   coincidence on top of a coincidence; and if it happened, the value would be a mix of the
//!   bytes it held in those windows, read once, never kept: the next scrape reads afresh;
//! - a gauge is agreed with the rest of its block, so a `mostrecent` value comes with its own
//!   timestamp (a sequence left odd by a writer that died mid-update is taken as it is, as it
//!   always was), and the same double-coincidence argument holds for its bytes.
//!
//! A block that changes between every two reads (a counter in a tight loop) gets
//! [`BLOCK_TRIES`] tries, then is read once more a word at a time: each 8-aligned word copied
//! by its own 8-byte `pread`, which Linux on x86-64 and arm64 copies with one 8-byte load (its
//! `copy_to_user` for 8 bytes) — how the kernel is written, not a promise it makes, and only in
//! this last resort. A file nothing writes any more — its writer's lock is free (a dead file
//! never comes back to life: writers lock only files they create), or the archive, renamed in
//! whole — cannot tear and is copied once; a live file whose copies are equal costs one
//! comparison more.
//!
//! # What is kept
//! The copies are taken into buffers a reader keeps from file to file ([`Scratch`]): a scrape
//! of 256 files of 1,000 native series copied 715 MB (389 MB since the shared window,
//! `layout.rs`), and faulting that many fresh pages in cost more than the copy. What a [`Snapshot`] keeps is the copy shrunk (`shrink.rs`): each
//! native state that decodes, decoded there once and kept in the archive's sparse form, every
//! other record as it is — a file that parses and aggregates exactly as the copy would.
//!
//! # Validation
//! Every length and offset read from a file is checked against the bytes actually there before use,
//! so a truncated, garbage, foreign-version or hostile file yields a [`ReadError`] — never a panic,
//! an out-of-bounds read or an allocation beyond the file's size. A snapshot holds `used` bytes,
//! the length published in the header, read (agreed as above) before the `fstat` that bounds it: a
//! writer allocates disk space before it publishes, so an honest file is never shorter than its
//! `used`. Records below `used` are complete and immutable except for their value cells.
//! Validation, on the thread that copied the file (a scrape copies on several), is one pass over
//! the records that keeps the family declarations, the archive's absorbed ids and a 16-byte
//! reference per series record (where its cells and key are); all of it is charged to a budget of
//! the snapshot's length, and every record kept is larger than what is kept of it — so reading a
//! file allocates at most three times its size (two copies and what is kept), the second copy only
//! until the first is agreed. The aggregation then reads series through those references without
//! validating anything twice. Names and label names must be valid Prometheus names and label values
//! valid UTF-8, so whatever a file holds is safe to write into an exposition.
//!
//! # Extension records
//! Records of tag 0 with a non-zero sub-tag (`file.rs`) attach cells to an earlier family or
//! series record. One whose sub-tag this build does not know is skipped (a newer writer's); one
//! that does not validate — its target is not a record of the right kind, its cell count is
//! not the one its target's declaration implies, its settings are out of range, or its target
//! already has one of that sub-tag — is skipped and counted ([`Parsed::bad_extensions`]), and
//! the rest of the file is kept. Their cells are agreed like a series' (above): native state as
//! one block that must also be out of a reduction (an even generation, `metric/native.rs`: a
//! live writer's state caught in one is copied again, after a yield, a few times, and
//! otherwise left for the aggregate to leave out of that scrape and count — never a
//! half-reduced bucket array), each exemplar slot as one block that must also hold an even sequence number
//! (`exemplar.rs`) — so a live file whose two copies are equal is still walked once for a
//! slot caught mid-write, which is read again. A slot that never holds still gets no
//! word-at-a-time last resort: it is left out of that scrape.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::file::{
    EXT_CELLS, EXT_EXEMPLARS, EXT_NATIVE_SETTINGS, EXT_NATIVE_SHARED, EXT_NATIVE_SPARSE,
    EXT_NATIVE_TWIN, NATIVE_SETTINGS_LEN, ext_cell_count, native_form,
};
use super::file::{
    FLAG_ARCHIVE, H_DROPPED, H_FLAGS, H_HEADER_LEN, H_ID, H_PID, H_START_TICKS, H_USED, H_VERSION,
    HEADER_LEN, MAGIC, MAX_FILE, MAX_RECORD, TAG_ABSORBED, TAG_FAMILY, TAG_PADDING, TAG_SERIES,
    VERSION, kind_from_code,
};
use super::native_merge;
use crate::exemplar::SLOT_WORDS;
use crate::labels::{KEY_SEPARATOR, is_valid_label_name, is_valid_metric_name};
use crate::layout::Layout;
use crate::metric::GaugeMode;
use crate::model::MetricKind;

/// Why a file was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Not a promtrack file, truncated, or internally inconsistent.
    Corrupt(&'static str),
    /// A layout version this build does not know (written by a newer promtrack).
    Version(u32),
    /// The file could not be opened or read.
    Io,
}

const TRUNCATED: ReadError = ReadError::Corrupt("shorter than its header says: truncated");

/// Reads of one block before it is read a word at a time (see the module docs).
pub(crate) const BLOCK_TRIES: usize = 16;

/// What a snapshot is copied from: a file, or in tests a stand-in whose bytes change between
/// reads.
pub(crate) trait Source {
    /// Like [`FileExt::read_at`]: fewer bytes than asked only at the end of the file.
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// The current length.
    fn len(&self) -> io::Result<u64>;
    /// The first `len` bytes, into `buf` (its previous contents dropped).
    fn copy(&self, len: usize, buf: &mut Vec<u8>) -> Result<(), ReadError> {
        buf.clear();
        buf.resize(len, 0);
        read_exact_at(self, buf, 0)
    }
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, off)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    /// Read into the buffer's spare capacity, which std's `read_to_end` does without zeroing
    /// it first (a scrape copies every file: zeroing would cost as much again). Moves the
    /// descriptor's offset: the files read here are opened for this read alone.
    fn copy(&self, len: usize, buf: &mut Vec<u8>) -> Result<(), ReadError> {
        use std::io::{Read, Seek, SeekFrom};
        buf.clear();
        buf.reserve(len);
        let mut file = self;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.take(len as u64).read_to_end(buf))
            .map_err(|_| ReadError::Io)?;
        if buf.len() < len {
            return Err(TRUNCATED);
        }
        Ok(())
    }
}

/// Fills `buf` from `off`; a short read (the file ends first: it was truncated) is an error.
fn read_exact_at(
    src: &(impl Source + ?Sized),
    mut buf: &mut [u8],
    mut off: u64,
) -> Result<(), ReadError> {
    while !buf.is_empty() {
        match src.read_at(buf, off) {
            Ok(0) => return Err(TRUNCATED),
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadError::Io),
        }
    }
    Ok(())
}

/// Makes `block` (the bytes at `off`, from one read) a value two consecutive reads agree on,
/// reading it again as needed (see the module docs). `again` is scratch of the same length.
fn agree(
    src: &impl Source,
    off: usize,
    block: &mut [u8],
    again: &mut [u8],
) -> Result<(), ReadError> {
    for _ in 0..BLOCK_TRIES {
        read_exact_at(src, again, off as u64)?;
        if *again == *block {
            return Ok(());
        }
        block.copy_from_slice(again);
    }
    // The last resort: one 8-byte read per word.
    for (i, word) in block.chunks_exact_mut(8).enumerate() {
        read_exact_at(src, word, (off + 8 * i) as u64)?;
    }
    Ok(())
}

/// A copy of a file up to its published length, its value cells agreed, its native states in
/// the sparse form (`shrink.rs`; see the module docs).
pub(crate) struct Snapshot {
    bytes: Vec<u8>,
    /// The bytes validated, on the thread that copied them (see [`Index`]).
    index: Result<Index, ReadError>,
}

/// Buffers a reader keeps from one file to the next: the copies are taken into them, so a
/// scrape faults fresh pages in for its largest file only, not for every file (the kernel
/// zeroing and mapping fresh pages cost more than the copy), and keeps only what `shrink.rs`
/// makes of each copy.
#[derive(Default)]
pub(crate) struct Scratch {
    copy: Vec<u8>,
    second: Vec<u8>,
}

impl Snapshot {
    /// Copies `src` (see the module docs): once if nothing writes it any more (`live` false:
    /// its writer's lock is free, or it is the archive), else twice, agreeing every value cell
    /// that differs between the copies; then shrinks it (`shrink.rs`). The copies are taken
    /// into `scratch` (kept across files). Only the header is interpreted here, and the
    /// records walked as far as they make sense; [`Parsed::parse`] validates them.
    pub(crate) fn read(
        src: &impl Source,
        live: bool,
        scratch: &mut Scratch,
    ) -> Result<Snapshot, ReadError> {
        let mut header = [0u8; HEADER_LEN];
        read_exact_at(src, &mut header, 0).map_err(|e| match e {
            TRUNCATED => ReadError::Corrupt("shorter than a header"),
            e => e,
        })?;
        check_header(&header)?;
        if live {
            agree(src, H_USED, &mut header[H_USED..H_USED + 8], &mut [0; 8])?;
        }
        let used = u64_at(&header, H_USED).unwrap_or(0);
        // Past MAX_FILE, offsets would not fit the `u32`s records and references use.
        if used < HEADER_LEN as u64 || used > MAX_FILE || used % 8 != 0 {
            return Err(ReadError::Corrupt("used length out of range"));
        }
        // Measured after `used` was read: an honest writer's file is never shorter than what it
        // published, so a shorter one was truncated (or lies); and nothing larger than the file
        // is allocated on a length field's word.
        if used > src.len().map_err(|_| ReadError::Io)? {
            return Err(TRUNCATED);
        }
        let used = used as usize;
        let Scratch {
            copy: bytes,
            second,
        } = scratch;
        src.copy(used, bytes)?;
        if live {
            // Like the first: into spare capacity, not into zeroed bytes.
            src.copy(used, second)?;
            if **second != **bytes || has_busy_block(bytes) {
                agree_cells(src, bytes, second)?;
            }
        }
        let bytes = super::shrink::shrink(bytes, live).unwrap_or_else(|| std::mem::take(bytes));
        Ok(Snapshot::of(bytes))
    }

    /// `bytes` validated: the copying thread's share of the work (see [`Index`]).
    fn of(bytes: Vec<u8>) -> Snapshot {
        let index = Index::build(&bytes);
        Snapshot { bytes, index }
    }

    /// A snapshot of `bytes` as they are (not shrunk): what a scrape kept before `shrink.rs`.
    #[cfg(test)]
    pub(crate) fn unshrunk(bytes: Vec<u8>) -> Snapshot {
        Snapshot::of(bytes)
    }

    /// The file id in the header (a snapshot holds at least a header); not validated.
    pub(crate) fn header_id(&self) -> u64 {
        u64_at(&self.bytes, H_ID).unwrap_or(0)
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A promtrack file of a version this build reads, with the header length it says.
fn check_header(b: &[u8]) -> Result<(), ReadError> {
    if b.get(..8) != Some(&MAGIC[..]) {
        return Err(ReadError::Corrupt("not a promtrack multiprocess file"));
    }
    match u32_at(b, H_VERSION).unwrap_or(0) {
        VERSION => {}
        v => return Err(ReadError::Version(v)),
    }
    if u32_at(b, H_HEADER_LEN) != Some(HEADER_LEN as u32) {
        return Err(ReadError::Corrupt("wrong header length"));
    }
    Ok(())
}

/// Agrees every value cell whose two copies differ: the header's `dropped` cell, and the cell
/// block of each series record. Records are walked as the first copy lays them out, with every
/// bound checked; a record that does not make sense ends the walk (validation rejects the file
/// later), and whatever is rewritten here is validated with the rest.
fn agree_cells(src: &impl Source, bytes: &mut [u8], second: &[u8]) -> Result<(), ReadError> {
    let mut again = Vec::new();
    let mut block = |at: usize, end: usize, bytes: &mut [u8]| -> Result<(), ReadError> {
        if bytes[at..end] == second[at..end] {
            return Ok(());
        }
        bytes[at..end].copy_from_slice(&second[at..end]);
        again.resize(end - at, 0);
        agree(src, at, &mut bytes[at..end], &mut again)
    };
    block(H_DROPPED, H_DROPPED + 8, bytes)?;
    let mut off = HEADER_LEN;
    while let Some((len, tag)) = u32_at(bytes, off).zip(u16_at(bytes, off + 4)) {
        let len = len as usize;
        if len < 8 || len % 8 != 0 || len > bytes.len() - off {
            break;
        }
        let ext = u16_at(bytes, off + 6).unwrap_or(0);
        // Where the cells and their count are.
        let (cells_at, count_at) = match (tag, ext) {
            (TAG_SERIES, _) => (16, 12),
            (
                TAG_PADDING,
                EXT_NATIVE_SHARED | EXT_NATIVE_TWIN | EXT_NATIVE_SPARSE | EXT_EXEMPLARS,
            ) => (EXT_CELLS, 16),
            _ => (0, 0),
        };
        let end = (cells_at != 0 && len >= cells_at)
            .then(|| u32_at(bytes, off + count_at).unwrap_or(0) as usize)
            .map(|n| match tag {
                TAG_PADDING => ext_cell_count(ext, n, len),
                _ => n,
            })
            .and_then(|n| n.checked_mul(8))
            .and_then(|n| (off + cells_at).checked_add(n))
            .filter(|&end| end <= off + len);
        if let Some(end) = end {
            if ext == EXT_EXEMPLARS && tag == TAG_PADDING {
                for at in (off + cells_at..end).step_by(8 * SLOT_WORDS) {
                    if at + 8 * SLOT_WORDS <= end {
                        agree_slot(
                            src,
                            &mut bytes[at..at + 8 * SLOT_WORDS],
                            &second[at..at + 8 * SLOT_WORDS],
                            at,
                        )?;
                    }
                }
            } else if tag == TAG_PADDING && native_form(ext).is_some() {
                agree_native(
                    src,
                    off + cells_at,
                    &mut bytes[off + cells_at..end],
                    &second[off + cells_at..end],
                )?;
            } else {
                block(off + cells_at, end, bytes)?;
            }
        }
        off += len;
    }
    Ok(())
}

/// Whether a copy of native state was taken in the middle of a reduction (an odd generation,
/// `metric/native.rs`).
fn native_in_rewrite(state: &[u8]) -> bool {
    u64_at(state, 8 * crate::layout::native::GENERATION).is_some_and(|g| g % 2 == 1)
}

/// Makes a native state (the cells at `at`) one that two consecutive reads agree on, read
/// outside a reduction: a reduction holds the state for microseconds, so the reader yields and
/// copies again, a bounded number of times. A state still caught in one is left as it is;
/// `native::decode` then calls it torn, and the aggregate leaves that process's buckets out of
/// this scrape and counts it — a half-reduced bucket array never reaches a scrape.
fn agree_native(
    src: &impl Source,
    at: usize,
    state: &mut [u8],
    second: &[u8],
) -> Result<(), ReadError> {
    if state == second && !native_in_rewrite(state) {
        return Ok(());
    }
    state.copy_from_slice(second);
    let mut again = vec![0u8; state.len()];
    for _ in 0..NATIVE_TRIES {
        agree(src, at, state, &mut again)?;
        if !native_in_rewrite(state) {
            return Ok(());
        }
        std::thread::yield_now();
        read_exact_at(src, state, at as u64)?;
    }
    Ok(())
}

/// Copies of a native state caught in a reduction before it is left out of a scrape.
const NATIVE_TRIES: usize = 8;

/// Whether an exemplar slot of the copy holds a write in progress (odd sequence), or a native
/// state a reduction (odd generation): equal copies do not make it one to take (see the module
/// docs).
fn has_busy_block(bytes: &[u8]) -> bool {
    let mut off = HEADER_LEN;
    while let Some((len, tag)) = u32_at(bytes, off).zip(u16_at(bytes, off + 4)) {
        let len = len as usize;
        if len < 8 || len % 8 != 0 || len > bytes.len() - off {
            break;
        }
        if tag == TAG_PADDING
            && u16_at(bytes, off + 6).and_then(native_form).is_some()
            && native_in_rewrite(bytes[off..off + len].get(EXT_CELLS..).unwrap_or_default())
        {
            return true;
        }
        if tag == TAG_PADDING && u16_at(bytes, off + 6) == Some(EXT_EXEMPLARS) {
            let rec = &bytes[off..off + len];
            let busy = rec
                .get(EXT_CELLS..)
                .unwrap_or_default()
                .chunks_exact(8 * SLOT_WORDS)
                .any(|slot| u64_at(slot, 0).is_some_and(|seq| seq % 2 == 1));
            if busy {
                return true;
            }
        }
        off += len;
    }
    false
}

/// Makes an exemplar slot one that two consecutive reads agree on and that holds a complete
/// write (an even sequence), or marks it as holding none (see the module docs).
fn agree_slot(
    src: &impl Source,
    slot: &mut [u8],
    second: &[u8],
    at: usize,
) -> Result<(), ReadError> {
    let busy = |b: &[u8]| u64_at(b, 0).is_some_and(|seq| seq % 2 == 1);
    if slot == second && !busy(slot) {
        return Ok(());
    }
    slot.copy_from_slice(second);
    let mut again = [0u8; 8 * SLOT_WORDS];
    for _ in 0..BLOCK_TRIES {
        read_exact_at(src, &mut again, at as u64)?;
        if again[..] == *slot && !busy(slot) {
            return Ok(());
        }
        slot.copy_from_slice(&again);
    }
    slot[..8].copy_from_slice(&1u64.to_ne_bytes());
    Ok(())
}

/// What is read most of a family declaration, and where its record is: what an [`Index`] keeps
/// of it. At most 32 bytes, the smallest a family record can be, so what validation keeps of a
/// file stays within the file's size (see the module docs).
#[derive(Clone, Copy, Debug)]
struct FamAt {
    off: u32,
    len: u32,
    /// Cells per series of this family.
    n_cells: u32,
    /// Series records of this family in the file (to size the aggregation's maps).
    n_series: u32,
    n_labels: u16,
    kind: MetricKind,
    mode: GaugeMode,
}

const _: () = assert!(std::mem::size_of::<FamAt>() <= 32);

impl FamAt {
    /// The declaration, its record read from `bytes` (the snapshot it was validated in).
    fn with(self, bytes: &[u8]) -> Fam<'_> {
        let (off, len) = (self.off as usize, self.len as usize);
        Fam {
            rec: bytes.get(off..off + len).unwrap_or_default(),
            at: self,
        }
    }
}

/// A family declaration read from a file: its validated record, and what is read of it most.
#[derive(Clone, Debug)]
pub(crate) struct Fam<'a> {
    rec: &'a [u8],
    at: FamAt,
}

/// Where a family record's parts start: bounds at 16, then the name, the help, the labels.
const FAM_BOUNDS: usize = 16;

impl<'a> Fam<'a> {
    pub(crate) fn kind(&self) -> MetricKind {
        self.at.kind
    }

    pub(crate) fn mode(&self) -> GaugeMode {
        self.at.mode
    }

    /// Series records of this family in the file (to size the aggregation's maps).
    pub(crate) fn n_series(&self) -> u32 {
        self.at.n_series
    }

    fn bounds_bytes(&self) -> &'a [u8] {
        let n = u32_at(self.rec, 12).unwrap_or(0) as usize;
        self.rec
            .get(FAM_BOUNDS..FAM_BOUNDS.saturating_add(n.saturating_mul(8)))
            .unwrap_or_default()
    }

    /// The name, the help and the bytes of the label names (validated when parsed; a record
    /// cannot change afterwards, and if it did this yields empty strings, never a panic).
    fn strs(&self) -> (&'a str, &'a str, &'a [u8]) {
        let rest = self
            .rec
            .get(FAM_BOUNDS + self.bounds_bytes().len()..)
            .unwrap_or_default();
        let (name, rest) = take_str(rest).unwrap_or_default();
        let (help, labels) = take_str(rest).unwrap_or_default();
        (name, help, labels)
    }

    pub(crate) fn name(&self) -> &'a str {
        self.strs().0
    }

    pub(crate) fn help(&self) -> &'a str {
        self.strs().1
    }

    /// The label names, in key order.
    pub(crate) fn label_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut rest = self.strs().2;
        (0..self.at.n_labels).map_while(move |_| {
            let (s, r) = take_str(rest)?;
            rest = r;
            Some(s)
        })
    }

    /// The histogram bounds.
    pub(crate) fn bounds(&self) -> impl Iterator<Item = f64> + 'a {
        self.bounds_bytes()
            .chunks_exact(8)
            .map(|c| f64::from_bits(u64::from_ne_bytes(c.try_into().unwrap_or_default())))
    }

    pub(crate) fn n_bounds(&self) -> usize {
        self.bounds_bytes().len() / 8
    }
}

/// Where a validated series record's parts are, in 16 bytes (a series record takes at least 24).
#[derive(Clone, Copy, Debug)]
struct SerRef {
    fam: u32,
    cells_off: u32,
    key_off: u32,
    key_len: u32,
}

/// Where a validated extension record's cells are, and what it attaches to (a family's index
/// for native settings, a series' index otherwise), in 16 bytes (the record takes at least 24).
#[derive(Clone, Copy, Debug)]
struct ExtRef {
    target: u32,
    cells_off: u32,
    n_cells: u32,
    ext: u16,
}

const _: () = assert!(std::mem::size_of::<ExtRef>() <= 16);

/// One series read from a file: its family, its key, and its cells.
pub(crate) struct SeriesRecord<'a> {
    pub(crate) fam: usize,
    pub(crate) key: &'a [u8],
    /// Its native state, validated against its family's settings: the sub-tag
    /// (a native state's, `EXT_NATIVE_SHARED` or `EXT_NATIVE_TWIN`, or `EXT_NATIVE_SPARSE`) and
    /// the cells' bytes.
    pub(crate) native: Option<(u16, &'a [u8])>,
    /// Its exemplar slots' bytes (empty: none yet), [`SLOT_WORDS`] cells per slot.
    pub(crate) exemplars: &'a [u8],
    /// The cells' bytes, 8 per cell (checked against the snapshot when the file was parsed).
    cells: &'a [u8],
    pub(crate) n_cells: usize,
}

impl<'a> SeriesRecord<'a> {
    /// The cells' values, in order.
    #[inline]
    pub(crate) fn cells(&self) -> impl Iterator<Item = u64> + 'a {
        self.cells
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
    }

    /// Cell `i` (0 past the last: never asked for, the cell count was validated).
    #[inline]
    pub(crate) fn cell(&self, i: usize) -> u64 {
        u64_at(self.cells, i.wrapping_mul(8)).unwrap_or_else(|| {
            debug_assert!(false, "cell {i} of {}", self.n_cells);
            0
        })
    }
}

/// What a file's header says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Info {
    pub(crate) id: u64,
    pub(crate) pid: u32,
    pub(crate) archive: bool,
    pub(crate) start_ticks: u64,
    pub(crate) dropped: u64,
}

/// A validated file: its snapshot's bytes, read through its [`Index`].
pub(crate) struct Parsed<'a> {
    pub(crate) info: Info,
    pub(crate) families: Vec<Fam<'a>>,
    pub(crate) absorbed: &'a [u64],
    series: &'a [SerRef],
    /// Native settings attached to families, in file order (so by target).
    family_ext: &'a [ExtRef],
    /// Extensions attached to series, sorted by target.
    series_ext: &'a [ExtRef],
    /// Extension records skipped because they did not validate (see the module docs).
    pub(crate) bad_extensions: u64,
    bytes: &'a [u8],
}

/// What validating a snapshot keeps, owned: [`Parsed`] without the bytes. A snapshot is
/// validated where it was copied, so a scrape's copying threads validate in parallel what its
/// one aggregating thread validated after them (a sixth of a native scrape's wall time there,
/// BENCHMARKS.md); the aggregation then takes a [`Parsed`] view of it for one small allocation.
struct Index {
    info: Info,
    families: Vec<FamAt>,
    absorbed: Vec<u64>,
    series: Vec<SerRef>,
    family_ext: Vec<ExtRef>,
    series_ext: Vec<ExtRef>,
    bad_extensions: u64,
}

/// The validation pass: the index so far (its family declarations are what the series and
/// extensions that follow are checked against), and the bytes it indexes.
struct Walk<'b> {
    index: Index,
    bytes: &'b [u8],
}

/// The cells of an exemplar-slot record bytes as `u64`s.
pub(crate) fn words(b: &[u8]) -> impl Iterator<Item = u64> + '_ {
    b.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
}

/// The native-endian integer at `off` in `b`, if `b` holds it (the file is this machine's).
pub(super) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
pub(super) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
pub(super) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// A `u32` length then that many UTF-8 bytes; returns the string and the rest.
fn take_str(b: &[u8]) -> Option<(&str, &[u8])> {
    let len = u32_at(b, 0)? as usize;
    let s = b.get(4..4usize.checked_add(len)?)?;
    Some((std::str::from_utf8(s).ok()?, &b[4 + len..]))
}

const CORRUPT_RECORD: ReadError = ReadError::Corrupt("a record overruns the file");

impl<'a> Parsed<'a> {
    /// The snapshot as validated when it was taken ([`Index`]), or why it did not validate.
    pub(crate) fn parse(snapshot: &'a Snapshot) -> Result<Parsed<'a>, ReadError> {
        let index = snapshot.index.as_ref().map_err(|&e| e)?;
        let bytes = snapshot.bytes();
        Ok(Parsed {
            info: index.info,
            families: index.families.iter().map(|f| f.with(bytes)).collect(),
            absorbed: &index.absorbed,
            series: &index.series,
            family_ext: &index.family_ext,
            series_ext: &index.series_ext,
            bad_extensions: index.bad_extensions,
            bytes,
        })
    }

    /// Series records in the file.
    pub(crate) fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The native settings cells of family `fam`, if it has valid ones.
    pub(crate) fn native_settings(&self, fam: usize) -> Option<[u64; NATIVE_SETTINGS_LEN]> {
        let r = self.family_ext.iter().find(|r| r.target as usize == fam)?;
        let cells = self
            .bytes
            .get(r.cells_off as usize..r.cells_off as usize + 8 * NATIVE_SETTINGS_LEN)?;
        let mut out = [0; NATIVE_SETTINGS_LEN];
        for (o, w) in out.iter_mut().zip(words(cells)) {
            *o = w;
        }
        Some(out)
    }

    /// Every series, in file order. The file was validated, so nothing fails here.
    pub(crate) fn series(&self) -> impl Iterator<Item = SeriesRecord<'a>> + '_ {
        let b = self.bytes;
        let mut ext = self.series_ext.iter().peekable();
        self.series.iter().enumerate().map(move |(i, r)| {
            let (key_off, cells_off) = (r.key_off as usize, r.cells_off as usize);
            let n_cells = self.families[r.fam as usize].at.n_cells as usize;
            let (mut native, mut exemplars) = (None, &[][..]);
            while let Some(e) = ext.next_if(|e| e.target as usize <= i) {
                if e.target as usize != i {
                    continue;
                }
                let at = e.cells_off as usize;
                let cells = b.get(at..at + 8 * e.n_cells as usize).unwrap_or_default();
                if e.ext == EXT_EXEMPLARS {
                    exemplars = cells;
                } else {
                    native = Some((e.ext, cells));
                }
            }
            SeriesRecord {
                native,
                exemplars,
                fam: r.fam as usize,
                key: b
                    .get(key_off..key_off + r.key_len as usize)
                    .unwrap_or_default(),
                cells: b
                    .get(cells_off..cells_off + 8 * n_cells)
                    .unwrap_or_default(),
                n_cells,
            }
        })
    }
}

impl Index {
    /// Validates the whole of `b`, a snapshot's bytes.
    fn build(b: &[u8]) -> Result<Index, ReadError> {
        // Checked when the snapshot was taken; again here, on the bytes that are kept.
        check_header(b)?;
        // The snapshot ends at the `used` its copy started with; the header it holds may
        // publish more, appended since: what the snapshot holds is complete.
        let used = u64_at(b, H_USED).unwrap_or(0).min(b.len() as u64);
        // Past MAX_FILE, offsets would not fit the `u32`s records and references use.
        if used < HEADER_LEN as u64 || used > MAX_FILE || used % 8 != 0 {
            return Err(ReadError::Corrupt("used length out of range"));
        }
        let used = used as usize;
        let info = Info {
            id: u64_at(b, H_ID).unwrap_or(0),
            pid: u32_at(b, H_PID).unwrap_or(0),
            archive: u32_at(b, H_FLAGS).unwrap_or(0) & FLAG_ARCHIVE != 0,
            start_ticks: u64_at(b, H_START_TICKS).unwrap_or(0),
            dropped: u64_at(b, H_DROPPED).unwrap_or(0),
        };
        let mut walk = Walk {
            index: Index {
                info,
                families: Vec::new(),
                absorbed: Vec::new(),
                series: Vec::new(),
                family_ext: Vec::new(),
                series_ext: Vec::new(),
                bad_extensions: 0,
            },
            bytes: b,
        };
        // What we keep must not exceed the file's own size (see the module docs).
        let mut budget = b.len();
        let mut off = HEADER_LEN;
        while off < used {
            let (tag, rec) = record_at(b, off, used)?;
            match tag {
                TAG_PADDING => match u16_at(rec, 6).unwrap_or(0) {
                    0 => {}
                    ext => match walk.extension_at(off, ext, rec) {
                        Ok(Some(r)) => {
                            budget = budget
                                .checked_sub(std::mem::size_of::<ExtRef>())
                                .ok_or(ReadError::Corrupt("too many records for its size"))?;
                            if ext == EXT_NATIVE_SETTINGS {
                                walk.index.family_ext.push(r);
                            } else {
                                walk.index.series_ext.push(r);
                            }
                        }
                        Ok(None) => {} // a newer writer's extension
                        Err(_) => walk.index.bad_extensions += 1,
                    },
                },
                TAG_FAMILY => {
                    let fam = parse_family(off, rec)?;
                    budget = budget
                        .checked_sub(std::mem::size_of::<FamAt>())
                        .ok_or(ReadError::Corrupt("too many declarations for its size"))?;
                    walk.index.families.push(fam.at);
                }
                TAG_SERIES => {
                    budget = budget
                        .checked_sub(std::mem::size_of::<SerRef>())
                        .ok_or(ReadError::Corrupt("too many series for its size"))?;
                    let r = walk.series_at(off, rec)?;
                    walk.index.families[r.fam as usize].n_series += 1;
                    walk.index.series.push(r);
                }
                TAG_ABSORBED if info.archive => {
                    let n = u32_at(rec, 8).ok_or(CORRUPT_RECORD)? as usize;
                    let ids = rec
                        .get(16..16 + n.checked_mul(8).ok_or(CORRUPT_RECORD)?)
                        .ok_or(CORRUPT_RECORD)?;
                    budget = budget.checked_sub(ids.len()).ok_or(CORRUPT_RECORD)?;
                    walk.index.absorbed.extend(
                        ids.chunks_exact(8)
                            .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes"))),
                    );
                }
                _ => return Err(ReadError::Corrupt("unknown record")),
            }
            off += rec.len();
        }
        // By series, then kind (native state or exemplars), in file order within each (the sort
        // is stable): a second one of a kind for a series is not the writer's, and is skipped.
        let class = |r: &ExtRef| u16::from(r.ext == EXT_EXEMPLARS);
        let mut index = walk.index;
        crate::sort::sort_by(&mut index.series_ext, |a, b| {
            (a.target, class(a)).cmp(&(b.target, class(b)))
        });
        let before = index.series_ext.len();
        index
            .series_ext
            .dedup_by(|b, a| (a.target, class(a)) == (b.target, class(b)));
        index.bad_extensions += (before - index.series_ext.len()) as u64;
        Ok(index)
    }
}

impl Walk<'_> {
    /// Validates the extension record at `off` with sub-tag `ext`: `Ok(None)` for a sub-tag
    /// this build does not know.
    fn extension_at(&self, off: usize, ext: u16, rec: &[u8]) -> Result<Option<ExtRef>, ReadError> {
        let bad = ReadError::Corrupt;
        if !matches!(
            ext,
            EXT_NATIVE_SETTINGS
                | EXT_NATIVE_SHARED
                | EXT_NATIVE_TWIN
                | EXT_NATIVE_SPARSE
                | EXT_EXEMPLARS
        ) {
            return Ok(None);
        }
        let back = u32_at(rec, 8).ok_or(CORRUPT_RECORD)? as usize;
        let n_cells = ext_cell_count(
            ext,
            u32_at(rec, 16).ok_or(CORRUPT_RECORD)? as usize,
            rec.len(),
        );
        let cells = rec
            .get(EXT_CELLS..EXT_CELLS + n_cells.checked_mul(8).ok_or(CORRUPT_RECORD)?)
            .ok_or(CORRUPT_RECORD)?;
        let target_off = off
            .checked_sub(back)
            .filter(|&t| back > 0 && t >= HEADER_LEN)
            .ok_or(bad("an extension attached to nothing"))?;
        let target = if ext == EXT_NATIVE_SETTINGS {
            // Written right after their family record (file.rs), so they attach to the last
            // declaration read, and `family_ext` stays sorted by family.
            let families = &self.index.families;
            let fam = families
                .len()
                .checked_sub(1)
                .filter(|&f| families[f].off as usize == target_off)
                .ok_or(bad("native settings attached to no declaration"))?;
            let cells: Vec<u64> = words(cells).collect();
            if families[fam].kind != MetricKind::Histogram
                || !native_merge::valid_settings(&cells)
                || self
                    .index
                    .family_ext
                    .last()
                    .is_some_and(|r| r.target as usize == fam)
            {
                return Err(bad("invalid native settings"));
            }
            fam
        } else {
            // Extensions mostly follow their series record: look at the last one first.
            let cells_off = target_off as u32 + 16;
            let i = match self.index.series.last() {
                Some(r) if r.cells_off == cells_off => self.index.series.len() - 1,
                _ => self
                    .index
                    .series
                    .binary_search_by_key(&cells_off, |r| r.cells_off)
                    .map_err(|_| bad("an extension attached to no series"))?,
            };
            let fam_i = self.index.series[i].fam as usize;
            let fam = self.index.families[fam_i].with(self.bytes);
            let ok = match ext {
                EXT_EXEMPLARS => {
                    let slots = match fam.kind() {
                        MetricKind::Counter => 1,
                        MetricKind::Histogram => fam.n_bounds() + 1,
                        _ => 0,
                    };
                    slots > 0 && n_cells == slots * SLOT_WORDS
                }
                _ => self
                    .index
                    .family_ext
                    .binary_search_by_key(&(fam_i as u32), |r| r.target)
                    .is_ok(),
            };
            // A second extension of one kind for a series is dropped after the walk.
            if !ok {
                return Err(bad("an extension that does not fit its series"));
            }
            i
        };
        Ok(Some(ExtRef {
            target: target as u32,
            cells_off: (off + EXT_CELLS) as u32,
            n_cells: n_cells as u32,
            ext,
        }))
    }

    /// Validates the series record at `off` (of the file) and returns where its parts are.
    fn series_at(&self, off: usize, rec: &[u8]) -> Result<SerRef, ReadError> {
        let fam_off = u32_at(rec, 8).ok_or(CORRUPT_RECORD)?;
        let n_cells = u32_at(rec, 12).ok_or(CORRUPT_RECORD)? as usize;
        // Series mostly follow their family, or one of the last few: look there first.
        let families = &self.index.families;
        let fam = match families.last() {
            Some(f) if f.off == fam_off => families.len() - 1,
            _ => families
                .binary_search_by_key(&fam_off, |f| f.off)
                .map_err(|_| ReadError::Corrupt("a series refers to no declaration"))?,
        };
        let f = families[fam];
        if n_cells != f.n_cells as usize {
            return Err(ReadError::Corrupt(
                "a series has the wrong number of values",
            ));
        }
        // `n_cells` is small (checked against the family), so this cannot overflow.
        let key_at = 16 + n_cells * 8;
        let key_len = u32_at(rec, key_at).ok_or(CORRUPT_RECORD)? as usize;
        let key = rec
            .get(key_at + 4..(key_at + 4).checked_add(key_len).ok_or(CORRUPT_RECORD)?)
            .ok_or(CORRUPT_RECORD)?;
        check_key(key, f.n_labels as usize)?;
        // Records are at most MAX_RECORD long and the file at most MAX_FILE: offsets fit u32.
        Ok(SerRef {
            fam: fam as u32,
            cells_off: (off + 16) as u32,
            key_off: (off + key_at + 4) as u32,
            key_len: key_len as u32,
        })
    }
}

/// The record at `off`: its tag and its bytes (header included).
fn record_at(b: &[u8], off: usize, used: usize) -> Result<(u16, &[u8]), ReadError> {
    let len = u32_at(b, off).ok_or(CORRUPT_RECORD)? as usize;
    let tag = u16_at(b, off + 4).ok_or(CORRUPT_RECORD)?;
    if len < 8 || len % 8 != 0 || len > used - off || (tag != TAG_PADDING && len > MAX_RECORD) {
        return Err(ReadError::Corrupt("a record has an impossible length"));
    }
    Ok((tag, &b[off..off + len]))
}

fn parse_family(off: usize, rec: &[u8]) -> Result<Fam<'_>, ReadError> {
    let bad = |what: &'static str| ReadError::Corrupt(what);
    let kind = kind_from_code(*rec.get(8).ok_or(CORRUPT_RECORD)?).ok_or(bad("unknown kind"))?;
    let mode = *GaugeMode::ALL
        .get(*rec.get(9).ok_or(CORRUPT_RECORD)? as usize)
        .ok_or(bad("unknown gauge mode"))?;
    let n_labels = u16_at(rec, 10).ok_or(CORRUPT_RECORD)?;
    let n_bounds = u32_at(rec, 12).ok_or(CORRUPT_RECORD)? as usize;
    let bounds_end = FAM_BOUNDS
        .checked_add(n_bounds.checked_mul(8).ok_or(CORRUPT_RECORD)?)
        .ok_or(CORRUPT_RECORD)?;
    rec.get(FAM_BOUNDS..bounds_end).ok_or(CORRUPT_RECORD)?;
    let rest = &rec[bounds_end..];
    let (name, rest) = take_str(rest).ok_or(CORRUPT_RECORD)?;
    let (_help, labels) = take_str(rest).ok_or(CORRUPT_RECORD)?;
    let fam = Fam {
        rec,
        at: FamAt {
            off: off as u32,
            // A record is at most MAX_RECORD long, so its length, the bounds and the cells fit
            // a u32.
            len: rec.len() as u32,
            n_cells: Layout::of(kind, mode.is_stamped(), n_bounds).len() as u32,
            n_series: 0,
            n_labels,
            kind,
            mode,
        },
    };
    if !is_valid_metric_name(name) {
        return Err(bad("an invalid metric name"));
    }
    let name_ok = match kind {
        MetricKind::Counter => name.ends_with("_total"),
        MetricKind::Info => name.ends_with("_info"),
        _ => true,
    };
    if !name_ok {
        return Err(bad("a counter or info name without its suffix"));
    }
    // Label names: valid, distinct, not reserved by the kind, all present.
    let mut rest = labels;
    for i in 0..n_labels {
        let (n, r) = take_str(rest).ok_or(CORRUPT_RECORD)?;
        rest = r;
        let reserved = (kind == MetricKind::Histogram && n == "le")
            || (kind == MetricKind::Summary && n == "quantile");
        if !is_valid_label_name(n) || reserved || fam.label_names().take(i as usize).any(|m| m == n)
        {
            return Err(bad("an invalid label name"));
        }
    }
    if kind == MetricKind::Histogram {
        let bounds: Vec<f64> = fam.bounds().collect();
        if crate::metric::histogram::validate_bounds(&bounds).is_err() {
            return Err(bad("invalid histogram bounds"));
        }
    } else if n_bounds != 0 {
        return Err(bad("bounds on a family that is not a histogram"));
    }
    Ok(fam)
}

/// A key holds exactly `n` values, each UTF-8 and terminated by the separator.
///
/// The separator (`0xFF`) never occurs in UTF-8, so one pass over the bytes counts the values;
/// only a key with other non-ASCII bytes needs a UTF-8 check of its values (most keys are
/// ASCII, and this runs once per series record of every file at every scrape).
fn check_key(key: &[u8], n: usize) -> Result<(), ReadError> {
    let bad = ReadError::Corrupt("a malformed label key");
    if key.last().is_some_and(|&b| b != KEY_SEPARATOR) {
        return Err(bad);
    }
    // Separators, and bytes with the high bit set (separators included), eight at a time.
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let (mut separators, mut high) = (0u32, 0u32);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_ne_bytes(w.try_into().unwrap_or_default());
        if w & HIGH != 0 {
            high += (w & HIGH).count_ones();
            // The high bit of each byte of `!w` that is zero, exactly: the 0xFF bytes of `w`.
            let v = !w;
            separators += (!(((v & LOW) + LOW) | v | LOW)).count_ones();
        }
    }
    for &b in words.remainder() {
        separators += u32::from(b == KEY_SEPARATOR);
        high += u32::from(b >= 0x80);
    }
    if separators as usize != n {
        return Err(bad);
    }
    // Other bytes than separators with the high bit: not ASCII, check the values' UTF-8.
    if high != separators {
        for v in key.split(|&b| b == KEY_SEPARATOR) {
            std::str::from_utf8(v).map_err(|_| bad)?;
        }
    }
    Ok(())
}

/// The label values of a validated key.
pub(crate) fn key_values(key: &[u8]) -> impl Iterator<Item = &str> {
    crate::labels::key_values(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::FamilyDecl;
    use crate::multiprocess_store::file::{encode_family, encode_header, encode_series};
    use std::cell::Cell;

    /// A file whose cells change from one read to the next, as a live writer's do: the `k`-th
    /// read that covers a scripted cell sees the `k`-th of its values (then the last one for
    /// good). `cut` shortens it after that many reads, as a truncation would.
    struct Script {
        bytes: Vec<u8>,
        cells: Vec<(usize, Vec<u64>, Cell<usize>)>,
        reads: Cell<usize>,
        cut: Option<(usize, usize)>,
    }

    impl Script {
        fn new(bytes: Vec<u8>) -> Script {
            Script {
                bytes,
                cells: Vec::new(),
                reads: Cell::new(0),
                cut: None,
            }
        }
        fn cell(mut self, off: usize, values: &[u64]) -> Script {
            self.cells.push((off, values.to_vec(), Cell::new(0)));
            self
        }
        /// How many reads covered the cell at `off`.
        fn reads_of(&self, off: usize) -> usize {
            self.cells
                .iter()
                .find(|c| c.0 == off)
                .map_or(0, |c| c.2.get())
        }
        fn current_len(&self) -> usize {
            match self.cut {
                Some((after, len)) if self.reads.get() >= after => len,
                _ => self.bytes.len(),
            }
        }
    }

    impl Source for Script {
        fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
            let off = off as usize;
            let end = (off + buf.len()).min(self.current_len());
            self.reads.set(self.reads.get() + 1);
            if off >= end {
                return Ok(0);
            }
            let mut now = self.bytes[off..end].to_vec();
            for (at, values, n) in &self.cells {
                if *at >= off && at + 8 <= end {
                    let v = values[n.get().min(values.len() - 1)];
                    n.set(n.get() + 1);
                    now[at - off..at - off + 8].copy_from_slice(&v.to_ne_bytes());
                }
            }
            buf[..now.len()].copy_from_slice(&now);
            Ok(now.len())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.current_len() as u64)
        }
    }

    /// A file of one series of `kind`/`mode` with `cells`; returns it and where its cells are.
    fn one_series(
        kind: MetricKind,
        mode: GaugeMode,
        name: &str,
        cells: &[u64],
    ) -> (Vec<u8>, usize) {
        let mut b = encode_header(7, 1, 0, 0, 0);
        let fam_off = b.len() as u32;
        encode_family(
            &mut b,
            &FamilyDecl {
                name,
                help: "",
                kind,
                mode,
                label_names: &[],
                bounds: &[],
                native: None,
            },
        );
        let start = b.len();
        let first = start + encode_series(&mut b, fam_off, cells, b"");
        let used = b.len() as u64;
        b[H_USED..H_USED + 8].copy_from_slice(&used.to_ne_bytes());
        (b, first)
    }

    fn cells_of(snapshot: &Snapshot) -> Vec<u64> {
        let p = Parsed::parse(snapshot).expect("a valid file");
        p.series().next().expect("one series").cells().collect()
    }

    const TORN: u64 = 0x1_FFFF_FFFF; // 2^32 - 1 stepping to 2^32, its halves mixed

    #[test]
    fn a_torn_first_copy_is_replaced_by_the_value_two_reads_agree_on() {
        let (b, at) = one_series(MetricKind::Counter, GaugeMode::Sum, "c_total", &[0, 0]);
        let src = Script::new(b).cell(at, &[TORN, 1 << 32]);
        let snap = Snapshot::read(&src, true, &mut Scratch::default()).unwrap();
        assert_eq!(cells_of(&snap), [1 << 32, 0]);
        // The first copy, the second, and one read of the block that agreed with the second.
        assert_eq!(src.reads_of(at), 3);
    }

    #[test]
    fn cells_equal_in_both_copies_are_not_read_again_and_a_dead_file_is_copied_once() {
        let (b, at) = one_series(MetricKind::Counter, GaugeMode::Sum, "c_total", &[0, 0]);
        let src = Script::new(b.clone()).cell(at, &[5]);
        assert_eq!(
            cells_of(&Snapshot::read(&src, true, &mut Scratch::default()).unwrap()),
            [5, 0]
        );
        assert_eq!(src.reads_of(at), 2);
        let src = Script::new(b).cell(at, &[5]);
        assert_eq!(
            cells_of(&Snapshot::read(&src, false, &mut Scratch::default()).unwrap()),
            [5, 0]
        );
        assert_eq!(src.reads_of(at), 1);
    }

    /// A `mostrecent` gauge's value and timestamp are agreed as one block: agreeing each word on
    /// its own would pair the new value (equal in reads 2 and 3) with the old timestamp (equal
    /// in reads 1 and 2).
    #[test]
    fn a_gauge_block_is_agreed_whole_so_a_value_keeps_its_own_timestamp() {
        let mode = GaugeMode::MostRecent;
        let (b, at) = one_series(MetricKind::Gauge, mode, "g", &[0, 0, 0]);
        let (one, two) = (1f64.to_bits(), 2f64.to_bits());
        let src = Script::new(b)
            .cell(at, &[one, two, two, two])
            .cell(at + 8, &[10, 10, 20, 20])
            .cell(at + 16, &[2, 2, 4, 4]);
        let snap = Snapshot::read(&src, true, &mut Scratch::default()).unwrap();
        assert_eq!(cells_of(&snap), [two, 20, 4]);
    }

    #[test]
    fn a_cell_that_never_holds_still_is_read_a_bounded_number_of_times() {
        let (b, at) = one_series(MetricKind::Counter, GaugeMode::Sum, "c_total", &[0, 0]);
        let values: Vec<u64> = (1..=100).collect();
        let src = Script::new(b).cell(at, &values);
        let snap = Snapshot::read(&src, true, &mut Scratch::default()).unwrap();
        // Two copies, the block tries, then one read of each word.
        let reads = 2 + BLOCK_TRIES + 1;
        assert_eq!(src.reads_of(at), reads);
        assert_eq!(cells_of(&snap), [reads as u64, 0]);
    }

    #[test]
    fn a_file_truncated_before_or_while_it_is_copied_is_an_error() {
        let (b, _) = one_series(MetricKind::Counter, GaugeMode::Sum, "c_total", &[3, 0]);
        let used = b.len();
        for (after, len) in [
            (0, 0),
            (0, 10),
            (0, HEADER_LEN),
            (0, used - 8),
            (2, 64),
            (3, 72),
        ] {
            let mut src = Script::new(b.clone());
            src.cut = Some((after, len));
            let got = Snapshot::read(&src, true, &mut Scratch::default()).err();
            assert!(
                matches!(got, Some(ReadError::Corrupt(_))),
                "cut to {len} after {after} reads: {got:?}"
            );
        }
        // Cut to its used length (the unused tail a writer allocates ahead): read whole.
        let mut src = Script::new(b.clone());
        src.cut = Some((0, used));
        assert_eq!(
            cells_of(&Snapshot::read(&src, true, &mut Scratch::default()).unwrap()),
            [3, 0]
        );
    }

    #[test]
    fn keys_hold_exactly_their_values_in_utf8() {
        assert_eq!(check_key(b"", 0), Ok(()));
        assert_eq!(check_key(b"a\xff", 1), Ok(()));
        assert_eq!(check_key(b"a\xff\xff", 2), Ok(()), "an empty value");
        assert!(check_key("é\u{1F600}".as_bytes(), 0).is_err());
        let mut k = "é".as_bytes().to_vec();
        k.push(0xFF);
        k.extend_from_slice("ß".as_bytes());
        k.push(0xFF);
        assert_eq!(check_key(&k, 2), Ok(()));
        for bad in [
            &b"a"[..],           // no terminator
            b"a\xffb",           // trailing bytes after the last value
            b"a\xff\xff",        // one value too many
            b"\xc3\xff",         // a truncated two-byte sequence
            b"\xed\xa0\x80\xff", // a surrogate
            b"\x80\xff",         // a lone continuation byte
        ] {
            assert!(check_key(bad, 1).is_err(), "{bad:?}");
        }
        assert!(
            check_key(b"\xff", 0).is_err(),
            "a value where none is declared"
        );
    }

    /// The word-at-a-time check agrees with the obvious one on keys of every length, with
    /// separators, ASCII, valid and invalid UTF-8 at every position of a word.
    #[test]
    fn the_fast_key_check_agrees_with_the_plain_one() {
        fn plain(key: &[u8], n: usize) -> bool {
            if n == 0 {
                return key.is_empty();
            }
            key.last() == Some(&KEY_SEPARATOR)
                && key[..key.len() - 1]
                    .split(|&b| b == KEY_SEPARATOR)
                    .all(|v| std::str::from_utf8(v).is_ok())
                && key.iter().filter(|&&b| b == KEY_SEPARATOR).count() == n
        }
        let alphabet: [&[u8]; 6] = [b"a", b"/", b"\xff", "é".as_bytes(), b"\xc3", b"\x80"];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            let mut key = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let mut r = seed;
            for _ in 0..len {
                key.extend_from_slice(alphabet[(r % 6) as usize]);
                r = r.rotate_right(5) ^ 0x9E37_79B9;
            }
            if seed % 3 != 0 {
                key.push(KEY_SEPARATOR);
            }
            for n in 0..4 {
                assert_eq!(check_key(&key, n).is_ok(), plain(&key, n), "{key:?} {n}");
            }
        }
    }

    mod extensions {
        use super::*;
        use crate::exemplar::SlotData;
        use crate::model::NativeBuckets;
        use crate::multiprocess_store::file::{encode_extension, native_settings_cells};
        use crate::multiprocess_store::native_merge::{decode_sparse, encode_sparse};

        fn ex(n: u8) -> SlotData {
            SlotData {
                trace: u128::from_be_bytes([n; 16]),
                span: u64::from_be_bytes([n; 8]),
                value: 0.5,
                time_ns: u64::from(n),
            }
        }

        fn buckets() -> NativeBuckets {
            NativeBuckets {
                schema: 3,
                positive: vec![(4, 2), (9, 1)],
                ..Default::default()
            }
        }

        /// A file with a counter (an exemplar slot) and a native histogram with one bound
        /// (settings, sparse state, exemplar slots); `extra` is appended raw before `used` is
        /// set. Returns the bytes and the histogram series' offset.
        fn file(extra: impl FnOnce(&mut Vec<u8>, usize)) -> (Vec<u8>, usize) {
            let mut b = encode_header(7, 1, 0, 0, 0);
            let counter = b.len() as u32;
            encode_family(&mut b, &decl("c_total", MetricKind::Counter, &[]));
            let c_series = b.len();
            encode_series(&mut b, counter, &[5, 0], b"");
            let back = (b.len() - c_series) as u32;
            let slot = ex(1).to_words(2);
            encode_extension(&mut b, EXT_EXEMPLARS, back, &slot);
            let hist = b.len();
            encode_family(&mut b, &decl("h", MetricKind::Histogram, &[1.0]));
            let back = (b.len() - hist) as u32;
            encode_extension(
                &mut b,
                EXT_NATIVE_SETTINGS,
                back,
                &native_settings_cells(3, 160, 0.0, 0.0, false),
            );
            let h_series = b.len();
            encode_series(&mut b, hist as u32, &[1, 2, 2.5f64.to_bits()], b"");
            let back = (b.len() - h_series) as u32;
            encode_extension(&mut b, EXT_NATIVE_SPARSE, back, &encode_sparse(&buckets()));
            extra(&mut b, h_series);
            let used = b.len() as u64;
            b[H_USED..H_USED + 8].copy_from_slice(&used.to_ne_bytes());
            (b, h_series)
        }

        fn decl(
            name: &'static str,
            kind: MetricKind,
            bounds: &'static [f64],
        ) -> FamilyDecl<'static> {
            FamilyDecl {
                name,
                help: "",
                kind,
                mode: GaugeMode::All,
                label_names: &[],
                bounds,
                native: None,
            }
        }

        fn parsed_totals(b: Vec<u8>) -> (Vec<Vec<u64>>, u64, Vec<bool>, Vec<usize>) {
            let snap = Snapshot::read(&Script::new(b), false, &mut Scratch::default()).unwrap();
            let p = Parsed::parse(&snap).unwrap();
            let cells = p.series().map(|s| s.cells().collect()).collect();
            let native = p.series().map(|s| s.native.is_some()).collect();
            let ex = p.series().map(|s| s.exemplars.len() / 8).collect();
            (cells, p.bad_extensions, native, ex)
        }

        #[test]
        fn extensions_are_delivered_with_their_series() {
            let (b, _) = file(|_, _| {});
            let snap = Snapshot::read(&Script::new(b), false, &mut Scratch::default()).unwrap();
            let p = Parsed::parse(&snap).unwrap();
            assert_eq!(p.bad_extensions, 0);
            assert!(p.native_settings(0).is_none());
            assert_eq!(p.native_settings(1).unwrap()[1], 160);
            let s: Vec<SeriesRecord<'_>> = p.series().collect();
            let slot: Vec<u64> = words(s[0].exemplars).collect();
            assert_eq!(SlotData::decode(&slot), Some(ex(1)));
            assert!(s[0].native.is_none());
            let (ext, cells) = s[1].native.unwrap();
            assert_eq!(ext, EXT_NATIVE_SPARSE);
            assert_eq!(
                decode_sparse(&words(cells).collect::<Vec<_>>()),
                Some(buckets())
            );
            assert!(s[1].exemplars.is_empty());
        }

        /// Malformed extensions are skipped and counted, unknown sub-tags skipped silently:
        /// every series' cells are read either way.
        #[test]
        fn a_bad_or_unknown_extension_is_skipped_and_the_rest_of_the_file_kept() {
            let whole = parsed_totals(file(|_, _| {}).0);
            assert_eq!(whole.1, 0);
            type Add = Box<dyn Fn(&mut Vec<u8>, usize)>;
            let cases: [(&str, Add, u64); 6] = [
                (
                    "unknown sub-tag",
                    Box::new(|b, _| {
                        let back = b.len() as u32 - 64;
                        encode_extension(b, 99, back, &[1, 2]);
                    }),
                    0,
                ),
                (
                    "attached to nothing",
                    Box::new(|b, _| {
                        encode_extension(b, EXT_EXEMPLARS, 8, &[0; 6]);
                    }),
                    1,
                ),
                (
                    "past the header",
                    Box::new(|b, _| {
                        let back = b.len() as u32;
                        encode_extension(b, EXT_EXEMPLARS, back, &[0; 6]);
                    }),
                    1,
                ),
                (
                    "wrong slot count",
                    Box::new(|b, h| {
                        let back = (b.len() - h) as u32;
                        encode_extension(b, EXT_EXEMPLARS, back, &[0; 6]);
                    }),
                    1,
                ),
                (
                    "a second native state",
                    Box::new(|b, h| {
                        let back = (b.len() - h) as u32;
                        encode_extension(b, EXT_NATIVE_SHARED, back, &[0; 3]);
                    }),
                    1,
                ),
                (
                    "cells past the record",
                    Box::new(|b, h| {
                        let back = (b.len() - h) as u32;
                        let at = b.len();
                        encode_extension(b, EXT_EXEMPLARS, back, &[0; 12]);
                        b[at + 16..at + 20].copy_from_slice(&1000u32.to_ne_bytes());
                    }),
                    1,
                ),
            ];
            for (what, add, bad) in cases {
                let got = parsed_totals(file(add).0);
                assert_eq!(got.0, whole.0, "{what}: the series' cells");
                assert_eq!(got.1, bad, "{what}: counted");
                assert_eq!(
                    (&got.2, &got.3),
                    (&whole.2, &whole.3),
                    "{what}: the good extensions"
                );
            }
        }

        /// A slot whose sequence is odd in both copies (a write in progress) is read again
        /// until it holds a complete write; one that never does is left out, never taken torn.
        #[test]
        fn a_slot_is_taken_only_between_writes() {
            let (b, _) = file(|_, _| {});
            let snap =
                Snapshot::read(&Script::new(b.clone()), false, &mut Scratch::default()).unwrap();
            let p = Parsed::parse(&snap).unwrap();
            let at = p.series_ext[0].cells_off as usize;
            // Busy in both copies and the next read, then complete.
            let src = Script::new(b.clone()).cell(at, &[3, 3, 3, 4]);
            let snap = Snapshot::read(&src, true, &mut Scratch::default()).unwrap();
            let p = Parsed::parse(&snap).unwrap();
            let slot: Vec<u64> = words(p.series().next().unwrap().exemplars).collect();
            assert_eq!(slot[0], 4);
            assert_eq!(SlotData::decode(&slot), Some(ex(1)));
            // Never complete: no exemplar.
            let src = Script::new(b).cell(at, &[3]);
            let snap = Snapshot::read(&src, true, &mut Scratch::default()).unwrap();
            let p = Parsed::parse(&snap).unwrap();
            let slot: Vec<u64> = words(p.series().next().unwrap().exemplars).collect();
            assert_eq!(SlotData::decode(&slot), None);
        }
    }
}
