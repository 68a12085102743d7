'use strict';
// Issue 16, items 5 and 7 and their variants: chat requests that cost the server a task or a
// history entry each (typing, SSE `?rooms=`), and what they must cost at most.
//
// Expected: typing is rate limited with the other requests (`error {code:'RATE_LIMITED'}`, then
// a server disconnect) and keeps one timer per socket and room; an SSE stream with more than
// 100 rooms is refused with 400 `{code:'TOO_MANY_ROOMS'}`.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { token } = require('../helpers/tokens');
const {
  serverPool, cutOff, runAttack, assertBudgets, wsAttacker, attackerEnd, encodeFrame, request, sleep, pump,
} = require('./helpers');

const pool = serverPool();
afterEach(() => pool.stopAll());
const server = (args) => pool.server(args);

/** A raw Socket.IO client that connected as `sub` (answers pings while it reads). */
async function connected(s, sub) {
  const att = await wsAttacker(s.url, '/socket.io/?EIO=4&transport=websocket');
  att.send(encodeFrame('40' + JSON.stringify({ token: token(sub) })));
  const deadline = Date.now() + 10000;
  while (!att.texts().some((t) => t.startsWith('40') || t.startsWith('44'))) {
    if (Date.now() > deadline) throw new Error(`no CONNECT answer; got ${att.texts().join(' | ')}`);
    await sleep(20);
  }
  const reply = att.texts().find((t) => t.startsWith('40') || t.startsWith('44'));
  assert.ok(reply.startsWith('40'), `CONNECT refused: ${reply}`);
  return att;
}

/** What the server said to a flooding client: `error` events and the disconnect. */
function serverSaid(att) {
  const said = att.texts().filter((t) => t.startsWith('42["error"') || t === '41' || t.startsWith('1'));
  return said.length ? said.slice(0, 3).join(' ') : 'nothing';
}

describe('attack: typing floods (issue 16 item 5)', () => {
  it('startTyping/stopTyping as fast as the socket takes them, one connection', async () => {
    const s = await server();
    const r = await runAttack('typing-flood', s, async (ctx) => {
      const att = await connected(s, 'mallory');
      att.send(encodeFrame('42["joinRoom","lobby"]'));
      await sleep(200);
      const frames = Buffer.concat(Array(500).fill(0).map((_, i) => encodeFrame(i % 2 ? '42["stopTyping","lobby"]' : '42["startTyping","lobby"]')));
      const sent = await pump(att.socket, frames, () => ctx.keepGoing() && !att.state.ended);
      await sleep(500);
      const said = serverSaid(att);
      return { attacker: `${await attackerEnd(att, 1000)}; server said ${said}`, note: `${sent.writes * 500} typing frames sent` };
    });
    assertBudgets(r, {
      checks: [
        cutOff(r, /RATE_LIMITED|closed|reset|ended/),
        // One resettable timer per socket and room, not a task per frame.
        [r.tasksPeak <= r.tasksBefore + 20, `runtime tasks peaked at ${r.tasksPeak} during the flood (baseline ${r.tasksBefore})`],
      ],
    });
  });

  it('variant: startTyping in 10,000 different rooms (never joined)', async () => {
    const s = await server();
    const r = await runAttack('typing-many-rooms', s, async (ctx) => {
      const att = await connected(s, 'mallory');
      let i = 0;
      while (ctx.keepGoing() && !att.state.ended && i < 10000) {
        const batch = [];
        for (let k = 0; k < 100; k++, i++) batch.push(encodeFrame(`42["startTyping","room-${i}"]`));
        att.send(Buffer.concat(batch));
        await sleep(5);
      }
      await sleep(500);
      const said = serverSaid(att);
      return { attacker: `${await attackerEnd(att, 1000)}; server said ${said}`, note: `${i} rooms` };
    });
    assertBudgets(r);
  });
});

describe('attack: signals kept for recovery (issue 16, suspected)', () => {
  it('64 KiB signals to a peer as fast as allowed, with --rate-limit 0, for 10 s', async () => {
    // An operator may turn the rate limit off; the recovery log must still be bounded in bytes.
    const s = await server(['--rate-limit', '0']);
    const r = await runAttack('signals-recovery-log', s, async (ctx) => {
      const bob = await connected(s, 'bob');
      bob.send(encodeFrame('42["joinRoom","lobby"]'));
      const att = await connected(s, 'mallory');
      att.send(encodeFrame('42["joinRoom","lobby"]'));
      await sleep(300);
      // Bob reads everything (a healthy peer) and drops it, answering pings.
      const drain = setInterval(() => {
        if (bob.texts().includes('2')) bob.send(encodeFrame('3'));
        bob.frames.length = 0;
      }, 100);
      const signal = encodeFrame('42' + JSON.stringify(['signal', { toUserId: 'bob', data: 's'.repeat(64 * 1024 - 64) }]));
      const sent = await pump(att.socket, signal, () => ctx.keepGoing() && !att.state.ended);
      clearInterval(drain);
      const said = serverSaid(att);
      bob.send(encodeFrame('41'));
      att.send(encodeFrame('41'));
      await sleep(100);
      bob.close();
      return { attacker: `${await attackerEnd(att, 500)}; server said ${said}`, note: `${sent.writes} signals of 64 KiB sent` };
    });
    assertBudgets(r);
  });
});

