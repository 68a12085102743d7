//! The engine inside a host's HTTP server: a tower [`Layer`] and [`Service`], so an axum
//! (or any hyper/tower) app serves its own routes and the engine on one port.
//!
//! [`EngineLayer`] wraps the app's service: a request for one of the engine's paths —
//! Socket.IO (long-polling, WebSocket and the upgrade between them), `/events`, `/api/…`,
//! `/yjs/…`, `/metrics`, `/healthz`, all under [`Config::prefix`](crate::Config::prefix) —
//! is answered by the engine, WebSocket upgrades included (through hyper's
//! [`hyper::upgrade::on`], which axum's server supports); every other request goes to the
//! wrapped service unchanged.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use switchboard::{chat, Config, Engine};
//! let config = Config::default().jwt_secret("dev-secret-change-me");
//! // On the app's runtime: the engine's connections run beside the app's requests.
//! let engine = chat::install(Engine::builder(config), chat::Hooks::default())?
//!     .build_on(tokio::runtime::Handle::current())?;
//! let layer = engine.layer(); // `Router::new().route(..).layer(layer)` in axum
//! # Ok(()) }
//! ```
//!
//! The cost is per HTTP request only (a path match, and a task on the engine's runtime for
//! the engine's requests); messages on an open connection never pass through here.
//!
//! The host's server owns the connection: its header timeout and size limits apply before
//! the engine sees a request (the engine's own listener guards against slow clients with
//! [`Config::request_timeout`](crate::Config::request_timeout) and
//! [`Config::max_header_bytes`](crate::Config::max_header_bytes); give the host's server
//! similar limits). Body reading keeps the engine's payload limit and request timeout.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{BoxFuture, Either, MapOk};
use futures_util::TryFutureExt;
use http::{Extensions, Request, Response, StatusCode};
use tokio::runtime::Handle;
use tower_layer::Layer;
use tower_service::Service;

use crate::socketio::ConnState;
use crate::transport::http::{HttpApp, HttpReply};
use crate::Engine;

/// The body of the engine's answers: complete, or streamed (SSE, long-polling waits).
pub type EngineBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// The body of an [`EngineService`]'s answers: the engine's, or the wrapped service's.
pub type LayeredBody<B> = http_body_util::Either<EngineBody, B>;

/// Finds the client's address in a request's extensions (a host puts it there: axum's
/// `ConnectInfo<SocketAddr>`, say). The engine uses it in the handshake (`socket.handshake`'s
/// address) and in logs.
pub type PeerFn = fn(&Extensions) -> Option<SocketAddr>;

/// The address the engine sees when the host does not give one: `0.0.0.0:0`.
const UNKNOWN_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// The default [`PeerFn`]: a bare `SocketAddr` in the extensions, if the host put one there.
fn socket_addr_extension(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<SocketAddr>().copied()
}

/// What [`EngineLayer`] and [`EngineService`] share: the engine's front door and its runtime.
#[derive(Clone)]
struct Mount {
    app: Arc<HttpApp<ConnState>>,
    runtime: Handle,
    peer: PeerFn,
}

impl Mount {
    fn of(engine: &Engine) -> Self {
        Mount {
            app: engine.http().clone(),
            runtime: engine.handle().clone(),
            peer: socket_addr_extension,
        }
    }

    /// Answers a request for the engine. It runs on the engine's runtime (where its
    /// sessions live, and whose tasks `/metrics` counts), whichever runtime the host's
    /// server polls this future on.
    fn serve<B, E>(&self, req: Request<B>) -> EngineFuture<E>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Send,
        E: Send + 'static,
    {
        let peer = (self.peer)(req.extensions()).unwrap_or(UNKNOWN_PEER);
        let mut task = AbortOnDrop(self.runtime.spawn(self.app.clone().handle(req, peer)));
        Box::pin(async move {
            Ok((&mut task.0).await.unwrap_or_else(|e| {
                // Only when the engine's runtime stopped (shutdown) or the task panicked.
                tracing::debug!(error = %e, "engine request task ended early");
                HttpReply::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &br#"{"code":"UNAVAILABLE","message":"The engine is shutting down"}"#[..],
                )
                .into_response()
            }))
        })
    }
}

/// Ends the request's task when the host drops its future (the client went away), as hyper
/// drops the request on the engine's own listener: a long-poll then ends at once instead of
/// holding its session's GET slot until the next ping.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// A tower [`Layer`] that mounts this engine in a host's service (an axum `Router`): the
    /// engine's paths go to the engine, everything else to the host. See [`crate::tower`].
    pub fn layer(&self) -> EngineLayer {
        EngineLayer {
            mount: Mount::of(self),
        }
    }

    /// A tower [`Service`] that answers the engine's paths and `404` to everything else (a
    /// host's fallback service, or a server of its own).
    pub fn service(&self) -> EngineService<NotFound> {
        self.layer().layer(NotFound)
    }
}

