//! Several engine processes as one: the small interfaces every cross-node feature goes
//! through, each with an in-memory implementation (a single node, the default) and a Redis
//! one.
//!
//! - [`Broker`]: publishes opaque messages (see [`wire`]) to the nodes listening to a room
//!   (one channel per room, so a node only hears rooms it has members in), to every node or
//!   to one node; follows this node's interest; reports its connection; tells the features
//!   about the users of dead nodes. Each feature owns the format of its messages.
//! - [`PresenceStore`]: who is in which room (and typing) on any node.
//! - [`HistoryStore`]: the rooms' shared message history.
//! - [`DocumentLog`]: the Yjs documents' shared updates.
//! - [`SessionStore`]: which node holds a dropped Socket.IO session.
//!
//! The engine stays the authority for its own connections; the stores carry what other
//! nodes need. [`Cluster`] holds one of each; the features call it without asking whether
//! there is a cluster. The in-memory implementations answer at once, without allocating,
//! and [`Cluster::has_peers`] (a plain field) lets a sender skip encoding a message nobody
//! would hear.

mod memory;
mod redis;
pub mod wire;

#[cfg(test)]
pub(crate) use self::redis::testing::redis_setups;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};

pub use self::memory::{
    MemoryBroker, MemoryDocuments, MemoryHistory, MemoryPresence, MemorySessions,
};
pub use self::redis::RedisCluster;
use crate::hub::presence::Member;
use wire::Message;

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

/// An answer of a store: ready at once (the in-memory stores: no allocation) or after a
/// round trip (boxed, `'static`, so that no lock or borrow is held across it).
pub type Answer<T> = Either<std::future::Ready<T>, BoxFuture<'static, T>>;

/// An answer available now.
pub fn now<T>(value: T) -> Answer<T> {
    Either::Left(std::future::ready(value))
}

