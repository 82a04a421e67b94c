//! What the layer's exemplars carry (issue 14): the configuration ([`ExemplarConfig`], set by
//! `MetricsLayerBuilder::{exemplars, trust_traceparent, exemplar_from_request}`), the request's
//! trace read once from its head, and the trace read when the request is recorded.
//!
//! Invariants:
//! - The head is read once per request, in `MetricsService::call`, into the request's marks
//!   (`context.rs`'s `Traced`), where `Families::record` and the handler attributes find it.
//! - Without a user function the read is one header probe for a static name (a scan of the
//!   names of a request with few headers, a hashed lookup beyond) and, when the header is there,
//!   `traceparent::sampled_trace`: no allocation, nothing else.
//! - The user's function runs under `catch_unwind`: a panicking one gives no trace from it,
//!   never a panic in the request path.
//! - With the `opentelemetry` feature, the current span's trace (with this server's span id)
//!   wins at record time over what the head gave ([`record_trace`]); it is the one place the
//!   layer names that feature.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, request};

use super::traceparent;
use crate::context::Traced;
use crate::exemplar::TraceContext;

/// A user function giving a request's trace (`exemplar_from_request`).
pub(crate) type TraceFn = Arc<dyn Fn(&request::Parts) -> Option<TraceContext> + Send + Sync>;

/// The W3C Trace Context header: a static name, so a lookup hashes no allocated string.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The layer's exemplar settings.
#[derive(Clone)]
pub(crate) struct ExemplarConfig {
    /// `exemplars(bool)`: off, no request's metric attaches one (handler attributes included).
    pub(crate) on: bool,
    /// `trust_traceparent(bool)`: whether a sampled `traceparent` header gives the trace.
    pub(crate) trust_traceparent: bool,
    /// `exemplar_from_request(f)`: asked first; its `None` falls back to the header.
    pub(crate) from_request: Option<TraceFn>,
}

impl Default for ExemplarConfig {
    fn default() -> Self {
        Self {
            on: true,
            trust_traceparent: true,
            from_request: None,
        }
    }
}

impl std::fmt::Debug for ExemplarConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExemplarConfig")
            .field("on", &self.on)
            .field("trust_traceparent", &self.trust_traceparent)
            .field("from_request", &self.from_request.as_ref().map(|_| ".."))
            .finish()
    }
}

impl ExemplarConfig {
    /// Whether reading the trace needs the request taken apart (a user function reads the
    /// parts).
    pub(crate) fn needs_parts(&self) -> bool {
        self.on && self.from_request.is_some()
    }

    /// The request's trace from its headers alone (no user function is configured).
    #[inline]
    pub(crate) fn read_headers(&self, headers: &HeaderMap) -> Traced {
        if !self.on {
            return Traced::Off;
        }
        if !self.trust_traceparent {
            return Traced::Untraced;
        }
        match traceparent_value(headers) {
            None => Traced::Untraced,
            Some(value) => traced(traceparent::sampled_trace(value.as_bytes())),
        }
    }

    /// The request's trace from its head: the user function's, else the header's.
    pub(crate) fn read_parts(&self, parts: &request::Parts) -> Traced {
        if let Some(f) = self.from_request.as_ref().filter(|_| self.on) {
            if let Ok(Some(trace)) = catch_unwind(AssertUnwindSafe(|| f(parts))) {
                return Traced::Trace(trace);
            }
        }
        self.read_headers(&parts.headers)
    }
}

/// Up to this many header names a request's `traceparent` is found by comparing names (a few
/// instructions each, most of them a length compare), beyond by hashing the name (about 130
/// instructions whatever the count): the probe costs every request, traced or not.
const SCAN_HEADERS: usize = 12;

/// The first `traceparent` value, as `HeaderMap::get` finds it.
#[inline]
fn traceparent_value(headers: &HeaderMap) -> Option<&HeaderValue> {
    if headers.keys_len() <= SCAN_HEADERS {
        headers
            .iter()
            .find_map(|(name, value)| (*name == TRACEPARENT).then_some(value))
    } else {
        headers.get(&TRACEPARENT)
    }
}

