//! The frames of the plain-WebSocket protocol (`docs/websocket-protocol.md`) and their
//! translation to and from the Socket.IO packets the engine speaks inside: pure functions,
//! no IO.
//!
//! A `/ws` connection is a Socket.IO socket of the `/` namespace whose wire is JSON frames:
//! the client's frames become the Socket.IO packets a `socket.io-client` would send, and the
//! packets the engine queues for the socket become frames on the way out. So every rule of
//! the contract (access, limits, presence, recovery, the cluster, token expiry, host events)
//! is the one Socket.IO members get, written once.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::protocol::socketio::{Packet, PacketKind};

/// A frame a client sent.
#[derive(Debug)]
pub(crate) enum ClientFrame {
    /// `{"type":"auth","token":…,"sessionId"?:…,"offset"?:…}`.
    Auth(Resume),
    /// `{"type":"request","id"?:7,"event":"joinRoom","data"?:…}`.
    Request {
        id: Option<u64>,
        event: String,
        data: Option<Box<RawValue>>,
    },
    /// A frame of another type: answered with an error, the connection stays.
    Unknown,
}

/// What a client presents to authenticate and, optionally, to resume a session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The token (a frame's; a header's or the query's are found by the token lookup).
    pub token: Option<String>,
    /// The session to resume (`ready`'s `sessionId`).
    pub session_id: Option<String>,
    /// The offset of the last event received.
    pub offset: Option<String>,
}

/// Why a client frame was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// Not a JSON object with a string `type`, or a field of the wrong type.
    #[error("Malformed frame")]
    Malformed,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    token: Option<String>,
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
    offset: Option<String>,
    id: Option<u64>,
    event: Option<String>,
    data: Option<Box<RawValue>>,
}

/// Parses a client's text frame.
pub(crate) fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|_| FrameError::Malformed)?;
    Ok(match &*raw.kind {
        "auth" => ClientFrame::Auth(Resume {
            token: raw.token,
            session_id: raw.session_id,
            offset: raw.offset,
        }),
        "request" => ClientFrame::Request {
            id: raw.id,
            event: raw.event.ok_or(FrameError::Malformed)?,
            data: raw.data,
        },
        _ => ClientFrame::Unknown,
    })
}

/// The Socket.IO CONNECT packet a client presenting `resume` sends (`pid` and `offset` are
/// what `socket.io-client` presents to recover a session).
pub(crate) fn connect_packet(resume: &Resume) -> String {
    let mut auth = serde_json::Map::new();
    if let Some(token) = &resume.token {
        auth.insert("token".into(), token.as_str().into());
    }
    if let Some(pid) = &resume.session_id {
        auth.insert("pid".into(), pid.as_str().into());
    }
    if let Some(offset) = &resume.offset {
        auth.insert("offset".into(), offset.as_str().into());
    }
    format!("0{}", Value::Object(auth))
}

/// The Socket.IO EVENT packet of a request: `2<id>["event",data]`.
pub(crate) fn event_packet(id: Option<u64>, event: &str, data: Option<&RawValue>) -> String {
    let event = Value::from(event).to_string();
    let data_len = data.map_or(0, |d| d.get().len() + 1);
    let mut text = String::with_capacity(24 + event.len() + data_len);
    text.push('2');
    if let Some(id) = id {
        text.push_str(&id.to_string());
    }
    text.push('[');
    text.push_str(&event);
    if let Some(data) = data {
        text.push(',');
        text.push_str(data.get());
    }
    text.push(']');
    text
}

/// `{"type":"error","code":…,"message":…}`.
pub(crate) fn error_frame(code: &str, message: &str) -> String {
    json!({ "type": "error", "code": code, "message": message }).to_string()
}

/// `{"type":"reply","id":…,"error":{"code","message"}}`: a request refused before it
/// reached the contract.
pub(crate) fn reply_error(id: Option<u64>, code: &str, message: &str) -> String {
    json!({ "type": "reply", "id": id, "error": { "code": code, "message": message } }).to_string()
}

/// What the engine queued for the socket, as the plain-WebSocket writer handles it.
#[derive(Debug, PartialEq)]
pub(crate) enum Outbound {
    /// Nothing on this wire (Engine.IO's open, noop and pong packets, binary attachments).
    Skip,
    /// The heartbeat: a WebSocket ping.
    Ping,
    /// Socket.IO accepted the CONNECT: the writer sends `ready`.
    Ready,
    /// Socket.IO refused the CONNECT with this message.
    Refused(String),
    /// The server disconnected the socket.
    Disconnect,
    /// A frame to send; `expired` when it is the `error` that announces a token's expiry.
    Frame { text: String, expired: bool },
}

/// Translates one Engine.IO text packet the engine queued (`4` + a Socket.IO packet, `2`
/// for a ping, …) into what the plain-WebSocket client gets.
pub(crate) fn translate(payload: &[u8]) -> Outbound {
    let Ok(text) = std::str::from_utf8(payload) else {
        return Outbound::Skip;
    };
    match text.as_bytes().first() {
        Some(b'2') => return Outbound::Ping,
        Some(b'4') => {}
        _ => return Outbound::Skip,
    }
    let Ok(packet) = Packet::decode(&text[1..]) else {
        return Outbound::Skip;
    };
    match packet.kind {
        PacketKind::Connect => Outbound::Ready,
        PacketKind::ConnectError => Outbound::Refused(
            packet
                .data
                .as_ref()
                .and_then(|d| d.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("Unauthorized")
                .to_owned(),
        ),
        PacketKind::Disconnect => Outbound::Disconnect,
        PacketKind::Event | PacketKind::BinaryEvent => event(packet.data),
        PacketKind::Ack | PacketKind::BinaryAck => reply(packet.id, packet.data),
    }
}

/// Whether `s` is a recovery offset (`<boot>.<seq>`, see `socketio::recovery`).
fn is_offset(s: &str) -> bool {
    s.split_once('.').is_some_and(|(boot, seq)| {
        !boot.is_empty() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit())
    })
}

