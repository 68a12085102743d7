//! An Engine.IO session: the state its transports share, its heartbeat and its close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::heartbeat::Watch;
use super::outbox::{Outbox, PushError};
use crate::metrics::Metrics;
use crate::protocol::engineio::Packet;
use crate::protocol::frame::{Frame, FrameKind};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the transport or sent a close packet.
    TransportClose,
    /// The transport failed (read or write error, protocol violation).
    TransportError,
    /// No pong arrived within the ping timeout.
    PingTimeout,
    /// The outbound queue passed its limit.
    SlowConsumer,
    /// The server closed the session (disconnect, flooding, shutdown).
    ServerClose,
    /// A payload over `maxPayload` arrived.
    PayloadTooLarge,
    /// The client did not join a namespace within the connect timeout.
    ConnectTimeout,
}

impl CloseReason {
    /// A stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport_close",
            CloseReason::TransportError => "transport_error",
            CloseReason::PingTimeout => "ping_timeout",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::ServerClose => "server_close",
            CloseReason::PayloadTooLarge => "payload_too_large",
            CloseReason::ConnectTimeout => "connect_timeout",
        }
    }
}

/// The transport a session currently sends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling = 0,
    /// WebSocket.
    WebSocket = 1,
}

/// What the client sent when it opened the session, kept for the session's life (host
/// hooks read it when a namespace is joined, which may happen at any time).
///
/// Packed into one allocation: the request's headers (`name: value` lines) and its query
/// string. A `HeaderMap` holds a table of buckets and one allocation per value, several
/// hundred bytes per idle connection for a few headers; [`HandshakeInfo::headers`] rebuilds
/// one when a host hook asks.
#[derive(Clone)]
pub struct HandshakeInfo {
    /// `name: value\n` per header, then the query string.
    packed: Box<[u8]>,
    /// Where the query string starts in `packed`.
    query_at: u32,
    /// The client's address.
    pub address: SocketAddr,
}

impl HandshakeInfo {
    /// Keeps `headers` and `query`.
    pub fn new(headers: &HeaderMap, query: &str, address: SocketAddr) -> Self {
        Self::from_pairs(headers.iter(), query, address)
    }

    /// Keeps these headers (names are lowercase and hold no `:`, values hold no line break,
    /// as `http` guarantees) and `query`. Headers past `u32::MAX` bytes in all cannot come
    /// from a parsed request; they are dropped rather than mis-indexed.
    pub fn from_pairs<'a>(
        headers: impl Iterator<Item = (&'a http::HeaderName, &'a http::HeaderValue)>,
        query: &str,
        address: SocketAddr,
    ) -> Self {
        let mut packed = Vec::new();
        for (name, value) in headers {
            packed.extend_from_slice(name.as_str().as_bytes());
            packed.extend_from_slice(b": ");
            packed.extend_from_slice(value.as_bytes());
            packed.push(b'\n');
        }
        let query_at = u32::try_from(packed.len()).unwrap_or_else(|_| {
            packed.clear();
            0
        });
        packed.extend_from_slice(query.as_bytes());
        HandshakeInfo {
            packed: packed.into_boxed_slice(),
            query_at,
            address,
        }
    }

    /// Every header as `(name, value)`, in the order of the request.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.packed[..self.query_at as usize]
            .split(|b| *b == b'\n')
            .filter_map(|line| {
                let at = line.iter().position(|b| *b == b':')?;
                let name = std::str::from_utf8(&line[..at]).ok()?;
                Some((name, line.get(at + 2..).unwrap_or_default()))
            })
    }

    /// The first value of a header (`name` in lowercase), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_pairs()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The request's headers as a map (built on each call).
    pub fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in self.header_pairs() {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        map
    }

    /// The raw query string of the first request.
    pub fn query(&self) -> &str {
        std::str::from_utf8(&self.packed[self.query_at as usize..]).unwrap_or_default()
    }

    /// A query parameter of the first request, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        crate::helpers::percent::query_param(self.query(), name)
    }
}

impl std::fmt::Debug for HandshakeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeInfo")
            .field("headers", &self.headers())
            .field("query", &self.query())
            .field("address", &self.address)
            .finish()
    }
}

