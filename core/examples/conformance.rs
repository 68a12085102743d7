//! The server the official Socket.IO and Engine.IO protocol test suites talk to.
//!
//! Port 3000 (or `PORT`), pingInterval 300 ms, pingTimeout 200 ms; namespaces `/` and
//! `/custom`; a raw Engine.IO echo at `/engine.io/`. Besides the suites' handlers it answers
//! `server-ack-test` by emitting `question` with an ack and reporting the answer as `answer`,
//! which our own tests use to exercise server-to-client acks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use switchboard::socketio::Payload;
use switchboard::testing::transport::{CloseReason, Message, Session, SessionData, SessionHandler};
use switchboard::{Config, Engine};

/// Echoes every Engine.IO message back unchanged.
struct Echo;

// For any session data: the engine's front door attaches Socket.IO's, which the echo ignores.
impl<D: SessionData> SessionHandler<D> for Echo {
    fn on_message<'a>(
        &'a self,
        session: &'a Arc<Session<D>>,
        message: Message,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = match message {
                Message::Text(text) => {
                    session.send_message(std::str::from_utf8(&text).unwrap_or_default())
                }
                Message::Binary(data) => session.send_binary(&data),
            };
        })
    }

    fn on_close(&self, _session: &Arc<Session<D>>, _reason: CloseReason) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let config = Config::default()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(200))
        .recovery_window(Duration::ZERO)
        // Two of the suites' checks send requests on separate connections at once and expect
        // them handled in the order they were sent (a GET racing a POST `1`; a GET racing the
        // WebSocket's `5`), as single-threaded Node does. With two workers the second worker
        // may take the later connection first; one worker keeps arrival order.
        .worker_threads(1);
    let engine = Engine::builder(config)
        .namespace("/", |ns| {
            ns.on_connect(|socket| async move {
                let _ = socket.emit("auth", &socket.auth());
            })
            .on("message", |socket, payload, _ack| async move {
                let _ = socket.emit_payload("message-back", &payload);
            })
            .on("message-with-ack", |_socket, payload, ack| async move {
                if let Some(ack) = ack {
                    ack.send_payload(&payload);
                }
            })
            .on("server-ack-test", |socket, payload, _ack| async move {
                let question = Payload::new(payload.args.clone());
                let answer = match socket
                    .emit_with_ack("question", &question, Duration::from_secs(5))
                    .await
                {
                    Ok(reply) => reply.args.into_iter().next().unwrap_or(Value::Null),
                    Err(e) => Value::String(e.to_string()),
                };
                let _ = socket.emit("answer", &answer);
            })
        })
        .namespace("/custom", |ns| {
            ns.on_connect(|socket| async move {
                let _ = socket.emit("auth", &socket.auth());
            })
        })
        .engineio("/engine.io/", Arc::new(Echo))
        .build()?;
    let listening = engine.listen(([127, 0, 0, 1], port).into())?;
    println!("switchboard listening on {listening}");
    engine.handle().block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    engine.shutdown(Duration::from_secs(1));
    Ok(())
}
