//! The HTTP front door: Engine.IO routing, CORS and origin checks, health and metrics.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::websocket::{self, Mode};
use super::{EioServer, HandshakeInfo, OpenError, TransportKind};
use crate::config::Config;
use crate::metrics::Metrics;

/// An Engine.IO error answer, with the codes the protocol defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EioError {
    /// `0`: the transport is missing or not one we serve.
    UnknownTransport,
    /// `1`: no session has this id (or it lives on another node).
    UnknownSid,
    /// `2`: a handshake must be a GET.
    BadHandshakeMethod,
    /// `3`: the request does not fit the session's state.
    BadRequest,
    /// `4`: the origin is not allowed.
    Forbidden,
    /// `5`: not Engine.IO v4.
    UnsupportedProtocolVersion,
}

impl EioError {
    fn parts(self) -> (StatusCode, u8, &'static str) {
        match self {
            EioError::UnknownTransport => (StatusCode::BAD_REQUEST, 0, "Transport unknown"),
            EioError::UnknownSid => (StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
            EioError::BadHandshakeMethod => (StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
            EioError::BadRequest => (StatusCode::BAD_REQUEST, 3, "Bad request"),
            EioError::Forbidden => (StatusCode::FORBIDDEN, 4, "Forbidden"),
            EioError::UnsupportedProtocolVersion => {
                (StatusCode::BAD_REQUEST, 5, "Unsupported protocol version")
            }
        }
    }

    /// The JSON answer `{"code":N,"message":"…"}`.
    pub fn reply(self) -> HttpReply {
        let (status, code, message) = self.parts();
        HttpReply::json(
            status,
            format!(r#"{{"code":{code},"message":"{message}"}}"#),
        )
    }
}

/// A complete HTTP answer, independent of the HTTP library that sends it.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: StatusCode,
    /// Extra headers (content type included).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl HttpReply {
    /// A 200 `text/plain` answer.
    pub fn text(body: Bytes) -> Self {
        HttpReply {
            status: StatusCode::OK,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=UTF-8"),
            )],
            body,
        }
    }

    /// A JSON answer.
    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Self {
        HttpReply {
            status,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: body.into(),
        }
    }

    /// A status with an empty body.
    pub fn empty(status: StatusCode) -> Self {
        HttpReply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        response.headers_mut().extend(self.headers);
        response
    }
}

/// A query parameter, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() + 0 && i + 2 <= bytes.len() - 1 => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything the HTTP front door serves.
pub struct HttpApp {
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    mounts: Vec<(String, Arc<EioServer>)>,
}

/// The verdict on a request's `Origin`.
enum OriginCheck {
    /// No `Origin` header: not a browser, no CORS headers.
    Absent,
    /// Allowed: echo it in CORS headers.
    Allowed(HeaderValue),
    /// Not in the configured list.
    Refused,
}

