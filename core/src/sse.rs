//! Server-sent events at `GET /events`: room messages, presence and user notifications for
//! clients that only listen (dashboards, notification bells, backends).
//!
//! An SSE client is a member of its rooms' SSE lists, beside the Socket.IO sockets. Each
//! event is encoded once into SSE text and shared by every SSE recipient; each client has a
//! bounded queue like any connection and its body stream writes everything queued as one
//! chunk per wake-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use serde::Serialize;

use crate::hub::rooms::Rooms;
use crate::protocol::frame::{Frame, FrameKind};
use crate::transport::outbox::Outbox;

/// One SSE event in wire form, encoded once.
#[derive(Clone)]
pub struct SseEvent(Frame);

impl SseEvent {
    /// `event: <name>` with JSON `data`, and an `id:` line when given.
    pub fn new<T: Serialize + ?Sized>(name: &str, id: Option<&str>, data: &T) -> Self {
        let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
        let mut text = String::with_capacity(json.len() + name.len() + 48);
        if let Some(id) = id {
            // An id must be one line; ours are ULIDs, but never trust a caller.
            text.push_str("id: ");
            text.push_str(&id.replace(['\n', '\r'], ""));
            text.push('\n');
        }
        text.push_str("event: ");
        // An event name is one line: a line break would let its text inject fields.
        text.push_str(&name.replace(['\n', '\r'], ""));
        text.push_str("\ndata: ");
        text.push_str(&json);
        text.push_str("\n\n");
        SseEvent(Frame::from_payload(text.as_bytes(), FrameKind::Text))
    }

    /// The encoded event, as another node sends it.
    pub(crate) fn payload(&self) -> bytes::Bytes {
        self.0.payload()
    }

    /// An event another node encoded.
    pub(crate) fn from_wire(text: bytes::Bytes) -> Self {
        SseEvent(Frame::from_payload(&text, FrameKind::Text))
    }

    #[cfg(test)]
    /// A comment line (`:ping`), which keeps proxies from closing an idle stream.
    pub fn comment(text: &str) -> Self {
        SseEvent(Frame::from_payload(
            format!(":{text}\n\n").as_bytes(),
            FrameKind::Text,
        ))
    }
}

/// One connected SSE client.
pub struct SseClient {
    /// Its id, sent in the `connected` event.
    pub id: Arc<str>,
    /// The user it authenticated as.
    pub user_id: Arc<str>,
    outbox: Outbox,
}

impl SseClient {
    /// Queues an event; a full queue closes the stream (a slow reader).
    pub fn send(&self, event: &SseEvent) -> bool {
        self.outbox.push(event.0.clone()).is_ok()
    }

    /// Ends the stream once what is queued has been written.
    pub(crate) fn close(&self) {
        self.outbox.close();
    }
}

/// Every SSE client, by room and by user.
pub struct SseHub {
    rooms: Rooms<Arc<str>, Arc<SseClient>>,
    users: Rooms<Arc<str>, Arc<SseClient>>,
    next_id: AtomicU64,
    /// Set by [`SseHub::close_all`]: a stream opened after it ends at once.
    closing: AtomicBool,
    queue_frames: usize,
    queue_bytes: usize,
}

impl SseHub {
    /// A hub whose clients get these queue limits.
    pub fn new(queue_frames: usize, queue_bytes: usize) -> Self {
        SseHub {
            rooms: Rooms::default(),
            users: Rooms::default(),
            next_id: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            queue_frames,
            queue_bytes,
        }
    }

    /// Registers a client of `user_id` subscribed to `rooms`.
    pub fn connect(&self, user_id: &str, rooms: &[Arc<str>]) -> Arc<SseClient> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client = Arc::new(SseClient {
            id: format!("sse-{n}-{}", &crate::helpers::ids::new_id()[..6]).into(),
            user_id: user_id.into(),
            outbox: Outbox::new(self.queue_frames, self.queue_bytes),
        });
        for room in rooms {
            self.rooms.join(room, client.id.clone(), client.clone());
        }
        self.users
            .join(&client.user_id.clone(), client.id.clone(), client.clone());
        // After the join: `close_all` either sees this client or it sees the flag.
        if self.closing.load(Ordering::SeqCst) {
            client.outbox.close();
        }
        client
    }

    /// Forgets a client (its stream ended).
    pub fn disconnect(&self, client: &SseClient, rooms: &[Arc<str>]) {
        for room in rooms {
            self.rooms.leave(room, &client.id);
        }
        self.users.leave(&client.user_id, &client.id);
        client.outbox.close();
    }

    /// Sends an event to every SSE client in `room`; returns how many got it.
    pub fn to_room(&self, room: &str, event: &SseEvent) -> usize {
        let mut n = 0;
        self.rooms
            .for_each(room, |_, c| n += usize::from(c.send(event)));
        n
    }

    /// Sends an event to every SSE client of a user.
    pub fn to_user(&self, user_id: &str, event: &SseEvent) -> usize {
        let mut n = 0;
        self.users
            .for_each(user_id, |_, c| n += usize::from(c.send(event)));
        n
    }

    /// Whether any SSE client is subscribed to `room`.
    pub fn has_room(&self, room: &str) -> bool {
        self.rooms.len(room) > 0
    }

    /// Whether the user has an SSE stream open.
    pub fn has_user(&self, user_id: &str) -> bool {
        self.users.len(user_id) > 0
    }

    /// Ends every stream (the engine shuts down): a stream otherwise lasts as long as its
    /// client, and a server waiting for open responses (axum's graceful shutdown) would
    /// wait for ever.
    pub(crate) fn close_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for (user, _) in self.users.counts() {
            self.users.for_each(&user, |_, c| c.outbox.close());
        }
    }
}

