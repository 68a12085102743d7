//! The y-websocket wire format: y-protocols messages (sync, awareness, query-awareness, auth),
//! one message per WebSocket binary frame, as the JS client reads them.
//!
//! Pure codec glue, no IO: inbound bytes are decoded with yrs' own codecs; outbound messages
//! are written straight into a [`Frame`] buffer (header room reserved), so a broadcast is
//! encoded once and shared by every connection of the document.

use yrs::encoding::read::{Cursor, Error as ReadError, Read};
use yrs::sync::protocol::{
    MSG_AUTH, MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SYNC, PERMISSION_DENIED,
};
use yrs::sync::AwarenessUpdate;
use yrs::updates::decoder::Decode;
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
    // Decoded so that a malformed one is refused; the document answers with its whole state
    // and reads it only in the `testing` entry points (compiled with that feature).
    SyncStep1(#[cfg_attr(not(feature = "testing"), allow(dead_code))] StateVector),
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

/// Most messages one binary frame may hold. y-websocket sends one message per frame; each
/// message (a sync step 1 is 4 bytes) may cost the server a document's worth of work, so a
/// frame packing more is refused rather than handled in a loop.
pub const MAX_MESSAGES_PER_FRAME: usize = 16;

/// Why a client's message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not y-websocket messages.
    #[error("malformed y-websocket message: {0}")]
    Malformed(String),
    /// The frame holds more than [`MAX_MESSAGES_PER_FRAME`] messages.
    #[error("more than {MAX_MESSAGES_PER_FRAME} messages in one frame")]
    TooManyMessages,
}

/// Decodes a binary frame's payload (normally one message; up to [`MAX_MESSAGES_PER_FRAME`]
/// back to back are allowed; a truncated last one is dropped, as yrs' `MessageReader` does).
///
/// The framing is walked here rather than by `MessageReader` so that the entry counts a state
/// vector or an awareness update declares are checked against the bytes that follow before
/// yrs reserves room for them (see [`plausible_count`]).
pub fn decode(payload: &[u8]) -> Result<Vec<Inbound>, DecodeError> {
    let mut cursor = Cursor::new(payload);
    let mut out = Vec::with_capacity(1);
    while cursor.has_content() {
        if out.len() == MAX_MESSAGES_PER_FRAME {
            return Err(DecodeError::TooManyMessages);
        }
        match decode_one(&mut cursor) {
            Ok(message) => out.push(message),
            Err(ReadError::EndOfBuffer(_)) => break,
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        }
    }
    if out.is_empty() {
        return Err(DecodeError::Malformed("empty message".into()));
    }
    Ok(out)
}

fn decode_one(cursor: &mut Cursor<'_>) -> Result<Inbound, ReadError> {
    let tag: u8 = cursor.read_var()?;
    Ok(match tag {
        MSG_SYNC => {
            let kind: u8 = cursor.read_var()?;
            let buf = cursor.read_buf()?;
            match kind {
                SYNC_STEP1 => {
                    // Each entry: a client id and a clock, one byte at least each.
                    plausible_count(buf, 2)?;
                    Inbound::SyncStep1(guarded(|| StateVector::decode_v1(buf))?)
                }
                SYNC_STEP2 => Inbound::SyncStep2(buf.to_vec()),
                SYNC_UPDATE => Inbound::Update(buf.to_vec()),
                _ => return Err(ReadError::UnexpectedValue),
            }
        }
        MSG_AWARENESS => {
            let buf = cursor.read_buf()?;
            // Each entry: a client id, a clock and a length-prefixed JSON state.
            plausible_count(buf, 3)?;
            Inbound::Awareness(guarded(|| AwarenessUpdate::decode_v1(buf))?)
        }
        MSG_AUTH => {
            if cursor.read_var::<u8>()? == PERMISSION_DENIED {
                cursor.read_string()?;
            }
            Inbound::Ignored
        }
        MSG_QUERY_AWARENESS => Inbound::QueryAwareness,
        _ => {
            cursor.read_buf()?;
            Inbound::Ignored
        }
    })
}

/// Checks the entry count at the start of `buf` against the bytes that follow it, each entry
/// taking at least `min_entry` bytes. yrs reserves a hash map for the declared count before
/// reading the entries, and a hash map writes its control bytes at once: found by fuzzing, a
/// 10-byte sync step 1 could make the server touch hundreds of megabytes.
fn plausible_count(buf: &[u8], min_entry: usize) -> Result<(), ReadError> {
    let mut pos = 0;
    let count = read_var_u32(buf, &mut pos).ok_or(ReadError::InvalidVarInt)? as usize;
    if count > (buf.len() - pos) / min_entry {
        return Err(ReadError::Custom(format!(
            "{count} entries declared in {} bytes",
            buf.len()
        )));
    }
    Ok(())
}

/// Reads a lib0 variable-length unsigned integer (at most 32 bits) at `*pos`.
fn read_var_u32(buf: &[u8], pos: &mut usize) -> Option<u32> {
    let mut n: u64 = 0;
    for shift in (0..35).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return u32::try_from(n).ok();
        }
    }
    None
}

