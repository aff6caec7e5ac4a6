//! The small HTML pages a person sees when a sign-in does not end with their file: what
//! happened, what to do, and the error code and request id to quote. Nothing from the request is
//! echoed into them.

use crate::error::{AppError, ErrorCode};
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, header};

/// What the person is told to do for each code.
fn advice(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::WrongOrganization => {
            "This file belongs to another Genesys Cloud organisation. Sign in with an account of the \
             organisation that received it, or ask a colleague there to open it."
        }
        ErrorCode::AgentNotAllowed => {
            "Your Genesys Cloud account does not hold a role or division this file requires. Ask your \
             administrator, or a colleague who may open it."
        }
        ErrorCode::SignInUnavailable => "Genesys Cloud could not be reached. Try the link again in a moment.",
        _ => "Open the link again from the conversation to sign in afresh.",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page for `error`, with its status. `Set-Cookie` values in `cookies` are added.
pub(crate) fn error_page(error: &AppError, request_id: &str, cookies: &[String]) -> Response {
    let code = error.code();
    let body = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>ferry: cannot open this file</title><body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>This file cannot be opened</h1><p id=message>{}</p><p>{}</p>\
         <p><small>Code <code id=code>{}</code> · request <code>{}</code></small></p></body></html>",
        escape(error.message()),
        advice(code),
        code.as_str(),
        escape(request_id),
    );
    let mut response = (code.status(), Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::try_from(cookie.as_str()) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}
