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
use std::ptr::{self, NonNull};

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
///
/// The full 128-bit product, folded, not a cheaper 64-bit `(state ^ word) * K`: that one carries
/// a flipped top bit of a word through to its product whatever the seed, where the next word's
/// flipped top bit cancels it, so `["abcdefg", "hijklmn\x7fopqrstu"]` and
/// `["abcdefg\x7fhijklmn", "opqrstu"]` (a `0xFF` against a DEL closing two consecutive words)
/// would collide in every family (BENCHMARKS.md, issue 12.1, branch `lookup4`).
#[inline(always)]
fn mix(state: u64, word: u64) -> u64 {
    folded_multiply(state ^ word, MULTIPLIER)
}

/// Where a [`KeyCursor`] writes a key's words: on the stack, or, for a key longer than
/// `INLINE_WORDS` words, in a heap block the cursor moves them to (a cold path; a lookup of a
/// short key neither allocates nor frees).
pub(crate) struct KeyWords {
    inline: MaybeUninit<[u64; INLINE_WORDS]>,
    /// The heap block of a long key, from a `Vec<u64>` of capacity `heap_cap` (its length left
    /// at 0: the cursor writes the words through a pointer); null until the first spill.
    heap: *mut u64,
    /// Initialised with `heap`: a lookup of a short key writes only the null `heap`.
    heap_cap: MaybeUninit<usize>,
}

/// Writes a key into a [`KeyWords`]: where the next word goes, the word in progress, the hash.
///
/// A separate value from the words it writes, holding them by pointer, so that once a lookup is
/// inlined the compiler keeps the cursor in registers (the words, indexed at run time, must be
/// in memory; a struct holding both would be kept in memory whole): a value of one piece is
/// then a few loads, shifts and one store per word (see the module docs). The finished key is
/// read from the cursor ([`words`](Self::words), [`hash`](Self::hash)): nothing is stored back,
/// and the joined length, which only a new series needs, is not counted ([`KeyRef::len`]).
pub(crate) struct KeyCursor {
    out: NonNull<KeyWords>,
    /// The words written so far: `out`'s inline words, or its heap block after a spill. There
    /// is room for at least the next word: the cursor calls [`spill`] each time `words` reaches
    /// a multiple of `INLINE_WORDS` (a test of the count's low bits, not a comparison with a
    /// capacity kept in a register).
    buf: NonNull<u64>,
    words: usize,
    /// The incomplete last word of the value being written, little-endian: `pending_len` bytes
    /// (always below 8), then the value's `0xFF` should it end here, then zeros. Ending a value
    /// is then a store of this word, its separator placed by the loads of its last bytes.
    pending: u64,
    pending_len: usize,
    /// The hash state of the words written so far (see [`KeyRef::hash`]).
    state: u64,
}

/// Makes room for `INLINE_WORDS` more words after the `words` at `buf`: when they fill `buf`
/// (the inline words, or the heap block), moves them to a heap block twice as large, owned by
/// `out`. Returns where the words now are.
#[cold]
#[inline(never)]
fn spill(out: NonNull<KeyWords>, buf: NonNull<u64>, words: usize) -> NonNull<u64> {
    // SAFETY: `out` is valid (see `KeyCursor::new`); read through the raw pointer (see below).
    let heap = unsafe { (*out.as_ptr()).heap };
    // SAFETY: as above; `heap_cap` is initialised once `heap` is not null.
    if !heap.is_null() && words + INLINE_WORDS <= unsafe { (*out.as_ptr()).heap_cap.assume_init() }
    {
        return buf;
    }
    let mut heap = Vec::<u64>::with_capacity(2 * words);
    // SAFETY: the cursor wrote `words` words at `buf`.
    heap.extend_from_slice(unsafe { std::slice::from_raw_parts(buf.as_ptr(), words) });
    let mut heap = std::mem::ManuallyDrop::new(heap);
    let (ptr, cap) = (heap.as_mut_ptr(), heap.capacity());
    // SAFETY: `out` is valid and ours alone while the cursor is used (see `KeyCursor::new`);
    // its fields are reached through the raw pointer, not a reference, so `buf` (which may
    // point into `out.inline`) stays valid. The previous heap block, if any, is `buf`, copied
    // above and no longer used.
    unsafe {
        let old = (*out.as_ptr()).heap;
        if !old.is_null() {
            drop(Vec::from_raw_parts(
                old,
                0,
                (*out.as_ptr()).heap_cap.assume_init(),
            ));
        }
        (*out.as_ptr()).heap = ptr;
        (*out.as_ptr()).heap_cap = MaybeUninit::new(cap);
    }
    NonNull::new(ptr).expect("a Vec's pointer is never null")
}

