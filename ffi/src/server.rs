//! The Socket.IO-like server API in C: a connection callback (connects and disconnects, with
//! Socket.IO's reasons) and broadcasts to several rooms minus others.

use std::ffi::{c_char, c_void, CString};

use futures_util::future::BoxFuture;
use switchboard::host;

use crate::args::{self, Handle};
use crate::config::sb_config;
use crate::engine::sb_engine;
use crate::requests::Userdata;
use crate::result::{sb_result, Error};

/// Told about every socket that connects (`reason` NULL) or disconnects (`reason` is
/// Socket.IO's: `"transport close"`, `"ping timeout"`, `"client namespace disconnect"`,
/// `"server namespace disconnect"`, …). `socket_json` is `{"id", "user", "rooms"}` (at a
/// disconnect, the rooms it was in).
///
/// Called on the engine's threads, possibly several at once: return quickly (hand work to
/// your own thread); the socket's events wait for the connect call. Both strings are
/// borrowed for the duration of the call.
#[allow(non_camel_case_types)]
pub type sb_connection_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, socket_json: *const c_char, reason: *const c_char),
>;

pub(crate) type ConnectionFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char);

/// The connection callback as configured.
pub(crate) type ConnectionHook = Option<(ConnectionFn, Userdata)>;

/// Calls the host with a socket's JSON and the reason (NULL at connect).
fn call(hook: (ConnectionFn, Userdata), socket: &serde_json::Value, reason: Option<&str>) {
    let Ok(socket) = CString::new(socket.to_string()) else {
        return;
    };
    let reason = reason.and_then(|r| CString::new(r).ok());
    let (f, userdata) = hook;
    // SAFETY: the host gave this function for these arguments; both strings outlive the call.
    unsafe {
        f(
            userdata.0,
            socket.as_ptr(),
            reason.as_ref().map_or(std::ptr::null(), |r| r.as_ptr()),
        )
    };
}

/// The host's connection callback as the product's [`host::Lifecycle`].
pub(crate) struct Connections(pub ConnectionFn, pub Userdata);

impl host::Lifecycle for Connections {
    fn connected(&self, socket: serde_json::Value) -> BoxFuture<'static, ()> {
        call((self.0, self.1), &socket, None);
        Box::pin(async {})
    }

    fn disconnected(&self, socket: serde_json::Value, reason: &str) {
        call((self.0, self.1), &socket, Some(reason));
    }
}

/// Calls `callback` for every socket that connects and disconnects (see
/// `sb_connection_callback`). NULL removes it.
///
/// Ownership: `userdata` is the host's; it must stay valid until `sb_engine_free` returns
/// and be usable from any thread. Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_connection_callback(
    config: *mut sb_config,
    callback: sb_connection_callback,
    userdata: *mut c_void,
) -> sb_result {
    ffi! {
        sb_config::borrow_mut(config, "config")?.hooks.connection =
            callback.map(|f| (f, Userdata(userdata)));
        Ok(())
    }
}

/// The room names of a JSON array of strings (`"[\"a\",\"b\"]"`).
unsafe fn room_list(json: *const c_char, arg: &str) -> Result<Vec<String>, Error> {
    let value = args::json(json, arg)?;
    let invalid = || {
        Error::new(
            sb_result::SB_INVALID_ARGUMENT,
            format!("`{arg}` must be a JSON array of room names"),
        )
    };
    value
        .as_array()
        .ok_or_else(invalid)?
        .iter()
        .map(|v| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(invalid)
        })
        .collect()
}

/// Emits `event` with the JSON argument `json` to every socket in any of the rooms of
/// `rooms_json` (a JSON array of names) but those in any room of `except_json` (a JSON array,
/// or NULL for none), each socket once, across the cluster with Redis; encoded once. Runs on
/// the engine's threads: the call only hands the data over.
///
/// Returns `SB_INVALID_JSON` for malformed JSON, `SB_INVALID_ARGUMENT` when a list is not an
/// array of non-empty strings, `SB_ENGINE_CLOSED` after shutdown.
///
/// Ownership: the strings are borrowed. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_emit_to_rooms(
    engine: *mut sb_engine,
    rooms_json: *const c_char,
    except_json: *const c_char,
    event: *const c_char,
    json: *const c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let rooms = room_list(rooms_json, "rooms_json")?;
        let except = if except_json.is_null() {
            Vec::new()
        } else {
            room_list(except_json, "except_json")?
        };
        let event = args::name(event, "event")?.to_owned();
        let data = args::json(json, "json")?;
        e.live()?.spawn_emit_to_rooms(rooms, except, event, data);
        Ok(())
    }
}
