//! Sample lines written a word at a time, for both text encoders.
//!
//! A scrape writes tens of thousands of short lines, each a handful of short pieces: the
//! family's name, a series' label text, a number. Copying a piece of a few bytes with
//! `extend_from_slice` is a call to `memcpy` of a length it has to look at, and each `push`
//! stores the vector's length; here a [`Line`] keeps the write position in a register, every
//! piece comes from a source padded to whole words and is copied with unaligned whole-word
//! stores (16 bytes at a time, or 8), the position advanced by the piece's true length (the bytes
//! past it are overwritten by the next piece), and the vector's length is stored once, when the
//! line is done. One capacity check per piece, or per label set or bucket line. The sources:
//!
//! * [`Padded`] text: a family's name, its label prefixes (`name="`, `",name="`), a series'
//!   rendered labels and `name_bucket{labels,`, a histogram's `le="…"} ` tails — each kept
//!   zero-padded to a multiple of 16 bytes;
//! * a series key in word form (`key.rs`), whose values are already padded: each value is
//!   copied word by word, its end found by a test for the `0xFF` byte on the whole word
//!   ([`Line::key_labels`]), with no escaping scan when the family has no value that needs one;
//! * integers, whose digits (up to 8) are assembled in a register and stored at once
//!   ([`Line::u64`]).
//!
//! Nothing per series is kept: label text is rendered from the names and the key at each
//! scrape (ARCHITECTURE.md, *The series record*).

use crate::labels::escape_label_value;
use crate::model::{KeyLabels, Labels};

/// Appends to a `Vec<u8>` a word at a time; the vector's length is set when the `Line` drops.
///
/// Invariant: `len <= cap`, `ptr` and `cap` are the vector's buffer and capacity, and the
/// bytes `out.len()..len` have been written.
pub(crate) struct Line<'a> {
    out: &'a mut Vec<u8>,
    ptr: *mut u8,
    len: usize,
    cap: usize,
}

