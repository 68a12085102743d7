'use strict';
// Issue 7: clustering through Redis, end to end. Several `switchboard serve` processes (and a
// Fastify app with the plugin) on one real redis-server (or a Redis Cluster: SB_TEST_REDIS=cluster,
// helpers/redis-setup) act as one server: room broadcasts,
// presence, typing, signals, API publishes and notifications cross nodes exactly once and in
// order; history lives in Redis; a killed node's users leave within 3 heartbeats; a Redis
// outage keeps local delivery and connections alive, and the cluster heals when Redis returns.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { redisForFile, startRedisForTest, onRedis } = require('../helpers/redis-setup');
const { startApp, closeApps } = require('../helpers/fastify');
const { token } = require('../helpers/tokens');
const { sleep, closeAll, request, expectError, noEvent } = require('../helpers/client');
const { closeAllStreams, sseClient, apiClient, eventsUrl } = require('../helpers/sse');
const { pollingHandshake, pollingUrl } = require('../helpers/raw');
const {
  API_KEY, REAP_WAIT_MS, EVENTUAL_MS, QUIET_MS, nodeOptions, startNodes, stopNodes, member, join,
  until, waitRedisConnected, untilCrossing, settle, assertCount, fullHistory,
} = require('../helpers/cluster');
const { startServer } = require('../helpers/server');

/** Messages a room keeps in history (core's Config::history_limit default), Redis or not. */
const HISTORY_LIMIT = 1000;
const CROSS_MS = 5000; // wait for one delivery across nodes
const MESSAGE_KEYS = ['id', 'roomId', 'text', 'timestamp', 'userId', 'username'];
/** One Redis set-up (SB_TEST_REDIS) for the file's blocks. */
const sharedRedis = redisForFile();

let roomSeq = 0;
const room = (prefix = 'room') => `${prefix}-${++roomSeq}-${Date.now().toString(36)}`;
const isText = (text) => (m) => m && m.text === text;
const byUser = (userId) => (e) => e && e.userId === userId;
const byFrom = (userId) => (e) => e && e.fromUserId === userId;
const person = (userId, username) => ({ userId, username });
const sorted = (members) => [...members].sort((a, b) => a.userId.localeCompare(b.userId));

function assertMessage(m, { roomId, text, userId, username }) {
  assert.deepEqual(Object.keys(m).sort(), MESSAGE_KEYS, `message fields: ${JSON.stringify(m)}`);
  assert.equal(m.roomId, roomId);
  assert.equal(m.text, text);
  assert.equal(m.userId, userId);
  assert.equal(m.username, username);
}

/** The next `message` with `text` on each of `users`; resolves their payloads. */
function receivedBy(users, text, timeout = CROSS_MS) {
  return Promise.all(users.map(async (u) => (await u.rec.next('message', { filter: isText(text), timeout }))[0]));
}

/** A two-node cluster (A with --redis, B with REDIS_URL) per describe block. */
function twoNodes(ctx) {
  before(async () => {
    ctx.redis = await sharedRedis();
    [ctx.A, ctx.B] = await startNodes(ctx.redis, 2, { viaEnv: [1] });
    ctx.apiA = apiClient(ctx.A.url, API_KEY);
    ctx.apiB = apiClient(ctx.B.url, API_KEY);
    await settle([ctx.A.url, ctx.B.url]);
  });
  after(async () => {
    closeAll();
    closeAllStreams();
    await stopNodes([ctx.A, ctx.B]);
  });
  afterEach(() => { closeAll(); closeAllStreams(); });
}

// ---------------------------------------------------------------------------------------------

