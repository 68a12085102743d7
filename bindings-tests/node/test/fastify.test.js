'use strict';
// Issue 4: the Node binding (@switchboard/node) inside real Fastify 5 apps through the plugin
// (@switchboard/node/fastify), driven by unmodified socket.io-client 4.8 and raw sockets.
// Every describe block starts its own app on 127.0.0.1 port 0 and closes it afterwards.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Engine, SwitchboardError } = require('@switchboard/node');

const { startApp, closeApps, selfSignedCert } = require('../helpers/fastify');
const { token } = require('../helpers/tokens');
const {
  sleep, connect, connected, connectError, userSocket, closeAll, once, noEvent, emitAck,
  request, expectError, recorder,
} = require('../helpers/client');
const { upgradeRequest, textFrames, acceptFor, newKey, rawUpgrade } = require('../helpers/wsframe');

const TRANSPORTS = [
  { name: 'WebSocket', transports: ['websocket'], initial: 'websocket', final: 'websocket' },
  { name: 'HTTP long-polling', transports: ['polling'], initial: 'polling', final: 'polling' },
  { name: 'polling upgraded to WebSocket', transports: ['polling', 'websocket'], initial: 'polling', final: 'websocket' },
];

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Opens a socket on transport `tr`, waits until connected (and upgraded), checks the transport. */
async function openOn(tr, url, opts = {}) {
  const s = connect(url, { transports: tr.transports, ...opts });
  assert.equal(s.io.engine.transport.name, tr.initial, 'initial transport');
  const upgraded = tr.initial !== tr.final ? once(s.io.engine, 'upgrade', 5000) : null;
  await s.ready;
  if (upgraded) await upgraded;
  assert.equal(s.io.engine.transport.name, tr.final, 'transport after connect');
  return s;
}

/** Waits until `fn()` is truthy (polling every 10 ms); fails after `ms` with `what`. */
async function until(fn, what, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await sleep(10);
  }
}

/** A promise that never settles: a host callback that hangs. */
const never = () => new Promise(() => {});

function assertFullMessage(m, { roomId, text, userId, username }) {
  assert.deepEqual(Object.keys(m).sort(), ['id', 'roomId', 'text', 'timestamp', 'userId', 'username'],
    `message fields: ${JSON.stringify(m)}`);
  assert.equal(typeof m.id, 'string');
  assert.ok(m.id.length > 0);
  assert.equal(m.roomId, roomId);
  assert.equal(m.text, text);
  assert.equal(m.userId, userId);
  assert.equal(m.username, username);
  assert.match(m.timestamp, ISO_UTC);
  assert.ok(Math.abs(Date.parse(m.timestamp) - Date.now()) < 60000, `timestamp ${m.timestamp} is now`);
}

// ---------------------------------------------------------------------------------------------

describe('Fastify 5 app with the plugin: the original app\'s integration tests', () => {
  let srv;
  before(async () => { srv = await startApp(); });
  after(() => srv && srv.close());
  afterEach(closeAll);

  it('connects with a valid token', { timeout: 10000 }, async () => {
    const s = await userSocket(srv.url, 'alice', { username: 'Alice' });
    assert.equal(s.connected, true);
    assert.equal(typeof s.id, 'string');
    assert.equal(s.io.engine.transport.name, 'websocket');
    // the app's own routes are still Fastify's
    const res = await fetch(`${srv.url}/hello`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { hello: 'world' });
  });

  it('refuses a connection without a token with "Authentication required"', { timeout: 10000 }, async () => {
    const err = await connectError(srv.url);
    assert.equal(err.message, 'Authentication required');
    const bad = await connectError(srv.url, { auth: { token: 'not.a.jwt' } });
    assert.equal(bad.message, 'Invalid token');
  });

  it('room messaging delivers {id, roomId, text, userId, username, timestamp} to every member', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice', { username: 'Alice' });
    const bob = await userSocket(srv.url, 'bob', { username: 'Bob' });
    const carol = await userSocket(srv.url, 'carol');
    const ra = recorder(alice);
    const rb = recorder(bob);
    await request(alice, 'joinRoom', 'general');
    await request(bob, 'joinRoom', 'general');
    const carolHears = noEvent(carol, 'message', 500);

    const ack = await request(alice, 'sendMessage', { roomId: 'general', text: 'Hello from Alice' });
    const [toAlice] = await ra.next('message');
    const [toBob] = await rb.next('message');
    assertFullMessage(toBob, { roomId: 'general', text: 'Hello from Alice', userId: 'alice', username: 'Alice' });
    assert.deepEqual(toAlice, toBob, 'the sender receives the same message');
    assert.deepEqual(ack, { id: toBob.id, timestamp: toBob.timestamp }, 'the ack is {id, timestamp}');
    await carolHears;
  });
});

// ---------------------------------------------------------------------------------------------