impl<'a> Line<'a> {
    #[inline(always)]
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            cap: out.capacity(),
            out,
        }
    }

    /// Makes sure `n` bytes past the position are allocated.
    #[inline(always)]
    fn room(&mut self, n: usize) {
        if self.cap - self.len < n {
            self.grow(n);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, n: usize) {
        self.with_vec(|out| out.reserve(n.max(4096).max(out.capacity() / 2)));
    }

    /// Runs `write` on the vector itself (for what is not written a word at a time).
    #[inline]
    pub(crate) fn with_vec<R>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        // SAFETY: `out.len()..len` has been written and `len <= cap` (the invariant).
        unsafe { self.out.set_len(self.len) };
        let r = write(self.out);
        self.ptr = self.out.as_mut_ptr();
        self.len = self.out.len();
        self.cap = self.out.capacity();
        r
    }

    /// Appends the first `n` (at most 8) bytes of `word`, little-endian, with one store.
    #[inline(always)]
    pub(crate) fn word(&mut self, word: u64, n: usize) {
        self.room(8);
        // SAFETY: `room(8)`.
        unsafe { self.word_unchecked(word, n) };
    }

    /// [`word`](Self::word) without the capacity check.
    ///
    /// # Safety
    /// 8 bytes past the position must be allocated (`room`).
    #[inline(always)]
    unsafe fn word_unchecked(&mut self, word: u64, n: usize) {
        // SAFETY: 8 bytes past `len` are allocated (the caller); `write_unaligned` needs no
        // alignment. The first `n.min(8)` of them are written bytes from now on.
        unsafe {
            self.ptr
                .add(self.len)
                .cast::<u64>()
                .write_unaligned(word.to_le())
        };
        self.len += n.min(8);
    }

    /// Appends one byte.
    #[inline(always)]
    pub(crate) fn byte(&mut self, b: u8) {
        self.word(b.into(), 1);
    }

    /// Appends `bytes`, at most 8 and known at compile time, with one store.
    #[inline(always)]
    pub(crate) fn small<const N: usize>(&mut self, bytes: &[u8; N]) {
        const { assert!(N <= 8) };
        let mut word = [0; 8];
        word[..N].copy_from_slice(bytes);
        self.word(u64::from_le_bytes(word), N);
    }

    /// Appends `bytes`: one store when they are at most 8 (a sample name's suffix).
    #[inline(always)]
    pub(crate) fn short(&mut self, bytes: &[u8]) {
        if bytes.len() <= 8 {
            let mut word = [0; 8];
            word[..bytes.len()].copy_from_slice(bytes);
            self.word(u64::from_le_bytes(word), bytes.len());
        } else {
            self.with_vec(|out| out.extend_from_slice(bytes));
        }
    }

    /// Appends `text`.
    #[inline(always)]
    pub(crate) fn put(&mut self, text: &Padded) {
        self.room(text.words.len());
        // SAFETY: `room` just above.
        unsafe { self.put_unchecked(text) };
    }

    /// [`put`](Self::put) without the capacity check.
    ///
    /// # Safety
    /// `text`'s padded length (`Padded::room`) past the position must be allocated.
    #[inline(always)]
    unsafe fn put_unchecked(&mut self, text: &Padded) {
        let (src, n) = (text.words.as_ptr(), text.words.len());
        let dst = self.ptr.wrapping_add(self.len);
        let mut at = 0;
        while at + 16 <= n {
            // SAFETY: `at + 16 <= n` bytes of `src` are the vector's, `n` bytes past `dst` are
            // allocated (the caller); no alignment needed.
            unsafe {
                let w = src.add(at).cast::<u128>().read_unaligned();
                dst.add(at).cast::<u128>().write_unaligned(w);
            }
            at += 16;
        }
        // `text.len <= n`, and the padding holds whole words: all of `text` was written.
        self.len += text.len.min(at);
    }

    /// Appends `v` in decimal.
    #[inline(always)]
    pub(crate) fn u64(&mut self, v: u64) {
        match digits(v) {
            Some((word, n)) => self.word(word, n),
            None => self.with_vec(|out| write_long_u64(out, v)),
        }
    }

    /// One histogram bucket's line: `head` (`name_bucket{labels,`), `tail` (`le="bound"} `),
    /// the cumulative count and a line feed, with one capacity check.
    #[inline(always)]
    pub(crate) fn bucket(&mut self, head: &Padded, tail: &Padded, count: u64) {
        let Some((word, n)) = digits(count) else {
            self.put(head);
            self.put(tail);
            self.u64(count);
            return self.byte(b'\n');
        };
        self.room(head.room() + tail.room() + 16);
        // SAFETY: each piece's room past the position is allocated (`room` above), in turn:
        // a piece advances the position by at most the room it used.
        unsafe {
            self.put_unchecked(head);
            self.put_unchecked(tail);
            self.word_unchecked(word, n);
            self.word_unchecked(b'\n'.into(), 1);
        }
    }

    /// Appends a series' `name="value",…` text from its family's names and its key's words
    /// (see the module docs). A family that has a value needing escaping takes the escaping
    /// path.
    #[inline(always)]
    pub(crate) fn key_labels(&mut self, prefixes: &mut Prefixes, labels: &KeyLabels<'_>) {
        if labels.escape() {
            return self.with_vec(|out| write_escaped_pairs(out, labels));
        }
        let (prefixes, prefixes_room) = prefixes.of(labels.names());
        let key = labels.key();
        // Every byte stored below: each prefix's room, each of the key's words (a value's words
        // are stored whole), the closing quote's word.
        self.room(prefixes_room + key.len() + 8);
        let (src, n) = (key.as_ptr(), key.len());
        let mut at = 0;
        // SAFETY (each store below): the `room` above covers them all, since each advances
        // the position by at most what it stored, and the loop reads each word of the key
        // at most once. The key's words are read in bounds: `at + 8 <= n`.
        for (i, prefix) in prefixes.iter().enumerate() {
            // A key of fewer values than names (none is stored, but a key is not trusted)
            // writes the pairs it has.
            if at + 8 > n {
                if i > 0 {
                    unsafe { self.word_unchecked(b'"'.into(), 1) };
                }
                return;
            }
            unsafe { self.put_unchecked(prefix) };
            while at + 8 <= n {
                let word = u64::from_le(unsafe { src.add(at).cast::<u64>().read_unaligned() });
                at += 8;
                // The value ends at its word's `0xFF` byte, the first whose complement is
                // zero (a borrow can only mark bytes above the first zero).
                let inverted = !word;
                let ends = inverted.wrapping_sub(0x0101_0101_0101_0101)
                    & !inverted
                    & 0x8080_8080_8080_8080;
                if ends != 0 {
                    unsafe { self.word_unchecked(word, ends.trailing_zeros() as usize / 8) };
                    break;
                }
                unsafe { self.word_unchecked(word, 8) };
            }
        }
        if !prefixes.is_empty() {
            unsafe { self.word_unchecked(b'"'.into(), 1) };
        }
    }
}

