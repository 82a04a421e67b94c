//! OpenMetrics 1.0 text.
//!
//! Differences from text 0.0.4 that this encoder owns: family names drop the `_total` (counter)
//! and `_info` (info) suffixes while their samples keep them; `# HELP` also escapes the double
//! quote; counters, histograms and summaries carry `_created` where the source knows when the
//! series began; info and unknown are types of their own; the exposition ends with `# EOF`;
//! exemplars follow a counter's `_total` sample and each classic bucket's sample as
//! ` # {trace_id="…"} value timestamp` (text 0.0.4 has no place for them).

use super::LeCache;
use super::float::write_f64;
use super::line::{LabelText, Line, Padded};
use super::text::{bucket_head, sample_start, single_start, write_buckets};
use crate::labels::escape_label_value;
use crate::model::{Exemplar, Exemplars, FamilyDesc, Labels, MetricKind, Point, Visitor};

/// Writes OpenMetrics 1.0 text into a buffer. Call [`finish`](Self::finish) at the end.
pub(crate) struct OpenMetricsEncoder<'a> {
    out: &'a mut Vec<u8>,
    /// The current series' labels, rendered once for all its sample lines.
    labels: LabelText,
    /// The family name (suffix dropped).
    name: Padded,
    /// The current histogram series' `name_bucket{labels,`.
    bucket: Padded,
    le: LeCache,
}

impl<'a> OpenMetricsEncoder<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            labels: LabelText::default(),
            name: Padded::default(),
            bucket: Padded::default(),
            le: LeCache::default(),
        }
    }

    /// Writes the `# EOF` terminator.
    pub(crate) fn finish(self) {
        self.out.extend_from_slice(b"# EOF\n");
    }
}

impl Visitor for OpenMetricsEncoder<'_> {
    fn family(&mut self, desc: &FamilyDesc<'_>) {
        let name = desc.kind.base_name(desc.name);
        self.name = Padded::new(name.as_bytes());
        self.labels.family();
        let out = &mut *self.out;
        out.extend_from_slice(b"# TYPE ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(match desc.kind {
            MetricKind::Counter => b" counter\n",
            MetricKind::Gauge => b" gauge\n",
            MetricKind::Histogram => b" histogram\n",
            MetricKind::Summary => b" summary\n",
            MetricKind::Info => b" info\n",
            MetricKind::Unknown => b" unknown\n",
        });
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        for &b in desc.help.as_bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'"' => out.extend_from_slice(b"\\\""),
                _ => out.push(b),
            }
        }
        out.push(b'\n');
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
        let line = &mut Line::new(self.out);
        let name = &self.name;
        // Each piece below is written by one copy of its code (they are all inlined, for
        // speed): the kinds of one sample line share theirs, an info series being `_info` 1.
        let single = match point {
            Point::Gauge(v) | Point::Unknown(v) => Some((&b""[..], v)),
            Point::Info => Some((&b"_info"[..], 1.0)),
            Point::Counter(_) | Point::Histogram { .. } | Point::Summary { .. } => None,
        };
        if let Some((suffix, v)) = single {
            single_start(line, name, suffix, &mut self.labels, &labels);
            write_f64(line, v);
            return line.byte(b'\n');
        }
        // Several sample lines (a counter's `_total` and `_created` too): the labels are
        // rendered once for all of them.
        self.labels.render(&labels);
        let count_sum = match point {
            Point::Counter(v) => {
                sample_start(line, name, b"_total", &self.labels);
                write_f64(line, v);
                if let Some(e) = exemplars.get(0).as_deref() {
                    line.with_vec(|out| write_exemplar(out, e));
                }
                line.byte(b'\n');
                None
            }
            Point::Histogram {
                bounds,
                counts,
                sum,
                native: _, // text formats cannot carry native buckets: the classic part only
            } => {
                bucket_head(&mut self.bucket, name, &self.labels);
                let le = self.le.get(bounds);
                let count = if exemplars.is_none() {
                    write_buckets(line, &self.bucket, le, counts)
                } else {
                    // `write_buckets`' loop, with each bucket's exemplar after its count.
                    let mut cumulative = 0u64;
                    for (i, &c) in counts.iter().enumerate() {
                        cumulative = cumulative.saturating_add(c);
                        line.put(&self.bucket);
                        line.put(LeCache::tail(le, i));
                        line.u64(cumulative);
                        if let Some(e) = exemplars.get(i).as_deref() {
                            line.with_vec(|out| write_exemplar(out, e));
                        }
                        line.byte(b'\n');
                    }
                    cumulative
                };
                Some((count, sum))
            }
            Point::Summary { count, sum } => Some((count, sum)),
            // Written above.
            Point::Gauge(_) | Point::Unknown(_) | Point::Info => return,
        };
        if let Some((count, sum)) = count_sum {
            sample_start(line, name, b"_count", &self.labels);
            line.u64(count);
            line.byte(b'\n');
            sample_start(line, name, b"_sum", &self.labels);
            write_f64(line, sum);
            line.byte(b'\n');
        }
        if let Some(t) = created {
            sample_start(line, name, b"_created", &self.labels);
            write_f64(line, t);
            line.byte(b'\n');
        }
    }
}

