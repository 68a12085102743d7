'use strict';
// Issue 16, auth and access: connection state recovery re-checks who the client is and the
// token's expiry; CORS without configured origins never grants credentials; `doc:` rooms are
// the Yjs documents' own; an empty or short JWT secret is refused by every binding.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const jwt = require('jsonwebtoken');

const { startServer, SECRET } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const {
  sleep, connect, closeAll, once, request, expectError, recorder, userSocket,
} = require('../helpers/client');

const EVIL = 'https://evil.example';

let seq = 0;
const room = (prefix = 'auth') => `${prefix}-${++seq}`;

/** A socket that reconnects quickly, for user `sub` with token `tok`, in `roomId`. */
async function recoverable(url, tok, roomId) {
  const s = connect(url, {
    reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, reconnectionAttempts: 3,
    auth: { token: tok },
  });
  await s.ready;
  assert.notEqual(s.recovered, true);
  await request(s, 'joinRoom', roomId);
  return s;
}

/** Drops the transport under `s` (a network failure: recoverable) and resolves with the outcome of the first reconnect. */
async function dropAndReturn(s) {
  const dropped = once(s, 'disconnect', 3000);
  s.io.engine.close();
  await dropped;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no connect or connect_error within 5 s')), 5000);
    s.once('connect', () => { clearTimeout(timer); resolve({ connected: true }); });
    s.once('connect_error', (err) => { clearTimeout(timer); resolve({ connected: false, err }); });
  });
}

