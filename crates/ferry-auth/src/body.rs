//! Reading a response body with a size limit: the one bounded reader of ferry's HTTP clients
//! (the token fetcher here, the platform client in ferry-genesys), on `http-body-util`'s
//! [`Limited`](http_body_util::Limited) body.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

/// Why a bounded body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is longer than the limit; reading stopped there.
    #[error("response larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection failed while the body was read.
    #[error("reading the response body failed")]
    Transport(#[source] reqwest::Error),
}

/// Reads `response`'s body, at most `limit` bytes of it.
///
/// # Errors
/// [`BodyError::TooLarge`] past the limit, [`BodyError::Transport`] when the connection fails.
pub async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    let body = http::Response::from(response).into_body();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(match error.downcast::<reqwest::Error>() {
            Ok(transport) => BodyError::Transport(*transport),
            Err(_) => BodyError::TooLarge { limit },
        }),
    }
}
