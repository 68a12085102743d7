'use strict';
// Issue 18 item 3: the plugin fits inside an app. `prefix` moves every endpoint and leaves
// the app's own routes alone; endpoints turned off free their paths; WebSocket upgrades go
// through the app's onRequest hooks (a hook that replies refuses the upgrade with its
// status); /healthz says 503 while the engine closes or is cut off from Redis.

const { describe, it, afterEach, after } = require('node:test');
const assert = require('node:assert/strict');
const Fastify = require('fastify');
const WebSocket = require('ws');
const switchboard = require('@switchboard/node/fastify');
const { SECRET } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const { connected, connectError, closeAll, request, sleep } = require('../helpers/client');
const { sseClient, closeAllStreams, apiClient, eventsUrl } = require('../helpers/sse');
const { stopAllRedis } = require('../helpers/redis');
const { startRedisForTest, onRedis } = require('../helpers/redis-setup');

const apps = new Set();

/** A Fastify 5 app: `setup(app)` runs before the plugin is registered, `after(app)` after. */
async function app(options, { setup, after: then } = {}) {
  const a = Fastify({ logger: false });
  apps.add(a);
  if (setup) await setup(a);
  await a.register(switchboard, { jwtSecret: SECRET, ...options });
  if (then) await then(a);
  await a.listen({ host: '127.0.0.1', port: 0 });
  return { app: a, url: `http://127.0.0.1:${a.server.address().port}`, engine: a.switchboard };
}

/** Opens a raw WebSocket; resolves `{open: true, ws}` or `{status}` of a refused upgrade. */
function upgrade(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const timer = setTimeout(() => reject(new Error(`no answer to the upgrade of ${url}`)), 5000);
    ws.on('open', () => { clearTimeout(timer); resolve({ open: true, ws }); });
    ws.on('unexpected-response', (req, res) => {
      clearTimeout(timer);
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    ws.on('error', (e) => { clearTimeout(timer); resolve({ error: e.message }); });
  });
}

/** What an upgrade's result says, for assertion messages (without the socket object). */
const shown = ({ ws, ...rest }) => JSON.stringify(rest);

async function get(url, headers) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

afterEach(async () => {
  closeAll();
  closeAllStreams();
  await Promise.all([...apps].map((a) => a.close()));
  apps.clear();
});
after(stopAllRedis);

