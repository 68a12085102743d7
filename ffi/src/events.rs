//! The event queue: the alternative to callbacks for hosts that run their own loop.
//!
//! Requests whose kind has no callback (`sb_config_set_auth_callback(config, NULL, NULL)`, …,
//! and app events when no app-event callback is set) wait in a bounded queue
//! (`crossbeam-channel`) until `sb_engine_poll_event` takes them out. When the queue is full,
//! new requests fail at once (a connection is refused, a join or message gets `INTERNAL`)
//! instead of growing memory without bound.

use std::ffi::{c_char, CString};
use std::time::Duration;

use crossbeam_channel::{select, TryRecvError};

use crate::args::{self, Handle};
use crate::engine::sb_engine;
use crate::requests::sb_request_id;
use crate::result::{sb_result, Error};

/// What an `sb_event` asks for.
///
/// | kind | `sb_event_get_name` | `sb_event_get_json` | `sb_event_get_socket_json` | complete with |
/// |---|---|---|---|---|
/// | `SB_EVENT_AUTH` | NULL | handshake (as `sb_auth_callback`) | NULL | `sb_auth_request_accept` / `_refuse` |
/// | `SB_EVENT_ROOM_ACCESS` | room id | user | NULL | `sb_room_request_answer` / `_fail` |
/// | `SB_EVENT_STORE` | NULL | message | NULL | `sb_store_request_done` / `_fail` |
/// | `SB_EVENT_APP` | event name | arguments array | socket | `sb_app_event_ack` / `_fail` |
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum sb_event_kind {
    /// Not an event (what the accessors return for NULL).
    SB_EVENT_NONE = 0,
    /// A client is connecting and the host authenticates.
    SB_EVENT_AUTH = 1,
    /// A user asks to join a room and the host decides.
    SB_EVENT_ROOM_ACCESS = 2,
    /// A chat message waits to be stored by the host.
    SB_EVENT_STORE = 3,
    /// A client sent an event the host registered with `sb_config_add_app_event`.
    SB_EVENT_APP = 4,
}

/// One request taken from the event queue (opaque). Free it with `sb_event_free`; freeing it
/// does not complete its request.
#[allow(non_camel_case_types)]
pub struct sb_event {
    kind: sb_event_kind,
    request: sb_request_id,
    name: Option<CString>,
    json: CString,
    socket: Option<CString>,
}

impl Handle for sb_event {
    const NAME: &'static str = "sb_event";
}

impl sb_event {
    pub(crate) fn new(
        kind: sb_event_kind,
        request: sb_request_id,
        name: Option<CString>,
        json: CString,
        socket: Option<CString>,
    ) -> Self {
        sb_event {
            kind,
            request,
            name,
            json,
            socket,
        }
    }
}

/// Takes the next event out of the engine's queue, waiting up to `timeout_ms` milliseconds
/// for one (0: do not wait; negative: wait until an event arrives or the engine shuts down).
///
/// Returns `SB_OK` with `*out` set; `SB_NO_EVENT` with `*out` set to NULL when none arrived
/// in time; `SB_ENGINE_CLOSED` once the engine is shut down (a call waiting then returns at
/// once). Events still queued at shutdown are dropped with the engine.
///
/// Ownership: the caller owns `*out` and frees it with `sb_event_free`. Thread-safety:
/// callable from any thread, from several at once (each event goes to one of them); do not
/// call it with a non-zero timeout from inside a callback.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_poll_event(
    engine: *mut sb_engine,
    timeout_ms: i32,
    out: *mut *mut sb_event,
) -> sb_result {
    ffi! {
        let engine = sb_engine::borrow(engine, "engine")?;
        let out = args::out(out, "out")?;
        *out = std::ptr::null_mut();
        engine.live()?;
        let closed = || Error::new(sb_result::SB_ENGINE_CLOSED, "the engine is shut down");
        let none = || {
            Error::new(
                sb_result::SB_NO_EVENT,
                format!("no event within {timeout_ms} ms"),
            )
        };
        let (events, wake) = (&engine.events, &engine.wake);
        let event = match timeout_ms {
            0 => match events.try_recv() {
                Ok(e) => e,
                Err(TryRecvError::Empty) => return Err(none()),
                Err(TryRecvError::Disconnected) => return Err(closed()),
            },
            t if t < 0 => select! {
                recv(events) -> e => e.map_err(|_| closed())?,
                recv(wake) -> _ => return Err(closed()),
            },
            t => {
                let timeout = Duration::from_millis(t.unsigned_abs().into());
                select! {
                    recv(events) -> e => e.map_err(|_| closed())?,
                    recv(wake) -> _ => return Err(closed()),
                    default(timeout) => return Err(none()),
                }
            }
        };
        if engine.shared.is_closed() {
            return Err(closed());
        }
        *out = event.into_raw();
        Ok(())
    }
}

/// The kind of an event; `SB_EVENT_NONE` for NULL.
///
/// Ownership: `event` is borrowed. Thread-safety: any thread, while the event is not freed.
#[no_mangle]
pub unsafe extern "C" fn sb_event_get_kind(event: *const sb_event) -> sb_event_kind {
    ffi!(-> sb_event_kind {
        event.as_ref().map_or(sb_event_kind::SB_EVENT_NONE, |e| e.kind)
    })
}

/// The request id to complete (see `sb_event_kind`); 0 for NULL.
///
/// Ownership: `event` is borrowed. Thread-safety: any thread, while the event is not freed.
#[no_mangle]
pub unsafe extern "C" fn sb_event_get_request(event: *const sb_event) -> sb_request_id {
    ffi!(-> sb_request_id { event.as_ref().map_or(0, |e| e.request) })
}

/// The event's name: the room id of a room-access request, the event name of an app event;
/// NULL for other kinds and for NULL.
///
/// Ownership: the string belongs to the event and lives until `sb_event_free`.
/// Thread-safety: any thread, while the event is not freed.
#[no_mangle]
pub unsafe extern "C" fn sb_event_get_name(event: *const sb_event) -> *const c_char {
    ffi!(-> *const c_char {
        event
            .as_ref()
            .and_then(|e| e.name.as_ref())
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// The event's JSON: the handshake, the user, the message, or the app event's arguments
/// (see `sb_event_kind`); NULL for NULL.
///
/// Ownership: the string belongs to the event and lives until `sb_event_free`.
/// Thread-safety: any thread, while the event is not freed.
#[no_mangle]
pub unsafe extern "C" fn sb_event_get_json(event: *const sb_event) -> *const c_char {
    ffi!(-> *const c_char { event.as_ref().map_or(std::ptr::null(), |e| e.json.as_ptr()) })
}

/// The socket an app event came from, as `{"id", "user", "rooms"}`; NULL for other kinds
/// and for NULL.
///
/// Ownership: the string belongs to the event and lives until `sb_event_free`.
/// Thread-safety: any thread, while the event is not freed.
#[no_mangle]
pub unsafe extern "C" fn sb_event_get_socket_json(event: *const sb_event) -> *const c_char {
    ffi!(-> *const c_char {
        event
            .as_ref()
            .and_then(|e| e.socket.as_ref())
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// Frees an event (NULL is ignored). Its request stays pending until completed.
///
/// Ownership: takes `event`, which must not be used afterwards. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_event_free(event: *mut sb_event) {
    ffi!(-> () { drop(sb_event::from_raw(event)) })
}
