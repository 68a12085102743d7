'use strict';
// Issue 16, items 6 and 12 and their variants: memory a client can hold before it authenticated,
// and an oversized polling POST.
//
// Expected: a packet's attachments together are bounded by --max-payload (the connection is
// closed); a session that never sends CONNECT is closed after --connect-timeout (45 s default);
// a session keeps only the header fields the engine needs; an oversized POST gets a 413 that
// the client reads (no ECONNRESET).

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { runCli } = require('../helpers/server');
const {
  serverPool, cutOff, runAttack, assertBudgets, wsAttacker, attackerEnd, encodeFrame, OP, request, sleep, MB,
} = require('./helpers');

const pool = serverPool();
afterEach(() => pool.stopAll());
const server = (args) => pool.server(args);

/** `--connect-timeout ms` when this build has the flag (issue 16 adds it), else nothing. */
async function connectTimeoutArgs(ms) {
  const help = await runCli(['serve', '--help']);
  return /--connect-timeout/.test(help.stdout) ? ['--connect-timeout', String(ms)] : [];
}

describe('attack: memory before authentication (issue 16 item 6)', () => {
  it('binary event header with 255 placeholders, then 1 MB attachments, before CONNECT', async () => {
    const s = await server();
    const r = await runAttack('attachments-before-connect', s, async (ctx) => {
      const att = await wsAttacker(s.url, '/socket.io/?EIO=4&transport=websocket');
      assert.equal(att.status, 101);
      const placeholders = Array.from({ length: 255 }, (_, num) => ({ _placeholder: true, num }));
      // Engine.IO message `4`, Socket.IO BINARY_EVENT `5` with 255 attachments.
      att.send(encodeFrame('45255-' + JSON.stringify(['upload', ...placeholders])));
      // 999,999 bytes: each attachment alone is under the default --max-payload.
      const attachment = encodeFrame(Buffer.alloc(999999, 7), { opcode: OP.BINARY });
      let sent = 0;
      while (sent < 254 && ctx.keepGoing() && !att.state.ended && !att.state.error) {
        if (!att.send(attachment)) {
          await new Promise((res) => { att.socket.once('drain', res); setTimeout(res, 1000); });
        }
        sent++;
      }
      await sleep(1000);
      return { attacker: await attackerEnd(att), note: `${sent} attachments of 1 MB sent` };
    });
    assertBudgets(r, { checks: [cutOff(r, /closed|reset|ended/)] });
  });

  it('variant: the same attachments on a polling session (one POST each)', async () => {
    const s = await server();
    const r = await runAttack('attachments-before-connect-polling', s, async (ctx) => {
      const hs = await request(`${s.url}/socket.io/?EIO=4&transport=polling`, { timeoutMs: 5000 });
      assert.equal(hs.status, 200);
      const sid = JSON.parse(hs.body.toString().split('\x1e')[0].slice(1)).sid;
      const url = `${s.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
      const placeholders = Array.from({ length: 255 }, (_, num) => ({ _placeholder: true, num }));
      let res = await request(url, { method: 'POST', body: '45255-' + JSON.stringify(['upload', ...placeholders]), timeoutMs: 5000 });
      // Polling carries binary as `b<base64>`: 740,000 bytes are ~987 KB of base64.
      const body = 'b' + Buffer.alloc(740000, 7).toString('base64');
      let sent = 0;
      while (res.status === 200 && sent < 254 && ctx.keepGoing()) {
        res = await request(url, { method: 'POST', body, timeoutMs: 5000 });
        sent++;
      }
      return { attacker: `last POST: ${res.status || (res.error && res.error.code)}`, note: `${sent} attachments of 740 KB sent`, lastStatus: res.status };
    });
    assertBudgets(r, { checks: [[r.lastStatus !== 200, 'the session was never cut off']] });
  });

  it('300 polling handshakes with 380 KB of headers each, never connecting', async () => {
    // The sessions live until the connect timeout: a short one lets the tasks budget apply.
    const s = await server(await connectTimeoutArgs(3000));
    const r = await runAttack('polling-handshakes-huge-headers', s, async (ctx) => {
      const headers = {};
      for (let i = 0; i < 38; i++) headers[`x-junk-${i}`] = 'h'.repeat(10000);
      const statuses = {};
      let n = 0;
      while (n < 300 && ctx.keepGoing()) {
        const res = await request(`${s.url}/socket.io/?EIO=4&transport=polling`, { headers, timeoutMs: 5000 });
        const k = res.status || (res.error && res.error.code) || 'error';
        statuses[k] = (statuses[k] || 0) + 1;
        n++;
      }
      return { attacker: `handshakes answered ${JSON.stringify(statuses)}`, note: `${n} handshakes` };
    });
    assertBudgets(r);
  });

  it('variant: 10 s of polling handshakes with 14 KB of headers each over one keep-alive connection', async () => {
    // Each handshake is small enough to be served: what bounds them is the cap on sessions
    // that have not authenticated (--max-pending-connections), each for up to the connect
    // timeout (short here, so the tasks budget applies). The cap is 1000 here, not the default
    // 2000: at 2000 the sessions' kept headers (2000 × 14 KB) and the allocator's churn of
    // sessions expiring and replaced measure 55-66 MB of RSS on this machine, on both sides of
    // the 64 MB budget, so a run would pass or fail by chance; at 1000 a session that kept
    // more than it should still shows (the growth is proportional to the cap).
    const s = await server(['--connect-timeout', '3000', '--max-pending-connections', '1000']);
    const r = await runAttack('pending-handshake-flood', s, async (ctx) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const headers = {};
      for (let i = 0; i < 14; i++) headers[`x-junk-${i}`] = 'p'.repeat(1000);
      const statuses = {};
      const started = Date.now();
      while (Date.now() - started < 10000 && ctx.keepGoing()) {
        const status = await new Promise((resolve) => {
          const req = http.get(`${s.url}/socket.io/?EIO=4&transport=polling`, { agent, headers }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
          });
          req.on('error', (e) => resolve(e.code || 'error'));
        });
        statuses[status] = (statuses[status] || 0) + 1;
      }
      agent.destroy();
      return { attacker: `handshakes answered ${JSON.stringify(statuses)}`, refused: statuses[503] || 0 };
    });
    assertBudgets(r, { checks: [[r.refused > 0, 'no handshake was refused: nothing bounds the sessions that never authenticate']] });
  });

  it('variant: WebSocket upgrades with 380 KB of headers each, never connecting, kept open', async () => {
    const s = await server();
    const open = [];
    const r = await runAttack('ws-upgrades-huge-headers', s, async (ctx) => {
      const headers = {};
      for (let i = 0; i < 38; i++) headers[`x-junk-${i}`] = 'w'.repeat(10000);
      const statuses = {};
      while (open.length < 300 && ctx.keepGoing()) {
        try {
          const att = await wsAttacker(s.url, '/socket.io/?EIO=4&transport=websocket', { headers });
          statuses[att.status] = (statuses[att.status] || 0) + 1;
          open.push(att);
        } catch (e) {
          statuses[e.code || 'refused'] = (statuses[e.code || 'refused'] || 0) + 1;
        }
      }
      await sleep(1000);
      const n = open.length;
      for (const a of open) a.close();
      return { attacker: `upgrades answered ${JSON.stringify(statuses)}`, note: `${n} sessions held open` };
    });
    assertBudgets(r);
  });

  it('a session that never sends CONNECT is closed after --connect-timeout', async () => {
    const help = await runCli(['serve', '--help']);
    assert.match(help.stdout, /--connect-timeout/, '`switchboard serve` has no --connect-timeout flag (no connect timeout)');
    const s = await server(['--connect-timeout', '2000']);
    const r = await runAttack('never-connect', s, async () => {
      const att = await wsAttacker(s.url, '/socket.io/?EIO=4&transport=websocket');
      // Answer the server's pings (a live client), but never send CONNECT.
      const started = Date.now();
      while (Date.now() - started < 8000 && !att.state.ended && att.closeCode() === null) {
        for (const t of att.texts()) if (t === '2') { att.send(encodeFrame('3')); }
        att.frames.length = 0;
        await sleep(100);
      }
      const closedAfter = Date.now() - started;
      return { attacker: `${await attackerEnd(att, 500)} after ${closedAfter} ms`, closedAfter };
    });
    assertBudgets(r, { checks: [[r.closedAfter < 6000, `the session was still open ${r.closedAfter} ms after the 2 s connect timeout`]] });
  });
});

describe('attack: oversized polling POST (issue 16 item 12)', () => {
  it('2 MB and 4 MB POSTs to an open polling session get a 413 the client reads, 30 times in a row', async () => {
    const s = await server();
    const r = await runAttack('polling-post-413', s, async () => {
      const seen = {};
      for (let i = 0; i < 30; i++) {
        // On loopback a 2 MB body often fits in the socket buffers (the case); with
        // 4 MB the client is still sending when the server answers, which is what resets.
        const body = Buffer.alloc((i % 2 ? 4 : 2) * MB, 0x61);
        const hs = await request(`${s.url}/socket.io/?EIO=4&transport=polling`, { timeoutMs: 5000 });
        const sid = JSON.parse(hs.body.toString().split('\x1e')[0].slice(1)).sid;
        const res = await request(`${s.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
          method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' }, timeoutMs: 5000,
        });
        const k = res.status || (res.error && res.error.code) || 'error';
        seen[k] = (seen[k] || 0) + 1;
        // Leave like a client would (the session may already be gone): its tasks must end.
        await request(`${s.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '1', timeoutMs: 5000 });
      }
      return { attacker: `answers ${JSON.stringify(seen)}`, seen };
    });
    assertBudgets(r, { checks: [[JSON.stringify(r.seen) === '{"413":30}', `every oversized POST must be answered 413, readable by the client: ${JSON.stringify(r.seen)}`]] });
  });

  it('variant: 4 MB chunked POSTs (no Content-Length) and 4 MB to /api/, read as 413 too', async () => {
    const s = await server(['--api-key', 'attack-suite-api-key']);
    const r = await runAttack('post-413-chunked-and-api', s, async () => {
      const seen = {};
      for (let i = 0; i < 10; i++) {
        const hs = await request(`${s.url}/socket.io/?EIO=4&transport=polling`, { timeoutMs: 5000 });
        const sid = JSON.parse(hs.body.toString().split('\x1e')[0].slice(1)).sid;
        const chunked = await request(`${s.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
          method: 'POST', body: Buffer.alloc(4 * MB, 0x62), headers: { 'transfer-encoding': 'chunked' }, timeoutMs: 5000,
        });
        const api = await request(`${s.url}/api/rooms/lobby/messages`, {
          method: 'POST', body: Buffer.alloc(4 * MB, 0x63),
          headers: { 'content-type': 'application/json', authorization: 'Bearer attack-suite-api-key' }, timeoutMs: 5000,
        });
        await request(`${s.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '1', timeoutMs: 5000 });
        for (const [what, res] of [['chunked', chunked], ['api', api]]) {
          const k = `${what} ${res.status || (res.error && res.error.code) || 'error'}`;
          seen[k] = (seen[k] || 0) + 1;
        }
      }
      return { attacker: `answers ${JSON.stringify(seen)}`, seen };
    });
    assertBudgets(r, { checks: [[r.seen['chunked 413'] === 10 && r.seen['api 413'] === 10, `every oversized POST must be answered 413: ${JSON.stringify(r.seen)}`]] });
  });
});
