//! One y-websocket connection: authentication and access (refused with a close code), then the
//! read loop, pings, and the writer that drains the connection's bounded queue.
//!
//! Reading goes through tungstenite with a small buffer, its control frames (pongs, close
//! replies) queued on the connection's own outbound queue; writing is ours: every queued frame
//! is already a complete WebSocket frame, written with one vectored write per wake-up.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use super::document::{close_code, CloseSignal, CloseWith, ConnEntry, Limits};
use super::registry::Document;
use super::{protocol, DocumentRequest, Inner};
use crate::auth::access::{self, AccessRefused};
use crate::auth::{AuthError, User};
use crate::hub::personal_room;
use crate::protocol::frame::Frame;
use crate::transport::http::{BoxedReader, BoxedWriter};
use crate::transport::outbox::Outbox;

/// Bytes tungstenite reads per call; small, because every idle connection holds one.
const READ_BUFFER: usize = 512;
/// How long a closing connection gets to flush what is queued.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Room for the message tags and length in front of an update.
const MESSAGE_OVERHEAD: usize = 64;
/// Longest close reason a close frame carries (RFC 6455: 125 bytes with the code).
const MAX_REASON: usize = 123;

/// A close frame with `code` and `reason` (cut at a character boundary to fit).
fn close_frame(with: &CloseWith) -> Frame {
    let mut end = with.reason.len().min(MAX_REASON);
    while !with.reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &with.reason.as_bytes()[..end];
    let mut wire = Vec::with_capacity(4 + reason.len());
    wire.push(0x88);
    wire.push((2 + reason.len()) as u8);
    wire.extend_from_slice(&with.code.to_be_bytes());
    wire.extend_from_slice(reason);
    Frame::control(Bytes::from(wire))
}

/// The read half as tungstenite sees it (shared with the Engine.IO transport).
type ReadSide = crate::transport::websocket::ReadSide<BoxedReader, Arc<Outbox>>;

/// Counts the connection while it lives.
struct Counted(Arc<Inner>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
    }
}

/// A connection's hold on its document: while it lives the document stays loaded; once
/// attached, dropping it detaches the connection (removing its awareness states) even when
/// the task ends by a panic or cancellation.
struct Hold {
    inner: Arc<Inner>,
    doc: Arc<Document>,
    conn: Option<u64>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let (Some(id), Some(state)) = (self.conn, self.doc.state()) {
            let removal = state.lock().detach(id);
            if let Some(update) = removal {
                for observer in &self.inner.hooks.observers {
                    observer.on_awareness(&self.doc.name, &update);
                }
            }
        }
        self.inner.registry.release(&self.inner, &self.doc.name);
    }
}

/// A connection's entry in its user's list (see `Inner::users`): removed when the connection
/// ends, however it ends; the user's last one stops this node listening for the user.
struct Listed {
    inner: Arc<Inner>,
    user: Arc<str>,
    id: u64,
}

impl Listed {
    /// Lists connection `id` of `user`; on a cluster, waits (while Redis is up) until this
    /// node hears the user's channel, where another node's `disconnect_user` is published.
    async fn new(inner: &Arc<Inner>, user: &str, id: u64, close: &Arc<CloseSignal>) -> Listed {
        let user: Arc<str> = user.into();
        let change = inner.users.join_tracking(&user, id, close.clone());
        if change.room_changed {
            if let Some(cluster) = &inner.cluster {
                cluster.follow(&personal_room(&user)).await;
            }
        }
        Listed {
            inner: inner.clone(),
            user,
            id,
        }
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        let change = self.inner.users.leave_tracking(&self.user, &self.id);
        if change.room_changed {
            if let Some(cluster) = &self.inner.cluster {
                cluster.unfollow(&personal_room(&self.user));
            }
        }
    }
}

