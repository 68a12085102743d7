'use strict';
// Issue 23: the chat contract as JSON frames over a plain WebSocket at `/ws`, through the
// `ws` npm client: authentication three ways and its refusals, every request and its
// errors, events shared with Socket.IO and SSE members of one room, resume after a dropped
// connection (missed events exactly once, the fresh-session cases), a slow reader cut off,
// hostile input, and the endpoint turned off.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { startServer } = require('../helpers/server');
const { token, expiredToken, wrongSecretToken } = require('../helpers/tokens');
const { userSocket, recorder, request, closeAll } = require('../helpers/client');
const { sseClient, eventsUrl, closeAllStreams } = require('../helpers/sse');
const { wsUrl, wsClient, wsReady, closeAllWs, sleep } = require('../helpers/plainws');

let roomSeq = 0;
const room = (prefix = 'room') => `${prefix}-${++roomSeq}-${Date.now().toString(36)}`;

/** Resolves `{code, reason}` once `client` is closed, or rejects after `ms`. */
function closedWithin(client, ms = 5000) {
  return Promise.race([
    client.closed,
    sleep(ms).then(() => { throw new Error(`not closed within ${ms} ms`); }),
  ]);
}

/** Asserts no frame matching `filter` arrives within `ms`. */
async function noFrame(client, filter, ms = 400) {
  await sleep(ms);
  const found = client.frames.filter((m) => !m.taken && filter(m));
  assert.deepEqual(found, [], 'unexpected frames');
}

