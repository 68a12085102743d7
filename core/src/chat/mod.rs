//! The chat contract every client relies on: rooms and access, presence, typing, messages
//! with acks and history, signaling, and limits — installed on the `/` namespace.
//!
//! Event names, payload fields, ack shapes and error codes are exactly those of the wire
//! contract in DESIGN.md.

pub(crate) mod cluster;
mod expiry;
mod handlers;
mod limits;
mod service;

pub(crate) use handlers::check_room_access;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;

use crate::auth::{AuthError, JwtVerifier, User};
use crate::config::Config;
use crate::engine::EngineBuilder;
use crate::error::Error;
use crate::hub::presence::Presence;
use crate::hub::typing::Typing;
use crate::socketio::{AckSender, ConnectRequest, Refusal, Socket};
use crate::store::{History, MessageIdGenerator};

/// The error codes of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The user may not join this room.
    AccessDenied,
    /// The room id is not a valid room name.
    InvalidRoom,
    /// The request needs membership of the room.
    NotInRoom,
    /// The request's arguments are malformed.
    InvalidMessage,
    /// The connection is over its rate limit.
    RateLimited,
    /// The signaling target shares no room with the sender or is offline.
    NotReachable,
    /// The server failed (a host hook or the store).
    Internal,
}

/// A failure as clients receive it: `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatError {
    /// The code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// A code the host chose ([`HookError::Client`]); sent instead of `code` (`INTERNAL`).
    host_code: Option<Box<str>>,
    /// The host's own error text ([`HookError::Failed`]): for the host, never for clients.
    host_detail: Option<Box<str>>,
}

impl ChatError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ChatError {
            code,
            message: message.into(),
            host_code: None,
            host_detail: None,
        }
    }

    /// The host's own error text when its hook failed: for host-side callers (the server
    /// API's `publish`), never sent to clients.
    pub fn host_detail(&self) -> Option<&str> {
        self.host_detail.as_deref()
    }

    /// What a client sees when the host hook `hook` failed for socket `sid` (see
    /// [`HookError::to_client`]: the host's detail is logged, not sent).
    pub(crate) fn from_hook(e: &HookError, hook: &str, sid: &str) -> Self {
        let (code, message) = e.to_client(hook, sid);
        let host_code = matches!(e, HookError::Client { .. }).then(|| code.into_boxed_str());
        let host_detail = match e {
            HookError::Failed(detail) => Some(detail.clone().into_boxed_str()),
            _ => None,
        };
        ChatError {
            code: ErrorCode::Internal,
            message,
            host_code,
            host_detail,
        }
    }

    /// The code as clients receive it.
    pub fn code_str(&self) -> String {
        match &self.host_code {
            Some(c) => c.to_string(),
            None => serde_json::to_value(self.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        }
    }
}

impl Serialize for ChatError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ChatError", 2)?;
        match &self.host_code {
            Some(code) => st.serialize_field("code", code)?,
            None => st.serialize_field("code", &self.code)?,
        }
        st.serialize_field("message", &self.message)?;
        st.end()
    }
}

pub use crate::socketio::HookError;

/// Authenticates connections instead of JWT verification (the Node and C hosts' callback).
pub trait Authenticate: Send + Sync + 'static {
    /// Decides who the connecting client is; an error refuses it with its message.
    fn authenticate(&self, request: &ConnectRequest) -> BoxFuture<'static, Result<User, Refusal>>;
}

pub use crate::auth::access::RoomAccess;
pub use crate::store::ChatMessage;

/// Persists messages before they are delivered (the host's persistence hook).
pub trait MessageStore: Send + Sync + 'static {
    /// Stores `message`; an error makes the sender's ack `INTERNAL` and nobody receives it.
    fn store(&self, message: &ChatMessage) -> BoxFuture<'static, Result<(), HookError>>;

    /// Stores `message` sent by `sender` (with every claim of its credential, e.g. a tenant
    /// to store it under). The engine calls this one; by default it is [`MessageStore::store`].
    fn store_from(
        &self,
        message: &ChatMessage,
        sender: &User,
    ) -> BoxFuture<'static, Result<(), HookError>> {
        let _ = sender;
        self.store(message)
    }
}

