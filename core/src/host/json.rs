//! The JSON shapes a host sees: the handshake its authentication callback gets (Socket.IO
//! and document connections alike), a socket as app events and connection callbacks
//! describe it, the refusal of an unknown app event, and the answers of the host API
//! (stats, presence, rooms, a published message). One place, so the C and Node bindings
//! cannot drift apart.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::socketio::{ConnectRequest, Socket};
use crate::store::ChatMessage;
use crate::yjs::DocumentRequest;

/// Headers as a `{name: value}` map (values that are not text are left out).
fn headers(map: &http::HeaderMap) -> Map<String, Value> {
    let mut headers = Map::new();
    for (name, value) in map {
        if let Ok(v) = value.to_str() {
            headers.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    headers
}

/// A session's handshake headers as a `{name: value}` map, as [`headers`] makes.
fn handshake_headers(hs: &crate::transport::HandshakeInfo) -> Map<String, Value> {
    let mut headers = Map::new();
    for (name, value) in hs.header_pairs() {
        if let Some(v) = http::HeaderValue::from_bytes(value)
            .ok()
            .and_then(|v| v.to_str().map(str::to_owned).ok())
        {
            headers.insert(name.to_owned(), Value::String(v));
        }
    }
    headers
}

/// A query string as a `{name: value}` map, percent-decoded, the first value of a name.
fn query(raw: &str) -> Map<String, Value> {
    let mut query = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if let Some(v) = crate::transport::http::query_param(raw, key) {
            query.insert(key.to_owned(), Value::String(v));
        }
    }
    query
}

/// What a host's authentication callback gets for a Socket.IO client:
/// `{auth, headers, query, address}` (headers and query as string maps).
pub fn handshake(request: &ConnectRequest) -> Value {
    let hs = &request.session.handshake;
    json!({
        "auth": request.auth,
        "headers": handshake_headers(hs),
        "query": query(hs.query()),
        "address": hs.address.ip().to_string(),
    })
}

/// What a host's authentication callback gets for a document connection: the handshake's
/// shape, with the token as `auth.token` and the document's (decoded) name as `document`.
pub fn document_handshake(request: &DocumentRequest) -> Value {
    let head = &request.head;
    json!({
        "auth": { "token": request.token },
        "headers": headers(&head.headers),
        "query": query(head.uri.query().unwrap_or("")),
        "address": head.peer.ip().to_string(),
        "document": request.document,
    })
}

/// A connected socket: `{id, user, rooms}`.
pub fn socket(socket: &Socket) -> Value {
    socket.host_json()
}

/// A socket that disconnected: `{id, user, rooms}` with the rooms it was in.
pub fn socket_gone(socket: &Socket, rooms: &[Arc<str>]) -> Value {
    let mut json = socket.host_json();
    json["rooms"] = rooms.iter().map(|r| r.to_string()).collect();
    json
}

/// The ack of an app event nobody registered: `INVALID_MESSAGE` "Unknown event `<name>`".
pub fn unknown_event(event: &str) -> Value {
    json!({"code": "INVALID_MESSAGE", "message": format!("Unknown event {event}")})
}

/// A stored message as `publish` answers: `{id, timestamp}`.
pub fn published(message: &ChatMessage) -> Value {
    json!({ "id": message.id, "timestamp": message.timestamp })
}
