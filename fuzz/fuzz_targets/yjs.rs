//! The y-websocket message decoder on a binary frame's payload, and what a document does
//! with the messages (yrs' update decoder, state vectors, awareness).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The engine catches yrs' panics on crafted documents (and refuses the update or leaves
    // unmergeable pending structs out); libfuzzer-sys' panic hook would abort on those caught
    // panics too. Uncaught ones still reach libfuzzer-sys' own catch and abort.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let _ = switchboard::testing::yjs_apply(data);
});
