//! [`Uploader::upload`]: one object from a stream of bytes, in the shape of object_store's
//! `WriteMultipart`. The caller hands over the body and gets back a verified object or an error
//! having left nothing behind; the chunker, the part uploads, the gate and the clean-up are all
//! in here.

use crate::Uploader;
use crate::error::{BoxError, Error};
use crate::tap::Tap;
use crate::upload::{ObjectMeta, ObjectUpload, UploadedObject};
use bytes::Bytes;
use ferry_core::chunk::{Chunker, ObjectSummary, WholeDigests, WholeHasher};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

/// What to store: the key, the object's metadata, and the chunker the caller configured (plan,
/// declared length, maximum size, which digests to compute).
#[derive(Debug)]
pub struct ObjectWrite {
    /// The object key.
    pub key: String,
    /// Stored with the object.
    pub meta: ObjectMeta,
    /// Cuts the body into parts and hashes it. Its CRC must be the uploader's checksum mode's
    /// ([`ChecksumMode::chunker_options`](crate::ChecksumMode::chunker_options)).
    pub chunker: Chunker,
    /// The first part's share of the uploader's [`PartBudget`](crate::PartBudget), taken by the
    /// caller when it admitted the upload; `None` without a budget (or to let the first part go
    /// uncounted).
    pub reservation: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Checked once the body has ended and every part is uploaded, before Complete (or the single
/// PutObject): the caller compares its declared digests (`Content-MD5`, `Repr-Digest`) with the
/// chunker's summary here. Returning `Err` aborts the upload and comes back as
/// [`Error::Rejected`] carrying that error.
pub type Gate = Box<dyn FnOnce(&ObjectSummary) -> Result<(), BoxError> + Send>;

/// A stored, verified object and the chunker's summary of it (digests, size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The object as S3 holds it.
    pub object: UploadedObject,
    /// What the chunker computed over the body.
    pub summary: ObjectSummary,
}

impl Uploader {
    /// Streams `body` into `write.key`: cuts it into parts with `write.chunker`, uploads at most
    /// [`UploadConfig::max_in_flight`](crate::UploadConfig::max_in_flight) parts at once (the body
    /// is not read while they are all busy), each as its own slices of the body's frames; creates
    /// the multipart upload only with the first full part (a file that fits one part is a single
    /// PutObject); asks `gate` once the body has ended and every part is stored; then completes and
    /// verifies the object.
    ///
    /// The body stream is dropped as soon as it ends, while parts may still be uploading: the part
    /// bytes are released only when this returns. If the returned future is dropped, the upload is
    /// aborted in the background ([`Uploader::cleanups_settled`] waits for it).
    ///
    /// # Errors
    /// Whatever the error, no multipart upload and no object are left:
    /// [`Error::Body`] (the body's own error, boxed), [`Error::Chunk`] (longer than declared or than
    /// the maximum, shorter than declared), [`Error::Rejected`] (the gate's error), or any S3
    /// failure once retries are spent. [`Error::InvalidInput`] if the chunker's CRC is not the
    /// checksum mode's (nothing is read then).
    pub async fn upload<S, E>(&self, write: ObjectWrite, body: S, gate: Option<Gate>) -> Result<Stored, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        self.upload_tapped(write, body, gate, None).await
    }

