//! The product the C and Node bindings ship, assembled once: the chat contract on `/`,
//! server-sent events and the server HTTP API (both part of the chat), the same contract as
//! JSON frames at `/ws` (plain WebSocket, [`crate::ws`]), collaborative
//! documents at `/yjs/<name>`, one room rule for chat rooms and documents (`doc:<name>`),
//! the app's own events, connection callbacks, and the host API over all of it (emits,
//! publish, notify, sockets, presence, disconnecting users, stats) with its JSON shapes.
//!
//! The bindings only convert: C strings and JSON text, or napi values and thread-safe
//! functions, into the Rust callbacks of [`Hooks`] and the arguments of [`Host`]'s methods.
//!
//! ```no_run
//! use switchboard::host::{Host, Hooks};
//! use switchboard::Config;
//! let host = Host::start(Config::default().jwt_secret("dev-secret"), Hooks::default()).unwrap();
//! host.engine().listen("127.0.0.1:3000".parse().unwrap()).unwrap();
//! println!("{}", host.stats()); // {"connections":0,"sockets":0,...}
//! ```

mod hooks;
#[doc(hidden)]
pub mod json;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

pub use hooks::{AppEvents, Authenticate, Lifecycle};

use crate::chat::{self, ChatError, ChatHandle, MessageStore, RoomAccess};
use crate::hub::presence::Member;
use crate::socketio::{EmitError, Socket};
use crate::store::ChatMessage;
use crate::yjs::{self, DocumentObserver, Yjs};
use crate::{Config, Engine, Error};

/// What the host plugs in; each one left `None` (or empty) keeps the engine's built-in
/// behaviour (JWT verification, the room policy, no persistence hook, …).
#[derive(Default, Clone)]
pub struct Hooks {
    /// Decides who connecting clients are: Socket.IO and document connections.
    pub authenticate: Option<Arc<dyn Authenticate>>,
    /// Decides room access instead of the token's `rooms` claim and the room policy, for
    /// chat rooms and documents alike: a document's room is `doc:<name>`, and chat rooms
    /// cannot start with `doc:`, so the hook can tell them apart.
    pub room_access: Option<Arc<dyn RoomAccess>>,
    /// Runs before a chat message is stored in history and delivered.
    pub message_store: Option<Arc<dyn MessageStore>>,
    /// Told about every change clients make to a document.
    pub document_observers: Vec<Arc<dyn DocumentObserver>>,
    /// The app's own client events (`None`: the engine answers them itself).
    pub app_events: Option<Arc<dyn AppEvents>>,
    /// Told about connections and disconnections.
    pub lifecycle: Option<Arc<dyn Lifecycle>>,
    /// Told when the engine gets its first connection (`true`) and loses its last
    /// (`false`), e.g. to keep a host's event loop alive while clients are connected.
    pub on_activity: Option<Arc<dyn Fn(bool) + Send + Sync>>,
}

/// The assembled product: an [`Engine`] with the chat contract, server-sent events and
/// documents, and the host API both bindings call. Thread-safe; every method may be called
/// from any thread (none blocks on the engine).
pub struct Host {
    engine: Engine,
    chat: ChatHandle,
    yjs: Arc<Yjs>,
    closed: AtomicBool,
}

