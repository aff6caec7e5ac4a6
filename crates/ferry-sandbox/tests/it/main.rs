//! Integration tests of the sandbox servers.

mod agents;
mod genesys;
mod genesys_fixtures;
mod platform;
mod ws;

/// The JSON body of a plain GET (the sandbox's inspection and config endpoints).
pub(crate) async fn get_json(url: String) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}
