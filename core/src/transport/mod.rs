//! Engine.IO sessions over WebSocket and HTTP long-polling, and the HTTP front door.

pub mod accept;
mod body;
mod cors;
mod health;
mod heartbeat;
pub mod http;
pub mod outbox;
pub mod polling;
mod reply;
pub mod session;
pub mod tls;
pub mod websocket;
pub(crate) mod wsdriver;
pub(crate) mod wsread;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use crate::config::Config;
use crate::helpers::ids::new_id;
use crate::metrics::Metrics;
use crate::protocol::engineio::{Handshake, Packet};
use crate::protocol::frame::{Frame, FrameKind};
pub use session::{CloseReason, HandshakeInfo, Session, TransportKind};

/// What an upper layer may attach to each session ([`Session::data`]): created empty when the
/// session opens, shared by the session's tasks.
pub trait SessionData: Default + Send + Sync + 'static {}

impl<T: Default + Send + Sync + 'static> SessionData for T {}

/// A message an Engine.IO client sent.
#[derive(Debug, Clone)]
pub enum Message {
    /// A text message (valid UTF-8, without the `4` type prefix).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

/// What runs on top of Engine.IO: Socket.IO, or a raw handler such as the echo server the
/// Engine.IO conformance suite talks to.
///
/// `D` is the data the handler attaches to each session (`()` when it needs none).
pub trait SessionHandler<D = ()>: Send + Sync + 'static {
    /// A message arrived. The transport reads the session's next packet only when the returned
    /// future completes, so one session's messages are handled in order.
    fn on_message<'a>(
        &'a self,
        session: &'a Arc<Session<D>>,
        message: Message,
    ) -> BoxFuture<'a, ()>;

    /// The session closed. Runs once, on the session's own task.
    fn on_close(&self, session: &Arc<Session<D>>, reason: CloseReason);

    /// How long a new session may take to be established (see
    /// [`Session::mark_established`]) before it is closed; `None`: no limit.
    fn connect_timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Why a new session was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// `max_connections` sessions are open already.
    TooManyConnections,
    /// `max_pending_connections` sessions have not joined a namespace yet.
    TooManyPending,
}

/// Called with `true` when a server gets its first session and `false` when its last closes.
pub type ActivityHook = Arc<dyn Fn(bool) + Send + Sync>;

/// The sessions behind one Engine.IO path, each carrying a `D`.
pub struct EioServer<D = ()> {
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session<D>>>>,
    handler: Arc<dyn SessionHandler<D>>,
    activity: parking_lot::RwLock<Option<ActivityHook>>,
    /// Every session's heartbeat, connect timeout and cleanup, run by one task while the
    /// server has sessions (started on the runtime serving them).
    watch: Arc<heartbeat::Watch>,
}

impl<D> Drop for EioServer<D> {
    fn drop(&mut self) {
        self.watch.stop();
    }
}

