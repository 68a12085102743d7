'use strict';
// Issue 18 item 4: the Socket.IO-like server API of @switchboard/node under a Fastify app:
// onConnection/onDisconnect with reasons, socket.data from the token's claims (reaching
// authorizeRoom and on() handlers), to([..]).except(..) delivering once, emitWithAck,
// rooms(), sockets(room), and one handler per event.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startApp, closeApps } = require('../helpers/fastify');
const { token } = require('../helpers/tokens');
const { connected, closeAll, request, once, noEvent, sleep } = require('../helpers/client');

afterEach(async () => {
  closeAll();
  await closeApps();
});

const as = (url, sub, claims = {}) => connected(url, { auth: { token: token(sub, { claims }) } });

/** Resolves once `check()` is truthy (polling every 20 ms), failing after `ms`. */
async function until(check, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('connection hooks', () => {
  it('onConnection and onDisconnect fire with the socket and Socket.IO reasons', async () => {
    const events = [];
    const { url, engine } = await startApp();
    engine
      .onConnection(async (socket) => {
        socket.join('welcome');
        events.push(['connect', socket.user.id]);
      })
      .onConnection((socket) => events.push(['second', socket.user.id]))
      .onDisconnect((socket, reason) => events.push(['disconnect', socket.user.id, reason, socket.rooms.includes('welcome')]));
    engine.on('my-rooms', (socket) => socket.rooms);
    const alice = await as(url, 'alice');
    // The client's first event waits for the hooks: the room joined there is already joined.
    assert.ok((await request(alice, 'my-rooms')).includes('welcome'));
    assert.deepEqual(events, [['connect', 'alice'], ['second', 'alice']]);
    const hello = once(alice, 'hello');
    engine.to('welcome').emit('hello', 1);
    assert.equal((await hello)[0], 1);

    alice.disconnect();
    await until(() => events.length === 3);
    assert.deepEqual(events[2], ['disconnect', 'alice', 'client namespace disconnect', true]);

    const bob = await as(url, 'bob');
    engine.on('kick-me', (socket) => { setTimeout(() => socket.disconnect(), 10); });
    await request(bob, 'kick-me');
    await until(() => events.length === 6);
    assert.deepEqual(events[5], ['disconnect', 'bob', 'server namespace disconnect', true]);

    const carol = await as(url, 'carol');
    carol.io.engine.close(); // the transport goes away without a goodbye
    await until(() => events.length === 9);
    assert.deepEqual(events[8], ['disconnect', 'carol', 'transport close', true]);
  });
});

describe('socket.data', () => {
  it("starts as the token's claims, reaches authorizeRoom and on() handlers, keeps changes, is dropped at disconnect", async () => {
    const asked = [];
    const stored = [];
    const { url, engine } = await startApp({
      authorizeRoom: async (user, roomId) => {
        asked.push([user.claims.tenant, roomId]);
        return roomId.startsWith(`${user.claims.tenant}:`);
      },
      storeMessage: async (message, sender) => { stored.push([message.text, sender.id, sender.claims.tenant]); },
    });
    engine.onConnection((socket) => { socket.data.visits = 1; });
    engine.on('whoami', (socket) => {
      socket.data.visits += 1;
      return { tenant: socket.data.tenant, role: socket.data.role, visits: socket.data.visits };
    });
    const alice = await as(url, 'alice', { tenant: 'acme', role: 'admin' });
    assert.deepEqual(await request(alice, 'whoami'), { tenant: 'acme', role: 'admin', visits: 2 });
    assert.deepEqual(await request(alice, 'whoami'), { tenant: 'acme', role: 'admin', visits: 3 });
    await request(alice, 'joinRoom', 'acme:ops');
    const refused = await request(alice, 'joinRoom', 'globex:ops').catch((e) => e);
    assert.equal(refused.code, 'ACCESS_DENIED');
    assert.deepEqual(asked, [['acme', 'acme:ops'], ['acme', 'globex:ops']]);
    await request(alice, 'sendMessage', { roomId: 'acme:ops', text: 'hi' });
    assert.deepEqual(stored, [['hi', 'alice', 'acme']]);

    alice.disconnect();
    await until(() => engine._data.size === 0);
  });
});

describe('broadcasts', () => {
  it('to([a, b]).except(c) reaches each socket in a or b but not in c exactly once', async () => {
    const { url, engine } = await startApp();
    const [a, ab, bc, c] = await Promise.all(['u1', 'u2', 'u3', 'u4'].map((u) => as(url, u)));
    await request(a, 'joinRoom', 'a');
    await request(ab, 'joinRoom', 'a');
    await request(ab, 'joinRoom', 'b');
    await request(bc, 'joinRoom', 'b');
    await request(bc, 'joinRoom', 'c');
    await request(c, 'joinRoom', 'c');
    const got = new Map();
    for (const [name, s] of Object.entries({ a, ab, bc, c })) {
      got.set(name, []);
      s.on('news', (n) => got.get(name).push(n));
    }
    engine.to(['a', 'b']).except('c').emit('news', 1);
    engine.to('a').to('c').emit('news', 2);
    await sleep(300);
    assert.deepEqual(Object.fromEntries(got), { a: [1, 2], ab: [1, 2], bc: [2], c: [2] });
    assert.throws(() => engine.to(['a', 42]), /room names/);
  });

  it("the host's broadcasts reach a client in the order they were made", async () => {
    const { url, engine } = await startApp();
    const alice = await as(url, 'alice');
    await request(alice, 'joinRoom', 'a');
    const seen = [];
    const all = new Promise((resolve) => alice.on('seq', (n) => { seen.push(n); if (n === 299) resolve(); }));
    // Every way a host broadcasts, interleaved: each used to be a task of its own.
    for (let i = 0; i < 300; i++) {
      if (i % 3 === 0) engine.to('a').emit('seq', i);
      else if (i % 3 === 1) engine.to(['a', 'b']).except('c').emit('seq', i);
      else engine.toUser('alice').emit('seq', i);
    }
    await all;
    assert.deepEqual(seen, Array.from({ length: 300 }, (_, i) => i));
  });
});

describe('emitWithAck', () => {
  it("resolves with the client's answer, rejects with TIMEOUT or DISCONNECTED", async () => {
    const { url, engine } = await startApp();
    // The hook runs on Node's thread after the engine accepted the client: wait for it.
    const connection = new Promise((resolve) => engine.onConnection(resolve));
    const alice = await as(url, 'alice');
    const server = await connection;
    alice.on('double', (n, ack) => ack(n * 2));
    assert.equal(await server.emitWithAck('double', 21, { timeout: 2000 }), 42);

    const started = Date.now();
    const silent = await server.emitWithAck('ignored', 1, { timeout: 300 }).catch((e) => e);
    assert.equal(silent.code, 'TIMEOUT');
    assert.ok(Date.now() - started >= 290, `${Date.now() - started} ms`);

    alice.on('slow', () => {});
    const pending = server.emitWithAck('slow', 1, { timeout: 5000 }).catch((e) => e);
    await sleep(100);
    alice.disconnect();
    const gone = await pending;
    assert.equal(gone.code, 'DISCONNECTED');
    await assert.rejects(server.emitWithAck('x', 1, { timeout: 0 }), /timeout must be a positive/);
  });
});

describe('rooms() and sockets(room)', () => {
  it('list the rooms with sockets and the sockets of a room with their users and rooms', async () => {
    const { url, engine } = await startApp();
    const alice = await as(url, 'alice', { tenant: 'acme' });
    const bob = await as(url, 'bob');
    await request(alice, 'joinRoom', 'lobby');
    await request(bob, 'joinRoom', 'lobby');
    const rooms = engine.rooms();
    assert.deepEqual(rooms.find((r) => r.roomId === 'lobby'), { roomId: 'lobby', sockets: 2 });
    assert.ok(rooms.some((r) => r.roomId === 'user:alice'));
    const sockets = await engine.sockets('lobby');
    assert.deepEqual(sockets.map((s) => s.user.id).sort(), ['alice', 'bob']);
    const a = sockets.find((s) => s.user.id === 'alice');
    assert.equal(a.id, alice.id);
    assert.equal(a.user.claims.tenant, 'acme');
    assert.deepEqual(a.rooms.sort(), ['lobby', 'user:alice']);
    assert.deepEqual(await engine.sockets('nobody-here'), []);
  });
});

describe('handlers per event', () => {
  it('a second on(event) throws; off(event) then on(event) replaces it', async () => {
    const { url, engine } = await startApp();
    engine.on('ping-me', () => 'first');
    assert.throws(() => engine.on('ping-me', () => 'second'), /engine\.on\('ping-me'\): a handler is already registered/);
    const alice = await as(url, 'alice');
    assert.equal(await request(alice, 'ping-me'), 'first');
    engine.off('ping-me').on('ping-me', () => 'second');
    assert.equal(await request(alice, 'ping-me'), 'second');
    await noEvent(alice, 'error', 50);
  });

  it('on(event) refuses the events the engine answers itself and the names Socket.IO reserves', async () => {
    const { engine } = await startApp();
    // Registered, such a handler would never run: the engine answers joinRoom, and no client
    // can send `disconnect`.
    assert.throws(() => engine.on('joinRoom', () => 'mine'), /engine\.on\('joinRoom'\): `joinRoom` is a chat contract event/);
    assert.throws(() => engine.on('refreshToken', () => 'mine'), /chat contract event/);
    assert.throws(() => engine.on('disconnect', () => {}), /reserved by Socket\.IO/);
    assert.throws(() => engine.on(42, () => {}), /event must be a string/);
  });
});
