//! Stopping an engine: closing every connection it serves (Socket.IO, other WebSocket
//! endpoints, SSE streams), waiting for them when it owns its runtime, and leaving the
//! cluster.

use std::time::Duration;

use super::Engine;
use crate::socketio::DisconnectReason;
use crate::transport::CloseReason;

impl Engine {
    /// Stops accepting, closes every connection and, when the engine owns its runtime, stops
    /// it: first it waits, up to `grace`, until every socket has been cleaned up (left its
    /// rooms and its namespace, its `on_disconnect` hooks run), then up to `grace` again for
    /// the runtime's tasks to finish. On a runtime of the caller's it does not wait (await
    /// [`Engine::closed`] there). Idempotent.
    pub fn shutdown(&self, grace: Duration) {
        let _tag = crate::log::tag_scope(self.log_id);
        self.inner.http.begin_shutdown();
        for tx in self.inner.listeners.lock().drain(..) {
            let _ = tx.send(());
        }
        self.inner.sio_server.close_all();
        for s in &self.inner.raw_servers {
            s.close_all();
        }
        for (_, service) in self.inner.http.services() {
            service.shutdown();
        }
        for (_, service) in self.inner.http.http_services() {
            service.shutdown();
        }
        if let Some(rt) = self.runtime.lock().take() {
            self.wait_for_sockets(grace);
            self.leave_cluster(grace);
            rt.shutdown_timeout(grace);
        } else if self.inner.cluster.has_peers() {
            // On the caller's runtime this thread may be one of its workers: never block it.
            self.inner
                .handle
                .spawn(self.inner.cluster.broker().shutdown());
        }
    }

    /// Waits, up to `grace`, until the connections [`Engine::shutdown`] closed are gone: every
    /// Engine.IO session, every socket cleaned up, every WebSocket of another endpoint (Yjs)
    /// finished its closing handshake. On the caller's runtime (`build_on`) `shutdown` does
    /// not wait, and a server's graceful shutdown (axum's) does not wait for connections it
    /// upgraded: await this before the runtime ends, or clients may see their connection cut
    /// (WebSocket 1006) instead of closed. True when everything closed in time.
    pub async fn closed(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let open = self.inner.sio_server.session_count() > 0
                || self.inner.raw_servers.iter().any(|s| s.session_count() > 0)
                || !self.inner.io.all_sockets().is_empty()
                || self
                    .inner
                    .http
                    .services()
                    .iter()
                    .any(|(_, s)| s.open_connections() > 0);
            if !open {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits, up to `grace`, until every session is closed and every socket has left its
    /// rooms and its namespace (its `on_disconnect` hooks ran), before the runtime stops:
    /// stopping it first would leave each socket and its namespace holding each other. A
    /// session is forgotten before its sockets are cleaned up, so no session left does not
    /// mean no socket left; a socket whose session is gone is cleaned up here.
    fn wait_for_sockets(&self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        loop {
            let sessions = self.inner.sio_server.session_count();
            let sockets = self.inner.io.all_sockets();
            if (sessions == 0 && sockets.is_empty()) || std::time::Instant::now() >= deadline {
                return;
            }
            for socket in &sockets {
                if sessions == 0 {
                    // Its session was finalized already (or is being): nobody else will, and
                    // a cleanup running elsewhere makes this one do nothing. Its hooks may
                    // spawn tasks, hence the runtime's context.
                    let _enter = self.inner.handle.enter();
                    socket.cleanup(DisconnectReason::ServerShuttingDown);
                } else {
                    socket.session().close(CloseReason::ServerClose);
                }
            }
            drop(sockets);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Withdraws this node's presence from the cluster, waiting up to `grace`.
    fn leave_cluster(&self, grace: Duration) {
        if !self.inner.cluster.has_peers() {
            return;
        }
        let (done, finished) = std::sync::mpsc::channel();
        let leave = self.inner.cluster.broker().shutdown();
        self.inner.handle.spawn(async move {
            leave.await;
            let _ = done.send(());
        });
        let _ = finished.recv_timeout(grace);
    }
}
