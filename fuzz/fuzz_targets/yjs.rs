//! The y-websocket message decoder on a binary frame's payload, and what a document does
//! with the messages (yrs' update decoder, state vectors, awareness).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = switchboard::testing::yjs_apply(data);
});