describe(onRedis('two switchboard serve nodes sharing Redis (--redis and REDIS_URL)'), () => {
  const c = {};
  twoNodes(c);

  it('a room message reaches the members on both nodes exactly once, sent from either node', async () => {
    const r = room();
    const alice = await member(c.A.url, 'alice', 'Alice', r);
    const bob = await member(c.B.url, 'bob', 'Bob', r);
    const carol = await member(c.B.url, 'carol', 'Carol', r);
    const dave = await member(c.A.url, 'dave', 'Dave', room('other')); // not a member, on A
    const erin = await member(c.B.url, 'erin', 'Erin'); // not a member, on B

    const ackA = await request(alice.s, 'sendMessage', { roomId: r, text: 'from A' });
    const fromA = await receivedBy([alice, bob, carol], 'from A');
    assertMessage(fromA[1], { roomId: r, text: 'from A', userId: 'alice', username: 'Alice' });
    assert.equal(fromA[1].id, ackA.id, 'the id the sender was acked with');
    assert.deepEqual(fromA[0], fromA[1], 'same message on A and B');
    assert.deepEqual(fromA[2], fromA[1], 'same message for every member on B');

    const ackB = await request(carol.s, 'sendMessage', { roomId: r, text: 'from B' });
    const fromB = await receivedBy([alice, bob, carol], 'from B');
    assertMessage(fromB[0], { roomId: r, text: 'from B', userId: 'carol', username: 'Carol' });
    assert.equal(fromB[0].id, ackB.id);

    await sleep(QUIET_MS);
    for (const text of ['from A', 'from B']) {
      for (const u of [alice, bob, carol]) assertCount(u, 'message', isText(text), 1, text);
      for (const u of [dave, erin]) assertCount(u, 'message', null, 0, 'not a member');
    }
  });

  it('50 messages sent quickly on A arrive in order, once each, to a member on B', async () => {
    const r = room('order');
    const alice = await member(c.A.url, 'alice', 'Alice', r);
    const bob = await member(c.B.url, 'bob', 'Bob', r);
    const texts = Array.from({ length: 50 }, (_, i) => `seq ${i}`);
    const acks = await Promise.all(texts.map((text) => request(alice.s, 'sendMessage', { roomId: r, text })));
    const isSeq = (m) => m.text.startsWith('seq ');
    const got = (await bob.rec.count('message', 50, { filter: isSeq, timeout: EVENTUAL_MS })).map(([m]) => m);
    assert.deepEqual(got.map((m) => m.text), texts, 'in the order they were sent');
    assert.deepEqual(got.map((m) => m.id), acks.map((a) => a.id), 'the acked ids, in order');
    await sleep(QUIET_MS);
    assertCount(bob, 'message', isSeq, 50, 'no duplicates');
  });

  it('typing crosses nodes: to the others only, on changes only', async () => {
    const r = room('typing');
    const alice = await member(c.A.url, 'alice', 'Alice', r);
    const bob = await member(c.B.url, 'bob', 'Bob', r);
    const notToSelf = noEvent(alice.s, 'typing', 1500);
    alice.s.emit('startTyping', r);
    const [on] = await bob.rec.next('typing', { timeout: CROSS_MS });
    assert.deepEqual(on, { roomId: r, userId: 'alice', username: 'Alice', isTyping: true });
    alice.s.emit('startTyping', r);
    await sleep(QUIET_MS);
    alice.s.emit('stopTyping', r);
    const [off] = await bob.rec.next('typing', { timeout: CROSS_MS });
    assert.deepEqual(off, { roomId: r, userId: 'alice', username: 'Alice', isTyping: false });
    await sleep(QUIET_MS);
    assertCount(bob, 'typing', null, 2, 'one start and one stop');
    await notToSelf;
  });

  it('typing is per user across nodes: a second tab starting to type while the first (on the other node) types emits nothing', async () => {
    const r = room('typing-tabs');
    const bob = await member(c.A.url, 'bob', 'Bob', r);
    const tab1 = await member(c.B.url, 'alice', 'Alice', r);
    const tab2 = await member(c.A.url, 'alice', 'Alice', r); // on bob's node: it must know alice types on B
    tab1.s.emit('startTyping', r);
    await bob.rec.next('typing', { filter: (t) => t.isTyping === true, timeout: CROSS_MS });
    tab2.s.emit('startTyping', r);
    await sleep(QUIET_MS);
    assertCount(bob, 'typing', null, 1, 'alice is already typing');
  });

  it('presence is cluster-wide: roomMembers, userJoined, userLeft and the presence API span both nodes', async () => {
    const r = room('presence');
    const alice = await member(c.A.url, 'alice', 'Alice', r);
    assert.deepEqual(alice.members, [person('alice', 'Alice')]);
    const bob = await member(c.B.url, 'bob', 'Bob', r);
    assert.deepEqual(sorted(bob.members), [person('alice', 'Alice'), person('bob', 'Bob')], 'bob on B sees alice on A');
    const [joined] = await alice.rec.next('userJoined', { filter: byUser('bob'), timeout: CROSS_MS });
    assert.deepEqual(joined, { roomId: r, userId: 'bob', username: 'Bob' });
    const carol = await member(c.A.url, 'carol', 'Carol', r);
    assert.deepEqual(sorted(carol.members).map((m) => m.userId), ['alice', 'bob', 'carol']);
    await bob.rec.next('userJoined', { filter: byUser('carol'), timeout: CROSS_MS });
    for (const api of [c.apiA, c.apiB]) {
      const p = await api.presence(r);
      assert.equal(p.status, 200, p.text);
      assert.deepEqual(sorted(p.json.members).map((m) => m.userId), ['alice', 'bob', 'carol'], p.text);
    }

    await request(bob.s, 'leaveRoom', r);
    for (const u of [alice, carol]) {
      const [left] = await u.rec.next('userLeft', { filter: byUser('bob'), timeout: CROSS_MS });
      assert.deepEqual(left, { roomId: r, userId: 'bob', username: 'Bob' });
    }
    alice.s.close(); // a disconnect is a leave too (after the presence grace)
    await carol.rec.next('userLeft', { filter: byUser('alice'), timeout: CROSS_MS });
    const dave = await member(c.B.url, 'dave', 'Dave', r);
    assert.deepEqual(sorted(dave.members).map((m) => m.userId), ['carol', 'dave']);
    await sleep(QUIET_MS);
    assertCount(carol, 'userJoined', byUser('bob'), 0, 'bob joined before carol');
    assertCount(carol, 'userLeft', byUser('bob'), 1, 'bob left once');
    assertCount(carol, 'userJoined', byUser('dave'), 1, 'dave joined once');
  });

  it('a user connected on both nodes counts once: userJoined for the first connection, userLeft after the last', async () => {
    const r = room('two-tabs');
    const alice = await member(c.B.url, 'alice', 'Alice', r);
    const tab1 = await member(c.A.url, 'bob', 'Bob', r);
    await alice.rec.next('userJoined', { filter: byUser('bob'), timeout: CROSS_MS });
    const tab2 = await member(c.B.url, 'bob', 'Bob', r);
    assert.deepEqual(sorted(tab2.members), [person('alice', 'Alice'), person('bob', 'Bob')], 'bob listed once');
    const carol = await member(c.A.url, 'carol', 'Carol', r);
    assert.deepEqual(sorted(carol.members).map((m) => m.userId), ['alice', 'bob', 'carol']);
    for (const api of [c.apiA, c.apiB]) {
      assert.deepEqual(sorted((await api.presence(r)).json.members).map((m) => m.userId), ['alice', 'bob', 'carol']);
    }

    await request(tab1.s, 'leaveRoom', r); // bob is still in the room on B
    await sleep(QUIET_MS);
    assertCount(alice, 'userLeft', byUser('bob'), 0, 'bob still has a connection on B');
    assertCount(carol, 'userLeft', byUser('bob'), 0, 'bob still has a connection on B');

    tab2.s.close(); // the last connection anywhere
    for (const u of [alice, carol]) await u.rec.next('userLeft', { filter: byUser('bob'), timeout: CROSS_MS });
    await sleep(QUIET_MS);
    assertCount(alice, 'userJoined', byUser('bob'), 1, 'one userJoined for two connections');
    assertCount(alice, 'userLeft', byUser('bob'), 1, 'one userLeft for two connections');
    assertCount(carol, 'userLeft', byUser('bob'), 1, 'one userLeft for two connections');
  });

  it('signal reaches a user on the other node only while they share a room; else NOT_REACHABLE', async () => {
    const r = room('signal');
    const alice = await member(c.A.url, 'alice', 'Alice', r);
    const bob = await member(c.B.url, 'bob', 'Bob', r);
    const bobPhone = await member(c.A.url, 'bob', 'Bob'); // bob's second device, on A, in no room
    const carol = await member(c.B.url, 'carol', 'Carol', room('elsewhere'));

    const data = { type: 'offer', sdp: 'v=0\r\n', n: 1 };
    await request(alice.s, 'signal', { toUserId: 'bob', data });
    const expected = { fromUserId: 'alice', fromUsername: 'Alice', data };
    assert.deepEqual((await bob.rec.next('signal', { timeout: CROSS_MS }))[0], expected, 'on B');
    assert.deepEqual((await bobPhone.rec.next('signal', { timeout: CROSS_MS }))[0], expected, 'on A');
    await request(bob.s, 'signal', { toUserId: 'alice', data: 'answer' });
    assert.deepEqual((await alice.rec.next('signal', { timeout: CROSS_MS }))[0],
      { fromUserId: 'bob', fromUsername: 'Bob', data: 'answer' }, 'B to A');

    await expectError(request(alice.s, 'signal', { toUserId: 'carol', data: 'x' }), 'NOT_REACHABLE', 'no shared room');
    await expectError(request(carol.s, 'signal', { toUserId: 'alice', data: 'x' }), 'NOT_REACHABLE', 'no shared room, B to A');
    await request(bob.s, 'leaveRoom', r);
    await expectError(request(alice.s, 'signal', { toUserId: 'bob', data: 'x' }), 'NOT_REACHABLE', 'after bob left');
    await sleep(QUIET_MS);
    assertCount(bob, 'signal', null, 1, 'once');
    assertCount(bobPhone, 'signal', null, 1, 'once');
    assertCount(carol, 'signal', null, 0, 'not reachable');
    assertCount(alice, 'signal', byFrom('alice'), 0, 'not to the sender');
  });

  it('an API publish on either node reaches Socket.IO and SSE clients on both nodes exactly once', async () => {
    const r = room('api');
    const alice = await member(c.A.url, 'alice', 'Alice', r);
    const bob = await member(c.B.url, 'bob', 'Bob', r);
    const sseA = await sseClient(eventsUrl(c.A.url, { rooms: r }), { token: token('sa') });
    const sseB = await sseClient(eventsUrl(c.B.url, { rooms: r }), { token: token('sb') });

    const sent = [];
    for (const [api, text] of [[c.apiA, 'api on A'], [c.apiB, 'api on B']]) {
      const res = await api.publish(r, { text, userId: 'bot', username: 'Bot' });
      assert.equal(res.status, 200, res.text);
      sent.push([text, res.json.id]);
    }
    const ack = await request(alice.s, 'sendMessage', { roomId: r, text: 'socket on A' });
    sent.push(['socket on A', ack.id]);

    for (const [text, id] of sent) {
      for (const m of await receivedBy([alice, bob], text)) assert.equal(m.id, id, text);
      for (const sse of [sseA, sseB]) {
        const ev = await sse.log.next('message', { filter: isText(text), timeout: CROSS_MS });
        assert.equal(ev.data.id, id, text);
        assert.equal(ev.id, id, `${text}: the SSE event id is the message id`);
      }
    }
    assertMessage(alice.rec.all('message', isText('api on B'))[0][0],
      { roomId: r, text: 'api on B', userId: 'bot', username: 'Bot' });
    await sleep(QUIET_MS);
    for (const [text] of sent) {
      for (const u of [alice, bob]) assertCount(u, 'message', isText(text), 1, text);
      for (const sse of [sseA, sseB]) assert.equal(sse.log.all('message', isText(text)).length, 1, `${text} once on SSE`);
    }
  });

  it("an API notification on A reaches the user's Socket.IO and SSE connections on both nodes", async () => {
    const nina = await member(c.B.url, 'nina', 'Nina');
    const ninaSse = await sseClient(eventsUrl(c.A.url), { token: token('nina'), events: ['invoice.paid'] });
    const oscar = await member(c.B.url, 'oscar', 'Oscar');
    const data = { title: 'Build finished', n: 1 };
    assert.equal((await c.apiA.notify('nina', { data })).status, 200);
    assert.deepEqual((await nina.rec.next('notification', { timeout: CROSS_MS }))[0], data, 'socket on B');
    assert.deepEqual((await ninaSse.log.next('notification', { timeout: CROSS_MS })).data, data, 'SSE on A');
    assert.equal((await c.apiB.notify('nina', { event: 'invoice.paid', data: 'INV-7' })).status, 200);
    assert.equal((await nina.rec.next('invoice.paid', { timeout: CROSS_MS }))[0], 'INV-7');
    assert.equal((await ninaSse.log.next('invoice.paid', { timeout: CROSS_MS })).data, 'INV-7');
    await sleep(QUIET_MS);
    assertCount(nina, 'notification', null, 1, 'once');
    assert.equal(ninaSse.log.all('notification').length, 1, 'once on SSE');
    assertCount(oscar, 'notification', null, 0, 'only nina');
  });

  it('getHistory on B returns the messages sent through A (and through the API on B)', async () => {
    const r = room('history');
    const alice = await member(c.A.url, 'alice', 'Alice', r);
    for (const text of ['h1', 'h2', 'h3']) await request(alice.s, 'sendMessage', { roomId: r, text });
    assert.equal((await c.apiB.publish(r, { text: 'h4' })).status, 200);
    const sent = (await alice.rec.count('message', 4, { timeout: CROSS_MS })).map(([m]) => m);
    assert.deepEqual(sent.map((m) => m.text), ['h1', 'h2', 'h3', 'h4']);

    const bob = await member(c.B.url, 'bob', 'Bob', r);
    assert.deepEqual((await request(bob.s, 'getHistory', { roomId: r })).messages, sent, 'on B');
    assert.deepEqual((await request(alice.s, 'getHistory', { roomId: r })).messages, sent, 'on A');
    assert.deepEqual((await request(bob.s, 'getHistory', { roomId: r, limit: 2 })).messages, sent.slice(2));
    assert.deepEqual((await request(bob.s, 'getHistory', { roomId: r, before: sent[2].id })).messages, sent.slice(0, 2));
  });

  it(`history in Redis keeps the newest ${HISTORY_LIMIT} messages of a room, like a single node`, async () => {
    const r = room('cap');
    for (let i = 0; i < 10; i++) assert.equal((await c.apiA.publish(r, { text: `old ${i}` })).status, 200);
    let n = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (n < HISTORY_LIMIT) {
        const res = await c.apiA.publish(r, { text: `new ${n++}` });
        assert.equal(res.status, 200, res.text);
      }
    }));
    const bob = await member(c.B.url, 'bob', 'Bob', r);
    const all = await fullHistory(bob, r);
    assert.equal(all.length, HISTORY_LIMIT, `history length on B: ${all.length}`);
    assert.equal(all.filter((m) => m.text.startsWith('old ')).length, 0, 'the oldest were dropped');
    assert.equal(new Set(all.map((m) => m.text)).size, HISTORY_LIMIT, 'every newer message once');
  });

  it('a long-polling request with a sid from the other node gets HTTP 400 "Session ID unknown" at once', async () => {
    const hs = await pollingHandshake(c.A.url);
    assert.equal(hs.status, 200, hs.body);
    for (const method of ['GET', 'POST']) {
      const res = await fetch(pollingUrl(c.B.url, hs.sid), {
        method, body: method === 'POST' ? '40' : undefined, signal: AbortSignal.timeout(5000),
      });
      assert.equal(res.status, 400, `${method} on B`);
      assert.deepEqual(await res.json(), { code: 1, message: 'Session ID unknown' }, `${method} on B`);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe(onRedis('a node killed with SIGKILL (three nodes, heartbeat 500 ms)'), () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await sharedRedis();
    nodes = await startNodes(redis, 3);
    await settle(nodes.map((n) => n.url));
  });
  after(async () => { closeAll(); await stopNodes(nodes); });

  it("the surviving nodes emit userLeft for the dead node's users within 3 heartbeats", async () => {
    const [A, B, C] = nodes;
    const r = room('reap');
    const r2 = room('reap-2');
    const alice = await member(A.url, 'alice', 'Alice', r);
    await join(alice, r2);
    const carol = await member(C.url, 'carol', 'Carol', r);
    const bob = await member(B.url, 'bob', 'Bob', r);
    await join(bob, r2);
    await member(B.url, 'erin', 'Erin', r); // erin is also connected on C
    const erinC = await member(C.url, 'erin', 'Erin', r);
    await alice.rec.next('userJoined', { filter: byUser('bob'), timeout: CROSS_MS });

    const t0 = Date.now();
    B.proc.kill('SIGKILL');
    await B.exitPromise;
    const left = (u, roomId) => u.rec.next('userLeft', {
      filter: (e) => e.userId === 'bob' && e.roomId === roomId,
      timeout: Math.max(1, REAP_WAIT_MS - (Date.now() - t0)),
    });
    assert.deepEqual((await left(alice, r))[0], { roomId: r, userId: 'bob', username: 'Bob' });
    await left(carol, r);
    await left(alice, r2);
    await sleep(QUIET_MS);
    assertCount(alice, 'userLeft', byUser('bob'), 2, 'once per room');
    assertCount(carol, 'userLeft', byUser('bob'), 1, 'once');
    assertCount(alice, 'userLeft', byUser('erin'), 0, 'erin is still connected on C');
    assert.equal(erinC.s.connected, true);

    const dave = await member(A.url, 'dave', 'Dave', r);
    assert.deepEqual(sorted(dave.members).map((m) => m.userId), ['alice', 'carol', 'dave', 'erin']);
    await request(alice.s, 'sendMessage', { roomId: r, text: 'still one cluster' });
    await receivedBy([carol, erinC, dave], 'still one cluster');
  });
});

