//! `sb_engine`: a running engine — listening, adopting connections, emitting, publishing,
//! notifying users, presence and rooms, disconnecting, shutting down.

use std::ffi::{c_char, c_int};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{bounded, Receiver};
use serde_json::json;
use switchboard::chat::{ChatError, ErrorCode};
use switchboard::host::{self, Host};
use switchboard::Engine;
use tokio::sync::oneshot;

use crate::args::{self, Handle};
use crate::config::sb_config;
use crate::events::sb_event;
use crate::requests::{in_callback, purge, Shared};
use crate::result::{sb_result, Error, FfiResult};

/// How long `sb_engine_free` lets tasks finish.
const FREE_GRACE: Duration = Duration::from_millis(500);

/// A running engine (opaque), on its own threads: Socket.IO with the chat contract,
/// server-sent events at `/events`, the server HTTP API under `/api/` (with an API key), and
/// collaborative documents (Yjs) at `/yjs/<name>`. Create with `sb_engine_new`, free with
/// `sb_engine_free`.
///
/// Thread-safe: every function taking an `sb_engine *` may be called from any thread,
/// concurrently, except `sb_engine_free`, which must be the last call.
#[allow(non_camel_case_types)]
pub struct sb_engine {
    host: Host,
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: Receiver<sb_event>,
    pub(crate) wake: Receiver<()>,
}

impl Handle for sb_engine {
    const NAME: &'static str = "sb_engine";
}

impl sb_engine {
    /// The engine, unless it was shut down.
    pub(crate) fn live(&self) -> Result<&Engine, Error> {
        if self.shared.is_closed() {
            return Err(Error::new(
                sb_result::SB_ENGINE_CLOSED,
                "the engine is shut down; only sb_engine_free remains",
            ));
        }
        Ok(self.host.engine())
    }

    /// The product, unless it was shut down.
    fn host(&self) -> Result<&Host, Error> {
        self.live()?;
        Ok(&self.host)
    }

    fn stop(&self, grace: Duration) {
        if self.shared.close() {
            purge(self.shared.tag);
            self.host.shutdown(grace);
            purge(self.shared.tag);
        }
    }
}

fn start_error(e: switchboard::Error) -> Error {
    let code = match &e {
        switchboard::Error::Config(_)
        | switchboard::Error::JwtKey(_)
        | switchboard::Error::Tls(_)
        | switchboard::Error::Cluster(_) => sb_result::SB_INVALID_CONFIG,
        switchboard::Error::Bind { .. } => sb_result::SB_BIND_FAILED,
        _ => sb_result::SB_START_FAILED,
    };
    let detail = match &e {
        switchboard::Error::Config(c) => {
            switchboard::bindings::settings::describe(c, switchboard::bindings::settings::Front::C)
        }
        _ => e.to_string(),
    };
    Error::new(code, detail)
}

fn not_in_callback(what: &str) -> FfiResult {
    if in_callback() {
        return Err(Error::new(
            sb_result::SB_WRONG_THREAD,
            format!("{what} may not be called from inside an engine callback"),
        ));
    }
    Ok(())
}

/// Refuses to block a thread that runs async tasks (an engine callback, or a host thread
/// inside a Tokio runtime of its own): waiting there could wait for itself.
fn may_block(what: &str) -> FfiResult {
    not_in_callback(what)?;
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(
            sb_result::SB_WRONG_THREAD,
            format!("{what} waits, and may not be called from a thread running an async runtime"),
        ));
    }
    Ok(())
}

