//! One WebSocket connection's future: it reads the client's frames and writes the
//! connection's queue, in one task, the way uWebSockets runs a connection.
//!
//! While idle the future waits on two things: the outbound queue's wake-up
//! ([`Outbox::ready`]) and a read ([`FrameReader`], which holds no buffer while waiting).
//! A wake-up drains the queue and writes it with one vectored write (coalescing as
//! before); a message runs its handler, and while the handler waits the queue is still
//! written, so a handler that waits on its client (an acknowledgement) cannot stall its own
//! connection. The rare states are boxed so they do not widen every connection's future: the
//! timer of a write that must wait, and the close (shutdown and draining the client's input).
//!
//! What the connection does with messages is an [`Endpoint`]: Engine.IO's session
//! (`transport/websocket.rs`) and the echo Autobahn|Testsuite checks (`testing.rs`).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use super::outbox::Outbox;
use super::wsread::{FrameReader, Incoming, ReadError};
use crate::protocol::frame::Frame;

/// How long a closing connection gets to flush what is queued, and to drain its input.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Most frames handed to one `writev` (the kernel's IOV_MAX is 1024).
pub(crate) const MAX_IOVECS: usize = 512;

/// How reading ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The client sent a close frame (its payload, validated, to echo).
    Close(Bytes),
    /// The client closed the connection between frames.
    Eof,
    /// A protocol error or a failed read.
    Error(ReadError),
}

/// What handling a message left to do.
pub(crate) enum Handled<'a> {
    /// Done; false when the connection is to stop reading (the endpoint then closes its
    /// queue, usually after a close frame).
    Done(bool),
    /// The handler's future, run to its end before the next read (it may wait on a host hook
    /// or an acknowledgement): the driver writes the queue meanwhile. Boxed by the handler
    /// (the Socket.IO handler makes one per message), so its state takes no room in every
    /// idle connection's future.
    Waiting(BoxFuture<'a, ()>),
}

/// What a connection does with what it reads.
pub(crate) trait Endpoint {
    /// The connection's outbound queue (the driver is its only drainer).
    fn outbox(&self) -> &Outbox;

    /// Queues a pong answering a ping.
    fn push_control(&self, frame: Frame);

    /// Handles a text or binary message.
    fn on_message(&self, message: Incoming) -> Handled<'_>;

    /// Reading ended: the endpoint queues its close frame, if any, and closes its queue.
    fn on_end(&self, end: Ended);

    /// A write failed (`TimedOut`: the client took no bytes for the send timeout); the
    /// endpoint closes its queue.
    fn on_write_error(&self, error: &io::Error);

    /// How long a write may make no progress before the client counts as gone.
    fn send_timeout(&self) -> Duration;

    /// Bytes written to the client (metrics).
    fn wrote(&self, _bytes: usize) {}
}

/// The client's next message or control frame (`None`: it closed the connection).
pub(crate) fn next_frame<'a, R: AsyncRead + Unpin>(
    frames: &'a mut FrameReader,
    reader: &'a mut R,
) -> impl Future<Output = Option<Result<Incoming, ReadError>>> + 'a {
    futures_util::future::poll_fn(move |cx| frames.poll_next(cx, reader))
}

/// A control frame (server frames are unmasked) with `payload` (≤ 125 bytes, which the
/// reader checked).
fn control_frame(first: u8, payload: &[u8]) -> Frame {
    let mut wire = Vec::with_capacity(2 + payload.len());
    wire.push(first);
    wire.push(payload.len().min(125) as u8);
    wire.extend_from_slice(&payload[..payload.len().min(125)]);
    Frame::control(Bytes::from(wire))
}

/// The pong answering a ping's payload.
pub(crate) fn pong(payload: &[u8]) -> Frame {
    control_frame(0x8a, payload)
}

/// The answer to a client's close frame: its code and reason echoed (RFC 6455 5.5.1).
pub(crate) fn close_reply(payload: &[u8]) -> Frame {
    control_frame(0x88, payload)
}

