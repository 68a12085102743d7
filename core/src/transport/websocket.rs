//! The WebSocket transport.
//!
//! One task per connection both reads and writes. Reading goes through the engine's own
//! frame reader ([`FrameReader`], `transport/wsread.rs`: framing, unmasking, fragmentation,
//! UTF-8 and control frames), which holds no buffer while the connection is idle. Writing:
//! outbound frames are already complete WebSocket frames ([`Frame`]), so the writer drains the
//! session's queue and hands every queued frame to one vectored write. Control frames the
//! reader answers (pong, close replies) are queued on the same path, so frames never
//! interleave.
//!
//! The plain `/ws` endpoint and Yjs still read through tungstenite over [`ReadSide`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::outbox::Outbox;
use super::wsdriver::{self, Ended, Endpoint, Handled};
use super::wsread::{FrameReader, Incoming};
use super::{CloseReason, EioServer, Session, SessionData, TransportKind};
use crate::protocol::engineio::Packet;
use crate::protocol::frame::{Frame, FrameKind};

/// Bytes tungstenite reads per call; small, because every idle connection holds one.
const READ_BUFFER: usize = 512;
pub(crate) use super::wsdriver::{discard_input, CLOSE_GRACE};

/// Whether this WebSocket starts a new session or upgrades a polling one.
pub enum Mode<D = ()> {
    /// A new session, already opened (its `open` packet queued).
    New(Arc<Session<D>>),
    /// An upgrade of this polling session.
    Upgrade(Arc<Session<D>>),
}

/// Closes a WebSocket that may not attach to its session (a second upgrade of one sid).
pub async fn reject<S: AsyncWrite + Unpin>(mut io: S) {
    let close = [0x88u8, 2, 0x03, 0xf0]; // 1008 policy violation
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = io.write_all(&close).await;
        let _ = io.shutdown().await;
    })
    .await;
}

/// Where a read half's control frames (pong and close replies) go.
pub(crate) trait ControlQueue: Unpin {
    /// The connection's outbound queue.
    fn outbox(&self) -> &Outbox;

    /// Queues a control frame like any other frame (it counts against the queue's limits).
    fn push_control(&self, frame: Frame) {
        let _ = self.outbox().push(frame);
    }
}

impl<D: Send + Sync> ControlQueue for Arc<Session<D>> {
    fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// An overflow closes the session as a slow reader, as any other frame's would.
    fn push_control(&self, frame: Frame) {
        let _ = self.send_uncounted(frame);
    }
}

impl ControlQueue for Arc<Outbox> {
    fn outbox(&self) -> &Outbox {
        self
    }
}

/// The read half as tungstenite sees it: reads come from the socket, writes (control
/// frames only) go to the connection's queue, so they never interleave with our frames.
pub(crate) struct ReadSide<R, Q> {
    pub(crate) inner: R,
    pub(crate) queue: Q,
}

impl<R: AsyncRead + Unpin, Q: ControlQueue> AsyncRead for ReadSide<R, Q> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<R: Unpin, Q: ControlQueue> AsyncWrite for ReadSide<R, Q> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.queue
            .push_control(Frame::control(Bytes::copy_from_slice(buf)));
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

pub(crate) fn ws_config(max_payload: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
}

/// Runs a WebSocket whose HTTP upgrade is complete, until it closes.
///
/// One future (one task) per connection reads and writes `io` ([`wsdriver::drive`]).
/// `prefix` holds bytes the client sent after its upgrade request that were already read.
///
/// Not an `async fn`: the prefix is copied out before the future is made, so the future
/// does not keep it (or a second copy of the arguments) for the connection's life.
pub fn run<D, S>(
    server: Arc<EioServer<D>>,
    mut io: S,
    prefix: Bytes,
    mode: Mode<D>,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    D: SessionData,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Copy the few buffered bytes out and let go of `prefix` now: it may be a slice of the
    // HTTP parser's whole read buffer, which would otherwise live as long as the connection.
    let mut frames = FrameReader::new(&prefix, server.config.max_payload);
    drop(prefix);
    let (session, upgrade) = match mode {
        Mode::New(s) => (s, false),
        Mode::Upgrade(s) => (s, true),
    };
    // The endpoint owns the server and the session: the future keeps one copy of each.
    let endpoint = EioEndpoint { server, session };
    async move {
        if upgrade && !upgraded(&endpoint, &mut frames, &mut io).await {
            // The upgrade failed; the polling session carries on.
            return;
        }
        wsdriver::drive(&endpoint, &mut frames, &mut io).await;
    }
}

