//! Flow-controlled delivery of bytes from the engine to a Node stream.
//!
//! Node's `write()` buffers without limit; a client that stops reading would make Node hold
//! everything the engine sends. So a pump hands JS at most [`WINDOW`] chunks that JS has
//! not yet acknowledged (it acks from `write()`'s callback, once the bytes reached the
//! kernel). When the window is full the pump stops reading, the engine's writer blocks, its
//! bounded queue fills and the slow client is disconnected like any other.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use napi::bindgen_prelude::Buffer;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use tokio::sync::Semaphore;

use crate::Notify;

/// Chunks in flight to JS at most.
pub const WINDOW: usize = 8;

/// The JS side's acknowledgements.
#[derive(Clone)]
pub struct Window(Arc<Semaphore>);

impl Window {
    /// A full window.
    pub fn new() -> Self {
        Window(Arc::new(Semaphore::new(WINDOW)))
    }

    /// JS wrote one chunk.
    pub fn ack(&self) {
        if self.0.available_permits() < WINDOW {
            self.0.add_permits(1);
        }
    }

    /// Stops waiters (the stream is over).
    pub fn close(&self) {
        self.0.close();
    }

    /// Sends `chunk` to JS once the window has room; false when the window closed.
    pub async fn send(&self, to_js: &Notify<Option<Buffer>>, chunk: Bytes) -> bool {
        match self.0.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return false,
        }
        let _ = to_js.call(
            Some(Buffer::from(chunk.to_vec())),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
        true
    }

    /// Tells JS the stream ended.
    pub fn end(&self, to_js: &Notify<Option<Buffer>>) {
        let _ = to_js.call(None, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Bytes a bridged socket may have handed to the engine side before JS pauses it.
pub const INBOUND_HIGH: usize = 256 * 1024;
/// ...and the level they must fall to before JS resumes it.
pub const INBOUND_LOW: usize = 64 * 1024;

/// Flow control the other way, from a Node socket into the engine: Node's `'data'` events
/// do not wait, so the bytes handed over and not yet taken by the engine are counted, and
/// past [`INBOUND_HIGH`] JS pauses the socket until they fall to [`INBOUND_LOW`]. A client
/// that sends faster than the engine reads then fills its own kernel buffers, not ours.
#[derive(Default)]
pub struct Inbound {
    bytes: AtomicUsize,
    paused: AtomicBool,
}

impl Inbound {
    /// JS handed over `len` bytes; false when it must pause the socket.
    pub fn add(&self, len: usize) -> bool {
        let total = self.bytes.fetch_add(len, Ordering::SeqCst) + len;
        if total <= INBOUND_HIGH {
            return true;
        }
        self.paused.store(true, Ordering::SeqCst);
        // The engine may have taken everything between the add and the store: then nobody
        // would resume the socket, so do not pause it.
        if self.bytes.load(Ordering::SeqCst) <= INBOUND_LOW
            && self.paused.swap(false, Ordering::SeqCst)
        {
            return true;
        }
        false
    }

    /// The engine took `len` bytes; true when JS must resume the socket now.
    pub fn taken(&self, len: usize) -> bool {
        let left = self.bytes.fetch_sub(len, Ordering::SeqCst) - len;
        left <= INBOUND_LOW && self.paused.swap(false, Ordering::SeqCst)
    }

    /// Bytes handed over and not yet taken.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_pauses_past_high_and_resumes_once_at_low() {
        let inbound = Inbound::default();
        let chunk = 16 * 1024;
        let mut accepted = 0;
        while inbound.add(chunk) {
            accepted += 1;
        }
        assert_eq!(accepted, INBOUND_HIGH / chunk, "pauses past the high mark");
        let mut resumes = 0;
        while inbound.pending() > 0 {
            resumes += usize::from(inbound.taken(chunk));
        }
        assert_eq!(resumes, 1, "one resume, at the low mark");
        assert!(inbound.add(chunk), "flowing again");
    }
}
