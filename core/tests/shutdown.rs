//! `Engine::shutdown` returns only once every socket is cleaned up: each socket's
//! disconnection hooks ran, it left its rooms, and its namespace holds no socket — so nothing
//! is left holding the namespace (a reference cycle a leak checker would report).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use switchboard::{Config, Engine};
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
