//! `sb_config` settings of where the engine's endpoints live: a path prefix, and which
//! endpoints are served at all.

use std::ffi::c_char;

use crate::args;
use crate::config::{sb_config, update};
use crate::result::sb_result;

/// Serves every endpoint under `prefix` (`"/rt"` → `/rt/socket.io/`, `/rt/events`,
/// `/rt/api/…`, `/rt/yjs/…`, `/rt/metrics`, `/rt/healthz`); `""` or `"/"` is the root (the
/// default). A trailing `/` is dropped. Returns `SB_INVALID_CONFIG` when it does not start
/// with `/` or holds `?`, `#`, `%` or whitespace.
///
/// Ownership: `prefix` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_prefix(
    config: *mut sb_config,
    prefix: *const c_char,
) -> sb_result {
    ffi! {
        let prefix = args::text(prefix, "prefix")?.to_owned();
        update(config, |c| Ok(c.prefix(prefix)))
    }
}

/// Serves the server-sent-event stream (`/events`) or not (default true).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_sse(config: *mut sb_config, on: bool) -> sb_result {
    ffi! { update(config, |c| Ok(c.sse(on))) }
}

/// Serves the server HTTP API (`/api/…`, with `sb_config_set_api_key`) or not (default true).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_api(config: *mut sb_config, on: bool) -> sb_result {
    ffi! { update(config, |c| Ok(c.api(on))) }
}

/// Serves collaborative documents (`/yjs/…`) or not (default true).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_yjs(config: *mut sb_config, on: bool) -> sb_result {
    ffi! { update(config, |c| Ok(c.yjs(on))) }
}

/// Serves `/metrics` (Prometheus text) or not (default true).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_metrics(config: *mut sb_config, on: bool) -> sb_result {
    ffi! { update(config, |c| Ok(c.metrics(on))) }
}

/// Serves `/healthz` or not (default true). It answers `200 {"status":"ok"}`, or `503
/// {"status":"unavailable","reason":…}` while the engine shuts down or, with Redis, once it
/// has been cut off from Redis for longer than a cluster heartbeat.
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_healthz(config: *mut sb_config, on: bool) -> sb_result {
    ffi! { update(config, |c| Ok(c.healthz(on))) }
}

/// Serves the plain-WebSocket endpoint (`/ws`: the chat contract as JSON frames, see
/// docs/websocket-protocol.md) or not (default true).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_ws(config: *mut sb_config, on: bool) -> sb_result {
    ffi! { update(config, |c| Ok(c.ws(on))) }
}
