//! Yjs documents across the nodes of a cluster (`--redis`).
//!
//! - Traffic: every change a client makes here (update or awareness) is published on the
//!   channel of the room `doc:<name>`; a node listens to that room while the document is
//!   loaded on it (connections or not: a loaded document must stay current) and applies what
//!   others send with [`Yjs::apply_remote_update`] / [`Yjs::apply_remote_awareness`], which
//!   tell no observer, so nothing is published back (no echo).
//! - Catching up: a node subscribes *before* loading a document, loads it from the shared
//!   store, then publishes a `Hello` with its state vector. Every holder answers with the
//!   update the newcomer misses (edits not yet stored included), its awareness states and a
//!   `Query` with its own state vector, which the newcomer answers with what the holder
//!   misses. A `Query` is never answered with a query, so every exchange ends. After the
//!   subscription connection comes back (Redis restarted, a network cut), each node stores
//!   its loaded documents again (a restarted Redis may have lost them) and says `Hello`
//!   for each, so edits made on both sides while apart converge.
//! - Storage: [`DocumentCluster`] is the [`DocumentStore`]: each store appends the state to
//!   a Redis list (an idempotent merge), a load merges the list, and a long list is
//!   compacted (see `cluster/documents.rs`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::document::{DocState, Effects};
use super::registry::Document;
use super::store::{DocumentStore, DocumentStoreError};
use super::{DocumentObserver, Inner, Yjs};
use crate::cluster::wire::{Message, WireError, Writer};
use crate::cluster::{Cluster, ClusterSink};

/// More stored updates than this and a store compacts the document's list.
const COMPACT_AT: usize = 100;
/// After the cluster came back: tries at storing a document before greeting anyway.
const RESYNC_TRIES: u32 = 20;
/// Pause between those tries.
const RESYNC_RETRY: Duration = Duration::from_millis(250);
/// An empty update (no structs, empty delete set) in v1 encoding.
const EMPTY_UPDATE: [u8; 2] = [0, 0];

/// A document's traffic between nodes (kinds are the features' own; chat's and
/// Socket.IO's are elsewhere): the document's name, a [`YjsKind`], the payload.
pub(crate) const KIND_YJS: u8 = 4;

/// What a document message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum YjsKind {
    /// A Yjs update (v1 encoding) that changed the document on the sending node.
    Update = 1,
    /// A y-protocols awareness update.
    Awareness = 2,
    /// "I just loaded the document (or got back to the cluster)": the payload is the
    /// sender's state vector (v1). Holders answer with the update it misses, their
    /// awareness, and a [`YjsKind::Query`] of their own.
    Hello = 3,
    /// "Send me what I miss": the payload is the sender's state vector (v1); holders answer
    /// with an update only (no query back, so an exchange always ends).
    Query = 4,
}

impl YjsKind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => YjsKind::Update,
            2 => YjsKind::Awareness,
            3 => YjsKind::Hello,
            4 => YjsKind::Query,
            _ => return None,
        })
    }
}

fn encode(origin: &str, doc: &str, kind: YjsKind, payload: &[u8]) -> Bytes {
    let mut w = Writer::new(KIND_YJS, origin);
    w.str(doc).u8(kind as u8).bytes(payload);
    w.finish()
}

/// A document message: (document, kind, payload); `None` for other features' kinds.
fn decode(message: &Message) -> Result<Option<(String, YjsKind, Bytes)>, WireError> {
    if message.kind != KIND_YJS {
        return Ok(None);
    }
    let mut r = message.reader();
    let doc = r.string()?;
    let sub = r.u8()?;
    // An unknown sub-kind (a newer node's) is reported with its own byte.
    let kind = YjsKind::from_u8(sub).ok_or(message.unknown(sub))?;
    Ok(Some((doc, kind, r.bytes()?)))
}

/// The room (and cluster channel) of a document.
fn room(doc: &str) -> String {
    format!("doc:{doc}")
}

