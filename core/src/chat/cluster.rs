//! The chat contract across nodes: where the chat state asks the cluster (presence, history)
//! and where the cluster hands other nodes' traffic to this node's clients. The chat's own
//! messages between nodes (SSE events, disconnecting a user) are defined here.
//!
//! Every operation falls back to this node's own state when the cluster fails (Redis
//! down): local clients keep being served, and the cluster catches up when it returns. On a
//! single node the in-memory stores answer at once from this node's state.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures_util::FutureExt;

use super::Chat;
use crate::cluster::wire::{Message, WireError, Writer};
use crate::cluster::{Answer, ClusterError, ClusterSink, Departure};
use crate::hub::presence::Member;
use crate::socketio::cluster::{SocketIoBroadcast, KIND_BROADCAST};
use crate::sse::SseEvent;
use crate::store::{ChatMessage, StoreError};

/// A server-sent event in wire form, for a room's or a user's SSE clients (kinds are the
/// features' own; Socket.IO's and the documents' are elsewhere).
pub(crate) const KIND_SSE: u8 = 2;
/// Disconnect every connection of a user.
pub(crate) const KIND_DISCONNECT_USER: u8 = 3;

/// The chat's messages between nodes.
#[derive(Debug, Clone, PartialEq)]
enum ChatMessageKind {
    /// An SSE event: `to_user` true when `target` is a user id, false for a room.
    Sse {
        to_user: bool,
        target: String,
        event: Bytes,
    },
    /// Disconnect every connection of the user.
    DisconnectUser { user: String },
}

impl ChatMessageKind {
    fn encode(&self, origin: &str) -> Bytes {
        match self {
            ChatMessageKind::Sse {
                to_user,
                target,
                event,
            } => {
                let mut w = Writer::new(KIND_SSE, origin);
                w.u8(u8::from(*to_user)).str(target).bytes(event);
                w.finish()
            }
            ChatMessageKind::DisconnectUser { user } => {
                let mut w = Writer::new(KIND_DISCONNECT_USER, origin);
                w.str(user);
                w.finish()
            }
        }
    }

    /// The chat's message, `None` for other features' kinds.
    fn decode(message: &Message) -> Result<Option<Self>, WireError> {
        let mut r = message.reader();
        Ok(Some(match message.kind {
            KIND_SSE => ChatMessageKind::Sse {
                to_user: r.u8()? != 0,
                target: r.string()?,
                event: r.bytes()?,
            },
            KIND_DISCONNECT_USER => ChatMessageKind::DisconnectUser { user: r.string()? },
            _ => return Ok(None),
        }))
    }
}

impl Chat {
    /// Whether other nodes may hear this one (false on a single node).
    pub(super) fn in_cluster(&self) -> bool {
        self.cluster.has_peers()
    }

