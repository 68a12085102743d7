//! Room history in a capped Redis Stream per room.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use super::keys::history_key;
use super::{later, Answer, Inner};
use crate::cluster::{ClusterError, HistoryStore};

/// A stream entry as `XRANGE` answers it: its id and its field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// The rooms' history shared by the nodes: a capped stream per room, a message per entry
/// (its JSON record in field `m`).
pub struct RedisHistory(pub(super) Arc<Inner>);

impl HistoryStore for RedisHistory {
    fn is_shared(&self) -> bool {
        true
    }

    fn append(
        &self,
        room: &str,
        _id: &str,
        record: Bytes,
        limit: usize,
    ) -> Answer<Result<(), ClusterError>> {
        let inner = self.0.clone();
        let k = history_key(room);
        later(async move {
            inner
                .run(|mut c| async move {
                    redis::cmd("XADD")
                        .arg(&k)
                        .arg("MAXLEN")
                        .arg(limit)
                        .arg("*")
                        .arg("m")
                        .arg(&record[..])
                        .query_async::<redis::Value>(&mut c)
                        .await
                })
                .await
                .map(drop)
        })
    }

    fn query(
        &self,
        room: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Answer<Result<Vec<Bytes>, ClusterError>> {
        let inner = self.0.clone();
        let k = history_key(room);
        let before = before.map(str::to_owned);
        later(async move { query_history(&inner, &k, before.as_deref(), limit).await })
    }
}

/// The part of a record the store reads: its id.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// Pages backwards through the room's stream until `limit` messages before `before` are
/// found. Stream order is arrival order, and "before" means before `before`'s own entry in
/// that order: on a Redis Cluster concurrent appends from one node may land in another
/// order than their ids were made in, so comparing ids alone would let consecutive pages
/// overlap. Only when `before` is no longer in the stream (trimmed) are ids compared, as
/// ids sort.
async fn query_history(
    inner: &Inner,
    k: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<Bytes>, ClusterError> {
    if let Some(b) = before {
        let (found, seen) = scan_history(inner, k, Position::After(b), limit).await?;
        if seen {
            return Ok(found);
        }
    }
    let from = before.map_or(Position::Newest, Position::IdBelow);
    Ok(scan_history(inner, k, from, limit).await?.0)
}

/// Where a history page starts.
#[derive(Clone, Copy)]
enum Position<'a> {
    /// At the newest entry.
    Newest,
    /// After (older than) the entry of this message id.
    After(&'a str),
    /// At the newest entry whose message id sorts below this one.
    IdBelow(&'a str),
}

/// Reads backwards from `from`; the page (oldest first) and whether `Position::After`'s entry was
/// met (always true for the other positions).
async fn scan_history(
    inner: &Inner,
    k: &str,
    from: Position<'_>,
    limit: usize,
) -> Result<(Vec<Bytes>, bool), ClusterError> {
    const PAGE: usize = 200;
    let mut found: Vec<Bytes> = Vec::with_capacity(limit.min(PAGE));
    let mut seen = !matches!(from, Position::After(_));
    let mut end = "+".to_owned();
    loop {
        let (k, end_arg) = (k.to_owned(), end.clone());
        let page: Vec<StreamEntry> = inner
            .run(|mut c| async move {
                redis::cmd("XREVRANGE")
                    .arg(&k)
                    .arg(&end_arg)
                    .arg("-")
                    .arg("COUNT")
                    .arg(PAGE)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let exhausted = page.len() < PAGE;
        for (id, fields) in page {
            end = format!("({id}");
            let Some((_, json)) = fields.into_iter().find(|(f, _)| f == "m") else {
                continue;
            };
            let Ok(head) = serde_json::from_slice::<Head<'_>>(&json) else {
                continue;
            };
            let take = match from {
                Position::Newest => true,
                Position::IdBelow(b) => head.id.as_ref() < b,
                Position::After(b) if !seen => {
                    seen = head.id == b;
                    false
                }
                Position::After(_) => true,
            };
            if take {
                found.push(Bytes::from(json));
                if found.len() == limit {
                    break;
                }
            }
        }
        if found.len() == limit || exhausted {
            break;
        }
    }
    found.reverse();
    Ok((found, seen))
}
