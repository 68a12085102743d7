//! `/healthz`: ready, or not while the engine shuts down or a part it depends on (the
//! cluster's Redis) is unreachable.

use std::sync::atomic::Ordering;

use http::StatusCode;

use super::http::{HttpApp, HttpReply};

/// A readiness check for `/healthz`: `Some(reason)` while not ready.
pub type Readiness = Box<dyn Fn() -> Option<String> + Send + Sync>;

impl<D> HttpApp<D> {
    /// Installs the readiness check `/healthz` asks (once; later calls are ignored).
    pub fn set_readiness(&self, check: Readiness) {
        let _ = self.readiness.set(check);
    }

    /// Marks the engine as shutting down: `/healthz` answers 503 from now on, so a load
    /// balancer stops sending new clients while the open ones are closed.
    pub fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// The `/healthz` answer: `200 {"status":"ok"}`, or `503 {"status":"unavailable",
    /// "reason":…}` while shutting down or while the readiness check fails.
    pub fn health(&self) -> HttpReply {
        let reason = if self.closing.load(Ordering::Acquire) {
            Some("shutting down".to_owned())
        } else {
            self.readiness.get().and_then(|check| check())
        };
        match reason {
            None => HttpReply::json(StatusCode::OK, &br#"{"status":"ok"}"#[..]),
            Some(reason) => HttpReply::json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "unavailable", "reason": reason}).to_string(),
            ),
        }
    }
}
