//! The adapter's publisher and heartbeat (the listener is in `listen.rs`), and the presence
//! bookkeeping they drive: restating this node's presence, reaping a dead node's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::keys::{alive_key, node_rooms_key, nodes_key, presence_keys, slot};
use super::scripts;
use super::{now_ms, Inner, COMMAND_TIMEOUT, PUBLISH_BATCH};
use crate::cluster::{ClusterError, ClusterSink, Departure};

/// A present user: id and display name.
type Member = (Arc<str>, Arc<str>);

/// Least time between two rebuilds of a cluster connection that lost every node.
const MIN_REBUILD_EVERY: Duration = Duration::from_secs(1);

/// Most members in one `SADD` of rooms.
const ROOMS_PER_COMMAND: usize = 1000;

/// Publishes queued messages, pipelining whatever accumulated while the last batch was in
/// flight; one connection keeps them in the order they were queued. On a Redis Cluster a
/// pipeline must stay within one slot: the batch is split by slot (a channel's messages
/// keep their order within its slot's pipeline) and the pipelines go out together.
pub(super) async fn publish_loop(inner: Arc<Inner>, mut queue: mpsc::Receiver<(String, Bytes)>) {
    let mut stop = inner.stop.subscribe();
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    let sharded = inner.target.sharded();
    let mut by_slot: HashMap<u16, redis::Pipeline> = HashMap::new();
    loop {
        let n = tokio::select! {
            n = queue.recv_many(&mut batch, PUBLISH_BATCH) => n,
            _ = stop.changed() => return,
        };
        if n == 0 {
            return;
        }
        let sent = if sharded {
            for (channel, data) in &batch {
                by_slot
                    .entry(slot(channel.as_bytes()))
                    .or_default()
                    .cmd("SPUBLISH")
                    .arg(channel)
                    .arg(&data[..])
                    .ignore();
            }
            let runs = by_slot.drain().map(|(_, pipe)| {
                let count = pipe.len() as u64;
                let inner = &inner;
                async move {
                    let ok = inner
                        .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                        .await
                        .is_ok();
                    if ok {
                        count
                    } else {
                        0
                    }
                }
            });
            join_all(runs).await.into_iter().sum::<u64>()
        } else {
            let mut pipe = redis::pipe();
            for (channel, data) in &batch {
                pipe.publish(channel, &data[..]).ignore();
            }
            match inner
                .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await
            {
                Ok(()) => n as u64,
                Err(_) => 0,
            }
        };
        inner.metrics.cluster.published.add(sent);
        inner.metrics.cluster.dropped.add(n as u64 - sent);
        inner.settled.fetch_add(n as u64, Ordering::AcqRel);
        batch.clear();
    }
}

/// How long this node's own heartbeat, and the reads of another node's alive key, must
/// have succeeded without a failure before it may reap that node: a liveness period (two
/// heartbeats, what an alive key lives) plus one command timeout (a live node's beat may be
/// stuck that long on a command).
pub(super) fn reap_grace(heartbeat: Duration) -> Duration {
    heartbeat * 2 + COMMAND_TIMEOUT
}

/// What the reaper knows of how long Redis has answered it (see [`heartbeat_loop`]).
#[derive(Default)]
pub(super) struct Watch {
    /// Since when this node's own heartbeat has held; `None` after a failure.
    healthy_since: Option<Instant>,
    /// Per other node, since when reading its alive key has succeeded without a failure
    /// (on a Redis Cluster, the key may live on a shard that is failing over), `None` after
    /// a failure. Holds only the nodes in the registry.
    readable_since: HashMap<String, Option<Instant>>,
}

/// Since when a grace that started at `now` but only needs to cover a liveness period is
/// taken to have held: the start of this node, or the first read of a node's key, are not
/// failures after which a live node may be stuck on a command, so `grace` less one command
/// timeout (two heartbeats) is enough then. The reaper must still reap a node killed just
/// after the others started within three heartbeats.
fn credited(now: Instant) -> Instant {
    now.checked_sub(COMMAND_TIMEOUT).unwrap_or(now)
}

impl Watch {
    /// Starts the grace again for everyone.
    pub(super) fn reset(&mut self) {
        self.healthy_since = None;
        self.readable_since
            .values_mut()
            .for_each(|since| *since = None);
    }
}

