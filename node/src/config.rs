//! `new Engine(options)`: the JS options, in camelCase, mapped onto the Rust `Config`.

use std::time::Duration;

use napi_derive::napi;
use switchboard::{Config, ConfigError, RoomPolicy};

/// Engine settings; every field is optional and defaults as in the Rust `Config`.
#[napi(object)]
#[derive(Default)]
pub struct NativeConfig {
    /// HS256 secret for verifying tokens.
    pub jwt_secret: Option<String>,
    /// RS256/ES256 public key (PEM text) for verifying tokens.
    pub jwt_public_key: Option<String>,
    /// `open` (default) or `claims`.
    pub room_policy: Option<String>,
    /// Milliseconds between pings (25000).
    pub ping_interval: Option<u32>,
    /// Milliseconds to wait for a pong (20000).
    pub ping_timeout: Option<u32>,
    /// Largest payload in bytes (1000000).
    pub max_payload: Option<u32>,
    /// Allowed browser origins (all when empty).
    pub cors_origins: Option<Vec<String>>,
    /// Requests per second per connection, 0 = off (20).
    pub rate_limit_per_second: Option<u32>,
    /// Burst above the rate (40).
    pub rate_limit_burst: Option<u32>,
    /// Frames queued per connection before it is dropped as a slow reader (1024).
    pub outbound_queue_frames: Option<u32>,
    /// Bytes queued per connection before it is dropped as a slow reader (4 MiB).
    pub outbound_queue_bytes: Option<u32>,
    /// Milliseconds after which typing stops by itself (5000).
    pub typing_timeout: Option<u32>,
    /// Milliseconds a dropped connection may recover its state, 0 = off (120000).
    pub recovery_window: Option<u32>,
    /// Milliseconds a dropped connection still counts in presence (2000).
    pub presence_grace: Option<u32>,
    /// Directory for history (in memory without it).
    pub data_dir: Option<String>,
    /// Redis URL for clustering.
    pub redis_url: Option<String>,
    /// Milliseconds between cluster heartbeats; a node silent for three is dead (5000).
    pub cluster_heartbeat: Option<u32>,
    /// Key guarding the server HTTP API.
    pub api_key: Option<String>,
    /// Most simultaneous connections, 0 = no limit.
    pub max_connections: Option<u32>,
    /// Worker threads of the engine's runtime (one per core).
    pub worker_threads: Option<u32>,
    /// Milliseconds a JS callback may take before it fails (10000).
    pub callback_timeout: Option<u32>,
    /// Milliseconds a client may take to send a request's head or body to `listen()` (10000).
    pub request_timeout: Option<u32>,
    /// Milliseconds a long-polling session may take to finish its upgrade to WebSocket (10000).
    pub upgrade_timeout: Option<u32>,
    /// Milliseconds a new connection may take to join a namespace (send its Socket.IO
    /// CONNECT) before it is closed (45000).
    pub connect_timeout: Option<u32>,
    /// Milliseconds a WebSocket client may take no bytes while frames wait for it before it
    /// is closed as a slow reader (30000).
    pub send_timeout: Option<u32>,
    /// Most connections that have not joined a namespace yet; more get 503, 0 = no limit
    /// (2000).
    pub max_pending_connections: Option<u32>,
    /// Largest HTTP request head `listen()` accepts, in bytes; larger ones get 431 (16384).
    pub max_header_bytes: Option<u32>,
    /// Bytes of events a client may have waiting behind a slow `on()` handler before its
    /// connection is no longer read from (4 MiB).
    pub max_queued_event_bytes: Option<u32>,
    /// Milliseconds a Yjs document without connections stays in memory (300000).
    pub yjs_idle_unload: Option<u32>,
    /// Largest Yjs message a client may send, in bytes (4 MiB).
    pub yjs_max_update_bytes: Option<u32>,
    /// Largest Yjs document, in bytes (16 MiB).
    pub yjs_max_document_bytes: Option<u32>,
    /// Path prefix of every endpoint (`'/rt'` → `/rt/socket.io/`, `/rt/events`, …).
    pub prefix: Option<String>,
    /// Serve the SSE stream (`/events`); default true.
    pub sse: Option<bool>,
    /// Serve the server HTTP API (`/api/…`, with `apiKey`); default true.
    pub api: Option<bool>,
    /// Serve Yjs documents (`/yjs/…`); default true.
    pub yjs: Option<bool>,
    /// Serve `/metrics`; default true.
    pub metrics: Option<bool>,
    /// Serve `/healthz`; default true.
    pub healthz: Option<bool>,
}