/// Starts an engine with the chat contract on namespace `/`, server-sent events, the server
/// HTTP API and collaborative documents, with the host's hooks, on a runtime of its own. It
/// serves nothing until `sb_engine_listen` or `sb_engine_adopt`.
///
/// The host's hooks apply to documents too: the authentication callback authenticates their
/// connections (see `sb_auth_callback`), the room-access callback decides the room
/// `doc:<name>` of each (see `sb_room_access_callback`), and the document-update callback
/// hears their changes.
///
/// Returns `SB_INVALID_CONFIG` for an unusable JWT public key or TLS certificate or key (see
/// `sb_config_set_tls`), `SB_START_FAILED` when the runtime, the history store or the
/// document store (`documents.redb` under `data_dir`) cannot start.
///
/// Ownership: `config` is borrowed and copied (free it whenever you like); the caller owns
/// `*out` and frees it with `sb_engine_free`. Thread-safety: callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_new(
    config: *const sb_config,
    out: *mut *mut sb_engine,
) -> sb_result {
    ffi! {
        let c = sb_config::borrow(config, "config")?;
        let out = args::out(out, "out")?;
        *out = std::ptr::null_mut();
        let (queue, events) = bounded(c.queue_capacity);
        // Nothing is ever sent on `wake`: dropping its sender at shutdown wakes the pollers.
        let (wake_pollers, wake) = bounded(1);
        let shared = Shared::new(queue, wake_pollers);
        let hooks = c.hooks.product_hooks(&shared);
        let host = Host::start(c.config.clone(), hooks).map_err(start_error)?;
        *out = sb_engine { host, shared, events, wake }.into_raw();
        Ok(())
    }
}

/// Listens on `host:port` (an IP address or a name such as `"localhost"`; port 0 picks a
/// free port) until shutdown, and writes the bound port to `*bound_port` unless it is NULL.
/// With `sb_config_set_tls` it serves HTTPS and WSS.
/// Callable several times to listen on several addresses.
///
/// Returns `SB_BIND_FAILED` when the address is in use or not local, `SB_INVALID_ARGUMENT`
/// when `host` does not resolve.
///
/// Ownership: `host` is borrowed. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_listen(
    engine: *mut sb_engine,
    host: *const c_char,
    port: u16,
    bound_port: *mut u16,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let host = args::name(host, "host")?;
        let live = e.live()?;
        let bad_host = |why: String| {
            Error::new(sb_result::SB_INVALID_ARGUMENT, format!("`host` {host:?}: {why}"))
        };
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|err| bad_host(err.to_string()))?
            .next()
            .ok_or_else(|| bad_host("resolves to no address".into()))?;
        let bound = live.listen(addr).map_err(start_error)?;
        if let Some(p) = bound_port.as_mut() {
            *p = bound.addr.port();
        }
        Ok(())
    }
}

/// Serves a TCP connection the host accepted itself: the engine speaks HTTP on it (Engine.IO
/// polling, the WebSocket upgrade, `/events`, `/api/`, `/yjs/<name>`, `/healthz`, `/metrics`)
/// as on its own listeners.
/// `prefix` holds the `prefix_len` bytes the host already read from the connection, before
/// any parsing (NULL when `prefix_len` is 0); the engine reads them first.
///
/// Returns `SB_IO_ERROR` when `fd` is not a connected TCP socket.
///
/// Ownership: on `SB_OK` the engine owns `fd` and closes it; on any other code the host still
/// owns it. `prefix` is borrowed (copied). Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_adopt(
    engine: *mut sb_engine,
    fd: c_int,
    prefix: *const u8,
    prefix_len: usize,
) -> sb_result {
    ffi! {
        use std::os::fd::{FromRawFd, IntoRawFd};
        let e = sb_engine::borrow(engine, "engine")?;
        let prefix = Bytes::copy_from_slice(args::bytes(prefix, prefix_len, "prefix")?);
        let live = e.live()?;
        if fd < 0 {
            return Err(Error::new(
                sb_result::SB_INVALID_ARGUMENT,
                format!("`fd` {fd} is not a descriptor"),
            ));
        }
        // SAFETY: the caller hands `fd` over; on failure it is given back untouched.
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let checked = stream.peer_addr().and_then(|peer| {
            stream.set_nonblocking(true)?;
            Ok(peer)
        });
        let peer = match checked {
            Ok(peer) => peer,
            Err(err) => {
                let _ = stream.into_raw_fd();
                return Err(Error::new(
                    sb_result::SB_IO_ERROR,
                    format!("`fd` {fd} is not a connected TCP socket: {err}"),
                ));
            }
        };
        let http = live.http().clone();
        live.handle().spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                return;
            };
            let _ = stream.set_nodelay(true);
            switchboard::bindings::http::serve_connection_with_prefix(stream, peer, http, prefix)
                .await;
        });
        Ok(())
    }
}

