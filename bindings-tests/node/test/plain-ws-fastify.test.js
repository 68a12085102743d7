'use strict';
// Issue 23 inside a Fastify app: the plugin routes `/ws` (under its prefix), and the host's
// own events (`engine.on(event)`) and emits reach plain-WebSocket clients as they reach
// Socket.IO ones; `ws: false` leaves the path to the app.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { startApp, closeApps } = require('../helpers/fastify');
const { token } = require('../helpers/tokens');
const { wsClient, wsReady, closeAllWs } = require('../helpers/plainws');

describe('/ws in a Fastify app', () => {
  let srv;
  before(async () => {
    srv = await startApp({ callbackTimeout: 300, presenceGrace: 100, prefix: '/rt' });
    srv.engine
      .on('echo', async (socket, data) => ({ got: data, user: socket.user.id, rooms: socket.rooms }))
      .on('fail', async () => { throw new Error('on purpose'); })
      .on('whisper', (socket, data) => socket.emit('whispered', data));
  });
  after(() => srv && srv.close());
  afterEach(closeAllWs);

  const base = () => `${srv.url}/rt`;

  it('host app events answer /ws requests; emits arrive as events', { timeout: 10000 }, async () => {
    const c = await wsReady(base(), token('alice'));
    await c.request('joinRoom', 'fastify-ws');
    const echo = (await c.request('echo', { a: 1 })).result;
    assert.deepEqual(echo.got, { a: 1 });
    assert.equal(echo.user, 'alice');
    assert.ok(echo.rooms.includes('fastify-ws'));
    assert.deepEqual((await c.request('fail')).error, { code: 'INTERNAL', message: 'Internal error' });
    assert.equal((await c.request('noSuchEvent', 1)).error.code, 'INVALID_MESSAGE');
    await c.request('whisper', { s: 'psst' });
    assert.deepEqual((await c.event('whispered')).data, { s: 'psst' });
    assert.equal(srv.engine.to('fastify-ws').emit('notice', { n: 1 }), 1);
    const notice = await c.event('notice');
    assert.deepEqual(notice.data, { n: 1 });
    assert.equal(typeof notice.offset, 'string');
  });

  it('engine.disconnectUser closes the user\'s /ws connections with 4000 and counts them', { timeout: 10000 }, async () => {
    const a = await wsReady(base(), token('erin'));
    const b = await wsReady(base(), token('erin'));
    const other = await wsReady(base(), token('frank'));
    assert.equal(srv.engine.disconnectUser('erin'), 2);
    for (const c of [a, b]) assert.equal((await c.closed).code, 4000);
    assert.equal((await other.request('joinRoom', 'still-here')).result, null);
  });

  it('the plugin lists and routes the endpoint', async () => {
    assert.equal(srv.engine.endpoints().ws, '/rt/ws');
    const c = wsClient(`${base().replace(/^http/, 'ws')}/ws`, { headers: { Authorization: `Bearer ${token('bob')}` } });
    assert.equal((await c.next('ready')).userId, 'bob');
  });
});

describe('/ws turned off in a Fastify app', () => {
  after(closeApps);
  it('ws: false serves no /ws', async () => {
    const srv = await startApp({ ws: false });
    assert.equal(srv.engine.endpoints().ws, null);
    const res = await fetch(`${srv.url}/ws`);
    assert.equal(res.status, 404);
  });
});
