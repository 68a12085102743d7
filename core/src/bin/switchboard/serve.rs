//! `switchboard serve`: the standalone server.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use switchboard::bindings::settings::Front;
use switchboard::host::{self, Host};
use switchboard::{Config, Engine, RoomPolicy};

mod file;
pub(crate) use file::load_file;
#[cfg(test)]
pub(crate) use file::{check_file_keys, FileSettings};

/// Arguments of `switchboard serve`. Each may also come from `--config FILE` (TOML, the same
/// names with underscores); flags and environment variables win over the file.
#[derive(Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    host: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one [default: 3000].
    #[arg(long, env = "PORT")]
    port: Option<u16>,
    /// HS256 secret for verifying tokens.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// RS256/ES256 public key for verifying tokens: a PEM file, or the PEM text itself.
    #[arg(long, value_name = "PEM")]
    jwt_public_key: Option<String>,
    /// Room access for tokens without a `rooms` claim: open, or claims (claim required).
    #[arg(long, value_name = "open|claims")]
    room_policy: Option<RoomPolicy>,
    /// Requests per second per connection (0 = off) [default: 20].
    #[arg(long, value_name = "MSGS_PER_S")]
    rate_limit: Option<u32>,
    /// Requests a connection may burst above the rate [default: 40].
    #[arg(long, value_name = "N")]
    rate_burst: Option<u32>,
    /// Redis URL: join a cluster of engine processes (`redis://host:port/db`, or
    /// `redis+cluster://host:port,host:port` for a Redis Cluster's seed nodes).
    #[arg(long, visible_alias = "redis", env = "REDIS_URL", value_name = "URL")]
    redis_url: Option<String>,
    /// Milliseconds between cluster heartbeats; a node silent for three is dead [default: 5000].
    #[arg(long, alias = "cluster-heartbeat-ms", value_name = "MS")]
    cluster_heartbeat: Option<u64>,
    /// Directory for history (kept in memory without it).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Most rooms whose history is cached in memory; the least recently used is evicted
    /// (reloaded from --data-dir, or lost without one) [default: 10000].
    #[arg(long, value_name = "N")]
    history_cache_rooms: Option<usize>,
    /// Most bytes of history cached in memory [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    history_cache_bytes: Option<usize>,
    /// Browser origin allowed to connect, with credentials (repeatable). Without one, any
    /// origin may connect, without credentials (a development default: a warning is logged).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Key guarding the server HTTP API.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Most simultaneous connections (0 = no limit).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Milliseconds between server pings [default: 25000].
    #[arg(long, value_name = "MS")]
    ping_interval: Option<u64>,
    /// Milliseconds to wait for a pong [default: 20000].
    #[arg(long, value_name = "MS")]
    ping_timeout: Option<u64>,
    /// Largest payload in bytes [default: 1000000].
    #[arg(long, value_name = "BYTES")]
    max_payload: Option<usize>,
    /// Milliseconds a client may take to send a request's headers, then its body [default: 10000].
    #[arg(long, value_name = "MS")]
    request_timeout: Option<u64>,
    /// Milliseconds a polling client may take to complete an upgrade to WebSocket [default: 10000].
    #[arg(long, value_name = "MS")]
    upgrade_timeout: Option<u64>,
    /// Milliseconds a new connection may take to send its Socket.IO CONNECT [default: 45000].
    #[arg(long, value_name = "MS")]
    connect_timeout: Option<u64>,
    /// Most connections that have not sent their Socket.IO CONNECT yet; more get 503
    /// (0 = no limit) [default: 2000].
    #[arg(long, value_name = "N")]
    max_pending_connections: Option<usize>,
    /// Milliseconds a WebSocket client may take no bytes while frames wait for it before it is
    /// closed as a slow reader [default: 30000].
    #[arg(long, value_name = "MS")]
    send_timeout: Option<u64>,
    /// Largest HTTP request head in bytes; larger ones get 431 [default: 16384].
    #[arg(long, value_name = "BYTES")]
    max_header_bytes: Option<usize>,
    /// Bytes of events a connection may have waiting behind a slow handler before it is no
    /// longer read from [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    max_queued_event_bytes: Option<usize>,
    /// Milliseconds after which typing stops by itself [default: 5000].
    #[arg(long, value_name = "MS")]
    typing_timeout: Option<u64>,
    /// Milliseconds a dropped connection may take to recover its state (0 = off) [default: 120000].
    #[arg(long, value_name = "MS")]
    recovery_window: Option<u64>,
    /// Most bytes of broadcasts kept for connection state recovery [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    recovery_log_bytes: Option<usize>,
    /// Milliseconds a dropped connection still counts in presence [default: 2000].
    #[arg(long, value_name = "MS")]
    presence_grace: Option<u64>,
    /// Milliseconds between `:ping` comments on idle SSE streams [default: 30000].
    #[arg(long, value_name = "MS")]
    sse_ping_interval: Option<u64>,
    /// Frames queued per connection before it is dropped as a slow reader [default: 1024].
    #[arg(long, value_name = "N")]
    outbound_queue_frames: Option<usize>,
    /// Bytes queued per connection before it is dropped as a slow reader [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    outbound_queue_bytes: Option<usize>,
    /// Worker threads [default: one per core].
    #[arg(long, visible_alias = "workers", value_name = "N")]
    worker_threads: Option<usize>,
    /// Milliseconds a Yjs document without connections stays in memory before it is stored
    /// and unloaded [default: 300000].
    #[arg(long, value_name = "MS")]
    yjs_idle_unload: Option<u64>,
    /// Largest Yjs message a client may send, in bytes [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    yjs_max_update_bytes: Option<usize>,
    /// Largest Yjs document, in bytes [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    yjs_max_document_bytes: Option<usize>,
    /// Largest Yjs awareness state (JSON) of one client id, in bytes [default: 65536].
    #[arg(long, value_name = "BYTES")]
    yjs_max_awareness_bytes: Option<usize>,
    /// Most Yjs awareness client ids one connection may set states for [default: 16].
    #[arg(long, value_name = "N")]
    yjs_max_awareness_clients: Option<usize>,
    /// Milliseconds between WebSocket pings on Yjs connections [default: 30000].
    #[arg(long, value_name = "MS")]
    yjs_ping_interval: Option<u64>,
    /// PEM certificate chain: serve HTTPS and WSS (with --tls-key). SIGHUP reloads both files.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Milliseconds a connection may stay over its rate limit before it is disconnected
    /// [default: 5000].
    #[arg(long, value_name = "MS")]
    flood_disconnect_after: Option<u64>,
    /// Messages kept per room in history [default: 1000].
    #[arg(long, value_name = "N")]
    history_limit: Option<usize>,
    /// Longest message text in characters [default: 4000].
    #[arg(long, value_name = "N")]
    max_message_chars: Option<usize>,
    /// Largest `signal` data in bytes [default: 65536].
    #[arg(long, value_name = "BYTES")]
    max_signal_bytes: Option<usize>,
    /// Most rooms one connection may be in [default: 100].
    #[arg(long, value_name = "N")]
    max_rooms_per_connection: Option<usize>,
    /// Milliseconds a changed Yjs document must be quiet before it is stored [default: 2000].
    #[arg(long, value_name = "MS")]
    yjs_store_debounce: Option<u64>,
    /// Milliseconds after its first unstored change a Yjs document is stored at the latest
    /// [default: 10000].
    #[arg(long, value_name = "MS")]
    yjs_store_max_delay: Option<u64>,
    /// TOML file with any of these settings.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Verify tokens with the keys an identity provider publishes at this JWKS URL
    /// (https://, or http:// to a loopback host).
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// Extra PEM CA certificate(s) trusted for --jwks-url (a private CA).
    #[arg(long, value_name = "FILE")]
    jwks_ca_file: Option<PathBuf>,
    /// Shortest time between JWKS fetches for tokens with an unknown `kid` [default: 10000].
    #[arg(long, value_name = "MS")]
    jwks_refetch_interval: Option<u64>,
    /// Accepted token issuer (`iss`); repeatable or comma-separated [default: any].
    #[arg(long = "jwt-issuer", value_name = "ISS", value_delimiter = ',')]
    jwt_issuers: Vec<String>,
    /// Accepted token audience (`aud`); repeatable or comma-separated [default: not checked].
    #[arg(long = "jwt-audience", value_name = "AUD", value_delimiter = ',')]
    jwt_audiences: Vec<String>,
    /// Seconds of clock skew allowed for `exp` and `nbf` [default: 0].
    #[arg(long, value_name = "SECS")]
    jwt_leeway: Option<u64>,
    /// Accept tokens without `exp` (they never expire).
    #[arg(long)]
    jwt_allow_no_exp: bool,
    /// The claim that is the user id [default: sub].
    #[arg(long, value_name = "CLAIM")]
    jwt_user_id_claim: Option<String>,
    /// The claim that is the display name [default: username].
    #[arg(long, value_name = "CLAIM")]
    jwt_username_claim: Option<String>,
    /// Seconds before a token's `exp` its Socket.IO connection gets `tokenExpiring`
    /// (at most half the token's remaining lifetime) [default: 30].
    #[arg(long, value_name = "SECS")]
    token_expiry_warning: Option<u64>,
    /// Keep connections open past their token's `exp`.
    #[arg(long)]
    allow_expired_connections: bool,
    /// Path prefix of every endpoint, e.g. /rt for /rt/socket.io/, /rt/events, /rt/healthz
    /// [default: none].
    #[arg(long, value_name = "PATH")]
    prefix: Option<String>,
    /// Serve the SSE stream at /events [default: true].
    #[arg(long, value_name = "BOOL")]
    sse: Option<bool>,
    /// Serve the server HTTP API at /api/ (with --api-key) [default: true].
    #[arg(long, value_name = "BOOL")]
    api: Option<bool>,
    /// Serve Yjs documents at /yjs/ [default: true].
    #[arg(long, value_name = "BOOL")]
    yjs: Option<bool>,
    /// Serve the plain-WebSocket endpoint at /ws [default: true].
    #[arg(long, value_name = "BOOL")]
    ws: Option<bool>,
    /// Serve /metrics [default: true].
    #[arg(long, value_name = "BOOL")]
    metrics: Option<bool>,
    /// Serve /healthz [default: true].
    #[arg(long, value_name = "BOOL")]
    healthz: Option<bool>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Turns the arguments into the engine's configuration.
