//! The endpoints other than Engine.IO that the front door mounts by path prefix.

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::{HttpReply, RequestHead};

/// The read half of a switched connection, as a [`WebSocketService`] gets it.
pub type BoxedReader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
/// The write half of a switched connection, as a [`WebSocketService`] gets it.
pub type BoxedWriter = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
/// A WebSocket session accepted by a [`WebSocketService`]: run once the `101` answer is
/// written, with the connection's halves and the bytes the client sent after its request head
/// (already read by the HTTP parser). It owns the connection until its future completes.
pub type WsSession =
    Box<dyn FnOnce(BoxedReader, BoxedWriter, Bytes) -> BoxFuture<'static, ()> + Send>;

/// A WebSocket endpoint other than Engine.IO (the Yjs documents at `/yjs/`), mounted on the
/// front door by path prefix with `EngineBuilder::websocket_service`. It serves hyper
/// connections and sockets adopted from a host (Node's `handleUpgrade`) alike.
pub trait WebSocketService: Send + Sync + 'static {
    /// Decides on a WebSocket upgrade request for a path under the service's prefix: a session
    /// to run on the switched connection, or an HTTP answer instead (no switch). Refusals that
    /// clients must see as WebSocket close codes are the session's to send.
    fn accept(&self, head: &RequestHead) -> Result<WsSession, HttpReply>;

    /// Called once when the engine starts, with the runtime its connections run on.
    fn start(&self, _runtime: &tokio::runtime::Handle) {}

    /// Appends the service's metrics to `/metrics` (Prometheus text).
    fn render_metrics(&self, _out: &mut String) {}

    /// Closes every connection and saves what must survive; called by
    /// `Engine::shutdown` before the runtime stops.
    fn shutdown(&self) {}

    /// How many of its connections are still open (closing ones included): what
    /// `Engine::closed` waits for after a shutdown.
    fn open_connections(&self) -> usize {
        0
    }
}

/// A plain HTTP endpoint other than Engine.IO (the SSE stream and the server API), mounted
/// on the front door by path prefix with `EngineBuilder::http_service`.
pub trait HttpService: Send + Sync + 'static {
    /// Answers a request whose body (at most [`HttpService::max_body`] bytes) is read.
    fn serve(&self, head: &RequestHead, body: Bytes) -> BoxFuture<'static, HttpReply>;

    /// The largest request body the service accepts; larger ones get 413.
    fn max_body(&self) -> usize {
        64 * 1024
    }

    /// Ends every long-lived response the service serves (SSE streams) and refuses new
    /// ones; called by `Engine::shutdown`, which must not leave a response open on a runtime
    /// that keeps running (`EngineBuilder::build_on`).
    fn shutdown(&self) {}
}
