//! The y-websocket wire format: y-protocols messages (sync, awareness, query-awareness, auth),
//! one message per WebSocket binary frame, as the JS client reads them.
//!
//! Pure codec glue, no IO: inbound bytes are decoded with yrs' own codecs; outbound messages
//! are written straight into a [`Frame`] buffer (header room reserved), so a broadcast is
//! encoded once and shared by every connection of the document.

use yrs::encoding::read::Cursor;
use yrs::sync::protocol::{MessageReader, MSG_AWARENESS, MSG_SYNC};
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;
use yrs::StateVector;

use crate::protocol::frame::{Frame, FrameKind};

/// Tag of a sync step 1 inside a sync message.
const SYNC_STEP1: u8 = 0;
/// Tag of a sync step 2 inside a sync message.
const SYNC_STEP2: u8 = 1;
/// Tag of an update inside a sync message.
const SYNC_UPDATE: u8 = 2;

/// A message a client sent.
#[derive(Debug)]
pub enum Inbound {
    /// "Here is my state vector; send me what I miss."
    SyncStep1(StateVector),
    /// The answer to our sync step 1: an update (v1 encoding) with what we miss.
    SyncStep2(Vec<u8>),
    /// An incremental update (v1 encoding).
    Update(Vec<u8>),
    /// Awareness states of the clients behind this connection.
    Awareness(AwarenessUpdate),
    /// "Send me every awareness state you know."
    QueryAwareness,
    /// Auth and application-specific messages: ignored, as the reference server does.
    Ignored,
}

/// Why a client's message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed y-websocket message: {0}")]
pub struct DecodeError(String);

/// Decodes a binary frame's payload (normally one message; several back to back are allowed).
pub fn decode(payload: &[u8]) -> Result<Vec<Inbound>, DecodeError> {
    let mut decoder = DecoderV1::new(Cursor::new(payload));
    let mut out = Vec::with_capacity(1);
    for message in MessageReader::new(&mut decoder) {
        let message = message.map_err(|e| DecodeError(e.to_string()))?;
        out.push(match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => Inbound::SyncStep1(sv),
            Message::Sync(SyncMessage::SyncStep2(update)) => Inbound::SyncStep2(update),
            Message::Sync(SyncMessage::Update(update)) => Inbound::Update(update),
            Message::Awareness(update) => Inbound::Awareness(update),
            Message::AwarenessQuery => Inbound::QueryAwareness,
            Message::Auth(_) | Message::Custom(..) => Inbound::Ignored,
        });
    }
    if out.is_empty() {
        return Err(DecodeError("empty message".into()));
    }
    Ok(out)
}

/// Appends `n` as a lib0 variable-length unsigned integer.
fn write_var_uint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// A frame holding `tags` followed by `body` as a length-prefixed buffer.
fn frame(tags: &[u8], body: &[u8]) -> Frame {
    let mut buf = Frame::builder(tags.len() + 10 + body.len());
    buf.extend_from_slice(tags);
    write_var_uint(&mut buf, body.len() as u64);
    buf.extend_from_slice(body);
    Frame::finish(buf, FrameKind::Binary)
}

/// Sync step 1: our state vector.
pub fn sync_step1(sv: &StateVector) -> Frame {
    frame(&[MSG_SYNC, SYNC_STEP1], &sv.encode_v1())
}

/// Sync step 2: what the client misses (an update, v1 encoding).
pub fn sync_step2(update: &[u8]) -> Frame {
    frame(&[MSG_SYNC, SYNC_STEP2], update)
}

/// An update for every connection of a document.
pub fn sync_update(update: &[u8]) -> Frame {
    frame(&[MSG_SYNC, SYNC_UPDATE], update)
}

/// Awareness states, already encoded (see [`awareness`]).
pub fn awareness_encoded(update: &[u8]) -> Frame {
    frame(&[MSG_AWARENESS], update)
}

/// Awareness states.
pub fn awareness(update: &AwarenessUpdate) -> Frame {
    awareness_encoded(&update.encode_v1())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, ReadTxn, Text, Transact};

    fn payload(f: &Frame) -> Vec<u8> {
        f.payload().to_vec()
    }

    #[test]
    fn var_uints_match_lib0() {
        let mut b = Vec::new();
        for n in [0u64, 1, 127, 128, 300, 1 << 21] {
            b.clear();
            write_var_uint(&mut b, n);
            let mut d = DecoderV1::new(Cursor::new(&b));
            let back: u64 = yrs::encoding::read::Read::read_var(&mut d).unwrap();
            assert_eq!(back, n);
        }
        b.clear();
        write_var_uint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }

    #[test]
    fn our_frames_decode_as_yrs_messages() {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "hello");
        let sv = doc.transact().state_vector();
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());

        let f = sync_step1(&sv);
        assert_eq!(f.kind(), FrameKind::Binary);
        assert_eq!(
            Message::decode_v1(&payload(&f)).unwrap(),
            Message::Sync(SyncMessage::SyncStep1(sv.clone()))
        );
        assert_eq!(
            Message::decode_v1(&payload(&sync_step2(&update))).unwrap(),
            Message::Sync(SyncMessage::SyncStep2(update.clone()))
        );
        assert_eq!(
            Message::decode_v1(&payload(&sync_update(&update))).unwrap(),
            Message::Sync(SyncMessage::Update(update.clone()))
        );

        // What a client sends decodes into what the server handles.
        let inbound = decode(&payload(&sync_update(&update))).unwrap();
        let [Inbound::Update(u)] = &inbound[..] else {
            panic!("{inbound:?}")
        };
        let other = Doc::new();
        other
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(u).unwrap())
            .unwrap();
        let t = other.get_or_insert_text("t");
        assert_eq!(t.get_string(&other.transact()), "hello");
    }

    #[test]
    fn awareness_and_queries() {
        let mut a = yrs::sync::Awareness::new(Doc::new());
        a.set_local_state_raw(r#"{"user":"alice"}"#);
        let update = a.update().unwrap();
        let inbound = decode(&payload(&awareness(&update))).unwrap();
        let [Inbound::Awareness(back)] = &inbound[..] else {
            panic!("{inbound:?}")
        };
        assert_eq!(back, &update);
        assert!(matches!(
            decode(&[3]).unwrap()[..],
            [Inbound::QueryAwareness]
        ));
        // Auth (permission granted) is ignored.
        assert!(matches!(decode(&[2, 1]).unwrap()[..], [Inbound::Ignored]));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0, 9]).is_err());
        assert!(decode(&[0, 2, 50, 1]).is_err());
    }
}
