//! The Prometheus protobuf exposition: `io.prometheus.client.MetricFamily` messages, each
//! preceded by its length as a varint (`encoding=delimited`).
//!
//! The messages are the few of Prometheus' `metrics.proto` (client_model,
//! `io/prometheus/client/metrics.proto`, proto2) that an exposition needs, written straight
//! from the snapshot model onto the wire: no `protoc`, no generated code, no protobuf crate and
//! no intermediate message values (`wire` below is the little of the format they use; the field
//! numbers are the proto's, listed in `field`). Fields are written in field-number order, as
//! prost and client_golang write them; proto2 fields are optional, so a zero that was set is
//! written (a counter at 0 carries `value: 0`), as client_golang writes it. The tests decode
//! the output with prost-derived messages (`messages`, test builds only) and check that
//! re-encoding those gives back the same bytes.
//!
//! What this encoder decides:
//! - Families without series are skipped (client_golang gathers none; a protobuf family carries
//!   no samples without them).
//! - Names are the registered ones: counters keep `_total`, infos `_info`, as text 0.0.4 writes
//!   them and as Prometheus reads a protobuf counter's name (it appends nothing).
//! - Info is written as a gauge of value 1 and unknown as `UNTYPED`: the proto has neither type.
//! - Classic buckets are cumulative (saturating, like the text encoders) and stop at the last
//!   finite bound: `+Inf` is implied by `sample_count`, as client_golang writes it.
//! - Native histogram buckets become spans of consecutive keys with delta-encoded counts; an
//!   empty native histogram with a zero threshold of 0 carries one no-op span, without which
//!   Prometheus would read it as a classic one. A histogram with both kinds of buckets carries
//!   both in one message; its count is the larger of the two totals (they differ only by
//!   observations in flight while the scrape read them), so that no bucket exceeds it.
//! - Exemplars: a counter's on its `Counter`, a classic bucket's on its `Bucket`. A histogram's
//!   `+Inf` bucket is written only to carry its exemplar, as client_golang writes it; a
//!   native-only histogram has exactly that one bucket, so it carries an explicit `+Inf`
//!   bucket when it has an exemplar. Prometheus still reads the message as native (it decides
//!   by the native fields, not by the classic buckets), and before 2.50 that bucket is where it
//!   reads a native histogram's exemplar from (2.42 keeps the first one it finds there).
//! - A histogram with native buckets also carries its exemplars in the native `exemplars` field
//!   (`Histogram.exemplars`, field 16; read from Prometheus 2.50, which then ignores the
//!   classic buckets' ones for the native histogram): every kept exemplar that has a timestamp
//!   (Prometheus drops a native exemplar without one), in bucket order. What is kept is the
//!   same slots as for classic buckets: the latest exemplar per classic bucket (`+Inf`
//!   included), replaced at most once per 90 ms per series, so classic and native together
//!   carry up to one per classic bucket and a native-only histogram one. client_golang keeps a
//!   separate set for the native field: up to 10 (`NativeHistogramMaxExemplars`), kept sorted
//!   by value; when full, a new one replaces the oldest if that is older than
//!   `NativeHistogramExemplarTTL` (5 min), else one of the two nearest in value. promtrack
//!   keeps its per-bucket slots instead because they are one fixed slot layout shared with the
//!   multiprocess files (48-byte slots beside the cells, merged slot by slot over the live
//!   processes), where a replace-by-age-and-value set would need a second layout and a lock
//!   across processes.
//! - Counters, histograms and summaries carry `created_timestamp` where the source knows it
//!   (Prometheus 2.42 ignores it; later versions use it for start-time-aware queries).
//! - Labels are written as pairs straight from the source: our own families hand over their
//!   names and each series' key (`Labels::Key`), nothing to parse. A `Rendered` label text (a
//!   source that keeps only escaped text) is parsed back into pairs.

use std::borrow::Cow;

use crate::model::{
    Exemplar, Exemplars, FamilyDesc, Labels, MetricKind, NativeBuckets, Point, Visitor,
};

