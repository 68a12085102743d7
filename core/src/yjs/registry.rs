//! The registry of loaded documents: each loaded on first connection, stored with a debounce
//! after changes, and unloaded once idle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use super::document::DocState;
use super::store::DocumentStoreError;
use super::Inner;

/// How long a failed store waits before it is tried again.
const STORE_RETRY: Duration = Duration::from_secs(1);

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
        self.state().is_some_and(|s| s.lock().is_dirty())
    }

    /// Stores the document if it has unstored changes.
    pub(crate) async fn flush(&self, inner: &Inner) -> Result<(), DocumentStoreError> {
        let Some(state) = self.state() else {
            return Ok(());
        };
        let _serialized = self.store_lock.lock().await;
        let (bytes, dirty) = {
            let mut s = state.lock();
            let Some(dirty) = s.take_dirty() else {
                return Ok(());
            };
            (s.encode_snapshot(), dirty)
        };
        match inner.store.store(&self.name, bytes).await {
            Ok(()) => {
                inner.metrics.stores.inc();
                Ok(())
            }
            Err(e) => {
                inner.metrics.store_failures.inc();
                // Still unstored: keep the first change's time so the next try is not delayed.
                state.lock().restore_dirty(dirty);
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
            let Some(due) = state.lock().store_due(debounce, max_delay) else {
                return;
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
