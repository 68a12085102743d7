//! The Redis cluster: one pub/sub channel per room, presence in hashes kept by Lua scripts,
//! history in capped Streams, documents in lists, and node heartbeats. Every store shares
//! one connection (and one outage state) per node; the key names are in `keys.rs`.
//!
//! Why a channel per room rather than one firehose: a node then only receives the rooms it
//! has members in, so adding nodes does not multiply the traffic every node must filter.
//! `SSUBSCRIBE` (Redis 7 sharded pub/sub) would spread the channels over a Redis Cluster,
//! but plain pub/sub works on every Redis and the channels are the same either way.
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
use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use tokio::sync::{mpsc, oneshot, watch};

mod broker;
pub(crate) mod documents;
mod history;
mod keys;
mod scripts;
mod stores;
mod tasks;

pub use broker::RedisBroker;
pub use history::RedisHistory;
pub use stores::{RedisDocuments, RedisPresence, RedisSessions};

use super::{later, Answer, Cluster, ClusterError, Sinks};
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

type Interest = (String, Option<oneshot::Sender<()>>);
/// What the tasks take over when the broker starts.
type Receivers = (
    mpsc::Receiver<(String, Bytes)>,
    mpsc::UnboundedReceiver<Interest>,
);

/// A node's connection to the cluster's Redis, from which its broker and stores are made
/// ([`RedisCluster::into_cluster`]).
pub struct RedisCluster {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    client: redis::Client,
    heartbeat: Duration,
    metrics: Arc<Metrics>,
    conn: Mutex<Option<MultiplexedConnection>>,
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
    /// A node of the cluster at `url` (`redis://host:port/db`); connects when started.
    pub fn new(
        url: &str,
        heartbeat: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, crate::Error> {
        let client = redis::Client::open(url)
            .map_err(|e| crate::Error::Cluster(format!("invalid redis URL {url:?}: {e}")))?;
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (interest_tx, interest_rx) = mpsc::unbounded_channel();
        metrics.cluster.enabled.store(true, Ordering::Relaxed);
        Ok(RedisCluster {
            inner: Arc::new(Inner {
                node_id: crate::helpers::ids::new_id().to_string(),
                client,
                heartbeat,
                metrics,
                conn: Mutex::new(None),
                next_connect: Mutex::new(Instant::now()),
                up: AtomicBool::new(false),
                down_since: Mutex::new(Some(Instant::now())),
                publish_tx,
                queued: AtomicU64::new(0),
                settled: AtomicU64::new(0),
                interest_tx,
                receivers: Mutex::new(Some((publish_rx, interest_rx))),
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

    async fn connection(&self) -> Result<MultiplexedConnection, ClusterError> {
        if let Some(c) = self.conn.lock().clone() {
            return Ok(c);
        }
        {
            let mut next = self.next_connect.lock();
            let now = Instant::now();
            if now < *next {
                return Err(ClusterError::Redis("not connected".into()));
            }
            *next = now + RECONNECT_THROTTLE;
        }
        let c = tokio::time::timeout(
            COMMAND_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| ClusterError::Timeout(COMMAND_TIMEOUT))?
        .map_err(|e| ClusterError::Redis(e.to_string()))?;
        *self.conn.lock() = Some(c.clone());
        Ok(c)
    }

    /// Runs one round trip on the shared connection, with a timeout; a broken connection is
    /// dropped so that the next call reconnects.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, ClusterError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
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
        self.conn.lock().take();
        self.mark_down(&result);
        Err(result)
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