/// The documents' side of a cluster: publisher, shared store and greeter.
#[derive(Default)]
pub(crate) struct DocumentCluster {
    /// Set when Yjs is installed on the engine's builder.
    cluster: OnceLock<Arc<Cluster>>,
    /// The document instance each name was greeted for: a reload greets again.
    greeted: Mutex<HashMap<Arc<str>, Weak<Document>>>,
}

impl DocumentCluster {
    /// Joins the cluster.
    pub(crate) fn attach(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    fn documents(&self) -> Result<Arc<dyn crate::cluster::DocumentLog>, DocumentStoreError> {
        self.cluster
            .get()
            .map(|c| c.documents().clone())
            .ok_or_else(|| DocumentStoreError("the cluster has not started".into()))
    }

    fn publish(&self, doc: &str, kind: YjsKind, payload: &[u8]) {
        if let Some(cluster) = self.cluster.get() {
            let broker = cluster.broker();
            broker.publish(
                Some(&room(doc)),
                encode(broker.node_id(), doc, kind, payload),
            );
        }
    }

    /// Listens to the document's channel (the document is in the registry already) and,
    /// while Redis is up, waits until the subscription is in place: what other nodes
    /// publish from then on reaches this node.
    pub(crate) async fn follow_document(&self, doc: &str) {
        self.follow(&room(doc)).await;
    }

    /// Listens to a channel this node now wants (a document's, or a user's personal room
    /// while the user has document connections here) and, while Redis is up, waits until
    /// the subscription is in place.
    pub(crate) async fn follow(&self, channel: &str) {
        if let Some(cluster) = self.cluster.get() {
            let broker = cluster.broker();
            let subscribed = broker.interest_changed(channel);
            if broker.is_connected() {
                subscribed.await;
            }
        }
    }

    /// The document was loaded: greet the other holders once per load.
    pub(crate) fn loaded(&self, doc: &Arc<Document>) {
        {
            let mut greeted = self.greeted.lock();
            let same = greeted
                .get(&doc.name)
                .and_then(Weak::upgrade)
                .is_some_and(|d| Arc::ptr_eq(&d, doc));
            if same {
                return;
            }
            greeted.insert(doc.name.clone(), Arc::downgrade(doc));
        }
        self.hello(doc);
    }

    /// This node no longer wants `channel`: stop listening to it.
    pub(crate) fn unfollow(&self, channel: &str) {
        if let Some(cluster) = self.cluster.get() {
            drop(cluster.broker().interest_changed(channel));
        }
    }

    /// The document left memory: stop listening to it.
    pub(crate) fn unloaded(&self, doc: &str) {
        self.greeted.lock().remove(doc);
        if let Some(cluster) = self.cluster.get() {
            drop(cluster.broker().interest_changed(&room(doc)));
        }
    }

    fn hello(&self, doc: &Document) {
        if let Some(state) = doc.state() {
            let sv = state.lock().state_vector();
            self.publish(&doc.name, YjsKind::Hello, &sv);
        }
    }

    /// Answers a `Hello` or `Query` from another node about a document loaded here.
    fn answer(&self, inner: &Inner, doc: &str, their_sv: &[u8], hello: bool) {
        let Some(document) = inner.registry.get(doc) else {
            return;
        };
        let Some(state) = document.state() else {
            return;
        };
        let Ok(sv) = StateVector::decode_v1(their_sv) else {
            tracing::debug!(
                doc,
                "dropped a document sync request with a malformed state vector"
            );
            return;
        };
        let (diff, awareness, ours) = {
            let s = state.lock();
            (s.diff(&sv), s.awareness_states(), s.state_vector())
        };
        if diff != EMPTY_UPDATE {
            self.publish(doc, YjsKind::Update, &diff);
        }
        if hello {
            if let Some(awareness) = awareness {
                self.publish(doc, YjsKind::Awareness, &awareness);
            }
            self.publish(doc, YjsKind::Query, &ours);
        }
    }
}

impl DocState {
    /// The document's state vector (v1).
    fn state_vector(&self) -> Vec<u8> {
        self.awareness.doc().transact().state_vector().encode_v1()
    }

