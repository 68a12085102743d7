//! Documents in memory: the registry (loaded on first connection, stored with a debounce,
//! unloaded when idle), and per document its Yjs state, its awareness states, its connections
//! and the fan-out of every change to them.
//!
//! A document's state sits behind one `parking_lot` mutex, held while a client's message is
//! applied and its frames are queued (CPU only: no IO, no `.await`). Every broadcast is framed
//! once and its bytes shared by all connections' bounded queues.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, OnceCell};
use yrs::sync::Awareness;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, ReadTxn, StateVector, Transact, Update};

use super::protocol::{self, Inbound};
use super::store::DocumentStoreError;
use super::Inner;
use crate::protocol::frame::Frame;
use crate::transport::outbox::{Outbox, PushError};

/// A connection's id, unique within the engine.
pub(crate) type ConnId = u64;

/// How long a failed store waits before it is tried again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// WebSocket close codes of the Yjs endpoint. 4400–4499 tell y-websocket 3.x not to
/// reconnect (reconnecting cannot help); 4500–4599 and the standard codes let it retry.
pub mod close_code {
    /// The message could not be decoded or applied.
    pub const MALFORMED: u16 = 4400;
    /// No token, or an invalid or expired one.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The user may not open this document.
    pub const FORBIDDEN: u16 = 4403;
    /// An update, or the document it would grow, is over its size limit.
    pub const TOO_LARGE: u16 = 4413;
    /// A host hook or the document store failed; try again later.
    pub const UNAVAILABLE: u16 = 4500;
    /// The server is shutting down, or the client did not answer a ping.
    pub const GOING_AWAY: u16 = 1001;
    /// The client reads too slowly: its outbound queue overflowed.
    pub const POLICY: u16 = 1008;
}

/// A close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseWith {
    pub code: u16,
    pub reason: String,
}

impl CloseWith {
    pub(crate) fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseWith {
            code,
            reason: reason.into(),
        }
    }
}

/// Tells a connection's task to close (a broadcast overflowed its queue, its writer failed,
/// or the server shuts down).
#[derive(Default)]
pub(crate) struct CloseSignal {
    with: Mutex<Option<CloseWith>>,
    notify: Notify,
}

impl CloseSignal {
    /// Asks the connection to close; the first reason wins.
    pub(crate) fn fire(&self, with: CloseWith) {
        self.with.lock().get_or_insert(with);
        self.notify.notify_one();
    }

    /// Waits until the connection is asked to close.
    pub(crate) async fn wait(&self) -> CloseWith {
        loop {
            let notified = self.notify.notified();
            if let Some(with) = self.with.lock().clone() {
                return with;
            }
            notified.await;
        }
    }
}

/// A connection as its document sees it.
pub(crate) struct ConnEntry {
    pub outbox: Arc<Outbox>,
    pub close: Arc<CloseSignal>,
    /// Awareness clients whose states this connection sent (removed when it closes).
    controlled: HashSet<ClientID>,
}

impl ConnEntry {
    pub(crate) fn new(outbox: Arc<Outbox>, close: Arc<CloseSignal>) -> Self {
        ConnEntry {
            outbox,
            close,
            controlled: HashSet::new(),
        }
    }

    fn push(&self, frame: Frame) {
        if let Err(PushError::Overflow) = self.outbox.push(frame) {
            self.close.fire(CloseWith::new(
                close_code::POLICY,
                "Outbound queue full: the client reads too slowly",
            ));
        }
    }
}

/// Size limits applied to clients' messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_document_bytes: usize,
}

/// What handling a client's message did, for the caller to act on off the lock.
#[derive(Default)]
pub(crate) struct Effects {
    /// Updates that changed the document (v1 encoding), in order.
    pub updates: Vec<Vec<u8>>,
    /// Awareness updates applied (encoded), in order.
    pub awareness: Vec<Vec<u8>>,
    /// The document became dirty and has no flusher yet: start one.
    pub start_flusher: bool,
    /// The connection must be closed (after the effects above).
    pub close: Option<CloseWith>,
}

/// Unstored changes: when the first one and the last one happened.
#[derive(Debug, Clone, Copy)]
struct Dirty {
    first: Instant,
    last: Instant,
}

/// A loaded document.
pub(crate) struct DocState {
    pub(super) awareness: Awareness,
    conns: HashMap<ConnId, ConnEntry>,
    /// The encoded state's size: exact after a load or a store, then grown by each update.
    size_estimate: usize,
    dirty: Option<Dirty>,
    flusher_running: bool,
}