/// Runs one document connection until it closes.
pub(crate) async fn run(
    inner: Arc<Inner>,
    request: DocumentRequest,
    reader: BoxedReader,
    writer: BoxedWriter,
    prefix: Bytes,
) {
    inner.metrics.connections.inc();
    let _counted = Counted(inner.clone());
    let c = &inner.config;
    // A sync step 2 answer can be a whole document: let one fit in the queue.
    let outbox = Arc::new(Outbox::new(
        c.outbound_queue_frames,
        c.outbound_queue_bytes + c.yjs_max_document_bytes + MESSAGE_OVERHEAD,
    ));
    let close = Arc::new(CloseSignal::default());
    let writer_task = tokio::spawn(write_loop(
        outbox.clone(),
        writer,
        close.clone(),
        c.send_timeout,
    ));
    // Copy the few buffered bytes out: `prefix` may be a slice of the HTTP parser's buffer.
    let part = prefix.to_vec();
    drop(prefix);
    let (ending, rest) = match admit(&inner, &request).await {
        Ok(user) => serve(&inner, request, user, reader, part, &outbox, &close).await,
        Err(with) => (Some(with), Rest::Raw(reader)),
    };
    let Some(with) = ending else {
        // The client closed: nothing more to say.
        outbox.close();
        return finish_writer(writer_task).await;
    };
    tracing::debug!(code = with.code, reason = %with.reason, "closing Yjs connection");
    outbox.push_final(close_frame(&with));
    finish_writer(writer_task).await;
    // Our close frame and FIN are out: read until the client closes too. Closing a socket
    // with unread input resets it, and a reset can destroy the close frame (and its code)
    // before the client reads it.
    let _ = tokio::time::timeout(CLOSE_GRACE, rest.drain()).await;
}

/// Waits for the writer to flush what is queued; gives up after a grace period.
async fn finish_writer(mut writer_task: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(CLOSE_GRACE * 2, &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
}

/// What is left of the read side when the server closes.
enum Rest {
    /// Before the WebSocket was read from.
    Raw(BoxedReader),
    /// The WebSocket (it answers the client's close frame).
    Ws(Box<WebSocketStream<ReadSide>>),
}

impl Rest {
    /// Reads and discards until the client closes.
    async fn drain(self) {
        match self {
            Rest::Raw(mut reader) => {
                let mut buf = [0u8; 512];
                while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
            }
            Rest::Ws(mut ws) => while let Some(Ok(_)) = ws.next().await {},
        }
    }
}

async fn authenticate(inner: &Inner, request: &DocumentRequest) -> Result<User, AuthError> {
    if let Some(hook) = &inner.hooks.authenticate {
        return match tokio::time::timeout(
            inner.config.host_callback_timeout,
            hook.authenticate(request),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(AuthError::Refused("Authentication timed out".into())),
        };
    }
    inner
        .jwt
        .verify(request.token.as_deref().ok_or(AuthError::Required)?)
        .await
}

/// Completes when the user's token stops being accepted (the first second past `exp` plus
/// the leeway); never when it has no `exp` or `allow_expired_connections` is set.
async fn token_deadline(inner: &Inner, user: &User) {
    let exp = user
        .expires_at
        .filter(|_| !inner.config.allow_expired_connections);
    let Some(exp) = exp else {
        return std::future::pending().await;
    };
    let deadline_ms = exp
        .saturating_add(inner.config.jwt_leeway.as_secs())
        .saturating_add(1)
        .saturating_mul(1000);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    tokio::time::sleep(Duration::from_millis(deadline_ms.saturating_sub(now_ms))).await;
}

/// Authenticates the client and checks its access to `doc:<name>`; a refusal is the close
/// frame to send.
async fn admit(inner: &Inner, request: &DocumentRequest) -> Result<User, CloseWith> {
    let refuse = |reason: &'static str, with: CloseWith| {
        inner.metrics.refusals.inc(reason);
        with
    };
    let user = authenticate(inner, request).await.map_err(|e| {
        refuse(
            "unauthorized",
            CloseWith::new(close_code::UNAUTHORIZED, e.to_string()),
        )
    })?;
    let room = format!("doc:{}", request.document);
    let refused = match access::check_room_access(
        &inner.config,
        inner.hooks.room_access.as_deref(),
        &user,
        &room,
    )
    .await
    {
        Ok(()) => return Ok(user),
        Err(refused) => refused,
    };
    Err(match refused {
        AccessRefused::Denied => refuse(
            "forbidden",
            CloseWith::new(close_code::FORBIDDEN, format!("You may not join {room}")),
        ),
        AccessRefused::Hook(e) => {
            let (_, message) = e.to_client("authorizeRoom", &personal_room(&user.id));
            refuse(
                "unavailable",
                CloseWith::new(close_code::UNAVAILABLE, message),
            )
        }
        AccessRefused::TimedOut => refuse(
            "unavailable",
            CloseWith::new(close_code::UNAVAILABLE, "Room access check timed out"),
        ),
    })
}

