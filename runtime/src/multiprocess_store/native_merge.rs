//! Native histograms across processes: reading a file's native state into
//! [`NativeBuckets`], merging the processes' states, and the sparse form the archive keeps.
//!
//! Merging follows Prometheus' rule for adding native histograms: both are reduced to the
//! lowest schema present and to the widest zero threshold, then their buckets added. Counts
//! stay exact (`u64` additions); the count and sum are not here — they are the series'
//! classic cells, summed like every histogram's (`aggregate.rs`, `exact.rs`).
//!
//! A process's state (`EXT_NATIVE_SHARED`, or an earlier release's `EXT_NATIVE_TWIN`) is the very run of cells its native histogram observes
//! into (`metric/native.rs`, `layout.rs`), decoded by that histogram's pure `decode`: a copy
//! taken while a reduction was rewriting the cells is *torn* and never merged (no half-reduced
//! bucket array reaches a scrape; the reader copies it again first, `read.rs`). A dead
//! process's state is read with `decode_dead`, which nothing will tear again: a reduction it
//! was killed in is read from its journal with every count. The merge
//! reduces and widens with the in-process histogram's exact
//! `NativeBuckets::reduce_to_schema` and `widen_zero_threshold` (`model.rs`), adding in place
//! when nothing needs reducing (the common case across processes of one program). A state in
//! the sparse form (what a scrape keeps of each copy, `shrink.rs`) is added where it lies
//! (`merge_sparse_bytes`): reduced as it is read, its counts added in place to buckets already
//! merged, with no vector built per process.
//!
//! Invariants: nothing here trusts a file — every decode returns `None` on a malformed run,
//! and schemas outside −4..=8, negative or non-finite thresholds are malformed.

use super::read::u64_at;
use crate::layout::native::Form;
use crate::model::NativeBuckets;

/// What a process's native state holds.
#[derive(Debug, PartialEq)]
pub(crate) enum State {
    /// Its buckets.
    Buckets(NativeBuckets),
    /// Not written yet: the series was published a moment before its histogram wrote its
    /// settings into the cells (the window, written last, still 0). Nothing to merge, nothing
    /// wrong.
    Fresh,
    /// Copied in the middle of a reduction (a live writer): left out of this scrape, counted.
    Torn,
    /// Not a native state: skipped, counted.
    Invalid,
}

/// Decodes a process's native state (its cells' bytes in `form`, as copied from its file);
/// `live`: its writer may still change it.
pub(crate) fn decode_state(bytes: &[u8], form: Form, live: bool) -> State {
    use crate::layout::native::WINDOW;
    use crate::metric::native::{DecodeError, decode_bytes};
    if bytes.len() > 8 * WINDOW && u64_at(bytes, 8 * WINDOW).unwrap_or(0) == 0 {
        return State::Fresh;
    }
    match decode_bytes(bytes, form, !live) {
        Ok(s) => State::Buckets(s.buckets),
        Err(DecodeError::Torn) => State::Torn,
        Err(DecodeError::Invalid) => State::Invalid,
    }
}

/// Whether `settings` are valid native settings cells.
pub(crate) fn valid_settings(settings: &[u64]) -> bool {
    let &[schema, max_buckets, zero, max_zero, flags] = settings else {
        return false;
    };
    let (zero, max_zero) = (f64::from_bits(zero), f64::from_bits(max_zero));
    (-4..=8).contains(&(schema as i64))
        && max_buckets <= u64::from(u32::MAX)
        && zero.is_finite()
        && zero >= 0.0
        && max_zero.is_finite()
        && max_zero >= 0.0
        && flags & !super::file::NATIVE_ONLY == 0
}

/// The archive's sparse form of `b` (`EXT_NATIVE_SPARSE` cells, see `file.rs`).
pub(crate) fn encode_sparse(b: &NativeBuckets) -> Vec<u64> {
    let mut out = Vec::with_capacity(5 + 2 * b.bucket_count());
    encode_sparse_into(b, &mut out);
    out
}