    /// Counts a user's first connection on this node in `room` in the cluster; true when
    /// the user just appeared in the cluster (on a single node: always).
    pub(super) async fn cluster_join(&self, room: &str, user: &str, username: &str) -> bool {
        if !self.in_cluster() {
            // Per connection: a single node skips even the store's call.
            return true;
        }
        match self.cluster.presence().join(room, user, username).await {
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
        match self.cluster.presence().leave(room, user).await {
            Ok(last) => last,
            Err(e) => {
                tracing::debug!(error = %e, room, "cluster presence unavailable; deciding locally");
                true
            }
        }
    }

    /// The users in `room`, cluster-wide.
    pub(crate) async fn members(&self, room: &str) -> Vec<Member> {
        let here = || self.presence.lock().members(room);
        let answer = self.cluster.presence().members(room, &here);
        match answer.await {
            Ok(members) => members,
            Err(e) => {
                tracing::debug!(error = %e, room, "cluster presence unavailable");
                here()
            }
        }
    }

    /// Whether `user` is present in `room`, cluster-wide.
    pub(super) async fn is_present(&self, room: &str, user: &str) -> bool {
        if self.presence.lock().contains(room, user) {
            return true;
        }
        let answer = self.cluster.presence().contains(room, user);
        answer.await.unwrap_or(false)
    }

    /// Starts the user's typing in the cluster: `Some(changed)`, or `None` without a
    /// reachable cluster (the caller then goes by this node's state, `here`).
    pub(super) async fn cluster_typing_start(
        &self,
        room: &str,
        user: &str,
        generation: u64,
        here: bool,
    ) -> Option<bool> {
        if !self.in_cluster() {
            // Nobody else types here: no token to make.
            return Some(here);
        }
        let token = format!("{}.{generation}", self.cluster.node_id());
        let ttl = self.config.typing_timeout;
        let answer = self
            .cluster
            .presence()
            .typing_start(room, user, &token, ttl, here);
        answer.await.ok()
    }

    /// Stops the user's typing in the cluster (only the start of `generation` on this node,
    /// when given): `Some(was on)`, or `None` without a reachable cluster (the caller then
    /// goes by this node's state, `here`).
    pub(super) async fn cluster_typing_stop(
        &self,
        room: &str,
        user: &str,
        generation: Option<u64>,
        here: bool,
    ) -> Option<bool> {
        if !self.in_cluster() {
            return Some(here);
        }
        let token = generation.map(|g| format!("{}.{g}", self.cluster.node_id()));
        let answer = self
            .cluster
            .presence()
            .typing_stop(room, user, token.as_deref(), here);
        answer.await.ok()
    }

    /// Waits until this node hears `room`'s broadcasts from every node (the broker bounds
    /// the wait while Redis is down; at once on a single node).
    pub(super) async fn await_subscription(&self, room: &str) {
        if let Some(ns) = self.namespace() {
            ns.room_interest(room).await;
        }
    }

    /// Starts appending to the cluster's shared history (`None` when the history is not
    /// shared: this node's own takes the message): the command is on the Redis connection
    /// when this returns, ahead of anything published after it.
    pub(super) async fn begin_shared_history_append(
        &self,
        message: &Arc<ChatMessage>,
    ) -> Option<Answer<Result<(), ClusterError>>> {
        if !self.cluster.shares_history() {
            return None;
        }
        // The record is the chat's JSON; the store only reads its `id`.
        let record = match serde_json::to_vec(&**message) {
            Ok(json) => Bytes::from(json),
            Err(e) => {
                return Some(crate::cluster::now(Err(ClusterError::Protocol(
                    e.to_string(),
                ))))
            }
        };
        let limit = self.config.history_limit;
        let mut append =
            self.cluster
                .history()
                .append(&message.room_id, &message.id, record, limit);
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(append.poll_unpin(cx))).await;
        Some(match first {
            std::task::Poll::Ready(done) => crate::cluster::now(done),
            std::task::Poll::Pending => append,
        })
    }

