//! The Redis side of cluster presence, as Lua scripts so that each change is atomic.
//!
//! Per room, `pc:<room>` counts on how many nodes a user is present, `pu:<room>` keeps the
//! display names and `pj:<room>` the arrival order. Per node, `pn:<node>` lists the
//! `[room, user]` entries it contributed, so that its share can be withdrawn when it dies
//! (reaping) or restated when Redis lost it. The entry strings are made in Rust and passed
//! in: Lua's cjson escapes differently, and a leave must find the exact string a join
//! stored. Multi-key scripts assume one Redis (not Redis Cluster).

use std::sync::LazyLock;

use redis::Script;

/// KEYS: pc, pu, pj, pn. ARGV: user, username, now (ms), entry. Returns 1 when the user is
/// now present on exactly one node.
pub static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SADD', KEYS[4], ARGV[4]) == 0 then return 0 end
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

/// KEYS: pc, pu, pj, pn. ARGV: user, entry. Returns 1 when the user is present on no node.
pub static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SREM', KEYS[4], ARGV[2]) == 0 then return 0 end
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

/// Withdraws a node's whole contribution. Used by [`REAP`] and [`RESTATE`].
const WITHDRAW: &str = r"
local function withdraw(set, prefix, departed)
  for _, e in ipairs(redis.call('SMEMBERS', set)) do
    local ok, pair = pcall(cjson.decode, e)
    if ok and type(pair) == 'table' and pair[1] and pair[2] then
      local room, user = pair[1], pair[2]
      local pc, pu, pj = prefix .. 'pc:' .. room, prefix .. 'pu:' .. room, prefix .. 'pj:' .. room
      if redis.call('HINCRBY', pc, user, -1) <= 0 then
        local name = redis.call('HGET', pu, user)
        redis.call('HDEL', pc, user)
        redis.call('HDEL', pu, user)
        redis.call('ZREM', pj, user)
        if departed then
          departed[#departed + 1] = room
          departed[#departed + 1] = user
          departed[#departed + 1] = name or user
        end
      end
    end
  end
  redis.call('DEL', set)
end
";

/// KEYS: nodes, pn:<dead>, alive:<dead>. ARGV: dead node id, key prefix. Removes a dead
/// node's presence once (the first survivor to call it wins) and returns the users that
/// left the cluster: room, user id, username, flattened.
pub static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{WITHDRAW}
if redis.call('EXISTS', KEYS[3]) == 1 then return {{}} end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return {{}} end
local departed = {{}}
withdraw(KEYS[2], ARGV[2], departed)
return departed
"
    ))
});

/// KEYS: pn:<self>. ARGV: key prefix, now (ms), then room, user, username, entry for every
/// present user. Replaces this node's contribution with what it knows now.
pub static RESTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{WITHDRAW}
withdraw(KEYS[1], ARGV[1], nil)
for i = 3, #ARGV, 4 do
  local room, user, name, entry = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('SADD', KEYS[1], entry) == 1 then
    local pc = ARGV[1] .. 'pc:' .. room
    redis.call('HSET', ARGV[1] .. 'pu:' .. room, user, name)
    if redis.call('HINCRBY', pc, user, 1) == 1 then
      redis.call('ZADD', ARGV[1] .. 'pj:' .. room, 'NX', ARGV[2], user)
    end
  end
end
return 1
"
    ))
});

/// KEYS: ty:["<room>","<user>"] (JSON, so ids with `:` cannot collide). ARGV: token, ttl (ms). Marks the user typing for `ttl` on behalf
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

/// KEYS: ty:["<room>","<user>"] (JSON, so ids with `:` cannot collide). ARGV: token or ''. Ends the typing (only if `token` still owns
/// it, when given); returns 1 when it was on.
pub static TYPING_STOP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
",
    )
});