/// Runs the upgrade's probe; whether the session now sends on this WebSocket.
///
/// The probe is boxed: it runs once, and its state would otherwise take room in the
/// connection's future for its whole life.
async fn upgraded<D: SessionData, S>(
    endpoint: &EioEndpoint<D>,
    frames: &mut FrameReader,
    io: &mut S,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let EioEndpoint { server, session } = endpoint;
    let probed = Box::pin(tokio::time::timeout(
        server.config.upgrade_timeout,
        probe(session, frames, io),
    ))
    .await;
    session.end_upgrade();
    if !matches!(probed, Ok(true)) {
        return false;
    }
    session
        .outbox
        .with_lock(|| session.set_transport(TransportKind::WebSocket));
    true
}

/// An Engine.IO session as the connection driver sees it.
struct EioEndpoint<D> {
    server: Arc<EioServer<D>>,
    session: Arc<Session<D>>,
}

impl<D: SessionData> Endpoint for EioEndpoint<D> {
    fn outbox(&self) -> &Outbox {
        &self.session.outbox
    }

    /// An overflow closes the session as a slow reader, as any other frame's would.
    fn push_control(&self, frame: Frame) {
        let _ = self.session.send_uncounted(frame);
    }

    fn on_message(&self, message: Incoming) -> Handled<'_> {
        let packet = match message {
            Incoming::Text(text) => match Packet::decode_text(text) {
                Ok(packet) => packet,
                Err(e) => {
                    tracing::debug!(sid = %self.session.sid, error = %e, "malformed Engine.IO packet");
                    close_with(&self.session, 1002, CloseReason::TransportError);
                    return Handled::Done(false);
                }
            },
            Incoming::Binary(data) => Packet::Binary(data),
            // The driver handles control frames itself.
            Incoming::Ping(_) | Incoming::Pong | Incoming::Close(_) => return Handled::Done(true),
        };
        match self.server.dispatch_packet(&self.session, packet) {
            Some(handling) => Handled::Waiting(handling),
            None => Handled::Done(true),
        }
    }

    fn on_end(&self, end: Ended) {
        let session = &self.session;
        match end {
            Ended::Close(payload) => {
                session.outbox.push_final(wsdriver::close_reply(&payload));
                session.close(CloseReason::TransportClose);
            }
            Ended::Eof => session.close(CloseReason::TransportClose),
            Ended::Error(e) => {
                tracing::debug!(sid = %session.sid, error = %e, "WebSocket read failed");
                match e.close_code() {
                    Some(1009) => close_with(session, 1009, CloseReason::PayloadTooLarge),
                    Some(code) => close_with(session, code, CloseReason::TransportError),
                    None => session.close(CloseReason::TransportError),
                }
            }
        }
    }

    fn on_write_error(&self, error: &io::Error) {
        if error.kind() == io::ErrorKind::TimedOut {
            tracing::debug!(sid = %self.session.sid, "the client took no bytes for the send timeout");
            self.session.close(CloseReason::SlowConsumer);
        } else {
            self.session.close(CloseReason::TransportError);
        }
    }

    fn send_timeout(&self) -> Duration {
        self.server.config.send_timeout
    }

    fn wrote(&self, bytes: usize) {
        self.session.metrics.bytes_out.add(bytes as u64);
    }
}

