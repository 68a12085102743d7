//! What one node sends the others through a room channel, in a compact binary form.
//!
//! A broadcast is encoded into an envelope once on the node it starts from; every other
//! node decodes it once and encodes its own Socket.IO frames once (its recovery offsets are
//! its own), whatever the number of local recipients. Envelopes come from the network: a
//! malformed one is an error, never a panic.

use bytes::{BufMut, Bytes, BytesMut};

/// Format version: a node drops envelopes of another version instead of misreading them.
const VERSION: u8 = 1;

const KIND_SOCKET_IO: u8 = 1;
const KIND_SSE: u8 = 2;
const KIND_DISCONNECT_USER: u8 = 3;
const KIND_YJS: u8 = 4;
const KIND_RECOVERY_REQUEST: u8 = 5;
const KIND_RECOVERY_REPLY: u8 = 6;
const KIND_SOCKETS_REQUEST: u8 = 7;
const KIND_SOCKETS_REPLY: u8 = 8;

/// What a [`Envelope::Yjs`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YjsKind {
    /// A Yjs update (v1 encoding) that changed the document on the sending node.
    Update = 1,
    /// A y-protocols awareness update.
    Awareness = 2,
    /// "I just loaded the document (or got back to the cluster)": the payload is the
    /// sender's state vector (v1). Holders answer with the update it misses, their
    /// awareness, and a [`YjsKind::Query`] of their own.
    Hello = 3,
    /// "Send me what I miss": the payload is the sender's state vector (v1); holders answer
    /// with an update only (no query back, so an exchange always ends).
    Query = 4,
}

impl YjsKind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => YjsKind::Update,
            2 => YjsKind::Awareness,
            3 => YjsKind::Hello,
            4 => YjsKind::Query,
            _ => return None,
        })
    }
}

/// A Socket.IO broadcast to rooms of a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketIoBroadcast {
    /// The namespace (`/`).
    pub namespace: String,
    /// The rooms it goes to (members of several get it once).
    pub rooms: Vec<String>,
    /// Which of `rooms` this copy was published to: a receiver delivers it only to members
    /// of that room that are in none of the rooms before it (their copies cover those), so a
    /// member of several rooms gets one copy across the cluster.
    pub channel: u16,
    /// Socket ids left out.
    pub except: Vec<String>,
    /// Rooms whose members are left out (all connections of one user, for example).
    pub except_rooms: Vec<String>,
    /// The event name.
    pub event: String,
    /// The arguments as a JSON array text, without the recovery offset.
    pub args: String,
    /// Binary attachments the arguments' placeholders point to.
    pub attachments: Vec<Bytes>,
}

/// A dropped Socket.IO session as the node that held it hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredSession {
    /// The socket id the client gets back.
    pub sid: String,
    /// The rooms it was in.
    pub rooms: Vec<String>,
    /// The authenticated user, as JSON (empty: anonymous).
    pub user: String,
    /// The auth payload of the original connect, as JSON.
    pub auth: String,
    /// The packets it missed, in order: (binary frame?, payload).
    pub frames: Vec<(bool, Bytes)>,
}

/// What travels between nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// A Socket.IO broadcast.
    SocketIo(SocketIoBroadcast),
    /// A server-sent event in wire form, for a room's or a user's SSE clients.
    Sse {
        /// True: `target` is a user id; false: a room.
        to_user: bool,
        /// The room or the user.
        target: String,
        /// The encoded event (`id:`/`event:`/`data:` lines).
        event: Bytes,
    },
    /// Disconnect every connection of a user.
    DisconnectUser {
        /// The user id.
        user: String,
    },
    /// Yjs traffic of one document, on the channel of the room `doc:<name>`.
    Yjs {
        /// The document's name.
        doc: String,
        /// What the payload is.
        kind: YjsKind,
        /// The update, awareness update or state vector.
        payload: Bytes,
    },
    /// To the node that held a dropped session: hand it over (connection state recovery
    /// of a client that came back through another node).
    RecoveryRequest {
        /// Matches the reply to the request.
        id: u64,
        /// The node waiting for the reply.
        reply_to: String,
        /// The namespace.
        namespace: String,
        /// The private session id the client presented.
        pid: String,
        /// The last offset the client saw, if any.
        offset: Option<String>,
    },
    /// The answer to a [`Envelope::RecoveryRequest`].
    RecoveryReply {
        /// The request's id.
        id: u64,
        /// The session, or `None` when it is unknown, expired or its packets are gone.
        session: Option<RecoveredSession>,
    },
    /// On a room's channel, so to every node with members in it: list them (Socket.IO's
    /// `fetchSockets`).
    SocketsRequest {
        /// Matches the replies to the request.
        id: u64,
        /// The node waiting for the replies.
        reply_to: String,
        /// The namespace.
        namespace: String,
        /// The room.
        room: String,
    },
    /// One node's answer to a [`Envelope::SocketsRequest`].
    SocketsReply {
        /// The request's id.
        id: u64,
        /// The node's sockets in the room: a JSON array of `{id, user, rooms}`.
        sockets: String,
    },
}

