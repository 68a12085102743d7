//! The one table of settings: for every [`Config`] field, its name in each front door (the
//! `switchboard serve` flag, the `--config` TOML key, the Node option, the C setter), its
//! default and what it does. `docs/limits.md`'s settings table is generated from it, and a
//! test (`core/src/bin/switchboard/settings_check.rs`) fails when a `Config` field, a flag, a
//! TOML key, a Node option or a C setter is missing from it or disagrees with it.
//!
//! The naming rule: a setting has one `name`, which is its TOML key; the CLI flag is that
//! name in kebab-case (`--rate-limit`), the Node option the same name in camelCase
//! (`rateLimit`), the C setter `sb_config_set_<name>` (`_ms` appended for milliseconds; a few
//! setters take two related values at once). Older spellings stay accepted as aliases.

use std::time::Duration;

use crate::config::{Config, ConfigError, JwtKey};

/// What kind of value a setting takes (the same in every front door, in its own units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A duration in whole milliseconds.
    Millis,
    /// A size in bytes.
    Bytes,
    /// A count.
    Count,
    /// A text.
    Text,
    /// A text that is a secret: never logged, and refused when empty.
    Secret,
    /// A file-system path.
    Path,
    /// A list of texts.
    TextList,
    /// One of a few words.
    Choice,
}

impl Kind {
    /// The name the Node binding uses to check an option's type.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Millis => "millis",
            Kind::Bytes => "bytes",
            Kind::Count => "count",
            Kind::Text => "text",
            Kind::Secret => "secret",
            Kind::Path => "path",
            Kind::TextList => "textList",
            Kind::Choice => "choice",
        }
    }
}

/// One setting and its names in every front door.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The canonical name: the TOML key (snake_case).
    pub name: &'static str,
    /// The `Config` fields it sets.
    pub fields: &'static [&'static str],
    /// What it takes.
    pub kind: Kind,
    /// Its default, as the docs say it.
    pub default: &'static str,
    /// The `switchboard serve` flag without `--`; `None` when the CLI has no use for it.
    pub cli: Option<&'static str>,
    /// The Node option (camelCase); `None` when Node sets it another way.
    pub node: Option<&'static str>,
    /// The C setter.
    pub c: Option<&'static str>,
    /// Older spellings still accepted: CLI flags (kebab), TOML keys (snake) and Node options
    /// (camel) alike.
    pub aliases: &'static [&'static str],
    /// Why a front door lacks it (empty when none does).
    pub note: &'static str,
    /// What it does.
    pub description: &'static str,
}

macro_rules! s {
    ($name:literal, [$($f:literal),*], $kind:ident, $default:literal, $cli:expr, $node:expr, $c:expr,
     [$($alias:literal),*], $note:expr, $desc:literal) => {
        Setting {
            name: $name,
            fields: &[$($f),*],
            kind: Kind::$kind,
            default: $default,
            cli: $cli,
            node: $node,
            c: $c,
            aliases: &[$($alias),*],
            note: $note,
            description: $desc,
        }
    };
}

const NO_TLS_IN_NODE: &str = "Node: `engine.listen({tls: {cert, key}})` takes PEM contents; \
behind Fastify the app's own server does TLS";
const NO_HOOKS_IN_CLI: &str = "CLI: the standalone server has no host callbacks";

