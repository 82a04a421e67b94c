//! The W3C `traceparent` header (Trace Context, level 1), read for exemplars (issue 14): the
//! layer calls [`sampled_trace`] once per request with the header's value, and attaches the
//! trace id it returns to the request's duration and count.
//!
//! Only a well-formed header whose caller sampled the trace gives an exemplar:
//! `version "-" trace-id "-" parent-id "-" flags`, all lowercase hex; version two digits and
//! not `ff`; trace id 32 digits, parent id 16, neither all zeros; flags two digits with bit 0
//! (`sampled`) set. Version `00` is exactly 55 bytes; a later version may append fields after a
//! `-`, as the specification asks a reader of an unknown version to accept. Anything else gives
//! `None`: a malformed id must not become a wrong trace link. The parent id is the caller's
//! span, not ours, so only the trace id is kept.
//!
//! Pure and allocation-free: a length check, then the ids' digits checked and decoded eight at a
//! time as words (`scripts/callgrind-layer.sh`'s `layer-traced` mode counts the cost).

use crate::exemplar::TraceContext;

/// The length of a version-00 header.
const LEN: usize = 55;

/// Hex digit values; 0xff for anything but `0-9a-f` (uppercase is invalid in `traceparent`).
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The trace of a well-formed, sampled `traceparent` value (see the module docs), without a
/// span id; `None` otherwise.
#[inline]
pub(crate) fn sampled_trace(header: &[u8]) -> Option<TraceContext> {
    if header.len() < LEN
        || header[2] != b'-'
        || header[35] != b'-'
        || header[52] != b'-'
        || (header.len() > LEN && header[55] != b'-')
    {
        return None;
    }
    let version = byte(header[0], header[1])?;
    if version == 0xff || (version == 0 && header.len() != LEN) {
        return None;
    }
    let flags = byte(header[53], header[54])?;
    if flags & 0x01 == 0 {
        return None;
    }
    // The ids' 48 digits, eight at a time; `bad` collects every non-digit, checked once.
    let (p0, p1) = (chunk(header, 36)?, chunk(header, 44)?);
    let mut bad = digits(p0).1 | digits(p1).1;
    let mut trace = [0u8; 16];
    for (i, out) in trace.chunks_exact_mut(4).enumerate() {
        let (values, not_hex) = digits(chunk(header, 3 + 8 * i)?);
        bad |= not_hex;
        out.copy_from_slice(&pack(values).to_le_bytes());
    }
    // The parent id's value is not kept, but all zeros is invalid.
    if bad != 0 || (p0 == ZEROS && p1 == ZEROS) {
        return None;
    }
    // `new` refuses an all-zero trace id.
    TraceContext::new(trace, None)
}

#[inline]
fn byte(hi: u8, lo: u8) -> Option<u8> {
    let (hi, lo) = (HEX[hi as usize], HEX[lo as usize]);
    // 0xff in either marks a non-digit; valid nibbles never set the high bits.
    ((hi | lo) & 0xf0 == 0).then_some((hi << 4) | lo)
}

// Eight digits at a time, as the bytes of a little-endian `u64` (first digit lowest): a check
// and a decode of a few word operations each, instead of a table lookup per digit.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES * 0x80;
/// Eight `'0'` digits.
const ZEROS: u64 = ONES * b'0' as u64;

