//! Routing a request: health and metrics, the mounted services, and Engine.IO's polling
//! requests and WebSocket upgrades.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::upgrade::UpgradeTarget;
use super::{EioError, HttpApp, HttpReply, RequestHead, Upgrade, WebSocketService};
use crate::helpers::percent::query_param;
use crate::transport::cors::{add_cors, check_origin, preflight, OriginCheck};
use crate::transport::websocket::{self, Mode};
use crate::transport::{EioServer, OpenError, SessionData, TransportKind};

/// What the front door does with a request.
pub enum Routed<D = ()> {
    /// Answer with this.
    Reply(HttpReply),
    /// Switch to WebSocket.
    Upgrade(Upgrade<D>),
}

impl<D: SessionData> HttpApp<D> {
    /// Routes a request. `body` is read only for a POST that needs it, with the
    /// `maxPayload` limit already applied by the caller's reader.
    pub async fn route<B>(&self, head: &RequestHead, body: B) -> Routed<D>
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
            (&Method::GET, "/metrics") if self.config.metrics => self.metrics_page(),
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
    ) -> Routed<D> {
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
        server: Arc<EioServer<D>>,
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
                    Ok(session) => crate::transport::polling::handshake(session).await,
                    Err(e) => refused_open(e),
                }
            }
            (_, None) => EioError::BadHandshakeMethod.reply(),
            (method, Some(sid)) => {
                let Some(session) = server.session(&sid) else {
                    return EioError::UnknownSid.reply();
                };
                match *method {
                    Method::GET => crate::transport::polling::poll(session).await,
                    Method::POST => match body.await {
                        Ok(body) => crate::transport::polling::post(&server, session, body).await,
                        Err(reply) => reply,
                    },
                    _ => EioError::BadRequest.reply(),
                }
            }
        }
    }

    fn prepare_upgrade(
        &self,
        server: Arc<EioServer<D>>,
        head: &RequestHead,
    ) -> Result<Upgrade<D>, HttpReply> {
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
}

fn not_found() -> HttpReply {
    HttpReply::json(
        StatusCode::NOT_FOUND,
        &br#"{"code":"NOT_FOUND","message":"Not found"}"#[..],
    )
}

pub(super) fn request_timeout() -> HttpReply {
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
