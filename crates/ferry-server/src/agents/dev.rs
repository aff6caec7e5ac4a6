//! `ferry dev`'s agent sign-in: the platform emulator (login page with demo agents, code exchange,
//! `tokens/me`), a second demo deployment whose links are for the demo organisation's agents, and
//! the page `/dev/links`, which stores fresh demo letters and shows a bearer link next to agents
//! links. Only with the `dev` feature.

use super::{LinkAccess, LinkSettings};
use crate::config::Deployment;
use ferry_sandbox::platform::{CodeClient, DEMO_ORGANIZATION_ID, PlatformConfig, PlatformEmulator};

/// The demo deployment whose links only the demo organisation's agents can open.
pub const DEMO_AGENTS_DEPLOYMENT: &str = "ferry-demo-agents";
/// The public OAuth client `ferry dev` signs agents in with.
pub const DEMO_CLIENT_ID: &str = "ferry-dev-agents";

/// Starts the platform emulator with ferry's client registered for `listen`'s callback.
///
/// # Errors
/// When it cannot bind.
pub async fn start_platform(listen: std::net::SocketAddr) -> std::io::Result<PlatformEmulator> {
    let mut config = PlatformConfig::default();
    config.code_clients.push(CodeClient {
        client_id: DEMO_CLIENT_ID.into(),
        client_secret: None,
        redirect_uris: vec![format!("http://{listen}{}", super::CALLBACK_PATH)],
    });
    PlatformEmulator::start(config).await
}

/// The agents demo deployment: the guest emulator at `web_messaging_url`, sign-in at `platform`.
pub fn deployment(web_messaging_url: String, platform: &PlatformEmulator) -> Deployment {
    Deployment {
        web_messaging_url: Some(web_messaging_url),
        links: LinkSettings {
            access: LinkAccess::Agents,
            client_id: DEMO_CLIENT_ID.into(),
            organization_id: DEMO_ORGANIZATION_ID.into(),
            login_url: Some(platform.login_url()),
            api_url: Some(platform.api_url()),
            ..LinkSettings::default()
        },
        ..Deployment::default()
    }
}

/// Stores one demo letter for `deployment` through ferry's own API (a ticket upload) and returns
/// `(text, link)`.
async fn letter(
    base: &str,
    ticket_secret: &str,
    deployment: &str,
    n: u32,
) -> anyhow::Result<(String, String)> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let claims = crate::tickets::Claims::new(deployment, now + 300);
    let ticket = crate::tickets::mint(ticket_secret.as_bytes(), &claims);
    let text = format!("ferry demo letter {n} for {deployment}, {}\n", uuid::Uuid::new_v4());
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/uploads"))
        .header("authorization", format!("Ferry-Ticket {ticket}"))
        .header("content-type", "text/plain")
        .header("x-file-name", format!("letter-{n}.txt"))
        .body(text.clone())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let link = answer["downloadUrl"].as_str().unwrap_or_default().to_owned();
    Ok((text, link))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /dev/links`: fresh letters, one behind a bearer link and two behind agents links.
pub async fn links_page(
    base: String,
    ticket_secret: &'static str,
    bearer: &'static str,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut items = String::new();
    for (id, deployment, n, what) in [
        ("bearer-link", bearer, 1, "bearer link: whoever holds it"),
        ("agents-link", DEMO_AGENTS_DEPLOYMENT, 2, "agents link: sign in as a demo agent"),
        ("agents-link-2", DEMO_AGENTS_DEPLOYMENT, 3, "second agents link: no second sign-in"),
    ] {
        match letter(&base, ticket_secret, deployment, n).await {
            Ok((text, link)) => items.push_str(&format!(
                "<li><a id=\"{id}\" data-text=\"{}\" href=\"{}\">letter-{n}.txt</a> — {what} (deployment <code>{deployment}</code>)</li>",
                escape(&text),
                escape(&link)
            )),
            Err(error) => {
                return (http::StatusCode::INTERNAL_SERVER_ERROR, format!("could not store a demo letter: {error}"))
                    .into_response();
            }
        }
    }
    axum::response::Html(format!(
        "<!doctype html><html lang=en><meta charset=utf-8><title>ferry dev: who may open a link</title>\
         <body style=\"font-family:sans-serif;max-width:48em;margin:2em auto\"><h1>Who may open a link</h1><ul>{items}</ul>\
         <p>Agents links send you to the emulated Genesys Cloud sign-in. Ada Agent and Sam Supervisor belong to \
         the demo organisation and get the file; Olga Outsider belongs to another one and gets a 403 page.</p>\
         <p><a href=\"/\">Back to the demo page</a></p></body></html>"
    ))
    .into_response()
}
