//! Socket.IO across the nodes of a cluster: its messages (broadcasts, the hand-over of a
//! dropped session, `fetchSockets`) and the requests that wait for another node's reply.
//!
//! A broadcast is encoded once on the node it starts from; every other node decodes it
//! once and encodes its own Socket.IO frames once (its recovery offsets are its own),
//! whatever the number of local recipients.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::{Namespace, SocketIo};
use crate::cluster::wire::{Message, Reader, WireError, Writer};
use crate::cluster::{Answer, Cluster, ClusterSink};

/// A Socket.IO broadcast (kinds are this module's; chat, SSE and documents use others).
pub(crate) const KIND_BROADCAST: u8 = 1;
/// To the node holding a dropped session: hand it over.
pub(crate) const KIND_RECOVERY_REQUEST: u8 = 5;
/// The hand-over.
pub(crate) const KIND_RECOVERY_REPLY: u8 = 6;
/// To every node with members in a room: list them.
pub(crate) const KIND_SOCKETS_REQUEST: u8 = 7;
/// One node's list.
pub(crate) const KIND_SOCKETS_REPLY: u8 = 8;

/// How long a node waits for the holder of a dropped session to hand it over.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A Socket.IO broadcast to rooms of a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketIoBroadcast {
    /// The namespace (`/`).
    pub namespace: String,
    /// The rooms it goes to (members of several get it once).
    pub rooms: Vec<String>,
    /// Which of `rooms` this copy was published to: a receiver delivers it only to members
    /// of that room that are in none of the rooms before it (their copies cover those), so a
    /// member of several rooms gets one copy across the cluster.
    pub channel: u16,
    /// Socket ids left out.
    pub except: Vec<String>,
    /// Rooms whose members are left out (all connections of one user, for example).
    pub except_rooms: Vec<String>,
    /// The event name.
    pub event: String,
    /// The arguments as a JSON array text, without the recovery offset.
    pub args: String,
    /// Binary attachments the arguments' placeholders point to.
    pub attachments: Vec<Bytes>,
}

impl SocketIoBroadcast {
    /// The message, as sent by node `origin`.
    pub fn encode(&self, origin: &str) -> Bytes {
        let mut w = Writer::new(KIND_BROADCAST, origin);
        w.str(&self.namespace)
            .strs(&self.rooms)
            .u16(self.channel)
            .strs(&self.except)
            .strs(&self.except_rooms)
            .str(&self.event)
            .str(&self.args)
            .u32(self.attachments.len() as u32);
        for a in &self.attachments {
            w.bytes(a);
        }
        w.finish()
    }

    /// Reads the body of a [`KIND_BROADCAST`] message.
    pub fn decode(message: &Message) -> Result<Self, WireError> {
        let mut r = message.reader();
        Ok(SocketIoBroadcast {
            namespace: r.string()?,
            rooms: r.strings()?,
            channel: r.u16()?,
            except: r.strings()?,
            except_rooms: r.strings()?,
            event: r.string()?,
            args: r.string()?,
            attachments: {
                let n = r.u32()? as usize;
                // Each attachment takes at least its 4-byte length: bound the allocation
                // by what the message can hold.
                let mut list = Vec::with_capacity(n.min(r.remaining() / 4));
                for _ in 0..n {
                    list.push(r.bytes()?);
                }
                list
            },
        })
    }
}

/// A dropped Socket.IO session as the node that held it hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredSession {
    /// The socket id the client gets back.
    pub sid: String,
    /// The rooms it was in.
    pub rooms: Vec<String>,
    /// The authenticated user, as JSON (empty: anonymous).
    pub user: String,
    /// The auth payload of the original connect, as JSON.
    pub auth: String,
    /// The packets it missed, in order: (binary frame?, payload).
    pub frames: Vec<(bool, Bytes)>,
}

/// The request of a node to another: the request id and the node waiting for the reply.
fn request(kind: u8, origin: &str, id: u64) -> Writer {
    let mut w = Writer::new(kind, origin);
    w.u64(id).str(origin);
    w
}

fn encode_recovery_request(
    origin: &str,
    id: u64,
    namespace: &str,
    pid: &str,
    offset: Option<&str>,
) -> Bytes {
    let mut w = request(KIND_RECOVERY_REQUEST, origin, id);
    w.str(namespace)
        .str(pid)
        .u8(u8::from(offset.is_some()))
        .str(offset.unwrap_or_default());
    w.finish()
}

fn encode_sockets_request(origin: &str, id: u64, namespace: &str, room: &str) -> Bytes {
    let mut w = request(KIND_SOCKETS_REQUEST, origin, id);
    w.str(namespace).str(room);
    w.finish()
}