/// Mounts an engine in front of a service; made by [`Engine::layer`].
#[derive(Clone)]
pub struct EngineLayer {
    mount: Mount,
}

impl EngineLayer {
    /// Where the client's address is found in a request's extensions. By default a bare
    /// `SocketAddr` extension; with axum's `into_make_service_with_connect_info` it is
    /// `|e| e.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)`.
    pub fn peer_from(mut self, peer: PeerFn) -> Self {
        self.mount.peer = peer;
        self
    }
}

impl std::fmt::Debug for EngineLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for EngineLayer {
    type Service = EngineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EngineService {
            mount: self.mount.clone(),
            inner,
        }
    }
}

/// The engine in front of `S`: its paths are answered by the engine, the rest by `S`.
#[derive(Clone)]
pub struct EngineService<S> {
    mount: Mount,
    inner: S,
}

impl<S> std::fmt::Debug for EngineService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineService").finish_non_exhaustive()
    }
}

/// Wraps the inner service's body in the answer's body type.
type WrapBody<B> = fn(Response<B>) -> Response<LayeredBody<B>>;

fn inner_body<B>(response: Response<B>) -> Response<LayeredBody<B>> {
    response.map(http_body_util::Either::Right)
}

type EngineFuture<E> = BoxFuture<'static, Result<Response<EngineBody>, E>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EngineService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Send + 'static,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Send,
{
    type Response = Response<LayeredBody<ResBody>>;
    type Error = S::Error;
    type Future = Either<
        MapOk<EngineFuture<S::Error>, fn(Response<EngineBody>) -> Response<LayeredBody<ResBody>>>,
        MapOk<S::Future, WrapBody<ResBody>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Ready when the inner service is: a request may be for it (tower-http's layers do
        // the same; the engine itself is always ready).
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.mount.app.serves(req.uri().path()) {
            Either::Left(
                self.mount
                    .serve(req)
                    .map_ok(engine_body::<ResBody> as fn(_) -> _),
            )
        } else {
            Either::Right(
                self.inner
                    .call(req)
                    .map_ok(inner_body::<ResBody> as WrapBody<_>),
            )
        }
    }
}

fn engine_body<B>(response: Response<EngineBody>) -> Response<LayeredBody<B>> {
    response.map(http_body_util::Either::Left)
}

/// The service behind [`Engine::service`]: `404` with the engine's JSON error body.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<B> Service<Request<B>> for NotFound {
    type Response = Response<EngineBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let reply = HttpReply::json(
            StatusCode::NOT_FOUND,
            &br#"{"code":"NOT_FOUND","message":"Not found"}"#[..],
        );
        std::future::ready(Ok(reply.into_response()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use http_body_util::BodyExt;

    /// The host's service: answers `200 app` to anything.
    #[derive(Clone)]
    struct App;

    impl<B> Service<Request<B>> for App {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request<B>) -> Self::Future {
            std::future::ready(Ok(Response::new("app".to_owned())))
        }
    }

    async fn get<S, B>(service: &mut S, path: &str) -> (StatusCode, String)
    where
        S: Service<Request<String>, Response = Response<B>, Error = Infallible>,
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let req = Request::get(path)
            .body(String::new())
            .expect("a valid request");
        let Ok(response) = service.call(req).await;
        let status = response.status();
        let body = response.into_body().collect().await.expect("a body");
        let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
        (status, text)
    }

    fn engine(config: crate::Config) -> Engine {
        let config = config.jwt_secret("dev-secret-change-me");
        crate::chat::install(Engine::builder(config), crate::chat::Hooks::default())
            .and_then(|b| b.build_on(Handle::current()))
            .expect("the engine starts")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_engines_paths_go_to_the_engine_the_rest_to_the_app() {
        let engine = engine(crate::Config::default());
        let mut service = engine.layer().layer(App);
        assert_eq!(
            get(&mut service, "/healthz").await,
            (StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
        );
        let (status, body) = get(&mut service, "/socket.io/?EIO=4&transport=polling").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with(r#"0{"sid":""#), "{body}");
        assert_eq!(get(&mut service, "/").await, (StatusCode::OK, "app".into()));
        assert_eq!(get(&mut service, "/socket.iox").await.1, "app");
        engine.shutdown(Duration::from_millis(100));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_prefix_moves_the_engines_paths_and_endpoints_turned_off_fall_through() {
        let engine = engine(crate::Config::default().prefix("/rt").metrics(false));
        let mut service = engine.layer().layer(App);
        assert_eq!(get(&mut service, "/rt/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&mut service, "/healthz").await.1, "app");
        assert_eq!(get(&mut service, "/rt/metrics").await.1, "app");
        let mut alone = engine.service();
        assert_eq!(get(&mut alone, "/nope").await.0, StatusCode::NOT_FOUND);
        engine.shutdown(Duration::from_millis(100));
    }
}
