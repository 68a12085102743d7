//! The HTTP front door: Engine.IO routing, other WebSocket services (Yjs), health and metrics.
//! By concern: the request head (`head.rs`), the mounted services (`service.rs`), routing
//! (`router.rs`), the upgrade (`upgrade.rs`), serving from hyper or a host (`serve.rs`),
//! `/metrics` (`metrics_page.rs`); CORS, bodies, replies and `/healthz` are the transport's.

mod head;
mod metrics_page;
mod router;
mod serve;
mod service;
mod upgrade;

use std::sync::Arc;

pub use super::accept::{serve, serve_connection_with_prefix};
pub use super::health::Readiness;
pub use super::reply::{BodyStream, EioError, HttpReply};
use super::{EioServer, SessionData};
use crate::config::Config;
pub use crate::helpers::percent::query_param;
use crate::metrics::Metrics;
pub use head::RequestHead;
#[cfg(feature = "testing")]
pub(crate) use router::check_eio;
pub use router::Routed;
pub use service::{BoxedReader, BoxedWriter, HttpService, WebSocketService, WsSession};
pub use upgrade::{SwitchedIo, Upgrade};

/// Everything the HTTP front door serves; its Engine.IO sessions carry a `D`.
pub struct HttpApp<D = ()> {
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    mounts: Vec<(String, Arc<EioServer<D>>)>,
    services: Vec<(String, Arc<dyn WebSocketService>)>,
    http_services: Vec<(String, Arc<dyn HttpService>)>,
    /// Set when the engine begins to shut down: `/healthz` answers 503 from then on.
    pub(super) closing: std::sync::atomic::AtomicBool,
    /// Asked by `/healthz`: a reason when a part the engine depends on (the cluster) is not
    /// ready; see [`HttpApp::set_readiness`].
    pub(super) readiness: std::sync::OnceLock<Readiness>,
}

impl<D: SessionData> HttpApp<D> {
    /// A front door serving `mounts` (Engine.IO servers by path prefix).
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        mounts: Vec<(String, Arc<EioServer<D>>)>,
    ) -> Arc<Self> {
        Self::with_services(config, metrics, mounts, Vec::new(), Vec::new())
    }

    /// A front door serving `mounts` and WebSocket `services` (both by path prefix).
    pub fn with_services(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        mounts: Vec<(String, Arc<EioServer<D>>)>,
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

    /// The plain HTTP services, with their path prefixes.
    pub fn http_services(&self) -> &[(String, Arc<dyn HttpService>)] {
        &self.http_services
    }

    /// The HTTP service mounted at a prefix of `path`.
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

    fn mount(&self, path: &str) -> Option<&Arc<EioServer<D>>> {
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
}