/// An answer after `work`.
pub fn later<T>(work: impl Future<Output = T> + Send + 'static) -> Answer<T> {
    Either::Right(Box::pin(work))
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

/// What the broker calls back into a feature.
pub trait ClusterSink: Send + Sync + 'static {
    /// Another node's message arrived: deliver it to this node's clients (ignore kinds
    /// this sink does not own).
    fn deliver(&self, message: &Message);
    /// Whether this node has clients in `room` (a Socket.IO room, an SSE room, a user's
    /// personal room `user:<id>`, a document `doc:<name>`): the broker listens to the
    /// rooms that are wanted.
    fn wants(&self, _room: &str) -> bool {
        false
    }
    /// Every (room, user id, username) present on this node: restated to the presence
    /// store after it lost or dropped this node's state.
    fn local_presence(&self) -> Vec<(Arc<str>, Arc<str>, Arc<str>)> {
        Vec::new()
    }
    /// Users of dead nodes left rooms: tell everyone (`userLeft`).
    fn departed(&self, _departures: &[Departure]) {}
    /// The subscription was (re)established and every wanted room is listened to again:
    /// whatever was published meanwhile is lost, so state that others must not miss
    /// (documents) is exchanged again.
    fn resubscribed(&self) {}
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
    fn deliver(&self, message: &Message) {
        for sink in self.0.read().iter() {
            sink.deliver(message);
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

/// Carries messages between nodes. Never waits on a send: under load messages are queued
/// and published in batches, in order.
pub trait Broker: Send + Sync + 'static {
    /// This node's id (unique per process start).
    fn node_id(&self) -> &str;
    /// Whether other nodes may hear what this one publishes (false for the in-memory
    /// broker: senders then skip encoding).
    fn has_peers(&self) -> bool;
    /// Adds a receiver of other nodes' messages: each one takes the kinds it owns, and a
    /// room is wanted when any sink wants it.
    fn add_sink(&self, sink: Arc<dyn ClusterSink>);
    /// Starts the broker's tasks on the engine's runtime (once, after the sinks are added).
    fn start(&self, runtime: &tokio::runtime::Handle);
    /// Sends a message (see [`wire::Writer`]) to the nodes listening to `room` (`None`:
    /// every node); false when it was dropped (the queue is full) or nobody may hear it.
    fn publish(&self, room: Option<&str>, message: Bytes) -> bool;
    /// Sends a message to one node (the answer to its request); false as for `publish`.
    fn send_to_node(&self, node: &str, message: Bytes) -> bool;
    /// This node started or stopped wanting `room` (see [`ClusterSink::wants`]). The
    /// future resolves once the subscription follows (or after a timeout while Redis is
    /// down), so that a joiner hears the room's next broadcast from any node.
    fn interest_changed(&self, room: &str) -> Answer<()>;
    /// Whether this node listens to `room` (a sink wants it).
    fn listening(&self, room: &str) -> bool;
    /// How many nodes listen to `room` (this one included when it does).
    fn listeners(&self, room: &str) -> Answer<Result<usize, ClusterError>>;
    /// Whether the node is connected to the cluster right now.
    fn is_connected(&self) -> bool;
    /// How long the node has been cut off from the cluster (since start when it never
    /// connected); `None` while connected. `/healthz` reports not-ready past a heartbeat.
    fn disconnected_for(&self) -> Option<Duration>;
    /// Leaves the cluster: this node's presence is removed, its tasks end.
    fn shutdown(&self) -> BoxFuture<'static, ()>;
}

/// Who is present (and typing) in which room, on any node. A node counts its own users in
/// its hub first and asks the store only about the cluster: the in-memory store (one node)
/// answers from what the caller's hub said.
pub trait PresenceStore: Send + Sync + 'static {
    /// Counts this node's presence of `user` in `room` (its first connection here); true
    /// when the user is now present on exactly one node (the user appeared in the cluster).
    fn join(&self, room: &str, user: &str, username: &str) -> Answer<Result<bool, ClusterError>>;
    /// Uncounts it (its last connection here left); true when the user is no longer present
    /// on any node.
    fn leave(&self, room: &str, user: &str) -> Answer<Result<bool, ClusterError>>;
    /// The users present in `room` on any node, in the order they arrived; `here` lists
    /// this node's (what a store of one node answers).
    fn members(
        &self,
        room: &str,
        here: &dyn Fn() -> Vec<Member>,
    ) -> Answer<Result<Vec<Member>, ClusterError>>;
    /// Whether `user` is present in `room` on any node (asked when it is not on this one).
    fn contains(&self, room: &str, user: &str) -> Answer<Result<bool, ClusterError>>;
    /// Marks `user` typing in `room` for `ttl` on behalf of `token`; true when the user was
    /// not typing on any node (`here`: whether this node's start changed it).
    fn typing_start(
        &self,
        room: &str,
        user: &str,
        token: &str,
        ttl: Duration,
        here: bool,
    ) -> Answer<Result<bool, ClusterError>>;
    /// Ends the user's typing (when `token` is given, only if that start still owns it);
    /// true when it was on (`here`: whether it was on on this node).
    fn typing_stop(
        &self,
        room: &str,
        user: &str,
        token: Option<&str>,
        here: bool,
    ) -> Answer<Result<bool, ClusterError>>;
}

/// The rooms' message history shared by the nodes. A message is the feature's record (a
/// JSON object whose string field `id` is time-sortable: pages go by it); the store keeps
/// it as it is.
pub trait HistoryStore: Send + Sync + 'static {
    /// Whether the history is shared with other nodes (otherwise the chat keeps its own
    /// history only, and does not write it twice).
    fn is_shared(&self) -> bool;
    /// Appends the message `id` (its JSON `record`) to the room's history, keeping the last
    /// `limit`.
    fn append(
        &self,
        room: &str,
        id: &str,
        record: Bytes,
        limit: usize,
    ) -> Answer<Result<(), ClusterError>>;
    /// The records of up to `limit` messages of the room before the message `before` (all
    /// when `None`), oldest first. A stored record without a readable `id` is skipped.
    fn query(
        &self,
        room: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Answer<Result<Vec<Bytes>, ClusterError>>;
}

/// A document's shared store as [`DocumentLog::load`] read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDocument {
    /// Changes each time the stored updates are compacted (see [`DocumentLog::compact`]).
    pub generation: u64,
    /// The stored Yjs updates (v1 encoding), oldest first; merged, they are the document.
    pub updates: Vec<Bytes>,
}

