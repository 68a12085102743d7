//! The HTTP long-polling transport: a GET waits for queued packets, a POST carries packets in.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::reply::{EioError, HttpReply};
use super::{CloseReason, EioServer, Session, SessionData, TransportKind};
use crate::protocol::engineio::{self, decode_payload, Packet};
use crate::protocol::frame::{Frame, FrameKind};

/// Clears a session flag when the request that set it ends, however it ends.
struct FlagGuard<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for FlagGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Closes the session when a poll is abandoned before it answered (the client went away
/// mid-poll): what it drained would be lost, and Engine.IO treats it as an error.
struct PollGuard<'a, D> {
    session: &'a Session<D>,
    answered: bool,
}

impl<D> Drop for PollGuard<'_, D> {
    fn drop(&mut self) {
        if !self.answered {
            self.session.close(CloseReason::TransportError);
        }
    }
}

/// The handshake of a new polling session: its `open` packet.
pub async fn handshake<D>(session: Arc<Session<D>>) -> HttpReply {
    // The open packet is the only thing queued; the first GET returns it.
    poll(session).await
}

/// A GET: waits until packets are queued, then returns all of them in one payload.
pub async fn poll<D>(session: Arc<Session<D>>) -> HttpReply {
    if session.transport() != TransportKind::Polling {
        return EioError::BadRequest.reply();
    }
    if session.poll_active.swap(true, Ordering::AcqRel) {
        // Two GETs at once: the client is confused or hostile; Engine.IO closes the session.
        session.close(CloseReason::TransportError);
        return EioError::BadRequest.reply();
    }
    let _guard = FlagGuard(&session.poll_active);
    let mut abandoned = PollGuard {
        session: &session,
        answered: false,
    };
    let mut batch: std::collections::VecDeque<Frame> = std::collections::VecDeque::new();
    loop {
        if session.is_probed() {
            abandoned.answered = true;
            return HttpReply::text(Packet::Noop.encode_text());
        }
        tokio::select! {
            _ = session.outbox.ready() => {}
            _ = session.probed() => continue,
        }
        match session
            .outbox
            .drain_into_if(&mut batch, || session.transport() == TransportKind::Polling)
        {
            // Upgraded while waiting: release this GET with a noop.
            None => {
                abandoned.answered = true;
                return HttpReply::text(Packet::Noop.encode_text());
            }
            Some(open) => {
                if !batch.is_empty() {
                    break;
                }
                if !open {
                    abandoned.answered = true;
                    return HttpReply::text(Packet::Close.encode_text());
                }
            }
        }
    }
    let entries: Vec<Bytes> = batch
        .iter()
        .filter_map(|frame| match frame.kind() {
            FrameKind::Text => Some(frame.payload()),
            FrameKind::Binary => Some(engineio::encode_binary_for_polling(&frame.payload())),
            FrameKind::Control => None,
        })
        .collect();
    abandoned.answered = true;
    let body = engineio::encode_payload(entries.iter().map(|e| &e[..]));
    session.metrics.bytes_out.add(body.len() as u64);
    HttpReply::text(body)
}

/// A POST: decodes the payload and handles its packets in order.
pub async fn post<D: SessionData>(
    server: &Arc<EioServer<D>>,
    session: Arc<Session<D>>,
    body: Bytes,
) -> HttpReply {
    if session.transport() != TransportKind::Polling {
        return EioError::BadRequest.reply();
    }
    if session.post_active.swap(true, Ordering::AcqRel) {
        session.close(CloseReason::TransportError);
        return EioError::BadRequest.reply();
    }
    let _guard = FlagGuard(&session.post_active);
    let packets = match decode_payload(body) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(sid = %session.sid, error = %e, "malformed polling payload");
            session.close(CloseReason::TransportError);
            return EioError::BadRequest.reply();
        }
    };
    for packet in packets {
        // As on WebSocket: the next packet waits until the client polled what it was sent
        // (one POST can hold thousands of pings, each answered).
        tokio::select! {
            _ = session.outbox.has_room() => {}
            _ = session.closed() => break,
        }
        server.handle_packet(&session, packet).await;
    }
    HttpReply::text(Bytes::from_static(b"ok"))
}
