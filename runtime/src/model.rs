//! The snapshot model every source feeds and every encoder reads.
//!
//! A scrape does not copy the registry into an owned tree: sources *visit* an encoder. Our own
//! families hand out borrowed views of their series (their label names and each series' key,
//! which the text encoders render as label text at each scrape, and values loaded straight from
//! the cells); collectors, the multiprocess
//! aggregator and the rust-prometheus bridge produce owned [`MetricFamily`]s, which are visited
//! the same way. An encoder is a [`Visitor`].
//!
//! Native (exponential) histograms ride on [`Point::Histogram`] as optional [`NativeBuckets`]:
//! text encoders write the classic part, the protobuf encoder both.
//!
//! Exemplars travel beside the point, not in it: a source that keeps them calls
//! [`Visitor::series_with_exemplars`] with an [`Exemplars`] view (slot 0 for a counter, slot `i`
//! for a histogram's classic bucket `i`, `+Inf` last); every other source calls
//! [`Visitor::series`], and an encoder that writes none (text 0.0.4) implements only that. Our
//! own series hand out their live slots, read (never torn) when the encoder writes them; owned
//! series carry [`Series::exemplars`].

use std::borrow::Cow;

use crate::exemplar::Block;
pub use crate::exemplar::Exemplar;

/// The type of a metric family, as the exposition formats name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricKind {
    /// A monotonically increasing count. Its name ends in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted into cumulative buckets, with their count and sum.
    Histogram,
    /// Observations' count and sum (no quantiles; see [`Summary`](crate::Summary)).
    Summary,
    /// A constant 1 carrying labels. Its name ends in `_info`.
    Info,
    /// A value of unknown type (from collectors bridging other systems).
    Unknown,
}

impl MetricKind {
    /// The suffix a family name of this kind ends in (`_total`, `_info`), which OpenMetrics
    /// leaves out of the family's name.
    pub(crate) const fn name_suffix(self) -> Option<&'static str> {
        match self {
            MetricKind::Counter => Some("_total"),
            MetricKind::Info => Some("_info"),
            _ => None,
        }
    }

    /// The OpenMetrics family name of a family named `name`: without its kind's
    /// [`name_suffix`](Self::name_suffix).
    pub(crate) fn base_name(self, name: &str) -> &str {
        self.name_suffix()
            .and_then(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name)
    }

    /// The suffixes, after the [`base_name`](Self::base_name), of the sample names a family of
    /// this kind writes in either text format — so that the registry can refuse two families
    /// whose samples would collide, and a `name[]=` filter can find a family by any of them.
    pub(crate) const fn sample_suffixes(self) -> &'static [&'static str] {
        match self {
            MetricKind::Counter => &["_total", "_created"],
            MetricKind::Info => &["_info"],
            MetricKind::Histogram => &["_bucket", "_count", "_sum", "_created"],
            MetricKind::Summary => &["_count", "_sum", "_created"],
            MetricKind::Gauge | MetricKind::Unknown => &[],
        }
    }
}

/// A family's header: what `# HELP` and `# TYPE` say.
#[derive(Clone, Copy, Debug)]
pub struct FamilyDesc<'a> {
    /// The registered name, including the `_total` or `_info` suffix counters and infos carry.
    pub name: &'a str,
    /// Help text, unescaped.
    pub help: &'a str,
    /// The family's type.
    pub kind: MetricKind,
}

/// A series' labels, as a source holds them.
#[derive(Clone, Copy, Debug)]
pub enum Labels<'a> {
    /// `name="value",…` already escaped for the text formats (for sources that keep only
    /// text). Empty for a series without labels.
    Rendered(&'a str),
    /// Name and value pairs, unescaped.
    Pairs(&'a [(Cow<'static, str>, String)]),
    /// Names and values as a family of this crate stores them: the family's label names, and
    /// its series' key (the values, unescaped). Read it with [`KeyLabels::pairs`].
    Key(KeyLabels<'a>),
}

/// A series' labels as this crate's families store them: no text is rendered when a series is
/// created, each scrape writes the pairs from the names and the series' key (see
/// ARCHITECTURE.md, *The series record*).
#[derive(Clone, Copy, Debug)]
pub struct KeyLabels<'a> {
    names: &'a [Box<str>],
    /// The values in word form (`key.rs`).
    key: &'a [u8],
    /// Whether any value may need escaping (its family has seen a `\\`, `"` or line feed in
    /// some value); when not, the text formats copy the values as they are.
    escape: bool,
}

