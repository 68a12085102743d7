'use strict';
// Issue 17, C: `make install` lays out the library as a C programmer expects (header,
// libswitchboard.so.VERSION with soname libswitchboard.so.0 and its symlinks, the static
// library, lib/pkgconfig/switchboard.pc), and examples/c/main.c builds with nothing but
// `pkg-config` flags against the installed copy, dynamically and statically, and runs:
// socket.io-client joins a room, and the program exits 0 when told to stop.
//
// Installs the debug build (PROFILE=debug: the release build would cost CI minutes and tests
// nothing more here); `make install` without it installs the release build.

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
const MAJOR = VERSION.split('.')[0];
const EXAMPLE = path.join(ROOT, 'examples/c/main.c');
const WARN = ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15 * 60 * 1000, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (status ${r.status}, ${r.error || ''}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

function makeInstall(vars) {
  run('make', ['-C', ROOT, '--no-print-directory', 'install', 'PROFILE=debug', ...vars]);
}

function dynamicSection(file) {
  return execFileSync('readelf', ['-d', file], { encoding: 'utf8' });
}

describe('C library: make install + pkg-config', () => {
  let tmp;
  let prefix;
  let pkgEnv;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-c-install-'));
    prefix = path.join(tmp, 'prefix');
    makeInstall([`PREFIX=${prefix}`]);
    pkgEnv = { ...process.env, PKG_CONFIG_PATH: path.join(prefix, 'lib/pkgconfig') };
  });
  after(() => {
    closeAll();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('installs the header, the versioned shared library with its symlinks, the static library and switchboard.pc', () => {
    const lib = path.join(prefix, 'lib');
    assert.ok(fs.statSync(path.join(prefix, 'include/switchboard.h')).isFile());
    assert.ok(fs.statSync(path.join(lib, `libswitchboard.so.${VERSION}`)).isFile());
    assert.equal(fs.readlinkSync(path.join(lib, `libswitchboard.so.${MAJOR}`)), `libswitchboard.so.${VERSION}`);
    assert.equal(fs.readlinkSync(path.join(lib, 'libswitchboard.so')), `libswitchboard.so.${MAJOR}`);
    assert.ok(fs.statSync(path.join(lib, 'libswitchboard.a')).isFile());
    assert.match(dynamicSection(path.join(lib, `libswitchboard.so.${VERSION}`)),
      new RegExp(`\\(SONAME\\)\\s+Library soname: \\[libswitchboard\\.so\\.${MAJOR}\\]`));
    const header = fs.readFileSync(path.join(prefix, 'include/switchboard.h'), 'utf8');
    const [major, minor, patch] = VERSION.split('.');
    assert.match(header, new RegExp(`#define SB_VERSION_MAJOR ${major}\\b`));
    assert.match(header, new RegExp(`#define SB_VERSION_MINOR ${minor}\\b`));
    assert.match(header, new RegExp(`#define SB_VERSION_PATCH ${patch}\\b`));
    assert.equal(run('pkg-config', ['--modversion', 'switchboard'], { env: pkgEnv }).trim(), VERSION);
  });

  it('DESTDIR stages the same tree while switchboard.pc keeps the real PREFIX', () => {
    const stage = path.join(tmp, 'stage');
    makeInstall(['PREFIX=/usr/local', `DESTDIR=${stage}`]);
    for (const f of ['include/switchboard.h', `lib/libswitchboard.so.${VERSION}`, `lib/libswitchboard.so.${MAJOR}`,
      'lib/libswitchboard.so', 'lib/libswitchboard.a', 'lib/pkgconfig/switchboard.pc']) {
      assert.ok(fs.lstatSync(path.join(stage, 'usr/local', f)), f);
    }
    const pc = fs.readFileSync(path.join(stage, 'usr/local/lib/pkgconfig/switchboard.pc'), 'utf8');
    assert.match(pc, /^prefix=\/usr\/local$/m);
    assert.match(pc, /^Libs: -L\$\{libdir\} -lswitchboard$/m);
    assert.match(pc, /^Libs\.private: .*-lpthread/m);
    fs.rmSync(stage, { recursive: true, force: true });
  });

  /** Runs a built example: it prints its version line, serves a client, and stops on Enter. */
  async function exercise(bin, env) {
    const program = await startProgram(bin, ['0'], { env: { ...env, SWITCHBOARD_JWT_SECRET: SECRET } });
    try {
      assert.ok(program.lines.includes(`libswitchboard ${VERSION} (switchboard.h ${VERSION})`), program.lines.join('\n'));
      const socket = await userSocket(program.url, 'alice');
      assert.equal(await request(socket, 'joinRoom', 'lobby'), undefined);
      socket.close();
      program.proc.stdin.end('\n');
      const { code, signal } = await exitWithin(program, 20000);
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, program.stderr());
    } finally {
      program.proc.kill('SIGKILL');
    }
  }

  it('examples/c builds with `pkg-config --cflags --libs switchboard` and runs against the shared library', async () => {
    const flags = run('pkg-config', ['--cflags', '--libs', 'switchboard'], { env: pkgEnv }).trim().split(/\s+/);
    const bin = path.join(tmp, 'chat-shared');
    run('cc', [...WARN, '-o', bin, EXAMPLE, ...flags]);
    assert.match(dynamicSection(bin), new RegExp(`\\(NEEDED\\)\\s+Shared library: \\[libswitchboard\\.so\\.${MAJOR}\\]`));
    await exercise(bin, { ...process.env, LD_LIBRARY_PATH: path.join(prefix, 'lib') });
  });

  it('links statically with `pkg-config --static` flags (-l:libswitchboard.a) and needs no libswitchboard at run time', async () => {
    const flags = run('pkg-config', ['--cflags', '--static', '--libs', 'switchboard'], { env: pkgEnv })
      .trim().split(/\s+/).map((f) => (f === '-lswitchboard' ? '-l:libswitchboard.a' : f));
    const bin = path.join(tmp, 'chat-static');
    run('cc', [...WARN, '-o', bin, EXAMPLE, ...flags]);
    assert.doesNotMatch(dynamicSection(bin), /libswitchboard/);
    const env = { ...process.env };
    delete env.LD_LIBRARY_PATH;
    await exercise(bin, env);
  });
});
