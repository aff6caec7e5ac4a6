//! The request body as ferry reads it: errors sorted into what they mean for the answer, and, for
//! forms, a guard that keeps multipart part headers small (the form parser would otherwise buffer a
//! part's headers without limit while looking for their end).

use bytes::Bytes;
use futures::Stream;
use memchr::memmem;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Longest part-header block accepted in a form.
pub const MAX_PART_HEADERS: usize = 16 * 1024;

/// Why reading the body stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The connection broke or the client stopped sending (400 `client_disconnected`).
    Disconnected(String),
    /// The form is malformed (400 `invalid_multipart`).
    Malformed(String),
    /// More than allowed (413 `payload_too_large`).
    TooLarge,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disconnected(why) => write!(f, "the request body ended abnormally: {why}"),
            Self::Malformed(why) => write!(f, "malformed multipart/form-data: {why}"),
            Self::TooLarge => f.write_str("the request body is larger than allowed"),
        }
    }
}

impl std::error::Error for BodyError {}

impl BodyError {
    /// From the HTTP server's body error.
    pub fn from_http(error: axum::Error) -> Self {
        Self::Disconnected(error.to_string())
    }

    /// From the form parser's error: a body error it passes on keeps its meaning; size limits are
    /// `TooLarge`; the rest is a malformed form.
    pub fn from_form(error: multer::Error) -> Self {
        match error {
            multer::Error::StreamReadFailed(inner) => match inner.downcast::<BodyError>() {
                Ok(body) => *body,
                Err(other) => Self::Disconnected(other.to_string()),
            },
            multer::Error::StreamSizeExceeded { .. } => Self::TooLarge,
            multer::Error::FieldSizeExceeded { .. } => Self::TooLarge,
            other => Self::Malformed(other.to_string()),
        }
    }
}

/// Passes a multipart body through, failing it when a part's header block (from a boundary line to
/// the blank line) exceeds [`MAX_PART_HEADERS`]. It scans for the delimiter with a fast substring
/// search and keeps only a delimiter's length of bytes between chunks.
pub struct PartHeaderGuard<S> {
    inner: S,
    delimiter: Vec<u8>,
    /// Bytes since the last delimiter while inside a header block, `None` in a part's content.
    in_headers: Option<usize>,
    /// The last bytes of the previous chunk (to find a delimiter or a blank line split across chunks).
    tail: Vec<u8>,
    failed: bool,
}

impl<S> PartHeaderGuard<S> {
    /// Guards `inner`, a form with `boundary`.
    pub fn new(inner: S, boundary: &str) -> Self {
        // The first delimiter may start the body without a CRLF before it: start "in content" with a
        // virtual CRLF behind us.
        Self {
            inner,
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            in_headers: None,
            tail: b"\r\n".to_vec(),
            failed: false,
        }
    }

    /// Checks the next chunk; `Err` once a header block is too long.
    fn check(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        let mut window = std::mem::take(&mut self.tail);
        let carried = window.len();
        window.extend_from_slice(chunk);
        let mut at = 0;
        loop {
            match self.in_headers {
                None => match memmem::find(&window[at..], &self.delimiter) {
                    Some(found) => {
                        at += found + self.delimiter.len();
                        self.in_headers = Some(0);
                    }
                    None => break,
                },
                Some(seen) => match memmem::find(&window[at..], b"\r\n\r\n") {
                    Some(found) if seen + found <= MAX_PART_HEADERS => {
                        at += found + 4;
                        self.in_headers = None;
                    }
                    Some(_) => return Err(BodyError::Malformed("a part's headers are over 16 KiB".into())),
                    None => {
                        let new_bytes = window.len() - at.max(carried);
                        let total = seen + new_bytes;
                        if total > MAX_PART_HEADERS {
                            return Err(BodyError::Malformed("a part's headers are over 16 KiB".into()));
                        }
                        self.in_headers = Some(total);
                        break;
                    }
                },
            }
        }
        // Keep enough to find a delimiter (or a blank line) that straddles chunks.
        let keep = self.delimiter.len().max(4) - 1;
        let from = window.len().saturating_sub(keep).max(at);
        self.tail = window[from..].to_vec();
        Ok(())
    }
}

impl<S> Stream for PartHeaderGuard<S>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.check(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(e) => {
                    self.failed = true;
                    Poll::Ready(Some(Err(e)))
                }
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Result<(), BodyError> {
        let mut guard = PartHeaderGuard::new(futures::stream::empty::<Result<Bytes, BodyError>>(), "XyZ");
        chunks.iter().try_for_each(|c| guard.check(c))
    }

    #[test]
    fn ordinary_forms_pass_however_they_are_split() {
        let form = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\ncap\r\n--XyZ--\r\n";
        assert_eq!(run(&[form]), Ok(()));
        for cut in 1..form.len() {
            assert_eq!(run(&[&form[..cut], &form[cut..]]), Ok(()), "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = form.chunks(1).collect();
        assert_eq!(run(&bytes), Ok(()));
    }

    #[test]
    fn huge_part_headers_are_refused_even_trickled() {
        let mut form =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-Pad: ".to_vec();
        form.extend(std::iter::repeat_n(b'a', 20 * 1024));
        form.extend_from_slice(b"\r\n\r\nbody");
        assert!(matches!(run(&[&form]), Err(BodyError::Malformed(_))));
        let chunks: Vec<&[u8]> = form.chunks(100).collect();
        assert!(matches!(run(&chunks), Err(BodyError::Malformed(_))));
        // A header block that never ends is cut off too.
        let endless: Vec<u8> = [b"--XyZ\r\nX: ".as_slice(), &[b'b'; 17 * 1024]].concat();
        let chunks: Vec<&[u8]> = endless.chunks(1000).collect();
        assert!(matches!(run(&chunks), Err(BodyError::Malformed(_))));
    }

    #[test]
    fn big_content_is_not_mistaken_for_headers() {
        let mut form =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n".to_vec();
        form.extend(std::iter::repeat_n(b'z', 1 << 20));
        form.extend_from_slice(b"\r\n--XyZ--\r\n");
        let chunks: Vec<&[u8]> = form.chunks(4096).collect();
        assert_eq!(run(&chunks), Ok(()));
    }
}