describe('connection state recovery checks the user and the token expiry (issue 16 item 8)', () => {
  let srv;
  // These sessions stay open past their token's exp (since issue 19 the server would end
  // them at it): what is tested is that recovery refuses them afterwards.
  before(async () => { srv = await startServer({ args: ['--allow-expired-connections'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('a session past its token exp is not recovered with only {pid}: connect_error "Token expired"', { timeout: 15000 }, async () => {
    const r = room();
    const tok = jwt.sign({ sub: 'alice', username: 'Alice' }, SECRET, { algorithm: 'HS256', expiresIn: 2 });
    const a = await recoverable(srv.url, tok, r);
    const sid = a.id;
    // past exp (whole seconds: exp < now once a full second after it has begun)
    await sleep(3200);
    // the client now presents only what recovery needs: pid (and offset), no token
    a.auth = {};
    const outcome = await dropAndReturn(a);
    assert.equal(outcome.connected, false, `refused, not ${outcome.connected ? `recovered=${a.recovered}` : ''}`);
    assert.equal(outcome.err.message, 'Token expired');
    assert.notEqual(a.recovered, true);
    assert.notEqual(a.id, sid);
  });

  it('the same expired token on recovery: connect_error "Token expired"', { timeout: 15000 }, async () => {
    const r = room();
    const tok = jwt.sign({ sub: 'alice', username: 'Alice' }, SECRET, { algorithm: 'HS256', expiresIn: 2 });
    const a = await recoverable(srv.url, tok, r);
    await sleep(3200);
    const outcome = await dropAndReturn(a);
    assert.equal(outcome.connected, false);
    assert.equal(outcome.err.message, 'Token expired');
  });

  it('a session past its token exp comes back with a fresh token of the same user', { timeout: 15000 }, async () => {
    const r = room();
    const tok = jwt.sign({ sub: 'alice', username: 'Alice' }, SECRET, { algorithm: 'HS256', expiresIn: 2 });
    const a = await recoverable(srv.url, tok, r);
    const sid = a.id;
    await sleep(3200);
    // The app refreshed its token before reconnecting: the user proved who it is again.
    a.auth = { token: token('alice', { username: 'Alice' }) };
    const outcome = await dropAndReturn(a);
    assert.equal(outcome.connected, true, outcome.err && outcome.err.message);
    assert.equal(a.recovered, true);
    assert.equal(a.id, sid);
    await request(a, 'sendMessage', { roomId: r, text: 'still in the room' });
  });

  it('another user\'s token: not recovered; the client is that user, in none of the old rooms', { timeout: 15000 }, async () => {
    const r = room();
    const a = await recoverable(srv.url, token('alice', { username: 'Alice' }), r);
    const sid = a.id;
    const bob = await userSocket(srv.url, 'bob', { username: 'Bob' });
    await request(bob, 'joinRoom', r);
    a.auth = { token: token('mallory', { username: 'Mallory' }) };
    const outcome = await dropAndReturn(a);
    assert.equal(outcome.connected, true);
    assert.equal(a.recovered, false, 'socket.recovered');
    assert.notEqual(a.id, sid, 'a new socket id');
    // not in alice's room: a message there is refused, and alice's messages do not reach it
    await expectError(request(a, 'sendMessage', { roomId: r, text: 'as alice?' }), 'NOT_IN_ROOM');
    const ra = recorder(a);
    await request(bob, 'sendMessage', { roomId: r, text: 'for the room' });
    await sleep(300);
    assert.deepEqual(ra.all('message'), []);
    // and it is mallory: joining shows mallory
    const r2 = room();
    await request(a, 'joinRoom', r2);
    const [m] = await ra.next('roomMembers', { filter: (x) => x.roomId === r2 });
    assert.deepEqual(m.members, [{ userId: 'mallory', username: 'Mallory' }]);
  });

  it('no token on recovery (not expired): not recovered, connect_error "Authentication required"', { timeout: 15000 }, async () => {
    const a = await recoverable(srv.url, token('alice'), room());
    a.auth = {};
    const outcome = await dropAndReturn(a);
    assert.equal(outcome.connected, false);
    assert.equal(outcome.err.message, 'Authentication required');
  });

  it('an invalid token on recovery: connect_error "Invalid token"', { timeout: 15000 }, async () => {
    const a = await recoverable(srv.url, token('alice'), room());
    a.auth = { token: token('alice', { secret: 'not-the-' + SECRET }) };
    const outcome = await dropAndReturn(a);
    assert.equal(outcome.connected, false);
    assert.equal(outcome.err.message, 'Invalid token');
  });

  it('the same user with a valid (fresh) token: recovered, rooms and missed messages back', { timeout: 15000 }, async () => {
    const r = room();
    const a = await recoverable(srv.url, token('alice', { username: 'Alice' }), r);
    const ra = recorder(a);
    const sid = a.id;
    const bob = await userSocket(srv.url, 'bob', { username: 'Bob' });
    await request(bob, 'joinRoom', r);
    a.auth = { token: token('alice', { username: 'Alice', expiresIn: '2h' }) };
    const dropped = once(a, 'disconnect', 3000);
    a.io.engine.close();
    await dropped;
    const back = once(a, 'connect', 5000);
    await request(bob, 'sendMessage', { roomId: r, text: 'missed while away' });
    await back;
    assert.equal(a.recovered, true, 'socket.recovered');
    assert.equal(a.id, sid);
    await ra.next('message', { filter: (m) => m.text === 'missed while away' });
  });
});

// ---------------------------------------------------------------------------------------------

/** A raw HTTP request; resolves with {status, headers, body}. */
function raw(url, { method = 'GET', path = '/', headers = {}, body } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe('CORS without --cors-origin (issue 16 item 10)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--api-key', 'api-key-for-the-cors-test'] }); });
  after(() => srv && srv.stop());

  it('a polling handshake from a foreign origin: readable (*), never with credentials', async () => {
    const res = await raw(srv.url, { path: '/socket.io/?EIO=4&transport=polling', headers: { Origin: EVIL } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
    assert.notEqual(res.headers['access-control-allow-origin'], EVIL);
  });

  it('a polling POST from a foreign origin has no credentials header either', async () => {
    const hs = await raw(srv.url, { path: '/socket.io/?EIO=4&transport=polling' });
    const sid = JSON.parse(hs.body.slice(1)).sid;
    const res = await raw(srv.url, {
      method: 'POST', path: `/socket.io/?EIO=4&transport=polling&sid=${sid}`,
      headers: { Origin: EVIL, 'Content-Type': 'text/plain;charset=UTF-8' }, body: '40',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
  });

  it('preflights allow only the headers the engine uses, not what they are asked for', async () => {
    for (const path of ['/api/rooms', '/socket.io/?EIO=4&transport=polling', '/events']) {
      const res = await raw(srv.url, {
        method: 'OPTIONS', path,
        headers: { Origin: EVIL, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-evil, authorization' },
      });
      assert.equal(res.status, 204, path);
      const allowed = (res.headers['access-control-allow-headers'] || '').toLowerCase().split(/\s*,\s*/);
      assert.ok(!allowed.includes('x-evil'), `${path}: ${allowed}`);
      assert.ok(allowed.includes('authorization') && allowed.includes('content-type'), `${path}: ${allowed}`);
      assert.equal(res.headers['access-control-allow-credentials'], undefined, path);
    }
  });

  it('/metrics and /healthz answer without CORS headers', async () => {
    for (const path of ['/metrics', '/healthz']) {
      const res = await raw(srv.url, { path, headers: { Origin: EVIL } });
      assert.equal(res.status, 200, path);
      assert.equal(res.headers['access-control-allow-origin'], undefined, path);
      assert.equal(res.headers['access-control-allow-credentials'], undefined, path);
    }
  });

  it('the server warns at start that no origins are configured', () => {
    assert.match(srv.stderr, /no CORS origins configured/);
  });
});

describe('CORS with --cors-origin: the listed origin keeps its credentials', () => {
  const SITE = 'https://app.example';
  let srv;
  before(async () => { srv = await startServer({ args: ['--cors-origin', SITE] }); });
  after(() => srv && srv.stop());

  it('listed: echoed with credentials; /metrics still without CORS', async () => {
    const res = await raw(srv.url, { path: '/socket.io/?EIO=4&transport=polling', headers: { Origin: SITE } });
    assert.equal(res.headers['access-control-allow-origin'], SITE);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    const m = await raw(srv.url, { path: '/metrics', headers: { Origin: SITE } });
    assert.equal(m.headers['access-control-allow-origin'], undefined);
    const evil = await raw(srv.url, { path: '/socket.io/?EIO=4&transport=polling', headers: { Origin: EVIL } });
    assert.equal(evil.status, 403);
  });
});

// ---------------------------------------------------------------------------------------------

describe('`doc:` rooms are reserved for Yjs documents (issue 16, authorizeRoom)', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('joinRoom("doc:x") is refused with INVALID_ROOM; other names with doc in them are fine', async () => {
    const s = await userSocket(srv.url, 'alice', { rooms: ['*'] });
    await expectError(request(s, 'joinRoom', 'doc:x'), 'INVALID_ROOM');
    await expectError(request(s, 'sendMessage', { roomId: 'doc:x', text: 'hi' }), 'INVALID_ROOM');
    await request(s, 'joinRoom', 'docs:x');
    await request(s, 'joinRoom', 'my-doc:x');
  });

  it('SSE ?rooms=doc:x is refused with INVALID_ROOM', async () => {
    const res = await raw(srv.url, {
      path: '/events?rooms=lobby,doc:x',
      headers: { Authorization: `Bearer ${token('alice')}`, Accept: 'text/event-stream' },
    });
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.body).code, 'INVALID_ROOM');
  });
});

// ---------------------------------------------------------------------------------------------

describe('JWT secrets: empty and short ones are refused by the engine (issue 16 item 11)', () => {
  it('`serve --jwt-secret` shorter than 16 bytes exits non-zero naming the minimum', async () => {
    const { runCli } = require('../helpers/server');
    const r = await runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--jwt-secret', 'short-secret']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /at least 16 bytes/);
    assert.doesNotMatch(r.stdout, /switchboard listening on/);
  });

  it('a token with nbf a day ahead is refused: "Token not yet valid" (issue 16 item 9, message from issue 19)', async () => {
    const srv = await startServer();
    try {
      const now = Math.floor(Date.now() / 1000);
      const early = jwt.sign({ sub: 'alice', nbf: now + 86400 }, SECRET, { algorithm: 'HS256', expiresIn: '2d' });
      const s = connect(srv.url, { auth: { token: early } });
      const err = await s.ready.then(() => null, (e) => e);
      assert.ok(err, 'refused');
      assert.equal(err.message, 'Token not yet valid');
    } finally {
      closeAll();
      await srv.stop();
    }
  });
});

describe('Node binding: new Engine({jwtSecret}) refuses empty and short secrets (issue 16 item 11)', () => {
  it('throws an error naming the 16-byte minimum; a 16-byte secret works', async () => {
    const { Engine } = require('@switchboard/node');
    // issue 18: the error names the option in Node's spelling; an empty one is refused as unset
    assert.throws(() => new Engine({ jwtSecret: '' }), /`jwtSecret` is empty or undefined; set it or remove it/);
    assert.throws(() => new Engine({ jwtSecret: 'fifteen-bytes!!' }), /jwtSecret.*at least 16 bytes/);
    const engine = new Engine({ jwtSecret: 'sixteen-bytes!!!' });
    await engine.close();
  });
});