/// The upgrade handshake: `2probe` → `3probe`, a noop to release the pending poll, then `5`.
/// Returns whether the client completed the upgrade.
async fn probe<D: SessionData, S>(
    session: &Arc<Session<D>>,
    frames: &mut FrameReader,
    io: &mut S,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let message = tokio::select! {
            m = wsdriver::next_frame(frames, io) => m,
            _ = session.closed() => return false,
        };
        let text = match message {
            Some(Ok(Incoming::Text(text))) => text,
            // The session's queue still belongs to the polling transport: a ping is
            // answered on the socket directly.
            Some(Ok(Incoming::Ping(data))) => {
                if io.write_all(wsdriver::pong(&data).wire()).await.is_err() {
                    return false;
                }
                continue;
            }
            Some(Ok(Incoming::Binary(_) | Incoming::Pong)) => continue,
            Some(Ok(Incoming::Close(_)) | Err(_)) | None => return false,
        };
        match Packet::decode_text(text) {
            Ok(Packet::Ping(data)) if &data[..] == b"probe" => {
                let pong = Frame::from_payload(b"3probe", FrameKind::Text);
                if io.write_all(pong.wire()).await.is_err() {
                    return false;
                }
                session.mark_probed();
            }
            Ok(Packet::Upgrade) => return true,
            _ => return false,
        }
    }
}

/// Lets tungstenite queue its answer to the client's close frame. It queues the answer when
/// it reads the close frame but writes it out only on the next read, which a read loop that
/// stops at the close never makes: the client would see its close unanswered (an unclean
/// close, code 1006 in browsers). That next read returns at once (the peer closed).
pub(crate) async fn answer_close<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_GRACE, ws.next()).await;
}

/// The close code RFC 6455 gives a read error, when the connection can still carry a close
/// frame: 1009 for a message over the limit, 1007 for a text message that is not UTF-8, 1002
/// for other protocol violations. IO errors and a closed connection get none.
pub(crate) fn close_code_for(e: &WsError) -> Option<u16> {
    match e {
        WsError::Capacity(_) => Some(1009),
        WsError::Utf8(_) => Some(1007),
        WsError::Protocol(_) => Some(1002),
        _ => None,
    }
}

/// Queues a close frame with `code`, then closes the session.
fn close_with<D>(session: &Session<D>, code: u16, reason: CloseReason) {
    session.outbox.push_final(wsdriver::close_frame(code));
    session.close(reason);
}

/// Writes every frame, coalesced into as few vectored writes as the kernel allows. Fails with
/// [`io::ErrorKind::TimedOut`] when one write makes no progress for `send_timeout` (the client
/// stopped reading: with read backpressure it no longer overflows its queue, and would
/// otherwise hold it until the heartbeat). A write that completes at once arms no timer.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: &std::collections::VecDeque<Frame>,
    send_timeout: Duration,
) -> io::Result<usize> {
    wsdriver::write_frames_by(writer, frames, send_timeout, None).await
}

/// The `Sec-WebSocket-Accept` value for a client's key.
pub fn accept_key(client_key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(client_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_takes_no_bytes_times_the_write_out() {
        // The client end never reads: once the pipe is full the write makes no progress.
        let (_client, mut server) = tokio::io::duplex(1024);
        let frames: std::collections::VecDeque<Frame> =
            std::iter::once(Frame::from_payload(&[b'x'; 4096], FrameKind::Binary)).collect();
        let e = write_frames(&mut server, &frames, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn write_frames_survives_partial_writes() {
        // A duplex with a tiny buffer forces many partial writes.
        let (mut client, mut server) = tokio::io::duplex(7);
        let frames: std::collections::VecDeque<Frame> = (0..50)
            .map(|i| Frame::from_payload(format!("4message {i}").as_bytes(), FrameKind::Text))
            .collect();
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.wire().to_vec()).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
                .await
                .unwrap();
            got
        });
        write_frames(&mut server, &frames, Duration::from_secs(10))
            .await
            .unwrap();
        drop(server);
        assert_eq!(reader.await.unwrap(), expected);
    }
}
