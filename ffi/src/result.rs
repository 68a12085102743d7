//! Result codes, the thread-local last error, and the panic boundary every exported function
//! runs inside.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::events::sb_event_kind;
use crate::requests::sb_request_id;

/// What a call did. Every fallible function returns one of these; the values are stable and
/// never reused, so they may be stored, logged and compared across library versions.
///
/// On any code other than `SB_OK`, `sb_last_error_message()` holds a sentence that names the
/// argument or setting at fault.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum sb_result {
    /// Success.
    SB_OK = 0,
    /// A required pointer argument was NULL; nothing was done.
    SB_NULL_ARGUMENT = 1,
    /// A string argument is not valid UTF-8; nothing was done.
    SB_INVALID_UTF8 = 2,
    /// A JSON argument does not parse, or has the wrong shape; nothing was done.
    SB_INVALID_JSON = 3,
    /// An argument is out of range or malformed (an empty name, a host that does not
    /// resolve, a negative descriptor); nothing was done.
    SB_INVALID_ARGUMENT = 4,
    /// A setting has a value the engine cannot use; the configuration is unchanged.
    SB_INVALID_CONFIG = 5,
    /// The engine was shut down (`sb_engine_shutdown`); only `sb_engine_free` remains useful.
    SB_ENGINE_CLOSED = 6,
    /// The request is not pending any more: it was already completed, it expired (the
    /// engine stopped waiting after `host_callback_timeout`), or its engine shut down.
    /// Nothing was done.
    SB_REQUEST_NOT_PENDING = 7,
    /// The request is of another kind than the function completes (an authentication
    /// request passed to `sb_room_request_answer`, say). It stays pending.
    SB_WRONG_REQUEST_KIND = 8,
    /// No connected socket has this id.
    SB_NOT_FOUND = 9,
    /// The address could not be bound (in use, or not local).
    SB_BIND_FAILED = 10,
    /// An operating-system call failed (the descriptor is not a connected TCP socket).
    SB_IO_ERROR = 11,
    /// The engine could not start (its runtime, its history store or its JWT key).
    SB_START_FAILED = 12,
    /// `sb_engine_poll_event` found no event within its timeout. Not a failure.
    SB_NO_EVENT = 13,
    /// The function may not be called from inside a callback of the engine (it would wait
    /// for the callback that is calling it), nor, for a function that waits
    /// (`sb_engine_publish`), from a thread running a Tokio runtime.
    SB_WRONG_THREAD = 14,
    /// A message could not be stored (the store callback failed it or did not complete it
    /// within `host_callback_timeout`, or the history store failed); nobody received it.
    SB_STORE_FAILED = 15,
    /// The library failed internally (a Rust panic was caught at the boundary). The object
    /// involved may be unusable; please report it with `sb_last_error_message()`.
    SB_PANIC = 100,
}

impl sb_result {
    const ALL: [sb_result; 17] = [
        sb_result::SB_OK,
        sb_result::SB_NULL_ARGUMENT,
        sb_result::SB_INVALID_UTF8,
        sb_result::SB_INVALID_JSON,
        sb_result::SB_INVALID_ARGUMENT,
        sb_result::SB_INVALID_CONFIG,
        sb_result::SB_ENGINE_CLOSED,
        sb_result::SB_REQUEST_NOT_PENDING,
        sb_result::SB_WRONG_REQUEST_KIND,
        sb_result::SB_NOT_FOUND,
        sb_result::SB_BIND_FAILED,
        sb_result::SB_IO_ERROR,
        sb_result::SB_START_FAILED,
        sb_result::SB_NO_EVENT,
        sb_result::SB_WRONG_THREAD,
        sb_result::SB_STORE_FAILED,
        sb_result::SB_PANIC,
    ];

    fn message(self) -> &'static str {
        match self {
            sb_result::SB_OK => "success\0",
            sb_result::SB_NULL_ARGUMENT => "a required pointer argument was NULL\0",
            sb_result::SB_INVALID_UTF8 => "a string argument is not valid UTF-8\0",
            sb_result::SB_INVALID_JSON => "a JSON argument is invalid\0",
            sb_result::SB_INVALID_ARGUMENT => "an argument is invalid\0",
            sb_result::SB_INVALID_CONFIG => "a setting is invalid\0",
            sb_result::SB_ENGINE_CLOSED => "the engine is shut down\0",
            sb_result::SB_REQUEST_NOT_PENDING => {
                "the request is not pending (already completed, expired or its engine shut down)\0"
            }
            sb_result::SB_WRONG_REQUEST_KIND => "the request is of another kind\0",
            sb_result::SB_NOT_FOUND => "not found\0",
            sb_result::SB_BIND_FAILED => "the address could not be bound\0",
            sb_result::SB_IO_ERROR => "an operating-system call failed\0",
            sb_result::SB_START_FAILED => "the engine could not start\0",
            sb_result::SB_NO_EVENT => "no event within the timeout\0",
            sb_result::SB_WRONG_THREAD => "not allowed inside an engine callback\0",
            sb_result::SB_STORE_FAILED => "the message could not be stored\0",
            sb_result::SB_PANIC => "internal error in the switchboard library\0",
        }
    }
}