describe('plain WebSocket /ws', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--connect-timeout', '1500', '--presence-grace', '100', '--rate-limit', '0'] });
  });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllWs(); closeAll(); closeAllStreams(); });

  describe('authentication', () => {
    it('accepts the token three ways and answers ready', async () => {
      const byQuery = wsClient(wsUrl(srv.url, { token: token('alice', { username: 'Alice' }) }));
      const byHeader = wsClient(wsUrl(srv.url), { headers: { Authorization: `Bearer ${token('bob')}` } });
      const byFrame = wsClient(wsUrl(srv.url));
      await byFrame.opened;
      byFrame.send({ type: 'auth', token: token('carol', { username: 'Carol' }) });
      const ready = await Promise.all([byQuery, byHeader, byFrame].map((c) => c.next('ready')));
      assert.deepEqual(ready.map((r) => [r.userId, r.username, r.resumed]),
        [['alice', 'Alice', false], ['bob', 'bob', false], ['carol', 'Carol', false]]);
      for (const r of ready) {
        assert.deepEqual(Object.keys(r).filter((k) => k !== 'taken').sort(),
          ['offset', 'resumed', 'sessionId', 'type', 'userId', 'username']);
        assert.equal(typeof r.sessionId, 'string');
        assert.ok(r.offset === null || typeof r.offset === 'string');
      }
      assert.notEqual(ready[0].sessionId, ready[2].sessionId);
    });

    for (const [what, tok, message] of [
      ['a bad token', 'not-a-jwt', 'Invalid token'],
      ['a token of another secret', wrongSecretToken(), 'Invalid token'],
      ['an expired token', expiredToken(), 'Token expired'],
    ]) {
      it(`refuses ${what} with Socket.IO's text and 4401, each way`, async () => {
        const byQuery = wsClient(wsUrl(srv.url, { token: tok }));
        const byHeader = wsClient(wsUrl(srv.url), { headers: { Authorization: `Bearer ${tok}` } });
        const byFrame = wsClient(wsUrl(srv.url));
        await byFrame.opened;
        byFrame.send({ type: 'auth', token: tok });
        for (const c of [byQuery, byHeader, byFrame]) {
          const e = await c.next('error');
          assert.deepEqual({ code: e.code, message: e.message }, { code: 'UNAUTHORIZED', message });
          assert.equal((await closedWithin(c)).code, 4401);
          assert.ok(!c.frames.some((m) => m.type === 'ready'));
        }
      });
    }

    it('refuses an auth frame without a token, and requests before ready', async () => {
      const a = wsClient(wsUrl(srv.url));
      await a.opened;
      a.send({ type: 'auth' });
      assert.equal((await a.next('error')).message, 'Authentication required');
      assert.equal((await closedWithin(a)).code, 4401);
      const b = wsClient(wsUrl(srv.url));
      await b.opened;
      b.send({ type: 'request', id: 1, event: 'joinRoom', data: 'lobby' });
      assert.deepEqual(await b.next('error').then((e) => e.code), 'UNAUTHORIZED');
      assert.equal((await closedWithin(b)).code, 4401);
    });

    it('closes a connection that sends no auth frame within the connect timeout', async () => {
      const c = wsClient(wsUrl(srv.url));
      await c.opened;
      const e = await c.next('error', 4000);
      assert.deepEqual({ code: e.code, message: e.message }, { code: 'UNAUTHORIZED', message: 'Authentication required' });
      assert.equal((await closedWithin(c)).code, 4401);
    });
  });

  describe('requests', () => {
    it('answers every contract request, with the contract errors', async () => {
      const r = room();
      const alice = await wsReady(srv.url, token('alice', { username: 'Alice' }));
      const bob = await wsReady(srv.url, token('bob', { username: 'Bob' }));

      assert.deepEqual(await alice.request('joinRoom', r).then((m) => m.result), null);
      const members = await alice.event('roomMembers');
      assert.deepEqual(members.data, { roomId: r, members: [{ userId: 'alice', username: 'Alice' }] });
      assert.equal(members.offset, undefined, 'an event for this connection only has no offset');
      assert.equal((await alice.request('joinRoom', r)).result, null, 'joining twice is a no-op success');
      await bob.request('joinRoom', r);
      assert.deepEqual((await alice.event('userJoined')).data, { roomId: r, userId: 'bob', username: 'Bob' });

      const errorOf = async (c, event, data) => (await c.request(event, data)).error;
      assert.equal((await errorOf(alice, 'joinRoom', '')).code, 'INVALID_ROOM');
      assert.equal((await errorOf(alice, 'joinRoom', 42)).code, 'INVALID_ROOM');
      assert.equal((await errorOf(alice, 'joinRoom', 'user:bob')).code, 'ACCESS_DENIED');
      assert.equal((await errorOf(alice, 'sendMessage', { roomId: 'elsewhere', text: 'x' })).code, 'NOT_IN_ROOM');
      assert.equal((await errorOf(alice, 'sendMessage', { roomId: r, text: '' })).code, 'INVALID_MESSAGE');
      assert.equal((await errorOf(alice, 'sendMessage', { roomId: r, text: 'x'.repeat(4001) })).code, 'INVALID_MESSAGE');
      assert.equal((await errorOf(alice, 'getHistory', { roomId: 'elsewhere' })).code, 'NOT_IN_ROOM');
      assert.equal((await errorOf(alice, 'signal', { toUserId: 'nobody', data: {} })).code, 'NOT_REACHABLE');
      assert.equal((await errorOf(alice, 'connect', null)).code, 'INVALID_MESSAGE');

      const sent = (await alice.request('sendMessage', { roomId: r, text: 'hello' })).result;
      assert.deepEqual(Object.keys(sent).sort(), ['id', 'timestamp']);
      for (const c of [alice, bob]) {
        const m = await c.event('message');
        assert.equal(m.data.id, sent.id);
        assert.equal(m.data.text, 'hello');
        assert.equal(m.data.userId, 'alice');
        assert.equal(typeof m.offset, 'string', 'a room event carries its offset');
      }
      const history = (await bob.request('getHistory', { roomId: r })).result;
      assert.deepEqual(history.messages.map((m) => m.text), ['hello']);

      await alice.request('startTyping', r);
      assert.deepEqual((await bob.event('typing')).data, { roomId: r, userId: 'alice', username: 'Alice', isTyping: true });
      await alice.request('stopTyping', r);
      assert.equal((await bob.event('typing')).data.isTyping, false);

      assert.equal((await alice.request('signal', { toUserId: 'bob', data: { sdp: 'x' } })).result, null);
      assert.deepEqual((await bob.event('signal')).data, { fromUserId: 'alice', fromUsername: 'Alice', data: { sdp: 'x' } });

      const refreshed = (await alice.request('refreshToken', token('alice', { username: 'Alice' }))).result;
      assert.equal(typeof refreshed.expiresAt, 'number');
      assert.equal((await alice.request('refreshToken', token('mallory'))).error.code, 'ACCESS_DENIED');

      assert.equal((await bob.request('leaveRoom', r)).result, null);
      assert.deepEqual((await alice.event('userLeft')).data, { roomId: r, userId: 'bob', username: 'Bob' });
    });

    it('a request without an id gets no reply; its failure comes as an error event', async () => {
      const c = await wsReady(srv.url, token('dave'));
      c.send({ type: 'request', event: 'sendMessage', data: { roomId: 'nowhere', text: 'x' } });
      const e = await c.event('error');
      assert.equal(e.data.code, 'NOT_IN_ROOM');
      await noFrame(c, (m) => m.type === 'reply');
    });
  });

  describe('mixed rooms', () => {
    it('Socket.IO, SSE and /ws members of one room see each other', async () => {
      const r = room('mixed');
      const sio = await userSocket(srv.url, 'sio-user', { username: 'Sio' });
      const sioRec = recorder(sio);
      await request(sio, 'joinRoom', r);
      const sse = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('sse-user') });
      const ws = await wsReady(srv.url, token('ws-user', { username: 'Ws' }));
      await ws.request('joinRoom', r);
      const members = (await ws.event('roomMembers')).data.members.map((m) => m.userId).sort();
      assert.deepEqual(members, ['sio-user', 'ws-user']);
      const [joined] = await sioRec.next('userJoined', { filter: (e) => e.userId === 'ws-user' });
      assert.equal(joined.roomId, r);

      await ws.request('sendMessage', { roomId: r, text: 'from ws' });
      const [toSio] = await sioRec.next('message', { filter: (m) => m.text === 'from ws' });
      assert.equal(toSio.userId, 'ws-user');
      const toSse = await sse.log.next('message', { filter: (m) => m.text === 'from ws' });
      assert.equal(toSse.data.userId, 'ws-user');

      await request(sio, 'sendMessage', { roomId: r, text: 'from sio' });
      assert.equal((await ws.event('message', (m) => m.text === 'from sio')).data.userId, 'sio-user');

      ws.close();
      const [left] = await sioRec.next('userLeft', { filter: (e) => e.userId === 'ws-user', timeout: 5000 });
      assert.equal(left.roomId, r);
    });
  });

  describe('resume', () => {
    it('resumes after a dropped connection: same session and rooms, missed events once, in order', async () => {
      const r = room('resume');
      const tok = token('erin', { username: 'Erin' });
      const a = await wsReady(srv.url, tok);
      await a.request('joinRoom', r);
      const sender = await userSocket(srv.url, 'frank');
      await request(sender, 'joinRoom', r);
      await request(sender, 'sendMessage', { roomId: r, text: 'seen' });
      const seen = await a.event('message', (m) => m.text === 'seen');
      a.terminate();
      await a.closed;
      await sleep(100);
      for (let i = 0; i < 5; i++) await request(sender, 'sendMessage', { roomId: r, text: `missed ${i}` });

      // by the auth frame
      const b = wsClient(wsUrl(srv.url));
      await b.opened;
      b.send({ type: 'auth', token: tok, sessionId: a.ready.sessionId, offset: seen.offset });
      const ready = await b.next('ready');
      assert.equal(ready.resumed, true);
      assert.equal(ready.sessionId, a.ready.sessionId);
      const texts = [];
      for (let i = 0; i < 5; i++) texts.push((await b.event('message')).data.text);
      assert.deepEqual(texts, [0, 1, 2, 3, 4].map((i) => `missed ${i}`));
      await noFrame(b, (m) => m.type === 'event' && m.event === 'message');
      // still in the room
      await request(sender, 'sendMessage', { roomId: r, text: 'after' });
      const after = await b.event('message', (m) => m.text === 'after');

      // and again, by the query, from the last offset
      b.terminate();
      await b.closed;
      await sleep(100);
      await request(sender, 'sendMessage', { roomId: r, text: 'missed again' });
      const c = await wsReady(srv.url, tok, { sessionId: ready.sessionId, offset: after.offset });
      assert.equal(c.ready.resumed, true);
      assert.equal((await c.event('message')).data.text, 'missed again');
      await noFrame(c, (m) => m.type === 'event' && m.event === 'message');
    });

    it("another user's sessionId, or an unknown one, gets a fresh session", async () => {
      const r = room('resume-other');
      const a = await wsReady(srv.url, token('gina'));
      await a.request('joinRoom', r);
      a.terminate();
      await a.closed;
      await sleep(100);
      const thief = await wsReady(srv.url, token('mallory'), { sessionId: a.ready.sessionId, offset: a.ready.offset || '' });
      assert.equal(thief.ready.resumed, false);
      assert.notEqual(thief.ready.sessionId, a.ready.sessionId);
      assert.equal(thief.ready.userId, 'mallory');
      assert.equal((await thief.request('sendMessage', { roomId: r, text: 'x' })).error.code, 'NOT_IN_ROOM');
      const unknown = await wsReady(srv.url, token('gina'), { sessionId: 'no-such-session' });
      assert.equal(unknown.ready.resumed, false);
    });
  });

  describe('hostile input', () => {
    it('malformed JSON: an error, then close 1008', async () => {
      const c = await wsReady(srv.url, token('h1'));
      c.send('{not json');
      assert.equal((await c.next('error')).code, 'INVALID_MESSAGE');
      assert.equal((await closedWithin(c)).code, 1008);
    });

    it('an unknown frame type: an error, the connection stays', async () => {
      const c = await wsReady(srv.url, token('h2'));
      c.send({ type: 'subscribe', room: 'x' });
      assert.equal((await c.next('error')).message, 'Unknown frame type');
      assert.equal((await c.request('joinRoom', room())).result, null);
    });

    it('a binary frame closes with 1003', async () => {
      const c = await wsReady(srv.url, token('h3'));
      c.socket.send(Buffer.from([1, 2, 3]));
      assert.equal((await closedWithin(c)).code, 1003);
    });

    it('an oversized frame closes with 1009', async () => {
      const c = await wsReady(srv.url, token('h4'));
      c.send({ type: 'request', id: 1, event: 'sendMessage', data: { roomId: 'r', text: 'x'.repeat(1_100_000) } });
      assert.equal((await closedWithin(c)).code, 1009);
    });
  });

  it('token expiry: tokenExpiring, then the error Socket.IO gets and close 4401', { timeout: 15000 }, async () => {
    const c = await wsReady(srv.url, token('expiring', { expiresIn: 3 }));
    const warning = await c.event('tokenExpiring', () => true, 5000);
    assert.equal(typeof warning.data.expiresAt, 'number');
    const e = await c.event('error', () => true, 5000);
    assert.deepEqual(e.data, { code: 'ACCESS_DENIED', message: 'Token expired' });
    assert.deepEqual(await closedWithin(c, 3000), { code: 4401, reason: 'Token expired' });
  });

  it('the endpoint follows the prefix and can be turned off', async () => {
    const off = await startServer({ args: ['--ws', 'false'] });
    const prefixed = await startServer({ args: ['--prefix', '/rt'] });
    try {
      const res = await fetch(`${off.url}/ws`);
      assert.equal(res.status, 404);
      const c = wsClient(`${prefixed.url.replace(/^http/, 'ws')}/rt/ws?token=${token('pfx')}`);
      assert.equal((await c.next('ready')).userId, 'pfx');
      const plain = await fetch(`${prefixed.url}/rt/ws`);
      assert.equal(plain.status, 426);
    } finally {
      await off.stop();
      await prefixed.stop();
    }
  });
});

