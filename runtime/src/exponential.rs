//! The arithmetic of native (exponential) histogram buckets, as Prometheus defines them: which
//! bucket a value falls in at a schema, a bucket's upper bound, the schema of a bucket factor.
//!
//! At schema `s` (−4 ..= 8) the bucket with key `k` holds the values `v` with
//! `2^((k-1)/2^s) < |v| <= 2^(k/2^s)`. Every boundary of schema `s` is also one of schema 8, so
//! the key at any schema follows from the key at schema 8: `key_s = ceil(key_8 / 2^(8-s))`. The
//! schema-8 boundaries within one power of two, `2^(j/256)` for `j` in `0..=256`, are computed
//! once (`f64::exp2` of an exact argument) into a table; a second table maps the top ten bits of
//! a mantissa to the first candidate boundary, so finding a key takes one lookup and at most two
//! comparisons, no logarithm. Infinite values go in the bucket after `f64::MAX`'s, as
//! client_golang puts them.
//!
//! Invariants: every function is total (no panic for any `f64`, key or schema; schemas outside
//! −4 ..= 8 are clamped); `key(upper_bound(k, s), s) == k` for every finite bound.

use std::sync::LazyLock;

/// The lowest schema: each bucket spans a factor of 2^16.
pub(crate) const SCHEMA_MIN: i8 = -4;
/// The highest schema: each bucket spans a factor of 2^(1/256).
pub(crate) const SCHEMA_MAX: i8 = 8;

struct Table {
    /// `bound[j] = 2^(j/256)`: `bound[0] = 1`, `bound[256] = 2`.
    bound: [f64; 257],
    /// `start[i]`: the smallest `j` with `bound[j] >= 1 + i/1024`.
    start: [u16; 1024],
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut bound = [0.0; 257];
    for (j, b) in bound.iter_mut().enumerate() {
        *b = (j as f64 / 256.0).exp2();
    }
    bound[0] = 1.0;
    bound[256] = 2.0;
    let mut start = [0u16; 1024];
    let mut j = 0;
    for (i, s) in start.iter_mut().enumerate() {
        let lowest = 1.0 + i as f64 / 1024.0;
        while bound[j] < lowest {
            j += 1;
        }
        *s = j as u16;
    }
    Table { bound, start }
});

/// The schema client_golang picks for a bucket factor: the one whose own factor
/// `2^(2^-schema)` is the largest at or below `factor` (−4 for any factor of 2^16 or more). A
/// factor below schema 8's, or NaN, gives 8 (the finest); validation refuses factors at or
/// below 1 before they get here.
pub(crate) fn schema_for_factor(factor: f64) -> i8 {
    // Compared with each schema's own factor, the upper bound of bucket 1, rather than through
    // `log2(log2(factor))`, whose rounding could move a factor that is exactly a schema's.
    // The factor falls as the schema rises: the first that fits is the largest factor.
    (SCHEMA_MIN..=SCHEMA_MAX)
        .find(|&s| upper_bound(1, s) <= factor)
        .unwrap_or(SCHEMA_MAX)
}

/// Clamps a schema into −4 ..= 8.
#[inline]
pub(crate) fn clamp_schema(schema: i64) -> i8 {
    schema.clamp(SCHEMA_MIN.into(), SCHEMA_MAX.into()) as i8
}

/// The key of the bucket `a` falls in at `schema`, for `a > 0` (NaN and values ≤ 0 give the
/// key of the smallest positive value: callers route them to the zero bucket first).
#[inline]
pub(crate) fn key(a: f64, schema: i8) -> i32 {
    let bits = a.to_bits() & !(1 << 63);
    let exp_bits = (bits >> 52) as i32;
    if exp_bits == 0 || exp_bits == 0x7ff {
        return key_cold(f64::from_bits(bits), schema);
    }
    key_normal(bits, exp_bits - 1023, schema)
}

/// The key of a normal value with the given bits and unbiased exponent.
#[inline(always)]
fn key_normal(bits: u64, exp: i32, schema: i8) -> i32 {
    let schema = clamp_schema(schema.into());
    let mantissa = bits & ((1 << 52) - 1);
    if schema <= 0 {
        // Bucket (2^(k-1), 2^k]: a power of two is the upper bound of its bucket.
        let key0 = exp + i32::from(mantissa != 0);
        let shift = -i32::from(schema);
        return (key0 + (1 << shift) - 1) >> shift;
    }
    let table = &*TABLE;
    let m = f64::from_bits((1023 << 52) | mantissa);
    // The slice of 1/1024 the mantissa's top bits name holds at most one boundary (boundaries
    // are at least 2^(1/256) - 1 > 1/1024 apart): the first candidate or the next one.
    let mut j = usize::from(table.start[(mantissa >> 42) as usize]).min(255);
    j += usize::from(m > table.bound[j]);
    let key8 = exp * 256 + j as i32;
    let shift = 8 - i32::from(schema);
    (key8 + (1 << shift) - 1) >> shift
}

#[cold]
#[inline(never)]
fn key_cold(a: f64, schema: i8) -> i32 {
    if a.is_infinite() {
        return key(f64::MAX, schema).saturating_add(1);
    }
    if a.is_nan() || a <= 0.0 {
        return key(f64::from_bits(1), schema);
    }
    // Subnormal: scale by 2^64 into the normal range, exactly, and take 64 off the exponent.
    let scaled = a * f64::from_bits((1023 + 64) << 52);
    let bits = scaled.to_bits();
    key_normal(bits, (bits >> 52) as i32 - 1023 - 64, schema)
}