/// A close frame with `code` and no reason.
pub(crate) fn close_frame(code: u16) -> Frame {
    control_frame(0x88, &code.to_be_bytes())
}

/// What the connection does after its wait.
enum Step<'e> {
    /// Frames are queued (or the queue closed): write them.
    Write,
    /// What was read is handled: wait again.
    Next,
    /// A message's handler has a future to run: write the queue meanwhile, read on once it
    /// is done.
    Wait(BoxFuture<'e, ()>),
}

/// Handles what a read returned: control frames and the end of reading here, messages by the
/// endpoint.
fn on_read<'e, E: Endpoint>(
    endpoint: &'e E,
    read: Option<Result<Incoming, ReadError>>,
    reading: &mut bool,
) -> Step<'e> {
    let end = match read {
        Some(Ok(Incoming::Ping(data))) => {
            endpoint.push_control(pong(&data));
            return Step::Next;
        }
        Some(Ok(Incoming::Pong)) => return Step::Next,
        Some(Ok(Incoming::Close(payload))) => Ended::Close(payload),
        None => Ended::Eof,
        Some(Err(e)) => Ended::Error(e),
        Some(Ok(message)) => {
            return match endpoint.on_message(message) {
                Handled::Done(keep) => {
                    *reading &= keep;
                    Step::Next
                }
                Handled::Waiting(handler) => Step::Wait(handler),
            }
        }
    };
    *reading = false;
    endpoint.on_end(end);
    Step::Next
}

/// Waits for the connection's next event and handles what was read. Frames already read are
/// handled before the queue is written, so one write answers all of a read's messages (a
/// read of pings gets one write of pongs), the way uWebSockets corks; otherwise the queue
/// first: a wake-up is cheap to serve and frees room the reader waits for.
///
/// Not an `async fn`: a function would keep its arguments a second time in the state. What
/// was read is handled in here, not by the caller, so it takes no room in the caller's
/// future while the caller writes or waits.
#[allow(clippy::manual_async_fn)] // see above: not an `async fn` on purpose
fn next_step<'e, 'b, E, S>(
    endpoint: &'e E,
    frames: &'b mut FrameReader,
    io: &'b mut S,
    reading: &'b mut bool,
) -> impl Future<Output = Step<'e>> + Send + 'b
where
    'e: 'b,
    E: Endpoint + Sync,
    S: AsyncRead + Unpin + Send,
{
    async move {
        // Read the client's next message only once what it was sent is on its way: a client
        // that does not read must not make the server queue answers without limit. Without
        // room the queue holds frames, so its wake-up fires and the write makes room (a
        // check, not a waiting future: one less in every idle connection).
        if frames.has_buffered() && *reading && endpoint.outbox().has_room_now() {
            // Parsing from memory touches no tokio resource, so it spends none of the task's
            // budget: spend it here, so a read full of small messages yields to the other
            // tasks now and then, as reading from the socket would.
            tokio::task::coop::consume_budget().await;
            // Cancel-safe: a frame not complete yet stays in the reader.
            if let Some(read) = futures_util::FutureExt::now_or_never(next_frame(frames, io)) {
                return on_read(endpoint, read, reading);
            }
        }
        let read = tokio::select! {
            biased;
            _ = endpoint.outbox().ready() => return Step::Write,
            read = next_frame(frames, io), if *reading && endpoint.outbox().has_room_now() => read,
        };
        on_read(endpoint, read, reading)
    }
}

