//! A connection's bounded outbound queue.
//!
//! Producers (room broadcasts, acks, heartbeats) push shared [`Frame`]s without blocking; the
//! writer takes everything queued at once and writes it with one vectored write. A producer
//! that finds the queue over its frame or byte limit gets [`PushError::Overflow`] and the
//! connection is closed as a slow reader: it never grows server memory without bound and
//! never slows the others.
//!
//! Every frame counts, control frames included: a client that floods WebSocket pings and
//! never reads would otherwise grow its queue of pongs without limit. At most
//! [`MAX_PENDING_PONGS`] pongs wait at a time, the last one answering the most recent ping
//! (RFC 6455 lets an endpoint answer only that one), and a connection's reader waits for
//! [`Outbox::has_room`] before it reads more, so what a client makes the server answer is
//! bounded by what it reads.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::protocol::frame::{Frame, FrameKind};

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The connection is closing; the frame is dropped.
    #[error("connection closed")]
    Closed,
    /// The queue passed its limit: the reader is too slow and the connection is closed.
    #[error("outbound queue full")]
    Overflow,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    bytes: usize,
    closed: bool,
    /// Pongs queued and not yet drained (see [`Outbox::push`]).
    pongs_queued: usize,
    /// Whether the connection's last frame was queued (see [`Outbox::push_final`]).
    final_queued: bool,
}

/// Most pongs waiting for the writer. One would do for the RFC; a short burst of pings is
/// still answered ping by ping, as clients (and Autobahn's case 2.10) expect, and a flood
/// costs this many small frames at most.
pub const MAX_PENDING_PONGS: usize = 16;

/// The first byte of a WebSocket pong frame (FIN + opcode 0xA).
const PONG: u8 = 0x8a;

fn is_pong(frame: &Frame) -> bool {
    frame.kind() == FrameKind::Control && frame.wire().first() == Some(&PONG)
}

/// Moves the queued frames out: an O(1) swap of buffers when the caller's is empty (the
/// usual case: the writer takes the queue's buffer, and the queue is left with none).
fn take_all(state: &mut State, into: &mut VecDeque<Frame>) {
    if into.is_empty() {
        std::mem::swap(&mut state.frames, into);
    } else {
        into.extend(state.frames.drain(..));
    }
    state.bytes = 0;
    state.pongs_queued = 0;
}

/// The bounded queue between producers and one connection's writer.
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    /// Wakes a reader waiting in [`Outbox::has_room`] once the writer drained.
    drained: Notify,
    max_frames: usize,
    max_bytes: usize,
}

