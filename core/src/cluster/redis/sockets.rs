//! Socket.IO's `fetchSockets` over Redis: ask every node subscribed to a room for its
//! sockets there, and collect their answers until all have answered or time is up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{room_channel, Inner};
use crate::cluster::envelope::Envelope;
use crate::cluster::ClusterSink;

/// Each answering node's sockets in `room`, as JSON arrays (see `Adapter::fetch_sockets`).
pub(super) async fn fetch(
    inner: Arc<Inner>,
    namespace: String,
    room: String,
    timeout: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let channel = room_channel(&room);
    // The nodes subscribed to the room's channel answer; this one, when it is one of
    // them, does not (its own envelopes are dropped on receipt).
    let asked = channel.clone();
    let listeners: usize = match tokio::time::timeout_at(
        deadline,
        inner.run(|mut c| async move {
            redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&asked)
                .query_async::<(String, usize)>(&mut c)
                .await
        }),
    )
    .await
    {
        Ok(Ok((_, n))) => n,
        _ => return Vec::new(),
    };
    let expected = listeners.saturating_sub(usize::from(inner.sinks.wants(&room)));
    if expected == 0 {
        return Vec::new();
    }
    let id = rand::random::<u64>();
    let (tx, mut rx) = mpsc::channel(expected.min(1024));
    inner.pending_sockets.lock().insert(id, tx);
    let request = Envelope::SocketsRequest {
        id,
        reply_to: inner.node_id.clone(),
        namespace,
        room,
    };
    let mut replies = Vec::new();
    if inner.enqueue(channel, request.encode(&inner.node_id)) {
        while replies.len() < expected {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(reply)) => replies.push(reply),
                _ => break,
            }
        }
    }
    inner.pending_sockets.lock().remove(&id);
    replies
}
