//! An accepted WebSocket upgrade: the `101` answer and what runs on the switched connection.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{BoxedReader, BoxedWriter, WsSession};
use crate::transport::websocket::{self, Mode};
use crate::transport::{CloseReason, EioServer, SessionData};

/// The byte stream of a switched connection. An Engine.IO WebSocket runs on it whole (its one
/// task reads and writes in turn, so the stream needs no split halves and no allocation
/// shared between them); a [`super::WebSocketService`] gets it as two halves.
pub trait SwitchedIo: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    /// The stream as a read half and a write half. The default shares it behind a lock
    /// (`tokio::io::split`); a stream that has owned halves gives those.
    fn into_halves(self) -> (BoxedReader, BoxedWriter) {
        let (reader, writer) = tokio::io::split(self);
        (Box::new(reader), Box::new(writer))
    }
}

impl SwitchedIo for tokio::net::TcpStream {
    fn into_halves(self) -> (BoxedReader, BoxedWriter) {
        let (reader, writer) = self.into_split();
        (Box::new(reader), Box::new(writer))
    }
}

/// A TLS stream has no owned halves (one session state encrypts and decrypts).
impl SwitchedIo for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {}

/// A connection hyper could not give back as a socket (a prefixed or wrapped stream).
impl SwitchedIo for hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {}

/// An in-memory pipe (a host bridging a connection only it can read, such as Node's TLS).
impl SwitchedIo for tokio::io::DuplexStream {}

/// Halves a host already has, joined.
impl<R, W> SwitchedIo for tokio::io::Join<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    fn into_halves(self) -> (BoxedReader, BoxedWriter) {
        let (reader, writer) = self.into_inner();
        (Box::new(reader), Box::new(writer))
    }
}

/// An accepted WebSocket upgrade, ready to run once the connection is switched.
pub struct Upgrade<D = ()> {
    pub(super) target: UpgradeTarget<D>,
    pub(super) accept: String,
}

/// What runs on an accepted upgrade.
pub(super) enum UpgradeTarget<D> {
    /// An Engine.IO WebSocket; `mode` is `None` when the upgrade is accepted only to be closed
    /// (a second upgrade of a sid).
    EngineIo {
        server: Arc<EioServer<D>>,
        mode: Option<Mode<D>>,
    },
    /// A session of a [`WebSocketService`].
    Service(WsSession),
}

impl<D: SessionData> Upgrade<D> {
    /// The headers of the `101 Switching Protocols` answer.
    pub fn response_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        vec![
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (
                header::SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_str(&self.accept).unwrap_or(HeaderValue::from_static("")),
            ),
        ]
    }

    /// The complete `101` answer in wire form, for hosts that write it themselves.
    pub fn response_bytes(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            self.accept
        )
        .into_bytes()
    }

    /// Runs the WebSocket on the switched connection until it closes.
    ///
    /// Not an `async fn`: the target is chosen before the future is made, so the future is
    /// the target's own, and the connection's task does not also keep this upgrade and a
    /// second copy of the arguments for its life.
    pub fn run<S: SwitchedIo>(
        self,
        io: S,
        prefix: Bytes,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        use futures_util::future::Either;
        match self.target {
            UpgradeTarget::EngineIo {
                server,
                mode: Some(mode),
            } => Either::Left(websocket::run(server, io, prefix, mode)),
            UpgradeTarget::EngineIo { mode: None, .. } => {
                Either::Right(Either::Left(websocket::reject(io)))
            }
            UpgradeTarget::Service(session) => {
                let (reader, writer) = io.into_halves();
                Either::Right(Either::Right(session(reader, writer, prefix)))
            }
        }
    }

    /// Gives the upgrade up (the connection could not be switched).
    pub fn abort(self) {
        match &self.target {
            UpgradeTarget::EngineIo {
                mode: Some(Mode::New(s)),
                ..
            } => s.close(CloseReason::TransportError),
            UpgradeTarget::EngineIo {
                mode: Some(Mode::Upgrade(s)),
                ..
            } => s.end_upgrade(),
            UpgradeTarget::EngineIo { mode: None, .. } | UpgradeTarget::Service(_) => {}
        }
    }
}
