//! The engine's hooks that ask the host: authentication (Socket.IO and documents), room
//! access, message storage, app events and document updates, each a request in the registry.

use super::*;

/// What the host's authentication callback gets.
fn handshake_json(request: &ConnectRequest) -> String {
    request.handshake_json().to_string()
}

/// Asks the host who a connecting client is (`handshake` is the JSON its callback gets),
/// through its callback or the event queue: Socket.IO and document connections alike.
async fn ask_auth(
    shared: &Shared,
    route: Route<AuthFn>,
    handshake: std::ffi::CString,
) -> Result<User, String> {
    let deliver = |id| match route {
        // SAFETY: the callback's contract; the string outlives the call.
        Route::Callback(f, ud) => shared.call(|| unsafe { f(ud.0, id, handshake.as_ptr()) }),
        Route::Queue => shared.enqueue(sb_event::new(
            sb_event_kind::SB_EVENT_AUTH,
            id,
            None,
            handshake.clone(),
            None,
        )),
    };
    shared.ask(Pending::Auth, deliver).await
}

/// Authentication by the host.
pub(crate) struct HostAuth {
    pub shared: Arc<Shared>,
    pub route: Route<AuthFn>,
}

impl Authenticate for HostAuth {
    fn authenticate(&self, request: &ConnectRequest) -> BoxFuture<'static, Result<User, Refusal>> {
        let shared = self.shared.clone();
        let route = self.route;
        let handshake = c_string(&handshake_json(request));
        Box::pin(async move {
            ask_auth(&shared, route, handshake)
                .await
                .map_err(|message| Refusal {
                    message,
                    reason: "refused_by_host",
                })
        })
    }
}

/// What the host's authentication callback gets for a document connection: the handshake's
/// shape, with the token as `auth.token` and the document's name.
fn document_handshake_json(request: &DocumentRequest) -> String {
    let head = &request.head;
    let mut headers = Map::new();
    for (name, value) in &head.headers {
        if let Ok(v) = value.to_str() {
            headers.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    let raw = head.uri.query().unwrap_or("");
    let mut query = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if let Some(v) = switchboard::transport::http::query_param(raw, key) {
            query.insert(key.to_owned(), Value::String(v));
        }
    }
    json!({
        "auth": { "token": request.token },
        "headers": headers,
        "query": query,
        "address": head.peer.ip().to_string(),
        "document": request.document,
    })
    .to_string()
}

/// Authentication of document connections by the host: the same callback (or queue) and the
/// same request kind as [`HostAuth`], so `sb_auth_request_accept`/`_refuse` complete both.
pub(crate) struct HostDocAuth {
    pub shared: Arc<Shared>,
    pub route: Route<AuthFn>,
}

impl yjs::Authenticate for HostDocAuth {
    fn authenticate(
        &self,
        request: &DocumentRequest,
    ) -> BoxFuture<'static, Result<User, AuthError>> {
        let shared = self.shared.clone();
        let route = self.route;
        let handshake = c_string(&document_handshake_json(request));
        Box::pin(async move {
            ask_auth(&shared, route, handshake)
                .await
                .map_err(AuthError::Refused)
        })
    }
}

/// The host's document-update callback as a [`yjs::DocumentObserver`].
pub(crate) struct HostDocumentObserver {
    pub shared: Arc<Shared>,
    pub callback: DocUpdateFn,
    pub userdata: Userdata,
}

impl yjs::DocumentObserver for HostDocumentObserver {
    fn on_update(&self, doc: &str, update: &[u8]) {
        let name = c_string(doc);
        let (f, ud) = (self.callback, self.userdata);
        // Not after shutdown (`call` refuses then); nothing to report back.
        // SAFETY: the callback's contract; the name and the bytes outlive the call.
        let _ = self
            .shared
            .call(|| unsafe { f(ud.0, name.as_ptr(), update.as_ptr(), update.len()) });
    }
}

/// Room access by the host.
pub(crate) struct HostRoomAccess {
    pub shared: Arc<Shared>,
    pub route: Route<RoomFn>,
}

impl RoomAccess for HostRoomAccess {
    fn allow(&self, user: &User, room: &str) -> BoxFuture<'static, Result<bool, HookError>> {
        let shared = self.shared.clone();
        let route = self.route;
        let user = c_string(&serde_json::to_string(user).unwrap_or_default());
        let room = c_string(room);
        Box::pin(async move {
            let deliver = |id| match route {
                // SAFETY: the callback's contract; the strings outlive the call.
                Route::Callback(f, ud) => {
                    shared.call(|| unsafe { f(ud.0, id, user.as_ptr(), room.as_ptr()) })
                }
                Route::Queue => shared.enqueue(sb_event::new(
                    sb_event_kind::SB_EVENT_ROOM_ACCESS,
                    id,
                    Some(room.clone()),
                    user.clone(),
                    None,
                )),
            };
            shared.ask(Pending::RoomAccess, deliver).await
        })
    }
}

/// Message persistence by the host.
pub(crate) struct HostStore {
    pub shared: Arc<Shared>,
    pub route: Route<StoreFn>,
}

impl MessageStore for HostStore {
    fn store(&self, message: &ChatMessage) -> BoxFuture<'static, Result<(), HookError>> {
        let shared = self.shared.clone();
        let route = self.route;
        let message = c_string(&serde_json::to_string(message).unwrap_or_default());
        Box::pin(async move {
            let deliver = |id| match route {
                // SAFETY: the callback's contract; the string outlives the call.
                Route::Callback(f, ud) => shared.call(|| unsafe { f(ud.0, id, message.as_ptr()) }),
                Route::Queue => shared.enqueue(sb_event::new(
                    sb_event_kind::SB_EVENT_STORE,
                    id,
                    None,
                    message.clone(),
                    None,
                )),
            };
            shared.ask(Pending::Store, deliver).await
        })
    }
}

/// The app's own events, as the Node binding does them: registered names go to the host,
/// whose result becomes the ack `[null, result]` or `[{code: "INTERNAL", message}]`.
pub(crate) struct AppEvents {
    pub shared: Arc<Shared>,
    pub route: Route<AppFn>,
    pub names: HashSet<String>,
    pub timeout: Duration,
}

impl AppEvents {
    pub(crate) async fn handle(
        &self,
        socket: Arc<Socket>,
        event: String,
        payload: Payload,
        ack: Option<AckSender>,
    ) {
        if !self.names.contains(&event) {
            if let Some(ack) = ack {
                ack.send(vec![
                    json!({"code": "INVALID_MESSAGE", "message": format!("Unknown event {event}")}),
                ]);
            }
            return;
        }
        let name = c_string(&event);
        let args = c_string(&Value::Array(payload.args).to_string());
        let socket_json = c_string(&socket.host_json().to_string());
        let shared = &self.shared;
        let route = self.route;
        let deliver = |id| match route {
            // SAFETY: the callback's contract; the strings outlive the call.
            Route::Callback(f, ud) => shared.call(|| unsafe {
                f(ud.0, id, name.as_ptr(), args.as_ptr(), socket_json.as_ptr())
            }),
            Route::Queue => shared.enqueue(sb_event::new(
                sb_event_kind::SB_EVENT_APP,
                id,
                Some(name.clone()),
                args.clone(),
                Some(socket_json.clone()),
            )),
        };
        let result = match tokio::time::timeout(
            self.timeout,
            shared.ask(Pending::AppEvent, deliver),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(HookError::Engine(format!("handler for {event} timed out"))),
        };
        if let Some(ack) = ack {
            ack.send_result(&event, result);
        }
    }
}
