//! Label sets and label values.
//!
//! A [`LabelSet`] knows its label *names* at compile time (a derived struct) or gets them once
//! when its family is built (arrays of values: `[&str; 2]`); each instance only supplies
//! *values*. A lookup hashes those values, then compares them in place with the stored key of
//! the series it finds (see `key.rs`); nothing is copied or allocated unless the series is new.
//!
//! Sets whose every value has a fixed, known cardinality (enums deriving `LabelValue`, `bool`)
//! report it through [`LabelSet::CARDINALITY`]; their families index a dense array instead of
//! hashing.

use std::borrow::Cow;

pub(crate) use crate::key::KEY_SEPARATOR;
use std::marker::PhantomData;

use crate::key::{KeyCursor, KeyRef, KeyWords};

/// Writes one label value. Handed to [`LabelValue::write_value`].
pub struct ValueWriter<'a> {
    key: &'a mut KeyCursor,
}

impl ValueWriter<'_> {
    /// Appends text to the value being written, in as many pieces as convenient. Any UTF-8 is
    /// allowed: encoders escape it.
    #[inline(always)]
    pub fn write_str(&mut self, s: &str) {
        self.key.write(s.as_bytes());
    }
}

/// Writes the values of a label set, in the order of its names, into a series key.
pub struct KeyWriter<'a> {
    key: KeyCursor,
    count: usize,
    /// The cursor writes into this borrow (see `KeyCursor::new`).
    _words: PhantomData<&'a mut KeyWords>,
}

/// A key a [`KeyWriter`] finished: its words, their hash, and how many values it holds.
pub(crate) struct WrittenKey<'a> {
    pub(crate) key: KeyRef<'a>,
    pub(crate) hash: u64,
    pub(crate) values: usize,
}

impl<'a> KeyWriter<'a> {
    /// A writer of a key into `words`, hashed under `seed`.
    #[inline(always)]
    pub(crate) fn new(words: &'a mut KeyWords, seed: u64) -> Self {
        Self {
            // SAFETY: `words` stays borrowed by `_words` for as long as the cursor lives, and
            // by the key `finish` hands out after.
            key: unsafe { KeyCursor::new(words, seed) },
            count: 0,
            _words: PhantomData,
        }
    }

    /// Appends the next value of the set.
    #[inline(always)]
    pub fn value<V: LabelValue + ?Sized>(&mut self, value: &V) {
        value.write_value(&mut ValueWriter { key: &mut self.key });
        self.key.end_value();
        self.count += 1;
    }

    /// How many values were written.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The key written, read from the cursor (which kept it in registers).
    #[inline(always)]
    pub(crate) fn finish(self) -> WrittenKey<'a> {
        WrittenKey {
            // SAFETY: the words are in the `KeyWords` borrowed for `'a`; nothing writes again.
            key: KeyRef {
                words: unsafe { self.key.words() },
            },
            hash: self.key.hash(),
            values: self.count,
        }
    }
}

/// The key of the values `write` writes, as bytes (values joined by `0xFF`; split it with
/// [`key_values`]). For building keys outside a lookup.
#[cfg(any(test, feature = "axum"))]
pub(crate) fn key_bytes(write: impl FnOnce(&mut KeyWriter<'_>)) -> Vec<u8> {
    let mut words = KeyWords::new();
    let mut writer = KeyWriter::new(&mut words, 0);
    write(&mut writer);
    writer.finish().key.to_bytes()
}

/// A label value's text.
#[cfg(feature = "axum")]
pub(crate) fn value_text<V: LabelValue + ?Sized>(value: &V) -> String {
    let key = key_bytes(|w| w.value(value));
    key_values(&key).next().unwrap_or_default().to_owned()
}

/// A value that can stand as a label value.
///
/// Implemented for strings, integers, `bool`, `char`, `http::Method` and `http::StatusCode`;
/// derive it for fieldless enums with `#[derive(promtrack::LabelValue)]`.
///
/// ```
/// use promtrack::LabelValue;
/// # use promtrack::labels::ValueWriter;
/// struct Region(&'static str);
/// impl LabelValue for Region {
///     fn write_value(&self, out: &mut ValueWriter<'_>) {
///         out.write_str(self.0);
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a label value",
    label = "not a label value",
    note = "label values are strings, integers, bools, `http::Method`, `http::StatusCode`, or enums with `#[derive(promtrack::LabelValue)]`; implement `promtrack::LabelValue` for your own types"
)]
pub trait LabelValue {
    /// The number of distinct values this type can take, when it is fixed and small (enums,
    /// `bool`). `None` for free-form values.
    const CARDINALITY: Option<usize> = None;