/// Keeps this node alive in Redis, restates its presence when Redis lost it, and reaps
/// nodes whose heartbeat stopped: their alive key lives two heartbeats, and survivors look
/// every heartbeat, so a dead node's users leave within three once Redis is healthy.
///
/// Not before this node's own heartbeat has held for [`reap_grace`] since its last failure
/// (two heartbeats since it started, see [`credited`]) (or the cluster connection's last reported loss), and reading the
/// other node's alive key has too: whatever kept this node from Redis, or from that key's
/// shard (an outage, a restart, a failover longer than a liveness period), likely kept the
/// other node from refreshing its key too, and a live node refreshes its key within one
/// heartbeat once Redis answers again.
pub(super) async fn heartbeat_loop(inner: Arc<Inner>, sink: Arc<dyn ClusterSink>) {
    let mut stop = inner.stop.subscribe();
    let mut tick = tokio::time::interval(inner.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let grace = reap_grace(inner.heartbeat);
    let mut watch = Watch {
        healthy_since: Some(credited(Instant::now())),
        ..Watch::default()
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if inner.shaken.swap(false, Ordering::AcqRel) {
            watch.reset();
        }
        match beat(&inner, &*sink, &mut watch, grace).await {
            Ok(()) => {}
            Err(e) => {
                if inner.target.sharded() {
                    // On a cluster, single commands do not judge the whole cluster: the
                    // heartbeat (the node registry's shard) does.
                    inner.mark_down(&e);
                    inner.rebuild(inner.heartbeat.max(MIN_REBUILD_EVERY)).await;
                }
                tracing::debug!(error = %e, "heartbeat failed");
            }
        }
    }
}

/// One heartbeat; every command names keys of one slot (the registry, or one node's keys),
/// so it runs on a Redis Cluster as on one Redis. A failure of its own liveness commands
/// starts the grace again for every node, a failed read of a node's alive key for that
/// node; a node is reaped only once both are `grace` old.
pub(super) async fn beat(
    inner: &Inner,
    sink: &dyn ClusterSink,
    watch: &mut Watch,
    grace: Duration,
) -> Result<(), ClusterError> {
    let (added, nodes) = match keep_alive(inner).await {
        Ok(answer) => answer,
        Err(e) => {
            watch.healthy_since = None;
            return Err(e);
        }
    };
    let now = Instant::now();
    let healthy = now.duration_since(*watch.healthy_since.get_or_insert(now)) >= grace;
    let node = inner.node_id.clone();
    inner.mark_up();
    if added == 1 || inner.restate_wanted.swap(false, Ordering::AcqRel) {
        // New to the node list: the first beat, or Redis lost our state (restarted empty,
        // failed over before replicating it, or another node reaped us during an outage),
        // or a cluster shard failed over (its new master may lack our latest changes).
        // Say again who is here.
        if let Err(e) = restate(inner, sink).await {
            // Not done: the next heartbeat tries again.
            inner.restate_wanted.store(true, Ordering::Release);
            return Err(e);
        }
    }
    let others: Vec<String> = nodes.into_iter().filter(|n| *n != node).collect();
    watch.readable_since.retain(|n, _| others.contains(n));
    let checks = others.iter().map(|other| {
        inner.run(|mut c| {
            let key = alive_key(other);
            async move {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query_async::<bool>(&mut c)
                    .await
            }
        })
    });
    let alive = join_all(checks).await;
    let mut result = Ok(());
    for (other, alive) in others.iter().zip(alive) {
        let alive = match alive {
            Ok(alive) => alive,
            Err(e) => {
                watch.readable_since.insert(other.clone(), None);
                result = Err(e);
                continue;
            }
        };
        let now = Instant::now();
        let since = watch
            .readable_since
            .entry(other.clone())
            .or_insert(Some(credited(now)))
            .get_or_insert(now);
        if !alive && healthy && now.duration_since(*since) >= grace {
            if let Err(e) = reap(inner, sink, other).await {
                result = Err(e);
            }
        }
    }
    result
}

/// This node's liveness: its alive key (two heartbeats long) and its registry entry.
/// Answers whether the entry was new, and the registry.
async fn keep_alive(inner: &Inner) -> Result<(i64, Vec<String>), ClusterError> {
    let node = inner.node_id.clone();
    let ttl = (inner.heartbeat * 2).as_millis() as u64;
    inner
        .run(|mut c| {
            let key = alive_key(&node);
            async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl)
                    .query_async::<()>(&mut c)
                    .await
            }
        })
        .await?;
    let (added, nodes): (i64, Vec<String>) = inner
        .run(|mut c| {
            let node = node.clone();
            async move {
                redis::pipe()
                    .sadd(nodes_key(), &node)
                    .smembers(nodes_key())
                    .query_async(&mut c)
                    .await
            }
        })
        .await?;
    Ok((added, nodes))
}

