//! Several engine processes as one: the adapter every cross-node feature goes through, and
//! its Redis implementation.
//!
//! The engine stays the authority for its own connections; the adapter carries what other
//! nodes need: broadcasts (one channel per room, so a node only hears rooms it has members
//! in), cluster-wide presence, shared history, and the heartbeats that let the survivors
//! clean up after a dead node. Without a configured cluster none of this runs.

pub(crate) mod documents;
pub mod envelope;
mod redis;
mod scripts;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

pub use self::redis::RedisAdapter;
use crate::hub::presence::Member;
use crate::store::ChatMessage;
use envelope::{Envelope, Received};

/// Why a cluster operation failed. The engine then falls back to what this node knows.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Redis is unreachable or answered with an error.
    #[error("redis: {0}")]
    Redis(String),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Redis answered something this node cannot read.
    #[error("unexpected answer from redis: {0}")]
    Protocol(String),
}

/// A user that left presence because its node died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    /// The room.
    pub room: Arc<str>,
    /// The user id.
    pub user_id: Arc<str>,
    /// The display name.
    pub username: Arc<str>,
}

/// What the adapter calls back into the engine.
pub trait ClusterSink: Send + Sync + 'static {
    /// Another node's envelope arrived: deliver it to this node's clients (ignore kinds
    /// this sink does not handle).
    fn deliver(&self, received: &Received);
    /// Whether this node has clients in `room` (a Socket.IO room, an SSE room, a user's
    /// personal room `user:<id>`, a document `doc:<name>`): the adapter listens to the
    /// rooms that are wanted.
    fn wants(&self, room: &str) -> bool;
    /// Every (room, user id, username) present on this node: restated to Redis after it
    /// lost or dropped this node's state.
    fn local_presence(&self) -> Vec<(Arc<str>, Arc<str>, Arc<str>)> {
        Vec::new()
    }
    /// Users of dead nodes left rooms: tell everyone (`userLeft`).
    fn departed(&self, _departures: &[Departure]) {}
    /// The subscription connection was (re)established and every wanted room is listened
    /// to again: whatever was published meanwhile is lost, so state that others must not
    /// miss (documents) is exchanged again.
    fn resubscribed(&self) {}
}

/// A document's shared store as [`Adapter::document_load`] read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDocument {
    /// Changes each time the stored updates are compacted (see
    /// [`Adapter::document_compact`]).
    pub generation: u64,
    /// The stored Yjs updates (v1 encoding), oldest first; merged, they are the document.
    pub updates: Vec<Bytes>,
}

/// Every sink of a node, as one.
#[derive(Default)]
pub(crate) struct Sinks(parking_lot::RwLock<Vec<Arc<dyn ClusterSink>>>);

impl Sinks {
    pub(crate) fn add(&self, sink: Arc<dyn ClusterSink>) {
        self.0.write().push(sink);
    }
}

impl ClusterSink for Sinks {
    fn deliver(&self, received: &Received) {
        for sink in self.0.read().iter() {
            sink.deliver(received);
        }
    }

    fn wants(&self, room: &str) -> bool {
        self.0.read().iter().any(|s| s.wants(room))
    }

    fn local_presence(&self) -> Vec<(Arc<str>, Arc<str>, Arc<str>)> {
        self.0
            .read()
            .iter()
            .flat_map(|s| s.local_presence())
            .collect()
    }

    fn departed(&self, departures: &[Departure]) {
        for sink in self.0.read().iter() {
            sink.departed(departures);
        }
    }

    fn resubscribed(&self) {
        for sink in self.0.read().iter() {
            sink.resubscribed();
        }
    }
}

