//! What the layer has learned about each route: whether its handler is tracked.
//!
//! `#[do_not_track]` and `#[exclude_all_metrics]` are only known once the handler runs (they
//! mark the request context from inside it), but the layer must never expose a series of an
//! untracked route — not its in-progress gauge while the first request runs, not a request
//! that an extractor rejected before the handler could mark it. So each route template starts
//! out *unknown*, and for an unknown route the layer:
//!
//! - does not raise the in-progress gauges (it cannot know yet whether it may);
//! - on a request the handler marked: learns that the route is untracked, for good;
//! - on an unmarked request answered with anything but a 4xx (the handler ran, or the route is
//!   tracked anyway): learns that it is tracked, records the request, and records the requests
//!   it held back;
//! - on an unmarked 4xx, which may be an extractor's rejection that never reached the handler:
//!   holds the outcome back (at most [`MAX_HELD`] per route; more are dropped) until the route
//!   is known.
//!
//! Requests that matched no route (404s, fallbacks) have no extractor of a marked handler to
//! fail, so an unmarked one is decisive whatever its status.
//!
//! The route table only grows, and is bounded by the number of route templates the router has
//! (plus one entry for unmatched requests). A verdict never changes once learned; a request
//! to a known route that its handler marks anyway (a handler that excludes itself only
//! sometimes, or another method of the same template) is honoured for that request alone —
//! though the in-progress gauge it raised, as a request of a tracked route, stays visible.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::cache::SeriesCache;
use super::families::{Families, Outcome};
use crate::context::{Exclusion, Tick};
use crate::exemplar::TraceContext;

/// Outcomes held back per unknown route; more are dropped.
pub(crate) const MAX_HELD: usize = 64;

/// One route template's state.
#[derive(Debug, Default)]
pub(crate) struct Route {
    /// What the route's handler is excluded from, once learned: 0 while unknown, else one more
    /// than the [`Exclusion`].
    verdict: AtomicU8,
    /// Outcomes waiting for the verdict, each with its path's exclusion and its exemplar's
    /// trace (resolved when the request finished: a held request is recorded later, under
    /// another request's span).
    held: Mutex<Vec<(Outcome, Exclusion, Option<TraceContext>)>>,
    /// The default metrics' series its requests were recorded in (used where
    /// `LayerState::cacheable` allows).
    pub(crate) series: SeriesCache,
}

impl Route {
    /// What the route's handler is excluded from; `None` while that is not known yet.
    #[inline]
    pub(crate) fn verdict(&self) -> Option<Exclusion> {
        match self.verdict.load(Ordering::Acquire) {
            0 => None,
            v => Some(Exclusion::from_u8(v - 1)),
        }
    }

    fn learn(&self, verdict: Exclusion) {
        self.verdict.store(verdict as u8 + 1, Ordering::Release);
    }

    /// Takes in what a finished request showed, and records it if the route is known to be
    /// tracked. `marked` is the strongest mark the request's handler left; `decisive` says
    /// whether an unmarked outcome proves that the handler is unmarked; `path_exclusion` is
    /// what the request's path excludes it from, whatever the route; `trace` its exemplar's;
    /// `now` the clock reading that ended it (see `Families::record`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn settle(
        &self,
        families: &Families,
        outcome: &Outcome,
        marked: Exclusion,
        decisive: bool,
        path_exclusion: Exclusion,
        trace: Option<&TraceContext>,
        now: Tick,
    ) {
        // The common case: nothing new to learn (a verdict only strengthens).
        if let Some(known) = self.verdict().filter(|&known| known >= marked) {
            families.record(outcome, known.max(path_exclusion), None, trace, now);
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        // Re-read under the lock: another request may have decided meanwhile.
        let current = self.verdict();
        let learned = if marked != Exclusion::None {
            // A mark only strengthens what is known.
            Some(current.map_or(marked, |known| known.max(marked)))
        } else if current.is_none() && decisive {
            Some(Exclusion::None)
        } else {
            None
        };
        match (learned, current) {
            (Some(verdict), _) => {
                self.learn(verdict);
                for (o, its_path, its_trace) in held.drain(..) {
                    families.record(&o, verdict.max(its_path), None, its_trace.as_ref(), now);
                }
                held.shrink_to_fit();
                families.record(outcome, verdict.max(path_exclusion), None, trace, now);
            }
            (None, None) => {
                if held.len() < MAX_HELD {
                    held.push((outcome.clone(), path_exclusion, trace.copied()));
                }
            }
            (None, Some(known)) => {
                families.record(outcome, known.max(path_exclusion), None, trace, now)
            }
        }
    }
}

/// Every route seen, by template.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    by_template: RwLock<HashMap<Box<str>, Arc<Route>, foldhash::fast::RandomState>>,
    unmatched: Arc<Route>,
}

impl Routes {
    /// The route of a template, or of unmatched requests (`None`).
    #[inline]
    pub(crate) fn get(&self, template: Option<&str>) -> Arc<Route> {
        let Some(template) = template else {
            return self.unmatched.clone();
        };
        if let Some(r) = self
            .by_template
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(template)
        {
            return r.clone();
        }
        self.insert(template)
    }

    #[cold]
    fn insert(&self, template: &str) -> Arc<Route> {
        self.by_template
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(template.into())
            .or_default()
            .clone()
    }
}
