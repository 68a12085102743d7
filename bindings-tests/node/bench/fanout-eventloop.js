'use strict';
// Does Node's event loop stay free while the engine fans out? A Fastify app with the
// @switchboard/node plugin runs in this process; N clients (raw WebSocket, in a child process:
// bench/fanout-clients.js) join one room; the room is flooded, and
// perf_hooks.monitorEventLoopDelay() records this process's event-loop delay meanwhile.
//
//   node bench/fanout-eventloop.js [--clients 1000] [--rate 100] [--seconds 5] [--size 64]
//                                  [--via emit|send|both] [--json]
//
//   --via emit   the app publishes: app.switchboard.to(room).emit('tick', …) from a 10 ms timer
//   --via send   a client (another child process) publishes: sendMessage over its WebSocket
//                (rateLimitPerSecond: 0), so the app's JS does nothing per message
//   --rate       messages per second into the room (each is delivered to every client)
//
// Prints, per mode, the app's event-loop delay p50/p99/max during the flood and during an idle
// second before it, the same figures from an idle control process running meanwhile (what the
// machine's scheduling alone costs), the JS time spent in emit() calls, and the deliveries
// the clients counted. monitorEventLoopDelay with resolution 1 ms reports the time between
// 1 ms timer ticks, so an idle loop reads ~1.1 ms. `run(options)` is the same as a function.

const { fork } = require('node:child_process');
const path = require('node:path');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const Fastify = require('fastify');
const switchboard = require('@switchboard/node/fastify');
const { token, SECRET } = require('../helpers/tokens');

const ROOM = 'flood';
const CLIENTS_JS = path.join(__dirname, 'fanout-clients.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Forks fanout-clients.js and returns ask(msg, replyKey, timeout) -> the reply. */
function worker() {
  const proc = fork(CLIENTS_JS, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiters = [];
  proc.on('message', (m) => {
    const i = waiters.findIndex((w) => w.key in m || 'error' in m);
    if (i === -1) return;
    const w = waiters.splice(i, 1)[0];
    clearTimeout(w.timer);
    if ('error' in m) w.reject(new Error(`bench worker: ${m.error}`));
    else w.resolve(m);
  });
  proc.on('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`bench worker exited (${code})`));
  });
  const ask = (msg, key, timeout = 60000) => new Promise((resolve, reject) => {
    const w = { key, resolve, reject };
    w.timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(w), 1);
      reject(new Error(`no "${key}" from the bench worker within ${timeout} ms`));
    }, timeout);
    waiters.push(w);
    proc.send(msg);
  });
  ask.stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    const exited = new Promise((r) => proc.once('exit', r));
    if (proc.connected) proc.send({ cmd: 'exit' });
    await exited;
    clearTimeout(killer);
  };
  return ask;
}

const ms = (ns) => Math.round(ns / 1e4) / 100; // ns -> ms with 2 decimals

/** This process's event-loop delay while `fn()` runs, and the control process's meanwhile. */
async function measure(control, fn) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  await control({ cmd: 'eldStart' }, 'eldStarted');
  h.enable();
  try {
    await fn();
  } finally {
    h.disable();
  }
  const { eld } = await control({ cmd: 'eldStop' }, 'eld');
  const app = { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean), samples: h.count };
  return { app, control: eld };
}

/** Polls the clients' counts of `event` until every client has `expected` (or the timeout). */
async function waitForCounts(clients, event, expected, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { counts } = await clients({ cmd: 'counts' }, 'counts');
    const c = { ...counts[event], closed: counts.closed };
    if (c.min >= expected || Date.now() > deadline) return c;
    await sleep(100);
  }
}

const fmt = (d) => `p50 ${d.p50} ms, p99 ${d.p99} ms, max ${d.max} ms`;

