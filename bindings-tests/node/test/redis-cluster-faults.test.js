'use strict';
// Issue 22: faults of a Redis Cluster under two switchboard nodes while their clients talk.
// (a) A master is SIGKILLed: its replica takes over; delivery, presence and history carry on,
//     and what is lost stays within the contract (README, "Several nodes with Redis"): only
//     messages sent in the failover window may be missing, nothing sent after it, no
//     duplicates, nobody disconnected. The loss is counted and printed.
// (b) A whole shard (master and replica) is killed: rooms on the other shards keep crossing
//     nodes, the dead shard's rooms keep local delivery, nothing crashes or hangs, and the logs
//     say what is wrong.
// These always run on a Redis Cluster (helpers/redis-cluster), whatever SB_TEST_REDIS says.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  startRedisCluster, slotOf, roomSlot, nodeCommand, REGISTRY_SLOT, ALL_CHANNEL_SLOT,
} = require('../helpers/redis-cluster');
const { closeAll, request, sleep } = require('../helpers/client');
const {
  QUIET_MS, startNodes, stopNodes, member, join, until, untilCrossing, assertCount, fullHistory,
} = require('../helpers/cluster');

const CROSS_MS = 5000;
/**
 * The nodes' heartbeat, much shorter than a failover (cluster-node-timeout 1 s plus the
 * election, 2 to 3 s here): a node's liveness key lives two heartbeats, so the live nodes'
 * keys expire while the registry's shard fails over; the reaper must not take them for dead.
 */
const FAULT_HEARTBEAT_MS = 500;
/**
 * How soon a killed engine node's users must leave once Redis is healthy: the reaper's grace
 * after its own heartbeat failed (two heartbeats plus the 2 s command timeout), then three
 * heartbeats of the killed node (twice as long as the others'), plus slack for a slow machine.
 */
const REAP_AFTER_FAILOVER_MS = 2 * FAULT_HEARTBEAT_MS + 2000 + 3 * 2 * FAULT_HEARTBEAT_MS + 4000;
/** Milliseconds between two messages of one sender during the failover test (20 per second). */
const SEND_EVERY_MS = 50;
/**
 * The failover window of the contract: from the kill until the replica has taken over and the
 * nodes have noticed (re-resolved the slot and subscribed again). Messages sent later than this
 * after the replica took over must all arrive.
 */
const RESUBSCRIBE_MS = 5000;

let seq = 0;
const room = (prefix) => `${prefix}-${++seq}-${Date.now().toString(36)}`;
const byUser = (userId) => (e) => e && e.userId === userId;
const sorted = (xs) => [...xs].sort();

/**
 * What a node logged since `mark` (the end of its stderr tail when the mark was taken; the
 * tail is bounded, so when the mark scrolled out everything kept is newer).
 */
function logsSince(node, mark) {
  const logs = node.stderr;
  const at = mark ? logs.lastIndexOf(mark) : -1;
  return at === -1 ? logs : logs.slice(at + mark.length);
}

/**
 * The shard index whose node carries the sharded channel of `roomId` (the nodes subscribed to
 * it when its members joined), by the channel name of core/src/cluster/redis/keys.rs.
 */
async function shardOfRoom(cluster, roomId) {
  for (const shard of cluster.shards) {
    const nodes = [shard.master, ...shard.replicas].filter((n) => n.running);
    for (const n of nodes) {
      // The room's own channel, not a personal one whose user id contains the room's name.
      const channels = (await nodeCommand(n.port, 'PUBSUB', 'SHARDCHANNELS', `*{r:${roomId}}:r`)).trim();
      if (channels) return shard.index;
    }
  }
  return null;
}

/**
 * One room per shard (by the engine's hash tag, helpers/redis-cluster roomSlot), joined by
 * `makeUsers(roomId)` (a member on each node). Checks that the room's channel is a sharded
 * channel of that very shard. Resolves [{ roomId, shard, users }], indexed by shard.
 */
async function roomsOnEveryShard(cluster, makeUsers) {
  const names = new Array(cluster.shards.length).fill(null);
  while (names.some((r) => r === null)) {
    const roomId = room('shard');
    const shard = cluster.shardOfSlot(roomSlot(roomId));
    if (names[shard] === null) names[shard] = roomId;
  }
  const rooms = [];
  for (const [shard, roomId] of names.entries()) {
    const users = await makeUsers(roomId);
    const seen = await until(() => shardOfRoom(cluster, roomId).then((s) => (s === null ? false : { s })),
      `the channel of ${roomId} shows up as a sharded channel`, CROSS_MS);
    assert.equal(seen.s, shard, `${roomId}: its channel is on the shard of its slot ${roomSlot(roomId)}`);
    rooms.push({ roomId, shard, users });
  }
  return rooms;
}

