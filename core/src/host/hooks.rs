//! What a host plugs into the product, as plain Rust traits: who a client is (one callback
//! for Socket.IO and document connections), the app's own events, and connections coming
//! and going. The bindings implement them over C function pointers or JS functions; the
//! product turns them into the chat's and the documents' hooks here.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::auth::{AuthError, User};
use crate::socketio::{AckSender, ConnectRequest, HookError, Payload, Refusal, Socket};
use crate::yjs::DocumentRequest;
use crate::EngineBuilder;

/// Decides who a connecting client is, for Socket.IO and document connections alike.
pub trait Authenticate: Send + Sync + 'static {
    /// `handshake` is [`super::json::handshake`] for a Socket.IO client and
    /// [`super::json::document_handshake`] for a document connection (it has `document`).
    /// A refusal whose `reason` is `"invalid_token"` refuses a document connection as an
    /// invalid token; any other closes it with the refusal's message.
    fn authenticate(&self, handshake: Value) -> BoxFuture<'static, Result<User, Refusal>>;
}

/// The app's own client events: those without a handler of the chat contract.
pub trait AppEvents: Send + Sync + 'static {
    /// Whether the host registered `event`; unregistered ones are answered
    /// `INVALID_MESSAGE` "Unknown event `<name>`" without asking the host.
    fn handles(&self, event: &str) -> bool;

    /// Handles a registered event: `args` are its arguments (binary ones as placeholders),
    /// `socket` is [`super::json::socket`]. The result becomes the client's ack. The engine
    /// gives up after `host_callback_timeout`.
    fn call(
        &self,
        event: &str,
        args: Vec<Value>,
        socket: Value,
    ) -> BoxFuture<'static, Result<Value, HookError>>;
}

/// Told about every socket that connects and disconnects on the `/` namespace.
pub trait Lifecycle: Send + Sync + 'static {
    /// Whether to call at all right now (checked per connection, before any JSON is built,
    /// so a host without listeners pays nothing).
    fn watching(&self) -> bool {
        true
    }

    /// A socket connected (`socket` is [`super::json::socket`]). The socket's events wait
    /// for the returned future, for up to `host_callback_timeout`.
    fn connected(&self, socket: Value) -> BoxFuture<'static, ()>;

    /// A socket disconnected, with Socket.IO's reason (`socket` is
    /// [`super::json::socket_gone`]). Runs inside the socket's cleanup, on any engine
    /// thread: return quickly.
    fn disconnected(&self, socket: Value, reason: &str);
}

/// The host's [`Authenticate`] as the chat's hook.
pub(super) struct SocketAuth(pub Arc<dyn Authenticate>);

impl crate::chat::Authenticate for SocketAuth {
    fn authenticate(&self, request: &ConnectRequest) -> BoxFuture<'static, Result<User, Refusal>> {
        self.0.authenticate(super::json::handshake(request))
    }
}

/// The host's [`Authenticate`] as the documents' hook.
pub(super) struct DocumentAuth(pub Arc<dyn Authenticate>);

impl crate::yjs::Authenticate for DocumentAuth {
    fn authenticate(
        &self,
        request: &DocumentRequest,
    ) -> BoxFuture<'static, Result<User, AuthError>> {
        let refused = self
            .0
            .authenticate(super::json::document_handshake(request));
        Box::pin(async move {
            refused.await.map_err(|r| match r.reason {
                "invalid_token" => AuthError::Invalid,
                _ => AuthError::Refused(r.message),
            })
        })
    }
}

/// Hands an event without a handler of its own to the host, and its outcome back as the ack.
async fn app_event(
    app: Arc<dyn AppEvents>,
    timeout: Duration,
    socket: Arc<Socket>,
    event: String,
    payload: Payload,
    ack: Option<AckSender>,
) {
    if !app.handles(&event) {
        if let Some(ack) = ack {
            ack.send(vec![super::json::unknown_event(&event)]);
        }
        return;
    }
    let call = app.call(&event, payload.args, super::json::socket(&socket));
    let result = match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(HookError::Engine(format!("handler for {event} timed out"))),
    };
    if let Some(ack) = ack {
        ack.send_result(&event, result);
    }
}

/// Routes the `/` namespace's events without a handler to the host.
pub(super) fn install_app_events(
    builder: EngineBuilder,
    app: Arc<dyn AppEvents>,
    timeout: Duration,
) -> EngineBuilder {
    builder.namespace("/", move |ns| {
        ns.on_any(move |socket, event, payload, ack| {
            app_event(app.clone(), timeout, socket, event, payload, ack)
        })
    })
}

/// Calls the host's [`Lifecycle`] for every connection and disconnection of `/`.
pub(super) fn install_lifecycle(
    builder: EngineBuilder,
    lifecycle: Arc<dyn Lifecycle>,
    timeout: Duration,
) -> EngineBuilder {
    let gone = lifecycle.clone();
    builder
        .on_connection(move |socket| {
            // Built now, before the socket's first event can change its rooms.
            let connected = lifecycle
                .watching()
                .then(|| lifecycle.connected(super::json::socket(&socket)));
            async move {
                if let Some(connected) = connected {
                    // Bounded: rooms joined by the host are joined before the client's first
                    // event is handled (as in Socket.IO).
                    let _ = tokio::time::timeout(timeout, connected).await;
                }
            }
        })
        .on_disconnect(move |socket, rooms, reason| {
            if gone.watching() {
                gone.disconnected(super::json::socket_gone(socket, rooms), reason.as_str());
            }
        })
}