/// Attaches an admitted client to its document and reads until the end. Returns the close
/// frame to send, if any, and what is left of the read side.
async fn serve(
    inner: &Arc<Inner>,
    request: DocumentRequest,
    user: User,
    reader: BoxedReader,
    prefix: Vec<u8>,
    outbox: &Arc<Outbox>,
    close: &Arc<CloseSignal>,
) -> (Option<CloseWith>, Rest) {
    drop(request.head);
    let doc = inner.registry.open(inner, &request.document);
    let mut hold = Hold {
        inner: inner.clone(),
        doc: doc.clone(),
        conn: None,
    };
    if let Some(cluster) = &inner.cluster {
        // Listen before loading: what other nodes publish from here on is not missed.
        cluster.follow_document(&doc.name).await;
    }
    let state = match doc.load(inner).await {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(doc = %doc.name, error = %e, "loading a Yjs document failed");
            inner.metrics.refusals.inc("unavailable");
            let with = CloseWith::new(close_code::UNAVAILABLE, "Document could not be loaded");
            return (Some(with), Rest::Raw(reader));
        }
    };
    if let Some(cluster) = &inner.cluster {
        cluster.loaded(&doc);
    }
    if inner.is_closing() {
        let with = CloseWith::new(close_code::GOING_AWAY, "Server shutting down");
        return (Some(with), Rest::Raw(reader));
    }
    let id = inner.next_conn_id();
    // Listed before the client hears anything: once it is synced, `disconnect_user` (from
    // any node) reaches it.
    let _listed = Listed::new(inner, &user.id, id, close).await;
    let limits = Limits::new(&inner.config);
    state
        .lock()
        .attach(id, ConnEntry::new(outbox.clone(), close.clone()), limits);
    hold.conn = Some(id);
    tracing::debug!(doc = %doc.name, user = %user.id, "Yjs connection opened");

    let max_message = inner.config.yjs_max_update_bytes + MESSAGE_OVERHEAD;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let side = ReadSide {
        inner: reader,
        queue: outbox.clone(),
    };
    let mut ws = Box::new(
        WebSocketStream::from_partially_read(side, prefix, Role::Server, Some(config)).await,
    );
    let period = inner.config.yjs_ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    // Bound to the token's `exp`: at it the connection closes with 4401 "Token expired" (a
    // timer in the task's own select, beside the ping interval it already has).
    let expired = token_deadline(inner, &user);
    tokio::pin!(expired);
    loop {
        let message = tokio::select! {
            // Read the client's next message only once what it was sent is on its way: the
            // answers it asks for (sync steps, awareness, pongs) wait for it to read.
            m = async {
                outbox.has_room().await;
                // Closed by an overflow (a pong or ping that did not fit): stop reading.
                (!outbox.is_closed()).then_some(ws.next().await)
            } => match m {
                Some(m) => m,
                None => return (Some(CloseWith::slow_reader()), Rest::Ws(ws)),
            },
            with = close.wait() => return (Some(with), Rest::Ws(ws)),
            () = &mut expired => {
                let with = CloseWith::new(close_code::UNAUTHORIZED, "Token expired");
                return (Some(with), Rest::Ws(ws));
            }
            _ = ping.tick() => {
                if awaiting_pong {
                    let with = CloseWith::new(close_code::GOING_AWAY, "Ping timeout");
                    return (Some(with), Rest::Ws(ws));
                }
                awaiting_pong = true;
                if outbox.push(Frame::control(Bytes::from_static(&[0x89, 0]))).is_err() {
                    return (Some(CloseWith::slow_reader()), Rest::Ws(ws));
                }
                continue;
            }
        };
        match message {
            Some(Ok(WsMessage::Binary(data))) => {
                let messages = match protocol::decode(&data) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(doc = %doc.name, error = %e, "malformed Yjs message");
                        let reason = match e {
                            protocol::DecodeError::TooManyMessages => {
                                "Too many messages in one frame"
                            }
                            protocol::DecodeError::Malformed(_) => "Malformed message",
                        };
                        let with = CloseWith::new(close_code::MALFORMED, reason);
                        return (Some(with), Rest::Ws(ws));
                    }
                };
                let effects = state.lock().handle(id, messages, limits);
                inner.after_effects(&doc, &effects);
                if effects.close.is_some() {
                    return (effects.close, Rest::Ws(ws));
                }
            }
            Some(Ok(WsMessage::Pong(_))) => awaiting_pong = false,
            // Text frames are not part of the protocol; pings are answered by tungstenite.
            Some(Ok(WsMessage::Text(_) | WsMessage::Ping(_) | WsMessage::Frame(_))) => {}
            Some(Ok(WsMessage::Close(_))) => {
                crate::transport::websocket::answer_close(&mut ws).await;
                return (None, Rest::Ws(ws));
            }
            None => return (None, Rest::Ws(ws)),
            Some(Err(WsError::Capacity(_))) => {
                let with = CloseWith::new(
                    close_code::TOO_LARGE,
                    format!(
                        "Update too large (max {} bytes)",
                        inner.config.yjs_max_update_bytes
                    ),
                );
                return (Some(with), Rest::Ws(ws));
            }
            Some(Err(e)) => {
                tracing::debug!(doc = %doc.name, error = %e, "Yjs WebSocket read failed");
                let with = crate::transport::websocket::close_code_for(&e)
                    .map(|code| CloseWith::new(code, "Protocol error"));
                return (with, Rest::Ws(ws));
            }
        }
    }
}

