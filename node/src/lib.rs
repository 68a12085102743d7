//! Node binding (napi-rs) of the Switchboard engine.
//!
//! `NativeEngine` is the native half of `@switchboard/node`'s `Engine`; `index.js` adds the
//! parts that must touch Node objects (taking a socket's descriptor, reading request bodies)
//! and normalizes JS callbacks. The engine runs on its own tokio runtime: calls from JS only
//! enqueue work, and JS callbacks are awaited there without blocking either side.
#![deny(clippy::unwrap_used)]

mod config;
mod hooks;
mod io;
pub mod logs;
mod pump;
mod server;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use napi::bindgen_prelude::{Buffer, FnArgs, Function, Promise};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use serde_json::{json, Value};
use switchboard::bindings::http::Routed;
use switchboard::host::{self, Host};
use switchboard::{Engine, TlsSource};

pub use config::NativeConfig;
use hooks::{
    callback, JsAuthenticate, JsCallback, JsDocumentObserver, JsMessageStore, JsRoomAccess,
};

pub(crate) type Notify<T> = ThreadsafeFunction<T, (), T, Status, false, true>;

fn notify<T: 'static + napi::bindgen_prelude::JsValuesTupleIntoVec>(
    f: &Function<'_, T, ()>,
) -> napi::Result<Arc<Notify<T>>> {
    Ok(Arc::new(
        f.build_threadsafe_function()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?,
    ))
}

fn err(e: impl std::fmt::Display) -> napi::Error {
    napi::Error::from_reason(e.to_string())
}

/// An HTTP answer for `res`.
#[napi(object)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u32,
    /// Headers as `[name, value, name, value, …]`.
    pub headers: Vec<String>,
    /// Body.
    pub body: Buffer,
    /// Whether more body follows through `onChunk` (server-sent events).
    pub streaming: bool,
}

/// The native engine behind `Engine`.
#[napi]
pub struct NativeEngine {
    host: Host,
    events: Arc<RwLock<HashSet<String>>>,
    /// Whether JS wants connection and disconnection calls (see `server::lifecycle`).
    lifecycle: Arc<AtomicBool>,
}

/// A plaintext pipe between a Node TLS socket and the engine.
#[napi]
pub struct Bridge {
    to_engine: tokio::sync::mpsc::UnboundedSender<Option<Bytes>>,
    inbound: Arc<pump::Inbound>,
    window: pump::Window,
    /// Set once the Node socket is gone (see `Bridge::abort`).
    gone: tokio::sync::watch::Sender<bool>,
}

#[napi]
impl Bridge {
    /// Bytes Node decrypted from the client. False when the engine side holds too much
    /// not yet taken: JS pauses the socket until `onDrain`.
    #[napi]
    pub fn write(&self, data: Buffer) -> bool {
        // Counted before it is sent, so the engine side never takes more than was counted.
        let flowing = self.inbound.add(data.len());
        if self
            .to_engine
            .send(Some(Bytes::copy_from_slice(&data)))
            .is_err()
        {
            // The engine side is gone: nothing will drain, and nothing needs to.
            return true;
        }
        flowing
    }

    /// The client closed its side.
    #[napi]
    pub fn end(&self) {
        let _ = self.to_engine.send(None);
        self.window.close();
    }

    /// The Node socket is gone (closed or failed): the engine's side of the connection ends
    /// now, without delivering what it had not read yet, so that the engine notices at once,
    /// even while it is not reading (a handler queue that is full), and drops the client's
    /// queued work.
    #[napi]
    pub fn abort(&self) {
        self.window.close();
        let _ = self.gone.send(true);
    }

    /// One chunk given to `onData` was written (call from `socket.write`'s callback).
    #[napi]
    pub fn ack(&self) {
        self.window.ack();
    }
}

/// An HTTP request in progress inside the engine.
#[napi]
pub struct HttpCall {
    task: tokio::task::AbortHandle,
    window: pump::Window,
}

