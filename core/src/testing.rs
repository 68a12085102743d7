//! Entry points for the fuzz targets (`fuzz/`), the property tests and the Autobahn
//! conformance server (`examples/autobahn.rs`). Not part of the supported API: names and
//! signatures change with the engine's internals.
//!
//! Each decoder entry point runs the same code a real request or frame runs through, minus
//! the IO, so a crash found here is a crash a client could cause.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap};

use crate::auth::{AuthError, JwtVerifier, User};
use crate::config::Config;
use crate::helpers::percent::query_param;
use crate::protocol::{engineio, socketio};
use crate::transport::http::{
    BoxedReader, BoxedWriter, HttpReply, RequestHead, WebSocketService, WsSession,
};
use crate::transport::outbox::Outbox;
use crate::transport::wsdriver::{self, Echo};
use crate::transport::wsread::FrameReader;

/// The codecs, for the property tests.
pub mod protocol {
    pub use crate::protocol::{engineio, socketio};
}

/// Raw Engine.IO sessions, for the protocol conformance server (`examples/conformance.rs`),
/// which mounts an echo with [`crate::EngineBuilder::engineio`].
pub mod transport {
    pub use crate::socketio::ConnState;
    pub use crate::transport::{CloseReason, Message, Session, SessionData, SessionHandler};
}

/// What the Engine.IO decoders made of some bytes: as a WebSocket text frame (only when
/// they are UTF-8, as tungstenite guarantees) and as a long-polling body.
pub type EngineIoDecoded = (
    Option<Result<engineio::Packet, engineio::DecodeError>>,
    Result<Vec<engineio::Packet>, engineio::DecodeError>,
);

/// The Engine.IO decoders on arbitrary bytes: a WebSocket text frame and a long-polling body.
pub fn engineio_decode(data: &[u8]) -> EngineIoDecoded {
    let bytes = Bytes::copy_from_slice(data);
    let frame = std::str::from_utf8(data)
        .is_ok()
        .then(|| engineio::Packet::decode_text(bytes.clone()));
    (frame, engineio::decode_payload(bytes))
}

/// A Socket.IO packet and the binary attachments that followed it, checked as the server
/// checks them before dispatch. `Ok(true)` when the packet would be dispatched.
pub fn socketio_decode(
    text: &str,
    attachments: &[Bytes],
) -> Result<(socketio::Packet, bool), socketio::DecodeError> {
    let packet = socketio::Packet::decode(text)?;
    let complete = !packet.kind.is_binary()
        || packet.attachments == 0
        || attachments.len() >= packet.attachments;
    let valid = complete
        && crate::socketio::placeholders_valid(
            packet.data.as_ref(),
            attachments.len().min(packet.attachments),
        );
    Ok((packet, valid))
}

