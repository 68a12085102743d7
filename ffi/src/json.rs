//! Small helpers for C hosts without a JSON library, and freeing strings the library made.

use std::ffi::{c_char, CString};

use serde_json::Value;

use crate::args;
use crate::result::{sb_result, Error};

/// Looks up the value at `pointer` (RFC 6901: `""` is the whole document, `"/auth/token"` a
/// field, `"/0"` an array element) in the JSON text `json`, and writes it to `*out`: a
/// string value unquoted, any other value as JSON text.
///
/// Returns `SB_INVALID_JSON` when `json` does not parse, `SB_INVALID_ARGUMENT` when `pointer`
/// is neither empty nor starts with `/`, `SB_NOT_FOUND` when nothing is there (`*out` is then
/// NULL).
///
/// Ownership: `json` and `pointer` are borrowed; the caller owns `*out` and frees it with
/// `sb_string_free`. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_json_get(
    json: *const c_char,
    pointer: *const c_char,
    out: *mut *mut c_char,
) -> sb_result {
    ffi! {
        let out = args::out(out, "out")?;
        *out = std::ptr::null_mut();
        let doc = args::json(json, "json")?;
        let pointer = args::text(pointer, "pointer")?;
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(Error::new(
                sb_result::SB_INVALID_ARGUMENT,
                format!("`pointer` {pointer:?} must be empty or start with '/'"),
            ));
        }
        let found = doc.pointer(pointer).ok_or_else(|| {
            Error::new(sb_result::SB_NOT_FOUND, format!("nothing at {pointer:?}"))
        })?;
        let text = match found {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        *out = args::owned_string(text);
        Ok(())
    }
}

/// Frees a string the library handed over (`sb_engine_presence`, `sb_engine_stats`,
/// `sb_json_get`). NULL is ignored.
///
/// Ownership: takes `s`, which must not be used afterwards. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_string_free(s: *mut c_char) {
    ffi!(-> () {
        if !s.is_null() {
            // SAFETY: `s` came from CString::into_raw in `args::owned_string`.
            drop(CString::from_raw(s));
        }
    })
}
