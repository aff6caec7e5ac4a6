//! [`Tap`]: a second reader of an upload's body, such as a malware scanner. It is handed the very
//! `Bytes` the parts are made of (reference-counted slices of the request's frames, never a copy),
//! in order, over a short channel, so the upload goes at the pace of the slower of S3 and the tap;
//! its verdict is awaited once the body has ended, before the gate and before the upload is
//! completed. A verdict of `Err` aborts the upload like a gate's refusal.

use crate::error::BoxError;
use bytes::Bytes;
use std::future::Future;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A reader beside the parts: spawned with [`Tap::spawn`], fed by
/// [`Uploader::upload_tapped`](crate::Uploader::upload_tapped).
///
/// The reader may stop reading early (it drops its receiver): returning `Ok(())` then means
/// "carry on without me" (the rest of the body is not sent to it), returning `Err` aborts the
/// upload at once. Dropping the tap (the upload was dropped or failed) aborts the reader's task.
#[derive(Debug)]
pub struct Tap {
    frames: Option<mpsc::Sender<Bytes>>,
    /// `None` once its verdict was taken.
    reader: Option<JoinHandle<Result<(), BoxError>>>,
}

impl Tap {
    /// Spawns `reader` on the current runtime with the receiving end of a channel holding at most
    /// `queue` frames (at least one). A frame still queued keeps its part's bytes alive after S3
    /// has them, so keep `queue` short.
    pub fn spawn<F, Fut>(queue: usize, reader: F) -> Self
    where
        F: FnOnce(mpsc::Receiver<Bytes>) -> Fut,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(queue.max(1));
        Self { frames: Some(tx), reader: Some(tokio::spawn(reader(rx))) }
    }

    /// Hands `frame` to the reader, waiting while its queue is full (the back-pressure). When the
    /// reader has dropped its end, waits for its verdict: its refusal is returned, and after an
    /// `Ok` the remaining frames are not sent.
    pub(crate) async fn send(&mut self, frame: Bytes) -> Result<(), BoxError> {
        let Some(frames) = &self.frames else { return Ok(()) };
        if frames.send(frame).await.is_ok() {
            return Ok(());
        }
        self.frames = None;
        self.settle().await
    }

    /// Closes the channel (the body has ended) and waits for the reader's verdict.
    pub(crate) async fn verdict(mut self) -> Result<(), BoxError> {
        self.frames = None;
        self.settle().await
    }

    async fn settle(&mut self) -> Result<(), BoxError> {
        let Some(reader) = &mut self.reader else { return Ok(()) };
        let verdict = match reader.await {
            Ok(verdict) => verdict,
            Err(error) => Err(format!("the tap's reader failed: {error}").into()),
        };
        self.reader = None;
        verdict
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_reader_sees_every_frame_then_gives_its_verdict() {
        let mut tap = Tap::spawn(1, |mut rx: mpsc::Receiver<Bytes>| async move {
            let mut seen = Vec::new();
            while let Some(frame) = rx.recv().await {
                seen.extend_from_slice(&frame);
            }
            if seen == b"hello world" { Ok(()) } else { Err(format!("saw {seen:?}").into()) }
        });
        tap.send(Bytes::from_static(b"hello ")).await.expect("sent");
        tap.send(Bytes::from_static(b"world")).await.expect("sent");
        tap.verdict().await.expect("clean");
    }

    #[tokio::test]
    async fn a_reader_that_refuses_early_is_heard_at_the_next_frame() {
        let mut tap = Tap::spawn(1, |mut rx: mpsc::Receiver<Bytes>| async move {
            let _ = rx.recv().await;
            Err("infected".into())
        });
        // The first frame is taken; the reader then refuses and drops its end.
        tap.send(Bytes::from_static(b"x")).await.expect("first frame accepted");
        let mut refused = None;
        for _ in 0..3 {
            if let Err(error) = tap.send(Bytes::from_static(b"y")).await {
                refused = Some(error.to_string());
                break;
            }
        }
        assert_eq!(refused.as_deref(), Some("infected"));
    }

    #[tokio::test]
    async fn a_reader_that_stops_with_ok_lets_the_upload_go_on() {
        let mut tap = Tap::spawn(1, |rx: mpsc::Receiver<Bytes>| async move {
            drop(rx);
            Ok(())
        });
        for _ in 0..10 {
            tap.send(Bytes::from_static(b"more")).await.expect("not refused");
        }
        tap.verdict().await.expect("the reader's own verdict");
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_sender_back() {
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let mut tap = Tap::spawn(1, |mut rx: mpsc::Receiver<Bytes>| async move {
            let _ = release_rx.await;
            while rx.recv().await.is_some() {}
            Ok(())
        });
        tap.send(Bytes::from_static(b"queued")).await.expect("fits the queue");
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), tap.send(Bytes::from_static(b"b")))
                .await;
        assert!(blocked.is_err(), "a second frame must wait for the reader");
        release_tx.send(()).expect("reader waiting");
        tap.send(Bytes::from_static(b"c")).await.expect("sent once the reader reads");
        tap.verdict().await.expect("clean");
    }
}
