//! The Redis broker: a channel per room, one per node, one for every node.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use tokio::sync::oneshot;

use super::conn::Target;
use super::keys::{alive_key, all_channel, node_channel, room_channel};
use super::listen::{listen, listen_sharded};
use super::tasks::{heartbeat_loop, publish_loop, reap};
use super::{later, Answer, Inner, COMMAND_TIMEOUT};
use crate::cluster::{Broker, ClusterError, ClusterSink};

/// Publishes to and listens on Redis pub/sub; also runs the heartbeat that reaps the
/// presence of dead nodes.
pub struct RedisBroker(pub(super) Arc<Inner>);

impl Broker for RedisBroker {
    fn node_id(&self) -> &str {
        &self.0.node_id
    }

    fn has_peers(&self) -> bool {
        true
    }

    fn add_sink(&self, sink: Arc<dyn ClusterSink>) {
        self.0.sinks.add(sink);
    }

    fn start(&self, runtime: &tokio::runtime::Handle) {
        let Some((publish_rx, interest_rx, pushes)) = self.0.receivers.lock().take() else {
            return; // started already
        };
        let _ = self.0.runtime.set(runtime.clone());
        let sinks: Arc<dyn ClusterSink> = self.0.sinks.clone();
        match (&self.0.target, pushes) {
            (Target::Cluster(_), Some(pushes)) => {
                runtime.spawn(listen_sharded(
                    self.0.clone(),
                    interest_rx,
                    pushes,
                    sinks.clone(),
                ));
            }
            (Target::Single(client), _) => {
                runtime.spawn(listen(
                    self.0.clone(),
                    interest_rx,
                    client.clone(),
                    sinks.clone(),
                ));
            }
            (Target::Cluster(_), None) => {}
        }
        runtime.spawn(publish_loop(self.0.clone(), publish_rx));
        runtime.spawn(heartbeat_loop(self.0.clone(), sinks));
    }

    fn publish(&self, room: Option<&str>, message: Bytes) -> bool {
        let channel = room.map_or_else(all_channel, room_channel);
        self.0.enqueue(channel, message)
    }

    fn send_to_node(&self, node: &str, message: Bytes) -> bool {
        self.0.enqueue(node_channel(node), message)
    }

    fn interest_changed(&self, room: &str) -> Answer<()> {
        let (done, applied) = oneshot::channel();
        let _ = self.0.interest_tx.send((room.to_owned(), Some(done)));
        later(async move {
            // While Redis is down the change waits for the reconnect; the caller need not.
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, applied).await;
        })
    }

    fn listening(&self, room: &str) -> bool {
        self.0.sinks.wants(room)
    }

    fn listeners(&self, room: &str) -> Answer<Result<usize, ClusterError>> {
        let (inner, channel) = (self.0.clone(), room_channel(room));
        later(async move {
            // Sharded channels are counted apart from classic ones.
            let which = if inner.target.sharded() {
                "SHARDNUMSUB"
            } else {
                "NUMSUB"
            };
            inner
                .run(|mut c| async move {
                    redis::cmd("PUBSUB")
                        .arg(which)
                        .arg(&channel)
                        .query_async::<std::collections::HashMap<String, usize>>(&mut c)
                        .await
                })
                .await
                .map(|counts| counts.values().sum())
        })
    }

    fn is_connected(&self) -> bool {
        self.0.up.load(Ordering::Acquire)
    }

    fn disconnected_for(&self) -> Option<Duration> {
        if self.is_connected() {
            return None;
        }
        self.0.down_since.lock().map(|since| since.elapsed())
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let inner = self.0.clone();
        Box::pin(async move {
            // Leave now rather than after the heartbeat TTL: withdraw this node's presence
            // as a survivor would, tell everyone who left, let those messages go out, stop.
            let node = inner.node_id.clone();
            let _ = inner
                .run(|mut c| {
                    let node = node.clone();
                    async move { c.del::<_, ()>(alive_key(&node)).await }
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
