//! The product a host embeds (`switchboard::host`): its authentication callback sees the
//! handshake's JSON, registered app events reach the host and its answer is the client's ack
//! (unregistered ones are refused with `INVALID_MESSAGE`), and the lifecycle hears every
//! connection and disconnection with the socket's JSON.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::SinkExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use switchboard::host::{AppEvents, Authenticate, Hooks, Host, Lifecycle};
use switchboard::socketio::{HookError, Refusal};
use switchboard::{Config, User};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{next_text, watchdog};

/// Takes `auth.token` as the user id; refuses a client without one.
struct TokenIsTheUser;

impl Authenticate for TokenIsTheUser {
    fn authenticate(&self, handshake: Value) -> BoxFuture<'static, Result<User, Refusal>> {
        let id = handshake["auth"]["token"].as_str().map(str::to_owned);
        Box::pin(async move {
            let id = id.ok_or(Refusal {
                message: "Authentication required".into(),
                reason: "missing_token",
            })?;
            Ok(serde_json::from_value(json!({ "id": id, "username": id })).unwrap())
        })
    }
}

/// Answers `echo` with its arguments and the caller's id; fails `broken` with a client code.
struct Echo;

impl AppEvents for Echo {
    fn handles(&self, event: &str) -> bool {
        event == "echo" || event == "broken"
    }

    fn call(
        &self,
        event: &str,
        args: Vec<Value>,
        socket: Value,
    ) -> BoxFuture<'static, Result<Value, HookError>> {
        let broken = event == "broken";
        Box::pin(async move {
            if broken {
                return Err(HookError::client("QUOTA", "over quota"));
            }
            Ok(json!({ "args": args, "user": socket["user"]["id"] }))
        })
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Lifecycle for Recorder {
    fn connected(&self, socket: Value) -> BoxFuture<'static, ()> {
        self.0
            .lock()
            .push(format!("connect {}", socket["user"]["id"]));
        Box::pin(async {})
    }

    fn disconnected(&self, socket: Value, reason: &str) {
        let rooms = socket["rooms"].as_array().map_or(0, Vec::len);
        self.0.lock().push(format!(
            "disconnect {} {reason} {rooms}",
            socket["user"]["id"]
        ));
    }
}

/// A host with the three traits above, listening on a free loopback port.
fn start_host() -> (Host, SocketAddr, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let hooks = Hooks {
        authenticate: Some(Arc::new(TokenIsTheUser)),
        app_events: Some(Arc::new(Echo)),
        lifecycle: Some(recorder.clone()),
        ..Hooks::default()
    };
    let host = Host::start(Config::default().recovery_window(Duration::ZERO), hooks).unwrap();
    let addr = host
        .engine()
        .listen("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .addr;
    (host, addr, recorder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_events_authentication_and_lifecycle_go_through_the_hosts_traits() {
    let (host, addr, recorder) = start_host();
    watchdog(async {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert!(next_text(&mut ws).await.starts_with("0{"));
        ws.send(Message::text(r#"40{"token":"carol"}"#))
            .await
            .unwrap();
        assert!(next_text(&mut ws).await.starts_with("40{"));

        ws.send(Message::text(r#"421["echo",{"n":1}]"#))
            .await
            .unwrap();
        let ack: Value = serde_json::from_str(&next_text(&mut ws).await[3..]).unwrap();
        assert_eq!(ack, json!([null, {"args": [{"n": 1}], "user": "carol"}]));

        ws.send(Message::text(r#"422["broken"]"#)).await.unwrap();
        let ack: Value = serde_json::from_str(&next_text(&mut ws).await[3..]).unwrap();
        assert_eq!(ack, json!([{"code": "QUOTA", "message": "over quota"}]));

        ws.send(Message::text(r#"423["nope"]"#)).await.unwrap();
        let ack: Value = serde_json::from_str(&next_text(&mut ws).await[3..]).unwrap();
        assert_eq!(
            ack,
            json!([{"code": "INVALID_MESSAGE", "message": "Unknown event nope"}])
        );

        ws.send(Message::text("41")).await.unwrap();
        while recorder.0.lock().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(
        *recorder.0.lock(),
        [
            "connect \"carol\"".to_owned(),
            // Its personal room `user:carol`.
            "disconnect \"carol\" client namespace disconnect 1".to_owned(),
        ]
    );
    let stopping = std::thread::spawn(move || host.shutdown(Duration::from_secs(2)));
    assert!(stopping.join().unwrap());
}

/// The same host traits reach plain-WebSocket clients (`/ws`): the `auth` frame's token goes
/// to the host's `authenticate`, app events answer `request` frames, and the lifecycle hears
/// the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_websocket_clients_go_through_the_same_host_traits() {
    let (host, addr, recorder) = start_host();
    watchdog(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        ws.send(Message::text(r#"{"type":"auth","token":"dave"}"#))
            .await
            .unwrap();
        let ready: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(
            (&ready["type"], &ready["userId"], &ready["resumed"]),
            (&json!("ready"), &json!("dave"), &json!(false))
        );

        let request = |id: u64, event: &str, data: Value| {
            Message::text(
                json!({"type": "request", "id": id, "event": event, "data": data}).to_string(),
            )
        };
        ws.send(request(1, "echo", json!({"n": 1}))).await.unwrap();
        let reply: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(
            reply,
            json!({"type": "reply", "id": 1, "result": {"args": [{"n": 1}], "user": "dave"}})
        );
        ws.send(request(2, "broken", Value::Null)).await.unwrap();
        let reply: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(
            reply,
            json!({"type": "reply", "id": 2, "error": {"code": "QUOTA", "message": "over quota"}})
        );
        ws.send(request(3, "nope", Value::Null)).await.unwrap();
        let reply: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(reply["error"]["code"], "INVALID_MESSAGE");

        ws.close(None).await.unwrap();
        while recorder.0.lock().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let log = recorder.0.lock().clone();
    assert_eq!(log[0], "connect \"dave\"");
    assert!(log[1].starts_with("disconnect \"dave\""), "{log:?}");
    let stopping = std::thread::spawn(move || host.shutdown(Duration::from_secs(2)));
    assert!(stopping.join().unwrap());
}
