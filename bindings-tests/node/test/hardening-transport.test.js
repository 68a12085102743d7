'use strict';
// Issue 16, the transport's share: what one client can make the server hold before and while it
// is connected. A session that never sends CONNECT is closed after the connect timeout; binary
// attachments are buffered only for a joined namespace and within maxPayload together; an
// oversized polling POST gets a 413 the client can read; events queued behind a slow host
// handler are dropped when the client leaves.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { upgradeRequest, encodeFrame } = require('../helpers/wsframe');

const { startServer } = require('../helpers/server');
const { startApp, closeApps } = require('../helpers/fastify');
const { token } = require('../helpers/tokens');
const { sleep, userSocket, closeAll } = require('../helpers/client');
const { rawWs, closedWithin, engineOpen, rawSocketIO, pollingHandshake, pollingUrl } = require('../helpers/raw');

describe('before CONNECT: the connect timeout and attachments', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--connect-timeout', '600', '--max-payload', '4000'] });
  });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('a WebSocket session that never sends CONNECT is closed after --connect-timeout', async () => {
    const raw = rawWs(srv.url);
    try {
      await engineOpen(raw);
      const closed = await closedWithin(raw, 5000);
      assert.ok(closed, 'closed by the server');
    } finally { raw.close(); }
  });

  it('a polling session that never sends CONNECT is gone after --connect-timeout', async () => {
    const { sid } = await pollingHandshake(srv.url);
    assert.ok(sid);
    await sleep(1500);
    const res = await fetch(pollingUrl(srv.url, sid));
    const body = await res.text();
    // The session is closed: its pending close packet (6 = noop, 1 = close) or an unknown sid.
    assert.ok(res.status === 400 || /^[16]/.test(body), `status ${res.status}, body ${body}`);
  });

  it('a connected client stays past the connect timeout', async () => {
    const s = await userSocket(srv.url, 'stayer', { transports: ['websocket'] });
    await sleep(1500);
    assert.equal(s.connected, true);
  });

  it('a binary event header before CONNECT closes the session at once (no attachments buffered)', async () => {
    const raw = rawWs(srv.url);
    try {
      await engineOpen(raw);
      raw.send('451-["upload",{"_placeholder":true,"num":0}]');
      assert.ok(await closedWithin(raw, 400), 'closed before the connect timeout');
    } finally { raw.close(); }
  });

  it('attachments over maxPayload together close the connection (each one under it)', async () => {
    const { raw } = await rawSocketIO(srv.url, token('uploader'), { answerPings: true });
    try {
      raw.send('452-["upload",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      raw.send(Buffer.alloc(3000, 1));
      assert.equal(await closedWithin(raw, 200), null, 'one attachment under the limit is fine');
      raw.send(Buffer.alloc(3000, 2));
      assert.ok(await closedWithin(raw, 2000), 'closed once the packet passed maxPayload');
    } finally { raw.close(); }
  });
});

describe('connections waiting to authenticate (--max-pending-connections)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--max-pending-connections', '5'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('past the cap a handshake gets 503 TOO_MANY_PENDING_CONNECTIONS; authenticated ones do not count', async () => {
    const waiting = [];
    try {
      for (let i = 0; i < 5; i++) {
        const raw = rawWs(srv.url);
        await engineOpen(raw);
        waiting.push(raw);
      }
      const refused = await pollingHandshake(srv.url);
      assert.equal(refused.status, 503);
      assert.equal((await refused.res.json().catch(() => JSON.parse(refused.body))).code, 'TOO_MANY_PENDING_CONNECTIONS');
      const ws = rawWs(srv.url);
      await assert.rejects(ws.opened, (e) => e.statusCode === 503);
      // One of them authenticates: it leaves the pending count, and a newcomer gets in.
      waiting[0].send('40' + JSON.stringify({ token: token('pending-one') }));
      await waiting[0].next((d) => d.startsWith('40'));
      const next = await pollingHandshake(srv.url);
      assert.equal(next.status, 200);
      // A closed pending session frees its place too.
      waiting[1].close();
      await sleep(300);
      const again = rawWs(srv.url);
      await engineOpen(again);
      waiting.push(again);
    } finally {
      for (const raw of waiting) raw.close();
    }
  });
});

