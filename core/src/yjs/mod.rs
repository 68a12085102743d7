//! Collaborative documents: Yjs over the y-websocket protocol at `/yjs/<docName>`.
//!
//! Unmodified `yjs` + `y-websocket` clients connect to `ws://host/yjs/<docName>?token=JWT`.
//! The token follows the same rules as Socket.IO's, and opening a document is joining the room
//! `doc:<docName>` under the same access rules (the token's `rooms` claim, else the room policy,
//! a host [`RoomAccess`] hook overriding both). Refusals close the WebSocket with 4401 (auth) or
//! 4403 (access), and `disconnect_user` with 4410, codes y-websocket 3.x does not reconnect
//! after; see [`close_code`].
//!
//! The CRDT is [`yrs`], the Rust port of Yjs; this module is the server around it:
//! - `protocol`: the y-websocket messages (decoding through yrs, frames built once);
//! - `document`: the registry of loaded documents, their awareness and connections, the
//!   debounced stores and the idle unload;
//! - `store`: [`DocumentStore`] with the in-memory and `redb` (`documents.redb`) stores;
//! - `connection`: one WebSocket: auth, access, the read loop, pings, the writer.
//!
//! With a cluster (`redis_url`), [`install`] wires documents across the nodes (`cluster`):
//! local updates and awareness are published, other nodes' applied, and documents stored in
//! Redis. A host with its own fabric plugs in through [`Hooks::store`] (a store several
//! nodes share, merging states) and [`DocumentObserver`] (publish local updates and
//! awareness), with [`Yjs::apply_remote_update`] and [`Yjs::apply_remote_awareness`] for what
//! other nodes sent.

pub(crate) mod cluster;
mod connection;
pub(crate) mod document;
pub(crate) mod protocol;
mod registry;
mod store;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::runtime::Handle;
use yrs::updates::decoder::Decode;

pub use document::close_code;
pub use store::{DocumentStore, DocumentStoreError, MemoryStore, RedbStore};

use crate::auth::access::RoomAccess;
use crate::auth::{AuthError, JwtVerifier, User};
use crate::config::Config;
use crate::engine::EngineBuilder;
use crate::error::Error;
use crate::hub::rooms::Rooms;
use crate::hub::users::UserConnections;
use crate::metrics::{Counter, Gauge, LabeledCounter};
use crate::transport::http::{HttpReply, RequestHead, WebSocketService, WsSession};
use document::{CloseSignal, CloseWith, Effects};
use registry::Registry;

/// Longest document name, in bytes.
const MAX_NAME_BYTES: usize = 512;
/// How long shutdown waits for documents to be stored.
const SHUTDOWN_STORE_WAIT: Duration = Duration::from_secs(5);

/// A client asking to open a document, as an [`Authenticate`] hook sees it.
#[derive(Debug, Clone)]
pub struct DocumentRequest {
    /// The document's name (the path after `/yjs/`, percent-decoded).
    pub document: String,
    /// The `token` query parameter, else the `Authorization: Bearer` header.
    pub token: Option<String>,
    /// The upgrade request.
    pub head: RequestHead,
}

/// Authenticates document connections instead of JWT verification (the Node host's
/// `authenticate` callback).
pub trait Authenticate: Send + Sync + 'static {
    /// Decides who the client is; an error refuses it (close 4401 with the error's message).
    fn authenticate(
        &self,
        request: &DocumentRequest,
    ) -> BoxFuture<'static, Result<User, AuthError>>;
}

/// Observes what clients of this node change. Calls happen on the engine's runtime, off the
/// document's lock; they must not block (queue the work).
pub trait DocumentObserver: Send + Sync + 'static {
    /// An update from a client changed `doc` (`update`: what changed, Yjs v1 encoding). It is
    /// in memory and broadcast; it is stored with the document's next (debounced) store.
    fn on_update(&self, doc: &str, update: &[u8]);

    /// A client's awareness changed (`update`: a y-protocols awareness update). Ignored by
    /// default; a cluster publishes it.
    fn on_awareness(&self, _doc: &str, _update: &[u8]) {}
}