/// A cluster fabric. The engine calls these from its handlers; the futures are `'static` so
/// that no lock or borrow is held across a network round trip.
pub trait Adapter: Send + Sync + 'static {
    /// This node's id (unique per process start).
    fn node_id(&self) -> &str;
    /// Adds a receiver of other nodes' traffic (the chat, the documents, ...): each one
    /// takes the envelopes it understands, and a room is wanted when any sink wants it.
    fn add_sink(&self, sink: Arc<dyn ClusterSink>);
    /// Starts the adapter's tasks on the engine's runtime (once, after the sinks are added).
    fn start(&self, runtime: &tokio::runtime::Handle);
    /// Sends an envelope to the nodes with clients in `room` (`None`: every node).
    /// Never waits: under load envelopes are queued and published in batches, in order.
    fn publish(&self, room: Option<&str>, envelope: &Envelope);
    /// This node started or stopped wanting `room` (see [`ClusterSink::wants`]). The
    /// future resolves once the subscription follows (or after a timeout while Redis is
    /// down), so that a joiner hears the room's next broadcast from any node.
    fn interest_changed(&self, room: &str) -> BoxFuture<'static, ()>;
    /// Counts this node's presence of `user` in `room`; true when the user is now present
    /// on exactly one node (the user appeared in the cluster).
    fn presence_join(
        &self,
        room: &str,
        user: &str,
        username: &str,
    ) -> BoxFuture<'static, Result<bool, ClusterError>>;
    /// Uncounts it; true when the user is no longer present on any node.
    fn presence_leave(
        &self,
        room: &str,
        user: &str,
    ) -> BoxFuture<'static, Result<bool, ClusterError>>;
    /// The users present in `room` on any node, in the order they arrived.
    fn presence_members(&self, room: &str)
        -> BoxFuture<'static, Result<Vec<Member>, ClusterError>>;
    /// Whether `user` is present in `room` on any node.
    fn presence_contains(
        &self,
        room: &str,
        user: &str,
    ) -> BoxFuture<'static, Result<bool, ClusterError>>;
    /// Marks `user` typing in `room` for `ttl` on behalf of `token`; true when the user was
    /// not typing on any node.
    fn typing_start(
        &self,
        room: &str,
        user: &str,
        token: &str,
        ttl: std::time::Duration,
    ) -> BoxFuture<'static, Result<bool, ClusterError>>;
    /// Ends the user's typing (when `token` is given, only if that start still owns it);
    /// true when it was on.
    fn typing_stop(
        &self,
        room: &str,
        user: &str,
        token: Option<&str>,
    ) -> BoxFuture<'static, Result<bool, ClusterError>>;
    /// Appends a message to the room's shared history, keeping the last `limit`.
    fn history_append(
        &self,
        message: &ChatMessage,
        limit: usize,
    ) -> BoxFuture<'static, Result<(), ClusterError>>;
    /// Up to `limit` messages of the room before the message `before` (all when `None`),
    /// oldest first.
    fn history_query(
        &self,
        room: &str,
        before: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<ChatMessage>, ClusterError>>;
    /// Every update stored for the Yjs document `doc`, read atomically with the store's
    /// generation.
    fn document_load(&self, doc: &str) -> BoxFuture<'static, Result<StoredDocument, ClusterError>>;
    /// Appends a Yjs update (v1) to the document's store; resolves the number of stored
    /// updates. Appending is safe from any number of nodes: updates merge idempotently.
    fn document_append(
        &self,
        doc: &str,
        update: Bytes,
    ) -> BoxFuture<'static, Result<usize, ClusterError>>;
    /// Replaces the first `count` stored updates by `merged` (their merge), if no other
    /// compaction happened since the load that read them at `generation`; resolves whether
    /// it did. Updates appended meanwhile are kept.
    fn document_compact(
        &self,
        doc: &str,
        generation: u64,
        count: usize,
        merged: Bytes,
    ) -> BoxFuture<'static, Result<bool, ClusterError>>;
    /// Remembers for `ttl` that this node holds the dropped session `pid`: a client that
    /// comes back through another node is recovered from here.
    fn session_dropped(&self, pid: &str, ttl: std::time::Duration);
    /// Asks the node holding the dropped session `pid` (another one) to hand it over with
    /// the packets the client missed after `offset`; `None` when no other node has it, or
    /// it did not answer in time.
    fn recover_session(
        &self,
        namespace: &str,
        pid: &str,
        offset: Option<&str>,
    ) -> BoxFuture<'static, Option<envelope::RecoveredSession>>;
    /// Sends an envelope to one node (the answer to its request).
    fn send_to_node(&self, node: &str, envelope: &Envelope);
    /// Whether the node is connected to the cluster right now.
    fn is_connected(&self) -> bool;
    /// How long the node has been cut off from the cluster (since start when it never
    /// connected); `None` while connected. `/healthz` reports not-ready past a heartbeat.
    fn disconnected_for(&self) -> Option<std::time::Duration> {
        None
    }
    /// The sockets other nodes have in `room` of `namespace` (each node's answer a JSON
    /// array of `{id, user, rooms}`), collected until every node listening to the room has
    /// answered or `timeout` passes; this node's own are not included.
    fn fetch_sockets(
        &self,
        _namespace: &str,
        _room: &str,
        _timeout: std::time::Duration,
    ) -> BoxFuture<'static, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
    /// Leaves the cluster: this node's presence is removed, its tasks end.
    fn shutdown(&self) -> BoxFuture<'static, ()>;
}

/// The adapter configured by `config` (Redis when `redis_url` is set).
pub(crate) fn from_config(
    config: &crate::Config,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Option<Arc<dyn Adapter>>, crate::Error> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    let adapter = RedisAdapter::new(url, config.cluster_heartbeat, metrics)?;
    Ok(Some(Arc::new(adapter)))
}
