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
    /// Requests per second per connection, 0 = off (20). Also accepted: `rateLimitPerSecond`.
    pub rate_limit: Option<u32>,
    /// Burst above the rate (40). Also accepted: `rateLimitBurst`.
    pub rate_burst: Option<u32>,
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
    /// Redis URL for clustering: `redis://host:port/db`, or `redis+cluster://host:port,host:port` (a Redis Cluster's seed nodes).
    pub redis_url: Option<String>,
    /// Milliseconds between cluster heartbeats; a node silent for three is dead (5000).
    pub cluster_heartbeat: Option<u32>,
    /// Key guarding the server HTTP API.
    pub api_key: Option<String>,
    /// Most simultaneous connections, 0 = no limit.
    pub max_connections: Option<u32>,
    /// Worker threads of the engine's runtime (one per core).
    pub worker_threads: Option<u32>,
    /// Milliseconds a JS callback may take before it fails (10000). Also accepted:
    /// `callbackTimeout`.
    pub host_callback_timeout: Option<u32>,
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
    /// Verify tokens with the keys an identity provider publishes at this JWKS URL
    /// (`https://`, or `http://` to a loopback host).
    pub jwks_url: Option<String>,
    /// Extra PEM CA certificate file trusted for `jwksUrl` (a private CA).
    pub jwks_ca_file: Option<String>,
    /// Milliseconds between JWKS fetches for tokens with an unknown `kid` (10000).
    pub jwks_refetch_interval: Option<u32>,
    /// Accepted token issuers (`iss`); any when empty.
    pub jwt_issuers: Option<Vec<String>>,
    /// Accepted token audiences (`aud`); not checked when empty.
    pub jwt_audiences: Option<Vec<String>>,
    /// Seconds of clock skew allowed for `exp` and `nbf` (0).
    pub jwt_leeway: Option<u32>,
    /// Accept tokens without `exp` (false: `exp` is required).
    pub jwt_allow_no_exp: Option<bool>,
    /// The claim that is the user id (`sub`).
    pub jwt_user_id_claim: Option<String>,
    /// The claim that is the display name (`username`).
    pub jwt_username_claim: Option<String>,
    /// Seconds before a token's `exp` its Socket.IO connection gets `tokenExpiring` (30).
    pub token_expiry_warning: Option<u32>,
    /// Keep connections open past their token's `exp` (false).
    pub allow_expired_connections: Option<bool>,
    /// Milliseconds a connection may stay over its rate limit before it is disconnected (5000).
    pub flood_disconnect_after: Option<u32>,
    /// Bytes of broadcasts kept for connection state recovery (16 MiB).
    pub recovery_log_bytes: Option<u32>,
    /// Milliseconds between `:ping` comments on idle SSE streams (30000).
    pub sse_ping_interval: Option<u32>,
    /// Messages kept per room in history (1000).
    pub history_limit: Option<u32>,
    /// Rooms whose history is cached in memory (10000).
    pub history_cache_rooms: Option<u32>,
    /// Bytes of history cached in memory (256 MiB).
    pub history_cache_bytes: Option<u32>,
    /// Longest message text in characters (4000).
    pub max_message_chars: Option<u32>,
    /// Largest `signal` data in bytes (64 KiB).
    pub max_signal_bytes: Option<u32>,
    /// Most rooms one connection may be in (100).
    pub max_rooms_per_connection: Option<u32>,
    /// Milliseconds a changed Yjs document must be quiet before it is stored (2000).
    pub yjs_store_debounce: Option<u32>,
    /// Milliseconds after its first unstored change a Yjs document is stored at the latest
    /// (10000).
    pub yjs_store_max_delay: Option<u32>,
    /// Largest Yjs awareness state of one client id, in bytes (64 KiB).
    pub yjs_max_awareness_bytes: Option<u32>,
    /// Most Yjs awareness client ids one connection may set (16).
    pub yjs_max_awareness_clients: Option<u32>,
    /// Milliseconds between WebSocket pings on Yjs connections (30000).
    pub yjs_ping_interval: Option<u32>,
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
    /// Serve the plain-WebSocket endpoint (`/ws`); default true.
    pub ws: Option<bool>,
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
            c = c.ping_interval(ms(n));
        }
        if let Some(n) = self.ping_timeout {
            c = c.ping_timeout(ms(n));
        }
        if let Some(n) = self.max_payload {
            c = c.max_payload(n as usize);
        }
        if let Some(o) = &self.cors_origins {
            c = c.cors_origins(o.clone());
        }
        if self.rate_limit.is_some() || self.rate_burst.is_some() {
            let rate = self.rate_limit.unwrap_or(c.rate_limit_per_second);
            let burst = self.rate_burst.unwrap_or(rate.max(1) * 2);
            c = c.rate_limit(rate, burst);
        }
        if self.outbound_queue_frames.is_some() || self.outbound_queue_bytes.is_some() {
            let frames = self
                .outbound_queue_frames
                .map_or(c.outbound_queue_frames, |n| n as usize);
            let bytes = self
                .outbound_queue_bytes
                .map_or(c.outbound_queue_bytes, |n| n as usize);
            c = c.outbound_queue(frames, bytes);
        }
        if let Some(n) = self.typing_timeout {
            c = c.typing_timeout(ms(n));
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
            c = c.cluster_heartbeat(ms(n));
        }
        if let Some(k) = &self.api_key {
            c = c.api_key(k.clone());
        }
        if let Some(n) = self.max_connections {
            c = c.max_connections(n as usize);
        }
        if let Some(n) = self.worker_threads {
            c = c.worker_threads(n as usize);
        }
        if let Some(n) = self.host_callback_timeout {
            c = c.host_callback_timeout(ms(n));
        }
        if let Some(n) = self.request_timeout {
            c = c.request_timeout(ms(n));
        }
        if let Some(n) = self.upgrade_timeout {
            c = c.upgrade_timeout(ms(n));
        }
        if let Some(n) = self.connect_timeout {
            c = c.connect_timeout(ms(n));
        }
        if let Some(n) = self.send_timeout {
            c = c.send_timeout(ms(n));
        }
        if let Some(n) = self.max_pending_connections {
            c = c.max_pending_connections(n as usize);
        }
        if let Some(n) = self.max_header_bytes {
            c = c.max_header_bytes(n as usize);
        }
        if let Some(n) = self.max_queued_event_bytes {
            c = c.max_queued_event_bytes(n as usize);
        }
        if let Some(n) = self.yjs_idle_unload {
            c = c.yjs_idle_unload(ms(n));
        }
        if self.yjs_max_update_bytes.is_some() || self.yjs_max_document_bytes.is_some() {
            let update = self
                .yjs_max_update_bytes
                .map_or(c.yjs_max_update_bytes, |n| n as usize);
            let document = self
                .yjs_max_document_bytes
                .map_or(c.yjs_max_document_bytes, |n| n as usize);
            c = c.yjs_limits(update, document);
        }
        let c = self.identity(c)?;
        self.apply_more(c)
    }

    /// The identity settings: JWKS, issuer, audience, leeway, claim names, token expiry.
    fn identity(&self, mut c: Config) -> Result<Config, ConfigError> {
        if let Some(url) = &self.jwks_url {
            c = c.jwks_url(url.clone());
        }
        if let Some(path) = &self.jwks_ca_file {
            c = c.jwks_ca_file(path.clone());
        }
        if let Some(n) = self.jwks_refetch_interval {
            c = c.jwks_refetch_interval(ms(n));
        }
        if let Some(list) = &self.jwt_issuers {
            c = c.jwt_issuers(list.clone());
        }
        if let Some(list) = &self.jwt_audiences {
            c = c.jwt_audiences(list.clone());
        }
        if let Some(n) = self.jwt_leeway {
            c = c.jwt_leeway(Duration::from_secs(u64::from(n)));
        }
        if let Some(allow) = self.jwt_allow_no_exp {
            c = c.jwt_allow_no_exp(allow);
        }
        if let Some(claim) = &self.jwt_user_id_claim {
            c = c.jwt_user_id_claim(claim.clone());
        }
        if let Some(claim) = &self.jwt_username_claim {
            c = c.jwt_username_claim(claim.clone());
        }
        if let Some(n) = self.token_expiry_warning {
            c = c.token_expiry_warning(Duration::from_secs(u64::from(n)));
        }
        if let Some(allow) = self.allow_expired_connections {
            c = c.allow_expired_connections(allow);
        }
        Ok(c)
    }

    /// The settings added with the settings table (issue 18).
    fn apply_more(&self, mut c: Config) -> Result<Config, ConfigError> {
        let n = |v: u32| v as usize;
        if let Some(v) = self.flood_disconnect_after {
            c = c.flood_disconnect_after(ms(v));
        }
        if let Some(v) = self.recovery_log_bytes {
            c = c.recovery_log_bytes(n(v));
        }
        if let Some(v) = self.sse_ping_interval {
            c = c.sse_ping_interval(ms(v));
        }
        if let Some(v) = self.history_limit {
            c = c.history_limit(n(v));
        }
        if self.history_cache_rooms.is_some() || self.history_cache_bytes.is_some() {
            let rooms = self.history_cache_rooms.map_or(c.history_cache_rooms, n);
            let bytes = self.history_cache_bytes.map_or(c.history_cache_bytes, n);
            c = c.history_cache(rooms, bytes);
        }
        if let Some(v) = self.max_message_chars {
            c = c.max_message_chars(n(v));
        }
        if let Some(v) = self.max_signal_bytes {
            c = c.max_signal_bytes(n(v));
        }
        if let Some(v) = self.max_rooms_per_connection {
            c = c.max_rooms_per_connection(n(v));
        }
        if self.yjs_store_debounce.is_some() || self.yjs_store_max_delay.is_some() {
            let debounce = self.yjs_store_debounce.map_or(c.yjs_store_debounce, ms);
            let max_delay = self.yjs_store_max_delay.map_or(c.yjs_store_max_delay, ms);
            c = c.yjs_store_debounce(debounce, max_delay);
        }
        if self.yjs_max_awareness_bytes.is_some() || self.yjs_max_awareness_clients.is_some() {
            let bytes = self
                .yjs_max_awareness_bytes
                .map_or(c.yjs_max_awareness_bytes, n);
            let clients = self
                .yjs_max_awareness_clients
                .map_or(c.yjs_max_awareness_clients, n);
            c = c.yjs_awareness_limits(bytes, clients);
        }
        if let Some(v) = self.yjs_ping_interval {
            c = c.yjs_ping_interval(ms(v));
        }
        if let Some(p) = &self.prefix {
            c = c.prefix(p.clone());
        }
        let on = |flag: Option<bool>| flag.unwrap_or(true);
        c = c
            .sse(on(self.sse))
            .api(on(self.api))
            .yjs(on(self.yjs))
            .metrics(on(self.metrics))
            .healthz(on(self.healthz))
            .ws(on(self.ws));
        c.validate()?;
        Ok(c)
    }
}