// ---------------------------------------------------------------------------------------------

describe(onRedis('a Redis outage and restart (two nodes)'), () => {
  const c = {};
  let r;
  let users;
  before(async () => {
    // Its own set-up: it takes Redis away, and what a restart leaves must not leak into the
    // blocks after it.
    c.redis = await startRedisForTest();
    [c.A, c.B] = await startNodes(c.redis, 2);
    await settle([c.A.url, c.B.url]);
    r = room('outage');
    users = {
      alice: await member(c.A.url, 'alice', 'Alice', r),
      carol: await member(c.A.url, 'carol', 'Carol', r),
      bob: await member(c.B.url, 'bob', 'Bob', r),
      dave: await member(c.B.url, 'dave', 'Dave', r),
    };
  });
  after(async () => {
    closeAll();
    await stopNodes([c.A, c.B]);
    if (c.redis) await c.redis.close();
  });

  const assertAllConnected = (when) => {
    for (const [name, u] of Object.entries(users)) {
      assert.deepEqual(u.disconnects, [], `${name} was disconnected ${when}`);
      assert.equal(u.s.connected, true, `${name} is connected ${when}`);
    }
  };

  it('/metrics shows switchboard_redis_connected 1 while Redis is up', async () => {
    await waitRedisConnected([c.A, c.B], 1);
  });

  it('with Redis stopped, /metrics shows 0, each node still delivers locally and no client is disconnected', async () => {
    await c.redis.stop();
    await waitRedisConnected([c.A, c.B], 0);
    const { alice, carol, bob, dave } = users;
    alice.s.emit('sendMessage', { roomId: r, text: 'outage on A' }, () => {});
    await receivedBy([alice, carol], 'outage on A');
    bob.s.emit('sendMessage', { roomId: r, text: 'outage on B' }, () => {});
    await receivedBy([bob, dave], 'outage on B');
    await sleep(2000);
    assertAllConnected('during the outage');
  });

  it('after Redis restarts on the same port, messages cross nodes again without restarting the engines', async () => {
    if (!c.redis.running) await c.redis.restart();
    const pids = [c.A.pid, c.B.pid];
    await waitRedisConnected([c.A, c.B], 1, 15000);
    const { alice, carol, bob, dave } = users;
    await untilCrossing(alice, r, [bob, dave], 'a message from A reaches B after the restart');
    await untilCrossing(bob, r, [alice, carol], 'a message from B reaches A after the restart');
    await request(alice.s, 'sendMessage', { roomId: r, text: 'healed' });
    await receivedBy([alice, carol, bob, dave], 'healed');
    await sleep(QUIET_MS);
    for (const u of Object.values(users)) assertCount(u, 'message', isText('healed'), 1, 'after the restart');
    assert.deepEqual([c.A.pid, c.B.pid], pids);
    assert.equal(c.A.exited || c.B.exited, false, 'the engines kept running');
    assertAllConnected('after the restart');
  });

  it('after the restart, a new member on B sees the users connected on A (presence rebuilt)', async () => {
    const api = apiClient(c.B.url, API_KEY);
    await until(async () => {
      const p = await api.presence(r);
      return p.status === 200 && sorted(p.json.members).map((m) => m.userId).join() === 'alice,bob,carol,dave';
    }, 'the presence API on B lists alice, bob, carol and dave');
    const erin = await member(c.B.url, 'erin', 'Erin', r);
    assert.deepEqual(sorted(erin.members).map((m) => m.userId), ['alice', 'bob', 'carol', 'dave', 'erin']);
  });
});

