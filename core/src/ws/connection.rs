//! One `/ws` connection: its reader (client frames into Socket.IO packets) and its writer
//! (the session's queued packets into frames), over the transport's WebSocket pieces.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use super::close_code;
use super::frames::{self, ClientFrame, Outbound, Resume};
use crate::protocol::frame::{Frame, FrameKind};
use crate::socketio::{ConnState, SocketIo, RESERVED_EVENTS};
use crate::transport::http::{BoxedReader, BoxedWriter};
use crate::transport::websocket::{
    answer_close, close_code_for, discard_input, write_frames, ws_config, ReadSide, CLOSE_GRACE,
};
use crate::transport::{
    CloseReason, EioServer, HandshakeInfo, Message, Session, SessionHandler, TransportKind,
};

/// A `/ws` connection's session: Socket.IO's, with its socket of `/`.
type PlainSession = Session<ConnState>;

/// The last engine frame translated into an event frame, shared by every `/ws` connection of
/// the engine. A room broadcast queues one frame (one buffer) for every recipient, so the
/// first `/ws` writer to reach it translates it and the others take that translation: a
/// broadcast is encoded once for all `/ws` members, as it is for Socket.IO's.
#[derive(Default)]
pub(super) struct Translations {
    /// The engine frame (kept, so its buffer cannot be reused by another one while it is the
    /// key), its translation, and whether it announces a token's expiry.
    last: Mutex<Option<(Bytes, Frame, bool)>>,
}

impl Translations {
    fn get(&self, wire: &Bytes) -> Option<(Frame, bool)> {
        let last = self.last.lock();
        let (key, frame, expired) = last.as_ref()?;
        (key.as_ptr() == wire.as_ptr() && key.len() == wire.len())
            .then(|| (frame.clone(), *expired))
    }

    fn put(&self, wire: Bytes, frame: Frame, expired: bool) {
        *self.last.lock() = Some((wire, frame, expired));
    }
}

/// What the reader tells the writer about the connection.
#[derive(Default)]
struct Shared {
    /// The offset a resuming client presented: `ready` repeats it, so a client dropped again
    /// before the replay resumes from the same place.
    resume_offset: Mutex<Option<String>>,
}

/// Runs a `/ws` connection whose `101` answer is written, until it closes.
pub(super) async fn run(
    server: Arc<EioServer<ConnState>>,
    io: Arc<SocketIo>,
    translations: Arc<Translations>,
    handshake: HandshakeInfo,
    reader: BoxedReader,
    mut writer: BoxedWriter,
    prefix: Bytes,
) {
    // A token in the header or the query authenticates at once; else the first frame must.
    let upfront =
        crate::helpers::token::find_in(handshake.header("authorization"), handshake.query(), None)
            .is_some()
            .then(|| Resume {
                token: None,
                session_id: handshake.query_param("sessionId"),
                offset: handshake.query_param("offset"),
            });
    let session = match server.open_session(TransportKind::WebSocket, handshake) {
        Ok(session) => session,
        Err(_) => {
            // Over `max_connections` or `max_pending_connections`: 1013 "try again later".
            let close = close_wire(1013, "Too many connections");
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = writer.write_all(close.wire()).await;
                let _ = writer.shutdown().await;
            })
            .await;
            return;
        }
    };
    let shared = Arc::new(Shared::default());
    let side = ReadSide {
        inner: reader,
        queue: session.clone(),
    };
    let part = prefix.to_vec();
    drop(prefix);
    let mut ws = WebSocketStream::from_partially_read(
        side,
        part,
        Role::Server,
        Some(ws_config(server.config.max_payload)),
    )
    .await;
    tokio::spawn(write_loop(
        session.clone(),
        writer,
        server.config.send_timeout,
        shared.clone(),
        translations,
    ));
    if let Some(resume) = upfront {
        connect(&server, &io, &session, &shared, resume).await;
    }
    read_loop(&server, &io, &session, &shared, &mut ws).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, discard_input(&mut ws.get_mut().inner)).await;
}