/// Host hooks; each one left `None` uses the built-in behaviour.
#[derive(Default, Clone)]
pub struct Hooks {
    /// Replaces JWT verification.
    pub authenticate: Option<Arc<dyn Authenticate>>,
    /// Replaces the room policy and the token's `rooms` claim.
    pub room_access: Option<Arc<dyn RoomAccess>>,
    /// Runs before a message is stored in history and delivered.
    pub message_store: Option<Arc<dyn MessageStore>>,
}

/// The chat state shared by every handler.
pub(crate) struct Chat {
    pub config: Config,
    pub hooks: Hooks,
    pub jwt: JwtVerifier,
    pub presence: Mutex<Presence>,
    pub typing: Mutex<Typing>,
    pub history: History,
    pub ids: MessageIdGenerator,
    /// Rooms of recoverably dropped sockets whose departure is not announced yet, by pid.
    pub pending_departures: Mutex<HashMap<Arc<str>, Vec<Arc<str>>>>,
    /// Server-sent-event clients by room and user.
    pub sse: Arc<crate::sse::SseHub>,
    /// Every connection of a user on this node, whatever its transport: what
    /// `disconnect_user` closes, asked here or by another node.
    pub users: Arc<crate::hub::users::UserIndex>,
    /// Connections bound to their token's expiry.
    pub(crate) expiry: expiry::TokenExpiry,
    /// The `/` namespace, once the engine is built (weak: the namespace owns the handlers
    /// that own this state).
    ns: std::sync::OnceLock<std::sync::Weak<crate::socketio::Namespace>>,
    metrics: std::sync::OnceLock<Arc<crate::metrics::Metrics>>,
    /// The cluster the engine is a node of (a single node without `redis_url`).
    cluster: Arc<crate::cluster::Cluster>,
}

/// Read access to the chat state for hosts (presence queries).
#[derive(Clone)]
pub struct ChatHandle(Arc<Chat>);

impl ChatHandle {
    /// The users present in `room`, in the order they arrived.
    pub fn presence(&self, room: &str) -> Vec<crate::hub::presence::Member> {
        self.0.presence.lock().members(room)
    }

    /// Every room with users in it, with its number of users.
    pub fn rooms(&self) -> Vec<(Arc<str>, usize)> {
        self.0.presence.lock().room_sizes()
    }

    /// Stores and delivers a message to `room` as the user `user_id` (Socket.IO members and
    /// SSE clients alike), as a client's `sendMessage` would.
    pub async fn publish(
        &self,
        room: &str,
        user_id: &str,
        username: Option<&str>,
        text: &str,
    ) -> Result<Arc<crate::store::ChatMessage>, ChatError> {
        let user = User {
            id: user_id.to_owned(),
            username: username.unwrap_or(user_id).to_owned(),
            rooms: None,
            expires_at: None,
            claims: None,
        };
        self.0.publish(room, &user, Some(text)).await
    }

    /// Sends `event` with `data` to every connection of a user (Socket.IO and SSE); returns
    /// how many it reached.
    pub fn notify_user(&self, user_id: &str, event: &str, data: &serde_json::Value) -> usize {
        self.0.notify_user(user_id, event, data)
    }

    /// Disconnects every connection of a user (Socket.IO and SSE), on every node; returns
    /// how many were on this one. Hosts call [`crate::host::Host::disconnect_user`].
    pub(crate) fn disconnect_user(&self, user_id: &str) -> usize {
        self.0.disconnect_user(user_id)
    }
}

/// Installs the chat contract on the `/` namespace.
pub fn install(builder: EngineBuilder, hooks: Hooks) -> Result<EngineBuilder, Error> {
    install_with_handle(builder, hooks).map(|(b, _)| b)
}

