//! The adapter's three tasks: the listener, the publisher and the heartbeat.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::keys::{
    alive_key, all_channel, entry, node_channel, node_presence_key, nodes_key, room_channel, PREFIX,
};
use super::scripts;
use super::{now_ms, Inner, Interest, COMMAND_TIMEOUT, MAX_BACKOFF, PUBLISH_BATCH};
use crate::cluster::wire::Message;
use crate::cluster::{ClusterError, ClusterSink, Departure};

/// The subscription connection: resubscribes every wanted room after each reconnect and
/// hands arriving messages to the sinks, in order.
pub(super) async fn listen(
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
        channels.push(node_channel(&inner.node_id));
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
    match Message::parse(data) {
        Ok(message) if message.origin == inner.node_id => {}
        Ok(message) => {
            inner.metrics.cluster.received.inc();
            sink.deliver(&message);
        }
        Err(e) => tracing::debug!(error = %e, "dropped a malformed cluster envelope"),
    }
}

/// Publishes queued messages, pipelining whatever accumulated while the last batch was in
/// flight; one connection keeps them in the order they were queued.
pub(super) async fn publish_loop(inner: Arc<Inner>, mut queue: mpsc::Receiver<(String, Bytes)>) {
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
        inner.settled.fetch_add(n as u64, Ordering::AcqRel);
        batch.clear();
    }
}

/// Keeps this node alive in Redis, restates its presence when Redis lost it, and reaps
/// nodes whose heartbeat stopped: their alive key lives two heartbeats, and survivors look
/// every heartbeat, so a dead node's users leave within three.
pub(super) async fn heartbeat_loop(inner: Arc<Inner>, sink: Arc<dyn ClusterSink>) {
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
                    .arg(alive_key(&node))
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
                    pipe.exists(alive_key(other));
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
            call.key(node_presence_key(&node)).arg(PREFIX).arg(now_ms());
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

pub(super) async fn reap(
    inner: &Inner,
    sink: &dyn ClusterSink,
    dead: &str,
) -> Result<(), ClusterError> {
    let keys = [nodes_key(), node_presence_key(dead), alive_key(dead)];
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
