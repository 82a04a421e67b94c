//! [`OpenRequest`]: a handler keeps its request in progress past the response — a WebSocket
//! until the socket closes, a job it answered `202 Accepted` for until the job is done.
//!
//! The handler takes a guard on the request's [`Hold`], which the request context keeps for the
//! layer (`context::attach`: the context stores it without knowing its type). When the layer
//! has the response head and a guard is still alive, it parks the request's state in the
//! `Hold` instead of ending the request, and the last guard to drop ends it: the duration runs
//! until then and the in-progress gauge stays raised. If every guard is gone by the time the head is ready
//! (the handler dropped its guard), the request ends as usual.
//!
//! Invariants: the state is parked at most once, only while a guard is alive, and taken out by
//! exactly one party — the last guard's drop, or nobody if it was never parked; the slot's
//! lock is never held while a request is recorded.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::request::StateBox;

/// Keeps the current request in progress, in the axum layer's default metrics, until it is
/// dropped, whatever [`RequestEnd`](super::RequestEnd) says: the way to measure a WebSocket
/// connection (the `101` response ends the HTTP exchange, the socket lives on in the task
/// `on_upgrade` spawns) or work that a handler answers early and finishes in the background.
///
/// The request's duration runs, and its in-progress gauge stays raised, until the last
/// `OpenRequest` of the request is dropped. If one is still alive when the response head is
/// ready, the guard alone ends the request: the response body is then not followed (its size
/// is not recorded, and a body still streaming when the guard drops does not extend the
/// request). If every guard is gone by then, the request ends as it would without one.
/// Outside a request the layer tracks (no layer, an excluded path, a task the handler spawned
/// before taking it) it does nothing. Take it in the handler's own task, before spawning.
///
/// ```
/// use axum::{Router, routing::get};
///
/// async fn accept_job() -> &'static str {
///     let open = promtrack::layer::OpenRequest::hold();
///     tokio::spawn(async move {
///         // ... the job ...
///         drop(open); // the request ends here, in the layer's metrics
///     });
///     "accepted"
/// }
///
/// let app: Router = Router::new()
///     .route("/jobs", get(accept_job))
///     .layer(promtrack::layer::MetricsLayer::builder()
///         .registry(&promtrack::Registry::new())
///         .build()?);
/// # Ok::<(), promtrack::Error>(())
/// ```
///
/// With axum's WebSocket extractor (its `ws` feature):
///
/// ```ignore
/// async fn chat(ws: WebSocketUpgrade) -> Response {
///     let open = promtrack::layer::OpenRequest::hold();
///     ws.on_upgrade(move |socket| async move {
///         serve(socket).await;
///         drop(open); // the connection is closed: the request ends
///     })
/// }
/// ```
///
/// A guard that is never dropped (leaked, or kept in a task that never ends) keeps its request
/// in progress for good.
#[must_use = "the request ends when this guard is dropped: bind it (`let open = ...`)"]
#[derive(Debug)]
pub struct OpenRequest {
    hold: Option<Arc<Hold>>,
}

impl OpenRequest {
    /// Holds the current request open until the returned guard is dropped.
    pub fn hold() -> Self {
        Self {
            hold: crate::context::attach::<Hold>().map(Hold::guard),
        }
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            let parked = {
                let mut slot = hold.lock();
                slot.guards -= 1;
                if slot.guards == 0 {
                    slot.parked.take()
                } else {
                    None
                }
            };
            // Outside the lock: dropping the state records the request.
            drop(parked);
        }
    }
}

/// What a request's guards and the layer share.
#[derive(Default)]
pub(crate) struct Hold {
    slot: Mutex<Slot>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slot = self.lock();
        f.debug_struct("Hold")
            .field("guards", &slot.guards)
            .field("parked", &slot.parked.is_some())
            .finish()
    }
}

#[derive(Default)]
struct Slot {
    /// Guards alive.
    guards: usize,
    /// The request's state, once the layer parked it.
    parked: Option<StateBox>,
}

impl Hold {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more guard of this hold.
    fn guard(self: Arc<Self>) -> Arc<Self> {
        self.lock().guards += 1;
        self
    }

    /// Whether a guard is alive.
    pub(crate) fn is_open(&self) -> bool {
        self.lock().guards > 0
    }

    /// Parks the request's state until the last guard drops; hands it back if none is left.
    pub(crate) fn park(&self, state: StateBox) -> Result<(), StateBox> {
        let mut slot = self.lock();
        if slot.guards == 0 {
            return Err(state);
        }
        slot.parked = Some(state);
        Ok(())
    }
}
