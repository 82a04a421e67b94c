//! Series keys: how a lookup turns a label set's values into something to hash and compare.
//!
//! A series key is the label values, each followed by `0xFF` (a byte that never occurs in UTF-8,
//! so keys are unambiguous): the *joined* form, `GET\xff200\xff`, which the multiprocess file
//! records and [`KeyRef::to_bytes`] gives. Lookups and series records use the *word* form: each
//! value with its `0xFF` starts a fresh 8-byte word and is zero-padded to a whole one
//! (`GET\xff\0\0\0\0|200\xff\0\0\0\0`). Starting every value on a word boundary is what makes
//! writing a key cheap: a value given in one piece (every string, every formatted integer) is
//! loaded a word at a time straight from its bytes, its last partial word with at most two
//! overlapping loads, with no shifting of one value's bytes behind another's; and the words are
//! then hashed and compared with the stored series' words in place: no `memcpy` or `memcmp`
//! calls, no allocation. The padding costs a few bytes per value in each series record.
//!
//! The words depend only on the values, not on how a [`LabelValue`](crate::LabelValue) splits its
//! text into `write_str` calls (a value's later pieces are packed behind its first), so keys
//! rebuilt from joined bytes ([`words_of`]: the overflow series, a key read back from a file) hash
//! and compare like freshly written ones. The hash folds the words with a 128-bit multiply,
//! seeded per family at random as `foldhash` does, so label values a client controls cannot be
//! chosen to collide.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

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

/// Folds one word of a key into the hash state.
#[inline(always)]
fn mix(state: u64, word: u64) -> u64 {
    folded_multiply(state ^ word, MULTIPLIER)
}

/// A key's words: where a [`KeyCursor`] writes them, and the finished key.
pub(crate) struct KeyWords {
    inline: [MaybeUninit<u64>; INLINE_WORDS],
    /// Every complete word, once there are more than fit inline (then `inline` is unused).
    /// Initialised by the first spill, exactly when `words` exceeds `INLINE_WORDS`: a lookup of
    /// a short key neither creates nor drops a `Vec`. (A panic in a label value's `write_value`
    /// after a spill leaks the `Vec`: `words` is stored when the writing ends.)
    heap: MaybeUninit<Vec<u64>>,
    /// Words and joined length, as the last cursor left them.
    words: usize,
    len: usize,
    /// The hash state (see [`KeyRef::hash`]): the seed, then the words folded in as the
    /// cursors write them, so that a lookup does not read its words back to hash them.
    state: u64,
}

/// Writes a key into a [`KeyWords`]: the counters and the word in progress.
///
/// A separate value from the words it writes, holding them by pointer, so that once a lookup is
/// inlined the compiler keeps the cursor in registers (the words, indexed at run time, must be
/// in memory; a struct holding both would be kept in memory whole): a value of one piece is
/// then a few loads, shifts and one store per word (see the module docs).
pub(crate) struct KeyCursor {
    out: NonNull<KeyWords>,
    words: usize,
    /// The incomplete last word of the value being written, little-endian, `pending_len` bytes
    /// of it (always below 8).
    pending: u64,
    pending_len: usize,
    /// The length of the joined form written so far.
    len: usize,
    /// The hash state of the words written so far (see [`KeyRef::hash`]).
    state: u64,
}

/// Stores word number `at` past the inline capacity: in the heap words, created from the
/// inline ones at the first spill (`at == INLINE_WORDS`).
#[cold]
#[inline(never)]
fn spill(out: &mut KeyWords, at: usize, word: u64) {
    if at == INLINE_WORDS {
        // SAFETY: all `INLINE_WORDS` inline words were written before the first spill.
        let mut heap: Vec<u64> = out
            .inline
            .iter()
            .map(|w| unsafe { w.assume_init() })
            .collect();
        heap.push(word);
        out.heap.write(heap);
    } else {
        // SAFETY: `at > INLINE_WORDS`: the first spill initialised `heap`.
        unsafe { out.heap.assume_init_mut() }.push(word);
    }
}

impl Drop for KeyWords {
    #[inline(always)]
    fn drop(&mut self) {
        if self.words > INLINE_WORDS {
            // SAFETY: initialised by the first spill (see `heap`), dropped once, here.
            unsafe { self.heap.assume_init_drop() };
        }
    }
}

