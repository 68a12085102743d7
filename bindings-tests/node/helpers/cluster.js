'use strict';
// Clusters of `switchboard serve` nodes (and Fastify apps) on one real Redis, for
// test/cluster.test.js: starting nodes, connected users with event recorders, and the
// polling waits that eventual cluster behaviour needs.

const assert = require('node:assert/strict');
const { startServer } = require('./server');
const { startApp } = require('./fastify');
const { userSocket, request, recorder, sleep } = require('./client');
const { getMetrics, metricValue } = require('./raw');

const API_KEY = 'cluster-api-key';
const HEARTBEAT_MS = 500;
/** A dead node's users must be gone within 3 heartbeats; the rest is slack for slow machines. */
const REAP_WAIT_MS = 3 * HEARTBEAT_MS + 1500;
/** How long eventual things (Redis back, cluster formed) may take. */
const EVENTUAL_MS = 10000;
/** Quiet period after the expected deliveries, in which duplicates would show up. */
const QUIET_MS = 600;

/**
 * The flags every cluster node gets: Redis (as `--redis`, or as REDIS_URL when `viaEnv`),
 * a short heartbeat, the API key, no rate limit (the order test sends 50 messages at once)
 * and a short presence grace (a disconnect is a leave 200 ms later).
 */
function nodeOptions(redisUrl, { viaEnv = false, heartbeatMs = HEARTBEAT_MS, args = [] } = {}) {
  const common = ['--cluster-heartbeat-ms', String(heartbeatMs), '--api-key', API_KEY,
    '--rate-limit', '0', '--presence-grace', '200'];
  return viaEnv
    ? { args: [...common, ...args], env: { REDIS_URL: redisUrl } }
    : { args: ['--redis', redisUrl, ...common, ...args] };
}

/**
 * Starts `n` nodes on `redis` (node i gets REDIS_URL instead of --redis when i is in
 * `viaEnv`). Resolves the node handles of helpers/server, each with a `name` ('A', 'B', ...).
 */
async function startNodes(redis, n, { viaEnv = [], ...opts } = {}) {
  const nodes = await Promise.all(Array.from({ length: n }, (_, i) =>
    startServer(nodeOptions(redis.url, { viaEnv: viaEnv.includes(i), ...opts }))));
  nodes.forEach((node, i) => { node.name = String.fromCharCode(65 + i); });
  return nodes;
}

/**
 * Starts two Fastify apps with the plugin on `redis` (heartbeat 500 ms; `options` go to both
 * plugins). Resolves [A, B], the helpers/fastify handles (closed by its closeApps()).
 */
async function startAppPair(redis, options = {}) {
  const opts = { redisUrl: redis.url, clusterHeartbeat: HEARTBEAT_MS, ...options };
  return [await startApp(opts), await startApp(opts)];
}

/** Stops the nodes that are still running. */
async function stopNodes(nodes) {
  await Promise.all((nodes || []).filter(Boolean).map((n) => n.stop()));
}

/**
 * A connected user on `url` with an event recorder and a log of its disconnects; joins
 * `roomId` when given and keeps the roomMembers it got as `members`.
 */
async function member(url, sub, username, roomId) {
  const s = await userSocket(url, sub, { username });
  const rec = recorder(s);
  const disconnects = [];
  s.on('disconnect', (reason) => disconnects.push(reason));
  const u = { s, rec, disconnects, sub, username, members: null };
  if (roomId) await join(u, roomId);
  return u;
}

/** Joins `roomId` and resolves the roomMembers list it got (also kept as `u.members`). */
async function join(u, roomId) {
  await request(u.s, 'joinRoom', roomId);
  const [rm] = await u.rec.next('roomMembers', { filter: (m) => m.roomId === roomId });
  u.members = rm.members;
  return rm.members;
}

/** Waits until `fn()` resolves truthy (polling every `every` ms); fails after `ms` with `what`. */
async function until(fn, what, ms = EVENTUAL_MS, every = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting until ${what}` +
        (last instanceof Error ? ` (last error: ${last.message})` : ''));
    }
    await sleep(every);
  }
}

/** The value of `switchboard_redis_connected` on a node's /metrics (null when absent). */
async function redisConnected(url) {
  const m = await getMetrics(url);
  return metricValue(m.text, 'switchboard_redis_connected');
}

/** Waits until every node's /metrics shows `switchboard_redis_connected <value>`. */
async function waitRedisConnected(nodes, value, ms = EVENTUAL_MS) {
  for (const n of nodes) {
    await until(async () => (await redisConnected(n.url)) === value,
      `node ${n.name || n.url} shows switchboard_redis_connected ${value}`, ms);
  }
}

/**
 * Sends probe messages from `from` (a member of `roomId`) every 300 ms until each recorder in
 * `to` has received one of them; resolves the probe text that arrived. For the moments when
 * nodes are (re)connecting to Redis and a first message may legitimately be lost.
 */
async function untilCrossing(from, roomId, to, what = 'a message crosses nodes', ms = EVENTUAL_MS) {
  const tag = `probe-${Math.random().toString(36).slice(2)}`;
  const isProbe = (m) => typeof m.text === 'string' && m.text.startsWith(tag);
  let i = 0;
  return until(async () => {
    from.s.emit('sendMessage', { roomId, text: `${tag}-${i++}` }, () => {});
    await sleep(300);
    return to.every((u) => u.rec.all('message', isProbe).length > 0);
  }, what, ms, 0);
}

/**
 * Waits until the nodes form a cluster: a probe user on the first node and one on each other
 * node share a room, and a message from the first reaches all of them. Resolves true, or false
 * after EVENTUAL_MS (the tests then fail with their own assertions); closes the probes.
 */
async function settle(urls, roomId = `settle-${Math.random().toString(36).slice(2)}`) {
  const probes = [];
  try {
    for (const [i, url] of urls.entries()) probes.push(await member(url, `probe-${i}`, `Probe ${i}`, roomId));
    await untilCrossing(probes[0], roomId, probes.slice(1), 'the nodes form a cluster');
    return true;
  } catch {
    return false;
  } finally {
    for (const p of probes) p.s.close();
  }
}

/** Asserts that exactly `n` events `event` matching `filter` reached `u` (call after a quiet period). */
function assertCount(u, event, filter, n, what) {
  const got = u.rec.all(event, filter);
  assert.equal(got.length, n, `${what}: ${u.sub} got ${got.length} × "${event}", expected ${n}: ${JSON.stringify(got)}`);
}

/** Pages back through getHistory (100 at a time) and resolves the whole history, oldest first. */
async function fullHistory(u, roomId) {
  let page = await request(u.s, 'getHistory', { roomId, limit: 100 });
  const all = [...page.messages];
  for (let i = 0; i < 20 && page.messages.length > 0; i++) {
    page = await request(u.s, 'getHistory', { roomId, before: all[0].id, limit: 100 });
    all.unshift(...page.messages);
  }
  return all;
}

module.exports = {
  fullHistory,
  API_KEY,
  HEARTBEAT_MS,
  REAP_WAIT_MS,
  EVENTUAL_MS,
  QUIET_MS,
  nodeOptions,
  startNodes,
  startAppPair,
  stopNodes,
  member,
  join,
  until,
  redisConnected,
  waitRedisConnected,
  untilCrossing,
  settle,
  assertCount,
};
