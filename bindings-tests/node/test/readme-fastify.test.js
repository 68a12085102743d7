'use strict';
// Issue 18 item 5: README's "Inside a Fastify app" runs as written (its snippet, between the
// fastify-snippet markers, is run as an ES module against the built addon) and names every
// path the plugin takes and every option.

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { token, SECRET } = require('../helpers/tokens');
const { connected, connectError, closeAll, request, once } = require('../helpers/client');

const ROOT = path.join(__dirname, '..', '..', '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const SECTION = README.slice(README.indexOf('## Inside a Fastify app'), README.indexOf('\n## ', README.indexOf('## Inside a Fastify app') + 3));

function snippet() {
  const m = SECTION.match(/<!-- fastify-snippet:start -->\n```js\n([\s\S]*?)```\n<!-- fastify-snippet:end -->/);
  assert.ok(m, 'the README section has a js snippet between fastify-snippet markers');
  return m[1];
}

/** The Node option keys: NativeConfig's fields in the generated types, and the callbacks. */
function optionKeys() {
  const dts = fs.readFileSync(path.join(ROOT, 'node', 'index.d.ts'), 'utf8');
  const native = dts.slice(dts.indexOf('export interface NativeConfig'));
  const body = native.slice(0, native.indexOf('\n}'));
  const keys = [...body.matchAll(/^ {2}([a-zA-Z]+)\??:/gm)].map((m) => m[1]);
  assert.ok(keys.length > 20, `found ${keys.length} NativeConfig keys`);
  return [...keys, 'authenticate', 'authorizeRoom', 'storeMessage', 'onDocumentUpdate'];
}

let child = null;
after(() => {
  closeAll();
  if (child) child.kill('SIGKILL');
});

describe("README's Fastify section", () => {
  it('names every path the plugin takes and every option', () => {
    for (const p of ['/socket.io/', '/events', '/api/*', '/yjs/*', '/metrics', '/healthz']) {
      assert.ok(SECTION.includes(`\`${p}\``), `the section names ${p}`);
    }
    const missing = optionKeys().filter((k) => !SECTION.includes(`\`${k}`));
    assert.deepEqual(missing, [], 'options the README section does not name');
  });

  it('runs as written (an ES module) and serves what it says', { timeout: 30000 }, async () => {
    // Beside the test's node_modules, so that `fastify` and the plugin resolve as in an app.
    const file = path.join(__dirname, '..', `.readme-snippet-${process.pid}.mjs`);
    fs.writeFileSync(file, snippet());
    try {
      child = spawn(process.execPath, [file], {
        env: { ...process.env, JWT_SECRET: SECRET, PORT: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      const url = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "listening on" line; stderr: ${err}`)), 20000);
        child.stdout.on('data', (d) => {
          out += d;
          const m = out.match(/^listening on (http:\/\/\S+)$/m);
          if (m) { clearTimeout(timer); resolve(m[1]); }
        });
        child.on('exit', (code) => reject(new Error(`the snippet exited with ${code}: ${err}`)));
      });
      const tok = token('alice', { claims: { tenant: 'acme' } });
      const socket = await connected(url, { path: '/rt/socket.io/', auth: { token: tok } });
      assert.deepEqual(await request(socket, 'ping', 1), { pong: 1, tenant: 'acme' });
      await request(socket, 'joinRoom', 'lobby');
      const notice = once(socket, 'notice');
      const deploy = await fetch(`${url}/deploy`, { method: 'POST' });
      assert.deepEqual(await deploy.json(), { inLobby: 1 });
      assert.deepEqual((await notice)[0], { text: 'deploying' });
      const health = await fetch(`${url}/rt/healthz`);
      assert.deepEqual(await health.json(), { status: 'ok' });
      // The app's onRequest hook refuses an upgrade too.
      const refused = await connectError(url, { path: '/rt/socket.io/', auth: { token: tok }, extraHeaders: { 'x-blocked': '1' } });
      assert.ok(refused instanceof Error);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