impl Outbox {
    /// An empty queue with these limits.
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            drained: Notify::new(),
            max_frames,
            max_bytes,
        }
    }

    /// Queues a frame. Every frame counts against the limits; past [`MAX_PENDING_PONGS`]
    /// waiting pongs, a pong replaces the last one, so a ping flood queues a few pongs, not
    /// one per ping.
    pub fn push(&self, frame: Frame) -> Result<(), PushError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        if is_pong(&frame) && state.pongs_queued >= MAX_PENDING_PONGS {
            let State { frames, bytes, .. } = &mut *state;
            if let Some(old) = frames.iter_mut().rev().find(|f| is_pong(f)) {
                *bytes = *bytes - old.len() + frame.len();
                *old = frame;
                return Ok(());
            }
        }
        if state.frames.len() >= self.max_frames || state.bytes + frame.len() > self.max_bytes {
            state.closed = true;
            drop(state);
            self.notify.notify_one();
            return Err(PushError::Overflow);
        }
        let was_empty = state.frames.is_empty();
        state.pongs_queued += usize::from(is_pong(&frame));
        state.bytes += frame.len();
        state.frames.push_back(frame);
        drop(state);
        if was_empty {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Queues the connection's last frame (a close frame telling the client why) and closes
    /// the queue. It goes in past the limits and after a close, once: a slow reader whose
    /// queue overflowed is still told why it is disconnected, if it ever reads that far.
    pub fn push_final(&self, frame: Frame) {
        let mut state = self.state.lock();
        if !std::mem::replace(&mut state.final_queued, true) {
            state.bytes += frame.len();
            state.frames.push_back(frame);
        }
        state.closed = true;
        drop(state);
        self.notify.notify_one();
        self.drained.notify_waiters();
    }

    /// Moves every queued frame into `into` (which the caller reuses between turns).
    /// Returns false once the queue is closed and empty.
    pub fn drain_into(&self, into: &mut VecDeque<Frame>) -> bool {
        let mut state = self.state.lock();
        take_all(&mut state, into);
        let open = !(state.closed && into.is_empty());
        drop(state);
        self.drained.notify_waiters();
        open
    }

    /// Like [`Outbox::drain_into`], but only when `allowed` (checked under the queue's lock)
    /// holds; returns `None` when it does not. Lets a transport switch without two drainers.
    pub fn drain_into_if(
        &self,
        into: &mut VecDeque<Frame>,
        allowed: impl FnOnce() -> bool,
    ) -> Option<bool> {
        let mut state = self.state.lock();
        if !allowed() {
            return None;
        }
        take_all(&mut state, into);
        let open = !(state.closed && into.is_empty());
        drop(state);
        self.drained.notify_waiters();
        Some(open)
    }

    /// Runs `f` under the queue's lock, so no drain runs concurrently with it.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _state = self.state.lock();
        f()
    }

    /// Gives the queue's buffer back to the allocator when nothing is queued: a long-polling
    /// session then holds no queue memory between its pings (a WebSocket's writer takes the
    /// buffer for each write and frees it after). Called from the heartbeat's visits.
    pub fn release_if_empty(&self) {
        let mut state = self.state.lock();
        if state.frames.is_empty() && state.frames.capacity() > 0 {
            state.frames = VecDeque::new();
        }
    }

    /// The queue's buffer capacity in frames (tests check it is given back).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.state.lock().frames.capacity()
    }

    /// Whether frames are waiting.
    pub fn is_empty(&self) -> bool {
        self.state.lock().frames.is_empty()
    }

    /// Waits until a frame is queued or the queue is closed.
    pub async fn ready(&self) {
        loop {
            let notified = self.notify.notified();
            {
                let state = self.state.lock();
                if !state.frames.is_empty() || state.closed {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Whether the queue is under half its limits: a reader reads the client's next message
    /// only then, so the answers a client asks for (pongs, acks, sync replies) wait for it to
    /// read, instead of piling up in server memory.
    fn under_high_water(&self, state: &State) -> bool {
        state.closed
            || (state.frames.len() < self.max_frames / 2 && state.bytes < self.max_bytes / 2)
    }

    /// Waits until the queue is under half its limits, or closed. A connection's reader
    /// awaits this before each read: a client that does not read stops being read from
    /// (TCP then holds back its sender) rather than making the server queue without bound.
    pub async fn has_room(&self) {
        // The usual case, checked without registering a waiter (it runs before every read).
        if self.under_high_water(&self.state.lock()) {
            return;
        }
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.under_high_water(&self.state.lock()) {
                return;
            }
            drained.await;
        }
    }

    /// Whether the queue is under half its limits now (see [`Outbox::has_room`]). A reader
    /// that drains the queue itself (the WebSocket driver) checks this instead of waiting:
    /// over half, frames are queued, so its wake-up fires and the write makes room.
    pub fn has_room_now(&self) -> bool {
        self.under_high_water(&self.state.lock())
    }

    /// Closes the queue: later pushes fail; the writer still drains what is queued.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_one();
        self.drained.notify_waiters();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Frame {
        Frame::from_payload(&vec![b'x'; n], FrameKind::Text)
    }

    #[test]
    fn overflow_by_frames_closes() {
        let q = Outbox::new(2, 1 << 20);
        q.push(frame(1)).unwrap();
        q.push(frame(1)).unwrap();
        assert_eq!(q.push(frame(1)), Err(PushError::Overflow));
        assert_eq!(q.push(frame(1)), Err(PushError::Closed));
        let mut out = VecDeque::new();
        assert!(q.drain_into(&mut out));
        assert_eq!(out.len(), 2);
        out.clear();
        assert!(!q.drain_into(&mut out));
    }

    #[test]
    fn overflow_by_bytes_closes() {
        let q = Outbox::new(100, 100);
        q.push(frame(50)).unwrap();
        assert_eq!(q.push(frame(50)), Err(PushError::Overflow));
    }

    fn pong(payload: u8) -> Frame {
        Frame::control(bytes::Bytes::copy_from_slice(&[0x8a, 1, payload]))
    }

    #[test]
    fn control_frames_count_against_the_limits() {
        // A client's WebSocket pings are answered with control frames: uncounted, a ping
        // flood from a client that never reads grew the server by a gigabyte.
        let q = Outbox::new(2, 1 << 20);
        q.push(frame(1)).unwrap();
        q.push(Frame::control(bytes::Bytes::from_static(&[0x88, 0])))
            .unwrap();
        assert_eq!(
            q.push(Frame::control(bytes::Bytes::from_static(&[0x89, 0]))),
            Err(PushError::Overflow)
        );
    }

    #[test]
    fn a_ping_flood_queues_a_few_pongs_the_last_answering_the_latest_ping() {
        let q = Outbox::new(64, 1 << 20);
        q.push(frame(1)).unwrap();
        for i in 0..10_000u32 {
            q.push(pong(i as u8)).unwrap();
        }
        q.push(frame(2)).unwrap();
        let mut out = VecDeque::new();
        q.drain_into(&mut out);
        let pongs: Vec<_> = out.iter().filter(|f| is_pong(f)).collect();
        assert_eq!(pongs.len(), MAX_PENDING_PONGS);
        assert_eq!(out.len(), MAX_PENDING_PONGS + 2);
        // A burst under the cap is answered ping by ping, in order.
        assert_eq!(&pongs[0].wire()[..], &[0x8a, 1, 0]);
        assert_eq!(&pongs[14].wire()[..], &[0x8a, 1, 14]);
        assert_eq!(&pongs[15].wire()[..], &[0x8a, 1, (9_999u32 % 256) as u8]);
        // Once drained, pings get their own pongs again.
        q.push(pong(1)).unwrap();
        q.push(pong(2)).unwrap();
        out.clear();
        q.drain_into(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[tokio::test]
    async fn has_room_waits_for_the_writer_under_half_the_limit() {
        let q = std::sync::Arc::new(Outbox::new(4, 1 << 20));
        q.push(frame(1)).unwrap();
        // Under half: room at once.
        futures_util::FutureExt::now_or_never(q.has_room()).expect("room");
        q.push(frame(1)).unwrap();
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.has_room().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "half full: the reader waits");
        let mut out = VecDeque::new();
        q.drain_into(&mut out);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("drained: the reader goes on")
            .unwrap();
    }

    #[test]
    fn a_close_frame_is_queued_after_an_overflow_once() {
        let q = Outbox::new(2, 1 << 20);
        q.push(frame(1)).unwrap();
        q.push(frame(1)).unwrap();
        assert_eq!(q.push(frame(1)), Err(PushError::Overflow));
        let close = || Frame::control(bytes::Bytes::from_static(&[0x88, 2, 0x03, 0xf0]));
        q.push_final(close());
        q.push_final(close());
        let mut out = VecDeque::new();
        assert!(q.drain_into(&mut out));
        assert_eq!(out.len(), 3, "the two frames and one close frame");
        assert_eq!(out[2].wire()[0], 0x88);
        out.clear();
        assert!(!q.drain_into(&mut out));
    }

    #[test]
    fn a_drain_into_an_empty_batch_leaves_the_queue_no_buffer() {
        let q = Outbox::new(64, 1 << 20);
        for _ in 0..3 {
            q.push(frame(1)).unwrap();
            let mut batch = VecDeque::new();
            q.drain_into(&mut batch);
            assert_eq!(batch.len(), 1);
            assert_eq!(q.capacity(), 0, "the writer took the queue's buffer");
        }
    }

    #[tokio::test]
    async fn ready_wakes_on_push() {
        let q = std::sync::Arc::new(Outbox::new(10, 1 << 20));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.ready().await });
        tokio::task::yield_now().await;
        q.push(frame(3)).unwrap();
        waiter.await.unwrap();
    }

    #[test]
    fn an_empty_queue_gives_its_buffer_back_and_a_busy_one_keeps_it() {
        let q = Outbox::new(10, 1 << 20);
        assert_eq!(q.capacity(), 0, "no buffer before anything is queued");
        q.push(frame(3)).unwrap();
        q.push(frame(3)).unwrap();
        // Frames waiting: the buffer stays.
        q.release_if_empty();
        assert!(q.capacity() >= 2 && !q.is_empty());
        let mut out = VecDeque::new();
        assert!(q.drain_into(&mut out));
        // The drain moved the buffer to the writer; a second write swaps one back.
        q.push(frame(1)).unwrap();
        out.clear();
        assert!(q.drain_into(&mut out));
        assert!(q.capacity() > 0);
        q.release_if_empty();
        assert_eq!(q.capacity(), 0);
        // Still usable: the next push allocates again.
        q.push(frame(2)).unwrap();
        out.clear();
        assert!(q.drain_into(&mut out));
        assert_eq!(out.len(), 1);
    }
}
