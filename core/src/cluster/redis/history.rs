//! Room history in a capped Redis Stream per room.

use super::{Inner, StreamEntry};
use crate::cluster::ClusterError;
use crate::store::ChatMessage;

/// Pages backwards through the room's stream until `limit` messages before `before` are
/// found. Stream order is arrival order; `before` is a message id, compared as ids sort.
pub(super) async fn query_history(
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
