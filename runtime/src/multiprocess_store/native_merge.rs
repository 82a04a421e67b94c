//! Native histograms across processes: reading a file's native state into
//! [`NativeBuckets`], merging the processes' states, and the sparse form the archive keeps.
//!
//! Merging follows Prometheus' rule for adding native histograms: both are reduced to the
//! lowest schema present and to the widest zero threshold, then their buckets added. Counts
//! stay exact (`u64` additions); the count and sum are not here — they are the series'
//! classic cells, summed like every histogram's (`aggregate.rs`, `exact.rs`).
//!
//! The live processes' state is a run of cells whose layout the in-process native histogram
//! defines (`layout.rs`); turning it into [`NativeBuckets`] and adding two of them are that
//! histogram's code. They reach this module through [`NativeOps`], so the aggregation does not
//! depend on which implementation is wired: [`OPS`] is the one in use. Until the in-process
//! native histogram lands, [`OPS`] holds this module's own versions — a live state laid out
//! like the archive's sparse form, and the merge below — which the tests use.
//!
//! Invariants: nothing here trusts a file — every decode returns `None` on a malformed run,
//! and schemas outside −4..=8, negative or non-finite thresholds are malformed.

use crate::model::NativeBuckets;

/// The native histogram operations the aggregation needs.
pub(crate) struct NativeOps {
    /// A live process's native state (`EXT_NATIVE` cells) read with its family's settings
    /// (`EXT_NATIVE_SETTINGS` cells), or `None` if malformed.
    pub(crate) decode_state: fn(settings: &[u64], cells: &[u64]) -> Option<NativeBuckets>,
    /// Adds `b` into `acc`, first reducing both to the lower schema and the wider zero
    /// threshold.
    pub(crate) merge: fn(acc: &mut NativeBuckets, b: &NativeBuckets),
}

/// The operations in use (see the module docs).
pub(crate) const OPS: NativeOps = NativeOps {
    decode_state: |_, cells| decode_sparse(cells),
    merge,
};

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
    out.extend([
        i64::from(b.schema) as u64,
        b.zero_threshold.to_bits(),
        b.zero_count,
        b.positive.len() as u64,
        b.negative.len() as u64,
    ]);
    for &(i, c) in b.positive.iter().chain(&b.negative) {
        out.extend([i64::from(i) as u64, c]);
    }
    out
}

/// Reads the sparse form; `None` if malformed (bad schema or threshold, wrong length, indices
/// not strictly ascending or out of `i32`).
pub(crate) fn decode_sparse(cells: &[u64]) -> Option<NativeBuckets> {
    let (&[schema, zero, zero_count, p, q], rest) = cells.split_first_chunk::<5>()?;
    let schema = i8::try_from(schema as i64)
        .ok()
        .filter(|s| (-4..=8).contains(s))?;
    let zero_threshold = f64::from_bits(zero);
    if !(zero_threshold.is_finite() && zero_threshold >= 0.0) {
        return None;
    }
    let (p, q) = (usize::try_from(p).ok()?, usize::try_from(q).ok()?);
    if rest.len() != p.checked_add(q)?.checked_mul(2)? {
        return None;
    }
    let buckets = |pairs: &[u64]| -> Option<Vec<(i32, u64)>> {
        let v: Vec<(i32, u64)> = pairs
            .chunks_exact(2)
            .map(|c| Some((i32::try_from(c[0] as i64).ok()?, c[1])))
            .collect::<Option<_>>()?;
        v.windows(2).all(|w| w[0].0 < w[1].0).then_some(v)
    };
    Some(NativeBuckets {
        schema,
        zero_threshold,
        zero_count,
        positive: buckets(&rest[..2 * p])?,
        negative: buckets(&rest[2 * p..])?,
    })
}

/// The upper bound of bucket `i` at `schema`: `2^(i · 2^-schema)` — exact when it is a power
/// of two (every bound at schema ≤ 0), where thresholds usually sit; `exp2` of the fraction
/// otherwise.
fn upper_bound(schema: i8, i: i64) -> f64 {
    if schema <= 0 {
        return pow2(i << -schema);
    }
    let per = 1i64 << schema;
    let (whole, frac) = (i.div_euclid(per), i.rem_euclid(per));
    if frac == 0 {
        pow2(whole)
    } else {
        pow2(whole) * (frac as f64 / per as f64).exp2()
    }
}

/// `2^e`, exactly (0 below the smallest subnormal, infinity past the largest finite).
fn pow2(e: i64) -> f64 {
    match e {
        1024.. => f64::INFINITY,
        -1022..=1023 => f64::from_bits(((e + 1023) as u64) << 52),
        -1074..=-1023 => f64::from_bits(1u64 << (e + 1074)),
        _ => 0.0,
    }
}