    /// The position of this value among the [`CARDINALITY`](Self::CARDINALITY) possible ones.
    /// Only called when `CARDINALITY` is `Some(n)`; must be below `n`.
    #[inline]
    fn cardinality_index(&self) -> usize {
        0
    }

    /// Writes the value's text.
    fn write_value(&self, out: &mut ValueWriter<'_>);
}

/// A set of labels: names fixed for the family, values per instance.
///
/// Derive it for a struct with named fields (`#[derive(promtrack::LabelSet)]`), or use an array
/// of values (`[&str; 2]`) and give the names when building the family. `()` is the empty set.
///
/// ```
/// use promtrack::{Counter, Family, Registry};
///
/// let requests = Family::<[&str; 2], Counter>::new("requests_total", "Requests served.")
///     .label_names(["method", "status"]);
/// requests.with(&["GET", "200"]).inc();
/// assert_eq!(requests.with(&["GET", "200"]).get(), 1.0);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a label set",
    note = "derive it with `#[derive(promtrack::LabelSet)]`, or use an array of label values such as `[&str; 2]` with `.label_names([..])`"
)]
pub trait LabelSet {
    /// Label names, in the order [`write_values`](Self::write_values) writes values. Empty for
    /// sets whose names are given when the family is built (arrays).
    const NAMES: &'static [&'static str];

    /// The number of values [`write_values`](Self::write_values) writes.
    const ARITY: usize;

    /// Number of distinct label sets, when fixed and small (every field an enum or `bool`).
    const CARDINALITY: Option<usize> = None;

    /// The position of this set among [`CARDINALITY`](Self::CARDINALITY); only called when it is
    /// `Some(n)`, and must be below `n`.
    #[inline]
    fn cardinality_index(&self) -> usize {
        0
    }

    /// Writes each value, in name order.
    ///
    /// Mark a hand-written one `#[inline(always)]`, as the derive does: a lookup's hit path is
    /// inlined into its caller, and a `write_values` left out of line takes the key writer out
    /// of registers (a hit then costs about three times as much).
    fn write_values(&self, out: &mut KeyWriter<'_>);
}

impl LabelSet for () {
    const NAMES: &'static [&'static str] = &[];
    const ARITY: usize = 0;
    const CARDINALITY: Option<usize> = Some(1);
    #[inline]
    fn write_values(&self, _: &mut KeyWriter<'_>) {}
}

impl<V: LabelValue, const N: usize> LabelSet for [V; N] {
    const NAMES: &'static [&'static str] = &[];
    const ARITY: usize = N;
    #[inline(always)]
    fn write_values(&self, out: &mut KeyWriter<'_>) {
        for v in self {
            out.value(v);
        }
    }
}

impl<T: LabelSet + ?Sized> LabelSet for &T {
    const NAMES: &'static [&'static str] = T::NAMES;
    const ARITY: usize = T::ARITY;
    const CARDINALITY: Option<usize> = T::CARDINALITY;
    #[inline]
    fn cardinality_index(&self) -> usize {
        (**self).cardinality_index()
    }
    #[inline]
    fn write_values(&self, out: &mut KeyWriter<'_>) {
        (**self).write_values(out)
    }
}

