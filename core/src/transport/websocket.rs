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

use std::io::{self, IoSlice};
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
use super::wsread::{FrameReader, Incoming, ReadError};
use super::{CloseReason, EioServer, Session, SessionData, TransportKind};
use crate::protocol::engineio::Packet;
use crate::protocol::frame::{Frame, FrameKind};

/// Bytes tungstenite reads per call; small, because every idle connection holds one.
const READ_BUFFER: usize = 512;
/// How long a closing connection gets to flush what is queued.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Whether this WebSocket starts a new session or upgrades a polling one.
pub enum Mode<D = ()> {
    /// A new session, already opened (its `open` packet queued).
    New(Arc<Session<D>>),
    /// An upgrade of this polling session.
    Upgrade(Arc<Session<D>>),
}

/// Closes a WebSocket that may not attach to its session (a second upgrade of one sid).
pub async fn reject<W: AsyncWrite + Unpin>(mut writer: W) {
    let close = [0x88u8, 2, 0x03, 0xf0]; // 1008 policy violation
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = writer.write_all(&close).await;
        let _ = writer.shutdown().await;
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
/// One future (one task) per connection reads and writes: the reader ([`FrameReader`])
/// borrows its thread's buffer only while a read runs, and the writer drains the session's
/// queue with one vectored write per wake-up. `prefix` holds bytes the client sent after its
/// upgrade request that were already read.
pub async fn run<D, R, W>(
    server: Arc<EioServer<D>>,
    mut reader: R,
    mut writer: W,
    prefix: Bytes,
    mode: Mode<D>,
) where
    D: SessionData,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let session = match &mode {
        Mode::New(s) | Mode::Upgrade(s) => s.clone(),
    };
    // Copy the few buffered bytes out and let go of `prefix` now: it may be a slice of the
    // HTTP parser's whole read buffer, which would otherwise live as long as the connection.
    let mut frames = FrameReader::new(&prefix, server.config.max_payload);
    drop(prefix);
    if let Mode::Upgrade(_) = mode {
        // Boxed: the probe runs once, and its state would otherwise take room in the
        // connection's future for as long as the connection lives.
        let upgraded = Box::pin(tokio::time::timeout(
            server.config.upgrade_timeout,
            probe(&session, &mut frames, &mut reader, &mut writer),
        ))
        .await;
        session.end_upgrade();
        if !matches!(upgraded, Ok(true)) {
            // The upgrade failed; the polling session carries on.
            return;
        }
        session
            .outbox
            .with_lock(|| session.set_transport(TransportKind::WebSocket));
    }
    let send_timeout = server.config.send_timeout;
    futures_util::future::join(
        read_loop(&server, &session, &mut frames, &mut reader),
        write_loop(&session, &mut writer, send_timeout),
    )
    .await;
}

/// Reads and drops what the client sends until it closes its side.
pub(crate) async fn discard_input<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut buf = [0u8; 512];
    while matches!(tokio::io::AsyncReadExt::read(reader, &mut buf).await, Ok(n) if n > 0) {}
}

/// The client's next message or control frame (`None`: it closed the connection).
pub(crate) async fn next_frame<R: AsyncRead + Unpin>(
    frames: &mut FrameReader,
    reader: &mut R,
) -> Option<Result<Incoming, ReadError>> {
    futures_util::future::poll_fn(|cx| frames.poll_next(cx, reader)).await
}

/// The pong answering a ping's payload (≤ 125 bytes, checked by the reader).
pub(crate) fn pong(payload: &[u8]) -> Frame {
    control_frame(0x8a, payload)
}

/// A control frame (server frames are unmasked) with `payload` (≤ 125 bytes).
fn control_frame(first: u8, payload: &[u8]) -> Frame {
    let mut wire = Vec::with_capacity(2 + payload.len());
    wire.push(first);
    wire.push(payload.len() as u8);
    wire.extend_from_slice(payload);
    Frame::control(Bytes::from(wire))
}

/// The answer to a client's close frame: its code and reason echoed (RFC 6455 5.5.1).
pub(crate) fn close_reply(payload: &[u8]) -> Frame {
    control_frame(0x88, payload)
}

/// The upgrade handshake: `2probe` → `3probe`, a noop to release the pending poll, then `5`.
/// Returns whether the client completed the upgrade.
async fn probe<D: SessionData, R, W>(
    session: &Arc<Session<D>>,
    frames: &mut FrameReader,
    reader: &mut R,
    writer: &mut W,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let message = tokio::select! {
            m = next_frame(frames, reader) => m,
            _ = session.closed() => return false,
        };
        let text = match message {
            Some(Ok(Incoming::Text(text))) => text,
            // The session's queue still belongs to the polling transport: a ping is
            // answered on the socket directly.
            Some(Ok(Incoming::Ping(data))) => {
                if writer.write_all(pong(&data).wire()).await.is_err() {
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
                if writer.write_all(pong.wire()).await.is_err() {
                    return false;
                }
                session.mark_probed();
            }
            Ok(Packet::Upgrade) => return true,
            _ => return false,
        }
    }
}

