//! Panics and streaming through the layer: a handler panic becomes a 500 counted once, a panic
//! while the body streams aborts that connection (a real server keeps serving) and is counted
//! once, and a request ends at the response head or at the end of the body as configured.

#[path = "layer_support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::StatusCode;
use axum::routing::get;
use http_body::Frame;
use http_body_util::BodyExt;
use promtrack::layer::RequestEnd;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tower::ServiceExt;

async fn boom() -> &'static str {
    panic!("handler bug")
}

#[tokio::test]
async fn a_handler_panic_is_answered_with_500_and_counted_once() {
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route("/boom", get(boom))
        .route("/ok", get(|| async { "ok" }))
        .layer(b.build().unwrap());
    assert_eq!(
        send(&app, req("/boom")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        send(&app, req("/boom")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(send(&app, req("/ok")).await.0, StatusCode::OK);
    let text = scrape(&registry);
    let v = |s: &str| value(&text, s);
    assert_eq!(
        v(r#"axum_http_request_exceptions_total{method="GET",path="/boom",status="500"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        v(r#"axum_http_request_total{method="GET",status="500"}"#),
        Some(2.0)
    );
    assert_eq!(
        v(r#"axum_http_requests_in_progress{method="GET",path="/boom"}"#),
        Some(0.0)
    );
}

#[tokio::test]
async fn an_error_response_is_not_an_exception() {
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "nope") }),
        )
        .layer(b.build().unwrap());
    send(&app, req("/fail")).await;
    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="500"}"#
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("axum_http_request_exceptions_total{"),
        "{text}"
    );
}

/// A body that sends one chunk, then panics when polled again.
struct PanickingBody(bool);

impl HttpBody for PanickingBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if std::mem::replace(&mut self.0, true) {
            panic!("body stream bug");
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first chunk\n")))))
    }
}

fn panicking_stream() -> Body {
    Body::new(PanickingBody(false))
}

#[tokio::test]
async fn a_panic_while_the_body_streams_aborts_the_connection_and_is_counted_once() {
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route("/stream-boom", get(|| async { panicking_stream() }))
        .route("/ok", get(|| async { "still serving" }))
        .layer(b.build().unwrap());

    // Through `oneshot`: the body ends with an error after its first chunk.
    let response = app.clone().oneshot(req("/stream-boom")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.into_body().collect().await.is_err());

    // Through a real server: the connection is cut, and the server keeps serving.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app.clone()).into_future());
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /stream-boom HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(read.is_ok(), "the connection was not closed");
    // Whatever hyper had flushed before the abort (often nothing), never a complete response.
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        !got.contains("\r\n0\r\n\r\n"),
        "a complete chunked body: {got}"
    );
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).await.unwrap();
    assert!(got.ends_with("still serving"), "{got}");
    server.abort();

    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_exceptions_total{method="GET",path="/stream-boom",status="200"}"#
        ),
        Some(2.0),
        "one per request: {}",
        scrape(&registry)
    );
}

/// A body made with `Body::from_stream` reports no exact size: the layer follows it, so its
/// panic is still counted once, even with every default (the request recorded at its head).
#[tokio::test]
async fn a_panic_in_a_body_made_from_a_stream_is_counted_once() {
    use futures_util::StreamExt;
    let (registry, b) = builder();
    let stream = || {
        futures_util::stream::iter([false, true]).map(|boom| {
            assert!(!boom, "stream bug");
            Ok::<_, Infallible>(Bytes::from_static(b"chunk\n"))
        })
    };
    let app: Router = Router::new()
        .route(
            "/from-stream",
            get(move || async move { Body::from_stream(stream()) }),
        )
        .layer(b.build().unwrap());
    let response = app.oneshot(req("/from-stream")).await.unwrap();
    assert_eq!(response.body().size_hint().exact(), None);
    assert!(response.into_body().collect().await.is_err());
    let text = scrape(&registry);
    let v = |s: &str| value(&text, s);
    assert_eq!(
        v(r#"axum_http_request_exceptions_total{method="GET",path="/from-stream",status="200"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        v(r#"axum_http_request_total{method="GET",status="200"}"#),
        Some(1.0)
    );
}

/// A hand-written body that reports an exact size but panics while it is sent: what the layer
/// gives up by not following bodies of known size (README, the layer's rustdoc).
struct ExactButPanicking;

impl HttpBody for ExactButPanicking {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        panic!("body bug behind an exact size");
    }
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(5)
    }
}

