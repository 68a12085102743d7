//! Presence, documents and session holders in Redis.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;

use super::keys::{
    counts_key, document_keys, entry, members_keys, presence_keys, session_key, typing_key,
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
        let keys = presence_keys(room, &self.0.node_id);
        let args = [
            user.to_owned(),
            username.to_owned(),
            now_ms().to_string(),
            entry(room, user),
        ];
        self.0.script_flag(&scripts::JOIN, keys.into(), args.into())
    }

    fn leave(&self, room: &str, user: &str) -> Answer<Result<bool, ClusterError>> {
        let keys = presence_keys(room, &self.0.node_id);
        let args = [user.to_owned(), entry(room, user)];
        self.0
            .script_flag(&scripts::LEAVE, keys.into(), args.into())
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
