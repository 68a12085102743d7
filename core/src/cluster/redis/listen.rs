//! The listener task: the node's subscriptions, kept through reconnects, failovers and slot
//! moves, and the messages that arrive on them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::conn::Conn;
use super::keys::{all_channel, node_channel, room_channel};
use super::{Inner, Interest, COMMAND_TIMEOUT, MAX_BACKOFF};
use crate::cluster::wire::Message;
use crate::cluster::ClusterSink;

/// How often a cluster listener re-asserts its subscriptions after the connection reported
/// a disconnection or the server dropped one of them, until every one is back.
const RESYNC_EVERY: Duration = Duration::from_millis(500);

/// The subscription connection to a single Redis (classic pub/sub): resubscribes every
/// wanted room after each reconnect and hands arriving messages to the sinks, in order.
pub(super) async fn listen(
    inner: Arc<Inner>,
    mut interest: mpsc::UnboundedReceiver<Interest>,
    client: redis::Client,
    sink: Arc<dyn ClusterSink>,
) {
    let mut stop = inner.stop.subscribe();
    let mut wanted: HashSet<String> = HashSet::new();
    let mut backoff = Duration::from_millis(100);
    while !inner.stopped() {
        let connected = tokio::time::timeout(COMMAND_TIMEOUT, client.get_async_pubsub()).await;
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

/// The sharded subscriptions on a Redis Cluster (`SSUBSCRIBE`, one channel per command, as
/// each may live on another shard). The `redis` crate re-subscribes tracked channels after
/// a reconnect and after a slot-map refresh; this adds what it does not do: a channel the
/// server unsubscribed by itself (its slot migrated: `sunsubscribe` push) or one whose
/// `SSUBSCRIBE` failed (its shard was down) is subscribed again, every [`RESYNC_EVERY`]
/// until it holds, and so is every channel after the connection reported a disconnection
/// (re-subscribing is idempotent on the server). When the node replaces its cluster
/// connection (`Inner::rebuild`: the old one lost every node), every channel moves to the
/// new one.
pub(super) async fn listen_sharded(
    inner: Arc<Inner>,
    mut interest: mpsc::UnboundedReceiver<Interest>,
    mut pushes: mpsc::Receiver<PushInfo>,
    sink: Arc<dyn ClusterSink>,
) {
    let mut stop = inner.stop.subscribe();
    let mut generation = inner.generation.subscribe();
    let mut backoff = Duration::from_millis(100);
    let mut conn = loop {
        match inner.connection().await {
            Ok(Conn::Cluster(c)) => break Conn::Cluster(c),
            Ok(Conn::Single(_)) => return,
            Err(e) => inner.mark_down(&e),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    // Channels (not rooms): every one this node must hear, and those to subscribe again.
    let mut wanted: HashSet<String> = HashSet::new();
    wanted.insert(all_channel());
    wanted.insert(node_channel(&inner.node_id));
    let mut pending: HashSet<String> = wanted.clone();
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    // A connection was lost since the last complete resync: restate presence after it.
    let mut lost = false;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = resync.tick(), if !pending.is_empty() => {
                let mut failed = None;
                for channel in pending.iter() {
                    if let Err(e) = ssubscribe(&mut conn, channel).await {
                        failed = Some(e);
                        break;
                    }
                }
                match failed {
                    None => {
                        pending.clear();
                        if first {
                            first = false;
                            inner.mark_up();
                        }
                        if std::mem::take(&mut lost) {
                            inner.restate_wanted.store(true, std::sync::atomic::Ordering::Release);
                        }
                        // Whatever was published while a channel was gone is lost.
                        sink.resubscribed();
                    }
                    Some(e) => {
                        inner.log_failure(&e);
                        // Keep only what is still wanted; retried next tick.
                        pending.retain(|c| wanted.contains(c));
                    }
                }
            }
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
                generation.borrow_and_update();
                // The old connection is dropped with this clone (and the last command
                // holding one): subscribe everything again on the new one.
                if let Ok(c @ Conn::Cluster(_)) = inner.connection().await {
                    conn = c;
                }
                lost = true;
                pending.extend(wanted.iter().cloned());
            }
            change = interest.recv() => {
                let Some((room, done)) = change else { return };
                let want = sink.wants(&room);
                let channel = room_channel(&room);
                let result = if want && wanted.insert(channel.clone()) {
                    ssubscribe(&mut conn, &channel).await
                } else if !want && wanted.remove(&channel) {
                    pending.remove(&channel);
                    sunsubscribe(&mut conn, &channel).await
                } else {
                    Ok(())
                };
                if let Some(done) = done {
                    let _ = done.send(());
                }
                if let Err(e) = result {
                    inner.log_failure(&e);
                    if want {
                        pending.insert(channel);
                    }
                }
            }
            push = pushes.recv() => {
                let Some(push) = push else { return };
                match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        if let Some(Value::BulkString(data)) = push.data.into_iter().nth(1) {
                            deliver(&inner, &*sink, &Bytes::from(data));
                        }
                    }
                    PushKind::SUnsubscribe => {
                        // Ours (no longer wanted) or the server's (slot moved): re-subscribe
                        // the latter once the slot map has caught up.
                        if let Some(Value::BulkString(c)) = push.data.first() {
                            if let Ok(c) = std::str::from_utf8(c) {
                                if wanted.contains(c) {
                                    pending.insert(c.to_owned());
                                }
                            }
                        }
                    }
                    PushKind::Disconnection => {
                        lost = true;
                        inner.shaken.store(true, std::sync::atomic::Ordering::Release);
                        pending.extend(wanted.iter().cloned());
                    }
                    _ => {}
                }
            }
        }
    }
}

async fn ssubscribe(conn: &mut Conn, channel: &str) -> Result<(), crate::cluster::ClusterError> {
    subscription("SSUBSCRIBE", conn, channel).await
}

async fn sunsubscribe(conn: &mut Conn, channel: &str) -> Result<(), crate::cluster::ClusterError> {
    subscription("SUNSUBSCRIBE", conn, channel).await
}

async fn subscription(
    command: &str,
    conn: &mut Conn,
    channel: &str,
) -> Result<(), crate::cluster::ClusterError> {
    use crate::cluster::ClusterError;
    let Conn::Cluster(c) = conn else {
        return Err(ClusterError::Redis("not a cluster connection".into()));
    };
    let call = async {
        if command == "SSUBSCRIBE" {
            c.ssubscribe(channel).await
        } else {
            c.sunsubscribe(channel).await
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ClusterError::Redis(e.to_string())),
        Err(_) => Err(ClusterError::Timeout(COMMAND_TIMEOUT)),
    }
}

pub(super) fn deliver(inner: &Inner, sink: &dyn ClusterSink, data: &Bytes) {
    match Message::parse(data) {
        Ok(message) if message.origin == inner.node_id => {}
        Ok(message) => {
            inner.metrics.cluster.received.inc();
            sink.deliver(&message);
        }
        Err(e) => tracing::debug!(error = %e, "dropped a malformed cluster envelope"),
    }
}
