//! Helpers the integration tests share: a watchdog and a raw WebSocket client's reads.
// Each test file is its own crate and uses part of this.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// A raw WebSocket client of the engine.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Fails the test instead of hanging CI.
pub async fn watchdog<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// The next text frame, answering Engine.IO pings on the way.
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.next().await.expect("stream ended").expect("read failed") {
            Message::Text(t) if t.as_str() == "2" => ws.send(Message::text("3")).await.unwrap(),
            Message::Text(t) => return t.to_string(),
            _ => {}
        }
    }
}
