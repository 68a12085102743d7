'use strict';
// Issue 6: the C ABI, end to end. Builds bindings-tests/c (C11 and C++17 programs against
// include/switchboard.h, -Wall -Wextra -Werror -pedantic, AddressSanitizer), then drives the
// two chat servers with socket.io-client and runs the misuse program. Every program must exit
// 0 with nothing from the sanitizer on stderr (no error, no leak).
// Issues 8 and 9 through the C API: the host notifies users and publishes to rooms (reaching
// Socket.IO and SSE clients and the history), lists rooms, ends SSE streams with a kick; and
// serves Yjs documents whose access the host's callbacks decide (`ws` and y-websocket clients).
//
// SWITCHBOARD_C_BUILD=0 skips the build step (the programs must already be in
// bindings-tests/c/build). DEBUG_SERVER=1 forwards the programs' output.

const { describe, it, before, after, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const WebSocket = require('ws');
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');
const {
  connected, connectError, closeAll, request, expectError, recorder, once, sleep, emitAck,
} = require('../helpers/client');
const { sseClient, rawStream, eventsUrl, closeAllStreams } = require('../helpers/sse');
const { token } = require('../helpers/tokens');
const { SECRET, startServer } = require('../helpers/server');
const { startRedisForTest, onRedis } = require('../helpers/redis-setup');
const { selfSignedCert, certificateFiles, removeCertificateFiles } = require('../helpers/tls');

const ROOT = path.resolve(__dirname, '../../..');
const C_DIR = path.join(ROOT, 'bindings-tests/c');
const BUILD = path.join(C_DIR, 'build');
const START_TIMEOUT_MS = 30000;
const EXIT_TIMEOUT_MS = 20000;
const SANITIZER = /AddressSanitizer|LeakSanitizer|runtime error:/;
// Leaks are errors; report them at exit.
const ASAN_ENV = { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' };
// The chat servers verify the JWTs of server-sent-event clients with this secret (the host's
// auth callback covers Socket.IO and documents), and ping their streams this often.
const SSE_PING_MS = 200;
const PROGRAM_ENV = { SB_JWT_SECRET: SECRET, SB_SSE_PING_MS: String(SSE_PING_MS) };

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
function startProgram(bin, env = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, ['0'], {
      env: { ...process.env, ...ASAN_ENV, ...PROGRAM_ENV, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const lines = [];
    const waiters = [];
    let stderr = '';
    let exited = null;
    let stopping = false;
    const exit = new Promise((res) => proc.once('exit', (code, signal) => {
      exited = { code, signal };
      // A program that dies mid-suite fails every later test; say why right where it happened.
      if (!stopping) console.error(`${path.basename(bin)} exited (code ${code}, signal ${signal}); stderr:\n${stderr}`);
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
      send(cmd) {
        if (cmd === 'quit') stopping = true;
        proc.stdin.write(cmd + '\n');
      },
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
        stopping = true;
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

const auth = (tok) => ({ auth: { token: tok } });
const ids = (members) => members.map((m) => m.userId).sort();

/** Resolves `{code, reason}` of the close of a raw WebSocket (fails after `ms`). */
function closeOf(ws, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`${ws.url} was not closed within ${ms} ms`)); }, ms);
    ws.on('error', () => {});
    ws.on('close', (code, reason) => { clearTimeout(timer); resolve({ code, reason: reason.toString() }); });
  });
}

/** A y-websocket provider for `doc` at `url`'s /yjs endpoint, with `tok` as its token. */
function provider(url, doc, tok) {
  return new WebsocketProvider(`${url.replace(/^http/, 'ws')}/yjs`, doc, new Y.Doc(), {
    WebSocketPolyfill: WebSocket, disableBc: true, params: { token: tok },
  });
}

function synced(p, ms = 5000) {
  if (p.synced) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider for ${p.roomname} did not sync`)), ms);
    p.once('sync', () => { clearTimeout(timer); resolve(); });
  });
}

async function until(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

before(() => build());

const PROGRAMS = [
  { label: 'C11 host with callbacks', bin: path.join(BUILD, 'chat_server'), adopts: true, logs: true },
  { label: 'C++17 host with the event queue', bin: path.join(BUILD, 'chat_server_cpp'), adopts: false },
];

for (const { label, bin, adopts, logs } of PROGRAMS) {
  describe(`C ABI: ${label} (${path.basename(bin)})`, { timeout: 120000 }, () => {
    let server;

    before(async () => { server = await startProgram(bin); });
    beforeEach(() => {
      if (server.exited) {
        const { code, signal } = server.exited;
        throw new Error(`the program died earlier (code ${code}, signal ${signal}); stderr:\n${server.stderr}`);
      }
    });
    afterEach(() => { closeAll(); closeAllStreams(); });
    after(async () => {
      closeAll();
      closeAllStreams();
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
      // issue 18: sb_app_event_fail's message is logged, not sent; sb_request_fail_with_code is
      assert.equal(failure.message, 'Internal error');
      await expectError(request(alice, 'nope'), 'INVALID_MESSAGE');
      // acks keep the order of a socket's events
      const answers = await Promise.all([1, 2, 3].map((n) => request(alice, 'echo', n)));
      assert.deepEqual(answers, [1, 2, 3]);
    });

    // Issue 18: the engine's events reach the host's log callback; a failed handler's text is
    // logged there (never sent); a code the host chooses reaches the client.
    it('logs through sb_set_log_callback; sb_request_fail_with_code sends the host\'s code', { skip: !logs }, async () => {
      const alice = await connected(server.url, auth('c:alice'));
      assert.deepEqual(await emitAck(alice, 'quota'), [{ code: 'QUOTA_EXCEEDED', message: 'Upgrade your plan' }]);
      const failure = await expectError(request(alice, 'fail'), 'INTERNAL');
      assert.equal(failure.message, 'Internal error');
      const failed = await server.line(new RegExp(`^log 1 switchboard::host host callback failed .*"sid":"${alice.id}"`));
      const fields = JSON.parse(failed.slice(failed.indexOf('{')));
      assert.equal(fields.hook, 'fail');
      assert.equal(fields.sid, alice.id);
      assert.equal(fields.error, 'echo chamber closed');
      assert.equal((await connectError(server.url, auth('alice'))).message, 'Invalid token');
      // the host's auth callback refused it: the reason says so
      const refused = await server.line(/^log 3 switchboard::socketio connection refused .*"reason":"refused_by_host"/);
      assert.equal(typeof JSON.parse(refused.slice(refused.indexOf('{'))).sid, 'string');
      // the filter (switchboard=info) keeps debug events out
      assert.equal(server.lines.filter((l) => l.startsWith('log 4 ')).length, 0);
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

    it('disconnects every connection of a user on the host\'s command, SSE streams too', async () => {
      const dave1 = await connected(server.url, auth('c:dave'));
      const dave2 = await connected(server.url, auth('c:dave'));
      const stream = await rawStream(eventsUrl(server.url), { headers: { Authorization: `Bearer ${token('dave')}` } });
      assert.equal(stream.status, 200);
      // keep-alive comments at the interval set with sb_config_set_sse_ping_interval_ms
      await stream.waitFor((s) => (s.text.match(/^:ping$/gm) || []).length >= 2, SSE_PING_MS * 10);
      const gone = [once(dave1, 'disconnect'), once(dave2, 'disconnect')];
      server.send('kick dave');
      assert.equal(await server.line(/^kicked dave /), 'kicked dave 3');
      for (const [reason] of await Promise.all(gone)) assert.equal(reason, 'io server disconnect');
      await stream.waitEnd();
    });

    it('notifies every connection of a user, Socket.IO and SSE (sb_engine_notify_user)', async () => {
      const nina1 = await connected(server.url, auth('c:nina'));
      const nina2 = await connected(server.url, { ...auth('c:nina'), transports: ['polling'] });
      const omar = await connected(server.url, auth('c:omar'));
      const sse = await sseClient(eventsUrl(server.url), { token: token('nina'), events: ['bell'] });
      const [r1, r2, other] = [recorder(nina1), recorder(nina2), recorder(omar)];

      server.send('notify nina - {"n":1,"s":"\\u00e9"}');
      assert.equal(await server.line(/^notified nina /), 'notified nina 3');
      for (const r of [r1, r2]) assert.deepEqual((await r.next('notification'))[0], { n: 1, s: 'é' });
      assert.deepEqual((await sse.log.next('notification')).data, { n: 1, s: 'é' });

      server.send('notify nina bell [1,"two"]');
      assert.equal(await server.line(/^notified nina /), 'notified nina 3');
      assert.deepEqual((await r1.next('bell'))[0], [1, 'two']);
      assert.deepEqual((await r2.next('bell'))[0], [1, 'two']);
      assert.deepEqual((await sse.log.next('bell')).data, [1, 'two']);

      server.send('notify nobody - {}');
      assert.equal(await server.line(/^notified nobody /), 'notified nobody 0');
      server.send('notify nina - {oops');
      assert.match(await server.line(/^notify error /), /JSON/);
      await sleep(100);
      assert.deepEqual(other.all('notification'), [], 'another user gets nothing');
      assert.deepEqual(other.all('bell'), []);
    });

    it('publishes to a room from the host: members, SSE, history, rooms (sb_engine_publish)', async () => {
      const alice = await connected(server.url, auth('c:alice'));
      const bob = await connected(server.url, auth('c:bob'));
      await request(alice, 'joinRoom', 'lobby-pub');
      await request(bob, 'joinRoom', 'lobby-pub');
      const sse = await sseClient(eventsUrl(server.url, { rooms: 'lobby-pub' }), { token: token('watcher') });
      const [aliceEvents, bobEvents] = [recorder(alice), recorder(bob)];

      // the host's command thread waits until the message is stored (by the host) and delivered
      server.send('publish lobby-pub herald Herald hello from the "host"');
      const ack = JSON.parse((await server.line(/^published lobby-pub /)).slice('published lobby-pub '.length));
      assert.deepEqual(Object.keys(ack).sort(), ['id', 'timestamp']);
      assert.match(ack.id, /^[0-9A-Z]{26}$/);
      assert.ok(!Number.isNaN(Date.parse(ack.timestamp)), ack.timestamp);
      const expected = {
        id: ack.id, roomId: 'lobby-pub', text: 'hello from the "host"', userId: 'herald', username: 'Herald', timestamp: ack.timestamp,
      };
      assert.deepEqual((await aliceEvents.next('message'))[0], expected);
      assert.deepEqual((await bobEvents.next('message'))[0], expected);
      const ev = await sse.log.next('message');
      assert.deepEqual(ev.data, expected);
      assert.equal(ev.id, ack.id);
      // it went through the host's store callback like any message
      const stored = await server.line(new RegExp(`^stored .*"${ack.id}"`));
      assert.deepEqual(JSON.parse(stored.slice('stored '.length)), expected);

      // a user that joins later finds it in the history
      const carol = await connected(server.url, auth('c:carol'));
      await request(carol, 'joinRoom', 'lobby-pub');
      const history = await request(carol, 'getHistory', { roomId: 'lobby-pub' });
      assert.deepEqual(history.messages.at(-1), expected);

      // no display name: the user id
      server.send('publish lobby-pub herald - second');
      await server.line(/^published lobby-pub /);
      assert.equal((await bobEvents.next('message'))[0].username, 'herald');

      server.send('rooms');
      const rooms = JSON.parse((await server.line(/^rooms /)).slice('rooms '.length));
      assert.deepEqual(rooms.find((r) => r.roomId === 'lobby-pub'), { roomId: 'lobby-pub', members: 3 });
      assert.deepEqual(rooms.map((r) => r.roomId), [...rooms.map((r) => r.roomId)].sort(), 'sorted by room id');

      // refusals: a personal room, nothing delivered
      server.send('publish user:alice herald - hi');
      assert.match(await server.line(/^publish error /), /^publish error an argument is invalid: INVALID_ROOM: /);
      await sleep(100);
      assert.equal(aliceEvents.all('message').length, 2);
    });

    it('serves documents: the host authenticates them, decides doc:<name>, hears updates', async () => {
      const ws = server.url.replace(/^http/, 'ws');
      // the room callback refuses documents named secret-*: 4403, which y-websocket does not retry
      const refused = await closeOf(new WebSocket(`${ws}/yjs/secret-plan?token=c:alice`));
      assert.equal(refused.code, 4403);
      assert.equal(await server.line(/^auth document secret-plan$/), 'auth document secret-plan');
      assert.equal(await server.line(/^access doc:secret-plan /), 'access doc:secret-plan refused');
      // the auth callback refuses with its own message: 4401
      assert.deepEqual(await closeOf(new WebSocket(`${ws}/yjs/notes-c`)), { code: 4401, reason: 'Authentication required' });
      assert.deepEqual(await closeOf(new WebSocket(`${ws}/yjs/notes-c?token=alice`)), { code: 4401, reason: 'Invalid token' });

      const a = provider(server.url, 'notes-c', 'c:alice');
      const b = provider(server.url, 'notes-c', 'c:bob');
      try {
        await Promise.all([synced(a), synced(b)]);
        assert.match(await server.line(/^access doc:notes-c /), / allowed$/);
        a.doc.getText('t').insert(0, 'hello from node');
        await until(() => b.doc.getText('t').toString() === 'hello from node', 'the edit to reach the other provider');
        const update = await server.line(/^document-update notes-c /);
        assert.match(update, /^document-update notes-c [1-9]\d*$/);
        b.doc.getText('t').insert(0, '> ');
        await until(() => a.doc.getText('t').toString() === '> hello from node', 'the reply');
        await server.line(/^document-update notes-c [1-9]\d*$/);
      } finally {
        for (const p of [a, b]) {
          p.destroy();
          p.doc.destroy();
        }
      }
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

describe('C ABI: the C11 host over TLS (sb_config_set_tls from SB_TLS_CERT / SB_TLS_KEY)', { timeout: 60000 }, () => {
  let server;
  after(async () => {
    closeAll();
    if (server) await server.stop();
    removeCertificateFiles();
  });

  it('serves wss and HTTPS long-polling to clients that trust the certificate, and exits clean', async () => {
    const cert = selfSignedCert({ type: 'ec' });
    const files = certificateFiles(cert);
    server = await startProgram(path.join(BUILD, 'chat_server'), { SB_TLS_CERT: files.certFile, SB_TLS_KEY: files.keyFile });
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const alice = await connected(server.url, { ca: cert.cert, ...auth('c:alice') });
    const bob = await connected(server.url, { ca: cert.cert, transports: ['polling'], ...auth('c:bob') });
    const bobEvents = recorder(bob);
    await request(alice, 'joinRoom', 'lobby-tls');
    await request(bob, 'joinRoom', 'lobby-tls');
    await request(alice, 'sendMessage', { roomId: 'lobby-tls', text: 'over TLS from C' });
    const [message] = await bobEvents.next('message');
    assert.equal(message.text, 'over TLS from C');
    assert.ok(await connectError(server.url, { timeout: 3000, ...auth('c:mallory') }) instanceof Error);

    server.send('quit');
    assertClean('chat_server over TLS', await exitWithin(server, EXIT_TIMEOUT_MS), server.stderr);
  });
});

describe('C ABI: prefix, connection callback and emit to several rooms (SB_PREFIX)', { timeout: 60000 }, () => {
  let server;
  after(async () => {
    closeAll();
    if (server) await server.stop();
  });

  it('serves every endpoint under the prefix, reports connects and disconnects, emits to rooms minus others once', async () => {
    server = await startProgram(path.join(BUILD, 'chat_server'), { SB_PREFIX: '/rt' });
    assert.equal((await fetch(`${server.url}/rt/healthz`)).status, 200);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 404);
    const at = { path: '/rt/socket.io/' };
    const alice = await connected(server.url, { ...at, ...auth('c:alice') });
    const bob = await connected(server.url, { ...at, ...auth('c:bob') });
    const carol = await connected(server.url, { ...at, ...auth('c:carol') });
    const connectedLine = JSON.parse((await server.line(/^connected .*"alice"/)).slice('connected '.length));
    assert.equal(connectedLine.id, alice.id);
    assert.equal(connectedLine.user.id, 'alice');
    await request(alice, 'joinRoom', 'ca');
    await request(bob, 'joinRoom', 'ca');
    await request(bob, 'joinRoom', 'cb');
    await request(carol, 'joinRoom', 'cb');
    await request(carol, 'joinRoom', 'cmuted');
    const got = { alice: [], bob: [], carol: [] };
    for (const [name, s] of Object.entries({ alice, bob, carol })) s.on('news', (n) => got[name].push(n));
    server.send('emit-rooms ["ca","cb"] ["cmuted"] news {"n":1}');
    assert.equal(await server.line(/^emit-rooms /), 'emit-rooms success ');
    await sleep(300);
    assert.deepEqual(got, { alice: [{ n: 1 }], bob: [{ n: 1 }], carol: [] });
    server.send('emit-rooms "ca" - news {}');
    assert.match(await server.line(/^emit-rooms /), /rooms_json/);

    alice.disconnect();
    const gone = await server.line(/^disconnected client namespace disconnect .*"alice"/);
    assert.ok(JSON.parse(gone.replace(/^disconnected client namespace disconnect /, '')).rooms.includes('ca'));
  });
});

describe(onRedis('C ABI: the C11 host and switchboard serve in one cluster through Redis (SB_REDIS_URL)'), { timeout: 60000 }, () => {
  let redis;
  let host;
  let node;
  after(async () => {
    closeAll();
    if (host) await host.stop();
    if (node) await node.stop();
    if (redis) await redis.close();
  });

  it('messages and presence cross between them; the host leaves the cluster cleanly on quit', async () => {
    redis = await startRedisForTest();
    host = await startProgram(path.join(BUILD, 'chat_server'), { SB_REDIS_URL: redis.url });
    node = await startServer({ args: ['--redis', redis.url, '--cluster-heartbeat-ms', '500'] });
    const alice = await connected(host.url, auth('c:alice'));
    const bob = await connected(node.url, { auth: { token: token('bob', { username: 'Bob' }) } });
    const aliceEvents = recorder(alice);
    const bobEvents = recorder(bob);
    await request(alice, 'joinRoom', 'lobby-cluster');
    await request(bob, 'joinRoom', 'lobby-cluster');
    const [members] = await bobEvents.next('roomMembers');
    assert.deepEqual(members.members.map((m) => m.userId).sort(), ['alice', 'bob'], 'bob sees alice on the C host');
    await aliceEvents.next('userJoined', { filter: (u) => u.userId === 'bob' });

    await request(alice, 'sendMessage', { roomId: 'lobby-cluster', text: 'from the C host' });
    assert.equal((await bobEvents.next('message', { filter: (m) => m.text === 'from the C host' }))[0].userId, 'alice');
    await request(bob, 'sendMessage', { roomId: 'lobby-cluster', text: 'from switchboard serve' });
    await aliceEvents.next('message', { filter: (m) => m.text === 'from switchboard serve' });

    host.send('quit');
    assertClean('chat_server in a cluster', await exitWithin(host, EXIT_TIMEOUT_MS), host.stderr);
    const [left] = await bobEvents.next('userLeft', { filter: (u) => u.userId === 'alice', timeout: 5000 });
    assert.equal(left.roomId, 'lobby-cluster');
  });
});

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