impl Drop for KeyWords {
    #[inline(always)]
    fn drop(&mut self) {
        if !self.heap.is_null() {
            // SAFETY: made by `spill` from a `Vec<u64>` of this capacity (initialised with
            // `heap`), dropped once, here.
            drop(unsafe { Vec::from_raw_parts(self.heap, 0, self.heap_cap.assume_init()) });
        }
    }
}

impl KeyWords {
    /// Room for a key, on the stack.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        let mut k = MaybeUninit::<Self>::uninit();
        let p = k.as_mut_ptr();
        // SAFETY: `heap` is the one field to initialise: `inline` and `heap_cap` are
        // `MaybeUninit`. (Built in place rather than as a struct literal: LLVM widened the
        // literal's null into a `memset` of the inline words too, 18 stores per lookup.)
        unsafe {
            ptr::addr_of_mut!((*p).heap).write(ptr::null_mut());
            k.assume_init()
        }
    }
}

impl KeyCursor {
    /// A cursor writing a key into `out`, hashed under `seed` as it is written.
    ///
    /// # Safety
    /// `out` must stay valid, and be accessed only through this cursor, for as long as the
    /// cursor and the words it hands out are used (`labels::KeyWriter` holds the borrow for
    /// as long as it holds the cursor, and the key it finishes borrows it too).
    #[inline(always)]
    pub(crate) unsafe fn new(out: &mut KeyWords, seed: u64) -> Self {
        let out = NonNull::from(out);
        // SAFETY: a field of a valid `KeyWords`, reached without a reference (see `spill`).
        let inline = unsafe { ptr::addr_of_mut!((*out.as_ptr()).inline) };
        Self {
            out,
            buf: NonNull::new(inline.cast::<u64>()).expect("a field's address is not null"),
            words: 0,
            pending: u64::from(KEY_SEPARATOR),
            pending_len: 0,
            state: seed,
        }
    }

    /// Appends a piece of the current value (never a `0xFF`: values are UTF-8). The first
    /// piece of a value (the usual, only one) starts on a word boundary: whole words are loaded
    /// as they are, the rest kept in a register.
    #[inline(always)]
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        if self.pending_len == 0 {
            if bytes.len() < 8 {
                self.pending = load_ended(bytes);
            } else {
                let words = bytes.chunks_exact(8);
                let rest = words.remainder().len();
                for word in words {
                    self.push_word(u64::from_le_bytes(word.try_into().expect("8 bytes")));
                }
                // The last `rest` bytes, as the high bytes of the value's last 8: one load.
                // With the separator put above them and the whole shifted down, the word in
                // progress in one shift, by 1 to 8 bytes, `rest == 0` included (it leaves the
                // separator alone): no branch or select on `rest`.
                let last = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().expect("8"));
                self.pending = ((last >> 8) | (u64::from(KEY_SEPARATOR) << 56)) >> (56 - 8 * rest);
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
        self.pending ^= u64::from(KEY_SEPARATOR) << (8 * self.pending_len);
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
        self.pending |= u64::from(KEY_SEPARATOR) << (8 * self.pending_len);
    }

    /// Ends the current value: its `0xFF`, then zeros to the end of the word (the word in
    /// progress already holds them).
    #[inline(always)]
    pub(crate) fn end_value(&mut self) {
        let word = self.pending;
        self.push_word(word);
        self.pending = u64::from(KEY_SEPARATOR);
        self.pending_len = 0;
    }

    #[inline(always)]
    fn push_word(&mut self, word: u64) {
        self.state = mix(self.state, word);
        // SAFETY: there is room for the word at `buf` (see `buf`).
        unsafe { self.buf.add(self.words).write(word) };
        self.words += 1;
        if self.words % INLINE_WORDS == 0 {
            self.buf = spill(self.out, self.buf, self.words);
        }
    }

    /// The hash of the words written so far: what [`KeyRef::hash`] computes of them under the
    /// cursor's seed, without reading them again.
    #[inline(always)]
    pub(crate) fn hash(&self) -> u64 {
        self.state
    }

