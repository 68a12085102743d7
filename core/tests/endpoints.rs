//! Where the endpoints live: `prefix` moves every one of them, each can be turned off, and
//! `/healthz` reports not-ready while the engine shuts down or is cut off from Redis.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard::{chat, yjs, Config, Engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Fails the test instead of hanging CI.
async fn watchdog<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test timed out")
}

fn engine(config: Config) -> Engine {
    chat::install(Engine::builder(config), chat::Hooks::default())
        .and_then(|b| yjs::install(b, yjs::Hooks::default()))
        .and_then(|(b, _)| b.build_on(tokio::runtime::Handle::current()))
        .unwrap()
}

/// Sends one request and reads the whole answer (the connection closes after it).
async fn get(addr: SocketAddr, path: &str, extra: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    String::from_utf8_lossy(&got).into_owned()
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_moves_every_endpoint_and_toggles_turn_them_off() {
    let config = Config::default()
        .jwt_secret("endpoints-test-secret")
        .api_key("k")
        .prefix("/rt");
    let e = engine(config);
    let addr = e.listen(([127, 0, 0, 1], 0).into()).unwrap().addr;
    watchdog(async {
        let handshake = "?EIO=4&transport=polling";
        let auth = "Authorization: Bearer k\r\n";
        assert_eq!(status(&get(addr, "/rt/healthz", "").await), "200");
        assert_eq!(status(&get(addr, "/rt/metrics", "").await), "200");
        let open = get(addr, &format!("/rt/socket.io/{handshake}"), "").await;
        assert_eq!(status(&open), "200", "{open}");
        assert!(open.contains("\"sid\""), "{open}");
        assert_eq!(status(&get(addr, "/rt/api/rooms", auth).await), "200");
        // An SSE stream without a token is refused by the stream itself, not 404.
        assert_eq!(status(&get(addr, "/rt/events", "").await), "401");
        assert_eq!(status(&get(addr, "/rt/yjs/notes", "").await), "426");
        // Nothing is left at the root, nor under a look-alike prefix.
        for path in [
            "/healthz",
            "/metrics",
            "/events",
            "/api/rooms",
            "/yjs/notes",
            "/rtx/healthz",
        ] {
            assert_eq!(status(&get(addr, path, auth).await), "404", "{path}");
        }
        assert_eq!(
            status(&get(addr, &format!("/socket.io/{handshake}"), "").await),
            "404"
        );
        assert!(e.http().serves("/rt/events"));
        assert!(!e.http().serves("/events"));
        assert!(!e.http().serves("/rtx/events"));
    })
    .await;
    e.shutdown(Duration::from_secs(1));

    let config = Config::default()
        .jwt_secret("endpoints-test-secret")
        .api_key("k")
        .sse(false)
        .api(false)
        .yjs(false)
        .metrics(false)
        .healthz(false);
    let e = engine(config);
    let addr = e.listen(([127, 0, 0, 1], 0).into()).unwrap().addr;
    watchdog(async {
        for path in [
            "/healthz",
            "/metrics",
            "/events",
            "/api/rooms",
            "/yjs/notes",
        ] {
            let answer = get(addr, path, "Authorization: Bearer k\r\n").await;
            assert_eq!(status(&answer), "404", "{path}: {answer}");
            assert!(!e.http().serves(path), "{path}");
        }
        let open = get(addr, "/socket.io/?EIO=4&transport=polling", "").await;
        assert_eq!(status(&open), "200", "{open}");
    })
    .await;
    e.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_not_ready_while_shutting_down() {
    let e = engine(Config::default().jwt_secret("endpoints-test-secret"));
    let addr = e.listen(([127, 0, 0, 1], 0).into()).unwrap().addr;
    watchdog(async {
        let ok = get(addr, "/healthz", "").await;
        assert_eq!(status(&ok), "200");
        assert!(ok.ends_with(r#"{"status":"ok"}"#), "{ok}");
        // What `shutdown` does first, before it stops the listeners.
        e.http().begin_shutdown();
        let closing = get(addr, "/healthz", "").await;
        assert_eq!(status(&closing), "503", "{closing}");
        assert!(closing.contains(r#""status":"unavailable""#), "{closing}");
        assert!(closing.contains(r#""reason":"shutting down""#), "{closing}");
    })
    .await;
    e.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_not_ready_when_redis_is_unreachable_past_a_heartbeat() {
    // A port nobody listens on: this node never reaches Redis.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config::default()
        .jwt_secret("endpoints-test-secret")
        .redis_url(format!("redis://127.0.0.1:{port}"))
        .cluster_heartbeat(Duration::from_millis(300));
    let e = engine(config);
    let addr = e.listen(([127, 0, 0, 1], 0).into()).unwrap().addr;
    watchdog(async {
        // Within the first heartbeat a node that is still connecting counts as ready.
        assert_eq!(status(&get(addr, "/healthz", "").await), "200");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let down = get(addr, "/healthz", "").await;
        assert_eq!(status(&down), "503", "{down}");
        assert!(down.contains("disconnected from redis"), "{down}");
    })
    .await;
    e.shutdown(Duration::from_secs(1));
}