/**
 * Assertions that note a failure and carry on, so one failover run reports every broken
 * promise (delivery, presence, history) at once; `done(what)` fails with all of them.
 */
function softAsserts() {
  const problems = [];
  const soft = (fn) => (...args) => {
    try {
      fn(...args);
    } catch (e) {
      problems.push(e.message.split('\n')[0] + (e.actual !== undefined && typeof e.actual !== 'boolean'
        ? `: ${JSON.stringify(e.actual).slice(0, 600)}` : ''));
    }
  };
  return {
    deepEqual: soft(assert.deepEqual),
    equal: soft(assert.equal),
    ok: soft(assert.ok),
    /** Runs one step; a failure (a timeout, say) is noted and the next step runs. */
    async step(what, fn) {
      try {
        await fn();
      } catch (e) {
        problems.push(`${what}: ${e.message.split('\n')[0]}` + (e.actual !== undefined
          ? ` (got ${JSON.stringify(e.actual).slice(0, 400)}, expected ${JSON.stringify(e.expected).slice(0, 400)})` : ''));
      }
    },
    done(what) {
      assert.deepEqual(problems, [], `${what}:\n- ${problems.join('\n- ')}`);
    },
  };
}

/**
 * Sends `${tag}-${n}` from `u` to `roomId` every SEND_EVERY_MS until `stop()`; keeps each
 * send's time and ack (or error) in `sent`.
 */
function sender(u, roomId, tag) {
  const sent = [];
  let n = 0;
  let running = true;
  const timer = setInterval(() => {
    if (!running) return;
    const s = { text: `${tag}-${n++}`, at: Date.now(), ack: null, err: null };
    sent.push(s);
    u.s.timeout(CROSS_MS).emit('sendMessage', { roomId, text: s.text }, (timeoutErr, err, res) => {
      if (timeoutErr) s.err = timeoutErr.message;
      else if (err) s.err = err.message || JSON.stringify(err);
      else s.ack = res;
    });
  }, SEND_EVERY_MS);
  return { sent, stop() { running = false; clearInterval(timer); } };
}

/** What `receiver` got of `snd`'s messages: counts by text, order check, missing ones. */
function deliveryOf(snd, receiver, tag) {
  const got = receiver.rec.all('message', (m) => typeof m.text === 'string' && m.text.startsWith(`${tag}-`))
    .map(([m]) => m.text);
  const counts = new Map();
  for (const t of got) counts.set(t, (counts.get(t) || 0) + 1);
  const duplicates = [...counts].filter(([, c]) => c > 1).map(([t]) => t);
  const numbers = got.map((t) => Number(t.slice(tag.length + 1)));
  const outOfOrder = numbers.some((x, i) => i > 0 && x < numbers[i - 1]);
  const missing = snd.sent.filter((s) => !counts.has(s.text));
  return { got, duplicates, outOfOrder, missing };
}

