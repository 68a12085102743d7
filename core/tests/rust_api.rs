//! The Rust API end to end: an engine on the test's runtime, a raw Socket.IO client over
//! WebSocket, namespaces, handlers, rooms from server code, and acks both ways.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use switchboard::socketio::Payload;
use switchboard::{Config, Engine};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{next_text, watchdog, Ws};

async fn connect(addr: std::net::SocketAddr, nsp: &str) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("0{"));
    let connect = if nsp == "/" {
        "40".to_owned()
    } else {
        format!("40{nsp},")
    };
    ws.send(Message::text(connect)).await.unwrap();
    let answer = next_text(&mut ws).await;
    assert!(answer.starts_with("40"), "{answer}");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_rooms_and_acks_both_ways() {
    watchdog(async {
        let engine = Engine::builder(Config::default().recovery_window(Duration::ZERO))
            .namespace("/", |ns| {
                ns.on("join", |socket, payload, ack| async move {
                    let room = payload.args[0].as_str().unwrap_or_default().to_owned();
                    socket.join(&room);
                    if let Some(ack) = ack {
                        ack.send(vec![json!(socket.rooms().len())]);
                    }
                })
                .on("ask-me", |socket, _payload, _ack| async move {
                    // Server-to-client ack, awaited inside a handler.
                    let reply = socket
                        .emit_with_ack(
                            "question",
                            &Payload::new(vec![json!(20)]),
                            Duration::from_secs(5),
                        )
                        .await;
                    let answer = reply.map(|p| p.args[0].clone()).unwrap_or(Value::Null);
                    let _ = socket.emit("answer", &answer);
                })
            })
            .namespace("/admin", |ns| ns)
            .build_on(tokio::runtime::Handle::current())
            .unwrap();
        let addr = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap().addr;

        let mut a = connect(addr, "/").await;
        let mut b = connect(addr, "/").await;
        a.send(Message::text(r#"421["join","r1"]"#)).await.unwrap();
        assert_eq!(next_text(&mut a).await, "431[1]");
        b.send(Message::text(r#"427["join","r1"]"#)).await.unwrap();
        assert_eq!(next_text(&mut b).await, "437[1]");

        // Room broadcast from server code, encoded once, to both members.
        let ns = engine.namespace("/").unwrap();
        assert_eq!(ns.to("r1").emit("news", &json!({"n": 1})), 2);
        assert_eq!(next_text(&mut a).await, r#"42["news",{"n":1}]"#);
        assert_eq!(next_text(&mut b).await, r#"42["news",{"n":1}]"#);
        assert_eq!(ns.everyone().emit("all", &1), 2);
        assert_eq!(next_text(&mut a).await, r#"42["all",1]"#);

        // A server-to-client ack answered by the client.
        a.send(Message::text(r#"42["ask-me"]"#)).await.unwrap();
        let question = next_text(&mut a).await;
        let (head, args) = question.split_once('[').unwrap();
        assert!(head.starts_with("42"), "{question}");
        assert_eq!(format!("[{args}"), "[\"question\",20]");
        let id = &head[2..];
        a.send(Message::text(format!("43{id}[40]"))).await.unwrap();
        assert_eq!(next_text(&mut a).await, r#"42["answer",40]"#);

        // A namespace of its own, and the refusal of an unknown one.
        let _admin = connect(addr, "/admin").await;
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut c, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        next_text(&mut c).await;
        c.send(Message::text("40/nope,")).await.unwrap();
        assert_eq!(
            next_text(&mut c).await,
            r#"44/nope,{"message":"Invalid namespace"}"#
        );

        // Leaving from server code stops deliveries.
        let sockets = ns.sockets_in("r1");
        assert_eq!(sockets.len(), 2);
        for s in &sockets {
            s.leave("r1");
        }
        assert_eq!(ns.to("r1").emit("news", &2), 0);
        engine.shutdown(Duration::from_millis(100));
    })
    .await;
}