async fn read_loop<D: SessionData, R>(
    server: &Arc<EioServer<D>>,
    session: &Arc<Session<D>>,
    frames: &mut FrameReader,
    reader: &mut R,
) where
    R: AsyncRead + Unpin,
{
    loop {
        // Read the client's next message only once what it was sent is on its way: a client
        // that does not read must not make the server queue answers without limit.
        let message = tokio::select! {
            m = async {
                session.outbox.has_room().await;
                next_frame(frames, reader).await
            } => m,
            _ = session.closed() => break,
        };
        let packet = match message {
            Some(Ok(Incoming::Text(text))) => match Packet::decode_text(text) {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(sid = %session.sid, error = %e, "malformed Engine.IO packet");
                    close_with(session, 1002, CloseReason::TransportError);
                    break;
                }
            },
            Some(Ok(Incoming::Binary(data))) => Packet::Binary(data),
            Some(Ok(Incoming::Ping(data))) => {
                session.push_control(pong(&data));
                continue;
            }
            Some(Ok(Incoming::Pong)) => continue,
            Some(Ok(Incoming::Close(payload))) => {
                session.outbox.push_final(close_reply(&payload));
                session.close(CloseReason::TransportClose);
                break;
            }
            None => {
                session.close(CloseReason::TransportClose);
                break;
            }
            Some(Err(e)) => {
                tracing::debug!(sid = %session.sid, error = %e, "WebSocket read failed");
                match e.close_code() {
                    Some(1009) => close_with(session, 1009, CloseReason::PayloadTooLarge),
                    Some(code) => close_with(session, code, CloseReason::TransportError),
                    None => session.close(CloseReason::TransportError),
                }
                break;
            }
        };
        server.handle_packet(session, packet).await;
    }
    // The client may still be sending (a protocol error or a server close stops our reading
    // mid-stream). Closing a socket with unread input resets it, and the reset can overtake
    // the close frame just queued: read and discard for a moment first, so the client gets
    // the close code. Boxed: its read buffer is on its stack, and it runs once.
    let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, discard_input(reader))).await;
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
    let mut wire = vec![0x88, 2];
    wire.extend_from_slice(&code.to_be_bytes());
    session.outbox.push_final(Frame::control(Bytes::from(wire)));
    session.close(reason);
}

/// Drains the session's queue into the socket, one vectored write per wake-up. A client that
/// takes no bytes for `send_timeout` while frames wait is closed as a slow reader.
async fn write_loop<D, W: AsyncWrite + Unpin>(
    session: &Session<D>,
    writer: &mut W,
    send_timeout: Duration,
) {
    let mut batch: std::collections::VecDeque<Frame> = std::collections::VecDeque::new();
    let grace = async {
        session.closed().await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    tokio::pin!(grace);
    loop {
        tokio::select! {
            _ = session.outbox.ready() => {}
            _ = &mut grace => break,
        }
        // Cork: let the tasks that are queueing (a broadcast in progress) run first, so
        // one write carries everything they queue.
        tokio::task::yield_now().await;
        let open = session.outbox.drain_into(&mut batch);
        if !batch.is_empty() {
            let result = tokio::select! {
                r = write_frames(writer, &batch, send_timeout) => r,
                _ = &mut grace => break,
            };
            match result {
                Ok(n) => session.metrics.bytes_out.add(n as u64),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    tracing::debug!(sid = %session.sid, "the client took no bytes for the send timeout");
                    session.close(CloseReason::SlowConsumer);
                    break;
                }
                Err(_) => {
                    session.close(CloseReason::TransportError);
                    break;
                }
            }
            batch.clear();
        }
        if !open {
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
}

/// Most frames handed to one `writev` (the kernel's IOV_MAX is 1024).
const MAX_IOVECS: usize = 512;

/// Writes every frame, coalesced into as few vectored writes as the kernel allows. Fails with
/// [`io::ErrorKind::TimedOut`] when one write makes no progress for `send_timeout` (the client
/// stopped reading: with read backpressure it no longer overflows its queue, and would
/// otherwise hold it until the heartbeat). A write that completes at once arms no timer.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: &std::collections::VecDeque<Frame>,
    send_timeout: Duration,
) -> io::Result<usize> {
    let stalled = || io::Error::from(io::ErrorKind::TimedOut);
    let total: usize = frames.iter().map(Frame::len).sum();
    let (mut index, mut offset) = (0usize, 0usize);
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(frames.len().min(MAX_IOVECS));
    while index < frames.len() {
        slices.clear();
        slices.push(IoSlice::new(&frames[index].wire()[offset..]));
        slices.extend(
            frames
                .range(index + 1..)
                .take(MAX_IOVECS - 1)
                .map(|f| IoSlice::new(f.wire())),
        );
        let mut written = write_within(writer, &slices, send_timeout).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 && index < frames.len() {
            let remaining = frames[index].len() - offset;
            if written >= remaining {
                written -= remaining;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    let flushed = futures_util::FutureExt::now_or_never(writer.flush());
    match flushed {
        Some(result) => result?,
        None => Box::pin(tokio::time::timeout(send_timeout, writer.flush()))
            .await
            .map_err(|_| stalled())??,
    }
    Ok(total)
}

/// One vectored write, failing with [`io::ErrorKind::TimedOut`] when it makes no progress
/// for `send_timeout`. The usual write completes at once and sets no timer; only one that
/// must wait gets its timeout, boxed, so the timer's state is not part of every writer
/// task's future for the connection's life.
async fn write_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    slices: &[IoSlice<'_>],
    send_timeout: Duration,
) -> io::Result<usize> {
    // A write that is not ready registers the task's waker again when it is polled below.
    if let Some(result) = futures_util::FutureExt::now_or_never(writer.write_vectored(slices)) {
        return result;
    }
    Box::pin(tokio::time::timeout(
        send_timeout,
        writer.write_vectored(slices),
    ))
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
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
