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

/// Major version of the API this header declares (semantic versioning). The shared
/// library's soname carries it: `libswitchboard.so.0`.
pub const SB_VERSION_MAJOR: u32 = 0;
/// Minor version of the API this header declares.
pub const SB_VERSION_MINOR: u32 = 1;
/// Patch version of the API this header declares.
pub const SB_VERSION_PATCH: u32 = 0;

/// The version of the library linked at run time, as a NUL-terminated UTF-8 string
/// `"MAJOR.MINOR.PATCH"` (e.g. `"0.1.0"`). Compare it with `SB_VERSION_MAJOR`,
/// `SB_VERSION_MINOR` and `SB_VERSION_PATCH`, the version of the header a program was
/// compiled against, to detect a mismatched installation.
///
/// Ownership: static; do not free it. Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn sb_version() -> *const c_char {
    ffi!(-> *const c_char { concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast() })
}

#[cfg(test)]
mod version_tests {
    use super::*;

    /// The header's constants are literals (cbindgen cannot evaluate `env!`): they must follow
    /// the crate version, which the workspace shares with the npm packages.
    #[test]
    fn header_constants_follow_the_crate_version() {
        let header = format!("{SB_VERSION_MAJOR}.{SB_VERSION_MINOR}.{SB_VERSION_PATCH}");
        assert_eq!(header, env!("CARGO_PKG_VERSION"));
        let runtime = unsafe { std::ffi::CStr::from_ptr(sb_version()) };
        assert_eq!(runtime.to_str().ok(), Some(env!("CARGO_PKG_VERSION")));
    }
}
