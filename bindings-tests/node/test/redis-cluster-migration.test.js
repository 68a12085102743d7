'use strict';
// Issue 22: a room's slot migrates to another master while two switchboard nodes use it (what
// `redis-cli --cluster reshard` and a managed cluster's rebalancing do). Redis unsubscribes the
// sharded channels of a slot that moved (SUNSUBSCRIBE pushed to the subscribers), and commands
// for the slot's keys answer MOVED/ASK: the nodes must subscribe again on the new owner and follow
// the keys, so messages keep crossing nodes, presence and history stay whole.
// Always on a Redis Cluster (3 masters, no replicas: a migration needs no failover).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startRedisCluster, roomSlot, nodeCommand } = require('../helpers/redis-cluster');
const { closeAll, request, sleep } = require('../helpers/client');
const {
  QUIET_MS, startNodes, stopNodes, member, join, untilCrossing, assertCount, fullHistory,
} = require('../helpers/cluster');

/** How long the nodes may take to notice the move and subscribe on the new owner. */
const FOLLOW_MS = 15000;

/**
 * Moves `slot` from the master of shard `from` to the master of shard `to`, keys included, the
 * way redis-cli's reshard does: IMPORTING/MIGRATING, MIGRATE of every key, then the new owner
 * announced to every master.
 */
async function migrateSlot(cluster, slot, from, to) {
  const src = cluster.shards[from].master;
  const dst = cluster.shards[to].master;
  await nodeCommand(dst.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', src.id);
  await nodeCommand(src.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', dst.id);
  let moved = 0;
  for (;;) {
    const keys = (await nodeCommand(src.port, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100'))
      .split('\n').map((k) => k.trim()).filter(Boolean);
    if (keys.length === 0) break;
    const answer = await nodeCommand(src.port, 'MIGRATE', '127.0.0.1', String(dst.port), '', '0', '5000', 'KEYS', ...keys);
    assert.match(answer, /OK|NOKEY/, `MIGRATE of ${keys.length} keys`);
    moved += keys.length;
  }
  for (const shard of [cluster.shards[to], cluster.shards[from], ...cluster.shards.filter((s) => s.index !== from && s.index !== to)]) {
    await nodeCommand(shard.master.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', dst.id);
  }
  return moved;
}

describe('a room\'s slot migrates to another master under two nodes [Redis Cluster]', () => {
  let cluster;
  let A;
  let B;

  before(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 0 });
    [A, B] = await startNodes(cluster, 2);
  });
  after(async () => {
    closeAll();
    await stopNodes([A, B]);
    if (cluster) await cluster.close();
  });

  it('messages cross nodes again, presence and history move with the slot', { timeout: 90000 }, async () => {
    const roomId = `migrating-${Date.now().toString(36)}`;
    const slot = roomSlot(roomId);
    const from = cluster.shardOfSlot(slot);
    const to = (from + 1) % cluster.shards.length;

    const alice = await member(A.url, 'alice', 'Alice', roomId);
    const bob = await member(B.url, 'bob', 'Bob', roomId);
    await untilCrossing(alice, roomId, [bob], 'the room crosses A→B before the move');
    for (const text of ['before 1', 'before 2']) await request(alice.s, 'sendMessage', { roomId, text });

    const moved = await migrateSlot(cluster, slot, from, to);
    assert.ok(moved > 0, 'the room had keys (presence, history) in its slot to move');
    const owner = (await nodeCommand(cluster.shards[to].master.port, 'CLUSTER', 'COUNTKEYSINSLOT', String(slot))).trim();
    assert.equal(Number(owner), moved, 'every key of the slot is on the new master');

    // Both ways, exactly once, once the nodes follow the slot.
    await untilCrossing(alice, roomId, [bob], 'the room crosses A→B after the move', FOLLOW_MS);
    await untilCrossing(bob, roomId, [alice], 'the room crosses B→A after the move', FOLLOW_MS);
    const text = 'after the move';
    await request(bob.s, 'sendMessage', { roomId, text });
    await alice.rec.next('message', { filter: (m) => m.text === text, timeout: FOLLOW_MS });
    await sleep(QUIET_MS);
    assertCount(alice, 'message', (m) => m.text === text, 1, 'B→A after the move');

    // The channel is now a sharded channel of the new owner.
    const channels = await nodeCommand(cluster.shards[to].master.port, 'PUBSUB', 'SHARDCHANNELS', `*{r:${roomId}}:r`);
    assert.ok(channels.trim().length > 0, `the room's channel is subscribed on the new master (${channels.trim()})`);

    // Presence moved with the keys: a newcomer on B sees everyone.
    const carol = await member(B.url, 'carol', 'Carol');
    const members = await join(carol, roomId);
    assert.deepEqual(members.map((m) => m.userId).sort(), ['alice', 'bob', 'carol']);

    // History moved too: what was sent before the move is still there, then what came after.
    const texts = (await fullHistory(carol, roomId)).map((m) => m.text);
    assert.deepEqual(texts.filter((t) => !t.startsWith('probe-')), ['before 1', 'before 2', 'after the move']);
  });
});
