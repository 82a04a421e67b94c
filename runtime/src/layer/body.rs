//! Body wrappers: [`TrackedBody`] carries a request's state through its response body (the
//! bytes sent, the end of the stream, a panic while streaming), [`CountedBody`] counts the
//! bytes of a request body the application reads.
//!
//! A panic inside the response body's `poll_frame` is caught here: the request is counted as
//! an exception once, and the body ends with an error, which makes the server abort the
//! connection (the head, with its status, has already gone out; there is no other honest way
//! to tell the client the response is incomplete). The inner body is never polled again.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::{Bytes, HttpBody};
use http_body::{Frame, SizeHint};

use super::request::StateBox;

/// The error a response body ends with when it panicked.
#[derive(Debug)]
pub(crate) struct BodyPanicked;

impl std::fmt::Display for BodyPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the response body panicked while streaming; the connection is aborted")
    }
}

impl std::error::Error for BodyPanicked {}

pin_project_lite::pin_project! {
    /// A response body that reports its bytes, its end and its panics to the request's state.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        state: StateBox,
        done: bool,
    }
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(inner: B, state: StateBox) -> Self {
        Self {
            inner,
            state,
            done: false,
        }
    }
}

impl<B> HttpBody for TrackedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let inner = this.inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll_frame(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Some(Ok(frame)))) => {
                if let Some(data) = frame.data_ref() {
                    this.state.body_bytes(data.len());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Ok(Poll::Ready(Some(Err(e)))) => {
                *this.done = true;
                this.state.body_end();
                Poll::Ready(Some(Err(e.into())))
            }
            Ok(Poll::Ready(None)) => {
                *this.done = true;
                this.state.body_end();
                Poll::Ready(None)
            }
            Err(_panic) => {
                *this.done = true;
                this.state.body_panicked();
                Poll::Ready(Some(Err(Box::new(BodyPanicked))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // An inner body that is already at its end may never be polled; the state then ends
        // when this body is dropped.
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body that counts the bytes read from it.
    pub(crate) struct CountedBody<B> {
        #[pin]
        inner: B,
        read: Arc<AtomicU64>,
    }
}

impl<B> CountedBody<B> {
    pub(crate) fn new(inner: B, read: Arc<AtomicU64>) -> Self {
        Self { inner, read }
    }
}

impl<B> HttpBody for CountedBody<B>
where
    B: HttpBody<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.read.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