/// Values that look up a series of a family whose label set is `L`, without being an `L`.
///
/// A lookup only writes the query's values into a key on the stack and compares it with the
/// stored keys (see `key.rs`), so any query that writes the same values in the same order finds
/// the same series: a family can store owned values (`[String; 2]`) and be queried with borrowed
/// ones (`[&str; 2]`), allocating only when the series is new. Implemented for
///
/// * every label set, querying itself (`Job` for `Job`, `[u16; 2]` for `[u16; 2]`, `()`); sets of
///   fixed cardinality keep their dense index;
/// * arrays of references to the values, `[&V; N]` for `[V; N]` (`[&String; 2]`, `[&u16; 1]`);
/// * arrays of string values querying arrays of another string type of the same length: each of
///   `&str`, `&&str`, `String`, `&String`, `Cow<str>`, `&Cow<str>` for `[String; N]`,
///   `[&str; N]` and `[Cow<str>; N]`;
/// * slices of any of those, `[V]`, `[&V]`, `[&str]`…, for `[V; N]`: the length is only known
///   at run time, and a slice of the wrong length is counted in the family's overflow series;
/// * the borrowed form `#[derive(LabelSet)]` generates for a struct with a `String` or
///   `Cow<str>` field: `JobRef<'a>` for `Job`, each of those fields a `&'a str` (see the
///   derive's docs).
///
/// A family is covariant in its label set, so `Family<[&'static str; 2], _>`, as a `static`
/// family holds it, also takes `[&str; 2]` of a shorter lifetime (the series it returns is then
/// borrowed for that lifetime too; query a `[String; 2]` family to keep a `&'static` series).
///
/// ```
/// use promtrack::{Counter, Family};
///
/// let requests = Family::<[String; 2], Counter>::new("requests_total", "Requests served.")
///     .label_names(["method", "path"]);
/// fn serve(requests: &Family<[String; 2], Counter>, path: &str) {
///     requests.with(&["GET", path]).inc(); // no allocation once the series exists
/// }
/// serve(&requests, "/users");
/// serve(&requests, &String::from("/users"));
/// assert_eq!(requests.with(&["GET".to_string(), "/users".to_string()]).get(), 2.0);
/// ```
///
/// A query of another shape does not compile, and the error names the forms that do:
///
/// ```compile_fail,E0277
/// use promtrack::{Counter, Family};
///
/// let requests = Family::<[String; 2], Counter>::new("requests_total", "Requests served.");
/// requests.with(&["GET"]).inc(); // one value for two labels
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot look up a series of a family labelled by `{L}`",
    label = "not a query for `{L}`",
    note = "query with a `{L}` itself, or with borrowed values of the same shape: an array of `&str`, `&String` or `Cow<str>` of the same length for an array of `String`, `&str` or `Cow<str>`; for a struct `Job` deriving `LabelSet` with a `String` or `Cow<str>` field, the `JobRef` it generates (or the type its `#[label(borrowed = \"..\")]` names)"
)]
pub trait LabelQuery<L: ?Sized> {
    /// The position of the queried set among `L`'s [`CARDINALITY`](LabelSet::CARDINALITY); only
    /// called when that is `Some(n)`, and must be below `n`.
    #[inline]
    fn cardinality_index(&self) -> usize {
        0
    }

