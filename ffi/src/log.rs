//! `sb_set_log_callback`: the engine's `tracing` events handed to the host's logger.
//!
//! A process has one global `tracing` subscriber, so the callback is process-wide: it gets
//! the events of every engine of the library (a record's `target` and fields, such as `sid`,
//! tell them apart). The subscriber is installed on the first call; if another library of
//! the process installed one first, the callback gets nothing.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::sync::Once;

use parking_lot::RwLock;
use switchboard::bindings::log::{Directives, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::args;
use crate::requests::Userdata;
use crate::result::{sb_result, Error};

/// How severe a log event is (the values grow with verbosity, as syslog's shrink).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum sb_log_level {
    /// Something failed (a host callback threw, a store failed).
    SB_LOG_ERROR = 1,
    /// Something needs attention (no CORS origins configured, a retry).
    SB_LOG_WARN = 2,
    /// Routine events (listening, a refused connection and its reason).
    SB_LOG_INFO = 3,
    /// Details for debugging (malformed packets, closes).
    SB_LOG_DEBUG = 4,
    /// Everything.
    SB_LOG_TRACE = 5,
}

/// Receives one log event: `level`; `target`, the engine module (`"switchboard::chat"`);
/// `message`; `fields_json`, the event's other fields as a JSON object (`{"sid": "...",
/// "reason": "token_expired"}`).
///
/// Called on the thread that logs — an engine thread, or the host's own thread inside an
/// `sb_` call — possibly on several threads at once: it must be thread-safe and quick (the
/// engine waits for it), and must not call `sb_` functions that wait for the engine
/// (`sb_engine_shutdown`, `sb_engine_publish`, `sb_engine_free`) nor `sb_set_log_callback`
/// (which waits for callbacks in progress). Events logged while it runs
/// on the same thread are dropped, not delivered re-entrantly. The strings are borrowed for
/// the call; copy what you keep.
#[allow(non_camel_case_types)]
pub type sb_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: sb_log_level,
        target: *const c_char,
        message: *const c_char,
        fields_json: *const c_char,
    ),
>;

/// The callback itself (never NULL once installed).
type LogFn =
    unsafe extern "C" fn(*mut c_void, sb_log_level, *const c_char, *const c_char, *const c_char);

struct Sink {
    callback: LogFn,
    userdata: Userdata,
    filter: Directives,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALL: Once = Once::new();

thread_local! {
    /// Set while the callback runs on this thread: what it logs is dropped.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

struct CallbackLayer;

impl<S: Subscriber> Layer<S> for CallbackLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The callback and its filter may change: decide per event.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        meta.is_event()
            && !IN_CALLBACK.with(Cell::get)
            && SINK.read().as_ref().is_some_and(|s| s.filter.enabled(meta))
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let sink = SINK.read();
        let Some(sink) = sink.as_ref() else { return };
        if IN_CALLBACK.with(Cell::get) || !sink.filter.enabled(event.metadata()) {
            return;
        }
        let record = Record::from_event(event);
        let level = match record.level {
            "error" => sb_log_level::SB_LOG_ERROR,
            "warn" => sb_log_level::SB_LOG_WARN,
            "info" => sb_log_level::SB_LOG_INFO,
            "debug" => sb_log_level::SB_LOG_DEBUG,
            _ => sb_log_level::SB_LOG_TRACE,
        };
        let target = c_text(&record.target);
        let message = c_text(&record.message);
        let fields = c_text(&serde_json::Value::Object(record.fields).to_string());
        IN_CALLBACK.with(|c| c.set(true));
        // SAFETY: the callback's contract; the strings outlive the call.
        unsafe {
            (sink.callback)(
                sink.userdata.0,
                level,
                target.as_ptr(),
                message.as_ptr(),
                fields.as_ptr(),
            )
        };
        IN_CALLBACK.with(|c| c.set(false));
    }
}

/// Sends the engine's log events to `callback` (see `sb_log_callback` for its thread and
/// reentrancy rules), for every engine of the process; NULL turns logging off. `filter`
/// chooses the events in `RUST_LOG`'s syntax: a level (`"debug"`: the engine's events at that
/// level and above) or `target=level` directives, comma-separated
/// (`"switchboard=info,switchboard::cluster=debug"`); NULL uses the environment's
/// `SWITCHBOARD_LOG`, else `RUST_LOG`, else `"switchboard=info"`. Replaces any earlier
/// callback. A malformed `filter` returns `SB_INVALID_ARGUMENT` and changes nothing.
///
/// Ownership: `filter` is borrowed (copied); `userdata` is passed back as is and must stay
/// usable from any thread until the callback is replaced or turned off. Thread-safety:
/// callable from any thread; once it returns, the previous callback is not called any more.
#[no_mangle]
pub unsafe extern "C" fn sb_set_log_callback(
    callback: sb_log_callback,
    userdata: *mut c_void,
    filter: *const c_char,
) -> sb_result {
    ffi! {
        let filter = if filter.is_null() { None } else { Some(args::text(filter, "filter")?) };
        let Some(callback) = callback else {
            *SINK.write() = None;
            return Ok(());
        };
        let filter = Directives::from_option_or_env(filter).map_err(|e| {
            Error::new(sb_result::SB_INVALID_ARGUMENT, format!("invalid `filter`: {e}"))
        })?;
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(CallbackLayer);
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        // Taking the write lock waits for callbacks in progress (they hold the read lock).
        *SINK.write() = Some(Sink { callback, userdata: Userdata(userdata), filter });
        Ok(())
    }
}
