//! Namespaces: their handlers, their sockets and rooms, and broadcasting to them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::Value;

use super::cluster::{Exchange, RecoveredSession, SocketIoBroadcast};
use super::payload::{self, EventArray, Payload};
use super::recovery::{RecoveryLog, SavedSession};
use super::socket::{AckSender, DisconnectReason, Socket};
use super::Session;
use crate::auth::User;
use crate::hub::rooms::Rooms;
use crate::metrics::Metrics;
use crate::protocol::frame::{Frame, FrameKind};

/// An event handler: the socket, the event's arguments, and the ack to answer when the client
/// asked for one.
pub type EventHandler =
    Arc<dyn Fn(Arc<Socket>, Payload, Option<AckSender>) -> BoxFuture<'static, ()> + Send + Sync>;
/// A handler for any event without its own handler: also gets the event name.
pub type FallbackHandler = Arc<
    dyn Fn(Arc<Socket>, String, Payload, Option<AckSender>) -> BoxFuture<'static, ()> + Send + Sync,
>;
/// Runs when a socket connected.
pub type ConnectHandler = Arc<dyn Fn(Arc<Socket>) -> BoxFuture<'static, ()> + Send + Sync>;
/// Runs when a socket disconnected (synchronously; spawn for async work).
pub type DisconnectHandler = Arc<dyn Fn(&Arc<Socket>, &[Arc<str>], DisconnectReason) + Send + Sync>;
/// Decides whether a connection may join the namespace, and as whom.
pub type Authenticator =
    Arc<dyn Fn(ConnectRequest) -> BoxFuture<'static, Result<Option<User>, Refusal>> + Send + Sync>;

/// A refused connection: the CONNECT_ERROR message the client receives, and a metrics label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The message (`connect_error` `err.message` on the client).
    pub message: String,
    /// A stable label for `/metrics`.
    pub reason: &'static str,
}

impl From<crate::auth::AuthError> for Refusal {
    fn from(e: crate::auth::AuthError) -> Self {
        Refusal {
            reason: e.reason_label(),
            message: e.to_string(),
        }
    }
}

/// What an authenticator gets to decide on.
pub struct ConnectRequest {
    /// The auth payload of the CONNECT packet (`{}` when there was none).
    pub auth: Value,
    /// The Engine.IO session (handshake headers, query, address).
    pub session: Arc<Session>,
}

/// A namespace's handlers, fixed before the engine starts.
#[derive(Default)]
pub struct NamespaceBuilder {
    authenticator: Option<Authenticator>,
    on_connect: Option<ConnectHandler>,
    on_disconnect: Option<DisconnectHandler>,
    events: HashMap<String, EventHandler>,
    fallback: Option<FallbackHandler>,
    recovery: bool,
}

impl NamespaceBuilder {
    /// Decides who may connect; without one, everyone may, anonymously.
    pub fn authenticate<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(ConnectRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<User>, Refusal>> + Send + 'static,
    {
        self.authenticator = Some(Arc::new(move |req| Box::pin(f(req))));
        self
    }

    /// Runs for every new socket, after the CONNECT answer was queued. Several hooks run
    /// one after another in the order they were added (the chat feature's first, then a
    /// host's), each awaited before the next; the socket's events wait for them.
    pub fn on_connect<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_connect = Some(match self.on_connect.take() {
            None => Arc::new(move |s| Box::pin(f(s))),
            Some(first) => {
                let f = Arc::new(f);
                Arc::new(move |s: Arc<Socket>| {
                    let (first, f) = (first.clone(), f.clone());
                    Box::pin(async move {
                        first(s.clone()).await;
                        f(s).await;
                    })
                })
            }
        });
        self
    }

