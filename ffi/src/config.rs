//! `sb_config`: the engine's settings and the host's hooks, set before `sb_engine_new`.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use switchboard::{Config, ConfigError, RoomPolicy};

use crate::args::{self, Handle};
use crate::requests::{
    sb_app_event_callback, sb_auth_callback, sb_document_update_callback, sb_room_access_callback,
    sb_store_callback, HostHooks, Route, Userdata,
};
use crate::result::{sb_result, Error, FfiResult};

/// Default capacity of the event queue.
const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// Engine settings and host hooks (opaque). Create with `sb_config_new`, set what you need,
/// pass to `sb_engine_new` (which copies it), free with `sb_config_free`.
///
/// Not thread-safe: use one configuration from one thread at a time.
#[allow(non_camel_case_types)]
pub struct sb_config {
    pub(crate) config: Config,
    pub(crate) hooks: HostHooks,
    pub(crate) queue_capacity: usize,
}

impl Handle for sb_config {
    const NAME: &'static str = "sb_config";
}

/// A setter's refusal, naming the setting by its C setter.
pub(crate) fn invalid(e: ConfigError) -> Error {
    let detail =
        switchboard::bindings::settings::describe(&e, switchboard::bindings::settings::Front::C);
    Error::new(sb_result::SB_INVALID_CONFIG, detail)
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Applies a setter, then checks the value right away (the Rust setters only store it, and
/// the engine checks at build): a C setter still refuses a bad value at the call that passed
/// it. On failure the configuration is unchanged. Every setter goes through here, so the
/// configuration before the change passed the same checks and a failure is this value's.
pub(crate) unsafe fn update(
    config: *mut sb_config,
    set: impl FnOnce(Config) -> Result<Config, ConfigError>,
) -> FfiResult {
    let c = sb_config::borrow_mut(config, "config")?;
    let updated = set(c.config.clone()).map_err(invalid)?;
    switchboard::bindings::settings::check_values(&updated).map_err(invalid)?;
    c.config = updated;
    Ok(())
}

/// Creates a configuration with the defaults of the wire contract (ping 25 s, payload 1 MB,
/// 20 messages/s with bursts of 40, open room policy, in-memory history, no JWT key).
///
/// Ownership: the caller owns `*out` and frees it with `sb_config_free`.
/// Thread-safety: callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_config_new(out: *mut *mut sb_config) -> sb_result {
    ffi! {
        let out = args::out(out, "out")?;
        *out = sb_config {
            config: Config::default(),
            hooks: HostHooks::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
        .into_raw();
        Ok(())
    }
}

/// Frees a configuration (NULL is ignored). Engines made from it are not affected.
///
/// Ownership: takes `config`, which must not be used afterwards. Thread-safety: not while
/// another thread uses `config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_free(config: *mut sb_config) {
    ffi!(-> () { drop(sb_config::from_raw(config)) })
}

/// Verifies HS256 tokens with this shared secret: at least 16 bytes (32 random bytes
/// recommended). An empty secret returns `SB_INVALID_ARGUMENT`, a shorter one
/// `SB_INVALID_CONFIG`, both with a last-error message naming the minimum.
///
/// Ownership: `secret` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwt_secret(
    config: *mut sb_config,
    secret: *const c_char,
) -> sb_result {
    ffi! {
        let secret = args::name(secret, "secret")?.to_owned();
        update(config, |c| {
            // Refused here already, not only by `sb_engine_new`: the error points at this call.
            switchboard::bindings::settings::check_jwt_secret(&secret)?;
            Ok(c.jwt_secret(secret))
        })
    }
}

/// Verifies RS256/ES256 tokens with this PEM public key (checked by `sb_engine_new`).
///
/// Ownership: `pem` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwt_public_key_pem(
    config: *mut sb_config,
    pem: *const c_char,
) -> sb_result {
    ffi! {
        let pem = args::name(pem, "pem")?.to_owned();
        update(config, |c| Ok(c.jwt_public_key_pem(pem)))
    }
}

/// Sets the room policy for tokens without a `rooms` claim: `"open"` (default: any room) or
/// `"claims"` (only rooms the token lists). Not used when a room-access hook is set.
///
/// Ownership: `policy` is borrowed. Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_room_policy(
    config: *mut sb_config,
    policy: *const c_char,
) -> sb_result {
    ffi! {
        let policy = args::text(policy, "policy")?.parse::<RoomPolicy>().map_err(invalid)?;
        update(config, |c| Ok(c.room_policy(policy)))
    }
}