/// Host hooks; each one left unset uses the built-in behaviour.
#[derive(Default, Clone)]
pub struct Hooks {
    /// Replaces JWT verification.
    pub authenticate: Option<Arc<dyn Authenticate>>,
    /// Decides access to `doc:<name>` instead of the token's `rooms` claim and the room policy
    /// (pass the chat's hook to share one rule: chat rooms cannot start with `doc:`, so the
    /// hook can tell a document from a chat room).
    pub room_access: Option<Arc<dyn RoomAccess>>,
    /// Where documents are kept; default: `documents.redb` under `data_dir`, else memory.
    pub store: Option<Arc<dyn DocumentStore>>,
    /// Told about every change clients make.
    pub observers: Vec<Arc<dyn DocumentObserver>>,
}

/// The Yjs endpoint's counters, rendered into `/metrics`.
#[derive(Default)]
pub(crate) struct YjsMetrics {
    pub documents: Gauge,
    pub connections: Gauge,
    pub updates: Counter,
    pub stores: Counter,
    pub store_failures: Counter,
    pub refusals: LabeledCounter,
}

/// State shared by the endpoint and its connections.
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) jwt: JwtVerifier,
    pub(crate) hooks: Hooks,
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) registry: Registry,
    pub(crate) metrics: YjsMetrics,
    /// The documents' side of the engine's cluster, when it has one.
    pub(crate) cluster: Option<Arc<cluster::DocumentCluster>>,
    /// The open connections of each user, by connection id: what `disconnect_user` closes.
    /// Only Yjs connections are listed here (Socket.IO and SSE have indexes of their own).
    pub(crate) users: Rooms<u64, Arc<CloseSignal>>,
    runtime: OnceLock<Handle>,
    closing: AtomicBool,
    next_conn: AtomicU64,
}

impl Inner {
    /// Spawns on the engine's runtime (a no-op once it is gone).
    pub(crate) fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(h) = self.runtime.get() {
            h.spawn(f);
        } else if let Ok(h) = Handle::try_current() {
            h.spawn(f);
        }
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Tells the observers, then starts the flusher when the document became dirty.
    pub(crate) fn after_effects(
        self: &Arc<Self>,
        doc: &Arc<registry::Document>,
        effects: &Effects,
    ) {
        self.metrics.updates.add(effects.updates.len() as u64);
        for observer in &self.hooks.observers {
            for update in &effects.updates {
                observer.on_update(&doc.name, update);
            }
            for update in &effects.awareness {
                observer.on_awareness(&doc.name, update);
            }
        }
        if effects.start_flusher {
            let (doc, inner) = (doc.clone(), self.clone());
            self.spawn(doc.run_flusher(inner));
        }
    }
}

/// The Yjs endpoint. Mount it with [`install`] (or [`EngineBuilder::websocket_service`]).
pub struct Yjs {
    inner: Arc<Inner>,
}

impl Yjs {
    /// An endpoint with this configuration (the `yjs_*` settings, JWT and room policy) and
    /// these hooks. Opens `documents.redb` under `data_dir` unless a store is given.
    pub fn new(config: &Config, hooks: Hooks) -> Result<Arc<Self>, Error> {
        Self::build(config, hooks, None)
    }

    /// [`Yjs::new`], as a node of `cluster` when given: unless the hooks bring a store, the
    /// cluster's (Redis) is used, and it observes every change.
    fn build(
        config: &Config,
        mut hooks: Hooks,
        cluster: Option<Arc<cluster::DocumentCluster>>,
    ) -> Result<Arc<Self>, Error> {
        let jwt = JwtVerifier::new(config)?;
        if let Some(c) = &cluster {
            hooks.observers.push(c.clone());
        }
        let store: Arc<dyn DocumentStore> = match (&hooks.store, &cluster, &config.data_dir) {
            (Some(store), _, _) => store.clone(),
            (None, Some(c), _) => c.clone(),
            (None, None, Some(dir)) => Arc::new(
                RedbStore::open(dir).map_err(|e| crate::store::StoreError::Host(e.to_string()))?,
            ),
            (None, None, None) => Arc::new(MemoryStore::default()),
        };
        Ok(Arc::new(Yjs {
            inner: Arc::new(Inner {
                config: config.clone(),
                jwt,
                hooks,
                store,
                registry: Registry::default(),
                metrics: YjsMetrics::default(),
                cluster,
                users: Rooms::default(),
                runtime: OnceLock::new(),
                closing: AtomicBool::new(false),
                next_conn: AtomicU64::new(1),
            }),
        }))
    }