    /// Runs when a socket disconnects, with the rooms it was in. Several hooks run in the
    /// order they were added.
    pub fn on_disconnect<F>(mut self, f: F) -> Self
    where
        F: Fn(&Arc<Socket>, &[Arc<str>], DisconnectReason) + Send + Sync + 'static,
    {
        self.on_disconnect = Some(match self.on_disconnect.take() {
            None => Arc::new(f),
            Some(first) => Arc::new(move |s: &Arc<Socket>, rooms: &[Arc<str>], reason| {
                first(s, rooms, reason);
                f(s, rooms, reason);
            }),
        });
        self
    }

    /// Handles `event`.
    ///
    /// # Panics
    ///
    /// When `event` already has a handler: an ack has one answer, so a second handler would
    /// silently replace the first (a contract event taken over by accident). This is a
    /// mistake in the program that builds the engine, found when it is built.
    pub fn on<F, Fut>(mut self, event: &str, f: F) -> Self
    where
        F: Fn(Arc<Socket>, Payload, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let previous = self.events.insert(
            event.to_owned(),
            Arc::new(move |s, p, a| Box::pin(f(s, p, a))),
        );
        assert!(
            previous.is_none(),
            "NamespaceBuilder::on(\"{event}\"): the event already has a handler; one handler per event (its result is the ack)"
        );
        self
    }

    /// Whether `event` has a handler of its own.
    pub fn handles(&self, event: &str) -> bool {
        self.events.contains_key(event)
    }

    /// Handles every event that has no handler of its own.
    pub fn on_any<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Arc<Socket>, String, Payload, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.fallback = Some(Arc::new(move |s, e, p, a| Box::pin(f(s, e, p, a))));
        self
    }

    /// Turns on connection state recovery for this namespace.
    pub fn recovery(mut self, on: bool) -> Self {
        self.recovery = on;
        self
    }

    pub(crate) fn build(
        self,
        name: &str,
        config: &crate::Config,
        metrics: Arc<Metrics>,
        cluster: Arc<Exchange>,
    ) -> Arc<Namespace> {
        Arc::new(Namespace {
            name: name.to_owned(),
            rooms: Rooms::default(),
            sockets: RwLock::new(HashMap::new()),
            recovery: self.recovery.then(|| {
                RecoveryLog::new(
                    config.recovery_window,
                    RECOVERY_MAX_PACKETS,
                    config.recovery_log_bytes,
                )
            }),
            authenticator: self.authenticator,
            on_connect: self.on_connect,
            on_disconnect: self.on_disconnect,
            events: self.events,
            fallback: self.fallback,
            metrics,
            cluster,
        })
    }
}

/// Most broadcasts a namespace keeps for recovery; a client that missed more starts fresh.
const RECOVERY_MAX_PACKETS: usize = 10_000;

/// A namespace: its handlers, sockets and rooms.
pub struct Namespace {
    name: String,
    pub(crate) rooms: Rooms<Arc<str>, Arc<Socket>>,
    sockets: RwLock<HashMap<Arc<str>, Arc<Socket>>>,
    pub(crate) recovery: Option<RecoveryLog>,
    pub(crate) authenticator: Option<Authenticator>,
    pub(crate) on_connect: Option<ConnectHandler>,
    on_disconnect: Option<DisconnectHandler>,
    events: HashMap<String, EventHandler>,
    fallback: Option<FallbackHandler>,
    pub(crate) metrics: Arc<Metrics>,
    /// The other nodes broadcasts also go to (none on a single node).
    pub(crate) cluster: Arc<Exchange>,
}

impl Namespace {
    /// The namespace's name (`/`, `/admin`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket with this id.
    pub fn socket(&self, id: &str) -> Option<Arc<Socket>> {
        self.sockets.read().get(id).cloned()
    }

    /// Every connected socket.
    pub fn sockets(&self) -> Vec<Arc<Socket>> {
        self.sockets.read().values().cloned().collect()
    }

    /// Number of connected sockets.
    pub fn socket_count(&self) -> usize {
        self.sockets.read().len()
    }