    /// What a peer at `sv` misses (v1 update; always carries the whole delete set).
    fn diff(&self, sv: &StateVector) -> Vec<u8> {
        self.awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(sv)
    }

    /// Every awareness state known here (encoded), if any.
    fn awareness_states(&self) -> Option<Vec<u8>> {
        let update = self.awareness.update().ok()?;
        (!update.clients.is_empty()).then(|| update.encode_v1())
    }
}

impl DocumentObserver for DocumentCluster {
    fn on_update(&self, doc: &str, update: &[u8]) {
        self.publish(doc, YjsKind::Update, update);
    }

    fn on_awareness(&self, doc: &str, update: &[u8]) {
        self.publish(doc, YjsKind::Awareness, update);
    }
}

/// Merges stored updates into one document state; `None` when there are none. An entry that
/// does not decode or apply is skipped and logged (it cannot be read either way; the rest of
/// the document must stay available).
pub(crate) fn merge(doc: &str, updates: &[Bytes]) -> Option<Vec<u8>> {
    match updates {
        [] => return None,
        [one] if Update::decode_v1(one).is_ok() => return Some(one.to_vec()),
        _ => {}
    }
    // Applying to a document (rather than merging the encodings) integrates overlapping
    // whole states exactly as a client would.
    let merged = Doc::new();
    let mut skipped = 0;
    {
        let mut txn = merged.transact_mut();
        for bytes in updates {
            let applied = Update::decode_v1(bytes)
                .map_err(|e| e.to_string())
                .and_then(|u| txn.apply_update(u).map_err(|e| e.to_string()));
            if let Err(e) = applied {
                skipped += 1;
                tracing::error!(doc, error = %e, "skipped a stored Yjs update that cannot be read");
            }
        }
    }
    if skipped == updates.len() {
        return None;
    }
    let state = merged
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    Some(state)
}

async fn merge_off_runtime(doc: String, updates: Vec<Bytes>) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || merge(&doc, &updates))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "merging stored Yjs updates failed");
            None
        })
}

fn store_error(e: crate::cluster::ClusterError) -> DocumentStoreError {
    DocumentStoreError(e.to_string())
}

/// Replaces the stored list by its merge when it grew long; failures only leave it long.
async fn compact(documents: Arc<dyn crate::cluster::DocumentLog>, doc: String) {
    let stored = match documents.load(&doc).await {
        Ok(stored) if stored.updates.len() > COMPACT_AT => stored,
        Ok(_) => return,
        Err(e) => {
            tracing::debug!(doc, error = %e, "compacting a stored Yjs document failed");
            return;
        }
    };
    let count = stored.updates.len();
    let Some(merged) = merge_off_runtime(doc.clone(), stored.updates).await else {
        return;
    };
    match documents
        .compact(&doc, stored.generation, count, Bytes::from(merged))
        .await
    {
        Ok(true) => tracing::debug!(doc, count, "compacted a stored Yjs document"),
        // Another node compacted first: its merge covers ours.
        Ok(false) => {}
        Err(e) => tracing::debug!(doc, error = %e, "compacting a stored Yjs document failed"),
    }
}

impl DocumentStore for DocumentCluster {
    fn load(&self, doc: &str) -> BoxFuture<'static, Result<Option<Vec<u8>>, DocumentStoreError>> {
        let documents = self.documents();
        let doc = doc.to_owned();
        Box::pin(async move {
            let stored = documents?.load(&doc).await.map_err(store_error)?;
            Ok(merge_off_runtime(doc, stored.updates).await)
        })
    }

    fn store(
        &self,
        doc: &str,
        state: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), DocumentStoreError>> {
        let documents = self.documents();
        let doc = doc.to_owned();
        Box::pin(async move {
            let documents = documents?;
            let stored = documents
                .append(&doc, Bytes::from(state))
                .await
                .map_err(store_error)?;
            if stored > COMPACT_AT {
                compact(documents, doc).await;
            }
            Ok(())
        })
    }
}

