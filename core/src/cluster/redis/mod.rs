//! The Redis adapter: one pub/sub channel per room, presence in hashes kept by Lua scripts,
//! history in capped Streams, and node heartbeats.
//!
//! Why a channel per room rather than one firehose: a node then only receives the rooms it
//! has members in, so adding nodes does not multiply the traffic every node must filter.
//! `SSUBSCRIBE` (Redis 7 sharded pub/sub) would spread the channels over a Redis Cluster,
//! but plain pub/sub works on every Redis and the channels are the same either way.
//!
//! Three tasks run per node: the listener (the subscription connection, resubscribing
//! after every reconnect), the publisher (envelopes queued by handlers, pipelined in
//! batches in the order they were sent), and the heartbeat (liveness, reaping dead nodes,
//! restating this node's presence when Redis lost it). Redis being down never blocks a
//! handler for long: commands time out, publishes are dropped and counted, and everything
//! resumes by itself when Redis is back.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisResult};
use tokio::sync::{mpsc, oneshot, watch};

mod history;
mod sockets;
mod tasks;

use history::query_history;
use tasks::{heartbeat_loop, listen, publish_loop, reap};

use super::envelope::{Envelope, RecoveredSession};
use super::StoredDocument;
use super::{documents, scripts, Adapter, ClusterError, ClusterSink, Sinks};
use crate::hub::presence::Member;
use crate::metrics::Metrics;
use crate::store::ChatMessage;

/// Every key and channel starts with this.
const PREFIX: &str = "switchboard:";
/// A command that takes longer fails (the handler then falls back to local state).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed connect, commands fail at once for this long instead of each trying.
const RECONNECT_THROTTLE: Duration = Duration::from_millis(250);
/// Longest wait between attempts to reconnect the subscription.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Envelopes waiting to be published; beyond it they are dropped and counted.
const PUBLISH_QUEUE: usize = 65_536;
/// Most envelopes in one pipelined round trip.
const PUBLISH_BATCH: usize = 512;

type Interest = (String, Option<oneshot::Sender<()>>);
/// What the tasks take over when the adapter starts.
type Receivers = (
    mpsc::Receiver<(String, Bytes)>,
    mpsc::UnboundedReceiver<Interest>,
);
/// A stream entry as `XRANGE` answers it: its id and its field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// The Redis cluster adapter.
pub struct RedisAdapter {
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
    /// When the connection was lost (or the adapter started, before its first connection);
    /// `None` while connected.
    down_since: Mutex<Option<Instant>>,
    publish_tx: mpsc::Sender<(String, Bytes)>,
    /// Envelopes queued for publishing, and those the publisher has finished with (sent or
    /// dropped): equal when nothing is waiting or in flight.
    queued: AtomicU64,
    settled: AtomicU64,
    interest_tx: mpsc::UnboundedSender<Interest>,
    receivers: Mutex<Option<Receivers>>,
    sinks: Arc<Sinks>,
    stop: watch::Sender<bool>,
    /// Recovery requests waiting for their reply, by request id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Option<RecoveredSession>>>>,
    /// `fetch_sockets` requests waiting for their replies, by request id.
    pending_sockets: Mutex<HashMap<u64, mpsc::Sender<String>>>,
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl RedisAdapter {
    /// An adapter for the Redis at `url` (`redis://host:port/db`); connects when started.
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
        Ok(RedisAdapter {
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
                pending: Mutex::new(HashMap::new()),
                pending_sockets: Mutex::new(HashMap::new()),
                runtime: std::sync::OnceLock::new(),
            }),
        })
    }
}

fn key(kind: &str, name: &str) -> String {
    format!("{PREFIX}{kind}:{name}")
}

fn room_channel(room: &str) -> String {
    key("r", room)
}

/// The node's own channel: requests and replies addressed to it.
fn node_channel(node: &str) -> String {
    key("n", node)
}

fn all_channel() -> String {
    format!("{PREFIX}all")
}

fn nodes_key() -> String {
    format!("{PREFIX}nodes")
}

