'use strict';
// The cluster part of `make soak`, run while the single-node soak goes on: three nodes on one
// Redis, members of one room on each, two senders (on A and B) sending all along. Node C is
// killed with SIGKILL, then Redis is restarted, under that load. Afterwards:
// - the members on A and B are all still connected (neither fault disconnects anyone);
// - every C user's `userLeft` reached the members on A and B;
// - once Redis is back, every message sent from then on reaches every member on A and B
//   exactly once.
// The report gives the counts; failures are assertions.

const assert = require('node:assert/strict');
const { startRedis } = require('../helpers/redis');
const { startServer } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const { connect, request } = require('../helpers/client');
const { sleep } = require('../helpers/faults');

const HEARTBEAT_MS = 500;
const ROOM = 'soak-cluster';
const PER_NODE = Number(process.env.SOAK_CLUSTER_MEMBERS || 10);

async function member(url, name) {
  const s = connect(url, { auth: { token: token(name) } });
  await s.ready;
  const m = { s, name, texts: new Map(), left: new Set(), disconnects: 0 };
  s.on('message', (msg) => m.texts.set(msg.text, (m.texts.get(msg.text) || 0) + 1));
  s.on('userLeft', (u) => m.left.add(u.userId));
  s.on('disconnect', () => { m.disconnects += 1; });
  await request(s, 'joinRoom', ROOM);
  return m;
}

/** Sends `${prefix}-N` every `every` ms from `m` until stopped; resolves the texts acked. */
function sender(m, prefix, every, state) {
  return (async () => {
    const acked = [];
    for (let i = 0; state.running; i++) {
      const text = `${prefix}-${i}`;
      try {
        await request(m.s, 'sendMessage', { roomId: ROOM, text });
        acked.push({ text, at: Date.now() });
      } catch { /* a send while Redis is down may fail over to local delivery; counted below */ }
      await sleep(every);
    }
    return acked;
  })();
}

async function waitFor(check, ms) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

async function clusterFaults(report) {
  const redis = await startRedis();
  const args = ['--redis', redis.url, '--cluster-heartbeat-ms', String(HEARTBEAT_MS),
    '--rate-limit', '0', '--presence-grace', '200'];
  const [A, B, C] = await Promise.all([0, 1, 2].map(() => startServer({ args })));
  try {
    const onA = await Promise.all(Array.from({ length: PER_NODE }, (_, i) => member(A.url, `a${i}`)));
    const onB = await Promise.all(Array.from({ length: PER_NODE }, (_, i) => member(B.url, `b${i}`)));
    const onC = await Promise.all(Array.from({ length: PER_NODE }, (_, i) => member(C.url, `c${i}`)));
    const survivors = [...onA, ...onB];
    const state = { running: true };
    const senders = [sender(onA[0], 'from-a', 20, state), sender(onB[0], 'from-b', 20, state)];

    await sleep(1000);
    C.proc.kill('SIGKILL');
    const killedAt = Date.now();
    const reaped = await waitFor(() => survivors.every((m) => onC.every((c) => m.left.has(c.name))),
      3 * HEARTBEAT_MS + 3000);
    report.clusterReapMs = Date.now() - killedAt;

    await redis.stop();
    await sleep(1500);
    await redis.restart();
    const backAt = Date.now();
    // Cross-node delivery resumes within seconds of Redis returning; keep sending past that.
    await sleep(6000);
    state.running = false;
    const [fromA, fromB] = await Promise.all(senders);
    await sleep(1000);

    // Messages acked once Redis had been back for 3 s must have reached everyone once.
    const settled = [...fromA, ...fromB].filter((m) => m.at > backAt + 3000).map((m) => m.text);
    const missing = survivors.flatMap((m) => settled.filter((t) => m.texts.get(t) !== 1).map((t) => `${m.name}:${t}`));
    report.cluster = {
      nodes: 3,
      membersPerNode: PER_NODE,
      sent: fromA.length + fromB.length,
      checkedAfterRedisRestart: settled.length,
      notDeliveredOnce: missing.length,
      survivorsDisconnected: survivors.reduce((n, m) => n + m.disconnects, 0),
      deadNodeUsersLeftEverywhere: reaped,
    };
    assert.ok(reaped, `every user of the killed node left presence on A and B within ${3 * HEARTBEAT_MS + 3000} ms`);
    assert.ok(settled.length > 0, 'messages were sent after Redis came back');
    assert.deepEqual(missing.slice(0, 10), [], 'every message after the Redis restart reached every member once');
    assert.equal(report.cluster.survivorsDisconnected, 0, 'no member on A or B was disconnected');
  } finally {
    for (const m of [A, B]) await m.stop();
    await C.stop();
    await redis.stop();
  }
}

module.exports = { clusterFaults };