/// Field numbers of `metrics.proto`, per message: the only place they are written down.
mod field {
    pub(super) mod family {
        pub(in super::super) const NAME: u32 = 1;
        pub(in super::super) const HELP: u32 = 2;
        pub(in super::super) const TYPE: u32 = 3;
        pub(in super::super) const METRIC: u32 = 4;
    }
    pub(super) mod metric {
        pub(in super::super) const LABEL: u32 = 1;
        pub(in super::super) const GAUGE: u32 = 2;
        pub(in super::super) const COUNTER: u32 = 3;
        pub(in super::super) const SUMMARY: u32 = 4;
        pub(in super::super) const UNTYPED: u32 = 5;
        pub(in super::super) const HISTOGRAM: u32 = 7;
    }
    /// `LabelPair`.
    pub(super) mod label {
        pub(in super::super) const NAME: u32 = 1;
        pub(in super::super) const VALUE: u32 = 2;
    }
    /// `Gauge`, `Untyped` and `Counter` carry their value in field 1.
    pub(super) const VALUE: u32 = 1;
    pub(super) mod counter {
        pub(in super::super) const EXEMPLAR: u32 = 2;
        pub(in super::super) const CREATED: u32 = 3;
    }
    pub(super) mod summary {
        pub(in super::super) const COUNT: u32 = 1;
        pub(in super::super) const SUM: u32 = 2;
        pub(in super::super) const CREATED: u32 = 4;
    }
    pub(super) mod histogram {
        pub(in super::super) const COUNT: u32 = 1;
        pub(in super::super) const SUM: u32 = 2;
        pub(in super::super) const BUCKET: u32 = 3;
        pub(in super::super) const SCHEMA: u32 = 5;
        pub(in super::super) const ZERO_THRESHOLD: u32 = 6;
        pub(in super::super) const ZERO_COUNT: u32 = 7;
        pub(in super::super) const NEGATIVE_SPAN: u32 = 9;
        pub(in super::super) const NEGATIVE_DELTA: u32 = 10;
        pub(in super::super) const POSITIVE_SPAN: u32 = 12;
        pub(in super::super) const POSITIVE_DELTA: u32 = 13;
        pub(in super::super) const CREATED: u32 = 15;
        pub(in super::super) const EXEMPLARS: u32 = 16;
    }
    pub(super) mod bucket {
        pub(in super::super) const CUMULATIVE_COUNT: u32 = 1;
        pub(in super::super) const UPPER_BOUND: u32 = 2;
        pub(in super::super) const EXEMPLAR: u32 = 3;
    }
    pub(super) mod span {
        pub(in super::super) const OFFSET: u32 = 1;
        pub(in super::super) const LENGTH: u32 = 2;
    }
    pub(super) mod exemplar {
        pub(in super::super) const LABEL: u32 = 1;
        pub(in super::super) const VALUE: u32 = 2;
        pub(in super::super) const TIMESTAMP: u32 = 3;
    }
    pub(super) mod timestamp {
        pub(in super::super) const SECONDS: u32 = 1;
        pub(in super::super) const NANOS: u32 = 2;
    }
}

/// `MetricFamily.type` (`MetricType`).
#[derive(Clone, Copy)]
#[repr(i32)]
enum MetricType {
    Counter = 0,
    Gauge = 1,
    Summary = 2,
    Untyped = 3,
    Histogram = 4,
}

/// The protobuf wire format, as much of it as these messages use: varints (plain and zigzag),
/// little-endian doubles and length-delimited strings and messages.
///
/// A nested message is opened with [`begin`] (its key, then one byte reserved for its length)
/// and closed with [`end`], which writes the length into that byte, or, for a message of 128
/// bytes or more, moves the message up to make room for the longer varint. Lengths are minimal
/// varints, as every protobuf encoder writes them.
mod wire {
    /// Wire types.
    const VARINT: u32 = 0;
    const FIXED64: u32 = 1;
    const LEN: u32 = 2;

    pub(super) fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
        varint(out, u64::from(field << 3 | wire_type));
    }

    /// `uint32`, `uint64`; also `int32` and `int64` after sign extension to 64 bits, as the
    /// format defines them (a negative one takes ten bytes).
    pub(super) fn uint64(out: &mut Vec<u8>, field: u32, v: u64) {
        key(out, field, VARINT);
        varint(out, v);
    }

    /// `sint32`, `sint64`: zigzag, so that small negative numbers stay short.
    pub(super) fn sint64(out: &mut Vec<u8>, field: u32, v: i64) {
        uint64(out, field, ((v << 1) ^ (v >> 63)) as u64);
    }

    pub(super) fn double(out: &mut Vec<u8>, field: u32, v: f64) {
        key(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }

    pub(super) fn string(out: &mut Vec<u8>, field: u32, s: &str) {
        key(out, field, LEN);
        varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    /// Opens a message in `field` of the enclosing one; returns what [`end`] needs.
    pub(super) fn begin(out: &mut Vec<u8>, field: u32) -> usize {
        key(out, field, LEN);
        begin_delimited(out)
    }

    /// Opens a top-level message that is preceded by its length only (`encoding=delimited`).
    pub(super) fn begin_delimited(out: &mut Vec<u8>) -> usize {
        out.push(0);
        out.len() - 1
    }

    /// Closes the message opened at `at`: writes its length there.
    pub(super) fn end(out: &mut Vec<u8>, at: usize) {
        let len = out.len() - at - 1;
        if len < 0x80 {
            out[at] = len as u8;
            return;
        }
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, len as u64);
        // Move the message up by the bytes the length needs beyond the reserved one.
        let (body, extra) = (at + 1..out.len(), prefix.len() - 1);
        out.resize(out.len() + extra, 0);
        out.copy_within(body, at + prefix.len());
        out[at..at + prefix.len()].copy_from_slice(&prefix);
    }
}

/// Writes length-delimited `MetricFamily` messages into a buffer. Call
/// [`finish`](Self::finish) at the end: a family without series is taken back once the next
/// one starts.
pub(crate) struct ProtobufEncoder<'a> {
    out: &'a mut Vec<u8>,
    family: Option<OpenFamily>,
}

/// The family message being written.
struct OpenFamily {
    /// Where it starts in the buffer (its length prefix, see [`wire::end`]).
    at: usize,
    has_series: bool,
}

impl<'a> ProtobufEncoder<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, family: None }
    }

    /// Writes the last family.
    pub(crate) fn finish(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        let Some(family) = self.family.take() else {
            return;
        };
        if family.has_series {
            wire::end(self.out, family.at);
        } else {
            self.out.truncate(family.at);
        }
    }
}

