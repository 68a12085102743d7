//! The HTTP front door: Engine.IO routing, other WebSocket services (Yjs), health and metrics
//! (CORS in `cors.rs`, request bodies in `body.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub use super::accept::{serve, serve_connection, serve_connection_with_prefix};
use super::body::read_body;
use super::cors::{add_cors, check_origin, preflight, OriginCheck};
pub use super::health::Readiness;
use super::reply::ResponseBody;
pub use super::reply::{BodyStream, EioError, HttpReply};
use super::websocket::{self, Mode};
use super::{EioServer, HandshakeInfo, OpenError, TransportKind};
use crate::config::Config;
use crate::metrics::Metrics;

/// A query parameter, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes in a path segment (`+` stays a plus, unlike in queries).
pub fn percent_decode_path(s: &str) -> String {
    percent_decode(&s.replace('+', "%2B"))
}

/// Decodes `%XX` escapes and `+` (as in query strings); invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The byte two hex digits stand for. Only digits: `u8::from_str_radix` alone would also
/// take a sign (`%+A` would decode as a newline).
pub(crate) fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    match pair {
        [hi, lo] => Some((digit(*hi)? * 16 + digit(*lo)?) as u8),
        _ => None,
    }
}

/// A request head, independent of the HTTP library that parsed it (hyper, or Node when a
/// host hands requests over).
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target (path and query).
    pub uri: http::Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The client's address.
    pub peer: SocketAddr,
}

impl RequestHead {
    fn query(&self) -> String {
        self.uri.query().unwrap_or("").to_owned()
    }

    fn handshake(&self) -> HandshakeInfo {
        HandshakeInfo {
            headers: compact_headers(&self.headers),
            query: self.query(),
            address: self.peer,
        }
    }

    /// The same request with another path (the query kept): the front door routes on the
    /// path without the configured prefix. `None` when the result is no valid target.
    fn with_path(&self, path: &str) -> Option<RequestHead> {
        let target = match self.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        Some(RequestHead {
            method: self.method.clone(),
            uri: target.parse().ok()?,
            headers: self.headers.clone(),
            peer: self.peer,
        })
    }

    /// Whether the request asks for a WebSocket upgrade.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.method == Method::GET
            && self
                .headers
                .get(header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }
}

/// Headers that only serve the request they came with (the WebSocket handshake, the
/// body's framing, caching): a session has no use for them once open.
const TRANSIENT_HEADERS: &[HeaderName] = &[
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::TRANSFER_ENCODING,
    header::CACHE_CONTROL,
    header::PRAGMA,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
];

/// The handshake headers a session keeps for its life (host hooks and handlers read them):
/// every header but the transient ones, copied out of the HTTP parser's read buffer. Parsed
/// header values are slices of that buffer (8 KiB or more), so keeping them would keep the
/// whole buffer alive per idle connection; what is kept is bounded by `max_header_bytes`.
fn compact_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if TRANSIENT_HEADERS.contains(name) {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            out.append(name.clone(), v);
        }
    }
    out
}

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
/// front door by path prefix with [`crate::EngineBuilder::websocket_service`]. It serves hyper
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
    /// [`crate::Engine::shutdown`] before the runtime stops.
    fn shutdown(&self) {}
}

/// A plain HTTP endpoint other than Engine.IO (the SSE stream and the server API), mounted
/// on the front door by path prefix with [`crate::EngineBuilder::http_service`].
pub trait HttpService: Send + Sync + 'static {
    /// Answers a request whose body (at most [`HttpService::max_body`] bytes) is read.
    fn serve(&self, head: &RequestHead, body: Bytes) -> BoxFuture<'static, HttpReply>;

    /// The largest request body the service accepts; larger ones get 413.
    fn max_body(&self) -> usize {
        64 * 1024
    }
}

/// Everything the HTTP front door serves.
pub struct HttpApp {
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    mounts: Vec<(String, Arc<EioServer>)>,
    services: Vec<(String, Arc<dyn WebSocketService>)>,
    http_services: Vec<(String, Arc<dyn HttpService>)>,
    /// Set when the engine begins to shut down: `/healthz` answers 503 from then on.
    pub(super) closing: std::sync::atomic::AtomicBool,
    /// Asked by `/healthz`: a reason when a part the engine depends on (the cluster) is not
    /// ready; see [`HttpApp::set_readiness`].
    pub(super) readiness: std::sync::OnceLock<Readiness>,
}