/// Emits `event` with one argument, the JSON text `json`, to every socket in `room`
/// (encoded once for all of them).
///
/// Returns `SB_INVALID_JSON` for malformed JSON, `SB_ENGINE_CLOSED` after shutdown.
///
/// Ownership: the strings are borrowed. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_emit_to_room(
    engine: *mut sb_engine,
    room: *const c_char,
    event: *const c_char,
    json: *const c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let (room, event) = (args::name(room, "room")?, args::name(event, "event")?);
        let data = args::json(json, "json")?;
        e.host()?.emit_to_room(room.to_owned(), event.to_owned(), data);
        Ok(())
    }
}

/// Emits `event` with the JSON argument `json` to every connection of user `user_id`.
///
/// Ownership: the strings are borrowed. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_emit_to_user(
    engine: *mut sb_engine,
    user_id: *const c_char,
    event: *const c_char,
    json: *const c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let (user, event) = (args::name(user_id, "user_id")?, args::name(event, "event")?);
        let data = args::json(json, "json")?;
        e.host()?.emit_to_user(user, event.to_owned(), data);
        Ok(())
    }
}

fn no_socket(id: &str) -> Error {
    Error::new(
        sb_result::SB_NOT_FOUND,
        format!("no connected socket has id {id:?}"),
    )
}

/// Emits `event` with the JSON argument `json` to one socket (its id is in `socket_json`
/// of app events).
///
/// Returns `SB_NOT_FOUND` when no connected socket has that id.
///
/// Ownership: the strings are borrowed. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_emit_to_socket(
    engine: *mut sb_engine,
    socket_id: *const c_char,
    event: *const c_char,
    json: *const c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let (id, event) = (args::name(socket_id, "socket_id")?, args::name(event, "event")?);
        let data = args::json(json, "json")?;
        e.host()?
            .socket_emit(id, event, &data)
            .ok_or_else(|| no_socket(id))?
            .map_err(|err| Error::new(sb_result::SB_NOT_FOUND, format!("socket {id:?}: {err}")))
    }
}

/// Writes the users present in `room` to `*out_json`, as the JSON array
/// `[{"userId": ..., "username": ...}]` in the order they arrived (`[]` for an empty room).
///
/// Ownership: `room` is borrowed; the caller owns `*out_json` and frees it with
/// `sb_string_free`. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_presence(
    engine: *mut sb_engine,
    room: *const c_char,
    out_json: *mut *mut c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let room = args::name(room, "room")?;
        let out = args::out(out_json, "out_json")?;
        *out = args::owned_string(json!(e.host()?.presence(room)).to_string());
        Ok(())
    }
}

/// Writes counters to `*out_json` as a JSON object: `connections`, `sockets`, `rooms`,
/// `messages`, `packetsIn`, `packetsOut`, `documents` (collaborative documents in memory) and
/// `documentConnections`.
///
/// Ownership: the caller owns `*out_json` and frees it with `sb_string_free`.
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_stats(
    engine: *mut sb_engine,
    out_json: *mut *mut c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let out = args::out(out_json, "out_json")?;
        *out = args::owned_string(e.host()?.stats().to_string());
        Ok(())
    }
}

/// Writes every room with users present to `*out_json`, as the JSON array
/// `[{"roomId": ..., "members": <number of users>}]` sorted by room id (`[]` when there is
/// none). Personal rooms (`user:<id>`) are not listed.
///
/// Ownership: the caller owns `*out_json` and frees it with `sb_string_free`.
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_rooms(
    engine: *mut sb_engine,
    out_json: *mut *mut c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let out = args::out(out_json, "out_json")?;
        *out = std::ptr::null_mut();
        *out = args::owned_string(e.host()?.presence_rooms().to_string());
        Ok(())
    }
}

