//! The plain-WebSocket endpoint `GET /ws`: the chat contract as JSON text frames, one
//! message per frame, with resume — for clients that cannot carry a Socket.IO library
//! (native apps, game engines, microcontrollers, command-line tools). The protocol is
//! written down in `docs/websocket-protocol.md`.
//!
//! A `/ws` connection is an Engine.IO session of the Socket.IO server with a socket in the
//! `/` namespace; only its wire differs (`frames` translates both ways). So its members
//! share rooms, presence, typing, history, limits, recovery and the cluster with Socket.IO,
//! SSE and every other member, through the same paths, and the host's app events reach it.
//! Its outbound frames reuse the WebSocket writer of the transport (bounded queue, write
//! coalescing); a room broadcast's engine frame is translated once into this protocol's frame
//! and that one is shared by every `/ws` recipient (see `connection::Translations`).

mod connection;
pub(crate) mod frames;

use std::sync::{Arc, OnceLock};

use crate::engine::EngineBuilder;
use crate::socketio::{ConnState, SocketIo};
use crate::transport::http::{HttpReply, RequestHead, WebSocketService, WsSession};
use crate::transport::EioServer;

/// The endpoint's path under the prefix.
pub const PATH: &str = "/ws";

/// Close codes of the protocol beyond RFC 6455's.
pub mod close_code {
    /// Authentication failed, was missing past the connect timeout, or the token expired.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The server disconnected the connection (flooding, the host's `disconnectUser`).
    pub const SERVER_DISCONNECT: u16 = 4000;
}

/// The endpoint: reaches the Socket.IO server once the engine is built.
struct PlainWs {
    engine: OnceLock<(Arc<EioServer<ConnState>>, Arc<SocketIo>)>,
    translations: Arc<connection::Translations>,
}

/// Serves `/ws` (unless `Config::ws` is off). Install it after the chat contract: it speaks
/// the `/` namespace the chat installs.
pub fn install(builder: EngineBuilder) -> EngineBuilder {
    if !builder.config().ws {
        return builder;
    }
    let service = Arc::new(PlainWs {
        engine: OnceLock::new(),
        translations: Arc::default(),
    });
    let started = service.clone();
    builder
        .websocket_service(PATH, service)
        .on_start(move |engine| {
            let (io, server) = engine.socketio_parts();
            let _ = started.engine.set((server.clone(), io.clone()));
        })
}

impl WebSocketService for PlainWs {
    fn accept(&self, head: &RequestHead) -> Result<WsSession, HttpReply> {
        // Mounted as a prefix: `/ws` itself only.
        if head.uri.path() != PATH {
            return Err(HttpReply::json(
                http::StatusCode::NOT_FOUND,
                &br#"{"code":"NOT_FOUND","message":"Not found"}"#[..],
            ));
        }
        let Some((server, io)) = self.engine.get().cloned() else {
            return Err(HttpReply::json(
                http::StatusCode::SERVICE_UNAVAILABLE,
                &br#"{"code":"SHUTTING_DOWN","message":"Server is not running"}"#[..],
            ));
        };
        let handshake = head.handshake();
        let translations = self.translations.clone();
        Ok(Box::new(move |reader, writer, prefix| {
            Box::pin(connection::run(
                server,
                io,
                translations,
                handshake,
                reader,
                writer,
                prefix,
            ))
        }))
    }
}