/// One Engine.IO session, carrying `D`: the data the layer above attaches to it (Socket.IO
/// keeps its sockets there). `D` is a type parameter, not a trait object: reaching it costs
/// nothing per message.
pub struct Session<D = ()> {
    /// The session id.
    pub sid: Arc<str>,
    /// Frames waiting for the transport.
    pub outbox: Outbox,
    /// What the client sent when it opened the session.
    pub handshake: HandshakeInfo,
    transport: AtomicU8,
    upgrading: AtomicBool,
    probed: AtomicBool,
    probe_notify: Notify,
    /// When the pending ping must be answered by, on the watch's clock (0: none pending).
    pong_deadline: AtomicU64,
    /// Counts the pongs that answered a ping (see [`Watch`]).
    beat: AtomicU32,
    /// The server's heartbeat task, which runs this session's deadlines and cleanup.
    watch: Arc<Watch>,
    closing: AtomicBool,
    /// Set once the protocol above accepted the client (a Socket.IO CONNECT succeeded).
    established: AtomicBool,
    finalized: AtomicBool,
    close_reason: Mutex<Option<CloseReason>>,
    closed_notify: Notify,
    /// Set while a polling GET is waiting, to refuse an overlapping one.
    pub(crate) poll_active: AtomicBool,
    /// Set while a polling POST is being processed, to refuse an overlapping one.
    pub(crate) post_active: AtomicBool,
    pub(crate) metrics: Arc<Metrics>,
    /// What the layer above keeps per session.
    pub data: D,
}

impl<D: Default> Session<D> {
    pub(crate) fn new(
        sid: Arc<str>,
        transport: TransportKind,
        handshake: HandshakeInfo,
        outbox: Outbox,
        metrics: Arc<Metrics>,
        watch: Arc<Watch>,
    ) -> Self {
        Session {
            sid,
            outbox,
            handshake,
            transport: AtomicU8::new(transport as u8),
            upgrading: AtomicBool::new(false),
            probed: AtomicBool::new(false),
            probe_notify: Notify::new(),
            pong_deadline: AtomicU64::new(0),
            beat: AtomicU32::new(0),
            watch,
            closing: AtomicBool::new(false),
            established: AtomicBool::new(false),
            finalized: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            closed_notify: Notify::new(),
            poll_active: AtomicBool::new(false),
            post_active: AtomicBool::new(false),
            metrics,
            data: D::default(),
        }
    }
}

impl<D> Session<D> {
    /// The transport the session sends on now.
    pub fn transport(&self) -> TransportKind {
        if self.transport.load(Ordering::Acquire) == TransportKind::WebSocket as u8 {
            TransportKind::WebSocket
        } else {
            TransportKind::Polling
        }
    }

    pub(crate) fn set_transport(&self, kind: TransportKind) {
        self.transport.store(kind as u8, Ordering::Release);
    }

