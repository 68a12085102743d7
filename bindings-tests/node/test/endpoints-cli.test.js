'use strict';
// Issue 18 item 3 in the standalone server: `--prefix` and the endpoint switches (`--sse`,
// `--api`, `--yjs`, `--metrics`, `--healthz`), as flags and as `--config` TOML keys.

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, runCli } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const { connected, closeAll } = require('../helpers/client');

const servers = [];
after(async () => {
  closeAll();
  await Promise.all(servers.map((s) => s.stop()));
});

const status = async (url) => (await fetch(url, { signal: AbortSignal.timeout(5000) })).status;

describe('switchboard serve: where the endpoints are', () => {
  it('--prefix /rt moves every endpoint; --metrics false turns one off', async () => {
    const s = await startServer({ args: ['--prefix', '/rt', '--metrics', 'false', '--api-key', 'k'] });
    servers.push(s);
    assert.equal(await status(`${s.url}/rt/healthz`), 200);
    assert.equal(await status(`${s.url}/rt/metrics`), 404);
    assert.equal(await status(`${s.url}/healthz`), 404);
    const socket = await connected(s.url, { path: '/rt/socket.io/', auth: { token: token('alice') } });
    assert.ok(socket.connected);
  });

  it('the same settings from a --config file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-endpoints-'));
    const file = path.join(dir, 'switchboard.toml');
    fs.writeFileSync(file, 'prefix = "/x"\nhealthz = false\nsse = false\n');
    try {
      const s = await startServer({ args: ['--config', file] });
      servers.push(s);
      assert.equal(await status(`${s.url}/x/healthz`), 404);
      assert.equal(await status(`${s.url}/x/metrics`), 200);
      assert.equal(await status(`${s.url}/x/events?token=${token('alice')}`), 404);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a prefix that is no path stops start-up with the setting named', async () => {
    const r = await runCli(['serve', '--jwt-secret', 'sixteen-bytes!!!', '--port', '0', '--prefix', 'rt']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid `--prefix`: must start with `\/`/);
  });
});