    /// Number of sockets in `room`.
    pub fn room_size(&self, room: &str) -> usize {
        self.rooms.len(room)
    }

    /// Connected sockets in `room`.
    pub fn sockets_in(&self, room: &str) -> Vec<Arc<Socket>> {
        let mut out = Vec::with_capacity(self.rooms.len(room));
        self.rooms.for_each(room, |_, s| out.push(s.clone()));
        out
    }

    /// Every room with its socket count.
    pub fn room_counts(&self) -> Vec<(Arc<str>, usize)> {
        self.rooms.counts()
    }

    /// Starts a broadcast to `room`.
    pub fn to(self: &Arc<Self>, room: &str) -> Broadcast<'_> {
        Broadcast {
            ns: self,
            rooms: vec![room.into()],
            except: Vec::new(),
            except_rooms: Vec::new(),
            logged: true,
        }
    }

    /// [`Namespace::to`] a room whose name the caller already holds shared: a broadcast the
    /// recovery log keeps (a presence announcement per join) then holds no copy of it.
    pub(crate) fn to_shared(self: &Arc<Self>, room: &Arc<str>) -> Broadcast<'_> {
        Broadcast {
            ns: self,
            rooms: vec![room.clone()],
            except: Vec::new(),
            except_rooms: Vec::new(),
            logged: true,
        }
    }

    /// Starts a broadcast to every socket of the namespace.
    pub fn everyone(self: &Arc<Self>) -> Broadcast<'_> {
        Broadcast {
            ns: self,
            rooms: Vec::new(),
            except: Vec::new(),
            except_rooms: Vec::new(),
            logged: true,
        }
    }

    /// Tells the cluster that this node's membership of `room` appeared or disappeared; the
    /// future resolves when the cluster subscription follows (at once on a single node).
    pub(crate) fn room_interest(&self, room: &str) -> crate::cluster::Answer<()> {
        self.cluster.room_interest(room)
    }

    /// Whether a dropped session of this namespace that may still recover was in `room`.
    pub(crate) fn holds_dropped_session_in(&self, room: &str) -> bool {
        self.recovery
            .as_ref()
            .is_some_and(|log| log.has_session_in(room))
    }

    /// Hands a dropped session over to another node the client came back through: its
    /// state and the packets it missed after `offset` (see [`RecoveryLog::restore`]).
    pub(crate) fn hand_over(&self, pid: &str, offset: Option<&str>) -> Option<RecoveredSession> {
        let (saved, missed) = self.recovery.as_ref()?.restore(pid, offset)?;
        Some(RecoveredSession {
            sid: saved.sid.to_string(),
            rooms: saved.rooms.iter().map(|r| r.to_string()).collect(),
            // With the credential's expiry: the other node refuses the session past it too.
            user: saved
                .user
                .as_deref()
                .map(User::to_session_json)
                .unwrap_or_default(),
            auth: saved.auth.to_string(),
            frames: missed
                .iter()
                .map(|f| (f.kind() == FrameKind::Binary, f.payload()))
                .collect(),
        })
    }

    /// Delivers a broadcast that started on another node to this node's sockets, encoded
    /// once here (with this node's recovery offset).
    pub(crate) fn deliver_remote(&self, b: &SocketIoBroadcast) {
        let Ok(args) = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(&b.args) else {
            tracing::debug!(event = %b.event, "dropped a cluster broadcast with malformed arguments");
            return;
        };
        let rooms: Vec<Arc<str>> = b.rooms.iter().map(|r| Arc::from(r.as_str())).collect();
        let target = rooms.get(usize::from(b.channel)).cloned();
        if !rooms.is_empty() && target.is_none() {
            return;
        }
        // Members of the rooms before this copy's room get the copy sent to those rooms.
        let mut skip: HashSet<Arc<str>> = b.except.iter().map(|s| Arc::from(s.as_str())).collect();
        let earlier = &b.rooms[..usize::from(b.channel).min(b.rooms.len())];
        for room in earlier.iter().chain(&b.except_rooms) {
            self.rooms.for_each(room, |id, _| {
                skip.insert(id.clone());
            });
        }
        let rooms = target.into_iter().collect();
        self.fan_out(rooms, skip.into_iter().collect(), true, |offset| {
            let array = payload::RawEventArray {
                event: &b.event,
                args: &args,
                offset,
            };
            payload::event_frames(self.name(), None, &array, &b.attachments)
        });
    }

    /// Encodes an event once — with a recovery offset when it goes to rooms — and queues it
    /// for every socket in any of `rooms` (every socket when there is none) but those in
    /// `except`; counts it and keeps it for recovery. Returns how many sockets it was queued
    /// for.
    fn fan_out(
        &self,
        rooms: Vec<Arc<str>>,
        except: Vec<Arc<str>>,
        logged: bool,
        encode: impl FnOnce(Option<&str>) -> Vec<Frame>,
    ) -> usize {
        // Namespace-wide broadcasts are not replayed, nor those sent `without_recovery`.
        let offset = match (&self.recovery, rooms.is_empty()) {
            (Some(log), false) if logged => Some(log.next_offset()),
            _ => None,
        };
        let frames = encode(offset.as_ref().map(|(_, o)| o.as_str()));
        let mut delivered = 0;
        // `except(room)` of a large room leaves out many sockets: a set keeps the check per
        // recipient O(1) instead of O(left out).
        let except_set: Option<HashSet<&Arc<str>>> =
            (except.len() > 16).then(|| except.iter().collect());
        let left_out = |id: &Arc<str>| match &except_set {
            Some(set) => set.contains(id),
            None => except.contains(id),
        };
        let mut deliver = |id: &Arc<str>, socket: &Arc<Socket>| {
            if !left_out(id) && socket.push_frames(&frames).is_ok() {
                delivered += 1;
            }
        };
        if rooms.is_empty() {
            for socket in self.sockets() {
                deliver(socket.id(), &socket);
            }
        } else {
            self.rooms.for_each_in_any(&rooms, &mut deliver);
        }
        self.metrics
            .packets_out
            .add((delivered * frames.len()) as u64);
        if let (Some(log), Some((seq, _))) = (&self.recovery, offset) {
            log.record(seq, rooms, except, frames);
        }
        delivered
    }

    pub(crate) fn handler(&self, event: &str) -> Option<&EventHandler> {
        self.events.get(event)
    }

    pub(crate) fn fallback(&self) -> Option<&FallbackHandler> {
        self.fallback.as_ref()
    }

    pub(crate) fn add_socket(&self, socket: &Arc<Socket>) {
        self.sockets
            .write()
            .insert(socket.id().clone(), socket.clone());
        self.metrics.sockets.inc();
    }

    /// Called once by [`Socket::cleanup`].
    pub(crate) fn socket_gone(
        &self,
        socket: &Arc<Socket>,
        rooms: Vec<Arc<str>>,
        reason: DisconnectReason,
    ) {
        if self.sockets.write().remove(socket.id()).is_some() {
            self.metrics.sockets.dec();
        }
        if let Some(log) = &self.recovery {
            if reason.is_recoverable() {
                self.cluster.session_dropped(socket.pid(), log.window());
                log.save(SavedSession::new(
                    socket.id().clone(),
                    socket.pid().into(),
                    rooms.clone(),
                    // A refreshed token's expiry, not the connect token's.
                    socket.user_with_expiry(),
                    socket.auth(),
                    socket.connected_seq,
                ));
            }
        }
        if let Some(f) = &self.on_disconnect {
            f(socket, &rooms, reason);
        }
    }
}

