//! The label values the layer computes: a bounded `method`, the `path` from the matched route
//! template, `status` as a code or a class, and label values computed by user functions.
//!
//! Invariants: `method` takes at most ten values (the nine standard methods and
//! [`OTHER_METHOD`]); with the default grouping, `path` takes one value per route template plus
//! [`UNMATCHED_PATH`], so neither a scanner nor a client with odd methods can grow the number of
//! series. User label functions run under `catch_unwind`: a panicking one yields an empty value,
//! never a panic in the request path.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use axum::extract::MatchedPath;
use http::{Method, StatusCode, request, response};

use crate::LabelValue;
use crate::labels::{KeyWriter, value_text};
#[cfg(test)]
use crate::labels::{key_bytes, key_values};

/// The `path` label of requests that matched no route (404s, `fallback` handlers, services
/// mounted with `nest_service`, or the layer applied outside the router). It cannot collide
/// with a route template, which always starts with `/`, and it keeps scanners from creating
/// one series per URL they try.
pub const UNMATCHED_PATH: &str = "_unmatched";

/// The `method` label of requests whose method is not one of the nine standard ones, so that
/// custom methods cannot grow the number of series.
pub const OTHER_METHOD: &str = "_OTHER";

/// The bounded `method` label: an index into [`MethodLabel::ALL`], so that per-method state
/// (the layer's series cache) is an array, not a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MethodLabel(u8);

impl MethodLabel {
    /// Every value the label takes: the nine standard methods, then [`OTHER_METHOD`].
    pub(crate) const ALL: [&'static str; 10] = [
        "GET",
        "POST",
        "PUT",
        "DELETE",
        "PATCH",
        "HEAD",
        "OPTIONS",
        "CONNECT",
        "TRACE",
        OTHER_METHOD,
    ];

    #[inline]
    pub(crate) fn of(method: &Method) -> Self {
        // Ordered by frequency: comparisons against the standard methods are integer compares.
        let i = if *method == Method::GET {
            0
        } else if *method == Method::POST {
            1
        } else if *method == Method::PUT {
            2
        } else if *method == Method::DELETE {
            3
        } else if *method == Method::PATCH {
            4
        } else if *method == Method::HEAD {
            5
        } else if *method == Method::OPTIONS {
            6
        } else if *method == Method::CONNECT {
            7
        } else if *method == Method::TRACE {
            8
        } else {
            9
        };
        Self(i)
    }

    #[inline]
    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }

    #[inline]
    pub(crate) fn as_str(self) -> &'static str {
        Self::ALL[self.index()]
    }
}

/// The route template a request matched (`/users/{id}`), or [`UNMATCHED_PATH`].
///
/// Handy in label functions of [`RouteMetric`](super::RouteMetric)s:
///
/// ```
/// use promtrack::layer::{RouteMetric, route_template};
///
/// let by_route = RouteMetric::counter("app_route_hits_total", "Hits per route.")
///     .label_from_request("route", |req| route_template(req).to_owned());
/// ```
pub fn route_template(request: &request::Parts) -> &str {
    request
        .extensions
        .get::<MatchedPath>()
        .map_or(UNMATCHED_PATH, MatchedPath::as_str)
}

/// How the `status` label is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusLabel {
    /// The three-digit code: `200`, `404` (the default).
    #[default]
    Code,
    /// The class: `2xx`, `4xx` — five values at most, for services with many routes.
    Class,
}

impl StatusLabel {
    #[inline]
    pub(crate) fn render(self, status: &StatusCode) -> &str {
        const CLASSES: [&str; 10] = [
            "0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
        ];
        match self {
            StatusLabel::Code => status.as_str(),
            StatusLabel::Class => CLASSES[usize::from(status.as_u16() / 100) % 10],
        }
    }
}

/// A label computed from the request, before the inner service runs.
pub(crate) type RequestFn = Arc<dyn Fn(&request::Parts) -> Box<str> + Send + Sync>;
/// A label computed from the response head.
pub(crate) type ResponseFn = Arc<dyn Fn(&response::Parts) -> Box<str> + Send + Sync>;

/// Where an extra label's value comes from.
#[derive(Clone)]
pub(crate) enum ExtraSource {
    Static(Box<str>),
    Request(RequestFn),
    Response(ResponseFn),
}

/// A label added to the defaults (or declared on a [`RouteMetric`](super::RouteMetric)).
#[derive(Clone)]
pub(crate) struct ExtraLabel {
    pub(crate) name: Box<str>,
    pub(crate) source: ExtraSource,
}

impl std::fmt::Debug for ExtraLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.source {
            ExtraSource::Static(v) => return write!(f, "{}={v:?}", self.name),
            ExtraSource::Request(_) => "request",
            ExtraSource::Response(_) => "response",
        };
        write!(f, "{}=<from {kind}>", self.name)
    }
}

impl ExtraLabel {
    pub(crate) fn fixed(name: &str, value: impl LabelValue) -> Self {
        Self {
            name: name.into(),
            source: ExtraSource::Static(render(&value)),
        }
    }

