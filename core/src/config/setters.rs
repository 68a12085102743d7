//! `Config`'s consuming setters: each stores its value and never fails ([`Config::validate`]
//! checks them all once, when the engine is built).

use std::path::PathBuf;
use std::time::Duration;

use super::{checks, Config, ConfigError, JwtKey, RoomPolicy, TlsSource};

impl Config {
    /// Verifies HS256 tokens with this secret (at least [`MIN_JWT_SECRET_BYTES`](super::MIN_JWT_SECRET_BYTES) bytes:
    /// checked by [`Config::validate`] when the engine is built).
    pub fn jwt_secret(mut self, secret: impl Into<String>) -> Self {
        self.jwt = JwtKey::Secret(secret.into());
        self
    }

    /// Checks every setting: the setters only store their values, and the engine calls this
    /// once before it starts, so every binding gets the same rules and the same messages
    /// ([`crate::settings::describe`] names the setting in each front door's spelling).
    pub fn validate(&self) -> Result<(), ConfigError> {
        checks::check_values(self)?;
        checks::check_required(self)
    }

    /// Verifies RS256/ES256 tokens with this PEM public key.
    pub fn jwt_public_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.jwt = JwtKey::PublicKeyPem(pem.into());
        self
    }

    /// Sets the ping interval (must be positive).
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.ping_interval = d;
        self
    }

    /// Sets how long a request's headers, then its body, may take to arrive (must be
    /// positive).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets how long a polling-to-WebSocket upgrade may take (must be positive).
    pub fn upgrade_timeout(mut self, d: Duration) -> Self {
        self.upgrade_timeout = d;
        self
    }

    /// Sets how long a new session may take to join a namespace (must be positive).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets how long a WebSocket client may take no bytes while frames wait (must be
    /// positive).
    pub fn send_timeout(mut self, d: Duration) -> Self {
        self.send_timeout = d;
        self
    }

    /// Caps the sessions that have not joined a namespace yet (0 = no cap).
    pub fn max_pending_connections(mut self, n: usize) -> Self {
        self.max_pending_connections = n;
        self
    }

    /// Sets the largest HTTP request head (at least 8 KiB: a browser's headers must fit).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets the bytes of events a socket may have waiting behind a slow handler (at least
    /// 64 KiB).
    pub fn max_queued_event_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_event_bytes = bytes;
        self
    }

    /// Sets the ping timeout (must be positive).
    pub fn ping_timeout(mut self, d: Duration) -> Self {
        self.ping_timeout = d;
        self
    }

    /// Sets the largest accepted payload (at least 128 bytes, so a CONNECT with a token fits).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Allows these browser origins (replaces the list).
    pub fn cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// Sets the room policy.
    pub fn room_policy(mut self, policy: RoomPolicy) -> Self {
        self.room_policy = policy;
        self
    }

    /// Sets the per-connection rate limit (0 = off) and its burst.
    pub fn rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.rate_limit_per_second = per_second;
        self.rate_limit_burst = burst;
        self
    }

    /// Sets the outbound queue limits (frames and bytes) per connection.
    pub fn outbound_queue(mut self, frames: usize, bytes: usize) -> Self {
        self.outbound_queue_frames = frames;
        self.outbound_queue_bytes = bytes;
        self
    }

    /// Sets how long typing indicators last without a stop.
    pub fn typing_timeout(mut self, d: Duration) -> Self {
        self.typing_timeout = d;
        self
    }

    /// Sets how long a dropped connection may come back and recover its state.
    pub fn recovery_window(mut self, d: Duration) -> Self {
        self.recovery_window = d;
        self
    }

    /// Sets the most bytes of broadcasts the recovery log keeps (at least 64 KiB).
    pub fn recovery_log_bytes(mut self, bytes: usize) -> Self {
        self.recovery_log_bytes = bytes;
        self
    }

    /// Sets the time between `:ping` comments on idle SSE streams.
    pub fn sse_ping_interval(mut self, d: Duration) -> Self {
        self.sse_ping_interval = d;
        self
    }

    /// Sets how long a dropped connection still counts in presence.
    pub fn presence_grace(mut self, d: Duration) -> Self {
        self.presence_grace = d;
        self
    }

    /// Sets the history cache bounds: rooms (at least 1) and bytes (at least 1 MiB).
    pub fn history_cache(mut self, rooms: usize, bytes: usize) -> Self {
        self.history_cache_rooms = rooms;
        self.history_cache_bytes = bytes;
        self
    }

    /// Stores history under this directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Joins a cluster through this Redis URL: `redis://host:port/db` for one Redis, or
    /// `redis+cluster://host:port,host:port` for a Redis Cluster (its seed nodes; optional
    /// `user:password@` before them), checked by [`Config::validate`].
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Sets the cluster heartbeat (at least 100 ms).
    pub fn cluster_heartbeat(mut self, d: Duration) -> Self {
        self.cluster_heartbeat = d;
        self
    }

    /// Turns on the server HTTP API with this key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Serves HTTPS and WSS with the PEM certificate chain and private key in these files
    /// (read when the engine is built, and again on [`crate::Engine::reload_tls`]).
    pub fn tls_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        let (cert, key) = (cert.into(), key.into());
        self.tls = Some(TlsSource::Files { cert, key });
        self
    }

    /// Serves HTTPS and WSS with this PEM certificate chain and private key (contents, not
    /// file names).
    pub fn tls_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        let (cert, key) = (cert.into(), key.into());
        self.tls = Some(TlsSource::Pem { cert, key });
        self
    }

    /// Caps simultaneous connections (0 = no cap).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets the worker threads of the engine's own runtime.
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = Some(n);
        self
    }

    /// Sets how long host callbacks may take.
    pub fn host_callback_timeout(mut self, d: Duration) -> Self {
        self.host_callback_timeout = d;
        self
    }

    /// Sets the path prefix of the Yjs documents (must start and end with `/`).
    pub fn yjs_path(mut self, prefix: impl Into<String>) -> Self {
        self.yjs_path = prefix.into();
        self
    }

    /// Sets how long a Yjs document without connections stays loaded.
    pub fn yjs_idle_unload(mut self, d: Duration) -> Self {
        self.yjs_idle_unload = d;
        self
    }

    /// Sets when changed Yjs documents are stored: after `debounce` without changes, and at
    /// the latest `max_delay` after the first unstored change.
    pub fn yjs_store_debounce(mut self, debounce: Duration, max_delay: Duration) -> Self {
        self.yjs_store_debounce = debounce;
        self.yjs_store_max_delay = max_delay;
        self
    }

    /// Sets the largest Yjs message a client may send and the largest Yjs document.
    pub fn yjs_limits(mut self, max_update_bytes: usize, max_document_bytes: usize) -> Self {
        self.yjs_max_update_bytes = max_update_bytes;
        self.yjs_max_document_bytes = max_document_bytes;
        self
    }

    /// Sets the largest awareness state of one client id and the most client ids one
    /// connection may set states for (Yjs).
    pub fn yjs_awareness_limits(mut self, max_state_bytes: usize, max_clients: usize) -> Self {
        self.yjs_max_awareness_bytes = max_state_bytes;
        self.yjs_max_awareness_clients = max_clients;
        self
    }

    /// Sets the time between WebSocket pings on Yjs connections.
    pub fn yjs_ping_interval(mut self, d: Duration) -> Self {
        self.yjs_ping_interval = d;
        self
    }
}