/// Installs the chat contract and returns a handle to its state.
pub fn install_with_handle(
    builder: EngineBuilder,
    hooks: Hooks,
) -> Result<(EngineBuilder, ChatHandle), Error> {
    let config = builder.config().clone();
    let jwt = JwtVerifier::new(&config)?;
    let history = match &config.data_dir {
        Some(dir) => History::open(
            dir,
            config.history_limit,
            config.history_cache_rooms,
            config.history_cache_bytes,
        )?,
        None => History::in_memory(
            config.history_limit,
            config.history_cache_rooms,
            config.history_cache_bytes,
        ),
    };
    let recovery = !config.recovery_window.is_zero();
    let (config_frames, config_bytes) = (config.outbound_queue_frames, config.outbound_queue_bytes);
    let expiry = expiry::TokenExpiry::new(&config);
    let chat = Arc::new(Chat {
        config,
        hooks,
        jwt,
        presence: Mutex::new(Presence::default()),
        typing: Mutex::new(Typing::default()),
        history,
        ids: MessageIdGenerator::default(),
        pending_departures: Mutex::new(HashMap::new()),
        sse: Arc::new(crate::sse::SseHub::new(config_frames, config_bytes)),
        users: builder.users().clone(),
        expiry,
        ns: std::sync::OnceLock::new(),
        metrics: std::sync::OnceLock::new(),
        cluster: builder.cluster().clone(),
    });
    let streams: Arc<dyn crate::hub::users::UserConnections> = chat.sse.clone();
    builder.users().register(Arc::downgrade(&streams));
    let sink = Arc::new(cluster::ChatSink(Arc::downgrade(&chat)));
    chat.cluster.broker().add_sink(sink);
    let c = |chat: &Arc<Chat>| chat.clone();
    let handle = ChatHandle(chat.clone());
    let services = chat.clone();
    let builder = builder.namespace("/", |ns| {
        let ns = ns.recovery(recovery);
        let (a, b, d) = (c(&chat), c(&chat), c(&chat));
        let ns = ns
            .authenticate(move |req| {
                let chat = a.clone();
                async move { chat.authenticate(req).await.map(Some) }
            })
            .on_connect(move |socket| {
                let chat = b.clone();
                async move { chat.on_connect(&socket).await }
            })
            .on_disconnect(move |socket, rooms, reason| d.on_disconnect(socket, rooms, reason));
        handlers::register(ns, chat)
    });
    let started = services.clone();
    // Endpoints turned off are not mounted: their paths stay free for the host's routes.
    let mut builder = builder;
    if services.config.sse {
        builder = builder.http_service("/events", Arc::new(service::ChatHttp(services.clone())));
    }
    if services.config.api {
        builder = builder.http_service("/api/", Arc::new(service::ChatHttp(services)));
    }
    let builder = builder.on_start(move |engine| {
        if let Some(ns) = engine.namespace("/") {
            let _ = started.ns.set(Arc::downgrade(&ns));
        }
        let _ = started.metrics.set(engine.metrics().clone());
        // The identity provider's keys now, so a wrong URL or CA shows in the log at
        // start; tokens wait for them (or are refused "Unknown signing key") meanwhile.
        let jwt = started.jwt.clone();
        engine.handle().spawn(async move { jwt.preload().await });
        engine
            .handle()
            .spawn(expiry::TokenExpiry::run(Arc::downgrade(&started)));
    });
    Ok((builder, handle))
}

impl Chat {
    async fn authenticate(&self, req: ConnectRequest) -> Result<User, Refusal> {
        if let Some(hook) = &self.hooks.authenticate {
            return match tokio::time::timeout(
                self.config.host_callback_timeout,
                hook.authenticate(&req),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(Refusal {
                    message: "Authentication timed out".into(),
                    reason: "auth_timeout",
                }),
            };
        }
        let handshake = &req.session.handshake;
        let token = crate::helpers::token::find_in(
            handshake.header("authorization"),
            handshake.query(),
            Some(&req.auth),
        )
        .ok_or(AuthError::Required)?;
        Ok(self.jwt.verify(&token).await?)
    }