    /// [`Uploader::upload`] with a [`Tap`]: a second reader (a malware scanner, say) is handed the
    /// same `Bytes` as the parts, in order, and the upload goes at the pace of the slower of the
    /// two. Its verdict is awaited once the body has ended, before the gate; a refusal (at any
    /// time) aborts the upload and comes back as [`Error::Rejected`] carrying the reader's error.
    ///
    /// # Errors
    /// As [`Uploader::upload`], and [`Error::Rejected`] for the tap's refusal.
    pub async fn upload_tapped<S, E>(
        &self,
        write: ObjectWrite,
        body: S,
        gate: Option<Gate>,
        mut tap: Option<Tap>,
    ) -> Result<Stored, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let ObjectWrite { key, meta, mut chunker, reservation } = write;
        let mode = self.config().checksum_mode;
        if chunker.options().crc != mode.crc() {
            return Err(Error::InvalidInput(format!(
                "the chunker computes CRC {:?} but the checksum mode {mode:?} needs {:?}",
                chunker.options().crc,
                mode.crc()
            )));
        }
        let mut upload = self.begin(key, meta);
        // A deferring chunker's whole-object digests run on a thread of their own, fed the same
        // frames over a short channel: pipelined with the network, off the async workers.
        // A hasher with nothing to compute (no whole-file MD5 nor SHA-256) needs no thread.
        let hasher = chunker.options().defer.then(|| chunker.whole_hasher());
        let nothing = hasher.as_ref().filter(|h| h.is_empty()).cloned();
        let whole = hasher.filter(|h| !h.is_empty()).map(WholeHashing::start);
        // The share of the part being filled: the caller's reservation, then each next part's.
        let mut filling = reservation;
        let fed = feed(&mut upload, &mut chunker, body, whole.as_ref(), tap.as_mut(), &mut filling).await;
        let digests = match (fed, whole) {
            (Err(error), _) => return upload.fail(error).await,
            (Ok(()), Some(whole)) => match whole.finish().await {
                Ok(digests) => Some(digests),
                Err(error) => return upload.fail(error).await,
            },
            (Ok(()), None) => nothing.map(WholeHasher::finish),
        };
        let finished = match digests {
            Some(digests) => chunker.finish_with(digests),
            None => chunker.finish(),
        };
        let (last, summary) = match finished {
            Ok(done) => done,
            Err(error) => return upload.fail(Error::Chunk(error)).await,
        };
        // The tap's verdict (a malware scanner's, say), before the gate and before completing.
        if let Some(tap) = tap
            && let Err(refused) = tap.verdict().await
        {
            return upload.fail(Error::Rejected(refused)).await;
        }
        let (object, summary) = upload.finish_gated(last, &summary, gate).await?;
        drop(filling);
        Ok(Stored { object, summary })
    }
}

/// The whole-object hashing thread: frames in over a bounded channel (the body waits when the
/// hasher is behind), the digests out when the channel closes.
struct WholeHashing {
    frames: mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<WholeDigests>,
}

impl WholeHashing {
    /// Frames queued at most. Each is a slice of a part (no copy), but a frame still queued keeps
    /// its part's bytes alive after S3 has them, so the queue is kept short.
    const QUEUE: usize = 8;

    fn start(mut hasher: WholeHasher) -> Self {
        let (frames, mut rx) = mpsc::channel::<Bytes>(Self::QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(frame) = rx.blocking_recv() {
                hasher.update(&frame);
            }
            hasher.finish()
        });
        Self { frames, done }
    }

    async fn send(&self, frame: Bytes) -> Result<(), Error> {
        self.frames.send(frame).await.map_err(|_| Error::InvalidInput("the hashing thread stopped".into()))
    }

    async fn finish(self) -> Result<WholeDigests, Error> {
        drop(self.frames);
        self.done.await.map_err(|e| Error::InvalidInput(format!("the hashing thread failed: {e}")))
    }
}

/// Reads `body` to its end through `chunker` into `upload` (and `whole`, when the whole-object
/// digests are hashed apart); the body is dropped on return.
async fn feed<S, E>(
    upload: &mut ObjectUpload,
    chunker: &mut Chunker,
    body: S,
    whole: Option<&WholeHashing>,
    mut tap: Option<&mut Tap>,
    filling: &mut Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<(), Error>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.next().await {
        let frame = frame.map_err(|error| Error::Body(error.into()))?;
        let parts = chunker.push(frame.clone()).map_err(Error::Chunk)?;
        if let Some(tap) = tap.as_deref_mut() {
            tap.send(frame.clone()).await.map_err(Error::Rejected)?;
        }
        if let Some(whole) = whole {
            whole.send(frame).await?;
        }
        for part in parts {
            let part_size = part.len();
            // Waits while every slot is busy: the back-pressure on the body. The part takes the
            // share it filled under with it.
            upload.push_part_with(part, filling.take()).await?;
            // The next part's share before reading on (waits while the budget is spent).
            if let Some(budget) = upload.budget() {
                *filling = budget.acquire(part_size).await;
            }
        }
    }
    Ok(())
}