/// Sets the time between server pings, in milliseconds (> 0; default 25000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_ping_interval_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.ping_interval(ms(milliseconds)))) }
}

/// Sets how long to wait for a pong before closing, in milliseconds (> 0; default 20000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_ping_timeout_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.ping_timeout(ms(milliseconds)))) }
}

/// Sets the largest accepted payload in bytes (>= 128; default 1000000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_max_payload(
    config: *mut sb_config,
    bytes: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.max_payload(bytes))) }
}

/// Allows browsers from this origin (e.g. `"https://app.example"`); call once per origin.
/// Without any, every origin may connect.
///
/// Ownership: `origin` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_add_cors_origin(
    config: *mut sb_config,
    origin: *const c_char,
) -> sb_result {
    ffi! {
        let origin = args::name(origin, "origin")?.to_owned();
        update(config, |c| {
            let mut origins = c.cors_origins.clone();
            origins.push(origin);
            Ok(c.cors_origins(origins))
        })
    }
}

/// Sets the per-connection rate limit: `per_second` sustained requests (0 turns it off) with
/// bursts of `burst` (>= 1 when on). Defaults 20 and 40.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_rate_limit(
    config: *mut sb_config,
    per_second: u32,
    burst: u32,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.rate_limit(per_second, burst))) }
}

/// Sets the outbound queue limits per connection: frames (>= 16) and bytes (>= 65536); a
/// client past either is disconnected as a slow reader. Defaults 1024 and 4 MiB.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_outbound_queue(
    config: *mut sb_config,
    frames: usize,
    bytes: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.outbound_queue(frames, bytes))) }
}

/// Sets how long a typing indicator lasts without a stop, in milliseconds (> 0; default
/// 5000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_typing_timeout_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.typing_timeout(ms(milliseconds)))) }
}

/// Sets how long a dropped connection may come back and recover its rooms and missed
/// messages, in milliseconds (0 turns recovery off; default 120000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_recovery_window_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.recovery_window(ms(milliseconds)))) }
}

/// Sets how long a dropped connection still counts in presence, in milliseconds (default
/// 2000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_presence_grace_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.presence_grace(ms(milliseconds)))) }
}

/// Keeps history in an embedded store under this directory (created if missing) instead
/// of memory.
///
/// Ownership: `dir` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_data_dir(
    config: *mut sb_config,
    dir: *const c_char,
) -> sb_result {
    ffi! {
        let dir = args::name(dir, "dir")?.to_owned();
        update(config, |c| Ok(c.data_dir(dir)))
    }
}

/// Joins a cluster through this Redis URL: `redis://host:port/db` for one Redis, or
/// `redis+cluster://host:port,host:port` for a Redis Cluster (its seed nodes; optional
/// `user:password@` before them). A malformed URL fails `sb_engine_new`.
///
/// Ownership: `url` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_redis_url(
    config: *mut sb_config,
    url: *const c_char,
) -> sb_result {
    ffi! {
        let url = args::name(url, "url")?.to_owned();
        update(config, |c| Ok(c.redis_url(url)))
    }
}

/// Sets the time between cluster heartbeats in milliseconds (>= 100; default 5000). A node
/// silent for three heartbeats is dead: the others remove its users from presence.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_cluster_heartbeat_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.cluster_heartbeat(ms(milliseconds)))) }
}

/// Turns on the server HTTP API under `/api/` (publish, notify, presence, rooms, disconnect),
/// guarded by this key: requests carry `Authorization: Bearer <key>`. Without a key (the
/// default) the API answers 404.
///
/// Ownership: `key` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_api_key(
    config: *mut sb_config,
    key: *const c_char,
) -> sb_result {
    ffi! {
        let key = args::name(key, "key")?.to_owned();
        update(config, |c| Ok(c.api_key(key)))
    }
}