/// ` # {labels} value timestamp`, before the sample's line feed.
fn write_exemplar(out: &mut Vec<u8>, e: &Exemplar) {
    out.extend_from_slice(b" # {");
    for (i, (n, v)) in e.labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(out, v);
        out.push(b'"');
    }
    out.extend_from_slice(b"} ");
    let line = &mut Line::new(out);
    write_f64(line, e.value);
    if let Some(t) = e.timestamp {
        line.byte(b' ');
        write_f64(line, t);
    }
}

#[cfg(test)]
mod tests {
    use crate::expose::{Format, encode_to_string};
    use crate::model::{MetricFamily, MetricKind, Series, Value};
    use crate::{Collector, Registry};

    struct Fixed(Vec<MetricFamily>);
    impl Collector for Fixed {
        fn collect(&self, out: &mut Vec<MetricFamily>) {
            out.extend(self.0.iter().cloned());
        }
    }

    fn series(v: Value, created: Option<f64>) -> Series {
        let mut s = Series::new(v).label("k", "v");
        s.created = created;
        s
    }

    #[test]
    fn every_kind_as_written_by_hand_from_the_spec() {
        let r = Registry::new();
        r.register_collector(Fixed(vec![
            MetricFamily::new("req_total", "Requests \"served\".", MetricKind::Counter)
                .with_series(series(Value::Counter(3.0), Some(1_700_000_000.5))),
            MetricFamily::new("build_info", "Build.", MetricKind::Info)
                .with_series(series(Value::Info, None)),
            MetricFamily::new("lat", "Latency.", MetricKind::Histogram).with_series(series(
                Value::Histogram {
                    bounds: vec![0.1, 1.0],
                    counts: vec![1, 0, 2],
                    sum: 9.05,
                    native: None,
                },
                Some(1.0),
            )),
            MetricFamily::new("size", "Sizes.", MetricKind::Summary)
                .with_series(series(Value::Summary { count: 2, sum: 3.5 }, None)),
            MetricFamily::new("temp", "T.", MetricKind::Gauge)
                .with_series(series(Value::Gauge(f64::NEG_INFINITY), Some(5.0))),
            MetricFamily::new("raw", "R.", MetricKind::Unknown)
                .with_series(series(Value::Unknown(1e-12), None)),
            MetricFamily::new("empty", "No series.", MetricKind::Gauge),
        ]));
        let want = "\
# TYPE build info
# HELP build Build.
build_info{k=\"v\"} 1
# TYPE empty gauge
# HELP empty No series.
# TYPE lat histogram
# HELP lat Latency.
lat_bucket{k=\"v\",le=\"0.1\"} 1
lat_bucket{k=\"v\",le=\"1\"} 1
lat_bucket{k=\"v\",le=\"+Inf\"} 3
lat_count{k=\"v\"} 3
lat_sum{k=\"v\"} 9.05
lat_created{k=\"v\"} 1
# TYPE raw unknown
# HELP raw R.
raw{k=\"v\"} 1e-12
# TYPE req counter
# HELP req Requests \\\"served\\\".
req_total{k=\"v\"} 3
req_created{k=\"v\"} 1700000000.5
# TYPE size summary
# HELP size Sizes.
size_count{k=\"v\"} 2
size_sum{k=\"v\"} 3.5
# TYPE temp gauge
# HELP temp T.
temp{k=\"v\"} -Inf
# EOF
";
        assert_eq!(encode_to_string(&r, Format::OpenMetrics), want);
    }

    #[test]
    fn an_empty_registry_is_just_eof() {
        assert_eq!(
            encode_to_string(&Registry::new(), Format::OpenMetrics),
            "# EOF\n"
        );
        assert_eq!(encode_to_string(&Registry::new(), Format::Text), "");
    }
}