/// [`encode_sparse`] into `out` (cleared first): a reader shrinking a copy (`shrink.rs`) keeps
/// one buffer for all its series.
pub(crate) fn encode_sparse_into(b: &NativeBuckets, out: &mut Vec<u64>) {
    out.clear();
    out.extend([
        i64::from(b.schema) as u64,
        b.zero_threshold.to_bits(),
        b.zero_count,
        b.positive.len() as u64,
        b.negative.len() as u64,
    ]);
    // Sized once, then filled: pushing pair by pair cost a capacity check each.
    out.resize(5 + 2 * b.bucket_count(), 0);
    let pairs = b.positive.iter().chain(&b.negative);
    for (to, &(i, c)) in out[5..].chunks_exact_mut(2).zip(pairs) {
        to[0] = i64::from(i) as u64;
        to[1] = c;
    }
}

/// Reads the sparse form; `None` if malformed (bad schema or threshold, wrong length, indices
/// not strictly ascending or out of `i32`).
#[cfg_attr(not(test), allow(dead_code))] // the aggregate reads the file's bytes in place
pub(crate) fn decode_sparse(cells: &[u64]) -> Option<NativeBuckets> {
    decode_sparse_as(cells.len(), |i| cells[i])
}

/// [`decode_sparse`] of cells stored as native-endian bytes (a file's copy), read in place.
pub(crate) fn decode_sparse_bytes(bytes: &[u8]) -> Option<NativeBuckets> {
    decode_sparse_as(bytes.len() / 8, |i| u64_at(bytes, 8 * i).unwrap_or(0))
}

/// [`decode_sparse`] of `len` cells, cell `i` read by `cell(i)` (called only below `len`).
/// The sparse form's schema, zero threshold and bucket counts per sign, if they are valid and
/// the `len` cells hold exactly those buckets.
fn sparse_header(len: usize, cell: impl Fn(usize) -> u64) -> Option<(i8, f64, usize, usize)> {
    if len < 5 {
        return None;
    }
    let schema = i8::try_from(cell(0) as i64)
        .ok()
        .filter(|s| (-4..=8).contains(s))?;
    let zero_threshold = f64::from_bits(cell(1));
    if !(zero_threshold.is_finite() && zero_threshold >= 0.0) {
        return None;
    }
    let (p, q) = (
        usize::try_from(cell(3)).ok()?,
        usize::try_from(cell(4)).ok()?,
    );
    if len - 5 != p.checked_add(q)?.checked_mul(2)? {
        return None;
    }
    Some((schema, zero_threshold, p, q))
}

fn decode_sparse_as(len: usize, cell: impl Fn(usize) -> u64) -> Option<NativeBuckets> {
    let (schema, zero_threshold, p, q) = sparse_header(len, &cell)?;
    let buckets = |from: usize, n: usize| -> Option<Vec<(i32, u64)>> {
        let mut v: Vec<(i32, u64)> = Vec::with_capacity(n);
        for k in 0..n {
            let i = i32::try_from(cell(from + 2 * k) as i64).ok()?;
            if v.last().is_some_and(|&(j, _)| j >= i) {
                return None;
            }
            v.push((i, cell(from + 2 * k + 1)));
        }
        Some(v)
    };
    Some(NativeBuckets {
        schema,
        zero_threshold,
        zero_count: cell(2),
        positive: buckets(5, p)?,
        negative: buckets(5 + 2 * p, q)?,
    })
}

/// Adds buckets `b` (ascending keys, equal keys adjacent: a side reduced on the fly) into
/// `acc` (strictly ascending), in one pass: counts whose key `acc` holds are added in place —
/// across the processes of one program, after the first few files, nearly all of them — and
/// only keys new to `acc` cost an allocation.
fn add_side(acc: &mut Vec<(i32, u64)>, b: impl Iterator<Item = (i32, u64)>) {
    let mut new: Vec<(i32, u64)> = Vec::new();
    let mut i = 0;
    for (k, c) in b {
        while acc.get(i).is_some_and(|x| x.0 < k) {
            i += 1;
        }
        match acc.get_mut(i) {
            Some(x) if x.0 == k => x.1 = x.1.saturating_add(c),
            _ => match new.last_mut() {
                Some((last, n)) if *last == k => *n = n.saturating_add(c),
                _ => new.push((k, c)),
            },
        }
    }
    if new.is_empty() {
        return;
    }
    // Two ascending runs with no key in common.
    let mut out = Vec::with_capacity(acc.len() + new.len());
    let mut x = acc.iter().copied().peekable();
    for p in new {
        while let Some(q) = x.next_if(|q| q.0 < p.0) {
            out.push(q);
        }
        out.push(p);
    }
    out.extend(x);
    *acc = out;
}