/// A malformed envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
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

/// An envelope with the node it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The sending node's id.
    pub origin: String,
    /// What it sent.
    pub envelope: Envelope,
}

impl Envelope {
    /// Encodes the envelope as sent by node `origin`.
    pub fn encode(&self, origin: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(128);
        out.put_u8(VERSION);
        match self {
            Envelope::SocketIo(b) => {
                out.put_u8(KIND_SOCKET_IO);
                put_str(&mut out, origin);
                put_str(&mut out, &b.namespace);
                put_strs(&mut out, &b.rooms);
                out.put_u16(b.channel);
                put_strs(&mut out, &b.except);
                put_strs(&mut out, &b.except_rooms);
                put_str(&mut out, &b.event);
                put_str(&mut out, &b.args);
                out.put_u32(b.attachments.len() as u32);
                for a in &b.attachments {
                    put_bytes(&mut out, a);
                }
            }
            Envelope::Sse {
                to_user,
                target,
                event,
            } => {
                out.put_u8(KIND_SSE);
                put_str(&mut out, origin);
                out.put_u8(u8::from(*to_user));
                put_str(&mut out, target);
                put_bytes(&mut out, event);
            }
            Envelope::DisconnectUser { user } => {
                out.put_u8(KIND_DISCONNECT_USER);
                put_str(&mut out, origin);
                put_str(&mut out, user);
            }
            Envelope::RecoveryRequest {
                id,
                reply_to,
                namespace,
                pid,
                offset,
            } => {
                out.put_u8(KIND_RECOVERY_REQUEST);
                put_str(&mut out, origin);
                out.put_u64(*id);
                put_str(&mut out, reply_to);
                put_str(&mut out, namespace);
                put_str(&mut out, pid);
                out.put_u8(u8::from(offset.is_some()));
                put_str(&mut out, offset.as_deref().unwrap_or_default());
            }
            Envelope::RecoveryReply { id, session } => {
                out.put_u8(KIND_RECOVERY_REPLY);
                put_str(&mut out, origin);
                out.put_u64(*id);
                out.put_u8(u8::from(session.is_some()));
                if let Some(s) = session {
                    put_str(&mut out, &s.sid);
                    put_strs(&mut out, &s.rooms);
                    put_str(&mut out, &s.user);
                    put_str(&mut out, &s.auth);
                    out.put_u32(s.frames.len() as u32);
                    for (binary, payload) in &s.frames {
                        out.put_u8(u8::from(*binary));
                        put_bytes(&mut out, payload);
                    }
                }
            }
            Envelope::SocketsRequest {
                id,
                reply_to,
                namespace,
                room,
            } => {
                out.put_u8(KIND_SOCKETS_REQUEST);
                put_str(&mut out, origin);
                out.put_u64(*id);
                put_str(&mut out, reply_to);
                put_str(&mut out, namespace);
                put_str(&mut out, room);
            }
            Envelope::SocketsReply { id, sockets } => {
                out.put_u8(KIND_SOCKETS_REPLY);
                put_str(&mut out, origin);
                out.put_u64(*id);
                put_str(&mut out, sockets);
            }
            Envelope::Yjs { doc, kind, payload } => {
                out.put_u8(KIND_YJS);
                put_str(&mut out, origin);
                put_str(&mut out, doc);
                out.put_u8(*kind as u8);
                put_bytes(&mut out, payload);
            }
        }
        out.freeze()
    }

