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
use super::families::{Families, Outcome, Scope};

/// Outcomes held back per unknown route; more are dropped.
pub(crate) const MAX_HELD: usize = 64;

/// What is known about a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Verdict {
    Unknown = 0,
    Tracked = 1,
    /// `#[do_not_track]`: route metrics only.
    Defaults = 2,
    /// `#[exclude_all_metrics]`, or the metrics endpoint: nothing.
    Nothing = 3,
}

impl Verdict {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Verdict::Unknown,
            1 => Verdict::Tracked,
            2 => Verdict::Defaults,
            _ => Verdict::Nothing,
        }
    }

    /// What a request of a route with this verdict (or a request marked so) records.
    pub(crate) fn scope(self) -> Scope {
        match self {
            Verdict::Unknown | Verdict::Tracked => Scope::All,
            Verdict::Defaults => Scope::RoutesOnly,
            Verdict::Nothing => Scope::Nothing,
        }
    }
}

/// One route template's state.
#[derive(Debug, Default)]
pub(crate) struct Route {
    verdict: AtomicU8,
    held: Mutex<Vec<(Outcome, Scope)>>,
    /// The default metrics' series its requests were recorded in (used where
    /// `Shared::cacheable` allows).
    pub(crate) series: SeriesCache,
}

impl Route {
    #[inline]
    pub(crate) fn verdict(&self) -> Verdict {
        Verdict::from_u8(self.verdict.load(Ordering::Acquire))
    }

    /// Takes in what a finished request showed, and records it if the route is known to be
    /// tracked. `marked` is the strongest mark the request's handler left (as a verdict:
    /// `Tracked` for none); `decisive` says whether an unmarked outcome proves that the
    /// handler is unmarked; `floor` is what the request may record at most, whatever the route
    /// (an excluded path records less).
    pub(crate) fn settle(
        &self,
        families: &Families,
        outcome: &Outcome,
        marked: Verdict,
        decisive: bool,
        floor: Scope,
    ) {
        let current = self.verdict();
        if marked == Verdict::Tracked && current != Verdict::Unknown {
            // The common case: nothing new to learn.
            families.record(outcome, current.scope().max(floor), None);
            return;
        }
        if marked != Verdict::Tracked && current as u8 >= marked as u8 {
            families.record(outcome, current.scope().max(floor), None);
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        // Re-read under the lock: another request may have decided meanwhile.
        let current = self.verdict();
        let learned = if marked != Verdict::Tracked {
            // A mark only strengthens what is known.
            Some(Verdict::from_u8((current as u8).max(marked as u8)))
        } else if current == Verdict::Unknown && decisive {
            Some(Verdict::Tracked)
        } else {
            None
        };
        match learned {
            Some(v) => {
                self.verdict.store(v as u8, Ordering::Release);
                for (o, its_floor) in held.drain(..) {
                    families.record(&o, v.scope().max(its_floor), None);
                }
                held.shrink_to_fit();
                families.record(outcome, v.scope().max(floor), None);
            }
            None if current == Verdict::Unknown => {
                if held.len() < MAX_HELD {
                    held.push((outcome.clone(), floor));
                }
            }
            None => families.record(outcome, current.scope().max(floor), None),
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
