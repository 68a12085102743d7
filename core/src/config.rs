//! The engine's one configuration struct, shared by the CLI, the C API and the Node API.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub(crate) mod checks;
mod jwks;
pub(crate) mod redis_url;
mod setters;
mod tls;
pub use jwks::JwksSource;
pub use tls::TlsSource;

/// How room access is decided when a token carries no `rooms` claim and no host hook is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomPolicy {
    /// Any authenticated user may join any room (other users' personal rooms excepted).
    #[default]
    Open,
    /// Only rooms matched by the token's `rooms` claim may be joined.
    Claims,
}

impl std::str::FromStr for RoomPolicy {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(RoomPolicy::Open),
            "claims" => Ok(RoomPolicy::Claims),
            other => Err(ConfigError::Invalid {
                setting: "room_policy",
                reason: format!("expected `open` or `claims`, got `{other}`"),
            }),
        }
    }
}

/// How tokens are verified.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum JwtKey {
    /// No key configured: JWT verification is unavailable (a host `authenticate` hook must
    /// be installed, or every connection is refused).
    #[default]
    None,
    /// HS256 with a shared secret.
    Secret(String),
    /// RS256 or ES256 with a PEM public key (the algorithm follows the key type).
    PublicKeyPem(String),
    /// The keys an identity provider publishes at a JWKS URL, selected by the token's `kid`
    /// (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA).
    Jwks(JwksSource),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::None => f.write_str("None"),
            JwtKey::Secret(_) => f.write_str("Secret(<redacted>)"),
            JwtKey::PublicKeyPem(_) => f.write_str("PublicKeyPem(..)"),
            JwtKey::Jwks(source) => source.fmt(f),
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value outside its range; the reason says which values work.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong and what would work.
        reason: String,
    },
    /// The configuration file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Every setting of the engine, with the defaults of the wire contract.