/// `v` in decimal, from 10^8 up: out of line, so that the encoders' many inlined [`Line::u64`]s
/// (every count, every whole-number value) do not each carry a copy of itoa's digit loop for
/// numbers an exposition rarely holds.
#[inline(never)]
fn write_long_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `v`'s decimal digits in one word, the most significant in the lowest byte, and how many
/// there are; `None` from 10^8 (more than a word).
#[inline(always)]
fn digits(v: u64) -> Option<(u64, usize)> {
    if v >= 100_000_000 {
        return None;
    }
    let (mut v, mut word, mut n) = (v, 0u64, 0);
    loop {
        word = (word << 8) | (u64::from(b'0') + v % 10);
        v /= 10;
        n += 1;
        if v == 0 {
            return Some((word, n));
        }
    }
}

impl Drop for Line<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: `out.len()..len` has been written and `len <= cap` (the invariant).
        unsafe { self.out.set_len(self.len) };
    }
}

/// Text kept zero-padded to a multiple of 16 bytes, so that it is copied with one 16-byte store
/// per 16 bytes.
#[derive(Clone, Default, Debug)]
pub(crate) struct Padded {
    /// The text, then zeros up to a multiple of 16 bytes.
    words: Vec<u8>,
    len: usize,
}

impl Padded {
    pub(crate) fn new(text: &[u8]) -> Self {
        let mut p = Padded::default();
        p.set(|line| line.with_vec(|out| out.extend_from_slice(text)));
        p
    }

