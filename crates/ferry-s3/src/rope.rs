//! A part's bytes as an HTTP body without copying them: the `Bytes` slices the chunker cut, sent
//! one after the other with an exact length. Each attempt of a request makes a fresh body from the
//! same slices (cloning a `Bytes` shares it), so a retry costs no copy either.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The slices of one part, as a body.
#[derive(Debug)]
pub(crate) struct RopeBody {
    slices: VecDeque<Bytes>,
    remaining: u64,
}

impl RopeBody {
    pub(crate) fn new(slices: &[Bytes]) -> Self {
        let slices: VecDeque<Bytes> = slices.iter().filter(|s| !s.is_empty()).cloned().collect();
        let remaining = slices.iter().map(|s| s.len() as u64).sum();
        Self { slices, remaining }
    }

    /// A `ByteStream` for one request attempt: a single slice goes as an in-memory body, several as
    /// this body (plain, with `Content-Length`: ferry sets checksum headers itself, so the SDK never
    /// switches to aws-chunked framing).
    pub(crate) fn byte_stream(slices: &[Bytes]) -> ByteStream {
        match slices {
            [] => ByteStream::from(Bytes::new()),
            [one] => ByteStream::from(one.clone()),
            many => ByteStream::from_body_1_x(Self::new(many)),
        }
    }
}

impl Body for RopeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.slices.pop_front() {
            Some(slice) => {
                self.remaining -= slice.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(slice))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.slices.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_every_slice_with_an_exact_length() {
        let slices = [Bytes::from_static(b"ab"), Bytes::new(), Bytes::from_static(b"cde")];
        let mut body = RopeBody::new(&slices);
        assert_eq!(body.size_hint().exact(), Some(5));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            out.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(out, b"abcde");
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
