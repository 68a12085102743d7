//! An accepted WebSocket upgrade: the `101` answer and what runs on the switched connection.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};

use super::WsSession;
use crate::transport::websocket::{self, Mode};
use crate::transport::{CloseReason, EioServer, SessionData};

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
    pub fn run<R, W>(
        self,
        reader: R,
        writer: W,
        prefix: Bytes,
    ) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use futures_util::future::Either;
        match self.target {
            UpgradeTarget::EngineIo {
                server,
                mode: Some(mode),
            } => Either::Left(websocket::run(server, reader, writer, prefix, mode)),
            UpgradeTarget::EngineIo { mode: None, .. } => {
                Either::Right(Either::Left(websocket::reject(writer)))
            }
            UpgradeTarget::Service(session) => Either::Right(Either::Right(session(
                Box::new(reader),
                Box::new(writer),
                prefix,
            ))),
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