impl Host {
    /// Builds and starts the product on a runtime of its own. It serves nothing until
    /// [`Engine::listen`] or a connection handed over to [`Engine::http`].
    ///
    /// Errors: those of [`crate::EngineBuilder::build`], and of opening the history or
    /// document store.
    pub fn start(config: Config, hooks: Hooks) -> Result<Host, Error> {
        let timeout = config.host_callback_timeout;
        let mut builder = Engine::builder(config);
        if let Some(on_activity) = hooks.on_activity {
            builder = builder.on_activity(move |active| on_activity(active));
        }
        let chat_hooks = chat::Hooks {
            authenticate: hooks
                .authenticate
                .clone()
                .map(|a| Arc::new(hooks::SocketAuth(a)) as _),
            room_access: hooks.room_access.clone(),
            message_store: hooks.message_store,
        };
        let doc_hooks = yjs::Hooks {
            authenticate: hooks
                .authenticate
                .map(|a| Arc::new(hooks::DocumentAuth(a)) as _),
            room_access: hooks.room_access,
            store: None,
            observers: hooks.document_observers,
        };
        let (builder, chat) = chat::install_with_handle(builder, chat_hooks)?;
        let (builder, yjs) = yjs::install(builder, doc_hooks)?;
        // Plain WebSocket speaks the `/` namespace the chat installed.
        let mut builder = crate::ws::install(builder);
        if let Some(app) = hooks.app_events {
            builder = hooks::install_app_events(builder, app, timeout);
        }
        if let Some(lifecycle) = hooks.lifecycle {
            builder = hooks::install_lifecycle(builder, lifecycle, timeout);
        }
        let engine = builder.build()?;
        Ok(Host {
            engine,
            chat,
            yjs,
            closed: AtomicBool::new(false),
        })
    }

