//! Requests the engine asks its host to answer — authentication, room access, message
//! storage and the app's own events — handed to a callback or to the event queue, and
//! completed later, from any thread, by id; and the one notification that needs no answer,
//! a document update.
//!
//! Every request is an entry in one process-wide registry, keyed by an id that is never
//! reused. Completing a request removes its entry; so does the engine when it stops waiting
//! (timeout, client gone, shutdown). A completion that finds no entry returns
//! `SB_REQUEST_NOT_PENDING`, which is how a request completed twice is told apart from a
//! live one without C ever holding a pointer that could dangle.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;
use switchboard::chat::ChatMessage;
use switchboard::chat::{HookError, MessageStore, RoomAccess};
use switchboard::host;
use switchboard::socketio::Refusal;
use switchboard::yjs;
use switchboard::User;
use tokio::sync::oneshot;

use crate::args::{self, c_string};
use crate::events::{sb_event, sb_event_kind};
use crate::result::{sb_result, Error};

/// Identifies one request the engine waits for the host to complete: a number, not a
/// pointer, so there is nothing to free and nothing that can dangle.
///
/// A request is pending from the moment its callback is called (or its event is queued)
/// until the host completes it with one of its two completion functions, the engine stops
/// waiting (`host_callback_timeout`), or the engine shuts down. Completing a request that is
/// not pending (a second time, too late) returns `SB_REQUEST_NOT_PENDING` and does nothing;
/// completing it with another kind's function returns `SB_WRONG_REQUEST_KIND` and leaves it
/// pending. Ids are unique in the process and never reused; 0 is never a request.
#[allow(non_camel_case_types)]
pub type sb_request_id = u64;

/// Called for each connecting client when authentication is the host's (see
/// `sb_config_set_auth_callback`): Socket.IO clients, and clients opening a collaborative
/// document at `/yjs/<name>`.
///
/// `handshake_json` is `{"auth": <the client's auth object>, "headers": {name: value},
/// "query": {name: value}, "address": "<client ip>"}`, borrowed for the duration of the call.
/// For a document connection it also has `"document": "<name>"` (the decoded name), and
/// `auth` is `{"token": <the token query parameter, else the Authorization bearer token, else
/// null>}`; a refusal closes that WebSocket with code 4401 and the refusal's message.
/// Complete `request` with exactly one of `sb_auth_request_accept` or
/// `sb_auth_request_refuse`, now or later, from any thread.
///
/// Runs on an engine thread: return quickly (callbacks of one connection run one after
/// another); `sb_engine_shutdown` from inside it returns `SB_WRONG_THREAD`.
#[allow(non_camel_case_types)]
pub type sb_auth_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        request: sb_request_id,
        handshake_json: *const c_char,
    ),
>;

/// Called when a user asks to join a room and room access is the host's (see
/// `sb_config_set_room_access_callback`), and when a user opens a collaborative document:
/// then `room` is `doc:<name>`, and a refusal closes the document's WebSocket with code 4403
/// (a failure, with 4500). Chat rooms cannot start with `doc:` (clients get `INVALID_ROOM`),
/// so a `doc:` room is always a document.
///
/// `user_json` is `{"id": ..., "username": ..., "rooms"?: [...]}` and `room` the room id, both
/// borrowed for the duration of the call. Complete `request` with `sb_room_request_answer`
/// or `sb_room_request_fail`, now or later, from any thread. Runs on an engine thread:
/// return quickly.
#[allow(non_camel_case_types)]
pub type sb_room_access_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        request: sb_request_id,
        user_json: *const c_char,
        room: *const c_char,
    ),
>;

/// Called for each chat message before it is stored in history and delivered (see
/// `sb_config_set_store_callback`).
///
/// `message_json` is `{"id", "roomId", "text", "userId", "username", "timestamp"}`, borrowed
/// for the duration of the call. Complete `request` with `sb_store_request_done` (the
/// message is delivered) or `sb_store_request_fail` (the sender's ack is `INTERNAL` and
/// nobody receives it), now or later, from any thread. Runs on an engine thread: return
/// quickly.
#[allow(non_camel_case_types)]
pub type sb_store_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        request: sb_request_id,
        message_json: *const c_char,
    ),
