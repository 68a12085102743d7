//! Flow-controlled delivery of bytes from the engine to a Node stream.
//!
//! Node's `write()` buffers without limit; a client that stops reading would make Node hold
//! everything the engine sends. So a pump hands JS at most [`WINDOW`] chunks that JS has
//! not yet acknowledged (it acks from `write()`'s callback, once the bytes reached the
//! kernel). When the window is full the pump stops reading, the engine's writer blocks, its
//! bounded queue fills and the slow client is disconnected like any other.

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
