'use strict';
// Issue 9 item 4: Yjs documents across the nodes of a cluster. Two `switchboard serve` nodes
// on one real redis-server; unmodified `yjs` 13.6 + `y-websocket` 3.x providers (the `ws`
// package as WebSocket, BroadcastChannel off, so everything a provider learns came through
// its server node). Documents live in Redis: no node has a --data-dir.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');
const { startRedisForTest, onRedis } = require('../helpers/redis-setup');
const { startNodes, stopNodes, until, waitRedisConnected, EVENTUAL_MS } = require('../helpers/cluster');
const { token } = require('../helpers/tokens');

// Each provider listens for the process' exit; this file makes more than ten.
process.setMaxListeners(100);

const CROSS_MS = 5000; // one change crossing nodes
const alice = token('alice', { username: 'Alice' });
const bob = token('bob', { username: 'Bob' });
const carol = token('carol', { username: 'Carol' });

/** Every provider made here, destroyed in `after`. */
const providers = new Set();

function provider(url, doc, tok) {
  const p = new WebsocketProvider(`${url.replace(/^http/, 'ws')}/yjs`, doc, new Y.Doc(), {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    params: { token: tok },
  });
  providers.add(p);
  return p;
}

function destroy(p) {
  providers.delete(p);
  p.destroy();
  p.doc.destroy();
}

