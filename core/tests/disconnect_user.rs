//! `Host::disconnect_user`: one call disconnects every connection of a user, whatever its
//! transport — a Socket.IO client gets `io server disconnect` (packet `41`), an SSE stream
//! ends and a Yjs connection closes with 4410 — and returns how many connections there were
//! on this node.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard::host::{Hooks, Host};
use switchboard::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{next_text, watchdog};

const SECRET: &str = "disconnect-user-test-secret";

fn token(sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": sub, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Reads from an SSE response until `needle` has arrived; returns everything read so far.
async fn read_until(stream: &mut tokio::net::TcpStream, seen: &mut String, needle: &str) {
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream ended before {needle:?}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_disconnects_socketio_sse_and_yjs_connections_of_a_user() {
    let config = Config::default()
        .jwt_secret(SECRET)
        .recovery_window(Duration::ZERO);
    let host = Host::start(config, Hooks::default()).unwrap();
    let addr = host
        .engine()
        .listen("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .addr;
    let alice = token("alice");
    watchdog(async {
        // Socket.IO over WebSocket.
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert!(next_text(&mut ws).await.starts_with("0{"));
        let connect = format!("40{}", json!({ "token": alice }));
        ws.send(Message::text(connect)).await.unwrap();
        assert!(next_text(&mut ws).await.starts_with("40{"));

        // A server-sent-event stream of the same user.
        let mut sse = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /events?token={alice} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        );
        sse.write_all(request.as_bytes()).await.unwrap();
        let mut seen = String::new();
        read_until(&mut sse, &mut seen, "connected").await;
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");

        // A y-websocket connection of the same user: listed once the server's sync step 1
        // arrives.
        let url = format!("ws://{addr}/yjs/notes?token={alice}");
        let (mut doc, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert!(matches!(doc.next().await, Some(Ok(Message::Binary(_)))));

        assert_eq!(host.disconnect_user("nobody"), 0);
        assert_eq!(host.disconnect_user("alice"), 3);

        // The document connection closes with 4410 and a reason a client can show.
        let close = loop {
            match doc.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
        .expect("a close frame with a code");
        assert_eq!(u16::from(close.code), 4410);
        assert_eq!(close.reason.as_str(), "Disconnected by the server");

        // The socket hears `io server disconnect`; the stream ends.
        assert_eq!(next_text(&mut ws).await, "41");
        let mut rest = Vec::new();
        sse.read_to_end(&mut rest).await.unwrap();
        assert!(
            String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
            "{rest:?}"
        );
    })
    .await;
    let stopping = std::thread::spawn(move || host.shutdown(Duration::from_secs(2)));
    assert!(stopping.join().unwrap());
}
