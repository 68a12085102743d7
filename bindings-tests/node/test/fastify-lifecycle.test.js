'use strict';
// Issue 4: process lifetime with the engine inside a Fastify app. Rust-owned connections are
// invisible to Node's event loop, so the binding must keep the process alive while clients are
// connected, and let it exit by itself once `app.close()` (or the last connection) is done.
// The apps run in child processes (fixtures/child-app.js) so that their exit can be observed.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const { connect, userSocket, closeAll, once, request, noEvent } = require('../helpers/client');
const { token } = require('../helpers/tokens');

const CHILD = path.join(__dirname, '../fixtures/child-app.js');
const children = new Set();

/**
 * Spawns the child app in `mode`. Returns {proc, exited (promise of {code, signal, at}),
 * step(name, timeout) (promise of the JSON line with that step), isRunning(), kill()}.
 */
function child(mode) {
  const proc = spawn(process.execPath, [CHILD, mode], {
    cwd: path.join(__dirname, '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  const lines = [];
  const waiters = [];
  let stderr = '';
  let exitInfo = null;
  proc.stderr.on('data', (d) => { stderr += d; });
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    let msg;
    try { msg = JSON.parse(line); } catch { msg = { step: 'stdout', line }; }
    lines.push(msg);
    for (const w of waiters.splice(0)) {
      if (msg.step === w.name) { clearTimeout(w.timer); w.resolve(msg); } else waiters.push(w);
    }
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    exitInfo = { code, signal, at: Date.now() };
    children.delete(proc);
    for (const w of waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(`child exited (${code ?? signal}) before "${w.name}"; stderr: ${stderr.slice(-2000)}`));
    }
    resolve(exitInfo);
  }));
  return {
    proc,
    exited,
    get stderr() { return stderr; },
    isRunning: () => exitInfo === null,
    step(name, timeout = 10000) {
      const found = lines.find((l) => l.step === name);
      if (found) return Promise.resolve(found);
      if (exitInfo) return Promise.reject(new Error(`child already exited before "${name}"; stderr: ${stderr.slice(-2000)}`));
      return new Promise((resolve, reject) => {
        const w = { name, resolve, reject };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no "${name}" from the child within ${timeout} ms; got ${JSON.stringify(lines)}; stderr: ${stderr.slice(-2000)}`));
        }, timeout);
        waiters.push(w);
      });
    },
  };
}

/** Resolves the exit info if the child exits within `ms`, else null. */
function exitWithin(c, ms) {
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); });
  return Promise.race([c.exited, late]).finally(() => clearTimeout(timer));
}

describe('process lifetime with the Fastify plugin', () => {
  afterEach(() => {
    closeAll();
    for (const p of children) p.kill('SIGKILL');
  });

  it('after the client closes and app.close() resolves, the process exits by itself (code 0)', { timeout: 20000 }, async () => {
    const c = child('self-client');
    await c.step('client closed');
    await c.step('app closed');
    const exit = await exitWithin(c, 5000);
    assert.ok(exit, `the child is still running 5 s after app.close(); stderr: ${c.stderr}`);
    assert.equal(exit.code, 0, `exit code; stderr: ${c.stderr}`);
  });

  it('app.close() with a client still connected disconnects it and the process exits by itself', { timeout: 20000 }, async () => {
    const c = child('remote');
    const { port } = await c.step('listening');
    const url = `http://127.0.0.1:${port}`;
    // WebSocket clients only: a pending long-poll delays app.close() (known issue, fastify.test.js)
    const ws = await userSocket(url, 'alice');
    const upgraded = connect(url, { transports: ['polling', 'websocket'], auth: { token: token('bob') } });
    const didUpgrade = once(upgraded.io.engine, 'upgrade', 5000);
    await upgraded.ready;
    await didUpgrade;
    await request(upgraded, 'joinRoom', 'lobby');
    const gone1 = once(ws, 'disconnect', 5000);
    const gone2 = once(upgraded, 'disconnect', 5000);
    ws.emit('shutdown'); // no ack: the app closes right away, maybe before it could be sent
    await c.step('app closed', 5000);
    await Promise.all([gone1, gone2]);
    const exit = await exitWithin(c, 5000);
    assert.ok(exit, `the child is still running 5 s after app.close(); stderr: ${c.stderr}`);
    assert.equal(exit.code, 0, `exit code; stderr: ${c.stderr}`);
  });

  it('an open engine connection keeps the process alive after the server stops listening; the last disconnect lets it exit', { timeout: 20000 }, async () => {
    const c = child('remote');
    const { port } = await c.step('listening');
    const url = `http://127.0.0.1:${port}`;
    const alice = await userSocket(url, 'alice', { username: 'Alice' });
    await request(alice, 'joinRoom', 'lobby');
    // the listening socket goes away: the engine connection is the child's only remaining work
    assert.equal(await request(alice, 'closeServer'), 'closed');
    const early = await exitWithin(c, 1500);
    assert.equal(early, null, `the child exited under its connected client: ${JSON.stringify(early)}; stderr: ${c.stderr}`);
    // and the engine still serves the connection
    const ack = await request(alice, 'sendMessage', { roomId: 'lobby', text: 'still here' });
    assert.equal(typeof ack.id, 'string');
    await noEvent(alice, 'disconnect', 300);
    alice.close();
    const exit = await exitWithin(c, 5000);
    assert.ok(exit, `the child is still running 5 s after its last connection closed; stderr: ${c.stderr}`);
    assert.equal(exit.code, 0, `exit code; stderr: ${c.stderr}`);
  });
});
