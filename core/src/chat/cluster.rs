//! The chat contract across nodes: where the chat state asks the cluster (presence, history)
//! and where the cluster hands other nodes' traffic to this node's clients.
//!
//! Every operation falls back to this node's own state when the cluster fails (Redis
//! down): local clients keep being served, and the cluster catches up when it returns.

use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;

use super::Chat;
use crate::cluster::envelope::{Envelope, Received};
use crate::cluster::{ClusterError, ClusterSink, Departure};
use crate::hub::presence::Member;
use crate::sse::SseEvent;
use crate::store::{ChatMessage, StoreError};

impl Chat {
    /// Whether this node is part of a cluster.
    pub(super) fn in_cluster(&self) -> bool {
        self.cluster.get().is_some()
    }

    /// Counts a user's first connection on this node in `room` in the cluster; true when
    /// the user just appeared in the cluster (or, without one, on this node).
    pub(super) async fn cluster_join(&self, room: &str, user: &str, username: &str) -> bool {
        let Some(cluster) = self.cluster.get() else {
            return true;
        };
        match cluster.presence_join(room, user, username).await {
            Ok(first) => first,
            Err(e) => {
                tracing::debug!(error = %e, room, "cluster presence unavailable; deciding locally");
                true
            }
        }
    }

    /// Uncounts a user's last connection on this node in `room`; true when the user is
    /// gone from the cluster.
    pub(super) async fn cluster_leave(&self, room: &str, user: &str) -> bool {
        let Some(cluster) = self.cluster.get() else {
            return true;
        };
        match cluster.presence_leave(room, user).await {
            Ok(last) => last,
            Err(e) => {
                tracing::debug!(error = %e, room, "cluster presence unavailable; deciding locally");
                true
            }
        }
    }

    /// The users in `room`, cluster-wide when there is a cluster.
    pub(crate) async fn members(&self, room: &str) -> Vec<Member> {
        if let Some(cluster) = self.cluster.get() {
            match cluster.presence_members(room).await {
                Ok(members) => return members,
                Err(e) => tracing::debug!(error = %e, room, "cluster presence unavailable"),
            }
        }
        self.presence.lock().members(room)
    }

    /// Whether `user` is present in `room`, cluster-wide when there is a cluster.
    pub(super) async fn is_present(&self, room: &str, user: &str) -> bool {
        if self.presence.lock().contains(room, user) {
            return true;
        }
        match self.cluster.get() {
            Some(cluster) => cluster.presence_contains(room, user).await.unwrap_or(false),
            None => false,
        }
    }

    /// Starts the user's typing in the cluster: `Some(changed)`, or `None` without a
    /// reachable cluster (the caller then goes by this node's state).
    pub(super) async fn cluster_typing_start(
        &self,
        room: &str,
        user: &str,
        generation: u64,
    ) -> Option<bool> {
        let cluster = self.cluster.get()?;
        let token = format!("{}.{generation}", cluster.node_id());
        cluster
            .typing_start(room, user, &token, self.config.typing_timeout)
            .await
            .ok()
    }

    /// Stops the user's typing in the cluster (only the start of `generation` on this node,
    /// when given): `Some(was on)`, or `None` without a reachable cluster.
    pub(super) async fn cluster_typing_stop(
        &self,
        room: &str,
        user: &str,
        generation: Option<u64>,
    ) -> Option<bool> {
        let cluster = self.cluster.get()?;
        let token = generation.map(|g| format!("{}.{g}", cluster.node_id()));
        cluster.typing_stop(room, user, token.as_deref()).await.ok()
    }

    /// Waits until this node hears `room`'s broadcasts from every node (the adapter bounds
    /// the wait while Redis is down).
    pub(super) async fn await_subscription(&self, room: &str) {
        if let Some(interest) = self.namespace().and_then(|ns| ns.room_interest(room)) {
            interest.await;
        }
    }