/// With the defaults such a body is not wrapped: its panic is not counted, and it ends only its
/// own connection — the server keeps serving.
#[tokio::test]
async fn a_panicking_body_of_exact_size_is_not_counted_and_ends_only_its_connection() {
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route(
            "/exact-boom",
            get(|| async { Body::new(ExactButPanicking) }),
        )
        .route("/ok", get(|| async { "still serving" }))
        .layer(b.build().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app).into_future());
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /exact-boom HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection was not closed");
    let got = String::from_utf8_lossy(&got);
    // At most the head went out, never the five bytes the head announced.
    let body = got.find("\r\n\r\n").map_or(0, |i| got.len() - (i + 4));
    assert!(body < 5, "a complete body: {got}");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).await.unwrap();
    assert!(got.ends_with("still serving"), "{got}");
    server.abort();
    let text = scrape(&registry);
    assert!(
        !text.contains("axum_http_request_exceptions_total{"),
        "counted: {text}"
    );
    assert_eq!(
        value(
            &text,
            r#"axum_http_request_total{method="GET",status="200"}"#
        ),
        Some(2.0),
        "both requests are recorded at their head: {text}"
    );
}

/// A body of known size (axum's `Full`: a string, JSON, an empty body) is not followed: the
/// request is complete in the metrics as soon as the response head is out, before its body is
/// read, and the body arrives whole.
#[tokio::test]
async fn a_body_of_known_size_is_recorded_at_the_head_and_sent_whole() {
    let (registry, b) = builder();
    let app: Router = Router::new()
        .route("/full", get(|| async { "hello" }))
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .layer(b.build().unwrap());
    // The first request of a route learns whether it is tracked; the second raises and
    // lowers the in-progress gauge.
    assert_eq!(send(&app, req("/full")).await.1, "hello");
    let response = app.clone().oneshot(req("/full")).await.unwrap();
    assert_eq!(response.body().size_hint().exact(), Some(5));
    let empty = app.oneshot(req("/empty")).await.unwrap();
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
    let text = scrape(&registry);
    let v = |s: &str| value(&text, s);
    assert_eq!(
        v(r#"axum_http_request_total{method="GET",status="200"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        v(r#"axum_http_request_total{method="GET",status="204"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        v(r#"axum_http_request_duration_seconds_count{method="GET",path="/full",status="200"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        v(r#"axum_http_requests_in_progress{method="GET",path="/full"}"#),
        Some(0.0)
    );
    assert!(
        !text.contains("axum_http_request_exceptions_total{"),
        "{text}"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");
}

/// A streamed response whose chunks the test sends, and a router around it.
fn streaming_app(end: RequestEnd) -> (promtrack::Registry, Router, mpsc::Sender<Bytes>) {
    let (registry, b) = builder();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    // The first request finds no channel and gets an empty body: it teaches the layer that the
    // route is tracked, so that the in-progress gauge of the next one rises.
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app: Router = Router::new()
        .route(
            "/events",
            get(move || {
                let warm = first.swap(false, std::sync::atomic::Ordering::Relaxed);
                let rx = if warm {
                    None
                } else {
                    rx.lock().unwrap().take()
                };
                async move {
                    match rx {
                        Some(rx) => Body::new(ChannelBody(rx)),
                        None => Body::empty(),
                    }
                }
            }),
        )
        .route("/warm", get(|| async { "" }))
        .layer(b.body_sizes(true).request_end(end).build().unwrap());
    (registry, app, tx)
}

/// A body whose chunks come from a channel, like a server-sent-events stream.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
    }
}

const IN_PROGRESS: &str = r#"axum_http_requests_in_progress{method="GET",path="/events"}"#;
const COUNT: &str =
    r#"axum_http_request_duration_seconds_count{method="GET",path="/events",status="200"}"#;

