'use strict';
// Issue 4: Node's event loop stays free while the engine fans out. Runs bench/fanout-eventloop.js
// (a Fastify app with the plugin here, 1000 raw WebSocket clients in one room in a child
// process, a flood through app.switchboard.to(room).emit and through sendMessage) and reports
// the event-loop delay figures. A measurement, not a timing test: it asserts that every client
// got every message and only bounds no loaded machine can reach; the figures are printed as
// test diagnostics (and by `node bench/fanout-eventloop.js` in full).
//
// SB_FANOUT_CLIENTS / SB_FANOUT_RATE / SB_FANOUT_SECONDS override the defaults (1000 / 50 / 2).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { run } = require('../bench/fanout-eventloop');

const CLIENTS = Number(process.env.SB_FANOUT_CLIENTS || 1000);
const RATE = Number(process.env.SB_FANOUT_RATE || 50);
const SECONDS = Number(process.env.SB_FANOUT_SECONDS || 2);

describe('event loop during a room fan-out through the Fastify plugin', () => {
  it(`${CLIENTS} clients in one room, ${RATE} msgs/s for ${SECONDS} s via emit and via sendMessage`, { timeout: 90000 }, async (t) => {
    const r = await run({ clients: CLIENTS, rate: RATE, seconds: SECONDS, via: 'both', log: (l) => t.diagnostic(l) });
    for (const mode of ['emit', 'send']) {
      const m = r.modes[mode];
      assert.equal(m.closedClients, 0, `${mode}: no client was dropped`);
      assert.equal(m.delivered, m.expected, `${mode}: every client got every message`);
      assert.equal(m.minPerClient, m.published, `${mode}: the slowest client got all ${m.published}`);
    }
    // sendMessage floods never run JS in the app: its loop must not stall for long. The bound
    // only catches an engine that blocks Node (a stall of seconds), not a busy machine.
    assert.ok(r.modes.send.eventLoopDelay.p99 < 250,
      `event-loop delay p99 ${r.modes.send.eventLoopDelay.p99} ms during a sendMessage flood`);
    assert.ok(r.modes.send.eventLoopDelay.max < 2000,
      `event-loop delay max ${r.modes.send.eventLoopDelay.max} ms during a sendMessage flood`);
  });
});
