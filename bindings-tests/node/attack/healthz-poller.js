'use strict';
// The attack monitor's /healthz poller, in a process of its own (forked by helpers.js's
// monitor()): the budget is about the server answering other clients, and measured from the
// attacker's process it also timed that process. A flood that fills its own socket buffers
// (Engine.IO `2` pings whose pongs it never reads) slowed its requests by up to 1.4 s while
// curl, run beside it, saw every answer within 4 ms.
//
// argv: url, interval ms, timeout ms. Sends {worst, count, bad, badWhy} after each request;
// stops after the request in flight when the parent sends 'stop'.

const { request, sleep } = require('./helpers');

const [url, everyMs, timeoutMs] = process.argv.slice(2);
let running = true;
process.on('message', (m) => {
  if (m === 'stop') running = false;
});
process.on('disconnect', () => {
  running = false;
});

(async () => {
  const figures = { worst: 0, count: 0, bad: 0, badWhy: null };
  while (running) {
    const r = await request(`${url}/healthz`, { timeoutMs: Number(timeoutMs) });
    figures.count++;
    const ms = r.timedOut ? Math.max(r.ms, Number(timeoutMs)) : r.ms;
    if (r.status !== 200 || r.timedOut) {
      figures.bad++;
      figures.badWhy = r.error ? r.error.message : `HTTP ${r.status}`;
      figures.worst = Math.max(figures.worst, r.timedOut ? ms : 0);
    } else {
      figures.worst = Math.max(figures.worst, ms);
    }
    if (process.connected) process.send(figures);
    if (running) await sleep(Number(everyMs));
  }
  process.exit(0);
})();