/// An accepted WebSocket upgrade, ready to run once the connection is switched.
pub struct Upgrade {
    target: UpgradeTarget,
    accept: String,
}

/// What runs on an accepted upgrade.
enum UpgradeTarget {
    /// An Engine.IO WebSocket; `mode` is `None` when the upgrade is accepted only to be closed
    /// (a second upgrade of a sid).
    EngineIo {
        server: Arc<EioServer>,
        mode: Option<Mode>,
    },
    /// A session of a [`WebSocketService`].
    Service(WsSession),
}

impl Upgrade {
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
    pub async fn run<R, W>(self, reader: R, writer: W, prefix: Bytes)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        match self.target {
            UpgradeTarget::EngineIo {
                server,
                mode: Some(mode),
            } => websocket::run(server, reader, writer, prefix, mode).await,
            UpgradeTarget::EngineIo { mode: None, .. } => websocket::reject(writer).await,
            UpgradeTarget::Service(session) => {
                session(Box::new(reader), Box::new(writer), prefix).await
            }
        }
    }

    /// Gives the upgrade up (the connection could not be switched).
    pub fn abort(self) {
        match &self.target {
            UpgradeTarget::EngineIo {
                mode: Some(Mode::New(s)),
                ..
            } => s.close(super::CloseReason::TransportError),
            UpgradeTarget::EngineIo {
                mode: Some(Mode::Upgrade(s)),
                ..
            } => s.end_upgrade(),
            UpgradeTarget::EngineIo { mode: None, .. } | UpgradeTarget::Service(_) => {}
        }
    }
}

/// What the front door does with a request.
pub enum Routed {
    /// Answer with this.
    Reply(HttpReply),
    /// Switch to WebSocket.
    Upgrade(Upgrade),
}

