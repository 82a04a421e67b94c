//! gzip (RFC 1952) for scrape and push bodies: whether a request accepts it, and the
//! compression: the ten-byte header, miniz_oxide's raw deflate
//! stream (RFC 1951) at level 1, then the CRC-32 and the length of the input.
//!
//! Written here around miniz_oxide's compressor rather than through flate2 (which uses the same
//! compressor) because flate2 brings its stream types and crc32fast's SIMD variants and 16 KB
//! table, none of which a one-shot compression of a buffer needs: gzip took 68 KB of the
//! build-weight app's release binary through flate2, 34 KB this way (BENCHMARKS.md). The price
//! is the CRC: slicing-by-8 runs at about 1 GB/s where crc32fast's carry-less multiplication
//! runs at tens of GB/s, so compressing a 1.3 MB exposition takes about a quarter longer (7.0 ms
//! instead of 5.6 ms on the shared machine), against deflate's 5 ms either way. The CRC's 8 KB
//! table is built on the first compression, not stored in every user's binary.
//!
//! Invariant: never panics; a compressor failure (a bug in it) gives `None`, and the body goes
//! out uncompressed.

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output, create_comp_flags_from_zip_params,
};

/// Whether an `Accept-Encoding` header allows gzip (`gzip` or `*` with a q-value above 0).
pub(crate) fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, v)| super::qvalue(v.trim()));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && q > 0
    })
}

/// Magic, deflate, no flags, no modification time, no extra flags, OS "unknown" (255).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// `body` compressed into a gzip member, or `None` if the compressor fails.
pub(crate) fn gzip_bytes(body: &[u8]) -> Option<Vec<u8>> {
    // Level 1, as scrapes are compressed on the request path: the fastest of deflate's levels
    // still shrinks an exposition about ten times. Negative window bits: a raw stream.
    let mut compressor = CompressorOxide::new(create_comp_flags_from_zip_params(1, -15, 0));
    let mut out = Vec::with_capacity(body.len() / 4 + HEADER.len() + 8);
    out.extend_from_slice(&HEADER);
    let (status, consumed) = compress_to_output(&mut compressor, body, TDEFLFlush::Finish, |b| {
        out.extend_from_slice(b);
        true
    });
    if status != TDEFLStatus::Done || consumed != body.len() {
        return None;
    }
    out.extend_from_slice(&crc32(body).to_le_bytes());
    // ISIZE: the input's length modulo 2^32.
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    Some(out)
}

/// CRC-32 (ISO 3309, the one gzip uses: reflected, polynomial 0xEDB88320), eight bytes at a
/// step ("slicing-by-8": one table lookup per byte, none depending on the previous byte's).
fn crc32(bytes: &[u8]) -> u32 {
    let t = crc_tables();
    let mut crc = !0u32;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ crc;
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        let [l0, l1, l2, l3] = lo.to_le_bytes().map(usize::from);
        let [h0, h1, h2, h3] = hi.to_le_bytes().map(usize::from);
        crc = t[7][l0] ^ t[6][l1] ^ t[5][l2] ^ t[4][l3] ^ t[3][h0] ^ t[2][h1] ^ t[1][h2] ^ t[0][h3];
    }
    for &b in words.remainder() {
        crc = t[0][usize::from(crc as u8 ^ b)] ^ (crc >> 8);
    }
    !crc
}

/// `crc_tables()[0][b]`: the CRC of byte `b`; `crc_tables()[k][b]`: that of `b` followed by `k`
/// zero bytes. 8 KB, computed on the first compression (about 2 300 shifts and lookups) rather
/// than at compile time: a table in `.rodata` is 8 KB of every user's binary, this one is 8 KB of
/// heap only in the processes that compress. Boxed: a `OnceLock` holding the array itself would
/// be 8 KB of `.data` (its unset state is not all zero bytes).
fn crc_tables() -> &'static [[u32; 256]; 8] {
    static TABLES: std::sync::OnceLock<Box<[[u32; 256]; 8]>> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = Box::new([[0u32; 256]; 8]);
        for (b, entry) in (0u32..).zip(t[0].iter_mut()) {
            *entry = (0..8).fold(b, |c, _| (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg()));
        }
        for k in 1..8 {
            for b in 0..256 {
                let previous = t[k - 1][b];
                t[k][b] = (previous >> 8) ^ t[0][(previous & 0xff) as usize];
            }
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Decoded by flate2, a decoder promtrack did not write, which checks the CRC and length.
    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut plain)
            .expect("a valid gzip member");
        plain
    }

    #[test]
    fn round_trips_through_another_decoder() {
        let exposition: Vec<u8> = (0..2_000)
            .flat_map(|i| format!("http_requests_total{{path=\"/item/{i}\"}} {i}\n").into_bytes())
            .collect();
        for body in [&b""[..], b"x", &exposition] {
            let gz = gzip_bytes(body).expect("compresses");
            assert_eq!(gz[..10], HEADER);
            assert_eq!(gunzip(&gz), body);
        }
        // An exposition repeats itself: level 1 still shrinks it several times.
        let gz = gzip_bytes(&exposition).unwrap();
        assert!(
            gz.len() * 4 < exposition.len(),
            "{} of {}",
            gz.len(),
            exposition.len()
        );
    }

    #[test]
    fn gzip_acceptance() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzipx"));
    }

    #[test]
    fn crc_matches_the_standard_check_value_and_crc32fast() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Every length around the eight-byte steps, against flate2's CRC (crc32fast).
        let bytes: Vec<u8> = (0..100u32).map(|i| (i * 37 % 251) as u8).collect();
        for len in 0..bytes.len() {
            let mut theirs = flate2::Crc::new();
            theirs.update(&bytes[..len]);
            assert_eq!(crc32(&bytes[..len]), theirs.sum(), "length {len}");
        }
    }
}
