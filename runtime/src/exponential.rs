//! The arithmetic of native (exponential) histogram buckets, as Prometheus defines them: which
//! bucket a value falls in at a schema, a bucket's upper bound, the schema of a bucket factor.
//!
//! At schema `s` (−4 ..= 8) the bucket with key `k` holds the values `v` with
//! `2^((k-1)/2^s) < |v| <= 2^(k/2^s)`. Every boundary of schema `s` is also one of schema 8, so
//! the key at any schema follows from the key at schema 8: `key_s = ceil(key_8 / 2^(8-s))`. The
//! schema-8 boundaries within one power of two, `2^(j/256)` for `j` in `0..=256`, are constants
//! (correctly rounded, checked against `f64::exp2` by a test); a second table, computed from them
//! at compile time, maps the top nine bits of a mantissa to the first candidate boundary and the
//! threshold of the next, so finding a key takes one lookup and one integer comparison, no
//! logarithm and no initialisation check. Infinite values go in the bucket after `f64::MAX`'s, as
//! client_golang puts them.
//!
//! Invariants: every function is total (no panic for any `f64`, key or schema; schemas outside
//! −4 ..= 8 are clamped); `key(upper_bound(k, s), s) == k` for every finite bound.

/// The lowest schema: each bucket spans a factor of 2^16.
pub(crate) const SCHEMA_MIN: i8 = -4;
/// The highest schema: each bucket spans a factor of 2^(1/256).
pub(crate) const SCHEMA_MAX: i8 = 8;

/// `BOUND[j] = 2^(j/256)`, correctly rounded: `BOUND[0] = 1`, `BOUND[256] = 2`. Constants, not a
/// table computed at first use, so a key costs no initialisation check; the test
/// `the_bound_table_is_exp2` checks them against `f64::exp2` (and says how to print them again).
const BOUND: [f64; 257] = {
    let mut out = [0.0; 257];
    let mut j = 0;
    while j < 257 {
        out[j] = f64::from_bits(BOUND_BITS[j]);
        j += 1;
    }
    out
};

/// How many top bits of a mantissa name its slice of `[1, 2)` in [`SLICE`]: 512 slices of 1/512,
/// the fewest that hold at most one boundary each (boundaries are at least `2^(1/256) - 1 >
/// 1/512` apart; 1/256 would not do), so the table is as small as this one-load lookup allows.
const SLICE_BITS: u32 = 9;
/// The mantissa bits below the slice's, compared with its threshold.
const LOW_BITS: u32 = 52 - SLICE_BITS;

/// `SLICE[i]`, for the mantissas in `[1 + i/512, 1 + (i+1)/512)`: everything a key needs in one
/// word, so finding a key takes one load that depends on the value and no second one indexed by
/// the first's result. Bits 48 and up hold `j`, the smallest index with `BOUND[j] >= 1 + i/512`,
/// capped at 255; bits 0..48 hold the least value of a mantissa's low [`LOW_BITS`] bits that puts
/// it above `BOUND[j]` (a slice spans at most one boundary, see [`SLICE_BITS`]): `BOUND[j]`'s
/// low bits + 1 when `BOUND[j]` is in the slice, `2^LOW_BITS` (never reached) when it lies beyond
/// the slice, 0 (always) when even `BOUND[255]` is below the slice. Computed at compile time from
/// `BOUND_BITS` (positive `f64`s order as their bits do, and `1 + i/512` is exact).
const SLICE: [u64; 1 << SLICE_BITS] = {
    let mut out = [0u64; 1 << SLICE_BITS];
    let (mut i, mut j) = (0, 0);
    while i < out.len() {
        let lowest = 0x3ff0_0000_0000_0000 | ((i as u64) << LOW_BITS);
        while BOUND_BITS[j] < lowest {
            j += 1;
        }
        let low = (1u64 << LOW_BITS) - 1;
        out[i] = if j > 255 {
            255 << 48
        } else if BOUND_BITS[j] <= lowest | low {
            ((j as u64) << 48) | ((BOUND_BITS[j] & low) + 1)
        } else {
            ((j as u64) << 48) | (1 << LOW_BITS)
        };
        i += 1;
    }
    out
};

