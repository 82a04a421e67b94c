//! Shrinking a file's copy before a scrape keeps it: each native state is decoded once, where
//! the file was copied, and kept in the archive's sparse form.
//!
//! A process's native state is its histogram's whole window of cells, `20 + max_buckets`
//! of them (1,440 bytes at the default 160) whatever it holds, while a state usually holds a
//! few dozen buckets. A scrape copies every file (`read.rs`) and kept every copy until the
//! merge: 256 files × 1,000 native series made 715 MB of fresh pages, and the kernel zeroing
//! and faulting them in cost more than the copy itself. So a copy is taken into a buffer
//! reused from file to file (`read.rs`, `Scratch`), and what is kept is this image of it:
//! the same records, in the same order, but each native state that decodes to buckets is
//! rewritten as an `EXT_NATIVE_SPARSE` record of those buckets (`native_merge::encode_sparse`,
//! about 360 bytes for 20 buckets), and padding is dropped.
//!
//! Invariants:
//! - The image is a file in this build's layout that parses and aggregates exactly as the copy
//!   would: a rewritten state decodes (`native_merge::decode_sparse`) to the very buckets its
//!   cells decode to (`native_merge::decode_state`, with the same `live`), and every offset
//!   that points back at a record — a series' family offset, an extension's distance — is
//!   moved with the records. An offset that pointed at no record start in the copy points at
//!   none in the image (a family offset becomes `u32::MAX`, past any file; a distance 0, "attached
//!   to nothing"), so what validation rejected or skipped it still rejects or skips.
//! - States that do not decode to buckets — caught in a reduction (torn), not written yet,
//!   invalid — are kept as they are, for the aggregate to count as it always did; so is a
//!   state whose sparse form would not be smaller (16 bytes a bucket against the window's 8:
//!   more than about half the window populated). The image is never larger than the copy, so
//!   the bound on what reading a file allocates (`read.rs`) holds.
//! - Nothing here trusts the copy: every length is checked, and a copy whose records do not
//!   walk is not shrunk at all (validation then rejects it from its own bytes).
//! - The image lives only in the reader's memory: the file format is unchanged, and the
//!   archive a compaction writes from it is the one it wrote from the copy.

use super::file::{
    EXT_CELLS, EXT_NATIVE_SPARSE, H_USED, HEADER_LEN, TAG_PADDING, TAG_SERIES, encode_extension,
    ext_cell_count, native_form,
};
use super::native_merge::{self, State};
use super::read::{u16_at, u32_at, u64_at};
use crate::layout::native::Form;

/// The shrunk image of `copy` (a file's bytes up to its `used`, value cells agreed), or `None`
/// when it would be the copy itself (no native state decodes to buckets) or the copy's records
/// do not walk. `live`: its writer may still change it (`native_merge::decode_state`).
pub(crate) fn shrink(copy: &[u8], live: bool) -> Option<Vec<u8>> {
    let used = usize::try_from(u64_at(copy, H_USED)?).ok()?.min(copy.len());
    let mut image = Image::default();
    let mut sparse_cells = Vec::new();
    let mut off = HEADER_LEN;
    while off < used {
        let len = u32_at(copy, off)? as usize;
        if len < 8 || len % 8 != 0 || len > used - off {
            return None;
        }
        let rec = &copy[off..off + len];
        let (tag, ext) = (u16_at(rec, 4)?, u16_at(rec, 6)?);
        let sparse = match (tag, ext) {
            // Only if smaller: the sparse form takes 16 bytes a bucket, the window 8.
            (TAG_PADDING, _) => native_form(ext)
                .and_then(|form| buckets(rec, ext, form, live))
                .filter(|b| EXT_CELLS + 8 * (5 + 2 * b.bucket_count()) < len),
            _ => None,
        };
        if sparse.is_none() && image.out.is_none() {
            off += len; // the image is still the copy
            continue;
        }
        if tag == TAG_PADDING && ext == 0 {
            off += len; // holds nothing, and nothing may attach to it
            continue;
        }
        let at = image.start(copy, off);
        // What the record's offset field (bytes 8..12) becomes: its family's new offset for
        // a series, its new distance back for an extension.
        let moved = match (tag, ext) {
            (TAG_SERIES, _) => Some(image.moved(u32_at(rec, 8)?).unwrap_or(u32::MAX)),
            (TAG_PADDING, _) => Some(image.back(off, u32_at(rec, 8)?)),
            _ => None,
        };
        let out = image.out.as_mut()?;
        match (sparse, moved) {
            (Some(b), Some(back)) => {
                native_merge::encode_sparse_into(&b, &mut sparse_cells);
                encode_extension(out, EXT_NATIVE_SPARSE, back, &sparse_cells);
            }
            (_, moved) => {
                out.extend_from_slice(rec);
                if let Some(v) = moved {
                    out[at + 8..at + 12].copy_from_slice(&v.to_ne_bytes());
                }
            }
        }
        off += len;
    }
    let mut out = image.out?;
    let new_used = out.len() as u64;
    out[H_USED..H_USED + 8].copy_from_slice(&new_used.to_ne_bytes());
    Some(out)
}

