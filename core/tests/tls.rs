//! HTTPS and WSS on the engine's own listener, with a self-signed certificate made by rcgen:
//! clients that trust it get HTTP, long-polling and WebSocket; clients that do not, and
//! plain-HTTP clients, get nothing and leave the others undisturbed; a bad certificate or key
//! stops start-up with the file's name; a reload serves a new certificate to new connections
//! while open ones go on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use switchboard::{Config, Engine, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// Fails the test instead of hanging CI.
async fn watchdog<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test timed out")
}

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// A directory of its own for this test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write_pair(dir: &std::path::Path, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).expect("write cert");
    std::fs::write(&k, key).expect("write key");
    (c, k)
}

fn engine(config: Config) -> Engine {
    Engine::builder(config)
        .namespace("/", |ns| ns)
        .build_on(tokio::runtime::Handle::current())
        .expect("engine starts")
}

/// A TLS client trusting only `ca_pem`.
async fn tls_connect(addr: SocketAddr, ca_pem: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM");
    roots.add(ca).expect("CA added");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// One HTTP/1.1 request over a fresh TLS connection; the whole answer.
async fn https_get(addr: SocketAddr, ca_pem: &str, path: &str) -> String {
    let mut tls = tls_connect(addr, ca_pem).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    // A server may end a TLS connection without close_notify after `Connection: close`.
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

type Wss = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

/// An Engine.IO WebSocket over TLS, past its open packet.
async fn wss_open(addr: SocketAddr, ca_pem: &str) -> Wss {
    let tls = tls_connect(addr, ca_pem).await.expect("TLS handshake");
    let url = "wss://localhost/socket.io/?EIO=4&transport=websocket";
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket upgrade");
    match ws.next().await {
        Some(Ok(Message::Text(t))) => assert!(t.starts_with("0{"), "open packet: {t}"),
        other => panic!("expected the open packet, got {other:?}"),
    }
    ws
}

/// Connects to namespace `/` and checks the answer: the session works end to end.
async fn socketio_connect(ws: &mut Wss) {
    ws.send(Message::text("40")).await.expect("send CONNECT");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.expect("pong")
            }
            Some(Ok(Message::Text(t))) => {
                assert!(t.starts_with("40{"), "CONNECT answer: {t}");
                return;
            }
            other => panic!("expected the CONNECT answer, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_polling_and_wss_work_for_a_client_that_trusts_the_certificate() {
    watchdog(async {
        let pair = self_signed();
        let engine = engine(Config::default().tls_pem(pair.0.as_str(), pair.1.as_str()));
        let listening = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(listening.tls);
        assert_eq!(listening.to_string(), format!("https://{}", listening.addr));
        let addr = listening.addr;

        let health = https_get(addr, &pair.0, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let polling = https_get(addr, &pair.0, "/socket.io/?EIO=4&transport=polling").await;
        assert!(polling.starts_with("HTTP/1.1 200"), "{polling}");
        assert!(polling.contains("0{\"sid\":"), "{polling}");

        let mut ws = wss_open(addr, &pair.0).await;
        socketio_connect(&mut ws).await;
        engine.shutdown(Duration::from_secs(1));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusting_plain_and_silent_clients_get_nothing_and_others_go_on() {
    watchdog(async {
        let pair = self_signed();
        let stranger = self_signed();
        let engine = engine(Config::default().tls_pem(pair.0.as_str(), pair.1.as_str()));
        let addr = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap().addr;
        let mut open = wss_open(addr, &pair.0).await;

        // A client that trusts another certificate refuses the handshake.
        let refused = tls_connect(addr, &stranger.0).await;
        assert!(
            refused.is_err(),
            "a client that does not trust the certificate must fail"
        );

        // A client that connects and says nothing does not hold up the others.
        let _silent = TcpStream::connect(addr).await.unwrap();

        // Plain HTTP to the TLS port: the connection ends without a byte of answer.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await; // EOF or reset, both fine
        assert!(
            answer.is_empty(),
            "plain HTTP got {:?}",
            String::from_utf8_lossy(&answer)
        );

        // The connection opened before, and new ones, still work.
        socketio_connect(&mut open).await;
        let health = https_get(addr, &pair.0, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        engine.shutdown(Duration::from_secs(1));
    })
    .await
}

#[test]
fn a_bad_certificate_or_key_stops_start_up_naming_the_file() {
    let dir = temp_dir("bad");
    let pair = self_signed();
    let other = self_signed();
    let (cert, key) = write_pair(&dir, &pair);
    let other_key = dir.join("other-key.pem");
    std::fs::write(&other_key, &other.1).unwrap();
    let missing = dir.join("missing.pem");

    let start = |cert: &PathBuf, key: &PathBuf| -> String {
        let config = Config::default().tls_files(cert, key);
        match Engine::builder(config).build() {
            Ok(engine) => {
                engine.shutdown(Duration::from_secs(1));
                panic!("the engine started with {cert:?} and {key:?}")
            }
            Err(e) => {
                assert!(matches!(e, Error::Tls(_)), "{e:?}");
                let message = e.to_string();
                assert!(!message.contains('\n'), "one line: {message}");
                message
            }
        }
    };
    let mismatch = start(&cert, &other_key);
    assert_eq!(
        mismatch,
        format!(
            "TLS key {} does not match the certificate {}",
            other_key.display(),
            cert.display()
        )
    );
    let unreadable = start(&missing, &key);
    assert!(
        unreadable.starts_with(&format!(
            "cannot read TLS certificate {}: ",
            missing.display()
        )),
        "{unreadable}"
    );
    let swapped = start(&key, &cert);
    assert!(
        swapped.starts_with(&format!("no certificate in {}", key.display())),
        "{swapped}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_and_keeps_open_connections() {
    watchdog(async {
        let dir = temp_dir("reload");
        let old = self_signed();
        let new = self_signed();
        let (cert, key) = write_pair(&dir, &old);
        let engine = engine(Config::default().tls_files(&cert, &key));
        let addr = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap().addr;
        let mut open = wss_open(addr, &old.0).await;

        // A broken file is refused and the old certificate stays.
        std::fs::write(&key, "not a key").unwrap();
        assert!(engine.reload_tls().is_err());
        assert!(tls_connect(addr, &old.0).await.is_ok());

        write_pair(&dir, &new);
        engine.reload_tls().expect("reload");
        assert!(
            tls_connect(addr, &new.0).await.is_ok(),
            "new certificate served"
        );
        assert!(
            tls_connect(addr, &old.0).await.is_err(),
            "old certificate gone"
        );
        socketio_connect(&mut open).await;
        engine.shutdown(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    })
    .await
}