function synced(p) {
  if (p.synced) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider for ${p.roomname} did not sync`)), EVENTUAL_MS);
    p.once('sync', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const text = (p) => p.doc.getText('t').toString();

let docSeq = 0;
const docName = (base) => `${base}-${process.pid}-${++docSeq}`;

describe(onRedis('Yjs across two nodes through Redis'), () => {
  let redis;
  let A;
  let B;

  before(async () => {
    redis = await startRedisForTest();
    [A, B] = await startNodes(redis, 2);
  });

  after(async () => {
    for (const p of [...providers]) destroy(p);
    await stopNodes([A, B]);
    if (redis) await redis.close();
  });

  test('providers on two nodes make concurrent edits and converge', async () => {
    const name = docName('converge');
    const a = provider(A.url, name, alice);
    const b = provider(B.url, name, bob);
    await Promise.all([synced(a), synced(b)]);
    // Concurrent: both edit before either hears of the other's edit.
    a.doc.getText('t').insert(0, 'hello ');
    b.doc.getText('t').insert(0, 'world');
    a.doc.getText('t').insert(6, 'big ');
    await until(() => text(a).length === 15 && text(a) === text(b), 'both texts converge', CROSS_MS);
    for (const part of ['hello ', 'big ', 'world']) assert.ok(text(a).includes(part), text(a));
    b.doc.getText('t').delete(0, text(b).length);
    await until(() => text(a) === '', 'the deletion reaches node A', CROSS_MS);
    destroy(a);
    destroy(b);
  });

  test('awareness crosses nodes, and leaves with its provider', async () => {
    const name = docName('awareness');
    const a = provider(A.url, name, alice);
    const b = provider(B.url, name, bob);
    await Promise.all([synced(a), synced(b)]);
    a.awareness.setLocalStateField('user', { name: 'Alice' });
    const id = a.doc.clientID;
    await until(() => b.awareness.getStates().get(id)?.user?.name === 'Alice', "Alice's awareness at Bob on B", CROSS_MS);
    // A provider joining on B later gets the states of A's clients too.
    const c = provider(B.url, name, carol);
    await synced(c);
    await until(() => c.awareness.getStates().get(id)?.user?.name === 'Alice', "Alice's awareness at a later provider on B", CROSS_MS);
    // A crash, as node A sees it: the socket goes away without a goodbye.
    a.shouldConnect = false;
    a.ws.terminate();
    await until(() => !b.awareness.getStates().has(id) && !c.awareness.getStates().has(id),
      "Alice's awareness disappears on B", CROSS_MS);
    destroy(a);
    destroy(b);
    destroy(c);
  });

  test('a provider joining late on the other node gets the full text, stored or not yet', async () => {
    const name = docName('late');
    const a = provider(A.url, name, alice);
    await synced(a);
    const t = a.doc.getText('t');
    t.insert(0, 'The quick brown fox');
    t.insert(t.length, ' jumps over the lazy dog');
    t.delete(4, 6); // "quick "
    const expected = 'The brown fox jumps over the lazy dog';
    // Right away: node B has never loaded the document and A has not stored it yet (stores
    // are debounced by 2 s), so B learns it from A.
    const b = provider(B.url, name, bob);
    await synced(b);
    await until(() => text(b) === expected, 'the text at the first provider on B', CROSS_MS);
    const c = provider(B.url, name, carol);
    await synced(c);
    await until(() => text(c) === expected, 'the text at a third provider on B', CROSS_MS);
    t.insert(0, '> ');
    await until(() => text(b) === `> ${expected}` && text(c) === `> ${expected}`, 'a later edit at both providers on B', CROSS_MS);
    for (const p of [a, b, c]) destroy(p);
  });

  test('the text survives restarting both nodes (stored in Redis, no data directory)', async () => {
    const name = docName('restart');
    const a = provider(A.url, name, alice);
    const b = provider(B.url, name, bob);
    await Promise.all([synced(a), synced(b)]);
    a.doc.getText('t').insert(0, 'from A. ');
    b.doc.getText('t').insert(0, 'from B. ');
    await until(() => text(a).length === 16 && text(a) === text(b), 'the edits converge', CROSS_MS);
    const expected = text(a);
    destroy(a);
    destroy(b);
    // SIGTERM: each node stores what is unstored before it exits.
    await stopNodes([A, B]);
    [A, B] = await startNodes(redis, 2);
    for (const url of [A.url, B.url]) {
      const p = provider(url, name, carol);
      await synced(p);
      assert.equal(text(p), expected, `the text after the restart on ${url}`);
      destroy(p);
    }
  });

  test('edits made on both nodes while Redis is down converge once it is back, and are stored', async () => {
    const name = docName('outage');
    const a = provider(A.url, name, alice);
    const b = provider(B.url, name, bob);
    await Promise.all([synced(a), synced(b)]);
    a.doc.getText('t').insert(0, 'before. ');
    await until(() => text(b) === 'before. ', 'the first edit reaches B', CROSS_MS);

    await redis.stop();
    await waitRedisConnected([A, B], 0);
    a.doc.getText('t').insert(text(a).length, 'A while down. ');
    b.doc.getText('t').insert(0, 'B while down. ');
    b.doc.getText('t').delete(text(b).indexOf('before. '), 'before. '.length);
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(!text(b).includes('A while down'), 'nothing crossed while Redis was down');
    assert.equal(a.wsconnected && b.wsconnected, true, 'providers stay connected during the outage');

    // Redis restarts empty (no persistence): the nodes store their documents again.
    await redis.restart();
    await waitRedisConnected([A, B], 1, 15000);
    await until(() => text(a) === text(b) && text(a).includes('A while down') && text(a).includes('B while down'),
      'the edits made while apart converge', EVENTUAL_MS);
    assert.ok(!text(a).includes('before.'), `the deletion made while apart holds: ${text(a)}`);
    // And the cluster keeps working afterwards.
    b.doc.getText('t').insert(0, 'after. ');
    await until(() => text(a).startsWith('after. '), 'an edit after the outage reaches A', CROSS_MS);
    const expected = text(a);
    destroy(a);
    destroy(b);
    await stopNodes([A, B]);
    [A, B] = await startNodes(redis, 2);
    const p = provider(B.url, name, carol);
    await synced(p);
    assert.equal(text(p), expected, 'the text was stored again in the restarted Redis');
    destroy(p);
  });
});