/// The bits of `2^(j/256)` for `j` in `0..=256`, as `the_bound_table_is_exp2` prints them.
#[rustfmt::skip]
const BOUND_BITS: [u64; 257] = [
    0x3ff0000000000000, 0x3ff00b1afa5abcbf, 0x3ff0163da9fb3335, 0x3ff02168143b0281,
    0x3ff02c9a3e778061, 0x3ff037d42e11bbcc, 0x3ff04315e86e7f85, 0x3ff04e5f72f654b1,
    0x3ff059b0d3158574, 0x3ff0650a0e3c1f89, 0x3ff0706b29ddf6de, 0x3ff07bd42b72a836,
    0x3ff0874518759bc8, 0x3ff092bdf66607e0, 0x3ff09e3ecac6f383, 0x3ff0a9c79b1f3919,
    0x3ff0b5586cf9890f, 0x3ff0c0f145e46c85, 0x3ff0cc922b7247f7, 0x3ff0d83b23395dec,
    0x3ff0e3ec32d3d1a2, 0x3ff0efa55fdfa9c5, 0x3ff0fb66affed31b, 0x3ff1073028d7233e,
    0x3ff11301d0125b51, 0x3ff11edbab5e2ab6, 0x3ff12abdc06c31cc, 0x3ff136a814f204ab,
    0x3ff1429aaea92de0, 0x3ff14e95934f312e, 0x3ff15a98c8a58e51, 0x3ff166a45471c3c2,
    0x3ff172b83c7d517b, 0x3ff17ed48695bbc0, 0x3ff18af9388c8dea, 0x3ff1972658375d2f,
    0x3ff1a35beb6fcb75, 0x3ff1af99f8138a1c, 0x3ff1bbe084045cd4, 0x3ff1c82f95281c6b,
    0x3ff1d4873168b9aa, 0x3ff1e0e75eb44027, 0x3ff1ed5022fcd91d, 0x3ff1f9c18438ce4d,
    0x3ff2063b88628cd6, 0x3ff212be3578a819, 0x3ff21f49917ddc96, 0x3ff22bdda27912d1,
    0x3ff2387a6e756238, 0x3ff2451ffb82140a, 0x3ff251ce4fb2a63f, 0x3ff25e85711ece75,
    0x3ff26b4565e27cdd, 0x3ff2780e341ddf29, 0x3ff284dfe1f56381, 0x3ff291ba7591bb70,
    0x3ff29e9df51fdee1, 0x3ff2ab8a66d10f13, 0x3ff2b87fd0dad990, 0x3ff2c57e39771b2f,
    0x3ff2d285a6e4030b, 0x3ff2df961f641589, 0x3ff2ecafa93e2f56, 0x3ff2f9d24abd886b,
    0x3ff306fe0a31b715, 0x3ff31432edeeb2fd, 0x3ff32170fc4cd831, 0x3ff32eb83ba8ea32,
    0x3ff33c08b26416ff, 0x3ff3496266e3fa2d, 0x3ff356c55f929ff1, 0x3ff36431a2de883b,
    0x3ff371a7373aa9cb, 0x3ff37f26231e754a, 0x3ff38cae6d05d866, 0x3ff39a401b7140ef,
    0x3ff3a7db34e59ff7, 0x3ff3b57fbfec6cf4, 0x3ff3c32dc313a8e5, 0x3ff3d0e544ede173,
    0x3ff3dea64c123422, 0x3ff3ec70df1c5175, 0x3ff3fa4504ac801c, 0x3ff40822c367a024,
    0x3ff4160a21f72e2a, 0x3ff423fb2709468a, 0x3ff431f5d950a897, 0x3ff43ffa3f84b9d4,
    0x3ff44e086061892d, 0x3ff45c2042a7d232, 0x3ff46a41ed1d0057, 0x3ff4786d668b3237,
    0x3ff486a2b5c13cd0, 0x3ff494e1e192aed2, 0x3ff4a32af0d7d3de, 0x3ff4b17dea6db7d7,
    0x3ff4bfdad5362a27, 0x3ff4ce41b817c114, 0x3ff4dcb299fddd0d, 0x3ff4eb2d81d8abff,
    0x3ff4f9b2769d2ca7, 0x3ff508417f4531ee, 0x3ff516daa2cf6642, 0x3ff5257de83f4eef,
    0x3ff5342b569d4f82, 0x3ff542e2f4f6ad27, 0x3ff551a4ca5d920f, 0x3ff56070dde910d2,
    0x3ff56f4736b527da, 0x3ff57e27dbe2c4cf, 0x3ff58d12d497c7fd, 0x3ff59c0827ff07cc,
    0x3ff5ab07dd485429, 0x3ff5ba11fba87a03, 0x3ff5c9268a5946b7, 0x3ff5d84590998b93,
    0x3ff5e76f15ad2148, 0x3ff5f6a320dceb71, 0x3ff605e1b976dc09, 0x3ff6152ae6cdf6f4,
    0x3ff6247eb03a5585, 0x3ff633dd1d1929fd, 0x3ff6434634ccc320, 0x3ff652b9febc8fb7,
    0x3ff6623882552225, 0x3ff671c1c70833f6, 0x3ff68155d44ca973, 0x3ff690f4b19e9538,
    0x3ff6a09e667f3bcd, 0x3ff6b052fa75173e, 0x3ff6c012750bdabf, 0x3ff6cfdcddd47645,
    0x3ff6dfb23c651a2f, 0x3ff6ef9298593ae5, 0x3ff6ff7df9519484, 0x3ff70f7466f42e87,
    0x3ff71f75e8ec5f74, 0x3ff72f8286ead08a, 0x3ff73f9a48a58174, 0x3ff74fbd35d7cbfd,
    0x3ff75feb564267c9, 0x3ff77024b1ab6e09, 0x3ff780694fde5d3f, 0x3ff790b938ac1cf6,
    0x3ff7a11473eb0187, 0x3ff7b17b0976cfdb, 0x3ff7c1ed0130c132, 0x3ff7d26a62ff86f0,
    0x3ff7e2f336cf4e62, 0x3ff7f3878491c491, 0x3ff80427543e1a12, 0x3ff814d2add106d9,
    0x3ff82589994cce13, 0x3ff8364c1eb941f7, 0x3ff8471a4623c7ad, 0x3ff857f4179f5b21,
    0x3ff868d99b4492ed, 0x3ff879cad931a436, 0x3ff88ac7d98a6699, 0x3ff89bd0a478580f,
    0x3ff8ace5422aa0db, 0x3ff8be05bad61778, 0x3ff8cf3216b5448c, 0x3ff8e06a5e0866d9,
    0x3ff8f1ae99157736, 0x3ff902fed0282c8a, 0x3ff9145b0b91ffc6, 0x3ff925c353aa2fe2,
    0x3ff93737b0cdc5e5, 0x3ff948b82b5f98e5, 0x3ff95a44cbc8520f, 0x3ff96bdd9a7670b3,
    0x3ff97d829fde4e50, 0x3ff98f33e47a22a2, 0x3ff9a0f170ca07ba, 0x3ff9b2bb4d53fe0d,
    0x3ff9c49182a3f090, 0x3ff9d674194bb8d5, 0x3ff9e86319e32323, 0x3ff9fa5e8d07f29e,
    0x3ffa0c667b5de565, 0x3ffa1e7aed8eb8bb, 0x3ffa309bec4a2d33, 0x3ffa42c980460ad8,
    0x3ffa5503b23e255d, 0x3ffa674a8af46052, 0x3ffa799e1330b358, 0x3ffa8bfe53c12e59,
    0x3ffa9e6b5579fdbf, 0x3ffab0e521356eba, 0x3ffac36bbfd3f37a, 0x3ffad5ff3a3c2774,
    0x3ffae89f995ad3ad, 0x3ffafb4ce622f2ff, 0x3ffb0e07298db666, 0x3ffb20ce6c9a8952,
    0x3ffb33a2b84f15fb, 0x3ffb468415b749b1, 0x3ffb59728de5593a, 0x3ffb6c6e29f1c52a,
    0x3ffb7f76f2fb5e47, 0x3ffb928cf22749e4, 0x3ffba5b030a1064a, 0x3ffbb8e0b79a6f1f,
    0x3ffbcc1e904bc1d2, 0x3ffbdf69c3f3a207, 0x3ffbf2c25bd71e09, 0x3ffc06286141b33d,
    0x3ffc199bdd85529c, 0x3ffc2d1cd9fa652c, 0x3ffc40ab5fffd07a, 0x3ffc544778fafb22,
    0x3ffc67f12e57d14b, 0x3ffc7ba88988c933, 0x3ffc8f6d9406e7b5, 0x3ffca3405751c4db,
    0x3ffcb720dcef9069, 0x3ffccb0f2e6d1675, 0x3ffcdf0b555dc3fa, 0x3ffcf3155b5bab74,
    0x3ffd072d4a07897c, 0x3ffd1b532b08c968, 0x3ffd2f87080d89f2, 0x3ffd43c8eacaa1d6,
    0x3ffd5818dcfba487, 0x3ffd6c76e862e6d3, 0x3ffd80e316c98398, 0x3ffd955d71ff6075,
    0x3ffda9e603db3285, 0x3ffdbe7cd63a8315, 0x3ffdd321f301b460, 0x3ffde7d5641c0658,
    0x3ffdfc97337b9b5f, 0x3ffe11676b197d17, 0x3ffe264614f5a129, 0x3ffe3b333b16ee12,
    0x3ffe502ee78b3ff6, 0x3ffe653924676d76, 0x3ffe7a51fbc74c83, 0x3ffe8f7977cdb740,
    0x3ffea4afa2a490da, 0x3ffeb9f4867cca6e, 0x3ffecf482d8e67f1, 0x3ffee4aaa2188510,
    0x3ffefa1bee615a27, 0x3fff0f9c1cb6412a, 0x3fff252b376bba97, 0x3fff3ac948dd7274,
    0x3fff50765b6e4540, 0x3fff6632798844f8, 0x3fff7bfdad9cbe14, 0x3fff91d802243c89,
    0x3fffa7c1819e90d8, 0x3fffbdba3692d514, 0x3fffd3c22b8f71f1, 0x3fffe9d96b2a23d9,
    0x4000000000000000,
];

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
    // Zero or subnormal (0) and infinite or NaN (0x7ff) in one unsigned comparison.
    if (exp_bits as u32).wrapping_sub(1) >= 0x7fe {
        return key_cold(f64::from_bits(bits), schema);
    }
    key_normal(bits, exp_bits - 1023, schema)
}

