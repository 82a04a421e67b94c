//! Reading a file of the directory: mapped read-only, validated completely, never trusted.
//!
//! Every length and offset read from a file is checked against the bytes actually there before
//! use, so a truncated, garbage, foreign-version or hostile file yields a [`ReadError`] — never a
//! panic, an out-of-bounds read or an allocation beyond the file's size. Validation is one pass
//! over the records that keeps the family declarations, the archive's absorbed ids and a 16-byte
//! reference per series record (where its cells and key are); all of it is charged to a budget
//! of the file's own length, and every record kept is larger than what is kept of it. The
//! aggregation then reads series through those references without validating anything twice:
//! the offsets were checked against the mapping, whose length never changes. Names and label
//! names must be valid Prometheus names and label values valid UTF-8, so whatever a file holds
//! is safe to write into an exposition.
//!
//! A file is read up to the `used` length loaded (acquire) once from its header; records below
//! it are complete and immutable except for their value cells, which are loaded atomically.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use super::file::{
    FLAG_ARCHIVE, H_DROPPED, H_FLAGS, H_HEADER_LEN, H_ID, H_PID, H_START_TICKS, H_USED, H_VERSION,
    HEADER_LEN, MAGIC, MAX_FILE, MAX_RECORD, TAG_ABSORBED, TAG_FAMILY, TAG_PADDING, TAG_SERIES,
    VERSION, kind_from_code,
};
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
    /// The file could not be opened or mapped.
    Io,
}

/// A read-only mapping of a whole file.
pub(crate) struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a read-only mapping, only read through shared references and atomics.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps `file` read-only.
    pub(crate) fn map(file: &File) -> Result<Mapped, ReadError> {
        let len = file.metadata().map_err(|_| ReadError::Io)?.len();
        if len < HEADER_LEN as u64 {
            return Err(ReadError::Corrupt("shorter than a header"));
        }
        let len = usize::try_from(len).map_err(|_| ReadError::Corrupt("too large"))?;
        // SAFETY: a shared read-only mapping of a file we opened; we never write through it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(ReadError::Io);
        }
        Ok(Mapped {
            ptr: NonNull::new(p.cast()).ok_or(ReadError::Io)?,
            len,
        })
    }

    fn u64_at(&self, off: usize) -> u64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.len);
        // SAFETY: in bounds and 8-aligned (the mapping is page-aligned); an atomic load, since a
        // live writer may update the cell concurrently. Relaxed then a fence rather than an
        // acquire load: the mapping is read-only, where only plain atomic loads are allowed.
        let v =
            unsafe { (*(self.ptr.as_ptr().add(off) as *const AtomicU64)).load(Ordering::Relaxed) };
        std::sync::atomic::fence(Ordering::Acquire);
        v
    }

    /// The file id in the header (a mapping is at least a header long); not validated.
    pub(crate) fn header_id(&self) -> u64 {
        u64_at(self.bytes(), H_ID).unwrap_or(0)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes long and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps what `map` mapped; nothing borrows it any more (`Parsed` borrows us).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A family declaration read from a file: the validated record, and what is read of it most.
/// At most 32 bytes, the smallest a family record can be, so what validation keeps of a file
/// stays within the file's size (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Fam<'a> {
    rec: &'a [u8],
    off: u32,
    /// Cells per series of this family.
    n_cells: u32,
    /// Series records of this family in the file (to size the aggregation's maps).
    pub(crate) n_series: u32,
    n_labels: u16,
    pub(crate) kind: MetricKind,
    pub(crate) mode: GaugeMode,
}

