//! Lingering on a refused body: when ferry answers before it has read a request's whole body (a
//! file refused by its first bytes, a size limit hit mid-stream), closing the connection at once
//! makes the kernel reset it while the client is still sending, and many clients (curl, browsers)
//! then lose the answer and report a broken connection instead of the refusal. So an upload's body
//! is wrapped in [`Lingering`]: if it is dropped unfinished, a background task reads and discards
//! the rest, up to a byte and a time bound, while the answer goes out; then the body is dropped
//! and the connection closes. Nothing read this way is kept.

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How much of a refused body is read and discarded at most.
pub const LINGER_BYTES: u64 = 64 * 1024 * 1024;
/// How long a refused body is read and discarded at most.
pub const LINGER_TIME: Duration = Duration::from_secs(10);

/// A request body that drains itself in the background when dropped unfinished.
pub struct Lingering {
    inner: Option<Body>,
    finished: bool,
}

impl Lingering {
    /// Wraps `body`.
    pub fn new(body: Body) -> Self {
        Self { inner: Some(body), finished: false }
    }
}

impl HttpBody for Lingering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else { return };
        if self.finished || body.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(drain(body, LINGER_BYTES, LINGER_TIME));
    }
}

/// Reads and discards `body` until it ends, fails, passes `max_bytes` or `max_time` runs out.
/// Returns the bytes discarded.
pub async fn drain(body: Body, max_bytes: u64, max_time: Duration) -> u64 {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut discarded = 0u64;
    let reading = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                discarded += data.len() as u64;
                if discarded > max_bytes {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(max_time, reading).await;
    discarded
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A body of `frames` frames of 1 KiB that counts what was read of it.
    fn counted(frames: usize, read: Arc<AtomicU64>) -> Body {
        let stream = futures::stream::iter(0..frames).map(move |_| {
            read.fetch_add(1024, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 1024]))
        });
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn a_body_dropped_unfinished_is_read_to_its_end_in_the_background() {
        let read = Arc::new(AtomicU64::new(0));
        let mut body = Lingering::new(counted(100, read.clone()));
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(first.is_some());
        drop(body);
        tokio::time::timeout(Duration::from_secs(5), async {
            while read.load(Ordering::SeqCst) < 100 * 1024 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the rest was drained");
    }

    #[tokio::test]
    async fn draining_stops_at_its_byte_bound() {
        let read = Arc::new(AtomicU64::new(0));
        let discarded = drain(counted(10_000, read.clone()), 10 * 1024, Duration::from_secs(5)).await;
        assert!((10 * 1024..=11 * 1024).contains(&discarded), "{discarded}");
        assert!(read.load(Ordering::SeqCst) < 10_000 * 1024);
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_is_not_drained_again() {
        let read = Arc::new(AtomicU64::new(0));
        let body = Lingering::new(counted(3, read.clone()));
        let collected = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
        assert_eq!(collected.len(), 3 * 1024);
        assert_eq!(read.load(Ordering::SeqCst), 3 * 1024);
    }
}
