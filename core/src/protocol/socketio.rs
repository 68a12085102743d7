//! Socket.IO v5 packet codec: text in, packets out, no IO.
//!
//! Wire form: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`. Binary
//! packets (`5`, `6`) announce how many binary Engine.IO messages follow; inside the JSON,
//! `{"_placeholder":true,"num":N}` marks where attachment `N` belongs. This codec keeps the
//! placeholders as they are and hands the attachments alongside, so that a relay can forward
//! them without copying.

use serde::Serialize;
use serde_json::Value;
use std::io::Write;

/// Most binary attachments one packet may announce.
pub const MAX_ATTACHMENTS: usize = 256;

/// The packet types of Socket.IO v5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// `0`: connect to a namespace (client: with auth data; server: with `{sid}`).
    Connect,
    /// `1`: disconnect from a namespace.
    Disconnect,
    /// `2`: an event: `["name", ...args]`.
    Event,
    /// `3`: an acknowledgement: `[...args]`.
    Ack,
    /// `4`: a refused connection: `{message, data?}`.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketKind {
    fn from_digit(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> u8 {
        match self {
            Self::Connect => b'0',
            Self::Disconnect => b'1',
            Self::Event => b'2',
            Self::Ack => b'3',
            Self::ConnectError => b'4',
            Self::BinaryEvent => b'5',
            Self::BinaryAck => b'6',
        }
    }

    /// Whether attachments follow this packet.
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// One decoded Socket.IO packet (attachments not yet collected).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketKind,
    /// The namespace, `/` when the packet named none.
    pub nsp: String,
    /// The acknowledgement id, when the sender wants one.
    pub id: Option<u64>,
    /// How many binary attachments follow (binary kinds only).
    pub attachments: usize,
    /// The JSON data, when the packet has any.
    pub data: Option<Value>,
}

/// Why a text could not be decoded into a Socket.IO packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text was empty.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type.
    #[error("unknown packet type")]
    UnknownType,
    /// The attachment count was missing, not a number, or too large.
    #[error("invalid attachment count")]
    InvalidAttachments,
    /// The ack id was out of range.
    #[error("invalid ack id")]
    InvalidAckId,
    /// The data was not valid JSON.
    #[error("invalid JSON data")]
    InvalidJson,
    /// The data's shape does not fit the packet type (e.g. an event that is not an array
    /// starting with a string name).
    #[error("invalid payload for packet type")]
    InvalidPayload,
}

impl Packet {
    /// Decodes one packet from the text of an Engine.IO message.
    pub fn decode(text: &str) -> Result<Packet, DecodeError> {
        let bytes = text.as_bytes();
        let kind = PacketKind::from_digit(*bytes.first().ok_or(DecodeError::Empty)?)
            .ok_or(DecodeError::UnknownType)?;
        let mut pos = 1;

        let mut attachments = 0;
        if kind.is_binary() {
            let digits = count_digits(&bytes[pos..]);
            if digits == 0 || bytes.get(pos + digits) != Some(&b'-') {
                return Err(DecodeError::InvalidAttachments);
            }
            attachments = text[pos..pos + digits]
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= MAX_ATTACHMENTS)
                .ok_or(DecodeError::InvalidAttachments)?;
            pos += digits + 1;
        }

        let mut nsp = String::from("/");
        if bytes.get(pos) == Some(&b'/') {
            let end = bytes[pos..]
                .iter()
                .position(|&b| b == b',')
                .map_or(bytes.len(), |i| pos + i);
            nsp = text[pos..end].to_owned();
            pos = (end + 1).min(bytes.len());
        }

        let digits = count_digits(&bytes[pos..]);
        let id = if digits > 0 {
            let id = text[pos..pos + digits]
                .parse::<u64>()
                .map_err(|_| DecodeError::InvalidAckId)?;
            pos += digits;
            Some(id)
        } else {
            None
        };

