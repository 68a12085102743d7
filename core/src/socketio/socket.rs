//! A Socket.IO socket: one client connected to one namespace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::oneshot;

use super::namespace::Namespace;
use super::payload::{self, EventArray, Payload};
use super::Session;
use crate::auth::User;
use crate::helpers::ids::Id;
use crate::hub::deadlines::DeadlineKey;
use crate::protocol::frame::Frame;
use crate::protocol::socketio::PacketKind;
use crate::transport::CloseReason;

/// Why a socket disconnected, with Socket.IO's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The transport closed (the client went away).
    TransportClose,
    /// The transport failed.
    TransportError,
    /// The client did not answer pings.
    PingTimeout,
    /// The client could not keep up with what it was sent.
    SlowConsumer,
    /// The client sent a packet that does not parse.
    ParseError,
    /// The client left the namespace.
    ClientNamespaceDisconnect,
    /// Server code disconnected the socket.
    ServerNamespaceDisconnect,
    /// The server closed the connection (shutdown or forced close).
    ServerShuttingDown,
}

impl DisconnectReason {
    /// Socket.IO's name for the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::SlowConsumer => "slow consumer",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::ServerShuttingDown => "server shutting down",
        }
    }

    /// Whether the client may come back and recover its state.
    pub fn is_recoverable(self) -> bool {
        matches!(
            self,
            DisconnectReason::TransportClose
                | DisconnectReason::TransportError
                | DisconnectReason::PingTimeout
                | DisconnectReason::ServerShuttingDown
        )
    }

    pub(crate) fn from_close(reason: CloseReason) -> Self {
        match reason {
            CloseReason::TransportClose => DisconnectReason::TransportClose,
            CloseReason::TransportError
            | CloseReason::PayloadTooLarge
            | CloseReason::ConnectTimeout => DisconnectReason::TransportError,
            CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            CloseReason::SlowConsumer => DisconnectReason::SlowConsumer,
            CloseReason::ServerClose => DisconnectReason::ServerShuttingDown,
        }
    }
}

/// Why an emit did not reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The socket is disconnected.
    #[error("socket disconnected")]
    Disconnected,
    /// The client's outbound queue is full; it is being disconnected as a slow reader.
    #[error("client is not keeping up; disconnected")]
    SlowConsumer,
}

/// Why an acknowledgement did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The client did not acknowledge in time.
    #[error("acknowledgement timed out")]
    Timeout,
    /// The socket disconnected first.
    #[error("socket disconnected before acknowledging")]
    Disconnected,
    /// The socket already has [`MAX_PENDING_ACKS`] acknowledgements outstanding: wait for
    /// some to arrive or time out (a client that never answers cannot make them pile up).
    #[error("too many acknowledgements pending for this socket (max {MAX_PENDING_ACKS})")]
    TooManyPending,
}

/// A socket's pending acknowledgements by id.
type PendingAcks = HashMap<u64, oneshot::Sender<Payload>>;

/// Most server-to-client acknowledgements one socket may have outstanding at once.
pub const MAX_PENDING_ACKS: usize = 256;

/// One client connected to one namespace.
pub struct Socket {
    id: Arc<str>,
    /// Inline: only this socket and its recovery use it (the socket id is shared with the
    /// room maps, so it stays one `Arc`).
    pid: Id,
    ns: Arc<Namespace>,
    session: Arc<Session>,
    user: Option<Arc<User>>,
    /// The CONNECT's auth payload as JSON text: a parsed `Value` keeps a map and a string
    /// per field (a token is most of it) for the socket's life, several hundred bytes per
    /// idle connection; it is parsed again only when asked for.
    /// `None`: `{}` (or a payload that would not serialize).
    auth: Option<Box<RawValue>>,
    recovered: bool,
    pub(crate) connected_seq: u64,
    rooms: parking_lot::Mutex<Vec<Arc<str>>>,
    /// Acknowledgements the server waits for; boxed and made at the first one (a socket
    /// the server never asks for an ack keeps 8 bytes here instead of an empty map's 48).
    acks: parking_lot::Mutex<Option<Box<PendingAcks>>>,
    next_ack: AtomicU64,
    connected: AtomicBool,
    extensions: parking_lot::Mutex<http::Extensions>,
    lane: parking_lot::Mutex<Lane>,
    /// Wakes a reader waiting for room in the lane (a handler finished, or the socket left).
    lane_room: tokio::sync::Notify,
    /// When the socket's credential expires (Unix seconds; 0: never): the user's `exp` at
    /// connect, moved by a token refresh.
    token_expiry: AtomicU64,
    /// The chat's token-expiry deadline for this socket, when one is scheduled: a field of
    /// its own rather than an entry of `extensions`, whose type map costs an idle socket
    /// ~200 bytes in three allocations.
    expiry_key: parking_lot::Mutex<Option<DeadlineKey>>,
}