/// Replaces this node's presence in Redis with what it knows: per room it held or holds
/// entries in, one script (the room's slot) withdraws its old entries and adds the current
/// ones; the node's set of rooms is updated around them by single-key commands.
async fn restate(inner: &Inner, sink: &dyn ClusterSink) -> Result<(), ClusterError> {
    let mut rooms: BTreeMap<Arc<str>, Vec<Member>> = BTreeMap::new();
    for (room, user, name) in sink.local_presence() {
        rooms.entry(room).or_default().push((user, name));
    }
    let node = inner.node_id.clone();
    let rooms_key = node_rooms_key(&node);
    let old: HashSet<String> = {
        let k = rooms_key.clone();
        inner
            .run(|mut c| async move {
                redis::cmd("SMEMBERS")
                    .arg(k)
                    .query_async::<HashSet<String>>(&mut c)
                    .await
            })
            .await?
    };
    // Listed first: if this node dies half-way, survivors still find every room.
    let current: Vec<&str> = rooms.keys().map(|r| &**r).collect();
    for chunk in current.chunks(ROOMS_PER_COMMAND) {
        let k = rooms_key.clone();
        inner
            .run(|mut c| async move {
                redis::cmd("SADD")
                    .arg(k)
                    .arg(chunk)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
    }
    let now = now_ms();
    let gone: Vec<&str> = old
        .iter()
        .map(String::as_str)
        .filter(|r| !rooms.contains_key(*r))
        .collect();
    let empty = Vec::new();
    let restates = current
        .iter()
        .map(|room| (*room, rooms.get(*room).unwrap_or(&empty)))
        .chain(gone.iter().map(|room| (*room, &empty)))
        .map(|(room, users)| {
            let keys = presence_keys(room, &node);
            inner.run(move |mut c| async move {
                let mut call = scripts::RESTATE.prepare_invoke();
                call.key(&keys[..]).arg(now);
                for (user, name) in users {
                    call.arg(&**user).arg(&**name);
                }
                call.invoke_async::<()>(&mut c).await
            })
        });
    for result in join_all(restates).await {
        result?;
    }
    for chunk in gone.chunks(ROOMS_PER_COMMAND) {
        let k = rooms_key.clone();
        inner
            .run(|mut c| async move {
                redis::cmd("SREM")
                    .arg(k)
                    .arg(chunk)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
    }
    Ok(())
}

/// Withdraws a dead node's presence (or this node's own, when it stops): unless its alive
/// key is back, the first survivor to remove it from the registry walks its set of rooms
/// and withdraws its entries room by room (each an idempotent script in the room's slot,
/// so a repeat changes nothing and no departure is announced twice). If a room cannot be
/// reached (its shard down), the node goes back into the registry and a later heartbeat
/// tries again.
pub(super) async fn reap(
    inner: &Inner,
    sink: &dyn ClusterSink,
    dead: &str,
) -> Result<(), ClusterError> {
    let single = |cmd: redis::Cmd| {
        inner.run(|mut c| async move { cmd.query_async::<redis::Value>(&mut c).await })
    };
    if redis::from_redis_value::<bool>(
        single(redis::cmd("EXISTS").arg(alive_key(dead)).clone()).await?,
    )
    .unwrap_or(true)
    {
        return Ok(());
    }
    let claimed = single(redis::cmd("SREM").arg(nodes_key()).arg(dead).clone()).await?;
    if redis::from_redis_value::<i64>(claimed).unwrap_or(0) == 0 {
        return Ok(());
    }
    let rooms: Vec<String> = redis::from_redis_value(
        single(redis::cmd("SMEMBERS").arg(node_rooms_key(dead)).clone()).await?,
    )
    .unwrap_or_default();
    let withdrawals = rooms.iter().map(|room| {
        let keys = presence_keys(room, dead);
        inner.run(move |mut c| async move {
            let mut call = scripts::WITHDRAW.prepare_invoke();
            call.key(&keys[..]);
            call.invoke_async::<Vec<String>>(&mut c).await
        })
    });
    let mut departures = Vec::new();
    let mut failed = None;
    for (room, result) in rooms.iter().zip(join_all(withdrawals).await) {
        match result {
            Ok(flat) => departures.extend(flat.chunks_exact(2).map(|d| Departure {
                room: room.as_str().into(),
                user_id: d[0].as_str().into(),
                username: d[1].as_str().into(),
            })),
            Err(e) => failed = Some(e),
        }
    }
    if !departures.is_empty() {
        tracing::info!(
            node = dead,
            users = departures.len(),
            "a node stopped heartbeating: its users left presence"
        );
        inner.metrics.cluster.reaped.add(departures.len() as u64);
        sink.departed(&departures);
    }
    if let Some(e) = failed {
        let _ = single(redis::cmd("SADD").arg(nodes_key()).arg(dead).clone()).await;
        return Err(e);
    }
    single(redis::cmd("DEL").arg(node_rooms_key(dead)).clone()).await?;
    Ok(())
}

#[cfg(test)]
#[path = "tasks_tests.rs"]
mod tests;