#[tokio::test]
async fn by_default_a_streamed_request_ends_at_its_response_head() {
    let (registry, app, tx) = streaming_app(RequestEnd::ResponseHead);
    send(&app, req("/events")).await;
    let response = app.clone().oneshot(req("/events")).await.unwrap();
    // The head is out: the request has ended, though its body has not.
    assert_eq!(sample(&registry, COUNT), Some(2.0));
    assert_eq!(sample(&registry, IN_PROGRESS), Some(0.0));
    tx.send(Bytes::from_static(b"data: 1\n\n")).await.unwrap();
    drop(tx);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"data: 1\n\n");
    assert_eq!(sample(&registry, COUNT), Some(2.0), "counted once");
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_response_size_bytes_sum{method="GET",path="/events",status="200"}"#
        ),
        Some(9.0),
        "{}",
        scrape(&registry)
    );
}

#[tokio::test]
async fn with_body_end_a_streamed_request_is_in_progress_until_its_body_ends() {
    let (registry, app, tx) = streaming_app(RequestEnd::BodyEnd);
    send(&app, req("/events")).await;
    let response = app.clone().oneshot(req("/events")).await.unwrap();
    tx.send(Bytes::from_static(b"data: 1\n\n")).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"data: 1\n\n");
    assert_eq!(sample(&registry, COUNT), Some(1.0), "not ended yet");
    assert_eq!(sample(&registry, IN_PROGRESS), Some(1.0));
    drop(tx);
    assert!(body.frame().await.is_none());
    drop(body);
    assert_eq!(sample(&registry, COUNT), Some(2.0));
    assert_eq!(sample(&registry, IN_PROGRESS), Some(0.0));
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_response_size_bytes_sum{method="GET",path="/events",status="200"}"#
        ),
        Some(9.0),
        "{}",
        scrape(&registry)
    );
}

#[tokio::test]
async fn a_request_cancelled_before_its_head_records_nothing_and_lowers_its_gauge() {
    let (registry, b) = builder();
    let (entered_tx, mut entered_rx) = mpsc::channel::<()>(4);
    let app: Router = Router::new()
        .route(
            "/hang",
            get(move || {
                let entered = entered_tx.clone();
                async move {
                    entered.send(()).await.unwrap();
                    std::future::pending::<&'static str>().await
                }
            }),
        )
        .layer(b.build().unwrap());
    let hung = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req("/hang")).await }
    });
    entered_rx.recv().await.unwrap();
    hung.abort();
    assert!(hung.await.unwrap_err().is_cancelled());
    let text = scrape(&registry);
    assert!(
        !text.contains("/hang"),
        "nothing recorded, no gauge raised: {text}"
    );
}

#[tokio::test]
async fn a_cancelled_request_of_a_known_route_lowers_the_gauge_it_raised() {
    let (registry, b) = builder();
    let (entered_tx, mut entered_rx) = mpsc::channel::<()>(4);
    let hang = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app: Router = Router::new()
        .route(
            "/maybe-hang",
            get({
                let hang = hang.clone();
                move || {
                    let (entered, hang) = (entered_tx.clone(), hang.clone());
                    async move {
                        if hang.load(std::sync::atomic::Ordering::Relaxed) {
                            entered.send(()).await.unwrap();
                            std::future::pending::<()>().await;
                        }
                        "done"
                    }
                }
            }),
        )
        .layer(b.build().unwrap());
    send(&app, req("/maybe-hang")).await; // known from now on
    hang.store(true, std::sync::atomic::Ordering::Relaxed);
    let hung = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req("/maybe-hang")).await }
    });
    entered_rx.recv().await.unwrap();
    let gauge = r#"axum_http_requests_in_progress{method="GET",path="/maybe-hang"}"#;
    assert_eq!(sample(&registry, gauge), Some(1.0));
    hung.abort();
    assert!(hung.await.unwrap_err().is_cancelled());
    assert_eq!(sample(&registry, gauge), Some(0.0));
    assert_eq!(
        sample(
            &registry,
            r#"axum_http_request_total{method="GET",status="200"}"#
        ),
        Some(1.0),
        "the cancelled request is not counted"
    );
}