/// An empty update (no structs, empty delete set) in v1 encoding.
const EMPTY_UPDATE: [u8; 2] = [0, 0];

/// Applies a client's update (v1 encoding) to `doc`; returns what it changed, as an update.
///
/// yrs can panic on crafted input (see [`encode_state_as_update`]); a panic here is caught
/// and the update refused like any malformed one, instead of killing the connection's task
/// with its socket left open.
pub(crate) fn apply_client_update(doc: &Doc, raw: &[u8]) -> Result<Vec<u8>, String> {
    let update = protocol::decode_update(raw).map_err(|e| e.to_string())?;
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        txn.apply_update(update)
            .map(|()| txn.encode_update_v1())
            .map_err(|e| e.to_string())
    }));
    applied.unwrap_or_else(|_| Err("yrs panicked applying the update".into()))
}

/// What `doc` has beyond `sv`, pending structs included, as one update (v1 encoding).
///
/// A crafted update can leave pending structs that yrs cannot merge back (it unwraps the
/// failed merge): then every sync step 1 answer and every store would panic and the document
/// would be lost to everyone. In that case the pending structs, never integrated, are left
/// out.
pub(crate) fn encode_state_as_update(doc: &Doc, sv: &StateVector) -> Vec<u8> {
    let txn = doc.transact();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        txn.encode_state_as_update_v1(sv)
    }))
    .unwrap_or_else(|_| {
        tracing::warn!("a Yjs document's pending structs cannot be encoded; leaving them out");
        txn.encode_diff_v1(sv)
    })
}

impl DocState {
    /// A document holding `stored` (a Yjs update), or an empty one.
    pub(crate) fn new(stored: Option<&[u8]>) -> Result<Self, String> {
        let doc = Doc::new();
        if let Some(bytes) = stored {
            let update = Update::decode_v1(bytes).map_err(|e| e.to_string())?;
            doc.transact_mut()
                .apply_update(update)
                .map_err(|e| e.to_string())?;
        }
        Ok(DocState {
            awareness: Awareness::new(doc),
            conns: HashMap::new(),
            size_estimate: stored.map_or(0, <[u8]>::len),
            dirty: None,
            flusher_running: false,
        })
    }

    /// The whole state as one update (v1 encoding).
    pub(crate) fn encode_state(&self) -> Vec<u8> {
        encode_state_as_update(self.awareness.doc(), &StateVector::default())
    }

    fn broadcast(&self, frame: &Frame) {
        for conn in self.conns.values() {
            conn.push(frame.clone());
        }
    }

    /// Adds a connection and queues its greeting: sync step 1 and, when there are awareness
    /// states, a separate awareness message.
    pub(crate) fn attach(&mut self, id: ConnId, conn: ConnEntry) {
        let sv = self.awareness.doc().transact().state_vector();
        conn.push(protocol::sync_step1(&sv));
        if let Ok(update) = self.awareness.update() {
            if !update.clients.is_empty() {
                conn.push(protocol::awareness(&update));
            }
        }
        self.conns.insert(id, conn);
    }

    /// Removes a connection; removes the awareness states it controlled and tells the others.
    /// Returns the awareness removal (encoded) when there was one.
    pub(crate) fn detach(&mut self, id: ConnId) -> Option<Vec<u8>> {
        let conn = self.conns.remove(&id)?;
        let gone: Vec<ClientID> = conn
            .controlled
            .into_iter()
            .filter(|c| self.awareness.meta(*c).is_some())
            .collect();
        if gone.is_empty() {
            return None;
        }
        for client in &gone {
            self.awareness.remove_state(*client);
        }
        let update = self.awareness.update_with_clients(gone).ok()?.encode_v1();
        self.broadcast(&protocol::awareness_encoded(&update));
        Some(update)
    }

    /// Asks every connection to close.
    pub(crate) fn close_all(&self, with: &CloseWith) {
        for conn in self.conns.values() {
            conn.close.fire(with.clone());
        }
    }

    pub(super) fn mark_dirty(&mut self, effects: &mut Effects) {
        let now = Instant::now();
        match &mut self.dirty {
            Some(d) => d.last = now,
            None => {
                self.dirty = Some(Dirty {
                    first: now,
                    last: now,
                })
            }
        }
        if !self.flusher_running {
            self.flusher_running = true;
            effects.start_flusher = true;
        }
    }