    async fn on_connect(&self, socket: &Arc<Socket>) {
        let Some(user) = socket.user().cloned() else {
            return;
        };
        self.expiry.bind_socket(socket);
        let personal = personal_room(&user.id);
        socket.join(&personal);
        // Signals and notifications to this user from other nodes reach it from now on.
        self.await_subscription(&personal).await;
        if !socket.recovered() {
            return;
        }
        // Recovered: its rooms are back. If its departure was not announced yet, presence
        // never changed; otherwise it rejoins presence.
        if self
            .pending_departures
            .lock()
            .remove(socket.pid())
            .is_some()
        {
            return;
        }
        for room in socket.rooms() {
            if !is_personal(&room) {
                self.presence_join(socket, &user, &room).await;
            }
        }
    }

    fn on_disconnect(
        self: &Arc<Self>,
        socket: &Arc<Socket>,
        rooms: &[Arc<str>],
        reason: crate::socketio::DisconnectReason,
    ) {
        self.expiry.unbind_socket(socket);
        let Some(user) = socket.user().cloned() else {
            return;
        };
        let chat_rooms: Vec<Arc<str>> = rooms.iter().filter(|r| !is_personal(r)).cloned().collect();
        for room in &chat_rooms {
            self.stop_typing(socket, &user, room, false);
        }
        let deferred = reason.is_recoverable()
            && socket.namespace().recovery.is_some()
            && !chat_rooms.is_empty();
        if !deferred {
            for room in &chat_rooms {
                self.presence_leave(&user, room);
            }
            return;
        }
        let pid: Arc<str> = socket.pid().into();
        self.pending_departures
            .lock()
            .insert(pid.clone(), chat_rooms);
        let chat = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(chat.config.presence_grace).await;
            let rooms = chat.pending_departures.lock().remove(&pid);
            for room in rooms.unwrap_or_default() {
                chat.presence_leave(&user, &room);
            }
        });
    }

    /// The `/` namespace (absent before the engine is built and after it is gone).
    pub(crate) fn namespace(&self) -> Option<Arc<crate::socketio::Namespace>> {
        self.ns.get().and_then(std::sync::Weak::upgrade)
    }

    /// The engine's metrics.
    pub(crate) fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.get().cloned().unwrap_or_default()
    }

    /// Tells a room, on every node, that a user appeared or left (Socket.IO and SSE).
    pub(crate) fn announce_presence(
        &self,
        event: &str,
        room: &Arc<str>,
        user_id: &str,
        username: &str,
        except: Option<&Arc<str>>,
    ) {
        let data = PresenceEvent {
            room_id: room,
            user_id,
            username,
        };
        if let Some(ns) = self.namespace() {
            let mut to = ns.to_shared(room);
            if let Some(socket_id) = except {
                to = to.except(socket_id);
            }
            to.emit(event, &data);
        }
        self.sse_to_room(room, &crate::sse::SseEvent::new(event, None, &data));
    }

    /// Counts the socket's user in `room` and tells the others when the user just appeared
    /// (in the cluster, when there is one).
    pub(crate) async fn presence_join(&self, socket: &Arc<Socket>, user: &User, room: &Arc<str>) {
        let user_id: Arc<str> = user.id.as_str().into();
        let first_here = self
            .presence
            .lock()
            .join(room, &user_id, &user.username.as_str().into());
        if first_here && self.cluster_join(room, &user.id, &user.username).await {
            self.announce_presence(
                "userJoined",
                room,
                &user.id,
                &user.username,
                Some(socket.id()),
            );
        }
    }

    /// Uncounts a connection of the user in `room` and tells the room when the user is gone
    /// (from the cluster, when there is one: that answer comes asynchronously).
    pub(crate) fn presence_leave(self: &Arc<Self>, user: &User, room: &Arc<str>) {
        if !self.presence.lock().leave(room, &user.id) {
            return;
        }
        if !self.in_cluster() {
            // One node: its hub's answer is the cluster's, and no task is needed.
            self.announce_presence("userLeft", room, &user.id, &user.username, None);
            return;
        }
        let (chat, room, user) = (self.clone(), room.clone(), user.clone());
        tokio::spawn(async move {
            if chat.cluster_leave(&room, &user.id).await {
                chat.announce_presence("userLeft", &room, &user.id, &user.username, None);
            }
        });
    }

    /// Stops the user's typing in `room`, telling the others when it was on.
    /// In a cluster, a connection that leaves or drops stops only typing this node started
    /// (another tab may type elsewhere); an explicit `stopTyping` stops the user's typing.
    pub(crate) fn stop_typing(
        self: &Arc<Self>,
        socket: &Arc<Socket>,
        user: &User,
        room: &Arc<str>,
        explicit: bool,
    ) {
        let here = self.typing.lock().stop(room, &user.id);
        if !self.in_cluster() || (!here && !explicit) {
            if here {
                emit_typing(socket, user, room, false);
            }
            return;
        }
        let (chat, socket, user, room) = (self.clone(), socket.clone(), user.clone(), room.clone());
        tokio::spawn(async move {
            let stopped = chat
                .cluster_typing_stop(&room, &user.id, None, here)
                .await
                .unwrap_or(here);
            if stopped {
                emit_typing(&socket, &user, &room, false);
            }
        });
    }
}