/// Serves HTTPS and WSS on `sb_engine_listen` with the PEM certificate chain in the file
/// `cert_path` (the server's certificate first, then intermediates) and its unencrypted PEM
/// private key in `key_path` (TLS 1.2 and 1.3, rustls; no OpenSSL). The files are read and
/// checked by `sb_engine_new`, which returns `SB_INVALID_CONFIG` with a last-error message
/// naming the file when one cannot be read, holds no certificate or key, or the key is not the
/// certificate's. Connections handed over with `sb_engine_adopt` stay plain HTTP.
///
/// Returns `SB_NULL_ARGUMENT` for a NULL path, `SB_INVALID_ARGUMENT` for an empty one.
///
/// Ownership: both paths are borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_tls(
    config: *mut sb_config,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> sb_result {
    ffi! {
        let cert = args::name(cert_path, "cert_path")?.to_owned();
        let key = args::name(key_path, "key_path")?.to_owned();
        update(config, |c| Ok(c.tls_files(cert, key)))
    }
}

/// Sets the time between `:ping` comments on server-sent-event streams (`/events`), which keep
/// proxies from closing idle streams, in milliseconds (> 0; default 30000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_sse_ping_interval_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.sse_ping_interval(ms(milliseconds)))) }
}

/// Sets how long a collaborative document without connections stays in memory before it is
/// stored and unloaded, in milliseconds (> 0; default 300000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_yjs_idle_unload_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.yjs_idle_unload(ms(milliseconds)))) }
}

/// Sets the size limits of collaborative documents, in bytes (each >= 1024): the largest
/// message a client may send (an update, a sync step; default 4 MiB) and the largest document
/// (its encoded state; default 16 MiB). A client past either is disconnected with close code
/// 4413 and a reason naming the limit.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_yjs_limits(
    config: *mut sb_config,
    max_update_bytes: usize,
    max_document_bytes: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.yjs_limits(max_update_bytes, max_document_bytes))) }
}

/// Caps simultaneous connections (0: no cap, the default).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_max_connections(
    config: *mut sb_config,
    n: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.max_connections(n))) }
}

/// Sets the worker threads of the engine's own runtime (>= 1; default one per core).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_worker_threads(
    config: *mut sb_config,
    n: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.worker_threads(n))) }
}

/// Sets how long the engine waits for the host to complete a request, in milliseconds
/// (> 0; default 10000). Past it, a connection is refused ("Authentication timed out"), a
/// join or message or app event gets `INTERNAL`, and the request is no longer pending.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_host_callback_timeout_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.host_callback_timeout(ms(milliseconds)))) }
}

/// Sets how long a client may take to send a request's head or body, in milliseconds (> 0;
/// default 10000). A slower request (a slowloris client) is closed, or answered 408 when
/// its body is late.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_request_timeout_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.request_timeout(ms(milliseconds)))) }
}

/// Sets how long a new connection may take to join a namespace (send its Socket.IO CONNECT),
/// in milliseconds (> 0; default 45000). A connection that does not is closed.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_connect_timeout_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.connect_timeout(ms(milliseconds)))) }
}

/// Sets how long a WebSocket client may take no bytes at all while frames wait for it, in
/// milliseconds (> 0; default 30000); then it is closed as a slow reader.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_send_timeout_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.send_timeout(ms(milliseconds)))) }
}

/// Caps the connections that have not joined a namespace yet (their clients have not
/// authenticated); further handshakes are answered 503. 0 means no cap; default 2000.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_max_pending_connections(
    config: *mut sb_config,
    n: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.max_pending_connections(n))) }
}

/// Sets the largest HTTP request head (request line and headers) in bytes (>= 8192; default
/// 16384). A larger head is answered 431.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_max_header_bytes(
    config: *mut sb_config,
    bytes: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.max_header_bytes(bytes))) }
}

/// Sets how many bytes of events a client may have waiting behind a slow host handler
/// (>= 65536; default 4194304). Past it the connection is not read until the handler
/// catches up; what is queued is dropped when the client leaves.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_max_queued_event_bytes(
    config: *mut sb_config,
    bytes: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.max_queued_event_bytes(bytes))) }
}

/// Sets how long a long-polling session may take to finish its upgrade to WebSocket after
/// the probe, in milliseconds (> 0; default 10000). A stalled upgrade is closed and the
/// session goes on over long-polling.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_upgrade_timeout_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.upgrade_timeout(ms(milliseconds)))) }
}

/// Sets how many requests may wait in the event queue (>= 1; default 4096). Past it, new
/// requests fail at once instead of waiting.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_event_queue_capacity(
    config: *mut sb_config,
    capacity: usize,
) -> sb_result {
    ffi! {
        let c = sb_config::borrow_mut(config, "config")?;
        if capacity == 0 {
            return Err(Error::new(
                sb_result::SB_INVALID_CONFIG,
                "invalid event_queue_capacity: must be at least 1",
            ));
        }
        c.queue_capacity = capacity;
        Ok(())
    }
}