describe('attack: SSE ?rooms= (issue 16 item 7)', () => {
  it('one stream asking for 11,000 rooms is refused (431: no such request head), 2,000 rooms 400 TOO_MANY_ROOMS, quickly', async () => {
    const s = await server();
    // Short distinct names (base 36). 11,000 of them pass the 16 KiB request head limit;
    // 2,000 fit in it and reach the rooms cap.
    const rooms = (n) => Array.from({ length: n }, (_, i) => i.toString(36)).join(',');
    const r = await runAttack('sse-11000-rooms', s, async () => {
      const huge = await request(`${s.url}/events?token=${token('mallory')}&rooms=${rooms(11000)}`, { timeoutMs: 10000 });
      const res = await request(`${s.url}/events?token=${token('mallory')}&rooms=${rooms(2000)}`, { timeoutMs: 10000 });
      let code = null;
      try { code = JSON.parse(res.body.toString()).code; } catch { /* a stream, not JSON */ }
      return {
        attacker: `11,000 rooms: HTTP ${huge.status || huge.error.message}; 2,000 rooms: HTTP ${res.status || res.error.message} ${code || ''} in ${Math.round(res.ms)} ms`,
        hugeStatus: huge.status, status: res.status, code,
      };
    });
    assertBudgets(r, {
      checks: [
        [r.hugeStatus === 431, `expected 431 for an 11,000-room URL: ${r.attacker}`],
        [r.status === 400 && r.code === 'TOO_MANY_ROOMS', `expected 400 TOO_MANY_ROOMS: ${r.attacker}`],
      ],
    });
  });

  it('variant: 101 rooms is refused, 100 is not', async () => {
    const s = await server();
    const list = (n) => Array.from({ length: n }, (_, i) => `room-${i}`).join(',');
    const r = await runAttack('sse-101-rooms', s, async () => {
      const over = await request(`${s.url}/events?token=${token('mallory')}&rooms=${list(101)}`, { timeoutMs: 5000 });
      const ok = await request(`${s.url}/events?token=${token('mallory')}&rooms=${list(100)}`, { timeoutMs: 1000 });
      return { attacker: `101 rooms: HTTP ${over.status}, 100 rooms: HTTP ${ok.status}`, status: over.status, okStatus: ok.status };
    });
    assertBudgets(r, {
      checks: [
        [r.status === 400, `expected 400 for 101 rooms: ${r.attacker}`],
        [r.okStatus === 200, `expected a stream for 100 rooms: ${r.attacker}`],
      ],
    });
  });

  it('variant: streams with Last-Event-ID and fresh room names, 4 at a time, for 10 s', async () => {
    const s = await server();
    const r = await runAttack('sse-last-event-id-room-churn', s, async (ctx) => {
      const tok = token('mallory');
      let n = 0;
      const statuses = {};
      // 100 fresh names per stream (the cap, within the 16 KiB request head): each name read
      // with Last-Event-ID must leave nothing behind.
      const worker = async (w) => {
        while (ctx.keepGoing()) {
          const id = n++;
          const rooms = Array.from({ length: 100 }, (_, i) => `${w}.${id}.${i}`).join(',');
          // Each stream is ended by the timeout: the subscription is what costs.
          const res = await request(`${s.url}/events?rooms=${rooms}`, {
            headers: { authorization: `Bearer ${tok}`, 'last-event-id': '0000000000000-0' }, timeoutMs: 150,
          });
          const k = res.status || (res.error && res.error.code);
          statuses[k] = (statuses[k] || 0) + 1;
        }
      };
      await Promise.all([0, 1, 2, 3].map(worker));
      return { attacker: `streams ${JSON.stringify(statuses)}`, note: `${n * 100} room names asked for`, streams: statuses[200] || 0 };
    });
    assertBudgets(r, { checks: [[r.streams > 0, `no stream was opened, nothing was attacked: ${r.attacker}`]] });
  });
});