/// The image being built: nothing until the first record that changes (before it, the image is
/// the copy, so offsets there are the same), then the records and where each one went.
#[derive(Default)]
struct Image {
    out: Option<Vec<u8>>,
    /// Where the image starts to differ from the copy.
    from: u32,
    /// (offset in the copy, offset in the image) of every record kept from `from` on, in order.
    starts: Vec<(u32, u32)>,
}

impl Image {
    /// Starts the image (the copy's bytes before `off`) if it was not, and records that the
    /// record at `off` in the copy goes at its end, which it returns.
    fn start(&mut self, copy: &[u8], off: usize) -> usize {
        let out = match &mut self.out {
            Some(out) => out,
            none => {
                self.from = off as u32;
                // About what 20 buckets' sparse form keeps of a 160-bucket window: grown if not.
                let mut v = Vec::with_capacity(off + (copy.len() - off) / 4);
                v.extend_from_slice(&copy[..off]);
                none.insert(v)
            }
        };
        self.starts.push((off as u32, out.len() as u32));
        out.len()
    }

    /// Where the record at `old` in the copy is in the image, if a record starts there.
    fn moved(&self, old: u32) -> Option<u32> {
        if old < self.from {
            return Some(old);
        }
        // Usually one of the last two records: an extension and the series it attaches to.
        let last = self.starts.len().saturating_sub(2);
        if let Some(&(_, at)) = self.starts[last..].iter().find(|s| s.0 == old) {
            return Some(at);
        }
        let i = self.starts.binary_search_by_key(&old, |s| s.0).ok()?;
        Some(self.starts[i].1)
    }

    /// The distance back of the extension record at `off` in the copy, once moved to the
    /// image's end (its start must already be recorded): 0 if its target is no record.
    fn back(&self, off: usize, back: u32) -> u32 {
        let here = self.moved(off as u32);
        let target = (off as u32).checked_sub(back).and_then(|t| self.moved(t));
        match (here, target) {
            (Some(h), Some(t)) if back > 0 => h - t,
            _ => 0,
        }
    }
}

