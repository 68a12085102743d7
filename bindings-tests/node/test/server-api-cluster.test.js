'use strict';
// Issue 18 item 4 across a cluster: two Fastify apps with the plugin on one real
// redis-server (or a Redis Cluster: SB_TEST_REDIS=cluster). `sockets(room)` lists the room's sockets on both nodes (Socket.IO's
// fetchSockets), and `to([..]).except(..)` reaches every socket of both nodes exactly once.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRedisForTest, onRedis } = require('../helpers/redis-setup');
const { closeApps } = require('../helpers/fastify');
const { startAppPair } = require('../helpers/cluster');
const { token } = require('../helpers/tokens');
const { connected, closeAll, request, sleep } = require('../helpers/client');

const as = (url, sub, claims = {}) => connected(url, { auth: { token: token(sub, { claims }) } });

describe(onRedis('the server API on two nodes sharing Redis'), () => {
  let redis;
  let A;
  let B;
  before(async () => {
    redis = await startRedisForTest();
    [A, B] = await startAppPair(redis);
  });
  after(async () => {
    closeAll();
    await closeApps();
    if (redis) await redis.close();
  });

  /** Polls `fn` until it resolves truthy (5 s at most); resolves its value. */
  async function eventually(fn, what) {
    const deadline = Date.now() + 5000;
    for (;;) {
      const value = await fn();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`not in time: ${what}`);
      await sleep(50);
    }
  }

  it('sockets(room) lists the sockets of every node with their users and rooms', { timeout: 20000 }, async () => {
    const alice = await as(A.url, 'alice', { tenant: 'acme' });
    const bob = await as(B.url, 'bob', { tenant: 'globex' });
    const carol = await as(B.url, 'carol');
    for (const s of [alice, bob, carol]) await request(s, 'joinRoom', 'lobby');
    await as(B.url, 'dave'); // not in the room

    for (const engine of [A.engine, B.engine]) {
      const sockets = await eventually(async () => {
        const list = await engine.sockets('lobby', { timeout: 2000 });
        return list.length === 3 && list;
      }, 'three sockets in lobby');
      const byUser = Object.fromEntries(sockets.map((s) => [s.user.id, s]));
      assert.deepEqual(Object.keys(byUser).sort(), ['alice', 'bob', 'carol']);
      assert.equal(byUser.bob.id, bob.id);
      assert.equal(byUser.bob.user.claims.tenant, 'globex');
      assert.deepEqual(byUser.alice.rooms.sort(), ['lobby', 'user:alice']);
    }
    // This node's own view is only its sockets.
    assert.deepEqual(A.engine.rooms().find((r) => r.roomId === 'lobby'), { roomId: 'lobby', sockets: 1 });
    // A room nobody is in, anywhere: an empty list at once, without waiting for the timeout.
    const started = Date.now();
    assert.deepEqual(await A.engine.sockets('empty-room', { timeout: 3000 }), []);
    assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
  });

  it('to([a, b]).except(c) reaches each socket on both nodes exactly once', { timeout: 20000 }, async () => {
    const onA = { a: await as(A.url, 'u1'), ab: await as(A.url, 'u2'), bc: await as(A.url, 'u3') };
    const onB = { a: await as(B.url, 'u4'), ab: await as(B.url, 'u5'), bc: await as(B.url, 'u6') };
    const got = {};
    for (const [node, set] of [['A', onA], ['B', onB]]) {
      await request(set.a, 'joinRoom', 'ra');
      await request(set.ab, 'joinRoom', 'ra');
      await request(set.ab, 'joinRoom', 'rb');
      await request(set.bc, 'joinRoom', 'rb');
      await request(set.bc, 'joinRoom', 'rc');
      for (const [name, s] of Object.entries(set)) {
        got[`${node}.${name}`] = [];
        s.on('news', (n) => got[`${node}.${name}`].push(n));
      }
    }
    // Until B's subscriptions carry A's broadcasts.
    let n = 0;
    await eventually(() => {
      A.engine.to('ra').emit('news', `probe-${++n}`);
      return got['B.a'].length > 0;
    }, 'a broadcast crosses nodes');
    await sleep(300);
    for (const k of Object.keys(got)) got[k] = [];

    A.engine.to(['ra', 'rb']).except('rc').emit('news', 'x');
    await sleep(500);
    assert.deepEqual(got, {
      'A.a': ['x'], 'A.ab': ['x'], 'A.bc': [],
      'B.a': ['x'], 'B.ab': ['x'], 'B.bc': [],
    });
  });
});