    /// Waits for a shared-history append; when Redis failed, this node's history keeps
    /// the message (it is served from here until Redis is back).
    pub(super) async fn finish_shared_history_append(
        &self,
        append: Answer<Result<(), ClusterError>>,
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
        if self.cluster.shares_history() {
            let answer = self.cluster.history().query(room, before, limit);
            match answer.await {
                Ok(records) => {
                    // A record that is not a chat message (written by something else) is
                    // skipped, as it always was.
                    let read = |r: &Bytes| serde_json::from_slice::<ChatMessage>(r).ok();
                    return Ok(records.iter().filter_map(read).map(Arc::new).collect());
                }
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
        if !self.in_cluster() {
            return;
        }
        let channel = if to_user {
            super::personal_room(target)
        } else {
            target.to_owned()
        };
        self.publish_chat(
            &channel,
            &ChatMessageKind::Sse {
                to_user,
                target: target.to_owned(),
                event: event.payload(),
            },
        );
    }

    fn publish_chat(&self, channel: &str, message: &ChatMessageKind) {
        let broker = self.cluster.broker();
        broker.publish(Some(channel), message.encode(broker.node_id()));
    }

    /// Asks the other nodes to disconnect a user's connections there.
    pub(super) fn disconnect_user_elsewhere(&self, user_id: &str) {
        if !self.in_cluster() {
            return;
        }
        self.publish_chat(
            &super::personal_room(user_id),
            &ChatMessageKind::DisconnectUser {
                user: user_id.to_owned(),
            },
        );
    }

    /// An SSE client subscribed or unsubscribed: keep the cluster subscriptions in step.
    /// The future resolves once they follow (see
    /// [`crate::cluster::Broker::interest_changed`]); changes are applied in order, so the
    /// last one's completion covers them all.
    pub(super) fn sse_interest(&self, user_id: &str, rooms: &[Arc<str>]) -> Answer<()> {
        let broker = self.cluster.broker();
        let mut applied = broker.interest_changed(&super::personal_room(user_id));
        for room in rooms {
            applied = broker.interest_changed(room);
        }
        applied
    }
}

/// The chat's side of the cluster: what other nodes send, delivered here.
pub(super) struct ChatSink(pub Weak<Chat>);

impl ChatSink {
    fn take(&self, chat: &Chat, message: &Message) -> Result<(), WireError> {
        if message.kind == KIND_BROADCAST {
            let b = SocketIoBroadcast::decode(message)?;
            if let Some(ns) = chat.namespace().filter(|ns| ns.name() == b.namespace) {
                ns.deliver_remote(&b);
            }
            return Ok(());
        }
        match ChatMessageKind::decode(message)? {
            Some(ChatMessageKind::Sse {
                to_user,
                target,
                event,
            }) => {
                let event = SseEvent::from_wire(event);
                if to_user {
                    chat.sse.to_user(&target, &event);
                } else {
                    chat.sse.to_room(&target, &event);
                }
            }
            Some(ChatMessageKind::DisconnectUser { user }) => {
                chat.disconnect_local_user(&user);
            }
            // Documents' traffic is the Yjs sink's; Socket.IO's requests and replies are
            // the namespaces' exchange's.
            None => {}
        }
        Ok(())
    }
}

impl ClusterSink for ChatSink {
    fn deliver(&self, message: &Message) {
        let Some(chat) = self.0.upgrade() else {
            return;
        };
        if let Err(e) = self.take(&chat, message) {
            tracing::debug!(error = %e, "dropped a malformed cluster envelope");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the envelope codec of the build before the split wrote for these messages.
    #[test]
    fn the_wire_format_is_the_one_before_the_split() {
        let hex = |b: Bytes| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let sse = ChatMessageKind::Sse {
            to_user: true,
            target: "bob".into(),
            event: Bytes::from_static(b"data: {}\n\n"),
        };
        assert_eq!(
            hex(sse.encode("node-a")),
            "0102000000066e6f64652d610100000003626f620000000a646174613a207b7d0a0a"
        );
        let disconnect = ChatMessageKind::DisconnectUser {
            user: "mallory".into(),
        };
        assert_eq!(
            hex(disconnect.encode("node-a")),
            "0103000000066e6f64652d61000000076d616c6c6f7279"
        );
    }

    #[test]
    fn chat_messages_round_trip_and_truncations_are_errors() {
        let samples = [
            ChatMessageKind::Sse {
                to_user: true,
                target: "bob".into(),
                event: Bytes::from_static(b"event: notification\ndata: {}\n\n"),
            },
            ChatMessageKind::DisconnectUser {
                user: "mallory".into(),
            },
        ];
        for m in samples {
            let wire = m.encode("node-a");
            let back = Message::parse(&wire).unwrap();
            assert_eq!(back.origin, "node-a");
            assert_eq!(ChatMessageKind::decode(&back).unwrap(), Some(m));
            for len in 0..wire.len() {
                let cut = wire.slice(..len);
                let read = Message::parse(&cut).and_then(|m| ChatMessageKind::decode(&m));
                assert!(read.is_err(), "len {len}");
            }
        }
    }
}
