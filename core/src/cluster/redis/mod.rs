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
    /// The cluster connection, once made (see [`Inner::connection`]).
    cluster_conn: tokio::sync::OnceCell<Conn>,
    /// When a failed command was last logged (cluster mode, see [`ERROR_LOG_EVERY`]).
    last_error_log: Mutex<Option<Instant>>,
    next_connect: Mutex<Instant>,
    up: AtomicBool,
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
                cluster_conn: tokio::sync::OnceCell::new(),
                last_error_log: Mutex::new(None),
                next_connect: Mutex::new(Instant::now()),
                up: AtomicBool::new(false),
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
            // A cluster connection is made once and kept: callers arriving while it is
            // being made wait for that attempt rather than fail (making one takes a few
            // round trips: the slot map, then a connection per master).
            let c = self
                .cluster_conn
                .get_or_try_init(|| self.connect())
                .await?
                .clone();
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