#[inline]
fn traced(trace: Option<TraceContext>) -> Traced {
    trace.map_or(Traced::Untraced, Traced::Trace)
}

/// Runs `f` with the trace a finished request's duration and count carry: the current span's
/// with the `opentelemetry` feature (read now, at record time, so the tracing layer's span must
/// be entered around promtrack's layer), else the one read from the request's head. Borrowed,
/// not copied: most requests carry none, and those pay a discriminant test.
#[inline]
pub(crate) fn with_record_trace<R>(
    traced: &Traced,
    f: impl FnOnce(Option<&TraceContext>) -> R,
) -> R {
    if *traced == Traced::Off {
        return f(None);
    }
    #[cfg(feature = "opentelemetry")]
    if let Some(span) = crate::otel::current_trace() {
        return f(Some(&span));
    }
    f(traced.trace_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parts(headers: &[(&str, &str)]) -> request::Parts {
        let mut b = http::Request::get("/");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_header_gives_the_trace_unless_distrusted_or_off() {
        let p = parts(&[("traceparent", SAMPLED)]);
        let on = ExemplarConfig::default();
        let Traced::Trace(t) = on.read_headers(&p.headers) else {
            panic!("a sampled header gives a trace");
        };
        assert_eq!(t.trace_id()[..2], [0x4b, 0xf9]);
        assert_eq!(t.span_id(), None, "the parent id is the caller's span");
        let distrusted = ExemplarConfig {
            trust_traceparent: false,
            ..ExemplarConfig::default()
        };
        assert_eq!(distrusted.read_headers(&p.headers), Traced::Untraced);
        let off = ExemplarConfig {
            on: false,
            ..ExemplarConfig::default()
        };
        assert_eq!(off.read_headers(&p.headers), Traced::Off);
        assert_eq!(with_record_trace(&Traced::Off, |t| t.copied()), None);
    }

    #[test]
    fn the_probe_finds_the_first_header_by_scan_and_by_hash() {
        let other = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        for extra in [0, SCAN_HEADERS - 2, SCAN_HEADERS, 3 * SCAN_HEADERS] {
            let names: Vec<String> = (0..extra).map(|i| format!("x-h{i}")).collect();
            let mut headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
            let at = headers.len() / 2;
            headers.insert(at, ("traceparent", SAMPLED));
            headers.push(("traceparent", other));
            let p = parts(&headers);
            assert_eq!(p.headers.keys_len() <= SCAN_HEADERS, extra < SCAN_HEADERS);
            assert_eq!(
                traceparent_value(&p.headers).map(HeaderValue::as_bytes),
                Some(SAMPLED.as_bytes()),
                "{extra} other headers"
            );
            let without: Vec<_> = headers
                .into_iter()
                .filter(|(n, _)| *n != "traceparent")
                .collect();
            assert_eq!(traceparent_value(&parts(&without).headers), None);
        }
    }

    #[test]
    fn the_user_function_comes_first_and_a_panicking_one_falls_back() {
        let p = parts(&[("traceparent", SAMPLED), ("x-trace", "7")]);
        let mine = TraceContext::new([7; 16], None).unwrap();
        let config = |f: TraceFn| ExemplarConfig {
            from_request: Some(f),
            ..ExemplarConfig::default()
        };
        let given = config(Arc::new(move |p| {
            p.headers.contains_key("x-trace").then_some(mine)
        }));
        assert!(given.needs_parts());
        assert_eq!(given.read_parts(&p), Traced::Trace(mine));
        let panicking = config(Arc::new(|_| panic!("a user bug")));
        let Traced::Trace(t) = panicking.read_parts(&p) else {
            panic!("falls back to the header");
        };
        assert_eq!(t.trace_id()[0], 0x4b);
    }
}