impl KeyWords {
    /// An empty key hashed under seed 0 (for keys that are only compared or rendered; a key
    /// built from this is hashed with [`KeyRef::hash`]).
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self::seeded(0)
    }

    /// An empty key whose [`hash`](Self::hash) is taken under `seed` as it is written.
    #[inline(always)]
    pub(crate) fn seeded(seed: u64) -> Self {
        Self {
            inline: [MaybeUninit::uninit(); INLINE_WORDS],
            heap: MaybeUninit::uninit(),
            words: 0,
            len: 0,
            state: seed,
        }
    }

    /// The finished key's hash under the seed it was made with: what
    /// `self.finish().hash(seed)` computes, without reading the words again.
    #[inline(always)]
    pub(crate) fn hash(&self) -> u64 {
        self.state
    }

    /// The finished key: the words the cursors wrote (an unfinished last value zero-padded,
    /// as the keys of tests and benchmarks may end) and the length of its joined form.
    #[inline(always)]
    pub(crate) fn finish(&self) -> KeyRef<'_> {
        let words = if self.words <= INLINE_WORDS {
            // SAFETY: the first `words` inline words were written by `KeyCursor::push_word`.
            unsafe { std::slice::from_raw_parts(self.inline.as_ptr().cast(), self.words) }
        } else {
            // SAFETY: more than `INLINE_WORDS` words: initialised by the first spill.
            unsafe { self.heap.assume_init_ref() }
        };
        KeyRef {
            words,
            len: self.len,
        }
    }
}

impl KeyCursor {
    /// A cursor appending to `out`.
    ///
    /// # Safety
    /// `out` must stay valid, and be accessed only through this cursor, for as long as the
    /// cursor is used (`labels::KeyWriter` holds the borrow for as long as it holds the cursor).
    #[inline(always)]
    pub(crate) unsafe fn new(out: &mut KeyWords) -> Self {
        Self {
            words: out.words,
            len: out.len,
            state: out.state,
            out: NonNull::from(out),
            pending: 0,
            pending_len: 0,
        }
    }

    /// Appends a piece of the current value (never a `0xFF`: values are UTF-8). The first
    /// piece of a value (the usual, only one) starts on a word boundary: whole words are loaded
    /// as they are, the rest kept in a register.
    #[inline(always)]
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        if self.pending_len == 0 {
            if bytes.len() < 8 {
                self.pending = load_short(bytes);
            } else {
                let words = bytes.chunks_exact(8);
                let rest = words.remainder().len();
                for word in words {
                    self.push_word(u64::from_le_bytes(word.try_into().expect("8 bytes")));
                }
                // The last `rest` bytes, as the high bytes of the value's last 8: one load.
                let last = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().expect("8"));
                self.pending = if rest == 0 {
                    0
                } else {
                    last >> (64 - 8 * rest)
                };
            }
            self.pending_len = bytes.len() % 8;
        } else {
            self.write_behind(bytes);
        }
    }

    /// A later piece of a value: packed behind the bytes already pending. (After inlining, the
    /// compiler sees that a value's first piece never gets here.)
    #[inline]
    fn write_behind(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let fill = (8 - self.pending_len).min(bytes.len());
            self.pending |= load_short(&bytes[..fill]) << (8 * self.pending_len);
            self.pending_len += fill;
            bytes = &bytes[fill..];
            if self.pending_len == 8 {
                let word = self.pending;
                self.push_word(word);
                self.pending = 0;
                self.pending_len = 0;
            }
        }
    }

    /// Ends the current value: its `0xFF`, then zeros to the end of the word. The key made of
    /// the values ended so far is complete in the `KeyWords` once [`store`](Self::store)d.
    #[inline(always)]
    pub(crate) fn end_value(&mut self) {
        let word = self.pending | (u64::from(KEY_SEPARATOR) << (8 * self.pending_len));
        self.push_word(word);
        self.pending = 0;
        self.pending_len = 0;
        self.len += 1;
    }

    /// Stores the counters and the hash state in the `KeyWords` (once, when the writing is
    /// done: the cursor keeps them in registers meanwhile). The words themselves are stored as
    /// they are written.
    #[inline(always)]
    pub(crate) fn store(&mut self) {
        // SAFETY: `out` is valid and ours alone while the cursor is used (see `new`).
        let out = unsafe { self.out.as_mut() };
        out.words = self.words;
        out.len = self.len;
        out.state = self.state;
    }

    #[inline(always)]
    fn push_word(&mut self, word: u64) {
        // SAFETY: `out` is valid and ours alone until `flush` (see `new`).
        let out = unsafe { self.out.as_mut() };
        self.state = mix(self.state, word);
        if self.words < INLINE_WORDS {
            out.inline[self.words] = MaybeUninit::new(word);
        } else {
            spill(out, self.words, word);
        }
        self.words += 1;
    }

    /// Completes a key whose last value was not ended (tests, `words_of`): stores the word in
    /// progress, zero-padded.
    pub(crate) fn flush(&mut self) {
        if self.pending_len > 0 {
            let last = self.pending;
            self.push_word(last);
            self.pending = 0;
            self.pending_len = 0;
        }
        self.store();
    }
}

