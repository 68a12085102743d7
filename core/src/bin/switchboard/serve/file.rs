//! `switchboard serve --config FILE`: the TOML file, its keys (the settings table's names),
//! and how its values fill the arguments that flags and the environment did not set.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use switchboard::RoomPolicy;

use super::ServeArgs;

/// The settings a `--config` file may hold.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    host: Option<IpAddr>,
    port: Option<u16>,
    jwt_secret: Option<String>,
    jwt_public_key: Option<String>,
    room_policy: Option<RoomPolicy>,
    rate_limit: Option<u32>,
    rate_burst: Option<u32>,
    #[serde(alias = "redis")]
    redis_url: Option<String>,
    data_dir: Option<PathBuf>,
    history_cache_rooms: Option<usize>,
    history_cache_bytes: Option<usize>,
    #[serde(default)]
    cors_origins: Vec<String>,
    api_key: Option<String>,
    max_connections: Option<usize>,
    ping_interval: Option<u64>,
    ping_timeout: Option<u64>,
    max_payload: Option<usize>,
    typing_timeout: Option<u64>,
    request_timeout: Option<u64>,
    upgrade_timeout: Option<u64>,
    connect_timeout: Option<u64>,
    max_pending_connections: Option<usize>,
    send_timeout: Option<u64>,
    max_header_bytes: Option<usize>,
    max_queued_event_bytes: Option<usize>,
    recovery_window: Option<u64>,
    recovery_log_bytes: Option<usize>,
    presence_grace: Option<u64>,
    sse_ping_interval: Option<u64>,
    #[serde(alias = "cluster_heartbeat_ms")]
    cluster_heartbeat: Option<u64>,
    outbound_queue_frames: Option<usize>,
    outbound_queue_bytes: Option<usize>,
    #[serde(alias = "workers")]
    worker_threads: Option<usize>,
    yjs_idle_unload: Option<u64>,
    yjs_max_update_bytes: Option<usize>,
    yjs_max_document_bytes: Option<usize>,
    yjs_max_awareness_bytes: Option<usize>,
    yjs_max_awareness_clients: Option<usize>,
    yjs_ping_interval: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    jwks_url: Option<String>,
    jwks_ca_file: Option<PathBuf>,
    jwks_refetch_interval: Option<u64>,
    #[serde(default)]
    jwt_issuers: Vec<String>,
    #[serde(default)]
    jwt_audiences: Vec<String>,
    jwt_leeway: Option<u64>,
    jwt_allow_no_exp: Option<bool>,
    jwt_user_id_claim: Option<String>,
    jwt_username_claim: Option<String>,
    token_expiry_warning: Option<u64>,
    allow_expired_connections: Option<bool>,
    flood_disconnect_after: Option<u64>,
    history_limit: Option<usize>,
    max_message_chars: Option<usize>,
    max_signal_bytes: Option<usize>,
    max_rooms_per_connection: Option<usize>,
    yjs_store_debounce: Option<u64>,
    yjs_store_max_delay: Option<u64>,
    prefix: Option<String>,
    sse: Option<bool>,
    api: Option<bool>,
    yjs: Option<bool>,
    metrics: Option<bool>,
    healthz: Option<bool>,
    ws: Option<bool>,
}

macro_rules! merge {
    ($args:ident, $file:ident, $($field:ident),*) => {
        $( if $args.$field.is_none() { $args.$field = $file.$field; } )*
    };
}

pub(crate) fn load_file(args: &mut ServeArgs) -> Result<(), String> {
    let Some(path) = &args.config else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    check_file_keys(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let file: FileSettings =
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    merge!(
        args,
        file,
        host,
        port,
        jwt_secret,
        jwt_public_key,
        room_policy,
        rate_limit,
        rate_burst,
        redis_url,
        data_dir,
        history_cache_rooms,
        history_cache_bytes,
        api_key,
        max_connections,
        ping_interval,
        ping_timeout,
        max_payload,
        typing_timeout,
        request_timeout,
        upgrade_timeout,
        connect_timeout,
        max_pending_connections,
        send_timeout,
        max_header_bytes,
        max_queued_event_bytes,
        recovery_window,
        recovery_log_bytes,
        presence_grace,
        sse_ping_interval,
        cluster_heartbeat,
        outbound_queue_frames,
        outbound_queue_bytes,
        worker_threads,
        yjs_idle_unload,
        yjs_max_update_bytes,
        yjs_max_document_bytes,
        yjs_max_awareness_bytes,
        yjs_max_awareness_clients,
        yjs_ping_interval,
        tls_cert,
        tls_key,
        jwks_url,
        jwks_ca_file,
        jwks_refetch_interval,
        jwt_leeway,
        jwt_user_id_claim,
        jwt_username_claim,
        token_expiry_warning,
        flood_disconnect_after,
        history_limit,
        max_message_chars,
        max_signal_bytes,
        max_rooms_per_connection,
        yjs_store_debounce,
        yjs_store_max_delay,
        prefix,
        sse,
        api,
        yjs,
        metrics,
        healthz,
        ws
    );
    if args.cors_origins.is_empty() {
        args.cors_origins = file.cors_origins;
    }
    if args.jwt_issuers.is_empty() {
        args.jwt_issuers = file.jwt_issuers;
    }
    if args.jwt_audiences.is_empty() {
        args.jwt_audiences = file.jwt_audiences;
    }
    args.jwt_allow_no_exp |= file.jwt_allow_no_exp.unwrap_or(false);
    args.allow_expired_connections |= file.allow_expired_connections.unwrap_or(false);
    Ok(())
}

/// The keys a `--config` file may hold besides the settings of the engine's table.
const LISTEN_KEYS: [&str; 2] = ["host", "port"];

/// Every key a `--config` file may hold: the table's names and their older spellings.
fn file_keys() -> impl Iterator<Item = &'static str> {
    let settings = switchboard::bindings::settings::SETTINGS.iter();
    LISTEN_KEYS
        .into_iter()
        .chain(settings.clone().map(|s| s.name))
        .chain(
            settings
                .flat_map(|s| s.aliases.iter().copied())
                .filter(|a| {
                    // Node-only (camelCase) and CLI-only (kebab) spellings are not TOML keys.
                    a.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }),
        )
}

/// Refuses an unknown key with the nearest valid one ("did you mean"), which serde's own
/// `deny_unknown_fields` message does not offer.
pub(crate) fn check_file_keys(text: &str) -> Result<(), String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    for key in table.keys() {
        if !file_keys().any(|k| k == key) {
            let canonical = LISTEN_KEYS.into_iter().chain(
                switchboard::bindings::settings::SETTINGS
                    .iter()
                    .map(|s| s.name),
            );
            return Err(switchboard::bindings::settings::unknown_message(
                "key", key, canonical,
            ));
        }
    }
    Ok(())
}
