'use strict';
// Issue 23: the hostile-input suite against the plain-WebSocket endpoint (`/ws`), each attack
// held to the suite's budgets (RSS, /healthz, runtime tasks back to baseline).
//
// Expected: malformed JSON is answered with an `error` frame and close 1008; unknown frame
// types with an `error` each, read only as fast as the attacker reads the answers; frames over
// --max-payload close 1009; binary frames close 1003; a connection that never sends its `auth`
// frame is closed 4401 after --connect-timeout; a request flood is rate limited and ends with
// close 4000; a ping flood that never reads queues a bounded number of pongs.

const { describe, it, afterEach } = require('node:test');
const { token } = require('../helpers/tokens');
const {
  serverPool, cutOff, runAttack, assertBudgets, wsAttacker, attackerEnd, encodeFrame, OP, pump, sleep,
} = require('./helpers');

const pool = serverPool();
afterEach(() => pool.stopAll());
const server = (args) => pool.server(args);

/** Masked frames repeated into one ~64 KiB buffer, so each write() carries many. */
function batch(frame, bytes = 64 * 1024) {
  return Buffer.concat(Array(Math.max(1, Math.floor(bytes / frame.length))).fill(frame));
}

/** A raw /ws client authenticated by `?token=`; resolves once `ready` arrived. */
async function authed(s, sub) {
  const att = await wsAttacker(s.url, `/ws?token=${token(sub)}`);
  const deadline = Date.now() + 10000;
  while (!att.texts().some((t) => t.includes('"ready"'))) {
    if (Date.now() > deadline || att.state.ended) throw new Error(`no ready; got ${att.texts().join(' | ')}`);
    await sleep(20);
  }
  return att;
}

describe('attack: /ws hostile frames (issue 23)', () => {
  it('malformed JSON frames, as fast as possible', async () => {
    const s = await server();
    const r = await runAttack('ws-malformed-json', s, async (ctx) => {
      const att = await authed(s, 'mallory');
      await pump(att.socket, batch(encodeFrame('{"type":')), () => ctx.keepGoing() && !att.state.ended);
      return { attacker: await attackerEnd(att) };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed 1008/)] });
  });

  it('unknown frame types, never reading the error answers', async () => {
    const s = await server();
    const r = await runAttack('ws-unknown-types', s, async (ctx) => {
      const att = await authed(s, 'mallory');
      att.stopReading();
      const sent = await pump(att.socket, batch(encodeFrame('{"type":"nope"}')), () => ctx.keepGoing() && !att.state.ended);
      return { attacker: await attackerEnd(att), note: `sent ${(sent.bytes / 1048576).toFixed(0)} MB, writes stalled: ${sent.stalled}` };
    });
    assertBudgets(r);
  });

  it('a frame over --max-payload', async () => {
    const s = await server(['--max-payload', '100000']);
    const r = await runAttack('ws-oversized-frame', s, async () => {
      const att = await authed(s, 'mallory');
      att.send(encodeFrame(JSON.stringify({ type: 'request', id: 1, event: 'sendMessage', data: 'x'.repeat(200000) })));
      return { attacker: await attackerEnd(att) };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed 1009/)] });
  });

  it('binary frames, before and after auth', async () => {
    const s = await server();
    const r = await runAttack('ws-binary-frames', s, async () => {
      const before = await wsAttacker(s.url, '/ws');
      before.send(encodeFrame(Buffer.alloc(1000, 1), { opcode: OP.BINARY }));
      const after = await authed(s, 'mallory');
      after.send(encodeFrame(Buffer.alloc(1000, 1), { opcode: OP.BINARY }));
      return { attacker: `before auth: ${await attackerEnd(before)}; after: ${await attackerEnd(after)}` };
    });
    assertBudgets(r, { checks: [[/before auth: closed 1003.*after: closed 1003/.test(r.attacker), `expected 1003 twice: ${r.attacker}`]] });
  });

  it('500 connections that never send their auth frame', async () => {
    const s = await server(['--connect-timeout', '2000']);
    const r = await runAttack('ws-no-auth-frame', s, async () => {
      const atts = [];
      for (let i = 0; i < 500; i++) atts.push(await wsAttacker(s.url, '/ws').catch((e) => ({ failed: e })));
      await sleep(3500);
      const open = atts.filter((a) => !a.failed);
      const codes = {};
      for (const a of open) {
        const c = a.closeCode();
        codes[c] = (codes[c] || 0) + 1;
      }
      for (const a of open) a.close();
      return { attacker: `close codes: ${JSON.stringify(codes)}`, codes, opened: open.length };
    });
    assertBudgets(r, {
      checks: [[r.codes && r.codes[4401] === r.opened, `every connection closed 4401: ${r.attacker}`]],
    });
  });

  it('a request flood: RATE_LIMITED, then close 4000', async () => {
    const s = await server(['--flood-disconnect-after', '1000']);
    const r = await runAttack('ws-request-flood', s, async (ctx) => {
      const att = await authed(s, 'mallory');
      const frame = encodeFrame(JSON.stringify({ type: 'request', id: 1, event: 'startTyping', data: 'lobby' }));
      await pump(att.socket, batch(frame), () => ctx.keepGoing() && !att.state.ended);
      const limited = att.texts().some((t) => t.includes('RATE_LIMITED'));
      return { attacker: `${await attackerEnd(att)}; rate limited: ${limited}` };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed 4000.*rate limited: true/)] });
  });

  it('WebSocket pings that never read the pongs, before auth', async () => {
    const s = await server();
    const r = await runAttack('ws-ping-flood-plain', s, async (ctx) => {
      const att = await wsAttacker(s.url, '/ws');
      att.stopReading();
      const sent = await pump(att.socket, batch(encodeFrame(Buffer.alloc(125, 1), { opcode: OP.PING })), () => ctx.keepGoing());
      return { attacker: await attackerEnd(att), note: `sent ${(sent.bytes / 1048576).toFixed(0)} MB of pings, writes stalled: ${sent.stalled}` };
    });
    assertBudgets(r);
  });
});