describe('transports through Fastify\'s port', () => {
  let srv;
  before(async () => {
    srv = await startApp();
    srv.engine.on('whoami', async (socket) => ({ id: socket.id, user: socket.user.id }));
  });
  after(() => srv && srv.close());
  afterEach(closeAll);

  for (const tr of TRANSPORTS) {
    it(`${tr.name}: connect, ack, room message, server emit and app event`, { timeout: 15000 }, async () => {
      const room = `t-${tr.transports.join('-')}`;
      const alice = await openOn(tr, srv.url, { auth: { token: token('alice', { username: 'Alice' }) } });
      const bob = await openOn(tr, srv.url, { auth: { token: token('bob', { username: 'Bob' }) } });
      const ra = recorder(alice);
      const rb = recorder(bob);
      await request(alice, 'joinRoom', room);
      const [members] = await ra.next('roomMembers');
      assert.deepEqual(members, { roomId: room, members: [{ userId: 'alice', username: 'Alice' }] });
      await request(bob, 'joinRoom', room);
      const [joined] = await ra.next('userJoined');
      assert.deepEqual(joined, { roomId: room, userId: 'bob', username: 'Bob' });

      const ack = await request(bob, 'sendMessage', { roomId: room, text: `over ${tr.name}` });
      const [m] = await ra.next('message');
      assert.equal(m.text, `over ${tr.name}`);
      assert.equal(m.id, ack.id);
      await rb.next('message');

      assert.equal(srv.engine.to(room).emit('notice', { n: 1, transport: tr.name }), 2);
      assert.deepEqual((await ra.next('notice'))[0], { n: 1, transport: tr.name });
      assert.deepEqual((await rb.next('notice'))[0], { n: 1, transport: tr.name });

      assert.deepEqual(await request(alice, 'whoami'), { id: alice.id, user: 'alice' });
      assert.equal(alice.io.engine.transport.name, tr.final, 'still on the final transport');
      assert.equal(bob.io.engine.transport.name, tr.final, 'still on the final transport');
    });
  }

  it('the polling endpoint answers the Engine.IO handshake on the app\'s port (GET and POST bodies)', { timeout: 10000 }, async () => {
    const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.match(body, /^0\{/);
    const open = JSON.parse(body.slice(1));
    assert.deepEqual(open.upgrades, ['websocket']);
    // a CONNECT posted as a text/plain body reaches the engine unparsed by Fastify
    const post = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${open.sid}`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      body: '40' + JSON.stringify({ token: token('alice') }),
    });
    assert.equal(post.status, 200);
    assert.equal(await post.text(), 'ok');
    const poll = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${open.sid}`);
    assert.match(await poll.text(), /^40\{"sid":/);
    // close the session
    await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${open.sid}`, { method: 'POST', body: '1' });
  });
});

// ---------------------------------------------------------------------------------------------

describe('authenticate callback', () => {
  let srv;
  const seen = [];
  before(async () => {
    srv = await startApp({
      roomPolicy: 'claims',
      callbackTimeout: 300,
      async authenticate(handshake) {
        seen.push(handshake);
        const t = handshake.auth && handshake.auth.token;
        if (t === 'hang') return never();
        if (t === 'no-id') return { username: 'Nobody' };
        if (typeof t === 'string' && t.startsWith('banned:')) throw new SwitchboardError('BANNED', `User ${t.slice(7)} is banned`);
        if (t === 'throw-plain') throw new Error('directory lookup failed');
        if (t === 'reject-string') return Promise.reject('plain rejection'); // eslint-disable-line prefer-promise-reject-errors
        if (typeof t === 'string' && t.startsWith('user:')) {
          const id = t.slice(5);
          return { id, username: id.toUpperCase(), rooms: ['team-*'] };
        }
        return null;
      },
    });
  });
  after(() => srv && srv.close());
  afterEach(closeAll);

  it('accepts a non-JWT token and sees auth, headers, query and address', { timeout: 10000 }, async () => {
    const s = await connected(srv.url, {
      auth: { token: 'user:alice', extra: 42 },
      query: { foo: 'bar' },
      extraHeaders: { 'x-test-header': 'hello' },
    });
    const hs = seen.find((h) => h.auth && h.auth.token === 'user:alice');
    assert.ok(hs, 'authenticate was called');
    assert.deepEqual(hs.auth, { token: 'user:alice', extra: 42 });
    assert.equal(hs.headers['x-test-header'], 'hello');
    assert.equal(typeof hs.headers.host, 'string');
    assert.equal(hs.query.foo, 'bar');
    assert.equal(hs.query.EIO, '4');
    assert.equal(hs.query.transport, 'websocket');
    assert.equal(hs.address, '127.0.0.1');

    const rs = recorder(s);
    await request(s, 'joinRoom', 'team-a');
    const [members] = await rs.next('roomMembers');
    assert.deepEqual(members.members, [{ userId: 'alice', username: 'ALICE' }], 'the user authenticate returned');
    assert.deepEqual(srv.engine.presence('team-a'), [{ userId: 'alice', username: 'ALICE' }]);
    // the rooms it returned are the user's room claims (room policy "claims")
    await expectError(request(s, 'joinRoom', 'lobby'), 'ACCESS_DENIED');
  });

  it('accepts over HTTP long-polling too', { timeout: 10000 }, async () => {
    const s = await connected(srv.url, { transports: ['polling'], auth: { token: 'user:pat' } });
    assert.equal(s.io.engine.transport.name, 'polling');
    await request(s, 'joinRoom', 'team-poll');
    assert.deepEqual(srv.engine.presence('team-poll'), [{ userId: 'pat', username: 'PAT' }]);
  });

  it('null refuses with "Invalid token" (a valid JWT is not consulted: the callback decides)', { timeout: 10000 }, async () => {
    assert.equal((await connectError(srv.url, { auth: { token: 'guess' } })).message, 'Invalid token');
    assert.equal((await connectError(srv.url)).message, 'Invalid token');
    assert.equal((await connectError(srv.url, { auth: { token: token('alice') } })).message, 'Invalid token');
  });

  // Issue 18: a host's own error text stays in its log; a SwitchboardError is for the client.
  it('a SwitchboardError refuses with its message; another throw or rejection with "Internal error"', { timeout: 10000 }, async () => {
    assert.equal((await connectError(srv.url, { auth: { token: 'banned:mallory' } })).message, 'User mallory is banned');
    assert.equal((await connectError(srv.url, { auth: { token: 'reject-string' } })).message, 'Internal error');
    assert.equal((await connectError(srv.url, { auth: { token: 'throw-plain' } })).message, 'Internal error');
    assert.equal((await connectError(srv.url, { transports: ['polling'], auth: { token: 'banned:eve' } })).message,
      'User eve is banned');
  });

  it('a user without an id is refused', { timeout: 10000 }, async () => {
    const err = await connectError(srv.url, { auth: { token: 'no-id' } });
    assert.ok(err.message.length > 0);
  });

  it('a callback that never settles fails after callbackTimeout with a clear error', { timeout: 10000 }, async () => {
    const t0 = Date.now();
    const err = await connectError(srv.url, { auth: { token: 'hang' } });
    const took = Date.now() - t0;
    assert.equal(err.message, 'Authentication timed out');
    assert.ok(took >= 250 && took < 3000, `refused after ${took} ms (callbackTimeout 300)`);
    // the engine still serves others
    await connected(srv.url, { auth: { token: 'user:after' } });
  });
});

// ---------------------------------------------------------------------------------------------

describe('authorizeRoom callback', () => {
  let srv;
  const asked = [];
  before(async () => {
    srv = await startApp({
      roomPolicy: 'claims', // without the callback, a token without a rooms claim could join nothing
      callbackTimeout: 300,
      async authorizeRoom(user, roomId) {
        asked.push({ user, roomId });
        if (roomId === 'hang') return never();
        if (roomId === 'boom') throw new Error('access database is down');
        await sleep(5);
        return roomId !== 'secret';
      },
    });
  });
  after(() => srv && srv.close());
  afterEach(closeAll);

  it('refuses a room (ACCESS_DENIED) while allowing another', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice', { username: 'Alice' });
    const denied = await expectError(request(alice, 'joinRoom', 'secret'), 'ACCESS_DENIED');
    assert.ok(denied.message.length > 0);
    await request(alice, 'joinRoom', 'public');
    const q = asked.find((a) => a.roomId === 'secret');
    assert.ok(q, 'authorizeRoom was asked about "secret"');
    assert.equal(q.user.id, 'alice');
    assert.equal(q.user.username, 'Alice');
    // refused means not a member
    await expectError(request(alice, 'sendMessage', { roomId: 'secret', text: 'x' }), 'NOT_IN_ROOM');
    assert.deepEqual(srv.engine.presence('secret'), []);
    assert.deepEqual(srv.engine.presence('public'), [{ userId: 'alice', username: 'Alice' }]);
  });

  it('is not asked about personal rooms: another user\'s stays closed', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice');
    const before = asked.length;
    await expectError(request(alice, 'joinRoom', 'user:bob'), 'ACCESS_DENIED');
    assert.equal(asked.slice(before).filter((a) => a.roomId === 'user:bob').length, 0);
  });

  it('a throw is INTERNAL without its message (issue 18: it is logged instead)', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice');
    const e = await expectError(request(alice, 'joinRoom', 'boom'), 'INTERNAL');
    assert.equal(e.message, 'Internal error');
  });

  it('a callback that never settles fails after callbackTimeout; the socket keeps working', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice');
    const t0 = Date.now();
    const e = await expectError(request(alice, 'joinRoom', 'hang'), 'INTERNAL');
    const took = Date.now() - t0;
    assert.match(e.message, /timed out/);
    assert.ok(took >= 250 && took < 3000, `failed after ${took} ms (callbackTimeout 300)`);
    await request(alice, 'joinRoom', 'public');
  });
});

// ---------------------------------------------------------------------------------------------

describe('storeMessage callback', () => {
  let srv;
  const stored = [];
  let slowResolvedAt = 0;
  before(async () => {
    srv = await startApp({
      callbackTimeout: 500,
      async storeMessage(message) {
        stored.push(message);
        if (message.text === 'hang') return never();
        if (message.text === 'reject me') throw new Error('disk full');
        if (message.text === 'slow') {
          await sleep(150);
          slowResolvedAt = Date.now();
        }
        return undefined;
      },
    });
  });
  after(() => srv && srv.close());
  afterEach(closeAll);

  async function pair(room) {
    const alice = await userSocket(srv.url, 'alice', { username: 'Alice' });
    const bob = await userSocket(srv.url, 'bob', { username: 'Bob' });
    await request(alice, 'joinRoom', room);
    await request(bob, 'joinRoom', room);
    return { alice, bob, ra: recorder(alice), rb: recorder(bob) };
  }

  it('a resolving store sees the whole message, the same one members receive', { timeout: 10000 }, async () => {
    const { alice, rb } = await pair('s-ok');
    const ack = await request(alice, 'sendMessage', { roomId: 's-ok', text: 'keep me' });
    const [m] = await rb.next('message');
    const s = stored.find((x) => x.text === 'keep me');
    assert.ok(s, 'storeMessage was called');
    assertFullMessage(s, { roomId: 's-ok', text: 'keep me', userId: 'alice', username: 'Alice' });
    assert.deepEqual(s, m);
    assert.equal(ack.id, s.id);
  });

  it('a rejection: the sender gets INTERNAL and nobody receives the message (nor its history)', { timeout: 10000 }, async () => {
    const { alice, bob } = await pair('s-rej');
    const aliceHears = noEvent(alice, 'message', 600);
    const bobHears = noEvent(bob, 'message', 600);
    const e = await expectError(request(alice, 'sendMessage', { roomId: 's-rej', text: 'reject me' }), 'INTERNAL');
    assert.equal(e.message, 'Internal error', 'the host\'s "disk full" stays in its log (issue 18)');
    await Promise.all([aliceHears, bobHears]);
    const { messages } = await request(bob, 'getHistory', { roomId: 's-rej' });
    assert.deepEqual(messages.filter((m) => m.text === 'reject me'), []);
    // the room still works
    const rb = recorder(bob);
    await request(alice, 'sendMessage', { roomId: 's-rej', text: 'after the rejection' });
    assert.equal((await rb.next('message'))[0].text, 'after the rejection');
  });

  it('delivery and the ack wait for the store', { timeout: 10000 }, async () => {
    const { alice, bob } = await pair('s-slow');
    const got = once(bob, 'message', 3000).then(([m]) => ({ m, at: Date.now() }));
    const t0 = Date.now();
    await request(alice, 'sendMessage', { roomId: 's-slow', text: 'slow' });
    const ackAt = Date.now();
    const { m, at } = await got;
    assert.equal(m.text, 'slow');
    assert.ok(slowResolvedAt > t0, 'the store resolved');
    assert.ok(at >= slowResolvedAt, `delivered ${slowResolvedAt - at} ms before the store resolved`);
    assert.ok(ackAt >= slowResolvedAt, 'acked after the store resolved');
  });

  it('a store that never settles fails after callbackTimeout: INTERNAL, nobody receives it', { timeout: 10000 }, async () => {
    const { alice, bob } = await pair('s-hang');
    const aliceHears = noEvent(alice, 'message', 1200);
    const bobHears = noEvent(bob, 'message', 1200);
    const t0 = Date.now();
    const e = await expectError(request(alice, 'sendMessage', { roomId: 's-hang', text: 'hang' }), 'INTERNAL');
    const took = Date.now() - t0;
    assert.match(e.message, /timed out/);
    assert.ok(took >= 400 && took < 3000, `failed after ${took} ms (callbackTimeout 500)`);
    await Promise.all([aliceHears, bobHears]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('server API: app.switchboard', () => {
  let srv;
  let engine;
  before(async () => {
    srv = await startApp({ callbackTimeout: 300, presenceGrace: 100 });
    engine = srv.engine;
    engine
      .on('echo', async (socket, data) => ({ got: data, id: socket.id, user: socket.user, rooms: socket.rooms }))
      .on('sum', async (socket, a, b) => a + b)
      .on('double', (socket, x) => x * 2) // a plain (non-async) handler
      .on('fail', async () => { throw new Error('handler failed on purpose'); })
      .on('hangs', () => never())
      .on('joinVia', (socket, room) => socket.join(room))
      .on('leaveVia', (socket, room) => socket.leave(room))
      .on('whisper', (socket, data) => socket.emit('whispered', data))
      .on('kickMe', (socket) => { socket.disconnect(); });
  });
  after(() => srv && srv.close());
  afterEach(closeAll);

  it('on(event): the handler\'s return value arrives as the ack', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice', { username: 'Alice' });
    await request(alice, 'joinRoom', 'api-echo');
    const [err, result] = await new Promise((resolve) => {
      alice.emit('echo', { a: [1, 'two', null], b: true }, (...args) => resolve(args));
    });
    assert.equal(err, null);
    assert.deepEqual(result.got, { a: [1, 'two', null], b: true });
    assert.equal(result.id, alice.id, 'socket.id is the client\'s socket id');
    assert.equal(result.user.id, 'alice');
    assert.equal(result.user.username, 'Alice');
    assert.ok(result.rooms.includes('api-echo'), `socket.rooms: ${JSON.stringify(result.rooms)}`);
    assert.deepEqual(await request(alice, 'sum', 2, 3), 5, 'every argument reaches the handler');
    assert.deepEqual(await request(alice, 'double', 21), 42);
  });

  it('on(event): a throw is {code: INTERNAL, message: "Internal error"}; a handler that hangs times out; unknown events fail', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice');
    const e = await expectError(request(alice, 'fail'), 'INTERNAL');
    assert.equal(e.message, 'Internal error', 'the handler\'s message stays in the log (issue 18)');
    const t0 = Date.now();
    const h = await expectError(request(alice, 'hangs'), 'INTERNAL');
    assert.match(h.message, /timed out/);
    assert.ok(Date.now() - t0 < 3000);
    const [unknown] = await emitAck(alice, 'noSuchEvent', 1);
    assert.equal(unknown.code, 'INVALID_MESSAGE');
    // still connected and served
    assert.equal(await request(alice, 'sum', 1, 1), 2);
  });

  it('socket.join / socket.leave from a handler', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice');
    const ra = recorder(alice);
    assert.equal(await request(alice, 'joinVia', 'side'), true);
    assert.ok((await request(alice, 'echo', null)).rooms.includes('side'));
    assert.equal(engine.to('side').emit('sideNews', { n: 1 }), 1);
    assert.deepEqual((await ra.next('sideNews'))[0], { n: 1 });
    assert.equal(await request(alice, 'leaveVia', 'side'), true);
    assert.equal(engine.to('side').emit('sideNews', { n: 2 }), 0);
    await noEvent(alice, 'sideNews', 300);
  });

  it('socket.emit from a handler reaches that socket only', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice');
    const alice2 = await userSocket(srv.url, 'alice');
    const ra = recorder(alice);
    const other = noEvent(alice2, 'whispered', 400);
    assert.equal(await request(alice, 'whisper', { secret: 'psst' }), true);
    assert.deepEqual((await ra.next('whispered'))[0], { secret: 'psst' });
    await other;
  });

  it('socket.disconnect from a handler disconnects the client', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice');
    const gone = once(alice, 'disconnect');
    alice.emit('kickMe');
    const [reason] = await gone;
    assert.equal(reason, 'io server disconnect');
  });

  it('to(room).emit reaches the members only and returns how many', { timeout: 10000 }, async () => {
    const alice = await userSocket(srv.url, 'alice');
    const bob = await userSocket(srv.url, 'bob');
    const carol = await userSocket(srv.url, 'carol');
    await request(alice, 'joinRoom', 'news');
    await request(bob, 'joinRoom', 'news');
    const ra = recorder(alice);
    const rb = recorder(bob);
    const carolHears = noEvent(carol, 'headline', 400);
    const data = { title: 'Über', n: 3.5, list: [1, { deep: true }], none: null };
    assert.equal(engine.to('news').emit('headline', data), 2);
    assert.deepEqual((await ra.next('headline'))[0], data);
    assert.deepEqual((await rb.next('headline'))[0], data);
    await carolHears;
    assert.equal(engine.to('nobody-here').emit('headline', data), 0);
    // without data: the event arrives with null (plus, as with Socket.IO's connection state
    // recovery, the packet's offset as a trailing string argument)
    engine.to('news').emit('ping-all');
    const args = await ra.next('ping-all');
    assert.equal(args[0], null, JSON.stringify(args));
  });

  it('toUser(id).emit reaches every connection of the user and no one else', { timeout: 10000 }, async () => {
    const tab1 = await userSocket(srv.url, 'alice');
    const tab2 = await userSocket(srv.url, 'alice');
    const bob = await userSocket(srv.url, 'bob');
    const r1 = recorder(tab1);
    const r2 = recorder(tab2);
    const bobHears = noEvent(bob, 'dm', 400);
    assert.equal(engine.toUser('alice').emit('dm', { text: 'for alice' }), 2);
    assert.deepEqual((await r1.next('dm'))[0], { text: 'for alice' });
    assert.deepEqual((await r2.next('dm'))[0], { text: 'for alice' });
    await bobHears;
    assert.equal(engine.toUser('nobody').emit('dm', {}), 0);
  });

  it('presence(room) lists the users present, once per user', { timeout: 10000 }, async () => {
    assert.deepEqual(engine.presence('pres'), []);
    const tab1 = await userSocket(srv.url, 'alice', { username: 'Alice' });
    const tab2 = await userSocket(srv.url, 'alice', { username: 'Alice' });
    const bob = await userSocket(srv.url, 'bob', { username: 'Bob' });
    await request(tab1, 'joinRoom', 'pres');
    await request(tab2, 'joinRoom', 'pres');
    await request(bob, 'joinRoom', 'pres');
    const sorted = (l) => [...l].sort((a, b) => a.userId.localeCompare(b.userId));
    assert.deepEqual(sorted(engine.presence('pres')),
      [{ userId: 'alice', username: 'Alice' }, { userId: 'bob', username: 'Bob' }]);
    await request(bob, 'leaveRoom', 'pres');
    assert.deepEqual(engine.presence('pres'), [{ userId: 'alice', username: 'Alice' }]);
    await request(tab1, 'leaveRoom', 'pres');
    assert.deepEqual(engine.presence('pres'), [{ userId: 'alice', username: 'Alice' }], 'alice is still there in tab 2');
    tab2.close();
    await until(() => engine.presence('pres').length === 0, 'presence is empty after the last tab left');
  });

  it('disconnectUser(id) disconnects every connection of the user and returns the count', { timeout: 10000 }, async () => {
    const tab1 = await userSocket(srv.url, 'dave');
    const tab2 = await userSocket(srv.url, 'dave', { transports: ['polling'] });
    const bob = await userSocket(srv.url, 'bob');
    const gone1 = once(tab1, 'disconnect');
    const gone2 = once(tab2, 'disconnect');
    const bobStays = noEvent(bob, 'disconnect', 500);
    assert.equal(await engine.disconnectUser('dave'), 2);
    assert.equal((await gone1)[0], 'io server disconnect');
    assert.equal((await gone2)[0], 'io server disconnect');
    await bobStays;
    assert.equal(bob.connected, true);
    assert.equal(await engine.disconnectUser('nobody'), 0);
  });

  it('stats() counts connections, sockets, rooms, messages and packets', { timeout: 10000 }, async () => {
    closeAll();
    const base = await until(() => {
      const s = engine.stats();
      return s.connections === 0 && s.sockets === 0 ? s : null;
    }, 'every earlier connection is gone');
    for (const k of ['connections', 'sockets', 'rooms', 'messages', 'packetsIn', 'packetsOut']) {
      assert.equal(typeof base[k], 'number', `stats().${k}`);
    }
    const alice = await userSocket(srv.url, 'alice');
    const bob = await userSocket(srv.url, 'bob', { transports: ['polling'] });
    const s1 = engine.stats();
    assert.equal(s1.connections, 2);
    assert.equal(s1.sockets, 2);
    await request(alice, 'joinRoom', 'stats-room');
    await request(bob, 'joinRoom', 'stats-room');
    const rb = recorder(bob);
    await request(alice, 'sendMessage', { roomId: 'stats-room', text: 'count me' });
    await rb.next('message');
    const s2 = engine.stats();
    assert.equal(s2.messages, base.messages + 1);
    assert.ok(s2.rooms >= 1, `rooms ${s2.rooms}`);
    assert.ok(s2.packetsIn >= base.packetsIn + 5, `packetsIn ${base.packetsIn} -> ${s2.packetsIn}`);
    assert.ok(s2.packetsOut >= base.packetsOut + 6, `packetsOut ${base.packetsOut} -> ${s2.packetsOut}`);
    alice.close();
    bob.close();
    await until(() => engine.stats().connections === 0, 'the connections are counted out');
  });
});

// ---------------------------------------------------------------------------------------------

describe('Engine standalone: new Engine(opts), listen and close', () => {
  afterEach(closeAll);

  it('listen({host, port: 0}) serves Socket.IO on its own port; close() ends every connection', { timeout: 15000 }, async () => {
    const { SECRET } = require('../helpers/fastify');
    const engine = new Engine({ jwtSecret: SECRET });
    try {
      const port = await engine.listen({ host: '127.0.0.1', port: 0 });
      assert.ok(Number.isInteger(port) && port > 0, `port ${port}`);
      const url = `http://127.0.0.1:${port}`;
      const ws = await userSocket(url, 'alice');
      const poll = await userSocket(url, 'bob', { transports: ['polling'] });
      await request(ws, 'joinRoom', 'solo');
      const r = recorder(ws);
      assert.equal(engine.to('solo').emit('hi', 1), 1);
      assert.equal((await r.next('hi'))[0], 1);
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);

      const gone1 = once(ws, 'disconnect', 5000);
      const gone2 = once(poll, 'disconnect', 5000);
      await engine.close();
      await Promise.all([gone1, gone2]);
      await engine.close(); // idempotent
      assert.throws(() => engine.to('solo').emit('hi', 2), /closed/);
      const refused = await connectError(url, { auth: { token: token('carol') }, timeout: 2000 });
      assert.ok(refused instanceof Error);
    } finally {
      await engine.close();
    }
  });

  it('invalid options fail in the constructor with a clear error', () => {
    assert.throws(() => new Engine({ roomPolicy: 'closed' }), /closed|room/i);
    assert.throws(() => new Engine({ pingInterval: 0 }), /ping/i);
  });
});

