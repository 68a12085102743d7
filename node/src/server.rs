//! The Socket.IO-like server API for JS: connection and disconnection hooks, broadcasts to
//! several rooms minus others, server-to-client acks, the rooms and sockets of the engine,
//! and where its endpoints live.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use napi::bindgen_prelude::{Function, Promise};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use serde_json::{json, Value};
use switchboard::host;
use switchboard::socketio::{AckError, Payload};

use crate::hooks::{self, JsCallback};
use crate::{err, notify, HttpAnswer, NativeEngine};

/// JS's `onLifecycle({kind, socket, reason?})` as the product's connection callbacks,
/// called only while `watching` is set (JS sets it once it has a listener or keeps data for
/// a socket), so an engine without listeners pays nothing per connection.
pub(crate) struct JsLifecycle {
    pub tsfn: Arc<JsCallback>,
    pub watching: Arc<AtomicBool>,
}

impl host::Lifecycle for JsLifecycle {
    fn watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    fn connected(&self, socket: Value) -> BoxFuture<'static, ()> {
        let tsfn = self.tsfn.clone();
        let arg = json!({"kind": "connect", "socket": socket});
        // Awaited (the product bounds it by `host_callback_timeout`).
        Box::pin(async move {
            let _ = hooks::call(&tsfn, arg).await;
        })
    }

    fn disconnected(&self, socket: Value, reason: &str) {
        let arg = json!({"kind": "disconnect", "socket": socket, "reason": reason});
        // Not awaited: this runs inside the socket's cleanup, on any thread.
        let _ = self.tsfn.call(arg, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Turns an acknowledgement failure into `{error: {code, message}}`.
fn ack_error(e: AckError) -> Value {
    let code = match e {
        AckError::Timeout => "TIMEOUT",
        AckError::Disconnected => "DISCONNECTED",
        AckError::TooManyPending => "TOO_MANY_PENDING_ACKS",
    };
    json!({"error": {"code": code, "message": e.to_string()}})
}

#[napi]
impl NativeEngine {
    /// Starts (or stops) calling `onLifecycle` for connections and disconnections.
    #[napi]
    pub fn watch_lifecycle(&self, on: bool) {
        self.lifecycle.store(on, Ordering::Release);
    }

    /// Emits to every socket in any of `rooms` but those in any of `except`, each once
    /// (across the cluster with Redis). Runs on the engine's threads; returns immediately.
    #[napi]
    pub fn emit_to_rooms(
        &self,
        rooms: Vec<String>,
        except: Vec<String>,
        event: String,
        data: Value,
    ) -> napi::Result<()> {
        self.live()?.spawn_emit_to_rooms(rooms, except, event, data);
        Ok(())
    }

    /// Emits `event` to one socket with an ack id and calls `done({ok: [args]})` with the
    /// client's answer, or `done({error: {code, message}})`: `TIMEOUT` after `timeoutMs`,
    /// `DISCONNECTED`, `TOO_MANY_PENDING_ACKS` (256 outstanding on that socket).
    #[napi]
    pub fn socket_emit_with_ack(
        &self,
        socket_id: String,
        event: String,
        data: Value,
        timeout_ms: u32,
        done: Function<'_, Value, ()>,
    ) -> napi::Result<()> {
        let engine = self.live()?.clone();
        let done = notify(&done)?;
        let socket = engine.socket(&socket_id);
        engine.handle().clone().spawn(async move {
            let result = match socket {
                None => ack_error(AckError::Disconnected),
                Some(socket) => {
                    let timeout = Duration::from_millis(u64::from(timeout_ms.max(1)));
                    match socket
                        .emit_with_ack(&event, &Payload::new(vec![data]), timeout)
                        .await
                    {
                        Ok(answer) => json!({"ok": answer.args}),
                        Err(e) => ack_error(e),
                    }
                }
            };
            let _ = done.call(result, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    /// Whether a socket is connected to this node.
    #[napi]
    pub fn socket_connected(&self, socket_id: String) -> bool {
        self.host.engine().socket(&socket_id).is_some()
    }

    /// The rooms with sockets on this node: `[{roomId, sockets}]`, sorted.
    #[napi]
    pub fn rooms(&self) -> Value {
        self.host.socket_rooms_of_node()
    }

    /// The sockets in `room` across the cluster: `done([{id, user, rooms}])`, with what
    /// the other nodes answered within `timeoutMs`.
    #[napi]
    pub fn fetch_sockets(
        &self,
        room: String,
        timeout_ms: u32,
        done: Function<'_, Value, ()>,
    ) -> napi::Result<()> {
        let engine = self.live()?.clone();
        let done = notify(&done)?;
        engine.handle().clone().spawn(async move {
            let timeout = Duration::from_millis(u64::from(timeout_ms.max(1)));
            let sockets = engine.fetch_sockets(&room, timeout).await;
            let _ = done.call(
                Value::Array(sockets),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        });
        Ok(())
    }

    /// The `/healthz` answer, without going through HTTP (the Fastify plugin's route). It
    /// works after `close()` too: then it says `shutting down`.
    #[napi]
    pub fn health(&self) -> HttpAnswer {
        let reply = self.host.engine().http().health();
        HttpAnswer {
            status: u32::from(reply.status.as_u16()),
            headers: vec!["content-type".into(), "application/json".into()],
            body: reply.body.to_vec().into(),
            streaming: false,
        }
    }

    /// Every endpoint's path with the prefix: `{socketio, events, api, yjs, metrics,
    /// healthz, ws}`, `null` for those turned off.
    #[napi]
    pub fn endpoints(&self) -> napi::Result<Value> {
        serde_json::to_value(self.host.engine().config().endpoints()).map_err(err)
    }
}

/// Makes the optional `onLifecycle` callback thread-safe.
pub(crate) fn lifecycle_callback(
    f: Option<Function<'_, Value, Promise<Value>>>,
) -> napi::Result<Option<Arc<JsCallback>>> {
    f.as_ref().map(hooks::callback).transpose()
}