pub(crate) fn config_from(args: &ServeArgs) -> Result<Config, String> {
    let e = |e: switchboard::ConfigError| switchboard::bindings::settings::describe(&e, Front::Cli);
    let mut config = Config::default();
    if args.jwt_secret.as_ref().is_some_and(|s| s.is_empty()) {
        return Err(
            "`--jwt-secret` (or SWITCHBOARD_JWT_SECRET) is empty; set it or remove it".into(),
        );
    }
    config = match (&args.jwt_secret, &args.jwt_public_key, &args.jwks_url) {
        (Some(secret), None, None) => {
            switchboard::bindings::settings::check_jwt_secret(secret)
                .map_err(|err| format!("--jwt-secret (or SWITCHBOARD_JWT_SECRET): {err}"))?;
            config.jwt_secret(secret.clone())
        }
        (None, Some(key), None) => {
            let pem = if key.trim_start().starts_with("-----BEGIN") {
                key.clone()
            } else {
                std::fs::read_to_string(key).map_err(|err| format!("cannot read --jwt-public-key file {key}: {err}"))?
            };
            config.jwt_public_key_pem(pem)
        }
        (None, None, Some(url)) => config.jwks_url(url.clone()),
        (None, None, None) => {
            return Err(
                "no way to verify tokens: pass --jwt-secret SECRET (or set SWITCHBOARD_JWT_SECRET), --jwt-public-key PEM or --jwks-url URL"
                    .into(),
            )
        }
        _ => return Err("give one of --jwt-secret, --jwt-public-key and --jwks-url, not several".into()),
    };
    config = identity_settings(config, args)?;
    if let Some(p) = args.room_policy {
        config = config.room_policy(p);
    }
    let rate = args.rate_limit.unwrap_or(config.rate_limit_per_second);
    let burst = args.rate_burst.unwrap_or(if args.rate_limit.is_some() {
        rate.max(1) * 2
    } else {
        config.rate_limit_burst
    });
    config = config.rate_limit(rate, burst);
    if let Some(url) = &args.redis_url {
        config = config.redis_url(url.clone());
    }
    if let Some(dir) = &args.data_dir {
        config = config.data_dir(dir.clone());
    }
    if args.history_cache_rooms.is_some() || args.history_cache_bytes.is_some() {
        let rooms = args
            .history_cache_rooms
            .unwrap_or(config.history_cache_rooms);
        let bytes = args
            .history_cache_bytes
            .unwrap_or(config.history_cache_bytes);
        config = config.history_cache(rooms, bytes);
    }
    config = config.cors_origins(args.cors_origins.clone());
    if let Some(key) = &args.api_key {
        config = config.api_key(key.clone());
    }
    if let Some(n) = args.max_connections {
        config = config.max_connections(n);
    }
    if let Some(n) = args.ping_interval {
        config = config.ping_interval(ms(n));
    }
    if let Some(n) = args.ping_timeout {
        config = config.ping_timeout(ms(n));
    }
    if let Some(n) = args.max_payload {
        config = config.max_payload(n);
    }
    if let Some(n) = args.typing_timeout {
        config = config.typing_timeout(ms(n));
    }
    if let Some(n) = args.request_timeout {
        config = config.request_timeout(ms(n));
    }
    if let Some(n) = args.upgrade_timeout {
        config = config.upgrade_timeout(ms(n));
    }
    if let Some(n) = args.connect_timeout {
        config = config.connect_timeout(ms(n));
    }
    if let Some(n) = args.max_pending_connections {
        config = config.max_pending_connections(n);
    }
    if let Some(n) = args.send_timeout {
        config = config.send_timeout(ms(n));
    }
    if let Some(n) = args.max_header_bytes {
        config = config.max_header_bytes(n);
    }
    if let Some(n) = args.max_queued_event_bytes {
        config = config.max_queued_event_bytes(n);
    }
    if let Some(n) = args.recovery_window {
        config = config.recovery_window(ms(n));
    }
    if let Some(n) = args.recovery_log_bytes {
        config = config.recovery_log_bytes(n);
    }
    if let Some(n) = args.presence_grace {
        config = config.presence_grace(ms(n));
    }
    if let Some(n) = args.sse_ping_interval {
        config = config.sse_ping_interval(ms(n));
    }
    if let Some(n) = args.cluster_heartbeat {
        config = config.cluster_heartbeat(ms(n));
    }
    if args.outbound_queue_frames.is_some() || args.outbound_queue_bytes.is_some() {
        let frames = args
            .outbound_queue_frames
            .unwrap_or(config.outbound_queue_frames);
        let bytes = args
            .outbound_queue_bytes
            .unwrap_or(config.outbound_queue_bytes);
        config = config.outbound_queue(frames, bytes);
    }
    if let Some(n) = args.worker_threads {
        config = config.worker_threads(n);
    }
    if let Some(n) = args.flood_disconnect_after {
        config = config.flood_disconnect_after(ms(n));
    }
    if let Some(n) = args.history_limit {
        config = config.history_limit(n);
    }
    if let Some(n) = args.max_message_chars {
        config = config.max_message_chars(n);
    }
    if let Some(n) = args.max_signal_bytes {
        config = config.max_signal_bytes(n);
    }
    if let Some(n) = args.max_rooms_per_connection {
        config = config.max_rooms_per_connection(n);
    }
    if args.yjs_store_debounce.is_some() || args.yjs_store_max_delay.is_some() {
        let debounce = args
            .yjs_store_debounce
            .map_or(config.yjs_store_debounce, ms);
        let max_delay = args
            .yjs_store_max_delay
            .map_or(config.yjs_store_max_delay, ms);
        config = config.yjs_store_debounce(debounce, max_delay);
    }
    if let Some(n) = args.yjs_idle_unload {
        config = config.yjs_idle_unload(ms(n));
    }
    if args.yjs_max_update_bytes.is_some() || args.yjs_max_document_bytes.is_some() {
        let update = args
            .yjs_max_update_bytes
            .unwrap_or(config.yjs_max_update_bytes);
        let document = args
            .yjs_max_document_bytes
            .unwrap_or(config.yjs_max_document_bytes);
        config = config.yjs_limits(update, document);
    }
    if args.yjs_max_awareness_bytes.is_some() || args.yjs_max_awareness_clients.is_some() {
        let bytes = args
            .yjs_max_awareness_bytes
            .unwrap_or(config.yjs_max_awareness_bytes);
        let clients = args
            .yjs_max_awareness_clients
            .unwrap_or(config.yjs_max_awareness_clients);
        config = config.yjs_awareness_limits(bytes, clients);
    }
    if let Some(n) = args.yjs_ping_interval {
        config = config.yjs_ping_interval(ms(n));
    }
    if let Some(prefix) = &args.prefix {
        config = config.prefix(prefix.clone());
    }
    let on = |flag: Option<bool>| flag.unwrap_or(true);
    config = config
        .sse(on(args.sse))
        .api(on(args.api))
        .yjs(on(args.yjs))
        .metrics(on(args.metrics))
        .healthz(on(args.healthz))
        .ws(on(args.ws));
    config = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => config.tls_files(cert, key),
        (None, None) => config,
        (Some(_), None) => {
            return Err("--tls-cert needs --tls-key (the certificate's private key)".into())
        }
        (None, Some(_)) => {
            return Err("--tls-key needs --tls-cert (the certificate it belongs to)".into())
        }
    };
    config.validate().map_err(e)?;
    Ok(config)
}

