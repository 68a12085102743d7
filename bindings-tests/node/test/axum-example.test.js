'use strict';
// Issue 20, step 7: the engine mounted in an axum app (core/examples/axum.rs, through
// `switchboard::tower`), one port for both. The app's own routes answer; real clients reach
// the engine (socket.io-client over WebSocket and over polling then upgrade, an EventSource,
// a y-websocket provider); a path neither serves gets axum's 404; SIGTERM stops it cleanly and
// promptly, with an EventSource and a y-websocket client still open.
// Built by `make build` (cargo build --all-targets) or `cargo build -p switchboard --example axum`.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');

const { startAxumExample } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const { connectError, userSocket, closeAll, once, request, recorder } = require('../helpers/client');
const { sseClient, closeAllStreams, eventsUrl } = require('../helpers/sse');

const WAIT_MS = 5000;

/** A connected user that joined `roomId` (its roomMembers consumed). */
async function member(url, sub, roomId, opts = {}) {
  const s = await userSocket(url, sub, { username: sub, ...opts });
  const rec = recorder(s);
  await request(s, 'joinRoom', roomId);
  await rec.next('roomMembers', { filter: (m) => m.roomId === roomId });
  return { s, rec };
}

describe('the engine in an axum app (core/examples/axum.rs)', () => {
  let srv;
  before(async () => { srv = await startAxumExample(); });
  after(() => srv && srv.stop());
  afterEach(() => { closeAll(); closeAllStreams(); });

  it("answers the app's own routes", async () => {
    const root = await fetch(`${srv.url}/`);
    assert.equal(root.status, 200);
    assert.equal(await root.text(), 'Hello from the app\n');
    const hello = await fetch(`${srv.url}/api/hello`);
    assert.equal(hello.status, 200);
    assert.deepEqual(await hello.json(), { hello: 'from axum' });
  });

  it("leaves a path neither serves to axum's 404 (not the engine's JSON one)", async () => {
    const res = await fetch(`${srv.url}/no/such/page`);
    assert.equal(res.status, 404);
    assert.equal(await res.text(), '', 'axum answers an empty 404');
  });

  it('serves /healthz and /metrics from the engine', async () => {
    const health = await fetch(`${srv.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const metrics = await fetch(`${srv.url}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /switchboard_runtime_tasks \d+/);
  });

  it('connects a Socket.IO client with a token over WebSocket; a room message reaches another member', async () => {
    const roomId = 'axum-ws';
    const a = await member(srv.url, 'alice', roomId);
    const b = await member(srv.url, 'bob', roomId);
    assert.equal(a.s.io.engine.transport.name, 'websocket');
    await request(a.s, 'sendMessage', { roomId, text: 'hello over ws' });
    const [m] = await b.rec.next('message', { filter: (x) => x.text === 'hello over ws' });
    assert.equal(m.roomId, roomId);
    assert.equal(m.userId, 'alice');
  });

  it('connects over long-polling, upgrades to WebSocket, and still gets room messages', async () => {
    const roomId = 'axum-polling';
    const p = await member(srv.url, 'carol', roomId, { transports: ['polling', 'websocket'] });
    if (p.s.io.engine.transport.name !== 'websocket') {
      await once(p.s.io.engine, 'upgrade', WAIT_MS);
    }
    assert.equal(p.s.io.engine.transport.name, 'websocket');
    const q = await member(srv.url, 'dave', roomId, { transports: ['polling'] });
    await request(q.s, 'sendMessage', { roomId, text: 'from a polling client' });
    const [m] = await p.rec.next('message', { filter: (x) => x.text === 'from a polling client' });
    assert.equal(m.userId, 'dave');
    await request(p.s, 'sendMessage', { roomId, text: 'back to polling' });
    const [n] = await q.rec.next('message', { filter: (x) => x.text === 'back to polling' });
    assert.equal(n.userId, 'carol');
  });

  it('refuses a Socket.IO client without a token, with the engine\'s message', async () => {
    const err = await connectError(srv.url, {});
    assert.equal(err.message, 'Authentication required');
  });

  it('streams room messages over SSE at /events', async () => {
    const roomId = 'axum-sse';
    const sse = await sseClient(eventsUrl(srv.url, { rooms: roomId }), { token: token('frank') });
    assert.equal(typeof sse.connected.data.clientId, 'string');
    const a = await member(srv.url, 'grace', roomId);
    await request(a.s, 'sendMessage', { roomId, text: 'to the stream' });
    const ev = await sse.log.next('message', { filter: (m) => m.text === 'to the stream', timeout: WAIT_MS });
    assert.equal(ev.data.userId, 'grace');
  });

  it('syncs a Yjs document between two y-websocket providers', async () => {
    const make = (sub) => new WebsocketProvider(`${srv.url.replace(/^http/, 'ws')}/yjs`, 'axum-doc', new Y.Doc(), {
      WebSocketPolyfill: WebSocket,
      disableBc: true,
      params: { token: token(sub) },
    });
    const p1 = make('heidi');
    const p2 = make('ivan');
    try {
      p1.doc.getText('t').insert(0, 'shared');
      const deadline = Date.now() + WAIT_MS;
      while (p2.doc.getText('t').toString() !== 'shared') {
        if (Date.now() > deadline) throw new Error('the second provider did not get the text');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      for (const p of [p1, p2]) { p.destroy(); p.doc.destroy(); }
    }
  });
});

describe('stopping the axum example', () => {
  it('exits 0 on SIGTERM with clients connected, and the clients see the disconnect', async () => {
    const srv = await startAxumExample();
    let provider;
    try {
      const s = await userSocket(srv.url, 'judy');
      const sse = await sseClient(eventsUrl(srv.url), { token: token('judy') });
      provider = new WebsocketProvider(`${srv.url.replace(/^http/, 'ws')}/yjs`, 'axum-stop', new Y.Doc(), {
        WebSocketPolyfill: WebSocket,
        disableBc: true,
        params: { token: token('judy') },
      });
      await once(provider, 'sync', WAIT_MS);
      const docClosed = new Promise((resolve) => provider.on('connection-close', (e) => resolve(e)));
      const gone = once(s, 'disconnect', WAIT_MS);
      // The engine ends its SSE streams and Yjs connections itself, so axum's graceful
      // shutdown has nothing left to wait for: the app exits at once, not after a grace.
      const started = Date.now();
      const { code, signal } = await srv.stop();
      const took = Date.now() - started;
      assert.equal(signal, null, `exited by itself, not killed (stderr: ${srv.stderr})`);
      assert.equal(code, 0, `exit code 0 (stderr: ${srv.stderr})`);
      assert.ok(took < 1500, `exited within 1.5 s of SIGTERM (took ${took} ms)`);
      await gone;
      const closed = await docClosed;
      assert.equal(closed && closed.code, 1001, 'the document connection closed with 1001 (going away)');
      sse.close();
    } finally {
      if (provider) { provider.destroy(); provider.doc.destroy(); }
      closeAll();
      closeAllStreams();
      await srv.stop();
    }
  });
});