/** An engine node's id, from its log line "connected to redis ... node=<id>". */
async function nodeId(node) {
  let id;
  await until(() => {
    const m = /connected to redis.*node=([A-Za-z0-9_-]+)/.exec(node.stderr.replace(/\x1b\[[0-9;]*m/g, ''));
    id = m && m[1];
    return !!id;
  }, 'the node logs its id');
  return id;
}

/**
 * Starts engine nodes until one's alive key (`switchboard:{n:<id>}:alive`, keys.rs) lives on
 * shard `shard`, and stops the others. Resolves that node.
 */
async function nodeWithAliveKeyOn(cluster, shard, opts) {
  for (let i = 0; i < 30; i++) {
    const [n] = await startNodes(cluster, 1, opts);
    if (cluster.shardOfSlot(slotOf(`switchboard:{n:${await nodeId(n)}}:alive`)) === shard) return n;
    await stopNodes([n]);
  }
  throw new Error(`no node's alive key landed on shard ${shard} in 30 tries`);
}

describe('Redis Cluster faults under two nodes (3 masters + 3 replicas)', () => {
  let cluster;
  let A;
  let B;
  let C;
  let rooms;
  const everyone = [];

  before(async () => {
    cluster = await startRedisCluster();
    [A, B] = await startNodes(cluster, 2, { heartbeatMs: FAULT_HEARTBEAT_MS });
    rooms = await roomsOnEveryShard(cluster, async (roomId) => {
      const a = await member(A.url, `a-${roomId}`, 'OnA', roomId);
      const b = await member(B.url, `b-${roomId}`, 'OnB', roomId);
      return [a, b];
    });
    for (const r of rooms) everyone.push(...r.users);
    for (const r of rooms) await untilCrossing(r.users[0], r.roomId, [r.users[1]], `${r.roomId} crosses nodes`);
  });
  after(async () => {
    closeAll();
    await stopNodes([A, B, C]);
    if (cluster) await cluster.close();
  });

  it("the helper's slotOf agrees with CLUSTER KEYSLOT", async () => {
    for (const key of ['foo', 'switchboard:{lobby}:h', '{}x', 'a{b}{c}', 'é{ü}', rooms[0].roomId]) {
      const slot = Number((await nodeCommand(cluster.nodes[0].port, 'CLUSTER', 'KEYSLOT', key)).trim());
      assert.equal(slotOf(key), slot, key);
    }
  });

  it('a master killed during traffic: its replica takes over; delivery, presence and history carry on within the contract', { timeout: 120000 }, async () => {
    // The shard of the node registry fails over: the nodes must not take each other for dead.
    const target = rooms[cluster.shardOfSlot(REGISTRY_SLOT)];
    const soft = softAsserts();
    // A third engine node whose alive key lives on the failing shard, with a slower
    // heartbeat: after the promotion, A and B read its (expired) key before it has refreshed
    // it, and must not take it for dead. Killed after the failover, it must still be reaped.
    C = await nodeWithAliveKeyOn(cluster, target.shard, { heartbeatMs: 2 * FAULT_HEARTBEAT_MS });
    const carl = await member(C.url, 'carl', 'Carl', target.roomId);
    await target.users[0].rec.next('userJoined', { filter: byUser('carl'), timeout: CROSS_MS });
    const senders = [];
    for (const r of rooms) {
      const [a, b] = r.users;
      senders.push({ r, from: a, to: b, tag: `${r.roomId}-AB`, snd: sender(a, r.roomId, `${r.roomId}-AB`) });
      senders.push({ r, from: b, to: a, tag: `${r.roomId}-BA`, snd: sender(b, r.roomId, `${r.roomId}-BA`) });
    }
    await sleep(1500); // traffic before the fault, replicated to the replicas

    const killedAt = Date.now();
    const dead = await cluster.killMaster(target.shard);
    const promoted = await cluster.waitForFailover(target.shard);
    const tookOverAt = Date.now();
    const windowEnd = tookOverAt + RESUBSCRIBE_MS;
    // Messages sent past the window must cross: wait for that, then some more traffic.
    await sleep(RESUBSCRIBE_MS + 2000);
    for (const s of senders) s.snd.stop();
    await sleep(QUIET_MS + 1000);

    const report = [];
    for (const s of senders) {
      const d = deliveryOf(s.snd, s.to, s.tag);
      const own = deliveryOf(s.snd, s.from, s.tag);
      const inWindow = d.missing.filter((m) => m.at >= killedAt && m.at < windowEnd);
      const outside = d.missing.filter((m) => m.at < killedAt || m.at >= windowEnd);
      report.push(`${s.tag} (shard ${s.r.shard}): sent ${s.snd.sent.length}, crossed ${d.got.length}, ` +
        `lost in the window ${inWindow.length}` +
        (inWindow.length ? ` (sent ${inWindow[0].at - killedAt}..${inWindow[inWindow.length - 1].at - killedAt} ms after the kill)` : '') +
        `, lost outside ${outside.length}, ` +
        `sender's own copies missing ${own.missing.length}`);
      soft.deepEqual(d.duplicates, [], `${s.tag}: no duplicates across nodes`);
      soft.equal(d.outOfOrder, false, `${s.tag}: in order across nodes`);
      soft.deepEqual(own.duplicates, [], `${s.tag}: no duplicates locally`);
      soft.deepEqual(outside.map((m) => m.text), [], `${s.tag}: nothing sent outside the failover window is lost`);
      // Local delivery does not go through Redis: the sender's node delivers all of them.
      soft.deepEqual(own.missing.map((m) => m.text), [], `${s.tag}: the sender's own node delivers everything`);
      if (s.r !== target) soft.equal(inWindow.length, 0, `${s.tag}: a room on another shard loses nothing`);
    }
    console.log(`failover: master :${dead.port} killed, replica :${promoted.port} took over in ` +
      `${tookOverAt - killedAt} ms\n  ${report.join('\n  ')}`);
    for (const u of everyone) {
      soft.deepEqual(u.disconnects, [], `${u.sub} was not disconnected`);
      soft.equal(u.s.connected, true, `${u.sub} is connected`);
      // Both engine nodes lived through it: nobody may be reaped as if their node had died.
      soft.deepEqual(u.rec.all('userLeft').map(([e]) => `${e.userId} left ${e.roomId}`), [],
        `${u.sub} saw no member of a live node leave`);
    }
    soft.deepEqual(carl.rec.all('userLeft').map(([e]) => `${e.userId} left ${e.roomId}`), [],
      'carl (on the third node) saw no member of a live node leave');

    // A node really dead after the failover is still reaped, within the documented time.
    await soft.step('a node killed after the failover is reaped', async () => {
      const killed = Date.now();
      C.proc.kill('SIGKILL');
      for (const u of target.users) {
        await u.rec.next('userLeft', { filter: byUser('carl'), timeout: REAP_AFTER_FAILOVER_MS });
      }
      console.log(`the killed node's user left ${Date.now() - killed} ms after the kill`);
    });

    // Presence carries on in the failed-over room, across nodes, both ways.
    const [onA, onB] = target.users;
    const dave = await member(B.url, 'dave', 'Dave', target.roomId);
    soft.deepEqual(sorted(dave.members.map((m) => m.userId)), sorted([onA.sub, onB.sub, 'dave']));
    await onA.rec.next('userJoined', { filter: byUser('dave'), timeout: CROSS_MS });
    const erin = await member(A.url, 'erin', 'Erin', target.roomId);
    soft.deepEqual(sorted(erin.members.map((m) => m.userId)), sorted([onA.sub, onB.sub, 'dave', 'erin']));
    await dave.rec.next('userJoined', { filter: byUser('erin'), timeout: CROSS_MS });
    await request(dave.s, 'leaveRoom', target.roomId);
    await onA.rec.next('userLeft', { filter: byUser('dave'), timeout: CROSS_MS });
    await erin.rec.next('userLeft', { filter: byUser('dave'), timeout: CROSS_MS });

    // History: what was acked after the window is stored once and in order, on both nodes.
    const history = await fullHistory(erin, target.roomId);
    const seen = new Set();
    const dupes = history.filter((m) => seen.has(m.id) || !seen.add(m.id)).map((m) => `${m.id} ${m.text}`);
    soft.deepEqual(dupes, [], 'no duplicate in history (a write retried across the failover)');
    const after = await request(onA.s, 'sendMessage', { roomId: target.roomId, text: 'after the failover' });
    await onB.rec.next('message', { filter: (m) => m.text === 'after the failover', timeout: CROSS_MS });
    for (const u of [onA, onB]) {
      const h = await request(u.s, 'getHistory', { roomId: target.roomId, limit: 5 });
      soft.equal(h.messages[h.messages.length - 1].id, after.id, `${u.sub} sees the latest message in history`);
    }
    const lateAcked = senders.filter((s) => s.r === target).flatMap((s) => s.snd.sent)
      .filter((m) => m.at >= windowEnd && m.ack).map((m) => m.text);
    const stored = new Set((await fullHistory(onB, target.roomId)).map((m) => m.text));
    soft.ok(lateAcked.length > 0, 'messages were acked after the window');
    soft.deepEqual(lateAcked.filter((t) => !stored.has(t)), [], 'every message acked after the window is in history');
    // Before the kill, replication had a second to copy what was acked to the replica.
    const earlyAcked = senders.filter((s) => s.r === target).flatMap((s) => s.snd.sent)
      .filter((m) => m.at < killedAt - 1000 && m.ack).map((m) => m.text);
    soft.deepEqual(earlyAcked.filter((t) => !stored.has(t)), [], 'what was acked well before the kill survived the failover');
    const windowAcked = senders.filter((s) => s.r === target).flatMap((s) => s.snd.sent)
      .filter((m) => m.at >= killedAt - 1000 && m.at < windowEnd);
    console.log(`history: ${windowAcked.filter((m) => m.ack && !stored.has(m.text)).length} of ` +
      `${windowAcked.filter((m) => m.ack).length} messages acked around the failover window missing, ` +
      `${windowAcked.filter((m) => !m.ack).length} sends refused or unanswered (${[...new Set(windowAcked.filter((m) => m.err).map((m) => m.err))].join('; ')})`);
    dave.s.close();
    erin.s.close();
    soft.done('the failover broke the contract');
  });

  it('a whole shard down: the other shards keep crossing nodes, its rooms deliver locally, the logs say why; back, it crosses again', { timeout: 120000 }, async () => {
    // Not the shard that failed over (it has no replica left) and, when there is a choice, not
    // the one of the all-nodes channel: rooms on the other shards must still cross.
    const failed = cluster.shardOfSlot(REGISTRY_SLOT);
    const candidates = rooms.map((r) => r.shard).filter((s) => s !== failed);
    const downShard = candidates.find((s) => s !== cluster.shardOfSlot(ALL_CHANNEL_SLOT)) ?? candidates[0];
    const down = rooms[downShard];
    const marks = { A: A.stderr.slice(-200), B: B.stderr.slice(-200) };
    const soft = softAsserts();
    await cluster.killShard(downShard);
    const killedAt = Date.now();

    // Local delivery in the dead shard's room, on each node.
    const [onA, onB] = down.users;
    // The members from before it went down (a join needs the room's presence, on the dead
    // shard) still get each other's messages on their node.
    for (const [u, text] of [[onA, 'dead shard, from A'], [onB, 'dead shard, from B']]) {
      const t0 = Date.now();
      const ack = await request(u.s, 'sendMessage', { roomId: down.roomId, text }).catch((e) => e);
      const got = await u.rec.next('message', { filter: (m) => m.text === text, timeout: CROSS_MS })
        .then(() => Date.now() - t0, (e) => e);
      soft.equal(typeof got, 'number', `${u.sub} gets its message in the dead shard's room on its node ` +
        `(ack: ${ack instanceof Error ? ack.message : JSON.stringify(ack)}): ${got.message}`);
    }

    // The other shards' rooms keep crossing, both ways, exactly once.
    for (const r of rooms.filter((x) => x.shard !== downShard)) {
      const [a, b] = r.users;
      await soft.step(`room on shard ${r.shard} with shard ${downShard} down`, async () => {
        await untilCrossing(a, r.roomId, [b], `${r.roomId} crosses A→B`);
        const text = `alive shard ${r.shard}`;
        await request(b.s, 'sendMessage', { roomId: r.roomId, text });
        await a.rec.next('message', { filter: (m) => m.text === text, timeout: CROSS_MS });
        await sleep(QUIET_MS);
        assertCount(a, 'message', (m) => m.text === text, 1, 'B→A once');
      });
    }
    // A new member of a room on a live shard sees the members on both nodes.
    const live = rooms.find((x) => x.shard !== downShard);
    await soft.step(`joining a room on live shard ${live.shard}`, async () => {
      const frank = await member(B.url, 'frank', 'Frank');
      const members = await join(frank, live.roomId);
      assert.deepEqual(sorted(members.map((m) => m.userId)), sorted([...live.users.map((u) => u.sub), 'frank']));
      frank.s.close();
    });

    // Nothing crashed or hangs: both nodes answer, every client is still connected.
    for (const n of [A, B]) {
      soft.equal(n.exited, false, `node ${n.name} still runs`);
      await soft.step(`node ${n.name} answers /healthz within 2 s`, () => fetch(`${n.url}/healthz`, { signal: AbortSignal.timeout(2000) }));
    }
    for (const u of everyone) soft.equal(u.s.connected, true, `${u.sub} is connected`);

    // The logs name the problem: Redis and the unreachable node or shard.
    const deadPorts = [cluster.shards[downShard].master, ...cluster.shards[downShard].replicas].map((n) => n.port);
    const problem = (line) => /WARN|ERROR/.test(line) && /redis|cluster|shard|slot/i.test(line);
    await soft.step('the logs', () => until(() => [A, B].every((n) => logsSince(n, marks[n.name]).split('\n').some(problem)),
      'both nodes log a warning or error about Redis after the shard went down', 10000));
    for (const n of [A, B]) {
      const lines = logsSince(n, marks[n.name]).split('\n').filter(problem);
      soft.ok(lines.some((l) => deadPorts.some((p) => l.includes(String(p))) || /slot|shard|cluster/i.test(l)),
        `node ${n.name}'s log names the dead node or the cluster problem:\n${lines.slice(-10).join('\n')}`);
    }
    console.log(`shard ${downShard} down for ${Date.now() - killedAt} ms`);

    // Back (empty): the dead shard's room crosses nodes again, both ways.
    await cluster.restartShard(downShard);
    await soft.step(`the room of shard ${downShard} once it is back`, async () => {
      await untilCrossing(onA, down.roomId, [onB], `${down.roomId} crosses A→B again`, 20000);
      await untilCrossing(onB, down.roomId, [onA], `${down.roomId} crosses B→A again`);
    });
    soft.done(`with shard ${downShard} down`);
  });
});
