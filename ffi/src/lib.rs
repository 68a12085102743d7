//! C ABI over the Switchboard engine.
//!
//! This crate builds `libswitchboard` (cdylib and staticlib); `include/switchboard.h` is
//! generated from it by cbindgen (`make header`) and checked in.
//!
//! The shape follows rustls-ffi: opaque handles owned by C until their `_free`, one
//! `sb_result` code per call with `sb_last_error_message()` for detail, no NULL dereferenced,
//! strings checked for UTF-8 and JSON for syntax, and every exported body inside the
//! panic-catching [`ffi!`] macro. Requests the engine asks the host to answer are ids in a
//! registry (see [`requests`]), so a request completed twice gives a code instead of touching
//! freed memory.
#![deny(missing_docs)]
// Every exported function documents its pointer contract under "Ownership" in its docs (and
// so in the C header); the `# Safety` headings clippy wants would repeat it.
#![allow(clippy::missing_safety_doc)]

/// Runs an exported function's body inside the panic boundary ([`result::boundary`]).
///
/// `ffi! { ...; Ok(()) }` for bodies that return an `sb_result` (the detail of an error goes
/// to `sb_last_error_message`); `ffi!(-> T { ... })` for bodies that return a plain value,
/// which becomes NULL, 0 or nothing after a panic.
macro_rules! ffi {
    (-> $t:ty { $($body:tt)* }) => {
        $crate::result::boundary(|| -> $t { $($body)* })
    };
    ($($body:tt)*) => {
        $crate::result::boundary(|| -> $crate::result::FfiResult { $($body)* })
    };
}

mod args;
pub mod config;
pub mod endpoints;
pub mod engine;
pub mod events;
pub mod identity;
pub mod json;
pub mod log;
pub mod requests;
pub mod result;
pub mod server;
pub mod settings;

use std::ffi::c_char;

/// The library version as a NUL-terminated UTF-8 string with static lifetime.
///
/// Ownership: static; do not free it. Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn sb_version() -> *const c_char {
    ffi!(-> *const c_char { concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast() })
}