/// Runs a connection until both directions are done, then closes it: flushes, shuts the
/// write side down and drains the client's input for a moment (closing a socket with unread
/// input resets it, and the reset can overtake the close frame just written).
///
/// One stream for both directions: the task reads and writes it in turn, so it needs no
/// split halves (and no shared allocation behind them). Not an `async fn`: a function would
/// keep its arguments a second time in every connection's future.
#[allow(clippy::manual_async_fn)] // see above: not an `async fn` on purpose
pub(crate) fn drive<'a, E, S>(
    endpoint: &'a E,
    frames: &'a mut FrameReader,
    io: &'a mut S,
) -> impl Future<Output = ()> + Send + 'a
where
    E: Endpoint + Sync,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async move {
        let mut reading = true;
        // Once the queue is closed, what is left gets CLOSE_GRACE in all.
        let mut close_by: Option<Instant> = None;
        // Drains the queue and writes it; false once the queue is closed and drained or a
        // write failed (the connection's writing is done). A macro, not an `async fn`: its
        // state is part of the future while a handler runs, and a function would keep its
        // arguments.
        macro_rules! flush {
            () => {{
                // Cork: let the tasks that are queueing (a broadcast in progress) run first,
                // so one write carries everything they queue.
                tokio::task::yield_now().await;
                // The queue's buffer, taken for the write and freed after it: a connection
                // holds frame storage only while frames wait or are written (frames queued
                // meanwhile get a buffer of their own), so the one allocation per write
                // buys an idle connection that holds none.
                let mut batch = VecDeque::new();
                let open = drain(endpoint.outbox(), &mut batch, &mut close_by);
                if batch.is_empty() {
                    open
                } else {
                    let timeout = endpoint.send_timeout();
                    let result = write_frames_by(&mut *io, &batch, timeout, close_by).await;
                    drop(batch);
                    match result {
                        Ok(n) => {
                            endpoint.wrote(n);
                            open
                        }
                        Err(e) => {
                            endpoint.on_write_error(&e);
                            false
                        }
                    }
                }
            }};
        }
        loop {
            let mut handler = match next_step(endpoint, &mut *frames, &mut *io, &mut reading).await
            {
                Step::Next => continue,
                Step::Write => {
                    if !flush!() {
                        break;
                    }
                    continue;
                }
                Step::Wait(handler) => handler,
            };
            // While the handler waits the queue is still written, so a handler that waits on
            // its client (an acknowledgement) cannot stall its own connection.
            let mut writing = true;
            loop {
                tokio::select! {
                    biased;
                    () = &mut handler => break,
                    _ = endpoint.outbox().ready(), if writing => writing = flush!(),
                }
            }
            if !writing {
                break;
            }
        }
        // Boxed: it runs once, and its state (timers, a stack buffer) would otherwise widen
        // the future for the connection's life.
        Box::pin(async {
            let _ = tokio::time::timeout(CLOSE_GRACE, io.shutdown()).await;
            let _ = tokio::time::timeout(CLOSE_GRACE, discard_input(io)).await;
        })
        .await;
    }
}

/// Reads and drops what the client sends until it closes its side.
pub(crate) async fn discard_input<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut buf = [0u8; 512];
    while matches!(tokio::io::AsyncReadExt::read(reader, &mut buf).await, Ok(n) if n > 0) {}
}

/// Moves the queued frames into `batch`; returns false once the queue is closed and empty.
/// Once it is closed, what is left gets [`CLOSE_GRACE`] in all.
fn drain(outbox: &Outbox, batch: &mut VecDeque<Frame>, close_by: &mut Option<Instant>) -> bool {
    let open = outbox.drain_into(batch);
    if !open || outbox.is_closed() {
        close_by.get_or_insert_with(|| Instant::now() + CLOSE_GRACE);
    }
    open
}