impl Visitor for ProtobufEncoder<'_> {
    fn family(&mut self, desc: &FamilyDesc<'_>) {
        self.flush();
        let kind = match desc.kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge | MetricKind::Info => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
            MetricKind::Summary => MetricType::Summary,
            MetricKind::Unknown => MetricType::Untyped,
        };
        let out = &mut *self.out;
        let at = wire::begin_delimited(out);
        wire::string(out, field::family::NAME, desc.name);
        wire::string(out, field::family::HELP, desc.help);
        wire::uint64(out, field::family::TYPE, kind as u64);
        self.family = Some(OpenFamily {
            at,
            has_series: false,
        });
    }

    fn series(&mut self, labels: Labels<'_>, point: Point<'_>, created: Option<f64>) {
        self.series_with_exemplars(labels, point, created, Exemplars::NONE);
    }

    fn series_with_exemplars(
        &mut self,
        labels: Labels<'_>,
        point: Point<'_>,
        created: Option<f64>,
        exemplars: Exemplars<'_>,
    ) {
        let Some(family) = self.family.as_mut() else {
            return; // a source that visits a series before its family: nothing to attach it to
        };
        family.has_series = true;
        let out = &mut *self.out;
        let created = created.and_then(timestamp);
        let metric = wire::begin(out, field::family::METRIC);
        for_each_label(&labels, &mut |name, value| {
            label_pair(out, field::metric::LABEL, name, value)
        });
        match point {
            Point::Counter(v) => {
                let at = wire::begin(out, field::metric::COUNTER);
                wire::double(out, field::VALUE, v);
                if let Some(e) = exemplars.get(0) {
                    exemplar(out, field::counter::EXEMPLAR, &e);
                }
                timestamp_field(out, field::counter::CREATED, created);
                wire::end(out, at);
            }
            Point::Gauge(v) => value_message(out, field::metric::GAUGE, v),
            Point::Info => value_message(out, field::metric::GAUGE, 1.0),
            Point::Unknown(v) => value_message(out, field::metric::UNTYPED, v),
            Point::Histogram {
                bounds,
                counts,
                sum,
                native,
            } => histogram(out, bounds, counts, sum, native, created, exemplars),
            Point::Summary { count, sum } => {
                let at = wire::begin(out, field::metric::SUMMARY);
                wire::uint64(out, field::summary::COUNT, count);
                wire::double(out, field::summary::SUM, sum);
                timestamp_field(out, field::summary::CREATED, created);
                wire::end(out, at);
            }
        }
        wire::end(out, metric);
    }
}

/// A `Gauge` or `Untyped` message: its value only.
fn value_message(out: &mut Vec<u8>, field: u32, v: f64) {
    let at = wire::begin(out, field);
    wire::double(out, field::VALUE, v);
    wire::end(out, at);
}

/// A `Histogram` message, in field order: count, sum, classic buckets, native fields, created
/// time, native exemplars.
fn histogram(
    out: &mut Vec<u8>,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
    native: Option<&NativeBuckets>,
    created: Option<Timestamp>,
    exemplars: Exemplars<'_>,
) {
    use field::histogram as f;
    let at = wire::begin(out, field::metric::HISTOGRAM);
    // Saturating: counts read from another process's file may add up past u64::MAX, and the
    // buckets must stay cumulative even then.
    let classic_total = counts.iter().fold(0u64, |a, &c| a.saturating_add(c));
    // Both kinds of buckets: the larger total, so that no bucket exceeds the count.
    let count = native.map_or(classic_total, |n| classic_total.max(n.count()));
    wire::uint64(out, f::COUNT, count);
    wire::double(out, f::SUM, sum);

    // A native histogram's exemplars: every kept one, in slot (bucket) order.
    let mut native_exemplars: Vec<Cow<'_, Exemplar>> = Vec::new();
    let mut cumulative = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        cumulative = cumulative.saturating_add(c);
        // Each slot is read once (a live slot is copied out when asked).
        let ex = exemplars.get(i);
        // The `+Inf` bucket is written only to carry its exemplar, as client_golang does; for
        // a native histogram too, where Prometheus before 2.50 reads it.
        let upper = bounds
            .get(i)
            .copied()
            .or(ex.is_some().then_some(f64::INFINITY));
        if let Some(upper) = upper {
            let bucket = wire::begin(out, f::BUCKET);
            wire::uint64(out, field::bucket::CUMULATIVE_COUNT, cumulative);
            wire::double(out, field::bucket::UPPER_BOUND, upper);
            if let Some(e) = &ex {
                exemplar(out, field::bucket::EXEMPLAR, e);
            }
            wire::end(out, bucket);
        }
        // Prometheus drops a native exemplar without a timestamp.
        if let Some(e) = ex.filter(|e| native.is_some() && e.timestamp.is_some()) {
            native_exemplars.push(e);
        }
    }

    if let Some(native) = native {
        wire::sint64(out, f::SCHEMA, native.schema.into());
        wire::double(out, f::ZERO_THRESHOLD, native.zero_threshold);
        wire::uint64(out, f::ZERO_COUNT, native.zero_count);
        spans(out, f::NEGATIVE_SPAN, f::NEGATIVE_DELTA, &native.negative);
        spans(out, f::POSITIVE_SPAN, f::POSITIVE_DELTA, &native.positive);
        // Without a span, an empty native histogram with a zero threshold of 0 would read as
        // a classic one: one no-op span (offset 0, length 0) marks it native. It has no
        // buckets, so no span or delta was written just above: this is field 12's place.
        if native.zero_threshold == 0.0 && native.zero_count == 0 && native.bucket_count() == 0 {
            span(out, f::POSITIVE_SPAN, 0, 0);
        }
    }
    timestamp_field(out, f::CREATED, created);
    for e in &native_exemplars {
        exemplar(out, f::EXEMPLARS, e);
    }
    wire::end(out, at);
}

