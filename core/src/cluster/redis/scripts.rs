//! The Redis side of cluster presence, as Lua scripts so that each change is atomic.
//!
//! Per room, `pc` counts on how many nodes a user is present, `pu` keeps the display names
//! and `pj` the arrival order; `pn:<node>` lists the users a node contributed to the room,
//! so that its share can be withdrawn when it dies (reaping) or restated when Redis lost
//! it. Every key a script receives carries the room's hash tag (`keys.rs`), so each script
//! runs within one slot of a Redis Cluster. Which rooms a node holds entries in is a
//! separate per-node set, written and read by single-key commands outside the scripts.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: pc, pu, pj, pn:<node>. ARGV: user, username, now (ms). Returns 1 when the user is
/// now present on exactly one node.
pub static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SADD', KEYS[4], ARGV[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if n == 1 then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
  return 1
end
return 0
",
    )
});

/// KEYS: pc, pu, pj, pn:<node>. ARGV: user. Returns 1 when the user is present on no node.
pub static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SREM', KEYS[4], ARGV[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n > 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
",
    )
});

/// KEYS: pj, pu. Returns user id, username pairs, flattened, in arrival order.
pub static MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
-- HMGET in chunks: unpack() of a huge room would overflow Lua's stack.
for i = 1, #ids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
  local names = redis.call('HMGET', KEYS[2], unpack(chunk))
  for j, id in ipairs(chunk) do
    out[#out + 1] = id
    out[#out + 1] = names[j] or id
  end
end
return out
",
    )
});

/// Withdraws a node's whole contribution to one room (KEYS: pc, pu, pj, pn:<node>). Used by
/// [`WITHDRAW`] and [`RESTATE`].
const WITHDRAW_FN: &str = r"
local function withdraw(departed)
  for _, user in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    if redis.call('HINCRBY', KEYS[1], user, -1) <= 0 then
      local name = redis.call('HGET', KEYS[2], user)
      redis.call('HDEL', KEYS[1], user)
      redis.call('HDEL', KEYS[2], user)
      redis.call('ZREM', KEYS[3], user)
      if departed then
        departed[#departed + 1] = user
        departed[#departed + 1] = name or user
      end
    end
  end
  redis.call('DEL', KEYS[4])
end
";

/// KEYS: pc, pu, pj, pn:<dead>. Removes a dead node's presence in one room and returns the
/// users that left the cluster: user id, username, flattened. Idempotent: a second run (by
/// another survivor, or a retry) finds `pn` gone and changes nothing.
pub static WITHDRAW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{WITHDRAW_FN}
local departed = {{}}
withdraw(departed)
return departed
"
    ))
});

/// KEYS: pc, pu, pj, pn:<self>. ARGV: now (ms), then user, username for every user present
/// through this node in the room. Replaces this node's contribution to the room with what it
/// knows now.
pub static RESTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{WITHDRAW_FN}
withdraw(nil)
for i = 2, #ARGV, 2 do
  local user, name = ARGV[i], ARGV[i + 1]
  if redis.call('SADD', KEYS[4], user) == 1 then
    redis.call('HSET', KEYS[2], user, name)
    if redis.call('HINCRBY', KEYS[1], user, 1) == 1 then
      redis.call('ZADD', KEYS[3], 'NX', ARGV[1], user)
    end
  end
end
return 1
"
    ))
});

/// KEYS: the typing key of (room, user). ARGV: token, ttl (ms). Marks the user typing for `ttl` on behalf
/// of `token` (the latest start wins the expiry); returns 1 when the user was not typing.
pub static TYPING_START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local was = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1 - was
",
    )
});

/// KEYS: the typing key of (room, user). ARGV: token or ''. Ends the typing (only if `token` still owns
/// it, when given); returns 1 when it was on.
pub static TYPING_STOP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
",
    )
});
