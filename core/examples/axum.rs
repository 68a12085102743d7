//! An axum app that serves its own routes and the engine on one port: `GET /` and
//! `GET /api/hello` are the app's; Socket.IO (`/socket.io/`, the chat contract), the SSE
//! stream (`/events`), Yjs documents (`/yjs/<name>`), `/metrics` and `/healthz` are the
//! engine's (see `switchboard::tower`); any other path gets axum's own `404`.
//!
//! ```text
//! cargo run -p switchboard --example axum -- --port 3000 --jwt-secret "$(openssl rand -base64 32)"
//! ```
//!
//! Flags: `--host` (default 127.0.0.1), `--port` (default `PORT` or 3000; 0 picks one),
//! `--jwt-secret` (default `SWITCHBOARD_JWT_SECRET`). Prints
//! `switchboard listening on http://HOST:PORT` once it accepts connections; stops on SIGINT or
//! SIGTERM: the engine closes its connections and ends its SSE streams, axum's graceful
//! shutdown finishes the app's own responses, and the app waits (at most 5 s) for the
//! engine's WebSockets to finish their closing handshake.

use std::error::Error;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Json, Router};
use switchboard::{chat, yjs, Config, Engine};

/// What the command line and the environment say.
struct Args {
    host: IpAddr,
    port: u16,
    secret: String,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        host: IpAddr::from([127, 0, 0, 1]),
        port: std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3000),
        secret: std::env::var("SWITCHBOARD_JWT_SECRET").unwrap_or_default(),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => out.host = value.parse().map_err(|e| format!("--host {value}: {e}"))?,
            "--port" => out.port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--jwt-secret" => out.secret = value,
            _ => {
                return Err(format!(
                    "unknown flag {flag} (--host, --port, --jwt-secret)"
                ))
            }
        }
    }
    if out.secret.is_empty() {
        return Err("pass --jwt-secret SECRET (or set SWITCHBOARD_JWT_SECRET)".into());
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    // The app owns `/api/`: the engine's server API (which also needs an API key) stays off.
    // To keep both, move the engine under a prefix instead (`.prefix("/rt")`).
    let config = Config::default().jwt_secret(args.secret).api(false);
    let builder = chat::install(Engine::builder(config), chat::Hooks::default())?;
    let (builder, _documents) = yjs::install(builder, yjs::Hooks::default())?;
    // On the app's runtime: no second thread pool, and the engine's shutdown does not block.
    let engine = builder.build_on(tokio::runtime::Handle::current())?;

    let app = Router::new()
        .route("/", get(|| async { "Hello from the app\n" }))
        .route(
            "/api/hello",
            get(|| async { Json(serde_json::json!({ "hello": "from axum" })) }),
        )
        // The engine's paths are answered by the engine, the rest by the routes above. The
        // client's address comes from axum's `ConnectInfo` (see `serve` below).
        .layer(
            engine
                .layer()
                .peer_from(|e| e.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)),
        );

    let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
    println!("switchboard listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    // axum's graceful shutdown waits for every open response: the engine's shutdown ends its
    // own (Socket.IO, Yjs, SSE streams), so nothing of the engine's keeps the app up.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(engine.clone()))
    .await?;
    // The WebSockets axum upgraded are not its to wait for: let them finish their closing
    // handshake, so that clients see "going away" (1001), not a cut connection (1006).
    engine.closed(Duration::from_secs(5)).await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM, once the engine has been told to close its connections
/// and end its streams.
async fn stopped(engine: Engine) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    engine.shutdown(Duration::from_secs(5));
}
