//! The single-node implementations: nobody to publish to, presence and typing as this
//! node's hub counts them, history and documents in this process.
//!
//! Every answer is ready at once ([`now`]): a single node pays no allocation or task for
//! going through the interfaces.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use super::{
    now, Answer, Broker, ClusterError, ClusterSink, DocumentLog, HistoryStore, PresenceStore,
    SessionStore, StoredDocument,
};
use crate::hub::presence::Member;

/// A broker with no other node: publishing is a no-op, every room is "listened to" at once.
pub struct MemoryBroker {
    node_id: String,
}

impl MemoryBroker {
    /// A broker for a node of its own.
    pub fn new() -> Self {
        MemoryBroker {
            node_id: crate::helpers::ids::new_id().to_string(),
        }
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker for MemoryBroker {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn has_peers(&self) -> bool {
        false
    }

    // No other node sends anything: sinks are not kept.
    fn add_sink(&self, _sink: Arc<dyn ClusterSink>) {}

    fn start(&self, _runtime: &tokio::runtime::Handle) {}

    fn publish(&self, _room: Option<&str>, _message: Bytes) -> bool {
        false
    }

    fn send_to_node(&self, _node: &str, _message: Bytes) -> bool {
        false
    }

    fn interest_changed(&self, _room: &str) -> Answer<()> {
        now(())
    }

    fn listening(&self, _room: &str) -> bool {
        false
    }

    fn listeners(&self, _room: &str) -> Answer<Result<usize, ClusterError>> {
        // This node is the whole cluster; the caller leaves itself out.
        now(Ok(0))
    }

    fn is_connected(&self) -> bool {
        true
    }

    fn disconnected_for(&self) -> Option<Duration> {
        None
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Presence of one node: the caller's hub is the whole truth, so every answer is the
/// hub's (a first connection here is the first in the cluster, a last one the last).
pub struct MemoryPresence;

impl PresenceStore for MemoryPresence {
    fn join(&self, _room: &str, _user: &str, _name: &str) -> Answer<Result<bool, ClusterError>> {
        now(Ok(true))
    }

    fn leave(&self, _room: &str, _user: &str) -> Answer<Result<bool, ClusterError>> {
        now(Ok(true))
    }

    fn members(
        &self,
        _room: &str,
        here: &dyn Fn() -> Vec<Member>,
    ) -> Answer<Result<Vec<Member>, ClusterError>> {
        now(Ok(here()))
    }

    fn contains(&self, _room: &str, _user: &str) -> Answer<Result<bool, ClusterError>> {
        // Asked only when the user is not on this node, the only one.
        now(Ok(false))
    }

    fn typing_start(
        &self,
        _room: &str,
        _user: &str,
        _token: &str,
        _ttl: Duration,
        here: bool,
    ) -> Answer<Result<bool, ClusterError>> {
        now(Ok(here))
    }

    fn typing_stop(
        &self,
        _room: &str,
        _user: &str,
        _token: Option<&str>,
        here: bool,
    ) -> Answer<Result<bool, ClusterError>> {
        now(Ok(here))
    }
}

/// History in this process, the last `limit` messages per room. Not shared: the chat keeps
/// its own history on a single node and does not write here.
#[derive(Default)]
pub struct MemoryHistory {
    /// Per room, (id, record), oldest first.
    rooms: Mutex<HashMap<String, VecDeque<(String, Bytes)>>>,
}

impl HistoryStore for MemoryHistory {
    fn is_shared(&self) -> bool {
        false
    }

    fn append(
        &self,
        room: &str,
        id: &str,
        record: Bytes,
        limit: usize,
    ) -> Answer<Result<(), ClusterError>> {
        let mut rooms = self.rooms.lock();
        let list = rooms.entry(room.to_owned()).or_default();
        list.push_back((id.to_owned(), record));
        while list.len() > limit {
            list.pop_front();
        }
        now(Ok(()))
    }

    fn query(
        &self,
        room: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Answer<Result<Vec<Bytes>, ClusterError>> {
        let rooms = self.rooms.lock();
        let Some(list) = rooms.get(room) else {
            return now(Ok(Vec::new()));
        };
        let mut found: Vec<Bytes> = list
            .iter()
            .rev()
            .filter(|(id, _)| before.is_none_or(|b| id.as_str() < b))
            .take(limit)
            .map(|(_, record)| record.clone())
            .collect();
        found.reverse();
        now(Ok(found))
    }
}

/// Documents' updates in this process.
#[derive(Default)]
pub struct MemoryDocuments {
    docs: Mutex<HashMap<String, StoredDocument>>,
}

impl DocumentLog for MemoryDocuments {
    fn load(&self, doc: &str) -> Answer<Result<StoredDocument, ClusterError>> {
        now(Ok(self.docs.lock().get(doc).cloned().unwrap_or_default()))
    }

    fn append(&self, doc: &str, update: Bytes) -> Answer<Result<usize, ClusterError>> {
        let mut docs = self.docs.lock();
        let stored = docs.entry(doc.to_owned()).or_default();
        stored.updates.push(update);
        now(Ok(stored.updates.len()))
    }

    fn compact(
        &self,
        doc: &str,
        generation: u64,
        count: usize,
        merged: Bytes,
    ) -> Answer<Result<bool, ClusterError>> {
        let mut docs = self.docs.lock();
        let Some(stored) = docs.get_mut(doc) else {
            return now(Ok(false));
        };
        if stored.generation != generation || count < 1 || stored.updates.len() < count {
            return now(Ok(false));
        }
        stored.updates.splice(..count, [merged]);
        stored.generation += 1;
        now(Ok(true))
    }
}

/// Sessions of one node: a dropped session is only ever recovered here, from the node's own
/// recovery log.
pub struct MemorySessions;

impl SessionStore for MemorySessions {
    fn dropped(&self, _pid: &str, _ttl: Duration) {}

    fn holder(&self, _pid: &str) -> Answer<Option<String>> {
        now(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn memory_history_keeps_the_last_limit_and_pages_backwards() {
        let h = MemoryHistory::default();
        for id in ["a", "b", "c", "d"] {
            h.append("r", id, Bytes::copy_from_slice(id.as_bytes()), 3)
                .now_or_never()
                .unwrap()
                .unwrap();
        }
        let ids = |v: Vec<Bytes>| {
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
        };
        let all = h.query("r", None, 10).now_or_never().unwrap().unwrap();
        assert_eq!(ids(all), ["b", "c", "d"]);
        let page = h.query("r", Some("d"), 1).now_or_never().unwrap().unwrap();
        assert_eq!(ids(page), ["c"]);
        assert!(h
            .query("x", None, 1)
            .now_or_never()
            .unwrap()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn memory_documents_compact_only_at_the_generation_read() {
        let d = MemoryDocuments::default();
        for u in [&b"1"[..], b"2", b"3"] {
            d.append("doc", Bytes::copy_from_slice(u))
                .now_or_never()
                .unwrap()
                .unwrap();
        }
        let read = d.load("doc").now_or_never().unwrap().unwrap();
        assert_eq!(read.updates.len(), 3);
        let merged = Bytes::from_static(b"12");
        assert!(d
            .compact("doc", read.generation, 2, merged.clone())
            .now_or_never()
            .unwrap()
            .unwrap());
        assert!(!d
            .compact("doc", read.generation, 2, merged)
            .now_or_never()
            .unwrap()
            .unwrap());
        let after = d.load("doc").now_or_never().unwrap().unwrap();
        assert_eq!(after.generation, 1);
        assert_eq!(
            after.updates,
            [Bytes::from_static(b"12"), Bytes::from_static(b"3")]
        );
    }

    #[test]
    fn the_single_node_answers_are_the_hubs() {
        let p = MemoryPresence;
        assert!(p.join("r", "u", "U").now_or_never().unwrap().unwrap());
        assert!(p.leave("r", "u").now_or_never().unwrap().unwrap());
        assert!(!p.contains("r", "u").now_or_never().unwrap().unwrap());
        let ttl = Duration::from_secs(1);
        for here in [true, false] {
            assert_eq!(
                p.typing_start("r", "u", "t", ttl, here)
                    .now_or_never()
                    .unwrap()
                    .unwrap(),
                here
            );
            assert_eq!(
                p.typing_stop("r", "u", None, here)
                    .now_or_never()
                    .unwrap()
                    .unwrap(),
                here
            );
        }
        assert!(!MemoryBroker::new().has_peers());
        assert_eq!(MemorySessions.holder("pid").now_or_never().unwrap(), None);
    }
}