/// Every setting, in the order of `docs/limits.md`.
pub const SETTINGS: &[Setting] = &[
    s!(
        "jwt_secret",
        ["jwt"],
        Secret,
        "none",
        Some("jwt-secret"),
        Some("jwtSecret"),
        Some("sb_config_set_jwt_secret"),
        [],
        "",
        "HS256 secret verifying tokens, at least 16 bytes (env `SWITCHBOARD_JWT_SECRET`)"
    ),
    s!(
        "jwt_public_key",
        ["jwt"],
        Text,
        "none",
        Some("jwt-public-key"),
        Some("jwtPublicKey"),
        Some("sb_config_set_jwt_public_key_pem"),
        [],
        "",
        "RS256/ES256 PEM public key verifying tokens (CLI: a file or the PEM text)"
    ),
    s!(
        "room_policy",
        ["room_policy"],
        Choice,
        "open",
        Some("room-policy"),
        Some("roomPolicy"),
        Some("sb_config_set_room_policy"),
        [],
        "",
        "room access for tokens without a `rooms` claim: `open` or `claims`"
    ),
    s!(
        "ping_interval",
        ["ping_interval"],
        Millis,
        "25000",
        Some("ping-interval"),
        Some("pingInterval"),
        Some("sb_config_set_ping_interval_ms"),
        [],
        "",
        "time between Engine.IO pings"
    ),
    s!(
        "ping_timeout",
        ["ping_timeout"],
        Millis,
        "20000",
        Some("ping-timeout"),
        Some("pingTimeout"),
        Some("sb_config_set_ping_timeout_ms"),
        [],
        "",
        "time to wait for a pong"
    ),
    s!(
        "max_payload",
        ["max_payload"],
        Bytes,
        "1000000",
        Some("max-payload"),
        Some("maxPayload"),
        Some("sb_config_set_max_payload"),
        [],
        "",
        "largest Engine.IO payload (at least 128)"
    ),
    s!(
        "cors_origins",
        ["cors_origins"],
        TextList,
        "any origin, no credentials",
        Some("cors-origin"),
        Some("corsOrigins"),
        Some("sb_config_add_cors_origin"),
        [],
        "CLI: one `--cors-origin` per origin; C: one call per origin",
        "browser origins allowed with credentials"
    ),
    s!(
        "rate_limit",
        ["rate_limit_per_second"],
        Count,
        "20",
        Some("rate-limit"),
        Some("rateLimit"),
        Some("sb_config_set_rate_limit"),
        ["rateLimitPerSecond"],
        "",
        "sustained requests per second per connection (0 = off)"
    ),
    s!(
        "rate_burst",
        ["rate_limit_burst"],
        Count,
        "40",
        Some("rate-burst"),
        Some("rateBurst"),
        Some("sb_config_set_rate_limit"),
        ["rateLimitBurst"],
        "",
        "requests a connection may burst above the rate (at least 1 when the rate is on)"
    ),
    s!(
        "flood_disconnect_after",
        ["flood_disconnect_after"],
        Millis,
        "5000",
        Some("flood-disconnect-after"),
        Some("floodDisconnectAfter"),
        Some("sb_config_set_flood_disconnect_after_ms"),
        [],
        "",
        "how long a connection may stay over its rate limit before it is disconnected"
    ),
    s!(
        "outbound_queue_frames",
        ["outbound_queue_frames"],
        Count,
        "1024",
        Some("outbound-queue-frames"),
        Some("outboundQueueFrames"),
        Some("sb_config_set_outbound_queue"),
        [],
        "",
        "frames queued per connection before it is dropped as a slow reader (at least 16)"
    ),
    s!(
        "outbound_queue_bytes",
        ["outbound_queue_bytes"],
        Bytes,
        "4194304",
        Some("outbound-queue-bytes"),
        Some("outboundQueueBytes"),
        Some("sb_config_set_outbound_queue"),
        [],
        "",
        "bytes queued per connection before it is dropped as a slow reader (at least 65536)"
    ),
    s!(
        "typing_timeout",
        ["typing_timeout"],
        Millis,
        "5000",
        Some("typing-timeout"),
        Some("typingTimeout"),
        Some("sb_config_set_typing_timeout_ms"),
        [],
        "",
        "typing indicators stop by themselves after this long"
    ),
    s!(
        "recovery_window",
        ["recovery_window"],
        Millis,
        "120000",
        Some("recovery-window"),
        Some("recoveryWindow"),
        Some("sb_config_set_recovery_window_ms"),
        [],
        "",
        "how long a dropped connection may recover its state (0 = off)"
    ),
    s!(
        "recovery_log_bytes",
        ["recovery_log_bytes"],
        Bytes,
        "16777216",
        Some("recovery-log-bytes"),
        Some("recoveryLogBytes"),
        Some("sb_config_set_recovery_log_bytes"),
        [],
        "",
        "bytes of broadcasts (and, apart, of dropped sessions) kept for recovery (at least 65536)"
    ),
    s!(
        "sse_ping_interval",
        ["sse_ping_interval"],
        Millis,
        "30000",
        Some("sse-ping-interval"),
        Some("ssePingInterval"),
        Some("sb_config_set_sse_ping_interval_ms"),
        [],
        "",
        "time between `:ping` comments on idle SSE streams"
    ),
    s!(
        "presence_grace",
        ["presence_grace"],
        Millis,
        "2000",
        Some("presence-grace"),
        Some("presenceGrace"),
        Some("sb_config_set_presence_grace_ms"),
        [],
        "",
        "how long a dropped connection still counts in presence"
    ),
    s!(
        "history_limit",
        ["history_limit"],
        Count,
        "1000",
        Some("history-limit"),
        Some("historyLimit"),
        Some("sb_config_set_history_limit"),
        [],
        "",
        "messages kept per room in history (at least 1)"
    ),
    s!(
        "history_cache_rooms",
        ["history_cache_rooms"],
        Count,
        "10000",
        Some("history-cache-rooms"),
        Some("historyCacheRooms"),
        Some("sb_config_set_history_cache_rooms"),
        [],
        "",
        "rooms whose history is cached in memory (at least 1)"
    ),
    s!(
        "history_cache_bytes",
        ["history_cache_bytes"],
        Bytes,
        "268435456",
        Some("history-cache-bytes"),
        Some("historyCacheBytes"),
        Some("sb_config_set_history_cache_bytes"),
        [],
        "",
        "bytes of history cached in memory (at least 1 MiB)"
    ),
    s!(
        "max_message_chars",
        ["max_message_chars"],
        Count,
        "4000",
        Some("max-message-chars"),
        Some("maxMessageChars"),
        Some("sb_config_set_max_message_chars"),
        [],
        "",
        "longest message text in characters (at least 1)"
    ),
    s!(
        "max_signal_bytes",
        ["max_signal_bytes"],
        Bytes,
        "65536",
        Some("max-signal-bytes"),
        Some("maxSignalBytes"),
        Some("sb_config_set_max_signal_bytes"),
        [],
        "",
        "largest `signal` data, JSON plus attachments (at least 1024)"
    ),
    s!(
        "max_rooms_per_connection",
        ["max_rooms_per_connection"],
        Count,
        "100",
        Some("max-rooms-per-connection"),
        Some("maxRoomsPerConnection"),
        Some("sb_config_set_max_rooms_per_connection"),
        [],
        "",
        "rooms one connection (or SSE stream) may be in (at least 1)"
    ),
    s!(
        "max_connections",
        ["max_connections"],
        Count,
        "0",
        Some("max-connections"),
        Some("maxConnections"),
        Some("sb_config_set_max_connections"),
        [],
        "",
        "simultaneous Socket.IO connections (0 = no limit)"
    ),
    s!(
        "request_timeout",
        ["request_timeout"],
        Millis,
        "10000",
        Some("request-timeout"),
        Some("requestTimeout"),
        Some("sb_config_set_request_timeout_ms"),
        [],
        "",
        "time for a request's headers, then its body, to arrive"
    ),
    s!(
        "upgrade_timeout",
        ["upgrade_timeout"],
        Millis,
        "10000",
        Some("upgrade-timeout"),
        Some("upgradeTimeout"),
        Some("sb_config_set_upgrade_timeout_ms"),
        [],
        "",
        "time for a polling client's upgrade to WebSocket"
    ),
    s!(
        "connect_timeout",
        ["connect_timeout"],
        Millis,
        "45000",
        Some("connect-timeout"),
        Some("connectTimeout"),
        Some("sb_config_set_connect_timeout_ms"),
        [],
        "",
        "time for a new session to join a namespace"
    ),
    s!(
        "send_timeout",
        ["send_timeout"],
        Millis,
        "30000",
        Some("send-timeout"),
        Some("sendTimeout"),
        Some("sb_config_set_send_timeout_ms"),
        [],
        "",
        "time a WebSocket client may take no bytes while frames wait"
    ),
    s!(
        "max_pending_connections",
        ["max_pending_connections"],
        Count,
        "2000",
        Some("max-pending-connections"),
        Some("maxPendingConnections"),
        Some("sb_config_set_max_pending_connections"),
        [],
        "",
        "sessions not yet in a namespace (0 = no limit)"
    ),
    s!(
        "max_header_bytes",
        ["max_header_bytes"],
        Bytes,
        "16384",
        Some("max-header-bytes"),
        Some("maxHeaderBytes"),
        Some("sb_config_set_max_header_bytes"),
        [],
        "",
        "largest HTTP request head (at least 8192)"
    ),
    s!(
        "max_queued_event_bytes",
        ["max_queued_event_bytes"],
        Bytes,
        "4194304",
        Some("max-queued-event-bytes"),
        Some("maxQueuedEventBytes"),
        Some("sb_config_set_max_queued_event_bytes"),
        [],
        "",
        "bytes of events waiting behind a slow handler per socket (at least 65536)"
    ),
    s!(
        "data_dir",
        ["data_dir"],
        Path,
        "none (memory)",
        Some("data-dir"),
        Some("dataDir"),
        Some("sb_config_set_data_dir"),
        [],
        "",
        "directory of the history and Yjs store"
    ),
    s!(
        "redis_url",
        ["redis_url"],
        Text,
        "none (one node)",
        Some("redis-url"),
        Some("redisUrl"),
        Some("sb_config_set_redis_url"),
        ["redis"],
        "",
        "Redis URL: join a cluster (env `REDIS_URL`)"
    ),
    s!(
        "cluster_heartbeat",
        ["cluster_heartbeat"],
        Millis,
        "5000",
        Some("cluster-heartbeat"),
        Some("clusterHeartbeat"),
        Some("sb_config_set_cluster_heartbeat_ms"),
        ["cluster-heartbeat-ms", "cluster_heartbeat_ms"],
        "",
        "time between cluster heartbeats; three missed mean dead (at least 100)"
    ),
    s!(
        "api_key",
        ["api_key"],
        Secret,
        "none (API off)",
        Some("api-key"),
        Some("apiKey"),
        Some("sb_config_set_api_key"),
        [],
        "",
        "key guarding the server HTTP API (env `SWITCHBOARD_API_KEY`)"
    ),
    s!(
        "tls_cert",
        ["tls"],
        Path,
        "none (plain HTTP)",
        Some("tls-cert"),
        None,
        Some("sb_config_set_tls"),
        [],
        NO_TLS_IN_NODE,
        "PEM certificate chain for HTTPS/WSS on the engine's own listener"
    ),
    s!(
        "tls_key",
        ["tls"],
        Path,
        "none",
        Some("tls-key"),
        None,
        Some("sb_config_set_tls"),
        [],
        NO_TLS_IN_NODE,
        "PEM private key of `tls_cert`"
    ),
    s!(
        "worker_threads",
        ["worker_threads"],
        Count,
        "one per core",
        Some("worker-threads"),
        Some("workerThreads"),
        Some("sb_config_set_worker_threads"),
        ["workers"],
        "",
        "worker threads of the engine's runtime (at least 1)"
    ),
    s!(
        "host_callback_timeout",
        ["host_callback_timeout"],
        Millis,
        "10000",
        None,
        Some("hostCallbackTimeout"),
        Some("sb_config_set_host_callback_timeout_ms"),
        ["callbackTimeout"],
        NO_HOOKS_IN_CLI,
        "time a host callback (auth, room access, storage, app events) may take"
    ),
    s!(
        "yjs_idle_unload",
        ["yjs_idle_unload"],
        Millis,
        "300000",
        Some("yjs-idle-unload"),
        Some("yjsIdleUnload"),
        Some("sb_config_set_yjs_idle_unload_ms"),
        [],
        "",
        "a Yjs document without connections is stored and unloaded after this long"
    ),
    s!(
        "yjs_store_debounce",
        ["yjs_store_debounce"],
        Millis,
        "2000",
        Some("yjs-store-debounce"),
        Some("yjsStoreDebounce"),
        Some("sb_config_set_yjs_store_debounce_ms"),
        [],
        "",
        "a changed Yjs document is stored once quiet this long"
    ),
    s!(
        "yjs_store_max_delay",
        ["yjs_store_max_delay"],
        Millis,
        "10000",
        Some("yjs-store-max-delay"),
        Some("yjsStoreMaxDelay"),
        Some("sb_config_set_yjs_store_max_delay_ms"),
        [],
        "",
        "...and at the latest this long after its first unstored change (at least the debounce)"
    ),
    s!(
        "yjs_max_update_bytes",
        ["yjs_max_update_bytes"],
        Bytes,
        "4194304",
        Some("yjs-max-update-bytes"),
        Some("yjsMaxUpdateBytes"),
        Some("sb_config_set_yjs_limits"),
        [],
        "",
        "largest Yjs message a client may send (at least 1024)"
    ),
    s!(
        "yjs_max_document_bytes",
        ["yjs_max_document_bytes"],
        Bytes,
        "16777216",
        Some("yjs-max-document-bytes"),
        Some("yjsMaxDocumentBytes"),
        Some("sb_config_set_yjs_limits"),
        [],
        "",
        "largest Yjs document (at least 1024)"
    ),
    s!(
        "yjs_max_awareness_bytes",
        ["yjs_max_awareness_bytes"],
        Bytes,
        "65536",
        Some("yjs-max-awareness-bytes"),
        Some("yjsMaxAwarenessBytes"),
        Some("sb_config_set_yjs_max_awareness_bytes"),
        [],
        "",
        "largest Yjs awareness state of one client id (at least 64)"
    ),
    s!(
        "yjs_max_awareness_clients",
        ["yjs_max_awareness_clients"],
        Count,
        "16",
        Some("yjs-max-awareness-clients"),
        Some("yjsMaxAwarenessClients"),
        Some("sb_config_set_yjs_max_awareness_clients"),
        [],
        "",
        "awareness client ids one connection may set (at least 1)"
    ),
    s!(
        "yjs_ping_interval",
        ["yjs_ping_interval"],
        Millis,
        "30000",
        Some("yjs-ping-interval"),
        Some("yjsPingInterval"),
        Some("sb_config_set_yjs_ping_interval_ms"),
        [],
        "",
        "time between WebSocket pings on Yjs connections"
    ),
];