    /// Decodes an envelope another node sent.
    pub fn decode(data: &Bytes) -> Result<Received, EnvelopeError> {
        let mut r = Reader { data, at: 0 };
        let version = r.u8()?;
        let kind = r.u8()?;
        if version != VERSION {
            return Err(EnvelopeError::Unknown { version, kind });
        }
        let origin = r.string()?;
        let envelope = match kind {
            KIND_SOCKET_IO => Envelope::SocketIo(SocketIoBroadcast {
                namespace: r.string()?,
                rooms: r.strings()?,
                channel: r.u16()?,
                except: r.strings()?,
                except_rooms: r.strings()?,
                event: r.string()?,
                args: r.string()?,
                attachments: {
                    let n = r.u32()? as usize;
                    // Each attachment takes at least its 4-byte length: bound the
                    // allocation by what the envelope can hold.
                    let mut list = Vec::with_capacity(n.min(r.remaining() / 4));
                    for _ in 0..n {
                        list.push(r.bytes()?);
                    }
                    list
                },
            }),
            KIND_SSE => Envelope::Sse {
                to_user: r.u8()? != 0,
                target: r.string()?,
                event: r.bytes()?,
            },
            KIND_DISCONNECT_USER => Envelope::DisconnectUser { user: r.string()? },
            KIND_RECOVERY_REQUEST => Envelope::RecoveryRequest {
                id: r.u64()?,
                reply_to: r.string()?,
                namespace: r.string()?,
                pid: r.string()?,
                offset: {
                    let present = r.u8()? != 0;
                    let offset = r.string()?;
                    present.then_some(offset)
                },
            },
            KIND_RECOVERY_REPLY => Envelope::RecoveryReply {
                id: r.u64()?,
                session: if r.u8()? == 0 {
                    None
                } else {
                    Some(RecoveredSession {
                        sid: r.string()?,
                        rooms: r.strings()?,
                        user: r.string()?,
                        auth: r.string()?,
                        frames: {
                            let n = r.u32()? as usize;
                            let mut frames = Vec::with_capacity(n.min(r.remaining() / 5));
                            for _ in 0..n {
                                frames.push((r.u8()? != 0, r.bytes()?));
                            }
                            frames
                        },
                    })
                },
            },
            KIND_SOCKETS_REQUEST => Envelope::SocketsRequest {
                id: r.u64()?,
                reply_to: r.string()?,
                namespace: r.string()?,
                room: r.string()?,
            },
            KIND_SOCKETS_REPLY => Envelope::SocketsReply {
                id: r.u64()?,
                sockets: r.string()?,
            },
            KIND_YJS => {
                let doc = r.string()?;
                let sub = r.u8()?;
                // An unknown sub-kind (a newer node's) is reported with its own byte.
                let kind =
                    YjsKind::from_u8(sub).ok_or(EnvelopeError::Unknown { version, kind: sub })?;
                Envelope::Yjs {
                    doc,
                    kind,
                    payload: r.bytes()?,
                }
            }
            _ => return Err(EnvelopeError::Unknown { version, kind }),
        };
        Ok(Received { origin, envelope })
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

fn put_str(out: &mut BytesMut, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_strs(out: &mut BytesMut, list: &[String]) {
    out.put_u32(list.len() as u32);
    for s in list {
        put_str(out, s);
    }
}

struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, EnvelopeError> {
        if self.remaining() < n {
            return Err(EnvelopeError::Truncated);
        }
        let range = self.at..self.at + n;
        self.at += n;
        Ok(range)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        let r = self.take(1)?;
        Ok(self.data[r.start])
    }

    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        let r = self.take(2)?;
        Ok(u16::from_be_bytes([
            self.data[r.start],
            self.data[r.start + 1],
        ]))
    }

    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        let r = self.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.data[r]);
        Ok(u64::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        let r = self.take(4)?;
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.data[r]);
        Ok(u32::from_be_bytes(b))
    }

    fn bytes(&mut self) -> Result<Bytes, EnvelopeError> {
        let n = self.u32()? as usize;
        let r = self.take(n)?;
        Ok(self.data.slice(r))
    }

    fn string(&mut self) -> Result<String, EnvelopeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| EnvelopeError::NotUtf8)
    }

    fn strings(&mut self) -> Result<Vec<String>, EnvelopeError> {
        let n = self.u32()? as usize;
        let mut list = Vec::with_capacity(n.min(self.remaining() / 4));
        for _ in 0..n {
            list.push(self.string()?);
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Envelope> {
        vec![
            Envelope::SocketIo(SocketIoBroadcast {
                namespace: "/".into(),
                rooms: vec!["lobby".into(), "team".into()],
                channel: 1,
                except: vec!["sid1".into()],
                except_rooms: vec!["user:alice".into()],
                event: "typing".into(),
                args: r#"[{"roomId":"lobby","isTyping":true}]"#.into(),
                attachments: vec![Bytes::from_static(&[0, 1, 2])],
            }),
            Envelope::Sse {
                to_user: true,
                target: "bob".into(),
                event: Bytes::from_static(b"event: notification\ndata: {}\n\n"),
            },
            Envelope::DisconnectUser {
                user: "mallory".into(),
            },
            Envelope::RecoveryRequest {
                id: 7,
                reply_to: "node-b".into(),
                namespace: "/".into(),
                pid: "pid1".into(),
                offset: Some("boot.12".into()),
            },
            Envelope::RecoveryReply {
                id: 7,
                session: Some(RecoveredSession {
                    sid: "sid1".into(),
                    rooms: vec!["lobby".into()],
                    user: r#"{"id":"alice","username":"Alice"}"#.into(),
                    auth: "{}".into(),
                    frames: vec![
                        (false, Bytes::from_static(b"42[\"m\"]")),
                        (true, Bytes::from_static(&[1])),
                    ],
                }),
            },
            Envelope::RecoveryReply {
                id: 8,
                session: None,
            },
            Envelope::SocketsRequest {
                id: 9,
                reply_to: "node-b".into(),
                namespace: "/".into(),
                room: "lobby".into(),
            },
            Envelope::SocketsReply {
                id: 9,
                sockets: r#"[{"id":"s1","user":null,"rooms":["lobby"]}]"#.into(),
            },
            Envelope::Yjs {
                doc: "notes/é".into(),
                kind: YjsKind::Update,
                payload: Bytes::from_static(&[1, 1, 5, 0, 4, 1, 1, 116, 1, 120, 0]),
            },
            Envelope::Yjs {
                doc: "notes".into(),
                kind: YjsKind::Hello,
                payload: Bytes::new(),
            },
        ]
    }

    #[test]
    fn round_trips() {
        for e in samples() {
            let wire = e.encode("node-a");
            let back = Envelope::decode(&wire).expect("decodes");
            assert_eq!(back.origin, "node-a");
            assert_eq!(back.envelope, e);
        }
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        for e in samples() {
            let wire = e.encode("node-a");
            for len in 0..wire.len() {
                assert!(Envelope::decode(&wire.slice(..len)).is_err(), "len {len}");
            }
            for i in 0..wire.len() {
                let mut bad = wire.to_vec();
                bad[i] ^= 0xff;
                let _ = Envelope::decode(&Bytes::from(bad));
            }
        }
        let huge_count =
            Bytes::from_static(&[VERSION, KIND_DISCONNECT_USER, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Envelope::decode(&huge_count), Err(EnvelopeError::Truncated));
    }

    #[test]
    fn yjs_kinds_round_trip_and_unknown_ones_are_errors() {
        for kind in [
            YjsKind::Update,
            YjsKind::Awareness,
            YjsKind::Hello,
            YjsKind::Query,
        ] {
            let e = Envelope::Yjs {
                doc: "d".into(),
                kind,
                payload: Bytes::from_static(b"xyz"),
            };
            assert_eq!(Envelope::decode(&e.encode("n")).unwrap().envelope, e);
        }
        let mut wire = Envelope::Yjs {
            doc: "d".into(),
            kind: YjsKind::Query,
            payload: Bytes::new(),
        }
        .encode("n")
        .to_vec();
        // version, kind, origin (4 + 1), doc (4 + 1), then the sub-kind.
        wire[12] = 9;
        assert_eq!(
            Envelope::decode(&Bytes::from(wire)),
            Err(EnvelopeError::Unknown {
                version: VERSION,
                kind: 9
            })
        );
    }
}