    /// Replaces the text with what `write` appends to an empty line.
    #[inline(always)]
    pub(crate) fn set(&mut self, write: impl FnOnce(&mut Line<'_>)) {
        self.words.clear();
        let mut line = Line::new(&mut self.words);
        write(&mut line);
        self.len = line.len;
        // Zeros up to the next 16 bytes (copies move 16 at a time): two stores.
        let pad = self.len.next_multiple_of(16) - self.len;
        line.word(0, pad.min(8));
        line.word(0, pad - pad.min(8));
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &[u8] {
        &self.words[..self.len]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes copying it stores: its length padded to a multiple of 16.
    #[inline(always)]
    pub(crate) fn room(&self) -> usize {
        self.words.len()
    }
}

/// The label prefixes of one family's names: `a="` before the first value, `",b="` before each
/// next, built once per family and scrape (when a series' names are not the ones seen last).
#[derive(Default)]
pub(crate) struct Prefixes {
    /// The names these were built for (compared by address: the family's own slice).
    names: Option<(*const Box<str>, usize)>,
    each: Vec<Padded>,
    /// The room of all of `each`.
    room: usize,
}

impl Prefixes {
    /// Forgets the names (a new family begins).
    pub(crate) fn reset(&mut self) {
        self.names = None;
    }

    /// The prefixes of `names`, and the room of them all.
    #[inline(always)]
    fn of(&mut self, names: &[Box<str>]) -> (&[Padded], usize) {
        let id = (names.as_ptr(), names.len());
        if self.names != Some(id) {
            self.build(names);
        }
        (&self.each, self.room)
    }

    #[cold]
    #[inline(never)]
    fn build(&mut self, names: &[Box<str>]) {
        let id = (names.as_ptr(), names.len());
        {
            self.each.clear();
            for (i, n) in names.iter().enumerate() {
                let sep: &[u8] = if i == 0 { b"" } else { b"\"," };
                self.each
                    .push(Padded::new(&[sep, n.as_bytes(), b"=\""].concat()));
            }
            self.room = self.each.iter().map(Padded::room).sum();
            self.names = Some(id);
        }
    }
}

/// Appends `name="value",…` from `labels`, each value escaped.
#[cold]
#[inline(never)]
fn write_escaped_pairs(out: &mut Vec<u8>, labels: &KeyLabels<'_>) {
    write_pairs(out, labels.pairs());
}

/// Appends `name="value",…`, each value escaped.
fn write_pairs<'a>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    for (i, (n, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(out, v);
        out.push(b'"');
    }
}

#[inline(always)]
fn write_labels(line: &mut Line<'_>, prefixes: &mut Prefixes, labels: &Labels<'_>) {
    match labels {
        Labels::Key(k) => line.key_labels(prefixes, k),
        Labels::Rendered(s) => line.with_vec(|out| out.extend_from_slice(s.as_bytes())),
        Labels::Pairs(pairs) => line.with_vec(|out| {
            write_pairs(out, pairs.iter().map(|(n, v)| (&**n, &**v)));
        }),
    }
}

/// A series' label text, rendered once for all its sample lines: what both text encoders copy
/// into each line.
#[derive(Default)]
pub(crate) struct LabelText {
    prefixes: Prefixes,
    text: Padded,
}

impl LabelText {
    /// A new family begins: its names are not the last family's.
    pub(crate) fn family(&mut self) {
        self.prefixes.reset();
    }

    /// Renders `labels` (escaped `name="value",…`) as the text [`padded`](Self::padded)
    /// holds, for a series of several sample lines.
    #[inline]
    pub(crate) fn render(&mut self, labels: &Labels<'_>) {
        let prefixes = &mut self.prefixes;
        self.text.set(|line| write_labels(line, prefixes, labels));
    }

    /// Writes `labels` (escaped `name="value",…`) straight into `line`, for a series of one
    /// sample line.
    #[inline(always)]
    pub(crate) fn write(&mut self, line: &mut Line<'_>, labels: &Labels<'_>) {
        write_labels(line, &mut self.prefixes, labels);
    }