describe('a client that asks for answers and never reads them', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--send-timeout', '1000'] }); });
  after(() => srv && srv.stop());

  it('is no longer read from, then closed after --send-timeout', async () => {
    const port = new URL(srv.url).port;
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    let ended = null;
    const gone = new Promise((resolve) => {
      socket.once('close', () => { ended = ended || 'closed'; resolve(); });
      socket.once('error', (e) => { ended = e.code; });
    });
    socket.write(upgradeRequest());
    socket.write(encodeFrame('40' + JSON.stringify({ token: token('nonreader') })));
    socket.pause(); // never read: the server's answers pile up in TCP, then stop
    // Engine.IO pings, each answered with a pong, 64 KiB of them a write.
    const pings = Buffer.concat(Array.from({ length: 4096 }, () => encodeFrame('2')));
    const started = Date.now();
    while (ended === null && Date.now() - started < 15000) {
      if (!socket.write(pings)) {
        await Promise.race([new Promise((r) => socket.once('drain', r)), sleep(200)]);
      }
      await sleep(1);
    }
    await Promise.race([gone, sleep(15000)]);
    socket.destroy();
    assert.ok(ended, 'the server closed the connection');
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    assert.match(text, /switchboard_disconnects_total\{reason="slow_consumer"\} [1-9]/);
  });
});

/** POSTs `bytes` bytes with Content-Length to `url`, streaming; resolves the status or the error. */
function postBig(url, bytes) {
  return new Promise((resolve) => {
    const req = http.request(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8', 'content-length': bytes },
      agent: false,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
      res.on('error', (error) => resolve({ error }));
    });
    req.on('error', (error) => resolve({ error }));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe('an oversized polling POST', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());

  it('gets a 413 the client reads, not a connection reset', async () => {
    const { sid } = await pollingHandshake(srv.url);
    assert.ok(sid);
    for (let i = 0; i < 5; i++) {
      const r = await postBig(pollingUrl(srv.url, sid), 2 * 1024 * 1024);
      assert.equal(r.error, undefined, `attempt ${i}: ${r.error && r.error.code}`);
      assert.equal(r.status, 413, `attempt ${i}`);
    }
  });
});

describe('events behind a slow host handler', () => {
  let app;
  const calls = { slow: [], ordered: [] };
  before(async () => {
    // The default heartbeat (25 s): a client that left is noticed by the probe of a reader
    // that waits for room in the handler queue, not by the heartbeat.
    app = await startApp();
    for (const name of Object.keys(calls)) {
      app.engine.on(name, async (socket, data) => {
        calls[name].push(data.length);
        await sleep(800);
        return { ok: true };
      });
    }
  });
  after(closeApps);
  afterEach(closeAll);

  it('are dropped, not handled, once the client left', async () => {
    const s = await userSocket(app.url, 'hurried', { transports: ['websocket'] });
    const big = 'y'.repeat(200 * 1024);
    for (let i = 0; i < 30; i++) s.emit('slow', big);
    await sleep(400);
    s.io.engine.transport.ws._socket.destroy();
    await sleep(2500);
    const after = calls.slow.length;
    await sleep(2000);
    assert.equal(calls.slow.length, after, 'no handler runs once the session is gone');
    assert.ok(after <= 4, `the host handler ran ${after} times for 30 events of a client that left`);
  });

  it('still all run, in order, for a client that stays', async () => {
    const s = await userSocket(app.url, 'patient', { transports: ['websocket'] });
    const acks = [];
    for (let i = 0; i < 4; i++) acks.push(s.timeout(10000).emitWithAck('ordered', 'x'.repeat(i + 1)));
    await Promise.all(acks);
    assert.deepEqual(calls.ordered, [1, 2, 3, 4]);
  });
});