/// Makes authentication the host's, replacing JWT verification: every connecting client —
/// Socket.IO, and collaborative documents at `/yjs/<name>` (their handshake has a `document`
/// field) — becomes a request to `callback` (or, when `callback` is NULL, an `SB_EVENT_AUTH`
/// event for `sb_engine_poll_event`). See `sb_auth_callback`.
///
/// Ownership: `userdata` is passed back to `callback` as is; it must stay valid, and usable
/// from the engine's threads, until `sb_engine_free` of every engine made from this
/// configuration returns. Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_auth_callback(
    config: *mut sb_config,
    callback: sb_auth_callback,
    userdata: *mut c_void,
) -> sb_result {
    ffi! {
        sb_config::borrow_mut(config, "config")?.hooks.auth = Some(Route::new(callback, userdata));
        Ok(())
    }
}

/// Makes room access the host's, replacing the token's `rooms` claim and the room policy:
/// every `joinRoom` (except the user's personal room), and every opening of a collaborative
/// document (as the room `doc:<name>`), becomes a request to `callback` (or, when `callback`
/// is NULL, an `SB_EVENT_ROOM_ACCESS` event). See `sb_room_access_callback`.
///
/// Ownership: as `sb_config_set_auth_callback`. Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_room_access_callback(
    config: *mut sb_config,
    callback: sb_room_access_callback,
    userdata: *mut c_void,
) -> sb_result {
    ffi! {
        sb_config::borrow_mut(config, "config")?.hooks.room_access =
            Some(Route::new(callback, userdata));
        Ok(())
    }
}

/// Makes the host store every chat message before it is delivered: each becomes a request
/// to `callback` (or, when `callback` is NULL, an `SB_EVENT_STORE` event). See
/// `sb_store_callback`.
///
/// Ownership: as `sb_config_set_auth_callback`. Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_store_callback(
    config: *mut sb_config,
    callback: sb_store_callback,
    userdata: *mut c_void,
) -> sb_result {
    ffi! {
        sb_config::borrow_mut(config, "config")?.hooks.store = Some(Route::new(callback, userdata));
        Ok(())
    }
}

/// Registers a client event the host handles itself (e.g. `"presence"`); the chat contract's
/// own events (`joinRoom`, `sendMessage`, ...) and Socket.IO's reserved names (`connect`,
/// `disconnect`, ...) cannot be taken over: they return `SB_INVALID_ARGUMENT` with the reason
/// in `sb_last_error_message()`. Clients sending an event that nobody registered get
/// `INVALID_MESSAGE`.
///
/// Ownership: `event` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_add_app_event(
    config: *mut sb_config,
    event: *const c_char,
) -> sb_result {
    ffi! {
        let event = args::name(event, "event")?.to_owned();
        if let Some(why) = switchboard::chat::app_event_refusal(&event) {
            return Err(Error::new(sb_result::SB_INVALID_ARGUMENT, why));
        }
        sb_config::borrow_mut(config, "config")?.hooks.app_events.insert(event);
        Ok(())
    }
}

/// Sends the registered app events to `callback`; without this call (or with NULL) they
/// arrive as `SB_EVENT_APP` events. See `sb_app_event_callback`.
///
/// Ownership: as `sb_config_set_auth_callback`. Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_app_event_callback(
    config: *mut sb_config,
    callback: sb_app_event_callback,
    userdata: *mut c_void,
) -> sb_result {
    ffi! {
        sb_config::borrow_mut(config, "config")?.hooks.app = Some(Route::new(callback, userdata));
        Ok(())
    }
}

/// Tells the host about every change clients make to a collaborative document: `callback`
/// is called with the document's name and the update (see `sb_document_update_callback`),
/// e.g. to index or audit documents. NULL removes the callback. Documents are stored by the
/// engine either way (under `data_dir`, else in memory).
///
/// Ownership: as `sb_config_set_auth_callback`. Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_document_update_callback(
    config: *mut sb_config,
    callback: sb_document_update_callback,
    userdata: *mut c_void,
) -> sb_result {
    ffi! {
        sb_config::borrow_mut(config, "config")?.hooks.document_update =
            callback.map(|f| (f, Userdata(userdata)));
        Ok(())
    }
}