/// `Config` fields no front door but Rust sets, and why.
pub const RUST_ONLY: &[(&str, &str)] = &[
    (
        "path",
        "the Socket.IO path clients use (`/socket.io/`); the bindings' mount points are issue 18 item 3 (`prefix`)",
    ),
    (
        "yjs_path",
        "the Yjs documents' path prefix (`/yjs/`); the bindings' mount points are issue 18 item 3 (`prefix`)",
    ),
];

/// The setting a name belongs to: its canonical name, one of its front-door names or
/// aliases, or (for errors raised by setters) a `Config` field it sets.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| {
        s.name == name
            || s.cli == Some(name)
            || s.node == Some(name)
            || s.aliases.contains(&name)
            || s.fields.contains(&name)
    })
}

/// Edit distance between two names, ignoring case, `-` and `_`: `rate-limit`, `rate_limit`
/// and `ratelimit` are all at distance 0 from `rateLimit`.
pub fn distance(a: &str, b: &str) -> usize {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (norm(a), norm(b));
    // Two rows of the Levenshtein table; names are short (bounded by the caller).
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The valid name closest to `unknown`, when one is close enough to be a likely typo (or the
/// same name in another binding's spelling).
pub fn suggest<'a>(unknown: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // An attacker-sized key costs nothing: nobody's typo is this long.
    if unknown.len() > 64 {
        return None;
    }
    let limit = (unknown.len() / 3).max(2);
    valid
        .into_iter()
        .map(|v| (distance(unknown, v), v))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// "unknown option `x`; did you mean `y`?" (or without the question when nothing is close).
pub fn unknown_message<'a>(
    what: &str,
    unknown: &str,
    valid: impl IntoIterator<Item = &'a str>,
) -> String {
    let shown: String = unknown.chars().take(64).collect();
    match suggest(unknown, valid) {
        Some(s) => format!("unknown {what} `{shown}`; did you mean `{s}`?"),
        None => format!("unknown {what} `{shown}`"),
    }
}

/// A front door of the engine, for naming a setting in its own spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// `switchboard serve` flags.
    Cli,
    /// The `--config` TOML file.
    Toml,
    /// `new Engine(options)` / the Fastify plugin.
    Node,
    /// The C setters.
    C,
}