/// `2^e` for any integer `e`: 0 below the smallest subnormal, infinity above `f64::MAX`.
pub(crate) fn pow2(e: i64) -> f64 {
    if e > 1023 {
        f64::INFINITY
    } else if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else if e >= -1074 {
        f64::from_bits(1 << (e + 1074))
    } else {
        0.0
    }
}

/// The (inclusive) upper bound of bucket `key` at `schema`: `2^(key/2^schema)`.
pub(crate) fn upper_bound(key: i32, schema: i8) -> f64 {
    let schema = clamp_schema(schema.into());
    if schema <= 0 {
        return pow2(i64::from(key) << -i32::from(schema));
    }
    let key8 = i64::from(key) << (8 - schema);
    let (e, j) = (key8.div_euclid(256), key8.rem_euclid(256) as usize);
    let b = TABLE.bound[j];
    // Split the power so that neither factor leaves the range on its own.
    let half = e / 2;
    b * pow2(half) * pow2(e - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_from_factors_follow_client_golang() {
        assert_eq!(schema_for_factor(1.1), 3);
        assert_eq!(schema_for_factor(2.0), 0);
        // Exactly schema 3's factor; Miri perturbs `exp2`, which computes it.
        if !cfg!(miri) {
            assert_eq!(schema_for_factor(1.0905077326652577), 3);
        }
        assert_eq!(schema_for_factor(1.09), 4);
        assert_eq!(schema_for_factor(4.0), -1);
        assert_eq!(schema_for_factor(1e9), -4);
        assert_eq!(schema_for_factor(1.000001), 8);
        assert_eq!(schema_for_factor(f64::NAN), 8);
        assert_eq!(schema_for_factor(0.5), 8);
    }

    #[test]
    fn keys_at_known_points() {
        // Schema 0: (1, 2] is key 1, (2, 4] key 2, 1 itself key 0, 0.75 key 0.
        assert_eq!(key(1.5, 0), 1);
        assert_eq!(key(2.0, 0), 1);
        assert_eq!(key(3.0, 0), 2);
        assert_eq!(key(1.0, 0), 0);
        assert_eq!(key(0.75, 0), 0);
        assert_eq!(key(0.5, 0), -1);
        // Schema -1: buckets span 4: (1, 4] is key 1.
        assert_eq!(key(3.0, -1), 1);
        assert_eq!(key(4.0, -1), 1);
        assert_eq!(key(4.5, -1), 2);
        // Schema 1: bounds at powers of sqrt(2).
        assert_eq!(key(1.4, 1), 1);
        assert_eq!(key(1.5, 1), 2);
        assert_eq!(key(2.0, 1), 2);
        // Infinity goes one past f64::MAX's bucket.
        assert_eq!(key(f64::INFINITY, 0), key(f64::MAX, 0) + 1);
        assert_eq!(key(f64::MAX, 0), 1024);
        // Subnormals are keyed like their neighbours.
        assert_eq!(key(f64::from_bits(1), 0), -1074);
        assert_eq!(key(f64::MIN_POSITIVE, 0), -1022);
    }

    #[test]
    fn keys_agree_with_logarithms_and_bounds_are_inclusive() {
        for schema in SCHEMA_MIN..=SCHEMA_MAX {
            for k in [-3000, -700, -50, -1, 0, 1, 2, 7, 100, 1000] {
                let b = upper_bound(k, schema);
                if b == 0.0 || b.is_infinite() {
                    continue;
                }
                assert_eq!(key(b, schema), k, "upper bound of {k} at {schema}");
                let above = f64::from_bits(b.to_bits() + 1);
                assert_eq!(key(above, schema), k + 1, "just above {k} at {schema}");
            }
            let mut v: f64 = 1e-30;
            while v < 1e30 {
                let want = (v.log2() * 2f64.powi(schema.into())).ceil() as i32;
                let got = key(v, schema);
                assert!((got - want).abs() <= 1, "{v} at {schema}: {got} vs {want}");
                assert!(upper_bound(got, schema) >= v && upper_bound(got - 1, schema) < v);
                v *= 1.37;
            }
        }
    }

    /// Every schema-8 boundary within an octave, and the values just around it.
    #[test]
    fn every_boundary_of_the_finest_schema() {
        for j in 0..=256 {
            let b = TABLE.bound[j];
            assert_eq!(key(b, 8), j as i32, "bound {j}");
            assert_eq!(key(f64::from_bits(b.to_bits() + 1), 8), j as i32 + 1);
            if j > 0 {
                assert_eq!(key(f64::from_bits(b.to_bits() - 1), 8), j as i32);
            }
        }
        for i in 0..1024 {
            let lowest = 1.0 + f64::from(i) / 1024.0;
            let naive = |m: f64| TABLE.bound.iter().position(|&b| m <= b).unwrap() as i32;
            for m in [
                lowest,
                f64::from_bits((lowest + 1.0 / 1024.0).to_bits() - 1),
            ] {
                assert_eq!(key(m, 8), naive(m), "{m}");
            }
        }
    }

    #[test]
    fn powers_of_two_cover_the_range() {
        assert_eq!(pow2(0), 1.0);
        assert_eq!(pow2(-1074), f64::from_bits(1));
        assert_eq!(pow2(-1075), 0.0);
        assert_eq!(pow2(1024), f64::INFINITY);
        assert_eq!(upper_bound(i32::MAX, 8), f64::INFINITY);
        assert_eq!(upper_bound(i32::MIN, -4), 0.0);
    }
}
