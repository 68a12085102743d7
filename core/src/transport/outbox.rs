//! A connection's bounded outbound queue.
//!
//! Producers (room broadcasts, acks, heartbeats) push shared [`Frame`]s without blocking; the
//! writer takes everything queued at once and writes it with one vectored write. A producer
//! that finds the queue over its frame or byte limit gets [`PushError::Overflow`] and the
//! connection is closed as a slow reader: it never grows server memory without bound and
//! never slows the others.

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
}

/// Moves the queued frames out: an O(1) swap of buffers when the caller's is empty (the
/// usual case), so the queue and the writer reuse two allocations back and forth.
fn take_all(state: &mut State, into: &mut VecDeque<Frame>) {
    if into.is_empty() {
        std::mem::swap(&mut state.frames, into);
    } else {
        into.extend(state.frames.drain(..));
    }
    state.bytes = 0;
}

/// The bounded queue between producers and one connection's writer.
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    max_frames: usize,
    max_bytes: usize,
}

impl Outbox {
    /// An empty queue with these limits.
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            max_frames,
            max_bytes,
        }
    }

    /// Queues a frame. Control frames bypass the limits (they are tiny and few).
    pub fn push(&self, frame: Frame) -> Result<(), PushError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        if frame.kind() != FrameKind::Control
            && (state.frames.len() >= self.max_frames || state.bytes + frame.len() > self.max_bytes)
        {
            state.closed = true;
            drop(state);
            self.notify.notify_one();
            return Err(PushError::Overflow);
        }
        let was_empty = state.frames.is_empty();
        state.bytes += frame.len();
        state.frames.push_back(frame);
        drop(state);
        if was_empty {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Moves every queued frame into `into` (which the caller reuses between turns).
    /// Returns false once the queue is closed and empty.
    pub fn drain_into(&self, into: &mut VecDeque<Frame>) -> bool {
        let mut state = self.state.lock();
        take_all(&mut state, into);
        !(state.closed && into.is_empty())
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
        Some(!(state.closed && into.is_empty()))
    }

    /// Runs `f` under the queue's lock, so no drain runs concurrently with it.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _state = self.state.lock();
        f()
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

    /// Closes the queue: later pushes fail; the writer still drains what is queued.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_one();
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

    #[test]
    fn control_frames_bypass_limits() {
        let q = Outbox::new(1, 1 << 20);
        q.push(frame(1)).unwrap();
        q.push(Frame::control(bytes::Bytes::from_static(&[0x8a, 0])))
            .unwrap();
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
}