/// The identity settings beside the key: JWKS CA and interval, issuer, audience, leeway,
/// claim names, and how connections are bound to their token's expiry.
fn identity_settings(mut config: Config, args: &ServeArgs) -> Result<Config, String> {
    let e = |e: switchboard::ConfigError| e.to_string();
    if let Some(path) = &args.jwks_ca_file {
        config = config.jwks_ca_file(path.clone());
    }
    if let Some(n) = args.jwks_refetch_interval {
        config = config.jwks_refetch_interval(ms(n));
    }
    config = config
        .jwt_issuers(args.jwt_issuers.clone())
        .jwt_audiences(args.jwt_audiences.clone())
        .jwt_allow_no_exp(args.jwt_allow_no_exp)
        .allow_expired_connections(args.allow_expired_connections);
    if let Some(n) = args.jwt_leeway {
        config = config.jwt_leeway(Duration::from_secs(n));
    }
    if let Some(claim) = &args.jwt_user_id_claim {
        config = config.jwt_user_id_claim(claim.clone());
    }
    if let Some(claim) = &args.jwt_username_claim {
        config = config.jwt_username_claim(claim.clone());
    }
    if let Some(n) = args.token_expiry_warning {
        config = config.token_expiry_warning(Duration::from_secs(n));
    }
    // Checked here, not only by `validate`: these errors keep their plain wording
    // ("invalid jwt_leeway: …"), as before the setters stopped checking.
    switchboard::bindings::settings::check_identity(&config).map_err(e)?;
    Ok(config)
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(mut args: ServeArgs) -> Result<(), String> {
    load_file(&mut args)?;
    init_tracing();
    let config = config_from(&args)?;
    let host = args.host.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let port = args.port.unwrap_or(3000);
    // The product the bindings ship, with the built-in behaviour for every hook.
    let engine = Host::start(config, host::Hooks::default())
        .map_err(|e| e.to_string())?
        .engine()
        .clone();
    let listening = engine
        .listen(SocketAddr::new(host, port))
        .map_err(|e| e.to_string())?;
    println!("switchboard listening on {listening}");
    let _ = std::io::stdout().flush();

    engine.handle().block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        // Without TLS, SIGHUP keeps its default meaning (the process ends), as before.
        let mut hup = if listening.tls {
            signal(SignalKind::hangup()).ok()
        } else {
            None
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = recv(&mut term) => break,
                _ = recv(&mut hup) => reload_tls(&engine),
            }
        }
    });
    tracing::info!("shutting down");
    engine.shutdown(Duration::from_secs(2));
    Ok(())
}

/// The next delivery of a signal; never, when it could not be registered.
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// SIGHUP: serve renewed certificate files to new connections; open ones keep theirs.
fn reload_tls(engine: &Engine) {
    match engine.reload_tls() {
        Ok(()) => tracing::info!("TLS certificate reloaded"),
        Err(e) => {
            tracing::warn!(error = %e, "TLS certificate not reloaded; serving the previous one")
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("switchboard=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
