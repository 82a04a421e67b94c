//! Series keys: how a lookup turns a label set's values into something to hash and compare.
//!
//! A series key is the label values joined by `0xFF` (a byte that never occurs in UTF-8, so keys
//! are unambiguous). A lookup does not copy the
//! values byte by byte: it packs the stream into 8-byte words in a register, storing each word
//! once it is complete, then hashes those words and compares them with the stored series' words.
//! For typical label values (`GET`, `200`, a route) that is one or a handful of words — no
//! `memcpy` or `memcmp` calls, no allocation, and no load that spans several smaller stores
//! (which would stall store-to-load forwarding on every lookup).
//!
//! The words depend only on the byte stream, not on how a [`LabelValue`](crate::LabelValue)
//! splits its text into `write_str` calls, so keys rebuilt from stored bytes (the overflow
//! series, a key read back from a file) hash and compare like freshly written ones. The hash
//! folds the words with a 128-bit multiply, seeded per family at random as `foldhash` does, so
//! label values a client controls cannot be chosen to collide.

use std::mem::MaybeUninit;

/// Separator between values in a series key. Not valid anywhere in UTF-8.
pub(crate) const KEY_SEPARATOR: u8 = 0xFF;

/// Keys of up to this many words (128 bytes) stay on the stack.
const INLINE_WORDS: usize = 16;

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// A key being written: complete words, plus the bytes of the word in progress.
pub(crate) struct KeyWords {
    inline: [MaybeUninit<u64>; INLINE_WORDS],
    /// Complete words, when there are more than fit inline (then `inline` is unused).
    heap: Vec<u64>,
    words: usize,
    /// The incomplete last word, little-endian, `pending_len` bytes of it.
    pending: u64,
    pending_len: usize,
}

impl KeyWords {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self {
            inline: [MaybeUninit::uninit(); INLINE_WORDS],
            heap: Vec::new(),
            words: 0,
            pending: 0,
            pending_len: 0,
        }
    }

    /// Appends bytes. A piece that does not complete a word (the typical label value) costs a
    /// load, a shift and an or.
    #[inline(always)]
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if self.pending_len + n < 8 {
            self.pending |= load_short(bytes) << (8 * self.pending_len);
            self.pending_len += n;
        } else {
            self.write_long(bytes);
        }
    }

    #[inline(never)]
    fn write_long(&mut self, mut bytes: &[u8]) {
        let fill = 8 - self.pending_len;
        let word = self.pending | (load_short(&bytes[..fill]) << (8 * self.pending_len));
        self.push_word(word);
        bytes = &bytes[fill..];
        while bytes.len() >= 8 {
            self.push_word(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
            bytes = &bytes[8..];
        }
        self.pending = load_short(bytes);
        self.pending_len = bytes.len();
    }

    /// Appends one byte.
    #[inline(always)]
    pub(crate) fn write_u8(&mut self, b: u8) {
        self.pending |= u64::from(b) << (8 * self.pending_len);
        self.pending_len += 1;
        if self.pending_len == 8 {
            let word = self.pending;
            self.push_word(word);
            self.pending = 0;
            self.pending_len = 0;
        }
    }

    #[inline(always)]
    fn push_word(&mut self, word: u64) {
        if self.words < INLINE_WORDS {
            self.inline[self.words] = MaybeUninit::new(word);
        } else {
            self.spill(word);
        }
        self.words += 1;
    }

    #[cold]
    #[inline(never)]
    fn spill(&mut self, word: u64) {
        if self.words == INLINE_WORDS {
            let inline: Vec<u64> = self.complete_inline().to_vec();
            self.heap = inline;
        }
        self.heap.push(word);
    }

    #[inline(always)]
    fn complete_inline(&self) -> &[u64] {
        let n = self.words.min(INLINE_WORDS);
        // SAFETY: the first `min(words, INLINE_WORDS)` inline words were written by `push_word`.
        unsafe { std::slice::from_raw_parts(self.inline.as_ptr().cast(), n) }
    }

    /// The finished key: its words (the last one zero-padded) and its length in bytes.
    #[inline(always)]
    pub(crate) fn finish(&mut self) -> KeyRef<'_> {
        let len = self.words * 8 + self.pending_len;
        if self.pending_len > 0 {
            let last = self.pending;
            self.push_word(last);
            self.pending = 0;
            self.pending_len = 0;
        }
        let words = if self.words <= INLINE_WORDS {
            self.complete_inline()
        } else {
            &self.heap
        };
        KeyRef { words, len }
    }
}

/// A complete key: words with the bytes packed little-endian, the last word zero-padded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRef<'a> {
    pub(crate) words: &'a [u64],
    /// Length in bytes.
    pub(crate) len: usize,
}

impl KeyRef<'_> {
    /// The key's hash under `seed`.
    #[inline(always)]
    pub(crate) fn hash(&self, seed: u64) -> u64 {
        let mut state = seed;
        for &w in self.words {
            state = folded_multiply(state ^ w, MULTIPLIER);
        }
        folded_multiply(state, MULTIPLIER ^ self.len as u64)
    }

    /// Calls `f` with the key's bytes: borrowed from the words where their memory already is
    /// the bytes (little-endian targets), so creating a series copies its key only once, into
    /// its record.
    pub(crate) fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        #[cfg(target_endian = "little")]
        {
            // SAFETY: `len` is at most `8 * words.len()`, and the words' little-endian bytes
            // in memory order are the key's bytes.
            f(unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) })
        }
        #[cfg(not(target_endian = "little"))]
        {
            f(&self.to_bytes())
        }
    }

    /// The key's bytes.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.truncate(self.len);
        out
    }
}

