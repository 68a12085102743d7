//! Accepting connections: the accept loop of the engine's listeners (plain or TLS), and
//! HTTP/1.1 on each accepted or adopted connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::http::HttpApp;
use super::tls::TlsAcceptor;
use super::SessionData;

/// Accepts connections until `shutdown` resolves; with `tls`, each speaks TLS.
pub async fn serve<D: SessionData>(
    listener: TcpListener,
    app: Arc<HttpApp<D>>,
    tls: Option<Arc<TlsAcceptor>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        // The handshake runs in the connection's own task: a slow or silent client must never
        // hold up the accept loop.
        match &tls {
            None => tokio::spawn(serve_connection(stream, peer, app)),
            Some(tls) => tokio::spawn(serve_tls_connection(stream, peer, app, tls.clone())),
        };
        // Let the new connection start before accepting the next: the scheduler runs the
        // newest task first, which would otherwise serve connections in reverse arrival order.
        tokio::task::yield_now().await;
    }
}

/// Serves HTTP/1.1 on one accepted connection.
pub async fn serve_connection<D: SessionData>(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<HttpApp<D>>,
) {
    serve_http(stream, peer, app).await;
}

/// Runs the TLS handshake on one accepted connection, then serves HTTP/1.1 over it. A failed
/// or timed-out handshake (a plain-HTTP client, a client that does not trust the
/// certificate, a scanner) only ends this connection.
pub async fn serve_tls_connection<D: SessionData>(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<HttpApp<D>>,
    tls: Arc<TlsAcceptor>,
) {
    match tls.accept(stream).await {
        Ok(stream) => serve_http(stream, peer, app).await,
        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
    }
}

/// Serves HTTP/1.1 on a connection a host accepted itself and may already have read from:
/// `prefix` holds those bytes (the start of the first request, before any parsing), and is
/// read before the socket (the C API's `sb_engine_adopt`).
pub async fn serve_connection_with_prefix<D: SessionData>(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<HttpApp<D>>,
    prefix: Bytes,
) {
    if prefix.is_empty() {
        return serve_connection(stream, peer, app).await;
    }
    serve_http(Prefixed { prefix, stream }, peer, app).await;
}

/// HTTP/1.1 with upgrades over any connection.
async fn serve_http<D: SessionData, I>(io: I, peer: SocketAddr, app: Arc<HttpApp<D>>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Slowloris guard: a request head that takes longer is dropped.
    let header_timeout = app.config.request_timeout;
    // hyper answers a head that does not fit with 431 (its default is ~400 KB, which a
    // session would then keep a copy of).
    let max_head = app.config.max_header_bytes;
    let service = hyper::service::service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle(req, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_head)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// A stream that yields `prefix` before what the socket reads; writes go to the socket.
struct Prefixed {
    prefix: Bytes,
    stream: TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
