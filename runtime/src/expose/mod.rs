//! Exposition: turning a [`Registry`] into the bytes a scraper reads.
//!
//! # Formats
//!
//! | [`Format`] | `Content-Type` answered | Chosen for (`Accept`) |
//! | --- | --- | --- |
//! | [`Text`](Format::Text) | `text/plain; version=0.0.4; charset=utf-8` | `text/plain`, `text/plain;version=0.0.4`, `text/*`, `*/*`, no `Accept`, anything unknown |
//! | | `text/plain; version=1.0.0; charset=utf-8; escaping=…` | `text/plain;version=1.0.0[;escaping=…]` (Prometheus 3) |
//! | [`OpenMetrics`](Format::OpenMetrics) | `application/openmetrics-text; version=1.0.0; charset=utf-8[; escaping=…]` | `application/openmetrics-text` with no version, `version=1.0.0` or `version=0.0.1` |
//! | `Protobuf` (feature `protobuf`, on by default) | `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited` | `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited` |
//!
//! [`Format::negotiate`] reads the media ranges the way Prometheus' own client libraries do:
//! the highest q-value wins, the first listed among equals, `q=0` means "not acceptable", and
//! text is the answer when nothing listed is known. That covers what each Prometheus sends:
//! 2.x's default (OpenMetrics first), 2.x with `--enable-feature=native-histograms`
//! (`application/vnd.google.protobuf;…;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1`)
//! and 3.x's `scrape_protocols` order, whose 1.0.0 text forms carry `escaping=` (`allow-utf-8`,
//! also spelled `allow-utf8`, `underscores`, `dots`, `values`). promtrack only accepts
//! legacy-valid metric and label names (`[a-zA-Z_:][a-zA-Z0-9_:]*`), which every escaping
//! scheme leaves as they are: the escaping a scraper asks for is the identity here, and the
//! answer's `Content-Type` names it (an unknown scheme is answered as `underscores`, the
//! default of client_golang). The answer always has a `Content-Type` (Prometheus 3 fails a
//! scrape without one); for protobuf it is the full media type above, `encoding=delimited`
//! included.
//!
//! # Entry points
//!
//! - [`encode`] writes one format; [`Scrape`] adds what an HTTP endpoint needs (content type,
//!   gzip when `Accept-Encoding` allows it, the Python client's `name[]=` filter), so the axum
//!   router and any other server give the same answer, and counts the scrape in
//!   `promtrack_scrapes_total{format}` (the default registry and a multiprocess directory's
//!   scrape expose it: it says what a scraper negotiated, which Prometheus 2.x does not report).

mod float;
#[cfg(feature = "gzip")]
pub(crate) mod gzip;
mod line;
mod openmetrics;
#[cfg(feature = "protobuf")]
mod protobuf;
mod text;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Registry;
use crate::model::FamilyDesc;

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Prometheus text format 0.0.4 (answered as 1.0.0 when asked for it: with legacy names the
    /// two are the same bytes).
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus protobuf: varint-length-delimited `io.prometheus.client.MetricFamily`
    /// messages (feature `protobuf`). Binary: read it with [`encode`], not
    /// [`encode_to_string`].
    #[cfg(feature = "protobuf")]
    Protobuf,
}

/// The protobuf media type, as Prometheus asks for it and as a response must name it.
#[cfg(feature = "protobuf")]
const PROTOBUF_MEDIA_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

impl Format {
    /// The `Content-Type` of a response in this format, in its default version (text 0.0.4,
    /// OpenMetrics 1.0.0, no escaping parameter). [`Negotiated::content_type`] is the one to
    /// send when answering an `Accept` header.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            #[cfg(feature = "protobuf")]
            Format::Protobuf => PROTOBUF_MEDIA_TYPE,
        }
    }

    /// The `format` label of `promtrack_scrapes_total`.
    fn label(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::OpenMetrics => "openmetrics",
            #[cfg(feature = "protobuf")]
            Format::Protobuf => "protobuf",
        }
    }

    /// Chooses a format for an `Accept` header (`None` when the request had none); see the
    /// [module docs](self) for the forms understood.
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
        Negotiated::from_accept(accept).format
    }
}