    /// Handles a connection's messages as the reference y-websocket server does.
    pub(crate) fn handle(&mut self, id: ConnId, messages: Vec<Inbound>, limits: Limits) -> Effects {
        let mut effects = Effects::default();
        for message in messages {
            let result = match message {
                Inbound::SyncStep1(sv) => {
                    let update = encode_state_as_update(self.awareness.doc(), &sv);
                    if let Some(conn) = self.conns.get(&id) {
                        conn.push(protocol::sync_step2(&update));
                    }
                    Ok(())
                }
                Inbound::SyncStep2(update) | Inbound::Update(update) => {
                    self.apply_update(&update, limits, &mut effects)
                }
                Inbound::Awareness(update) => self.apply_awareness(id, update, &mut effects),
                Inbound::QueryAwareness => {
                    if let (Ok(update), Some(conn)) = (self.awareness.update(), self.conns.get(&id))
                    {
                        conn.push(protocol::awareness(&update));
                    }
                    Ok(())
                }
                Inbound::Ignored => Ok(()),
            };
            if let Err(close) = result {
                effects.close = Some(close);
                break;
            }
        }
        effects
    }

    /// Applies a client's update; broadcasts what it changed to every connection, the sender
    /// included (as the reference server does).
    fn apply_update(
        &mut self,
        raw: &[u8],
        limits: Limits,
        effects: &mut Effects,
    ) -> Result<(), CloseWith> {
        let too_large = || {
            CloseWith::new(
                close_code::TOO_LARGE,
                format!(
                    "Document too large (max {} bytes)",
                    limits.max_document_bytes
                ),
            )
        };
        if self.size_estimate + raw.len() > limits.max_document_bytes {
            // The estimate only grows between stores: measure before refusing.
            self.size_estimate = self.encode_state().len();
            if self.size_estimate + raw.len() > limits.max_document_bytes {
                return Err(too_large());
            }
        }
        let malformed = |e: &dyn std::fmt::Display| {
            tracing::debug!(error = %e, "malformed Yjs update");
            CloseWith::new(close_code::MALFORMED, "Malformed update")
        };
        let delta = apply_client_update(self.awareness.doc(), raw).map_err(|e| malformed(&e))?;
        if delta == EMPTY_UPDATE {
            return Ok(());
        }
        self.size_estimate += delta.len();
        self.broadcast(&protocol::sync_update(&delta));
        self.mark_dirty(effects);
        effects.updates.push(delta);
        Ok(())
    }

    /// Applies a client's awareness update; the connection now controls the clients it added
    /// or renewed; the change goes to every connection, the sender included (an idle client
    /// stays connected because its own awareness renewals come back).
    fn apply_awareness(
        &mut self,
        id: ConnId,
        update: yrs::sync::AwarenessUpdate,
        effects: &mut Effects,
    ) -> Result<(), CloseWith> {
        let summary = match self.awareness.apply_update_summary(update) {
            Ok(Some(summary)) => summary,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "malformed awareness update");
                return Err(CloseWith::new(close_code::MALFORMED, "Malformed awareness"));
            }
        };
        let claimed: Vec<ClientID> = summary
            .added
            .iter()
            .chain(&summary.updated)
            .copied()
            .filter(|c| {
                self.conns
                    .get(&id)
                    .is_some_and(|e| !e.controlled.contains(c))
            })
            .collect();
        for client in &claimed {
            // A client that reconnected before its old connection was noticed gone: the old
            // connection's close must not remove it.
            for (other, conn) in self.conns.iter_mut() {
                if *other == id {
                    conn.controlled.insert(*client);
                } else {
                    conn.controlled.remove(client);
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            for client in &summary.removed {
                conn.controlled.remove(client);
            }
        }
        let changed = summary.all_changes();
        if changed.is_empty() {
            return Ok(());
        }
        if let Ok(update) = self.awareness.update_with_clients(changed) {
            let encoded = update.encode_v1();
            self.broadcast(&protocol::awareness_encoded(&encoded));
            effects.awareness.push(encoded);
        }
        Ok(())
    }

    /// Applies an update that did not come from a connection of this node (another node of
    /// a cluster). Returns whether it changed the document.
    pub(crate) fn apply_remote_update(&mut self, raw: &[u8], effects: &mut Effects) -> bool {
        let limits = Limits {
            max_document_bytes: usize::MAX,
        };
        let before = effects.updates.len();
        self.apply_update(raw, limits, effects).is_ok() && effects.updates.len() > before
    }

    /// Applies awareness from another node and passes it on to this node's connections.
    pub(crate) fn apply_remote_awareness(&mut self, update: yrs::sync::AwarenessUpdate) {
        if let Ok(Some(summary)) = self.awareness.apply_update_summary(update) {
            if let Ok(u) = self.awareness.update_with_clients(summary.all_changes()) {
                self.broadcast(&protocol::awareness(&u));
            }
        }
    }
}