impl<'a> KeyLabels<'a> {
    /// The labels of the values in `key` (word form, `key.rs`), named `names`; `escape` unless
    /// no value of them needs escaping.
    pub(crate) fn new(names: &'a [Box<str>], key: &'a [u8], escape: bool) -> Self {
        Self { names, key, escape }
    }

    /// The family's label names.
    pub(crate) fn names(&self) -> &'a [Box<str>] {
        self.names
    }

    /// The values in word form (`key.rs`): each value's bytes, its `0xFF`, zeros up to a word.
    pub(crate) fn key(&self) -> &'a [u8] {
        self.key
    }

    /// Whether some value may need escaping.
    pub(crate) fn escape(&self) -> bool {
        self.escape
    }

    /// Name and value pairs, in the family's label order, unescaped.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.names
            .iter()
            .map(|n| &**n)
            .zip(crate::key::word_form_values(self.key))
    }
}

impl<'a> Labels<'a> {
    /// Whether there is no label at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Labels::Rendered(s) => s.is_empty(),
            Labels::Pairs(p) => p.is_empty(),
            Labels::Key(k) => k.names.is_empty(),
        }
    }
}

/// One series' value(s), borrowed from its source.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Point<'a> {
    /// A counter's value.
    Counter(f64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram: `counts[i]` observations fell in `(bounds[i-1], bounds[i]]`; the last count
    /// (`counts.len() == bounds.len() + 1`) is the `+Inf` bucket. Counts are *not* cumulative;
    /// encoders accumulate them.
    Histogram {
        /// Upper bounds, ascending, finite; `+Inf` is implied.
        bounds: &'a [f64],
        /// Per-bucket counts, one more than `bounds`.
        counts: &'a [u64],
        /// Sum of all observations.
        sum: f64,
        /// The native (exponential) buckets, for a histogram that keeps them. A native-only
        /// histogram has no finite `bounds` and one count, so text formats, which cannot carry
        /// native buckets, write it as a classic histogram with the single bucket `le="+Inf"`.
        native: Option<&'a NativeBuckets>,
    },
    /// A summary's count and sum.
    Summary {
        /// Number of observations.
        count: u64,
        /// Sum of observations.
        sum: f64,
    },
    /// An info series (value 1).
    Info,
    /// An untyped value.
    Unknown(f64),
}

/// A native (exponential, sparse) histogram's buckets, as Prometheus' protobuf exposition
/// defines them: bucket `i` of schema `s` holds the observations `v` with
/// `base^(i-1) < |v| <= base^i`, `base = 2^(2^-s)`; observations with `|v| <= zero_threshold`
/// are counted in the zero bucket. The count and sum are the histogram's own
/// ([`Point::Histogram`]).
///
/// ```
/// use promtrack::model::NativeBuckets;
///
/// // Schema 0 (base 2): 1.5 falls in bucket 1, (1, 2]; 3.0 in bucket 2, (2, 4].
/// let b = NativeBuckets { schema: 0, positive: vec![(1, 1), (2, 1)], ..Default::default() };
/// assert_eq!(b.bucket_count(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NativeBuckets {
    /// Resolution, −4 ..= 8: each power of two is split into `2^schema` buckets.
    pub schema: i8,
    /// Width of the zero bucket: observations with `|v| <= zero_threshold` fall in it.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Positive buckets as `(index, count)`, ascending by index, counts *not* cumulative,
    /// empty buckets left out.
    pub positive: Vec<(i32, u64)>,
    /// Negative buckets (for `v < -zero_threshold`, indexed by `|v|`), as `positive`.
    pub negative: Vec<(i32, u64)>,
}

/// Key `k` after lowering the schema by `d` (> 0): `ceil(k / 2^d)`, the bucket that holds
/// bucket `k`'s observations (`NativeBuckets::reduce_to_schema`).
pub(crate) fn reduced_key(k: i32, d: i64) -> i32 {
    let d = d.clamp(0, 62);
    ((i64::from(k) + (1 << d) - 1) >> d) as i32
}