///
/// Build one with [`Config::default`] and the consuming setters. They only store their
/// values; [`Config::validate`] checks them all, and the engine calls it once when it is
/// built, so a bad value fails there with a [`ConfigError`] naming the setting:
///
/// ```
/// # use std::time::Duration;
/// let config = switchboard::Config::default()
///     .jwt_secret("dev-secret-change-me")
///     .ping_interval(Duration::from_secs(10));
/// assert!(config.validate().is_ok());
/// assert!(config.ping_interval(Duration::ZERO).validate().is_err());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Time between server pings (Engine.IO `pingInterval`). Default 25 s.
    pub ping_interval: Duration,
    /// Time to wait for a pong before closing (Engine.IO `pingTimeout`). Default 20 s.
    pub ping_timeout: Duration,
    /// Largest Engine.IO payload accepted, in bytes. Default 1 MB.
    pub max_payload: usize,
    /// Browser origins allowed to connect and to read answers with credentials (cookies).
    /// Empty (the development default, logged as a warning at start) or `*`: any origin may
    /// connect and read, never with credentials; other origins are refused when the list
    /// names some. `/healthz` and `/metrics` never answer with CORS headers.
    pub cors_origins: Vec<String>,
    /// How tokens are verified.
    pub jwt: JwtKey,
    /// Room access when the token has no `rooms` claim.
    pub room_policy: RoomPolicy,
    /// Sustained requests per second per connection (`sendMessage`, `signal`, `joinRoom`);
    /// 0 turns rate limiting off. Default 20.
    pub rate_limit_per_second: u32,
    /// Requests a connection may burst above the sustained rate. Default 40.
    pub rate_limit_burst: u32,
    /// How long a connection may stay over its rate limit before it is disconnected.
    pub flood_disconnect_after: Duration,
    /// Most frames queued for one connection before it is disconnected as a slow reader.
    pub outbound_queue_frames: usize,
    /// Most bytes queued for one connection before it is disconnected as a slow reader.
    pub outbound_queue_bytes: usize,
    /// Typing indicators stop by themselves after this long. Default 5 s.
    pub typing_timeout: Duration,
    /// How long a dropped connection's state is kept for recovery. Default 2 min.
    pub recovery_window: Duration,
    /// Most bytes of broadcasts the recovery log keeps per namespace (beside its 10,000
    /// broadcasts), and apart from them most bytes of dropped sessions (with their auth
    /// payloads) it keeps; the oldest go first. Default 16 MiB.
    pub recovery_log_bytes: usize,
    /// Time between `:ping` comments on an idle SSE stream. Default 30 s.
    pub sse_ping_interval: Duration,
    /// How long a dropped connection still counts in presence, so that a quick reconnect
    /// shows no leave/join flicker. Default 2 s.
    pub presence_grace: Duration,
    /// Messages kept per room in history. Default 1000.
    pub history_limit: usize,
    /// Most rooms whose history is cached in memory; past it the least recently used room
    /// is evicted (reloaded from `data_dir` on next use; without a data directory its
    /// history is gone). Default 10,000.
    pub history_cache_rooms: usize,
    /// Most bytes of cached history (message texts, ids and names, plus overhead); evicts
    /// like `history_cache_rooms`. Default 256 MiB.
    pub history_cache_bytes: usize,
    /// Longest message text in characters. Default 4000.
    pub max_message_chars: usize,
    /// Largest `signal` data, in bytes of JSON plus attachments. Default 64 KiB.
    pub max_signal_bytes: usize,
    /// Most rooms one connection may be in (its personal room not counted). Default 100.
    pub max_rooms_per_connection: usize,
    /// Most simultaneous connections; 0 means no limit.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and then its body; a
    /// connection idle between requests is closed after it too (slowloris guard). Default 10 s.
    pub request_timeout: Duration,
    /// How long a polling client upgrading to WebSocket may take between its `2probe` and its
    /// `5`; then the WebSocket closes and polling carries on. Default 10 s.
    pub upgrade_timeout: Duration,
    /// How long a new Engine.IO session may take to join a namespace (send its Socket.IO
    /// CONNECT and be accepted) before it is closed, as Socket.IO's `connectTimeout`.
    /// Default 45 s.
    pub connect_timeout: Duration,
    /// How long a WebSocket client may take no bytes at all while frames wait for it before
    /// it is closed as a slow reader (what nginx calls `send_timeout`). Default 30 s.
    pub send_timeout: Duration,
    /// Most sessions that have not joined a namespace yet (their clients have not
    /// authenticated); further handshakes get `503`. 0 means no limit. Default 2000.
    pub max_pending_connections: usize,
    /// Largest HTTP request head (request line and headers) in bytes; a larger one gets
    /// `431`. Also bounds the handshake headers a session keeps. Default 16 KiB (Node's).
    pub max_header_bytes: usize,
    /// Bytes of events one socket may have waiting behind a slow handler (a host callback);
    /// past it the connection is not read until the handler catches up. Default 4 MiB.
    pub max_queued_event_bytes: usize,
    /// Where history is stored; `None` keeps it in memory.
    pub data_dir: Option<PathBuf>,
    /// Redis URL for clustering; `None` runs a single node.
    pub redis_url: Option<String>,
    /// How often a cluster node heartbeats; a node silent for three heartbeats is dead and
    /// its users leave presence. Default 5 s.
    pub cluster_heartbeat: Duration,
    /// Key guarding the server HTTP API; `None` turns the API off.
    pub api_key: Option<String>,
    /// Certificate and key for HTTPS and WSS on the engine's own listeners
    /// ([`crate::Engine::listen`]); `None` serves plain HTTP. Loaded (and checked) when the
    /// engine is built.
    pub tls: Option<TlsSource>,
    /// Worker threads of the engine's own runtime; `None` uses one per core.
    pub worker_threads: Option<usize>,
    /// How long a host callback (auth, room access, storage) may take before it fails.
    pub host_callback_timeout: Duration,
    /// The Socket.IO path. Default `/socket.io/`.
    pub path: String,
    /// Path prefix of the Yjs documents (`/yjs/<docName>`). Default `/yjs/`.
    pub yjs_path: String,
    /// A Yjs document without connections is stored and unloaded after this long. Default 5 min.
    pub yjs_idle_unload: Duration,
    /// A changed Yjs document is stored once it has been quiet this long. Default 2 s.
    pub yjs_store_debounce: Duration,
    /// ...and at the latest this long after its first unstored change. Default 10 s.
    pub yjs_store_max_delay: Duration,
    /// Largest Yjs message (an update, a sync step) a client may send, in bytes. Default 4 MiB.
    pub yjs_max_update_bytes: usize,
    /// Largest Yjs document (its encoded state), in bytes. Default 16 MiB.
    pub yjs_max_document_bytes: usize,
    /// Largest Yjs awareness state (its JSON) of one client id, in bytes. Default 64 KiB.
    pub yjs_max_awareness_bytes: usize,
    /// Most Yjs awareness client ids one connection may set states for. Default 16 (a
    /// y-websocket provider has one).
    pub yjs_max_awareness_clients: usize,
    /// Time between WebSocket pings on Yjs connections; a connection that has not answered the
    /// previous ping is closed. Default 30 s.
    pub yjs_ping_interval: Duration,
    /// Extra PEM CA certificate(s) trusted for the JWKS URL, beside the public roots (a
    /// private CA, or a test's self-signed certificate). Default none.
    pub jwks_ca_file: Option<PathBuf>,
    /// Shortest time between two fetches of the JWKS when tokens name an unknown `kid`
    /// (key rotation is picked up within it; forged `kid`s cost one fetch per interval).
    /// Default 10 s.
    pub jwks_refetch_interval: Duration,
    /// Accepted token issuers (`iss`); empty accepts any (and tokens without `iss`).
    pub jwt_issuers: Vec<String>,
    /// Accepted token audiences (`aud` must name one of them); empty: `aud` is not checked.
    pub jwt_audiences: Vec<String>,
    /// Clock skew allowed when checking `exp` and `nbf`. Default 0.
    pub jwt_leeway: Duration,
    /// Accept tokens without `exp` (they never expire). Default false: `exp` is required.
    pub jwt_allow_no_exp: bool,
    /// The claim that is the user id. Default `sub`.
    pub jwt_user_id_claim: String,
    /// The claim that is the display name (the id when absent). Default `username`.
    pub jwt_username_claim: String,
    /// How long before its token's `exp` a connection is sent `tokenExpiring` (at most half
    /// the token's remaining lifetime). Default 30 s.
    pub token_expiry_warning: Duration,
    /// Keep connections open past their token's `exp` (the behaviour before tokens bound
    /// connections). Default false: at `exp` Socket.IO sockets are disconnected, SSE streams
    /// end with `token-expired` and Yjs connections close with 4401.
    pub allow_expired_connections: bool,
    /// Path prefix of every endpoint (`/rt` serves `/rt/socket.io/`, `/rt/events`,
    /// `/rt/api/…`, `/rt/yjs/…`, `/rt/metrics`, `/rt/healthz`); empty (the default) serves
    /// them at the root. See [`Config::prefix`].
    pub prefix: String,
    /// Whether the SSE stream (`/events`) is served. Default true.
    pub sse: bool,
    /// Whether the server HTTP API (`/api/…`) is served (it also needs `api_key`). Default true.
    pub api: bool,
    /// Whether Yjs documents (`yjs_path`) are served. Default true.
    pub yjs: bool,
    /// Whether `/metrics` is served. Default true.
    pub metrics: bool,
    /// Whether `/healthz` is served. Default true.
    pub healthz: bool,
    /// Whether the plain-WebSocket endpoint (`/ws`) is served. Default true.
    pub ws: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            cors_origins: Vec::new(),
            jwt: JwtKey::None,
            room_policy: RoomPolicy::Open,
            rate_limit_per_second: 20,
            rate_limit_burst: 40,
            flood_disconnect_after: Duration::from_secs(5),
            outbound_queue_frames: 1024,
            outbound_queue_bytes: 4 * 1024 * 1024,
            typing_timeout: Duration::from_secs(5),
            recovery_window: Duration::from_secs(120),
            recovery_log_bytes: 16 * 1024 * 1024,
            presence_grace: Duration::from_secs(2),
            sse_ping_interval: Duration::from_secs(30),
            history_limit: 1000,
            history_cache_rooms: 10_000,
            history_cache_bytes: 256 * 1024 * 1024,
            max_message_chars: 4000,
            max_signal_bytes: 64 * 1024,
            max_rooms_per_connection: 100,
            max_connections: 0,
            request_timeout: Duration::from_secs(10),
            upgrade_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(45),
            max_header_bytes: 16 * 1024,
            max_pending_connections: 2000,
            send_timeout: Duration::from_secs(30),
            max_queued_event_bytes: 4 * 1024 * 1024,
            data_dir: None,
            redis_url: None,
            cluster_heartbeat: Duration::from_secs(5),
            api_key: None,
            tls: None,
            worker_threads: None,
            host_callback_timeout: Duration::from_secs(10),
            path: "/socket.io/".to_owned(),
            yjs_path: "/yjs/".to_owned(),
            yjs_idle_unload: Duration::from_secs(300),
            yjs_store_debounce: Duration::from_secs(2),
            yjs_store_max_delay: Duration::from_secs(10),
            yjs_max_update_bytes: 4 * 1024 * 1024,
            yjs_max_document_bytes: 16 * 1024 * 1024,
            yjs_max_awareness_bytes: 64 * 1024,
            yjs_max_awareness_clients: 16,
            yjs_ping_interval: Duration::from_secs(30),
            jwks_ca_file: None,
            jwks_refetch_interval: Duration::from_secs(10),
            jwt_issuers: Vec::new(),
            jwt_audiences: Vec::new(),
            jwt_leeway: Duration::ZERO,
            jwt_allow_no_exp: false,
            jwt_user_id_claim: "sub".to_owned(),
            jwt_username_claim: "username".to_owned(),
            token_expiry_warning: Duration::from_secs(30),
            allow_expired_connections: false,
            prefix: String::new(),
            sse: true,
            api: true,
            yjs: true,
            metrics: true,
            healthz: true,
            ws: true,
        }
    }
}