/// Hands the client's credentials to Socket.IO as the CONNECT its client would send.
async fn connect(
    server: &EioServer<ConnState>,
    io: &SocketIo,
    session: &Arc<PlainSession>,
    shared: &Shared,
    resume: Resume,
) {
    *shared.resume_offset.lock() = resume
        .offset
        .clone()
        .filter(|_| resume.session_id.is_some());
    let packet = frames::connect_packet(&resume);
    server.metrics.packets_in.inc();
    io.on_message(session, Message::Text(Bytes::from(packet)))
        .await;
}

async fn read_loop(
    server: &EioServer<ConnState>,
    io: &SocketIo,
    session: &Arc<PlainSession>,
    shared: &Shared,
    ws: &mut WebSocketStream<ReadSide<BoxedReader, Arc<PlainSession>>>,
) {
    loop {
        // As the transport's reader: read on only once what the client was sent drains.
        let message = tokio::select! {
            m = async {
                session.outbox.has_room().await;
                ws.next().await
            } => m,
            _ = session.closed() => return,
        };
        match message {
            Some(Ok(WsMessage::Text(text))) => {
                server.metrics.bytes_in.add(text.len() as u64);
                on_text(server, io, session, shared, text.as_str()).await;
            }
            Some(Ok(WsMessage::Binary(_))) => {
                send_text(
                    session,
                    &frames::error_frame("INVALID_MESSAGE", "Binary frames are not supported"),
                );
                close_with(
                    session,
                    1003,
                    "binary frames are not supported",
                    CloseReason::TransportError,
                );
                return;
            }
            Some(Ok(WsMessage::Pong(_))) => session.pong_received(),
            Some(Ok(WsMessage::Close(_))) => {
                answer_close(ws).await;
                session.close(CloseReason::TransportClose);
                return;
            }
            None => {
                session.close(CloseReason::TransportClose);
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(WsError::Capacity(_))) => {
                close_with(
                    session,
                    1009,
                    "message too big",
                    CloseReason::PayloadTooLarge,
                );
                return;
            }
            Some(Err(e)) => {
                tracing::debug!(sid = %session.sid, error = %e, "/ws read failed");
                match close_code_for(&e) {
                    Some(code) => close_with(session, code, "", CloseReason::TransportError),
                    None => session.close(CloseReason::TransportError),
                }
                return;
            }
        }
    }
}

async fn on_text(
    server: &EioServer<ConnState>,
    io: &SocketIo,
    session: &Arc<PlainSession>,
    shared: &Shared,
    text: &str,
) {
    let ready = session.data.socket("/").is_some();
    match frames::parse(text) {
        Err(e) => {
            send_text(
                session,
                &frames::error_frame("INVALID_MESSAGE", &e.to_string()),
            );
            close_with(
                session,
                1008,
                "malformed frame",
                CloseReason::TransportError,
            );
        }
        Ok(ClientFrame::Unknown) => {
            send_text(
                session,
                &frames::error_frame("INVALID_MESSAGE", "Unknown frame type"),
            );
        }
        Ok(ClientFrame::Auth(resume)) if !ready => {
            if resume.token.is_none() {
                refuse(session, "Authentication required");
                return;
            }
            connect(server, io, session, shared, resume).await;
        }
        Ok(ClientFrame::Auth(_)) => {
            send_text(
                session,
                &frames::error_frame("INVALID_MESSAGE", "Already authenticated"),
            );
        }
        Ok(ClientFrame::Request { .. }) if !ready => {
            refuse(session, "Authentication required");
        }
        Ok(ClientFrame::Request { id, event, data }) => {
            if RESERVED_EVENTS.contains(&event.as_str()) {
                send_text(
                    session,
                    &frames::reply_error(id, "INVALID_MESSAGE", "Reserved event name"),
                );
                return;
            }
            let packet = frames::event_packet(id, &event, data.as_deref());
            server.metrics.packets_in.inc();
            io.on_message(session, Message::Text(Bytes::from(packet)))
                .await;
        }
    }
}

