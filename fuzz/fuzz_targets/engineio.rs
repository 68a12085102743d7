//! The Engine.IO decoders: a WebSocket text frame and a long-polling body. A decoded text
//! packet encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::testing::protocol::engineio::Packet;

fuzz_target!(|data: &[u8]| {
    let (frame, _body) = switchboard::testing::engineio_decode(data);
    if let Some(Ok(packet)) = frame {
        if !matches!(packet, Packet::Binary(_) | Packet::Upgrade | Packet::Noop | Packet::Close) {
            assert_eq!(&packet.encode_text()[..], data);
        }
    }
});
