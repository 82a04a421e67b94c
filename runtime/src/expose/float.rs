//! Numbers as both text formats want them.
//!
//! Values are written the way Go's `strconv.FormatFloat(v, 'g', -1, 64)` would, except that the
//! switch to exponent notation happens below 1e-4 and from 1e21 (as Go's `%v` for large values
//! and JavaScript do), so counters up to a sextillion stay readable: `+Inf`, `-Inf`, `NaN`;
//! whole numbers below 2^53 as integers (`42`); others as the shortest text that reads back to
//! the same `f64` (`0.1`, `1e-12`, `1.5e+21`). Every form parses with Go's `ParseFloat`
//! (Prometheus) and matches the OpenMetrics ABNF.

use super::line::Line;

/// Appends `v`.
#[inline(always)]
pub(crate) fn write_f64(line: &mut Line<'_>, v: f64) {
    // Whole numbers below 2^53 (the conversion saturates, and NaN becomes 0: neither converts
    // back to itself with a magnitude below 2^53). Also catches -0.0, written as 0.
    let whole = v as i64;
    if whole as f64 == v && whole.unsigned_abs() < 1 << 53 {
        if whole < 0 {
            line.byte(b'-');
        }
        line.u64(whole.unsigned_abs());
    } else if v.is_nan() {
        line.small(b"NaN");
    } else if v.is_infinite() {
        line.small(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        line.with_vec(|out| write_shortest(out, v));
    }
}

/// Renders `v` as a `String` (histogram `le` values, cached per family).
pub(crate) fn f64_to_string(v: f64) -> String {
    let mut out = Vec::new();
    write_f64(&mut Line::new(&mut out), v);
    String::from_utf8(out).expect("ASCII")
}

/// Finite, non-integral (or huge) values: ryu's shortest digits, laid out Go-style. Works on the
/// stack: a scrape writes one of these per histogram sum and per `_created` sample.
fn write_shortest(out: &mut Vec<u8>, v: f64) {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v).as_bytes();
    if ryu_is_go(s) {
        return out.extend_from_slice(s);
    }
    relayout(out, s);
}

/// Whether ryu's text is already what Go writes: plain decimal (no exponent), not a whole
/// number (`2e15` comes out as `2000000000000000.0`), not below 10^-4 (Go switches to an
/// exponent there). The common case: a `_created` timestamp (`1764110000.123`), a sum.
#[inline]
fn ryu_is_go(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    !digits.contains(&b'e') && !digits.ends_with(b".0") && !digits.starts_with(b"0.0000")
}

/// Lays ryu's text `s` out Go-style.
fn relayout(out: &mut Vec<u8>, s: &[u8]) {
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let (mantissa, exp) = match s.iter().position(|&b| b == b'e') {
        Some(i) => (&s[..i], parse_exponent(&s[i + 1..])),
        None => (s, 0),
    };
    // Digits without the point, and where the point sits: value = 0.DIGITS × 10^point. ryu
    // writes at most 17 significant digits and a few zeros around them.
    let mut digits = [0u8; 40];
    let (mut n, mut int_len) = (0, None);
    for &b in mantissa {
        if b == b'.' {
            int_len = Some(n);
        } else if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    let mut point = int_len.unwrap_or(n) as i32 + exp;
    let leading = digits[..n].iter().take_while(|&&d| d == b'0').count();
    point -= leading as i32;
    let mut digits = &digits[leading..n];
    while let Some((b'0', rest)) = digits.split_last() {
        digits = rest;
    }
    let Some((&first, rest)) = digits.split_first() else {
        out.push(b'0');
        return;
    };
    let mut text = [0u8; 64];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let end = (len + bytes.len()).min(text.len());
        text[len..end].copy_from_slice(&bytes[..end - len]);
        len = end;
    };
    if negative {
        put(b"-");
    }
    let sci_exp = point - 1;
    if !(-4..21).contains(&sci_exp) {
        put(&[first]);
        if !rest.is_empty() {
            put(b".");
            put(rest);
        }
        put(if sci_exp < 0 { b"e-" } else { b"e+" });
        let e = sci_exp.unsigned_abs();
        if e < 10 {
            put(b"0");
        }
        put(itoa::Buffer::new().format(e).as_bytes());
    } else if point <= 0 {
        put(b"0.");
        for _ in 0..-point {
            put(b"0");
        }
        put(digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            put(digits);
            for _ in digits.len()..point {
                put(b"0");
            }
        } else {
            put(&digits[..point]);
            put(b".");
            put(&digits[point..]);
        }
    }
    out.extend_from_slice(&text[..len]);
}

/// ryu's exponent (`-7`, `21`).
fn parse_exponent(s: &[u8]) -> i32 {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let e = digits.iter().fold(0i32, |e, &d| {
        e.saturating_mul(10)
            .saturating_add(i32::from(d.wrapping_sub(b'0')))
    });
    if negative { -e } else { e }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: f64) -> String {
        f64_to_string(v)
    }

    #[test]
    fn specials_and_integers() {
        assert_eq!(s(f64::NAN), "NaN");
        assert_eq!(s(f64::INFINITY), "+Inf");
        assert_eq!(s(f64::NEG_INFINITY), "-Inf");
        assert_eq!(s(0.0), "0");
        assert_eq!(s(-0.0), "0");
        assert_eq!(s(42.0), "42");
        assert_eq!(s(-7.0), "-7");
        assert_eq!(s(9_007_199_254_740_991.0), "9007199254740991");
    }

    #[test]
    fn fractions_and_exponents_read_back_exactly() {
        let cases = [
            (0.1, "0.1"),
            (1.5, "1.5"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e-12, "1e-12"),
            (-2.5e-7, "-2.5e-07"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (123456.789, "123456.789"),
            (1764110000.123, "1764110000.123"),
        ];
        for (v, want) in cases {
            let got = s(v);
            assert_eq!(got, want, "{v:e}");
            assert_eq!(got.parse::<f64>().unwrap(), v, "{got} reads back");
        }
    }

    /// ryu's text taken as it is agrees with the full relayout wherever it is taken.
    #[test]
    fn the_fast_path_agrees_with_the_relayout() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values = vec![
            0.0001,
            0.00012,
            0.00009999,
            1e-4,
            -0.0001,
            0.5,
            -0.5,
            1234.5,
            1e15 + 0.5,
            2e15,
            1.5e16,
            9_007_199_254_740_994.0,
            1_764_110_000.123,
            1e20,
            1e21,
            123e-7,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(f64::from_bits(x));
            // Values of the sizes metrics have: timestamps, durations, byte counts.
            values.push((x >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((x % 24) as i32 - 6));
        }
        let mut taken = 0;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            let mut buf = ryu::Buffer::new();
            let s = buf.format_finite(v).as_bytes();
            if ryu_is_go(s) {
                taken += 1;
                let mut full = Vec::new();
                relayout(&mut full, s);
                assert_eq!(
                    String::from_utf8_lossy(s),
                    String::from_utf8_lossy(&full),
                    "{v:e}"
                );
            }
        }
        assert!(taken > 10_000, "{taken}");
    }

    #[test]
    fn random_values_round_trip() {
        // A small deterministic generator: no dependency needed for a property this simple.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_finite() {
                assert_eq!(s(v).parse::<f64>().unwrap(), v, "{v:e}");
            }
        }
    }
}