fn encode_sockets_reply(origin: &str, id: u64, sockets: &str) -> Bytes {
    let mut w = Writer::new(KIND_SOCKETS_REPLY, origin);
    w.u64(id).str(sockets);
    w.finish()
}

fn encode_recovery_reply(origin: &str, id: u64, session: Option<&RecoveredSession>) -> Bytes {
    let mut w = Writer::new(KIND_RECOVERY_REPLY, origin);
    w.u64(id).u8(u8::from(session.is_some()));
    if let Some(s) = session {
        w.str(&s.sid)
            .strs(&s.rooms)
            .str(&s.user)
            .str(&s.auth)
            .u32(s.frames.len() as u32);
        for (binary, payload) in &s.frames {
            w.u8(u8::from(*binary)).bytes(payload);
        }
    }
    w.finish()
}

fn decode_recovery_reply(r: &mut Reader<'_>) -> Result<Option<RecoveredSession>, WireError> {
    if r.u8()? == 0 {
        return Ok(None);
    }
    Ok(Some(RecoveredSession {
        sid: r.string()?,
        rooms: r.strings()?,
        user: r.string()?,
        auth: r.string()?,
        frames: {
            let n = r.u32()? as usize;
            let mut frames = Vec::with_capacity(n.min(r.remaining() / 5));
            for _ in 0..n {
                frames.push((r.u8()? != 0, r.bytes()?));
            }
            frames
        },
    }))
}

/// Requests waiting for replies, by request id.
struct Waiting<T>(Mutex<HashMap<u64, T>>);

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting(Mutex::new(HashMap::new()))
    }
}

/// Socket.IO's side of the cluster: publishes broadcasts, asks other nodes for sessions and
/// sockets, and answers theirs. Every namespace of the engine shares one.
pub(crate) struct Exchange {
    cluster: Arc<Cluster>,
    /// The namespaces, to answer other nodes' requests (set once they are built).
    io: OnceLock<Weak<SocketIo>>,
    recoveries: Waiting<oneshot::Sender<Option<RecoveredSession>>>,
    sockets: Waiting<mpsc::Sender<String>>,
}

impl Exchange {
    /// Socket.IO on `cluster`, listening to the other nodes' requests and replies.
    pub(crate) fn new(cluster: Arc<Cluster>) -> Arc<Self> {
        let exchange = Arc::new(Exchange {
            cluster,
            io: OnceLock::new(),
            recoveries: Waiting::default(),
            sockets: Waiting::default(),
        });
        // Weak: the broker (through the cluster) is the exchange's own.
        let sink = Arc::new(ExchangeSink(Arc::downgrade(&exchange)));
        exchange.cluster.broker().add_sink(sink);
        exchange
    }

    /// The namespaces whose sockets it answers for.
    pub(crate) fn serve(&self, io: &Arc<SocketIo>) {
        let _ = self.io.set(Arc::downgrade(io));
    }

    /// Whether other nodes may hear a broadcast (false on a single node: nothing is
    /// encoded for them).
    pub(crate) fn has_peers(&self) -> bool {
        self.cluster.has_peers()
    }

    /// Sends a broadcast's copy to the nodes listening to `room` (`None`: every node).
    pub(crate) fn publish(&self, room: Option<&str>, broadcast: &SocketIoBroadcast) {
        let broker = self.cluster.broker();
        broker.publish(room, broadcast.encode(broker.node_id()));
    }

    /// This node's membership of `room` changed (see `Broker::interest_changed`).
    pub(crate) fn room_interest(&self, room: &str) -> Answer<()> {
        // Joins and leaves are per connection: a single node skips even the broker's call.
        if !self.has_peers() {
            return crate::cluster::now(());
        }
        self.cluster.broker().interest_changed(room)
    }

    /// A session that may recover was dropped here.
    pub(crate) fn session_dropped(&self, pid: &str, window: Duration) {
        if self.has_peers() {
            self.cluster.sessions().dropped(pid, window);
        }
    }