/// Most event handlers queued behind a slow one; the socket's reader waits beyond it.
const MAX_QUEUED_HANDLERS: usize = 1024;

/// An event handler's work, as the lane runs it.
type Handler = futures_util::future::BoxFuture<'static, ()>;

/// Where [`Socket::admit`] put a handler.
enum Admission {
    /// The lane is idle: run it now.
    Idle(Handler),
    /// Queued behind the running handler.
    Queued,
    /// The lane is full: wait for room, then ask again.
    Full(Handler),
    /// The socket is gone: the handler is dropped.
    Dropped,
}

/// How often a reader waiting for room in the lane checks that its client is still there.
const PEER_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Runs a socket's event handlers one after another without blocking its reader: a handler
/// that completes at once runs inline; one that waits (a host callback, a disk write) moves
/// to a task, and the socket's later events queue behind it, so they keep their order while
/// acks and pongs are still read. The queue is bounded in handlers and in the bytes of the
/// events they carry; past that the reader waits (the client's sends back up into TCP), and
/// when the socket goes, what is queued is dropped, never run for a client that left.
#[derive(Default)]
struct Lane {
    busy: bool,
    queue: std::collections::VecDeque<(Handler, usize)>,
    /// Wire bytes of the queued events.
    queued_bytes: usize,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("ns", &self.ns.name())
            .finish_non_exhaustive()
    }
}

pub(crate) struct SocketInit {
    pub id: Arc<str>,
    pub pid: Id,
    pub user: Option<Arc<User>>,
    pub auth: Value,
    pub recovered: bool,
    pub connected_seq: u64,
}

impl Socket {
    pub(crate) fn new(ns: Arc<Namespace>, session: Arc<Session>, init: SocketInit) -> Arc<Self> {
        let expiry = init.user.as_ref().and_then(|u| u.expires_at).unwrap_or(0);
        Arc::new(Socket {
            token_expiry: AtomicU64::new(expiry),
            expiry_key: parking_lot::Mutex::new(None),
            id: init.id,
            pid: init.pid,
            ns,
            session,
            user: init.user,
            auth: serde_json::value::to_raw_value(&init.auth).ok(),
            recovered: init.recovered,
            connected_seq: init.connected_seq,
            rooms: parking_lot::Mutex::new(Vec::new()),
            acks: parking_lot::Mutex::new(None),
            next_ack: AtomicU64::new(0),
            connected: AtomicBool::new(true),
            extensions: parking_lot::Mutex::new(http::Extensions::new()),
            lane: parking_lot::Mutex::new(Lane::default()),
            lane_room: tokio::sync::Notify::new(),
        })
    }

    /// When the socket's credential expires (Unix seconds): its token's `exp`, or that of
    /// the token it was refreshed with; `None` when it does not expire.
    pub fn expires_at(&self) -> Option<u64> {
        Some(self.token_expiry.load(Ordering::Acquire)).filter(|&e| e != 0)
    }