/// A stored key, in both forms: words for lookups, bytes for ordering and rendering. (The
/// families store their keys in their series records, `family/record.rs`; this form serves the
/// index benchmark, `__private::index_bench`.)
pub(crate) struct StoredKey {
    pub(crate) words: Box<[u64]>,
    pub(crate) bytes: Box<[u8]>,
}

impl StoredKey {
    pub(crate) fn new(key: KeyRef<'_>) -> Self {
        Self {
            words: key.words.into(),
            bytes: key.to_bytes().into(),
        }
    }

    /// Whether `key` is this key.
    #[inline(always)]
    pub(crate) fn matches(&self, key: &KeyRef<'_>) -> bool {
        // Keys are a word or a few: a plain loop beats a call to `memcmp`.
        if self.bytes.len() != key.len || self.words.len() != key.words.len() {
            return false;
        }
        let mut i = 0;
        while i < key.words.len() {
            if self.words[i] != key.words[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

/// The words of a key given as bytes.
pub(crate) fn words_of(bytes: &[u8]) -> KeyWords {
    let mut k = KeyWords::new();
    k.write(bytes);
    k
}

/// Loads up to 8 bytes into a little-endian word, without reading past the slice and without a
/// loop.
#[inline(always)]
fn load_short(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n <= 8);
    let p = b.as_ptr();
    // SAFETY: every read below is at an offset below `n`.
    unsafe {
        if n >= 4 {
            let lo = u64::from(p.cast::<u32>().read_unaligned().to_le());
            let hi = u64::from(p.add(n - 4).cast::<u32>().read_unaligned().to_le());
            // `hi` covers bytes n-4..n and overlaps `lo` when n < 8; overlapping bytes agree.
            lo | (hi << (8 * (n - 4)))
        } else if n > 0 {
            // First, middle and last byte cover every length from 1 to 3.
            u64::from(*p)
                | (u64::from(*p.add(n / 2)) << (8 * (n / 2)))
                | (u64::from(*p.add(n - 1)) << (8 * (n - 1)))
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pieces: &[&[u8]]) -> (Vec<u64>, usize) {
        let mut k = KeyWords::new();
        for p in pieces {
            if p.len() == 1 {
                k.write_u8(p[0]);
            } else {
                k.write(p);
            }
        }
        let r = k.finish();
        (r.words.to_vec(), r.len)
    }

    #[test]
    fn words_ignore_how_the_stream_is_split_and_round_trip_to_bytes() {
        let data: Vec<u8> = (1..=255u8).cycle().take(300).collect();
        for len in [
            0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 64, 127, 128, 129, 200, 300,
        ] {
            let whole = words(&[&data[..len]]);
            assert_eq!(whole.1, len);
            for split in 0..=len.min(20) {
                for split2 in split..=len.min(40) {
                    let parts: [&[u8]; 3] =
                        [&data[..split], &data[split..split2], &data[split2..len]];
                    assert_eq!(words(&parts), whole, "len {len} split {split} {split2}");
                }
            }
            let mut k = words_of(&data[..len]);
            assert_eq!(k.finish().to_bytes(), &data[..len]);
            let mut k = words_of(&data[..len]);
            k.finish().with_bytes(|b| assert_eq!(b, &data[..len]));
        }
    }

    #[test]
    fn hashes_depend_on_content_length_and_seed() {
        let mut seen = std::collections::HashSet::new();
        for s in [
            "",
            "\0",
            "\0\0",
            "a",
            "b",
            "ab",
            "ba",
            "GET\u{ff}200",
            "GET\u{ff}201",
        ] {
            let mut k = words_of(s.as_bytes());
            assert!(seen.insert(k.finish().hash(1)), "{s:?}");
        }
        let (mut a, mut b) = (words_of(b"GET"), words_of(b"GET"));
        assert_ne!(a.finish().hash(1), b.finish().hash(2));
    }

    #[test]
    fn stored_keys_match_only_themselves() {
        let mut a = words_of(b"GET\xff200\xff");
        let stored = StoredKey::new(a.finish());
        let mut same = KeyWords::new();
        same.write(b"GET");
        same.write_u8(0xFF);
        same.write(b"2");
        same.write(b"00");
        same.write_u8(0xFF);
        assert!(stored.matches(&same.finish()));
        for other in [&b"GET\xff201\xff"[..], b"GET\xff200", b"GET\xff200\xff\0"] {
            let mut o = words_of(other);
            assert!(!stored.matches(&o.finish()), "{other:?}");
        }
    }

    #[test]
    fn short_loads_for_every_length() {
        let a: Vec<u8> = (1..=8).collect();
        for n in 0..=8 {
            let mut want = [0u8; 8];
            want[..n].copy_from_slice(&a[..n]);
            assert_eq!(load_short(&a[..n]), u64::from_le_bytes(want), "{n}");
        }
    }
}