/// Drains the connection's queue into the socket, one vectored write per wake-up.
async fn write_loop(
    outbox: Arc<Outbox>,
    mut writer: BoxedWriter,
    close: Arc<CloseSignal>,
    send_timeout: Duration,
) {
    let mut batch: std::collections::VecDeque<Frame> = std::collections::VecDeque::new();
    loop {
        outbox.ready().await;
        // Cork: let a broadcast in progress queue everything first, so one write carries it.
        tokio::task::yield_now().await;
        let open = outbox.drain_into(&mut batch);
        if !batch.is_empty() {
            let written =
                crate::transport::websocket::write_frames(&mut writer, &batch, send_timeout).await;
            if let Err(e) = written {
                outbox.close();
                close.fire(if e.kind() == std::io::ErrorKind::TimedOut {
                    CloseWith::slow_reader()
                } else {
                    CloseWith::new(close_code::GOING_AWAY, "Write failed")
                });
                break;
            }
            batch.clear();
        }
        if !open {
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_frames_carry_code_and_a_short_reason() {
        let f = close_frame(&CloseWith::new(4401, "Invalid token"));
        assert_eq!(&f.wire()[..4], &[0x88, 15, 0x11, 0x31]);
        assert_eq!(&f.wire()[4..], b"Invalid token");
        let long = "é".repeat(100);
        let f = close_frame(&CloseWith::new(4403, long));
        assert!(f.wire().len() <= 127);
        assert!(std::str::from_utf8(&f.wire()[4..]).is_ok());
    }
}
