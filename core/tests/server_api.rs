//! The Socket.IO-like server API in Rust: connection and disconnection hooks (several, in
//! order), `emit_to_rooms` with rooms left out (each socket once), `sockets`, `rooms`, and
//! the bound on acknowledgements a socket may owe.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use parking_lot::Mutex;
use serde_json::json;
use switchboard::socketio::{AckError, Payload, MAX_PENDING_ACKS};
use switchboard::{Config, Engine};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{next_text, watchdog, Ws};

/// Connects to `/`; returns the socket and its id.
async fn connect(addr: std::net::SocketAddr) -> (Ws, String) {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("0{"));
    ws.send(Message::text("40")).await.unwrap();
    let answer = next_text(&mut ws).await;
    let sid: serde_json::Value = serde_json::from_str(&answer[2..]).unwrap();
    (ws, sid["sid"].as_str().unwrap().to_owned())
}

/// What arrives within `wait`, as text frames (pings answered).
async fn drain(ws: &mut Ws, wait: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while let Ok(t) = tokio::time::timeout(wait, next_text(ws)).await {
        got.push(t);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_multi_room_broadcasts_sockets_and_acks() {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let engine = Engine::builder(Config::default().recovery_window(Duration::ZERO))
        .on_connection(move |socket| {
            let log = l1.clone();
            async move {
                // Joined before the client's first event is handled.
                socket.join("joined-on-connect");
                log.lock().push(format!("first {}", socket.id()));
            }
        })
        .on_connection(move |socket| {
            let log = l2.clone();
            async move { log.lock().push(format!("second {}", socket.id())) }
        })
        .on_disconnect(move |socket, rooms, reason| {
            l3.lock().push(format!(
                "gone {} {} {}",
                socket.id(),
                reason.as_str(),
                rooms.len()
            ))
        })
        .build_on(tokio::runtime::Handle::current())
        .unwrap();
    let addr = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap().addr;
    watchdog(async {
        let (mut a, ida) = connect(addr).await;
        let (mut b, idb) = connect(addr).await;
        let (mut c, idc) = connect(addr).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            log.lock()[..2],
            [format!("first {ida}"), format!("second {ida}")]
        );
        let socket = |id: &str| engine.socket(id).unwrap();
        socket(&ida).join("a");
        socket(&idb).join("a");
        socket(&idb).join("b");
        socket(&idc).join("b");
        socket(&idc).join("muted");

        // a is in a, b in a and b (once), c in b but muted.
        let sent = engine.emit_to_rooms(&["a", "b"], &["muted"], "news", &json!({"n": 1}));
        assert_eq!(sent, 2);
        let wait = Duration::from_millis(200);
        assert_eq!(drain(&mut a, wait).await, [r#"42["news",{"n":1}]"#]);
        assert_eq!(drain(&mut b, wait).await, [r#"42["news",{"n":1}]"#]);
        assert_eq!(drain(&mut c, wait).await, Vec::<String>::new());

        let mut in_a: Vec<String> = engine.sockets("a").into_iter().map(|s| s.id).collect();
        in_a.sort();
        let mut want = vec![ida.clone(), idb.clone()];
        want.sort();
        assert_eq!(in_a, want);
        assert!(engine.sockets("b")[0].rooms.contains(&"b".to_owned()));
        let rooms = engine.rooms();
        assert!(rooms.contains(&("a".to_owned(), 2)), "{rooms:?}");
        assert!(rooms.contains(&("muted".to_owned(), 1)), "{rooms:?}");
        assert!(
            rooms.contains(&("joined-on-connect".to_owned(), 3)),
            "{rooms:?}"
        );

        // A client that never answers owes at most MAX_PENDING_ACKS acks, then the server
        // is told, and a timeout frees them.
        let s = socket(&ida);
        let ask = || {
            let s = s.clone();
            async move {
                s.emit_with_ack(
                    "q",
                    &Payload::new(vec![json!(1)]),
                    Duration::from_millis(300),
                )
                .await
            }
        };
        let pending: Vec<_> = (0..MAX_PENDING_ACKS).map(|_| tokio::spawn(ask())).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(ask().await, Err(AckError::TooManyPending));
        for p in pending {
            assert_eq!(p.await.unwrap(), Err(AckError::Timeout));
        }
        // Answered acks resolve with the client's arguments.
        drain(&mut a, Duration::from_millis(100)).await;
        let asked = tokio::spawn(ask());
        let question = next_text(&mut a).await;
        let id: String = question[2..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        a.send(Message::text(format!(r#"43{id}["yes"]"#)))
            .await
            .unwrap();
        assert_eq!(asked.await.unwrap().unwrap().args, vec![json!("yes")]);

        b.close(None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            log.lock()
                .iter()
                .any(|l| l == &format!("gone {idb} transport close 3")),
            "{:?}",
            log.lock()
        );
        socket(&idc).disconnect();
        assert!(log
            .lock()
            .iter()
            .any(|l| l == &format!("gone {idc} server namespace disconnect 3")));
    })
    .await;
    engine.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn except_a_large_room_leaves_out_every_member() {
    let engine = Engine::builder(Config::default().recovery_window(Duration::ZERO))
        .namespace("/", |ns| ns)
        .build_on(tokio::runtime::Handle::current())
        .unwrap();
    let addr = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap().addr;
    watchdog(async {
        // More left-out sockets than the linear check handles (a set takes over past 16).
        let mut crowd = Vec::new();
        for _ in 0..24 {
            let (ws, id) = connect(addr).await;
            let s = engine.socket(&id).unwrap();
            s.join("crowd");
            s.join("all");
            crowd.push(ws);
        }
        let (mut outsider, id) = connect(addr).await;
        engine.socket(&id).unwrap().join("all");
        assert_eq!(engine.emit_to_rooms(&["all"], &["crowd"], "n", &1), 1);
        let wait = Duration::from_millis(200);
        assert_eq!(drain(&mut outsider, wait).await, [r#"42["n",1]"#]);
        for ws in &mut crowd {
            assert_eq!(
                drain(ws, Duration::from_millis(20)).await,
                Vec::<String>::new()
            );
        }
    })
    .await;
    engine.shutdown(Duration::from_secs(1));
}
