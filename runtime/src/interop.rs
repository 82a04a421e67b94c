//! Families from a `prometheus::Registry` (the rust-prometheus crate) in promtrack's exposition.
//!
//! Many services already have metrics in rust-prometheus. [`PrometheusRegistry`] gathers them on
//! every scrape and converts them to promtrack's model, so one `/metrics` shows both, in either
//! format. Conversions:
//! - counters keep their name; one whose name does not end in `_total` (allowed by
//!   rust-prometheus, not by OpenMetrics) is exposed as `unknown` (`untyped` in text 0.0.4) under
//!   the same sample name, so dashboards keep working;
//! - histograms' cumulative buckets become per-bucket counts, with `+Inf` from the sample count;
//! - summaries keep their count and sum (promtrack's model has no quantiles);
//! - untyped metrics become `unknown`; gauges stay gauges.
//!
//! ```
//! let theirs = prometheus::Registry::new();
//! let legacy = prometheus::IntCounter::new("legacy_jobs_total", "Jobs.").unwrap();
//! theirs.register(Box::new(legacy.clone())).unwrap();
//! legacy.inc_by(3);
//!
//! let ours = promtrack::Registry::new();
//! ours.register_collector(promtrack::interop::PrometheusRegistry::new(theirs));
//! let text = promtrack::expose::encode_to_string(&ours, promtrack::expose::Format::Text);
//! assert!(text.contains("legacy_jobs_total 3\n"));
//! ```

// rust-prometheus has two data models (with and without its `protobuf` feature, which another
// crate in a user's tree may switch on); the `get_*` accessors are the ones both provide, and
// the plain model marks them deprecated in favour of names the protobuf model lacks.
#![allow(deprecated)]

use std::borrow::Cow;

use prometheus::proto;

use crate::Collector;
use crate::model::{MetricFamily, MetricKind, Series, Value};

/// A [`Collector`] that gathers a `prometheus::Registry`.
pub struct PrometheusRegistry {
    registry: prometheus::Registry,
}

impl PrometheusRegistry {
    /// Wraps a rust-prometheus registry (`prometheus::default_registry().clone()` for the
    /// global one).
    pub fn new(registry: prometheus::Registry) -> Self {
        Self { registry }
    }
}

impl Collector for PrometheusRegistry {
    fn collect(&self, out: &mut Vec<MetricFamily>) {
        out.extend(self.registry.gather().iter().map(convert));
    }
}

fn untyped_value(m: &proto::Metric) -> f64 {
    m.get_untyped().get_value()
}

fn convert(mf: &proto::MetricFamily) -> MetricFamily {
    let name = mf.get_name();
    let kind = match mf.get_field_type() {
        proto::MetricType::COUNTER if name.ends_with("_total") => MetricKind::Counter,
        proto::MetricType::GAUGE => MetricKind::Gauge,
        proto::MetricType::HISTOGRAM => MetricKind::Histogram,
        proto::MetricType::SUMMARY => MetricKind::Summary,
        _ => MetricKind::Unknown,
    };
    let mut family = MetricFamily::new(name, mf.get_help(), kind);
    for m in mf.get_metric() {
        let value = match kind {
            MetricKind::Counter => Value::Counter(m.get_counter().get_value()),
            MetricKind::Gauge => Value::Gauge(m.get_gauge().get_value()),
            MetricKind::Histogram => {
                let h = m.get_histogram();
                let mut bounds = Vec::new();
                let mut counts = Vec::new();
                let mut previous = 0;
                for b in h.get_bucket() {
                    if b.get_upper_bound().is_infinite() {
                        continue;
                    }
                    bounds.push(b.get_upper_bound());
                    counts.push(b.get_cumulative_count().saturating_sub(previous));
                    previous = b.get_cumulative_count();
                }
                counts.push(h.get_sample_count().saturating_sub(previous));
                Value::Histogram {
                    bounds,
                    counts,
                    sum: h.get_sample_sum(),
                    native: None,
                }
            }
            MetricKind::Summary => {
                let s = m.get_summary();
                Value::Summary {
                    count: s.get_sample_count(),
                    sum: s.get_sample_sum(),
                }
            }
            _ => Value::Unknown(match mf.get_field_type() {
                proto::MetricType::COUNTER => m.get_counter().get_value(),
                _ => untyped_value(m),
            }),
        };
        let mut series = Series::new(value);
        series.labels = m
            .get_label()
            .iter()
            .map(|l| {
                (
                    Cow::Owned(l.get_name().to_owned()),
                    l.get_value().to_owned(),
                )
            })
            .collect();
        family.series.push(series);
    }
    family
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::{Format, encode_to_string};

    #[test]
    fn counters_gauges_histograms_and_odd_names() {
        let theirs = prometheus::Registry::new();
        let c =
            prometheus::IntCounterVec::new(prometheus::Opts::new("req_total", "Reqs."), &["code"])
                .unwrap();
        let odd = prometheus::Counter::new("odd_counter", "No suffix.").unwrap();
        let g = prometheus::Gauge::new("temp", "Temp.").unwrap();
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("lat_seconds", "Lat.").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        theirs.register(Box::new(c.clone())).unwrap();
        theirs.register(Box::new(odd.clone())).unwrap();
        theirs.register(Box::new(g.clone())).unwrap();
        theirs.register(Box::new(h.clone())).unwrap();
        c.with_label_values(&["200"]).inc_by(2);
        odd.inc();
        g.set(-3.5);
        for v in [0.05, 0.5, 5.0, 7.0] {
            h.observe(v);
        }

        let ours = crate::Registry::new();
        ours.register_collector(PrometheusRegistry::new(theirs));
        let text = encode_to_string(&ours, Format::Text);
        for needle in [
            "# TYPE req_total counter\nreq_total{code=\"200\"} 2\n",
            "# TYPE odd_counter untyped\nodd_counter 1\n",
            "temp -3.5\n",
            "lat_seconds_bucket{le=\"0.1\"} 1\nlat_seconds_bucket{le=\"1\"} 2\nlat_seconds_bucket{le=\"+Inf\"} 4\nlat_seconds_sum 12.55\nlat_seconds_count 4\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        let om = encode_to_string(&ours, Format::OpenMetrics);
        assert!(om.contains("# TYPE req counter\n"), "{om}");
        assert!(om.contains("# TYPE odd_counter unknown\n"), "{om}");
    }
}