/// The buckets of the native state record `rec` (sub-tag `ext`, cells in `form`), if its cells
/// decode to some.
fn buckets(rec: &[u8], ext: u16, form: Form, live: bool) -> Option<crate::model::NativeBuckets> {
    let n = ext_cell_count(ext, u32_at(rec, 16)? as usize, rec.len());
    let cells = rec.get(EXT_CELLS..EXT_CELLS.checked_add(n.checked_mul(8)?)?)?;
    match native_merge::decode_state(cells, form, live) {
        State::Buckets(b) => Some(b),
        State::Fresh | State::Torn | State::Invalid => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::layout::native::{GENERATION, TWIN_JOURNAL};
    use crate::metric::native::{state_of, twin_state_of};
    use crate::metric::{FamilyDecl, GaugeMode};
    use crate::model::{MetricKind, NativeBuckets};
    use crate::multiprocess_store::aggregate::{Aggregate, InputFile, Purpose};
    use crate::multiprocess_store::file::{
        EXT_EXEMPLARS, EXT_NATIVE_SETTINGS, EXT_NATIVE_SHARED, EXT_NATIVE_TWIN,
        encode_extension_with_tail, encode_family, encode_header, encode_series,
        native_settings_cells,
    };
    use crate::multiprocess_store::read::{Parsed, Snapshot};

    fn decl<'a>(name: &'a str, labels: &'a [Box<str>]) -> FamilyDecl<'a> {
        FamilyDecl {
            name,
            help: "h",
            kind: MetricKind::Histogram,
            mode: GaugeMode::All,
            label_names: labels,
            bounds: &[1.0],
            native: None,
        }
    }

    fn padding(b: &mut Vec<u8>, len: usize) {
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&[0; 4]);
        b.resize(b.len() + len - 8, 0);
    }

    /// A file of two native histogram families: states that decode (this release's, and two
    /// as earlier releases wrote them: a window per sign, with the journal and without), one
    /// caught in a reduction, one not written yet, padding, exemplar slots, and extensions that
    /// attach to a padding record and to nothing.
    pub(in crate::multiprocess_store) fn file() -> Vec<u8> {
        let mut b = encode_header(7, 1, 0, 0, 0);
        let mut series = Vec::new();
        for (fam_name, states) in [("a", 0..3), ("b", 3..7)] {
            let fam = b.len();
            let labels: [Box<str>; 1] = ["k".into()];
            encode_family(&mut b, &decl(fam_name, &labels));
            let settings = native_settings_cells(3, 16, 0.0, 0.0, false);
            let back = (b.len() - fam) as u32;
            encode_extension(&mut b, EXT_NATIVE_SETTINGS, back, &settings);
            for i in states {
                let at = b.len();
                let mut k = format!("v{i}").into_bytes();
                k.push(crate::labels::KEY_SEPARATOR);
                encode_series(&mut b, fam as u32, &[i, 1, 2.5f64.to_bits()], &k);
                series.push(at);
                let buckets = NativeBuckets {
                    schema: 3 - (i % 2) as i8,
                    zero_count: i,
                    positive: vec![(-2, 1), (i as i32, 3 + i)],
                    negative: vec![(1, 2)],
                    ..Default::default()
                };
                // Series 0 and 1 as earlier releases wrote them.
                let (ext, mut cells, tail) = match i {
                    0 => (
                        EXT_NATIVE_TWIN,
                        twin_state_of(&buckets, 1.0, 16, true).unwrap(),
                        TWIN_JOURNAL,
                    ),
                    1 => (
                        EXT_NATIVE_TWIN,
                        twin_state_of(&buckets, 1.0, 16, false).unwrap(),
                        0,
                    ),
                    _ => (EXT_NATIVE_SHARED, state_of(&buckets, 1.0, 16).unwrap(), 0),
                };
                match i {
                    4 => cells[GENERATION] |= 1,                // in a reduction
                    5 => cells.iter_mut().for_each(|c| *c = 0), // not written yet
                    _ => {}
                }
                let back = (b.len() - at) as u32;
                encode_extension_with_tail(&mut b, ext, back, &cells, tail);
                if i == 2 {
                    padding(&mut b, 64);
                }
            }
        }
        // Exemplar slots for the last series, an extension attached to the padding record,
        // and one attached to nothing.
        let last = *series.last().unwrap();
        let slots = vec![0u64; 2 * crate::exemplar::SLOT_WORDS];
        let back = (b.len() - last) as u32;
        encode_extension(&mut b, EXT_EXEMPLARS, back, &slots);
        let pad = b.len();
        padding(&mut b, 16);
        let back = (b.len() - pad) as u32;
        encode_extension(&mut b, EXT_EXEMPLARS, back, &slots);
        encode_extension(&mut b, EXT_EXEMPLARS, 8, &slots);
        let used = b.len() as u64;
        b[H_USED..H_USED + 8].copy_from_slice(&used.to_ne_bytes());
        b
    }

    fn aggregate(snap: &Snapshot, live: bool) -> (String, u64, u64) {
        let parsed = Parsed::parse(snap).unwrap();
        let agg = Aggregate::new(&[InputFile { parsed, live }], Purpose::Scrape);
        let (bad, torn) = (agg.bad_extensions, agg.torn_native);
        (format!("{:?}", agg.into_families()), bad, torn)
    }

    /// The image aggregates exactly as the copy, live or dead, and is smaller.
    #[test]
    fn a_shrunk_copy_aggregates_as_the_copy() {
        let b = file();
        for live in [true, false] {
            let image = shrink(&b, live).expect("states to shrink");
            assert!(image.len() < b.len(), "{} of {}", image.len(), b.len());
            let (want, bad, torn) = aggregate(&Snapshot::unshrunk(b.clone()), live);
            assert_eq!(
                aggregate(&Snapshot::unshrunk(image), live),
                (want.clone(), bad, torn)
            );
            // The bad extensions and (live) the torn state are still there to be counted.
            assert_eq!(bad, 2);
            assert_eq!(torn, u64::from(live));
            assert!(want.contains("NativeBuckets"), "{want}");
        }
    }

    /// A copy with no native state, or only states whose sparse form is larger, or whose
    /// records do not walk, is kept as it is.
    #[test]
    fn a_copy_with_no_state_worth_shrinking_or_that_does_not_walk_is_kept() {
        let mut b = encode_header(7, 1, 0, 0, 0);
        let fam = b.len();
        encode_family(&mut b, &decl("a", &[]));
        encode_series(&mut b, fam as u32, &[1, 1, 0], b"");
        let used = b.len() as u64;
        b[H_USED..H_USED + 8].copy_from_slice(&used.to_ne_bytes());
        assert!(shrink(&b, true).is_none());
        // A state holding every bucket of its window: its sparse form would be larger.
        let mut b2 = encode_header(7, 1, 0, 0, 0);
        let fam = b2.len();
        encode_family(&mut b2, &decl("d", &[]));
        let settings = native_settings_cells(3, 32, 0.0, 0.0, false);
        let back = (b2.len() - fam) as u32;
        encode_extension(&mut b2, EXT_NATIVE_SETTINGS, back, &settings);
        let at = b2.len();
        encode_series(&mut b2, fam as u32, &[8, 0, 0], b"");
        let full = NativeBuckets {
            schema: 3,
            positive: (0..16).map(|i| (i, 1)).collect(),
            negative: (0..16).map(|i| (i, 1)).collect(),
            ..Default::default()
        };
        let cells = state_of(&full, 1.0, 32).unwrap();
        let back = (b2.len() - at) as u32;
        encode_extension(&mut b2, EXT_NATIVE_SHARED, back, &cells);
        let used = b2.len() as u64;
        b2[H_USED..H_USED + 8].copy_from_slice(&used.to_ne_bytes());
        let state = &b2[b2.len() - (EXT_CELLS + 8 * cells.len())..];
        assert_eq!(u16_at(state, 6), Some(EXT_NATIVE_SHARED));
        assert!(
            matches!(buckets(state, EXT_NATIVE_SHARED, Form::Shared, true), Some(b) if b == full),
            "a state that decodes"
        );
        assert!(shrink(&b2, true).is_none());
        // A record length that is not a multiple of 8, past the first state shrunk.
        let mut bad = file();
        let mut starts = Vec::new();
        let mut off = HEADER_LEN;
        while off < bad.len() {
            starts.push(off);
            off += u32_at(&bad, off).unwrap() as usize;
        }
        let at = starts[5];
        assert_eq!(u16_at(&bad, starts[3] + 6), Some(EXT_NATIVE_TWIN));
        bad[at..at + 4].copy_from_slice(&7u32.to_ne_bytes());
        assert!(shrink(&bad, true).is_none());
        assert!(shrink(&b[..10], true).is_none());
    }
}