    /// Marks an upgrade as started; false when one already is.
    pub(crate) fn begin_upgrade(&self) -> bool {
        !self.upgrading.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn end_upgrade(&self) {
        self.probed.store(false, Ordering::Release);
        self.upgrading.store(false, Ordering::Release);
    }

    /// The upgrading WebSocket answered its probe: pending and later polls get a noop.
    pub(crate) fn mark_probed(&self) {
        self.probed.store(true, Ordering::Release);
        self.probe_notify.notify_waiters();
    }

    /// Whether an upgrade has been probed and polls must be released with a noop.
    pub(crate) fn is_probed(&self) -> bool {
        self.probed.load(Ordering::Acquire)
    }

    /// Resolves once an upgrade probe succeeds.
    pub(crate) async fn probed(&self) {
        let notified = self.probe_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_probed() {
            return;
        }
        notified.await;
    }

    /// Whether a ping went unanswered past its deadline (checked on every request, so the
    /// session is gone exactly at pingInterval + pingTimeout, whatever the timers' jitter).
    pub(crate) fn pong_overdue(&self) -> bool {
        let deadline = self.pong_deadline.load(Ordering::Acquire);
        deadline != 0 && self.watch.now_ms() >= deadline
    }

    /// Queues a frame; a full queue closes the session as a slow reader.
    pub fn send(&self, frame: Frame) -> Result<(), PushError> {
        let result = self.send_uncounted(frame);
        if result.is_ok() {
            self.metrics.packets_out.inc();
        }
        result
    }

    /// [`Session::send`] without touching the shared packet counter: broadcasts count once
    /// for all recipients instead of contending on one cache line per recipient.
    pub(crate) fn send_uncounted(&self, frame: Frame) -> Result<(), PushError> {
        let result = self.outbox.push(frame);
        if result == Err(PushError::Overflow) {
            self.close(CloseReason::SlowConsumer);
        }
        result
    }

    /// Checks that the client is still there while its connection is not being read: on
    /// WebSocket, queues an empty ping (clients answer it by themselves); the write fails once
    /// the client has gone, and the session closes. Polling clients show it by not polling.
    pub(crate) fn probe_peer(&self) {
        if self.transport() == TransportKind::WebSocket {
            let _ = self.send_uncounted(Frame::control(Bytes::from_static(&[0x89, 0])));
        }
    }

    /// Queues an Engine.IO text packet.
    pub fn send_packet(&self, packet: &Packet) -> Result<(), PushError> {
        let kind = match packet {
            Packet::Binary(_) => FrameKind::Binary,
            _ => FrameKind::Text,
        };
        let frame = match packet {
            Packet::Binary(data) => Frame::from_payload(data, kind),
            other => Frame::from_payload(&other.encode_text(), kind),
        };
        self.send(frame)
    }

    /// Queues a text message (`4` + text).
    pub fn send_message(&self, text: &str) -> Result<(), PushError> {
        let mut buf = Frame::builder(text.len() + 1);
        buf.push(b'4');
        buf.extend_from_slice(text.as_bytes());
        self.send(Frame::finish(buf, FrameKind::Text))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: &Bytes) -> Result<(), PushError> {
        self.send(Frame::from_payload(data, FrameKind::Binary))
    }

    /// Asks the session to close. Safe to call from anywhere, any number of times, also while
    /// holding hub locks: the cleanup runs later on the session's own task.
    pub fn close(&self, reason: CloseReason) {
        {
            let mut r = self.close_reason.lock();
            if r.is_none() {
                *r = Some(reason);
            }
        }
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.outbox.close();
            self.closed_notify.notify_waiters();
            self.watch.closed(&self.sid);
        }
    }

    /// Whether a close was requested.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.close_reason.lock()
    }

    /// Resolves once a close was requested.
    pub async fn closed(&self) {
        let notified = self.closed_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_closing() {
            return;
        }
        notified.await;
    }

    /// Marks the session as accepted by the protocol above it (see
    /// [`Session::enforce_connect_timeout`]); it no longer counts as pending.
    pub(crate) fn mark_established(&self) {
        self.leave_pending();
    }

    /// Takes the session out of the pending count, once: when it is established, or when it
    /// closes without having been.
    pub(crate) fn leave_pending(&self) {
        if !self.established.swap(true, Ordering::AcqRel) {
            self.metrics.pending_connections.dec();
        }
    }

    /// Marks a session that never has to be established (no protocol above asks for it).
    pub(crate) fn mark_established_uncounted(&self) {
        self.established.store(true, Ordering::Release);
    }

    pub(crate) fn is_established(&self) -> bool {
        self.established.load(Ordering::Acquire)
    }

    /// Records a pong from the client: when it answers the pending ping, the next ping is
    /// due an interval from now. A pong nobody asked for changes nothing.
    pub(crate) fn pong_received(&self) {
        if self.pong_deadline.swap(0, Ordering::AcqRel) != 0 {
            let beat = self.beat.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
            self.watch.ponged(&self.sid, beat);
        }
    }

    /// A ping went out, to be answered by `deadline` (on the watch's clock).
    pub(crate) fn ping_sent(&self, deadline: u64) {
        self.pong_deadline.store(deadline.max(1), Ordering::Release);
    }

    /// Whether a ping waits for its pong.
    pub(crate) fn ping_pending(&self) -> bool {
        self.pong_deadline.load(Ordering::Acquire) != 0
    }

    /// The session's beat (see [`Watch`]).
    pub(crate) fn beat(&self) -> u32 {
        self.beat.load(Ordering::Acquire)
    }

    /// True exactly once: for the caller that runs the session's final cleanup.
    pub(crate) fn take_finalize(&self) -> bool {
        !self.finalized.swap(true, Ordering::AcqRel)
    }
}
