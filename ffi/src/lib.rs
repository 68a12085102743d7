//! C ABI over the Switchboard engine.
//!
//! This crate builds `libswitchboard` (cdylib and staticlib); `include/switchboard.h` is
//! generated from it by cbindgen. The full API lands with the C ABI issue; for now it
//! exposes the library version so that C programs can link and check it.
#![deny(missing_docs)]

use std::ffi::c_char;

/// The library version as a NUL-terminated UTF-8 string with static lifetime.
///
/// Thread-safe; the returned pointer must not be freed.
#[no_mangle]
pub extern "C" fn sb_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
