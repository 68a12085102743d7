//! Yjs documents in Redis: per document a list of Yjs updates (`y:<doc>`) and a compaction
//! generation (`yg:<doc>`).
//!
//! Nodes only ever append (`RPUSH`): Yjs updates merge commutatively and idempotently, so
//! several nodes storing the same document at once, or storing it twice, lose nothing. A
//! reader merges the whole list. When the list grows, a node merges its first `n` entries
//! and replaces exactly those by the merge (`LTRIM n -1` + `LPUSH`), atomically and only if
//! no other compaction ran since it read them (the generation): entries appended meanwhile
//! by other nodes sit after the first `n` and survive.

use std::sync::LazyLock;

use super::conn::Conn;
use bytes::Bytes;
use redis::{RedisResult, Script};

use crate::cluster::StoredDocument;

/// KEYS: list, generation. ARGV: generation read, count, merged update. Returns 1 when the
/// first `count` entries were replaced by the merged one.
static COMPACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
if g ~= tonumber(ARGV[1]) then return 0 end
local n = tonumber(ARGV[2])
if n < 1 or redis.call('LLEN', KEYS[1]) < n then return 0 end
redis.call('LTRIM', KEYS[1], n, -1)
redis.call('LPUSH', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
",
    )
});

/// The list's entries and the generation, read in one transaction.
pub(super) async fn load(
    mut c: Conn,
    list: String,
    generation: String,
) -> RedisResult<StoredDocument> {
    let (generation, updates): (Option<u64>, Vec<Vec<u8>>) = redis::pipe()
        .atomic()
        .get(&generation)
        .lrange(&list, 0, -1)
        .query_async(&mut c)
        .await?;
    Ok(StoredDocument {
        generation: generation.unwrap_or(0),
        updates: updates.into_iter().map(Bytes::from).collect(),
    })
}

/// Appends one update; the list's new length.
pub(super) async fn append(mut c: Conn, list: String, update: Bytes) -> RedisResult<usize> {
    redis::cmd("RPUSH")
        .arg(&list)
        .arg(&update[..])
        .query_async(&mut c)
        .await
}

/// Runs the compaction script; whether it replaced the entries.
pub(super) async fn compact(
    mut c: Conn,
    keys: [String; 2],
    generation: u64,
    count: usize,
    merged: Bytes,
) -> RedisResult<bool> {
    let mut call = COMPACT.prepare_invoke();
    call.key(&keys[..])
        .arg(generation)
        .arg(count)
        .arg(&merged[..]);
    let done: i64 = call.invoke_async(&mut c).await?;
    Ok(done == 1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use crate::cluster::{redis_setups, RedisCluster};

    #[tokio::test]
    async fn compaction_replaces_exactly_what_was_read_and_keeps_later_appends() {
        for setup in redis_setups() {
            compaction_on(&setup.url()).await;
        }
    }

    async fn compaction_on(url: &str) {
        let cluster =
            RedisCluster::new(url, Duration::from_secs(1), Arc::new(Default::default())).unwrap();
        let adapter = cluster.into_cluster().documents().clone();
        let entry = |i: u8| Bytes::from(vec![i]);
        for i in 0..3 {
            assert_eq!(adapter.append("d", entry(i)).await.unwrap(), i as usize + 1);
        }
        let read = adapter.load("d").await.unwrap();
        assert_eq!(read.generation, 0);
        assert_eq!(read.updates, vec![entry(0), entry(1), entry(2)]);
        // Another node appends between the read and the compaction.
        adapter.append("d", entry(3)).await.unwrap();
        let merged = Bytes::from_static(b"m");
        assert!(adapter
            .compact("d", read.generation, 3, merged.clone())
            .await
            .unwrap());
        let now = adapter.load("d").await.unwrap();
        assert_eq!(now.generation, 1);
        assert_eq!(now.updates, vec![merged, entry(3)]);
        // A second compactor that read the same generation must not trim anything.
        assert!(!adapter
            .compact("d", read.generation, 2, Bytes::from_static(b"x"))
            .await
            .unwrap());
        assert_eq!(adapter.load("d").await.unwrap(), now);
        // A document never stored is empty.
        assert!(adapter.load("other").await.unwrap().updates.is_empty());
    }
}