describe('plain WebSocket /ws slow reader', () => {
  let srv;
  before(async () => {
    srv = await startServer({
      args: ['--send-timeout', '2000', '--rate-limit', '0'],
    });
  });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllWs(); closeAll(); });

  it('a reader that stops reading is cut off; the others get everything', { timeout: 60000 }, async () => {
    const r = room('slow');
    const slow = await wsReady(srv.url, token('slowpoke'));
    await slow.request('joinRoom', r);
    slow.socket._socket.pause();
    const member = await wsReady(srv.url, token('member'));
    await member.request('joinRoom', r);
    const pub = await userSocket(srv.url, 'publisher');
    await request(pub, 'joinRoom', r);
    // more than the kernel's socket buffers hold (several MB on loopback)
    const N = 3000;
    for (let i = 0; i < N; i += 16) {
      await Promise.all(Array.from({ length: Math.min(16, N - i) }, (_, k) =>
        request(pub, 'sendMessage', { roomId: r, text: `${i + k}:${'x'.repeat(3900)}` })));
    }
    let got = 0;
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      got = member.frames.filter((m) => m.type === 'event' && m.event === 'message').length;
      if (got >= N) break;
      await sleep(50);
    }
    assert.equal(got, N, 'the reading member got every message');
    await sleep(2500); // past the send timeout
    slow.socket._socket.resume();
    const closed = await closedWithin(slow, 15000);
    assert.ok([1006, 1008].includes(closed.code), `slow reader closed: ${closed.code}`);
    const texts = slow.frames.filter((m) => m.type === 'event' && m.event === 'message').length;
    assert.ok(texts < N, `the slow reader did not get everything (${texts})`);
  });
});