    /// Asks the node holding the dropped session `pid` (another one) to hand it over with
    /// the packets the client missed after `offset`; `None` when no other node has it, or
    /// it did not answer in time.
    pub(crate) async fn recover_session(
        &self,
        namespace: &str,
        pid: &str,
        offset: Option<&str>,
    ) -> Option<RecoveredSession> {
        if !self.has_peers() {
            return None;
        }
        let node = self.cluster.node_id();
        let holder = self.cluster.sessions().holder(pid).await;
        let holder = holder.filter(|n| n != node)?;
        let id = rand::random::<u64>();
        let (tx, rx) = oneshot::channel();
        self.recoveries.0.lock().insert(id, tx);
        let request = encode_recovery_request(node, id, namespace, pid, offset);
        let reply = if self.cluster.broker().send_to_node(&holder, request) {
            tokio::time::timeout(RECOVERY_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        self.recoveries.0.lock().remove(&id);
        reply.flatten()
    }

    /// The sockets other nodes have in `room` of `namespace` (each node's answer a JSON
    /// array of `{id, user, rooms}`), collected until every node listening to the room has
    /// answered or `timeout` passes; this node's own are not included.
    pub(crate) async fn fetch_sockets(
        &self,
        namespace: &str,
        room: &str,
        timeout: Duration,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let broker = self.cluster.broker();
        // The nodes listening to the room answer; this one, when it is one of them, does
        // not (its own messages are dropped on receipt).
        let listeners = match tokio::time::timeout_at(deadline, broker.listeners(room)).await {
            Ok(Ok(n)) => n,
            _ => return Vec::new(),
        };
        let expected = listeners.saturating_sub(usize::from(broker.listening(room)));
        if expected == 0 {
            return Vec::new();
        }
        let id = rand::random::<u64>();
        let (tx, mut rx) = mpsc::channel(expected.min(1024));
        self.sockets.0.lock().insert(id, tx);
        let request = encode_sockets_request(broker.node_id(), id, namespace, room);
        let mut replies = Vec::new();
        if broker.publish(Some(room), request) {
            while replies.len() < expected {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(reply)) => replies.push(reply),
                    _ => break,
                }
            }
        }
        self.sockets.0.lock().remove(&id);
        replies
    }

    fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.io.get()?.upgrade()?.namespace(name).cloned()
    }

    fn answer(&self, message: &Message) -> Result<(), WireError> {
        let mut r = message.reader();
        let (id, reply_to) = (r.u64()?, r.string()?);
        let namespace = r.string()?;
        let node = self.cluster.node_id();
        let reply = if message.kind == KIND_RECOVERY_REQUEST {
            let pid = r.string()?;
            let offset = (r.u8()? != 0, r.string()?);
            let offset = offset.0.then_some(offset.1);
            let session = self
                .namespace(&namespace)
                .and_then(|ns| ns.hand_over(&pid, offset.as_deref()));
            // A pending departure of the user here still runs: the node the client came
            // back through counted it again first, so nobody sees it leave.
            encode_recovery_reply(node, id, session.as_ref())
        } else {
            let room = r.string()?;
            let Some(ns) = self.namespace(&namespace) else {
                return Ok(());
            };
            let sockets: Vec<serde_json::Value> =
                ns.sockets_in(&room).iter().map(|s| s.host_json()).collect();
            // Nodes with no member answer too: the asker counts the room's listeners.
            let sockets = serde_json::Value::from(sockets).to_string();
            encode_sockets_reply(node, id, &sockets)
        };
        self.cluster.broker().send_to_node(&reply_to, reply);
        Ok(())
    }

    fn take_reply(&self, message: &Message) -> Result<(), WireError> {
        let mut r = message.reader();
        let id = r.u64()?;
        if message.kind == KIND_RECOVERY_REPLY {
            let session = decode_recovery_reply(&mut r)?;
            if let Some(waiter) = self.recoveries.0.lock().remove(&id) {
                let _ = waiter.send(session);
            }
        } else {
            let sockets = r.string()?;
            if let Some(waiter) = self.sockets.0.lock().get(&id) {
                // Bounded: a reply beyond the expected nodes' is dropped.
                let _ = waiter.try_send(sockets);
            }
        }
        Ok(())
    }
}

/// What the broker calls back: other nodes' requests and replies.
struct ExchangeSink(Weak<Exchange>);