/// A broadcast being set up: `ns.to("room").except(id).emit("event", &data)`.
pub struct Broadcast<'a> {
    ns: &'a Arc<Namespace>,
    rooms: Vec<Arc<str>>,
    except: Vec<Arc<str>>,
    /// Rooms left out, for other nodes (this node expands them into `except` at once).
    except_rooms: Vec<Arc<str>>,
    /// Whether the recovery log keeps it (see [`Broadcast::without_recovery`]).
    logged: bool,
}

impl Broadcast<'_> {
    /// Adds a room.
    pub fn to(mut self, room: &str) -> Self {
        self.rooms.push(room.into());
        self
    }

    /// Leaves out one socket.
    pub fn except(mut self, socket_id: &Arc<str>) -> Self {
        // The list may be kept with the broadcast in the recovery log: one socket left out
        // (the usual case) takes room for one, not the four a first push reserves.
        if self.except.capacity() == 0 {
            self.except.reserve_exact(1);
        }
        self.except.push(socket_id.clone());
        self
    }

    /// Leaves out every socket in `room` (e.g. all connections of one user).
    pub fn except_room(mut self, room: &str) -> Self {
        self.ns
            .rooms
            .for_each(room, |id, _| self.except.push(id.clone()));
        self.except_rooms.push(room.into());
        self
    }

    /// Leaves the broadcast out of the connection-state-recovery log on this node: a client
    /// that reconnects does not get it again (for what is useless later, like WebRTC
    /// signaling, and must not take the log's room). Other nodes still log their copy.
    pub fn without_recovery(mut self) -> Self {
        self.logged = false;
        self
    }

    /// Emits `event` with one argument; encoded once, shared by every recipient. Returns the
    /// number of sockets it was queued for.
    pub fn emit<T: Serialize + ?Sized>(self, event: &str, data: &T) -> usize {
        self.send(event, Some(data), &[], &[])
    }

    /// Emits `event` with any arguments and binary attachments.
    pub fn emit_payload(self, event: &str, payload: &Payload) -> usize {
        self.send::<Value>(event, None, &payload.args, &payload.attachments)
    }

    fn send<T: Serialize + ?Sized>(
        self,
        event: &str,
        one: Option<&T>,
        rest: &[Value],
        attachments: &[bytes::Bytes],
    ) -> usize {
        let ns = self.ns;
        if ns.cluster.has_peers() {
            self.publish(&ns.cluster, event, one, rest, attachments);
        }
        ns.fan_out(self.rooms, self.except, self.logged, |offset| {
            let array = EventArray {
                event,
                one,
                rest,
                offset,
            };
            payload::event_frames(ns.name(), None, &array, attachments)
        })
    }

    /// Sends the broadcast to the other nodes: one copy per room channel (see
    /// [`SocketIoBroadcast::channel`]), or one to every node for a namespace-wide one.
    fn publish<T: Serialize + ?Sized>(
        &self,
        cluster: &Exchange,
        event: &str,
        one: Option<&T>,
        rest: &[Value],
        attachments: &[bytes::Bytes],
    ) {
        let Ok(args) = serde_json::to_string(&payload::ArgsArray { one, rest }) else {
            return;
        };
        let mut b = SocketIoBroadcast {
            namespace: self.ns.name().to_owned(),
            rooms: self.rooms.iter().map(|r| r.to_string()).collect(),
            channel: 0,
            // Socket ids are node-local, but a recovered socket keeps its id on another
            // node: leaving them in is right and cheap.
            except: self.except.iter().map(|s| s.to_string()).collect(),
            except_rooms: self.except_rooms.iter().map(|r| r.to_string()).collect(),
            event: event.to_owned(),
            args,
            attachments: attachments.to_vec(),
        };
        if self.rooms.is_empty() {
            cluster.publish(None, &b);
            return;
        }
        for (i, room) in self.rooms.iter().enumerate().take(usize::from(u16::MAX)) {
            b.channel = i as u16;
            cluster.publish(Some(room), &b);
        }
    }
}
