'use strict';
// Issue 16, items 1 and 4 and their variants: Yjs messages that cost the server far more than
// they cost the client. One binary frame may hold many y-websocket messages; each sync step 1
// makes the server encode a state answer, and awareness states are kept for as long as their
// sender stays.
//
// Expected reasons (what the fixers were told): too many messages in one frame: close 4400;
// awareness too large: close 4413; too many awareness client ids: close 4400.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const Y = require('yjs');
const encoding = require('lib0/encoding');
const { token } = require('../helpers/tokens');
const {
  serverPool, cutOff, runAttack, assertBudgets, wsAttacker, attackerEnd, encodeFrame, OP, sleep, MB,
} = require('./helpers');

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const MSG_QUERY_AWARENESS = 3;
const SYNC_STEP1 = 0;
const SYNC_UPDATE = 2;

const pool = serverPool();
afterEach(() => pool.stopAll());
// A document stays loaded (one task) until its idle unload: a short one lets the tasks budget
// see the attacker's tasks, not the document's.
const server = (args = []) => pool.server(['--yjs-idle-unload', '1000', ...args]);

function message(build) {
  const e = encoding.createEncoder();
  build(e);
  return Buffer.from(encoding.toUint8Array(e));
}

const syncUpdate = (update) => message((e) => {
  encoding.writeVarUint(e, MSG_SYNC);
  encoding.writeVarUint(e, SYNC_UPDATE);
  encoding.writeVarUint8Array(e, update);
});

/** The 4-byte sync step 1 with an empty state vector: "send me the whole document". */
const STEP1_EMPTY = Buffer.from([MSG_SYNC, SYNC_STEP1, 1, 0]);

/** An awareness update of `entries` [{clientId, clock, state (string)}]. */
const awareness = (entries) => message((e) => {
  encoding.writeVarUint(e, MSG_AWARENESS);
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, entries.length);
  for (const { clientId, clock, state } of entries) {
    encoding.writeVarUint(inner, clientId);
    encoding.writeVarUint(inner, clock);
    encoding.writeVarString(inner, state);
  }
  encoding.writeVarUint8Array(e, encoding.toUint8Array(inner));
});

/**
 * A document of about `bytes` encoded bytes made of many separate insertions (at the front, so
 * Yjs cannot merge them), sent as updates of at most ~1 MB each.
 */
function bigDocumentUpdates(bytes) {
  const updates = [];
  const chunk = 1000;
  const perUpdate = 900;
  let written = 0;
  while (written < bytes) {
    const d = new Y.Doc();
    d.clientID = 1000 + updates.length;
    const t = d.getText('t');
    for (let i = 0; i < perUpdate && written < bytes; i++) {
      t.insert(0, String.fromCharCode(97 + (i % 26)).repeat(chunk));
      written += chunk;
    }
    updates.push(Y.encodeStateAsUpdate(d));
  }
  return updates;
}

/** Opens /yjs/<doc> as a raw attacker and loads it with ~`bytes` of content. */
async function loadedDocument(s, doc, bytes) {
  const loader = await wsAttacker(s.url, `/yjs/${doc}?token=${token('loader')}`);
  assert.equal(loader.status, 101);
  for (const u of bigDocumentUpdates(bytes)) {
    loader.send(encodeFrame(syncUpdate(u), { opcode: OP.BINARY }));
  }
  // Let the server apply them before the attack (a debug build is slow). The loader stays
  // (reading what it is sent) so the document is not unloaded before the attack.
  await sleep(1500);
  return loader;
}

describe('attack: Yjs sync step 1 batches (issue 16 item 1)', () => {
  it('one frame of 1000 × sync step 1 on a 2 MB document, repeated', async () => {
    const s = await server();
    const loader = await loadedDocument(s, 'big-1', 2 * MB);
    const r = await runAttack('yjs-step1-batch', s, async (ctx) => {
      const att = await wsAttacker(s.url, `/yjs/big-1?token=${token('mallory')}`);
      assert.equal(att.status, 101);
      att.stopReading();
      const frame = encodeFrame(Buffer.concat(Array(1000).fill(STEP1_EMPTY)), { opcode: OP.BINARY });
      let frames = 0;
      while (ctx.keepGoing() && !att.state.ended && !att.state.error) {
        att.send(frame);
        frames++;
        await sleep(200);
      }
      const end = await attackerEnd(att);
      loader.close();
      return { attacker: end, note: `${frames} frames of 1000 step 1 each` };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed 4400|closed|reset|ended/)] });
  });

  it('variant: sync step 1 and query-awareness interleaved, one small frame at a time, never reading', async () => {
    // The answers wait for the attacker to read: the server stops reading it (backpressure),
    // then, as it takes no bytes, closes it as a slow reader after the send timeout.
    const s = await server(['--send-timeout', '3000']);
    const loader = await loadedDocument(s, 'big-2', 2 * MB);
    const r = await runAttack('yjs-step1-trickle', s, async (ctx) => {
      const att = await wsAttacker(s.url, `/yjs/big-2?token=${token('mallory')}`);
      assert.equal(att.status, 101);
      att.stopReading();
      const frame = encodeFrame(Buffer.concat([STEP1_EMPTY, Buffer.from([MSG_QUERY_AWARENESS]), STEP1_EMPTY]), { opcode: OP.BINARY });
      let frames = 0;
      while (ctx.keepGoing() && !att.state.ended && !att.state.error) {
        att.send(frame);
        frames++;
        if (frames % 20 === 0) await sleep(20);
      }
      const end = await attackerEnd(att);
      loader.close();
      return { attacker: end, note: `${frames} frames` };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed|reset|ended/)] });
  });
});