fn ms(n: u32) -> Duration {
    Duration::from_millis(u64::from(n))
}

impl NativeConfig {
    /// The Rust configuration these options describe.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(s) = &self.jwt_secret {
            c = c.jwt_secret(s.clone());
        }
        if let Some(k) = &self.jwt_public_key {
            c = c.jwt_public_key_pem(k.clone());
        }
        if let Some(p) = &self.room_policy {
            c = c.room_policy(p.parse::<RoomPolicy>()?);
        }
        if let Some(n) = self.ping_interval {
            c = c.ping_interval(ms(n))?;
        }
        if let Some(n) = self.ping_timeout {
            c = c.ping_timeout(ms(n))?;
        }
        if let Some(n) = self.max_payload {
            c = c.max_payload(n as usize)?;
        }
        if let Some(o) = &self.cors_origins {
            c = c.cors_origins(o.clone());
        }
        if self.rate_limit_per_second.is_some() || self.rate_limit_burst.is_some() {
            let rate = self
                .rate_limit_per_second
                .unwrap_or(c.rate_limit_per_second);
            let burst = self.rate_limit_burst.unwrap_or(rate.max(1) * 2);
            c = c.rate_limit(rate, burst)?;
        }
        if self.outbound_queue_frames.is_some() || self.outbound_queue_bytes.is_some() {
            let frames = self
                .outbound_queue_frames
                .map_or(c.outbound_queue_frames, |n| n as usize);
            let bytes = self
                .outbound_queue_bytes
                .map_or(c.outbound_queue_bytes, |n| n as usize);
            c = c.outbound_queue(frames, bytes)?;
        }
        if let Some(n) = self.typing_timeout {
            c = c.typing_timeout(ms(n))?;
        }
        if let Some(n) = self.recovery_window {
            c = c.recovery_window(ms(n));
        }
        if let Some(n) = self.presence_grace {
            c = c.presence_grace(ms(n));
        }
        if let Some(d) = &self.data_dir {
            c = c.data_dir(d.clone());
        }
        if let Some(u) = &self.redis_url {
            c = c.redis_url(u.clone());
        }
        if let Some(n) = self.cluster_heartbeat {
            c = c.cluster_heartbeat(ms(n))?;
        }
        if let Some(k) = &self.api_key {
            c = c.api_key(k.clone());
        }
        if let Some(n) = self.max_connections {
            c = c.max_connections(n as usize);
        }
        if let Some(n) = self.worker_threads {
            c = c.worker_threads(n as usize)?;
        }
        if let Some(n) = self.callback_timeout {
            c = c.host_callback_timeout(ms(n))?;
        }
        if let Some(n) = self.request_timeout {
            c = c.request_timeout(ms(n))?;
        }
        if let Some(n) = self.upgrade_timeout {
            c = c.upgrade_timeout(ms(n))?;
        }
        if let Some(n) = self.connect_timeout {
            c = c.connect_timeout(ms(n))?;
        }
        if let Some(n) = self.send_timeout {
            c = c.send_timeout(ms(n))?;
        }
        if let Some(n) = self.max_pending_connections {
            c = c.max_pending_connections(n as usize);
        }
        if let Some(n) = self.max_header_bytes {
            c = c.max_header_bytes(n as usize)?;
        }
        if let Some(n) = self.max_queued_event_bytes {
            c = c.max_queued_event_bytes(n as usize)?;
        }
        if let Some(n) = self.yjs_idle_unload {
            c = c.yjs_idle_unload(ms(n))?;
        }
        if self.yjs_max_update_bytes.is_some() || self.yjs_max_document_bytes.is_some() {
            let update = self
                .yjs_max_update_bytes
                .map_or(c.yjs_max_update_bytes, |n| n as usize);
            let document = self
                .yjs_max_document_bytes
                .map_or(c.yjs_max_document_bytes, |n| n as usize);
            c = c.yjs_limits(update, document)?;
        }
        if let Some(p) = &self.prefix {
            c = c.prefix(p.clone())?;
        }
        let on = |flag: Option<bool>| flag.unwrap_or(true);
        c = c
            .sse(on(self.sse))
            .api(on(self.api))
            .yjs(on(self.yjs))
            .metrics(on(self.metrics))
            .healthz(on(self.healthz));
        Ok(c)
    }
}
