//! Socket.IO v5 over Engine.IO: namespaces, sockets, events, acks, binary attachments.

pub(crate) mod cluster;
pub use crate::auth::host_error;
mod namespace;
mod payload;
pub(crate) mod recovery;
mod socket;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::{json, Value};

pub use host_error::HookError;
pub use namespace::{Broadcast, ConnectRequest, Namespace, NamespaceBuilder, Refusal};
pub use payload::Payload;
pub use socket::{AckError, AckSender, DisconnectReason, EmitError, Socket, MAX_PENDING_ACKS};

use crate::auth::{AuthError, User};
use crate::protocol::frame::{Frame, FrameKind};
use crate::protocol::socketio::{self as sio, PacketKind};
use crate::transport::{CloseReason, Message, SessionHandler};
use recovery::SavedSession;
use socket::SocketInit;

/// Event names a client may not use (Socket.IO reserves them).
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// A binary packet waiting for its attachments.
struct Partial {
    packet: sio::Packet,
    attachments: Vec<Bytes>,
    /// Bytes of the header and the attachments so far: together at most `max_payload`.
    bytes: usize,
}

/// The Socket.IO state of one Engine.IO session (its sockets, a packet waiting for its
/// binary attachments): the data Socket.IO attaches to each [`Session`].
#[doc(hidden)]
#[derive(Default)]
pub struct ConnState {
    sockets: Mutex<Vec<Arc<Socket>>>,
    /// Boxed: a packet waiting for attachments is rare, and inline it would take room in
    /// every session.
    partial: Mutex<Option<Box<Partial>>>,
}

/// An Engine.IO session as Socket.IO uses it: carrying its [`ConnState`].
pub(crate) type Session = crate::transport::Session<ConnState>;

impl ConnState {
    /// The session's socket in namespace `nsp`, when it joined it.
    pub(crate) fn socket(&self, nsp: &str) -> Option<Arc<Socket>> {
        self.sockets
            .lock()
            .iter()
            .find(|s| s.namespace().name() == nsp)
            .cloned()
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Socket>> {
        let mut sockets = self.sockets.lock();
        let i = sockets.iter().position(|s| &**s.id() == id)?;
        Some(sockets.swap_remove(i))
    }
}

/// What the Socket.IO layer bounds per connection (from [`crate::Config`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A packet's header and binary attachments together, in bytes.
    pub max_packet_bytes: usize,
    /// Time a new session has to join a namespace.
    pub connect_timeout: std::time::Duration,
    /// Bytes of events one socket may have queued behind a slow handler.
    pub max_queued_event_bytes: usize,
}

impl Limits {
    pub(crate) fn from_config(config: &crate::Config) -> Self {
        Limits {
            max_packet_bytes: config.max_payload,
            connect_timeout: config.connect_timeout,
            max_queued_event_bytes: config.max_queued_event_bytes,
        }
    }
}

/// The Socket.IO server: its namespaces, fixed at start.
pub(crate) struct SocketIo {
    namespaces: HashMap<String, Arc<Namespace>>,
    limits: Limits,
}

/// A user's Socket.IO connections are the sockets in the user's personal room
/// ([`crate::hub::personal_room`]) of each namespace: the index the rooms keep anyway.
impl crate::hub::users::UserConnections for SocketIo {
    fn disconnect_user(&self, user_id: &str) -> usize {
        let room = crate::hub::personal_room(user_id);
        let mut n = 0;
        for ns in self.namespaces.values() {
            for socket in ns.sockets_in(&room) {
                // `io server disconnect`: Socket.IO clients do not reconnect after it.
                socket.disconnect();
                n += 1;
            }
        }
        n
    }
}

impl SocketIo {
    pub(crate) fn new(namespaces: HashMap<String, Arc<Namespace>>, limits: Limits) -> Arc<Self> {
        Arc::new(SocketIo { namespaces, limits })
    }

    /// The namespace with this name.
    pub fn namespace(&self, name: &str) -> Option<&Arc<Namespace>> {
        self.namespaces.get(name)
    }