impl HttpApp {
    /// A front door serving `mounts` (Engine.IO servers by path prefix).
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        mounts: Vec<(String, Arc<EioServer>)>,
    ) -> Arc<Self> {
        Self::with_services(config, metrics, mounts, Vec::new(), Vec::new())
    }

    /// A front door serving `mounts` and WebSocket `services` (both by path prefix).
    pub fn with_services(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        mounts: Vec<(String, Arc<EioServer>)>,
        services: Vec<(String, Arc<dyn WebSocketService>)>,
        http_services: Vec<(String, Arc<dyn HttpService>)>,
    ) -> Arc<Self> {
        Arc::new(HttpApp {
            config,
            metrics,
            mounts,
            services,
            http_services,
            closing: std::sync::atomic::AtomicBool::new(false),
            readiness: std::sync::OnceLock::new(),
        })
    }

    /// The WebSocket services, with their path prefixes.
    pub fn services(&self) -> &[(String, Arc<dyn WebSocketService>)] {
        &self.services
    }

    /// The WebSocket service mounted at a prefix of `path`.
    fn http_service(&self, path: &str) -> Option<&Arc<dyn HttpService>> {
        self.http_services
            .iter()
            .find(|(prefix, _)| {
                path.starts_with(prefix.as_str()) || path == prefix.trim_end_matches('/')
            })
            .map(|(_, service)| service)
    }

    fn service(&self, path: &str) -> Option<&Arc<dyn WebSocketService>> {
        self.services
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, service)| service)
    }

    fn mount(&self, path: &str) -> Option<&Arc<EioServer>> {
        self.mounts
            .iter()
            .find(|(prefix, _)| path == prefix || path == prefix.trim_end_matches('/'))
            .map(|(_, server)| server)
    }

    /// Whether this front door serves `path` (hosts use it to route requests to the engine).
    pub fn serves(&self, path: &str) -> bool {
        let Some(path) = self.config.strip_prefix(path) else {
            return false;
        };
        (path == "/healthz" && self.config.healthz)
            || (path == "/metrics" && self.config.metrics)
            || self.mount(path).is_some()
            || self.service(path).is_some()
            || self.http_service(path).is_some()
    }

    /// Routes a request. `body` is read only for a POST that needs it, with the
    /// `maxPayload` limit already applied by the caller's reader.
    pub async fn route<B>(&self, head: &RequestHead, body: B) -> Routed
    where
        B: std::future::Future<Output = Result<Bytes, HttpReply>>,
    {
        // Endpoints live under the prefix and are routed on the rest of the path.
        let stripped;
        let head = match self.config.strip_prefix(head.uri.path()) {
            _ if self.config.prefix.is_empty() => head,
            Some(rest) => match head.with_path(rest) {
                Some(h) => {
                    stripped = h;
                    &stripped
                }
                None => return Routed::Reply(not_found()),
            },
            None => return Routed::Reply(not_found()),
        };
        let path = head.uri.path();
        let origin = check_origin(&self.config.cors_origins, &head.headers);
        // Health and metrics are for operators and probes, not pages: no CORS headers, so a
        // browser page of another origin cannot read them.
        let cors = (!matches!(path, "/healthz" | "/metrics")).then_some(&origin);
        if let Some(service) = self.service(path) {
            return self.route_service(service, head, &origin);
        }
        let mut reply = match (&head.method, path) {
            _ if matches!(origin, OriginCheck::Refused) && self.http_service(path).is_some() => {
                self.metrics.refusals.inc("origin");
                EioError::Forbidden.reply()
            }
            (&Method::OPTIONS, _) if self.http_service(path).is_some() => preflight(&head.headers),
            _ if self.http_service(path).is_some() => {
                let service = self.http_service(path).cloned();
                match (service, body.await) {
                    (Some(service), Ok(body)) if body.len() <= service.max_body() => {
                        service.serve(head, body).await
                    }
                    (_, Ok(_)) => HttpReply::json(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &br#"{"code":"PAYLOAD_TOO_LARGE","message":"Request body is too large"}"#[..],
                    ),
                    (_, Err(reply)) => reply,
                }
            }
            (&Method::GET, "/healthz") if self.config.healthz => self.health(),
            (&Method::GET, "/metrics") if self.config.metrics => {
                let mut text = self.metrics.render();
                for (_, service) in &self.services {
                    service.render_metrics(&mut text);
                }
                // Tasks alive on the engine's runtime (this request's included): back at its
                // idle value once connections are gone, so leaked tasks, and the timers they
                // hold, show here.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    text.push_str(&format!(
                        "# HELP switchboard_runtime_tasks Tasks alive on the engine's runtime.\n\
                         # TYPE switchboard_runtime_tasks gauge\n\
                         switchboard_runtime_tasks {}\n",
                        runtime.metrics().num_alive_tasks()
                    ));
                }
                let mut r = HttpReply::text(Bytes::from(text));
                r.headers = vec![(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                )];
                r
            }
            _ => match self.mount(path).cloned() {
                None => not_found(),
                Some(_) if matches!(origin, OriginCheck::Refused) => {
                    self.metrics.refusals.inc("origin");
                    EioError::Forbidden.reply()
                }
                Some(_) if head.method == Method::OPTIONS => preflight(&head.headers),
                Some(server) if head.is_websocket_upgrade() => {
                    match self.prepare_upgrade(server, head) {
                        Ok(upgrade) => return Routed::Upgrade(upgrade),
                        Err(reply) => reply,
                    }
                }
                Some(server) => self.engineio_http(server, head, body).await,
            },
        };
        if let Some(origin) = cors {
            add_cors(&mut reply, origin);
        }
        Routed::Reply(reply)
    }

    /// A request for a WebSocket service: the service decides on upgrades; anything else is
    /// answered here.
    fn route_service(
        &self,
        service: &Arc<dyn WebSocketService>,
        head: &RequestHead,
        origin: &OriginCheck,
    ) -> Routed {
        let reply = if matches!(origin, OriginCheck::Refused) {
            self.metrics.refusals.inc("origin");
            HttpReply::json(
                StatusCode::FORBIDDEN,
                &br#"{"code":"FORBIDDEN","message":"Origin not allowed"}"#[..],
            )
        } else if !head.is_websocket_upgrade() {
            let mut r = HttpReply::json(
                StatusCode::UPGRADE_REQUIRED,
                &br#"{"code":"UPGRADE_REQUIRED","message":"This endpoint speaks WebSocket"}"#[..],
            );
            r.headers
                .push((header::UPGRADE, HeaderValue::from_static("websocket")));
            r
        } else {
            match head.headers.get(header::SEC_WEBSOCKET_KEY) {
                None => HttpReply::json(
                    StatusCode::BAD_REQUEST,
                    &br#"{"code":"BAD_REQUEST","message":"Missing Sec-WebSocket-Key"}"#[..],
                ),
                Some(key) => match service.accept(head) {
                    Ok(session) => {
                        return Routed::Upgrade(Upgrade {
                            target: UpgradeTarget::Service(session),
                            accept: websocket::accept_key(key.as_bytes()),
                        })
                    }
                    Err(reply) => reply,
                },
            }
        };
        Routed::Reply(reply)
    }

    async fn engineio_http<B>(
        &self,
        server: Arc<EioServer>,
        head: &RequestHead,
        body: B,
    ) -> HttpReply
    where
        B: std::future::Future<Output = Result<Bytes, HttpReply>>,
    {
        let query = head.query();
        if let Err(e) = check_eio(&query, "polling") {
            return e.reply();
        }
        match (&head.method, query_param(&query, "sid")) {
            (&Method::GET, None) => {
                match server.open_session(TransportKind::Polling, head.handshake()) {
                    Ok(session) => super::polling::handshake(session).await,
                    Err(e) => refused_open(e),
                }
            }
            (_, None) => EioError::BadHandshakeMethod.reply(),
            (method, Some(sid)) => {
                let Some(session) = server.session(&sid) else {
                    return EioError::UnknownSid.reply();
                };
                match *method {
                    Method::GET => super::polling::poll(session).await,
                    Method::POST => match body.await {
                        Ok(body) => super::polling::post(&server, session, body).await,
                        Err(reply) => reply,
                    },
                    _ => EioError::BadRequest.reply(),
                }
            }
        }
    }

    fn prepare_upgrade(
        &self,
        server: Arc<EioServer>,
        head: &RequestHead,
    ) -> Result<Upgrade, HttpReply> {
        let query = head.query();
        check_eio(&query, "websocket").map_err(EioError::reply)?;
        let key = head
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or_else(|| EioError::BadRequest.reply())?;
        let accept = websocket::accept_key(key.as_bytes());
        let mode = match query_param(&query, "sid") {
            Some(sid) => match server.session(&sid) {
                None => return Err(EioError::UnknownSid.reply()),
                // Already upgraded or upgrading: accept, then close (what clients expect).
                Some(s) if s.transport() != TransportKind::Polling || !s.begin_upgrade() => None,
                Some(s) => Some(Mode::Upgrade(s)),
            },
            None => match server.open_session(TransportKind::WebSocket, head.handshake()) {
                Ok(s) => Some(Mode::New(s)),
                Err(e) => return Err(refused_open(e)),
            },
        };
        Ok(Upgrade {
            target: UpgradeTarget::EngineIo { server, mode },
            accept,
        })
    }

    /// Serves one request from hyper (the engine's listeners), or from a host's hyper stack
    /// through [`crate::tower`]: any body type.
    pub(crate) async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
        peer: SocketAddr,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes>,
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
                            let (r, w) = parts.io.into_inner().into_split();
                            tokio::spawn(upgrade.run(r, w, parts.read_buf));
                            return;
                        }
                        Err(upgraded) => upgraded,
                    };
                    match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                        // A TLS stream has no owned halves (one session state encrypts and
                        // decrypts): `split` shares it behind a lock taken per poll, which one
                        // reader and one writer task hardly ever contend for.
                        Ok(parts) => {
                            let (r, w) = tokio::io::split(parts.io.into_inner());
                            tokio::spawn(upgrade.run(r, w, parts.read_buf));
                        }
                        Err(upgraded) => {
                            let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                            tokio::spawn(upgrade.run(r, w, Bytes::new()));
                        }
                    }
                });
                reply.into_response()
            }
        }
    }

    /// Serves a connection a host accepted and already read a request head from (the Node
    /// binding's `handleUpgrade`): writes the answer itself, then runs the WebSocket.
    /// `buffered` holds bytes the client sent after the head.
    pub async fn serve_adopted<R, W>(
        &self,
        head: RequestHead,
        reader: R,
        mut writer: W,
        buffered: Bytes,
    ) where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use tokio::io::AsyncWriteExt;
        let no_body = async { Ok(Bytes::new()) };
        let reply = if head.is_websocket_upgrade() {
            match self.route(&head, no_body).await {
                Routed::Upgrade(upgrade) => {
                    if writer.write_all(&upgrade.response_bytes()).await.is_err() {
                        return upgrade.abort();
                    }
                    return upgrade.run(reader, writer, buffered).await;
                }
                Routed::Reply(reply) => reply,
            }
        } else {
            EioError::BadRequest.reply()
        };
        let _ = writer.write_all(&reply.to_http1_bytes()).await;
        let _ = writer.shutdown().await;
    }
}