/// One document: loaded lazily, its stores serialized.
pub(crate) struct Document {
    pub(crate) name: Arc<str>,
    state: OnceCell<Mutex<DocState>>,
    store_lock: tokio::sync::Mutex<()>,
}

impl Document {
    fn new(name: Arc<str>) -> Self {
        Document {
            name,
            state: OnceCell::new(),
            store_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The document's state, loading it from the store on first use (concurrent callers
    /// share one load).
    pub(crate) async fn load(&self, inner: &Inner) -> Result<&Mutex<DocState>, DocumentStoreError> {
        self.state
            .get_or_try_init(|| async {
                let stored = inner.store.load(&self.name).await?;
                let state = DocState::new(stored.as_deref()).map_err(|e| {
                    DocumentStoreError(format!("stored state of {} is corrupt: {e}", self.name))
                })?;
                Ok(Mutex::new(state))
            })
            .await
    }

    /// The state, if loaded.
    pub(crate) fn state(&self) -> Option<&Mutex<DocState>> {
        self.state.get()
    }

    fn is_dirty(&self) -> bool {
        self.state().is_some_and(|s| s.lock().dirty.is_some())
    }

    /// Stores the document if it has unstored changes.
    pub(crate) async fn flush(&self, inner: &Inner) -> Result<(), DocumentStoreError> {
        let Some(state) = self.state() else {
            return Ok(());
        };
        let _serialized = self.store_lock.lock().await;
        let (bytes, dirty) = {
            let mut s = state.lock();
            let Some(dirty) = s.dirty.take() else {
                return Ok(());
            };
            let bytes = s.encode_state();
            s.size_estimate = bytes.len();
            (bytes, dirty)
        };
        match inner.store.store(&self.name, bytes).await {
            Ok(()) => {
                inner.metrics.stores.inc();
                Ok(())
            }
            Err(e) => {
                inner.metrics.store_failures.inc();
                // Still unstored: keep the first change's time so the next try is not delayed.
                let mut s = state.lock();
                let d = s.dirty.get_or_insert(dirty);
                d.first = d.first.min(dirty.first);
                Err(e)
            }
        }
    }

    /// Stores the document after its changes have been quiet for the debounce, and at the
    /// latest `max_delay` after the first unstored change; exits once it is clean.
    pub(crate) async fn run_flusher(self: Arc<Self>, inner: Arc<Inner>) {
        let Some(state) = self.state() else {
            return;
        };
        let (debounce, max_delay) = (
            inner.config.yjs_store_debounce,
            inner.config.yjs_store_max_delay,
        );
        loop {
            let due = {
                let mut s = state.lock();
                match s.dirty {
                    None => {
                        s.flusher_running = false;
                        return;
                    }
                    Some(d) => (d.last + debounce).min(d.first + max_delay),
                }
            };
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
                continue;
            }
            if let Err(e) = self.flush(&inner).await {
                tracing::warn!(doc = %self.name, error = %e, "storing a Yjs document failed; retrying");
                tokio::time::sleep(STORE_RETRY).await;
            }
        }
    }
}

/// A registry entry: the document and how many connections hold it.
struct Slot {
    doc: Arc<Document>,
    refs: usize,
    /// When the last connection left; `None` while connections hold it.
    idle_since: Option<Instant>,
    /// Whether the slot's idle timer runs (one per slot, however often connections come
    /// and go).
    timer: bool,
}

/// Every loaded (or loading) document by name.
#[derive(Default)]
pub(crate) struct Registry {
    docs: Mutex<HashMap<Arc<str>, Slot>>,
}

impl Registry {
    /// Takes a reference on a document, creating its entry; pair with [`Registry::release`].
    pub(crate) fn open(&self, inner: &Inner, name: &str) -> Arc<Document> {
        let mut docs = self.docs.lock();
        let slot = docs.entry(name.into()).or_insert_with(|| {
            inner.metrics.documents.inc();
            Slot {
                doc: Arc::new(Document::new(name.into())),
                refs: 0,
                idle_since: None,
                timer: false,
            }
        });
        slot.refs += 1;
        slot.idle_since = None;
        slot.doc.clone()
    }

