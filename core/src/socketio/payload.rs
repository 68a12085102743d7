//! Event arguments with binary attachments, and encoding packets into shared frames.

use bytes::Bytes;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value;

use crate::protocol::frame::{Frame, FrameKind};
use crate::protocol::socketio::{self as sio, PacketKind};

/// The arguments of an event or ack, with their binary attachments.
///
/// Binary values appear in `args` as placeholders `{"_placeholder":true,"num":N}` pointing
/// into `attachments`; [`Payload::attach`] adds one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    /// The JSON arguments.
    pub args: Vec<Value>,
    /// The binary attachments the placeholders point to.
    pub attachments: Vec<Bytes>,
}

impl Payload {
    /// A payload of plain JSON arguments.
    pub fn new(args: Vec<Value>) -> Self {
        Payload {
            args,
            attachments: Vec::new(),
        }
    }

    /// Adds a binary attachment and returns the placeholder to put where it belongs.
    pub fn attach(&mut self, data: Bytes) -> Value {
        self.attachments.push(data);
        sio::placeholder(self.attachments.len() - 1)
    }

    /// The attachment a placeholder value points to.
    pub fn binary(&self, value: &Value) -> Option<&Bytes> {
        sio::placeholder_index(value).and_then(|i| self.attachments.get(i))
    }
}

/// Serializes as `[event, one?, ...rest, offset?]`: the array of an EVENT packet, written
/// straight into the frame buffer.
pub(crate) struct EventArray<'a, T: ?Sized> {
    pub event: &'a str,
    pub one: Option<&'a T>,
    pub rest: &'a [Value],
    pub offset: Option<&'a str>,
}

impl<T: Serialize + ?Sized> Serialize for EventArray<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = 1
            + usize::from(self.one.is_some())
            + self.rest.len()
            + usize::from(self.offset.is_some());
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(self.event)?;
        if let Some(one) = self.one {
            seq.serialize_element(one)?;
        }
        for v in self.rest {
            seq.serialize_element(v)?;
        }
        if let Some(offset) = self.offset {
            seq.serialize_element(offset)?;
        }
        seq.end()
    }
}

/// Serializes as `[one?, ...rest]`: an event's arguments alone, as another node receives
/// them (without the event name and this node's recovery offset).
pub(crate) struct ArgsArray<'a, T: ?Sized> {
    pub one: Option<&'a T>,
    pub rest: &'a [Value],
}

impl<T: Serialize + ?Sized> Serialize for ArgsArray<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(usize::from(self.one.is_some()) + self.rest.len()))?;
        if let Some(one) = self.one {
            seq.serialize_element(one)?;
        }
        for v in self.rest {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

/// Serializes as `[event, ...args, offset?]` from arguments another node encoded: they are
/// copied as they are, never parsed into values.
pub(crate) struct RawEventArray<'a> {
    pub event: &'a str,
    pub args: &'a [&'a serde_json::value::RawValue],
    pub offset: Option<&'a str>,
}

impl Serialize for RawEventArray<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = 1 + self.args.len() + usize::from(self.offset.is_some());
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(self.event)?;
        for a in self.args {
            seq.serialize_element(a)?;
        }
        if let Some(offset) = self.offset {
            seq.serialize_element(offset)?;
        }
        seq.end()
    }
}

/// Encodes one Socket.IO packet as a text frame (`4` + packet), framed once.
pub(crate) fn packet_frame<T: Serialize + ?Sized>(
    kind: PacketKind,
    nsp: &str,
    id: Option<u64>,
    attachments: usize,
    data: Option<&T>,
) -> Frame {
    let mut buf = Frame::builder(64);
    buf.push(b'4');
    sio::write_packet(&mut buf, kind, nsp, id, attachments, data);
    Frame::finish(buf, FrameKind::Text)
}

/// Encodes an event (with its attachments as extra binary frames).
pub(crate) fn event_frames<A: Serialize>(
    nsp: &str,
    id: Option<u64>,
    array: &A,
    attachments: &[Bytes],
) -> Vec<Frame> {
    let kind = if attachments.is_empty() {
        PacketKind::Event
    } else {
        PacketKind::BinaryEvent
    };
    let mut frames = Vec::with_capacity(1 + attachments.len());
    frames.push(packet_frame(kind, nsp, id, attachments.len(), Some(array)));
    frames.extend(
        attachments
            .iter()
            .map(|a| Frame::from_payload(a, FrameKind::Binary)),
    );
    frames
}

/// Encodes an ack with its attachments.
pub(crate) fn ack_frames(nsp: &str, id: u64, payload: &Payload) -> Vec<Frame> {
    let kind = if payload.attachments.is_empty() {
        PacketKind::Ack
    } else {
        PacketKind::BinaryAck
    };
    let mut frames = vec![packet_frame(
        kind,
        nsp,
        Some(id),
        payload.attachments.len(),
        Some(&payload.args),
    )];
    frames.extend(
        payload
            .attachments
            .iter()
            .map(|a| Frame::from_payload(a, FrameKind::Binary)),
    );
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_array_shapes() {
        let arr = EventArray::<Value> {
            event: "m",
            one: Some(&json!({"a": 1})),
            rest: &[json!(2)],
            offset: Some("o1"),
        };
        assert_eq!(
            serde_json::to_string(&arr).unwrap(),
            r#"["m",{"a":1},2,"o1"]"#
        );
        let f = packet_frame(PacketKind::Event, "/chat", Some(3), 0, Some(&arr));
        assert_eq!(&f.payload()[..], br#"42/chat,3["m",{"a":1},2,"o1"]"#);
    }

    #[test]
    fn binary_ack_frames() {
        let mut p = Payload::default();
        let ph = p.attach(Bytes::from_static(&[1, 2]));
        p.args.push(ph);
        let frames = ack_frames("/", 7, &p);
        assert_eq!(
            &frames[0].payload()[..],
            br#"461-7[{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(&frames[1].payload()[..], &[1, 2]);
        assert_eq!(p.binary(&p.args[0]).map(|b| &b[..]), Some(&[1u8, 2][..]));
    }
}
