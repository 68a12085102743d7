//! The frame every message between nodes travels in, and the codec helpers the features
//! write their own message bodies with.
//!
//! A message is `version, kind, origin, body`: the broker reads the header (to drop its
//! own messages and hand the rest to the sinks); each feature owns its kinds and the layout
//! of their bodies (Socket.IO broadcasts and hand-overs in `socketio`, SSE and user events
//! in `chat`, document traffic in `yjs`). Messages come from the network: a malformed one
//! is an error, never a panic.

use bytes::{BufMut, Bytes, BytesMut};

/// Format version: a node drops messages of another version instead of misreading them.
pub const VERSION: u8 = 1;

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// It ends before its fields do.
    #[error("cluster envelope is truncated")]
    Truncated,
    /// Another format version or an unknown kind.
    #[error("cluster envelope has unknown version {version} or kind {kind}")]
    Unknown {
        /// The version byte.
        version: u8,
        /// The kind byte.
        kind: u8,
    },
    /// A text field is not UTF-8.
    #[error("cluster envelope has a field that is not UTF-8")]
    NotUtf8,
}

/// A message another node sent, its header read.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The sending node's id.
    pub origin: String,
    /// Which feature's message it is (the feature that defines the kind decodes `body`).
    pub kind: u8,
    /// The feature's encoding of the message.
    pub body: Bytes,
}

impl Message {
    /// Reads the header of a message from the network.
    pub fn parse(data: &Bytes) -> Result<Message, WireError> {
        let mut r = Reader::new(data);
        let version = r.u8()?;
        let kind = r.u8()?;
        if version != VERSION {
            return Err(WireError::Unknown { version, kind });
        }
        let origin = r.string()?;
        Ok(Message {
            origin,
            kind,
            body: r.rest(),
        })
    }

    /// A reader of the body.
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(&self.body)
    }

    /// The error a feature reports for a kind it owns but cannot read (a newer node's).
    pub fn unknown(&self, kind: u8) -> WireError {
        WireError::Unknown {
            version: VERSION,
            kind,
        }
    }
}

/// Starts a message of `kind` from node `origin`: the header is written, the feature
/// appends its body with [`Writer`]'s methods and sends [`Writer::finish`].
pub struct Writer(BytesMut);

impl Writer {
    /// A message of `kind` sent by `origin`.
    pub fn new(kind: u8, origin: &str) -> Self {
        let mut out = BytesMut::with_capacity(128);
        out.put_u8(VERSION);
        out.put_u8(kind);
        let mut w = Writer(out);
        w.str(origin);
        w
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.put_u8(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.put_u16(v);
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.put_u32(v);
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.put_u64(v);
        self
    }

    /// Appends bytes with their `u32` length.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.put_u32(b.len() as u32);
        self.0.put_slice(b);
        self
    }

    /// Appends a string with its `u32` length.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Appends a list of strings with its `u32` count.
    pub fn strs<S: AsRef<str>>(&mut self, list: &[S]) -> &mut Self {
        self.0.put_u32(list.len() as u32);
        for s in list {
            self.str(s.as_ref());
        }
        self
    }

    /// The message, ready to publish.
    pub fn finish(self) -> Bytes {
        self.0.freeze()
    }
}

/// Reads the fields of a message body, in the order they were written.
pub struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a Bytes) -> Self {
        Reader { data, at: 0 }
    }

    /// How many bytes are left (to bound allocations by what the message can hold).
    pub fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated);
        }
        let range = self.at..self.at + n;
        self.at += n;
        Ok(range)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        let r = self.take(1)?;
        Ok(self.data[r.start])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        let r = self.take(2)?;
        Ok(u16::from_be_bytes([
            self.data[r.start],
            self.data[r.start + 1],
        ]))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let r = self.take(4)?;
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.data[r]);
        Ok(u32::from_be_bytes(b))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        let r = self.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.data[r]);
        Ok(u64::from_be_bytes(b))
    }

    /// Reads bytes written with their length (shared with the message, not copied).
    pub fn bytes(&mut self) -> Result<Bytes, WireError> {
        let n = self.u32()? as usize;
        let r = self.take(n)?;
        Ok(self.data.slice(r))
    }

    /// Reads a string.
    pub fn string(&mut self) -> Result<String, WireError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| WireError::NotUtf8)
    }

    /// Reads a list of strings.
    pub fn strings(&mut self) -> Result<Vec<String>, WireError> {
        let n = self.u32()? as usize;
        // Each string takes at least its 4-byte length: bound the allocation by what the
        // message can hold.
        let mut list = Vec::with_capacity(n.min(self.remaining() / 4));
        for _ in 0..n {
            list.push(self.string()?);
        }
        Ok(list)
    }

    /// The unread rest.
    pub fn rest(&mut self) -> Bytes {
        let rest = self.data.slice(self.at..);
        self.at = self.data.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips_and_every_truncation_is_an_error() {
        let mut w = Writer::new(42, "node-a");
        w.str("x").u64(7);
        let wire = w.finish();
        let m = Message::parse(&wire).unwrap();
        assert_eq!((m.origin.as_str(), m.kind), ("node-a", 42));
        let mut r = m.reader();
        assert_eq!(r.string().unwrap(), "x");
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.remaining(), 0);
        // The header alone: version, kind, origin (4 + 6).
        for len in 0..12 {
            assert!(Message::parse(&wire.slice(..len)).is_err(), "len {len}");
        }
        let mut other = wire.to_vec();
        other[0] = VERSION + 1;
        assert_eq!(
            Message::parse(&Bytes::from(other)),
            Err(WireError::Unknown {
                version: VERSION + 1,
                kind: 42
            })
        );
    }

    #[test]
    fn a_huge_count_is_truncated_not_an_allocation() {
        let data = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Reader::new(&data).strings(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&data).bytes(), Err(WireError::Truncated));
    }
}