impl<D: SessionData> EioServer<D> {
    /// A server that hands messages to `handler`.
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        handler: Arc<dyn SessionHandler<D>>,
    ) -> Arc<Self> {
        let watch = Arc::new(heartbeat::Watch::new(
            config.ping_interval,
            config.ping_timeout,
        ));
        Arc::new(EioServer {
            config,
            metrics,
            sessions: Mutex::new(HashMap::new()),
            handler,
            activity: parking_lot::RwLock::new(None),
            watch,
        })
    }

    pub(crate) fn set_activity_hook(&self, hook: ActivityHook) {
        *self.activity.write() = Some(hook);
    }

    fn notify_activity(&self, active: bool) {
        if let Some(hook) = self.activity.read().as_ref() {
            hook(active);
        }
    }

    /// The session with this id, if it is open.
    pub fn session(&self, sid: &str) -> Option<Arc<Session<D>>> {
        let session = self.sessions.lock().get(sid).cloned()?;
        if session.pong_overdue() {
            session.close(CloseReason::PingTimeout);
        }
        if session.is_closing() {
            return None;
        }
        Some(session)
    }

    /// The session with this id, closing or not.
    fn find(&self, sid: &str) -> Option<Arc<Session<D>>> {
        self.sessions.lock().get(sid).cloned()
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Every open session.
    pub fn sessions(&self) -> Vec<Arc<Session<D>>> {
        self.sessions.lock().values().cloned().collect()
    }

    /// Opens a session, queues its `open` packet and starts its heartbeat.
    pub(crate) fn open_session(
        self: &Arc<Self>,
        transport: TransportKind,
        handshake: HandshakeInfo,
    ) -> Result<Arc<Session<D>>, OpenError> {
        let sid = new_id();
        let session = Arc::new(Session::new(
            sid.clone(),
            transport,
            handshake,
            outbox::Outbox::new(
                self.config.outbound_queue_frames,
                self.config.outbound_queue_bytes,
            ),
            self.metrics.clone(),
            self.watch.clone(),
        ));
        {
            let mut sessions = self.sessions.lock();
            let max = self.config.max_connections;
            if max > 0 && sessions.len() >= max {
                self.metrics.refusals.inc("max_connections");
                return Err(OpenError::TooManyConnections);
            }
            // Sessions that have not authenticated cost memory (their handshake) for up to the
            // connect timeout: their number is bounded apart from the established ones.
            let pending = self.config.max_pending_connections;
            if self.handler.connect_timeout().is_some()
                && pending > 0
                && self.metrics.pending_connections.get() >= pending as i64
            {
                self.metrics.refusals.inc("max_pending_connections");
                return Err(OpenError::TooManyPending);
            }
            if self.handler.connect_timeout().is_some() {
                self.metrics.pending_connections.inc();
            } else {
                // Nothing above establishes it: it never counts as pending.
                session.mark_established_uncounted();
            }
            sessions.insert(sid.clone(), session.clone());
            if sessions.len() == 1 {
                self.notify_activity(true);
            }
        }
        self.metrics.connections.inc();
        self.metrics.connections_total.inc();

        let upgrades: &[&str] = match transport {
            TransportKind::Polling => &["websocket"],
            TransportKind::WebSocket => &[],
        };
        let open = Handshake {
            sid: &sid,
            upgrades,
            ping_interval: self.config.ping_interval.as_millis() as u64,
            ping_timeout: self.config.ping_timeout.as_millis() as u64,
            max_payload: self.config.max_payload,
        }
        .to_packet();
        let _ = session.send(Frame::from_payload(&open, FrameKind::Text));

        self.watch
            .opened(self, &sid, self.handler.connect_timeout());
        Ok(session)
    }

    /// Runs a session's cleanup once it closed: forget it and tell the handler.
    fn finalize(&self, session: &Arc<Session<D>>) {
        if !session.take_finalize() {
            return;
        }
        {
            let mut sessions = self.sessions.lock();
            sessions.remove(&session.sid);
            if sessions.is_empty() {
                self.notify_activity(false);
            }
        }
        self.metrics.connections.dec();
        session.leave_pending();
        let reason = session.close_reason().unwrap_or(CloseReason::ServerClose);
        self.metrics.disconnects.inc(reason.label());
        tracing::debug!(sid = %session.sid, reason = reason.label(), "session closed");
        self.handler.on_close(session, reason);
    }

    /// Handles one packet a client sent on any transport.
    pub(crate) async fn handle_packet(&self, session: &Arc<Session<D>>, packet: Packet) {
        if let Some(handling) = self.dispatch_packet(session, packet) {
            handling.await;
        }
    }

    /// Handles what a packet needs at once; a message goes to the handler, whose future
    /// (when it has one) is returned for the transport to run before its next read.
    pub(crate) fn dispatch_packet<'a>(
        &'a self,
        session: &'a Arc<Session<D>>,
        packet: Packet,
    ) -> Option<BoxFuture<'a, ()>> {
        self.metrics.packets_in.inc();
        match packet {
            Packet::Pong(_) => session.pong_received(),
            Packet::Ping(data) => {
                let _ = session.send_packet(&Packet::Pong(data));
            }
            Packet::Message(text) => {
                self.metrics.bytes_in.add(text.len() as u64);
                return Some(self.handler.on_message(session, Message::Text(text)));
            }
            Packet::Binary(data) => {
                self.metrics.bytes_in.add(data.len() as u64);
                return Some(self.handler.on_message(session, Message::Binary(data)));
            }
            Packet::Close => {
                // A pending poll learns of the close through a noop, as Engine.IO does.
                if session.transport() == TransportKind::Polling {
                    let _ = session.send_packet(&Packet::Noop);
                }
                session.close(CloseReason::TransportClose);
            }
            Packet::Upgrade | Packet::Noop | Packet::Open(_) => {}
        }
        None
    }

    /// Closes every session (engine shutdown).
    pub fn close_all(&self) {
        for s in self.sessions() {
            s.close(CloseReason::ServerClose);
        }
    }
}