async function run({ clients: n = 1000, rate = 100, seconds = 5, size = 64, via = 'both', log = () => {} } = {}) {
  const modes = via === 'both' ? ['emit', 'send'] : [via];
  const app = Fastify({ logger: false });
  await app.register(switchboard, {
    jwtSecret: SECRET,
    rateLimitPerSecond: 0,
    pingInterval: 60000,
    pingTimeout: 60000,
    outboundQueueFrames: 65536,
    outboundQueueBytes: 256 * 1024 * 1024,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address();
  const clients = worker();
  const publisher = worker();
  const control = worker();
  const result = { clients: n, rate, seconds, size, modes: {} };
  try {
    const tokens = Array.from({ length: n }, (_, i) => token(`u${i}`));
    const t0 = Date.now();
    const { ready } = await clients({ cmd: 'connect', port, n, tokens, room: ROOM }, 'ready', 120000);
    result.connectMs = Date.now() - t0;
    log(`${ready} clients connected and joined "${ROOM}" in ${result.connectMs} ms`);
    await sleep(500); // let the userJoined storm of the joins drain
    result.idle = await measure(control, () => sleep(1000));
    log(`idle second:  app event-loop delay ${fmt(result.idle.app)}   (control process: ${fmt(result.idle.control)})`);

    for (const mode of modes) {
      const event = mode === 'emit' ? 'tick' : 'message';
      const total = Math.round(rate * seconds);
      const before = (await clients({ cmd: 'counts' }, 'counts')).counts[event];
      const text = 'x'.repeat(size);
      const t1 = Date.now();
      let published = 0;
      let emitNs = 0n;
      const delay = await measure(control, async () => {
        if (mode === 'emit') {
          const start = Date.now();
          await new Promise((resolve) => {
            const timer = setInterval(() => {
              // paced by the clock: `rate` per second however late the timer fires
              const due = Math.min(total, Math.ceil((rate * (Date.now() - start + 10)) / 1000));
              const s = process.hrtime.bigint();
              for (; published < due; published++) {
                app.switchboard.to(ROOM).emit('tick', { seq: published, text });
              }
              emitNs += process.hrtime.bigint() - s;
              if (published >= total) { clearInterval(timer); resolve(); }
            }, 10);
          });
        } else {
          ({ published } = await publisher(
            { cmd: 'publish', port, rate, seconds, size, token: token('publisher'), room: ROOM },
            'published', seconds * 1000 + 30000,
          ));
        }
      });
      const publishMs = Date.now() - t1;
      const counts = await waitForCounts(clients, event, before.min + published, 20000);
      const deliverMs = Date.now() - t1;
      const delivered = counts.total - before.total;
      const r = {
        published,
        publishMs,
        deliverMs,
        delivered,
        expected: published * n,
        minPerClient: counts.min - before.min,
        closedClients: counts.closed,
        deliveriesPerSecond: Math.round(delivered / (deliverMs / 1000)),
        eventLoopDelay: delay.app,
        controlEventLoopDelay: delay.control,
      };
      if (mode === 'emit') r.emitMicrosPerCall = Math.round(Number(emitNs / BigInt(Math.max(1, published))) / 100) / 10;
      result.modes[mode] = r;
      log(`--via ${mode}: ${published} messages in ${publishMs} ms -> ${delivered}/${r.expected} deliveries ` +
        `(${r.deliveriesPerSecond}/s, all in by ${deliverMs} ms, ${counts.closed} clients closed)` +
        (mode === 'emit' ? `; JS time per to(room).emit() call: ${r.emitMicrosPerCall} µs` : ''));
      log(`--via ${mode}: app event-loop delay during the flood ${fmt(delay.app)} (mean ${delay.app.mean} ms, ` +
        `${delay.app.samples} samples)   (control process: ${fmt(delay.control)})`);
    }
  } finally {
    await Promise.all([clients.stop(), publisher.stop(), control.stop()]);
    await app.close();
  }
  return result;
}

module.exports = { run };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? def : args[i + 1];
  };
  const options = {
    clients: Number(opt('clients', 1000)),
    rate: Number(opt('rate', 100)),
    seconds: Number(opt('seconds', 5)),
    size: Number(opt('size', 64)),
    via: opt('via', 'both'),
  };
  const json = args.includes('--json');
  run({ ...options, log: json ? () => {} : (l) => console.log(l) }).then((r) => {
    if (json) console.log(JSON.stringify(r, null, 2));
  }, (e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