/// The shortest HS256 secret the engine accepts, in bytes. Anyone who can guess or
/// brute-force the secret can forge tokens for any user; an empty secret makes forging
/// trivial. RFC 7518 asks for at least 32 bytes for HS256; 16 is the floor so that existing
/// passphrase-style secrets keep working (the docs recommend 32 random bytes).
pub const MIN_JWT_SECRET_BYTES: usize = 16;

/// Refuses an HS256 secret shorter than [`MIN_JWT_SECRET_BYTES`].
pub fn check_jwt_secret(secret: &str) -> Result<(), ConfigError> {
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(ConfigError::Invalid {
            setting: "jwt_secret",
            reason: format!(
                "an HS256 secret must be at least {MIN_JWT_SECRET_BYTES} bytes (this one has {}); \
                 use 32 or more random bytes, e.g. `openssl rand -base64 32`",
                secret.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_wire_contract() {
        let c = Config::default();
        assert_eq!(c.ping_interval, Duration::from_secs(25));
        assert_eq!(c.ping_timeout, Duration::from_secs(20));
        assert_eq!(c.max_payload, 1_000_000);
        assert_eq!((c.rate_limit_per_second, c.rate_limit_burst), (20, 40));
        assert_eq!(c.max_message_chars, 4000);
        assert_eq!(c.recovery_window, Duration::from_secs(120));
        assert_eq!(c.yjs_idle_unload, Duration::from_secs(300));
        assert_eq!(c.yjs_ping_interval, Duration::from_secs(30));
        assert_eq!(c.yjs_path, "/yjs/");
    }

    #[test]
    fn yjs_setters_validate() {
        assert!(Config::default().yjs_path("yjs").validate().is_err());
        assert!(Config::default().yjs_path("/docs/").validate().is_ok());
        assert!(Config::default()
            .yjs_idle_unload(Duration::ZERO)
            .validate()
            .is_err());
        let d = Duration::from_secs(2);
        assert!(Config::default()
            .yjs_store_debounce(d, d / 2)
            .validate()
            .is_err());
        assert!(Config::default()
            .yjs_store_debounce(d, d * 5)
            .validate()
            .is_ok());
        assert!(Config::default()
            .yjs_limits(10, 1 << 20)
            .validate()
            .is_err());
        assert!(Config::default()
            .yjs_awareness_limits(10, 16)
            .validate()
            .is_err());
        assert!(Config::default()
            .yjs_awareness_limits(1024, 0)
            .validate()
            .is_err());
        let c = Config::default().yjs_awareness_limits(1024, 2);
        assert_eq!(
            (c.yjs_max_awareness_bytes, c.yjs_max_awareness_clients),
            (1024, 2)
        );
        let d = Config::default();
        assert_eq!(
            (d.yjs_max_awareness_bytes, d.yjs_max_awareness_clients),
            (65536, 16)
        );
    }

    #[test]
    fn setters_validate() {
        assert!(Config::default()
            .ping_interval(Duration::ZERO)
            .validate()
            .is_err());
        assert!(Config::default().max_payload(10).validate().is_err());
        assert!(Config::default()
            .connect_timeout(Duration::ZERO)
            .validate()
            .is_err());
        assert!(Config::default().max_header_bytes(4096).validate().is_err());
        assert!(Config::default()
            .max_queued_event_bytes(1024)
            .validate()
            .is_err());
        assert!(Config::default().rate_limit(5, 0).validate().is_err());
        assert!(Config::default().rate_limit(0, 0).validate().is_ok());
        assert_eq!("claims".parse::<RoomPolicy>(), Ok(RoomPolicy::Claims));
        assert!("closed".parse::<RoomPolicy>().is_err());
        assert!(Config::default()
            .tls_files("cert.pem", "")
            .validate()
            .is_err());
        assert!(Config::default().tls_pem("", "key").validate().is_err());
        let c = Config::default().tls_files("cert.pem", "key.pem");
        assert!(matches!(c.tls, Some(TlsSource::Files { .. })));
    }

    #[test]
    fn empty_and_short_jwt_secrets_are_refused() {
        for short in ["", "s", "secret", "fifteen-bytes!!"] {
            let err = Config::default().jwt_secret(short).validate().unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        setting: "jwt_secret",
                        ..
                    }
                ),
                "{short:?}: {err:?}"
            );
            assert!(err.to_string().contains("at least 16 bytes"), "{err}");
        }
        // The secrets of the repo's examples, tests and docs keep working.
        for ok in [
            "sixteen-bytes!!!",
            "dev-secret-change-me",
            "test-secret-please-change",
            "client-test-secret",
        ] {
            assert_eq!(Config::default().jwt_secret(ok).validate(), Ok(()), "{ok}");
        }
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn secrets_are_not_logged() {
        let c = Config::default().jwt_secret("hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