    /// The words written so far, borrowed from the `KeyWords` the cursor writes into.
    ///
    /// # Safety
    /// `'a` must not outlive that `KeyWords`' borrow (see [`new`](Self::new)), and the cursor
    /// must not write again while the words are used.
    #[inline(always)]
    pub(crate) unsafe fn words<'a>(&self) -> &'a [u64] {
        // SAFETY: `words` words were written at `buf`, which the caller keeps valid for `'a`.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr(), self.words) }
    }

    /// Completes a key whose last value was not ended (`words_of`, tests): writes the word in
    /// progress, zero-padded.
    pub(crate) fn flush(&mut self) {
        if self.pending_len > 0 {
            let last = self.pending ^ (u64::from(KEY_SEPARATOR) << (8 * self.pending_len));
            self.push_word(last);
            self.pending = u64::from(KEY_SEPARATOR);
            self.pending_len = 0;
        }
    }
}

/// A complete key in word form (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRef<'a> {
    pub(crate) words: &'a [u64],
}

impl KeyRef<'_> {
    /// The key's hash under `seed`: each word folded into the state with a 128-bit multiply,
    /// nothing else (the words determine the joined length: each value ends in a `0xFF`). A
    /// lookup computes the same as it writes the key, in [`KeyCursor`].
    #[inline(always)]
    pub(crate) fn hash(&self, seed: u64) -> u64 {
        let mut state = seed;
        for &w in self.words {
            state = mix(state, w);
        }
        state
    }

    /// The length of the joined form in bytes: each word up to and including its `0xFF`, the
    /// last of a value (the other words of a value have none: values are UTF-8), or all 8 of
    /// it. Counted from the words when a series is created, rather than by every lookup. (The
    /// zero padding of an unfinished last value, in keys of tests, counts.)
    pub(crate) fn len(&self) -> usize {
        self.words
            .iter()
            .map(|w| {
                let bytes = w.to_le_bytes();
                bytes
                    .iter()
                    .position(|&b| b == KEY_SEPARATOR)
                    .map_or(8, |i| i + 1)
            })
            .sum()
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
        let len = self.len();
        if len > buf.len() {
            return f(&self.to_bytes());
        }
        let bytes = self.words.iter().flat_map(|w| w.to_le_bytes());
        let mut n = 0;
        for b in joined_parts(bytes).take(len) {
            buf[n] = b;
            n += 1;
        }
        f(&buf[..n])
    }

    /// The key's joined form.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        joined_parts(self.words.iter().flat_map(|w| w.to_le_bytes())).collect()
    }
}

/// The joined form of the bytes of a word-form key: the padding after each `0xFF` dropped (an
/// unfinished last value keeps its zero padding, which [`KeyRef::len`] counts too).
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

/// The words of a key given in joined form, written as a lookup writes them.
pub(crate) fn words_of(bytes: &[u8]) -> Vec<u64> {
    let mut k = KeyWords::new();
    // SAFETY: `k` is used only through the cursor, and outlives the words read from it.
    let mut c = unsafe { KeyCursor::new(&mut k, 0) };
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&b| b == KEY_SEPARATOR) {
        c.write(&rest[..end]);
        c.end_value();
        rest = &rest[end + 1..];
    }
    c.write(rest);
    c.flush();
    // SAFETY: as above; the cursor writes no more.
    unsafe { c.words() }.to_vec()
}