/// Longest event name `sb_engine_notify_user` takes, in characters.
const MAX_EVENT_CHARS: usize = 128;

/// Sends `event` with the JSON argument `json` to every connection of user `user_id`:
/// Socket.IO clients get the event, server-sent-event streams an `event:` of that name.
/// `event` NULL means `"notification"`; otherwise it has 1 to 128 characters and no control
/// characters (else `SB_INVALID_ARGUMENT`). Writes how many connections it reached to
/// `*delivered` unless it is NULL (0 when the user has none: not an error).
///
/// Ownership: the strings are borrowed. Thread-safety: any thread, also inside callbacks.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_notify_user(
    engine: *mut sb_engine,
    user_id: *const c_char,
    event: *const c_char,
    json: *const c_char,
    delivered: *mut usize,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let user = args::name(user_id, "user_id")?;
        let event = if event.is_null() { "notification" } else { args::text(event, "event")? };
        if event.is_empty()
            || event.chars().count() > MAX_EVENT_CHARS
            || event.chars().any(char::is_control)
        {
            return Err(Error::new(
                sb_result::SB_INVALID_ARGUMENT,
                format!(
                    "`event` {event:?} must have 1 to {MAX_EVENT_CHARS} characters and no \
                     control characters"
                ),
            ));
        }
        let data = args::json(json, "json")?;
        let n = e.host()?.notify_user(user, event, &data);
        if let Some(d) = delivered.as_mut() {
            *d = n;
        }
        Ok(())
    }
}

fn publish_error(e: &ChatError) -> Error {
    let code = serde_json::to_value(e.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let result = match e.code {
        ErrorCode::Internal => sb_result::SB_STORE_FAILED,
        _ => sb_result::SB_INVALID_ARGUMENT,
    };
    match e.host_detail() {
        // The host's own store failed: the host may read its own words.
        Some(detail) => Error::new(result, format!("{code}: {} ({detail})", e.message)),
        None => Error::new(result, format!("{code}: {}", e.message)),
    }
}

/// Stores and delivers a chat message to `room` as user `user_id` (display name `username`,
/// NULL or empty for the user id), as a client's `sendMessage` would: the store callback (if
/// any) and the history first, then every member of the room gets `message` (Socket.IO and
/// server-sent events alike), and `getHistory` returns it. The user need not be connected or
/// in the room. Writes `{"id": ..., "timestamp": ...}` to `*out_json` (NULL after a failure).
///
/// Blocking: the call returns once the message is stored and delivered. The work runs on the
/// engine's threads; the calling thread only waits, so the engine is never blocked. Since the
/// store callback (or `SB_EVENT_STORE` event) is part of it, the thread that completes store
/// requests must not be the one waiting here — with store requests on the event queue, do not
/// call it from the only thread that polls the queue (the store would time out after
/// `host_callback_timeout`, giving `SB_STORE_FAILED`).
///
/// Returns `SB_INVALID_ARGUMENT` for an invalid room (empty, too long, a personal room
/// `user:<id>`) or text (blank, longer than the limit), with the reason in
/// `sb_last_error_message()`; `SB_STORE_FAILED` when the message could not be stored (nobody
/// received it); `SB_WRONG_THREAD` when called from inside an engine callback (queue the work
/// to a thread of yours) or from a thread running a Tokio runtime; `SB_ENGINE_CLOSED` when
/// the engine is shut down, also while the call waits.
///
/// Ownership: the strings are borrowed; the caller owns `*out_json` and frees it with
/// `sb_string_free`. Thread-safety: any thread of the host's except inside engine callbacks;
/// several threads may publish at once.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_publish(
    engine: *mut sb_engine,
    room: *const c_char,
    user_id: *const c_char,
    username: *const c_char,
    text: *const c_char,
    out_json: *mut *mut c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let out = args::out(out_json, "out_json")?;
        *out = std::ptr::null_mut();
        let room = args::name(room, "room")?.to_owned();
        let user = args::name(user_id, "user_id")?.to_owned();
        let username = if username.is_null() {
            None
        } else {
            Some(args::text(username, "username")?.to_owned()).filter(|u| !u.is_empty())
        };
        let text = args::text(text, "text")?.to_owned();
        may_block("sb_engine_publish")?;
        let closed = || Error::new(sb_result::SB_ENGINE_CLOSED, "the engine shut down");
        let (tx, rx) = oneshot::channel();
        e.host()?.publish(room, user, username, text, move |result| {
            let _ = tx.send(result);
        });
        // A shutdown drops the task, and with it `tx`: the wait ends either way.
        match rx.blocking_recv() {
            Ok(Ok(m)) => {
                *out = args::owned_string(host::json::published(&m).to_string());
                Ok(())
            }
            Ok(Err(_)) | Err(_) if e.shared.is_closed() => Err(closed()),
            Ok(Err(err)) => Err(publish_error(&err)),
            Err(_) => Err(closed()),
        }
    }
}