    /// The engine (listening, handing over connections, metrics, the Socket.IO server API).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether [`Host::shutdown`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Shuts the engine down (see [`Engine::shutdown`]: it returns once every socket is
    /// cleaned up, or `grace` passed). Only the first call does it; it returns whether this
    /// one did.
    pub fn shutdown(&self, grace: Duration) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.engine.shutdown(grace);
        true
    }

    /// Emits `event` with `data` to every socket in `room`, encoded once, off the caller's
    /// thread; returns how many sockets are in the room now.
    pub fn emit_to_room(&self, room: String, event: String, data: Value) -> usize {
        self.engine.spawn_emit_to_room(room, event, data)
    }

    /// Emits `event` with `data` to every Socket.IO connection of a user, like
    /// [`Host::emit_to_room`] on its personal room.
    pub fn emit_to_user(&self, user_id: &str, event: String, data: Value) -> usize {
        self.emit_to_room(chat::personal_room(user_id), event, data)
    }

    /// Emits to every socket in any of `rooms` but those in any of `except`, each once,
    /// across the cluster; off the caller's thread, in call order.
    pub fn emit_to_rooms(
        &self,
        rooms: Vec<String>,
        except: Vec<String>,
        event: String,
        data: Value,
    ) {
        self.engine.spawn_emit_to_rooms(rooms, except, event, data);
    }

    /// Stores and delivers a message to `room` as `user_id` (display name `username`, else
    /// the id), as a client's `sendMessage` would, on the engine's runtime; `done` gets the
    /// outcome there. A shutdown may drop the work, and `done` with it, uncalled.
    pub fn publish(
        &self,
        room: String,
        user_id: String,
        username: Option<String>,
        text: String,
        done: impl FnOnce(Result<Arc<ChatMessage>, ChatError>) + Send + 'static,
    ) {
        let chat = self.chat.clone();
        self.engine.handle().spawn(async move {
            done(
                chat.publish(&room, &user_id, username.as_deref(), &text)
                    .await,
            );
        });
    }

    /// Sends `event` with `data` to every connection of a user, Socket.IO and server-sent
    /// events alike; returns how many connections it reached.
    pub fn notify_user(&self, user_id: &str, event: &str, data: &Value) -> usize {
        self.chat.notify_user(user_id, event, data)
    }

    /// Disconnects every connection of a user — Socket.IO clients (`io server disconnect`),
    /// server-sent-event streams and Yjs documents (close 4410 `Disconnected by the
    /// server`), on every node of the cluster; returns how many were on this node.
    ///
    /// A kick, not a ban: Socket.IO clients do not reconnect after a server disconnect, but
    /// EventSource reconnects by itself and a y-websocket app may open its provider again.
    /// To keep the user out, the app must also stop accepting the user's token (its
    /// `authenticate` hook, or short-lived tokens it no longer issues).
    pub fn disconnect_user(&self, user_id: &str) -> usize {
        self.chat.disconnect_user(user_id)
    }

    /// A socket connected to this node, by id.
    pub fn socket(&self, id: &str) -> Option<Arc<Socket>> {
        self.engine.socket(id)
    }

    /// Joins a connected socket to a room; false when there is no such socket or it was in
    /// the room already.
    pub fn socket_join(&self, id: &str, room: &str) -> bool {
        self.socket(id).is_some_and(|s| s.join(room))
    }

    /// Removes a connected socket from a room; false when it was not in it.
    pub fn socket_leave(&self, id: &str, room: &str) -> bool {
        self.socket(id).is_some_and(|s| s.leave(room))
    }

    /// Emits to one socket. `None` when no connected socket has that id.
    pub fn socket_emit(
        &self,
        id: &str,
        event: &str,
        data: &Value,
    ) -> Option<Result<(), EmitError>> {
        self.socket(id).map(|s| s.emit(event, data))
    }

    /// The rooms of a connected socket (empty when there is none).
    pub fn socket_rooms(&self, id: &str) -> Vec<String> {
        self.socket(id)
            .map(|s| s.rooms().iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    }

    /// Disconnects one socket; false when no connected socket has that id.
    pub fn socket_disconnect(&self, id: &str) -> bool {
        self.socket(id).map(|s| s.disconnect()).is_some()
    }

    /// The users present in `room`, in the order they arrived.
    pub fn presence(&self, room: &str) -> Vec<Member> {
        self.chat.presence(room)
    }

    /// Every room with users present as `[{"roomId", "members": <number of users>}]`,
    /// sorted by room id; personal rooms are not listed.
    pub fn presence_rooms(&self) -> Value {
        let mut rooms = self.chat.rooms();
        rooms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rooms
            .into_iter()
            .map(|(room, members)| json!({ "roomId": &*room, "members": members }))
            .collect()
    }

    /// Every room with sockets on this node as `[{"roomId", "sockets"}]`, sorted.
    pub fn socket_rooms_of_node(&self) -> Value {
        self.engine
            .rooms()
            .into_iter()
            .map(|(room, n)| json!({"roomId": room, "sockets": n}))
            .collect()
    }

    /// Counters as one JSON object: `connections`, `sockets`, `rooms` (with users present),
    /// `messages`, `packetsIn`, `packetsOut`, `documents` (in memory) and
    /// `documentConnections`.
    pub fn stats(&self) -> Value {
        let m = self.engine.metrics();
        json!({
            "connections": m.connections.get(),
            "sockets": m.sockets.get(),
            "rooms": self.chat.rooms().len(),
            "messages": m.messages.get(),
            "packetsIn": m.packets_in.get(),
            "packetsOut": m.packets_out.get(),
            "documents": self.yjs.document_count(),
            "documentConnections": self.yjs.connection_count(),
        })
    }
}

#[cfg(test)]
mod tests {
    /// The features pick their own message kinds (the cluster names none): no two may
    /// share one, or a node would hand one feature's message to another's decoder. Checked
    /// here, where the features are assembled.
    #[test]
    fn the_features_message_kinds_are_distinct() {
        use crate::socketio::cluster as sio;
        let kinds = [
            sio::KIND_BROADCAST,
            sio::KIND_RECOVERY_REQUEST,
            sio::KIND_RECOVERY_REPLY,
            sio::KIND_SOCKETS_REQUEST,
            sio::KIND_SOCKETS_REPLY,
            crate::chat::cluster::KIND_SSE,
            crate::chat::cluster::KIND_DISCONNECT_USER,
            crate::yjs::cluster::KIND_YJS,
        ];
        let distinct: std::collections::HashSet<_> = kinds.iter().collect();
        assert_eq!(distinct.len(), kinds.len(), "{kinds:?}");
    }
}