    pub(crate) fn request<V: LabelValue>(
        name: &str,
        f: impl Fn(&request::Parts) -> V + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            source: ExtraSource::Request(Arc::new(move |parts| guarded(|| render(&f(parts))))),
        }
    }

    pub(crate) fn response<V: LabelValue>(
        name: &str,
        f: impl Fn(&response::Parts) -> V + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            source: ExtraSource::Response(Arc::new(move |parts| guarded(|| render(&f(parts))))),
        }
    }

    pub(crate) fn is_response(&self) -> bool {
        matches!(self.source, ExtraSource::Response(_))
    }

    pub(crate) fn is_request(&self) -> bool {
        matches!(self.source, ExtraSource::Request(_))
    }
}

/// Runs a user label function; a panic yields an empty value (the default panic hook has
/// already reported it).
fn guarded(f: impl FnOnce() -> Box<str>) -> Box<str> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_default()
}

/// A label value's text.
pub(crate) fn render<V: LabelValue + ?Sized>(value: &V) -> Box<str> {
    value_text(value).into()
}

/// The values of a list of extra labels for one request: fixed ones live in the configuration,
/// computed ones here, in label order.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExtraValues {
    computed: Vec<Box<str>>,
}

impl ExtraValues {
    /// No computed value: what a request has where no label is computed.
    pub(crate) const EMPTY: ExtraValues = ExtraValues {
        computed: Vec::new(),
    };

    /// Computes the request-time values.
    pub(crate) fn from_request(extras: &[ExtraLabel], parts: &request::Parts) -> Self {
        let mut computed = Vec::new();
        for e in extras {
            if let ExtraSource::Request(f) = &e.source {
                computed.push(f(parts));
            }
        }
        Self { computed }
    }

    /// Adds the response-time values (after the request-time ones).
    pub(crate) fn add_response(&mut self, extras: &[ExtraLabel], parts: &response::Parts) {
        for e in extras {
            if let ExtraSource::Response(f) = &e.source {
                self.computed.push(f(parts));
            }
        }
    }

    /// Writes every extra's value, in label order; `include_response = false` skips labels
    /// computed from the response (the in-progress gauge is written before there is one).
    pub(crate) fn write(
        &self,
        extras: &[ExtraLabel],
        include_response: bool,
        w: &mut KeyWriter<'_>,
    ) {
        let requests = extras
            .iter()
            .filter(|e| matches!(e.source, ExtraSource::Request(_)))
            .count();
        let (mut req, mut res) = (0, requests);
        for e in extras {
            match &e.source {
                ExtraSource::Static(v) => w.value(&**v),
                ExtraSource::Request(_) => {
                    w.value(self.computed.get(req).map_or("", |v| &**v));
                    req += 1;
                }
                ExtraSource::Response(_) if include_response => {
                    w.value(self.computed.get(res).map_or("", |v| &**v));
                    res += 1;
                }
                ExtraSource::Response(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(MethodLabel::of(&Method::GET).as_str(), "GET");
        assert_eq!(MethodLabel::of(&Method::TRACE).as_str(), "TRACE");
        let odd = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(MethodLabel::of(&odd).as_str(), OTHER_METHOD);
        let standard = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
            Method::OPTIONS,
            Method::CONNECT,
            Method::TRACE,
        ];
        for m in standard {
            assert_eq!(MethodLabel::of(&m).as_str(), m.as_str());
        }
    }

    #[test]
    fn status_as_code_or_class() {
        for code in [100u16, 200, 204, 404, 500, 599, 999] {
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(StatusLabel::Code.render(&s), code.to_string());
        }
        assert_eq!(StatusLabel::Class.render(&StatusCode::NOT_FOUND), "4xx");
    }

    #[test]
    fn values_keep_label_order() {
        let extras = [
            ExtraLabel::fixed("a", "fixed"),
            ExtraLabel::response("b", |r: &response::Parts| r.status.as_u16()),
            ExtraLabel::request("c", |r: &request::Parts| r.uri.path().to_owned()),
        ];
        let (req, _) = http::Request::get("/x").body(()).unwrap().into_parts();
        let (res, _) = http::Response::builder()
            .status(201)
            .body(())
            .unwrap()
            .into_parts();
        let mut v = ExtraValues::from_request(&extras, &req);
        v.add_response(&extras, &res);
        let key = key_bytes(|w| v.write(&extras, true, w));
        assert_eq!(key_values(&key).collect::<Vec<_>>(), ["fixed", "201", "/x"]);
        let key = key_bytes(|w| v.write(&extras, false, w));
        assert_eq!(key_values(&key).collect::<Vec<_>>(), ["fixed", "/x"]);
    }

    #[test]
    fn a_panicking_label_function_yields_an_empty_value() {
        let e = ExtraLabel::request("x", |_: &request::Parts| -> String { panic!("label bug") });
        let (req, _) = http::Request::get("/").body(()).unwrap().into_parts();
        let v = ExtraValues::from_request(std::slice::from_ref(&e), &req);
        assert_eq!(&*v.computed[0], "");
    }
}