describe('prefix and endpoint toggles under Fastify', () => {
  it("prefix '/rt' serves every endpoint under /rt and leaves the app's /events and /api/* alone", async () => {
    const { url } = await app({ prefix: '/rt', apiKey: 'the-api-key' }, {
      after: (a) => {
        a.get('/events', async () => ({ mine: 'events' }));
        a.get('/api/*', async (req) => ({ mine: 'api', path: req.url }));
        a.get('/healthz', async () => ({ mine: 'healthz' }));
      },
    });
    const tok = token('alice');
    // Socket.IO over WebSocket and over long-polling.
    for (const transports of [['websocket'], ['polling']]) {
      const s = await connected(url, { path: '/rt/socket.io/', transports, auth: { token: tok } });
      await request(s, 'joinRoom', 'lobby');
      s.close();
    }
    // SSE, the server API, Yjs, metrics and health, all under /rt.
    const sse = await sseClient(eventsUrl(`${url}/rt`, { rooms: 'lobby' }), { token: tok });
    assert.ok(sse.connected);
    sse.close();
    const api = apiClient(`${url}/rt`, 'the-api-key');
    assert.equal((await api.rooms()).status, 200);
    const doc = await upgrade(`ws://127.0.0.1:${new URL(url).port}/rt/yjs/notes?token=${tok}`);
    assert.equal(doc.open, true, shown(doc));
    doc.ws.close();
    const metrics = await get(`${url}/rt/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /switchboard_connections/);
    const health = await get(`${url}/rt/healthz`);
    assert.deepEqual([health.status, JSON.parse(health.text)], [200, { status: 'ok' }]);

    // The app's own routes at the root are untouched.
    assert.deepEqual(JSON.parse((await get(`${url}/events`)).text), { mine: 'events' });
    assert.deepEqual(JSON.parse((await get(`${url}/api/rooms`)).text), { mine: 'api', path: '/api/rooms' });
    assert.deepEqual(JSON.parse((await get(`${url}/healthz`)).text), { mine: 'healthz' });
    // Nothing of the engine is left at the root.
    assert.equal((await get(`${url}/socket.io/?EIO=4&transport=polling`)).status, 404);
    assert.equal((await get(`${url}/metrics`)).status, 404);
    const rootDoc = await upgrade(`ws://127.0.0.1:${new URL(url).port}/yjs/notes?token=${tok}`);
    assert.equal(rootDoc.status, 404, shown(rootDoc));
  });

  it('endpoints turned off register no route, so the app can take their paths', async () => {
    const { url, engine } = await app({ sse: false, api: false, yjs: false, metrics: false, healthz: false, ws: false, apiKey: 'k' }, {
      // Fastify refuses a duplicate route: these would throw if the plugin had taken them.
      after: (a) => {
        a.get('/events', async () => 'app events');
        a.get('/api/*', async () => 'app api');
        a.get('/metrics', async () => 'app metrics');
        a.get('/healthz', async () => 'app healthz');
        a.get('/ws', async () => 'app ws');
      },
    });
    assert.deepEqual(engine.endpoints(), {
      socketio: '/socket.io/', events: null, api: null, yjs: null, metrics: null, healthz: null, ws: null,
    });
    for (const path of ['/events', '/api/rooms', '/metrics', '/healthz', '/ws']) {
      assert.match((await get(`${url}${path}`)).text, /^app /, path);
    }
    const doc = await upgrade(`ws://127.0.0.1:${new URL(url).port}/yjs/notes?token=${token('alice')}`);
    assert.equal(doc.status, 404, shown(doc));
    const s = await connected(url, { auth: { token: token('alice') } });
    assert.ok(s.connected);
  });

  it('a prefix that cannot be a path fails register with the option named', async () => {
    const a = Fastify({ logger: false });
    apps.add(a);
    await assert.rejects(a.register(switchboard, { jwtSecret: SECRET, prefix: 'rt' }).ready(), /prefix.*must start with `\/`/);
  });
});

describe('WebSocket upgrades run the app hooks', () => {
  it('a global onRequest hook refuses an upgrade with its status and lets a good one through', async () => {
    const seen = [];
    const { url } = await app({}, {
      setup: (a) => a.addHook('onRequest', async (req, reply) => {
        seen.push(req.url.split('?')[0]);
        if (req.headers['x-app-key'] !== 'open-sesame') {
          reply.code(401).send({ error: 'app says no' });
        }
      }),
    });
    const port = new URL(url).port;
    const tok = token('alice');
    const wsUrl = `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`;
    const refused = await upgrade(wsUrl);
    assert.equal(refused.status, 401, shown(refused));
    assert.deepEqual(JSON.parse(refused.body), { error: 'app says no' });
    const refusedDoc = await upgrade(`ws://127.0.0.1:${port}/yjs/notes?token=${tok}`);
    assert.equal(refusedDoc.status, 401, shown(refusedDoc));
    // socket.io-client sees the refusal as a connect error.
    const err = await connectError(url, { auth: { token: tok } });
    assert.match(err.message, /websocket error/);

    const good = await upgrade(wsUrl, { 'x-app-key': 'open-sesame' });
    assert.equal(good.open, true, shown(good));
    good.ws.close();
    const s = await connected(url, { auth: { token: tok }, extraHeaders: { 'x-app-key': 'open-sesame' } });
    await request(s, 'joinRoom', 'lobby');
    // The same hook ran for the polling requests and for every upgrade.
    assert.ok(seen.filter((p) => p === '/socket.io/').length >= 4, seen.join(' '));
    assert.ok(seen.includes('/yjs/notes'), seen.join(' '));
  });
});

describe('/healthz readiness', () => {
  it('answers 503 with a reason once the engine is closing', async () => {
    const { url, engine } = await app({});
    assert.equal((await get(`${url}/healthz`)).status, 200);
    await engine.close();
    const closing = await get(`${url}/healthz`);
    assert.equal(closing.status, 503);
    assert.deepEqual(JSON.parse(closing.text), { status: 'unavailable', reason: 'shutting down' });
  });

  it(onRedis('answers 503 once Redis has been unreachable for longer than a heartbeat, 200 when it is back'), { timeout: 30000 }, async () => {
    const redis = await startRedisForTest();
    try {
      const { url } = await app({ redisUrl: redis.url, clusterHeartbeat: 300 });
      const until = async (status) => {
        const deadline = Date.now() + 10000;
        for (;;) {
          const h = await get(`${url}/healthz`);
          if (h.status === status) return h;
          if (Date.now() > deadline) throw new Error(`healthz stayed ${h.status}: ${h.text}`);
          await sleep(100);
        }
      };
      await until(200);
      const killed = Date.now();
      await redis.kill();
      const down = await until(503);
      assert.ok(Date.now() - killed >= 300, 'not before a heartbeat has passed');
      assert.equal(JSON.parse(down.text).status, 'unavailable');
      assert.match(JSON.parse(down.text).reason, /^disconnected from redis for \d+ s$/);
      await redis.restart();
      await until(200);
    } finally {
      await redis.close();
    }
  });
});
