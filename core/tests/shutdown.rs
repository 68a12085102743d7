//! `Engine::shutdown` returns only once every socket is cleaned up: each socket's
//! disconnection hooks ran, it left its rooms, and its namespace holds no socket — so nothing
//! is left holding the namespace (a reference cycle a leak checker would report). On the
//! caller's runtime (`build_on`) it ends every long-lived response too: SSE streams and Yjs
//! connections, which a server's graceful shutdown (axum's) would otherwise wait on for ever;
//! `Engine::closed` then tells when they are all gone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard::{chat, yjs, Config, Engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{next_text, watchdog};

const CLIENTS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_after_every_socket_is_cleaned_up() {
    let gone = Arc::new(AtomicUsize::new(0));
    let counted = gone.clone();
    let engine = Engine::builder(Config::default().recovery_window(Duration::ZERO))
        .on_connection(|socket| {
            socket.join("everyone");
            async {}
        })
        .on_disconnect(move |_, rooms, _| {
            // A slow hook widens the window between a session being forgotten and its
            // socket's cleanup finishing: the shutdown must wait through it.
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(rooms.len(), 1);
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let addr = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap().addr;
    let ns = engine.namespace("/").unwrap();
    let mut clients = Vec::new();
    watchdog(async {
        for _ in 0..CLIENTS {
            let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            assert!(next_text(&mut ws).await.starts_with("0{"));
            ws.send(Message::text("40")).await.unwrap();
            assert!(next_text(&mut ws).await.starts_with("40{"));
            clients.push(ws);
        }
        while ns.room_size("everyone") < CLIENTS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stopping = engine.clone();
        tokio::task::spawn_blocking(move || stopping.shutdown(Duration::from_secs(5)))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        gone.load(Ordering::SeqCst),
        CLIENTS,
        "every on_disconnect ran"
    );
    assert_eq!(ns.socket_count(), 0, "the namespace holds no socket");
    assert_eq!(ns.room_size("everyone"), 0, "every socket left its rooms");
}

const SECRET: &str = "shutdown-test-secret";

fn token(sub: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": sub, "exp": jsonwebtoken::get_current_timestamp() + 3600 }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_on_the_callers_runtime_ends_sse_streams_and_document_connections() {
    let config = Config::default().jwt_secret(SECRET);
    let builder = chat::install(Engine::builder(config), chat::Hooks::default()).unwrap();
    let (builder, _docs) = yjs::install(builder, yjs::Hooks::default()).unwrap();
    let engine = builder.build_on(tokio::runtime::Handle::current()).unwrap();
    let addr = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap().addr;
    let alice = token("alice");
    watchdog(async {
        let mut sse = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /events?token={alice} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        );
        sse.write_all(request.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("connected") {
            let n = sse.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream ended early");
            seen.extend_from_slice(&buf[..n]);
        }
        let url = format!("ws://{addr}/yjs/notes?token={alice}");
        let (mut doc, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert!(matches!(doc.next().await, Some(Ok(Message::Binary(_)))));

        engine.shutdown(Duration::from_secs(2));

        // The stream ends (its last chunk), within the watchdog's time, not at its client's
        // leisure.
        let mut rest = Vec::new();
        sse.read_to_end(&mut rest).await.unwrap();
        assert!(
            String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
            "{rest:?}"
        );
        let close = loop {
            match doc.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        };
        assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
        // Once the client has answered, nothing of the engine's is left open.
        drop(doc);
        assert!(engine.closed(Duration::from_secs(3)).await);
    })
    .await;
}
