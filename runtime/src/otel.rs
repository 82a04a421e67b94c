//! The current `tracing` span's OpenTelemetry ids, as an exemplar's trace context (feature
//! `opentelemetry`, off by default; built against `tracing-opentelemetry` 0.34 and
//! `opentelemetry` 0.33, which that release uses: the two must match the application's).
//!
//! With `tracing-opentelemetry`'s layer in the application's subscriber, each `tracing` span
//! carries an OpenTelemetry span; [`current_trace`] reads the current one's trace id and this
//! server's span id, for a sampled, valid span only. Without the layer, or outside any span, it
//! returns `None` (a few dozen instructions: a thread-local read of the current span and a
//! downcast of the subscriber).
//!
//! Ordering: the request's span must be entered while the metrics are recorded. Add the
//! tracing layer (say tower-http's `TraceLayer`, whose span `tracing-opentelemetry` turns into
//! an OpenTelemetry span) *outside* promtrack's layer — `.layer(promtrack::layer())` first,
//! then `.layer(TraceLayer::new_for_http())`, as axum's last `.layer` call is the outermost — so
//! the span is current while promtrack's layer runs and records.

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::exemplar::TraceContext;

/// The current span's trace id and span id, if it is a valid, sampled OpenTelemetry span.
///
/// ```
/// // Outside any span (and without tracing-opentelemetry's layer): nothing.
/// assert!(promtrack::otel::current_trace().is_none());
/// ```
pub fn current_trace() -> Option<TraceContext> {
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    if !sc.is_valid() || !sc.is_sampled() {
        return None;
    }
    TraceContext::new(sc.trace_id().to_bytes(), Some(sc.span_id().to_bytes()))
}

#[cfg(test)]
mod tests {
    use opentelemetry::Context;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn remote(flags: TraceFlags) -> Context {
        let sc = SpanContext::new(
            TraceId::from_bytes([0x4b; 16]),
            SpanId::from_bytes([0x07; 8]),
            flags,
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(sc)
    }

    #[test]
    fn a_sampled_span_gives_its_ids_and_an_unsampled_one_none() {
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer());
        tracing::subscriber::with_default(subscriber, || {
            assert!(current_trace().is_none(), "outside any span");
            let span = tracing::info_span!("request");
            span.set_parent(remote(TraceFlags::SAMPLED)).unwrap();
            let got = span.in_scope(current_trace).expect("a sampled span");
            assert_eq!(got.trace_id(), [0x4b; 16]);
            assert!(got.span_id().is_some());

            let span = tracing::info_span!("unsampled");
            span.set_parent(remote(TraceFlags::default())).unwrap();
            assert!(span.in_scope(current_trace).is_none());
        });
    }
}
