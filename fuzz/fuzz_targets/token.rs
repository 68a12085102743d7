//! Token extraction and verification: the input is the Socket.IO `auth.token` (empty: none),
//! the `Authorization` header value and the query string, separated by newlines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let auth = parts.next().and_then(|a| std::str::from_utf8(a).ok());
    let header = parts.next().unwrap_or_default();
    let query = parts
        .next()
        .and_then(|q| std::str::from_utf8(q).ok())
        .unwrap_or_default();
    let _ = switchboard::testing::token_verify(auth.filter(|a| !a.is_empty()), header, query);
});