/// The eight bytes at `at`, first byte lowest.
#[inline]
fn chunk(header: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = header.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Each byte's digit value (its low nibble, plus 9 for a letter: bit 6 set), and a mask that
/// is 0 iff all eight bytes are lowercase hex digits: the values are written back as digits and
/// compared (a value above 15, or a byte that does not come back, is not a digit). Exact per
/// byte: no step carries across a byte (a value is at most 24).
#[inline]
fn digits(x: u64) -> (u64, u64) {
    let v = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    let letter = ((v + ONES * 0x76) >> 7) & ONES; // value above 9
    let again = v + ONES * b'0' as u64 + letter * 0x27; // 0x27: from `'9' + 1` to `'a'`
    (v, (again ^ x) | ((v + ONES * 0x70) & HIGH))
}

/// Eight digit values (from [`digits`]) as four bytes, the first pair lowest.
#[inline]
fn pack(v: u64) -> u32 {
    // Each 16-bit lane: the first digit's value above the second's.
    let y = ((v << 4) & 0x00f0_00f0_00f0_00f0) | ((v >> 8) & 0x000f_000f_000f_000f);
    // The lanes' low bytes packed together.
    let z = (y | (y >> 8)) & 0x0000_ffff_0000_ffff;
    (z | (z >> 16)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn trace_hex(s: &str) -> Option<String> {
        sampled_trace(s.as_bytes())
            .map(|c| c.trace_id().iter().map(|b| format!("{b:02x}")).collect())
    }

    #[test]
    fn a_sampled_header_gives_its_trace_id_only() {
        assert_eq!(
            trace_hex(VALID).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(sampled_trace(VALID.as_bytes()).unwrap().span_id(), None);
        // Other flag bits do not matter; bit 0 does.
        assert!(trace_hex(&VALID.replace("-01", "-03")).is_some());
        assert!(trace_hex(&VALID.replace("-01", "-ff")).is_some());
    }

    #[test]
    fn everything_else_gives_nothing() {
        let cases = [
            // not sampled
            VALID.replace("-01", "-00"),
            VALID.replace("-01", "-02"),
            // version ff, uppercase, non-hex
            VALID.replacen("00-", "ff-", 1),
            VALID.to_uppercase(),
            VALID.replace("4bf9", "4BF9"),
            VALID.replace("4bf9", "4bg9"),
            VALID.replace("-01", "-0x"),
            // zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(),
            // lengths and separators
            VALID[..54].into(),
            format!("{VALID}0"),
            format!("{VALID}-extra"), // version 00 allows nothing after the flags
            VALID.replace('-', "_"),
            format!(" {}", &VALID[..54]),
            String::new(),
        ];
        for c in &cases {
            assert_eq!(trace_hex(c), None, "{c:?}");
        }
    }

    /// The word check against the table, for every byte value at every position (next to a
    /// valid digit and next to a non-digit), and the word decode against `from_str_radix`.
    #[test]
    fn the_word_check_and_decode_agree_with_the_table() {
        for fill in [b'7', b'c', b'G', 0xff] {
            for pos in 0..8 {
                for c in 0..=255u8 {
                    let mut bytes = [fill; 8];
                    bytes[pos] = c;
                    let want = bytes.iter().all(|&b| HEX[b as usize] != 0xff);
                    assert_eq!(
                        digits(u64::from_le_bytes(bytes)).1 == 0,
                        want,
                        "{bytes:?} (byte {c:#x} at {pos})"
                    );
                }
            }
        }
        for text in [
            "00000000", "0123abcd", "ffffffff", "9a8b7c6d", "00f067aa", "10000001",
        ] {
            let x = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            let (values, bad) = digits(x);
            assert_eq!(bad, 0, "{text}");
            let want = u32::from_str_radix(text, 16).unwrap().to_be_bytes();
            assert_eq!(pack(values).to_le_bytes(), want, "{text}");
        }
    }

    #[test]
    fn a_later_version_may_append_fields() {
        let later = format!("cc{}-what-comes-next", &VALID[2..]);
        assert!(trace_hex(&later).is_some());
        assert!(trace_hex(&format!("cc{}", &VALID[2..])).is_some());
        assert!(trace_hex(&format!("cc{}x", &VALID[2..])).is_none());
    }

    /// The parser against an obviously right one, on mutations of valid headers.
    #[test]
    fn agrees_with_a_plain_reading_on_random_mutations() {
        fn plain(s: &str) -> Option<String> {
            let lower_hex = |p: &str, n: usize| {
                p.len() == n
                    && p.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            };
            let parts: Vec<&str> = s.splitn(5, '-').collect();
            if parts.len() < 4 {
                return None;
            }
            let (v, t, p, f) = (parts[0], parts[1], parts[2], parts[3]);
            let ok = lower_hex(v, 2)
                && v != "ff"
                && lower_hex(t, 32)
                && t.bytes().any(|b| b != b'0')
                && lower_hex(p, 16)
                && p.bytes().any(|b| b != b'0')
                && lower_hex(f, 2)
                && u8::from_str_radix(f, 16).unwrap() & 1 == 1
                && (if v == "00" { parts.len() == 4 } else { true });
            ok.then(|| t.to_owned())
        }
        let alphabet = b"0123456789abcdefABF-xz ";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut agreed_some = 0;
        for _ in 0..20_000 {
            let mut h = VALID.as_bytes().to_vec();
            if next() % 2 == 0 {
                h[0] = b'0' + (next() % 3) as u8; // versions 00, 10, 20
            }
            for _ in 0..next() % 3 {
                let i = (next() % h.len() as u64) as usize;
                h[i] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            match next() % 8 {
                0 => h.truncate((next() % h.len() as u64) as usize),
                1 => h.extend_from_slice(b"-ab"),
                _ => {}
            }
            let s = String::from_utf8(h).unwrap();
            let got = trace_hex(&s);
            assert_eq!(got, plain(&s), "{s:?}");
            agreed_some += usize::from(got.is_some());
        }
        // The mutations are not all fatal: both readings accepted a fair share.
        assert!(agreed_some > 2_000, "{agreed_some}");
    }
}