    /// Every socket still in a namespace, of every namespace (a shutdown waits until there
    /// is none).
    pub(crate) fn all_sockets(&self) -> Vec<Arc<Socket>> {
        self.namespaces
            .values()
            .flat_map(|ns| ns.sockets())
            .collect()
    }

    async fn on_text(&self, session: &Arc<Session>, text: Bytes) {
        if session.data.partial.lock().is_some() {
            // Text while attachments are pending: the client broke the protocol.
            return protocol_error(session, "text packet while reconstructing a binary packet");
        }
        let size = text.len();
        let Ok(text) = std::str::from_utf8(&text) else {
            return protocol_error(session, "invalid UTF-8");
        };
        let packet = match sio::Packet::decode(text) {
            Ok(p) => p,
            Err(e) => return protocol_error(session, &e.to_string()),
        };
        if packet.kind.is_binary() && packet.attachments > 0 {
            // Attachments are buffered until the last arrives: only for a namespace the
            // client joined, so a session that never authenticated cannot make the server
            // hold them.
            if session.data.socket(&packet.nsp).is_none() {
                return protocol_error(session, "binary packet for a namespace not joined");
            }
            *session.data.partial.lock() = Some(Box::new(Partial {
                packet,
                attachments: Vec::new(),
                bytes: size,
            }));
            return;
        }
        self.dispatch(session, packet, Vec::new(), size).await;
    }

    async fn on_binary(&self, session: &Arc<Session>, data: Bytes) {
        let complete = {
            let mut partial = session.data.partial.lock();
            let Some(p) = partial.as_mut() else {
                drop(partial);
                return protocol_error(session, "binary message without a pending packet");
            };
            p.bytes += data.len();
            if p.bytes > self.limits.max_packet_bytes {
                partial.take();
                drop(partial);
                tracing::debug!(sid = %session.sid, "binary packet over maxPayload; closing");
                session.close(CloseReason::PayloadTooLarge);
                return;
            }
            p.attachments.push(data);
            if p.attachments.len() == p.packet.attachments {
                partial.take()
            } else {
                None
            }
        };
        if let Some(Partial {
            packet,
            attachments,
            bytes,
        }) = complete.map(|p| *p)
        {
            if !placeholders_valid(packet.data.as_ref(), attachments.len()) {
                return protocol_error(session, "illegal attachments");
            }
            self.dispatch(session, packet, attachments, bytes).await;
        }
    }

    /// Handles a complete packet; `size` is its bytes on the wire (attachments included).
    async fn dispatch(
        &self,
        session: &Arc<Session>,
        packet: sio::Packet,
        attachments: Vec<Bytes>,
        size: usize,
    ) {
        match packet.kind {
            PacketKind::Connect => self.connect(session, packet).await,
            PacketKind::Disconnect => match session.data.socket(&packet.nsp) {
                Some(socket) => {
                    session.data.remove(socket.id());
                    socket.cleanup(DisconnectReason::ClientNamespaceDisconnect);
                }
                None => protocol_error(session, "disconnect from a namespace not joined"),
            },
            PacketKind::Event | PacketKind::BinaryEvent => {
                let Some(socket) = session.data.socket(&packet.nsp) else {
                    return protocol_error(session, "event for a namespace not joined");
                };
                let Some(Value::Array(mut args)) = packet.data else {
                    return protocol_error(session, "event without arguments");
                };
                let event = match args.remove(0) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if RESERVED_EVENTS.contains(&event.as_str()) {
                    return protocol_error(session, "reserved event name");
                }
                let payload = Payload { args, attachments };
                let ack = packet.id.map(|id| AckSender::new(socket.clone(), id));
                let ns = socket.namespace().clone();
                let handler = if let Some(handler) = ns.handler(&event) {
                    handler(socket.clone(), payload, ack)
                } else if let Some(fallback) = ns.fallback() {
                    fallback(socket.clone(), event, payload, ack)
                } else {
                    return;
                };
                socket
                    .run_handler(handler, size, self.limits.max_queued_event_bytes)
                    .await;
            }
            PacketKind::Ack | PacketKind::BinaryAck => {
                let Some(socket) = session.data.socket(&packet.nsp) else {
                    return protocol_error(session, "ack for a namespace not joined");
                };
                let Some(Value::Array(args)) = packet.data else {
                    return protocol_error(session, "ack without arguments");
                };
                if let Some(id) = packet.id {
                    socket.resolve_ack(id, Payload { args, attachments });
                }
            }
            PacketKind::ConnectError => protocol_error(session, "CONNECT_ERROR from a client"),
        }
    }