/// Whether the keys are strictly ascending and each fits an `i32`.
fn ascending(mut side: impl Iterator<Item = (i64, u64)>) -> bool {
    let mut last = i64::MIN;
    side.all(|(k, _)| {
        let ok = k > last && i32::try_from(k).is_ok();
        last = k;
        ok
    })
}

/// Adds the sparse form `bytes` (an `EXT_NATIVE_SPARSE` record's cells, read in place) into
/// `acc`: what `merge_owned(acc, decode_sparse_bytes(bytes)?)` does, without building its
/// buckets when nothing needs widening (the same zero threshold, the common case): they are
/// reduced to the merged schema as they are read and added in place (`add_side`). `false`,
/// and `acc` untouched, if the form is malformed (as [`decode_sparse`] judges it).
pub(crate) fn merge_sparse_bytes(acc: &mut NativeBuckets, bytes: &[u8]) -> bool {
    let cell = |i: usize| u64_at(bytes, 8 * i).unwrap_or(0);
    let Some((schema, zero_threshold, p, q)) = sparse_header(bytes.len() / 8, cell) else {
        return false;
    };
    // (key, count) pairs, 16 bytes each, after the 5 header cells.
    let pairs = |from: usize, n: usize| {
        bytes
            .get(8 * from..8 * from + 16 * n)
            .unwrap_or_default()
            .chunks_exact(16)
            .map(|c| (u64_at(c, 0).unwrap_or(0) as i64, u64_at(c, 8).unwrap_or(0)))
    };
    let (positive, negative) = (pairs(5, p), pairs(5 + 2 * p, q));
    if !(ascending(positive.clone()) && ascending(negative.clone())) {
        return false;
    }
    if zero_threshold != acc.zero_threshold {
        return decode_sparse_bytes(bytes).is_some_and(|b| {
            merge_owned(acc, b);
            true
        });
    }
    acc.reduce_to_schema(schema);
    let d = i64::from(schema) - i64::from(acc.schema);
    acc.zero_count = acc.zero_count.saturating_add(cell(2));
    let reduced = |(k, c): (i64, u64)| (crate::model::reduced_key(k as i32, d), c);
    add_side(&mut acc.positive, positive.map(reduced));
    add_side(&mut acc.negative, negative.map(reduced));
    true
}

/// Adds `b` into `acc` (see the module docs).
#[cfg_attr(not(test), allow(dead_code))] // the aggregate merges owned states
pub(crate) fn merge(acc: &mut NativeBuckets, b: &NativeBuckets) {
    if acc.schema == b.schema && acc.zero_threshold == b.zero_threshold {
        // Nothing to reduce or widen: add without copying `b`.
        acc.zero_count = acc.zero_count.saturating_add(b.zero_count);
        add_side(&mut acc.positive, b.positive.iter().copied());
        add_side(&mut acc.negative, b.negative.iter().copied());
        return;
    }
    merge_owned(acc, b.clone());
}

