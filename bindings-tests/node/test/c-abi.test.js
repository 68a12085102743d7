'use strict';
// Issue 6: the C ABI, end to end. Builds bindings-tests/c (C11 and C++17 programs against
// include/switchboard.h, -Wall -Wextra -Werror -pedantic, AddressSanitizer), then drives the
// two chat servers with socket.io-client and runs the misuse program. Every program must exit
// 0 with nothing from the sanitizer on stderr (no error, no leak).
//
// SWITCHBOARD_C_BUILD=0 skips the build step (the programs must already be in
// bindings-tests/c/build). DEBUG_SERVER=1 forwards the programs' output.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const {
  connected, connectError, closeAll, request, expectError, recorder, once,
} = require('../helpers/client');

const ROOT = path.resolve(__dirname, '../../..');
const C_DIR = path.join(ROOT, 'bindings-tests/c');
const BUILD = path.join(C_DIR, 'build');
const START_TIMEOUT_MS = 30000;
const EXIT_TIMEOUT_MS = 20000;
const SANITIZER = /AddressSanitizer|LeakSanitizer|runtime error:/;
// Leaks are errors; report them at exit.
const ASAN_ENV = { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' };

function build() {
  if (process.env.SWITCHBOARD_C_BUILD === '0') return;
  const r = spawnSync('make', ['-C', C_DIR], { encoding: 'utf8', timeout: 15 * 60 * 1000 });
  if (r.status !== 0) {
    throw new Error(`make -C bindings-tests/c failed (status ${r.status}, ${r.error || ''}):\n${r.stdout}\n${r.stderr}`);
  }
}

/**
 * Starts a chat server program and resolves once it prints its listening line. `lines` holds
 * its stdout lines; `line(re)` waits for the next one matching; `send(cmd)` writes a command.
 */
function startProgram(bin) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, ['0'], {
      env: { ...process.env, ...ASAN_ENV },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const lines = [];
    const waiters = [];
    let stderr = '';
    let exited = null;
    const exit = new Promise((res) => proc.once('exit', (code, signal) => {
      exited = { code, signal };
      res(exited);
    }));
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      stderr += d;
      if (process.env.DEBUG_SERVER) process.stderr.write(d);
    });
    let buf = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      if (process.env.DEBUG_SERVER) process.stderr.write(d);
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(l);
        for (let i = 0; i < waiters.length; i++) {
          if (waiters[i].re.test(l)) {
            const [w] = waiters.splice(i, 1);
            clearTimeout(w.timer);
            w.resolve(l);
            break;
          }
        }
      }
    });
    const program = {
      proc,
      lines,
      exit,
      get stderr() { return stderr; },
      get exited() { return exited; },
      send(cmd) { proc.stdin.write(cmd + '\n'); },
      /** The next stdout line matching `re` (one already printed and not yet taken counts). */
      line(re, timeout = 5000) {
        const i = lines.findIndex((l) => re.test(l));
        if (i !== -1) return Promise.resolve(lines.splice(i, 1)[0]);
        return new Promise((res, rej) => {
          const w = { re, resolve: (l) => { lines.splice(lines.indexOf(l), 1); res(l); } };
          w.timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(w), 1);
            rej(new Error(`no line matching ${re} within ${timeout} ms; stdout: ${lines.join(' | ')}; stderr: ${stderr}`));
          }, timeout);
          waiters.push(w);
        });
      },
      async stop() {
        if (!exited) proc.kill('SIGKILL');
        return exit;
      },
    };
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${bin} printed no listening line within ${START_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, START_TIMEOUT_MS);
    proc.once('error', (e) => { clearTimeout(timer); reject(e); });
    exit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited early (code ${code}, signal ${signal}); stderr: ${stderr}`));
    });
    program.line(/^switchboard listening on /, START_TIMEOUT_MS).then((l) => {
      clearTimeout(timer);
      program.url = l.replace('switchboard listening on ', '').trim();
      resolve(program);
    }, reject);
  });
}

/** Waits for the program to exit by itself within the timeout; SIGKILLs it otherwise. */
async function exitWithin(program, ms) {
  const timer = setTimeout(() => program.proc.kill('SIGKILL'), ms);
  const r = await program.exit;
  clearTimeout(timer);
  return r;
}

function assertClean(what, { code, signal }, stderr) {
  assert.equal(signal, null, `${what} was killed by ${signal}; stderr:\n${stderr}`);
  assert.doesNotMatch(stderr, SANITIZER, `${what}: the sanitizer reported:\n${stderr}`);
  assert.equal(code, 0, `${what} exited with ${code}; stderr:\n${stderr}`);
}

const auth = (token) => ({ auth: { token } });
const ids = (members) => members.map((m) => m.userId).sort();

before(() => build());

const PROGRAMS = [
  { label: 'C11 host with callbacks', bin: path.join(BUILD, 'chat_server'), adopts: true },
  { label: 'C++17 host with the event queue', bin: path.join(BUILD, 'chat_server_cpp'), adopts: false },
];

for (const { label, bin, adopts } of PROGRAMS) {
  describe(`C ABI: ${label} (${path.basename(bin)})`, { timeout: 120000 }, () => {
    let server;

    before(async () => { server = await startProgram(bin); });
    afterEach(() => closeAll());
    after(async () => {
      closeAll();
      if (server) await server.stop();
    });

    it('accepts the host\'s own token format and refuses others with the host\'s message', async () => {
      const alice = await connected(server.url, auth('c:alice'));
      assert.ok(alice.id);
      assert.equal((await connectError(server.url, {})).message, 'Authentication required');
      assert.equal((await connectError(server.url, auth('alice'))).message, 'Invalid token');
      assert.equal((await connectError(server.url, auth('c:'))).message, 'Invalid token');
      assert.equal((await connectError(server.url, auth('c:a"b'))).message, 'Invalid token');
      assert.equal((await connectError(server.url, auth(42))).message, 'Authentication required');
      // long-polling takes the same path
      const polling = await connected(server.url, { ...auth('c:carol'), transports: ['polling'] });
      assert.ok(polling.id);
    });

    it('room messaging through the host: access, storage, delivery, host emits', async () => {
      const alice = await connected(server.url, auth('c:alice'));
      const bob = await connected(server.url, auth('c:bob'));
      const bobEvents = recorder(bob);
      await request(alice, 'joinRoom', 'lobby-msg');
      await request(bob, 'joinRoom', 'lobby-msg');
      await expectError(request(alice, 'joinRoom', 'secret-plans'), 'ACCESS_DENIED');

      const sent = await request(alice, 'sendMessage', { roomId: 'lobby-msg', text: 'hello from "C"' });
      assert.ok(sent.id && sent.timestamp);
      const [message] = await bobEvents.next('message');
      assert.equal(message.text, 'hello from "C"');
      assert.equal(message.userId, 'alice');
      assert.equal(message.username, 'alice (C)');
      const stored = JSON.parse((await server.line(/^stored /)).slice('stored '.length));
      assert.equal(stored.id, sent.id);
      assert.equal(stored.text, 'hello from "C"');

      // an app event the host turns into a room broadcast
      assert.deepEqual(await request(alice, 'shout', { room: 'lobby-msg', text: 'hey "all"' }), { shouted: true });
      const [shout] = await bobEvents.next('shout');
      assert.deepEqual(shout, { from: 'alice', text: 'hey "all"' });

      // the host emits to the room on its own (stdin command)
      server.send('emit lobby-msg announce {"n":1,"s":"\\u00e9"}');
      assert.match(await server.line(/^emit /), /^emit success/);
      const [announce] = await bobEvents.next('announce');
      assert.deepEqual(announce, { n: 1, s: 'é' });
      server.send('emit lobby-msg announce {oops');
      assert.match(await server.line(/^emit /), /JSON/);
    });

    it('acks app events through their request ids, also later and from another thread', async () => {
      const alice = await connected(server.url, auth('c:alice'));
      const events = recorder(alice);
      const started = Date.now();
      assert.deepEqual(await request(alice, 'echo', { a: [1, 'two'] }), { a: [1, 'two'] });
      assert.ok(Date.now() - started >= 40, 'echo is answered ~50 ms later');
      assert.equal(await request(alice, 'echo', 'text'), 'text');
      assert.equal(await request(alice, 'poke'), null);
      assert.deepEqual((await events.next('poked'))[0], { by: 'host' });
      const failure = await expectError(request(alice, 'fail'), 'INTERNAL');
      assert.equal(failure.message, 'echo chamber closed');
      await expectError(request(alice, 'nope'), 'INVALID_MESSAGE');
      // acks keep the order of a socket's events
      const answers = await Promise.all([1, 2, 3].map((n) => request(alice, 'echo', n)));
      assert.deepEqual(answers, [1, 2, 3]);
    });

    it('answers presence queries from the host', async () => {
      const alice = await connected(server.url, auth('c:alice'));
      const bob = await connected(server.url, auth('c:bob'));
      await request(alice, 'joinRoom', 'lobby-presence');
      await request(bob, 'joinRoom', 'lobby-presence');
      const members = await request(alice, 'presence', 'lobby-presence');
      assert.deepEqual(ids(members), ['alice', 'bob']);
      assert.equal(members.find((m) => m.userId === 'bob').username, 'bob (C)');
      assert.deepEqual(await request(alice, 'presence', 'empty-room'), []);
      server.send('presence lobby-presence');
      const line = await server.line(/^presence lobby-presence /);
      assert.deepEqual(ids(JSON.parse(line.slice('presence lobby-presence '.length))), ['alice', 'bob']);
    });

    it('disconnects every connection of a user on the host\'s command', async () => {
      const dave1 = await connected(server.url, auth('c:dave'));
      const dave2 = await connected(server.url, auth('c:dave'));
      const gone = [once(dave1, 'disconnect'), once(dave2, 'disconnect')];
      server.send('kick dave');
      assert.equal(await server.line(/^kicked dave /), 'kicked dave 2');
      for (const [reason] of await Promise.all(gone)) assert.equal(reason, 'io server disconnect');
    });

    it('serves connections the host accepted and read from itself (sb_engine_adopt)', { skip: !adopts }, async () => {
      const adoptUrl = (await server.line(/^adopting on /)).replace('adopting on ', '').trim();
      const viaListener = await connected(server.url, auth('c:erin'));
      const viaWs = await connected(adoptUrl, auth('c:frank'));
      // long-polling, then the upgrade to WebSocket: every request on a new adopted socket
      const viaPolling = await connected(adoptUrl, { ...auth('c:gina'), transports: ['polling', 'websocket'] });
      await request(viaListener, 'joinRoom', 'lobby-adopt');
      await request(viaWs, 'joinRoom', 'lobby-adopt');
      await request(viaPolling, 'joinRoom', 'lobby-adopt');
      const wsEvents = recorder(viaWs);
      const pollingEvents = recorder(viaPolling);
      await request(viaListener, 'sendMessage', { roomId: 'lobby-adopt', text: 'across doors' });
      assert.equal((await wsEvents.next('message'))[0].text, 'across doors');
      assert.equal((await pollingEvents.next('message'))[0].text, 'across doors');
      assert.deepEqual(await request(viaPolling, 'echo', [1]), [1]);
      const res = await fetch(`${adoptUrl}/healthz`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: 'ok' });
    });

    it('shuts down cleanly with clients connected: exit 0, no sanitizer report', async () => {
      const alice = await connected(server.url, auth('c:alice'));
      const bob = await connected(server.url, { ...auth('c:bob'), transports: ['polling'] });
      await request(alice, 'joinRoom', 'lobby-end');
      await request(bob, 'joinRoom', 'lobby-end');
      const gone = [once(alice, 'disconnect', 10000), once(bob, 'disconnect', 10000)];
      // a request left pending by the host at shutdown
      alice.emit('echo', 'never mind');
      server.send('quit');
      const result = await exitWithin(server, EXIT_TIMEOUT_MS);
      assertClean(path.basename(bin), result, server.stderr);
      assert.ok(server.lines.includes('bye'), `stdout: ${server.lines.join(' | ')}`);
      await Promise.all(gone);
    });
  });
}

describe('C ABI: misuse gives codes, not crashes', { timeout: 60000 }, () => {
  it('runs bindings-tests/c/misuse.c clean under AddressSanitizer', () => {
    const r = spawnSync(path.join(BUILD, 'misuse'), [], {
      encoding: 'utf8', timeout: 60000, env: { ...process.env, ...ASAN_ENV },
    });
    if (r.error) throw r.error;
    assertClean('misuse', { code: r.status, signal: r.signal }, r.stderr);
    const m = /misuse: (\d+) passed, (\d+) failed/.exec(r.stdout);
    assert.ok(m, `no summary line; stdout: ${r.stdout}`);
    assert.equal(Number(m[2]), 0, r.stderr);
    assert.ok(Number(m[1]) > 150, `only ${m[1]} checks ran`);
  });
});

describe('C ABI: include/switchboard.h', () => {
  it('matches a fresh cbindgen generation', (t) => {
    const r = spawnSync(path.join(C_DIR, 'check-header.sh'), [], { encoding: 'utf8', timeout: 120000 });
    if (r.status === 77) {
      t.skip(r.stdout.trim());
      return;
    }
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  });

  it('documents every function', () => {
    const header = fs.readFileSync(path.join(ROOT, 'include/switchboard.h'), 'utf8');
    const decls = [...header.matchAll(/\*\/\n([^\n]*\b(sb_\w+)\([^;]*;)/g)].map((m) => m[2]);
    const all = [...header.matchAll(/^[\w ]+?\**\b(sb_\w+)\(/gm)].map((m) => m[1]);
    assert.ok(all.length > 40, `found ${all.length} functions`);
    assert.deepEqual(all.filter((f) => !decls.includes(f)), [], 'functions without a doc comment');
    for (const name of ['sb_config_new', 'sb_config_set_jwt_secret', 'sb_config_free', 'sb_engine_new',
      'sb_engine_listen', 'sb_engine_emit_to_room', 'sb_engine_free', 'sb_result_message',
      'sb_last_error_message', 'sb_engine_poll_event']) {
      assert.ok(all.includes(name), `${name} is missing`);
    }
    // every function states ownership or thread-safety
    const blocks = header.split('/**').slice(1).filter((b) => /\n[^\n]*\bsb_\w+\(/.test(b.split('*/')[1] || ''));
    for (const b of blocks) assert.match(b, /Thread-safety|thread/i, b.slice(0, 200));
  });
});