/// A complete key in word form (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRef<'a> {
    pub(crate) words: &'a [u64],
    /// Length of the joined form in bytes.
    pub(crate) len: usize,
}

impl KeyRef<'_> {
    /// The key's hash under `seed`: each word folded into the state with a 128-bit multiply,
    /// nothing else (the words determine the joined length: each value ends in a `0xFF`). A
    /// lookup computes the same as it writes the key, in [`KeyCursor`], and reads it with
    /// [`KeyWords::hash`].
    #[inline(always)]
    pub(crate) fn hash(&self, seed: u64) -> u64 {
        let mut state = seed;
        for &w in self.words {
            state = mix(state, w);
        }
        state
    }

    /// The key's words as bytes, as a series record stores them.
    #[cfg(test)]
    pub(crate) fn to_word_bytes(self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Calls `f` with the key's joined form, built on the stack when it is short (creating a
    /// series then allocates only its record).
    #[cfg_attr(not(all(feature = "multiprocess", unix)), allow(dead_code))]
    pub(crate) fn with_joined<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut buf = [0u8; 256];
        if self.len > buf.len() {
            return f(&self.to_bytes());
        }
        let bytes = self.words.iter().flat_map(|w| w.to_le_bytes());
        let mut n = 0;
        for b in joined_parts(bytes).take(self.len) {
            buf[n] = b;
            n += 1;
        }
        f(&buf[..n])
    }

    /// The key's joined form.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for part in joined_parts(self.words.iter().flat_map(|w| w.to_le_bytes())) {
            out.push(part);
        }
        out.truncate(self.len);
        out
    }
}

/// The joined form of the bytes of a word-form key: the padding after each `0xFF` dropped (an
/// unfinished last value keeps its zero padding; callers truncate to the joined length).
fn joined_parts(bytes: impl Iterator<Item = u8>) -> impl Iterator<Item = u8> {
    let mut skipping = false;
    bytes.enumerate().filter_map(move |(i, b)| {
        if i % 8 == 0 {
            skipping = false;
        }
        if skipping {
            return None;
        }
        skipping = b == KEY_SEPARATOR;
        Some(b)
    })
}

/// The values of a key in word form given as its bytes (a series record's key), in order.
pub(crate) fn word_form_values(padded: &[u8]) -> impl Iterator<Item = &str> {
    let mut rest = padded;
    std::iter::from_fn(move || {
        let end = rest.iter().position(|&b| b == KEY_SEPARATOR)?;
        let value = std::str::from_utf8(&rest[..end]).unwrap_or_default();
        rest = &rest[((end + 1).div_ceil(8) * 8).min(rest.len())..];
        Some(value)
    })
}

/// Whether a stored key (`stored`: its words as little-endian `u64`s, as a series record holds
/// them) is `key`: word count, then the words compared in place. Keys are a word or a few: a
/// plain loop beats a call to `memcmp`.
#[inline(always)]
pub(crate) fn stored_key_matches(stored: &[u64], key: &KeyRef<'_>) -> bool {
    stored.len() == key.words.len()
        && stored
            .iter()
            .zip(key.words)
            .all(|(&s, &k)| u64::from_le(s) == k)
}