    /// Number of documents in memory.
    pub fn document_count(&self) -> usize {
        self.inner.registry.len()
    }

    /// Number of open document connections.
    pub fn connection_count(&self) -> usize {
        self.inner.metrics.connections.get().max(0) as usize
    }

    /// The whole state of a document (a Yjs update, v1 encoding): from memory when it is
    /// loaded, else from the store; `None` when it does not exist.
    pub async fn document_state(&self, doc: &str) -> Result<Option<Vec<u8>>, DocumentStoreError> {
        if let Some(state) = self
            .inner
            .registry
            .get(doc)
            .and_then(|d| d.state().map(|s| s.lock().encode_state()))
        {
            return Ok(Some(state));
        }
        self.inner.store.load(doc).await
    }

    /// Applies an update another node of a cluster received for `doc` and passes it on to this
    /// node's connections. A document not loaded here is left alone (its store has the update).
    /// Returns whether it changed the document.
    pub fn apply_remote_update(&self, doc: &str, update: &[u8]) -> bool {
        let Some(document) = self.inner.registry.get(doc) else {
            return false;
        };
        let Some(state) = document.state() else {
            return false;
        };
        let mut effects = Effects::default();
        let changed = state.lock().apply_remote_update(update, &mut effects);
        if effects.start_flusher {
            self.inner
                .spawn(document.clone().run_flusher(self.inner.clone()));
        }
        changed
    }

    /// Applies awareness another node received for `doc` and passes it on to this node's
    /// connections.
    pub fn apply_remote_awareness(&self, doc: &str, update: &[u8]) {
        let Ok(update) = yrs::sync::AwarenessUpdate::decode_v1(update) else {
            return;
        };
        if let Some(document) = self.inner.registry.get(doc) {
            if let Some(state) = document.state() {
                state.lock().apply_remote_awareness(update);
            }
        }
    }

    /// Stores every document with unstored changes now.
    pub async fn flush(&self) -> Result<(), DocumentStoreError> {
        let mut result = Ok(());
        for doc in self.inner.registry.all() {
            if let Err(e) = doc.flush(&self.inner).await {
                result = Err(e);
            }
        }
        result
    }
}

/// A user's document connections close with [`close_code::DISCONNECTED`].
impl UserConnections for Inner {
    fn disconnect_user(&self, user_id: &str) -> usize {
        let mut n = 0;
        self.users.for_each(user_id, |_, close| {
            close.fire(CloseWith::new(
                close_code::DISCONNECTED,
                "Disconnected by the server",
            ));
            n += 1;
        });
        n
    }
}

/// The document name in a request path: what follows the prefix, percent-decoded.
pub(crate) fn document_name(path: &str, prefix: &str) -> Option<String> {
    let raw = path.strip_prefix(prefix)?;
    let name = crate::helpers::percent::path_segment(raw)?;
    let valid =
        !name.is_empty() && name.len() <= MAX_NAME_BYTES && !name.chars().any(char::is_control);
    valid.then_some(name)
}