    async fn connect(&self, session: &Arc<Session>, packet: sio::Packet) {
        let nsp = packet.nsp;
        let Some(ns) = self.namespaces.get(&nsp).cloned() else {
            session.metrics.refusals.inc("invalid_namespace");
            send_connect_error(session, &nsp, "Invalid namespace");
            return;
        };
        if session.data.socket(&nsp).is_some() {
            return;
        }
        let auth = packet.data.unwrap_or_else(|| json!({}));

        // A returning client presents its pid (and the last offset it saw).
        let mut restored = ns.recovery.as_ref().and_then(|log| {
            let pid = auth.get("pid")?.as_str()?;
            log.restore(pid, auth.get("offset").and_then(Value::as_str))
        });
        if restored.is_none() {
            restored = recover_from_cluster(&ns, &auth).await;
        }

        // A session saved past its credential's expiry comes back only with a fresh one: a pid
        // alone (or chained recoveries) must not keep a user connected beyond its token.
        let expired = restored
            .as_ref()
            .is_some_and(|(saved, _)| saved.user.as_ref().is_some_and(|u| u.is_expired()));

        // Recovery restores state, not identity: with an authenticator the client proves who
        // it is again (socket.io-client sends its `auth`, token included, with the pid).
        let user = match &ns.authenticator {
            None if expired => return refuse(session, &nsp, AuthError::Expired.into()),
            None => None,
            Some(authenticate) => {
                let request = ConnectRequest {
                    auth: auth.clone(),
                    session: session.clone(),
                };
                match authenticate(request).await {
                    Ok(user) => user.map(Arc::new),
                    // What the client must hear about its session is that its token expired.
                    Err(_) if expired => return refuse(session, &nsp, AuthError::Expired.into()),
                    Err(refusal) => return refuse(session, &nsp, refusal),
                }
            }
        };
        if ns.authenticator.is_some() {
            // Only the same user gets the session back; anyone else connects afresh as
            // themselves (the dropped session then ends as if it never came back).
            restored = restored.filter(|(saved, _)| {
                let same = saved.user.as_ref().map(|u| &u.id) == user.as_ref().map(|u| &u.id);
                if !same {
                    tracing::debug!(sid = %saved.sid, "recovery refused: another user's credentials");
                }
                same
            });
        }

        let (init, missed) = match restored {
            Some((saved, missed)) => (
                SocketInit {
                    id: saved.sid,
                    // Ids this engine made fit inline; anything else gets a fresh pid (the
                    // CONNECT answer tells the client).
                    pid: crate::helpers::ids::Id::new(&saved.pid)
                        .unwrap_or_else(crate::helpers::ids::Id::random),
                    // The fresh credential's user (its new expiry) when there is one.
                    user: if ns.authenticator.is_some() {
                        user
                    } else {
                        saved.user
                    },
                    auth: saved.auth,
                    recovered: true,
                    connected_seq: saved.connected_seq,
                },
                Some((saved.rooms, missed)),
            ),
            None => {
                let auth = strip_recovery_fields(auth);
                (
                    SocketInit {
                        id: crate::helpers::ids::new_id(),
                        pid: crate::helpers::ids::Id::random(),
                        user,
                        auth,
                        recovered: false,
                        connected_seq: ns.recovery.as_ref().map_or(0, |l| l.position()),
                    },
                    None,
                )
            }
        };
        if session.is_closing() {
            return;
        }

        let socket = Socket::new(ns.clone(), session.clone(), init);
        crate::helpers::push_snug(&mut session.data.sockets.lock(), socket.clone());
        session.mark_established();
        ns.add_socket(&socket);

        let answer = if ns.recovery.is_some() {
            json!({ "sid": &**socket.id(), "pid": socket.pid() })
        } else {
            json!({ "sid": &**socket.id() })
        };
        let _ = session.send(payload::packet_frame(
            PacketKind::Connect,
            &nsp,
            None,
            0,
            Some(&answer),
        ));
        if let Some((rooms, missed)) = missed {
            for room in &rooms {
                socket.join(room);
            }
            let _ = socket.send_frames(&missed);
        }
        if let Some(on_connect) = &ns.on_connect {
            on_connect(socket).await;
        }
    }
}