/// What [`Format::negotiate`] chose, with the exact `Content-Type` that says so (the version
/// and escaping scheme the scraper asked for).
///
/// ```
/// use promtrack::expose::{Format, Negotiated};
/// // Prometheus 3.x's default `scrape_protocols`:
/// let accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
/// let chosen = Negotiated::from_accept(Some(accept));
/// assert_eq!(chosen.format, Format::OpenMetrics);
/// assert_eq!(
///     chosen.content_type,
///     "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The format to write.
    pub format: Format,
    /// The `Content-Type` to answer with.
    pub content_type: &'static str,
}

/// A name-escaping scheme of Prometheus 3's `escaping=` parameter. Each is the identity on
/// promtrack's legacy-valid names, so it changes only the `Content-Type` that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escaping {
    AllowUtf8,
    Underscores,
    Dots,
    Values,
}

impl Escaping {
    /// The scheme a parameter value names; `None` for one Prometheus does not define.
    fn parse(v: &str) -> Option<Escaping> {
        match v {
            "allow-utf-8" | "allow-utf8" => Some(Escaping::AllowUtf8),
            "underscores" => Some(Escaping::Underscores),
            "dots" => Some(Escaping::Dots),
            "values" => Some(Escaping::Values),
            _ => None,
        }
    }

    fn text_1_0_0(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8",
            Escaping::Underscores => {
                "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"
            }
            Escaping::Dots => "text/plain; version=1.0.0; charset=utf-8; escaping=dots",
            Escaping::Values => "text/plain; version=1.0.0; charset=utf-8; escaping=values",
        }
    }

    fn openmetrics(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
            }
            Escaping::Underscores => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
            }
            Escaping::Dots => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=dots"
            }
            Escaping::Values => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=values"
            }
        }
    }
}

impl Negotiated {
    /// Chooses for an `Accept` header (`None` when the request had none): the highest q-value
    /// among the media ranges promtrack can answer, the first listed among equals; text 0.0.4
    /// when none is.
    pub fn from_accept(accept: Option<&str>) -> Negotiated {
        let text = Negotiated {
            format: Format::Text,
            content_type: Format::Text.content_type(),
        };
        let Some(accept) = accept else {
            return text;
        };
        let mut best: Option<(u16, Negotiated)> = None;
        for range in accept.split(',') {
            let Some((q, chosen)) = Self::range(range) else {
                continue;
            };
            if q == 0 {
                continue;
            }
            // Highest q wins; among equals, the first listed.
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, chosen));
            }
        }
        best.map_or(text, |(_, n)| n)
    }

    /// One media range: its q-value and what it asks for, or `None` if promtrack has no such
    /// format. Parameter names are case-insensitive, values are compared as Prometheus sends
    /// them.
    fn range(range: &str) -> Option<(u16, Negotiated)> {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut q = 1000;
        let (mut version, mut proto, mut encoding, mut escaping) = (None, None, None, None);
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => q = qvalue(v),
                "version" => version = Some(v),
                "proto" => proto = Some(v),
                "encoding" => encoding = Some(v),
                "escaping" => escaping = Some(v),
                _ => {}
            }
        }
        let escaping = escaping.map(|e| Escaping::parse(e).unwrap_or(Escaping::Underscores));
        let (format, content_type) = match (media.as_str(), version) {
            ("application/vnd.google.protobuf", _) => {
                let delimited = proto == Some("io.prometheus.client.MetricFamily")
                    && encoding == Some("delimited");
                #[cfg(feature = "protobuf")]
                if delimited {
                    (Format::Protobuf, PROTOBUF_MEDIA_TYPE)
                } else {
                    return None;
                }
                // Without the feature, the scraper's next choice answers.
                #[cfg(not(feature = "protobuf"))]
                return {
                    let _ = delimited;
                    None
                };
            }
            ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => (
                Format::OpenMetrics,
                escaping.map_or(Format::OpenMetrics.content_type(), Escaping::openmetrics),
            ),
            ("text/plain", Some("1.0.0")) => (
                Format::Text,
                escaping.unwrap_or(Escaping::Underscores).text_1_0_0(),
            ),
            ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => {
                (Format::Text, Format::Text.content_type())
            }
            _ => return None,
        };
        Some((
            q,
            Negotiated {
                format,
                content_type,
            },
        ))
    }
}