impl WebSocketService for Yjs {
    fn accept(&self, head: &RequestHead) -> Result<WsSession, HttpReply> {
        let inner = &self.inner;
        if inner.is_closing() {
            return Err(HttpReply::json(
                http::StatusCode::SERVICE_UNAVAILABLE,
                &br#"{"code":"SHUTTING_DOWN","message":"Server is shutting down"}"#[..],
            ));
        }
        let Some(document) = document_name(head.uri.path(), &inner.config.yjs_path) else {
            return Err(HttpReply::json(
                http::StatusCode::BAD_REQUEST,
                &br#"{"code":"INVALID_DOCUMENT","message":"Invalid document name"}"#[..],
            ));
        };
        let token =
            crate::helpers::token::find(&head.headers, head.uri.query().unwrap_or(""), None);
        let request = DocumentRequest {
            document,
            token,
            // Only a host hook needs the whole head; keep no parser buffer alive otherwise.
            head: if inner.hooks.authenticate.is_some() {
                head.clone()
            } else {
                RequestHead {
                    method: head.method.clone(),
                    uri: http::Uri::default(),
                    headers: http::HeaderMap::new(),
                    peer: head.peer,
                }
            },
        };
        let inner = inner.clone();
        Ok(Box::new(move |reader, writer, prefix| {
            Box::pin(connection::run(inner, request, reader, writer, prefix))
        }))
    }

    fn start(&self, runtime: &Handle) {
        let _ = self.inner.runtime.set(runtime.clone());
    }

    fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let m = &self.inner.metrics;
        let mut simple = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        simple(
            "switchboard_yjs_documents",
            "gauge",
            "Yjs documents in memory.",
            m.documents.get().to_string(),
        );
        simple(
            "switchboard_yjs_connections",
            "gauge",
            "Open Yjs document connections.",
            m.connections.get().to_string(),
        );
        simple(
            "switchboard_yjs_updates_total",
            "counter",
            "Yjs updates from clients that changed a document.",
            m.updates.get().to_string(),
        );
        simple(
            "switchboard_yjs_stores_total",
            "counter",
            "Yjs documents written to the store.",
            m.stores.get().to_string(),
        );
        simple(
            "switchboard_yjs_store_failures_total",
            "counter",
            "Failed Yjs document stores.",
            m.store_failures.get().to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_yjs_refusals_total Refused Yjs connections by reason.\n# TYPE switchboard_yjs_refusals_total counter"
        );
        for reason in ["unauthorized", "forbidden", "unavailable"] {
            let _ = writeln!(
                out,
                "switchboard_yjs_refusals_total{{reason=\"{reason}\"}} {}",
                m.refusals.get(reason)
            );
        }
    }

    fn open_connections(&self) -> usize {
        self.connection_count()
    }

    fn shutdown(&self) {
        let inner = &self.inner;
        if inner.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let going = CloseWith::new(close_code::GOING_AWAY, "Server shutting down");
        for doc in inner.registry.all() {
            if let Some(state) = doc.state() {
                state.lock().close_all(&going);
            }
        }
        // Store what is unstored before the runtime stops; wait for it without a runtime
        // context (the host's thread), or by parking this worker when called from one.
        let Some(runtime) = inner.runtime.get().cloned() else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let flusher = Yjs {
            inner: inner.clone(),
        };
        runtime.spawn(async move {
            if let Err(e) = flusher.flush().await {
                tracing::warn!(error = %e, "storing Yjs documents at shutdown failed");
            }
            let _ = tx.send(());
        });
        let wait = || {
            let _ = rx.recv_timeout(SHUTDOWN_STORE_WAIT);
        };
        match Handle::try_current() {
            Err(_) => wait(),
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            // A current-thread runtime cannot run the store while we wait: best effort.
            Ok(_) => {}
        }
    }
}