/// A node's `[room, user]` entry, as stored by a join and removed by a leave.
fn entry(room: &str, user: &str) -> String {
    serde_json::to_string(&(room, user)).unwrap_or_default()
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
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let inner = self.clone();
        Box::pin(async move {
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

    /// Queues an envelope for the publisher; a full queue drops it (counted).
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

impl Adapter for RedisAdapter {
    fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    fn add_sink(&self, sink: Arc<dyn ClusterSink>) {
        self.inner.sinks.add(sink);
    }

    fn start(&self, runtime: &tokio::runtime::Handle) {
        let Some((publish_rx, interest_rx)) = self.inner.receivers.lock().take() else {
            return; // started already
        };
        let _ = self.inner.runtime.set(runtime.clone());
        let sinks: Arc<dyn ClusterSink> = self.inner.sinks.clone();
        runtime.spawn(listen(self.inner.clone(), interest_rx, sinks.clone()));
        runtime.spawn(publish_loop(self.inner.clone(), publish_rx));
        runtime.spawn(heartbeat_loop(self.inner.clone(), sinks));
    }

    fn publish(&self, room: Option<&str>, envelope: &Envelope) {
        let channel = room.map_or_else(all_channel, room_channel);
        let data = envelope.encode(&self.inner.node_id);
        self.inner.enqueue(channel, data);
    }

    fn interest_changed(&self, room: &str) -> BoxFuture<'static, ()> {
        let (done, applied) = oneshot::channel();
        let _ = self.inner.interest_tx.send((room.to_owned(), Some(done)));
        Box::pin(async move {
            // While Redis is down the change waits for the reconnect; the caller need not.
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, applied).await;
        })
    }

    fn presence_join(
        &self,
        room: &str,
        user: &str,
        username: &str,
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let keys = presence_keys(room, &self.inner.node_id);
        let args = [
            user.to_owned(),
            username.to_owned(),
            now_ms().to_string(),
            entry(room, user),
        ];
        self.inner
            .script_flag(&scripts::JOIN, keys.into(), args.into())
    }

    fn presence_leave(
        &self,
        room: &str,
        user: &str,
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let keys = presence_keys(room, &self.inner.node_id);
        let args = [user.to_owned(), entry(room, user)];
        self.inner
            .script_flag(&scripts::LEAVE, keys.into(), args.into())
    }

    fn presence_members(
        &self,
        room: &str,
    ) -> BoxFuture<'static, Result<Vec<Member>, ClusterError>> {
        let inner = self.inner.clone();
        let keys = [key("pj", room), key("pu", room)];
        Box::pin(async move {
            let flat: Vec<String> = inner
                .run(|mut c| async move {
                    let mut call = scripts::MEMBERS.prepare_invoke();
                    call.key(&keys[..]);
                    call.invoke_async(&mut c).await
                })
                .await?;
            Ok(flat
                .chunks_exact(2)
                .map(|p| Member {
                    user_id: p[0].as_str().into(),
                    username: p[1].as_str().into(),
                })
                .collect())
        })
    }

    fn presence_contains(
        &self,
        room: &str,
        user: &str,
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let inner = self.inner.clone();
        let (k, user) = (key("pc", room), user.to_owned());
        Box::pin(async move {
            inner
                .run(|mut c| async move { c.hexists(&k, &user).await })
                .await
        })
    }

    fn typing_start(
        &self,
        room: &str,
        user: &str,
        token: &str,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let args = [token.to_owned(), ttl.as_millis().to_string()];
        let keys = vec![typing_key(room, user)];
        self.inner
            .script_flag(&scripts::TYPING_START, keys, args.into())
    }

    fn typing_stop(
        &self,
        room: &str,
        user: &str,
        token: Option<&str>,
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let keys = vec![typing_key(room, user)];
        let args = vec![token.unwrap_or_default().to_owned()];
        self.inner.script_flag(&scripts::TYPING_STOP, keys, args)
    }

    fn history_append(
        &self,
        message: &ChatMessage,
        limit: usize,
    ) -> BoxFuture<'static, Result<(), ClusterError>> {
        let inner = self.inner.clone();
        let k = key("h", &message.room_id);
        let json = serde_json::to_vec(message);
        Box::pin(async move {
            let json = json.map_err(|e| ClusterError::Protocol(e.to_string()))?;
            inner
                .run(|mut c| async move {
                    redis::cmd("XADD")
                        .arg(&k)
                        .arg("MAXLEN")
                        .arg(limit)
                        .arg("*")
                        .arg("m")
                        .arg(&json[..])
                        .query_async::<redis::Value>(&mut c)
                        .await
                })
                .await
                .map(drop)
        })
    }

    fn history_query(
        &self,
        room: &str,
        before: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<ChatMessage>, ClusterError>> {
        let inner = self.inner.clone();
        let k = key("h", room);
        let before = before.map(str::to_owned);
        Box::pin(async move { query_history(&inner, &k, before.as_deref(), limit).await })
    }

    fn document_load(&self, doc: &str) -> BoxFuture<'static, Result<StoredDocument, ClusterError>> {
        let inner = self.inner.clone();
        let (list, generation) = (key("y", doc), key("yg", doc));
        Box::pin(async move { inner.run(|c| documents::load(c, list, generation)).await })
    }

    fn document_append(
        &self,
        doc: &str,
        update: Bytes,
    ) -> BoxFuture<'static, Result<usize, ClusterError>> {
        let inner = self.inner.clone();
        let list = key("y", doc);
        Box::pin(async move { inner.run(|c| documents::append(c, list, update)).await })
    }

    fn document_compact(
        &self,
        doc: &str,
        generation: u64,
        count: usize,
        merged: Bytes,
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let inner = self.inner.clone();
        let keys = [key("y", doc), key("yg", doc)];
        Box::pin(async move {
            inner
                .run(|c| documents::compact(c, keys, generation, count, merged))
                .await
        })
    }

    fn session_dropped(&self, pid: &str, ttl: Duration) {
        let (inner, k) = (self.inner.clone(), key("sess", pid));
        let Some(runtime) = self.inner.runtime.get() else {
            return;
        };
        runtime.spawn(async move {
            let node = inner.node_id.clone();
            let ttl = ttl.as_millis().max(1) as u64;
            let _ = inner
                .run(|mut c| async move {
                    redis::cmd("SET")
                        .arg(&k)
                        .arg(&node)
                        .arg("PX")
                        .arg(ttl)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        });
    }

    fn recover_session(
        &self,
        namespace: &str,
        pid: &str,
        offset: Option<&str>,
    ) -> BoxFuture<'static, Option<RecoveredSession>> {
        let inner = self.inner.clone();
        let (namespace, pid, offset) = (
            namespace.to_owned(),
            pid.to_owned(),
            offset.map(str::to_owned),
        );
        Box::pin(async move {
            let k = key("sess", &pid);
            let holder: Option<String> = inner
                .run(|mut c| async move { c.get(&k).await })
                .await
                .ok()
                .flatten();
            let holder = holder.filter(|n| *n != inner.node_id)?;
            let id = rand::random::<u64>();
            let (tx, rx) = oneshot::channel();
            inner.pending.lock().insert(id, tx);
            let request = Envelope::RecoveryRequest {
                id,
                reply_to: inner.node_id.clone(),
                namespace,
                pid,
                offset,
            };
            let sent = inner.enqueue(node_channel(&holder), request.encode(&inner.node_id));
            let reply = if sent {
                tokio::time::timeout(COMMAND_TIMEOUT, rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
            inner.pending.lock().remove(&id);
            reply.flatten()
        })
    }

    fn fetch_sockets(
        &self,
        namespace: &str,
        room: &str,
        timeout: Duration,
    ) -> BoxFuture<'static, Vec<String>> {
        Box::pin(sockets::fetch(
            self.inner.clone(),
            namespace.to_owned(),
            room.to_owned(),
            timeout,
        ))
    }

    fn send_to_node(&self, node: &str, envelope: &Envelope) {
        let data = envelope.encode(&self.inner.node_id);
        self.inner.enqueue(node_channel(node), data);
    }

    fn is_connected(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    fn disconnected_for(&self) -> Option<Duration> {
        if self.is_connected() {
            return None;
        }
        self.inner.down_since.lock().map(|since| since.elapsed())
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            // Leave now rather than after the heartbeat TTL: withdraw this node's presence
            // as a survivor would, tell everyone who left, let those envelopes go out, stop.
            let node = inner.node_id.clone();
            let _ = inner
                .run(|mut c| {
                    let node = node.clone();
                    async move { c.del::<_, ()>(key("alive", &node)).await }
                })
                .await;
            let _ = reap(&inner, &*inner.sinks, &node).await;
            let deadline = Instant::now() + COMMAND_TIMEOUT;
            while inner.settled.load(Ordering::Acquire) < inner.queued.load(Ordering::Acquire)
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = inner.stop.send(true);
        })
    }
}

fn typing_key(room: &str, user: &str) -> String {
    // A user id may contain ':'; JSON keeps the pair unambiguous.
    key("ty", &entry(room, user))
}

fn presence_keys(room: &str, node: &str) -> [String; 4] {
    [
        key("pc", room),
        key("pu", room),
        key("pj", room),
        key("pn", node),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_keys_are_unambiguous_with_colons_in_ids() {
        // Joined with ':' these would all be `ty:a:b:c`.
        let keys = [
            typing_key("a:b", "c"),
            typing_key("a", "b:c"),
            typing_key("a:b:c", ""),
            typing_key("", "a:b:c"),
        ];
        for (i, k) in keys.iter().enumerate() {
            for other in &keys[i + 1..] {
                assert_ne!(k, other);
            }
        }
        assert_eq!(typing_key("a\"", "b"), "switchboard:ty:[\"a\\\"\",\"b\"]");
    }
}