/// A short English description of a result code, as a NUL-terminated string with static
/// lifetime; an unknown code gives "unknown result code".
///
/// Ownership: the string is static; do not free it. Thread-safety: callable from any thread.
#[no_mangle]
pub extern "C" fn sb_result_message(code: c_int) -> *const c_char {
    ffi!(-> *const c_char {
        let text = sb_result::ALL
            .iter()
            .find(|r| **r as c_int == code)
            .map_or("unknown result code\0", |r| r.message());
        text.as_ptr().cast::<c_char>()
    })
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(detail: &str) {
    let c = CString::new(detail.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The detail of the last call on this thread that returned an `sb_result`: a sentence
/// naming what was wrong after a failure, an empty string after a success.
///
/// Ownership: the string belongs to the library and stays valid until the next `sb_` call on
/// the same thread; copy it to keep it. Never NULL. Thread-safety: each thread has its own.
#[no_mangle]
pub extern "C" fn sb_last_error_message() -> *const c_char {
    ffi!(-> *const c_char { LAST_ERROR.with(|e| e.borrow().as_ptr()) })
}

/// A failure on its way to C: the code, and the detail for `sb_last_error_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error {
    pub code: sb_result,
    pub detail: String,
}

impl Error {
    pub fn new(code: sb_result, detail: impl Into<String>) -> Self {
        Error {
            code,
            detail: detail.into(),
        }
    }
}

/// The result of an exported function's body.
pub(crate) type FfiResult = Result<(), Error>;

/// What an exported body may return, how it crosses to C, and what C gets after a panic.
pub(crate) trait FfiReturn {
    /// The C type.
    type C;
    /// The value for C (recording the last error for results).
    fn into_c(self) -> Self::C;
    /// What C gets when the body panicked.
    fn panicked() -> Self::C;
}

impl FfiReturn for FfiResult {
    type C = sb_result;
    fn into_c(self) -> sb_result {
        match self {
            Ok(()) => {
                set_last_error("");
                sb_result::SB_OK
            }
            Err(e) => {
                set_last_error(&e.detail);
                e.code
            }
        }
    }
    fn panicked() -> sb_result {
        sb_result::SB_PANIC
    }
}

macro_rules! plain_return {
    ($t:ty, $on_panic:expr) => {
        impl FfiReturn for $t {
            type C = $t;
            fn into_c(self) -> $t {
                self
            }
            fn panicked() -> $t {
                $on_panic
            }
        }
    };
}

plain_return!((), ());
plain_return!(*const c_char, std::ptr::null());
plain_return!(sb_request_id, 0);
plain_return!(sb_event_kind, sb_event_kind::SB_EVENT_NONE);

/// Runs `body` so that no panic crosses into C: a panic becomes `SB_PANIC` (or NULL, 0, …)
/// and its message the last error.
pub(crate) fn boundary<R: FfiReturn>(body: impl FnOnce() -> R) -> R::C {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r.into_c(),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(&format!("internal error (panic): {what}"));
            R::panicked()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: sb_last_error_message never returns NULL and the string lives until the
        // next call on this thread.
        unsafe { CStr::from_ptr(sb_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_become_a_code_and_a_message() {
        let r: sb_result = boundary(|| -> FfiResult { panic!("boom") });
        assert_eq!(r, sb_result::SB_PANIC);
        assert!(last().contains("boom"), "{}", last());
        let p: *const c_char = boundary(|| -> *const c_char { panic!("again") });
        assert!(p.is_null());
    }

    #[test]
    fn success_clears_the_last_error() {
        let r = boundary(|| -> FfiResult { Err(Error::new(sb_result::SB_NOT_FOUND, "x")) });
        assert_eq!((r, last().as_str()), (sb_result::SB_NOT_FOUND, "x"));
        assert_eq!(boundary(|| -> FfiResult { Ok(()) }), sb_result::SB_OK);
        assert_eq!(last(), "");
    }

    #[test]
    fn every_code_has_a_message() {
        for code in sb_result::ALL {
            let m = unsafe { CStr::from_ptr(sb_result_message(code as c_int)) };
            assert!(!m.to_bytes().is_empty());
        }
        let m = unsafe { CStr::from_ptr(sb_result_message(12345)) };
        assert_eq!(m.to_str().unwrap(), "unknown result code");
    }
}
