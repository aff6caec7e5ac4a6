//! Speaking to the Genesys emulator by hand: raw WebSocket frames, as a client independent of
//! ferry-genesys would.

use ferry_sandbox::genesys::{DEMO_DEPLOYMENT_ID, Deployment, GenesysEmulator, GenesysEmulatorConfig};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const DEP: &str = DEMO_DEPLOYMENT_ID;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn start(deployment: Deployment) -> GenesysEmulator {
    let config = GenesysEmulatorConfig { deployments: vec![deployment], ..Default::default() };
    GenesysEmulator::start(config).await.unwrap()
}

pub(crate) async fn open(emu: &GenesysEmulator) -> Ws {
    tokio_tungstenite::connect_async(format!("{}?deploymentId={DEP}", emu.ws_url())).await.unwrap().0
}

pub(crate) async fn send(ws: &mut Ws, request: Value) {
    ws.send(Message::text(request.to_string())).await.unwrap();
}

pub(crate) async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame in time");
        if let Message::Text(text) = msg.unwrap().unwrap() {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

pub(crate) async fn configure(ws: &mut Ws, token: &str) -> Value {
    send(ws, json!({"action": "configureSession", "token": token, "deploymentId": DEP, "startNew": false, "tracingId": "cfg"})).await;
    recv(ws).await
}
