'use strict';
// Issue 17, npm: the tarballs of `make package` (@switchboard/node, its linux-x64-gnu platform
// package with the release addon, @switchboard/client) as a user gets them. The published
// files are exactly the expected ones; installed into a fresh Fastify 5 app with no Rust
// toolchain on PATH, the plugin serves socket.io-client, a room is joined, and after
// `app.close()` the process exits by itself.
//
// Needs `make package` first (make test-package runs both). SB_NPM_PACKAGES overrides the
// folder of tarballs.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startProgram, exitWithin, pathWithoutRust } = require('./program');

const ROOT = path.resolve(__dirname, '../../..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const PACKAGES = process.env.SB_NPM_PACKAGES || path.join(TARGET, 'npm-packages');
const PLATFORM = 'linux-x64-gnu';
const VERSION = require(path.join(ROOT, 'node/package.json')).version;

function npm(args, { cwd, env = process.env, timeout = 300000 } = {}) {
  const r = spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout });
  if (r.status !== 0) {
    throw new Error(`npm ${args.join(' ')} failed (status ${r.status}, ${r.error || ''}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/** The file list `npm pack --dry-run --json` reports for the package in `dir`. */
function packedFiles(dir) {
  const [report] = JSON.parse(npm(['pack', '--dry-run', '--json', '--silent'], { cwd: dir }));
  return report.files.map((f) => f.path).sort();
}

function tarball(name) {
  const file = path.join(PACKAGES, `${name}-${VERSION}.tgz`);
  assert.ok(fs.existsSync(file), `${file} is missing: run "make package"`);
  return file;
}

describe('npm packages (make package)', () => {
  it('@switchboard/node publishes its JS, types, README and LICENSE, and nothing else', () => {
    assert.deepEqual(packedFiles(path.join(ROOT, 'node')), [
      'LICENSE', 'README.md', 'fastify.d.ts', 'fastify.js', 'index.d.ts', 'index.js', 'native.js', 'package.json',
    ]);
    const readme = fs.readFileSync(path.join(ROOT, 'node/README.md'), 'utf8');
    assert.match(readme, /app\.register\(require\('@switchboard\/node\/fastify'\)/, 'the README shows the Fastify plugin');
  });

  it(`@switchboard/node-${PLATFORM} publishes the addon, README and LICENSE`, () => {
    assert.deepEqual(packedFiles(path.join(ROOT, 'node/npm', PLATFORM)), [
      'LICENSE', 'README.md', 'package.json', `switchboard.${PLATFORM}.node`,
    ]);
  });

  it('the shipped addon is stripped (no symbol table: 9 MB instead of 12)', () => {
    const addon = path.join(ROOT, 'node/npm', PLATFORM, `switchboard.${PLATFORM}.node`);
    const sections = execFileSync('readelf', ['-S', '-W', addon], { encoding: 'utf8' });
    assert.doesNotMatch(sections, /\.symtab|\.debug_info/);
  });

  it('@switchboard/client publishes its builds, sources, README and LICENSE, and no tests', () => {
    const files = packedFiles(path.join(ROOT, 'client'));
    for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/cjs/index.js', 'dist/esm/index.js', 'dist/cjs/index.d.ts',
      'dist/cjs/ws/index.js', 'dist/esm/ws/index.js', 'dist/cjs/ws/index.d.ts', 'dist/esm/ws/client.js', 'src/ws/client.ts']) {
      assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
    }
    assert.deepEqual(files.filter((f) => /(^|\/)test\/|\.test\.|vitest|tsconfig/.test(f)), []);
  });

  it('the packed @switchboard/node pins every platform package to its version (optionalDependencies)', () => {
    const packed = JSON.parse(execFileSync('tar', ['-xzOf', tarball('switchboard-node'), 'package/package.json'],
      { encoding: 'utf8' }));
    const platforms = fs.readdirSync(path.join(ROOT, 'node/npm')).sort();
    assert.equal(platforms.length, 6);
    assert.deepEqual(packed.optionalDependencies,
      Object.fromEntries(platforms.map((p) => [`@switchboard/node-${p}`, VERSION])));
    assert.deepEqual(packed.os, ['linux', 'darwin'], 'Windows is refused by npm (EBADPLATFORM) and at require');
  });

  it('the tarballs are in target/npm-packages (sizes and contents)', () => {
    for (const name of ['switchboard-node', `switchboard-node-${PLATFORM}`, 'switchboard-client']) {
      const file = tarball(name);
      const listing = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n');
      console.log(`${path.basename(file)}: ${fs.statSync(file).size} bytes, ${listing.length} files`);
    }
  });

  describe('installed into a fresh Fastify 5 app without a Rust toolchain', () => {
    let dir;
    let env;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-npm-app-'));
      env = { ...process.env, PATH: pathWithoutRust() };
      delete env.CARGO_TARGET_DIR;
      const probe = spawnSync('sh', ['-c', 'command -v cargo || command -v rustc'], { env, encoding: 'utf8' });
      assert.notEqual(probe.status, 0, `cargo/rustc still on PATH: ${probe.stdout}`);
      npm(['init', '-y'], { cwd: dir, env });
      npm(['install', '--no-audit', '--no-fund', tarball('switchboard-node'), tarball(`switchboard-node-${PLATFORM}`),
        tarball('switchboard-client'), 'fastify@5', 'socket.io-client@4'], { cwd: dir, env });
    });
    after(() => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('loads the platform package\'s addon (the main package has no binary of its own)', () => {
      const main = path.join(dir, 'node_modules/@switchboard/node');
      assert.deepEqual(fs.readdirSync(main).filter((f) => f.endsWith('.node')), []);
      assert.ok(fs.existsSync(path.join(dir, `node_modules/@switchboard/node-${PLATFORM}/switchboard.${PLATFORM}.node`)));
    });

    it('registers the plugin, serves socket.io-client, joins a room and exits by itself after app.close()', async () => {
      fs.writeFileSync(path.join(dir, 'server.js'), SERVER_JS);
      const program = await startProgram(process.execPath, ['server.js'], { cwd: dir, env, timeoutMs: 30000 });
      const { code, signal } = await exitWithin(program, 30000);
      assert.equal(signal, null, program.stderr());
      assert.equal(code, 0, program.stderr());
      const result = JSON.parse(program.lines.find((l) => l.startsWith('{')));
      assert.deepEqual(result, {
        cargo: 'ENOENT', joined: null, message: 'hello from the installed package', client: 'function',
        addon: `@switchboard/node-${PLATFORM}`,
      });
    });
  });
});

// The app a user writes after `npm install @switchboard/node fastify socket.io-client`.
const SERVER_JS = String.raw`'use strict';
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const fastify = require('fastify');
const { io } = require('socket.io-client');

const SECRET = 'a-test-secret-of-enough-length-1234';
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
function sign(claims) {
  const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64(claims);
  return body + '.' + crypto.createHmac('sha256', SECRET).update(body).digest('base64url');
}

async function main() {
  const cargo = spawnSync('cargo', ['--version']);
  const app = fastify();
  await app.register(require('@switchboard/node/fastify'), { jwtSecret: SECRET });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = 'http://127.0.0.1:' + app.server.address().port;
  console.log('app listening on ' + url);
  const token = sign({ sub: 'alice', username: 'Alice', exp: Math.floor(Date.now() / 1000) + 600 });
  const socket = io(url, { auth: { token }, transports: ['websocket'], reconnection: false });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const joined = await socket.timeout(10000).emitWithAck('joinRoom', 'lobby');
  const received = new Promise((resolve) => socket.once('message', resolve));
  await socket.timeout(10000).emitWithAck('sendMessage', { roomId: 'lobby', text: 'hello from the installed package' });
  const message = await received;
  socket.close();
  await app.close();
  const client = require('@switchboard/client');
  const addon = Object.keys(require.cache).find((f) => f.endsWith('.node')) || '';
  console.log(JSON.stringify({
    cargo: cargo.error ? cargo.error.code : 'found',
    joined,
    message: message.text,
    client: typeof client.connect,
    addon: addon.includes('@switchboard/node-${PLATFORM}') ? '@switchboard/node-${PLATFORM}' : addon,
  }));
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`;
