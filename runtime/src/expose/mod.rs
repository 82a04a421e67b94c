//! Exposition: turning a [`Registry`] into the bytes a scraper reads.
//!
//! - [`Format::negotiate`] picks Prometheus text 0.0.4 or OpenMetrics 1.0 from an `Accept`
//!   header the way Prometheus' own client libraries do: media ranges ordered by q-value,
//!   `q=0` meaning "not acceptable", text as the fallback for anything else.
//! - [`encode`] writes one format; [`Scrape`] adds what an HTTP endpoint needs (content type,
//!   gzip when `Accept-Encoding` allows it, the Python client's `name[]=` filter), so the axum
//!   router and any other server give the same answer.

mod float;
mod openmetrics;
mod text;

use crate::Registry;
use crate::model::FamilyDesc;

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Chooses a format for an `Accept` header (`None` when the request had none).
    ///
    /// ```
    /// use promtrack::expose::Format;
    /// // What Prometheus 2.x sends:
    /// let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    /// assert_eq!(Format::negotiate(None), Format::Text);
    /// ```
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best: Option<(f32, usize, Format)> = None;
        for (position, range) in accept.split(',').enumerate() {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version = None;
            for param in parts {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.parse().unwrap_or(0.0),
                    "version" => version = Some(v.to_owned()),
                    _ => {}
                }
            }
            let format = match (media.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => {
                    Format::OpenMetrics
                }
                ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Format::Text,
                _ => continue,
            };
            if q.is_nan() || q <= 0.0 {
                continue;
            }
            // Highest q wins; among equals, the first listed.
            if best.is_none_or(|(bq, _, _)| q > bq) {
                best = Some((q, position, format));
            }
        }
        best.map_or(Format::Text, |(_, _, f)| f)
    }
}

/// Writes every family of `registry` into `out`.
///
/// ```
/// use promtrack::{Counter, Family, Registry};
/// use promtrack::expose::{encode, Format};
///
/// let registry = Registry::new();
/// let jobs = Family::<(), Counter>::new("jobs_total", "Jobs run.");
/// registry.register(&jobs)?;
/// let mut out = Vec::new();
/// encode(&registry, Format::Text, &mut out);
/// assert_eq!(out, b"# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 0\n");
/// # Ok::<(), promtrack::Error>(())
/// ```
pub fn encode(registry: &Registry, format: Format, out: &mut Vec<u8>) {
    encode_filtered(registry, format, &|_| true, out)
}

/// [`encode`] into a `String`.
pub fn encode_to_string(registry: &Registry, format: Format) -> String {
    let mut out = Vec::new();
    encode(registry, format, &mut out);
    // Encoders write only UTF-8: names are ASCII, label values and help text come from `&str`.
    String::from_utf8(out).expect("encoders write UTF-8")
}

fn encode_filtered(
    registry: &Registry,
    format: Format,
    include: &dyn Fn(&FamilyDesc<'_>) -> bool,
    out: &mut Vec<u8>,
) {
    match format {
        Format::Text => registry.visit(&mut text::TextEncoder::new(out), include),
        Format::OpenMetrics => {
            let mut encoder = openmetrics::OpenMetricsEncoder::new(out);
            registry.visit(&mut encoder, include);
            encoder.finish();
        }
    }
}

/// One scrape request, described by its headers and query string, independent of any HTTP
/// framework.
///
/// ```
/// use promtrack::expose::{Format, Scrape};
///
/// let registry = promtrack::Registry::new();
/// registry.register_gauge_fn("up_seconds", "Uptime.", || 12.0)?;
/// registry.register_gauge_fn("queue_depth", "Depth.", || 3.0)?;
/// let scrape = Scrape {
///     accept: Some("application/openmetrics-text"),
///     accept_encoding: None,
///     query: Some("name[]=queue_depth"),
/// };
/// let response = scrape.render(&registry);
/// assert_eq!(response.format, Format::OpenMetrics);
/// assert!(!response.gzip);
/// let body = String::from_utf8(response.body).unwrap();
/// assert!(body.contains("queue_depth 3") && !body.contains("up_seconds"));
/// # Ok::<(), promtrack::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Scrape<'a> {
    /// The `Accept` header.
    pub accept: Option<&'a str>,
    /// The `Accept-Encoding` header.
    pub accept_encoding: Option<&'a str>,
    /// The query string, without `?`. `name[]=x` (repeatable) keeps only families named `x` or
    /// writing samples named `x`, as in the Python client.
    pub query: Option<&'a str>,
}

/// What a scrape answers.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The chosen format.
    pub format: Format,
    /// Whether `body` is gzip-compressed (send `Content-Encoding: gzip`).
    pub gzip: bool,
    /// The exposition.
    pub body: Vec<u8>,
}

impl Rendered {
    /// The `Content-Type` header value.
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }
}