/// What the broker calls back: other nodes' document traffic.
pub(crate) struct DocumentSink(pub(crate) Weak<Inner>);

impl ClusterSink for DocumentSink {
    fn deliver(&self, message: &Message) {
        let (doc, kind, payload) = match decode(message) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "dropped a malformed cluster envelope");
                return;
            }
        };
        let (doc, payload) = (&doc, &payload);
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let Some(cluster) = inner.cluster.clone() else {
            return;
        };
        match kind {
            YjsKind::Update => {
                Yjs { inner }.apply_remote_update(doc, payload);
            }
            YjsKind::Awareness => Yjs { inner }.apply_remote_awareness(doc, payload),
            YjsKind::Hello => cluster.answer(&inner, doc, payload, true),
            YjsKind::Query => cluster.answer(&inner, doc, payload, false),
        }
    }

    fn wants(&self, room: &str) -> bool {
        let Some(inner) = self.0.upgrade() else {
            return false;
        };
        // A user's channel: where another node's `disconnect_user` comes (the chat's sink
        // takes the message, through the engine's index of every user connection).
        if let Some(user) = room.strip_prefix("user:") {
            return inner.users.len(user) > 0;
        }
        room.strip_prefix("doc:")
            .is_some_and(|doc| inner.registry.get(doc).is_some())
    }

    fn resubscribed(&self) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        if inner.registry.len() > 0 {
            let task = resync(inner.clone());
            inner.spawn(task);
        }
    }
}