#[napi]
impl HttpCall {
    /// The client went away: stop (a pending long poll closes its session; an event stream
    /// unsubscribes).
    #[napi]
    pub fn cancel(&self) {
        self.task.abort();
        self.window.close();
    }

    /// One streamed chunk was written (call from `res.write`'s callback).
    #[napi]
    pub fn ack(&self) {
        self.window.ack();
    }
}

#[napi]
impl NativeEngine {
    /// Starts an engine on its own runtime. Callbacks are normalized by `index.js` to
    /// `(value) => Promise<{ok} | {error}>`; `onDocumentUpdate(docName, update)` is called
    /// as is, and must not throw.
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: NativeConfig,
        authenticate: Option<Function<'_, Value, Promise<Value>>>,
        authorize_room: Option<Function<'_, Value, Promise<Value>>>,
        store_message: Option<Function<'_, Value, Promise<Value>>>,
        on_event: Function<'_, Value, Promise<Value>>,
        on_activity: Function<'_, bool, ()>,
        on_document_update: Option<Function<'_, FnArgs<(String, Buffer)>, ()>>,
        on_lifecycle: Option<Function<'_, Value, Promise<Value>>>,
    ) -> napi::Result<Self> {
        let config = config.to_config().map_err(|e| {
            err(switchboard::bindings::settings::describe(
                &e,
                switchboard::bindings::settings::Front::Node,
            ))
        })?;
        let activity = notify(&on_activity)?;
        let events: Arc<RwLock<HashSet<String>>> = Arc::default();
        let lifecycle = Arc::new(AtomicBool::new(false));
        let hooks = host::Hooks {
            authenticate: authenticate
                .as_ref()
                .map(callback)
                .transpose()?
                .map(|t| Arc::new(JsAuthenticate(t)) as _),
            room_access: authorize_room
                .as_ref()
                .map(callback)
                .transpose()?
                .map(|t| Arc::new(JsRoomAccess(t)) as _),
            message_store: store_message
                .as_ref()
                .map(callback)
                .transpose()?
                .map(|t| Arc::new(JsMessageStore(t)) as _),
            document_observers: match &on_document_update {
                Some(f) => vec![Arc::new(JsDocumentObserver(notify(f)?)) as _],
                None => Vec::new(),
            },
            app_events: Some(Arc::new(AppEvents {
                on_event: callback(&on_event)?,
                known: events.clone(),
            })),
            lifecycle: server::lifecycle_callback(on_lifecycle)?.map(|tsfn| {
                Arc::new(server::JsLifecycle {
                    tsfn,
                    watching: lifecycle.clone(),
                }) as _
            }),
            on_activity: Some(Arc::new(move |active| {
                let _ = activity.call(active, ThreadsafeFunctionCallMode::NonBlocking);
            })),
        };
        let host = Host::start(config, hooks).map_err(err)?;
        Ok(NativeEngine {
            host,
            events,
            lifecycle,
        })
    }

    fn live(&self) -> napi::Result<&Engine> {
        Ok(self.live_host()?.engine())
    }

    fn live_host(&self) -> napi::Result<&Host> {
        if self.host.is_closed() {
            return Err(err("the engine is closed"));
        }
        Ok(&self.host)
    }

    /// Listens on `host:port` itself; returns the bound port. With `tlsCert` and `tlsKey`
    /// (PEM contents) it serves HTTPS and WSS.
    #[napi]
    pub fn listen(
        &self,
        host: String,
        port: u32,
        tls_cert: Option<Buffer>,
        tls_key: Option<Buffer>,
    ) -> napi::Result<u32> {
        let ip = host
            .parse()
            .map_err(|_| err(format!("invalid host {host}")))?;
        let port = u16::try_from(port).map_err(|_| err(format!("invalid port {port}")))?;
        let addr = SocketAddr::new(ip, port);
        let engine = self.live()?;
        let bound = match (tls_cert, tls_key) {
            (None, None) => engine.listen(addr),
            (Some(cert), Some(key)) => engine.listen_tls(
                addr,
                TlsSource::Pem {
                    cert: cert.to_vec(),
                    key: key.to_vec(),
                },
            ),
            _ => return Err(err("tls needs both cert and key")),
        }
        .map_err(err)?;
        Ok(u32::from(bound.addr.port()))
    }

    /// The engine's number for routing its log events (`LogSink.bind`).
    #[napi]
    pub fn log_id(&self) -> i64 {
        i64::try_from(self.host.engine().log_id()).unwrap_or(0)
    }

    /// Whether the engine serves this path (`/socket.io/`, `/yjs/…`, `/healthz`, `/metrics`).
    #[napi]
    pub fn serves(&self, path: String) -> bool {
        self.host.engine().http().serves(&path)
    }

    /// Takes over an upgraded TCP socket: duplicates `fd` now (the caller destroys its
    /// handle right after), then answers the upgrade and serves the WebSocket. `head` holds
    /// the bytes Node already read past the request head.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn adopt(
        &self,
        fd: i32,
        method: String,
        url: String,
        raw_headers: Vec<String>,
        head: Option<Buffer>,
        address: String,
        port: u32,
    ) -> napi::Result<()> {
        let engine = self.live()?.clone();
        let request = io::request_head(&method, &url, &raw_headers, &address, port)?;
        let stream = io::adopt_fd(fd)?;
        let buffered = io::buffered(head.as_deref());
        engine.handle().clone().spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                return;
            };
            let _ = stream.set_nodelay(true);
            engine.http().serve_adopted(request, stream, buffered).await;
        });
        Ok(())
    }

    /// Serves an upgrade over a plaintext pipe (TLS sockets, whose bytes only Node can
    /// decrypt). `onData(chunk)` gets the engine's bytes, `onData(null)` its end;
    /// `onDrain()` says to resume a socket paused because `Bridge::write` returned false.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn open_bridge(
        &self,
        method: String,
        url: String,
        raw_headers: Vec<String>,
        head: Option<Buffer>,
        address: String,
        port: u32,
        on_data: Function<'_, Option<Buffer>, ()>,
        on_drain: Function<'_, (), ()>,
    ) -> napi::Result<Bridge> {
        let engine = self.live()?.clone();
        let request = io::request_head(&method, &url, &raw_headers, &address, port)?;
        let buffered = io::buffered(head.as_deref());
        let on_data = notify(&on_data)?;
        let on_drain = notify(&on_drain)?;
        let inbound = Arc::new(pump::Inbound::default());
        let writer_inbound = inbound.clone();
        let (engine_side, host_side) = tokio::io::duplex(64 * 1024);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<Bytes>>();
        let handle = engine.handle().clone();
        handle.spawn(async move {
            engine
                .http()
                .serve_adopted(request, engine_side, buffered)
                .await;
        });
        let (mut host_read, mut host_write) = tokio::io::split(host_side);
        // Both halves of the host side are dropped when the socket is gone: the engine's
        // writes then fail and its reads end.
        let (gone, mut writer_gone) = tokio::sync::watch::channel(false);
        let mut pump_gone = gone.subscribe();
        handle.spawn(async move {
            use tokio::io::AsyncWriteExt;
            loop {
                let chunk = tokio::select! {
                    chunk = rx.recv() => chunk,
                    _ = writer_gone.wait_for(|gone| *gone) => return,
                };
                let Some(Some(chunk)) = chunk else {
                    break;
                };
                // The duplex is bounded: this waits while the engine does not read, and the
                // bytes queued meanwhile pause the Node socket (`Bridge::write`).
                tokio::select! {
                    written = host_write.write_all(&chunk) => {
                        if written.is_err() {
                            break;
                        }
                    }
                    _ = writer_gone.wait_for(|gone| *gone) => return,
                }
                if writer_inbound.taken(chunk.len()) {
                    let _ = on_drain.call((), ThreadsafeFunctionCallMode::NonBlocking);
                }
            }
            let _ = host_write.shutdown().await;
        });
        let window = pump::Window::new();
        let pump_window = window.clone();
        handle.spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let read = tokio::select! {
                    read = host_read.read(&mut buf) => read,
                    _ = pump_gone.wait_for(|gone| *gone) => break,
                };
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = Bytes::copy_from_slice(&buf[..n]);
                        if !pump_window.send(&on_data, chunk).await {
                            break;
                        }
                    }
                }
            }
            pump_window.end(&on_data);
        });
        Ok(Bridge {
            to_engine: tx,
            inbound,
            window,
            gone,
        })
    }

    /// Serves a plain HTTP request (long-polling, SSE, the API, health, metrics):
    /// `done(answer)` gets the answer, possibly much later (a long poll); a streamed answer
    /// (`answer.streaming`) continues with `onChunk(chunk)` calls and ends with
    /// `onChunk(null)`. The returned call is cancelled when the client goes away.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn handle_http(
        &self,
        method: String,
        url: String,
        raw_headers: Vec<String>,
        body: Option<Buffer>,
        address: String,
        port: u32,
        done: Function<'_, HttpAnswer, ()>,
        on_chunk: Function<'_, Option<Buffer>, ()>,
    ) -> napi::Result<HttpCall> {
        let engine = self.live()?.clone();
        let request = io::request_head(&method, &url, &raw_headers, &address, port)?;
        let body = io::buffered(body.as_deref());
        let done = notify(&done)?;
        let on_chunk = notify(&on_chunk)?;
        let window = pump::Window::new();
        let pump_window = window.clone();
        let task = engine.handle().clone().spawn(async move {
            let mut reply = match engine.http().route(&request, async { Ok(body) }).await {
                Routed::Reply(reply) => reply,
                Routed::Upgrade(upgrade) => {
                    upgrade.abort();
                    switchboard::bindings::http::EioError::BadRequest.reply()
                }
            };
            let mut headers = Vec::with_capacity(reply.headers.len() * 2);
            for (name, value) in &reply.headers {
                if let Ok(v) = value.to_str() {
                    headers.push(name.as_str().to_owned());
                    headers.push(v.to_owned());
                }
            }
            let stream = reply.stream.take();
            let answer = HttpAnswer {
                status: u32::from(reply.status.as_u16()),
                headers,
                body: Buffer::from(reply.body.to_vec()),
                streaming: stream.is_some(),
            };
            let _ = done.call(answer, ThreadsafeFunctionCallMode::NonBlocking);
            if let Some(switchboard::bindings::http::BodyStream(mut stream)) = stream {
                use futures_util::StreamExt;
                while let Some(chunk) = stream.next().await {
                    if !pump_window.send(&on_chunk, chunk).await {
                        return;
                    }
                }
                pump_window.end(&on_chunk);
            }
        });
        Ok(HttpCall {
            task: task.abort_handle(),
            window,
        })
    }

    /// Lets JS handle a client event (see `engine.on`).
    #[napi]
    pub fn register_event(&self, name: String) {
        if let Ok(mut events) = self.events.write() {
            events.insert(name);
        }
    }

    /// Emits to every socket in a room. The fan-out runs on the engine's threads, so Node's
    /// thread only hands the data over; returns how many sockets are in the room now.
    #[napi]
    pub fn emit_to_room(&self, room: String, event: String, data: Value) -> napi::Result<u32> {
        Ok(self.live_host()?.emit_to_room(room, event, data) as u32)
    }

    /// Emits to every connection of a user (off Node's thread, like `emit_to_room`).
    #[napi]
    pub fn emit_to_user(&self, user_id: String, event: String, data: Value) -> napi::Result<u32> {
        Ok(self.live_host()?.emit_to_user(&user_id, event, data) as u32)
    }

    /// Stores and delivers a message to a room as `userId` (like a client's `sendMessage`);
    /// `done({ok: {id, timestamp}} | {error: {code, message}})`.
    #[napi]
    pub fn publish(
        &self,
        room: String,
        user_id: String,
        username: Option<String>,
        text: String,
        done: Function<'_, Value, ()>,
    ) -> napi::Result<()> {
        let host = self.live_host()?;
        let done = notify(&done)?;
        host.publish(room, user_id, username, text, move |result| {
            let result = match result {
                Ok(m) => json!({ "ok": host::json::published(&m) }),
                Err(e) => json!({ "error": e }),
            };
            let _ = done.call(result, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    /// Sends `event` with `data` to every connection of a user, Socket.IO and SSE alike;
    /// returns how many connections it reached.
    #[napi]
    pub fn notify_user(&self, user_id: String, event: String, data: Value) -> napi::Result<u32> {
        Ok(self.live_host()?.notify_user(&user_id, &event, &data) as u32)
    }

    /// Joins a connected socket to a room.
    #[napi]
    pub fn socket_join(&self, socket_id: String, room: String) -> bool {
        self.host.socket_join(&socket_id, &room)
    }

    /// Removes a connected socket from a room.
    #[napi]
    pub fn socket_leave(&self, socket_id: String, room: String) -> bool {
        self.host.socket_leave(&socket_id, &room)
    }

    /// Emits to one socket.
    #[napi]
    pub fn socket_emit(&self, socket_id: String, event: String, data: Value) -> bool {
        self.host
            .socket_emit(&socket_id, &event, &data)
            .is_some_and(|r| r.is_ok())
    }

    /// The rooms of a socket.
    #[napi]
    pub fn socket_rooms(&self, socket_id: String) -> Vec<String> {
        self.host.socket_rooms(&socket_id)
    }

    /// Disconnects one socket.
    #[napi]
    pub fn socket_disconnect(&self, socket_id: String) -> bool {
        self.host.socket_disconnect(&socket_id)
    }

    /// The users present in a room: `[{userId, username}]`.
    #[napi]
    pub fn presence(&self, room: String) -> Value {
        json!(self.host.presence(&room))
    }

    /// Disconnects every connection of a user (Socket.IO, SSE, Yjs: close 4410), on every
    /// node; returns how many there were on this one. A kick, not a ban: EventSource and
    /// y-websocket apps may reconnect; also stop accepting the user's token to keep them out.
    #[napi]
    pub fn disconnect_user(&self, user_id: String) -> napi::Result<u32> {
        Ok(self.live_host()?.disconnect_user(&user_id) as u32)
    }

    /// Counters: connections, sockets, rooms, messages.
    #[napi]
    pub fn stats(&self) -> Value {
        self.host.stats()
    }

    /// Closes every connection and stops the engine's runtime. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.host.shutdown(Duration::from_millis(500));
    }
}

/// The app's events registered with `engine.on(event)`, handed to JS's `onEvent({event,
/// args, socket})`.
struct AppEvents {
    on_event: Arc<JsCallback>,
    known: Arc<RwLock<HashSet<String>>>,
}

impl host::AppEvents for AppEvents {
    fn handles(&self, event: &str) -> bool {
        self.known.read().is_ok_and(|k| k.contains(event))
    }

    fn call(
        &self,
        event: &str,
        args: Vec<Value>,
        socket: Value,
    ) -> futures_util::future::BoxFuture<'static, Result<Value, switchboard::chat::HookError>> {
        let on_event = self.on_event.clone();
        let arg = json!({ "event": event, "args": args, "socket": socket });
        Box::pin(async move { hooks::call(&on_event, arg).await })
    }
}

/// Why `engine.on(event)` cannot take `event` (a contract event the engine answers, or a
/// name Socket.IO reserves), or `null` when it can.
#[napi]
pub fn app_event_refusal(event: String) -> Option<String> {
    switchboard::chat::app_event_refusal(&event)
}