/// Refuses the connection as Socket.IO refuses a CONNECT: an `error` frame, then 4401.
fn refuse(session: &PlainSession, message: &str) {
    send_text(session, &frames::error_frame("UNAUTHORIZED", message));
    close_with(
        session,
        close_code::UNAUTHORIZED,
        message,
        CloseReason::ServerClose,
    );
}

/// Queues a frame of the protocol (JSON, passed through by the writer as is).
fn send_text(session: &PlainSession, text: &str) {
    let _ = session.send(Frame::from_payload(text.as_bytes(), FrameKind::Text));
}

/// Most bytes of a close reason: a control frame's payload is at most 125 bytes, 2 of them
/// the code.
const MAX_CLOSE_REASON: usize = 123;

/// A close frame with `code` and `reason`, cut to what a control frame holds (on a character
/// boundary: the reason must stay UTF-8).
fn close_wire(code: u16, reason: &str) -> Frame {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut wire = vec![0x88, (2 + reason.len()) as u8];
    wire.extend_from_slice(&code.to_be_bytes());
    wire.extend_from_slice(reason);
    Frame::control(Bytes::from(wire))
}

/// Queues the last frame (a close with `code`) and closes the session.
fn close_with(session: &PlainSession, code: u16, reason: &str, why: CloseReason) {
    session.outbox.push_final(close_wire(code, reason));
    session.close(why);
}

/// What the writer learnt from the frames it passed on.
#[derive(Default)]
struct WriterState {
    /// A close frame went out: nothing more may.
    closed: bool,
    /// The `error` announcing the token's expiry went out: the disconnect closes with 4401.
    expired: bool,
    /// The connection ends once this batch is written.
    ending: bool,
}