pub(crate) fn emit_typing(socket: &Arc<Socket>, user: &User, room: &Arc<str>, is_typing: bool) {
    // Per user: none of the typist's own connections hears it.
    socket
        .namespace()
        .to(room)
        .except(socket.id())
        .except_room(&personal_room(&user.id))
        .emit(
            "typing",
            &TypingEvent {
                room_id: room,
                user_id: &user.id,
                username: &user.username,
                is_typing,
            },
        );
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PresenceEvent<'a> {
    room_id: &'a str,
    user_id: &'a str,
    username: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypingEvent<'a> {
    room_id: &'a str,
    user_id: &'a str,
    username: &'a str,
    is_typing: bool,
}

/// The client events the engine answers itself (the chat contract).
pub const CONTRACT_EVENTS: &[&str] = &[
    "joinRoom",
    "leaveRoom",
    "sendMessage",
    "startTyping",
    "stopTyping",
    "getHistory",
    "refreshToken",
    "signal",
];

/// Why a host cannot handle `event` itself, or `None` when it can: a handler for a contract
/// event would never run (the engine answers it), and one for a Socket.IO reserved name
/// would never be called (no client can send it). Hosts refuse such registrations instead of
/// ignoring them.
pub fn app_event_refusal(event: &str) -> Option<String> {
    if event.is_empty() {
        return Some("an event name must not be empty".to_owned());
    }
    if CONTRACT_EVENTS.contains(&event) {
        return Some(format!(
            "`{event}` is a chat contract event the engine answers itself; use authorizeRoom/storeMessage, onConnection, or another event name"
        ));
    }
    if crate::socketio::RESERVED_EVENTS.contains(&event) {
        return Some(format!(
            "`{event}` is reserved by Socket.IO and no client can send it; use onConnection/onDisconnect, or another event name"
        ));
    }
    None
}

use crate::hub::is_personal;
pub use crate::hub::personal_room;

/// Answers a request: `cb(null, result?)`, or `cb({code, message})`; a failed request without
/// a callback gets an `error` event instead.
pub(crate) fn reply(
    socket: &Socket,
    ack: Option<AckSender>,
    result: Result<Option<Value>, ChatError>,
) {
    match (ack, result) {
        (Some(ack), Ok(None)) => ack.send(vec![Value::Null]),
        (Some(ack), Ok(Some(v))) => ack.send(vec![Value::Null, v]),
        (Some(ack), Err(e)) => ack.send(vec![serde_json::to_value(&e).unwrap_or(Value::Null)]),
        (None, Ok(_)) => {}
        (None, Err(e)) => {
            let _ = socket.emit("error", &e);
        }
    }
}