/// Ascending `(key, count)` buckets as spans of consecutive keys (the first span's offset is
/// its first key, each later one's the gap since the previous span) in `span_field`, then the
/// counts as deltas from the previous bucket's (the first from 0) in `delta_field`.
fn spans(out: &mut Vec<u8>, span_field: u32, delta_field: u32, buckets: &[(i32, u64)]) {
    // (offset, length) of the span being gathered.
    let mut current: Option<(i32, u32)> = None;
    let mut previous: Option<i32> = None;
    for &(k, _) in buckets {
        match (previous, current.as_mut()) {
            (Some(p), Some((_, length))) if i64::from(k) == i64::from(p) + 1 => *length += 1,
            _ => {
                if let Some((offset, length)) = current {
                    span(out, span_field, offset, length);
                }
                let offset = match previous {
                    None => k,
                    Some(p) => k.saturating_sub(p).saturating_sub(1),
                };
                current = Some((offset, 1));
            }
        }
        previous = Some(k);
    }
    if let Some((offset, length)) = current {
        span(out, span_field, offset, length);
    }
    let mut last_count = 0i64;
    for &(_, c) in buckets {
        let c = i64::try_from(c).unwrap_or(i64::MAX);
        wire::sint64(out, delta_field, c.wrapping_sub(last_count));
        last_count = c;
    }
}

/// A `BucketSpan`.
fn span(out: &mut Vec<u8>, field: u32, offset: i32, length: u32) {
    let at = wire::begin(out, field);
    wire::sint64(out, field::span::OFFSET, offset.into());
    wire::uint64(out, field::span::LENGTH, length.into());
    wire::end(out, at);
}

/// A `google.protobuf.Timestamp`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Timestamp {
    seconds: i64,
    nanos: i32,
}

/// Unix seconds as a `Timestamp`; `None` for a time that has none (NaN, infinite, out of
/// range).
fn timestamp(t: f64) -> Option<Timestamp> {
    if !t.is_finite() || t.abs() >= 9.2e18 {
        return None;
    }
    let seconds = t.floor();
    // Rounded to whole nanoseconds; a fraction that rounds up to a second carries into it.
    let nanos = ((t - seconds) * 1e9).round() as i64;
    let (seconds, nanos) = if nanos >= 1_000_000_000 {
        (seconds as i64 + 1, 0)
    } else {
        (seconds as i64, nanos as i32)
    };
    Some(Timestamp { seconds, nanos })
}

/// A `Timestamp` message in `field`, if there is one. Its two fields are proto3 scalars:
/// written only when not zero.
fn timestamp_field(out: &mut Vec<u8>, field: u32, t: Option<Timestamp>) {
    let Some(t) = t else { return };
    let at = wire::begin(out, field);
    if t.seconds != 0 {
        // int64: the varint of the two's complement.
        wire::uint64(out, field::timestamp::SECONDS, t.seconds as u64);
    }
    if t.nanos != 0 {
        wire::uint64(out, field::timestamp::NANOS, i64::from(t.nanos) as u64);
    }
    wire::end(out, at);
}

/// An `Exemplar` message; its timestamp is required by Prometheus for native histograms and
/// written whenever known.
fn exemplar(out: &mut Vec<u8>, field: u32, e: &Exemplar) {
    let at = wire::begin(out, field);
    for (name, value) in &e.labels {
        label_pair(out, field::exemplar::LABEL, name, value);
    }
    wire::double(out, field::exemplar::VALUE, e.value);
    timestamp_field(
        out,
        field::exemplar::TIMESTAMP,
        e.timestamp.and_then(timestamp),
    );
    wire::end(out, at);
}

/// A `LabelPair` message.
fn label_pair(out: &mut Vec<u8>, field: u32, name: &str, value: &str) {
    let at = wire::begin(out, field);
    wire::string(out, field::label::NAME, name);
    wire::string(out, field::label::VALUE, value);
    wire::end(out, at);
}

/// Calls `f` with each of the series' labels, unescaped.
fn for_each_label(labels: &Labels<'_>, f: &mut dyn FnMut(&str, &str)) {
    match labels {
        Labels::Pairs(pairs) => pairs.iter().for_each(|(n, v)| f(n, v)),
        Labels::Key(k) => k.pairs().for_each(|(n, v)| f(n, v)),
        Labels::Rendered(text) => {
            let mut rest = *text;
            while let Some((name, after)) = rest.split_once("=\"") {
                let (value, after) = unescape_value(after);
                f(name, &value);
                rest = after.strip_prefix(',').unwrap_or(after);
            }
        }
    }
}

/// Reads an escaped label value up to its closing quote; returns it and the text after the
/// quote. Escapes are those of `labels::escape_label_value`: `\\`, `\"`, `\n`.
fn unescape_value(s: &str) -> (String, &str) {
    let mut value = String::with_capacity(s.len().min(64));
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &s[i + 1..]),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => value.push(other),
                None => break,
            },
            c => value.push(c),
        }
    }
    (value, "")
}