describe('attack: Yjs awareness (issue 16 item 4)', () => {
  it('150 awareness states of 1 MB each from one connection (many client ids)', async () => {
    const s = await server();
    const r = await runAttack('yjs-awareness-1mb-states', s, async (ctx) => {
      const att = await wsAttacker(s.url, `/yjs/aw-1?token=${token('mallory')}`);
      assert.equal(att.status, 101);
      const state = JSON.stringify({ user: { name: 'x'.repeat(MB) } });
      let sent = 0;
      for (let i = 0; i < 150 && ctx.keepGoing() && !att.state.ended && !att.state.error; i++) {
        att.send(encodeFrame(awareness([{ clientId: 5000 + i, clock: 1, state }]), { opcode: OP.BINARY }));
        sent++;
        await sleep(20);
      }
      // Stay connected: the states are held for as long as the sender is.
      await sleep(2000);
      // A newcomer must still be able to join and stay.
      const newcomer = await wsAttacker(s.url, `/yjs/aw-1?token=${token('bob')}`);
      await sleep(2000);
      const newcomerEnd = newcomer.closeCode() === null && !newcomer.state.ended ? 'newcomer stayed' : `newcomer closed ${newcomer.closeCode()}`;
      newcomer.close();
      return { attacker: await attackerEnd(att), note: `${sent} states sent; ${newcomerEnd}`, newcomerEnd };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed 44(13|00)|closed|reset|ended/), [r.newcomerEnd === 'newcomer stayed', `a newcomer must be able to join: ${r.newcomerEnd}`]] });
  });

  it('variant: 100,000 small awareness client ids in frames of 10,000', async () => {
    const s = await server();
    const r = await runAttack('yjs-awareness-many-ids', s, async (ctx) => {
      const att = await wsAttacker(s.url, `/yjs/aw-2?token=${token('mallory')}`);
      assert.equal(att.status, 101);
      let ids = 0;
      for (let f = 0; f < 10 && ctx.keepGoing() && !att.state.ended && !att.state.error; f++) {
        const entries = [];
        for (let i = 0; i < 10000; i++) entries.push({ clientId: 10000 + ids++, clock: 1, state: '{"u":"' + 'y'.repeat(200) + '"}' });
        att.send(encodeFrame(awareness(entries), { opcode: OP.BINARY }));
        await sleep(100);
      }
      await sleep(1000);
      return { attacker: await attackerEnd(att), note: `${ids} client ids sent` };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed 4400|closed|reset|ended/)] });
  });

  it('variant: one client id whose 3 MB state is replaced as fast as possible', async () => {
    const s = await server();
    const r = await runAttack('yjs-awareness-churn', s, async (ctx) => {
      const att = await wsAttacker(s.url, `/yjs/aw-3?token=${token('mallory')}`);
      assert.equal(att.status, 101);
      // A second member who does not read: every state is broadcast to it.
      const victim = await wsAttacker(s.url, `/yjs/aw-3?token=${token('victim')}`);
      victim.stopReading();
      const state = JSON.stringify({ user: { name: 'z'.repeat(3 * MB) } });
      let clock = 1;
      while (ctx.keepGoing() && !att.state.ended && !att.state.error) {
        if (!att.send(encodeFrame(awareness([{ clientId: 777, clock: clock++, state }]), { opcode: OP.BINARY }))) {
          await new Promise((res) => { att.socket.once('drain', res); setTimeout(res, 500); });
        }
        await sleep(10);
      }
      victim.close();
      return { attacker: await attackerEnd(att), note: `${clock - 1} states of 3 MB` };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed 4413|closed|reset|ended/)] });
  });
});