const _: () = assert!(std::mem::size_of::<Fam<'static>>() <= 32);

/// Where a family record's parts start: bounds at 16, then the name, the help, the labels.
const FAM_BOUNDS: usize = 16;

impl<'a> Fam<'a> {
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
        (0..self.n_labels).map_while(move |_| {
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

    pub(crate) fn n_labels(&self) -> usize {
        self.n_labels as usize
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

/// One series read from a file: its family, its key, and its cells.
pub(crate) struct Ser<'a> {
    pub(crate) fam: usize,
    pub(crate) key: &'a [u8],
    map: &'a Mapped,
    cells_off: usize,
    pub(crate) n_cells: usize,
}

impl<'a> Ser<'a> {
    /// The cells, to be loaded atomically (a live writer may update them).
    #[inline]
    pub(crate) fn cells(&self) -> &'a [AtomicU64] {
        // SAFETY: `cells_off + 8 * n_cells` was checked against the mapping, which lives for
        // 'a, when the file was parsed; records and the mapping are 8-aligned.
        unsafe {
            std::slice::from_raw_parts(
                self.map.ptr.as_ptr().add(self.cells_off) as *const AtomicU64,
                self.n_cells,
            )
        }
    }

    /// Cell `i`, loaded atomically.
    #[inline]
    pub(crate) fn cell(&self, i: usize) -> u64 {
        // `cells_off + 8 * n_cells` was checked against the mapping when the file was parsed.
        if i < self.n_cells {
            self.map.u64_at(self.cells_off + 8 * i)
        } else {
            debug_assert!(false, "cell {i} of {}", self.n_cells);
            0
        }
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

/// A validated file.
pub(crate) struct Parsed<'a> {
    pub(crate) info: Info,
    pub(crate) families: Vec<Fam<'a>>,
    pub(crate) absorbed: Vec<u64>,
    series: Vec<SerRef>,
    map: &'a Mapped,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
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
    /// Validates the whole file.
    pub(crate) fn parse(map: &'a Mapped) -> Result<Parsed<'a>, ReadError> {
        let b = map.bytes();
        if b[..8] != MAGIC {
            return Err(ReadError::Corrupt("not a promtrack multiprocess file"));
        }
        let version = u32_at(b, H_VERSION).unwrap_or(0);
        match version {
            1 => Self::parse_v1(map),
            v if v > VERSION => Err(ReadError::Version(v)),
            v => Err(ReadError::Version(v)),
        }
    }

    fn parse_v1(map: &'a Mapped) -> Result<Parsed<'a>, ReadError> {
        let b = map.bytes();
        if u32_at(b, H_HEADER_LEN) != Some(HEADER_LEN as u32) {
            return Err(ReadError::Corrupt("wrong header length"));
        }
        // A writer may have grown its file and published records past what we mapped since we
        // measured it: read what we mapped. Files end at segment boundaries and records never
        // straddle one, so every record below the mapped length is complete.
        let used = map.u64_at(H_USED).min(b.len() as u64);
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
            dropped: map.u64_at(H_DROPPED),
        };
        let mut parsed = Parsed {
            info,
            families: Vec::new(),
            absorbed: Vec::new(),
            series: Vec::new(),
            map,
        };
        // What we keep must not exceed the file's own size (see the module docs).
        let mut budget = b.len();
        let mut off = HEADER_LEN;
        while off < used {
            let (tag, rec) = record_at(b, off, used)?;
            match tag {
                TAG_PADDING => {}
                TAG_FAMILY => {
                    let fam = parse_family(off, rec)?;
                    budget = budget
                        .checked_sub(std::mem::size_of::<Fam<'_>>())
                        .ok_or(ReadError::Corrupt("too many declarations for its size"))?;
                    parsed.families.push(fam);
                }
                TAG_SERIES => {
                    budget = budget
                        .checked_sub(std::mem::size_of::<SerRef>())
                        .ok_or(ReadError::Corrupt("too many series for its size"))?;
                    let r = parsed.series_at(off, rec)?;
                    parsed.families[r.fam as usize].n_series += 1;
                    parsed.series.push(r);
                }
                TAG_ABSORBED if info.archive => {
                    let n = u32_at(rec, 8).ok_or(CORRUPT_RECORD)? as usize;
                    let ids = rec
                        .get(16..16 + n.checked_mul(8).ok_or(CORRUPT_RECORD)?)
                        .ok_or(CORRUPT_RECORD)?;
                    budget = budget.checked_sub(ids.len()).ok_or(CORRUPT_RECORD)?;
                    parsed.absorbed.extend(
                        ids.chunks_exact(8)
                            .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes"))),
                    );
                }
                _ => return Err(ReadError::Corrupt("unknown record")),
            }
            off += rec.len();
        }
        Ok(parsed)
    }

    /// Validates the series record at `off` (of the file) and returns where its parts are.
    fn series_at(&self, off: usize, rec: &[u8]) -> Result<SerRef, ReadError> {
        let fam_off = u32_at(rec, 8).ok_or(CORRUPT_RECORD)?;
        let n_cells = u32_at(rec, 12).ok_or(CORRUPT_RECORD)? as usize;
        // Series mostly follow their family, or one of the last few: look there first.
        let fam = match self.families.last() {
            Some(f) if f.off == fam_off => self.families.len() - 1,
            _ => self
                .families
                .binary_search_by_key(&fam_off, |f| f.off)
                .map_err(|_| ReadError::Corrupt("a series refers to no declaration"))?,
        };
        let f = &self.families[fam];
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
        check_key(key, f.n_labels())?;
        // Records are at most MAX_RECORD long and the file at most MAX_FILE: offsets fit u32.
        Ok(SerRef {
            fam: fam as u32,
            cells_off: (off + 16) as u32,
            key_off: (off + key_at + 4) as u32,
            key_len: key_len as u32,
        })
    }

    /// Every series, in file order. The file was validated, so nothing fails here.
    pub(crate) fn series(&self) -> impl Iterator<Item = Ser<'a>> + '_ {
        let b = self.map.bytes();
        self.series.iter().map(move |r| {
            let key_off = r.key_off as usize;
            Ser {
                fam: r.fam as usize,
                key: b
                    .get(key_off..key_off + r.key_len as usize)
                    .unwrap_or_default(),
                map: self.map,
                cells_off: r.cells_off as usize,
                n_cells: self.families[r.fam as usize].n_cells as usize,
            }
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
        off: off as u32,
        // A record is at most MAX_RECORD long, so the bounds (and cells) fit a u32.
        n_cells: Layout::of(kind, mode.is_stamped(), n_bounds).len() as u32,
        n_series: 0,
        n_labels,
        kind,
        mode,
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
}
