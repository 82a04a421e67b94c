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

/// Finite, non-integral (or huge) values: ryu's shortest digits, laid out Go-style.
fn write_shortest(out: &mut Vec<u8>, v: f64) {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v);
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exp) = match s.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    // Digits without the point, and where the point sits: value = 0.DIGITS × 10^point.
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
    let mut point = int_part.len() as i32 + exp;
    let leading = digits.iter().take_while(|&&d| d == b'0').count();
    digits.drain(..leading);
    point -= leading as i32;
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        out.push(b'0');
        return;
    }
    if negative {
        out.push(b'-');
    }
    let sci_exp = point - 1;
    if !(-4..21).contains(&sci_exp) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if sci_exp < 0 { b'-' } else { b'+' });
        let e = sci_exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(e).as_bytes());
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.extend_from_slice(&digits);
            out.extend(std::iter::repeat_n(b'0', point - digits.len()));
        } else {
            out.extend_from_slice(&digits[..point]);
            out.push(b'.');
            out.extend_from_slice(&digits[point..]);
        }
    }
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
