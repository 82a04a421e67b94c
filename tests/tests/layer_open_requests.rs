//! `OpenRequest`: a handler keeps its request in progress past the response — a job answered
//! `202 Accepted` and finished in the background, a WebSocket until the socket closes — and
//! the request's duration and in-progress gauge follow the guard, not the response.

#[path = "layer_support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use promtrack::layer::OpenRequest;
use support::*;
use tokio::sync::oneshot;

const BUSY: &str = r#"axum_http_requests_in_progress{method="GET",path="/jobs"}"#;
const COUNT: &str =
    r#"axum_http_request_duration_seconds_count{method="GET",path="/jobs",status="202"}"#;
const SUM: &str =
    r#"axum_http_request_duration_seconds_sum{method="GET",path="/jobs",status="202"}"#;

/// The background job of `/jobs?hold`: it ends when the test says so, and reports its end.
#[derive(Clone, Default)]
struct Jobs {
    release: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    done: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

fn jobs_app(registry_builder: promtrack::layer::MetricsLayerBuilder, jobs: Jobs) -> Router {
    let handler = move |Query(q): Query<std::collections::HashMap<String, String>>| {
        let jobs = jobs.clone();
        async move {
            let open = OpenRequest::hold();
            if q.contains_key("hold") {
                let release = jobs.release.lock().unwrap().take().unwrap();
                let done = jobs.done.lock().unwrap().take().unwrap();
                tokio::spawn(async move {
                    let _ = release.await;
                    drop(open);
                    let _ = done.send(());
                });
            }
            // Without `hold`, the guard drops here, before the response: nothing changes.
            StatusCode::ACCEPTED
        }
    };
    Router::new()
        .route("/jobs", get(handler))
        .layer(registry_builder.build().unwrap())
        .with_state(())
}

#[tokio::test]
async fn a_held_request_ends_when_its_guard_drops_not_with_its_response() {
    let (registry, builder) = builder();
    let (release_tx, release_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let jobs = Jobs::default();
    *jobs.release.lock().unwrap() = Some(release_rx);
    *jobs.done.lock().unwrap() = Some(done_tx);
    let app = jobs_app(builder, jobs);

    // A guard dropped before the response changes nothing (this also settles the route as
    // tracked, so that the next request raises the in-progress gauge).
    let (status, _) = send(&app, req("/jobs")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(sample(&registry, COUNT), Some(1.0));
    assert_eq!(sample(&registry, BUSY).unwrap_or(0.0), 0.0);

    // Held: the whole response went out, and the request is still in progress.
    let (status, _) = send(&app, req("/jobs?hold")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(sample(&registry, BUSY), Some(1.0));
    assert_eq!(sample(&registry, COUNT), Some(1.0));
    let before = sample(&registry, SUM).unwrap();

    tokio::time::sleep(Duration::from_millis(120)).await;
    release_tx.send(()).unwrap();
    done_rx.await.unwrap();
    assert_eq!(sample(&registry, BUSY), Some(0.0));
    assert_eq!(sample(&registry, COUNT), Some(2.0));
    let held = sample(&registry, SUM).unwrap() - before;
    assert!(
        held >= 0.12,
        "the held request lasted {held} s, less than the 120 ms it was held"
    );
}

#[tokio::test]
async fn outside_a_tracked_request_a_guard_does_nothing() {
    // No layer at all: the guard is inert, the handler runs as usual.
    let open = OpenRequest::hold();
    drop(open);
    let app: Router = Router::new().route(
        "/",
        get(|| async {
            let _open = OpenRequest::hold();
            "fine"
        }),
    );
    let (status, body) = send(&app, req("/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "fine"));
}

async fn chat(ws: WebSocketUpgrade) -> Response {
    let open = OpenRequest::hold();
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        // Echo until the client closes.
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) || socket.send(msg).await.is_err() {
                break;
            }
        }
        drop(open);
    })
}

/// A real WebSocket over a real socket: in progress while it is open, its duration the
/// connection's life, recorded once it closes.
#[tokio::test]
async fn a_websocket_stays_in_progress_until_it_closes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Client;

    let (registry, builder) = builder();
    let app = Router::new()
        .route("/chat", get(chat))
        .layer(builder.build().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let busy = r#"axum_http_requests_in_progress{method="GET",path="/chat"}"#;
    let count =
        r#"axum_http_request_duration_seconds_count{method="GET",path="/chat",status="101"}"#;
    let sum = r#"axum_http_request_duration_seconds_sum{method="GET",path="/chat",status="101"}"#;

    // The first socket settles the route as tracked (a route's first request never raises
    // the in-progress gauge: the layer cannot know yet whether it may).
    for round in 0..2 {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
            .await
            .unwrap();
        ws.send(Client::text("ping")).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), "ping");
        if round == 1 {
            assert_eq!(
                sample(&registry, busy),
                Some(1.0),
                "open socket in progress"
            );
            assert_eq!(
                sample(&registry, count),
                Some(1.0),
                "only the first socket ended"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ws.close(None).await.unwrap();
        // The server sees the close, its task ends and drops the guard.
        while ws.next().await.is_some() {}
        let ended = round as f64 + 1.0;
        for _ in 0..200 {
            if sample(&registry, count) == Some(ended) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sample(&registry, count), Some(ended));
    }
    assert_eq!(sample(&registry, busy), Some(0.0));
    let total = sample(&registry, sum).unwrap();
    assert!(
        total >= 0.1,
        "two sockets lasted {total} s in all, less than the 100 ms held"
    );
}