/// [`merge`] of a `b` the caller no longer needs: reduced and widened in place, not copied.
pub(crate) fn merge_owned(acc: &mut NativeBuckets, mut b: NativeBuckets) {
    if acc.schema == b.schema && acc.zero_threshold == b.zero_threshold {
        acc.zero_count = acc.zero_count.saturating_add(b.zero_count);
        add_side(&mut acc.positive, b.positive.iter().copied());
        add_side(&mut acc.negative, b.negative.iter().copied());
        return;
    }
    // The in-process histogram's exact reduction and widening (`model.rs`), one definition.
    let schema = acc.schema.min(b.schema);
    acc.reduce_to_schema(schema);
    b.reduce_to_schema(schema);
    // Widening one can push its threshold past the other's: repeat until they agree.
    let mut t = acc.zero_threshold.max(b.zero_threshold);
    loop {
        let (ta, tb) = (acc.widen_zero_threshold(t), b.widen_zero_threshold(t));
        if ta == tb {
            break;
        }
        t = ta.max(tb);
    }
    acc.zero_count = acc.zero_count.saturating_add(b.zero_count);
    add_side(&mut acc.positive, b.positive.iter().copied());
    add_side(&mut acc.negative, b.negative.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nb(schema: i8, zero: f64, zc: u64, pos: &[(i32, u64)]) -> NativeBuckets {
        NativeBuckets {
            schema,
            zero_threshold: zero,
            zero_count: zc,
            positive: pos.to_vec(),
            negative: Vec::new(),
        }
    }

    #[test]
    fn the_sparse_form_round_trips_and_rejects_malformed_runs() {
        let mut b = nb(3, 1e-9, 4, &[(-2, 1), (5, 7)]);
        b.negative = vec![(0, 2)];
        let cells = encode_sparse(&b);
        assert_eq!(decode_sparse(&cells), Some(b.clone()));
        let bytes =
            |cells: &[u64]| -> Vec<u8> { cells.iter().flat_map(|c| c.to_ne_bytes()).collect() };
        assert_eq!(decode_sparse_bytes(&bytes(&cells)), Some(b));
        let mut descending = cells.clone();
        descending.swap(5, 7); // indices 5 then -2
        assert_eq!(decode_sparse_bytes(&bytes(&descending)), None);
        assert_eq!(decode_sparse_bytes(&bytes(&cells[..4])), None);
        let mut bad = cells.clone();
        bad[0] = 9; // schema out of range
        assert_eq!(decode_sparse(&bad), None);
        let mut bad = cells.clone();
        bad[5] = 6; // indices not ascending (6 then 5)
        assert_eq!(decode_sparse(&bad), None);
        assert_eq!(decode_sparse(&cells[..cells.len() - 1]), None);
        assert_eq!(decode_sparse(&[]), None);
        let mut bad = cells;
        bad[1] = f64::NAN.to_bits();
        assert_eq!(decode_sparse(&bad), None);
    }

    /// Schema 1 buckets 1..=4 are (1, √2], (√2, 2], (2, 2√2], (2√2, 4]: at schema 0 they are
    /// (1, 2] = bucket 1 and (2, 4] = bucket 2.
    #[test]
    fn merging_reduces_to_the_lowest_schema_and_adds_exactly() {
        let mut acc = nb(1, 0.0, 0, &[(1, 1), (2, 2), (3, 3), (4, 4), (-1, 0)][..4]);
        merge(&mut acc, &nb(0, 0.0, 5, &[(2, 10)]));
        assert_eq!(acc, nb(0, 0.0, 5, &[(1, 3), (2, 17)]));
        // Bucket 0 at schema 1 is (2^-½, 1]: bucket 0 at schema 0, (½, 1].
        let mut acc = nb(1, 0.0, 0, &[(-1, 1), (0, 1)]);
        merge(&mut acc, &nb(0, 0.0, 0, &[]));
        assert_eq!(acc, nb(0, 0.0, 0, &[(0, 2)]));
    }

    #[test]
    fn merging_widens_to_the_widest_zero_threshold() {
        // Schema 0: bucket 0 is (½, 1], bucket 1 is (1, 2]. A threshold of 1 takes bucket 0;
        // one of 1.5 straddles bucket 1, so it grows to 2 and takes bucket 1 too.
        let mut acc = nb(0, 0.0, 1, &[(0, 2), (1, 3), (2, 4)]);
        merge(&mut acc, &nb(0, 1.0, 7, &[(2, 1)]));
        assert_eq!(acc, nb(0, 1.0, 10, &[(1, 3), (2, 5)]));
        let mut acc = nb(0, 0.0, 0, &[(0, 2), (1, 3), (2, 4)]);
        merge(&mut acc, &nb(0, 1.5, 1, &[]));
        assert_eq!(acc, nb(0, 2.0, 6, &[(2, 4)]));
    }

    /// A file's indices may be anything `i32` holds: reduced and widened without overflow.
    #[test]
    fn extreme_indices_merge_without_overflow() {
        let mut acc = nb(8, 0.0, 0, &[(i32::MIN, 1), (i32::MAX, 1)]);
        merge(&mut acc, &nb(-4, 1e-300, 0, &[]));
        assert_eq!(acc.schema, -4);
        assert_eq!(
            acc.zero_count + acc.positive.iter().map(|b| b.1).sum::<u64>(),
            2
        );
    }

    /// A state not written yet, a live one caught in a reduction, the same from a dead writer,
    /// and bytes that are no state.
    #[test]
    fn a_process_state_is_fresh_buckets_torn_or_invalid() {
        use crate::layout::native::GENERATION;
        let bytes =
            |cells: &[u64]| -> Vec<u8> { cells.iter().flat_map(|c| c.to_ne_bytes()).collect() };
        let b = nb(3, 0.0, 2, &[(-1, 4), (5, 1)]);
        let cells = crate::metric::native::state_of(&b, 1.5, 8).unwrap();
        assert_eq!(
            decode_state(&bytes(&cells), Form::Shared, true),
            State::Buckets(b.clone())
        );
        assert_eq!(
            decode_state(&bytes(&vec![0; cells.len()]), Form::Shared, true),
            State::Fresh
        );
        let mut torn = cells.clone();
        torn[GENERATION] = 1;
        assert_eq!(decode_state(&bytes(&torn), Form::Shared, true), State::Torn);
        assert_eq!(
            decode_state(&bytes(&torn), Form::Shared, false),
            State::Buckets(b)
        );
        assert_eq!(
            decode_state(&bytes(&cells[..20]), Form::Shared, true),
            State::Invalid
        );
    }

    /// Adding the sparse form where it lies is the merge of its decoded buckets: keys already
    /// there (in place), new keys, a higher schema reduced on the fly, a lower one, another
    /// zero threshold, extreme keys; a malformed form changes nothing.
    #[test]
    fn merging_the_sparse_form_in_place_is_merging_its_buckets() {
        let bytes =
            |cells: &[u64]| -> Vec<u8> { cells.iter().flat_map(|c| c.to_ne_bytes()).collect() };
        let with_neg = |mut b: NativeBuckets, neg: &[(i32, u64)]| {
            b.negative = neg.to_vec();
            b
        };
        let acc = with_neg(nb(2, 0.0, 1, &[(-3, 1), (0, 2), (4, 3)]), &[(1, 1)]);
        let others = [
            nb(2, 0.0, 2, &[(0, 5), (4, 1)]),
            with_neg(nb(2, 0.0, 0, &[(-7, 1), (1, 2), (9, 3)]), &[(1, 2), (3, 1)]),
            nb(3, 0.0, 4, &[(-6, 1), (-5, 1), (0, 2), (7, 1), (8, 9)]),
            nb(1, 0.0, 0, &[(0, 1), (2, 2)]),
            nb(2, 1.0, 3, &[(1, 1), (4, 4)]),
            nb(8, 0.0, 0, &[(i32::MIN, 1), (i32::MAX, u64::MAX)]),
            nb(2, 0.0, 0, &[]),
        ];
        for b in others {
            let mut want = acc.clone();
            merge(&mut want, &b);
            let mut got = acc.clone();
            assert!(merge_sparse_bytes(&mut got, &bytes(&encode_sparse(&b))));
            assert_eq!(got, want, "adding {b:?}");
        }
        let mut bad = encode_sparse(&nb(2, 0.0, 1, &[(3, 1), (5, 1)]));
        bad.swap(5, 7); // keys 5 then 3
        for bad in [&bad[..], &bad[..4], &bad[..bad.len() - 1]] {
            let mut got = acc.clone();
            assert!(!merge_sparse_bytes(&mut got, &bytes(bad)));
            assert_eq!(got, acc);
        }
        let mut big = encode_sparse(&nb(2, 0.0, 0, &[(1, 1)]));
        big[5] = 1 << 40; // a key past `i32`
        assert!(!merge_sparse_bytes(&mut acc.clone(), &bytes(&big)));
    }

    #[test]
    fn settings_are_checked() {
        let ok = crate::multiprocess_store::file::native_settings_cells(3, 160, 1e-128, 0.0, false);
        assert!(valid_settings(&ok));
        let mut bad = ok;
        bad[0] = (-5i64) as u64;
        assert!(!valid_settings(&bad));
        let mut bad = ok;
        bad[2] = (-1.0f64).to_bits();
        assert!(!valid_settings(&bad));
        assert!(!valid_settings(&ok[..3]));
        let mut bad = ok;
        bad[4] = 2; // an unknown flag
        assert!(!valid_settings(&bad));
    }
}