    /// Starts appending to the cluster's shared history (`None` without a cluster): the
    /// command is on the Redis connection when this returns, ahead of anything published
    /// after it.
    pub(super) async fn begin_shared_history_append(
        &self,
        message: &Arc<ChatMessage>,
    ) -> Option<BoxFuture<'static, Result<(), ClusterError>>> {
        let cluster = self.cluster.get()?;
        let mut append = cluster.history_append(message, self.config.history_limit);
        let first =
            std::future::poll_fn(|cx| std::task::Poll::Ready(append.as_mut().poll(cx))).await;
        Some(match first {
            std::task::Poll::Ready(done) => Box::pin(std::future::ready(done)),
            std::task::Poll::Pending => append,
        })
    }

    /// Waits for a shared-history append; when Redis failed, this node's history keeps
    /// the message (it is served from here until Redis is back).
    pub(super) async fn finish_shared_history_append(
        &self,
        append: BoxFuture<'static, Result<(), ClusterError>>,
        message: &Arc<ChatMessage>,
    ) {
        if let Err(e) = append.await {
            tracing::warn!(error = %e, "shared history unavailable; keeping the message on this node");
            if let Err(e) = self.history.append(message.clone()).await {
                tracing::warn!(error = %e, "history append failed");
            }
        }
    }

    /// Reads the room's history: the cluster's shared history when there is one (this
    /// node's own while Redis is unreachable).
    pub(crate) async fn history_query(
        &self,
        room: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<ChatMessage>>, StoreError> {
        if let Some(cluster) = self.cluster.get() {
            match cluster.history_query(room, before, limit).await {
                Ok(messages) => return Ok(messages.into_iter().map(Arc::new).collect()),
                Err(e) => {
                    tracing::warn!(error = %e, "shared history unavailable; reading this node's")
                }
            }
        }
        self.history.query(room, before, limit).await
    }

    /// Sends an SSE event to a room's SSE clients on every node.
    pub(crate) fn sse_to_room(&self, room: &str, event: &SseEvent) -> usize {
        self.sse_publish(false, room, event);
        self.sse.to_room(room, event)
    }

    /// Sends an SSE event to a user's SSE clients on every node.
    pub(crate) fn sse_to_user(&self, user_id: &str, event: &SseEvent) -> usize {
        self.sse_publish(true, user_id, event);
        self.sse.to_user(user_id, event)
    }

    fn sse_publish(&self, to_user: bool, target: &str, event: &SseEvent) {
        if let Some(cluster) = self.cluster.get() {
            let channel = if to_user {
                super::personal_room(target)
            } else {
                target.to_owned()
            };
            cluster.publish(
                Some(&channel),
                &Envelope::Sse {
                    to_user,
                    target: target.to_owned(),
                    event: event.payload(),
                },
            );
        }
    }

    /// Asks the other nodes to disconnect a user's connections there.
    pub(super) fn disconnect_user_elsewhere(&self, user_id: &str) {
        if let Some(cluster) = self.cluster.get() {
            cluster.publish(
                Some(&super::personal_room(user_id)),
                &Envelope::DisconnectUser {
                    user: user_id.to_owned(),
                },
            );
        }
    }

    /// An SSE client subscribed or unsubscribed: keep the cluster subscriptions in step.
    /// The future resolves once they follow (see [`crate::cluster::Adapter::interest_changed`]); changes are
    /// applied in order, so the last one's completion covers them all.
    pub(super) fn sse_interest(
        &self,
        user_id: &str,
        rooms: &[Arc<str>],
    ) -> Option<BoxFuture<'static, ()>> {
        let cluster = self.cluster.get()?;
        let mut applied = cluster.interest_changed(&super::personal_room(user_id));
        for room in rooms {
            applied = cluster.interest_changed(room);
        }
        Some(applied)
    }
}

/// The chat's side of the cluster: what other nodes send, delivered here.
pub(super) struct ChatSink(pub Weak<Chat>);

impl ClusterSink for ChatSink {
    fn deliver(&self, received: &Received) {
        let Some(chat) = self.0.upgrade() else {
            return;
        };
        match &received.envelope {
            Envelope::SocketIo(b) => {
                if let Some(ns) = chat.namespace().filter(|ns| ns.name() == b.namespace) {
                    ns.deliver_remote(b);
                }
            }
            Envelope::Sse {
                to_user,
                target,
                event,
            } => {
                let event = SseEvent::from_wire(event.clone());
                if *to_user {
                    chat.sse.to_user(target, &event);
                } else {
                    chat.sse.to_room(target, &event);
                }
            }
            Envelope::DisconnectUser { user } => {
                chat.disconnect_local_user(user);
            }
            Envelope::RecoveryRequest {
                id,
                reply_to,
                namespace,
                pid,
                offset,
            } => {
                let Some(cluster) = chat.cluster.get() else {
                    return;
                };
                let session = chat
                    .namespace()
                    .filter(|ns| ns.name() == namespace)
                    .and_then(|ns| ns.hand_over(pid, offset.as_deref()));
                // A pending departure of the user here still runs: the node the client came
                // back through counted it again first, so nobody sees it leave.
                cluster.send_to_node(reply_to, &Envelope::RecoveryReply { id: *id, session });
            }
            Envelope::SocketsRequest {
                id,
                reply_to,
                namespace,
                room,
            } => {
                let (Some(cluster), Some(ns)) = (chat.cluster.get(), chat.namespace()) else {
                    return;
                };
                if ns.name() != namespace {
                    return;
                }
                let sockets: Vec<serde_json::Value> =
                    ns.sockets_in(room).iter().map(|s| s.host_json()).collect();
                // Nodes with no member answer too: the asker counts the room's listeners.
                let sockets = serde_json::Value::from(sockets).to_string();
                cluster.send_to_node(reply_to, &Envelope::SocketsReply { id: *id, sockets });
            }
            // Documents' traffic: the Yjs sink's.
            // Documents have their own sink; replies go to the adapter itself.
            Envelope::Yjs { .. }
            | Envelope::RecoveryReply { .. }
            | Envelope::SocketsReply { .. } => {}
        }
    }

    fn wants(&self, room: &str) -> bool {
        let Some(chat) = self.0.upgrade() else {
            return false;
        };
        // Rooms of dropped sessions stay heard for their recovery window, so that what the
        // client misses is in this node's log if it comes back through another node.
        let sockets = chat
            .namespace()
            .is_some_and(|ns| ns.room_size(room) > 0 || ns.holds_dropped_session_in(room));
        let sse = match room.strip_prefix("user:") {
            Some(user) => chat.sse.has_user(user),
            None => chat.sse.has_room(room),
        };
        sockets || sse
    }

    fn local_presence(&self) -> Vec<(Arc<str>, Arc<str>, Arc<str>)> {
        self.0
            .upgrade()
            .map(|chat| chat.presence.lock().entries())
            .unwrap_or_default()
    }

    fn departed(&self, departures: &[Departure]) {
        let Some(chat) = self.0.upgrade() else {
            return;
        };
        for d in departures {
            chat.announce_presence("userLeft", &d.room, &d.user_id, &d.username, None);
        }
    }
}