/// Drains the session's queue, turns each Engine.IO packet into this protocol's frame, and
/// writes each batch with one vectored write (the transport's writer).
async fn write_loop(
    session: Arc<PlainSession>,
    mut writer: BoxedWriter,
    send_timeout: Duration,
    shared: Arc<Shared>,
    translations: Arc<Translations>,
) {
    let mut batch: VecDeque<Frame> = VecDeque::new();
    let mut out: VecDeque<Frame> = VecDeque::new();
    let mut state = WriterState::default();
    let grace = async {
        session.closed().await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    tokio::pin!(grace);
    loop {
        tokio::select! {
            _ = session.outbox.ready() => {}
            _ = &mut grace => break,
        }
        tokio::task::yield_now().await;
        let open = session.outbox.drain_into(&mut batch);
        for frame in batch.drain(..) {
            if state.closed {
                break;
            }
            convert(
                &session,
                &shared,
                &translations,
                frame,
                &mut state,
                &mut out,
            );
        }
        if !out.is_empty() {
            let result = tokio::select! {
                r = write_frames(&mut writer, &out, send_timeout) => r,
                _ = &mut grace => break,
            };
            out.clear();
            match result {
                Ok(n) => session.metrics.bytes_out.add(n as u64),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    session.close(CloseReason::SlowConsumer);
                    state.closed = true;
                    break;
                }
                Err(_) => {
                    session.close(CloseReason::TransportError);
                    state.closed = true;
                    break;
                }
            }
        }
        if state.ending {
            session.close(CloseReason::ServerClose);
        }
        if !open || state.closed {
            break;
        }
    }
    if !state.closed {
        // The session ended without a close frame of ours: say why, if the client listens.
        let (code, reason) = match session.close_reason() {
            Some(CloseReason::ConnectTimeout) => {
                out.push_back(text_frame(&frames::error_frame(
                    "UNAUTHORIZED",
                    "Authentication required",
                )));
                (close_code::UNAUTHORIZED, "Authentication required")
            }
            Some(CloseReason::SlowConsumer) => (1008, "slow consumer"),
            Some(CloseReason::PingTimeout) => (1001, "ping timeout"),
            _ => (1001, "going away"),
        };
        out.push_back(close_wire(code, reason));
        let _ =
            tokio::time::timeout(CLOSE_GRACE, write_frames(&mut writer, &out, CLOSE_GRACE)).await;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
}

fn text_frame(text: &str) -> Frame {
    Frame::from_payload(text.as_bytes(), FrameKind::Text)
}

/// Turns one queued frame into what goes on this wire (possibly nothing).
fn convert(
    session: &PlainSession,
    shared: &Shared,
    translations: &Translations,
    frame: Frame,
    state: &mut WriterState,
    out: &mut VecDeque<Frame>,
) {
    match frame.kind() {
        FrameKind::Control => {
            state.closed |= frame.wire().first() == Some(&0x88);
            out.push_back(frame);
        }
        // Binary attachments of Socket.IO packets have no place in JSON frames.
        FrameKind::Binary => {}
        FrameKind::Text => {
            let payload = frame.payload();
            // Frames of this protocol (errors the reader queued) start with `{`; Engine.IO
            // packets with their type digit.
            if payload.first() == Some(&b'{') {
                out.push_back(frame);
                return;
            }
            if let Some((translated, expired)) = translations.get(frame.wire()) {
                state.expired |= expired;
                out.push_back(translated);
                return;
            }
            match frames::translate(&payload) {
                Outbound::Skip => {}
                Outbound::Ping => out.push_back(Frame::control(Bytes::from_static(&[0x89, 0]))),
                Outbound::Frame { text, expired } => {
                    state.expired |= expired;
                    let translated = text_frame(&text);
                    translations.put(frame.wire().clone(), translated.clone(), expired);
                    out.push_back(translated);
                }
                Outbound::Ready => {
                    if let Some(text) = ready(session, shared) {
                        out.push_back(text_frame(&text));
                    }
                }
                Outbound::Refused(message) => {
                    out.push_back(text_frame(&frames::error_frame("UNAUTHORIZED", &message)));
                    out.push_back(close_wire(close_code::UNAUTHORIZED, &message));
                    state.closed = true;
                    state.ending = true;
                }
                Outbound::Disconnect => {
                    let (code, reason) = if state.expired {
                        (close_code::UNAUTHORIZED, "Token expired")
                    } else {
                        (close_code::SERVER_DISCONNECT, "disconnected by the server")
                    };
                    out.push_back(close_wire(code, reason));
                    state.closed = true;
                    state.ending = true;
                }
            }
        }
    }
}

/// The `ready` frame for the session's socket.
fn ready(session: &PlainSession, shared: &Shared) -> Option<String> {
    let socket = session.data.socket("/")?;
    let (user_id, username) = socket
        .user()
        .map(|u| (u.id.as_str(), u.username.as_str()))
        .unwrap_or(("", ""));
    let resumed = socket.recovered();
    let presented = shared.resume_offset.lock().take();
    let offset = match presented {
        Some(offset) if resumed => Some(offset),
        _ => socket
            .namespace()
            .recovery
            .as_ref()
            .and_then(|log| log.offset_before(socket.connected_seq)),
    };
    Some(frames::ready_frame(
        socket.pid(),
        user_id,
        username,
        offset.as_deref(),
        resumed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_translation_is_shared_only_for_the_same_engine_frame() {
        let t = Translations::default();
        let engine = Frame::from_payload(br#"42["message",{"text":"hi"},"b.1"]"#, FrameKind::Text);
        let same_text =
            Frame::from_payload(br#"42["message",{"text":"hi"},"b.1"]"#, FrameKind::Text);
        assert!(t.get(engine.wire()).is_none());
        t.put(engine.wire().clone(), text_frame("{}"), false);
        // The same queued frame (a broadcast's recipients share its buffer): the translation.
        let shared = engine.clone();
        assert_eq!(
            t.get(shared.wire()).map(|(f, _)| f.payload()),
            Some(Bytes::from_static(b"{}"))
        );
        // Another buffer, even with the same bytes, is translated on its own.
        assert!(t.get(same_text.wire()).is_none());
    }

    #[test]
    fn close_reasons_fit_a_control_frame_and_stay_utf8() {
        let long = "é".repeat(100); // 200 bytes
        let f = close_wire(4401, &long);
        let payload = &f.wire()[2..];
        assert_eq!(f.wire()[1] as usize, payload.len());
        assert!(payload.len() <= 125);
        assert_eq!(&payload[..2], &4401u16.to_be_bytes());
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }
}
