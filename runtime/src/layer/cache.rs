//! A route's series cache: the default metrics' series a route's requests were recorded in,
//! per method (the in-progress gauge) and per method and status (`duration`, `total`), so that
//! a request of a known route records with atomic adds alone — no label key built, hashed and
//! compared per family.
//!
//! Invariants:
//! - It is used only where the default metrics' label values are a function of the route, the
//!   method and the status: template grouping, and extra labels that are all static
//!   ([`LayerState::cacheable`](super::LayerState)).
//! - It lives in the route's entry of the layer's route table, so it is built once per route
//!   template however often axum builds services (`Router` used as a service without
//!   `with_state` layers its handlers for every request). A request reaches it through the
//!   route its service instance remembers, never through a contended `Arc` clone. It holds
//!   pointers into the families of the `LayerState` that owns the route table.
//! - Entries are resolved by the same lookups an uncached request makes, and only when the
//!   request is recorded in the default metrics: the cache never creates a series that the
//!   lookups would not have created.
//! - Bounded: one entry per method, and [`SLOTS`] (method, status) pairs; the requests of a
//!   route that answers more combinations than that look the rest up, as without the cache.
//!   Entries are set once and never change, so a hit costs one acquire load.

use std::sync::OnceLock;

use http::StatusCode;

use super::families::{FinishedSeries, SeriesRef};
use super::http_labels::MethodLabel;
use crate::Gauge;

/// (method, status) pairs cached per route: the handful a route answers in practice (`200`,
/// `304`, `404`, `500`... per method) with room to spare.
pub(crate) const SLOTS: usize = 16;

pub(crate) struct SeriesCache {
    in_progress: [OnceLock<Option<SeriesRef<Gauge>>>; MethodLabel::ALL.len()],
    finished: [OnceLock<(u32, FinishedSeries)>; SLOTS],
}

impl Default for SeriesCache {
    fn default() -> Self {
        Self {
            in_progress: std::array::from_fn(|_| OnceLock::new()),
            finished: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl std::fmt::Debug for SeriesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.finished.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("SeriesCache")
            .field("finished", &cached)
            .finish_non_exhaustive()
    }
}

impl SeriesCache {
    /// The default in-progress gauge's series for `method` (`None` when that gauge is off).
    #[inline]
    pub(crate) fn in_progress(
        &self,
        method: MethodLabel,
        resolve: impl FnOnce() -> Option<SeriesRef<Gauge>>,
    ) -> Option<SeriesRef<Gauge>> {
        *self.in_progress[method.index()].get_or_init(resolve)
    }

    /// The default in-progress gauge's series for `method`, if the cache has it yet (`Some(None)`:
    /// that gauge is off).
    #[inline]
    pub(crate) fn cached_in_progress(
        &self,
        method: MethodLabel,
    ) -> Option<Option<SeriesRef<Gauge>>> {
        self.in_progress[method.index()].get().copied()
    }

    /// The `duration` and `total` series for `method` and `status`, where the cache keeps
    /// them (read in place: copied out, they were moved about); in `spare` when no slot is
    /// left for them.
    #[inline]
    pub(crate) fn finished<'a>(
        &'a self,
        method: MethodLabel,
        status: StatusCode,
        resolve: impl FnOnce() -> FinishedSeries,
        spare: &'a mut Option<FinishedSeries>,
    ) -> &'a FinishedSeries {
        let key = (method.index() as u32) << 16 | u32::from(status.as_u16());
        // Linear probing from a slot spread by status and method.
        let start = usize::from(status.as_u16()) + 7 * method.index();
        for i in 0..SLOTS {
            let slot = &self.finished[(start + i) % SLOTS];
            match slot.get() {
                Some((k, resolved)) if *k == key => return resolved,
                Some(_) => continue,
                None => {
                    let resolved = resolve();
                    // Another request may have filled the slot meanwhile, with this pair or
                    // another; either way `resolved` is right for this request.
                    return match slot.get_or_init(|| (key, resolved)) {
                        (k, kept) if *k == key => kept,
                        _ => spare.insert(resolved),
                    };
                }
            }
        }
        spare.insert(resolve())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use crate::layer::MetricsLayer;
    use crate::layer::families::{Outcome, PathValue};

    fn outcome(method: &http::Method, status: u16) -> Outcome {
        let mut o = Outcome::new(MethodLabel::of(method), PathValue::Static("/r"));
        o.status = StatusCode::from_u16(status).unwrap();
        o.seconds = 0.5;
        o
    }

    /// More (method, status) pairs than slots: every pair still lands in its own series,
    /// cached or looked up.
    #[test]
    fn a_full_cache_falls_back_to_lookups() {
        let registry = Registry::new();
        let layer = MetricsLayer::builder().registry(&registry).build().unwrap();
        let families = &layer.state.families;
        let cache = SeriesCache::default();
        let statuses: Vec<u16> = (200..200 + 2 * SLOTS as u16).collect();
        for _round in 0..3 {
            for method in [http::Method::GET, http::Method::POST] {
                for &status in &statuses {
                    let o = outcome(&method, status);
                    let mut spare = None;
                    let r = cache.finished(o.method, o.status, || families.resolve(&o), &mut spare);
                    families.record(
                        &o,
                        crate::context::Exclusion::None,
                        Some(r),
                        None,
                        crate::context::Tick::now(),
                    );
                }
            }
        }
        let text = crate::expose::encode_to_string(&registry, crate::expose::Format::Text);
        for method in ["GET", "POST"] {
            for status in &statuses {
                let line = format!(
                    "axum_http_request_total{{method=\"{method}\",status=\"{status}\"}} 3\n"
                );
                assert!(text.contains(&line), "missing {line:?} in\n{text}");
            }
        }
    }
}
