//! Request-head parsing: the input is a request target, a newline, then header lines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (target, headers) = text.split_once('\n').unwrap_or((text, ""));
    let _ = switchboard::testing::http_head(target, headers);
});
