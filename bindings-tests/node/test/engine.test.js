'use strict';
// Issue 2: the Engine.IO / Socket.IO engine and the `switchboard` command, driven by
// unmodified socket.io-client 4.8, raw `ws` clients and fetch.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const jwt = require('jsonwebtoken');

const { SECRET, startServer, startConformance, freePort, runCli } = require('../helpers/server');
const {
  token, expiredToken, wrongSecretToken, noneToken, rsaKeyPair, rs256Token, hmacToken,
} = require('../helpers/tokens');
const {
  sleep, connect, connected, connectError, userSocket, closeAll, once, emitAck, request, recorder,
} = require('../helpers/client');
const {
  rawWs, closedWithin, engineOpen, rawSocketIO, pollingHandshake, pollingUrl, getMetrics, metricValue,
} = require('../helpers/raw');

const TRANSPORTS = [
  { name: 'WebSocket only', transports: ['websocket'], initial: 'websocket', final: 'websocket' },
  { name: 'HTTP long-polling only', transports: ['polling'], initial: 'polling', final: 'polling' },
  { name: 'polling upgraded to WebSocket', transports: ['polling', 'websocket'], initial: 'polling', final: 'websocket' },
];

/** Opens a socket on transport `tr` and waits until it is connected (and upgraded, if asked). */
async function openOn(tr, url, opts = {}) {
  const s = connect(url, { transports: tr.transports, ...opts });
  assert.equal(s.io.engine.transport.name, tr.initial, 'initial transport');
  const upgraded = tr.initial !== tr.final ? once(s.io.engine, 'upgrade', 5000) : null;
  await s.ready;
  if (upgraded) await upgraded;
  assert.equal(s.io.engine.transport.name, tr.final, 'transport after connect');
  return s;
}

const mkTmp = (prefix) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

// ---------------------------------------------------------------------------------------------