/// The words of a key given in joined form.
pub(crate) fn words_of(bytes: &[u8]) -> KeyWords {
    let mut k = KeyWords::new();
    // SAFETY: `k` is used only through the cursor until it is flushed.
    let mut c = unsafe { KeyCursor::new(&mut k) };
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&b| b == KEY_SEPARATOR) {
        c.write(&rest[..end]);
        c.end_value();
        rest = &rest[end + 1..];
    }
    c.write(rest);
    c.flush();
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
            // The last byte, and for 2 or 3 bytes the first two (overlapping the last when
            // n == 2; overlapping bytes agree).
            let last = u64::from(*p.add(n - 1)) << (8 * (n - 1));
            if n >= 2 {
                u64::from(p.cast::<u16>().read_unaligned().to_le()) | last
            } else {
                last
            }
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of `values`, each written in the pieces given.
    fn key(values: &[&[&str]]) -> (Vec<u64>, usize, Vec<u8>) {
        let mut k = KeyWords::new();
        // SAFETY: `k` is used only through the cursor until it is flushed.
        let mut c = unsafe { KeyCursor::new(&mut k) };
        for pieces in values {
            for p in *pieces {
                c.write(p.as_bytes());
            }
            c.end_value();
        }
        c.flush();
        let r = k.finish();
        (r.words.to_vec(), r.len, r.to_bytes())
    }

    #[test]
    fn words_ignore_how_values_are_split_and_round_trip_to_joined_bytes() {
        let text: String = ('a'..='z').chain('0'..='9').cycle().take(40).collect();
        // Fewer lengths under Miri, which interprets every instruction; still every boundary.
        let lens: &[usize] = if cfg!(miri) {
            &[0, 3, 8, 9, 17]
        } else {
            &[0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 25, 40]
        };
        for &len in lens {
            let v = &text[..len];
            let whole = key(&[&["GET"], &[v], &["200"]]);
            let joined = [&b"GET\xff"[..], v.as_bytes(), b"\xff200\xff"].concat();
            assert_eq!(whole.2, joined, "len {len}");
            words_of(&joined)
                .finish()
                .with_joined(|b| assert_eq!(b, joined, "len {len}"));
            assert_eq!(whole.1, joined.len());
            for split in 0..=len {
                for split2 in split..=len {
                    let pieces = [&v[..split], &v[split..split2], &v[split2..]];
                    assert_eq!(
                        key(&[&["GET"], &pieces, &["200"]]),
                        whole,
                        "{split} {split2}"
                    );
                }
            }
            let rebuilt = words_of(&joined);
            let rebuilt = rebuilt.finish();
            assert_eq!(
                (rebuilt.words.to_vec(), rebuilt.len),
                (whole.0.clone(), whole.1)
            );
            let bytes = rebuilt.to_word_bytes();
            let values: Vec<_> = word_form_values(&bytes).collect();
            assert_eq!(values, ["GET", v, "200"]);
        }
    }

    #[test]
    fn each_value_starts_a_word() {
        let (words, len, _) = key(&[&["GET"], &["12345678"], &[""]]);
        assert_eq!(len, 4 + 9 + 1);
        assert_eq!(
            words,
            [
                u64::from_le_bytes(*b"GET\xff\0\0\0\0"),
                u64::from_le_bytes(*b"12345678"),
                0xFF,
                0xFF
            ]
        );
    }

    #[test]
    fn long_keys_spill_to_the_heap_and_stay_whole() {
        let long = "x".repeat(8 * INLINE_WORDS + 3);
        let (words, len, joined) = key(&[&[&long], &["a"]]);
        assert_eq!(words.len(), INLINE_WORDS + 1 + 1);
        assert_eq!(len, long.len() + 3);
        assert_eq!(joined.len(), len);
    }

    #[test]
    fn hashes_depend_on_content_length_and_seed() {
        let mut seen = std::collections::HashSet::new();
        for s in [
            &b""[..],
            b"\xff",
            b"\0\xff",
            b"\0\0\xff",
            b"a\xff",
            b"b\xff",
            b"ab\xff",
            b"ba\xff",
            b"a\xffb\xff",
            b"GET\xff200\xff",
            b"GET\xff201\xff",
        ] {
            let k = words_of(s);
            assert!(seen.insert(k.finish().hash(1)), "{s:?}");
        }
        let (a, b) = (words_of(b"GET\xff"), words_of(b"GET\xff"));
        assert_ne!(a.finish().hash(1), b.finish().hash(2));
    }

    /// The hash a lookup takes as it writes (`KeyWords::hash`) is the hash of the finished
    /// words, however the values were split into pieces and however long they are.
    #[test]
    fn hashes_taken_while_writing_match_hashes_of_the_words() {
        let long = "y".repeat(8 * INLINE_WORDS + 5);
        for values in [
            &[][..],
            &[""],
            &["GET", "200"],
            &["GET", "/api/v1/users/{id}", "200"],
            &["12345678", "", "\u{ff}\\"],
            &[long.as_str(), "a"],
        ] {
            for split in [0, 1, 5] {
                let mut k = KeyWords::seeded(42);
                // SAFETY: `k` is used only through the cursor until it is stored.
                let mut c = unsafe { KeyCursor::new(&mut k) };
                for v in values {
                    let at = split.min(v.len());
                    c.write(&v.as_bytes()[..at]);
                    c.write(&v.as_bytes()[at..]);
                    c.end_value();
                }
                c.store();
                assert_eq!(k.hash(), k.finish().hash(42), "{values:?} {split}");
                assert_ne!(k.hash(), k.finish().hash(43), "{values:?} {split}");
            }
        }
    }

    #[test]
    fn stored_keys_match_only_themselves() {
        let a = words_of(b"GET\xff200\xff");
        let stored: Vec<u64> = a.finish().words.iter().map(|w| w.to_le()).collect();
        let mut same = KeyWords::new();
        // SAFETY: `same` is used only through the cursor until it is flushed.
        let mut c = unsafe { KeyCursor::new(&mut same) };
        c.write(b"GET");
        c.end_value();
        c.write(b"2");
        c.write(b"00");
        c.end_value();
        c.flush();
        assert!(stored_key_matches(&stored, &same.finish()));
        for other in [&b"GET\xff201\xff"[..], b"GET\xff200", b"GET\xff200\xff\xff"] {
            let o = words_of(other);
            assert!(!stored_key_matches(&stored, &o.finish()), "{other:?}");
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