fn not_found() -> HttpReply {
    HttpReply::json(
        StatusCode::NOT_FOUND,
        &br#"{"code":"NOT_FOUND","message":"Not found"}"#[..],
    )
}

fn request_timeout() -> HttpReply {
    HttpReply::json(
        StatusCode::REQUEST_TIMEOUT,
        &br#"{"code":"REQUEST_TIMEOUT","message":"The request body did not arrive in time"}"#[..],
    )
}

fn refused_open(e: OpenError) -> HttpReply {
    let body: &'static [u8] = match e {
        OpenError::TooManyConnections => {
            br#"{"code":"TOO_MANY_CONNECTIONS","message":"Server is at its connection limit"}"#
        }
        OpenError::TooManyPending => {
            br#"{"code":"TOO_MANY_PENDING_CONNECTIONS","message":"Too many connections are waiting to authenticate; try again"}"#
        }
    };
    HttpReply::json(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// Checks `EIO=4` and the transport named in the query against the one the request uses.
pub(crate) fn check_eio(query: &str, transport: &str) -> Result<(), EioError> {
    if query_param(query, "EIO").as_deref() != Some("4") {
        return Err(EioError::UnsupportedProtocolVersion);
    }
    match query_param(query, "transport").as_deref() {
        Some(t) if t == transport => Ok(()),
        Some("polling") | Some("websocket") => Err(EioError::BadRequest),
        _ => Err(EioError::UnknownTransport),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let q = "EIO=4&transport=polling&t=N8hyd6w&token=a%2Bb%3D&name=x+y";
        assert_eq!(query_param(q, "EIO").as_deref(), Some("4"));
        assert_eq!(query_param(q, "token").as_deref(), Some("a+b="));
        assert_eq!(query_param(q, "name").as_deref(), Some("x y"));
        assert_eq!(query_param(q, "sid"), None);
        assert_eq!(query_param("a=%zz&b=%4", "a").as_deref(), Some("%zz"));
        assert_eq!(query_param("b=%4", "b").as_deref(), Some("%4"));
        // Found by the property tests: a sign is no hex digit.
        assert_eq!(query_param("c=%+A%-1", "c").as_deref(), Some("% A%-1"));
        assert_eq!(query_param("d=%c3%A9", "d").as_deref(), Some("\u{e9}"));
    }

    #[test]
    fn eio_checks() {
        assert_eq!(check_eio("EIO=4&transport=polling", "polling"), Ok(()));
        assert_eq!(
            check_eio("EIO=3&transport=polling", "polling"),
            Err(EioError::UnsupportedProtocolVersion)
        );
        assert_eq!(
            check_eio("EIO=4&transport=flash", "polling"),
            Err(EioError::UnknownTransport)
        );
        assert_eq!(
            check_eio("EIO=4&transport=websocket", "polling"),
            Err(EioError::BadRequest)
        );
    }
}