impl Setting {
    /// This setting's name in `front` (its canonical name where that front lacks it).
    pub fn name_in(&self, front: Front) -> String {
        match front {
            Front::Cli => self
                .cli
                .map_or_else(|| self.name.to_owned(), |f| format!("--{f}")),
            Front::Toml => self.name.to_owned(),
            Front::Node => self.node.unwrap_or(self.name).to_owned(),
            Front::C => self.c.unwrap_or(self.name).to_owned(),
        }
    }
}

/// A configuration error as one sentence naming the setting in `front`'s spelling:
/// "invalid `pingInterval`: must be greater than zero".
pub fn describe(err: &ConfigError, front: Front) -> String {
    match err {
        ConfigError::Invalid { setting, reason } => match find(setting) {
            // A C setter may take two settings: name the one at fault too.
            Some(s) if front == Front::C => {
                format!("invalid `{}` ({}): {reason}", s.name, s.name_in(front))
            }
            Some(s) => format!("invalid `{}`: {reason}", s.name_in(front)),
            None => err.to_string(),
        },
        ConfigError::File { .. } => err.to_string(),
    }
}

fn empty(setting: &'static str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: "is empty; set it or remove it".into(),
    }
}

fn at_least(setting: &'static str, n: usize, min: usize) -> Result<usize, ConfigError> {
    if n < min {
        return Err(ConfigError::Invalid {
            setting,
            reason: format!("must be at least {min}, got {n}"),
        });
    }
    Ok(n)
}

