'use strict';
// Issue 20, step 5: `engine.disconnectUser(id)` reaches every connection of the user, whatever
// its transport — a Socket.IO client (`io server disconnect`), an EventSource (its stream
// ends) and a y-websocket provider (close 4410 `Disconnected by the server`) — and returns how
// many there were on this node; on two nodes sharing Redis, a node's call reaches the other
// node's connections too, its document connections included. Other users keep theirs.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');

const { startApp, closeApps } = require('../helpers/fastify');
const { startRedisForTest, onRedis } = require('../helpers/redis-setup');
const { startAppPair } = require('../helpers/cluster');
const { token } = require('../helpers/tokens');
const { userSocket, closeAll, once, noEvent, sleep } = require('../helpers/client');
const { sseClient, closeAllStreams, eventsUrl } = require('../helpers/sse');

const WAIT_MS = 5000;

const providers = new Set();

/** A synced y-websocket provider of `sub` for `doc` on `url`. */
async function provider(url, sub, doc) {
  const p = new WebsocketProvider(`${url.replace(/^http/, 'ws')}/yjs`, doc, new Y.Doc(), {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    params: { token: token(sub) },
  });
  providers.add(p);
  p.closes = [];
  p.on('connection-close', (e) => { if (e) p.closes.push({ code: e.code, reason: e.reason }); });
  await once(p, 'sync', WAIT_MS);
  return p;
}

/** Resolves the provider's next close (code and reason), within `ms`. */
async function nextClose(p, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (p.closes.length === 0) {
    if (Date.now() > deadline) throw new Error(`no close within ${ms} ms`);
    await sleep(10);
  }
  return p.closes.shift();
}

/** Resolves once the EventSource's stream has ended (its `error` event), within `ms`. */
async function streamEnded(sse, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (sse.errors.length === 0) {
    if (Date.now() > deadline) throw new Error(`the stream did not end within ${ms} ms`);
    await sleep(10);
  }
}

function cleanup() {
  for (const p of providers) { p.destroy(); p.doc.destroy(); }
  providers.clear();
  closeAll();
  closeAllStreams();
}

describe('disconnectUser on one node', () => {
  let srv;
  before(async () => { srv = await startApp(); });
  afterEach(cleanup);
  after(closeApps);

  it('closes the user\'s Socket.IO, SSE and Yjs connections at once and returns 3', { timeout: 15000 }, async () => {
    const s = await userSocket(srv.url, 'erin');
    const sse = await sseClient(eventsUrl(srv.url), { token: token('erin') });
    const doc = await provider(srv.url, 'erin', 'kick-doc');
    const bob = await userSocket(srv.url, 'bob');
    const bobDoc = await provider(srv.url, 'bob', 'kick-doc');
    const gone = once(s, 'disconnect', WAIT_MS);
    const bobStays = noEvent(bob, 'disconnect', 500);

    assert.equal(srv.engine.disconnectUser('erin'), 3);

    assert.equal((await gone)[0], 'io server disconnect');
    await streamEnded(sse);
    assert.deepEqual(await nextClose(doc), { code: 4410, reason: 'Disconnected by the server' });
    await bobStays;
    assert.equal(bob.connected, true);
    assert.deepEqual(bobDoc.closes, [], 'the other user\'s document connection stays');
    assert.equal(srv.engine.disconnectUser('nobody'), 0);
  });
});

describe(onRedis('disconnectUser on two nodes sharing Redis'), () => {
  let redis;
  let A;
  let B;
  before(async () => {
    redis = await startRedisForTest();
    [A, B] = await startAppPair(redis);
  });
  afterEach(cleanup);
  after(async () => {
    await closeApps();
    if (redis) await redis.close();
  });

  it('a call on one node closes the user\'s connections on the other, documents included', { timeout: 20000 }, async () => {
    const s = await userSocket(B.url, 'frank');
    const sse = await sseClient(eventsUrl(B.url), { token: token('frank') });
    const doc = await provider(B.url, 'frank', 'cluster-kick-doc');
    const gone = once(s, 'disconnect', WAIT_MS);

    // None of them is on A: it counts 0 there and asks B.
    assert.equal(A.engine.disconnectUser('frank'), 0);

    assert.equal((await gone)[0], 'io server disconnect');
    await streamEnded(sse);
    assert.deepEqual(await nextClose(doc), { code: 4410, reason: 'Disconnected by the server' });
  });

  it('a user with only a document connection on the other node is reached too', { timeout: 20000 }, async () => {
    const doc = await provider(B.url, 'grace', 'cluster-kick-doc-2');
    assert.equal(A.engine.disconnectUser('grace'), 0);
    assert.deepEqual(await nextClose(doc), { code: 4410, reason: 'Disconnected by the server' });
  });
});
