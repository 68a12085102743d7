//! The engine's hooks that ask the host: authentication (Socket.IO and documents), room
//! access, message storage, app events and document updates, each a request in the registry.

use super::*;

impl HostHooks {
    /// The configured hooks as the product's: each callback (or the event queue) behind the
    /// Rust trait the product calls. App events always go to the host (the queue when no
    /// callback is set), which answers those it did not register.
    pub(crate) fn product_hooks(&self, shared: &Arc<Shared>) -> host::Hooks {
        host::Hooks {
            authenticate: self.auth.map(|route| {
                Arc::new(HostAuth {
                    shared: shared.clone(),
                    route,
                }) as _
            }),
            room_access: self.room_access.map(|route| {
                Arc::new(HostRoomAccess {
                    shared: shared.clone(),
                    route,
                }) as Arc<dyn RoomAccess>
            }),
            message_store: self.store.map(|route| {
                Arc::new(HostStore {
                    shared: shared.clone(),
                    route,
                }) as _
            }),
            document_observers: self
                .document_update
                .map(|(callback, userdata)| {
                    Arc::new(HostDocumentObserver {
                        shared: shared.clone(),
                        callback,
                        userdata,
                    }) as _
                })
                .into_iter()
                .collect(),
            app_events: Some(Arc::new(AppEvents {
                shared: shared.clone(),
                route: self.app.unwrap_or(Route::Queue),
                names: self.app_events.clone(),
            })),
            lifecycle: self
                .connection
                .map(|(f, userdata)| Arc::new(crate::server::Connections(f, userdata)) as _),
            on_activity: None,
        }
    }
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

/// Authentication by the host, of Socket.IO and document connections alike (one request
/// kind, so `sb_auth_request_accept`/`_refuse` complete both).
pub(crate) struct HostAuth {
    pub shared: Arc<Shared>,
    pub route: Route<AuthFn>,
}

impl host::Authenticate for HostAuth {
    fn authenticate(&self, handshake: Value) -> BoxFuture<'static, Result<User, Refusal>> {
        let shared = self.shared.clone();
        let route = self.route;
        let handshake = c_string(&handshake.to_string());
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
}

impl host::AppEvents for AppEvents {
    fn handles(&self, event: &str) -> bool {
        self.names.contains(event)
    }

    fn call(
        &self,
        event: &str,
        args: Vec<Value>,
        socket: Value,
    ) -> BoxFuture<'static, Result<Value, HookError>> {
        let shared = self.shared.clone();
        let route = self.route;
        let name = c_string(event);
        let args = c_string(&Value::Array(args).to_string());
        let socket_json = c_string(&socket.to_string());
        Box::pin(async move {
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
            shared.ask(Pending::AppEvent, deliver).await
        })
    }
}