    /// The chat's token-expiry deadline key slot (locked while the deadline is changed).
    pub(crate) fn expiry_key(&self) -> parking_lot::MutexGuard<'_, Option<DeadlineKey>> {
        self.expiry_key.lock()
    }

    /// Moves the credential's expiry (a token refresh).
    pub(crate) fn set_expires_at(&self, exp: Option<u64>) {
        self.token_expiry.store(exp.unwrap_or(0), Ordering::Release);
    }

    /// The user with the credential's current expiry (what recovery checks).
    pub(crate) fn user_with_expiry(&self) -> Option<Arc<User>> {
        let user = self.user.as_ref()?;
        if user.expires_at == self.expires_at() {
            return Some(user.clone());
        }
        let mut refreshed = (**user).clone();
        refreshed.expires_at = self.expires_at();
        Some(Arc::new(refreshed))
    }

    /// The socket id (stable across a recovery).
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The private session id the client presents to recover this socket.
    pub(crate) fn pid(&self) -> &str {
        &self.pid
    }

    /// The namespace.
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.ns
    }

    /// The authenticated user, when the namespace authenticates.
    pub fn user(&self) -> Option<&Arc<User>> {
        self.user.as_ref()
    }

    /// The auth payload the client sent with its CONNECT (parsed on each call).
    pub fn auth(&self) -> Value {
        self.auth
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_else(|| Value::Object(Default::default()))
    }

    /// The Engine.IO session underneath (handshake headers, query, address).
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Whether this socket came back through connection state recovery.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Whether the socket is still connected.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Per-socket data for handlers (a type map).
    pub fn extensions(&self) -> parking_lot::MutexGuard<'_, http::Extensions> {
        self.extensions.lock()
    }

    /// The rooms the socket is in.
    pub fn rooms(&self) -> Vec<Arc<str>> {
        self.rooms.lock().clone()
    }

    /// Number of rooms the socket is in.
    pub fn room_count(&self) -> usize {
        self.rooms.lock().len()
    }

    /// Whether the socket is in `room`.
    pub fn in_room(&self, room: &str) -> bool {
        self.rooms.lock().iter().any(|r| &**r == room)
    }

    /// The socket as hosts' event handlers receive it: `{id, user, rooms}`.
    pub fn host_json(&self) -> Value {
        serde_json::json!({
            "id": &*self.id,
            "user": self.user().map(|u| &**u),
            "rooms": self.rooms().iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        })
    }

    /// Joins a room; true when the socket was not in it yet.
    pub fn join(self: &Arc<Self>, room: &str) -> bool {
        self.join_shared(room.into())
    }

    /// [`Socket::join`] with the room's name already shared: the caller keeps the same
    /// allocation for its own tables (presence) instead of a copy per table.
    pub(crate) fn join_shared(self: &Arc<Self>, room: Arc<str>) -> bool {
        if !self.connected() {
            return false;
        }
        // A room that exists: keep its name's allocation, not a copy per member.
        let room = self.ns.rooms.shared_name(&room).unwrap_or(room);
        {
            let mut rooms = self.rooms.lock();
            if rooms.contains(&room) {
                return false;
            }
            crate::helpers::push_snug(&mut rooms, room.clone());
        }
        if self
            .ns
            .rooms
            .join_tracking(&room, self.id.clone(), self.clone())
            .room_changed
        {
            drop(self.ns.room_interest(&room));
        }
        true
    }

    /// Leaves a room; true when the socket was in it.
    pub fn leave(&self, room: &str) -> bool {
        {
            let mut rooms = self.rooms.lock();
            let Some(i) = rooms.iter().position(|r| &**r == room) else {
                return false;
            };
            rooms.swap_remove(i);
        }
        if self.ns.rooms.leave_tracking(room, &self.id).room_changed {
            drop(self.ns.room_interest(room));
        }
        true
    }

    pub(crate) fn send_frames(&self, frames: &[Frame]) -> Result<(), EmitError> {
        self.push_frames(frames)?;
        self.session.metrics.packets_out.add(frames.len() as u64);
        Ok(())
    }

    /// Queues frames without counting them (broadcasts count once for all recipients).
    pub(crate) fn push_frames(&self, frames: &[Frame]) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        for frame in frames {
            match self.session.send_uncounted(frame.clone()) {
                Ok(()) => {}
                Err(crate::transport::outbox::PushError::Overflow) => {
                    return Err(EmitError::SlowConsumer)
                }
                Err(crate::transport::outbox::PushError::Closed) => {
                    return Err(EmitError::Disconnected)
                }
            }
        }
        Ok(())
    }

    /// Emits `event` with one argument to this socket.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        let array = EventArray {
            event,
            one: Some(data),
            rest: &[],
            offset: None,
        };
        self.send_frames(&payload::event_frames(self.ns.name(), None, &array, &[]))
    }

    /// Emits `event` with any arguments and binary attachments to this socket.
    pub fn emit_payload(&self, event: &str, payload: &Payload) -> Result<(), EmitError> {
        let array = EventArray::<Value> {
            event,
            one: None,
            rest: &payload.args,
            offset: None,
        };
        self.send_frames(&payload::event_frames(
            self.ns.name(),
            None,
            &array,
            &payload.attachments,
        ))
    }

    /// Emits `event` and waits for the client's acknowledgement.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        payload: &Payload,
        timeout: Duration,
    ) -> Result<Payload, AckError> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut acks = self.acks.lock();
            if !self.connected() {
                return Err(AckError::Disconnected);
            }
            let acks = acks.get_or_insert_with(Box::default);
            if acks.len() >= MAX_PENDING_ACKS {
                return Err(AckError::TooManyPending);
            }
            acks.insert(id, tx);
        }
        let array = EventArray::<Value> {
            event,
            one: None,
            rest: &payload.args,
            offset: None,
        };
        let frames = payload::event_frames(self.ns.name(), Some(id), &array, &payload.attachments);
        if self.send_frames(&frames).is_err() {
            self.take_ack(id);
            return Err(AckError::Disconnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                self.take_ack(id);
                Err(AckError::Timeout)
            }
        }
    }

    /// Runs an event handler in this socket's lane (see [`Lane`]); `bytes` is the size of the
    /// event it handles. Returns once the handler ran or was queued: while the lane is full,
    /// that is once there is room, so the socket's reader reads nothing more meanwhile.
    pub(crate) async fn run_handler(
        self: &Arc<Self>,
        handler: Handler,
        bytes: usize,
        max_queued_bytes: usize,
    ) {
        // The usual cases are decided without registering a waiter (this runs per event).
        let mut handler = match self.admit(handler, bytes, max_queued_bytes) {
            Admission::Idle(handler) => return self.run_now(handler),
            Admission::Queued | Admission::Dropped => return,
            Admission::Full(handler) => handler,
        };
        loop {
            let room = self.lane_room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            handler = match self.admit(handler, bytes, max_queued_bytes) {
                Admission::Idle(handler) => return self.run_now(handler),
                Admission::Queued | Admission::Dropped => return,
                Admission::Full(handler) => handler,
            };
            // The reader is not reading: a client that left would go unnoticed until the
            // heartbeat. Probing its connection notices it (the write fails) while waiting.
            tokio::select! {
                _ = &mut room => {}
                _ = tokio::time::sleep(PEER_PROBE_INTERVAL) => self.session.probe_peer(),
            }
        }
    }

    /// Decides where a handler goes: run now (idle lane), queued behind the running one (it
    /// fits), back to the caller to wait (the lane is full), or nowhere (the socket is gone).
    fn admit(&self, handler: Handler, bytes: usize, max_queued_bytes: usize) -> Admission {
        let mut lane = self.lane.lock();
        if !self.connected() {
            return Admission::Dropped;
        }
        if !lane.busy {
            return Admission::Idle(handler);
        }
        // One event always fits, however large: the payload limit bounds it.
        let fits = lane.queue.is_empty()
            || (lane.queue.len() < MAX_QUEUED_HANDLERS
                && lane.queued_bytes + bytes <= max_queued_bytes);
        if !fits {
            return Admission::Full(handler);
        }
        lane.queued_bytes += bytes;
        lane.queue.push_back((handler, bytes));
        Admission::Queued
    }

    /// Runs a handler on an idle lane: inline when it completes at once, else on a task that
    /// then runs what queues behind it.
    fn run_now(self: &Arc<Self>, mut handler: Handler) {
        // Only this socket's reader starts handlers, so nothing can queue while this polls.
        if futures_util::FutureExt::now_or_never(handler.as_mut()).is_some() {
            return;
        }
        self.lane.lock().busy = true;
        let socket = self.clone();
        tokio::spawn(async move {
            handler.await;
            loop {
                let next = {
                    let mut lane = socket.lane.lock();
                    match lane.queue.pop_front() {
                        Some((next, bytes)) if socket.connected() => {
                            lane.queued_bytes -= bytes;
                            next
                        }
                        _ => {
                            lane.busy = false;
                            lane.queued_bytes = 0;
                            let dropped = std::mem::take(&mut lane.queue);
                            drop(lane);
                            drop(dropped);
                            socket.lane_room.notify_waiters();
                            return;
                        }
                    }
                };
                socket.lane_room.notify_waiters();
                next.await;
            }
        });
    }

    pub(crate) fn resolve_ack(&self, id: u64, payload: Payload) {
        if let Some(tx) = self.take_ack(id) {
            let _ = tx.send(payload);
        }
    }

    /// Removes a pending acknowledgement.
    fn take_ack(&self, id: u64) -> Option<oneshot::Sender<Payload>> {
        self.acks.lock().as_mut()?.remove(&id)
    }

    /// Disconnects the socket from its namespace (the client sees `io server disconnect` and
    /// does not reconnect by itself).
    pub fn disconnect(self: &Arc<Self>) {
        if !self.connected() {
            return;
        }
        let _ = self.session.send(payload::packet_frame::<Value>(
            PacketKind::Disconnect,
            self.ns.name(),
            None,
            0,
            None,
        ));
        self.session.data.remove(&self.id);
        self.cleanup(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Marks the socket gone, leaves its rooms and tells the namespace. Runs once.
    pub(crate) fn cleanup(self: &Arc<Self>, reason: DisconnectReason) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        let rooms = std::mem::take(&mut *self.rooms.lock());
        let emptied: Vec<Arc<str>> = rooms
            .iter()
            .filter(|room| self.ns.rooms.leave_tracking(room, &self.id).room_changed)
            .cloned()
            .collect();
        drop(self.acks.lock().take());
        // Events the client sent but a slow handler had not reached: nobody is there to
        // answer, so they do not run (a host hook is not called for a client that left).
        let dropped = {
            let mut lane = self.lane.lock();
            lane.queued_bytes = 0;
            std::mem::take(&mut lane.queue)
        };
        drop(dropped);
        self.lane_room.notify_waiters();
        self.ns.socket_gone(self, rooms, reason);
        // After the namespace saved the session for recovery: the cluster keeps listening to
        // the rooms of a session that may come back, and must see it saved when it asks.
        for room in &emptied {
            drop(self.ns.room_interest(room));
        }
    }
}

/// Answers a client's acknowledgement request.
pub struct AckSender {
    socket: Arc<Socket>,
    id: u64,
}

impl AckSender {
    pub(crate) fn new(socket: Arc<Socket>, id: u64) -> Self {
        AckSender { socket, id }
    }

    /// Acknowledges with these arguments.
    pub fn send(self, args: Vec<Value>) {
        self.send_payload(&Payload::new(args));
    }

    /// Acknowledges with arguments and binary attachments.
    pub fn send_payload(self, payload: &Payload) {
        let frames = payload::ack_frames(self.socket.ns.name(), self.id, payload);
        let _ = self.socket.send_frames(&frames);
    }

    /// Acknowledges a host handler's outcome as the wire contract answers requests:
    /// `(null, value)`, or `({code, message})` when it failed — `INTERNAL` "Internal error"
    /// (the host's detail logged, never sent) unless the host chose a client code
    /// ([`super::HookError`]). `event` names the handler in the log.
    pub fn send_result(self, event: &str, result: Result<Value, super::HookError>) {
        match result {
            Ok(value) => self.send(vec![Value::Null, value]),
            Err(e) => {
                let sid = self.socket.id().to_string();
                self.send(vec![e.to_json(event, &sid)])
            }
        }
    }
}
