//! Slowloris guards: a client that sends nothing, trickles its request head, or trickles its
//! body loses the connection after `request_timeout` (the body used to have no limit).

use std::time::{Duration, Instant};

use switchboard::{chat, Config, Engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::watchdog;

const TIMEOUT: Duration = Duration::from_millis(300);

/// Writes `head`, then one byte of `trickle` every 50 ms, while reading; returns what the
/// server sent before it closed and how long that took.
async fn slow_client(addr: std::net::SocketAddr, head: &str, trickle: bool) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            n = stream.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(50)), if trickle => {
                let _ = stream.write_all(b"a").await;
            }
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_slow_bodies_are_cut_off() {
    let config = Config::default()
        .jwt_secret("request-timeout-test-secret")
        .api_key("k")
        .request_timeout(TIMEOUT);
    let engine = chat::install(Engine::builder(config), chat::Hooks::default())
        .unwrap()
        .build_on(tokio::runtime::Handle::current())
        .unwrap();
    let addr = engine.listen(([127, 0, 0, 1], 0).into()).unwrap().addr;
    watchdog(async {
        let (got, took) = slow_client(addr, "", false).await;
        assert_eq!(got, "", "a silent connection gets no answer");
        assert!(took >= TIMEOUT, "closed after {took:?}");

        let (got, took) = slow_client(addr, "GET /healthz HTTP/1.1\r\nX-Slow: ", true).await;
        assert_eq!(got, "", "a trickled head gets no answer");
        assert!(took >= TIMEOUT, "closed after {took:?}");

        let head = "POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\n\
                    Authorization: Bearer k\r\nContent-Length: 1000\r\n\r\n";
        let (got, took) = slow_client(addr, head, true).await;
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(got.contains("REQUEST_TIMEOUT"), "{got}");
        assert!(took >= TIMEOUT, "closed after {took:?}");
    })
    .await;
    engine.shutdown(Duration::from_secs(1));
}