/// A session dropped on another node of the cluster, handed over with what the client
/// missed there (it came back through this node).
async fn recover_from_cluster(
    ns: &Arc<Namespace>,
    auth: &Value,
) -> Option<(SavedSession, Vec<Frame>)> {
    let log = ns.recovery.as_ref()?;
    let pid = auth.get("pid")?.as_str()?;
    let offset = auth.get("offset").and_then(Value::as_str);
    let session = ns.cluster.recover_session(ns.name(), pid, offset).await?;
    let user = if session.user.is_empty() {
        None
    } else {
        Some(Arc::new(User::from_session_json(&session.user)?))
    };
    let missed = session
        .frames
        .iter()
        .map(|(binary, payload)| {
            let kind = if *binary {
                FrameKind::Binary
            } else {
                FrameKind::Text
            };
            Frame::from_payload(payload, kind)
        })
        .collect();
    let saved = SavedSession::new(
        session.sid.as_str().into(),
        pid.into(),
        session
            .rooms
            .iter()
            .map(|r| Arc::from(r.as_str()))
            .collect(),
        user,
        serde_json::from_str(&session.auth).unwrap_or_else(|_| json!({})),
        // Offsets this node gives from now on are its own.
        log.position(),
    );
    Some((saved, missed))
}

/// The client's own auth fields without the recovery ones the Socket.IO client merges in.
fn strip_recovery_fields(mut auth: Value) -> Value {
    if let Some(obj) = auth.as_object_mut() {
        obj.remove("pid");
        obj.remove("offset");
    }
    auth
}

pub(crate) fn placeholders_valid(data: Option<&Value>, count: usize) -> bool {
    fn walk(v: &Value, count: usize) -> bool {
        if let Some(obj) = v.as_object() {
            if obj.get("_placeholder").and_then(Value::as_bool) == Some(true) {
                return sio::placeholder_index(v).is_some_and(|n| n < count);
            }
            return obj.values().all(|v| walk(v, count));
        }
        if let Some(arr) = v.as_array() {
            return arr.iter().all(|v| walk(v, count));
        }
        true
    }
    data.is_none_or(|d| walk(d, count))
}

/// Refuses a CONNECT: counts the reason and answers `connect_error` with its message.
fn refuse(session: &Session, nsp: &str, refusal: Refusal) {
    session.metrics.refusals.inc(refusal.reason);
    // Info, not warn: refusals are routine (expired tokens); the reason label is the metric's.
    tracing::info!(
        sid = %session.sid,
        namespace = nsp,
        reason = refusal.reason,
        address = %session.handshake.address,
        "connection refused"
    );
    send_connect_error(session, nsp, &refusal.message);
}

fn send_connect_error(session: &Session, nsp: &str, message: &str) {
    let _ = session.send(payload::packet_frame(
        PacketKind::ConnectError,
        nsp,
        None,
        0,
        Some(&json!({ "message": message })),
    ));
}

fn protocol_error(session: &Session, what: &str) {
    tracing::debug!(sid = %session.sid, what, "Socket.IO protocol error; closing");
    session.close(CloseReason::TransportError);
}

impl SessionHandler<ConnState> for SocketIo {
    fn on_message<'a>(&'a self, session: &'a Arc<Session>, message: Message) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match message {
                Message::Text(text) => self.on_text(session, text).await,
                Message::Binary(data) => self.on_binary(session, data).await,
            }
        })
    }

    fn connect_timeout(&self) -> Option<std::time::Duration> {
        Some(self.limits.connect_timeout)
    }

    fn on_close(&self, session: &Arc<Session>, reason: CloseReason) {
        let sockets = std::mem::take(&mut *session.data.sockets.lock());
        session.data.partial.lock().take();
        let reason = DisconnectReason::from_close(reason);
        for socket in sockets {
            socket.cleanup(reason);
        }
    }
}