/// After the cluster came back: store every loaded document again (Redis may have restarted
/// empty; a success also shows the publishing connection is back), then greet the other
/// holders so that edits made while apart converge.
async fn resync(inner: Arc<Inner>) {
    let Some(cluster) = inner.cluster.clone() else {
        return;
    };
    for doc in inner.registry.all() {
        let Some(state) = doc.state() else {
            continue;
        };
        let mut effects = Effects::default();
        state.lock().mark_dirty(&mut effects);
        if effects.start_flusher {
            // Keeps retrying the store if the tries below give up.
            inner.spawn(doc.clone().run_flusher(inner.clone()));
        }
        for _ in 0..RESYNC_TRIES {
            match doc.flush(&inner).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(doc = %doc.name, error = %e, "storing after the cluster came back failed; retrying");
                    tokio::time::sleep(RESYNC_RETRY).await;
                }
            }
        }
        cluster.hello(&doc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text};

    fn text_of(state: &[u8]) -> String {
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(Update::decode_v1(state).unwrap())
            .unwrap();
        let t = doc.get_or_insert_text("t");
        let s = t.get_string(&doc.transact());
        s
    }

    fn whole(doc: &Doc) -> Bytes {
        Bytes::from(
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default()),
        )
    }

    #[test]
    fn overlapping_whole_states_from_several_nodes_merge_idempotently() {
        // Two nodes' documents, each stored several times as it grew, in any order.
        let a = Doc::with_client_id(1);
        let b = Doc::with_client_id(2);
        let (ta, tb) = (a.get_or_insert_text("t"), b.get_or_insert_text("t"));
        ta.insert(&mut a.transact_mut(), 0, "hello");
        let a1 = whole(&a);
        b.transact_mut()
            .apply_update(Update::decode_v1(&a1).unwrap())
            .unwrap();
        tb.insert(&mut b.transact_mut(), 5, " world");
        let b1 = whole(&b);
        ta.insert(&mut a.transact_mut(), 0, ">");
        ta.remove_range(&mut a.transact_mut(), 1, 1);
        let a2 = whole(&a);
        let stored = vec![a1.clone(), b1.clone(), a2.clone(), b1.clone(), a1];
        let merged = merge("d", &stored).unwrap();
        assert_eq!(text_of(&merged), ">ello world");
        // Merging the merge with what came later (compaction) changes nothing.
        let again = merge("d", &[Bytes::from(merged.clone()), a2, b1]).unwrap();
        assert_eq!(text_of(&again), ">ello world");
    }

    #[tokio::test]
    async fn stores_append_and_a_long_list_is_compacted_without_losing_anything() {
        for setup in crate::cluster::redis_setups() {
            stores_and_compacts_on(&setup.url()).await;
        }
    }

    async fn stores_and_compacts_on(url: &str) {
        let cluster = Arc::new(
            crate::cluster::RedisCluster::new(
                url,
                Duration::from_secs(1),
                Arc::new(Default::default()),
            )
            .unwrap()
            .into_cluster(),
        );
        let adapter = cluster.documents().clone();
        let documents = DocumentCluster::default();
        assert!(documents.load("d").await.is_err(), "not attached yet");
        documents.attach(cluster.clone());
        assert_eq!(documents.load("d").await.unwrap(), None);
        // Two nodes' documents, stored alternately as they grow.
        let (a, b) = (Doc::with_client_id(1), Doc::with_client_id(2));
        for i in 0..(COMPACT_AT + 5) {
            let d = if i % 2 == 0 { &a } else { &b };
            let t = d.get_or_insert_text("t");
            t.insert(&mut d.transact_mut(), 0, "x");
            documents.store("d", whole(d).to_vec()).await.unwrap();
        }
        let stored = adapter.load("d").await.unwrap();
        assert!(
            stored.updates.len() < 10,
            "{} entries",
            stored.updates.len()
        );
        assert!(stored.generation >= 1);
        let text = text_of(&documents.load("d").await.unwrap().unwrap());
        assert_eq!(text.len(), COMPACT_AT + 5);
    }

    /// The bytes the envelope codec of the build before the split wrote for this message.
    #[test]
    fn the_wire_format_is_the_one_before_the_split() {
        let wire = encode("node-a", "notes", YjsKind::Awareness, &[1, 2]);
        let hex: String = wire.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(
            hex,
            "0104000000066e6f64652d61000000056e6f74657302000000020102"
        );
    }

    #[test]
    fn yjs_kinds_round_trip_and_unknown_ones_are_errors() {
        for kind in [
            YjsKind::Update,
            YjsKind::Awareness,
            YjsKind::Hello,
            YjsKind::Query,
        ] {
            let wire = encode("n", "notes/é", kind, b"xyz");
            let m = Message::parse(&wire).unwrap();
            let back = decode(&m).unwrap().unwrap();
            assert_eq!(
                back,
                ("notes/é".to_owned(), kind, Bytes::from_static(b"xyz"))
            );
            for len in 0..wire.len() {
                let cut = wire.slice(..len);
                assert!(
                    Message::parse(&cut).and_then(|m| decode(&m)).is_err(),
                    "len {len}"
                );
            }
        }
        let mut wire = encode("n", "d", YjsKind::Query, b"").to_vec();
        // version, kind, origin (4 + 1), doc (4 + 1), then the sub-kind.
        wire[12] = 9;
        let m = Message::parse(&Bytes::from(wire)).unwrap();
        assert_eq!(
            decode(&m),
            Err(WireError::Unknown {
                version: crate::cluster::wire::VERSION,
                kind: 9
            })
        );
    }

    #[test]
    fn unreadable_entries_are_skipped_and_nothing_stored_is_none() {
        assert_eq!(merge("d", &[]), None);
        assert_eq!(merge("d", &[Bytes::from_static(&[0xff, 0xff])]), None);
        let a = Doc::new();
        a.get_or_insert_text("t")
            .insert(&mut a.transact_mut(), 0, "kept");
        let merged = merge("d", &[Bytes::from_static(&[0xff, 0xff, 3]), whole(&a)]).unwrap();
        assert_eq!(text_of(&merged), "kept");
    }
}
