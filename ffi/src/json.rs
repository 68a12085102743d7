//! Small helpers for C hosts without a JSON library, and freeing strings the library made.

use std::ffi::{c_char, CString};

use serde_json::Value;

use crate::args;
use crate::result::{sb_result, Error};

/// Finds the value at an RFC 6901 pointer, with the errors the C functions document.
unsafe fn lookup(json: *const c_char, pointer: *const c_char) -> Result<(Value, String), Error> {
    let doc = args::json(json, "json")?;
    let pointer = args::text(pointer, "pointer")?;
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(Error::new(
            sb_result::SB_INVALID_ARGUMENT,
            format!("`pointer` {pointer:?} must be empty or start with '/'"),
        ));
    }
    let found = doc
        .pointer(pointer)
        .ok_or_else(|| Error::new(sb_result::SB_NOT_FOUND, format!("nothing at {pointer:?}")))?;
    Ok((found.clone(), pointer.to_owned()))
}

/// Looks up the value at `pointer` (RFC 6901: `""` is the whole document, `"/auth/token"` a
/// field, `"/0"` an array element) in the JSON text `json`, and writes it to `*out` as JSON
/// text (a string stays quoted, ready to be put into other JSON).
///
/// Returns `SB_INVALID_JSON` when `json` does not parse, `SB_INVALID_ARGUMENT` when `pointer`
/// is neither empty nor starts with `/`, `SB_NOT_FOUND` when nothing is there; `*out` is
/// NULL after any failure.
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
        let (value, _) = lookup(json, pointer)?;
        *out = args::owned_string(value.to_string());
        Ok(())
    }
}

/// Looks up the string at `pointer` in the JSON text `json` (as `sb_json_get`) and writes it
/// to `*out` unquoted and unescaped (e.g. the token in an authentication handshake:
/// `sb_json_get_string(handshake_json, "/auth/token", &token)`).
///
/// Returns the codes of `sb_json_get`, and `SB_INVALID_JSON` when the value there is not a
/// string; `*out` is NULL after any failure.
///
/// Ownership: `json` and `pointer` are borrowed; the caller owns `*out` and frees it with
/// `sb_string_free`. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_json_get_string(
    json: *const c_char,
    pointer: *const c_char,
    out: *mut *mut c_char,
) -> sb_result {
    ffi! {
        let out = args::out(out, "out")?;
        *out = std::ptr::null_mut();
        match lookup(json, pointer)? {
            (Value::String(s), _) => {
                *out = args::owned_string(s);
                Ok(())
            }
            (other, pointer) => Err(Error::new(
                sb_result::SB_INVALID_JSON,
                format!("the value at {pointer:?} is not a string but {other}"),
            )),
        }
    }
}

/// Writes `text` to `*out` as a JSON string literal, quoted and escaped (`he said "hi"`
/// becomes `"he said \"hi\""`), to build JSON from C strings safely.
///
/// Ownership: `text` is borrowed; the caller owns `*out` and frees it with
/// `sb_string_free`. Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_json_quote(text: *const c_char, out: *mut *mut c_char) -> sb_result {
    ffi! {
        let out = args::out(out, "out")?;
        *out = std::ptr::null_mut();
        let text = args::text(text, "text")?;
        *out = args::owned_string(Value::String(text.to_owned()).to_string());
        Ok(())
    }
}

/// Frees a string the library handed over (`sb_engine_presence`, `sb_engine_rooms`,
/// `sb_engine_stats`, `sb_engine_publish`, `sb_json_get`, `sb_json_get_string`,
/// `sb_json_quote`). NULL is ignored.
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