    /// Drops a reference; the last one starts the idle timer.
    pub(crate) fn release(&self, inner: &Arc<Inner>, name: &Arc<str>) {
        {
            let mut docs = self.docs.lock();
            let Some(slot) = docs.get_mut(name) else {
                return;
            };
            slot.refs = slot.refs.saturating_sub(1);
            if slot.refs > 0 {
                return;
            }
            slot.idle_since = Some(Instant::now());
            if std::mem::replace(&mut slot.timer, true) {
                return;
            }
        }
        let (inner2, name) = (inner.clone(), name.clone());
        inner.spawn(async move { unload_when_idle(inner2, name).await });
    }

    /// The document named `name`, if it is in memory.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Document>> {
        self.docs.lock().get(name).map(|s| s.doc.clone())
    }

    /// Every document in memory.
    pub(crate) fn all(&self) -> Vec<Arc<Document>> {
        self.docs.lock().values().map(|s| s.doc.clone()).collect()
    }

    /// Number of documents in memory.
    pub(crate) fn len(&self) -> usize {
        self.docs.lock().len()
    }
}

/// Once a document has had no connection for the idle time, stores it and unloads it;
/// exits when a connection holds it again.
async fn unload_when_idle(inner: Arc<Inner>, name: Arc<str>) {
    loop {
        let (doc, since) = {
            let mut docs = inner.registry.docs.lock();
            let Some(slot) = docs.get_mut(&name) else {
                return;
            };
            match slot.idle_since {
                Some(since) if slot.refs == 0 => (slot.doc.clone(), since),
                _ => {
                    slot.timer = false;
                    return;
                }
            }
        };
        let due = since + inner.config.yjs_idle_unload;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
            continue;
        }
        if let Err(e) = doc.flush(&inner).await {
            tracing::warn!(doc = %name, error = %e, "storing an idle Yjs document failed; keeping it loaded");
            tokio::time::sleep(STORE_RETRY).await;
            continue;
        }
        let mut docs = inner.registry.docs.lock();
        let Some(slot) = docs.get(&name) else {
            return;
        };
        // A connection that came (and went) during the store, or changes from another node,
        // keep it loaded: look again.
        if slot.refs == 0 && slot.idle_since == Some(since) && !doc.is_dirty() {
            docs.remove(&name);
            inner.metrics.documents.dec();
            tracing::debug!(doc = %name, "unloaded idle Yjs document");
            drop(docs);
            if let Some(cluster) = &inner.cluster {
                cluster.unloaded(&name);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text};

    #[test]
    fn a_crafted_update_cannot_make_the_document_panic() {
        // Found by fuzzing (fuzz/ target yjs): an update whose pending structs made yrs unwrap
        // a failed merge in `encode_state_as_update_v1` (every later sync step 1 answer).
        let messages = protocol::decode(include_bytes!("../../tests/data/yjs-merge-panic.bin"))
            .expect("the messages decode");
        let doc = Doc::new();
        let results: Vec<_> = messages
            .iter()
            .filter_map(|m| match m {
                Inbound::Update(raw) | Inbound::SyncStep2(raw) => {
                    Some(apply_client_update(&doc, raw))
                }
                _ => None,
            })
            .collect();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // What it left pending cannot be merged back by yrs: answering a sync step 1 or
        // storing the document must still work.
        let answer = encode_state_as_update(&doc, &StateVector::default());
        assert!(Update::decode_v1(&answer).is_ok());
        // The document still takes well-formed updates.
        let other = Doc::new();
        other
            .get_or_insert_text("t")
            .insert(&mut other.transact_mut(), 0, "ok");
        let update = other
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(apply_client_update(&doc, &update).is_ok());
        let text = doc.get_or_insert_text("t");
        assert_eq!(text.get_string(&doc.transact()), "ok");
    }

    fn conn() -> (ConnEntry, Arc<Outbox>, Arc<CloseSignal>) {
        let outbox = Arc::new(Outbox::new(64, 1 << 20));
        let close = Arc::new(CloseSignal::default());
        (ConnEntry::new(outbox.clone(), close.clone()), outbox, close)
    }

    fn drain(outbox: &Outbox) -> Vec<yrs::sync::Message> {
        let mut frames = std::collections::VecDeque::new();
        outbox.drain_into(&mut frames);
        frames
            .iter()
            .map(|f| yrs::sync::Message::decode_v1(&f.payload()).unwrap())
            .collect()
    }

    fn text_update(s: &str) -> Vec<u8> {
        let doc = Doc::new();
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, 0, s);
        txn.encode_update_v1()
    }

    const LIMITS: Limits = Limits {
        max_document_bytes: 1 << 20,
    };

    #[test]
    fn updates_reach_every_connection_and_mark_dirty() {
        let mut doc = DocState::new(None).unwrap();
        let (a, out_a, _) = conn();
        let (b, out_b, _) = conn();
        doc.attach(1, a);
        doc.attach(2, b);
        // Greeting: sync step 1 only (no awareness yet).
        assert!(matches!(
            &drain(&out_a)[..],
            [yrs::sync::Message::Sync(yrs::sync::SyncMessage::SyncStep1(
                _
            ))]
        ));
        drain(&out_b);
        let effects = doc.handle(1, vec![Inbound::Update(text_update("hi"))], LIMITS);
        assert_eq!(effects.updates.len(), 1);
        assert!(effects.start_flusher && effects.close.is_none());
        assert_eq!(drain(&out_a).len(), 1);
        assert_eq!(drain(&out_b).len(), 1);
        let t = doc.awareness.doc().get_or_insert_text("t");
        assert_eq!(t.get_string(&doc.awareness.doc().transact()), "hi");
        // An update already known changes nothing and is not broadcast.
        let known = doc.encode_state();
        let effects = doc.handle(2, vec![Inbound::SyncStep2(known)], LIMITS);
        assert!(effects.updates.is_empty());
        assert!(drain(&out_a).is_empty() && drain(&out_b).is_empty());
        // Sync step 1 is answered to the asker only.
        doc.handle(2, vec![Inbound::SyncStep1(StateVector::default())], LIMITS);
        assert!(drain(&out_a).is_empty());
        assert!(matches!(
            &drain(&out_b)[..],
            [yrs::sync::Message::Sync(yrs::sync::SyncMessage::SyncStep2(
                _
            ))]
        ));
    }

    #[test]
    fn awareness_is_echoed_and_removed_on_detach() {
        let mut doc = DocState::new(None).unwrap();
        let (a, out_a, _) = conn();
        let (b, out_b, _) = conn();
        doc.attach(1, a);
        doc.attach(2, b);
        drain(&out_a);
        drain(&out_b);
        let mut client = Awareness::new(Doc::new());
        client.set_local_state_raw(r#"{"name":"alice"}"#);
        let effects = doc.handle(
            1,
            vec![Inbound::Awareness(client.update().unwrap())],
            LIMITS,
        );
        assert_eq!(effects.awareness.len(), 1);
        assert_eq!(drain(&out_a).len(), 1, "echoed to the sender");
        assert_eq!(drain(&out_b).len(), 1);
        // A third connection gets sync step 1 and a separate awareness message.
        let (c, out_c, _) = conn();
        doc.attach(3, c);
        assert_eq!(drain(&out_c).len(), 2);
        assert!(doc.detach(1).is_some());
        let msgs = drain(&out_b);
        let [yrs::sync::Message::Awareness(u)] = &msgs[..] else {
            panic!("{msgs:?}")
        };
        assert_eq!(&*u.clients[&client.client_id()].json, "null");
    }

    #[test]
    fn size_limit_closes_with_4413() {
        let mut doc = DocState::new(None).unwrap();
        let (a, _, _) = conn();
        doc.attach(1, a);
        let big = text_update(&"x".repeat(4000));
        let effects = doc.handle(
            1,
            vec![Inbound::Update(big)],
            Limits {
                max_document_bytes: 2000,
            },
        );
        assert_eq!(effects.close.map(|c| c.code), Some(close_code::TOO_LARGE));
    }

    #[test]
    fn slow_reader_is_asked_to_close() {
        let mut doc = DocState::new(None).unwrap();
        let outbox = Arc::new(Outbox::new(16, 1 << 20));
        let close = Arc::new(CloseSignal::default());
        doc.attach(1, ConnEntry::new(outbox, close.clone()));
        for i in 0..20 {
            doc.handle(
                1,
                vec![Inbound::Update(text_update(&format!("{i}")))],
                LIMITS,
            );
        }
        let with = futures_util::FutureExt::now_or_never(close.wait()).unwrap();
        assert_eq!(with.code, close_code::POLICY);
    }
}
