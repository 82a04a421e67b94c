//! Prometheus text format 0.0.4.
//!
//! `# HELP` escapes backslash and line feed; label values escape backslash, double quote and
//! line feed. Info families are written as gauges and unknown ones as `untyped` (the format has
//! neither); `_created` is not written (the format has no place for it, and Prometheus would
//! read it as a separate gauge). Histogram buckets are written cumulatively, ending in
//! `le="+Inf"`, followed by `_sum` and `_count`. A native-only histogram arrives with no finite
//! bound and one count, so it is written as the single bucket `le="+Inf"`: a valid classic
//! histogram that strict parsers accept (its native buckets travel only in protobuf).

use super::LeCache;
use super::float::write_f64;
use super::line::{LabelText, Line, Padded};
use crate::model::{FamilyDesc, Labels, MetricKind, Point, Visitor};

/// Writes text format 0.0.4 into a buffer.
pub(crate) struct TextEncoder<'a> {
    out: &'a mut Vec<u8>,
    /// The current series' labels, rendered once for all its sample lines.
    labels: LabelText,
    name: Padded,
    /// The current histogram series' `name_bucket{labels,`.
    bucket: Padded,
    le: LeCache,
}

impl<'a> TextEncoder<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            labels: LabelText::default(),
            name: Padded::default(),
            bucket: Padded::default(),
            le: LeCache::default(),
        }
    }
}

/// `name<suffix>{labels} ` (no braces without labels), the labels rendered already. Shared by
/// both text encoders.
#[inline(always)]
pub(crate) fn sample_start(line: &mut Line<'_>, name: &Padded, suffix: &[u8], labels: &LabelText) {
    line.put(name);
    line.short(suffix);
    if labels.is_empty() {
        line.byte(b' ');
    } else {
        line.byte(b'{');
        line.put(labels.padded());
        line.small(b"} ");
    }
}

/// A sample of one line, `name<suffix>{labels} `, its labels rendered straight into it. Shared
/// by both text encoders.
#[inline(always)]
pub(crate) fn single_start(
    line: &mut Line<'_>,
    name: &Padded,
    suffix: &[u8],
    text: &mut LabelText,
    labels: &Labels<'_>,
) {
    line.put(name);
    line.short(suffix);
    if labels.is_empty() {
        line.byte(b' ');
    } else {
        line.byte(b'{');
        text.write(line, labels);
        line.small(b"} ");
    }
}

/// The `_sum` and `_count` samples of a histogram or a summary.
#[inline(always)]
fn sum_and_count(line: &mut Line<'_>, name: &Padded, labels: &LabelText, sum: f64, count: u64) {
    sample_start(line, name, b"_sum", labels);
    write_f64(line, sum);
    line.byte(b'\n');
    sample_start(line, name, b"_count", labels);
    line.u64(count);
    line.byte(b'\n');
}

impl Visitor for TextEncoder<'_> {
    fn family(&mut self, desc: &FamilyDesc<'_>) {
        self.name = Padded::new(desc.name.as_bytes());
        self.labels.family();
        let out = &mut *self.out;
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(desc.name.as_bytes());
        out.push(b' ');
        escape_help(out, desc.help);
        out.extend_from_slice(b"\n# TYPE ");
        out.extend_from_slice(desc.name.as_bytes());
        out.extend_from_slice(match desc.kind {
            MetricKind::Counter => b" counter\n",
            MetricKind::Gauge | MetricKind::Info => b" gauge\n",
            MetricKind::Histogram => b" histogram\n",
            MetricKind::Summary => b" summary\n",
            MetricKind::Unknown => b" untyped\n",
        });
    }

    fn series(&mut self, labels: Labels<'_>, point: Point<'_>, _created: Option<f64>) {
        let line = &mut Line::new(self.out);
        let name = &self.name;
        // Each piece below is written by one copy of its code (they are all inlined, for
        // speed): the kinds of one sample line share theirs, an info series being a gauge of 1.
        let single = match point {
            Point::Counter(v) | Point::Gauge(v) | Point::Unknown(v) => Some(v),
            Point::Info => Some(1.0),
            Point::Histogram { .. } | Point::Summary { .. } => None,
        };
        if let Some(v) = single {
            single_start(line, name, b"", &mut self.labels, &labels);
            write_f64(line, v);
            return line.byte(b'\n');
        }
        // Several sample lines: the labels are rendered once for all of them.
        self.labels.render(&labels);
        let (sum, count) = match point {
            Point::Histogram {
                bounds,
                counts,
                sum,
                native: _, // text formats cannot carry native buckets: the classic part only
            } => {
                bucket_head(&mut self.bucket, name, &self.labels);
                let le = self.le.get(bounds);
                (sum, write_buckets(line, &self.bucket, le, counts))
            }
            Point::Summary { count, sum } => (sum, count),
            // Written above.
            Point::Counter(_) | Point::Gauge(_) | Point::Unknown(_) | Point::Info => return,
        };
        sum_and_count(line, name, &self.labels, sum, count);
    }
}

/// Renders a histogram series' `name_bucket{labels,` (`name_bucket{` without labels) into
/// `head`, which each of its bucket lines then starts with.
#[inline(always)]
pub(crate) fn bucket_head(head: &mut Padded, name: &Padded, labels: &LabelText) {
    head.set(|line| {
        line.put(name);
        line.small(b"_bucket{");
        if !labels.is_empty() {
            line.put(labels.padded());
            line.byte(b',');
        }
    });
}

