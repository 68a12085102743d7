'use strict';
// Issue 9: Yjs documents over the y-websocket protocol at /yjs/<docName>, with unmodified
// `yjs` 13.6 + `y-websocket` 3.x clients. Every provider uses the `ws` package as its
// WebSocket and has BroadcastChannel off, so everything it learns came through the server.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');
const { startServer, SECRET } = require('../helpers/server');
const { token, expiredToken, wrongSecretToken } = require('../helpers/tokens');

const WAIT_MS = 5000;

// Each provider listens for the process' exit; this file makes more than ten.
process.setMaxListeners(100);

/** Every provider made here, destroyed in `after`. */
const providers = new Set();

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` (sync or async) until it returns a truthy value; fails after `ms` saying `what`. */
async function until(check, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A provider for `doc` on `url`'s /yjs endpoint, authenticated with `tok`. */
function provider(url, doc, tok, { ydoc = new Y.Doc(), ...opts } = {}) {
  const p = new WebsocketProvider(`${url.replace(/^http/, 'ws')}/yjs`, doc, ydoc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    params: tok === undefined ? {} : { token: tok },
    ...opts,
  });
  providers.add(p);
  return p;
}

/** Ends a provider and its document (whose awareness runs a timer until the document ends). */
function destroy(p) {
  providers.delete(p);
  p.destroy();
  p.doc.destroy();
}

function destroyAll() {
  for (const p of [...providers]) destroy(p);
}

function synced(p) {
  if (p.synced) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider for ${p.roomname} did not sync`)), WAIT_MS);
    p.once('sync', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Resolves the first close event the server sends this provider: {code, reason}. */
function serverClose(p) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider for ${p.roomname} was not closed`)), WAIT_MS);
    p.on('connection-close', (event) => {
      if (!event) return;
      clearTimeout(timer);
      resolve({ code: event.code, reason: String(event.reason) });
    });
  });
}

function text(p) {
  return p.doc.getText('t').toString();
}

async function metric(url, name) {
  const body = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(body);
  return m ? Number(m[1]) : NaN;
}

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sb-yjs-'));
}

let docCounter = 0;
/** A document name no other test uses. */
function docName(base) {
  docCounter += 1;
  return `${base}-${process.pid}-${docCounter}`;
}

after(destroyAll);

describe('Yjs over y-websocket (switchboard serve)', { concurrency: true }, () => {
  let server;
  // Idle unload after 300 ms, small limits, pings every 300 ms.
  let quick;
  const alice = token('alice', { username: 'Alice' });
  const bob = token('bob', { username: 'Bob' });

  before(async () => {
    [server, quick] = await Promise.all([
      startServer(),
      startServer({
        args: [
          '--yjs-idle-unload', '300',
          '--yjs-ping-interval', '300',
          '--yjs-max-update-bytes', '20000',
          '--yjs-max-document-bytes', '50000',
          '--room-policy', 'claims',
        ],
      }),
    ]);
  });

  after(async () => {
    destroyAll();
    await Promise.all([server && server.stop(), quick && quick.stop()]);
  });

  test('two providers make concurrent edits and converge', async () => {
    const name = docName('converge');
    const a = provider(server.url, name, alice);
    const b = provider(server.url, name, bob);
    await Promise.all([synced(a), synced(b)]);
    // Concurrent: both edit before either hears of the other's edit.
    a.doc.getText('t').insert(0, 'hello ');
    b.doc.getText('t').insert(0, 'world');
    a.doc.getText('t').insert(6, 'big ');
    await until(() => text(a).length === 15 && text(a) === text(b), 'both texts to converge');
    assert.equal(text(a), text(b));
    for (const part of ['hello ', 'big ', 'world']) assert.ok(text(a).includes(part), text(a));
    // And again, now that both are in sync.
    b.doc.getText('t').delete(0, text(b).length);
    await until(() => text(a) === '', 'the deletion to reach the other provider');
  });

  test('awareness reaches the other provider and disappears within a second of termination', async () => {
    const name = docName('awareness');
    const a = provider(server.url, name, alice);
    const b = provider(server.url, name, bob);
    await Promise.all([synced(a), synced(b)]);
    a.awareness.setLocalStateField('user', { name: 'Alice', color: '#f00' });
    const id = a.doc.clientID;
    await until(() => b.awareness.getStates().get(id)?.user?.name === 'Alice', "Alice's awareness at Bob");
    // A crash, as the server sees it: the socket goes away without any goodbye message.
    a.shouldConnect = false;
    const started = Date.now();
    a.ws.terminate();
    await until(() => !b.awareness.getStates().has(id), "Alice's awareness to disappear at Bob", 1000);
    assert.ok(Date.now() - started < 1000);
    // A third provider that connects now does not see Alice either.
    const c = provider(server.url, name, bob);
    await synced(c);
    await sleep(100);
    assert.equal(c.awareness.getStates().has(id), false);
    assert.equal(b.awareness.getStates().has(id), false);
  });

  test('a late third provider gets the full text from the server', async () => {
    const name = docName('late');
    const a = provider(server.url, name, alice);
    const b = provider(server.url, name, bob);
    await Promise.all([synced(a), synced(b)]);
    const t = a.doc.getText('t');
    t.insert(0, 'The quick brown fox');
    t.insert(t.length, ' jumps over the lazy dog');
    t.delete(4, 6); // "quick "
    const expected = 'The brown fox jumps over the lazy dog';
    await until(() => text(b) === expected, 'the text at the second provider');
    destroy(a);
    destroy(b);
    const c = provider(server.url, name, alice);
    await synced(c);
    assert.equal(text(c), expected);
  });

  test('an idle provider stays connected for over 40 s', async () => {
    const name = docName('idle');
    const p = provider(server.url, name, alice);
    await synced(p);
    const ws = p.ws;
    const events = [];
    p.on('status', (e) => events.push(e.status));
    p.on('connection-close', (e) => events.push(`close ${e ? e.code : 'local'}`));
    await sleep(41000);
    assert.deepEqual(events, []);
    assert.equal(p.ws, ws, 'the same WebSocket');
    assert.equal(p.wsconnected, true);
    assert.equal(ws.readyState, WebSocket.OPEN);
    // Still live: an edit goes through.
    const other = provider(server.url, name, bob);
    await synced(other);
    p.doc.getText('t').insert(0, 'still here');
    await until(() => text(other) === 'still here', 'an edit after 41 idle seconds');
  });

  test('the text survives an idle unload', async (t) => {
    // A server of its own, so that no other test's document is in memory.
    const own = await startServer({ args: ['--yjs-idle-unload', '300'] });
    t.after(() => own.stop());
    const name = docName('unload');
    const tok = token('alice');
    const a = provider(own.url, name, tok);
    await synced(a);
    a.doc.getText('t').insert(0, 'kept across an unload');
    // The server echoes updates to their sender: once A's edit comes back it is applied.
    const b = provider(own.url, name, tok);
    await until(() => text(b) === 'kept across an unload', 'the edit at a second provider');
    assert.equal(await metric(own.url, 'switchboard_yjs_documents'), 1);
    destroy(a);
    destroy(b);
    await until(async () => (await metric(own.url, 'switchboard_yjs_documents')) === 0, 'the idle unload');
    const c = provider(own.url, name, tok);
    await synced(c);
    assert.equal(text(c), 'kept across an unload');
  });

  test('a refused token closes with 4401 and the provider stops reconnecting', async () => {
    const cases = [
      [wrongSecretToken('alice'), 'Invalid token'],
      [expiredToken('alice'), 'Token expired'],
      [undefined, 'Authentication required'],
    ];
    for (const [tok, reason] of cases) {
      const p = provider(server.url, docName('refused'), tok);
      const closed = new Promise((resolve) => p.once('closed', resolve));
      assert.deepEqual(await serverClose(p), { code: 4401, reason });
      assert.deepEqual(await closed, { code: 4401, reason });
      assert.equal(p.shouldConnect, false, 'y-websocket gives up on 44xx');
      assert.equal(p.synced, false);
    }
  });

  test('a document outside the token rooms claim closes with 4403', async () => {
    const tok = token('bob', { rooms: ['doc:team-*'] });
    const denied = provider(quick.url, 'secret-plans', tok);
    assert.deepEqual(await serverClose(denied), { code: 4403, reason: 'You may not join doc:secret-plans' });
    assert.equal(denied.shouldConnect, false);
    const allowed = provider(quick.url, docName('team-notes'), tok);
    await synced(allowed);
  });

  test('size limits close with 4413 and a clear reason', async () => {
    const tok = token('alice', { rooms: ['doc:*'] });
    const big = provider(quick.url, docName('big-update'), tok);
    await synced(big);
    const closing = serverClose(big);
    big.doc.getText('t').insert(0, 'x'.repeat(30000));
    assert.deepEqual(await closing, { code: 4413, reason: 'Update too large (max 20000 bytes)' });

    const grow = provider(quick.url, docName('big-doc'), tok);
    await synced(grow);
    const closed = serverClose(grow);
    for (let i = 0; i < 4; i += 1) grow.doc.getText('t').insert(0, String(i).repeat(15000));
    assert.deepEqual(await closed, { code: 4413, reason: 'Document too large (max 50000 bytes)' });
  });

  test('a frame packing many sync step 1s closes with 4400; the server stays responsive and editors keep working', async () => {
    // Issue 16: one frame of N copies of the 4-byte sync step 1 made the server encode the
    // whole document N times under its lock: /healthz took seconds on a 2 MB document.
    const name = docName('step1-batch');
    const writer = provider(server.url, name, alice);
    await synced(writer);
    const t = writer.doc.getText('t');
    for (let i = 0; i < 2000; i += 1) t.insert((i * 7919) % (t.length + 1), 'x'.repeat(100));
    await until(async () => {
      const check = provider(server.url, name, bob);
      await synced(check);
      const done = text(check).length === 200000;
      destroy(check);
      return done;
    }, 'the 200 KB document at the server');
    const step1 = Buffer.from([0, 0, 1, 0]);
    const url = `${server.url.replace('http', 'ws')}/yjs/${name}?token=${bob}`;
    const closed = (ws) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server did not close the connection')), WAIT_MS);
      ws.on('close', (c, r) => {
        clearTimeout(timer);
        resolve({ code: c, reason: String(r) });
      });
    });
    const opened = (ws) => new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });

    // More messages in one frame than y-websocket ever sends: refused before any is handled.
    const batch = new WebSocket(url);
    await opened(batch);
    const batchClosed = closed(batch);
    batch.send(Buffer.concat(Array(1000).fill(step1)));
    assert.deepEqual(await batchClosed, { code: 4400, reason: 'Too many messages in one frame' });

    // As many as allowed, frame after frame, without reading: answered from one encoding,
    // and the server answers /healthz meanwhile.
    const flood = new WebSocket(url);
    await opened(flood);
    flood.on('error', () => {});
    flood._socket.pause();
    let worst = 0;
    const end = Date.now() + 1500;
    while (Date.now() < end && flood.readyState === WebSocket.OPEN) {
      for (let i = 0; i < 10; i += 1) flood.send(Buffer.concat(Array(16).fill(step1)));
      const started = Date.now();
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      worst = Math.max(worst, Date.now() - started);
      await sleep(20);
    }
    flood.terminate();
    assert.ok(worst < 1000, `/healthz took ${worst} ms`);

    // A real editor still joins and edits.
    const late = provider(server.url, name, bob);
    await synced(late);
    assert.equal(text(late).length, 200000);
    late.doc.getText('t').insert(0, 'still here ');
    await until(() => text(writer).startsWith('still here '), 'the edit to reach the writer');
  });

  test('awareness limits: a state over 64 KiB closes with 4413, more than 16 client ids with 4400', async () => {
    const encoding = require('lib0/encoding');
    /** An awareness message setting `states` ([clientID, json]) at clock 1. */
    const awarenessMessage = (states) => {
      const update = encoding.createEncoder();
      encoding.writeVarUint(update, states.length);
      for (const [client, json] of states) {
        encoding.writeVarUint(update, client);
        encoding.writeVarUint(update, 1);
        encoding.writeVarString(update, json);
      }
      const message = encoding.createEncoder();
      encoding.writeVarUint(message, 1);
      encoding.writeVarUint8Array(message, encoding.toUint8Array(update));
      return Buffer.from(encoding.toUint8Array(message));
    };
    const name = docName('awareness-limits');
    const watcher = provider(server.url, name, alice);
    await synced(watcher);
    const url = `${server.url.replace('http', 'ws')}/yjs/${name}?token=${bob}`;
    const attempt = async (message) => {
      const ws = new WebSocket(url);
      await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
      const closed = new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          ws.terminate();
          reject(new Error('the server did not close the connection'));
        }, WAIT_MS);
        ws.on('close', (c, r) => {
          clearTimeout(timer);
          resolve({ code: c, reason: String(r) });
        });
      });
      ws.send(message);
      return closed;
    };
    const big = JSON.stringify({ user: 'x'.repeat(100 * 1024) });
    assert.deepEqual(await attempt(awarenessMessage([[424242, big]])), {
      code: 4413,
      reason: 'Awareness state too large (max 65536 bytes)',
    });
    const many = Array.from({ length: 17 }, (_, i) => [500000 + i, '{"user":"bob"}']);
    assert.deepEqual(await attempt(awarenessMessage(many)), {
      code: 4400,
      reason: 'Too many awareness clients (max 16 per connection)',
    });
    // Neither left a state behind; a provider's own state still goes through.
    const late = provider(server.url, name, bob);
    await synced(late);
    late.awareness.setLocalStateField('user', { name: 'Bob' });
    await until(() => watcher.awareness.getStates().get(late.doc.clientID)?.user?.name === 'Bob', "Bob's awareness");
    const ids = [...watcher.awareness.getStates().keys()];
    assert.ok(!ids.includes(424242) && !ids.some((id) => id >= 500000 && id < 500017), String(ids));
  });

  test('a connection that does not answer pings is closed', async () => {
    const tok = token('alice', { rooms: ['doc:*'] });
    const ws = new WebSocket(`${quick.url.replace('http', 'ws')}/yjs/${docName('no-pong')}?token=${tok}`, {
      autoPong: false,
    });
    ws.on('error', () => {});
    const started = Date.now();
    const [code, reason] = await new Promise((resolve) => ws.on('close', (c, r) => resolve([c, String(r)])));
    assert.equal(code, 1001);
    assert.equal(reason, 'Ping timeout');
    assert.ok(Date.now() - started < 2000);
  });
});

describe('Yjs documents survive a restart with --data-dir', () => {
  let dir;
  let server;

  before(() => {
    dir = tmpDir();
  });

  after(async () => {
    destroyAll();
    if (server) await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('stored text is back after a restart, and so is an edit made just before it', async () => {
    const args = ['--data-dir', dir];
    server = await startServer({ args });
    const tok = token('alice');
    const name = docName('restart');
    const a = provider(server.url, name, tok);
    await synced(a);
    a.doc.getText('t').insert(0, 'stored by the debounce');
    await until(async () => (await metric(server.url, 'switchboard_yjs_stores_total')) >= 1, 'a debounced store');
    // An edit right before the stop: the shutdown stores it.
    a.doc.getText('t').insert(0, '[last] ');
    const b = provider(server.url, name, tok);
    await until(() => text(b) === '[last] stored by the debounce', 'the last edit at a second provider');
    destroy(a);
    destroy(b);
    await server.stop();

    server = await startServer({ args });
    const c = provider(server.url, name, tok);
    await synced(c);
    assert.equal(text(c), '[last] stored by the debounce');
  });
});

describe('Yjs through the Fastify plugin (@switchboard/node)', { concurrency: true }, () => {
  const Fastify = require('fastify');
  const plugin = require('@switchboard/node/fastify');
  const apps = [];

  async function startApp(options) {
    const app = Fastify({ logger: false });
    await app.register(plugin, options);
    await app.listen({ host: '127.0.0.1', port: 0 });
    apps.push(app);
    return { app, url: `http://127.0.0.1:${app.server.address().port}` };
  }

  after(async () => {
    destroyAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  test('providers converge on adopted sockets; authorizeRoom decides doc:<name>; onDocumentUpdate sees every change', async () => {
    const asked = [];
    const updates = [];
    const { app, url } = await startApp({
      jwtSecret: SECRET,
      authorizeRoom: async (user, room) => {
        asked.push([user.id, room]);
        return room.startsWith('doc:team-');
      },
      onDocumentUpdate: (docName, update) => updates.push([docName, update]),
    });
    assert.equal(app.switchboard.serves('/yjs/team-notes'), true);
    const name = docName('team-notes');
    const a = provider(url, name, token('alice'));
    const b = provider(url, name, token('bob'));
    await Promise.all([synced(a), synced(b)]);
    a.doc.getText('t').insert(0, 'from alice');
    b.doc.getText('t').insert(0, 'from bob ');
    await until(() => text(a).length === 19 && text(a) === text(b), 'convergence through the plugin');
    assert.deepEqual(asked.filter(([, room]) => room === `doc:${name}`).map(([id]) => id).sort(), ['alice', 'bob']);
    // The hook's updates rebuild the document.
    await until(() => updates.length >= 2, 'two onDocumentUpdate calls');
    const rebuilt = new Y.Doc();
    for (const [doc, update] of updates) {
      assert.equal(doc, name);
      assert.ok(update instanceof Uint8Array);
      Y.applyUpdate(rebuilt, update);
    }
    assert.equal(rebuilt.getText('t').toString(), text(a));
    rebuilt.destroy();
    assert.equal(app.switchboard.stats().documents, 1);

    const denied = provider(url, 'private', token('alice'));
    assert.deepEqual(await serverClose(denied), { code: 4403, reason: 'You may not join doc:private' });
    const refused = provider(url, name, wrongSecretToken('alice'));
    assert.deepEqual(await serverClose(refused), { code: 4401, reason: 'Invalid token' });
  });

  test('the authenticate callback also admits document connections', async () => {
    const seen = [];
    const { url } = await startApp({
      authenticate: async (handshake) => {
        seen.push(handshake);
        return handshake.auth.token === 'let-me-in' ? { id: 'carol', rooms: ['doc:*'] } : null;
      },
    });
    const name = docName('hooked');
    const ok = provider(url, name, 'let-me-in');
    await synced(ok);
    const hs = seen.find((h) => h.document === name);
    assert.ok(hs, 'authenticate got the document name');
    assert.equal(hs.query.token, 'let-me-in');
    assert.equal(hs.address, '127.0.0.1');
    const no = provider(url, name, 'wrong');
    assert.deepEqual(await serverClose(no), { code: 4401, reason: 'Invalid token' });
  });
});