impl NativeBuckets {
    /// Number of populated buckets, the zero bucket not counted.
    pub fn bucket_count(&self) -> usize {
        self.positive.len() + self.negative.len()
    }

    /// Observations in every bucket, the zero bucket included (saturating at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.positive
            .iter()
            .chain(&self.negative)
            .fold(self.zero_count, |n, &(_, c)| n.saturating_add(c))
    }

    /// Lowers the resolution to `schema` (clamped to −4 ..= 8), merging each run of
    /// `2^(self.schema - schema)` buckets into one: key `k` becomes `ceil(k / 2^d)`. Exact: no
    /// count moves to a bucket that does not contain its observations. A schema at or above
    /// the current one changes nothing.
    ///
    /// ```
    /// use promtrack::model::NativeBuckets;
    ///
    /// let mut b = NativeBuckets { schema: 1, positive: vec![(1, 2), (2, 3), (3, 1)], ..Default::default() };
    /// b.reduce_to_schema(0);
    /// assert_eq!((b.schema, b.positive), (0, vec![(1, 5), (2, 1)]));
    /// ```
    pub fn reduce_to_schema(&mut self, schema: i8) {
        let target = crate::exponential::clamp_schema(schema.into());
        let d = i64::from(self.schema) - i64::from(target);
        if d <= 0 {
            return;
        }
        let merge = |buckets: &mut Vec<(i32, u64)>| {
            let mut out: Vec<(i32, u64)> = Vec::with_capacity(buckets.len());
            for &(k, c) in buckets.iter() {
                let k = reduced_key(k, d);
                match out.last_mut() {
                    Some((last, n)) if *last == k => *n = n.saturating_add(c),
                    _ => out.push((k, c)),
                }
            }
            *buckets = out;
        };
        merge(&mut self.positive);
        merge(&mut self.negative);
        self.schema = target;
    }

    /// Widens the zero bucket to at least `threshold`: every bucket whose upper bound is at or
    /// below it moves into the zero bucket. When the threshold falls inside a populated
    /// bucket, it is raised to that bucket's upper bound and the bucket moves too (as
    /// Prometheus does, so that no bucket overlaps the zero bucket). A threshold at or below
    /// the current one (or NaN) changes nothing. Returns the new threshold.
    pub fn widen_zero_threshold(&mut self, threshold: f64) -> f64 {
        if threshold.is_nan() || threshold <= self.zero_threshold {
            return self.zero_threshold;
        }
        let schema = self.schema;
        let mut t = threshold;
        // Buckets are ascending by key, so the ones to move are at the front. Raising `t` for
        // one sign may bring buckets of the other under it: scan again until it stays put
        // (every raise moves a bucket, so this ends).
        loop {
            let mut raised = false;
            for buckets in [&mut self.positive, &mut self.negative] {
                let mut moved = 0;
                for &(k, c) in buckets.iter() {
                    let upper = crate::exponential::upper_bound(k, schema);
                    if upper > t {
                        let lower = crate::exponential::upper_bound(k.saturating_sub(1), schema);
                        if lower >= t {
                            break;
                        }
                        t = upper; // the threshold cuts this bucket: take it whole
                        raised = true;
                    }
                    self.zero_count = self.zero_count.saturating_add(c);
                    moved += 1;
                }
                buckets.drain(..moved);
            }
            if !raised {
                break;
            }
        }
        self.zero_threshold = t;
        t
    }

    /// Adds `other` into `self`, exactly: both are first reduced to the lower of the two
    /// schemas and widened to the wider of the two zero thresholds, then bucket counts are
    /// added (saturating). This is how histograms from several processes are merged.
    ///
    /// ```
    /// use promtrack::model::NativeBuckets;
    ///
    /// let mut a = NativeBuckets { schema: 1, positive: vec![(2, 1)], ..Default::default() };
    /// let b = NativeBuckets { schema: 0, positive: vec![(1, 4)], zero_count: 1, ..Default::default() };
    /// a.merge(&b);
    /// assert_eq!((a.schema, a.positive, a.zero_count), (0, vec![(1, 5)], 1));
    /// ```
    pub fn merge(&mut self, other: &NativeBuckets) {
        let mut other = other.clone();
        let schema = self.schema.min(other.schema);
        self.reduce_to_schema(schema);
        other.reduce_to_schema(schema);
        // Each widening can only raise a threshold to a bucket bound of either side.
        for _ in 0..=self.bucket_count() + other.bucket_count() + 1 {
            let t = self.zero_threshold.max(other.zero_threshold);
            let a = self.widen_zero_threshold(t);
            let b = other.widen_zero_threshold(t);
            if a == b {
                break;
            }
        }
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.positive = add_buckets(&self.positive, &other.positive);
        self.negative = add_buckets(&self.negative, &other.negative);
    }
}

