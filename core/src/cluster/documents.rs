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

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Script};

use super::StoredDocument;

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
    mut c: MultiplexedConnection,
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
pub(super) async fn append(
    mut c: MultiplexedConnection,
    list: String,
    update: Bytes,
) -> RedisResult<usize> {
    redis::cmd("RPUSH")
        .arg(&list)
        .arg(&update[..])
        .query_async(&mut c)
        .await
}

/// Runs the compaction script; whether it replaced the entries.
pub(super) async fn compact(
    mut c: MultiplexedConnection,
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
