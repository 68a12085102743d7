//! The Redis cluster: one pub/sub channel per room, presence in hashes kept by Lua scripts,
//! history in capped Streams, documents in lists, and node heartbeats. Every store shares
//! one connection (and one outage state) per node; the key names are in `keys.rs`.
//!
//! Why a channel per room rather than one firehose: a node then only receives the rooms it
//! has members in, so adding nodes does not multiply the traffic every node must filter.
//! On one Redis the channels use classic pub/sub (`SUBSCRIBE`/`PUBLISH`, any Redis version);
//! on a Redis Cluster (`redis+cluster://`) sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis
//! 7+), so a message only loads the shard that owns its channel's slot (`conn.rs`).
//!
//! Three tasks run per node: the listener (the subscription connection, resubscribing
//! after every reconnect), the publisher (messages queued by handlers, pipelined in
//! batches in the order they were sent), and the heartbeat (liveness, reaping dead nodes,
//! restating this node's presence when Redis lost it). Redis being down never blocks a
//! handler for long: commands time out, publishes are dropped and counted, and everything
//! resumes by itself when Redis is back.
//!
//! On a Redis Cluster, what a failover (a master killed, its replica promoted) may lose:
//! replication is asynchronous, so the last writes the old master acknowledged but had not
//! yet sent to its replica (history entries, document updates, presence changes, session
//! holders); and the messages published on its channels between the master's death and the
//! promotion plus our re-subscription (about `cluster-node-timeout` plus a second): they
//! reach the node's own clients but not the other nodes', and the sender's history append
//! fails over to the node's local history (logged). Presence heals: a node whose registry
//! entry vanished restates its presence on its next heartbeat, and so does every node whose
//! cluster connection reported a lost connection (once its subscriptions are back), which
//! rewrites whatever presence the promoted replica missed. A whole shard down (master and replicas): the
//! rooms whose slots it owns stop crossing nodes (commands fail within the command timeout,
//! logged at most every 5 s), the other shards' rooms carry on, provided Redis runs with
//! `cluster-require-full-coverage no` (with the default `yes` the whole cluster refuses
//! commands while a slot is uncovered). If the shard holding the node registry (`{nodes}`)
//! is down, nodes report not ready and stop reaping until it is back. Liveness keys that
//! expired while their shard failed over do not get live nodes reaped: a node reaps another
//! only once its own heartbeat and its reads of that node's key have held for a grace
//! (`tasks::reap_grace`). If the whole cluster goes away and comes back, the node makes a
//! new cluster connection from the seeds once the old one has lost every node
//! ([`Inner::rebuild`]), and the listener subscribes everything again on it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use redis::{PushInfo, RedisResult};
use tokio::sync::{mpsc, oneshot, watch};

mod broker;
mod conn;
pub(crate) mod documents;
mod history;
mod keys;
mod listen;
mod scripts;
mod stores;
mod tasks;
#[cfg(test)]
pub(crate) mod testing;

pub use broker::RedisBroker;
pub use history::RedisHistory;
pub use stores::{RedisDocuments, RedisPresence, RedisSessions};

use self::conn::{Conn, Target};
use super::{later, Answer, Cluster, ClusterError, Sinks};
use crate::config::redis_url::{parse_redis_url, RedisTarget};
use crate::metrics::Metrics;

/// A command that takes longer fails (the handler then falls back to local state).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed connect, commands fail at once for this long instead of each trying.
const RECONNECT_THROTTLE: Duration = Duration::from_millis(250);
/// Longest wait between attempts to reconnect the subscription.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Messages waiting to be published; beyond it they are dropped and counted.
const PUBLISH_QUEUE: usize = 65_536;
/// Most messages in one pipelined round trip.
const PUBLISH_BATCH: usize = 512;
/// Messages (and connection events) a Redis Cluster pushed and the listener has not taken
/// yet; beyond it they are dropped and counted, rather than queued without bound.
const PUSH_QUEUE: usize = 65_536;
/// At most one "a command failed" line per this long on a cluster, where a shard down makes
/// every command for its slots fail.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

