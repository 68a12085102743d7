//! The server Autobahn|Testsuite's fuzzing client talks to (`bindings-tests/autobahn/run.sh`).
//!
//! One engine, four WebSocket endpoints:
//! - `/echo`: a WebSocket echo built from the engine's own WebSocket parts (tungstenite's read
//!   half and the engine's frame writer), mounted with `EngineBuilder::websocket_service` like
//!   the Yjs endpoint. The suite's cases expect an echo; this is where the WebSocket layer
//!   must pass them.
//! - `/socket.io/?EIO=4&transport=websocket` and `/yjs/<doc>?token=…`: the real endpoints.
//!   They are not echo servers, so the suite records what they do with its frames (Engine.IO
//!   closes on a frame that is no Engine.IO packet; Yjs ignores text frames); framing, ping,
//!   close and UTF-8 handling must still be conformant there.
//! - `/ws?token=…`: the plain-WebSocket endpoint, authenticated by the token in the URL (the
//!   suite cannot send an auth frame first). It answers `ready`, then takes the suite's text
//!   frames as malformed (an `error` frame and close 1008) and binary frames with close 1003.
//!
//! Port from `PORT` (default 9001); JWT secret `autobahn-secret`; prints the listening line.

use std::time::Duration;

use switchboard::testing::WsEcho;
use switchboard::{chat, ws, yjs, Config, Engine};

/// The largest echoed message: the suite's biggest case (9.1.6/9.2.6) is 16 MiB.
const MAX_ECHO: usize = 16 * 1024 * 1024 + 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    // No heartbeat during a case: a ping frame the suite does not expect would show up as a
    // difference in the golden file.
    let config = Config::default()
        .jwt_secret("autobahn-test-secret")
        .ping_interval(Duration::from_secs(600))
        .yjs_ping_interval(Duration::from_secs(600))
        .recovery_window(Duration::ZERO);
    let builder = chat::install(Engine::builder(config), chat::Hooks::default())?;
    let (builder, _yjs) = yjs::install(builder, yjs::Hooks::default())?;
    let engine = ws::install(builder)
        .websocket_service("/echo", WsEcho::new(MAX_ECHO))
        .build()?;
    let addr = engine.listen(([127, 0, 0, 1], port).into())?;
    println!("switchboard listening on {addr}");
    engine.handle().block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    engine.shutdown(Duration::from_secs(1));
    Ok(())
}