impl Scrape<'_> {
    /// Encodes `registry` as this request asks.
    pub fn render(&self, registry: &Registry) -> Rendered {
        let format = Format::negotiate(self.accept);
        let wanted = self.query.map(requested_names).unwrap_or_default();
        let include = |desc: &FamilyDesc<'_>| {
            wanted.is_empty()
                || crate::registry::claimed_names(desc.name, desc.kind)
                    .iter()
                    .any(|n| wanted.contains(n))
        };
        let mut body = Vec::with_capacity(16 * 1024);
        encode_filtered(registry, format, &include, &mut body);
        let gzip = cfg!(feature = "gzip") && self.accept_encoding.is_some_and(accepts_gzip);
        #[cfg(feature = "gzip")]
        if gzip {
            body = gzip_bytes(&body);
        }
        Rendered { format, gzip, body }
    }
}

/// The values of every `name[]` parameter in a query string.
fn requested_names(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "name[]")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Whether an `Accept-Encoding` header allows gzip (`gzip` or `*` with a q-value above 0).
pub(crate) fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && q > 0.0
    })
}

#[cfg(feature = "gzip")]
pub(crate) fn gzip_bytes(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    encoder.write_all(body).expect("write to Vec");
    encoder.finish().expect("write to Vec")
}

/// Rendered `le` values of the last bucket layout seen. Every series of a family shares its
/// bounds, so this renders them once per family, not once per series; a hit costs one
/// comparison of a dozen floats.
#[derive(Default)]
pub(crate) struct LeCache {
    bounds: Vec<f64>,
    rendered: Vec<String>,
}

impl LeCache {
    fn get(&mut self, bounds: &[f64]) -> &[String] {
        if self.bounds != bounds || self.rendered.is_empty() {
            self.bounds = bounds.to_vec();
            self.rendered = bounds.iter().map(|&b| float::f64_to_string(b)).collect();
        }
        &self.rendered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        use Format::*;
        let cases = [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("garbage;;;=,,"), Text),
            (Some("application/json"), Text),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("application/openmetrics-text; version=0.0.1"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text; version=2.0.0"), Text),
            (Some("application/openmetrics-text;q=0, text/plain"), Text),
            (Some("application/openmetrics-text;q=0"), Text),
            (
                Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
                Text,
            ),
            (
                Some("text/plain;q=0.5, application/openmetrics-text;q=0.9"),
                OpenMetrics,
            ),
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3",
                ),
                Text,
            ),
            (
                Some("APPLICATION/OPENMETRICS-TEXT;Version=1.0.0"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text;q=abc"), Text),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    /// Bucket counts whose sum exceeds `u64::MAX` (a hostile multiprocess file can hold any)
    /// stay cumulative, saturated, in both formats; they used to overflow (found by fuzzing).
    #[test]
    fn cumulative_buckets_saturate() {
        use crate::model::{MetricFamily, MetricKind, Series, Value};
        struct Huge;
        impl crate::Collector for Huge {
            fn collect(&self, out: &mut Vec<MetricFamily>) {
                let value = Value::Histogram {
                    bounds: vec![1.0],
                    counts: vec![u64::MAX, 5],
                    sum: 1.0,
                };
                out.push(
                    MetricFamily::new("huge_seconds", "Huge.", MetricKind::Histogram)
                        .with_series(Series::new(value)),
                );
            }
        }
        let registry = Registry::new();
        registry.register_collector(Huge);
        for format in [Format::Text, Format::OpenMetrics] {
            let text = encode_to_string(&registry, format);
            let max = u64::MAX;
            assert!(
                text.contains(&format!("huge_seconds_bucket{{le=\"1\"}} {max}\n")),
                "{text}"
            );
            assert!(
                text.contains(&format!("huge_seconds_bucket{{le=\"+Inf\"}} {max}\n")),
                "{text}"
            );
            assert!(
                text.contains(&format!("huge_seconds_count {max}\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn gzip_acceptance() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzipx"));
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let registry = Registry::new();
        registry.register_gauge_fn("g", "G.", || 1.0).unwrap();
        let scrape = Scrape {
            accept_encoding: Some("gzip"),
            ..Default::default()
        };
        let r = scrape.render(&registry);
        assert!(r.gzip);
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, encode_to_string(&registry, Format::Text));
    }

    #[test]
    fn name_filter_matches_families_and_their_samples() {
        let registry = Registry::new();
        for name in ["a", "b", "c"] {
            registry.register_gauge_fn(name, "h", || 1.0).unwrap();
        }
        let h = crate::Family::<(), crate::Histogram>::new("lat", "h");
        registry.register(&h).unwrap();
        let body = |q: &str| {
            let r = Scrape {
                query: Some(q),
                ..Default::default()
            }
            .render(&registry);
            String::from_utf8(r.body).unwrap()
        };
        let only_ac = body("name[]=a&name%5B%5D=c&other=b");
        assert!(only_ac.contains("\na 1\n") || only_ac.starts_with("# HELP a"));
        assert!(only_ac.contains("c 1\n") && !only_ac.contains("b 1\n"));
        assert!(body("name[]=lat_bucket").contains("lat_count 0"));
        assert_eq!(body("name[]=nothing"), "");
        assert!(body("").contains("b 1\n"));
    }
}