/// Writes every frame, coalesced into as few vectored writes as the kernel allows. Fails with
/// [`io::ErrorKind::TimedOut`] when a write makes no progress for `send_timeout` (the client
/// stopped reading), or when `close_by` passes. A write that completes at once arms no timer;
/// one that must wait gets a boxed one, so the timer is not part of every connection's
/// future.
pub(crate) fn write_frames_by<'a, W: AsyncWrite + Unpin>(
    writer: &'a mut W,
    frames: &'a VecDeque<Frame>,
    send_timeout: Duration,
    close_by: Option<Instant>,
) -> impl Future<Output = io::Result<usize>> + 'a {
    // A closure over its few words of state, not an `async fn`: it is part of every
    // connection's future while a write runs, and an `async fn` would keep its arguments
    // twice.
    let mut at = (0usize, 0usize);
    let mut flushing = false;
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    futures_util::future::poll_fn(move |cx| {
        let before = at;
        let done = if flushing {
            Pin::new(&mut *writer).poll_flush(cx)
        } else {
            match poll_write_frames(writer, cx, frames, &mut at) {
                Poll::Ready(Ok(())) => {
                    flushing = true;
                    Pin::new(&mut *writer).poll_flush(cx)
                }
                other => other,
            }
        };
        if let Poll::Ready(result) = done {
            return Poll::Ready(result.map(|()| frames.iter().map(Frame::len).sum()));
        }
        // Waiting: the deadline is the send timeout from the last progress, or the close's.
        let progress = Instant::now() + send_timeout;
        let deadline = close_by.map_or(progress, |by| by.min(progress));
        let timer = match &mut timer {
            Some(t) => {
                if at != before && t.deadline() != deadline {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
    })
}

/// Writes `frames` from `at` (frame index, offset in it) on, one `writev` after another,
/// until they are written or the socket is not ready.
fn poll_write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    cx: &mut Context<'_>,
    frames: &VecDeque<Frame>,
    at: &mut (usize, usize),
) -> Poll<io::Result<()>> {
    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
    while at.0 < frames.len() {
        let (index, offset) = *at;
        slices[0] = IoSlice::new(&frames[index].wire()[offset..]);
        let mut count = 1;
        for (slot, frame) in slices[1..].iter_mut().zip(frames.range(index + 1..)) {
            *slot = IoSlice::new(frame.wire());
            count += 1;
        }
        let mut written = ready!(Pin::new(&mut *writer).poll_write_vectored(cx, &slices[..count]))?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        while written > 0 && at.0 < frames.len() {
            let remaining = frames[at.0].len() - at.1;
            if written >= remaining {
                written -= remaining;
                *at = (at.0 + 1, 0);
            } else {
                at.1 += written;
                written = 0;
            }
        }
    }
    Poll::Ready(Ok(()))
}

/// Echoes every message back as it came: the Autobahn echo endpoint (`testing::WsEcho`),
/// which judges this driver and the frame reader, and the driver's own tests.
#[cfg(any(test, feature = "testing"))]
pub(crate) struct Echo {
    pub(crate) outbox: Outbox,
    pub(crate) send_timeout: Duration,
}

#[cfg(any(test, feature = "testing"))]
impl Endpoint for Echo {
    fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    fn push_control(&self, frame: Frame) {
        let _ = self.outbox.push(frame);
    }

    fn on_message(&self, message: Incoming) -> Handled<'_> {
        use crate::protocol::frame::FrameKind;
        let frame = match message {
            Incoming::Text(text) => Frame::from_payload(&text, FrameKind::Text),
            Incoming::Binary(data) => Frame::from_payload(&data, FrameKind::Binary),
            Incoming::Ping(_) | Incoming::Pong | Incoming::Close(_) => return Handled::Done(true),
        };
        // An overflow closed the queue.
        Handled::Done(self.outbox.push(frame).is_ok())
    }

    fn on_end(&self, end: Ended) {
        match end {
            Ended::Close(payload) => self.outbox.push_final(close_reply(&payload)),
            Ended::Error(e) => {
                if let Some(code) = e.close_code() {
                    self.outbox.push_final(close_frame(code));
                }
            }
            Ended::Eof => {}
        }
        self.outbox.close();
    }

    fn on_write_error(&self, _error: &io::Error) {
        self.outbox.close();
    }

    fn send_timeout(&self) -> Duration {
        self.send_timeout
    }
}

#[cfg(test)]
#[path = "wsdriver_tests.rs"]
mod tests;
