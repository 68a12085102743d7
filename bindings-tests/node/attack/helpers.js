'use strict';
// Shared measuring code of the attack suite (issue 16): every attack runs against a server it
// started itself, and is judged by the same budgets:
//
//   - peak RSS growth of the server process under 64 MB during the attack (sampled every 100 ms
//     from /proc/<pid>/status);
//   - GET /healthz answering within 1 s throughout (polled every 200 ms on a fresh connection,
//     one request at a time, the worst latency recorded; from a process of its own,
//     attack/healthz-poller.js, so that the attacker's process does not time itself);
//   - `switchboard_runtime_tasks` (GET /metrics) back to its pre-attack value, within a small
//     margin, within 10 s after the attacker stopped;
//   - the attacker cut off or refused with a clear reason where the issue defines one (each
//     test asserts that itself).
//
// An attack is also bounded for the machine's sake: it stops early when the server grew by
// ABORT_RSS_BYTES (the budget is failed by then anyway), and every wait has a timeout.
// Each attack prints one summary line, `attack <name>: rss +X MB peak, healthz worst Y ms,
// tasks A→B, attacker: …`, so the figures can be quoted.

const assert = require('node:assert/strict');
const { fork } = require('node:child_process');
const path = require('node:path');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const tls = require('node:tls');
const { rssBytes } = require('../helpers/server');
const { upgradeRequest, encodeFrame, FrameDecoder, parseHttpHead, OP } = require('../helpers/wsframe');

