//! The body of an attachment upload: a stream of known length, opened once or re-opened by a
//! factory for a retried `PUT`.

use crate::error::{BoxError, Error};
use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use http_body::{Frame, SizeHint};
use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

/// A stream of the file's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

type Factory = Box<dyn FnMut() -> BoxFuture<'static, Result<ByteStream, BoxError>> + Send>;

enum Source {
    Once(Option<ByteStream>),
    Factory(Factory),
}

/// The body of an attachment: exactly `len` bytes, streamed, never held whole in memory by this
/// crate. A body made by [`UploadBody::from_stream`] can be sent once; one made by
/// [`UploadBody::from_factory`] is re-opened for each attempt, so a failed `PUT` can be retried.
pub struct UploadBody {
    len: u64,
    source: Source,
}

impl fmt::Debug for UploadBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadBody").field("len", &self.len).field("can_reopen", &self.can_reopen()).finish()
    }
}

impl UploadBody {
    /// A one-shot body: `stream` must yield exactly `len` bytes.
    pub fn from_stream<S>(len: u64, stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
    {
        Self { len, source: Source::Once(Some(Box::pin(stream))) }
    }

    /// A body re-opened by `open` for each attempt (e.g. a fresh S3 `GetObject`); each stream must
    /// yield exactly `len` bytes.
    pub fn from_factory<F, Fut>(len: u64, mut open: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<ByteStream, BoxError>> + Send + 'static,
    {
        Self { len, source: Source::Factory(Box::new(move || Box::pin(open()))) }
    }

    /// A body from bytes already in memory (small files, tests). Re-openable.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        let len = bytes.len() as u64;
        Self::from_factory(len, move || {
            let bytes = bytes.clone();
            async move { Ok(Box::pin(futures::stream::iter([Ok(bytes)])) as ByteStream) }
        })
    }

    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether another attempt can be made.
    pub fn can_reopen(&self) -> bool {
        match &self.source {
            Source::Once(stream) => stream.is_some(),
            Source::Factory(_) => true,
        }
    }

    /// Opens the stream for one attempt, as a request body with an exact length.
    pub(crate) async fn open(&mut self) -> Result<reqwest::Body, Error> {
        let stream = match &mut self.source {
            Source::Once(stream) => {
                stream.take().ok_or_else(|| Error::Body("the body stream was already consumed".into()))?
            }
            Source::Factory(open) => open().await.map_err(Error::Body)?,
        };
        Ok(reqwest::Body::wrap(SizedBody { stream: Mutex::new(stream), remaining: self.len }))
    }
}

/// An `http_body::Body` of exact length over a stream; fails if the stream yields more or fewer
/// bytes than announced. The mutex only makes the boxed stream `Sync` (it is never contended).
struct SizedBody {
    stream: Mutex<ByteStream>,
    remaining: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the body stream yielded {0} bytes than its declared length")]
struct LengthMismatch(&'static str);

impl http_body::Body for SizedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let stream = this.stream.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        match stream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                if n > this.remaining {
                    return Poll::Ready(Some(Err(Box::new(LengthMismatch("more")))));
                }
                this.remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if this.remaining > 0 => {
                Poll::Ready(Some(Err(Box::new(LengthMismatch("fewer")))))
            }
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn once_bodies_open_once_and_factories_reopen() {
        let mut once = UploadBody::from_stream(3, futures::stream::iter([Ok(Bytes::from_static(b"abc"))]));
        assert!(once.can_reopen());
        once.open().await.unwrap();
        assert!(!once.can_reopen());
        assert!(matches!(once.open().await, Err(Error::Body(_))));

        let mut many = UploadBody::from_bytes(&b"hello"[..]);
        assert_eq!(many.len(), 5);
        many.open().await.unwrap();
        many.open().await.unwrap();
        assert!(many.can_reopen());
    }

    #[tokio::test]
    async fn sized_body_rejects_wrong_lengths() {
        use http_body_util_free::collect;
        let short = SizedBody {
            stream: Mutex::new(Box::pin(futures::stream::iter([Ok(Bytes::from_static(b"ab"))]))),
            remaining: 3,
        };
        assert!(collect(short).await.is_err());
        let long = SizedBody {
            stream: Mutex::new(Box::pin(futures::stream::iter([Ok(Bytes::from_static(b"abcd"))]))),
            remaining: 3,
        };
        assert!(collect(long).await.is_err());
        let exact = SizedBody {
            stream: Mutex::new(Box::pin(futures::stream::iter([
                Ok(Bytes::from_static(b"a")),
                Ok(Bytes::from_static(b"bc")),
            ]))),
            remaining: 3,
        };
        assert_eq!(http_body::Body::size_hint(&exact).exact(), Some(3));
        assert_eq!(collect(exact).await.unwrap(), 3);
    }

    /// A minimal body collector, so the tests need no extra crate.
    mod http_body_util_free {
        use super::*;

        pub(super) async fn collect(mut body: SizedBody) -> Result<u64, BoxError> {
            let mut n = 0u64;
            loop {
                let next =
                    std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await;
                match next {
                    None => return Ok(n),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(frame)) => n += frame.into_data().map_or(0, |d| d.len() as u64),
                }
            }
        }
    }
}
