//! WebSocket closing handshakes on the real endpoints (found with Autobahn|Testsuite, cases
//! 1.1.1 and 7.x): a client's close frame is answered with a close frame (RFC 6455 5.5.1), so
//! the client sees a clean close with its code, not 1006; a text frame that is not UTF-8 gets
//! close 1007 and a protocol violation 1002.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard::{chat, yjs, Config, Engine};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{watchdog, Ws};

const SECRET: &str = "close-test-secret";

fn engine() -> (Engine, std::net::SocketAddr) {
    let config = Config::default()
        .jwt_secret(SECRET)
        .recovery_window(Duration::ZERO);
    let builder = chat::install(Engine::builder(config), chat::Hooks::default()).unwrap();
    let (builder, _) = yjs::install(builder, yjs::Hooks::default()).unwrap();
    let engine = builder.build_on(tokio::runtime::Handle::current()).unwrap();
    let addr = engine.listen(([127, 0, 0, 1], 0).into()).unwrap().addr;
    (engine, addr)
}

fn token() -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": "closer", "exp": jsonwebtoken::get_current_timestamp() + 3600 }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Opens a WebSocket and reads the server's first frame (Engine.IO open, Yjs sync step 1).
async fn open(url: String) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let first = ws.next().await.expect("no first frame").unwrap();
    assert!(
        matches!(first, Message::Text(_) | Message::Binary(_)),
        "{first:?}"
    );
    ws
}

/// Reads until the server's close frame; its code, or `None` when the connection ended
/// without one.
async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

fn urls(addr: std::net::SocketAddr) -> [String; 2] {
    [
        format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
        format!("ws://{addr}/yjs/closing?token={}", token()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_close_frame_is_answered() {
    let (engine, addr) = engine();
    watchdog(async {
        for url in urls(addr) {
            let mut ws = open(url.clone()).await;
            ws.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            })))
            .await
            .unwrap();
            assert_eq!(close_code(&mut ws).await, Some(CloseCode::Normal), "{url}");
        }
    })
    .await;
    engine.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_closes_with_1007_and_bad_framing_with_1002() {
    let (engine, addr) = engine();
    watchdog(async {
        for url in urls(addr) {
            let mut ws = open(url.clone()).await;
            let text = Frame::message(
                vec![b'4', 0xce, 0xba, 0xed, 0xa0, 0x80],
                OpCode::Data(Data::Text),
                true,
            );
            ws.send(Message::Frame(text)).await.unwrap();
            assert_eq!(close_code(&mut ws).await, Some(CloseCode::Invalid), "{url}");

            let mut ws = open(url.clone()).await;
            // A continuation frame with no message to continue.
            let stray = Frame::message(vec![b'x'], OpCode::Data(Data::Continue), true);
            ws.send(Message::Frame(stray)).await.unwrap();
            assert_eq!(
                close_code(&mut ws).await,
                Some(CloseCode::Protocol),
                "{url}"
            );
        }
    })
    .await;
    engine.shutdown(Duration::from_secs(1));
}
