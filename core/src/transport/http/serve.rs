//! Serving a request from hyper, or a connection a host already read a head from.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::router::request_timeout;
use super::{EioError, HttpApp, HttpReply, RequestHead, Routed, SwitchedIo};
use crate::transport::body::read_body;
use crate::transport::reply::ResponseBody;
use crate::transport::SessionData;

impl<D: SessionData> HttpApp<D> {
    /// Serves one request from hyper (the engine's listeners), or from a host's hyper stack
    /// through [`crate::tower`]: any body type.
    pub(crate) async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
        peer: SocketAddr,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = bytes::Bytes>,
    {
        let (parts, body) = req.into_parts();
        let head = RequestHead {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            peer,
        };
        let limit = self.config.max_payload;
        let timeout = self.config.request_timeout;
        let headers = &head.headers;
        let read = async move {
            // hyper's header timeout ends with the head: a body trickled in byte by byte
            // would hold the connection (and a polling session's POST slot) forever.
            tokio::time::timeout(timeout, read_body(headers, body, limit))
                .await
                .unwrap_or_else(|_| Err(request_timeout()))
        };
        match self.route(&head, read).await {
            Routed::Reply(reply) => reply.into_response(),
            Routed::Upgrade(upgrade) => {
                let mut reply = HttpReply::empty(StatusCode::SWITCHING_PROTOCOLS);
                reply.headers = upgrade.response_headers();
                let req = Request::from_parts(parts, ());
                tokio::spawn(async move {
                    let upgraded = match hyper::upgrade::on(req).await {
                        Ok(u) => u,
                        Err(e) => {
                            tracing::debug!(error = %e, "WebSocket upgrade failed");
                            return upgrade.abort();
                        }
                    };
                    // A task of its own for the WebSocket, so this one (with the upgrade
                    // machinery in its state) ends and frees its memory now.
                    // The socket itself when hyper can give it back (no extra layer per read
                    // and write); `read_buf` holds what the client sent after its request.
                    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
                        Ok(parts) => {
                            tokio::spawn(upgrade.run(parts.io.into_inner(), parts.read_buf));
                            return;
                        }
                        Err(upgraded) => upgraded,
                    };
                    match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                        Ok(parts) => {
                            tokio::spawn(upgrade.run(parts.io.into_inner(), parts.read_buf));
                        }
                        Err(upgraded) => {
                            tokio::spawn(upgrade.run(TokioIo::new(upgraded), Bytes::new()));
                        }
                    }
                });
                reply.into_response()
            }
        }
    }

    /// Serves a connection a host accepted and already read a request head from (the Node
    /// binding's `handleUpgrade`): writes the answer itself, then starts the WebSocket on a
    /// task of its own (which does not keep this one's state for the connection's life).
    /// `buffered` holds bytes the client sent after the head.
    pub async fn serve_adopted<S: SwitchedIo>(
        &self,
        head: RequestHead,
        mut io: S,
        buffered: Bytes,
    ) {
        use tokio::io::AsyncWriteExt;
        let no_body = async { Ok(Bytes::new()) };
        let reply = if head.is_websocket_upgrade() {
            match self.route(&head, no_body).await {
                Routed::Upgrade(upgrade) => {
                    if io.write_all(&upgrade.response_bytes()).await.is_err() {
                        return upgrade.abort();
                    }
                    tokio::spawn(upgrade.run(io, buffered));
                    return;
                }
                Routed::Reply(reply) => reply,
            }
        } else {
            EioError::BadRequest.reply()
        };
        let _ = io.write_all(&reply.to_http1_bytes()).await;
        let _ = io.shutdown().await;
    }
}