/// Yjs documents as lists of updates shared by the nodes.
pub trait DocumentLog: Send + Sync + 'static {
    /// Every update stored for the document `doc`, read atomically with the store's
    /// generation.
    fn load(&self, doc: &str) -> Answer<Result<StoredDocument, ClusterError>>;
    /// Appends a Yjs update (v1) to the document's store; resolves the number of stored
    /// updates. Appending is safe from any number of nodes: updates merge idempotently.
    fn append(&self, doc: &str, update: Bytes) -> Answer<Result<usize, ClusterError>>;
    /// Replaces the first `count` stored updates by `merged` (their merge), if no other
    /// compaction happened since the load that read them at `generation`; resolves whether
    /// it did. Updates appended meanwhile are kept.
    fn compact(
        &self,
        doc: &str,
        generation: u64,
        count: usize,
        merged: Bytes,
    ) -> Answer<Result<bool, ClusterError>>;
}

/// Which node holds a dropped Socket.IO session (the session itself stays on that node).
pub trait SessionStore: Send + Sync + 'static {
    /// Remembers for `ttl` that this node holds the dropped session `pid`: a client that
    /// comes back through another node is recovered from here.
    fn dropped(&self, pid: &str, ttl: Duration);
    /// The node holding the dropped session `pid`, if any node remembered it.
    fn holder(&self, pid: &str) -> Answer<Option<String>>;
}

/// One of each interface: what the features of a node share with the others.
pub struct Cluster {
    broker: Arc<dyn Broker>,
    /// The broker's [`Broker::has_peers`], read once: the check on every broadcast is a
    /// field load.
    peers: bool,
    /// The history store's [`HistoryStore::is_shared`], read once.
    shared_history: bool,
    presence: Arc<dyn PresenceStore>,
    history: Arc<dyn HistoryStore>,
    documents: Arc<dyn DocumentLog>,
    sessions: Arc<dyn SessionStore>,
}

impl Cluster {
    /// A node of its own: the in-memory implementations.
    pub fn single_node() -> Self {
        Cluster::new(
            Arc::new(MemoryBroker::new()),
            Arc::new(MemoryPresence),
            Arc::new(MemoryHistory::default()),
            Arc::new(MemoryDocuments::default()),
            Arc::new(MemorySessions),
        )
    }

    /// A cluster of these parts.
    pub fn new(
        broker: Arc<dyn Broker>,
        presence: Arc<dyn PresenceStore>,
        history: Arc<dyn HistoryStore>,
        documents: Arc<dyn DocumentLog>,
        sessions: Arc<dyn SessionStore>,
    ) -> Self {
        Cluster {
            peers: broker.has_peers(),
            shared_history: history.is_shared(),
            broker,
            presence,
            history,
            documents,
            sessions,
        }
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Whether other nodes may hear this one: false on a single node, where senders skip
    /// encoding messages.
    pub fn has_peers(&self) -> bool {
        self.peers
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.broker.node_id()
    }

    /// The presence store.
    pub fn presence(&self) -> &Arc<dyn PresenceStore> {
        &self.presence
    }

    /// Whether messages go to the shared history (and this node's own history only
    /// when it fails).
    pub fn shares_history(&self) -> bool {
        self.shared_history
    }

    /// The history store.
    pub fn history(&self) -> &Arc<dyn HistoryStore> {
        &self.history
    }

    /// The documents' store.
    pub fn documents(&self) -> &Arc<dyn DocumentLog> {
        &self.documents
    }

    /// Where dropped sessions are.
    pub fn sessions(&self) -> &Arc<dyn SessionStore> {
        &self.sessions
    }
}

/// The cluster configured by `config`: Redis when `redis_url` is set, else a single node.
pub(crate) fn from_config(
    config: &crate::Config,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Cluster, crate::Error> {
    let Some(url) = &config.redis_url else {
        return Ok(Cluster::single_node());
    };
    Ok(RedisCluster::new(url, config.cluster_heartbeat, metrics)?.into_cluster())
}
