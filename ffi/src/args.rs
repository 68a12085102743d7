//! Checking what C passes in (NULL, UTF-8, JSON) and the ownership of the opaque objects C
//! holds, in one place.

use std::ffi::{c_char, CStr, CString};

use serde_json::Value;

use crate::result::{sb_result, Error};

/// An opaque object handed to C as a pointer it owns until it passes it to the `_free`
/// function. The object lives in a `Box`; C never sees its layout.
pub(crate) trait Handle: Sized {
    /// The C type's name, for error messages.
    const NAME: &'static str;

    /// Moves the object to the heap and hands its ownership to C.
    fn into_raw(self) -> *mut Self {
        Box::into_raw(Box::new(self))
    }

    /// Takes the ownership back from C (NULL gives `None`).
    ///
    /// # Safety
    /// `ptr` is NULL or came from [`Handle::into_raw`] and was not taken back yet.
    unsafe fn from_raw(ptr: *mut Self) -> Option<Box<Self>> {
        (!ptr.is_null()).then(|| Box::from_raw(ptr))
    }

    /// Borrows the object; NULL is `SB_NULL_ARGUMENT`.
    ///
    /// # Safety
    /// `ptr` is NULL or a live pointer from [`Handle::into_raw`].
    unsafe fn borrow<'a>(ptr: *const Self, arg: &str) -> Result<&'a Self, Error> {
        ptr.as_ref().ok_or_else(|| null(arg, Self::NAME))
    }

    /// Borrows the object mutably; NULL is `SB_NULL_ARGUMENT`.
    ///
    /// # Safety
    /// `ptr` is NULL or a live pointer from [`Handle::into_raw`], not used elsewhere now.
    unsafe fn borrow_mut<'a>(ptr: *mut Self, arg: &str) -> Result<&'a mut Self, Error> {
        ptr.as_mut().ok_or_else(|| null(arg, Self::NAME))
    }
}

fn null(arg: &str, what: &str) -> Error {
    Error::new(
        sb_result::SB_NULL_ARGUMENT,
        format!("`{arg}` is NULL; pass a valid {what}"),
    )
}

/// An out-parameter (`T *out`); NULL is `SB_NULL_ARGUMENT`.
///
/// # Safety
/// `ptr` is NULL or points to writable memory for a `T`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, arg: &str) -> Result<&'a mut T, Error> {
    ptr.as_mut()
        .ok_or_else(|| null(arg, "pointer to receive the result"))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, arg: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(null(arg, "NUL-terminated UTF-8 string"));
    }
    CStr::from_ptr(ptr).to_str().map_err(|e| {
        Error::new(
            sb_result::SB_INVALID_UTF8,
            format!(
                "`{arg}` is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// A string argument that must not be empty.
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn name<'a>(ptr: *const c_char, arg: &str) -> Result<&'a str, Error> {
    let s = text(ptr, arg)?;
    if s.is_empty() {
        return Err(Error::new(
            sb_result::SB_INVALID_ARGUMENT,
            format!("`{arg}` is empty"),
        ));
    }
    Ok(s)
}

/// A JSON text argument, parsed.
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn json(ptr: *const c_char, arg: &str) -> Result<Value, Error> {
    let s = text(ptr, arg)?;
    serde_json::from_str(s).map_err(|e| {
        Error::new(
            sb_result::SB_INVALID_JSON,
            format!("`{arg}` is not valid JSON: {e}"),
        )
    })
}

/// A byte buffer argument: NULL is allowed when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that live for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, arg: &str) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(
            arg,
            "buffer (NULL is allowed only with a length of 0)",
        ));
    }
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// A string for C to own: NUL-terminated, freed with `sb_string_free`.
pub(crate) fn owned_string(s: String) -> *mut c_char {
    // JSON text and the strings the engine hands out never hold NUL; replace it if one did.
    CString::new(s)
        .unwrap_or_else(|e| {
            let mut bytes = e.into_vec();
            bytes.retain(|b| *b != 0);
            CString::new(bytes).unwrap_or_default()
        })
        .into_raw()
}

/// A string for C to borrow: NUL-terminated (NUL bytes inside are dropped).
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new(s.replace('\0', "")).unwrap_or_default())
}