// ---------------------------------------------------------------------------------------------

describe(onRedis('a Fastify app with the plugin (redisUrl) and switchboard serve form one cluster'), () => {
  let redis;
  let serve;
  let app;
  before(async () => {
    redis = await sharedRedis();
    serve = await startServer(nodeOptions(redis.url));
    app = await startApp({ redisUrl: redis.url, presenceGrace: 200 });
    await settle([app.url, serve.url]);
  });
  after(async () => {
    closeAll();
    if (app) await app.close();
    await closeApps();
    await stopNodes([serve]);
  });

  it('presence, messages, history and notifyUser cross between the app and the standalone server', async () => {
    const r = room('fastify');
    const alice = await member(app.url, 'alice', 'Alice', r);
    const bob = await member(serve.url, 'bob', 'Bob', r);
    assert.deepEqual(sorted(bob.members), [person('alice', 'Alice'), person('bob', 'Bob')]);
    await alice.rec.next('userJoined', { filter: byUser('bob'), timeout: CROSS_MS });

    const ack = await request(alice.s, 'sendMessage', { roomId: r, text: 'from fastify' });
    const [m] = await receivedBy([bob], 'from fastify');
    assertMessage(m, { roomId: r, text: 'from fastify', userId: 'alice', username: 'Alice' });
    assert.equal(m.id, ack.id);
    await request(bob.s, 'sendMessage', { roomId: r, text: 'from serve' });
    await receivedBy([alice], 'from serve');
    const history = await request(bob.s, 'getHistory', { roomId: r });
    assert.deepEqual(history.messages.map((x) => x.text), ['from fastify', 'from serve']);

    app.engine.notifyUser('bob', { hello: 'from the app' });
    assert.deepEqual((await bob.rec.next('notification', { timeout: CROSS_MS }))[0], { hello: 'from the app' });

    await request(bob.s, 'leaveRoom', r);
    await alice.rec.next('userLeft', { filter: byUser('bob'), timeout: CROSS_MS });
    await sleep(QUIET_MS);
    for (const u of [alice, bob]) {
      assertCount(u, 'message', isText('from fastify'), 1, 'once');
      assertCount(u, 'message', isText('from serve'), 1, 'once');
    }
    assertCount(bob, 'notification', null, 1, 'once');
  });
});