/// An HTTP q-value (RFC 9110, section 12.4.2: `0` to `1` with at most three decimals) in
/// thousandths; anything else reads as 0, "not acceptable", as before. Parsed by hand because
/// `str::parse::<f32>` was the only float parsing in a server's binary besides `/proc`'s (17 KB
/// of the standard library's, BENCHMARKS.md).
pub(crate) fn qvalue(v: &str) -> u16 {
    let (whole, fraction) = v.split_once('.').unwrap_or((v, ""));
    let whole = match whole {
        "0" | "" => 0,
        "1" => 1000,
        _ => return 0,
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let thousandths = (0..3).fold(0, |t, i| {
        t * 10
            + fraction
                .as_bytes()
                .get(i)
                .map_or(0, |&b| u16::from(b - b'0'))
    });
    (whole + thousandths).min(1000)
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

/// [`encode`] into a `String`, for the text formats. `Format::Protobuf` is binary: its bytes
/// come back lossily converted (use [`encode`] for it).
pub fn encode_to_string(registry: &Registry, format: Format) -> String {
    let mut out = Vec::new();
    encode(registry, format, &mut out);
    // The text encoders write only UTF-8: names are ASCII, label values and help text come
    // from `&str`.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn encode_filtered(
    registry: &Registry,
    format: Format,
    include: &dyn Fn(&FamilyDesc<'_>) -> bool,
    out: &mut Vec<u8>,
) {
    // Room for as much as the last exposition wrote, and an eighth more, up front: a large
    // registry's scrape then does not grow its buffer by doubling, copying what it wrote at
    // each step (the encoders store whole words, so they need a few bytes past the end).
    let start = out.len();
    let last = LAST_SIZE.load(Ordering::Relaxed).min(MAX_SIZE_HINT);
    out.reserve(last + last / 8 + 64);
    encode_into(registry, format, include, out);
    LAST_SIZE.store(out.len() - start, Ordering::Relaxed);
}

/// The size of the last exposition written, by any registry in any format: a hint for the
/// next one's buffer (one registry is the common case; another's scrape only costs a
/// reservation of the wrong size once).
static LAST_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The most [`LAST_SIZE`] reserves up front.
const MAX_SIZE_HINT: usize = 64 << 20;

fn encode_into(
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
        #[cfg(feature = "protobuf")]
        Format::Protobuf => {
            let mut encoder = protobuf::ProtobufEncoder::new(out);
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
    content_type: &'static str,
}

impl Rendered {
    /// The `Content-Type` header value: the negotiated one (see [`Negotiated`]).
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }
}

impl Scrape<'_> {
    /// Encodes `registry` as this request asks, and counts the scrape in
    /// `promtrack_scrapes_total{format}` (before encoding, so the answer counts itself).
    pub fn render(&self, registry: &Registry) -> Rendered {
        let Negotiated {
            format,
            content_type,
        } = Negotiated::from_accept(self.accept);
        crate::registry::count_scrape(format.label());
        let wanted = self.query.map(requested_names).unwrap_or_default();
        let include = |desc: &FamilyDesc<'_>| {
            wanted.is_empty()
                || crate::registry::claimed_names(desc.name, desc.kind)
                    .iter()
                    .any(|n| wanted.contains(n))
        };
        let mut body = Vec::with_capacity(16 * 1024);
        encode_filtered(registry, format, &include, &mut body);
        // A compressor failure (`None`) sends the body as it is.
        #[cfg(feature = "gzip")]
        let compressed = (self.accept_encoding.is_some_and(gzip::accepts_gzip))
            .then(|| gzip::gzip_bytes(&body))
            .flatten();
        #[cfg(not(feature = "gzip"))]
        let compressed: Option<Vec<u8>> = None;
        Rendered {
            format,
            gzip: compressed.is_some(),
            body: compressed.unwrap_or(body),
            content_type,
        }
    }
}

/// The values of every `name[]` parameter in a query string.
fn requested_names(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "name[]")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The `le="bound"} ` tails of the last bucket layout seen, `+Inf` last. Every series of a
/// family shares its bounds, so this renders them once per family, not once per series; a hit
/// costs one comparison of a dozen floats.
#[derive(Default)]
pub(crate) struct LeCache {
    bounds: Vec<f64>,
    tails: Vec<line::Padded>,
}

impl LeCache {
    fn get(&mut self, bounds: &[f64]) -> &[line::Padded] {
        if self.bounds != bounds || self.tails.is_empty() {
            self.bounds = bounds.to_vec();
            let tail = |le: &str| line::Padded::new(format!("le=\"{le}\"}} ").as_bytes());
            self.tails = bounds
                .iter()
                .map(|&b| tail(&float::f64_to_string(b)))
                .chain([tail("+Inf")])
                .collect();
        }
        &self.tails
    }

    /// Bucket `i`'s tail: the `+Inf` one for every bucket past the bounds (a source whose
    /// counts outnumber its bounds).
    #[inline(always)]
    fn tail(tails: &[line::Padded], i: usize) -> &line::Padded {
        &tails[i.min(tails.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;
    #[cfg(feature = "protobuf")]
    use prost::Message;

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
                Some("APPLICATION/OPENMETRICS-TEXT;Version=1.0.0"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text;q=abc"), Text),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    const PB: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    const PB_CT: &str = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

    fn chosen(accept: &str) -> (Format, &'static str) {
        let n = Negotiated::from_accept(Some(accept));
        assert_eq!(Format::negotiate(Some(accept)), n.format, "{accept}");
        (n.format, n.content_type)
    }

    /// Prometheus 2.42 with `--enable-feature=native-histograms` (scrape.go's
    /// `scrapeAcceptHeaderWithProtobuf`).
    #[test]
    fn prometheus_2_42_with_native_histograms() {
        let accept = format!("{PB};q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1");
        #[cfg(feature = "protobuf")]
        assert_eq!(chosen(&accept), (Format::Protobuf, PB_CT));
        // Without the feature, its next choice.
        #[cfg(not(feature = "protobuf"))]
        assert_eq!(chosen(&accept), (Format::Text, Format::Text.content_type()));
    }

    /// Prometheus 3.x: `acceptHeader` of its `scrape_protocols`, q descending from 0.(n+1),
    /// `escaping=` on the 1.0.0 text forms, `*/*` last.
    #[test]
    fn prometheus_3_scrape_protocols() {
        let om = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8";
        let text1 = "text/plain;version=1.0.0;escaping=allow-utf-8";
        // The default order.
        let default = format!(
            "{om};q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,{text1};q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
        assert_eq!(
            chosen(&default),
            (
                Format::OpenMetrics,
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
            )
        );
        // With `scrape_native_histograms` (or `PrometheusProto` listed first).
        let native = format!(
            "{PB};q=0.6,{om};q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,{text1};q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
        #[cfg(feature = "protobuf")]
        assert_eq!(chosen(&native), (Format::Protobuf, PB_CT));
        #[cfg(not(feature = "protobuf"))]
        assert_eq!(chosen(&native).0, Format::OpenMetrics);
        // `scrape_protocols: [PrometheusText1.0.0, PrometheusText0.0.4]`.
        let text_first = format!("{text1};q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1");
        assert_eq!(
            chosen(&text_first),
            (
                Format::Text,
                "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
            )
        );
        // `scrape_protocols: [PrometheusText0.0.4]`.
        assert_eq!(
            chosen("text/plain;version=0.0.4;q=0.2,*/*;q=0.1"),
            (Format::Text, "text/plain; version=0.0.4; charset=utf-8")
        );
        // A protobuf range carrying escaping (later 3.x) is still protobuf.
        #[cfg(feature = "protobuf")]
        assert_eq!(
            chosen(&format!("{PB};escaping=underscores;q=0.5,*/*;q=0.1")),
            (Format::Protobuf, PB_CT)
        );
    }

    /// Every escaping scheme is the identity on legacy names: it is only named back.
    #[test]
    fn escaping_schemes_are_named_back() {
        let cases = [
            ("allow-utf-8", "allow-utf-8"),
            ("allow-utf8", "allow-utf-8"),
            ("underscores", "underscores"),
            ("dots", "dots"),
            ("values", "values"),
            // Unknown: answered as client_golang's default.
            ("rot13", "underscores"),
        ];
        for (asked, named) in cases {
            assert_eq!(
                chosen(&format!("text/plain;version=1.0.0;escaping={asked}")),
                (
                    Format::Text,
                    match named {
                        "allow-utf-8" => {
                            "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
                        }
                        "underscores" => {
                            "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"
                        }
                        "dots" => "text/plain; version=1.0.0; charset=utf-8; escaping=dots",
                        _ => "text/plain; version=1.0.0; charset=utf-8; escaping=values",
                    }
                ),
                "{asked}"
            );
            let (format, ct) = chosen(&format!(
                "application/openmetrics-text; version=1.0.0; escaping={asked}"
            ));
            assert_eq!(format, Format::OpenMetrics);
            assert_eq!(
                ct,
                format!(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping={named}"
                )
            );
        }
        // 1.0.0 text without a scheme: the default, named.
        assert_eq!(
            chosen("text/plain;version=1.0.0").1,
            "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"
        );
        // Text 0.0.4 and OpenMetrics without escaping keep their plain content types.
        assert_eq!(chosen("text/plain").1, Format::Text.content_type());
        assert_eq!(
            chosen("application/openmetrics-text").1,
            Format::OpenMetrics.content_type()
        );
    }

    /// Only the delimited `MetricFamily` stream is protobuf; other protobuf forms are not ours.
    #[test]
    fn protobuf_needs_proto_and_delimited_encoding() {
        for accept in [
            "application/vnd.google.protobuf",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text",
            "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0",
        ] {
            assert_eq!(
                chosen(accept),
                (Format::Text, Format::Text.content_type()),
                "{accept}"
            );
        }
        #[cfg(feature = "protobuf")]
        {
            assert_eq!(
                chosen("Application/Vnd.Google.Protobuf; Proto=io.prometheus.client.MetricFamily; Encoding=delimited").0,
                Format::Protobuf
            );
            assert_eq!(
                chosen(&format!("text/plain;q=0.9,{PB};q=0.8")).0,
                Format::Text
            );
            assert_eq!(Format::Protobuf.content_type(), PB_CT);
        }
    }

    /// Every scrape is counted under the format it negotiated, and the count is in the
    /// family the default registry exposes.
    #[test]
    fn scrapes_are_counted_per_format() {
        let count = |label: &str| {
            let family = crate::registry::scrapes_family();
            let series = family
                .series
                .iter()
                .find(|s| s.labels.iter().any(|(n, v)| n == "format" && v == label))
                .unwrap_or_else(|| panic!("no series {label}"));
            match series.value {
                Value::Counter(v) => v,
                _ => panic!("not a counter"),
            }
        };
        let registry = Registry::new();
        let mut cases = vec![
            ("text", None),
            ("openmetrics", Some("application/openmetrics-text")),
        ];
        #[cfg(feature = "protobuf")]
        cases.push(("protobuf", Some(PB)));
        for (label, accept) in cases {
            let before = count(label);
            let r = Scrape {
                accept,
                ..Default::default()
            }
            .render(&registry);
            assert_eq!(r.format.label(), label);
            // Other tests scrape concurrently: the count rises by at least this one.
            assert!(count(label) >= before + 1.0, "{label}");
        }
        assert_eq!(
            crate::registry::scrapes_family().name,
            "promtrack_scrapes_total"
        );
        assert_eq!(
            crate::registry::scrapes_family().series.len(),
            if cfg!(feature = "protobuf") { 3 } else { 2 }
        );
    }

    /// The default registry exposes the count; a scrape of it in protobuf counts itself.
    #[cfg(feature = "protobuf")]
    #[test]
    fn a_protobuf_scrape_answers_with_its_media_type() {
        let r = Scrape {
            accept: Some(PB),
            ..Default::default()
        }
        .render(crate::default_registry());
        assert_eq!(r.format, Format::Protobuf);
        assert_eq!(r.content_type(), PB_CT);
        assert!(!r.gzip);
        let mut body = &r.body[..];
        let mut found = false;
        while !body.is_empty() {
            let f = protobuf::messages::MetricFamily::decode_length_delimited(&mut body).unwrap();
            if f.name() == "promtrack_scrapes_total" {
                let m = f
                    .metric
                    .iter()
                    .find(|m| m.label.iter().any(|l| l.value() == "protobuf"))
                    .unwrap();
                assert!(m.counter.as_ref().unwrap().value.unwrap() >= 1.0);
                found = true;
            }
        }
        assert!(found, "promtrack_scrapes_total is exposed");
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
                    native: None,
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
    fn q_values_in_thousandths() {
        for (v, want) in [
            ("1", 1000),
            ("1.000", 1000),
            ("0", 0),
            ("0.7", 700),
            ("0.75", 750),
            ("0.001", 1),
            (".5", 500),
            ("2", 0),
            ("0.0001", 0),
            ("0.5x", 0),
            ("", 0),
            ("-1", 0),
        ] {
            assert_eq!(qvalue(v), want, "{v:?}");
        }
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
