//! Serving the router: a hyper accept loop with a header-read timeout (slow-loris headers are cut
//! off), a cap on the headers' total size (431), the peer address put into each request for the
//! per-client limits ([`ClientAddr`]), and graceful shutdown — stop accepting, let uploads in flight finish within a grace
//! period, then drop the rest (their multipart uploads abort) and wait for the aborts.

use crate::admission::ClientAddr;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use axum::Router;
use axum::response::{IntoResponse as _, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down gracefully.
///
/// # Errors
/// When accepting fails fatally.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let header_timeout = Duration::from_secs(state.config.limits.header_timeout_secs);
    let grace = Duration::from_secs(state.config.limits.shutdown_grace_secs);
    let max_header_bytes = state.config.admission.max_header_bytes;
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let router = router.clone();
                let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    request.extensions_mut().insert(ClientAddr(peer));
                    let too_large = header_bytes(request.headers()) > max_header_bytes;
                    let router = router.clone();
                    async move {
                        if too_large {
                            return Ok(headers_too_large(max_header_bytes));
                        }
                        router.oneshot(request).await
                    }
                });
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    let _ = connection.await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: no new connections; waiting for uploads in flight"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections finished"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over: cancelling the uploads still in flight");
            connections.abort_all();
        }
    }
    while connections.join_next().await.is_some() {}
    // Uploads whose body was all in finish storing and delivering even if their client is gone.
    state.completions.close();
    if tokio::time::timeout(grace + Duration::from_secs(60), state.completions.wait()).await.is_err() {
        tracing::error!("some received uploads did not finish delivering in time");
    }
    // Cancelled uploads abort their multipart uploads in the background: wait for that.
    if tokio::time::timeout(Duration::from_secs(30), state.uploader.cleanups_settled()).await.is_err() {
        tracing::error!("some multipart uploads could not be aborted in time; the reaper will");
    }
    Ok(())
}

/// Bytes of a request's header fields as sent: each `name: value` and its line end.
pub fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum()
}

/// 431 `headers_too_large`, before the router (and so before any other check) sees the request.
fn headers_too_large(max: usize) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let mut response =
        AppError::new(ErrorCode::HeadersTooLarge, format!("request headers may total at most {max} bytes"))
            .with_request_id(&id)
            .into_response();
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