/// The key of a normal value with the given bits and unbiased exponent.
#[inline(always)]
fn key_normal(bits: u64, exp: i32, schema: i8) -> i32 {
    // Each branch clamps its own side of the schema range (one `min`, not a two-sided clamp),
    // and a key at schema `s` is `ceil(key_8 / 2^(8-s))`, computed as `-(-key_8 >> (8-s))`:
    // the exponent keeps every key far from `i32`'s ends, so neither negation overflows.
    let mantissa = bits & ((1 << 52) - 1);
    if schema <= 0 {
        // Bucket (2^(k-1), 2^k]: a power of two is the upper bound of its bucket.
        let key0 = exp + i32::from(mantissa != 0);
        let shift = (-i32::from(schema)).min(-i32::from(SCHEMA_MIN));
        return -(-key0 >> shift);
    }
    // The slice of 1/512 the mantissa's top bits name holds at most one boundary: the first
    // candidate, or the next one if the low bits pass the slice's threshold (`SLICE`).
    let slice = SLICE[(mantissa >> LOW_BITS) as usize];
    let above = (mantissa & ((1 << LOW_BITS) - 1)) >= slice & ((1 << 48) - 1);
    let key8 = exp * 256 + (slice >> 48) as i32 + i32::from(above);
    let shift = i32::from(SCHEMA_MAX) - i32::from(schema.min(SCHEMA_MAX));
    -(-key8 >> shift)
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
    let b = BOUND[j];
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
    fn schemas_outside_the_range_are_clamped() {
        for v in [
            f64::from_bits(1),
            1e-300,
            0.003,
            1.0,
            1.5,
            3.0,
            1e300,
            f64::INFINITY,
        ] {
            for (schema, clamped) in [(9, 8), (100, 8), (i8::MAX, 8), (-5, -4), (i8::MIN, -4)] {
                assert_eq!(key(v, schema), key(v, clamped), "{v} at {schema}");
            }
        }
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
        for (j, &b) in BOUND.iter().enumerate() {
            assert_eq!(key(b, 8), j as i32, "bound {j}");
            assert_eq!(key(f64::from_bits(b.to_bits() + 1), 8), j as i32 + 1);
            if j > 0 {
                assert_eq!(key(f64::from_bits(b.to_bits() - 1), 8), j as i32);
            }
        }
        for i in 0..1024 {
            let lowest = 1.0 + f64::from(i) / 1024.0;
            let naive = |m: f64| BOUND.iter().position(|&b| m <= b).unwrap() as i32;
            for m in [
                lowest,
                f64::from_bits((lowest + 1.0 / 1024.0).to_bits() - 1),
            ] {
                assert_eq!(key(m, 8), naive(m), "{m}");
            }
        }
    }

    /// The constants are `f64::exp2`'s values, and `SLICE` the first candidates and thresholds
    /// a search finds. To print `BOUND_BITS` again:
    /// `cargo test -p promtrack --lib exponential::tests::the_bound_table_is_exp2 -- --nocapture`.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "Miri perturbs exp2 by a random few ulps on purpose (6 at 2^(256/256) in one run, past the 4 this test allowed): the table is checked natively"
    )]
    fn the_bound_table_is_exp2() {
        let mut printed = String::new();
        for (j, b) in BOUND.iter().enumerate() {
            let want = (j as f64 / 256.0).exp2();
            // Exact on any libm worth the name (the constants are correctly rounded).
            assert_eq!(
                b.to_bits(),
                want.to_bits(),
                "2^({j}/256): {b} vs exp2 {want}"
            );
            printed.push_str(&format!(
                "0x{:016x},{}",
                b.to_bits(),
                ["", "\n"][usize::from(j % 4 == 3)]
            ));
        }
        assert_eq!((BOUND[0], BOUND[256]), (1.0, 2.0));
        println!("{printed}");
        for (i, &entry) in SLICE.iter().enumerate() {
            let slices = SLICE.len() as f64;
            let lowest = 1.0 + i as f64 / slices;
            // The first bound at or above the slice's lowest value (capped at 255).
            let s = (entry >> 48) as usize;
            assert!(s == 255 || BOUND[s] >= lowest, "SLICE[{i}] starts too low");
            assert!(
                s == 0 || BOUND[s - 1] < lowest,
                "SLICE[{i}] starts too high"
            );
            // Its threshold: the low bits of the least mantissa above BOUND[s].
            let threshold = entry & ((1 << 48) - 1);
            let first_above = f64::from_bits(BOUND[s].to_bits() + 1).max(lowest);
            let in_slice = first_above < 1.0 + (i + 1) as f64 / slices;
            let want = if in_slice {
                first_above.to_bits() & ((1 << LOW_BITS) - 1)
            } else {
                1 << LOW_BITS
            };
            assert_eq!(threshold, want, "SLICE[{i}] threshold");
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
