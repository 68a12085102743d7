//! The Socket.IO decoder with binary attachments: the input is the packet's text, then
//! attachments, separated by NUL bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let Some(Ok(text)) = parts.next().map(std::str::from_utf8) else {
        return;
    };
    let attachments: Vec<Bytes> = parts.map(Bytes::copy_from_slice).collect();
    let _ = switchboard::testing::socketio_decode(text, &attachments);
});