>;

/// Called for each client event the host registered with `sb_config_add_app_event`.
///
/// `event` is the event name, `args_json` the JSON array of its arguments (binary ones
/// appear as `{"_placeholder": true, "num": N}`), and `socket_json` is `{"id": <socket id>,
/// "user": {"id", "username", "rooms"?}, "rooms": [...]}`; all borrowed for the duration of
/// the call. Complete `request` with `sb_app_event_ack` (the client's callback gets
/// `(null, result)`) or `sb_app_event_fail` (it gets `({code: "INTERNAL", message})`), now or
/// later, from any thread; complete it even when the client asked for no ack, since the
/// socket's next events wait for it. Runs on an engine thread: return quickly.
#[allow(non_camel_case_types)]
pub type sb_app_event_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        request: sb_request_id,
        event: *const c_char,
        args_json: *const c_char,
        socket_json: *const c_char,
    ),
>;

/// Called after a client's update changed a collaborative document (see
/// `sb_config_set_document_update_callback`); nothing is to be completed.
///
/// `doc_name` is the document's name (NUL-terminated UTF-8) and `update` the `len` bytes of
/// the change (a Yjs update, v1 encoding, as `Y.applyUpdate` takes it); both are borrowed for
/// the duration of the call only: copy what you keep. The update is in memory and broadcast
/// already; it is stored with the document's next (debounced) store.
///
/// Runs on an engine thread, once per update, in the order of the document's updates: return
/// quickly and do not block (queue the work); `sb_engine_shutdown` and `sb_engine_publish`
/// from inside it return `SB_WRONG_THREAD`. No call starts after `sb_engine_shutdown`.
#[allow(non_camel_case_types)]
pub type sb_document_update_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        doc_name: *const c_char,
        update: *const u8,
        len: usize,
    ),
>;

type AuthFn = unsafe extern "C" fn(*mut c_void, sb_request_id, *const c_char);
type RoomFn = unsafe extern "C" fn(*mut c_void, sb_request_id, *const c_char, *const c_char);
type StoreFn = unsafe extern "C" fn(*mut c_void, sb_request_id, *const c_char);
type AppFn =
    unsafe extern "C" fn(*mut c_void, sb_request_id, *const c_char, *const c_char, *const c_char);
pub(crate) type DocUpdateFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const u8, usize);

/// The host's `void *userdata`: the host promised it may be used from any thread.
#[derive(Clone, Copy)]
pub(crate) struct Userdata(pub *mut c_void);
// SAFETY: the callbacks' documentation makes the host responsible for userdata being usable
// from the engine's threads; the library only passes it back.
unsafe impl Send for Userdata {}
// SAFETY: as above.
unsafe impl Sync for Userdata {}

/// Where the host wants a kind of request.
#[derive(Clone, Copy)]
pub(crate) enum Route<F> {
    /// To this callback, with this userdata.
    Callback(F, Userdata),
    /// To the event queue (`sb_engine_poll_event`).
    Queue,
}

impl<F> Route<F> {
    pub(crate) fn new(callback: Option<F>, userdata: *mut c_void) -> Self {
        match callback {
            Some(f) => Route::Callback(f, Userdata(userdata)),
            None => Route::Queue,
        }
    }
}

/// The host's hooks, as configured; `None` keeps the engine's built-in behaviour.
#[derive(Clone, Default)]
pub(crate) struct HostHooks {
    pub auth: Option<Route<AuthFn>>,
    pub room_access: Option<Route<RoomFn>>,
    pub store: Option<Route<StoreFn>>,
    /// Where registered app events go; `None` is the queue.
    pub app: Option<Route<AppFn>>,
    pub app_events: HashSet<String>,
    /// Told about every change clients make to a document.
    pub document_update: Option<(DocUpdateFn, Userdata)>,
    /// Told about every connection and disconnection (see `crate::server`).
    pub connection: crate::server::ConnectionHook,
}