/// Loads fewer than 8 bytes and a `0xFF` after them into a little-endian word: what
/// [`load_short`] and an OR of the separator give, the separator folded into the loads of the
/// last bytes.
#[inline(always)]
fn load_ended(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n < 8);
    let p = b.as_ptr();
    let sep = u64::from(KEY_SEPARATOR);
    // SAFETY: every read below is at an offset below `n`.
    unsafe {
        if n >= 4 {
            let lo = u64::from(p.cast::<u32>().read_unaligned().to_le());
            let hi = u64::from(p.add(n - 4).cast::<u32>().read_unaligned().to_le()) | sep << 32;
            // As in `load_short`; `hi` carries the separator to byte `n`.
            lo | (hi << (8 * (n - 4)))
        } else if n > 0 {
            let last = (u64::from(*p.add(n - 1)) | sep << 8) << (8 * (n - 1));
            if n >= 2 {
                u64::from(p.cast::<u16>().read_unaligned().to_le()) | last
            } else {
                last
            }
        } else {
            sep
        }
    }
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
        // SAFETY: `k` is used only through the cursor, and outlives the words read from it.
        let mut c = unsafe { KeyCursor::new(&mut k, 0) };
        for pieces in values {
            for p in *pieces {
                c.write(p.as_bytes());
            }
            c.end_value();
        }
        c.flush();
        // SAFETY: as above.
        let r = KeyRef {
            words: unsafe { c.words() },
        };
        (r.words.to_vec(), r.len(), r.to_bytes())
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
            KeyRef {
                words: &words_of(&joined),
            }
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
            let rebuilt = KeyRef { words: &rebuilt };
            assert_eq!(
                (rebuilt.words.to_vec(), rebuilt.len()),
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
        // One spill, and two (the heap block moved to a larger one).
        for extra in [3, 2 * 8 * INLINE_WORDS + 1] {
            let long = "x".repeat(8 * INLINE_WORDS + extra);
            let (words, len, joined) = key(&[&[&long], &["a"]]);
            assert_eq!(words.len(), long.len() / 8 + 1 + 1);
            assert_eq!(len, long.len() + 3);
            assert_eq!(joined, [long.as_bytes(), b"\xffa\xff"].concat());
        }
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
            assert!(seen.insert(KeyRef { words: &k }.hash(1)), "{s:?}");
        }
        let k = words_of(b"GET\xff");
        assert_ne!(KeyRef { words: &k }.hash(1), KeyRef { words: &k }.hash(2));
        // Two keys whose words differ only in the top bits of two consecutive words: a 64-bit
        // multiply per word would collide them under every seed (see `mix`).
        let a = words_of(b"abcdefg\xffhijklmn\x7fopqrstu\xff");
        let b = words_of(b"abcdefg\x7fhijklmn\xffopqrstu\xff");
        assert_eq!(a.len(), b.len());
        let differ: Vec<u64> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
        assert_eq!(differ, [1 << 63, 1 << 63, 0]);
        for seed in [0, 1, 0x1234_5678_9abc_def0] {
            assert_ne!(
                KeyRef { words: &a }.hash(seed),
                KeyRef { words: &b }.hash(seed)
            );
        }
    }

    /// The hash a lookup takes as it writes (`KeyCursor::hash`) is the hash of the finished
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
                let mut k = KeyWords::new();
                // SAFETY: `k` is used only through the cursor, and outlives the words read.
                let mut c = unsafe { KeyCursor::new(&mut k, 42) };
                for v in values {
                    let at = split.min(v.len());
                    c.write(&v.as_bytes()[..at]);
                    c.write(&v.as_bytes()[at..]);
                    c.end_value();
                }
                // SAFETY: as above.
                let key = KeyRef {
                    words: unsafe { c.words() },
                };
                assert_eq!(c.hash(), key.hash(42), "{values:?} {split}");
                assert_ne!(c.hash(), key.hash(43), "{values:?} {split}");
            }
        }
    }

    #[test]
    fn stored_keys_match_only_themselves() {
        let a = words_of(b"GET\xff200\xff");
        let stored: Vec<u64> = a.iter().map(|w| w.to_le()).collect();
        let mut same = KeyWords::new();
        // SAFETY: `same` is used only through the cursor, and outlives the words read.
        let mut c = unsafe { KeyCursor::new(&mut same, 0) };
        c.write(b"GET");
        c.end_value();
        c.write(b"2");
        c.write(b"00");
        c.end_value();
        // SAFETY: as above.
        let words = unsafe { c.words() };
        assert!(stored_key_matches(&stored, &KeyRef { words }));
        for other in [&b"GET\xff201\xff"[..], b"GET\xff200", b"GET\xff200\xff\xff"] {
            let o = words_of(other);
            assert!(
                !stored_key_matches(&stored, &KeyRef { words: &o }),
                "{other:?}"
            );
        }
    }

    #[test]
    fn short_loads_for_every_length() {
        let a: Vec<u8> = (1..=8).collect();
        for n in 0..=8 {
            let mut want = [0u8; 8];
            want[..n].copy_from_slice(&a[..n]);
            assert_eq!(load_short(&a[..n]), u64::from_le_bytes(want), "{n}");
            if n < 8 {
                want[n] = KEY_SEPARATOR;
                assert_eq!(load_ended(&a[..n]), u64::from_le_bytes(want), "{n}");
            }
        }
    }
}