    /// Whether the series has no label.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The rendered text, padded.
    #[inline(always)]
    pub(crate) fn padded(&self) -> &Padded {
        &self.text
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &[u8] {
        self.text.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::words_of;

    fn rendered(labels: &Labels<'_>) -> String {
        let mut t = LabelText::default();
        t.render(labels);
        let mut out = b"x{".to_vec();
        Line::new(&mut out).put(t.padded());
        assert_eq!(&out[2..], t.text());
        String::from_utf8(out).unwrap()
    }

    /// A series key in word form, as a series record stores it, from its joined form.
    fn key(joined: &[u8]) -> Vec<u8> {
        crate::key::KeyRef {
            words: &words_of(joined),
        }
        .to_word_bytes()
    }

    fn names(names: &[&str]) -> Vec<Box<str>> {
        names.iter().map(|&n| n.into()).collect()
    }

    /// Plain values are copied a word at a time from the key, with values of every length
    /// around a word boundary; Miri checks the 8-byte stores.
    #[test]
    fn plain_values_are_copied_from_the_key_words() {
        let names = names(&["a", "bb", "c", "a_rather_long_label_name"]);
        let key = key(&[
            &b"\xff1234567\xff12345678\xff"[..],
            "123456789012345ü".as_bytes(),
            b"\xff",
        ]
        .concat());
        let labels = Labels::Key(KeyLabels::new(&names, &key, false));
        assert_eq!(
            rendered(&labels),
            "x{a=\"\",bb=\"1234567\",c=\"12345678\",a_rather_long_label_name=\"123456789012345ü\""
        );
        // The prefixes of the last names are reused, and rebuilt for other names.
        let mut t = LabelText::default();
        t.render(&labels);
        let other = self::names(&["z"]);
        let one = self::key(b"v\xff");
        t.render(&Labels::Key(KeyLabels::new(&other, &one, false)));
        assert_eq!(t.text(), b"z=\"v\"");
        // No names, no text; fewer values than names, the pairs there are.
        t.render(&Labels::Key(KeyLabels::new(&[], &[], false)));
        assert!(t.is_empty());
        let two = self::names(&["y", "z"]);
        t.render(&Labels::Key(KeyLabels::new(&two, &one, false)));
        assert_eq!(t.text(), b"y=\"v\"");
    }

    /// Labels written straight from the key at every fill of a buffer that has to grow.
    #[test]
    fn key_labels_fit_at_every_fill() {
        let names = names(&["method", "route"]);
        let key = key(b"GET\xff/api/v1/items/123\xff");
        let labels = KeyLabels::new(&names, &key, false);
        let mut prefixes = Prefixes::default();
        for fill in 0..24 {
            let mut out = Vec::with_capacity(fill + 1);
            out.resize(fill, b'.');
            Line::new(&mut out).key_labels(&mut prefixes, &labels);
            assert_eq!(&out[fill..], b"method=\"GET\",route=\"/api/v1/items/123\"");
        }
    }

    #[test]
    fn values_that_need_it_are_escaped() {
        let names = names(&["a", "b"]);
        let key = key(b"x\xff\"\\\n\xff");
        let labels = KeyLabels::new(&names, &key, true);
        assert_eq!(
            rendered(&Labels::Key(labels)),
            "x{a=\"x\",b=\"\\\"\\\\\\n\""
        );
    }

    #[test]
    fn other_sources_labels_and_none() {
        let pairs = [("k".into(), "a\"b".to_string())];
        assert_eq!(rendered(&Labels::Pairs(&pairs)), "x{k=\"a\\\"b\"");
        assert_eq!(rendered(&Labels::Rendered("a=\"b\"")), "x{a=\"b\"");
        let mut t = LabelText::default();
        t.render(&Labels::Rendered(""));
        assert!(t.is_empty());
    }

    #[test]
    fn integers_of_every_width() {
        for v in [0, 7, 10, 99, 12_345_678, 99_999_999, 100_000_000, u64::MAX] {
            let mut out = b"=".to_vec();
            Line::new(&mut out).u64(v);
            assert_eq!(out, format!("={v}").as_bytes());
        }
    }

    /// A bucket line's pieces share one capacity check; at every fill of the buffer, every
    /// store stays inside the allocation (Miri checks them).
    #[test]
    fn bucket_lines_fit_at_every_fill() {
        let head = Padded::new(b"h_bucket{path=\"/a/b/c/d\",");
        let tail = Padded::new(b"le=\"0.25\"} ");
        for fill in 0..24 {
            let mut out = Vec::with_capacity(fill + 40);
            out.resize(fill, b'.');
            let mut line = Line::new(&mut out);
            for count in [7, 12_345_678, 100_000_000] {
                line.bucket(&head, &tail, count);
            }
            drop(line);
            assert_eq!(
                &out[fill..],
                b"h_bucket{path=\"/a/b/c/d\",le=\"0.25\"} 7\n\
                  h_bucket{path=\"/a/b/c/d\",le=\"0.25\"} 12345678\n\
                  h_bucket{path=\"/a/b/c/d\",le=\"0.25\"} 100000000\n"
            );
        }
    }

    /// Writes past a buffer's capacity grow it; every store stays inside the allocation.
    #[test]
    fn words_grow_the_buffer_when_it_is_full() {
        let mut out = Vec::with_capacity(3);
        let p = Padded::new(b"0123456789abcdefghij");
        let mut line = Line::new(&mut out);
        for _ in 0..3 {
            line.put(&p);
        }
        line.u64(42);
        line.small(b"!");
        line.with_vec(|out| out.push(b'?'));
        line.byte(b'.');
        drop(line);
        assert_eq!(
            out,
            b"0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij42!?."
        );
    }
}