/// Which completion functions a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Auth,
    RoomAccess,
    Store,
    AppEvent,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Auth => "an authentication request (complete it with sb_auth_request_accept or sb_auth_request_refuse)",
            Kind::RoomAccess => "a room-access request (complete it with sb_room_request_answer or sb_room_request_fail)",
            Kind::Store => "a message-store request (complete it with sb_store_request_done or sb_store_request_fail)",
            Kind::AppEvent => "an app event (complete it with sb_app_event_ack or sb_app_event_fail)",
        }
    }
}

/// A request waiting for the host, with the channel its answer goes back through.
enum Pending {
    Auth(oneshot::Sender<Result<User, String>>),
    RoomAccess(oneshot::Sender<Result<bool, HookError>>),
    Store(oneshot::Sender<Result<(), HookError>>),
    AppEvent(oneshot::Sender<Result<Value, HookError>>),
}

impl Pending {
    fn kind(&self) -> Kind {
        match self {
            Pending::Auth(_) => Kind::Auth,
            Pending::RoomAccess(_) => Kind::RoomAccess,
            Pending::Store(_) => Kind::Store,
            Pending::AppEvent(_) => Kind::AppEvent,
        }
    }
}

struct Entry {
    engine: u64,
    pending: Pending,
}

static REQUESTS: LazyLock<Mutex<HashMap<sb_request_id, Entry>>> = LazyLock::new(Mutex::default);
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);
static NEXT_ENGINE: AtomicU64 = AtomicU64::new(1);

/// Removes a pending request of `kind`; its answer is the caller's to send.
fn take(id: sb_request_id, kind: Kind) -> Result<Pending, Error> {
    let mut requests = REQUESTS.lock();
    match requests.remove(&id) {
        None => Err(Error::new(
            sb_result::SB_REQUEST_NOT_PENDING,
            format!("request {id} is not pending: it was already completed, it expired, or its engine shut down"),
        )),
        Some(entry) if entry.pending.kind() != kind => {
            let actual = entry.pending.kind();
            requests.insert(id, entry);
            Err(Error::new(
                sb_result::SB_WRONG_REQUEST_KIND,
                format!("request {id} is {}; it stays pending", actual.describe()),
            ))
        }
        Some(entry) => Ok(entry.pending),
    }
}

/// Drops every request of an engine (its waiters see the engine going away).
pub(crate) fn purge(engine: u64) {
    let dropped: Vec<Entry> = {
        let mut requests = REQUESTS.lock();
        let ids: Vec<sb_request_id> = requests
            .iter()
            .filter(|(_, e)| e.engine == engine)
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| requests.remove(id)).collect()
    };
    drop(dropped);
}

/// Removes a request from the registry when the engine stops waiting for it.
struct Forget(sb_request_id);

impl Drop for Forget {
    fn drop(&mut self) {
        let entry = REQUESTS.lock().remove(&self.0);
        drop(entry);
    }
}

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside a host callback right now.
pub(crate) fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

const SHUTTING_DOWN: &str = "the server is shutting down";

/// What the engine's hooks and its handle share: the queue, and whether the engine is
/// closed (then no callback starts any more).
pub(crate) struct Shared {
    pub tag: u64,
    closed: AtomicBool,
    in_callbacks: AtomicUsize,
    queue: Sender<sb_event>,
    wake_pollers: Mutex<Option<Sender<()>>>,
}