fn event(data: Option<Value>) -> Outbound {
    let Some(Value::Array(mut args)) = data else {
        return Outbound::Skip;
    };
    if args.is_empty() {
        return Outbound::Skip;
    }
    let name = match args.remove(0) {
        Value::String(s) => s,
        other => other.to_string(),
    };
    // Room broadcasts carry their recovery offset as the last argument; events have one
    // argument, so a second string argument in offset form is the offset.
    let offset = match args.last() {
        Some(Value::String(s)) if args.len() >= 2 && is_offset(s) => match args.pop() {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        _ => None,
    };
    let expired = name == "error"
        && args
            .first()
            .and_then(|d| d.get("message"))
            .and_then(Value::as_str)
            == Some("Token expired");
    let data = match args.len() {
        0 => Value::Null,
        1 => args.pop().unwrap_or(Value::Null),
        _ => Value::Array(args),
    };
    let mut frame = json!({ "type": "event", "event": name, "data": data });
    if let Some(offset) = offset {
        frame["offset"] = Value::String(offset);
    }
    Outbound::Frame {
        text: frame.to_string(),
        expired,
    }
}

fn reply(id: Option<u64>, data: Option<Value>) -> Outbound {
    let Some(Value::Array(mut args)) = data else {
        return Outbound::Skip;
    };
    let frame = match args.first() {
        None | Some(Value::Null) => {
            let result = if args.len() > 1 {
                args.swap_remove(1)
            } else {
                Value::Null
            };
            json!({ "type": "reply", "id": id, "result": result })
        }
        Some(_) => json!({ "type": "reply", "id": id, "error": args.swap_remove(0) }),
    };
    Outbound::Frame {
        text: frame.to_string(),
        expired: false,
    }
}

/// `{"type":"ready",…}`.
pub(crate) fn ready_frame(
    session_id: &str,
    user_id: &str,
    username: &str,
    offset: Option<&str>,
    resumed: bool,
) -> String {
    json!({
        "type": "ready",
        "sessionId": session_id,
        "userId": user_id,
        "username": username,
        "offset": offset,
        "resumed": resumed,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(out: Outbound) -> Value {
        match out {
            Outbound::Frame { text, .. } => serde_json::from_str(&text).unwrap(),
            other => panic!("not a frame: {other:?}"),
        }
    }

    #[test]
    fn parses_client_frames() {
        match parse(r#"{"type":"request","id":7,"event":"joinRoom","data":"lobby"}"#).unwrap() {
            ClientFrame::Request { id, event, data } => {
                assert_eq!(id, Some(7));
                assert_eq!(event, "joinRoom");
                assert_eq!(
                    event_packet(id, &event, data.as_deref()),
                    r#"27["joinRoom","lobby"]"#
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(r#"{"type":"auth","token":"t","sessionId":"s","offset":"b.3"}"#).unwrap() {
            ClientFrame::Auth(r) => {
                let packet: Value = serde_json::from_str(&connect_packet(&r)[1..]).unwrap();
                assert_eq!(packet, json!({"token":"t","pid":"s","offset":"b.3"}));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(r#"{"type":"x"}"#), Ok(ClientFrame::Unknown)));
        for bad in [
            "",
            "[]",
            "{",
            r#"{"type":1}"#,
            r#"{"type":"request"}"#,
            r#"{"type":"request","event":"e","id":-1}"#,
            r#"{"type":"auth","token":5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(event_packet(None, "stopTyping", None), r#"2["stopTyping"]"#);
    }

    #[test]
    fn translates_engine_packets() {
        assert_eq!(translate(b"2"), Outbound::Ping);
        assert_eq!(translate(b"0{\"sid\":\"x\"}"), Outbound::Skip);
        assert_eq!(translate(b"6"), Outbound::Skip);
        assert_eq!(translate(b"40{\"sid\":\"a\"}"), Outbound::Ready);
        assert_eq!(translate(b"41"), Outbound::Disconnect);
        assert_eq!(
            translate(br#"44{"message":"Invalid token"}"#),
            Outbound::Refused("Invalid token".into())
        );
        assert_eq!(
            frame(translate(br#"42["message",{"text":"hi"},"abc.12"]"#)),
            json!({"type":"event","event":"message","data":{"text":"hi"},"offset":"abc.12"})
        );
        assert_eq!(
            frame(translate(br#"42["roomMembers",{"roomId":"r"}]"#)),
            json!({"type":"event","event":"roomMembers","data":{"roomId":"r"}})
        );
        assert_eq!(
            frame(translate(br#"437[null]"#)),
            json!({"type":"reply","id":7,"result":null})
        );
        assert_eq!(
            frame(translate(br#"438[null,{"id":"m"}]"#)),
            json!({"type":"reply","id":8,"result":{"id":"m"}})
        );
        assert_eq!(
            frame(translate(br#"439[{"code":"NOT_IN_ROOM","message":"no"}]"#)),
            json!({"type":"reply","id":9,"error":{"code":"NOT_IN_ROOM","message":"no"}})
        );
        match translate(br#"42["error",{"code":"ACCESS_DENIED","message":"Token expired"}]"#) {
            Outbound::Frame { expired, .. } => assert!(expired),
            other => panic!("{other:?}"),
        }
    }
}