        let rest = &text[pos..];
        let data = if rest.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Value>(rest).map_err(|_| DecodeError::InvalidJson)?)
        };

        let packet = Packet {
            kind,
            nsp,
            id,
            attachments,
            data,
        };
        packet.validate()?;
        Ok(packet)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        let ok = match self.kind {
            PacketKind::Connect => matches!(self.data, None | Some(Value::Object(_))),
            PacketKind::Disconnect => self.data.is_none(),
            PacketKind::Event | PacketKind::BinaryEvent => matches!(
                &self.data,
                Some(Value::Array(a)) if matches!(a.first(), Some(Value::String(_)))
            ),
            PacketKind::Ack | PacketKind::BinaryAck => {
                self.id.is_some() && matches!(self.data, Some(Value::Array(_)))
            }
            PacketKind::ConnectError => matches!(self.data, Some(Value::Object(_))),
        };
        if ok {
            Ok(())
        } else {
            Err(DecodeError::InvalidPayload)
        }
    }
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Writes a packet's wire form into `out`.
///
/// `data` is serialized straight into the buffer, so a broadcast encodes its JSON once.
pub fn write_packet<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    kind: PacketKind,
    nsp: &str,
    id: Option<u64>,
    attachments: usize,
    data: Option<&T>,
) {
    out.push(kind.digit());
    if kind.is_binary() {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{attachments}-");
    }
    if nsp != "/" {
        out.extend_from_slice(nsp.as_bytes());
        out.push(b',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
    if let Some(data) = data {
        // Serializing `Value`s and plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, data);
    }
}

/// Whether `value` is a binary placeholder `{"_placeholder":true,"num":N}`, and its `N`.
pub fn placeholder_index(value: &Value) -> Option<usize> {
    let obj = value.as_object()?;
    if obj.get("_placeholder")?.as_bool()? {
        obj.get("num")?.as_u64().map(|n| n as usize)
    } else {
        None
    }
}

/// Builds the placeholder JSON for attachment `num`.
pub fn placeholder(num: usize) -> Value {
    serde_json::json!({ "_placeholder": true, "num": num })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode(
        kind: PacketKind,
        nsp: &str,
        id: Option<u64>,
        att: usize,
        data: Option<Value>,
    ) -> String {
        let mut out = Vec::new();
        write_packet(&mut out, kind, nsp, id, att, data.as_ref());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn round_trips() {
        let cases = [
            (
                PacketKind::Connect,
                "/",
                None,
                0,
                Some(json!({"token": "x"})),
            ),
            (PacketKind::Connect, "/admin", None, 0, None),
            (PacketKind::Disconnect, "/admin", None, 0, None),
            (PacketKind::Event, "/", None, 0, Some(json!(["hello", 1]))),
            (
                PacketKind::Event,
                "/chat",
                Some(12),
                0,
                Some(json!(["hi", {"a": [1]}])),
            ),
            (PacketKind::Ack, "/", Some(3), 0, Some(json!([]))),
            (
                PacketKind::ConnectError,
                "/",
                None,
                0,
                Some(json!({"message": "no"})),
            ),
            (
                PacketKind::BinaryEvent,
                "/",
                Some(7),
                2,
                Some(json!(["up", placeholder(0), placeholder(1)])),
            ),
            (
                PacketKind::BinaryAck,
                "/x",
                Some(1),
                1,
                Some(json!([placeholder(0)])),
            ),
        ];
        for (kind, nsp, id, att, data) in cases {
            let text = encode(kind, nsp, id, att, data.clone());
            let p = Packet::decode(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                p,
                Packet {
                    kind,
                    nsp: nsp.to_owned(),
                    id,
                    attachments: att,
                    data
                },
                "{text}"
            );
        }
    }

    #[test]
    fn known_wire_forms() {
        assert_eq!(
            encode(PacketKind::Event, "/", Some(1), 0, Some(json!(["a"]))),
            r#"21["a"]"#
        );
        assert_eq!(
            encode(
                PacketKind::BinaryEvent,
                "/",
                None,
                1,
                Some(json!(["a", placeholder(0)]))
            ),
            r#"51-["a",{"_placeholder":true,"num":0}]"#
        );
        let p = Packet::decode("0/custom,").unwrap();
        assert_eq!((p.nsp.as_str(), p.data), ("/custom", None));
        assert_eq!(placeholder_index(&placeholder(3)), Some(3));
        assert_eq!(placeholder_index(&json!({"num": 3})), None);
    }

    #[test]
    fn malformed_packets_are_errors() {
        use DecodeError::*;
        for (text, err) in [
            ("", Empty),
            ("9", UnknownType),
            ("2", InvalidPayload),
            ("2{}", InvalidPayload),
            ("2[1]", InvalidPayload),
            ("2[]", InvalidPayload),
            ("2[\"a\"", InvalidJson),
            ("3[1]", InvalidPayload),
            ("1{}", InvalidPayload),
            ("0[]", InvalidPayload),
            ("5[\"a\"]", InvalidAttachments),
            ("5x-[\"a\"]", InvalidAttachments),
            ("599999-[\"a\"]", InvalidAttachments),
            ("299999999999999999999999[\"a\"]", InvalidAckId),
        ] {
            assert_eq!(Packet::decode(text), Err(err), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn random_text_never_panics(text: String) {
            let _ = Packet::decode(&text);
        }

        #[test]
        fn random_prefixed_text_never_panics(kind in 0u8..7, rest: String) {
            let _ = Packet::decode(&format!("{}{}", kind, rest));
        }
    }
}