/// Two ascending bucket lists added key by key.
fn add_buckets(a: &[(i32, u64)], b: &[(i32, u64)]) -> Vec<(i32, u64)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(&(ka, ca)), Some(&(kb, cb))) if ka == kb => {
                out.push((ka, ca.saturating_add(cb)));
                i += 1;
                j += 1;
            }
            (Some(&x), Some(&(kb, _))) if x.0 < kb => {
                out.push(x);
                i += 1;
            }
            (Some(_), Some(&y)) | (None, Some(&y)) => {
                out.push(y);
                j += 1;
            }
            (Some(&x), None) => {
                out.push(x);
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// A series' exemplars, borrowed from its source: slot 0 for a counter, slot `i` for a
/// histogram's classic bucket `i` (`+Inf` last).
///
/// ```
/// use promtrack::model::{Exemplar, Exemplars};
///
/// let kept = [None, Some(Exemplar { labels: vec![("trace_id".into(), "ab".repeat(16))], value: 0.3, timestamp: None })];
/// let view = Exemplars::owned(&kept);
/// assert!(view.get(0).is_none());
/// assert_eq!(view.get(1).unwrap().value, 0.3);
/// assert!(Exemplars::NONE.get(0).is_none());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Exemplars<'a>(ExemplarsRepr<'a>);

#[derive(Clone, Copy, Debug, Default)]
enum ExemplarsRepr<'a> {
    #[default]
    None,
    Owned(&'a [Option<Exemplar>]),
    /// A series' slots, read when asked.
    Live(&'a Block),
}

impl<'a> Exemplars<'a> {
    /// No exemplars.
    pub const NONE: Self = Self(ExemplarsRepr::None);

    /// Exemplars an owned series carries, one entry per slot.
    pub fn owned(exemplars: &'a [Option<Exemplar>]) -> Self {
        Self(ExemplarsRepr::Owned(exemplars))
    }

    /// A series' live slots, if it ever had an exemplar.
    pub(crate) fn live(block: Option<&'a Block>) -> Self {
        block.map_or(Self::NONE, |b| Self(ExemplarsRepr::Live(b)))
    }

    /// Whether there is certainly no exemplar (encoders skip the per-slot work).
    pub fn is_none(&self) -> bool {
        match self.0 {
            ExemplarsRepr::None => true,
            ExemplarsRepr::Owned(list) => list.iter().all(Option::is_none),
            ExemplarsRepr::Live(_) => false,
        }
    }

    /// Slot `i`'s exemplar, if any.
    pub fn get(&self, i: usize) -> Option<Cow<'a, Exemplar>> {
        match self.0 {
            ExemplarsRepr::None => None,
            ExemplarsRepr::Owned(list) => list.get(i)?.as_ref().map(Cow::Borrowed),
            ExemplarsRepr::Live(block) => block.get(i).map(Cow::Owned),
        }
    }
}

/// What an encoder implements: one call per family header, then one per series.
pub trait Visitor {
    /// Starts a family. Every following [`series`](Self::series) call belongs to it.
    fn family(&mut self, desc: &FamilyDesc<'_>);
    /// One series of the current family. `created` is the Unix time, in seconds, at which the
    /// series was created, where the source knows it.
    fn series(&mut self, labels: Labels<'_>, point: Point<'_>, created: Option<f64>);
    /// One series with its exemplars. Encoders that write exemplars (OpenMetrics, protobuf)
    /// implement it; the default drops them, as text 0.0.4 must.
    fn series_with_exemplars(
        &mut self,
        labels: Labels<'_>,
        point: Point<'_>,
        created: Option<f64>,
        exemplars: Exemplars<'_>,
    ) {
        let _ = exemplars;
        self.series(labels, point, created);
    }
}

/// An owned metric family, as produced by a [`Collector`](crate::Collector).
///
/// ```
/// use promtrack::model::{MetricFamily, MetricKind, Series, Value};
///
/// let family = MetricFamily::new("queue_depth", "Jobs waiting.", MetricKind::Gauge)
///     .with_series(Series::new(Value::Gauge(3.0)).label("queue", "email"));
/// assert_eq!(family.series.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MetricFamily {
    /// The name, with the `_total` / `_info` suffix for counters / infos.
    pub name: String,
    /// Help text.
    pub help: String,
    /// The family's type; every series' [`Value`] must match it.
    pub kind: MetricKind,
    /// The series.
    pub series: Vec<Series>,
}

impl MetricFamily {
    /// An empty family.
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: MetricKind) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            series: Vec::new(),
        }
    }

    /// Adds a series.
    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Visits this family: its header, then its series.
    pub fn visit(&self, v: &mut dyn Visitor) {
        v.family(&FamilyDesc {
            name: &self.name,
            help: &self.help,
            kind: self.kind,
        });
        for s in &self.series {
            let exemplars = Exemplars::owned(&s.exemplars);
            v.series_with_exemplars(
                Labels::Pairs(&s.labels),
                s.value.point(),
                s.created,
                exemplars,
            );
        }
    }
}