impl HttpApp {
    /// A front door serving `mounts` (Engine.IO servers by path prefix).
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        mounts: Vec<(String, Arc<EioServer>)>,
    ) -> Arc<Self> {
        Arc::new(HttpApp {
            config,
            metrics,
            mounts,
        })
    }

    fn check_origin(&self, headers: &HeaderMap) -> OriginCheck {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return OriginCheck::Absent;
        };
        let allowed = self.config.cors_origins.is_empty()
            || origin
                .to_str()
                .is_ok_and(|o| self.config.cors_origins.iter().any(|a| a == o || a == "*"));
        if allowed {
            OriginCheck::Allowed(origin.clone())
        } else {
            OriginCheck::Refused
        }
    }

    fn mount(&self, path: &str) -> Option<&Arc<EioServer>> {
        self.mounts
            .iter()
            .find(|(prefix, _)| path == prefix || path == prefix.trim_end_matches('/'))
            .map(|(_, server)| server)
    }

    /// Serves one request from hyper.
    async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let origin = self.check_origin(req.headers());
        let cors = match &origin {
            OriginCheck::Allowed(o) => Some(o.clone()),
            _ => None,
        };
        let mut reply = match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => {
                HttpReply::json(StatusCode::OK, &br#"{"status":"ok"}"#[..])
            }
            (&Method::GET, "/metrics") => {
                let mut r = HttpReply::text(Bytes::from(self.metrics.render()));
                r.headers = vec![(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                )];
                r
            }
            _ => match self.mount(&path).cloned() {
                None => HttpReply::json(
                    StatusCode::NOT_FOUND,
                    &br#"{"code":"NOT_FOUND","message":"Not found"}"#[..],
                ),
                Some(_) if matches!(origin, OriginCheck::Refused) => {
                    self.metrics.refusals.inc("origin");
                    EioError::Forbidden.reply()
                }
                Some(_) if req.method() == Method::OPTIONS => preflight(req.headers()),
                Some(server) => {
                    if is_websocket_upgrade(req.headers()) {
                        return self.upgrade(server, &mut req, peer).into_response();
                    }
                    self.engineio_http(server, req, peer).await
                }
            },
        };
        if let Some(origin) = cors {
            add_cors(&mut reply, origin);
        }
        reply.into_response()
    }

    async fn engineio_http(
        &self,
        server: Arc<EioServer>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> HttpReply {
        let query = req.uri().query().unwrap_or("").to_owned();
        if let Err(e) = check_eio(&query, "polling") {
            return e.reply();
        }
        let sid = query_param(&query, "sid");
        match (req.method().clone(), sid) {
            (Method::GET, None) => {
                let info = HandshakeInfo {
                    headers: req.headers().clone(),
                    query,
                    address: peer,
                };
                match server.open_session(TransportKind::Polling, info) {
                    Ok(session) => super::polling::handshake(session).await,
                    Err(OpenError::TooManyConnections) => too_many_connections(),
                }
            }
            (_, None) => EioError::BadHandshakeMethod.reply(),
            (method, Some(sid)) => {
                let Some(session) = server.session(&sid) else {
                    return EioError::UnknownSid.reply();
                };
                match method {
                    Method::GET => super::polling::poll(session).await,
                    Method::POST => match read_body(req, self.config.max_payload).await {
                        Ok(body) => super::polling::post(&server, session, body).await,
                        Err(reply) => reply,
                    },
                    _ => EioError::BadRequest.reply(),
                }
            }
        }
    }

    fn upgrade(
        &self,
        server: Arc<EioServer>,
        req: &mut Request<Incoming>,
        peer: SocketAddr,
    ) -> HttpReply {
        let query = req.uri().query().unwrap_or("").to_owned();
        if let Err(e) = check_eio(&query, "websocket") {
            return e.reply();
        }
        let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return EioError::BadRequest.reply();
        };
        let mode = match query_param(&query, "sid") {
            Some(sid) => match server.session(&sid) {
                None => return EioError::UnknownSid.reply(),
                // Already upgraded or upgrading: accept, then close (what clients expect).
                Some(s) if s.transport() != TransportKind::Polling || !s.begin_upgrade() => None,
                Some(s) => Some(Mode::Upgrade(s)),
            },
            None => {
                let info = HandshakeInfo {
                    headers: req.headers().clone(),
                    query,
                    address: peer,
                };
                match server.open_session(TransportKind::WebSocket, info) {
                    Ok(s) => Some(Mode::New(s)),
                    Err(OpenError::TooManyConnections) => return too_many_connections(),
                }
            }
        };
        let on_upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    match &mode {
                        Some(Mode::New(s)) => s.close(super::CloseReason::TransportError),
                        Some(Mode::Upgrade(s)) => s.end_upgrade(),
                        None => {}
                    }
                    return;
                }
            };
            let Some(mode) = mode else {
                return websocket::reject(TokioIo::new(upgraded)).await;
            };
            match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => {
                    let (r, w) = parts.io.into_inner().into_split();
                    websocket::run(server, r, w, parts.read_buf, mode).await;
                }
                Err(upgraded) => {
                    let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                    websocket::run(server, r, w, Bytes::new(), mode).await;
                }
            }
        });
        let mut reply = HttpReply::empty(StatusCode::SWITCHING_PROTOCOLS);
        reply.headers = vec![
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (
                header::SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_str(&websocket::accept_key(key.as_bytes()))
                    .unwrap_or(HeaderValue::from_static("")),
            ),
        ];
        reply
    }
}

fn too_many_connections() -> HttpReply {
    HttpReply::json(
        StatusCode::SERVICE_UNAVAILABLE,
        &br#"{"code":"TOO_MANY_CONNECTIONS","message":"Server is at its connection limit"}"#[..],
    )
}

/// Checks `EIO=4` and the transport named in the query against the one the request uses.
fn check_eio(query: &str, transport: &str) -> Result<(), EioError> {
    if query_param(query, "EIO").as_deref() != Some("4") {
        return Err(EioError::UnsupportedProtocolVersion);
    }
    match query_param(query, "transport").as_deref() {
        Some(t) if t == transport => Ok(()),
        Some("polling") | Some("websocket") => Err(EioError::BadRequest),
        _ => Err(EioError::UnknownTransport),
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, HttpReply> {
    let too_large = || {
        HttpReply::json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &br#"{"code":3,"message":"Payload too large"}"#[..],
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(EioError::BadRequest.reply()),
    }
}

fn preflight(headers: &HeaderMap) -> HttpReply {
    let mut reply = HttpReply::empty(StatusCode::NO_CONTENT);
    reply.headers.push((
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    ));
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        reply
            .headers
            .push((header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone()));
    }
    reply
}

fn add_cors(reply: &mut HttpReply, origin: HeaderValue) {
    reply
        .headers
        .push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin));
    reply.headers.push((
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    ));
    reply
        .headers
        .push((header::VARY, HeaderValue::from_static("Origin")));
}

/// How long a client may take to send its request headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` resolves.
pub async fn serve(listener: TcpListener, app: Arc<HttpApp>, shutdown: impl Future<Output = ()>) {
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
        tokio::spawn(serve_connection(stream, peer, app));
    }
}

/// Serves HTTP/1.1 on one accepted connection.
pub async fn serve_connection(stream: TcpStream, peer: SocketAddr, app: Arc<HttpApp>) {
    let service = hyper::service::service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle(req, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
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