    /// Writes each value, in `L`'s name order, exactly as `L` writes the same values. Mark a
    /// hand-written one `#[inline(always)]` (see [`LabelSet::write_values`]).
    fn write_values(&self, out: &mut KeyWriter<'_>);
}

impl<L: LabelSet + ?Sized> LabelQuery<L> for L {
    #[inline(always)]
    fn cardinality_index(&self) -> usize {
        LabelSet::cardinality_index(self)
    }
    #[inline(always)]
    fn write_values(&self, out: &mut KeyWriter<'_>) {
        LabelSet::write_values(self, out)
    }
}

impl<V: LabelValue, const N: usize> LabelQuery<[V; N]> for [V] {
    #[inline]
    fn write_values(&self, out: &mut KeyWriter<'_>) {
        for v in self {
            out.value(v);
        }
    }
}

/// References to the values: what iterating over values yields (`for v in &values`). Does not
/// overlap the blanket impl: `[&V; N]` is never `[V; N]`.
impl<V: LabelValue, const N: usize> LabelQuery<[V; N]> for [&V; N] {
    #[inline(always)]
    fn write_values(&self, out: &mut KeyWriter<'_>) {
        for v in self {
            out.value::<V>(v);
        }
    }
}

impl<V: LabelValue, const N: usize> LabelQuery<[V; N]> for [&V] {
    #[inline]
    fn write_values(&self, out: &mut KeyWriter<'_>) {
        for v in self {
            out.value::<V>(v);
        }
    }
}

/// `[Q; N]` and `[Q]` query `[V; N]` for each string type `Q` that the impls above leave out:
/// not `V` itself (the blanket impl; `V` with another lifetime is covariance) and not `&V`. Each
/// value is written as the `str` it holds, as every string `LabelValue` writes it.
macro_rules! string_queries {
    ($( [$($lt:lifetime),*] $q:ty => $v:ty; )*) => {$(
        impl<$($lt,)* const N: usize> LabelQuery<[$v; N]> for [$q; N] {
            #[inline(always)]
            fn write_values(&self, out: &mut KeyWriter<'_>) {
                for v in self {
                    out.value::<str>(v.as_ref());
                }
            }
        }

        impl<$($lt,)* const N: usize> LabelQuery<[$v; N]> for [$q] {
            #[inline]
            fn write_values(&self, out: &mut KeyWriter<'_>) {
                for v in self {
                    out.value::<str>(v.as_ref());
                }
            }
        }
    )*};
}

string_queries! {
    ['q] &'q str => String;
    ['q, 'r] &'q &'r str => String;
    ['q] Cow<'q, str> => String;
    ['q, 'c] &'q Cow<'c, str> => String;

    ['v] String => &'v str;
    ['q, 'v] &'q String => &'v str;
    ['q, 'v] Cow<'q, str> => &'v str;
    ['q, 'c, 'v] &'q Cow<'c, str> => &'v str;

    ['q, 'v] &'q str => Cow<'v, str>;
    ['q, 'r, 'v] &'q &'r str => Cow<'v, str>;
    ['v] String => Cow<'v, str>;
    ['q, 'v] &'q String => Cow<'v, str>;
}

/// The owned string types a derived label set's borrowed form (`JobRef` for `Job`) holds as
/// `&str`: each writes its value exactly as `str` does, so the borrowed form finds the owned
/// set's series. Generated code writes each such field through this trait, which makes a
/// field type that only shares the name `String` or `Cow` a compile error.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `std::string::String` or `std::borrow::Cow<str>`",
    note = "`#[derive(LabelSet)]` turns fields written `String` or `Cow<'_, str>` into `&str` in the set's borrowed form; rename this type, or leave the borrowed form out with `#[label(borrowed = false)]`"
)]
pub trait OwnedStr: LabelValue {
    /// Writes `value` as a value of this type holding it would be written.
    #[inline(always)]
    fn write_borrowed(value: &str, out: &mut KeyWriter<'_>) {
        out.value::<str>(value);
    }
}

impl OwnedStr for String {}
impl OwnedStr for Cow<'_, str> {}

impl LabelValue for str {
    #[inline(always)]
    fn write_value(&self, out: &mut ValueWriter<'_>) {
        out.write_str(self)
    }
}

impl LabelValue for String {
    #[inline(always)]
    fn write_value(&self, out: &mut ValueWriter<'_>) {
        out.write_str(self)
    }
}

impl LabelValue for Cow<'_, str> {
    #[inline(always)]
    fn write_value(&self, out: &mut ValueWriter<'_>) {
        out.write_str(self)
    }
}

impl<T: LabelValue + ?Sized> LabelValue for &T {
    const CARDINALITY: Option<usize> = T::CARDINALITY;
    #[inline]
    fn cardinality_index(&self) -> usize {
        (**self).cardinality_index()
    }
    #[inline(always)]
    fn write_value(&self, out: &mut ValueWriter<'_>) {
        (**self).write_value(out)
    }
}

impl LabelValue for bool {
    const CARDINALITY: Option<usize> = Some(2);
    #[inline]
    fn cardinality_index(&self) -> usize {
        *self as usize
    }
    #[inline(always)]
    fn write_value(&self, out: &mut ValueWriter<'_>) {
        out.write_str(if *self { "true" } else { "false" })
    }
}

impl LabelValue for char {
    #[inline(always)]
    fn write_value(&self, out: &mut ValueWriter<'_>) {
        out.write_str(self.encode_utf8(&mut [0; 4]))
    }
}

macro_rules! int_label_values {
    ($($t:ty)*) => {$(
        impl LabelValue for $t {
            #[inline(always)]
            fn write_value(&self, out: &mut ValueWriter<'_>) {
                out.write_str(itoa::Buffer::new().format(*self))
            }
        }
    )*};
}
int_label_values!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

#[cfg(feature = "axum")]
impl LabelValue for http::Method {
    #[inline(always)]
    fn write_value(&self, out: &mut ValueWriter<'_>) {
        out.write_str(self.as_str())
    }
}

#[cfg(feature = "axum")]
impl LabelValue for http::StatusCode {
    #[inline(always)]
    fn write_value(&self, out: &mut ValueWriter<'_>) {
        out.write_str(itoa::Buffer::new().format(self.as_u16()))
    }
}

/// Splits a series key back into its values.
pub(crate) fn key_values(key: &[u8]) -> impl Iterator<Item = &str> {
    key.split(|&b| b == KEY_SEPARATOR)
        // The key ends with a separator; `split` yields one empty tail we drop.
        .take(key.iter().filter(|&&b| b == KEY_SEPARATOR).count())
        // Keys are built only from `&str` values joined by 0xFF, so each part is UTF-8.
        .map(|part| std::str::from_utf8(part).unwrap_or_default())
}

/// Appends `value` escaped for a label value in both text formats (backslash, double quote and
/// line feed are escaped; everything else, including any Unicode, is written as is).
pub(crate) fn escape_label_value(out: &mut Vec<u8>, value: &str) {
    escape_label_bytes(out, value.as_bytes())
}

/// [`escape_label_value`] of a value's bytes (a series key's, `key.rs`).
pub(crate) fn escape_label_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'"' => b"\\\"",
            b'\n' => b"\\n",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`
/// (reserved for Prometheus' own use).
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of<L: LabelSet>(l: &L) -> Vec<u8> {
        key_bytes(|w| {
            l.write_values(w);
            assert_eq!(w.count(), L::ARITY);
        })
    }

    #[test]
    fn keys_round_trip_values() {
        let key = key_of(&["GET", "", "ü\"\\\n"]);
        let values: Vec<_> = key_values(&key).collect();
        assert_eq!(values, ["GET", "", "ü\"\\\n"]);
        assert_eq!(key_values(&key_of(&())).count(), 0);
    }

    fn query_key<L: LabelSet, Q: LabelQuery<L> + ?Sized>(q: &Q) -> Vec<u8> {
        key_bytes(|w| q.write_values(w))
    }

    #[test]
    fn borrowed_queries_write_the_keys_of_the_owned_sets() {
        let owned = ["GET".to_string(), "/ü".to_string()];
        let want = key_of(&owned);
        let (get, path) = (String::from("GET"), String::from("/ü"));
        let cows: [Cow<'_, str>; 2] = [Cow::Borrowed("GET"), Cow::Owned(path.clone())];
        assert_eq!(query_key::<[String; 2], _>(&["GET", "/ü"]), want);
        assert_eq!(query_key::<[String; 2], _>(&[&get, &path]), want);
        assert_eq!(query_key::<[String; 2], _>(&cows), want);
        assert_eq!(query_key::<[String; 2], _>(&[&cows[0], &cows[1]]), want);
        assert_eq!(query_key::<[String; 2], _>(&["GET", "/ü"][..]), want);
        let strs = ["GET", "/ü"];
        assert_eq!(query_key::<[String; 2], _>(&[&strs[0], &strs[1]]), want);
        assert_eq!(query_key::<[&str; 2], _>(&[&strs[0], &strs[1]]), want);
        assert_eq!(
            query_key::<[Cow<'_, str>; 2], _>(&[&strs[0], &strs[1]]),
            want
        );
        assert_eq!(query_key::<[u16; 1], _>(&[&404u16]), key_of(&[404u16]));
        assert_eq!(query_key::<[&str; 2], _>(&owned), want);
        assert_eq!(query_key::<[&str; 2], _>(&cows[..]), want);
        assert_eq!(query_key::<[Cow<'_, str>; 2], _>(&["GET", "/ü"]), want);
        assert_eq!(query_key::<[Cow<'_, str>; 2], _>(&owned), want);
        assert_eq!(
            query_key::<[u16; 2], _>(&[404u16, 7][..]),
            key_of(&[404u16, 7])
        );
        // A slice of another length writes another number of values: no stored key matches it.
        assert_ne!(query_key::<[String; 2], _>(&["GET"][..]), want);
    }

    #[test]
    fn integer_and_bool_values_render_as_text() {
        let key = key_of(&[404u16, 7]);
        assert_eq!(key_values(&key).collect::<Vec<_>>(), ["404", "7"]);
        assert_eq!(
            key_values(&key_of(&[true, false])).collect::<Vec<_>>(),
            ["true", "false"]
        );
        assert_eq!(true.cardinality_index(), 1);
    }

    #[test]
    fn escaping_covers_the_three_special_characters_only() {
        let mut out = Vec::new();
        escape_label_value(&mut out, "a\\b\"c\nd\t😀");
        assert_eq!(String::from_utf8(out).unwrap(), "a\\\\b\\\"c\\nd\t😀");
    }

    #[test]
    fn names_are_checked() {
        assert!(is_valid_metric_name("http_requests_total"));
        assert!(is_valid_metric_name("ns:sub_metric"));
        assert!(!is_valid_metric_name("1abc"));
        assert!(!is_valid_metric_name("a-b"));
        assert!(!is_valid_metric_name(""));
        assert!(is_valid_label_name("method"));
        assert!(!is_valid_label_name("__name__"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name("é"));
    }
}
