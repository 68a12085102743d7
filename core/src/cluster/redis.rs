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

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisResult};
use tokio::sync::{mpsc, oneshot, watch};

use super::envelope::{Envelope, Received};
use super::StoredDocument;
use super::{documents, scripts, Adapter, ClusterError, ClusterSink, Departure, Sinks};
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
    publish_tx: mpsc::Sender<(String, Bytes)>,
    interest_tx: mpsc::UnboundedSender<Interest>,
    receivers: Mutex<Option<Receivers>>,
    sinks: Arc<Sinks>,
    stop: watch::Sender<bool>,
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
                node_id: crate::transport::new_id().to_string(),
                client,
                heartbeat,
                metrics,
                conn: Mutex::new(None),
                next_connect: Mutex::new(Instant::now()),
                up: AtomicBool::new(false),
                publish_tx,
                interest_tx,
                receivers: Mutex::new(Some((publish_rx, interest_rx))),
                sinks: Arc::new(Sinks::default()),
                stop: watch::channel(false).0,
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
            tracing::info!(node = %self.node_id, "connected to redis: cross-node delivery is on");
        }
        self.metrics.cluster.redis_connected.set(1);
    }

    /// Logs an outage once (not once per failed command).
    fn mark_down(&self, why: &dyn std::fmt::Display) {
        if self.up.swap(false, Ordering::AcqRel) {
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
        let sinks: Arc<dyn ClusterSink> = self.inner.sinks.clone();
        runtime.spawn(listen(self.inner.clone(), interest_rx, sinks.clone()));
        runtime.spawn(publish_loop(self.inner.clone(), publish_rx));
        runtime.spawn(heartbeat_loop(self.inner.clone(), sinks));
    }

    fn publish(&self, room: Option<&str>, envelope: &Envelope) {
        let channel = room.map_or_else(all_channel, room_channel);
        let data = envelope.encode(&self.inner.node_id);
        if self.inner.publish_tx.try_send((channel, data)).is_err() {
            self.inner.metrics.cluster.dropped.inc();
        }
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
        let inner = self.inner.clone();
        let keys = presence_keys(room, &inner.node_id);
        let (user, username, entry) = (user.to_owned(), username.to_owned(), entry(room, user));
        Box::pin(async move {
            let first: i64 = inner
                .run(|mut c| async move {
                    let mut call = scripts::JOIN.prepare_invoke();
                    call.key(&keys[..])
                        .arg(&user)
                        .arg(&username)
                        .arg(now_ms())
                        .arg(&entry);
                    call.invoke_async(&mut c).await
                })
                .await?;
            Ok(first == 1)
        })
    }

    fn presence_leave(
        &self,
        room: &str,
        user: &str,
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let inner = self.inner.clone();
        let keys = presence_keys(room, &inner.node_id);
        let (user, entry) = (user.to_owned(), entry(room, user));
        Box::pin(async move {
            let last: i64 = inner
                .run(|mut c| async move {
                    let mut call = scripts::LEAVE.prepare_invoke();
                    call.key(&keys[..]).arg(&user).arg(&entry);
                    call.invoke_async(&mut c).await
                })
                .await?;
            Ok(last == 1)
        })
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
        let inner = self.inner.clone();
        let k = typing_key(room, user);
        let (token, ttl) = (token.to_owned(), ttl.as_millis() as u64);
        Box::pin(async move {
            let started: i64 = inner
                .run(|mut c| async move {
                    let mut call = scripts::TYPING_START.prepare_invoke();
                    call.key(&k).arg(&token).arg(ttl);
                    call.invoke_async(&mut c).await
                })
                .await?;
            Ok(started == 1)
        })
    }

    fn typing_stop(
        &self,
        room: &str,
        user: &str,
        token: Option<&str>,
    ) -> BoxFuture<'static, Result<bool, ClusterError>> {
        let inner = self.inner.clone();
        let k = typing_key(room, user);
        let token = token.unwrap_or_default().to_owned();
        Box::pin(async move {
            let stopped: i64 = inner
                .run(|mut c| async move {
                    let mut call = scripts::TYPING_STOP.prepare_invoke();
                    call.key(&k).arg(&token);
                    call.invoke_async(&mut c).await
                })
                .await?;
            Ok(stopped == 1)
        })
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

    fn is_connected(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
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
            while inner.publish_tx.capacity() < inner.publish_tx.max_capacity()
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

/// Pages backwards through the room's stream until `limit` messages before `before` are
/// found. Stream order is arrival order; `before` is a message id, compared as ids sort.
async fn query_history(
    inner: &Inner,
    k: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<ChatMessage>, ClusterError> {
    const PAGE: usize = 200;
    let mut found: Vec<ChatMessage> = Vec::with_capacity(limit.min(PAGE));
    let mut end = "+".to_owned();
    loop {
        let (k, end_arg) = (k.to_owned(), end.clone());
        let page: Vec<StreamEntry> = inner
            .run(|mut c| async move {
                redis::cmd("XREVRANGE")
                    .arg(&k)
                    .arg(&end_arg)
                    .arg("-")
                    .arg("COUNT")
                    .arg(PAGE)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let exhausted = page.len() < PAGE;
        for (id, fields) in &page {
            end = format!("({id}");
            let Some((_, json)) = fields.iter().find(|(f, _)| f == "m") else {
                continue;
            };
            let Ok(message) = serde_json::from_slice::<ChatMessage>(json) else {
                continue;
            };
            if before.is_none_or(|b| message.id.as_str() < b) {
                found.push(message);
                if found.len() == limit {
                    break;
                }
            }
        }
        if found.len() == limit || exhausted {
            break;
        }
    }
    found.reverse();
    Ok(found)
}

/// The subscription connection: resubscribes every wanted room after each reconnect and
/// hands arriving envelopes to the engine, in order.
async fn listen(
    inner: Arc<Inner>,
    mut interest: mpsc::UnboundedReceiver<Interest>,
    sink: Arc<dyn ClusterSink>,
) {
    let mut stop = inner.stop.subscribe();
    let mut wanted: HashSet<String> = HashSet::new();
    let mut backoff = Duration::from_millis(100);
    while !inner.stopped() {
        let connected =
            tokio::time::timeout(COMMAND_TIMEOUT, inner.client.get_async_pubsub()).await;
        let pubsub = match connected {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                inner.mark_down(&e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                inner.mark_down(&"connect timed out");
                continue;
            }
        };
        let (mut subscriptions, mut messages) = pubsub.split();
        let mut channels: Vec<String> = wanted.iter().map(|r| room_channel(r)).collect();
        channels.push(all_channel());
        if let Err(e) = subscriptions.subscribe(&channels).await {
            inner.mark_down(&e);
            continue;
        }
        backoff = Duration::from_millis(100);
        inner.mark_up();
        sink.resubscribed();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                change = interest.recv() => {
                    let Some((room, done)) = change else { return };
                    let want = sink.wants(&room);
                    let result = if want && wanted.insert(room.clone()) {
                        subscriptions.subscribe(room_channel(&room)).await
                    } else if !want && wanted.remove(&room) {
                        subscriptions.unsubscribe(room_channel(&room)).await
                    } else {
                        Ok(())
                    };
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    if let Err(e) = result {
                        inner.mark_down(&e);
                        break;
                    }
                }
                message = messages.next() => {
                    let Some(message) = message else {
                        inner.mark_down(&"subscription connection closed");
                        break;
                    };
                    let data = Bytes::copy_from_slice(message.get_payload_bytes());
                    deliver(&inner, &*sink, &data);
                }
            }
        }
    }
}

fn deliver(inner: &Inner, sink: &dyn ClusterSink, data: &Bytes) {
    match Envelope::decode(data) {
        Ok(Received { origin, .. }) if origin == inner.node_id => {}
        Ok(received) => {
            inner.metrics.cluster.received.inc();
            sink.deliver(&received);
        }
        Err(e) => tracing::debug!(error = %e, "dropped a malformed cluster envelope"),
    }
}

/// Publishes queued envelopes, pipelining whatever accumulated while the last batch was in
/// flight; one connection keeps them in the order they were queued.
async fn publish_loop(inner: Arc<Inner>, mut queue: mpsc::Receiver<(String, Bytes)>) {
    let mut stop = inner.stop.subscribe();
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        let n = tokio::select! {
            n = queue.recv_many(&mut batch, PUBLISH_BATCH) => n,
            _ = stop.changed() => return,
        };
        if n == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        for (channel, data) in &batch {
            pipe.publish(channel, &data[..]).ignore();
        }
        match inner
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
        {
            Ok(()) => inner.metrics.cluster.published.add(n as u64),
            Err(_) => inner.metrics.cluster.dropped.add(n as u64),
        }
        batch.clear();
    }
}

/// Keeps this node alive in Redis, restates its presence when Redis lost it, and reaps
/// nodes whose heartbeat stopped: their alive key lives two heartbeats, and survivors look
/// every heartbeat, so a dead node's users leave within three.
async fn heartbeat_loop(inner: Arc<Inner>, sink: Arc<dyn ClusterSink>) {
    let mut stop = inner.stop.subscribe();
    let mut tick = tokio::time::interval(inner.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = beat(&inner, &*sink).await {
            tracing::debug!(error = %e, "heartbeat failed");
        }
    }
}

async fn beat(inner: &Inner, sink: &dyn ClusterSink) -> Result<(), ClusterError> {
    let node = inner.node_id.clone();
    let ttl = (inner.heartbeat * 2).as_millis() as u64;
    let (added, nodes): (i64, Vec<String>) = inner
        .run(|mut c| {
            let node = node.clone();
            async move {
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(key("alive", &node))
                    .arg(1)
                    .arg("PX")
                    .arg(ttl)
                    .ignore()
                    .sadd(nodes_key(), &node)
                    .smembers(nodes_key());
                pipe.query_async(&mut c).await
            }
        })
        .await?;
    inner.mark_up();
    if added == 1 {
        // New to the node list: the first beat, or Redis lost our state (restarted empty,
        // or another node reaped us during an outage). Say again who is here.
        restate(inner, sink).await?;
    }
    let others: Vec<String> = nodes.into_iter().filter(|n| *n != node).collect();
    if others.is_empty() {
        return Ok(());
    }
    let alive: Vec<bool> = {
        let others = others.clone();
        inner
            .run(|mut c| async move {
                let mut pipe = redis::pipe();
                for other in &others {
                    pipe.exists(key("alive", other));
                }
                pipe.query_async(&mut c).await
            })
            .await?
    };
    for (other, alive) in others.iter().zip(alive) {
        if !alive {
            reap(inner, sink, other).await?;
        }
    }
    Ok(())
}

async fn restate(inner: &Inner, sink: &dyn ClusterSink) -> Result<(), ClusterError> {
    let present = sink.local_presence();
    let node = inner.node_id.clone();
    inner
        .run(|mut c| async move {
            let mut call = scripts::RESTATE.prepare_invoke();
            call.key(key("pn", &node)).arg(PREFIX).arg(now_ms());
            for (room, user, name) in &present {
                call.arg(&**room)
                    .arg(&**user)
                    .arg(&**name)
                    .arg(entry(room, user));
            }
            call.invoke_async::<()>(&mut c).await
        })
        .await
}

async fn reap(inner: &Inner, sink: &dyn ClusterSink, dead: &str) -> Result<(), ClusterError> {
    let keys = [nodes_key(), key("pn", dead), key("alive", dead)];
    let dead_id = dead.to_owned();
    let flat: Vec<String> = inner
        .run(|mut c| async move {
            let mut call = scripts::REAP.prepare_invoke();
            call.key(&keys[..]).arg(&dead_id).arg(PREFIX);
            call.invoke_async(&mut c).await
        })
        .await?;
    let departures: Vec<Departure> = flat
        .chunks_exact(3)
        .map(|d| Departure {
            room: d[0].as_str().into(),
            user_id: d[1].as_str().into(),
            username: d[2].as_str().into(),
        })
        .collect();
    if !departures.is_empty() {
        tracing::info!(
            node = dead,
            users = departures.len(),
            "a node stopped heartbeating: its users left presence"
        );
        inner.metrics.cluster.reaped.add(departures.len() as u64);
        sink.departed(&departures);
    }
    Ok(())
}