/// A histogram's `_bucket` samples, cumulative, ending in `le="+Inf"`, from per-bucket `counts`,
/// the series' [`bucket_head`] and the `le="bound"} ` tails of its bounds ([`LeCache`]);
/// returns the total count. Shared by both text encoders.
#[inline(always)]
pub(crate) fn write_buckets(
    line: &mut Line<'_>,
    head: &Padded,
    le: &[Padded],
    counts: &[u64],
) -> u64 {
    let mut cumulative = 0;
    for (i, &c) in counts.iter().enumerate() {
        // Saturating: counts read from another process's file may add up past u64::MAX, and
        // the buckets must stay cumulative even then.
        cumulative = u64::saturating_add(cumulative, c);
        line.bucket(head, LeCache::tail(le, i), cumulative);
    }
    cumulative
}

fn escape_help(out: &mut Vec<u8>, help: &str) {
    for &b in help.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use crate::expose::{Format, encode_to_string};
    use crate::model::{MetricFamily, MetricKind, Series, Value};
    use crate::{Collector, Counter, Family, Gauge, Histogram, Info, Registry, Summary};

    struct Fixed(Vec<MetricFamily>);
    impl Collector for Fixed {
        fn collect(&self, out: &mut Vec<MetricFamily>) {
            out.extend(self.0.iter().cloned());
        }
    }

    #[test]
    fn every_kind_as_written_by_hand_from_the_spec() {
        let r = Registry::new();
        let c = Family::<[&str; 1], Counter>::new("req_total", "Requests \\ served\nin total.")
            .label_names(["path"]);
        let g = Family::<(), Gauge>::new("temp_celsius", "Temperature.");
        let h = Family::<(), Histogram>::new("lat_seconds", "Latency.").buckets(&[0.1, 1.0]);
        let s = Family::<(), Summary>::new("size_bytes", "Sizes.");
        let i = Family::<[&str; 1], Info>::new("build_info", "Build.").label_names(["version"]);
        r.register(&c).unwrap();
        r.register(&g).unwrap();
        r.register(&h).unwrap();
        r.register(&s).unwrap();
        r.register(&i).unwrap();
        c.with(&["/a\"b"]).inc_by(3.0);
        g.set(-1.5);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(7.0);
        s.observe(2.0);
        i.with(&["1.0"]);
        let want = "\
# HELP build_info Build.
# TYPE build_info gauge
build_info{version=\"1.0\"} 1
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le=\"0.1\"} 1
lat_seconds_bucket{le=\"1\"} 2
lat_seconds_bucket{le=\"+Inf\"} 3
lat_seconds_sum 7.55
lat_seconds_count 3
# HELP req_total Requests \\\\ served\\nin total.
# TYPE req_total counter
req_total{path=\"/a\\\"b\"} 3
# HELP size_bytes Sizes.
# TYPE size_bytes summary
size_bytes_sum 2
size_bytes_count 1
# HELP temp_celsius Temperature.
# TYPE temp_celsius gauge
temp_celsius -1.5
";
        assert_eq!(encode_to_string(&r, Format::Text), want);
    }

    #[test]
    fn empty_families_special_values_and_hostile_labels() {
        let r = Registry::new();
        r.register(
            &Family::<[&str; 1], Counter>::new("none_total", "No series yet.").label_names(["k"]),
        )
        .unwrap();
        r.register_collector(Fixed(vec![
            MetricFamily::new("odd", "Odd values.", MetricKind::Gauge)
                .with_series(Series::new(Value::Gauge(f64::NAN)).label("v", "nan"))
                .with_series(Series::new(Value::Gauge(f64::INFINITY)).label("v", "inf"))
                .with_series(Series::new(Value::Gauge(f64::NEG_INFINITY)).label("v", "-inf"))
                .with_series(Series::new(Value::Gauge(1e-12)).label("v", "tiny"))
                .with_series(Series::new(Value::Gauge(1e21)).label("v", "huge"))
                .with_series(
                    Series::new(Value::Gauge(0.0)).label(Cow::Borrowed("v"), "a\\b\"c\nd 😀"),
                ),
            MetricFamily::new("raw", "Untyped.", MetricKind::Unknown)
                .with_series(Series::new(Value::Unknown(2.0))),
        ]));
        let want = "\
# HELP none_total No series yet.
# TYPE none_total counter
# HELP odd Odd values.
# TYPE odd gauge
odd{v=\"nan\"} NaN
odd{v=\"inf\"} +Inf
odd{v=\"-inf\"} -Inf
odd{v=\"tiny\"} 1e-12
odd{v=\"huge\"} 1e+21
odd{v=\"a\\\\b\\\"c\\nd 😀\"} 0
# HELP raw Untyped.
# TYPE raw untyped
raw 2
";
        assert_eq!(encode_to_string(&r, Format::Text), want);
    }

    #[test]
    fn histogram_with_labels_puts_le_last() {
        let r = Registry::new();
        let h = Family::<[&str; 1], Histogram>::new("h", "H.")
            .label_names(["route"])
            .buckets(&[1.0]);
        r.register(&h).unwrap();
        h.with(&["/x"]).observe(0.5);
        let text = encode_to_string(&r, Format::Text);
        assert!(text.contains("h_bucket{route=\"/x\",le=\"1\"} 1\nh_bucket{route=\"/x\",le=\"+Inf\"} 1\nh_sum{route=\"/x\"} 0.5\nh_count{route=\"/x\"} 1\n"), "{text}");
    }
}
