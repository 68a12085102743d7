//! Outbound frames, framed once.
//!
//! Server-to-client WebSocket frames are unmasked, so the whole frame of a broadcast (header
//! and payload) is the same bytes for every recipient. A [`Frame`] holds exactly those bytes,
//! with room for the header reserved in front of the payload when it is built, so building it
//! costs one allocation and sharing it costs a refcount. A long-polling recipient takes the
//! payload slice of the same buffer.

use bytes::Bytes;

/// Largest WebSocket frame header a server writes (no mask): 2 + 8 bytes.
const MAX_HEADER: usize = 10;

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_BINARY: u8 = 0x2;
const FIN: u8 = 0x80;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// An Engine.IO text packet (`4…`, `2`, `6`, …).
    Text,
    /// A binary Engine.IO message.
    Binary,
    /// A WebSocket control frame already in wire form (pong, close); WebSocket only.
    Control,
}

/// One outbound packet as the bytes of a complete WebSocket frame.
#[derive(Debug, Clone)]
pub struct Frame {
    wire: Bytes,
    header_len: u8,
    kind: FrameKind,
}

impl Frame {
    /// Starts a frame: returns a buffer with header room reserved; write the payload after it
    /// and call [`Frame::finish`].
    pub fn builder(payload_capacity: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(MAX_HEADER + payload_capacity);
        buf.resize(MAX_HEADER, 0);
        buf
    }

    /// Completes a frame started with [`Frame::builder`].
    pub fn finish(buf: Vec<u8>, kind: FrameKind) -> Frame {
        debug_assert!(buf.len() >= MAX_HEADER);
        let payload_len = buf.len() - MAX_HEADER;
        let mut header = [0u8; MAX_HEADER];
        let opcode = if kind == FrameKind::Binary {
            OPCODE_BINARY
        } else {
            OPCODE_TEXT
        };
        header[0] = FIN | opcode;
        let header_len = if payload_len < 126 {
            header[1] = payload_len as u8;
            2
        } else if payload_len <= u16::MAX as usize {
            header[1] = 126;
            header[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        } else {
            header[1] = 127;
            header[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        };
        let mut buf = buf;
        let start = MAX_HEADER - header_len;
        buf[start..MAX_HEADER].copy_from_slice(&header[..header_len]);
        let wire = Bytes::from(buf).slice(start..);
        Frame {
            wire,
            header_len: header_len as u8,
            kind,
        }
    }

    /// A frame whose payload is the given bytes (copied once, behind the header).
    pub fn from_payload(payload: &[u8], kind: FrameKind) -> Frame {
        let mut buf = Frame::builder(payload.len());
        buf.extend_from_slice(payload);
        Frame::finish(buf, kind)
    }

    /// A WebSocket control frame already in wire form.
    pub fn control(wire: Bytes) -> Frame {
        Frame {
            wire,
            header_len: 0,
            kind: FrameKind::Control,
        }
    }

    /// The complete WebSocket frame.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// The payload alone (shares the frame's buffer).
    pub fn payload(&self) -> Bytes {
        self.wire.slice(self.header_len as usize..)
    }

    /// What the frame carries.
    pub fn kind(&self) -> FrameKind {
        self.kind
    }

    /// Bytes this frame accounts for in an outbound queue.
    pub fn len(&self) -> usize {
        self.wire.len()
    }

    /// Whether the frame is empty (never, for a finished frame).
    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths_follow_rfc6455() {
        for (len, header) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            let f = Frame::from_payload(&vec![b'x'; len], FrameKind::Text);
            assert_eq!(f.wire().len(), len + header, "len {len}");
            assert_eq!(f.payload().len(), len);
            assert_eq!(f.wire()[0], 0x81);
        }
        let f = Frame::from_payload(&[1, 2], FrameKind::Binary);
        assert_eq!(&f.wire()[..], &[0x82, 2, 1, 2]);
        let f = Frame::from_payload(&[0; 300], FrameKind::Text);
        assert_eq!(&f.wire()[..4], &[0x81, 126, 1, 44]);
    }

    #[test]
    fn tungstenite_reads_our_frames() {
        use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
        for len in [5usize, 200, 70_000] {
            let f = Frame::from_payload(&vec![b'a'; len], FrameKind::Text);
            let mut cursor = std::io::Cursor::new(&f.wire()[..]);
            let (header, payload_len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final);
            assert_eq!(payload_len as usize, len);
            assert!(header.mask.is_none());
        }
    }
}
