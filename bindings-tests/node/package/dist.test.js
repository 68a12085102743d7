'use strict';
// Issue 17, standalone server: `make dist` makes one tarball with the server binary, README,
// LICENSE, CHANGELOG, an example systemd unit and an example --config file; the binary from
// the tarball runs, and `switchboard serve --config switchboard.toml` accepts the example file.
//
// PROFILE=debug packs the debug binary (the release build would cost CI minutes); the
// tarball's layout is the same.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startProgram, exitWithin } = require('./program');
const { userSocket, request, closeAll } = require('../helpers/client');
const { SECRET } = require('../helpers/server');

const ROOT = path.resolve(__dirname, '../../..');
const VERSION = /^version = "([^"]+)"/m.exec(fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8'))[1];
const TRIPLE = /^host: (\S+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1];
const NAME = `switchboard-${VERSION}-${TRIPLE}`;

describe('make dist: the standalone server tarball', () => {
  let tmp;
  let dir;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-dist-'));
    const r = spawnSync('make', ['-C', ROOT, '--no-print-directory', 'dist', 'PROFILE=debug', `DIST_DIR=${tmp}`],
      { encoding: 'utf8', timeout: 15 * 60 * 1000 });
    assert.equal(r.status, 0, `make dist failed:\n${r.stdout}\n${r.stderr}`);
    execFileSync('tar', ['-xzf', path.join(tmp, `${NAME}.tar.gz`), '-C', tmp]);
    dir = path.join(tmp, NAME);
  });
  after(() => {
    closeAll();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it(`${NAME}.tar.gz holds the binary, README, LICENSE, CHANGELOG, the systemd unit and the config file`, () => {
    const listing = execFileSync('tar', ['-tzf', path.join(tmp, `${NAME}.tar.gz`)], { encoding: 'utf8' })
      .trim().split('\n').sort();
    assert.deepEqual(listing, [`${NAME}/`, ...['CHANGELOG.md', 'LICENSE', 'README.md', 'switchboard',
      'switchboard.service', 'switchboard.toml'].map((f) => `${NAME}/${f}`)].sort());
    fs.accessSync(path.join(dir, 'switchboard'), fs.constants.X_OK);
    assert.equal(execFileSync(path.join(dir, 'switchboard'), ['--version'], { encoding: 'utf8' }).trim(),
      `switchboard ${VERSION}`);
    const unit = fs.readFileSync(path.join(dir, 'switchboard.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/switchboard serve --config \/etc\/switchboard\/switchboard\.toml$/m);
  });

  it('serve --config switchboard.toml (the example file) starts, serves a client and stops on SIGTERM', async () => {
    // Flags win over the file: a free port and a temporary data directory instead of
    // 3000 and /var/lib/switchboard.
    const program = await startProgram(path.join(dir, 'switchboard'), ['serve', '--config',
      path.join(dir, 'switchboard.toml'), '--port', '0', '--data-dir', path.join(tmp, 'data')],
    { env: { ...process.env, SWITCHBOARD_JWT_SECRET: SECRET } });
    try {
      assert.match(program.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'host from the file');
      const socket = await userSocket(program.url, 'alice', { extraHeaders: { origin: 'https://chat.example.com' } });
      assert.equal(await request(socket, 'joinRoom', 'lobby'), undefined);
      socket.close();
      program.proc.kill('SIGTERM');
      const { code, signal } = await exitWithin(program, 10000);
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, program.stderr());
    } finally {
      program.proc.kill('SIGKILL');
    }
  });
});