/// The messages of `metrics.proto`, field for field, derived with prost (a dev-dependency):
/// what the tests decode the encoder's output with. `pub(crate)` so that the tests of
/// `expose/mod.rs` decode it too. Every field is declared, those the encoder never writes
/// included: re-encoding what was decoded gives back the encoder's bytes only if it wrote
/// nothing these messages do not know, in the order prost writes them.
#[cfg(test)]
pub(crate) mod messages {
    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct LabelPair {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub value: Option<String>,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub(crate) enum MetricType {
        Counter = 0,
        Gauge = 1,
        Summary = 2,
        Untyped = 3,
        Histogram = 4,
        GaugeHistogram = 5,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Gauge {
        #[prost(double, optional, tag = "1")]
        pub value: Option<f64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Counter {
        #[prost(double, optional, tag = "1")]
        pub value: Option<f64>,
        #[prost(message, optional, tag = "2")]
        pub exemplar: Option<Exemplar>,
        #[prost(message, optional, tag = "3")]
        pub created_timestamp: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Quantile {
        #[prost(double, optional, tag = "1")]
        pub quantile: Option<f64>,
        #[prost(double, optional, tag = "2")]
        pub value: Option<f64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Summary {
        #[prost(uint64, optional, tag = "1")]
        pub sample_count: Option<u64>,
        #[prost(double, optional, tag = "2")]
        pub sample_sum: Option<f64>,
        #[prost(message, repeated, tag = "3")]
        pub quantile: Vec<Quantile>,
        #[prost(message, optional, tag = "4")]
        pub created_timestamp: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Untyped {
        #[prost(double, optional, tag = "1")]
        pub value: Option<f64>,
    }

    /// A classic histogram (`sample_count`, `sample_sum`, `bucket`), a native one (`schema` and
    /// below), or both in one message. The native fields are filled by the native-histogram
    /// work (issue 13); repeated scalars are unpacked, as proto2 declares them.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Histogram {
        #[prost(uint64, optional, tag = "1")]
        pub sample_count: Option<u64>,
        /// Float histograms only (overrides `sample_count` if > 0).
        #[prost(double, optional, tag = "4")]
        pub sample_count_float: Option<f64>,
        #[prost(double, optional, tag = "2")]
        pub sample_sum: Option<f64>,
        /// Increasing `upper_bound`; the `+Inf` bucket is optional.
        #[prost(message, repeated, tag = "3")]
        pub bucket: Vec<Bucket>,
        #[prost(message, optional, tag = "15")]
        pub created_timestamp: Option<Timestamp>,
        /// Native: −4…8.
        #[prost(sint32, optional, tag = "5")]
        pub schema: Option<i32>,
        #[prost(double, optional, tag = "6")]
        pub zero_threshold: Option<f64>,
        #[prost(uint64, optional, tag = "7")]
        pub zero_count: Option<u64>,
        #[prost(double, optional, tag = "8")]
        pub zero_count_float: Option<f64>,
        #[prost(message, repeated, tag = "9")]
        pub negative_span: Vec<BucketSpan>,
        /// Each bucket's count minus the previous one's (the first: minus zero).
        #[prost(sint64, repeated, packed = "false", tag = "10")]
        pub negative_delta: Vec<i64>,
        #[prost(double, repeated, packed = "false", tag = "11")]
        pub negative_count: Vec<f64>,
        /// A native histogram with no observation and a zero threshold of 0 needs one no-op span
        /// (offset 0, length 0) here, or it reads as a classic one.
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, packed = "false", tag = "13")]
        pub positive_delta: Vec<i64>,
        #[prost(double, repeated, packed = "false", tag = "14")]
        pub positive_count: Vec<f64>,
        /// Native histograms' exemplars; each must carry a timestamp.
        #[prost(message, repeated, tag = "16")]
        pub exemplars: Vec<Exemplar>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Bucket {
        #[prost(uint64, optional, tag = "1")]
        pub cumulative_count: Option<u64>,
        #[prost(double, optional, tag = "4")]
        pub cumulative_count_float: Option<f64>,
        /// Inclusive.
        #[prost(double, optional, tag = "2")]
        pub upper_bound: Option<f64>,
        #[prost(message, optional, tag = "3")]
        pub exemplar: Option<Exemplar>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct BucketSpan {
        /// Gap to the previous span, or the first bucket's index (may be negative).
        #[prost(sint32, optional, tag = "1")]
        pub offset: Option<i32>,
        #[prost(uint32, optional, tag = "2")]
        pub length: Option<u32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(double, optional, tag = "2")]
        pub value: Option<f64>,
        #[prost(message, optional, tag = "3")]
        pub timestamp: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Metric {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(message, optional, tag = "2")]
        pub gauge: Option<Gauge>,
        #[prost(message, optional, tag = "3")]
        pub counter: Option<Counter>,
        #[prost(message, optional, tag = "4")]
        pub summary: Option<Summary>,
        #[prost(message, optional, tag = "5")]
        pub untyped: Option<Untyped>,
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
        /// Never written: a scrape's samples take the scrape's time.
        #[prost(int64, optional, tag = "6")]
        pub timestamp_ms: Option<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MetricFamily {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub help: Option<String>,
        #[prost(enumeration = "MetricType", optional, tag = "3")]
        pub r#type: Option<i32>,
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
        /// OpenMetrics' unit; promtrack's model has none yet.
        #[prost(string, optional, tag = "5")]
        pub unit: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::messages as pb;
    use super::*;
    use crate::expose::{Format, encode};
    use crate::model::{MetricFamily, NativeBuckets, Series, Value};
    use crate::{Collector, Counter, Family, Histogram, Registry};
    use prost::Message;

    struct Fixed(Vec<MetricFamily>);
    impl Collector for Fixed {
        fn collect(&self, out: &mut Vec<MetricFamily>) {
            out.extend(self.0.iter().cloned());
        }
    }

    /// Decodes, and checks that prost writes the decoded messages back to the same bytes:
    /// the same fields, in the same order, with the same (minimal) lengths.
    fn decode(bytes: &[u8]) -> Vec<pb::MetricFamily> {
        let mut families = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            families.push(pb::MetricFamily::decode_length_delimited(&mut rest).unwrap());
        }
        let mut again = Vec::new();
        for f in &families {
            f.encode_length_delimited(&mut again).unwrap();
        }
        assert!(again == bytes, "prost re-encodes differently");
        families
    }

    fn labels(m: &pb::Metric) -> Vec<(&str, &str)> {
        m.label
            .iter()
            .map(|l| (l.name(), l.value()))
            .collect::<Vec<_>>()
    }

    fn protobuf(r: &Registry) -> Vec<pb::MetricFamily> {
        let mut out = Vec::new();
        encode(r, Format::Protobuf, &mut out);
        decode(&out)
    }

    #[test]
    fn every_kind_from_a_collector() {
        let series = |v: Value, created: Option<f64>| {
            let mut s = Series::new(v).label("k", "v\"\n\\");
            s.created = created;
            s
        };
        let r = Registry::new();
        r.register_collector(Fixed(vec![
            MetricFamily::new("req_total", "Requests.", MetricKind::Counter)
                .with_series(series(Value::Counter(0.0), Some(1_700_000_000.25))),
            MetricFamily::new("build_info", "Build.", MetricKind::Info)
                .with_series(series(Value::Info, None)),
            MetricFamily::new("lat", "Latency.", MetricKind::Histogram).with_series(series(
                Value::Histogram {
                    bounds: vec![0.1, 1.0],
                    counts: vec![1, 0, 2],
                    sum: 9.05,
                    native: None,
                },
                Some(1.5),
            )),
            MetricFamily::new("size", "Sizes.", MetricKind::Summary)
                .with_series(series(Value::Summary { count: 2, sum: 3.5 }, Some(2.0))),
            MetricFamily::new("temp", "T.", MetricKind::Gauge)
                .with_series(series(Value::Gauge(-1.5), Some(5.0))),
            MetricFamily::new("raw", "R.", MetricKind::Unknown)
                .with_series(series(Value::Unknown(1e-12), None)),
            MetricFamily::new("empty", "No series.", MetricKind::Gauge),
        ]));
        let families = protobuf(&r);
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            ["build_info", "lat", "raw", "req_total", "size", "temp"]
        );
        let by = |name: &str| families.iter().find(|f| f.name() == name).unwrap();
        for f in &families {
            assert_eq!(f.metric.len(), 1, "{}", f.name());
            assert_eq!(labels(&f.metric[0]), [("k", "v\"\n\\")]);
            assert_eq!(f.metric[0].timestamp_ms, None);
        }

        let info = by("build_info");
        assert_eq!(info.r#type, Some(pb::MetricType::Gauge as i32));
        assert_eq!(info.metric[0].gauge.as_ref().unwrap().value, Some(1.0));

        let req = by("req_total");
        assert_eq!(req.r#type, Some(pb::MetricType::Counter as i32));
        assert_eq!(req.help(), "Requests.");
        let counter = req.metric[0].counter.as_ref().unwrap();
        // proto2: a zero that was set is on the wire.
        assert_eq!(counter.value, Some(0.0));
        assert_eq!(
            counter.created_timestamp,
            Some(pb::Timestamp {
                seconds: 1_700_000_000,
                nanos: 250_000_000
            })
        );

        let lat = by("lat");
        assert_eq!(lat.r#type, Some(pb::MetricType::Histogram as i32));
        let h = lat.metric[0].histogram.as_ref().unwrap();
        assert_eq!((h.sample_count, h.sample_sum), (Some(3), Some(9.05)));
        let buckets: Vec<(f64, u64)> = h
            .bucket
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(buckets, [(0.1, 1), (1.0, 1)]);
        assert_eq!(
            h.created_timestamp,
            Some(pb::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        // A classic histogram: nothing native is set.
        assert!(h.schema.is_none() && h.positive_span.is_empty() && h.zero_threshold.is_none());

        let size = by("size").metric[0].summary.as_ref().unwrap();
        assert_eq!((size.sample_count, size.sample_sum), (Some(2), Some(3.5)));
        assert_eq!(size.created_timestamp.as_ref().map(|t| t.seconds), Some(2));

        let temp = &by("temp").metric[0];
        assert_eq!(temp.gauge.as_ref().unwrap().value, Some(-1.5));
        assert!(temp.counter.is_none() && temp.histogram.is_none());

        let raw = by("raw");
        assert_eq!(raw.r#type, Some(pb::MetricType::Untyped as i32));
        assert_eq!(raw.metric[0].untyped.as_ref().unwrap().value, Some(1e-12));
    }

    /// Our own families hand out escaped label text; it comes back unescaped, with the created
    /// time the family recorded.
    #[test]
    fn registered_families_with_rendered_labels() {
        let r = Registry::new();
        let jobs =
            Family::<[&str; 2], Counter>::new("jobs_total", "Jobs.").label_names(["queue", "path"]);
        let lat = Family::<(), Histogram>::new("lat_seconds", "L.").buckets(&[0.5, 1.0]);
        r.register(&jobs).unwrap();
        r.register(&lat).unwrap();
        jobs.with(&["a,b=\"c\"", "C:\\x\ny"]).inc_by(2.0);
        lat.observe(0.7);
        lat.observe(3.0);
        let families = protobuf(&r);
        let jobs = families.iter().find(|f| f.name() == "jobs_total").unwrap();
        let m = &jobs.metric[0];
        assert_eq!(labels(m), [("queue", "a,b=\"c\""), ("path", "C:\\x\ny")]);
        let c = m.counter.as_ref().unwrap();
        assert_eq!(c.value, Some(2.0));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let created = c.created_timestamp.as_ref().unwrap();
        assert!((now - 600..=now).contains(&created.seconds), "{created:?}");
        assert!((0..1_000_000_000).contains(&created.nanos));

        let lat = families.iter().find(|f| f.name() == "lat_seconds").unwrap();
        let h = lat.metric[0].histogram.as_ref().unwrap();
        assert!(labels(&lat.metric[0]).is_empty());
        let buckets: Vec<(f64, u64)> = h
            .bucket
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(buckets, [(0.5, 0), (1.0, 1)]);
        assert_eq!((h.sample_count, h.sample_sum), (Some(2), Some(3.7)));
        assert!(h.created_timestamp.is_some());
    }

    #[test]
    fn saturated_buckets_stay_cumulative() {
        let r = Registry::new();
        r.register_collector(Fixed(vec![
            MetricFamily::new("huge", "H.", MetricKind::Histogram).with_series(Series::new(
                Value::Histogram {
                    bounds: vec![1.0],
                    counts: vec![u64::MAX, 5],
                    sum: 1.0,
                    native: None,
                },
            )),
        ]));
        let h = protobuf(&r)[0].metric[0].histogram.clone().unwrap();
        assert_eq!(h.bucket[0].cumulative_count, Some(u64::MAX));
        assert_eq!(h.sample_count, Some(u64::MAX));
    }

    /// Native buckets as spans and deltas, decoded back; a native-only histogram and one with
    /// both kinds of buckets; the no-op span of an empty one with a zero threshold of 0.
    #[test]
    fn native_histograms_as_spans_and_deltas() {
        let native = NativeBuckets {
            schema: 3,
            zero_threshold: 0.001,
            zero_count: 2,
            positive: vec![(-3, 4), (-2, 1), (5, 7), (7, 7)],
            negative: vec![(1, 3)],
        };
        let empty = NativeBuckets::default();
        let r = Registry::new();
        r.register_collector(Fixed(vec![
            MetricFamily::new("n", "N.", MetricKind::Histogram)
                .with_series(
                    Series::new(Value::Histogram {
                        bounds: vec![],
                        counts: vec![24],
                        sum: 12.5,
                        native: Some(native.clone()),
                    })
                    .label("k", "native"),
                )
                .with_series(
                    Series::new(Value::Histogram {
                        bounds: vec![1.0],
                        counts: vec![20, 4],
                        sum: 12.5,
                        native: Some(native.clone()),
                    })
                    .label("k", "both"),
                )
                .with_series(
                    Series::new(Value::Histogram {
                        bounds: vec![],
                        counts: vec![0],
                        sum: 0.0,
                        native: Some(empty),
                    })
                    .label("k", "empty"),
                ),
        ]));
        let f = &protobuf(&r)[0];
        let h = |i: usize| f.metric[i].histogram.clone().unwrap();
        for i in [0, 1] {
            let h = h(i);
            assert_eq!(h.schema, Some(3));
            assert_eq!((h.zero_threshold, h.zero_count), (Some(0.001), Some(2)));
            let spans: Vec<(i32, u32)> = h
                .positive_span
                .iter()
                .map(|s| (s.offset(), s.length()))
                .collect();
            assert_eq!(spans, [(-3, 2), (6, 1), (1, 1)]);
            assert_eq!(h.positive_delta, [4, -3, 6, 0]);
            assert_eq!(h.negative_span.len(), 1);
            assert_eq!(h.negative_delta, [3]);
            assert_eq!((h.sample_count, h.sample_sum), (Some(24), Some(12.5)));
        }
        assert!(h(0).bucket.is_empty(), "native only: no classic bucket");
        assert_eq!(h(1).bucket.len(), 1, "both: the classic bucket too");
        let e = h(2);
        assert_eq!(e.schema, Some(0));
        let noop: Vec<(i32, u32)> = e
            .positive_span
            .iter()
            .map(|s| (s.offset(), s.length()))
            .collect();
        assert_eq!(noop, [(0, 0)]);
        assert_eq!(e.sample_count, Some(0));
    }

    /// A native histogram's kept exemplars go into `Histogram.exemplars` (field 16), each with
    /// its timestamp; they stay on the classic buckets too (a native-only one's on an explicit
    /// `+Inf` bucket), where Prometheus before 2.50 reads them. A classic-only histogram fills
    /// no native field.
    #[test]
    fn native_histograms_carry_their_exemplars_in_the_native_field() {
        let ex = |trace: &str, value: f64, timestamp: Option<f64>| Exemplar {
            labels: vec![("trace_id".into(), trace.to_owned())],
            value,
            timestamp,
        };
        let native = NativeBuckets {
            schema: 3,
            zero_threshold: 0.001,
            zero_count: 0,
            positive: vec![(-20, 1), (0, 1), (20, 1)],
            negative: vec![],
        };
        let histogram =
            |bounds: Vec<f64>, counts: Vec<u64>, native: Option<NativeBuckets>| Value::Histogram {
                bounds,
                counts,
                sum: 7.6,
                native,
            };
        let r = Registry::new();
        r.register_collector(Fixed(vec![
            MetricFamily::new("h", "H.", MetricKind::Histogram)
                .with_series(
                    Series::new(histogram(vec![], vec![3], Some(native.clone())))
                        .label("k", "native")
                        .exemplar(0, ex("aa", 7.0, Some(1_733_150_000.25))),
                )
                .with_series(
                    Series::new(histogram(vec![0.1, 1.0], vec![1, 1, 1], Some(native)))
                        .label("k", "both")
                        .exemplar(0, ex("bb", 0.05, Some(1_733_150_001.5)))
                        .exemplar(1, ex("cc", 0.5, None))
                        .exemplar(2, ex("dd", 7.0, Some(1_733_150_002.0))),
                )
                .with_series(
                    Series::new(histogram(vec![0.1, 1.0], vec![1, 1, 1], None))
                        .label("k", "classic")
                        .exemplar(0, ex("ee", 0.05, Some(1_733_150_003.0))),
                ),
        ]));
        let f = &protobuf(&r)[0];
        let h = |i: usize| f.metric[i].histogram.clone().unwrap();
        let shown = |e: &pb::Exemplar| {
            let ts = e.timestamp.as_ref().map(|t| (t.seconds, t.nanos));
            (e.label[0].value().to_owned(), e.value(), ts)
        };

        let native_only = h(0);
        let got: Vec<_> = native_only.exemplars.iter().map(shown).collect();
        assert_eq!(
            got,
            [("aa".to_owned(), 7.0, Some((1_733_150_000, 250_000_000)))]
        );
        assert_eq!(native_only.exemplars[0].label[0].name(), "trace_id");
        // The same exemplar on the one explicit `+Inf` bucket, counting everything; still
        // native (schema and spans set).
        assert_eq!(native_only.bucket.len(), 1);
        assert_eq!(native_only.bucket[0].upper_bound, Some(f64::INFINITY));
        assert_eq!(native_only.bucket[0].cumulative_count, Some(3));
        assert_eq!(
            native_only.bucket[0].exemplar,
            Some(native_only.exemplars[0].clone())
        );
        assert_eq!(native_only.schema, Some(3));
        assert_eq!(native_only.positive_delta.len(), 3);

        // Classic and native: every kept exemplar with a timestamp, in bucket order; the one
        // without a timestamp stays on its classic bucket only (Prometheus drops a native
        // exemplar without one).
        let both = h(1);
        let got: Vec<_> = both.exemplars.iter().map(shown).collect();
        assert_eq!(
            got,
            [
                ("bb".to_owned(), 0.05, Some((1_733_150_001, 500_000_000))),
                ("dd".to_owned(), 7.0, Some((1_733_150_002, 0))),
            ]
        );
        let classic: Vec<_> = both
            .bucket
            .iter()
            .map(|b| {
                (
                    b.upper_bound(),
                    b.exemplar.as_ref().map(|e| e.label[0].value()),
                )
            })
            .collect();
        assert_eq!(
            classic,
            [
                (0.1, Some("bb")),
                (1.0, Some("cc")),
                (f64::INFINITY, Some("dd"))
            ]
        );

        let classic_only = h(2);
        assert!(classic_only.exemplars.is_empty());
        assert_eq!(
            classic_only.bucket[0].exemplar.as_ref().map(|e| e.value()),
            Some(0.05)
        );
    }

    /// Lengths of 128 bytes and more take a longer varint than the one byte reserved for them:
    /// nested messages of every depth, up to a label value whose length takes three bytes.
    #[test]
    fn long_messages_have_their_whole_length() {
        let long = "v".repeat(20_000);
        let help = "h".repeat(200);
        let r = Registry::new();
        let mut family = MetricFamily::new("long_total", &help, MetricKind::Counter);
        for i in 0..40 {
            family = family.with_series(
                Series::new(Value::Counter(f64::from(i)))
                    .label("k", format!("{i}{}", &long[..i as usize * 10])),
            );
        }
        r.register_collector(Fixed(vec![
            family,
            MetricFamily::new("after", "A.", MetricKind::Gauge)
                .with_series(Series::new(Value::Gauge(2.0)).label("big", long.clone())),
        ]));
        let families = protobuf(&r);
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["after", "long_total"]);
        assert_eq!(labels(&families[0].metric[0]), [("big", long.as_str())]);
        let f = &families[1];
        assert_eq!(f.help(), help);
        assert_eq!(f.metric.len(), 40);
        assert_eq!(labels(&f.metric[39]).len(), 1);
        assert_eq!(labels(&f.metric[39])[0].1.len(), 392);
    }

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        let ts = |t| timestamp(t).map(|t| (t.seconds, t.nanos));
        assert_eq!(ts(0.0), Some((0, 0)));
        assert_eq!(ts(1.000_000_001), Some((1, 1)));
        assert_eq!(ts(1.999_999_999_9), Some((2, 0)));
        assert_eq!(ts(-1.5), Some((-2, 500_000_000)));
        assert_eq!(ts(f64::NAN), None);
        assert_eq!(ts(f64::INFINITY), None);
        assert_eq!(ts(1e30), None);
    }

    #[test]
    fn rendered_labels_parse_back() {
        let pairs = |text| {
            let mut got = Vec::new();
            for_each_label(&Labels::Rendered(text), &mut |n, v| {
                got.push((n.to_owned(), v.to_owned()))
            });
            got
        };
        let got = pairs(r#"a="x\"y",b="",c="\\\n""#);
        let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (&**n, &**v)).collect();
        assert_eq!(got, [("a", "x\"y"), ("b", ""), ("c", "\\\n")]);
        assert!(pairs("").is_empty());
    }

    #[test]
    fn an_empty_registry_writes_nothing() {
        let mut out = Vec::new();
        encode(&Registry::new(), Format::Protobuf, &mut out);
        assert!(out.is_empty());
    }
}
