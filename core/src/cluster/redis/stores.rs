//! Presence, documents and session holders in Redis.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;

use super::keys::{
    counts_key, document_keys, members_keys, node_rooms_key, presence_keys, session_key, typing_key,
};
use super::{documents, scripts};
use super::{later, now_ms, Answer, Inner};
use crate::cluster::{ClusterError, DocumentLog, PresenceStore, SessionStore, StoredDocument};
use crate::hub::presence::Member;

/// Presence and typing in hashes and sorted sets, changed by Lua scripts (one round trip,
/// atomic), with each node's entries kept so that survivors can withdraw a dead node's.
pub struct RedisPresence(pub(super) Arc<Inner>);

impl PresenceStore for RedisPresence {
    fn join(&self, room: &str, user: &str, username: &str) -> Answer<Result<bool, ClusterError>> {
        let inner = self.0.clone();
        let (rooms_key, room) = (node_rooms_key(&inner.node_id), room.to_owned());
        let keys = presence_keys(&room, &inner.node_id);
        let args = [user.to_owned(), username.to_owned(), now_ms().to_string()];
        let join = self.0.script_flag(&scripts::JOIN, keys.into(), args.into());
        later(async move {
            // The node's set of rooms (another slot than the room's keys) is written first,
            // so that a survivor reaping this node finds every room it may hold entries in.
            let listed = inner
                .run(|mut c| async move {
                    redis::cmd("SADD")
                        .arg(rooms_key)
                        .arg(room)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
            if listed.is_err() {
                // The set's shard is down, not the room's: the join still counts (the room's
                // members would otherwise miss a user who is there), and the next heartbeat
                // restates this node's presence, which lists every room again once the set's
                // shard is back. Until then a survivor reaping this node could miss this room.
                inner.restate_wanted.store(true, Ordering::Release);
            }
            join.await
        })
    }

    fn leave(&self, room: &str, user: &str) -> Answer<Result<bool, ClusterError>> {
        let keys = presence_keys(room, &self.0.node_id);
        self.0
            .script_flag(&scripts::LEAVE, keys.into(), vec![user.to_owned()])
    }

    fn members(
        &self,
        room: &str,
        _here: &dyn Fn() -> Vec<Member>,
    ) -> Answer<Result<Vec<Member>, ClusterError>> {
        let inner = self.0.clone();
        let keys = members_keys(room);
        later(async move {
            let flat: Vec<String> = inner
                .run(|mut c| async move {
                    let mut call = scripts::MEMBERS.prepare_invoke();
                    call.key(&keys[..]);
                    call.invoke_async(&mut c).await
                })
                .await?;
            Ok(flat
                .chunks_exact(2)
                .map(|p| Member {
                    user_id: p[0].as_str().into(),
                    username: p[1].as_str().into(),
                })
                .collect())
        })
    }

    fn contains(&self, room: &str, user: &str) -> Answer<Result<bool, ClusterError>> {
        let inner = self.0.clone();
        let (k, user) = (counts_key(room), user.to_owned());
        later(async move {
            inner
                .run(|mut c| async move { c.hexists(&k, &user).await })
                .await
        })
    }

    fn typing_start(
        &self,
        room: &str,
        user: &str,
        token: &str,
        ttl: Duration,
        _here: bool,
    ) -> Answer<Result<bool, ClusterError>> {
        let args = [token.to_owned(), ttl.as_millis().to_string()];
        let keys = vec![typing_key(room, user)];
        self.0
            .script_flag(&scripts::TYPING_START, keys, args.into())
    }

    fn typing_stop(
        &self,
        room: &str,
        user: &str,
        token: Option<&str>,
        _here: bool,
    ) -> Answer<Result<bool, ClusterError>> {
        let keys = vec![typing_key(room, user)];
        let args = vec![token.unwrap_or_default().to_owned()];
        self.0.script_flag(&scripts::TYPING_STOP, keys, args)
    }
}

/// Documents as Redis lists of updates (see `cluster/documents.rs`).
pub struct RedisDocuments(pub(super) Arc<Inner>);

impl DocumentLog for RedisDocuments {
    fn load(&self, doc: &str) -> Answer<Result<StoredDocument, ClusterError>> {
        let inner = self.0.clone();
        let [list, generation] = document_keys(doc);
        later(async move { inner.run(|c| documents::load(c, list, generation)).await })
    }

    fn append(&self, doc: &str, update: Bytes) -> Answer<Result<usize, ClusterError>> {
        let inner = self.0.clone();
        let [list, _] = document_keys(doc);
        later(async move { inner.run(|c| documents::append(c, list, update)).await })
    }

    fn compact(
        &self,
        doc: &str,
        generation: u64,
        count: usize,
        merged: Bytes,
    ) -> Answer<Result<bool, ClusterError>> {
        let inner = self.0.clone();
        let keys = document_keys(doc);
        later(async move {
            inner
                .run(|c| documents::compact(c, keys, generation, count, merged))
                .await
        })
    }
}

/// Which node holds a dropped session: a key per session, expiring with its window.
pub struct RedisSessions(pub(super) Arc<Inner>);

impl SessionStore for RedisSessions {
    fn dropped(&self, pid: &str, ttl: Duration) {
        let (inner, k) = (self.0.clone(), session_key(pid));
        let Some(runtime) = self.0.runtime.get() else {
            return;
        };
        runtime.spawn(async move {
            let node = inner.node_id.clone();
            let ttl = ttl.as_millis().max(1) as u64;
            let _ = inner
                .run(|mut c| async move {
                    redis::cmd("SET")
                        .arg(&k)
                        .arg(&node)
                        .arg("PX")
                        .arg(ttl)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        });
    }

    fn holder(&self, pid: &str) -> Answer<Option<String>> {
        let (inner, k) = (self.0.clone(), session_key(pid));
        later(async move {
            inner
                .run(|mut c| async move { c.get(&k).await })
                .await
                .ok()
                .flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use crate::cluster::{redis_setups, Cluster, RedisCluster};

    fn node(url: &str) -> Cluster {
        RedisCluster::new(url, Duration::from_secs(1), Arc::new(Default::default()))
            .unwrap()
            .into_cluster()
    }

    #[tokio::test]
    async fn presence_and_typing_count_nodes_through_the_store_interface() {
        for setup in redis_setups() {
            presence_on(&setup.url()).await;
        }
    }

    async fn presence_on(url: &str) {
        let (a, b) = (node(url), node(url));
        let (pa, pb) = (a.presence(), b.presence());
        let none = || Vec::new();
        assert!(pa.join("r", "u:1", "Ann").await.unwrap(), "first node");
        assert!(!pb.join("r", "u:1", "Ann").await.unwrap(), "second node");
        assert!(pa.join("r", "v", "Vic").await.unwrap());
        let members = pb.members("r", &none).await.unwrap();
        let ids: Vec<&str> = members.iter().map(|m| &*m.user_id).collect();
        assert_eq!(ids, ["u:1", "v"]);
        assert!(pb.contains("r", "u:1").await.unwrap());
        assert!(!pa.leave("r", "u:1").await.unwrap(), "still on b");
        assert!(pb.leave("r", "u:1").await.unwrap(), "gone");
        assert!(!pa.contains("r", "u:1").await.unwrap());

        let ttl = Duration::from_secs(5);
        assert!(pa.typing_start("r", "v", "a.1", ttl, true).await.unwrap());
        assert!(!pb.typing_start("r", "v", "b.1", ttl, true).await.unwrap());
        // The latest start owns it: a's token no longer stops it, b's does.
        assert!(!pa.typing_stop("r", "v", Some("a.1"), true).await.unwrap());
        assert!(pb.typing_stop("r", "v", Some("b.1"), true).await.unwrap());
        assert!(!pa.typing_stop("r", "v", None, false).await.unwrap());
    }

    #[tokio::test]
    async fn history_is_shared_capped_and_paged_backwards() {
        for setup in redis_setups() {
            history_on(&setup.url()).await;
        }
    }

    async fn history_on(url: &str) {
        let (a, b) = (node(url), node(url));
        assert!(a.shares_history());
        let record = |id: &str| Bytes::from(format!(r#"{{"id":"{id}","text":"x"}}"#));
        for id in ["m1", "m2", "m3", "m4"] {
            a.history().append("r", id, record(id), 3).await.unwrap();
        }
        // Not a record: skipped by readers.
        b.history()
            .append("r", "", Bytes::from_static(b"nope"), 10)
            .await
            .unwrap();
        let ids = |v: Vec<Bytes>| {
            let id =
                |b: &Bytes| serde_json::from_slice::<serde_json::Value>(b).unwrap()["id"].clone();
            v.iter().map(id).collect::<Vec<_>>()
        };
        let all = b.history().query("r", None, 10).await.unwrap();
        assert_eq!(ids(all), ["m2", "m3", "m4"]);
        assert_eq!(
            b.history().query("r", None, 1).await.unwrap(),
            [record("m4")]
        );
        let page = b.history().query("r", Some("m4"), 1).await.unwrap();
        assert_eq!(ids(page), ["m3"]);
        // Appends that landed out of id order: pages follow arrival order, never overlap.
        for id in ["x2", "x1", "x3"] {
            a.history().append("o", id, record(id), 10).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = b.history().query("o", before.as_deref(), 1).await.unwrap();
            let Some(id) = ids(page).pop() else { break };
            let id = id.as_str().unwrap_or_default().to_owned();
            seen.push(id.clone());
            before = Some(id);
        }
        assert_eq!(seen, ["x3", "x1", "x2"]);
        // A message no longer in the stream: ids are compared.
        assert_eq!(
            ids(b.history().query("o", Some("x2z"), 5).await.unwrap()),
            ["x2", "x1"]
        );
    }

    #[tokio::test]
    async fn a_dropped_session_names_its_holder_once_the_node_runs() {
        for setup in redis_setups() {
            sessions_on(&setup.url()).await;
        }
    }

    async fn sessions_on(url: &str) {
        let (a, b) = (node(url), node(url));
        a.broker().start(&tokio::runtime::Handle::current());
        a.sessions().dropped("pid1", Duration::from_secs(5));
        let mut holder = None;
        for _ in 0..100 {
            holder = b.sessions().holder("pid1").await;
            if holder.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(holder.as_deref(), Some(a.node_id()));
        assert_eq!(b.sessions().holder("other").await, None);
        a.broker().shutdown().await;
    }
}