describe('plain WebSocket /ws heartbeat', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--ping-interval', '300', '--ping-timeout', '300'] });
  });
  after(() => srv && srv.stop());
  afterEach(closeAllWs);

  it('the server pings; a client that answers stays, one that stops answering is closed', { timeout: 15000 }, async () => {
    const alive = await wsReady(srv.url, token('alive'));
    let pings = 0;
    alive.socket.on('ping', () => { pings++; });
    const silent = wsClient(wsUrl(srv.url, { token: token('silent') }), { autoPong: false });
    await silent.next('ready');
    const closed = await closedWithin(silent, 5000);
    assert.ok([1001, 1006].includes(closed.code), `closed: ${closed.code}`);
    await sleep(1000);
    assert.ok(pings >= 3, `${pings} pings`);
    assert.equal(alive.socket.readyState, 1, 'the answering client is still connected');
    assert.equal((await alive.request('joinRoom', room('hb'))).result, null);
  });
});

describe('plain WebSocket /ws flood', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--rate-limit', '5', '--rate-burst', '5', '--flood-disconnect-after', '500'] });
  });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllWs(); closeAll(); });

  it('a flood gets RATE_LIMITED replies, then an error and close 4000', async () => {
    const c = await wsReady(srv.url, token('flooder'));
    for (let i = 0; i < 50; i++) c.send({ type: 'request', id: i, event: 'joinRoom', data: `f-${i % 3}` });
    const limited = await c.next((m) => m.type === 'reply' && m.error && m.error.code === 'RATE_LIMITED');
    assert.equal(limited.error.message, 'Too many requests; slow down');
    const end = (async () => {
      while (c.socket.readyState === 1) {
        c.send({ type: 'request', id: 1, event: 'joinRoom', data: 'f' });
        await sleep(20);
      }
    })();
    const closed = await closedWithin(c, 10000);
    await end;
    assert.equal(closed.code, 4000);
    assert.ok(c.frames.some((m) => m.type === 'event' && m.event === 'error' && m.data.code === 'RATE_LIMITED'));
  });
});
