'use strict';
// Issue 16, item 2 and its variants: pings whose answers bypass the outbound queue limit.
// One connection floods pings (WebSocket ping frames, or Engine.IO `2` packets) and never reads
// what the server answers; the pongs must count against its queue, at most one may be pending,
// and the server must stop reading from (or drop) a connection whose queue is full.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { token } = require('../helpers/tokens');
const {
  serverPool, cutOff, runAttack, assertBudgets, wsAttacker, attackerEnd, encodeFrame, OP, pump, request, sleep,
} = require('./helpers');

const pool = serverPool();
afterEach(() => pool.stopAll());
const server = (args) => pool.server(args);

/** Masked frames repeated into one ~64 KiB buffer, so each write() carries many. */
function batch(frame, bytes = 64 * 1024) {
  return Buffer.concat(Array(Math.max(1, Math.floor(bytes / frame.length))).fill(frame));
}

/** Floods `frames` on an attacker that does not read, for the flood time. */
async function flood(att, frames, ctx) {
  att.stopReading();
  const sent = await pump(att.socket, frames, () => ctx.keepGoing());
  return sent;
}

describe('attack: ping floods that never read the pongs (issue 16 item 2)', () => {
  it('WebSocket ping frames on /socket.io/ before any CONNECT', async () => {
    const s = await server();
    const r = await runAttack('ws-ping-flood-socketio', s, async (ctx) => {
      const att = await wsAttacker(s.url, '/socket.io/?EIO=4&transport=websocket');
      assert.equal(att.status, 101);
      const sent = await flood(att, batch(encodeFrame(Buffer.alloc(125, 1), { opcode: OP.PING })), ctx);
      return { attacker: await attackerEnd(att), note: `sent ${(sent.bytes / 1048576).toFixed(0)} MB of pings, writes stalled: ${sent.stalled}` };
    });
    assertBudgets(r);
  });

  it('Engine.IO `2` ping packets over WebSocket', async () => {
    const s = await server();
    const r = await runAttack('eio-ping-flood-ws', s, async (ctx) => {
      const att = await wsAttacker(s.url, '/socket.io/?EIO=4&transport=websocket');
      assert.equal(att.status, 101);
      const sent = await flood(att, batch(encodeFrame('2')), ctx);
      return { attacker: await attackerEnd(att), note: `sent ${(sent.bytes / 1048576).toFixed(0)} MB of '2', writes stalled: ${sent.stalled}` };
    });
    assertBudgets(r);
  });

  it('Engine.IO `2` probe packets (`2probe`, answered `3probe`) over WebSocket after CONNECT', async () => {
    const s = await server();
    const r = await runAttack('eio-probe-flood-ws', s, async (ctx) => {
      const att = await wsAttacker(s.url, '/socket.io/?EIO=4&transport=websocket');
      att.send(encodeFrame('40' + JSON.stringify({ token: token('mallory') })));
      await sleep(200);
      const sent = await flood(att, batch(encodeFrame('2probe')), ctx);
      return { attacker: await attackerEnd(att), note: `sent ${(sent.bytes / 1048576).toFixed(0)} MB, writes stalled: ${sent.stalled}` };
    });
    assertBudgets(r);
  });

  it('Engine.IO `2` ping packets over long-polling, never polling for the answers', async () => {
    const s = await server();
    const r = await runAttack('eio-ping-flood-polling', s, async (ctx) => {
      const hs = await request(`${s.url}/socket.io/?EIO=4&transport=polling`, { timeoutMs: 5000 });
      assert.equal(hs.status, 200);
      const sid = JSON.parse(hs.body.toString().split('\x1e')[0].slice(1)).sid;
      // One POST carries as many `2` packets as fit in the default max payload.
      const body = Array(300000).fill('2').join('\x1e');
      const statuses = {};
      let posts = 0;
      while (ctx.keepGoing()) {
        const res = await request(`${s.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
          method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' }, timeoutMs: 5000,
        });
        posts++;
        const k = res.status || (res.error && res.error.code) || 'error';
        statuses[k] = (statuses[k] || 0) + 1;
        if (res.status !== 200) break;
      }
      return { attacker: `polling POSTs answered ${JSON.stringify(statuses)}`, note: `${posts} POSTs of 300k pings` };
    });
    assertBudgets(r);
  });

  it('WebSocket ping frames on /yjs/ (the server\'s own pings are control frames too)', async () => {
    const s = await server(['--yjs-ping-interval', '1000', '--yjs-idle-unload', '1000']);
    const r = await runAttack('ws-ping-flood-yjs', s, async (ctx) => {
      const att = await wsAttacker(s.url, `/yjs/attack-doc?token=${token('mallory')}`);
      assert.equal(att.status, 101);
      const sent = await flood(att, batch(encodeFrame(Buffer.alloc(125, 2), { opcode: OP.PING })), ctx);
      return { attacker: await attackerEnd(att), note: `sent ${(sent.bytes / 1048576).toFixed(0)} MB of pings, writes stalled: ${sent.stalled}` };
    });
    assertBudgets(r);
  });

  it('WebSocket ping frames with empty payloads (the most pongs per byte) on /socket.io/ after CONNECT', async () => {
    const s = await server();
    const r = await runAttack('ws-empty-ping-flood-socketio', s, async (ctx) => {
      const att = await wsAttacker(s.url, '/socket.io/?EIO=4&transport=websocket');
      att.send(encodeFrame('40' + JSON.stringify({ token: token('mallory') })));
      await sleep(200);
      const sent = await flood(att, batch(encodeFrame(Buffer.alloc(0), { opcode: OP.PING })), ctx);
      return { attacker: await attackerEnd(att), note: `sent ${(sent.bytes / 1048576).toFixed(0)} MB of pings, writes stalled: ${sent.stalled}` };
    });
    assertBudgets(r);
  });
});