/// A user's SSE connections are the streams in the hub's user index. A closed stream ends
/// (once what is queued is written); EventSource reconnects after that.
impl crate::hub::users::UserConnections for SseHub {
    fn disconnect_user(&self, user_id: &str) -> usize {
        let mut n = 0;
        self.users.for_each(user_id, |_, c| {
            c.outbox.close();
            n += 1;
        });
        n
    }
}

/// The body of an SSE response: everything queued since the last poll as one chunk, a
/// `:ping` comment after each quiet interval, and the end when the queue closes.
pub struct SseStream {
    client: Arc<SseClient>,
    on_end: Option<Box<dyn FnOnce() + Send>>,
    ping: Pin<Box<tokio::time::Sleep>>,
    ping_every: Duration,
    wait: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    batch: std::collections::VecDeque<Frame>,
}

impl SseStream {
    /// Streams `client`'s queue; `on_end` runs once when the stream ends or is dropped.
    pub fn new(
        client: Arc<SseClient>,
        ping_every: Duration,
        on_end: Box<dyn FnOnce() + Send>,
    ) -> Self {
        SseStream {
            client,
            on_end: Some(on_end),
            ping: Box::pin(tokio::time::sleep(ping_every)),
            ping_every,
            wait: None,
            batch: Default::default(),
        }
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

impl Stream for SseStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        loop {
            if !this.client.outbox.is_empty() || this.client.outbox.is_closed() {
                let open = this.client.outbox.drain_into(&mut this.batch);
                if this.batch.is_empty() {
                    if !open {
                        return Poll::Ready(None);
                    }
                } else {
                    let mut chunk = BytesMut::new();
                    for frame in this.batch.drain(..) {
                        chunk.put(frame.payload());
                    }
                    this.wait = None;
                    let deadline = tokio::time::Instant::now() + this.ping_every;
                    this.ping.as_mut().reset(deadline);
                    return Poll::Ready(Some(chunk.freeze()));
                }
            }
            if this.ping.as_mut().poll(cx).is_ready() {
                let deadline = tokio::time::Instant::now() + this.ping_every;
                this.ping.as_mut().reset(deadline);
                return Poll::Ready(Some(Bytes::from_static(b":ping\n\n")));
            }
            let client = this.client.clone();
            let wait = this
                .wait
                .get_or_insert_with(|| Box::pin(async move { client.outbox.ready().await }));
            match wait.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.wait = None;
                    continue;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn events_are_encoded_once_in_sse_form() {
        let e = SseEvent::new("message", Some("01ABC"), &serde_json::json!({"text": "hi"}));
        assert_eq!(
            &e.0.payload()[..],
            b"id: 01ABC\nevent: message\ndata: {\"text\":\"hi\"}\n\n"
        );
        let c = SseEvent::comment("ping");
        assert_eq!(&c.0.payload()[..], b":ping\n\n");
    }

    #[tokio::test]
    async fn stream_coalesces_pings_and_ends() {
        let hub = SseHub::new(16, 1 << 20);
        let room: Arc<str> = "r".into();
        let client = hub.connect("alice", std::slice::from_ref(&room));
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ended.clone();
        let mut stream = SseStream::new(
            client.clone(),
            Duration::from_millis(50),
            Box::new(move || flag.store(true, Ordering::SeqCst)),
        );
        assert_eq!(hub.to_room("r", &SseEvent::new("a", None, &1)), 1);
        assert_eq!(hub.to_user("alice", &SseEvent::new("b", None, &2)), 1);
        let chunk = stream.next().await.unwrap();
        assert_eq!(&chunk[..], b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n");
        let ping = stream.next().await.unwrap();
        assert_eq!(&ping[..], b":ping\n\n");
        hub.disconnect(&client, &[room]);
        assert!(stream.next().await.is_none());
        drop(stream);
        assert!(ended.load(Ordering::SeqCst));
    }
}