/// Lowers `b` to `schema` (≤ its own): bucket `i` goes to `ceil(i / 2^(b.schema − schema))`,
/// which Prometheus' bucket boundaries make exact.
fn reduce(b: &mut NativeBuckets, schema: i8) {
    if schema >= b.schema {
        return;
    }
    let d = u32::from((b.schema - schema) as u8);
    for side in [&mut b.positive, &mut b.negative] {
        let mut out: Vec<(i32, u64)> = Vec::with_capacity(side.len());
        for &(i, c) in side.iter() {
            // In i64: a file's index may be i32::MIN. The result lies between `i` and 0.
            let j = (((i64::from(i) - 1) >> d) + 1) as i32;
            match out.last_mut() {
                Some(last) if last.0 == j => last.1 = last.1.saturating_add(c),
                _ => out.push((j, c)),
            }
        }
        *side = out;
    }
    b.schema = schema;
}

/// Widens `b`'s zero bucket to at least `threshold`: buckets wholly inside it move into it, and
/// if one straddles it, the threshold grows to that bucket's upper bound and it moves too (as
/// Prometheus does). Returns the threshold reached.
fn widen(b: &mut NativeBuckets, threshold: f64) -> f64 {
    let mut t = threshold.max(b.zero_threshold);
    loop {
        let mut moved = false;
        for side in [&mut b.positive, &mut b.negative] {
            let mut taken = 0;
            for &(i, c) in side.iter() {
                // Lower bound below the threshold: inside, or straddling it.
                if upper_bound(b.schema, i64::from(i) - 1) >= t {
                    break;
                }
                t = t.max(upper_bound(b.schema, i64::from(i)));
                b.zero_count = b.zero_count.saturating_add(c);
                taken += 1;
            }
            side.drain(..taken);
            moved |= taken > 0;
        }
        if !moved {
            break;
        }
    }
    b.zero_threshold = t;
    t
}

fn add_side(acc: &mut Vec<(i32, u64)>, b: &[(i32, u64)]) {
    // The common case across processes of one program: the same buckets populated.
    if acc.len() == b.len() && acc.iter().zip(b).all(|(x, y)| x.0 == y.0) {
        for (x, y) in acc.iter_mut().zip(b) {
            x.1 = x.1.saturating_add(y.1);
        }
        return;
    }
    let mut out = Vec::with_capacity(acc.len() + b.len());
    let (mut x, mut y) = (acc.iter().peekable(), b.iter().peekable());
    loop {
        match (x.peek(), y.peek()) {
            (Some(&&(i, c)), Some(&&(j, d))) if i == j => {
                out.push((i, c.saturating_add(d)));
                x.next();
                y.next();
            }
            (Some(&&(i, c)), Some(&&(j, _))) if i < j => {
                out.push((i, c));
                x.next();
            }
            (_, Some(&&p)) => {
                out.push(p);
                y.next();
            }
            (Some(&&p), None) => {
                out.push(p);
                x.next();
            }
            (None, None) => break,
        }
    }
    *acc = out;
}

/// Adds `b` into `acc` (see the module docs).
pub(crate) fn merge(acc: &mut NativeBuckets, b: &NativeBuckets) {
    if acc.schema == b.schema && acc.zero_threshold == b.zero_threshold {
        // Nothing to reduce or widen: add without copying `b`.
        acc.zero_count = acc.zero_count.saturating_add(b.zero_count);
        add_side(&mut acc.positive, &b.positive);
        add_side(&mut acc.negative, &b.negative);
        return;
    }
    let mut b = b.clone();
    let schema = acc.schema.min(b.schema);
    reduce(acc, schema);
    reduce(&mut b, schema);
    // Widening one can push its threshold past the other's: repeat until they agree.
    let mut t = acc.zero_threshold.max(b.zero_threshold);
    loop {
        let (ta, tb) = (widen(acc, t), widen(&mut b, t));
        if ta == tb {
            break;
        }
        t = ta.max(tb);
    }
    acc.zero_count = acc.zero_count.saturating_add(b.zero_count);
    add_side(&mut acc.positive, &b.positive);
    add_side(&mut acc.negative, &b.negative);
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
        assert_eq!(decode_sparse(&cells), Some(b));
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

    #[test]
    fn bucket_bounds_at_powers_of_two_are_exact() {
        assert_eq!(upper_bound(0, 1), 2.0);
        assert_eq!(upper_bound(-2, -1), 1.0 / 16.0);
        assert_eq!(upper_bound(3, 16), 4.0);
        assert_eq!(upper_bound(0, 2000), f64::INFINITY);
        assert_eq!(upper_bound(0, -1074), f64::from_bits(1));
        assert_eq!(upper_bound(0, -1075), 0.0);
        assert!((upper_bound(1, 1) - 2f64.sqrt()).abs() < 1e-12);
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