/// The checks [`Config::validate`] adds for settings that may be set directly: empty texts
/// where a text is required, and the ranges of the setters below.
pub(crate) fn validate(c: &Config) -> Result<(), ConfigError> {
    if matches!(&c.jwt, JwtKey::PublicKeyPem(p) if p.trim().is_empty()) {
        return Err(empty("jwt_public_key"));
    }
    if c.api_key.as_deref().is_some_and(str::is_empty) {
        return Err(empty("api_key"));
    }
    if c.redis_url.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(empty("redis_url"));
    }
    if c.data_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        return Err(empty("data_dir"));
    }
    if c.cors_origins.iter().any(|o| o.trim().is_empty()) {
        return Err(ConfigError::Invalid {
            setting: "cors_origins",
            reason: "holds an empty origin".into(),
        });
    }
    at_least("history_limit", c.history_limit, 1)?;
    at_least("max_message_chars", c.max_message_chars, 1)?;
    at_least("max_signal_bytes", c.max_signal_bytes, 1024)?;
    at_least("max_rooms_per_connection", c.max_rooms_per_connection, 1)?;
    Ok(())
}

impl Config {
    /// Sets how long a connection may stay over its rate limit before it is disconnected
    /// (must be positive).
    pub fn flood_disconnect_after(mut self, d: Duration) -> Result<Self, ConfigError> {
        if d.is_zero() {
            return Err(ConfigError::Invalid {
                setting: "flood_disconnect_after",
                reason: "must be greater than zero".into(),
            });
        }
        self.flood_disconnect_after = d;
        Ok(self)
    }

