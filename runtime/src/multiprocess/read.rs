//! Reading a file of the directory: mapped read-only, validated completely, never trusted.
//!
//! Every length and offset read from a file is checked against the bytes actually there before
//! use, so a truncated, garbage, foreign-version or hostile file yields a [`ReadError`] — never a
//! panic, an out-of-bounds read or an allocation beyond the file's size: validation keeps only
//! the family declarations (small, and bounded by a budget of the file's length) and the
//! archive's absorbed ids; series are streamed from the mapping afterwards. Names and label
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
    HEADER_LEN, MAGIC, MAX_RECORD, TAG_ABSORBED, TAG_FAMILY, TAG_PADDING, TAG_SERIES, VERSION,
    cells_for, kind_from_code,
};
use crate::labels::{KEY_SEPARATOR, is_valid_label_name, is_valid_metric_name};
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
        // live writer may update the cell concurrently.
        unsafe { (*(self.ptr.as_ptr().add(off) as *const AtomicU64)).load(Ordering::Acquire) }
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

/// A family declaration read from a file.
#[derive(Clone, Debug)]
pub(crate) struct Fam<'a> {
    off: u32,
    pub(crate) kind: MetricKind,
    pub(crate) mode: GaugeMode,
    pub(crate) name: &'a str,
    pub(crate) help: &'a str,
    labels: &'a [u8],
    n_labels: u16,
    bounds: &'a [u8],
}

impl<'a> Fam<'a> {
    /// The label names, in key order.
    pub(crate) fn label_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut rest = self.labels;
        (0..self.n_labels).map(move |_| {
            let (s, r) = take_str(rest).expect("validated");
            rest = r;
            s
        })
    }

    /// The histogram bounds.
    pub(crate) fn bounds(&self) -> impl Iterator<Item = f64> + 'a {
        self.bounds
            .chunks_exact(8)
            .map(|c| f64::from_bits(u64::from_ne_bytes(c.try_into().expect("8 bytes"))))
    }

    pub(crate) fn n_bounds(&self) -> usize {
        self.bounds.len() / 8
    }

    pub(crate) fn n_labels(&self) -> usize {
        self.n_labels as usize
    }
}

/// One series read from a file: its family, its key, and its cells.
pub(crate) struct Ser<'a> {
    pub(crate) fam: usize,
    pub(crate) key: &'a [u8],
    map: &'a Mapped,
    cells_off: usize,
    pub(crate) n_cells: usize,
}

impl Ser<'_> {
    /// Cell `i`, loaded atomically.
    pub(crate) fn cell(&self, i: usize) -> u64 {
        debug_assert!(i < self.n_cells);
        self.map.u64_at(self.cells_off + 8 * i)
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
    map: &'a Mapped,
    used: usize,
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
        let used = map.u64_at(H_USED);
        if used < HEADER_LEN as u64 || used > b.len() as u64 || used % 8 != 0 {
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
            map,
            used,
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
                    parsed.series_at(off, rec)?;
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

    /// Validates the series record at `off` and returns it.
    fn series_at(&self, off: usize, rec: &'a [u8]) -> Result<Ser<'a>, ReadError> {
        let fam_off = u32_at(rec, 8).ok_or(CORRUPT_RECORD)?;
        let n_cells = u32_at(rec, 12).ok_or(CORRUPT_RECORD)? as usize;
        let fam = self
            .families
            .binary_search_by_key(&fam_off, |f| f.off)
            .map_err(|_| ReadError::Corrupt("a series refers to no declaration"))?;
        let f = &self.families[fam];
        if n_cells != cells_for(f.kind, f.mode, f.n_bounds()) {
            return Err(ReadError::Corrupt(
                "a series has the wrong number of values",
            ));
        }
        let key_at = 16 + n_cells * 8;
        let key_len = u32_at(rec, key_at).ok_or(CORRUPT_RECORD)? as usize;
        let key = rec
            .get(key_at + 4..(key_at + 4).checked_add(key_len).ok_or(CORRUPT_RECORD)?)
            .ok_or(CORRUPT_RECORD)?;
        check_key(key, f.n_labels())?;
        Ok(Ser {
            fam,
            key,
            map: self.map,
            cells_off: off + 16,
            n_cells,
        })
    }

    /// Every series, in file order. Only called on a validated file, so nothing fails here.
    pub(crate) fn series(&self) -> impl Iterator<Item = Ser<'a>> + '_ {
        let b = self.map.bytes();
        let mut off = HEADER_LEN;
        std::iter::from_fn(move || {
            while off < self.used {
                let (tag, rec) = record_at(b, off, self.used).ok()?;
                let at = off;
                off += rec.len();
                if tag == TAG_SERIES {
                    return self.series_at(at, rec).ok();
                }
            }
            None
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
    let bounds_end = 16usize
        .checked_add(n_bounds.checked_mul(8).ok_or(CORRUPT_RECORD)?)
        .ok_or(CORRUPT_RECORD)?;
    let bounds = rec.get(16..bounds_end).ok_or(CORRUPT_RECORD)?;
    let rest = &rec[bounds_end..];
    let (name, rest) = take_str(rest).ok_or(CORRUPT_RECORD)?;
    let (help, labels) = take_str(rest).ok_or(CORRUPT_RECORD)?;
    let fam = Fam {
        off: off as u32,
        kind,
        mode,
        name,
        help,
        labels,
        n_labels,
        bounds,
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
fn check_key(key: &[u8], n: usize) -> Result<(), ReadError> {
    let bad = ReadError::Corrupt("a malformed label key");
    if n == 0 {
        return if key.is_empty() { Ok(()) } else { Err(bad) };
    }
    if key.last() != Some(&KEY_SEPARATOR) {
        return Err(bad);
    }
    let mut count = 0;
    for v in key[..key.len() - 1].split(|&b| b == KEY_SEPARATOR) {
        std::str::from_utf8(v).map_err(|_| bad)?;
        count += 1;
    }
    if count == n { Ok(()) } else { Err(bad) }
}

/// The label values of a validated key.
pub(crate) fn key_values(key: &[u8]) -> impl Iterator<Item = &str> {
    crate::labels::key_values(key)
}
