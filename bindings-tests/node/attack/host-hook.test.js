'use strict';
// Issue 16, item 3 and its variants: events queued behind a slow host hook (a Node handler of
// the @switchboard/node binding). The queue must be bounded in bytes, the engine must stop
// reading while it is full, and queued work must be dropped when the socket goes: no handler
// call may start after the client left (but the one already running).
//
// The host runs in a child process (fixtures/slow-host.js) so its RSS is measured apart from
// the attacker's.

const { describe, it, afterEach } = require('node:test');
const { fork } = require('node:child_process');
const path = require('node:path');
const { SECRET } = require('../helpers/server');
const { selfSignedCert } = require('../helpers/tls');
const { token } = require('../helpers/tokens');
const {
  runAttack, assertBudgets, wsAttacker, attackerEnd, encodeFrame, sleep, pump, MB,
} = require('./helpers');

const hosts = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.stop();
});

/** Starts fixtures/slow-host.js; resolves {url, pid, calls, stop()}. */
function startHost({ slowMs = 2000, tls = null } = {}) {
  return new Promise((resolve, reject) => {
    const tlsEnv = tls ? { TLS_CERT: tls.cert, TLS_KEY: tls.key } : {};
    const child = fork(path.join(__dirname, 'fixtures/slow-host.js'), [], {
      env: { ...process.env, JWT_SECRET: SECRET, SLOW_MS: String(slowMs), ...tlsEnv },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const calls = [];
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the host app did not listen within 30 s')); }, 30000);
    const exited = new Promise((r) => child.once('exit', r));
    child.on('message', (m) => {
      if (m.type === 'call') calls.push(m.at);
      if (m.type === 'listening') {
        clearTimeout(timer);
        const host = {
          url: `${m.https ? 'https' : 'http'}://127.0.0.1:${m.port}`,
          pid: child.pid,
          calls,
          async stop() {
            if (child.exitCode !== null || child.signalCode) return;
            child.send('stop');
            const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(killer);
          },
        };
        hosts.push(host);
        resolve(host);
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the host app exited (${code})`)); });
  });
}

async function connected(url, sub) {
  const att = await wsAttacker(url, '/socket.io/?EIO=4&transport=websocket');
  att.send(encodeFrame('40' + JSON.stringify({ token: token(sub) })));
  const deadline = Date.now() + 10000;
  while (!att.texts().some((t) => t.startsWith('40') || t.startsWith('44'))) {
    if (Date.now() > deadline) throw new Error(`no CONNECT answer; got ${att.texts().join(' | ')}`);
    await sleep(20);
  }
  return att;
}

/** After the attacker left: handler calls that started later than 500 ms after it, over `watchMs`. */
async function callsAfterLeaving(host, leftAt, watchMs) {
  await sleep(watchMs);
  return host.calls.filter((at) => at > leftAt + 500).length;
}

describe('attack: events queued behind a slow host hook (issue 16 item 3)', () => {
  it('900 KB events as fast as possible behind a 2 s Node handler, then the client leaves', async () => {
    const host = await startHost({ slowMs: 2000 });
    let leftAt = 0;
    const r = await runAttack('slow-host-hook-900kb', host, async (ctx) => {
      const att = await connected(host.url, 'mallory');
      const frame = encodeFrame('42' + JSON.stringify(['slow', 'p'.repeat(900 * 1024)]));
      const sent = await pump(att.socket, frame, () => ctx.keepGoing() && !att.state.ended);
      const end = await attackerEnd(att, 500);
      leftAt = Date.now();
      return { attacker: end, note: `${sent.writes} events of 900 KB sent (${(sent.bytes / MB).toFixed(0)} MB), writes stalled: ${sent.stalled}` };
    });
    const late = await callsAfterLeaving(host, leftAt, 3500);
    console.log(`attack slow-host-hook-900kb: ${host.calls.length} handler calls in all, ${late} started after the client left`);
    assertBudgets(r, { checks: [[late === 0, `${late} handler calls started after the client left`]] });
  });

  it('variant: many small events (10 bytes) behind the slow handler', async () => {
    const host = await startHost({ slowMs: 2000 });
    let leftAt = 0;
    const r = await runAttack('slow-host-hook-small-events', host, async (ctx) => {
      const att = await connected(host.url, 'mallory');
      const frames = Buffer.concat(Array(1000).fill(encodeFrame('42["slow","0123456789"]')));
      const sent = await pump(att.socket, frames, () => ctx.keepGoing() && !att.state.ended);
      const end = await attackerEnd(att, 500);
      leftAt = Date.now();
      return { attacker: end, note: `${sent.writes * 1000} events sent, writes stalled: ${sent.stalled}` };
    });
    const late = await callsAfterLeaving(host, leftAt, 3500);
    console.log(`attack slow-host-hook-small-events: ${host.calls.length} handler calls in all, ${late} started after the client left`);
    assertBudgets(r, { checks: [[late === 0, `${late} handler calls started after the client left`]] });
  });

  it('variant: the 900 KB flood over WSS through the Node TLS bridge', async () => {
    const host = await startHost({ slowMs: 2000, tls: selfSignedCert() });
    let leftAt = 0;
    const r = await runAttack('slow-host-hook-tls-bridge', host, async (ctx) => {
      const att = await connected(host.url, 'mallory');
      const frame = encodeFrame('42' + JSON.stringify(['slow', 't'.repeat(900 * 1024)]));
      const sent = await pump(att.socket, frame, () => ctx.keepGoing() && !att.state.ended);
      const end = await attackerEnd(att, 500);
      leftAt = Date.now();
      return { attacker: end, note: `${sent.writes} events of 900 KB sent over TLS (${(sent.bytes / MB).toFixed(0)} MB), writes stalled: ${sent.stalled}` };
    });
    const late = await callsAfterLeaving(host, leftAt, 3500);
    console.log(`attack slow-host-hook-tls-bridge: ${host.calls.length} handler calls in all, ${late} started after the client left`);
    assertBudgets(r, { checks: [[late === 0, `${late} handler calls started after the client left`]] });
  });

  it('variant: the same flood over long-polling POSTs', async () => {
    const host = await startHost({ slowMs: 2000 });
    let leftAt = 0;
    const { request } = require('./helpers');
    const r = await runAttack('slow-host-hook-polling', host, async (ctx) => {
      const hs = await request(`${host.url}/socket.io/?EIO=4&transport=polling`, { timeoutMs: 5000 });
      const sid = JSON.parse(hs.body.toString().split('\x1e')[0].slice(1)).sid;
      const url = `${host.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
      await request(url, { method: 'POST', body: '40' + JSON.stringify({ token: token('mallory') }), timeoutMs: 5000 });
      const body = '42' + JSON.stringify(['slow', 'q'.repeat(900 * 1024)]);
      const statuses = {};
      let posts = 0;
      while (ctx.keepGoing()) {
        const res = await request(url, { method: 'POST', body, timeoutMs: 5000 });
        posts++;
        const k = res.status || (res.timedOut ? 'stalled' : (res.error && res.error.code));
        statuses[k] = (statuses[k] || 0) + 1;
        if (res.status && res.status !== 200) break;
      }
      leftAt = Date.now();
      return { attacker: `POSTs ${JSON.stringify(statuses)}`, note: `${posts} POSTs of 900 KB` };
    });
    const late = await callsAfterLeaving(host, leftAt, 3500);
    console.log(`attack slow-host-hook-polling: ${host.calls.length} handler calls in all, ${late} started after the client left`);
    // A polling client "leaves" by not polling: its session ends after the heartbeat, so calls
    // after its last POST are only a finding here, not a failure.
    assertBudgets(r);
  });
});