const MB = 1024 * 1024;
const BUDGET = {
  rssGrowthBytes: 64 * MB,
  healthzMs: 1000,
  tasksSettleMs: 10000,
  tasksMargin: 2,
};
/** An attack stops when the server grew this much: the budget is failed, the machine is shared. */
const ABORT_RSS_BYTES = 384 * MB;
/** How long one /healthz request may take before it counts as this many milliseconds. */
const HEALTHZ_TIMEOUT_MS = 10000;
const RSS_SAMPLE_MS = 100;
const HEALTHZ_EVERY_MS = 200;
/** How long a flood from one connection lasts. */
const FLOOD_MS = Number(process.env.ATTACK_FLOOD_MS || 10000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One HTTP request on a fresh connection (no keep-alive), bounded by timeoutMs.
 * Resolves {status, headers, body (Buffer), ms} or {error, ms, timedOut}; never rejects.
 */
function request(url, { method = 'GET', headers = {}, body, timeoutMs = HEALTHZ_TIMEOUT_MS } = {}) {
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
  return new Promise((resolve) => {
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, ms: elapsed() });
    };
    let got = {};
    // https: the servers of this suite use self-signed certificates made at test time.
    const lib = url.startsWith('https:') ? https : http;
    const req = lib.request(url, { method, headers, agent: false, rejectUnauthorized: false }, (res) => {
      // A stream (SSE) never ends: a timeout then still reports its status and headers.
      got = { status: res.statusCode, headers: res.headers };
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => finish({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (e) => finish({ error: e, status: res.statusCode, headers: res.headers }));
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no answer within ${timeoutMs} ms`));
      finish({ ...got, error: new Error(`no complete answer within ${timeoutMs} ms`), timedOut: true });
    }, timeoutMs);
    req.on('error', (e) => finish({ ...got, error: e }));
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** `switchboard_runtime_tasks` from GET /metrics, or NaN when it cannot be read. */
async function runtimeTasks(url) {
  const r = await request(`${url}/metrics`, { timeoutMs: 5000 });
  if (r.status !== 200) return NaN;
  const m = /^switchboard_runtime_tasks\s+(\d+)/m.exec(r.body.toString('utf8'));
  return m ? Number(m[1]) : NaN;
}

/** A series' value (summed over labels matching `labels`) from GET /metrics, or null. */
async function metric(url, name, labels = {}) {
  const r = await request(`${url}/metrics`, { timeoutMs: 5000 });
  if (r.status !== 200) return null;
  let total = null;
  for (const line of r.body.toString('utf8').split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const l = m[3] || '';
    if (!Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) continue;
    total = (total || 0) + Number(m[4]);
  }
  return total;
}

/**
 * Watches a server while it is attacked: its RSS every 100 ms, /healthz every 200 ms.
 * `target` is {url, pid}. `stop()` resolves the figures.
 */
function monitor(target) {
  const baseRss = rssBytes(target.pid);
  let peakRss = baseRss;
  let healthz = { worst: 0, count: 0, bad: 0, badWhy: null };
  let running = true;
  const rssTimer = setInterval(() => {
    const r = rssBytes(target.pid);
    if (r > peakRss) peakRss = r;
  }, RSS_SAMPLE_MS);
  let tasksPeak = NaN;
  const tasksPoller = (async () => {
    // Tasks during the attack (once a second): a flood that spawns a task per frame shows here
    // even when the tasks end by themselves soon after.
    while (running) {
      const t = await runtimeTasks(target.url);
      if (!(t <= tasksPeak)) tasksPeak = Number.isNaN(tasksPeak) || t > tasksPeak ? t : tasksPeak;
      for (let i = 0; i < 10 && running; i++) await sleep(100);
    }
  })();
  const poller = fork(path.join(__dirname, 'healthz-poller.js'),
    [target.url, String(HEALTHZ_EVERY_MS), String(HEALTHZ_TIMEOUT_MS)], { stdio: 'inherit' });
  poller.on('message', (figures) => { healthz = figures; });
  const pollerExited = new Promise((resolve) => poller.once('exit', resolve));
  return {
    baseRss,
    /** Growth so far, in bytes. */
    growth() {
      const r = rssBytes(target.pid);
      if (r > peakRss) peakRss = r;
      return peakRss - baseRss;
    },
    /** True once the server grew past the abort limit (the attack should stop). */
    overLimit() {
      return this.growth() >= ABORT_RSS_BYTES;
    },
    /** The worst /healthz latency so far. */
    get healthzWorst() { return healthz.worst; },
    async stop() {
      running = false;
      clearInterval(rssTimer);
      if (poller.connected) poller.send('stop');
      await pollerExited;
      await tasksPoller;
      const r = rssBytes(target.pid);
      if (r > peakRss) peakRss = r;
      return {
        baseRss, peakRss, rssGrowth: peakRss - baseRss, healthzWorst: healthz.worst,
        healthzCount: healthz.count, healthzBad: healthz.bad, healthzBadWhy: healthz.badWhy, tasksPeak,
      };
    },
  };
}

/**
 * Runs one attack against `target` ({url, pid}) and measures it.
 *
 * `fn(ctx)` performs the attack and must have stopped (closed every attacker connection) when
 * it resolves. ctx: {monitor, until(ms) -> bool "keep going", target}. It resolves an object
 * whose `attacker` string says how the attacker ended (e.g. `closed 1008`), plus anything else
 * to report. Resolves the measured figures and prints the summary line.
 */
async function runAttack(name, target, fn) {
  // The baseline: an idle server, measured twice to let start-up tasks settle.
  await sleep(300);
  let tasksBefore = await runtimeTasks(target.url);
  await sleep(200);
  tasksBefore = Math.min(tasksBefore, await runtimeTasks(target.url));
  const mon = monitor(target);
  const started = Date.now();
  let outcome;
  let error = null;
  try {
    outcome = await fn({
      target,
      monitor: mon,
      /** Whether an attack that started at `started` may go on (time left, server not over the abort limit). */
      keepGoing(ms = FLOOD_MS) {
        return Date.now() - started < ms && !mon.overLimit();
      },
    });
  } catch (e) {
    error = e;
    outcome = { attacker: `attack failed: ${e.message}` };
  }
  const attackMs = Date.now() - started;
  const figures = await mon.stop();
  const aborted = figures.rssGrowth >= ABORT_RSS_BYTES;

  // Tasks: back to the baseline within 10 s after the attacker stopped.
  const settleStart = Date.now();
  let tasksAfter = await runtimeTasks(target.url);
  while (!(tasksAfter <= tasksBefore + BUDGET.tasksMargin) && Date.now() - settleStart < BUDGET.tasksSettleMs) {
    await sleep(250);
    tasksAfter = await runtimeTasks(target.url);
  }
  const tasksSettledMs = Date.now() - settleStart;

  const result = {
    name,
    attackMs,
    aborted,
    tasksBefore,
    tasksAfter,
    tasksSettledMs,
    ...figures,
    ...outcome,
    error,
  };
  const extra = outcome && outcome.note ? `; ${outcome.note}` : '';
  console.log(
    `attack ${name}: rss +${(figures.rssGrowth / MB).toFixed(1)} MB peak, ` +
    `healthz worst ${Math.round(figures.healthzWorst)} ms` +
    (figures.healthzBad ? ` (${figures.healthzBad}/${figures.healthzCount} failed: ${figures.healthzBadWhy})` : '') +
    `, tasks ${tasksBefore}→${tasksAfter} (peak ${figures.tasksPeak} during)` +
    `, attacker: ${outcome ? outcome.attacker : '?'}` +
    `${aborted ? ' [stopped early: server grew past ' + ABORT_RSS_BYTES / MB + ' MB]' : ''}` +
    ` (${(attackMs / 1000).toFixed(1)} s)${extra}`,
  );
  return result;
}

/**
 * Servers started by one test file: `server(args)` starts `switchboard serve` (debug binary,
 * loopback, port 0), `stopAll()` (for afterEach) stops them, so a server still busy with an
 * attack does not take CPU from the next one.
 */
function serverPool() {
  const { startServer } = require('../helpers/server');
  const live = [];
  return {
    async server(args = []) {
      const s = await startServer({ args });
      live.push(s);
      return s;
    },
    async stopAll() {
      await Promise.all(live.splice(0).map((s) => s.stop()));
    },
  };
}

/** `assertBudgets`' check that the attacker was cut off (closed, reset or ended by the server). */
function cutOff(r, expected = /closed|reset|ended/) {
  return [expected.test(String(r.attacker)), `the attacker was not cut off as expected (${expected}): ${r.attacker}`];
}

/**
 * Asserts the suite's budgets on a `runAttack` result; reports every budget missed at once.
 * `skip` names budgets that do not apply (e.g. 'tasks' when the server itself is the attacker's
 * target of a deliberate restart).
 */
function assertBudgets(r, { skip = [], checks = [] } = {}) {
  const missed = [];
  // The attack's own expectations (how the attacker must end), reported with the budgets.
  for (const [ok, what] of checks) if (!ok) missed.push(what);
  if (r.error) missed.push(`the attack itself failed: ${r.error.stack || r.error.message}`);
  if (!skip.includes('rss') && !(r.rssGrowth < BUDGET.rssGrowthBytes)) {
    missed.push(`RSS grew by ${(r.rssGrowth / MB).toFixed(1)} MB (budget ${BUDGET.rssGrowthBytes / MB} MB)`);
  }
  if (!skip.includes('healthz') && !(r.healthzWorst < BUDGET.healthzMs)) {
    missed.push(`/healthz took ${Math.round(r.healthzWorst)} ms (budget ${BUDGET.healthzMs} ms)`);
  }
  if (!skip.includes('healthz') && r.healthzBad > 0) {
    missed.push(`/healthz failed ${r.healthzBad} of ${r.healthzCount} times (${r.healthzBadWhy})`);
  }
  if (!skip.includes('tasks') && !(r.tasksAfter <= r.tasksBefore + BUDGET.tasksMargin)) {
    missed.push(`runtime tasks ${r.tasksBefore}→${r.tasksAfter} ${BUDGET.tasksSettleMs / 1000} s after the attack (margin ${BUDGET.tasksMargin})`);
  }
  assert.ok(missed.length === 0, `attack ${r.name} missed its budget:\n  - ${missed.join('\n  - ')}`);
}

/** Resolves when `pred()` (sync or async) is true, or rejects after timeoutMs. */
async function until(pred, what, timeoutMs = 10000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Writes `chunk` to a net/tls socket as fast as the kernel takes it, until keepGoing() is false
 * or the socket closes. Never waits for 'drain' longer than `stallMs` (a server that stopped
 * reading is what some attacks want to see). Resolves {bytes, writes, stalled}.
 */
async function pump(socket, chunk, keepGoing, { stallMs = 500 } = {}) {
  let bytes = 0;
  let writes = 0;
  let stalled = false;
  socket.setMaxListeners(0);
  while (keepGoing() && !socket.destroyed) {
    const ok = socket.write(chunk);
    bytes += chunk.length;
    writes++;
    if (!ok) {
      const drained = await Promise.race([
        new Promise((r) => socket.once('drain', () => r(true))),
        new Promise((r) => socket.once('close', () => r(true))),
        sleep(stallMs).then(() => false),
      ]);
      if (!drained) stalled = true;
    } else if (writes % 64 === 0) {
      // Let timers (the sampler, the deadline) run.
      await new Promise((r) => setImmediate(r));
    }
  }
  return { bytes, writes, stalled };
}

/**
 * A WebSocket attacker on a bare TCP socket, so it can stop reading (the server's writes then
 * pile up on its side) and write frames as fast as the kernel takes them.
 * `path` is the request target (e.g. `/socket.io/?EIO=4&transport=websocket`).
 * Resolves, once the server answered the upgrade, {socket, status, headers, frames, texts(),
 * closeCode(), ended, send(frame Buffer), stopReading(), resumeReading(), close()}.
 * `frames` holds the decoded server frames while reading; a close frame's code is in closeCode().
 */
function wsAttacker(url, path, { headers = {}, timeoutMs = 10000 } = {}) {
  const { port, protocol } = new URL(url);
  const secure = protocol === 'https:';
  return new Promise((resolve, reject) => {
    const where = { host: '127.0.0.1', port: Number(port) };
    const socket = secure
      ? tls.connect({ ...where, servername: 'localhost', rejectUnauthorized: false })
      : net.connect(where);
    const decoder = new FrameDecoder();
    const frames = [];
    let pending = Buffer.alloc(0);
    let head = null;
    const state = { ended: false, error: null };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no upgrade answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on(secure ? 'secureConnect' : 'connect', () => socket.write(upgradeRequest({ path, headers })));
    socket.on('error', (e) => {
      state.error = e;
      if (!head) {
        clearTimeout(timer);
        reject(e);
      }
    });
    socket.on('end', () => { state.ended = true; });
    socket.on('close', () => {
      state.ended = true;
      if (!head) {
        clearTimeout(timer);
        reject(new Error('closed before the upgrade answer'));
      }
    });
    socket.on('data', (chunk) => {
      if (!head) {
        pending = Buffer.concat([pending, chunk]);
        head = parseHttpHead(pending);
        if (!head) return;
        clearTimeout(timer);
        chunk = head.rest;
        resolve(api);
      }
      try {
        for (const f of decoder.push(chunk)) {
          // Keep text frames and close frames; count the rest (pongs, binary) without keeping them.
          if (f.opcode === OP.TEXT || f.opcode === OP.CLOSE) frames.push(f);
          else api.otherFrames++;
        }
      } catch {
        /* not WebSocket framing (an HTTP error body): ignore */
      }
    });
    const api = {
      socket,
      get status() { return head.statusCode; },
      get headers() { return head.headers; },
      get body() { return head.rest; },
      frames,
      otherFrames: 0,
      state,
      texts() { return frames.filter((f) => f.opcode === OP.TEXT).map((f) => f.payload.toString('utf8')); },
      /** The code of the server's close frame, or null. */
      closeCode() {
        const c = frames.find((f) => f.opcode === OP.CLOSE);
        if (!c) return null;
        return c.payload.length >= 2 ? c.payload.readUInt16BE(0) : 1005;
      },
      closeReason() {
        const c = frames.find((f) => f.opcode === OP.CLOSE);
        return c && c.payload.length > 2 ? c.payload.subarray(2).toString('utf8') : '';
      },
      send(frame) { return socket.write(frame); },
      stopReading() { socket.pause(); },
      resumeReading() { socket.resume(); },
      close() { socket.destroy(); },
    };
  });
}

/**
 * After a flood: reads what the server still sends for up to `ms` (dropping it) and says how
 * the connection ended: `closed <code> <reason>`, `ended by server`, `reset by server`, or
 * `still open`.
 */
async function attackerEnd(att, ms = 3000) {
  att.resumeReading();
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !att.state.ended && att.closeCode() === null) await sleep(50);
  const code = att.closeCode();
  let how;
  if (code !== null) how = `closed ${code}${att.closeReason() ? ' ' + JSON.stringify(att.closeReason()) : ''}`;
  else if (att.state.error) how = `reset by server (${att.state.error.code || att.state.error.message})`;
  else if (att.state.ended) how = 'ended by server';
  else how = 'still open';
  att.close();
  return how;
}

module.exports = {
  serverPool,
  cutOff,
  wsAttacker,
  attackerEnd,
  encodeFrame,
  OP,
  MB,
  BUDGET,
  FLOOD_MS,
  ABORT_RSS_BYTES,
  sleep,
  request,
  runtimeTasks,
  metric,
  monitor,
  runAttack,
  assertBudgets,
  until,
  pump,
};
