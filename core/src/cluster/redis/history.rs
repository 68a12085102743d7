//! Room history in a capped Redis Stream per room.

use std::sync::Arc;

use super::keys::history_key;
use super::{later, Answer, Inner};
use crate::cluster::{ClusterError, HistoryStore};
use crate::store::ChatMessage;

/// A stream entry as `XRANGE` answers it: its id and its field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// The rooms' history shared by the nodes: a capped stream per room, a message per entry
/// (JSON in field `m`).
pub struct RedisHistory(pub(super) Arc<Inner>);

impl HistoryStore for RedisHistory {
    fn is_shared(&self) -> bool {
        true
    }

    fn append(&self, message: &ChatMessage, limit: usize) -> Answer<Result<(), ClusterError>> {
        let inner = self.0.clone();
        let k = history_key(&message.room_id);
        let json = serde_json::to_vec(message);
        later(async move {
            let json = json.map_err(|e| ClusterError::Protocol(e.to_string()))?;
            inner
                .run(|mut c| async move {
                    redis::cmd("XADD")
                        .arg(&k)
                        .arg("MAXLEN")
                        .arg(limit)
                        .arg("*")
                        .arg("m")
                        .arg(&json[..])
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
    ) -> Answer<Result<Vec<ChatMessage>, ClusterError>> {
        let inner = self.0.clone();
        let k = history_key(room);
        let before = before.map(str::to_owned);
        later(async move { query_history(&inner, &k, before.as_deref(), limit).await })
    }
}

/// Pages backwards through the room's stream until `limit` messages before `before` are
/// found. Stream order is arrival order; `before` is a message id, compared as ids sort.
async fn query_history(
    inner: &Inner,
    k: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<ChatMessage>, ClusterError> {
    const PAGE: usize = 200;
    let mut found: Vec<ChatMessage> = Vec::with_capacity(limit.min(PAGE));
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
        for (id, fields) in &page {
            end = format!("({id}");
            let Some((_, json)) = fields.iter().find(|(f, _)| f == "m") else {
                continue;
            };
            let Ok(message) = serde_json::from_slice::<ChatMessage>(json) else {
                continue;
            };
            if before.is_none_or(|b| message.id.as_str() < b) {
                found.push(message);
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
    Ok(found)
}