    /// Sets the messages kept per room in history (at least 1).
    pub fn history_limit(mut self, n: usize) -> Result<Self, ConfigError> {
        self.history_limit = at_least("history_limit", n, 1)?;
        Ok(self)
    }

    /// Sets the longest message text in characters (at least 1).
    pub fn max_message_chars(mut self, n: usize) -> Result<Self, ConfigError> {
        self.max_message_chars = at_least("max_message_chars", n, 1)?;
        Ok(self)
    }

    /// Sets the largest `signal` data in bytes (at least 1024: an SDP offer must fit).
    pub fn max_signal_bytes(mut self, n: usize) -> Result<Self, ConfigError> {
        self.max_signal_bytes = at_least("max_signal_bytes", n, 1024)?;
        Ok(self)
    }

    /// Sets the most rooms one connection may be in (at least 1).
    pub fn max_rooms_per_connection(mut self, n: usize) -> Result<Self, ConfigError> {
        self.max_rooms_per_connection = at_least("max_rooms_per_connection", n, 1)?;
        Ok(self)
    }
}

/// The settings table of `docs/limits.md`, generated from [`SETTINGS`] and [`RUST_ONLY`].
pub fn markdown_table() -> String {
    let code = |s: Option<&str>, prefix: &str| {
        s.map_or_else(|| "—".to_owned(), |s| format!("`{prefix}{s}`"))
    };
    let mut out = String::from(
        "| setting (TOML) | CLI | Node | C | default | what it sets |\n|---|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let mut what = s.description.to_owned();
        if !s.aliases.is_empty() {
            let aliases: Vec<String> = s.aliases.iter().map(|a| format!("`{a}`")).collect();
            what.push_str(&format!("; also accepted: {}", aliases.join(", ")));
        }
        if !s.note.is_empty() {
            what.push_str(&format!(" ({})", s.note));
        }
        let unit = match s.kind {
            Kind::Millis => " ms",
            Kind::Bytes => " bytes",
            _ => "",
        };
        let default = if s.default.starts_with(|c: char| c.is_ascii_digit()) {
            format!("{}{unit}", s.default)
        } else {
            s.default.to_owned()
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            s.name,
            code(s.cli, "--"),
            code(s.node, ""),
            code(s.c, ""),
            default,
            what
        ));
    }
    for (field, why) in RUST_ONLY {
        out.push_str(&format!(
            "| `{field}` (Rust `Config` only) | — | — | — | see `Config` | {why} |\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_cover_typos_and_other_spellings() {
        let valid = ["rateLimit", "rateBurst", "jwtSecret", "pingInterval"];
        for typo in [
            "ratelimit",
            "rate-limit",
            "rate_limit",
            "rateLimt",
            "RATE_LIMIT",
        ] {
            assert_eq!(suggest(typo, valid), Some("rateLimit"), "{typo}");
        }
        assert_eq!(suggest("completelyDifferent", valid), None);
        assert_eq!(suggest(&"x".repeat(10_000), valid), None);
        assert_eq!(
            unknown_message("option", "ratelimit", valid),
            "unknown option `ratelimit`; did you mean `rateLimit`?"
        );
    }

    #[test]
    fn new_setters_and_validate_refuse_out_of_range_values() {
        assert!(Config::default().history_limit(0).is_err());
        assert!(Config::default().max_message_chars(0).is_err());
        assert!(Config::default().max_signal_bytes(10).is_err());
        assert!(Config::default().max_rooms_per_connection(0).is_err());
        assert!(Config::default()
            .flood_disconnect_after(Duration::ZERO)
            .is_err());
        let err = Config::default().api_key("").validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid api_key: is empty; set it or remove it"
        );
        assert!(Config::default().redis_url(" ").validate().is_err());
        assert!(Config::default().jwt_public_key_pem("").validate().is_err());
        let c = Config::default().max_message_chars(10).unwrap();
        assert_eq!(c.max_message_chars, 10);
    }

    #[test]
    fn every_name_finds_its_setting() {
        assert_eq!(
            find("rateLimitPerSecond").map(|s| s.name),
            Some("rate_limit")
        );
        assert_eq!(find("rate_limit_burst").map(|s| s.name), Some("rate_burst"));
        assert_eq!(
            find("cluster_heartbeat_ms").map(|s| s.name),
            Some("cluster_heartbeat")
        );
        assert!(find("nope").is_none());
    }
}
