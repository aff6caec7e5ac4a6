//! The emulator's HTTP routes: the guest WebSocket, the presigned upload and download URLs, and the
//! inspection API.

use super::state::{EmulatorState, Out};
use super::uploads::{AfterUpload, UploadGate};
use axum::Json;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use futures::{SinkExt, StreamExt};
use md5::Digest as _;
use serde::Deserialize;
use tokio::sync::mpsc;

pub(crate) fn router(state: EmulatorState) -> axum::Router {
    axum::Router::new()
        .route("/v1", get(websocket))
        .route("/__uploads/{key}", put(upload))
        .route("/__downloads/{key}", get(download))
        .route("/__sandbox/conversations", get(inspect))
        .route("/webdeployments/v1/deployments/{id}/config.json", get(deployment_config))
        .route("/api/v2/webmessaging/messages", get(guest_messages))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WsQuery {
    deployment_id: Option<String>,
}

async fn websocket(
    State(state): State<EmulatorState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(deployment_id) = query.deployment_id.filter(|d| !d.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "deploymentId is required").into_response();
    };
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !state.admit(&deployment_id, origin) {
        return (StatusCode::FORBIDDEN, "deployment unknown or origin not allowed").into_response();
    }
    upgrade.on_upgrade(move |socket| serve_socket(socket, state, deployment_id))
}

async fn serve_socket(socket: WebSocket, state: EmulatorState, deployment_id: String) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, drop_after) = state.register(&deployment_id, tx);
    let (mut sink, mut stream) = socket.split();
    let mut sent = 0u32;
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Frame(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                    sent += 1;
                    if drop_after.is_some_and(|n| sent >= n) {
                        // Fault: vanish without a close frame.
                        break;
                    }
                }
                Some(Out::Drop) => break,
                Some(Out::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => state.handle(id, text.as_str()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    state.unregister(id);
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn upload(
    State(state): State<EmulatorState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let target = match state.upload_gate(&key) {
        UploadGate::Unknown => {
            return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Unknown or used upload URL");
        }
        UploadGate::Refuse(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            return s3_error(status, "SandboxRefused", "Upload refused by a sandbox fault");
        }
        UploadGate::Accept(target) => target,
    };
    for (name, value) in &target.headers {
        if headers.get(name.as_str()).and_then(|v| v.to_str().ok()) != Some(value.as_str()) {
            return s3_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                &format!("Missing signed header {name}"),
            );
        }
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type != target.file_type {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "Content-Type differs from the declared type",
        );
    }
    let length =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let Some(length) = length else {
        return s3_error(StatusCode::LENGTH_REQUIRED, "MissingContentLength", "Content-Length is required");
    };
    if length != target.declared_size {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Content-Length differs from the declared size",
        );
    }
    let mut sha = sha2::Sha256::new();
    let mut md5 = md5::Md5::new();
    let mut received = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return s3_error(StatusCode::BAD_REQUEST, "IncompleteBody", "The body ended early");
        };
        received += chunk.len() as u64;
        if received > target.declared_size {
            return s3_error(StatusCode::BAD_REQUEST, "IncompleteBody", "The body is longer than declared");
        }
        sha.update(&chunk);
        md5.update(&chunk);
    }
    if received != target.declared_size {
        return s3_error(StatusCode::BAD_REQUEST, "IncompleteBody", "The body is shorter than declared");
    }
    let md5_hex = hex::encode(md5.finalize());
    let result = Ok((received, hex::encode(sha.finalize()), md5_hex.clone()));
    let token = target.token.clone();
    match state.finish_upload(&key, &target, result) {
        AfterUpload::Event(event, delay) => {
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                state.push(&token, &event);
            });
        }
        AfterUpload::Nothing => {}
        AfterUpload::End(end) => state.end_session(&token, end),
    }
    (StatusCode::OK, [(header::ETAG, format!("\"{md5_hex}\""))]).into_response()
}

async fn download(State(state): State<EmulatorState>, Path(key): Path<String>) -> Response {
    match state.download(&key) {
        Some(facts) => Json(facts).into_response(),
        None => s3_error(StatusCode::NOT_FOUND, "NoSuchKey", "Unknown download URL"),
    }
}

async fn deployment_config(State(state): State<EmulatorState>, Path(id): Path<String>) -> Response {
    match state.deployment_config(&id) {
        Some(config) => Json(config).into_response(),
        None => (StatusCode::NOT_FOUND, Json(serde_json::json!({"message": "deployment not found"})))
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    page_size: Option<usize>,
    page_number: Option<usize>,
}

async fn guest_messages(
    State(state): State<EmulatorState>,
    Query(paging): Query<Paging>,
    headers: HeaderMap,
) -> Response {
    let jwt = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, jwt)| jwt.trim().to_owned())
        .unwrap_or_default();
    match state.guest_messages(&jwt, paging.page_size.unwrap_or(25), paging.page_number.unwrap_or(1)) {
        Some(page) => Json(page).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(
                serde_json::json!({"message": "Invalid guest JWT", "code": "bad.credentials", "status": 401}),
            ),
        )
            .into_response(),
    }
}

async fn inspect(State(state): State<EmulatorState>) -> Response {
    Json(state.inspection()).into_response()
}