/// The y-websocket message decoder on a binary frame's payload; `Ok(n)` is the number of
/// messages it held.
pub fn yjs_decode(payload: &[u8]) -> Result<usize, String> {
    crate::yjs::protocol::decode(payload)
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

/// The y-websocket decoder, then what a document does with each message: updates are
/// decoded and applied (yrs' update decoder is reached by the same bytes), state vectors
/// answered, awareness states applied, each on a fresh document.
pub fn yjs_apply(payload: &[u8]) -> Result<usize, String> {
    use crate::yjs::protocol::Inbound;
    let messages = crate::yjs::protocol::decode(payload).map_err(|e| e.to_string())?;
    let mut awareness = yrs::sync::Awareness::new(yrs::Doc::new());
    for message in &messages {
        match message {
            Inbound::SyncStep1(sv) => {
                let _ = crate::yjs::document::encode_state_as_update(awareness.doc(), sv);
            }
            Inbound::SyncStep2(raw) | Inbound::Update(raw) => {
                let _ = crate::yjs::document::apply_client_update(awareness.doc(), raw);
            }
            Inbound::Awareness(update) => {
                let _ = awareness.apply_update_summary(update.clone());
            }
            Inbound::QueryAwareness | Inbound::Ignored => {}
        }
    }
    Ok(messages.len())
}

/// The secret [`token_verify`] checks signatures with.
pub const FUZZ_SECRET: &str = "fuzz-secret";

/// Finds a token with [`crate::helpers::token::find`] (what Socket.IO, SSE and Yjs call:
/// `auth.token`, then `Authorization: Bearer`, then `?token=`) and verifies it with
/// [`FUZZ_SECRET`].
pub fn token_verify(
    auth_token: Option<&str>,
    authorization: &[u8],
    query: &str,
) -> Result<User, AuthError> {
    let verifier = JwtVerifier::new(&Config::default().jwt_secret(FUZZ_SECRET))
        .map_err(|_| AuthError::Invalid)?;
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_bytes(authorization) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
    let auth = auth_token.map(|t| serde_json::json!({ "token": t }));
    let token =
        crate::helpers::token::find(&headers, query, auth.as_ref()).ok_or(AuthError::Required)?;
    verifier.verify_static(&token)
}

/// What the front door reads from a request's target and headers before routing it.
#[derive(Debug)]
pub struct HeadFacts {
    /// The path, as routing sees it.
    pub path: String,
    /// Whether it asks for a WebSocket upgrade.
    pub upgrade: bool,
    /// The query parameters the endpoints read, decoded.
    pub params: Vec<Option<String>>,
    /// The Yjs document name, when the path names a valid one under `/yjs/`.
    pub document: Option<String>,
}

/// Parses a request target and header lines (`name: value`, one a line) as the front door
/// does: `None` when the HTTP layer (hyper's `http` types) would refuse the request.
pub fn http_head(target: &str, header_lines: &str) -> Option<HeadFacts> {
    let uri: http::Uri = target.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in header_lines.lines() {
        let (name, value) = line.split_once(':')?;
        let name = header::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        let value = http::HeaderValue::from_str(value.trim()).ok()?;
        headers.append(name, value);
    }
    let head = RequestHead {
        method: http::Method::GET,
        uri,
        headers,
        peer: ([127, 0, 0, 1], 0).into(),
    };
    let query = head.uri.query().unwrap_or("");
    let params = ["EIO", "transport", "sid", "token", "rooms", "lastEventId"]
        .iter()
        .map(|name| query_param(query, name))
        .collect();
    let _ = crate::transport::http::check_eio(query, "websocket");
    Some(HeadFacts {
        path: head.uri.path().to_owned(),
        upgrade: head.is_websocket_upgrade(),
        params,
        document: crate::yjs::document_name(head.uri.path(), "/yjs/"),
    })
}

/// A WebSocket echo server built from the engine's own WebSocket parts: the connection
/// driver, its frame reader and writer (`transport/wsdriver.rs`, `transport/wsread.rs`), as
/// the Engine.IO endpoint runs them. Autobahn|Testsuite's fuzzing client needs an echo
/// server; this one sees exactly what the Engine.IO endpoint's WebSocket layer does.
pub struct WsEcho {
    max_message: usize,
}

impl WsEcho {
    /// An echo accepting messages of up to `max_message` bytes (larger: close 1009).
    pub fn new(max_message: usize) -> Arc<Self> {
        Arc::new(WsEcho { max_message })
    }
}

impl WebSocketService for WsEcho {
    fn accept(&self, _head: &RequestHead) -> Result<WsSession, HttpReply> {
        let max = self.max_message;
        Ok(Box::new(move |reader, writer, prefix| {
            Box::pin(echo(reader, writer, prefix, max))
        }))
    }
}

async fn echo(reader: BoxedReader, writer: BoxedWriter, prefix: Bytes, max: usize) {
    // Room for one largest message and its echo.
    let endpoint = Echo {
        outbox: Outbox::new(1024, 2 * max + 64),
        send_timeout: Duration::from_secs(30),
    };
    let mut frames = FrameReader::new(&prefix, max);
    drop(prefix);
    let mut io = tokio::io::join(reader, writer);
    wsdriver::drive(&endpoint, &mut frames, &mut io).await;
}