// ---------------------------------------------------------------------------------------------

describe('app.close() closes the engine', () => {
  afterEach(closeAll);

  // (with a long-poll pending, app.close() waits for the next ping: see the known issues below)
  it('with WebSocket clients still connected, app.close() resolves and disconnects them', { timeout: 15000 }, async () => {
    const srv = await startApp();
    const ws = await userSocket(srv.url, 'alice');
    const ws2 = await openOn(TRANSPORTS[2], srv.url, { auth: { token: token('bob') } });
    await request(ws2, 'joinRoom', 'x');
    const gone1 = once(ws, 'disconnect', 5000);
    const gone2 = once(ws2, 'disconnect', 5000);
    const t0 = Date.now();
    await srv.close();
    assert.ok(Date.now() - t0 < 5000, `app.close() took ${Date.now() - t0} ms`);
    await Promise.all([gone1, gone2]);
    assert.throws(() => srv.engine.to('x').emit('late', 1), /closed/);
  });
});

// ---------------------------------------------------------------------------------------------

/** The raw bytes of a Socket.IO client that writes everything at once. */
function sameWritePayload(frames) {
  const key = newKey();
  return { key, payload: Buffer.concat([upgradeRequest({ key }), textFrames(...frames)]) };
}

/** Checks 101 + accept key + EIO open + CONNECT answer; returns the handshake objects. */
async function expectUpgraded(c, key) {
  const head = await c.response;
  assert.equal(head.statusCode, 101, head.statusLine);
  assert.equal(head.headers.upgrade.toLowerCase(), 'websocket');
  assert.equal(head.headers['sec-websocket-accept'], acceptFor(key));
  const open = await c.next((t) => t.startsWith('0'));
  const eio = JSON.parse(open.slice(1));
  assert.equal(typeof eio.sid, 'string');
  const connect = await c.next((t) => t.startsWith('40') || t.startsWith('44'));
  assert.match(connect, /^40\{"sid":"[^"]+"/, `CONNECT answer ${connect}`);
  const texts = c.texts();
  assert.ok(texts.indexOf(open) < texts.indexOf(connect), 'EIO open comes before the CONNECT answer');
  return { eio, connect: JSON.parse(connect.slice(2)) };
}

async function sameWriteBasic(port, tlsOptions) {
  const tok = token('alice', { username: 'Alice' });
  const { key, payload } = sameWritePayload([
    '40' + JSON.stringify({ token: tok }),
    '420["joinRoom","r"]',
    '421["sendMessage",{"roomId":"r","text":"in the same write"}]',
    '422["getHistory",{"roomId":"r"}]',
  ]);
  const c = rawUpgrade({ port, payload, tls: tlsOptions });
  try {
    await expectUpgraded(c, key);
    assert.equal(await c.next((t) => t.startsWith('430')), '430[null]');
    const members = await c.next((t) => t.startsWith('42["roomMembers"'));
    assert.deepEqual(JSON.parse(members.slice(2))[1], { roomId: 'r', members: [{ userId: 'alice', username: 'Alice' }] });
    const msg = JSON.parse((await c.next((t) => t.startsWith('42["message"'))).slice(2))[1];
    assert.equal(msg.text, 'in the same write');
    const ack1 = JSON.parse((await c.next((t) => t.startsWith('431'))).slice(3));
    assert.deepEqual(ack1, [null, { id: msg.id, timestamp: msg.timestamp }]);
    const ack2 = JSON.parse((await c.next((t) => t.startsWith('432'))).slice(3));
    assert.equal(ack2[0], null);
    assert.deepEqual(ack2[1].messages.map((m) => m.text), ['in the same write']);
    // acks come in request order
    const order = c.texts().filter((t) => /^43\d/.test(t)).map((t) => t.slice(0, 3));
    assert.deepEqual(order, ['430', '431', '432']);
  } finally {
    c.close();
  }
}

describe('frames in the same TCP write as the upgrade request are not lost', () => {
  let srv;
  before(async () => { srv = await startApp({ rateLimitPerSecond: 0 }); });
  after(() => srv && srv.close());

  it('upgrade + CONNECT + joinRoom + sendMessage + getHistory in one write()', { timeout: 10000 }, async () => {
    await sameWriteBasic(srv.port);
  });

  it('90 joinRoom requests in one write with the upgrade: 90 acks, in order', { timeout: 10000 }, async () => {
    const n = 90;
    const frames = ['40' + JSON.stringify({ token: token('bob') })];
    for (let i = 0; i < n; i++) frames.push(`42${i}["joinRoom","many-${i}"]`);
    const { key, payload } = sameWritePayload(frames);
    const c = rawUpgrade({ port: srv.port, payload });
    try {
      await expectUpgraded(c, key);
      for (let i = 0; i < n; i++) assert.equal(await c.next((t) => t.startsWith(`43${i}[`)), `43${i}[null]`);
      const order = c.texts().filter((t) => /^43\d/.test(t)).map((t) => Number(/^43(\d+)/.exec(t)[1]));
      assert.deepEqual(order, [...Array(n).keys()]);
      assert.equal(srv.engine.presence('many-89').length, 1);
    } finally {
      c.close();
    }
  });

  it('more than Node\'s 64 KiB read-ahead in the same write: every message arrives', { timeout: 15000 }, async () => {
    const n = 40;
    const text = (i) => `${String(i).padStart(3, '0')}:` + 'x'.repeat(3990);
    const frames = ['40' + JSON.stringify({ token: token('carol') }), '420["joinRoom","big"]'];
    for (let i = 0; i < n; i++) frames.push(`42${i + 1}${JSON.stringify(['sendMessage', { roomId: 'big', text: text(i) }])}`);
    const { key, payload } = sameWritePayload(frames);
    assert.ok(payload.length > 150 * 1024, `payload ${payload.length} bytes`);
    const c = rawUpgrade({ port: srv.port, payload });
    try {
      await expectUpgraded(c, key);
      assert.equal(await c.next((t) => t.startsWith('430')), '430[null]');
      for (let i = 0; i < n; i++) {
        const ack = JSON.parse((await c.next((t) => t.startsWith(`43${i + 1}[`), 5000)).slice(2 + String(i + 1).length));
        assert.equal(ack[0], null, `ack ${i + 1}: ${JSON.stringify(ack)}`);
      }
      const texts = c.texts().filter((t) => t.startsWith('42["message"')).map((t) => JSON.parse(t.slice(2))[1].text);
      assert.equal(texts.length, n);
      assert.deepEqual(texts, [...Array(n).keys()].map(text), 'every message, in order, intact');
    } finally {
      c.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('Fastify HTTPS app: TLS sockets are bridged', () => {
  let srv;
  let cert;
  before(async () => {
    cert = selfSignedCert();
    srv = await startApp({ rateLimitPerSecond: 0 }, { https: cert });
    srv.engine.on('whoami', async (socket) => socket.user.id);
  });
  after(() => srv && srv.close());
  afterEach(closeAll);

  for (const tr of TRANSPORTS) {
    it(`${tr.name} over HTTPS: connect, joinRoom, sendMessage round trip, server emit`, { timeout: 15000 }, async () => {
      const room = `tls-${tr.transports.join('-')}`;
      const alice = await openOn(tr, srv.url, { ca: cert.cert, auth: { token: token('alice', { username: 'Alice' }) } });
      const bob = await openOn(tr, srv.url, { rejectUnauthorized: false, auth: { token: token('bob') } });
      const ra = recorder(alice);
      const rb = recorder(bob);
      await request(alice, 'joinRoom', room);
      await request(bob, 'joinRoom', room);
      const ack = await request(alice, 'sendMessage', { roomId: room, text: 'over TLS' });
      const [m] = await rb.next('message');
      assertFullMessage(m, { roomId: room, text: 'over TLS', userId: 'alice', username: 'Alice' });
      assert.equal(m.id, ack.id);
      assert.deepEqual((await ra.next('message'))[0], m);
      assert.equal(srv.engine.to(room).emit('notice', 'tls'), 2);
      assert.equal((await rb.next('notice'))[0], 'tls');
      assert.equal(await request(bob, 'whoami'), 'bob');
      assert.equal(alice.io.engine.transport.name, tr.final);
    });
  }

  it('a large message over the bridge arrives intact', { timeout: 15000 }, async () => {
    const alice = await userSocket(srv.url, 'alice', { ca: cert.cert });
    const bob = await userSocket(srv.url, 'bob', { ca: cert.cert });
    await request(alice, 'joinRoom', 'tls-big');
    await request(bob, 'joinRoom', 'tls-big');
    const rb = recorder(bob);
    const big = 'é'.repeat(3999) + '!';
    await request(alice, 'sendMessage', { roomId: 'tls-big', text: big });
    assert.equal((await rb.next('message'))[0].text, big);
    const blob = { data: 'y'.repeat(200000) };
    srv.engine.to('tls-big').emit('blob', blob);
    assert.deepEqual((await rb.next('blob'))[0], blob);
  });

  it('frames in the same TLS write as the upgrade request are not lost', { timeout: 10000 }, async () => {
    await sameWriteBasic(srv.port, { ca: cert.cert });
  });
});

after(closeApps);

// ---------------------------------------------------------------------------------------------
// Known issues in node/ (found by this suite; reported, not fixed here). Each test states the
// expected behaviour (they were found open, then fixed in node/).

const os = require('node:os');
const fs = require('node:fs');
const pathMod = require('node:path');

/** Resolves 'response <status line>', 'closed' or 'silent' (nothing within ms). */
function answerOf(c, ms) {
  let timer;
  const silent = new Promise((r) => { timer = setTimeout(() => r('silent'), ms); });
  return Promise.race([
    c.response.then((h) => `response ${h.statusLine}`, () => 'closed'),
    c.closed.then(() => 'closed'),
    silent,
  ]).finally(() => clearTimeout(timer));
}

/** A client that joins `room`, then stops reading; the room is flooded; returns what it got. */
async function slowReaderFlood(srv, { tlsOptions, count = 1000, size = 10000 } = {}) {
  const { payload } = sameWritePayload(['40' + JSON.stringify({ token: token('slow') }), '420["joinRoom","flood"]']);
  const c = rawUpgrade({ port: srv.port, payload, tls: tlsOptions });
  try {
    await c.next((t) => t.startsWith('430'));
    c.socket.pause(); // never reads again (until the end)
    const blob = { data: 'z'.repeat(size) };
    for (let i = 0; i < count; i++) {
      srv.engine.to('flood').emit('blob', blob);
      if (i % 100 === 99) await sleep(5);
    }
    await sleep(1000);
    c.socket.resume();
    const closed = await Promise.race([c.closed.then(() => true), sleep(2000).then(() => false)]);
    const got = c.frames.filter((f) => f.text && f.text.startsWith('42["blob"')).length;
    return { closed, got };
  } finally {
    c.close();
  }
}

describe('regressions: slow TLS readers, close with pending polls, unserved upgrades, Unix sockets', () => {
  afterEach(closeAll);

  it('control: a plain TCP client that does not read is disconnected at its outbound queue limit', { timeout: 20000 }, async () => {
    const srv = await startApp({ outboundQueueFrames: 64, outboundQueueBytes: 256 * 1024 });
    try {
      const { closed, got } = await slowReaderFlood(srv);
      assert.equal(closed, true, 'the server closed the slow reader');
      assert.ok(got < 1000, `the slow reader got ${got} of 1000 frames`);
    } finally {
      await srv.close();
    }
  });

  it('a TLS (bridged) client that does not read is disconnected at its outbound queue limit too', {
    timeout: 20000,
  }, async () => {
    const cert = selfSignedCert();
    const srv = await startApp({ outboundQueueFrames: 64, outboundQueueBytes: 256 * 1024 }, { https: cert });
    try {
      const { closed, got } = await slowReaderFlood(srv, { tlsOptions: { ca: cert.cert } });
      assert.equal(closed, true, `the server closed the slow reader (it got ${got} of 1000 frames)`);
      assert.ok(got < 1000, `the slow reader got ${got} of 1000 frames`);
    } finally {
      await srv.close();
    }
  });

  it('app.close() does not wait for a pending long-poll (it resolves promptly)', {
    timeout: 20000,
  }, async () => {
    const srv = await startApp({ pingInterval: 2500, pingTimeout: 2000 });
    const poll = await userSocket(srv.url, 'bob', { transports: ['polling'] });
    await request(poll, 'joinRoom', 'x');
    await sleep(300); // the client's next long-poll GET is now pending in the engine
    const gone = once(poll, 'disconnect', 5000);
    const t0 = Date.now();
    await srv.close();
    const took = Date.now() - t0;
    await gone.catch(() => {});
    // The point is not speed: without the fix close() waits for the poll's next ping (2.5 s).
    assert.ok(took < 2000, `app.close() took ${took} ms with a long-poll pending (pingInterval 2500)`);
    poll.close();
  });

  it('a WebSocket upgrade for a path the engine does not serve is answered, not left hanging', {
    timeout: 20000,
  }, async () => {
    const srv = await startApp();
    const serverSide = [];
    // Track sockets without adding an 'upgrade' listener (the plugin answers unserved paths
    // only when it is the server's one upgrade listener).
    srv.app.server.on('connection', (socket) => serverSide.push(socket));
    const c = rawUpgrade({ port: srv.port, payload: upgradeRequest({ path: '/not-socket-io' }) });
    try {
      const answer = await answerOf(c, 1500);
      assert.notEqual(answer, 'silent', 'no answer within 1.5 s');
    } finally {
      c.close();
      for (const s of serverSide) s.destroy(); // or app.close() would wait for it forever
      await srv.close();
    }
  });

  it('control: long-polling over a Unix socket listener works', { timeout: 20000 }, async () => {
    const dir = fs.mkdtempSync(pathMod.join(os.tmpdir(), 'sb-unix-'));
    const socketPath = pathMod.join(dir, 'app.sock');
    const Fastify = require('fastify');
    const app = Fastify();
    await app.register(require('@switchboard/node/fastify'), { jwtSecret: require('../helpers/fastify').SECRET });
    await app.listen({ path: socketPath });
    try {
      const res = await new Promise((resolve, reject) => {
        const http = require('node:http');
        http.get({ socketPath, path: '/socket.io/?EIO=4&transport=polling' }, (r) => {
          let body = '';
          r.on('data', (d) => { body += d; });
          r.on('end', () => resolve({ status: r.statusCode, body }));
        }).on('error', reject);
      });
      assert.equal(res.status, 200);
      assert.match(res.body, /^0\{"sid"/);
    } finally {
      await app.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a WebSocket upgrade on a Unix socket listener is served (bridged, as DESIGN.md says)', {
    timeout: 20000,
  }, async () => {
    const dir = fs.mkdtempSync(pathMod.join(os.tmpdir(), 'sb-unix-'));
    const socketPath = pathMod.join(dir, 'app.sock');
    const Fastify = require('fastify');
    const app = Fastify();
    await app.register(require('@switchboard/node/fastify'), { jwtSecret: require('../helpers/fastify').SECRET });
    await app.listen({ path: socketPath });
    const { key, payload } = sameWritePayload(['40' + JSON.stringify({ token: token('alice') }), '420["joinRoom","r"]']);
    const c = rawUpgrade({ socketPath, payload });
    try {
      const answer = await answerOf(c, 2000);
      assert.equal(answer, 'response HTTP/1.1 101 Switching Protocols');
      await expectUpgraded(c, key);
      assert.equal(await c.next((t) => t.startsWith('430')), '430[null]');
    } finally {
      c.close();
      await app.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
