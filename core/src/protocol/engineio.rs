//! Engine.IO v4 packet and payload codec: bytes in, packets out, no IO.
//!
//! A packet on the wire is one type digit followed by its data. WebSocket text frames and
//! polling payload entries carry text packets; WebSocket binary frames carry a binary message
//! with no type prefix; polling carries binary messages as `b` + base64. A polling payload
//! joins packets with the record separator `\x1e`.

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

/// The record separator that joins packets in a long-polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the handshake, with its JSON data. Only the server sends it.
    Open(Bytes),
    /// `1`: the transport is closing.
    Close,
    /// `2`: heartbeat request (or `2probe` during an upgrade).
    Ping(Bytes),
    /// `3`: heartbeat answer (or `3probe`).
    Pong(Bytes),
    /// `4`: a text message; the bytes are valid UTF-8.
    Message(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// `5`: the client completes an upgrade to WebSocket.
    Upgrade,
    /// `6`: no operation; releases a pending poll during an upgrade.
    Noop,
}

/// Why bytes could not be decoded into Engine.IO packets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet had no type character at all.
    #[error("empty packet")]
    Empty,
    /// The first character is not a known packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(u8),
    /// A text packet was not valid UTF-8.
    #[error("packet is not valid UTF-8")]
    InvalidUtf8,
    /// A `b`-prefixed polling entry did not hold valid base64.
    #[error("invalid base64 in binary packet")]
    InvalidBase64,
    /// A client sent a packet type only the server may send.
    #[error("packet type {0:?} is not allowed from a client")]
    NotFromClient(char),
}

impl Packet {
    /// Decodes one text packet (a WebSocket text frame or one polling payload entry).
    ///
    /// `text` must already be valid UTF-8 (a WebSocket text frame is; polling bodies are
    /// checked by [`decode_payload`]).
    pub fn decode_text(text: Bytes) -> Result<Packet, DecodeError> {
        let Some(&kind) = text.first() else {
            return Err(DecodeError::Empty);
        };
        let data = text.slice(1..);
        match kind {
            b'0' => Err(DecodeError::NotFromClient('0')),
            b'1' => Ok(Packet::Close),
            b'2' => Ok(Packet::Ping(data)),
            b'3' => Ok(Packet::Pong(data)),
            b'4' => Ok(Packet::Message(data)),
            b'5' => Ok(Packet::Upgrade),
            b'6' => Ok(Packet::Noop),
            other => Err(DecodeError::UnknownType(other)),
        }
    }

    /// Encodes a text packet (everything but [`Packet::Binary`]) into its wire form.
    pub fn encode_text(&self) -> Bytes {
        let (kind, data): (u8, &[u8]) = match self {
            Packet::Open(d) => (b'0', d),
            Packet::Close => (b'1', b""),
            Packet::Ping(d) => (b'2', d),
            Packet::Pong(d) => (b'3', d),
            Packet::Message(d) => (b'4', d),
            Packet::Upgrade => (b'5', b""),
            Packet::Noop => (b'6', b""),
            Packet::Binary(d) => return encode_binary_for_polling(d),
        };
        let mut out = BytesMut::with_capacity(1 + data.len());
        out.put_u8(kind);
        out.put_slice(data);
        out.freeze()
    }
}

/// Encodes a binary message as a polling payload entry: `b` + base64.
pub fn encode_binary_for_polling(data: &[u8]) -> Bytes {
    let mut out = String::with_capacity(1 + data.len().div_ceil(3) * 4);
    out.push('b');
    base64::engine::general_purpose::STANDARD.encode_string(data, &mut out);
    Bytes::from(out)
}

/// Decodes a long-polling request body into its packets.
///
/// Binary entries (`b` + base64) become [`Packet::Binary`]; everything else is a text packet.
pub fn decode_payload(body: Bytes) -> Result<Vec<Packet>, DecodeError> {
    if std::str::from_utf8(&body).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    let mut packets = Vec::new();
    let mut start = 0;
    while start <= body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == RECORD_SEPARATOR)
            .map_or(body.len(), |i| start + i);
        let entry = body.slice(start..end);
        packets.push(decode_payload_entry(entry)?);
        start = end + 1;
    }
    Ok(packets)
}

fn decode_payload_entry(entry: Bytes) -> Result<Packet, DecodeError> {
    if entry.first() == Some(&b'b') {
        let data = base64::engine::general_purpose::STANDARD
            .decode(&entry[1..])
            .map_err(|_| DecodeError::InvalidBase64)?;
        return Ok(Packet::Binary(Bytes::from(data)));
    }
    Packet::decode_text(entry)
}

/// Joins already-encoded polling entries with the record separator.
pub fn encode_payload<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    for (i, entry) in entries.into_iter().enumerate() {
        if i > 0 {
            out.put_u8(RECORD_SEPARATOR);
        }
        out.put_slice(entry);
    }
    out.freeze()
}

/// The handshake data the server sends in its `open` packet.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake<'a> {
    /// The session id.
    pub sid: &'a str,
    /// Transports the client may upgrade to.
    pub upgrades: &'a [&'a str],
    /// Milliseconds between server pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong.
    pub ping_timeout: u64,
    /// Largest payload the server accepts, in bytes.
    pub max_payload: usize,
}

impl Handshake<'_> {
    /// The complete `open` packet.
    pub fn to_packet(&self) -> Bytes {
        let mut out = b"0".to_vec();
        // Serializing a struct of strings and integers cannot fail.
        if serde_json::to_writer(&mut out, self).is_err() {
            out.truncate(1);
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn text_packets_round_trip() {
        for p in [
            Packet::Close,
            Packet::Ping(text("probe")),
            Packet::Pong(Bytes::new()),
            Packet::Message(text("hello é")),
            Packet::Upgrade,
            Packet::Noop,
        ] {
            assert_eq!(Packet::decode_text(p.encode_text()), Ok(p));
        }
    }

    #[test]
    fn payload_round_trip_with_binary() {
        let payload = encode_payload([
            &b"4hello"[..],
            &encode_binary_for_polling(&[1, 2, 3]),
            &b"2"[..],
        ]);
        assert_eq!(&payload[..], b"4hello\x1ebAQID\x1e2");
        assert_eq!(
            decode_payload(payload),
            Ok(vec![
                Packet::Message(text("hello")),
                Packet::Binary(Bytes::from_static(&[1, 2, 3])),
                Packet::Ping(Bytes::new()),
            ])
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(Packet::decode_text(Bytes::new()), Err(DecodeError::Empty));
        assert_eq!(
            Packet::decode_text(text("9")),
            Err(DecodeError::UnknownType(b'9'))
        );
        assert_eq!(
            Packet::decode_text(text("0{}")),
            Err(DecodeError::NotFromClient('0'))
        );
        assert_eq!(decode_payload(text("4a\x1e")), Err(DecodeError::Empty));
        assert_eq!(
            decode_payload(text("b!!!")),
            Err(DecodeError::InvalidBase64)
        );
        assert_eq!(
            decode_payload(Bytes::from_static(&[b'4', 0xff])),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn handshake_packet_has_the_v4_fields() {
        let p = Handshake {
            sid: "abc",
            upgrades: &["websocket"],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        }
        .to_packet();
        assert_eq!(
            &p[..],
            br#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data: Vec<u8>) {
            let _ = decode_payload(Bytes::from(data.clone()));
            if std::str::from_utf8(&data).is_ok() {
                let _ = Packet::decode_text(Bytes::from(data));
            }
        }
    }
}