impl ClusterSink for ExchangeSink {
    fn deliver(&self, message: &Message) {
        let Some(exchange) = self.0.upgrade() else {
            return;
        };
        let handled = match message.kind {
            KIND_RECOVERY_REQUEST | KIND_SOCKETS_REQUEST => exchange.answer(message),
            KIND_RECOVERY_REPLY | KIND_SOCKETS_REPLY => exchange.take_reply(message),
            // Broadcasts are delivered by the feature that listens to their rooms.
            _ => Ok(()),
        };
        if let Err(e) = handled {
            tracing::debug!(error = %e, "dropped a malformed cluster envelope");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broadcast() -> SocketIoBroadcast {
        SocketIoBroadcast {
            namespace: "/".into(),
            rooms: vec!["lobby".into(), "team".into()],
            channel: 1,
            except: vec!["sid1".into()],
            except_rooms: vec!["user:alice".into()],
            event: "typing".into(),
            args: r#"[{"roomId":"lobby","isTyping":true}]"#.into(),
            attachments: vec![Bytes::from_static(&[0, 1, 2])],
        }
    }

    fn session() -> RecoveredSession {
        RecoveredSession {
            sid: "sid1".into(),
            rooms: vec!["lobby".into()],
            user: r#"{"id":"alice","username":"Alice"}"#.into(),
            auth: "{}".into(),
            frames: vec![
                (false, Bytes::from_static(b"42[\"m\"]")),
                (true, Bytes::from_static(&[1])),
            ],
        }
    }

    /// Every message this module sends, with a decoder that reads it whole.
    fn samples() -> Vec<Bytes> {
        let sockets = r#"[{"id":"s1","user":null,"rooms":["lobby"]}]"#;
        vec![
            broadcast().encode("node-a"),
            encode_recovery_request("node-a", 7, "/", "pid1", Some("boot.12")),
            encode_recovery_request("node-a", 7, "/", "pid1", None),
            encode_recovery_reply("node-a", 7, Some(&session())),
            encode_recovery_reply("node-a", 8, None),
            encode_sockets_request("node-a", 9, "/", "lobby"),
            encode_sockets_reply("node-a", 9, sockets),
        ]
    }

    fn read_whole(wire: &Bytes) -> Result<(), WireError> {
        let m = Message::parse(wire)?;
        let mut r = m.reader();
        match m.kind {
            KIND_BROADCAST => return SocketIoBroadcast::decode(&m).map(drop),
            KIND_RECOVERY_REQUEST => drop((
                (r.u64()?, r.string()?, r.string()?),
                (r.string()?, r.u8()?, r.string()?),
            )),
            KIND_RECOVERY_REPLY => drop((r.u64()?, decode_recovery_reply(&mut r)?)),
            KIND_SOCKETS_REQUEST => drop((r.u64()?, r.string()?, r.string()?, r.string()?)),
            KIND_SOCKETS_REPLY => drop((r.u64()?, r.string()?)),
            kind => return Err(m.unknown(kind)),
        }
        if r.remaining() != 0 {
            return Err(m.unknown(m.kind));
        }
        Ok(())
    }

    #[test]
    fn round_trips() {
        let wire = broadcast().encode("node-a");
        let m = Message::parse(&wire).unwrap();
        assert_eq!((m.origin.as_str(), m.kind), ("node-a", KIND_BROADCAST));
        assert_eq!(SocketIoBroadcast::decode(&m).unwrap(), broadcast());
        let wire = encode_recovery_reply("node-a", 7, Some(&session()));
        let m = Message::parse(&wire).unwrap();
        let mut r = m.reader();
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(decode_recovery_reply(&mut r).unwrap(), Some(session()));
        for wire in samples() {
            read_whole(&wire).unwrap();
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The bytes the envelope codec of the build before the split wrote for these messages:
    /// the split changed who encodes them, not the format.
    #[test]
    fn the_wire_format_is_the_one_before_the_split() {
        let session = RecoveredSession {
            sid: "sid1".into(),
            rooms: vec!["lobby".into()],
            user: "{}".into(),
            auth: "{}".into(),
            frames: vec![
                (false, Bytes::from_static(b"42")),
                (true, Bytes::from_static(&[1])),
            ],
        };
        let cases = [
            (broadcast().encode("node-a"), "0101000000066e6f64652d61000000012f00000002000000056c6f626279000000047465616d0001000000010000000473696431000000010000000a757365723a616c69636500000006747970696e67000000245b7b22726f6f6d4964223a226c6f626279222c226973547970696e67223a747275657d5d0000000100000003000102"),
            (encode_recovery_request("node-a", 7, "/", "pid1", Some("boot.12")), "0105000000066e6f64652d610000000000000007000000066e6f64652d61000000012f00000004706964310100000007626f6f742e3132"),
            (encode_recovery_reply("node-a", 7, Some(&session)), "0106000000066e6f64652d61000000000000000701000000047369643100000001000000056c6f626279000000027b7d000000027b7d0000000200000000023432010000000101"),
            (encode_recovery_reply("node-a", 8, None), "0106000000066e6f64652d61000000000000000800"),
            (encode_sockets_request("node-a", 9, "/", "lobby"), "0107000000066e6f64652d610000000000000009000000066e6f64652d61000000012f000000056c6f626279"),
            (encode_sockets_reply("node-a", 9, "[]"), "0108000000066e6f64652d610000000000000009000000025b5d"),
        ];
        for (wire, before) in cases {
            assert_eq!(hex(&wire), before);
        }
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        for wire in samples() {
            for len in 0..wire.len() {
                assert!(read_whole(&wire.slice(..len)).is_err(), "len {len}");
            }
            for i in 0..wire.len() {
                let mut bad = wire.to_vec();
                bad[i] ^= 0xff;
                let _ = read_whole(&Bytes::from(bad));
            }
        }
    }
}