impl Shared {
    pub(crate) fn new(queue: Sender<sb_event>, wake_pollers: Sender<()>) -> Arc<Self> {
        Arc::new(Shared {
            tag: NEXT_ENGINE.fetch_add(1, Ordering::Relaxed),
            closed: AtomicBool::new(false),
            in_callbacks: AtomicUsize::new(0),
            queue,
            wake_pollers: Mutex::new(Some(wake_pollers)),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes: no callback starts after this returns `true`, pollers wake up, and this waits
    /// for the callbacks running now to return. `false` when it was closed already.
    pub(crate) fn close(&self) -> bool {
        if self.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.wake_pollers.lock().take();
        while self.in_callbacks.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Runs a host callback unless the engine is closed.
    fn call(&self, f: impl FnOnce()) -> Result<(), String> {
        self.in_callbacks.fetch_add(1, Ordering::SeqCst);
        if self.is_closed() {
            self.in_callbacks.fetch_sub(1, Ordering::SeqCst);
            return Err(SHUTTING_DOWN.into());
        }
        IN_CALLBACK.with(|c| c.set(true));
        f();
        IN_CALLBACK.with(|c| c.set(false));
        self.in_callbacks.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    fn enqueue(&self, event: sb_event) -> Result<(), String> {
        if self.is_closed() {
            return Err(SHUTTING_DOWN.into());
        }
        match self.queue.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err("the host's event queue is full".into()),
            Err(TrySendError::Disconnected(_)) => Err(SHUTTING_DOWN.into()),
        }
    }

    /// Registers a request, hands it to the host with `deliver`, and waits for the answer.
    /// Dropping the future (timeout, shutdown) forgets the request.
    async fn ask<T, E: EngineMessage>(
        &self,
        wrap: fn(oneshot::Sender<Result<T, E>>) -> Pending,
        deliver: impl FnOnce(sb_request_id) -> Result<(), String>,
    ) -> Result<T, E> {
        if self.is_closed() {
            return Err(E::engine(SHUTTING_DOWN.into()));
        }
        let (tx, rx) = oneshot::channel();
        let id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
        REQUESTS.lock().insert(
            id,
            Entry {
                engine: self.tag,
                pending: wrap(tx),
            },
        );
        let _forget = Forget(id);
        deliver(id).map_err(E::engine)?;
        rx.await
            .unwrap_or_else(|_| Err(E::engine("the request was dropped".into())))
    }
}

/// A failure of the engine's own (not the host's) while it asks the host.
trait EngineMessage {
    fn engine(message: String) -> Self;
}

impl EngineMessage for String {
    fn engine(message: String) -> Self {
        message
    }
}

impl EngineMessage for HookError {
    fn engine(message: String) -> Self {
        HookError::Engine(message)
    }
}

mod complete;
mod hooks;

pub use complete::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn cstr(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn pending_auth(engine: u64) -> (sb_request_id, oneshot::Receiver<Result<User, String>>) {
        let (tx, rx) = oneshot::channel();
        let id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
        REQUESTS.lock().insert(
            id,
            Entry {
                engine,
                pending: Pending::Auth(tx),
            },
        );
        (id, rx)
    }

    #[test]
    fn a_request_completes_once() {
        let (id, mut rx) = pending_auth(u64::MAX);
        let user = cstr(r#"{"id":"alice","rooms":["team-*"]}"#);
        let no = cstr("no");
        unsafe {
            assert_eq!(
                sb_room_request_answer(id, true),
                sb_result::SB_WRONG_REQUEST_KIND
            );
            assert_eq!(
                sb_auth_request_accept(id, cstr("{").as_ptr()),
                sb_result::SB_INVALID_JSON
            );
            assert_eq!(
                sb_auth_request_accept(id, cstr(r#"{"name":"x"}"#).as_ptr()),
                sb_result::SB_INVALID_JSON
            );
            assert_eq!(sb_auth_request_accept(id, user.as_ptr()), sb_result::SB_OK);
            assert_eq!(
                sb_auth_request_accept(id, user.as_ptr()),
                sb_result::SB_REQUEST_NOT_PENDING
            );
            assert_eq!(
                sb_auth_request_refuse(id, no.as_ptr()),
                sb_result::SB_REQUEST_NOT_PENDING
            );
        }
        let got = rx.try_recv().unwrap().unwrap();
        assert_eq!(got.id, "alice");
        assert_eq!(got.username, "alice");
        assert_eq!(got.rooms, Some(vec!["team-*".to_owned()]));
    }

    #[test]
    fn purge_forgets_an_engines_requests() {
        let (id, mut rx) = pending_auth(u64::MAX - 1);
        purge(u64::MAX - 1);
        assert!(rx.try_recv().is_err());
        assert_eq!(sb_store_request_done(id), sb_result::SB_REQUEST_NOT_PENDING);
    }
}