type Interest = (String, Option<oneshot::Sender<()>>);
/// What the tasks take over when the broker starts.
type Receivers = (
    mpsc::Receiver<(String, Bytes)>,
    mpsc::UnboundedReceiver<Interest>,
    Option<mpsc::Receiver<PushInfo>>,
);

/// A node's connection to the cluster's Redis, from which its broker and stores are made
/// ([`RedisCluster::into_cluster`]).
pub struct RedisCluster {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    target: Target,
    heartbeat: Duration,
    metrics: Arc<Metrics>,
    conn: Mutex<Option<Conn>>,
    /// Held while a cluster connection is being made, so that callers arriving meanwhile
    /// wait for that attempt rather than each make their own (see [`Inner::connection`]).
    connecting: tokio::sync::Mutex<()>,
    /// Bumped whenever a new cluster connection replaces the old one, so that the listener
    /// moves its subscriptions onto it (see [`Inner::rebuild`]).
    generation: watch::Sender<u64>,
    /// Set when a cluster command found no connection to any node at all: the crate's
    /// connection does not come back from that by itself (see [`Inner::rebuild`]).
    lost_all: AtomicBool,
    /// When the connection was last rebuilt, to throttle rebuilds.
    last_rebuild: Mutex<Option<Instant>>,
    /// Set when a cluster connection reported a lost connection: the reaper then waits a
    /// grace period as after its own heartbeat failed (`tasks.rs`).
    shaken: AtomicBool,
    /// When a failed command was last logged (cluster mode, see [`ERROR_LOG_EVERY`]).
    last_error_log: Mutex<Option<Instant>>,
    next_connect: Mutex<Instant>,
    up: AtomicBool,
    /// Set when a cluster shard's connection was lost and came back: the next heartbeat
    /// restates this node's presence (the promoted replica may lack the latest changes).
    restate_wanted: AtomicBool,
    /// When the connection was lost (or the node started, before its first connection);
    /// `None` while connected.
    down_since: Mutex<Option<Instant>>,
    publish_tx: mpsc::Sender<(String, Bytes)>,
    /// Messages queued for publishing, and those the publisher has finished with (sent or
    /// dropped): equal when nothing is waiting or in flight.
    queued: AtomicU64,
    settled: AtomicU64,
    interest_tx: mpsc::UnboundedSender<Interest>,
    receivers: Mutex<Option<Receivers>>,
    sinks: Arc<Sinks>,
    stop: watch::Sender<bool>,
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl RedisCluster {
    /// A node of the cluster at `url` (`redis://host:port/db`, or a Redis Cluster's seed
    /// nodes as `redis+cluster://host:port,host:port`); connects when started.
    pub fn new(
        url: &str,
        heartbeat: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, crate::Error> {
        let invalid = |e: &dyn std::fmt::Display| {
            crate::Error::Cluster(format!("invalid redis URL {url:?}: {e}"))
        };
        let (target, pushes) = match parse_redis_url(url).map_err(|e| invalid(&e))? {
            RedisTarget::Single(url) => (
                Target::Single(redis::Client::open(url).map_err(|e| invalid(&e))?),
                None,
            ),
            RedisTarget::Cluster(seeds) => {
                let (push_tx, push_rx) = mpsc::channel(PUSH_QUEUE);
                let counted = metrics.clone();
                let client = redis::cluster::ClusterClientBuilder::new(seeds)
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .connection_timeout(COMMAND_TIMEOUT)
                    .response_timeout(COMMAND_TIMEOUT)
                    // Few, short retries: a request for a dead master's slots fails within
                    // our command timeout instead of queueing behind minutes of backoff.
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(500)
                    .push_sender(move |info: PushInfo| {
                        // Never block the connection's reader: drop and count instead.
                        let sent = push_tx.try_send(info);
                        if sent.is_err() {
                            counted.cluster.dropped.inc();
                        }
                        sent
                    })
                    .build()
                    .map_err(|e| invalid(&e))?;
                (Target::Cluster(Box::new(client)), Some(push_rx))
            }
        };
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (interest_tx, interest_rx) = mpsc::unbounded_channel();
        metrics.cluster.enabled.store(true, Ordering::Relaxed);
        Ok(RedisCluster {
            inner: Arc::new(Inner {
                node_id: crate::helpers::ids::new_id().to_string(),
                target,
                heartbeat,
                metrics,
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                generation: watch::channel(0).0,
                lost_all: AtomicBool::new(false),
                last_rebuild: Mutex::new(None),
                shaken: AtomicBool::new(false),
                last_error_log: Mutex::new(None),
                next_connect: Mutex::new(Instant::now()),
                up: AtomicBool::new(false),
                restate_wanted: AtomicBool::new(false),
                down_since: Mutex::new(Some(Instant::now())),
                publish_tx,
                queued: AtomicU64::new(0),
                settled: AtomicU64::new(0),
                interest_tx,
                receivers: Mutex::new(Some((publish_rx, interest_rx, pushes))),
                sinks: Arc::new(Sinks::default()),
                stop: watch::channel(false).0,
                runtime: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The broker and the stores, all on this node's connection.
    pub fn into_cluster(self) -> Cluster {
        let inner = self.inner;
        Cluster::new(
            Arc::new(RedisBroker(inner.clone())),
            Arc::new(RedisPresence(inner.clone())),
            Arc::new(RedisHistory(inner.clone())),
            Arc::new(RedisDocuments(inner.clone())),
            Arc::new(RedisSessions(inner)),
        )
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Inner {
    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            *self.down_since.lock() = None;
            tracing::info!(node = %self.node_id, "connected to redis: cross-node delivery is on");
        }
        self.metrics.cluster.redis_connected.set(1);
    }

    /// Logs an outage once (not once per failed command).
    fn mark_down(&self, why: &dyn std::fmt::Display) {
        if self.up.swap(false, Ordering::AcqRel) {
            *self.down_since.lock() = Some(Instant::now());
            tracing::warn!(node = %self.node_id, error = %why,
                "redis is unreachable: local delivery continues, cross-node delivery resumes when it is back");
        }
        self.metrics.cluster.redis_connected.set(0);
    }

    async fn connection(&self) -> Result<Conn, ClusterError> {
        if let Some(c) = self.conn.lock().clone() {
            return Ok(c);
        }
        if self.target.sharded() {
            // A cluster connection is made once and kept (until [`Inner::rebuild`] replaces
            // it): callers arriving while it is being made wait for that attempt rather
            // than fail (making one takes a few round trips: the slot map, then a
            // connection per master).
            let _making = self.connecting.lock().await;
            if let Some(c) = self.conn.lock().clone() {
                return Ok(c);
            }
            let c = self.connect().await?;
            *self.conn.lock() = Some(c.clone());
            return Ok(c);
        }
        self.connect()
            .await
            .inspect(|c| *self.conn.lock() = Some(c.clone()))
    }

    /// One attempt to connect, unless one failed less than [`RECONNECT_THROTTLE`] ago.
    async fn connect(&self) -> Result<Conn, ClusterError> {
        {
            let mut next = self.next_connect.lock();
            let now = Instant::now();
            if now < *next {
                return Err(ClusterError::Redis("not connected".into()));
            }
            *next = now + RECONNECT_THROTTLE;
        }
        let c = tokio::time::timeout(COMMAND_TIMEOUT, self.target.connect())
            .await
            .map_err(|_| ClusterError::Timeout(COMMAND_TIMEOUT))?
            .map_err(|e| ClusterError::Redis(e.to_string()))?;
        Ok(c)
    }

    /// Runs one round trip on the shared connection, with a timeout; a broken connection to
    /// a single Redis is dropped so that the next call reconnects. A cluster connection is
    /// kept (it reconnects and follows failovers by itself, and holds the subscriptions): a
    /// failure there is one shard's, logged at most once per [`ERROR_LOG_EVERY`], and the
    /// heartbeat alone decides whether the cluster is reachable.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, ClusterError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let result = match self.connection().await {
            Ok(c) => match tokio::time::timeout(COMMAND_TIMEOUT, f(c)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    if e.kind() == redis::ErrorKind::ClusterConnectionNotFound
                        && e.to_string().contains("No connections found")
                    {
                        self.lost_all.store(true, Ordering::Release);
                    }
                    let broken = e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_timeout()
                        || e.is_unrecoverable_error();
                    if !broken {
                        return Err(ClusterError::Redis(e.to_string()));
                    }
                    ClusterError::Redis(e.to_string())
                }
                Err(_) => ClusterError::Timeout(COMMAND_TIMEOUT),
            },
            Err(e) => e,
        };
        if self.target.sharded() {
            self.log_failure(&result);
            return Err(result);
        }
        self.conn.lock().take();
        self.mark_down(&result);
        Err(result)
    }

    /// Replaces the cluster connection with a new one made from the seed nodes, if a cluster
    /// command found no connection to any node since the last call and the last rebuild is
    /// at least `every` old. The crate's connection repairs one node or one shard by itself
    /// (a failover, a shard down and back), so it is kept through those; but once it has
    /// lost every node (the whole cluster down, then back) it only answers "No connections
    /// found" and never reaches the seeds again. The old connection is dropped once its
    /// last user lets go; the listener re-subscribes every channel on the new one.
    /// Answers whether a new connection is in place.
    async fn rebuild(&self, every: std::time::Duration) -> bool {
        if !self.target.sharded() || !self.lost_all.load(Ordering::Acquire) {
            return false;
        }
        {
            let mut last = self.last_rebuild.lock();
            let now = Instant::now();
            if last.is_some_and(|at| now.duration_since(at) < every) {
                return false;
            }
            *last = Some(now);
        }
        let _making = self.connecting.lock().await;
        let fresh = tokio::time::timeout(COMMAND_TIMEOUT, self.target.connect()).await;
        match fresh {
            Ok(Ok(c)) => {
                self.lost_all.store(false, Ordering::Release);
                *self.conn.lock() = Some(c);
                self.generation.send_modify(|g| *g += 1);
                tracing::info!(node = %self.node_id,
                    "the redis cluster connection had lost every node: made a new one from the seeds");
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "rebuilding the redis cluster connection failed");
                false
            }
            Err(_) => false,
        }
    }

    /// Logs a failed cluster command, rate-limited.
    fn log_failure(&self, error: &ClusterError) {
        let now = Instant::now();
        let mut last = self.last_error_log.lock();
        if last.is_none_or(|at| now.duration_since(at) >= ERROR_LOG_EVERY) {
            *last = Some(now);
            tracing::warn!(node = %self.node_id, %error,
                "a redis cluster command failed (its shard may be down or failing over); \
                 other shards carry on (this line repeats at most every 5 s)");
        }
    }

    /// Runs a script that answers 1 or 0 (did the change it made matter) on one round trip.
    fn script_flag(
        self: &Arc<Self>,
        script: &'static redis::Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Answer<Result<bool, ClusterError>> {
        let inner = self.clone();
        later(async move {
            let flag: i64 = inner
                .run(|mut c| async move {
                    let mut call = script.prepare_invoke();
                    call.key(&keys[..]).arg(&args[..]);
                    call.invoke_async(&mut c).await
                })
                .await?;
            Ok(flag == 1)
        })
    }

    /// Queues a message for the publisher; a full queue drops it (counted).
    fn enqueue(&self, channel: String, data: Bytes) -> bool {
        if self.publish_tx.try_send((channel, data)).is_ok() {
            self.queued.fetch_add(1, Ordering::AcqRel);
            true
        } else {
            self.metrics.cluster.dropped.inc();
            false
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}
