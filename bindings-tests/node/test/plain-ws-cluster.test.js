'use strict';
// Issue 23 across a cluster: plain-WebSocket (`/ws`) members on one node and Socket.IO members
// on another share a room through Redis (messages and presence cross nodes exactly once), and
// a /ws client that drops off one node resumes through the other with what it missed.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { startRedisForTest, onRedis } = require('../helpers/redis-setup');
const { token } = require('../helpers/tokens');
const { closeAll, request } = require('../helpers/client');
const { startNodes, stopNodes, settle, member, QUIET_MS } = require('../helpers/cluster');
const { wsReady, closeAllWs, sleep } = require('../helpers/plainws');

let roomSeq = 0;
const room = (prefix = 'room') => `${prefix}-${++roomSeq}-${Date.now().toString(36)}`;

describe(onRedis('/ws across two nodes with Redis'), () => {
  let redis;
  let A;
  let B;
  before(async () => {
    redis = await startRedisForTest();
    [A, B] = await startNodes(redis, 2);
    await settle([A.url, B.url]);
  });
  after(async () => {
    closeAllWs();
    closeAll();
    await stopNodes([A, B]);
    if (redis) await redis.close();
  });
  afterEach(() => { closeAllWs(); closeAll(); });

  it('a /ws member on A and a Socket.IO member on B see each other, once', { timeout: 30000 }, async () => {
    const r = room('cross');
    const sio = await member(B.url, 'sio-b', 'SioB', r);
    const ws = await wsReady(A.url, token('ws-a', { username: 'WsA' }));
    await ws.request('joinRoom', r);
    const members = (await ws.event('roomMembers', () => true, 5000)).data.members.map((m) => m.userId).sort();
    assert.deepEqual(members, ['sio-b', 'ws-a']);
    const [joined] = await sio.rec.next('userJoined', { filter: (e) => e.userId === 'ws-a', timeout: 5000 });
    assert.equal(joined.roomId, r);

    await ws.request('sendMessage', { roomId: r, text: 'from A' });
    const [m] = await sio.rec.next('message', { filter: (x) => x.text === 'from A', timeout: 5000 });
    assert.equal(m.userId, 'ws-a');
    await request(sio.s, 'sendMessage', { roomId: r, text: 'from B' });
    const got = await ws.event('message', (x) => x.text === 'from B', 5000);
    assert.equal(got.data.userId, 'sio-b');
    assert.equal(typeof got.offset, 'string');
    await sleep(QUIET_MS);
    const copies = ws.frames.filter((f) => f.type === 'event' && f.event === 'message' && f.data.text === 'from B');
    assert.equal(copies.length, 1, 'delivered once');

    ws.close();
    const [left] = await sio.rec.next('userLeft', { filter: (e) => e.userId === 'ws-a', timeout: 8000 });
    assert.equal(left.roomId, r);
  });

  it('a /ws client dropped on A resumes through B with what it missed', { timeout: 30000 }, async () => {
    const r = room('resume');
    const tok = token('roamer');
    const sio = await member(B.url, 'sender', 'Sender', r);
    const a = await wsReady(A.url, tok);
    await a.request('joinRoom', r);
    await request(sio.s, 'sendMessage', { roomId: r, text: 'seen' });
    const seen = await a.event('message', (x) => x.text === 'seen', 5000);
    a.terminate();
    await a.closed;
    await sleep(300);
    for (let i = 0; i < 3; i++) await request(sio.s, 'sendMessage', { roomId: r, text: `missed ${i}` });
    await sleep(300);
    const b = await wsReady(B.url, tok, { sessionId: a.ready.sessionId, offset: seen.offset });
    assert.equal(b.ready.resumed, true);
    assert.equal(b.ready.sessionId, a.ready.sessionId);
    const texts = [];
    for (let i = 0; i < 3; i++) texts.push((await b.event('message', () => true, 5000)).data.text);
    assert.deepEqual(texts, ['missed 0', 'missed 1', 'missed 2']);
    await request(sio.s, 'sendMessage', { roomId: r, text: 'live' });
    await b.event('message', (x) => x.text === 'live', 5000);
    await sleep(QUIET_MS);
    const all = b.frames.filter((f) => f.type === 'event' && f.event === 'message').map((f) => f.data.text);
    assert.deepEqual(all, ['missed 0', 'missed 1', 'missed 2', 'live'], 'each once, in order');
  });
});
