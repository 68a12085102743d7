//! JS callbacks as engine hooks. Each call crosses to Node's event loop through a weak
//! thread-safe function and is awaited on the engine's runtime, never blocking it.
//!
//! The JS wrapper (`index.js`) normalizes every callback to a Promise of `{ok: value}` or
//! `{error: {code, message}}` (a `SwitchboardError`, whose code and message the client sees)
//! or `{error: {detail}}` (anything else thrown: its stack, logged, never sent), so a throw
//! or a rejection arrives here as data, never as an exception that could take the process
//! down.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use napi::bindgen_prelude::{Buffer, FnArgs, Function, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use serde_json::{json, Value};
use switchboard::chat::ChatMessage;
use switchboard::chat::{HookError, MessageStore, RoomAccess};
use switchboard::host;
use switchboard::socketio::Refusal;
use switchboard::yjs;
use switchboard::User;

/// A JS function `(value) => Promise<{ok} | {error}>` callable from any thread.
pub type JsCallback = ThreadsafeFunction<Value, Promise<Value>, Value, Status, false, true>;

/// Makes a thread-safe, weak (does not keep Node alive) callback from a JS function.
pub fn callback(f: &Function<'_, Value, Promise<Value>>) -> napi::Result<Arc<JsCallback>> {
    Ok(Arc::new(
        f.build_threadsafe_function()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?,
    ))
}

/// Calls into JS and waits for the settled result.
pub async fn call(tsfn: &JsCallback, arg: Value) -> Result<Value, HookError> {
    let promise = tsfn
        .call_async_catch(arg)
        .await
        .map_err(|e| HookError::failed(format!("callback failed: {}", e.reason)))?;
    let settled = promise
        .await
        .map_err(|e| HookError::failed(format!("callback failed: {}", e.reason)))?;
    match settled.get("error") {
        Some(error) => Err(hook_error(error)),
        None => Ok(settled.get("ok").cloned().unwrap_or(Value::Null)),
    }
}

/// `{code, message}` from a `SwitchboardError`, `{detail}` from anything else.
fn hook_error(error: &Value) -> HookError {
    let text = |key: &str| error.get(key).and_then(Value::as_str);
    match (text("code"), text("message"), text("detail")) {
        (Some(code), message, _) => HookError::client(code, message.unwrap_or_default()),
        (None, _, Some(detail)) => HookError::failed(detail),
        _ => HookError::failed(error.to_string()),
    }
}

/// A failed host `authenticate` as the client's `connect_error` (logged when it is not
/// meant for the client).
fn refusal(e: &HookError) -> Refusal {
    let (_, message) = e.to_client("authenticate", "");
    let reason = match e {
        HookError::Client { .. } => "refused_by_host",
        _ => "host_error",
    };
    Refusal { message, reason }
}

/// The user `authenticate` resolved: `{id, username?, rooms?}`; `null` refuses.
fn user_from(value: &Value) -> Result<Option<User>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let id = match value.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("authenticate returned a user without an id".into()),
    };
    let username = value
        .get("username")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| id.clone(), str::to_owned);
    let rooms = value.get("rooms").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    });
    Ok(Some(User {
        id,
        username,
        rooms,
        // The host decides who the user is; it is asked again on every recovery.
        expires_at: None,
        claims: value.as_object().map(switchboard::Claims::from_map),
    }))
}

/// `authenticate(handshake) => Promise<{id, username, rooms?} | null>`, for Socket.IO and
/// document connections alike (a document's handshake has `document`, and `auth` is
/// `{token}`).
pub struct JsAuthenticate(pub Arc<JsCallback>);

impl host::Authenticate for JsAuthenticate {
    fn authenticate(&self, handshake: Value) -> BoxFuture<'static, Result<User, Refusal>> {
        let tsfn = self.0.clone();
        Box::pin(async move {
            let value = call(&tsfn, handshake).await.map_err(|e| refusal(&e))?;
            user_from(&value)
                .map_err(|e| refusal(&HookError::failed(e)))?
                .ok_or(Refusal {
                    message: "Invalid token".into(),
                    reason: "invalid_token",
                })
        })
    }
}

/// `onDocumentUpdate(docName, update)`: told about every change clients make to a document.
pub struct JsDocumentObserver(pub Arc<crate::Notify<FnArgs<(String, Buffer)>>>);

impl yjs::DocumentObserver for JsDocumentObserver {
    fn on_update(&self, doc: &str, update: &[u8]) {
        let _ = self.0.call(
            FnArgs::from((doc.to_owned(), Buffer::from(update.to_vec()))),
            napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking,
        );
    }
}

/// `authorizeRoom(user, roomId) => Promise<boolean>`.
pub struct JsRoomAccess(pub Arc<JsCallback>);

impl RoomAccess for JsRoomAccess {
    fn allow(&self, user: &User, room: &str) -> BoxFuture<'static, Result<bool, HookError>> {
        let tsfn = self.0.clone();
        let arg = json!({ "user": user, "roomId": room });
        Box::pin(async move {
            let value = call(&tsfn, arg).await?;
            Ok(value.as_bool().unwrap_or(false))
        })
    }
}

/// `storeMessage(message, sender) => Promise<void>`; JS gets `{message, sender}` and
/// `index.js` spreads it.
pub struct JsMessageStore(pub Arc<JsCallback>);

impl MessageStore for JsMessageStore {
    fn store(&self, message: &ChatMessage) -> BoxFuture<'static, Result<(), HookError>> {
        self.store_with(message, Value::Null)
    }

    fn store_from(
        &self,
        message: &ChatMessage,
        sender: &User,
    ) -> BoxFuture<'static, Result<(), HookError>> {
        self.store_with(message, serde_json::to_value(sender).unwrap_or(Value::Null))
    }
}

impl JsMessageStore {
    fn store_with(
        &self,
        message: &ChatMessage,
        sender: Value,
    ) -> BoxFuture<'static, Result<(), HookError>> {
        let tsfn = self.0.clone();
        let message = serde_json::to_value(message).unwrap_or(Value::Null);
        let arg = json!({ "message": message, "sender": sender });
        Box::pin(async move { call(&tsfn, arg).await.map(|_| ()) })
    }
}