/// One series of an owned family.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Label names and values, unescaped.
    pub labels: Vec<(Cow<'static, str>, String)>,
    /// The value(s).
    pub value: Value,
    /// Creation time, Unix seconds, if known (written as `_created` in OpenMetrics).
    pub created: Option<f64>,
    /// Exemplars, one entry per slot (see [`Exemplars`]): a counter's at 0, a histogram's
    /// classic bucket `i` at `i`. Empty: none.
    pub exemplars: Vec<Option<Exemplar>>,
}

impl Series {
    /// A series without labels.
    pub fn new(value: Value) -> Self {
        Self {
            labels: Vec::new(),
            value,
            created: None,
            exemplars: Vec::new(),
        }
    }

    /// Sets slot `i`'s exemplar (0 for a counter, the classic bucket's index for a histogram).
    pub fn exemplar(mut self, i: usize, exemplar: Exemplar) -> Self {
        if self.exemplars.len() <= i {
            self.exemplars.resize(i + 1, None);
        }
        self.exemplars[i] = Some(exemplar);
        self
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }
}

/// An owned value; see [`Point`] for the meaning of each variant.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A counter's value.
    Counter(f64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram with per-bucket (non-cumulative) counts; `counts.len() == bounds.len() + 1`.
    Histogram {
        /// Finite upper bounds, ascending.
        bounds: Vec<f64>,
        /// Per-bucket counts, the last one for `+Inf`.
        counts: Vec<u64>,
        /// Sum of observations.
        sum: f64,
        /// Native buckets, if the histogram keeps them (see [`Point::Histogram`]).
        native: Option<NativeBuckets>,
    },
    /// A summary's count and sum.
    Summary {
        /// Number of observations.
        count: u64,
        /// Sum of observations.
        sum: f64,
    },
    /// An info series.
    Info,
    /// An untyped value.
    Unknown(f64),
}

impl Value {
    /// Borrows this value as a [`Point`].
    pub fn point(&self) -> Point<'_> {
        match self {
            Value::Counter(v) => Point::Counter(*v),
            Value::Gauge(v) => Point::Gauge(*v),
            Value::Histogram {
                bounds,
                counts,
                sum,
                native,
            } => Point::Histogram {
                bounds,
                counts,
                sum: *sum,
                native: native.as_ref(),
            },
            Value::Summary { count, sum } => Point::Summary {
                count: *count,
                sum: *sum,
            },
            Value::Info => Point::Info,
            Value::Unknown(v) => Point::Unknown(*v),
        }
    }

    /// The kind of family this value belongs in.
    pub fn kind(&self) -> MetricKind {
        match self {
            Value::Counter(_) => MetricKind::Counter,
            Value::Gauge(_) => MetricKind::Gauge,
            Value::Histogram { .. } => MetricKind::Histogram,
            Value::Summary { .. } => MetricKind::Summary,
            Value::Info => MetricKind::Info,
            Value::Unknown(_) => MetricKind::Unknown,
        }
    }
}
