//! One Socket.IO client over WebSocket, speaking Engine.IO v4 / Socket.IO v5 the way
//! `socket.io-client` does with `transports: ['websocket']`:
//!
//! ```text
//! GET /socket.io/?EIO=4&transport=websocket   (WebSocket upgrade)
//! <- 0{"sid":..,"pingInterval":..}            Engine.IO open
//! -> 40{"token":"<jwt>"}                      Socket.IO CONNECT with auth
//! <- 40{"sid":..}                             (or 44{"message":..} when refused)
//! -> 420["joinRoom","room"]                   event with ack id 0
//! <- 430[null]
//! <- 2   -> 3                                 Engine.IO heartbeat
//! ```
//!
//! Kept cheap: a small read buffer, no write buffer, no JSON parsing on the hot path (a
//! bench message is recognised by its prefix and its text marker).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// What marks a benchmark message's text: `~sb~<seq>~<send time in ns>`.
pub const MARKER: &str = "~sb~";

/// The WebSocket settings of every client: small buffers, because there are thousands.
pub fn ws_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(4 << 20))
        .max_frame_size(Some(4 << 20))
}

#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error(format!("{what}: {e}"))
}

/// Opens the WebSocket and completes the Engine.IO and Socket.IO handshakes.
pub async fn connect(addr: &str, token: &str, read_buffer: usize) -> Result<Ws, Error> {
    let tcp = TcpStream::connect(addr).await.map_err(err("tcp connect"))?;
    tcp.set_nodelay(true).map_err(err("nodelay"))?;
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let request = url.into_client_request().map_err(err("request"))?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(request, tcp, Some(ws_config(read_buffer)))
            .await
            .map_err(err("websocket handshake"))?;
    // Engine.IO open packet.
    match next_text(&mut ws).await? {
        t if t.starts_with('0') => {}
        t => return Err(Error(format!("expected Engine.IO open, got {t:.80}"))),
    }
    let connect = format!("40{{\"token\":\"{token}\"}}");
    ws.send(Message::text(connect))
        .await
        .map_err(err("send CONNECT"))?;
    loop {
        let t = next_text(&mut ws).await?;
        if t.starts_with("40") {
            return Ok(ws);
        } else if t.starts_with("44") {
            return Err(Error(format!("connect refused: {t:.120}")));
        } else if t == "2" {
            ws.send(Message::text("3")).await.map_err(err("pong"))?;
        }
    }
}

/// Joins `room` (ack id 0) and waits for its ack, answering pings meanwhile. Events that
/// arrive before the ack (roomMembers, userJoined) are skipped.
pub async fn join(ws: &mut Ws, room: &str) -> Result<(), Error> {
    let packet = format!("420[\"joinRoom\",{}]", serde_json::Value::from(room));
    ws.send(Message::text(packet))
        .await
        .map_err(err("send joinRoom"))?;
    loop {
        let t = next_text(ws).await?;
        if let Some(rest) = t.strip_prefix("430") {
            return if rest.starts_with("[null") {
                Ok(())
            } else {
                Err(Error(format!("joinRoom refused: {rest:.120}")))
            };
        } else if t == "2" {
            ws.send(Message::text("3")).await.map_err(err("pong"))?;
        }
    }
}

/// The next text frame (skipping control frames); an error when the connection ends.
async fn next_text(ws: &mut Ws) -> Result<String, Error> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(c))) => return Err(Error(format!("closed by server: {c:?}"))),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(Error(format!("read: {e}"))),
            None => return Err(Error("connection ended".into())),
        }
    }
}

/// Says goodbye like `socket.io-client`'s `disconnect()`: `41`, then a WebSocket close,
/// then waits (briefly) for the server to close.
pub async fn disconnect(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ws.send(Message::text("41")).await;
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// A `sendMessage` event carrying the benchmark marker.
pub fn send_message_packet(ack_id: u64, room_json: &str, seq: u64, sent_ns: u64) -> String {
    format!("42{ack_id}[\"sendMessage\",{{\"roomId\":{room_json},\"text\":\"{MARKER}{seq}~{sent_ns}\"}}]")
}

/// What a received text frame is, as far as the benchmark cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Engine.IO ping: answer `3`.
    Ping,
    /// A `message` event carrying the benchmark marker.
    Message { seq: u64, sent_ns: u64 },
    /// An ack: `ok` when its first argument is null.
    Ack { id: u64, ok: bool },
    /// Anything else (roomMembers, userJoined, foreign messages...).
    Other,
}

fn parse_u64(s: &str) -> (u64, &str) {
    let mut v = 0u64;
    let mut end = 0;
    for &b in s.as_bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add((b - b'0') as u64);
        end += 1;
    }
    (v, &s[end..])
}

/// Where `~sb~` starts: `str::find(char)` is memchr-accelerated, then the rest is checked.
#[inline]
fn find_marker(s: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find('~') {
        let at = from + i;
        if s.as_bytes()[at..].starts_with(MARKER.as_bytes()) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Classifies one Engine.IO text packet. Only the first data argument of a `message` event
/// matters (the server may append a recovery offset as a further argument).
pub fn classify(t: &str) -> Incoming {
    if t == "2" {
        return Incoming::Ping;
    }
    if let Some(rest) = t.strip_prefix("42[\"message\",") {
        if let Some(at) = find_marker(rest) {
            let (seq, rest) = parse_u64(&rest[at + MARKER.len()..]);
            if let Some(rest) = rest.strip_prefix('~') {
                let (sent_ns, _) = parse_u64(rest);
                return Incoming::Message { seq, sent_ns };
            }
        }
        return Incoming::Other;
    }
    if let Some(rest) = t.strip_prefix("43") {
        let (id, rest) = parse_u64(rest);
        return Incoming::Ack {
            id,
            ok: rest.starts_with("[null"),
        };
    }
    Incoming::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_packets() {
        assert_eq!(classify("2"), Incoming::Ping);
        let m = r#"42["message",{"id":"01","roomId":"r","text":"~sb~17~123456789","userId":"u1","username":"u1","timestamp":"2024-01-01T00:00:00.000Z"},"abc.12"]"#;
        assert_eq!(
            classify(m),
            Incoming::Message {
                seq: 17,
                sent_ns: 123456789
            }
        );
        let n = r#"42["message",{"text":"~sb~3~99","roomId":"r"}]"#;
        assert_eq!(
            classify(n),
            Incoming::Message {
                seq: 3,
                sent_ns: 99
            }
        );
        assert_eq!(
            classify(r#"42["message",{"text":"hello"}]"#),
            Incoming::Other
        );
        assert_eq!(
            classify(r#"4312[null,{"id":"x"}]"#),
            Incoming::Ack { id: 12, ok: true }
        );
        assert_eq!(
            classify(r#"435[{"code":"RATE_LIMITED","message":"slow down"}]"#),
            Incoming::Ack { id: 5, ok: false }
        );
        assert_eq!(
            classify(r#"42["userJoined",{"roomId":"r"}]"#),
            Incoming::Other
        );
    }

    #[test]
    fn builds_send_message() {
        let p = send_message_packet(4, "\"room-1\"", 9, 1000);
        assert_eq!(
            p,
            r#"424["sendMessage",{"roomId":"room-1","text":"~sb~9~1000"}]"#
        );
        assert!(matches!(
            classify(&p.replacen("424[\"sendMessage\"", "42[\"message\"", 1)),
            Incoming::Message {
                seq: 9,
                sent_ns: 1000
            }
        ));
    }
}