/// Disconnects every connection of user `user_id`, on every node of the cluster: Socket.IO
/// clients see `io server disconnect` and do not reconnect by themselves, server-sent-event
/// streams end, Yjs document connections close with 4410 `Disconnected by the server`.
/// Writes how many connections there were on this node to `*count` unless it is NULL.
///
/// A kick, not a ban: EventSource reconnects by itself and a y-websocket app may open its
/// provider again; to keep the user out, also stop accepting the user's token (the auth
/// callback).
///
/// Ownership: `user_id` is borrowed. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_disconnect_user(
    engine: *mut sb_engine,
    user_id: *const c_char,
    count: *mut usize,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let user = args::name(user_id, "user_id")?;
        let n = e.host()?.disconnect_user(user);
        if let Some(c) = count.as_mut() {
            *c = n;
        }
        Ok(())
    }
}

/// Disconnects one socket. Returns `SB_NOT_FOUND` when no connected socket has that id.
///
/// Ownership: `socket_id` is borrowed. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_disconnect_socket(
    engine: *mut sb_engine,
    socket_id: *const c_char,
) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        let id = args::name(socket_id, "socket_id")?;
        if !e.host()?.socket_disconnect(id) {
            return Err(no_socket(id));
        }
        Ok(())
    }
}

/// Shuts the engine down: stops listening, closes every connection, fails the requests
/// still pending (they become `SB_REQUEST_NOT_PENDING`), wakes `sb_engine_poll_event`
/// callers, waits for running callbacks to return, and stops the engine's threads, letting
/// tasks finish for up to `grace_ms` milliseconds. No callback starts after it returns.
/// Idempotent. Afterwards every call on the engine returns `SB_ENGINE_CLOSED`, except
/// `sb_engine_free`.
///
/// Returns `SB_WRONG_THREAD` when called from inside an engine callback.
///
/// Thread-safety: any thread except the engine's own (callbacks).
#[no_mangle]
pub unsafe extern "C" fn sb_engine_shutdown(engine: *mut sb_engine, grace_ms: u32) -> sb_result {
    ffi! {
        let e = sb_engine::borrow(engine, "engine")?;
        not_in_callback("sb_engine_shutdown")?;
        e.stop(Duration::from_millis(grace_ms.into()));
        Ok(())
    }
}

/// Shuts the engine down as `sb_engine_shutdown` does (with half a second of grace) unless
/// it was already, then frees it. Clients still connected are disconnected. NULL is ignored.
/// After it returns no callback runs; called from inside a callback, it returns at once and
/// the engine is shut down and freed on another thread once that callback returns.
///
/// Ownership: takes `engine`, which must not be used afterwards (by any thread).
/// Thread-safety: call it once, after every other call on this engine has returned.
#[no_mangle]
pub unsafe extern "C" fn sb_engine_free(engine: *mut sb_engine) {
    ffi!(-> () {
        let Some(e) = sb_engine::from_raw(engine) else {
            return;
        };
        if in_callback() {
            std::thread::spawn(move || {
                e.stop(FREE_GRACE);
                drop(e);
            });
            return;
        }
        e.stop(FREE_GRACE);
        drop(e);
    })
}