describe('switchboard serve: the three transports', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  for (const tr of TRANSPORTS) {
    it(`${tr.name}: connects, acks a request, receives server events`, { timeout: 15000 }, async () => {
      const room = `lobby-${tr.transports.join('-')}`;
      const alice = await openOn(tr, srv.url, { auth: { token: token('alice', { username: 'Alice' }) } });
      const ra = recorder(alice);

      // client -> server request with an ack: joinRoom('lobby', cb) -> cb(null)
      await request(alice, 'joinRoom', room);
      // server -> client event
      const [members] = await ra.next('roomMembers');
      assert.deepEqual(members, { roomId: room, members: [{ userId: 'alice', username: 'Alice' }] });

      // a second client on the same transport: broadcasts reach alice over it
      const bob = await openOn(tr, srv.url, { auth: { token: token('bob', { username: 'Bob' }) } });
      const rb = recorder(bob);
      await request(bob, 'joinRoom', room);
      const [joined] = await ra.next('userJoined');
      assert.deepEqual(joined, { roomId: room, userId: 'bob', username: 'Bob' });

      const ack = await request(bob, 'sendMessage', { roomId: room, text: `hi over ${tr.name}` });
      const [m] = await ra.next('message');
      assert.equal(m.text, `hi over ${tr.name}`);
      assert.equal(m.id, ack.id);
      await rb.next('message');
      assert.equal(alice.io.engine.transport.name, tr.final, 'still on the final transport');
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('conformance example: events, acks and binary both ways', () => {
  let srv;
  before(async () => { srv = await startConformance(); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  for (const tr of TRANSPORTS) {
    describe(tr.name, () => {
      it('emits `auth` with the handshake auth object on connect', async () => {
        const s = connect(srv.url, { transports: tr.transports, auth: { foo: 'bar' } });
        const rec = recorder(s);
        await s.ready;
        const [auth] = await rec.next('auth');
        assert.deepEqual(auth, { foo: 'bar' });
      });

      it('message -> message-back with the same arguments', async () => {
        const s = await openOn(tr, srv.url);
        const rec = recorder(s);
        s.emit('message', 1, '2', { three: 3, nested: [true, null, 'x'] });
        const args = await rec.next('message-back');
        assert.deepEqual(args, [1, '2', { three: 3, nested: [true, null, 'x'] }]);
      });

      it('message-with-ack: the server acks with the same arguments', async () => {
        const s = await openOn(tr, srv.url);
        const first = await s.timeout(3000).emitWithAck('message-with-ack', 1, '2');
        assert.equal(first, 1);
        const all = await emitAck(s, 'message-with-ack', 1, '2', { three: [false] });
        assert.deepEqual(all, [1, '2', { three: [false] }]);
      });

      it('a Buffer payload round-trips as binary', async () => {
        const s = await openOn(tr, srv.url);
        const rec = recorder(s);
        s.emit('message', Buffer.from([1, 2, 3]));
        const [back] = await rec.next('message-back');
        assert.ok(Buffer.isBuffer(back), `expected a Buffer, got ${typeof back} ${back && back.constructor.name}`);
        assert.deepEqual([...back], [1, 2, 3]);

        // several attachments, nested, with text around them (BINARY_EVENT with 2 attachments)
        s.emit('message', 'text', { a: Buffer.from([0, 255]), b: [Buffer.alloc(0), Buffer.from('ü')] });
        const args = await rec.next('message-back');
        assert.equal(args[0], 'text');
        assert.ok(Buffer.isBuffer(args[1].a) && Buffer.isBuffer(args[1].b[0]) && Buffer.isBuffer(args[1].b[1]));
        assert.deepEqual([...args[1].a], [0, 255]);
        assert.equal(args[1].b[0].length, 0);
        assert.equal(args[1].b[1].toString(), 'ü');
      });

      it('BINARY_ACK: binary ack arguments come back as Buffers', async () => {
        const s = await openOn(tr, srv.url);
        const [buf, n] = await emitAck(s, 'message-with-ack', Buffer.from([7, 8, 9]), 4);
        assert.ok(Buffer.isBuffer(buf));
        assert.deepEqual([...buf], [7, 8, 9]);
        assert.equal(n, 4);
      });

      it('server -> client ack: `question` acked by the client, `answer` carries the ack value', async () => {
        const s = await openOn(tr, srv.url);
        const rec = recorder(s);
        s.on('question', (x, cb) => cb(x * 2));
        s.emit('server-ack-test', 21);
        const [q] = await rec.next('question');
        assert.equal(q, 21);
        const [answer] = await rec.next('answer');
        assert.equal(answer, 42);
      });
    });
  }

  it('namespace /custom connects and gets its own `auth`', async () => {
    const s = connect(srv.url + '/custom', { auth: { token: 'abc' } });
    const rec = recorder(s);
    await s.ready;
    const [auth] = await rec.next('auth');
    assert.deepEqual(auth, { token: 'abc' });
  });

  it('an unknown namespace gets connect_error "Invalid namespace"', async () => {
    const err = await connectError(srv.url + '/nope');
    assert.equal(err.message, 'Invalid namespace');
  });

  // What the official v4/v5 protocol suites check on the wire, kept here so it stays tested.
  describe('raw protocol (as the official suites check it)', () => {
    it('polling handshake: 0{sid, upgrades:["websocket"], pingInterval 300, pingTimeout 200, maxPayload 1e6}', async () => {
      const h = await pollingHandshake(srv.url);
      assert.equal(h.status, 200);
      assert.deepEqual(Object.keys(h.open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
      assert.equal(typeof h.open.sid, 'string');
      assert.deepEqual(h.open.upgrades, ['websocket']);
      assert.equal(h.open.pingInterval, 300);
      assert.equal(h.open.pingTimeout, 200);
      assert.equal(h.open.maxPayload, 1000000);
    });

    it('websocket handshake lists no upgrades', async () => {
      const raw = rawWs(srv.url);
      try {
        const open = await engineOpen(raw);
        assert.deepEqual(open.upgrades, []);
      } finally { raw.close(); }
    });

    it('bad EIO, bad transport and a POST without sid answer 400', async () => {
      for (const q of ['transport=polling', 'EIO=abc&transport=polling', 'EIO=4', 'EIO=4&transport=abc']) {
        const res = await fetch(`${srv.url}/socket.io/?${q}`);
        await res.arrayBuffer();
        assert.equal(res.status, 400, q);
      }
      const post = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`, { method: 'POST', body: '40' });
      await post.arrayBuffer();
      assert.equal(post.status, 400, 'POST without sid');
    });

    it('polling: ping/pong, and the close packet ends the session', async () => {
      const { sid } = await pollingHandshake(srv.url);
      const poll = await fetch(pollingUrl(srv.url, sid));
      assert.equal(await poll.text(), '2');
      const pong = await fetch(pollingUrl(srv.url, sid), { method: 'POST', body: '3' });
      await pong.arrayBuffer();
      assert.equal(pong.status, 200);
      const [pending] = await Promise.all([
        fetch(pollingUrl(srv.url, sid)),
        sleep(50).then(() => fetch(pollingUrl(srv.url, sid), { method: 'POST', body: '1' })),
      ]);
      assert.equal(pending.status, 200);
      assert.equal(await pending.text(), '6');
      const after = await fetch(pollingUrl(srv.url, sid));
      await after.arrayBuffer();
      assert.equal(after.status, 400);
    });

    it('polling upgrade by hand: 2probe/3probe, 5, then polling with that sid answers 400', async () => {
      const { sid } = await pollingHandshake(srv.url);
      const raw = rawWs(srv.url, { query: `EIO=4&transport=websocket&sid=${sid}` });
      try {
        await raw.opened;
        raw.send('2probe');
        assert.equal(await raw.next((d) => d !== '2'), '3probe');
        raw.send('5');
        await sleep(50);
        const poll = await fetch(pollingUrl(srv.url, sid));
        await poll.arrayBuffer();
        assert.equal(poll.status, 400);
        const second = rawWs(srv.url, { query: `EIO=4&transport=websocket&sid=${sid}` });
        assert.ok(await closedWithin(second, 2000), 'a second websocket with the same sid is closed');
      } finally { raw.close(); }
    });

    it('CONNECT answers 40{sid}, then `auth`; an unknown namespace answers 44/nope,{"message":"Invalid namespace"}', async () => {
      const raw = rawWs(srv.url);
      try {
        await engineOpen(raw);
        raw.send('40{"token":"123"}');
        const reply = await raw.next((d) => d !== '2');
        assert.match(reply, /^40\{/);
        assert.deepEqual(Object.keys(JSON.parse(reply.slice(2))), ['sid']);
        assert.equal(await raw.next((d) => d !== '2'), '42["auth",{"token":"123"}]');
        raw.send('40/nope,');
        assert.equal(await raw.next((d) => d !== '2'), '44/nope,{"message":"Invalid namespace"}');
      } finally { raw.close(); }
    });

    it('exact frames: plain event, event with ack, binary event with 2 attachments', async () => {
      const raw = rawWs(srv.url);
      try {
        await engineOpen(raw);
        raw.send('40');
        await raw.next((d) => typeof d === 'string' && d.startsWith('40'));
        await raw.next((d) => typeof d === 'string' && d.startsWith('42["auth"'));
        const notPing = (d) => d !== '2';
        raw.send('42["message",1,"2",{"3":[true]}]');
        assert.equal(await raw.next(notPing), '42["message-back",1,"2",{"3":[true]}]');
        raw.send('42456["message-with-ack",1,"2",{"3":[false]}]');
        assert.equal(await raw.next(notPing), '43456[1,"2",{"3":[false]}]');
        raw.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
        raw.send(Buffer.from([1, 2, 3]));
        raw.send(Buffer.from([4, 5, 6]));
        assert.equal(await raw.next(notPing), '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
        assert.deepEqual([...await raw.next(notPing)], [1, 2, 3]);
        assert.deepEqual([...await raw.next(notPing)], [4, 5, 6]);
        raw.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
        raw.send(Buffer.from([1, 2, 3]));
        raw.send(Buffer.from([4, 5, 6]));
        assert.equal(await raw.next(notPing), '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
        assert.deepEqual([...await raw.next(notPing)], [1, 2, 3]);
        assert.deepEqual([...await raw.next(notPing)], [4, 5, 6]);
      } finally { raw.close(); }
    });

    for (const bad of ['4abc', '42{}', '42abc["message-with-ack",1]']) {
      it(`invalid Socket.IO packet ${JSON.stringify(bad)} closes the connection`, async () => {
        const raw = rawWs(srv.url);
        try {
          await engineOpen(raw);
          raw.send('40');
          await raw.next((d) => typeof d === 'string' && d.startsWith('40'));
          raw.send(bad);
          assert.ok(await closedWithin(raw, 2000), 'connection closed');
        } finally { raw.close(); }
      });
    }

    it('a raw websocket that never answers pings is closed after pingInterval + pingTimeout', async () => {
      const raw = rawWs(srv.url);
      try {
        await engineOpen(raw);
        assert.ok(await closedWithin(raw, 2000), 'closed within 2 s (300 + 200 ms)');
      } finally { raw.close(); }
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('token refusals (HS256 server)', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  const keys = rsaKeyPair();
  const cases = [
    ['no token', {}, 'Authentication required'],
    ['an empty auth token', { auth: { token: '' } }, ['Authentication required', 'Invalid token']],
    ['a token signed with the wrong secret', { auth: { token: wrongSecretToken('alice') } }, 'Invalid token'],
    ['a garbage string', { auth: { token: 'not-a-jwt' } }, 'Invalid token'],
    ['three garbage segments', { auth: { token: 'aaa.bbb.ccc' } }, 'Invalid token'],
    ['a non-string token', { auth: { token: 12345 } }, ['Invalid token', 'Authentication required']],
    ['alg none', { auth: { token: noneToken('alice') } }, 'Invalid token'],
    ['an RS256 token', { auth: { token: rs256Token('alice', keys.privateKey) } }, 'Invalid token'],
    ['a token without sub', { auth: { token: token(undefined, { username: 'Nobody' }) } }, 'Invalid token'],
    ['an expired token', { auth: { token: expiredToken('alice') } }, 'Token expired'],
    ['a wrong-secret Bearer header (polling)', {
      transports: ['polling'], extraHeaders: { Authorization: `Bearer ${wrongSecretToken('alice')}` },
    }, 'Invalid token'],
  ];
  for (const [what, opts, message] of cases) {
    const accepted = [].concat(message);
    it(`${what} -> connect_error "${accepted.join('" or "')}"`, async () => {
      const err = await connectError(srv.url, opts);
      assert.ok(accepted.includes(err.message), `connect_error message ${JSON.stringify(err.message)}`);
    });
  }

  it('a valid token connects (control)', async () => {
    await userSocket(srv.url, 'alice', { username: 'Alice' });
  });

  for (const transports of [['polling'], ['websocket']]) {
    it(`a token in an Authorization: Bearer header connects (${transports[0]})`, async () => {
      const s = await connected(srv.url, {
        transports,
        extraHeaders: { Authorization: `Bearer ${token('hdr', { username: 'Header User' })}` },
      });
      const rec = recorder(s);
      await request(s, 'joinRoom', `bearer-${transports[0]}`);
      const [m] = await rec.next('roomMembers');
      assert.deepEqual(m.members, [{ userId: 'hdr', username: 'Header User' }]);
    });
  }
});

describe('token refusals (RS256 server with --jwt-public-key)', () => {
  let srv;
  let dir;
  const keys = rsaKeyPair();
  before(async () => {
    dir = mkTmp('sb-rsa-');
    const pem = path.join(dir, 'public.pem');
    fs.writeFileSync(pem, keys.publicKey);
    srv = await startServer({ secret: null, args: ['--jwt-public-key', pem] });
  });
  after(async () => {
    if (srv) await srv.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(closeAll);

  it('accepts an RS256 token signed with the matching private key', async () => {
    await connected(srv.url, { auth: { token: rs256Token('rsa-user', keys.privateKey, { username: 'R' }) } });
  });

  it('refuses an HS256 token with "Invalid token"', async () => {
    const err = await connectError(srv.url, { auth: { token: token('alice') } });
    assert.equal(err.message, 'Invalid token');
  });

  it('refuses an HS256 token keyed with the public key PEM (algorithm confusion)', async () => {
    const err = await connectError(srv.url, { auth: { token: hmacToken({ sub: 'mallory' }, keys.publicKey) } });
    assert.equal(err.message, 'Invalid token');
  });

  it('refuses an RS256 token from another key pair, and alg none', async () => {
    const other = rsaKeyPair();
    let err = await connectError(srv.url, { auth: { token: rs256Token('alice', other.privateKey) } });
    assert.equal(err.message, 'Invalid token');
    err = await connectError(srv.url, { auth: { token: noneToken('alice') } });
    assert.equal(err.message, 'Invalid token');
  });

  it('an expired RS256 token -> "Token expired"', async () => {
    const now = Math.floor(Date.now() / 1000);
    const t = jwt.sign({ sub: 'alice', iat: now - 7200, exp: now - 3600 }, keys.privateKey, { algorithm: 'RS256' });
    const err = await connectError(srv.url, { auth: { token: t } });
    assert.equal(err.message, 'Token expired');
  });
});

// ---------------------------------------------------------------------------------------------

describe('Engine.IO limits: unknown sid, maxPayload', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--max-payload', '1000'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('unknown sid -> 400 {"code":1,"message":"Session ID unknown"}', async () => {
    const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=nope`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { code: 1, message: 'Session ID unknown' });
    const post = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=nope`, { method: 'POST', body: '3' });
    assert.equal(post.status, 400);
    assert.deepEqual(await post.json(), { code: 1, message: 'Session ID unknown' });
  });

  it('the handshake advertises --max-payload', async () => {
    const h = await pollingHandshake(srv.url);
    assert.equal(h.status, 200);
    assert.equal(h.open.maxPayload, 1000);
    assert.deepEqual(h.open.upgrades, ['websocket']);
  });

  it('a polling POST larger than maxPayload -> 413 (a small one -> 200)', async () => {
    const { sid } = await pollingHandshake(srv.url);
    assert.ok(sid, 'handshake gave a sid');
    const small = await fetch(pollingUrl(srv.url, sid), {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      body: '40' + JSON.stringify({ token: token('poster') }),
    });
    await small.arrayBuffer();
    assert.equal(small.status, 200, 'a POST under the limit is accepted');
    const big = await fetch(pollingUrl(srv.url, sid), {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      body: '42["noop","' + 'x'.repeat(5000) + '"]',
    });
    await big.arrayBuffer();
    assert.equal(big.status, 413);
  });

  it('a WebSocket frame larger than maxPayload closes the connection (a small one does not)', async () => {
    const { raw } = await rawSocketIO(srv.url, token('framer'), { answerPings: true });
    try {
      raw.send('42["noop","small"]');
      assert.equal(await closedWithin(raw, 300), null, 'a small unknown event keeps the connection');
      raw.send('42["noop","' + 'x'.repeat(5000) + '"]');
      assert.ok(await closedWithin(raw, 3000), 'closed after an oversized frame');
    } finally { raw.close(); }
  });

  it('socket.io-client over polling still works under the limit', async () => {
    const s = await userSocket(srv.url, 'small-poller', { transports: ['polling'] });
    await request(s, 'joinRoom', 'limits-room');
  });
});

// ---------------------------------------------------------------------------------------------

describe('CORS and Origin checks (--cors-origin)', () => {
  const ALLOWED = 'http://allowed.example';
  const ALSO = 'http://also.example';
  const EVIL = 'http://evil.example';
  let srv;
  before(async () => { srv = await startServer({ args: ['--cors-origin', ALLOWED, '--cors-origin', ALSO] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('a polling handshake from a disallowed Origin -> 403', async () => {
    const h = await pollingHandshake(srv.url, { Origin: EVIL });
    assert.equal(h.status, 403);
    assert.notEqual(h.res.headers.get('access-control-allow-origin'), EVIL);
    assert.notEqual(h.res.headers.get('access-control-allow-origin'), '*');
  });

  it('a WebSocket from a disallowed Origin is refused', async () => {
    const raw = rawWs(srv.url, { origin: EVIL });
    try {
      await assert.rejects(raw.opened, (e) => {
        if (e.statusCode !== undefined) assert.equal(e.statusCode, 403);
        return true;
      });
    } finally { raw.close(); }
  });

  it('socket.io-client sending a disallowed Origin cannot connect', async () => {
    await connectError(srv.url, {
      transports: ['polling'], auth: { token: token('alice') }, extraHeaders: { Origin: EVIL },
    });
  });

  it('an allowed Origin handshakes, with CORS headers and credentials', async () => {
    for (const origin of [ALLOWED, ALSO]) {
      const h = await pollingHandshake(srv.url, { Origin: origin });
      assert.equal(h.status, 200, origin);
      assert.ok(h.sid);
      assert.equal(h.res.headers.get('access-control-allow-origin'), origin);
      assert.equal(h.res.headers.get('access-control-allow-credentials'), 'true');
    }
    const raw = rawWs(srv.url, { origin: ALLOWED });
    try {
      const open = await engineOpen(raw);
      assert.ok(open.sid);
    } finally { raw.close(); }
  });

  it('a request without Origin (non-browser client) works', async () => {
    const h = await pollingHandshake(srv.url);
    assert.equal(h.status, 200);
    await userSocket(srv.url, 'cli', { transports: ['polling'] });
    await userSocket(srv.url, 'cli2', { transports: ['websocket'] });
  });

  it('an OPTIONS preflight from the allowed origin -> 204 with CORS headers', async () => {
    const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`, {
      method: 'OPTIONS',
      headers: {
        Origin: ALLOWED,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type',
      },
    });
    await res.arrayBuffer();
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED);
    assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  });
});

// ---------------------------------------------------------------------------------------------

describe('heartbeat (--ping-interval 200 --ping-timeout 200)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--ping-interval', '200', '--ping-timeout', '200'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('the handshake advertises the configured interval and timeout', async () => {
    const h = await pollingHandshake(srv.url);
    assert.equal(h.open.pingInterval, 200);
    assert.equal(h.open.pingTimeout, 200);
  });

  it('a client that answers pings stays connected for 1.5 s and can still make requests', async () => {
    const { raw } = await rawSocketIO(srv.url, token('ponger'), { answerPings: true });
    try {
      await sleep(1500);
      assert.equal(raw.isClosed, false, 'still open');
      const pings = raw.frames.filter((f) => f.data === '2').length;
      assert.ok(pings >= 4, `expected >= 4 pings in 1.5 s, got ${pings}`);
      raw.send('420["joinRoom","heartbeat-room"]');
      const ack = await raw.next((d) => typeof d === 'string' && d.startsWith('430'));
      assert.equal(JSON.parse(ack.slice(3))[0], null);
    } finally { raw.close(); }
  });

  it('a client that does not answer pings is closed within ~1 s', async () => {
    const { raw } = await rawSocketIO(srv.url, token('silent'));
    const t0 = Date.now();
    try {
      const closed = await closedWithin(raw, 2000);
      assert.ok(closed, 'closed');
      const elapsed = closed.at - t0;
      assert.ok(elapsed >= 250 && elapsed <= 1500, `closed after ${elapsed} ms (expected ~400)`);
    } finally { raw.close(); }
  });

  it('socket.io-client stays connected across many heartbeats', async () => {
    const s = await userSocket(srv.url, 'steady', { transports: ['polling'] });
    await sleep(1200);
    assert.equal(s.connected, true);
    await request(s, 'joinRoom', 'steady-room');
  });

  it('a polling session without pong is gone after interval + timeout', async () => {
    const { sid } = await pollingHandshake(srv.url);
    await sleep(800);
    const res = await fetch(pollingUrl(srv.url, sid));
    await res.arrayBuffer();
    assert.equal(res.status, 400);
  });
});

// ---------------------------------------------------------------------------------------------

describe('reconnect after a server restart', () => {
  const servers = [];
  after(async () => { for (const s of servers) await s.stop(); });
  afterEach(closeAll);

  it('socket.io-client reconnects to a new server on the same port', { timeout: 30000 }, async () => {
    const port = await freePort();
    const first = await startServer({ port });
    servers.push(first);
    assert.equal(first.port, port);
    const s = connect(first.url, {
      reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200,
      auth: { token: token('phoenix', { username: 'Phoenix' }) },
    });
    await s.ready;
    await request(s, 'joinRoom', 'before-restart');

    const disconnected = once(s, 'disconnect', 8000);
    await first.stop();
    await disconnected;

    const reconnected = once(s, 'connect', 10000);
    const second = await startServer({ port });
    servers.push(second);
    await reconnected;
    assert.equal(s.connected, true);
    const rec = recorder(s);
    await request(s, 'joinRoom', 'after-restart');
    const [m] = await rec.next('roomMembers');
    assert.deepEqual(m.members, [{ userId: 'phoenix', username: 'Phoenix' }]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('/healthz and /metrics', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('GET /healthz -> 200', async () => {
    const res = await fetch(`${srv.url}/healthz`);
    await res.arrayBuffer();
    assert.equal(res.status, 200);
  });

  it('GET /metrics -> Prometheus text with switchboard_connections', async () => {
    const m = await getMetrics(srv.url);
    assert.equal(m.status, 200);
    assert.match(m.text, /switchboard_connections/);
    assert.match(m.contentType || '', /^text\/plain/);
    assert.notEqual(metricValue(m.text, 'switchboard_connections'), null, 'a switchboard_connections series');
  });

  it('switchboard_connections counts an open connection and drops back when it closes', async () => {
    const s = await userSocket(srv.url, 'metered');
    let m = await getMetrics(srv.url);
    assert.ok(metricValue(m.text, 'switchboard_connections') >= 1,
      `switchboard_connections >= 1 while connected:\n${m.text}`);
    s.close();
    const deadline = Date.now() + 3000;
    for (;;) {
      m = await getMetrics(srv.url);
      if (metricValue(m.text, 'switchboard_connections') === 0) break;
      if (Date.now() > deadline) {
        assert.fail(`switchboard_connections did not return to 0 after the client closed:\n${m.text}`);
      }
      await sleep(100);
    }
  });

  it('an "Invalid token" refusal counts in switchboard_refusals_total{reason="invalid_token"}', async () => {
    const err = await connectError(srv.url, { auth: { token: wrongSecretToken('bad') } });
    assert.equal(err.message, 'Invalid token');
    const m = await getMetrics(srv.url);
    const v = metricValue(m.text, 'switchboard_refusals_total', { reason: 'invalid_token' });
    assert.ok(v !== null && v >= 1, `switchboard_refusals_total{reason="invalid_token"} >= 1:\n${m.text}`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('the switchboard command line', () => {
  const started = [];
  after(async () => { for (const s of started) await s.stop(); });
  afterEach(closeAll);

  it('`token` mints a JWT with sub, username, rooms and exp', async () => {
    const S = 'cli-secret-123456';
    const r = await runCli(['token', '--secret', S, '--sub', 'alice', '--username', 'Alice', '--rooms', 'team-*,lobby', '--ttl', '1h']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    const tok = lines[lines.length - 1];
    assert.match(tok, /^[\w-]+\.[\w-]+\.[\w-]+$/, `last stdout line is a JWT: ${tok}`);
    const claims = jwt.verify(tok, S, { algorithms: ['HS256'] });
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.username, 'Alice');
    assert.deepEqual(claims.rooms, ['team-*', 'lobby']);
    const ahead = claims.exp - Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(ahead - 3600) <= 120, `exp about an hour ahead, got ${ahead} s`);

    // and a server with that secret accepts it, with the claims applied
    const srv = await startServer({ secret: S });
    started.push(srv);
    const s = await connected(srv.url, { auth: { token: tok } });
    const rec = recorder(s);
    await request(s, 'joinRoom', 'team-x');
    const [m] = await rec.next('roomMembers');
    assert.deepEqual(m.members, [{ userId: 'alice', username: 'Alice' }]);
  });

  it('`serve --port notaport` exits non-zero with a one-line error naming the flag', async () => {
    const r = await runCli(['serve', '--host', '127.0.0.1', '--port', 'notaport', '--jwt-secret', SECRET]);
    assert.notEqual(r.code, 0);
    const first = r.stderr.split('\n').find((l) => l.trim());
    assert.ok(first, 'something on stderr');
    assert.match(first, /--port/, `first stderr line names --port: ${first}`);
    assert.doesNotMatch(r.stderr, /panicked|RUST_BACKTRACE/);
    assert.doesNotMatch(r.stdout, /switchboard listening on/);
  });

  it('`serve` on a port already in use exits non-zero naming the address', async () => {
    const blocker = net.createServer();
    await new Promise((res) => blocker.listen(0, '127.0.0.1', res));
    const { port } = blocker.address();
    try {
      const r = await runCli(['serve', '--host', '127.0.0.1', '--port', String(port), '--jwt-secret', SECRET]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`\\b${port}\\b`), `stderr mentions port ${port}: ${r.stderr}`);
      assert.match(r.stderr, /in use/i, `stderr says the address is in use: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /panicked/);
    } finally {
      await new Promise((res) => blocker.close(res));
    }
  });

  it('`serve` without a secret or public key exits non-zero mentioning --jwt-secret', async () => {
    const r = await runCli(['serve', '--host', '127.0.0.1', '--port', '0']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--jwt-secret/);
    assert.doesNotMatch(r.stderr, /panicked/);
    assert.doesNotMatch(r.stdout, /switchboard listening on/);
  });

  it('SWITCHBOARD_JWT_SECRET works instead of --jwt-secret', async () => {
    const envSecret = 'secret-from-the-environment';
    const srv = await startServer({ secret: null, env: { SWITCHBOARD_JWT_SECRET: envSecret } });
    started.push(srv);
    await connected(srv.url, { auth: { token: token('envy', { secret: envSecret }) } });
    const err = await connectError(srv.url, { auth: { token: token('envy') } });
    assert.equal(err.message, 'Invalid token');
  });

  it('PORT sets the port when --port is absent; --port 0 picks a free one', async () => {
    const port = await freePort();
    const srv = await startServer({ port: null, env: { PORT: String(port) } });
    started.push(srv);
    assert.equal(srv.port, port);
    assert.equal(srv.url, `http://127.0.0.1:${port}`);
    const res = await fetch(`${srv.url}/healthz`);
    await res.arrayBuffer();
    assert.equal(res.status, 200);

    const zero = await startServer({ port: 0 });
    started.push(zero);
    assert.ok(zero.port > 0 && zero.port !== port);
  });
});
