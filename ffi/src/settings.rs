//! The C setters added with the settings table (`switchboard::bindings::settings`): every engine
//! setting has one, named `sb_config_set_<setting>` (`_ms` for milliseconds). Written out,
//! not made by a macro: cbindgen reads the source as it is.

use crate::config::{ms, sb_config, update};
use crate::result::sb_result;

/// Sets how long a connection may stay over its rate limit before it is disconnected, in
/// milliseconds (> 0; default 5000).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_flood_disconnect_after_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.flood_disconnect_after(ms(milliseconds)))) }
}

/// Sets the bytes of broadcasts kept for connection state recovery (>= 65536; default
/// 16 MiB).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_recovery_log_bytes(
    config: *mut sb_config,
    bytes: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.recovery_log_bytes(bytes))) }
}

/// Sets the messages kept per room in history (>= 1; default 1000).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_history_limit(
    config: *mut sb_config,
    messages: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.history_limit(messages))) }
}

/// Sets the most rooms whose history is cached in memory (>= 1; default 10000).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_history_cache_rooms(
    config: *mut sb_config,
    rooms: usize,
) -> sb_result {
    ffi! {
        update(config, |c| {
            let bytes = c.history_cache_bytes;
            Ok(c.history_cache(rooms, bytes))
        })
    }
}

/// Sets the most bytes of history cached in memory (>= 1 MiB; default 256 MiB).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_history_cache_bytes(
    config: *mut sb_config,
    bytes: usize,
) -> sb_result {
    ffi! {
        update(config, |c| {
            let rooms = c.history_cache_rooms;
            Ok(c.history_cache(rooms, bytes))
        })
    }
}

/// Sets the longest message text in characters (>= 1; default 4000).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_max_message_chars(
    config: *mut sb_config,
    chars: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.max_message_chars(chars))) }
}

/// Sets the largest `signal` data in bytes (>= 1024; default 65536).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_max_signal_bytes(
    config: *mut sb_config,
    bytes: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.max_signal_bytes(bytes))) }
}

/// Sets the most rooms one connection may be in (>= 1; default 100).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_max_rooms_per_connection(
    config: *mut sb_config,
    rooms: usize,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.max_rooms_per_connection(rooms))) }
}

/// Sets how long a changed Yjs document must be quiet before it is stored, in
/// milliseconds (<= the max delay; default 2000).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_yjs_store_debounce_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! {
        update(config, |c| {
            let max_delay = c.yjs_store_max_delay;
            Ok(c.yjs_store_debounce(ms(milliseconds), max_delay))
        })
    }
}

/// Sets how long after its first unstored change a Yjs document is stored at the latest,
/// in milliseconds (>= the debounce; default 10000).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_yjs_store_max_delay_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! {
        update(config, |c| {
            let debounce = c.yjs_store_debounce;
            Ok(c.yjs_store_debounce(debounce, ms(milliseconds)))
        })
    }
}

/// Sets the largest Yjs awareness state of one client id, in bytes (>= 64; default 65536).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_yjs_max_awareness_bytes(
    config: *mut sb_config,
    bytes: usize,
) -> sb_result {
    ffi! {
        update(config, |c| {
            let clients = c.yjs_max_awareness_clients;
            Ok(c.yjs_awareness_limits(bytes, clients))
        })
    }
}

/// Sets the most Yjs awareness client ids one connection may set (>= 1; default 16).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_yjs_max_awareness_clients(
    config: *mut sb_config,
    clients: usize,
) -> sb_result {
    ffi! {
        update(config, |c| {
            let bytes = c.yjs_max_awareness_bytes;
            Ok(c.yjs_awareness_limits(bytes, clients))
        })
    }
}

/// Sets the time between WebSocket pings on Yjs connections, in milliseconds (> 0;
/// default 30000).
///
/// Returns `SB_INVALID_CONFIG` (the configuration unchanged) for a value out of range.
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_yjs_ping_interval_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.yjs_ping_interval(ms(milliseconds)))) }
}