/// Decodes a client's update (v1 encoding), after checking the counts it declares up front.
///
/// yrs reserves memory for the declared number of clients (a hash map, whose control bytes
/// it writes at once) and of the first client's blocks before reading them: found by
/// fuzzing, a 40-byte update declaring 226 million blocks made it ask for 5.4 GB. Every
/// client entry takes at least 3 bytes and every block at least 1, so counts beyond the
/// bytes left are refused as malformed before yrs sees them.
pub fn decode_update(raw: &[u8]) -> Result<yrs::Update, DecodeError> {
    use yrs::updates::decoder::Decode;
    let mut pos = 0;
    let truncated = || DecodeError::Malformed("truncated update".into());
    let clients = read_var_u32(raw, &mut pos).ok_or_else(truncated)? as usize;
    if clients > (raw.len() - pos) / 3 {
        return Err(DecodeError::Malformed(format!(
            "update declares {clients} clients"
        )));
    }
    if clients > 0 {
        let blocks = read_var_u32(raw, &mut pos).ok_or_else(truncated)? as usize;
        if blocks > raw.len() - pos {
            return Err(DecodeError::Malformed(format!(
                "update declares {blocks} blocks"
            )));
        }
    }
    guarded(|| yrs::Update::decode_v1(raw)).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Runs a yrs decoder on a client's bytes. yrs asserts instead of returning an error on some
/// malformed input (found by the property tests: a client id wider than 53 bits in an
/// awareness update); here that is a malformed message, not a panic in the connection's task.
fn guarded<T>(decode: impl FnOnce() -> Result<T, ReadError>) -> Result<T, ReadError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|_| {
        Err(ReadError::Custom(
            "yrs could not decode it (it panicked)".into(),
        ))
    })
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

    #[test]
    fn a_client_id_wider_than_yrs_allows_is_a_malformed_message() {
        // Found by tests/decoders_prop.rs: an awareness update whose client id has more than
        // 53 bits made yrs' ClientID::new assert.
        let mut payload = vec![1, 43, 1, 128, 128, 128, 128, 128, 128, 128, 16];
        payload.extend(std::iter::repeat_n(0, 103));
        assert!(decode(&payload).is_err());
    }
    use yrs::sync::{Message, SyncMessage};
    use yrs::updates::decoder::Decode;
    use yrs::updates::decoder::DecoderV1;
    use yrs::{Doc, GetString, ReadTxn, Text, Transact};

    fn payload(f: &Frame) -> Vec<u8> {
        f.payload().to_vec()
    }

    #[test]
    fn state_vectors_and_awareness_declaring_more_than_they_hold_are_refused() {
        // Found by fuzzing (fuzz/ target yjs): a sync step 1 whose state vector declares
        // 2^28 entries in 5 bytes; yrs would reserve (and initialise) a table for them first.
        let step1 = [MSG_SYNC, SYNC_STEP1, 5, 0x80, 0x80, 0x80, 0x80, 0x01];
        let e = decode(&step1).unwrap_err();
        assert!(e.to_string().contains("entries declared"), "{e}");
        let awareness = [MSG_AWARENESS, 4, 0xff, 0xff, 0xff, 0x0f];
        let e = decode(&awareness).unwrap_err();
        assert!(e.to_string().contains("entries declared"), "{e}");
        // Real ones still decode.
        let sv = sync_step1(&StateVector::default());
        assert!(matches!(
            decode(&payload(&sv)).unwrap()[..],
            [Inbound::SyncStep1(_)]
        ));
    }

    #[test]
    fn updates_declaring_more_than_they_hold_are_refused() {
        // Found by fuzzing (fuzz/ target yjs): 98,303 clients, the first with 226 million
        // blocks, in 40 bytes.
        let oom = [
            0xff, 0xff, 0x05, 0xff, 0xff, 0xff, 0x6b, 0x73, 0x05, b'h', b'e', b'l', b'l', b'o',
        ];
        // Refused before yrs reserves anything (yrs would fail too, after the reservation).
        let refused =
            |raw: &[u8]| decode_update(raw).is_err_and(|e| e.to_string().contains("declares"));
        assert!(refused(&oom));
        assert!(
            refused(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]),
            "4 billion clients"
        );
        assert!(decode_update(&[]).is_err());
        // Real updates still decode.
        let doc = Doc::new();
        doc.get_or_insert_text("t")
            .insert(&mut doc.transact_mut(), 0, "hello");
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(decode_update(&update).is_ok());
        assert!(decode_update(&[0, 0]).is_ok(), "the empty update");
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
    fn a_frame_packing_more_messages_than_allowed_is_refused() {
        // Issue 16: one frame of N sync step 1s made the server encode the document N times.
        let step1 = [MSG_SYNC, SYNC_STEP1, 1, 0];
        let frame = |n: usize| step1.repeat(n);
        assert_eq!(
            decode(&frame(MAX_MESSAGES_PER_FRAME)).unwrap().len(),
            MAX_MESSAGES_PER_FRAME
        );
        assert_eq!(
            decode(&frame(MAX_MESSAGES_PER_FRAME + 1)).unwrap_err(),
            DecodeError::TooManyMessages
        );
        assert_eq!(
            decode(&frame(200)).unwrap_err(),
            DecodeError::TooManyMessages
        );
        // A truncated message after the last allowed one is still refused: the frame says it
        // holds more.
        let mut tail = frame(MAX_MESSAGES_PER_FRAME);
        tail.push(MSG_SYNC);
        assert_eq!(decode(&tail).unwrap_err(), DecodeError::TooManyMessages);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0, 9]).is_err());
        assert!(decode(&[0, 2, 50, 1]).is_err());
    }
}
