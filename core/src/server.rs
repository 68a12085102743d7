//! The Socket.IO-like server API of an [`Engine`]: connection and disconnection hooks,
//! broadcasts to several rooms minus others, the rooms and the sockets of a room.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::socketio::{DisconnectReason, Socket};
use crate::{Engine, EngineBuilder, User};

/// A socket as [`Engine::sockets`] lists it (Socket.IO's `fetchSockets`).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SocketInfo {
    /// The socket id.
    pub id: String,
    /// Who it is (with every claim of its credential), `None` for an anonymous socket.
    pub user: Option<Arc<User>>,
    /// The rooms it is in (its personal room `user:<id>` included).
    pub rooms: Vec<String>,
}

impl SocketInfo {
    fn of(socket: &Socket) -> Self {
        SocketInfo {
            id: socket.id().to_string(),
            user: socket.user().cloned(),
            rooms: socket.rooms().iter().map(|r| r.to_string()).collect(),
        }
    }
}

impl EngineBuilder {
    /// Runs `f` for every socket that connects to `/` (after authentication, once the chat
    /// feature put it in its personal room); the socket's events wait until `f` resolves,
    /// so rooms joined there are joined before the client's first event is handled. Several
    /// hooks run in the order they were added.
    pub fn on_connection<F, Fut>(self, f: F) -> Self
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.namespace("/", |ns| ns.on_connect(f))
    }

    /// Runs `f` when a socket of `/` disconnects, with the rooms it was in and why (Socket.IO's
    /// reason names: `transport close`, `ping timeout`, `server namespace disconnect`, …).
    /// Several hooks run in the order they were added.
    pub fn on_disconnect<F>(self, f: F) -> Self
    where
        F: Fn(&Arc<Socket>, &[Arc<str>], DisconnectReason) + Send + Sync + 'static,
    {
        self.namespace("/", |ns| ns.on_disconnect(f))
    }
}

impl Engine {
    /// Emits `event` with `data` to every socket in any of `rooms` but those in any of
    /// `except`, each socket once (Socket.IO's `io.to([a, b]).except(c).emit(…)`); encoded
    /// once, and sent across the cluster with Redis. An empty `rooms` sends nothing. Returns
    /// how many sockets of this node it was queued for.
    pub fn emit_to_rooms<T: Serialize + ?Sized>(
        &self,
        rooms: &[&str],
        except: &[&str],
        event: &str,
        data: &T,
    ) -> usize {
        let (Some(ns), Some((first, rest))) = (self.namespace("/"), rooms.split_first()) else {
            return 0;
        };
        let mut broadcast = ns.to(first);
        for room in rest {
            broadcast = broadcast.to(room);
        }
        for room in except {
            broadcast = broadcast.except_room(room);
        }
        broadcast.emit(event, data)
    }

    /// A connected socket of `/` by id (on this node).
    pub fn socket(&self, id: &str) -> Option<Arc<Socket>> {
        self.namespace("/").and_then(|ns| ns.socket(id))
    }

    /// The sockets of this node in `room` (with their users and rooms). Sockets connected to
    /// other nodes of a cluster are not listed: a room's members across the cluster are in
    /// presence (`ChatHandle::presence`).
    pub fn sockets(&self, room: &str) -> Vec<SocketInfo> {
        self.namespace("/").map_or_else(Vec::new, |ns| {
            ns.sockets_in(room)
                .iter()
                .map(|s| SocketInfo::of(s))
                .collect()
        })
    }

    /// The sockets in `room` across the cluster (Socket.IO's `fetchSockets`): this node's,
    /// then those the other nodes with members in the room report within `timeout`, each
    /// as `{id, user, rooms}`. A node that does not answer in time is left out. Without a
    /// cluster it is [`Engine::sockets`].
    pub async fn fetch_sockets(&self, room: &str, timeout: std::time::Duration) -> Vec<Value> {
        let Some(ns) = self.namespace("/") else {
            return Vec::new();
        };
        let mut all: Vec<Value> = ns.sockets_in(room).iter().map(|s| s.host_json()).collect();
        // On a single node no other node listens: nothing is asked.
        for reply in ns.cluster.fetch_sockets("/", room, timeout).await {
            match serde_json::from_str::<Vec<Value>>(&reply) {
                Ok(sockets) => all.extend(sockets),
                Err(e) => tracing::debug!(error = %e, "dropped a malformed sockets reply"),
            }
        }
        all
    }

    /// The rooms that have sockets on this node, with how many (personal rooms `user:<id>`
    /// included), sorted by name.
    pub fn rooms(&self) -> Vec<(String, usize)> {
        let mut rooms: Vec<(String, usize)> = self.namespace("/").map_or_else(Vec::new, |ns| {
            ns.room_counts()
                .into_iter()
                .map(|(room, n)| (room.to_string(), n))
                .collect()
        });
        rooms.sort();
        rooms
    }
}