/// Serves Yjs documents at `config.yjs_path` (default `/yjs/`) with these hooks. Returns the
/// endpoint too, for hosts that read documents or feed their own fabric's updates in.
///
/// With a cluster (`redis_url`), documents are shared by the nodes: changes cross nodes and,
/// unless [`Hooks::store`] is set, documents are stored in Redis (not under `data_dir`).
///
/// With `config.yjs` off the endpoint is built but not mounted: no path is served.
pub fn install(builder: EngineBuilder, hooks: Hooks) -> Result<(EngineBuilder, Arc<Yjs>), Error> {
    // Documents are shared when other nodes may hear this one (`redis_url`).
    let cluster = builder.cluster().has_peers().then(|| {
        let documents = Arc::new(cluster::DocumentCluster::default());
        documents.attach(builder.cluster().clone());
        documents
    });
    let yjs = Yjs::build(builder.config(), hooks, cluster.clone())?;
    let prefix = builder.config().yjs_path.clone();
    if !builder.config().yjs {
        return Ok((builder, yjs));
    }
    let builder = builder.websocket_service(&prefix, yjs.clone());
    let connections: Arc<dyn UserConnections> = yjs.inner.clone();
    builder.users().register(Arc::downgrade(&connections));
    if cluster.is_some() {
        let sink = Arc::new(cluster::DocumentSink(Arc::downgrade(&yjs.inner)));
        // The broker starts once the engine is built, after every sink is added.
        builder.cluster().broker().add_sink(sink);
    }
    Ok((builder, yjs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text, Transact};

    fn update(text: &str) -> Vec<u8> {
        let doc = yrs::Doc::new();
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, 0, text);
        txn.encode_update_v1()
    }

    #[tokio::test]
    async fn idle_documents_are_stored_then_unloaded_and_come_back() {
        let config = Config::default().yjs_idle_unload(Duration::from_millis(50));
        let store = Arc::new(MemoryStore::default());
        let hooks = Hooks {
            store: Some(store.clone()),
            ..Hooks::default()
        };
        let yjs = Yjs::new(&config, hooks).unwrap();
        let inner = &yjs.inner;
        for round in 0..2 {
            let doc = inner.registry.open(inner, "notes");
            let state = doc.load(inner).await.unwrap();
            let effects = state.lock().handle(
                1,
                vec![protocol::Inbound::Update(update(&format!("r{round} ")))],
                document::Limits::new(&config),
            );
            assert_eq!(effects.updates.len(), 1);
            inner.after_effects(&doc, &effects);
            // Reopened while still held: one timer, no unload.
            let again = inner.registry.open(inner, "notes");
            inner.registry.release(inner, &again.name);
            tokio::time::sleep(Duration::from_millis(80)).await;
            assert_eq!(yjs.document_count(), 1, "held documents stay");
            inner.registry.release(inner, &doc.name);
            for _ in 0..100 {
                if yjs.document_count() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(yjs.document_count(), 0, "round {round}: unloaded");
        }
        // Both rounds' edits were stored and load again.
        let stored = yjs.document_state("notes").await.unwrap().unwrap();
        let doc = yrs::Doc::new();
        doc.transact_mut()
            .apply_update(yrs::Update::decode_v1(&stored).unwrap())
            .unwrap();
        let text = doc.get_or_insert_text("t").get_string(&doc.transact());
        assert!(text.contains("r0") && text.contains("r1"), "{text}");
        assert_eq!(inner.metrics.documents.get(), 0);
    }

    #[test]
    fn document_names() {
        assert_eq!(
            document_name("/yjs/notes", "/yjs/").as_deref(),
            Some("notes")
        );
        assert_eq!(
            document_name("/yjs/team%2Fa%20b", "/yjs/").as_deref(),
            Some("team/a b")
        );
        assert_eq!(document_name("/yjs/a/b", "/yjs/").as_deref(), Some("a/b"));
        assert_eq!(
            document_name("/yjs/a+b%zz", "/yjs/").as_deref(),
            Some("a+b%zz")
        );
        assert_eq!(document_name("/yjs/%ff", "/yjs/"), None);
        assert_eq!(document_name("/yjs/a%+9", "/yjs/").as_deref(), Some("a%+9"));
        assert_eq!(document_name("/yjs/", "/yjs/"), None);
        assert_eq!(document_name("/other/x", "/yjs/"), None);
        assert_eq!(document_name("/yjs/%0a", "/yjs/"), None);
        assert_eq!(
            document_name(&format!("/yjs/{}", "a".repeat(600)), "/yjs/"),
            None
        );
    }
}
