'use strict';
// Issue 8: server-sent events at /events and the server HTTP API under /api/, end to end with
// the `eventsource` package, plain `fetch` and unmodified socket.io-client, against
// `switchboard serve`. SSE clients, Socket.IO clients and the API act on one hub: what one
// side does, the others see.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { startServer } = require('../helpers/server');
const { token, expiredToken, wrongSecretToken, noneToken } = require('../helpers/tokens');
const {
  sleep, userSocket, closeAll, once, request, recorder,
} = require('../helpers/client');
const {
  closeAllStreams, sseClient, refusedEventSource, rawStream, apiClient, eventsUrl,
} = require('../helpers/sse');

const KEY = 'api-key-for-tests';
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const MESSAGE_KEYS = ['id', 'roomId', 'text', 'timestamp', 'userId', 'username'];

let roomSeq = 0;
/** A room name no other test uses. */
const room = (prefix = 'room') => `${prefix}-${++roomSeq}`;

const bearer = (t) => ({ Authorization: `Bearer ${t}` });

/** A connected Socket.IO user with an event recorder; joins `roomId` (consuming roomMembers). */
async function user(url, sub, username, roomId) {
  const s = await userSocket(url, sub, { username });
  const rec = recorder(s);
  if (roomId) {
    await request(s, 'joinRoom', roomId);
    await rec.next('roomMembers', { filter: (m) => m.roomId === roomId });
  }
  return { s, rec };
}

function assertMessage(m, { roomId, text, userId, username }) {
  assert.ok(m && typeof m === 'object', `message payload is an object: ${JSON.stringify(m)}`);
  assert.deepEqual(Object.keys(m).sort(), MESSAGE_KEYS, `message fields: ${JSON.stringify(m)}`);
  assert.equal(m.roomId, roomId);
  assert.equal(m.text, text);
  assert.equal(m.userId, userId);
  assert.equal(m.username, username);
  assert.equal(typeof m.id, 'string');
  assert.ok(m.id.length > 0, 'non-empty id');
  assert.match(m.timestamp, ISO_MS);
}

/** Asserts an HTTP error answer: status, JSON `{code, message}` (message matching `message`). */
function assertHttpError(res, status, code, message, context = '') {
  const where = `${context}${context ? ': ' : ''}${res.status} ${res.text}`;
  assert.equal(res.status, status, where);
  assert.match(res.headers.get('content-type') || '', /^application\/json/, where);
  assert.ok(res.json && typeof res.json === 'object', `JSON body: ${where}`);
  assert.deepEqual(Object.keys(res.json).sort(), ['code', 'message'], where);
  assert.equal(res.json.code, code, where);
  assert.equal(typeof res.json.message, 'string', where);
  assert.ok(res.json.message.length > 0, where);
  if (typeof message === 'string') assert.equal(res.json.message, message, where);
  else if (message) assert.match(res.json.message, message, where);
}

/** A fetch of `/events` answered at once (a refusal): status, headers and parsed JSON body. */
async function eventsRequest(url, headers = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Publishes a marker through the API and waits until `sse` (an eventsource handle) has it:
 * everything the server queued for `sse` before the marker has arrived by then.
 */
async function syncSse(api, sse, roomId) {
  const text = `marker ${Math.random()}`;
  const res = await api.publish(roomId, { text });
  assert.equal(res.status, 200, res.text);
  await sse.log.next('message', { filter: (m) => m.text === text });
}

// ---------------------------------------------------------------------------------------------

describe('SSE at /events (server with an API key)', () => {
  let srv;
  let api;
  before(async () => {
    srv = await startServer({ args: ['--api-key', KEY] });
    api = apiClient(srv.url, KEY);
  });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllStreams(); closeAll(); });

  it('answers text/event-stream with no-cache and X-Accel-Buffering: no, then sends `connected` first', async () => {
    for (const [how, url, headers] of [
      ['Authorization header', eventsUrl(srv.url, { rooms: 'lobby' }), bearer(token('alice'))],
      ['token query', eventsUrl(srv.url, { rooms: 'lobby', token: token('alice') }), {}],
    ]) {
      const s = await rawStream(url, { headers });
      assert.equal(s.status, 200, how);
      assert.match(s.headers.get('content-type'), /^text\/event-stream/, how);
      assert.equal(s.headers.get('cache-control'), 'no-cache', how);
      assert.equal(s.headers.get('x-accel-buffering'), 'no', how);
      await s.waitFor(() => s.events().length >= 1);
      const [first] = s.events();
      assert.equal(first.event, 'connected', `${how}: first event ${JSON.stringify(s.text)}`);
      assert.equal(first.id, undefined, `${how}: connected carries no id`);
      assert.deepEqual(Object.keys(first.json), ['clientId'], how);
      assert.equal(typeof first.json.clientId, 'string', how);
      assert.ok(first.json.clientId.length > 0, how);
      s.close();
    }
    // only GET
    const post = await fetch(eventsUrl(srv.url), { method: 'POST', headers: bearer(token('alice')) });
    assert.equal(post.status, 405);
    assert.equal((await post.json()).code, 'METHOD_NOT_ALLOWED');
    // two clients get distinct ids
    const a = await sseClient(eventsUrl(srv.url), { token: token('alice') });
    const b = await sseClient(eventsUrl(srv.url), { token: token('alice') });
    assert.notEqual(a.connected.data.clientId, b.connected.data.clientId);
  });

  it('delivers a message a Socket.IO client sends to the room, with its id as the event id', async () => {
    const r = room('lobby');
    const elsewhere = room('elsewhere');
    const alice = await user(srv.url, 'alice', 'Alice', r);
    await request(alice.s, 'joinRoom', elsewhere);
    const sse = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('bob', { username: 'Bob' }) });

    // a message to a room the SSE client did not subscribe to, then one to its room: the first
    // message it gets must be the second (events of one stream arrive in order)
    await request(alice.s, 'sendMessage', { roomId: elsewhere, text: 'not for the stream' });
    const ack = await request(alice.s, 'sendMessage', { roomId: r, text: 'hello, listeners' });
    const ev = await sse.log.next('message');
    assertMessage(ev.data, { roomId: r, text: 'hello, listeners', userId: 'alice', username: 'Alice' });
    assert.equal(ev.data.id, ack.id);
    assert.equal(ev.data.timestamp, ack.timestamp);
    assert.equal(ev.id, ack.id, 'the SSE event id is the message id (what Last-Event-ID resumes from)');
    const [sioCopy] = await alice.rec.next('message', { filter: (m) => m.id === ack.id });
    assert.deepEqual(ev.data, sioCopy, 'SSE and Socket.IO clients see the same message');
    assert.equal(sse.log.all('message').length, 1);

    // several rooms in one stream
    const both = await sseClient(eventsUrl(srv.url, { rooms: [r, elsewhere] }), { token: token('bob') });
    await request(alice.s, 'sendMessage', { roomId: elsewhere, text: 'one' });
    await request(alice.s, 'sendMessage', { roomId: r, text: 'two' });
    const got = await both.log.count('message', 2);
    assert.deepEqual(got.map((e) => [e.data.roomId, e.data.text]), [[elsewhere, 'one'], [r, 'two']]);
  });

  it('tells the room\'s SSE clients when Socket.IO users join and leave (per user, not per tab)', async () => {
    const r = room('presence-sse');
    const sse = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('watcher') });

    const tab1 = await user(srv.url, 'carol', 'Carol', r);
    const joined = await sse.log.next('userJoined');
    assert.deepEqual(joined.data, { roomId: r, userId: 'carol', username: 'Carol' });
    assert.equal(joined.id, '', 'presence events carry no id');

    const tab2 = await user(srv.url, 'carol', 'Carol', r);
    await request(tab1.s, 'leaveRoom', r);
    await syncSse(api, sse, r);
    assert.equal(sse.log.all('userJoined').length, 1, 'a second tab is not a second join');
    assert.equal(sse.log.all('userLeft').length, 0, 'carol is still there through her second tab');

    await request(tab2.s, 'leaveRoom', r);
    const left = await sse.log.next('userLeft');
    assert.deepEqual(left.data, { roomId: r, userId: 'carol', username: 'Carol' });

    // a disconnect (not only leaveRoom) is a departure too
    const dave = await user(srv.url, 'dave', 'Dave', r);
    await sse.log.next('userJoined', { filter: (d) => d.userId === 'dave' });
    dave.s.close();
    const daveLeft = await sse.log.next('userLeft', { filter: (d) => d.userId === 'dave' });
    assert.deepEqual(daveLeft.data, { roomId: r, userId: 'dave', username: 'Dave' });

    // other rooms' presence does not leak into this stream
    await user(srv.url, 'erin', 'Erin', room('other'));
    await syncSse(api, sse, r);
    assert.equal(sse.log.all('userJoined', (d) => d.userId === 'erin').length, 0);
  });

  it('delivers a notification published through the API to the user\'s SSE and Socket.IO connections', async () => {
    const sse = await sseClient(eventsUrl(srv.url), { token: token('nina'), events: ['invoice.paid'] });
    const sock = await user(srv.url, 'nina', 'Nina');
    const bystander = await sseClient(eventsUrl(srv.url), { token: token('oscar'), events: ['invoice.paid'] });

    const data = { title: 'Build finished', url: '/builds/42', n: 1 };
    const res = await api.notify('nina', { data });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { delivered: 2 }, 'one SSE stream and one socket');
    const ev = await sse.log.next('notification');
    assert.deepEqual(ev.data, data);
    assert.equal(ev.id, '', 'notifications carry no id (they are not resumable)');
    const [sio] = await sock.rec.next('notification');
    assert.deepEqual(sio, data);

    // a custom event name, and a payload that is not an object
    const custom = await api.notify('nina', { event: 'invoice.paid', data: 'INV-7' });
    assert.deepEqual(custom.json, { delivered: 2 });
    assert.equal((await sse.log.next('invoice.paid')).data, 'INV-7');
    assert.equal((await sock.rec.next('invoice.paid'))[0], 'INV-7');

    // without data: null
    assert.deepEqual((await api.notify('nina', {})).json, { delivered: 2 });
    assert.equal((await sse.log.next('notification')).data, null);

    // only nina got them: oscar's first event after `connected` is his own
    assert.deepEqual((await api.notify('oscar', { data: 'yours' })).json, { delivered: 1 });
    const first = await bystander.log.next('notification');
    assert.equal(first.data, 'yours');
    assert.equal(bystander.log.all('invoice.paid').length, 0);
    assert.equal(bystander.log.all('notification').length, 1);

    // a user with no connection: delivered 0, still 200
    assert.deepEqual((await api.notify('nobody-here', { data: 1 })).json, { delivered: 0 });
  });

  it('refuses missing, invalid and expired tokens with 401 {code: UNAUTHORIZED, message}', async () => {
    const cases = [
      ['no token', {}, '', 'Authentication required'],
      ['wrong secret (header)', bearer(wrongSecretToken('alice')), '', 'Invalid token'],
      ['wrong secret (query)', {}, wrongSecretToken('alice'), 'Invalid token'],
      ['alg none', bearer(noneToken('alice')), '', 'Invalid token'],
      ['garbage', bearer('not.a.jwt'), '', 'Invalid token'],
      ['no sub', bearer(token(undefined, { username: 'x' })), '', 'Invalid token'],
      ['expired (header)', bearer(expiredToken('alice')), '', 'Token expired'],
      ['expired (query)', {}, expiredToken('alice'), 'Token expired'],
    ];
    for (const [what, headers, queryToken, message] of cases) {
      const url = eventsUrl(srv.url, { rooms: 'lobby', token: queryToken || undefined });
      const res = await eventsRequest(url, headers);
      assertHttpError(res, 401, 'UNAUTHORIZED', message, what);
    }
    // what an EventSource sees: an error with the status, and no reconnect loop
    const refused = await refusedEventSource(eventsUrl(srv.url, { rooms: 'lobby' }), { token: expiredToken('alice') });
    assert.equal(refused.code, 401);
    assert.equal(refused.readyState, 2, 'EventSource.CLOSED: it gives up');
    assert.equal(refused.requests, 1);
  });

  it('refuses another user\'s personal room with 403 naming the room; allows the user\'s own', async () => {
    const res = await eventsRequest(eventsUrl(srv.url, { rooms: 'lobby,user:bob' }), bearer(token('amy')));
    assertHttpError(res, 403, 'ACCESS_DENIED', 'You may not join user:bob');

    const refused = await refusedEventSource(eventsUrl(srv.url, { rooms: 'user:bob' }), { token: token('amy') });
    assert.equal(refused.code, 403);
    assert.equal(refused.readyState, 2);

    const own = await sseClient(eventsUrl(srv.url, { rooms: 'user:amy' }), { token: token('amy') });
    assert.equal(typeof own.connected.data.clientId, 'string');

    // the refused request did not leave a subscription behind: the only SSE connection of
    // amy is `own`
    assert.deepEqual((await api.notify('amy', { data: 1 })).json, { delivered: 1 });
  });

  it('refuses an invalid room name with 400 INVALID_ROOM', async () => {
    for (const [what, rooms] of [['129 characters', 'x'.repeat(129)], ['control character', 'a\nb'], ['tab', 'a\tb']]) {
      const res = await eventsRequest(eventsUrl(srv.url, { rooms: `lobby,${rooms}` }), bearer(token('alice')));
      assertHttpError(res, 400, 'INVALID_ROOM', undefined, what);
    }
    // 128 characters is fine; empty entries are skipped
    const ok = await rawStream(eventsUrl(srv.url, { rooms: `${'y'.repeat(128)},,lobby,` }), { headers: bearer(token('alice')) });
    assert.equal(ok.status, 200);
    ok.close();
  });

  it('sends no keep-alive comment within half a second at the default interval (30 s)', async () => {
    const s = await rawStream(eventsUrl(srv.url), { headers: bearer(token('alice')) });
    await s.waitFor(/event: connected/);
    await sleep(500);
    assert.ok(!s.text.includes(':ping'), `no :ping yet: ${JSON.stringify(s.text)}`);
  });

  it('an SSE client that goes away is forgotten at once; deliveries to its room and user go on', async () => {
    const r = room('cleanup');
    const es = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('leaver') });
    const raw = await rawStream(eventsUrl(srv.url, { rooms: r }), { headers: bearer(token('leaver')) });
    await raw.waitFor(/event: connected/);
    assert.deepEqual((await api.notify('leaver', { data: 0 })).json, { delivered: 2 });

    /**
     * After a quiet moment (no writes to the closed stream that could reveal the close), the
     * notify count must already be `n`: the server noticed the client leaving by itself.
     */
    async function deliveredBecomes(n) {
      await sleep(300);
      const first = (await api.notify('leaver', { data: 'probe' })).json;
      if (first.delivered === n) return;
      // tell "noticed late" from "never noticed" for the failure message
      await sleep(500);
      const later = (await api.notify('leaver', { data: 'probe' })).json;
      assert.fail(`300 ms after the client left, notify still counted it (${JSON.stringify(first)}); `
        + `after more writes and 500 ms: ${JSON.stringify(later)}; want delivered ${n}`);
    }
    es.close();
    await deliveredBecomes(1);
    raw.close();
    await deliveredBecomes(0);

    // many short-lived streams leave nothing behind either
    const many = await Promise.all(Array.from({ length: 20 }, () =>
      rawStream(eventsUrl(srv.url, { rooms: r }), { headers: bearer(token('leaver')) })));
    await Promise.all(many.map((s) => s.waitFor(/event: connected/)));
    for (const s of many) s.close();
    await deliveredBecomes(0);

    // the room and the server are fine: publishing works, a new client gets messages
    const fresh = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('stayer') });
    const pub = await api.publish(r, { text: 'still here' });
    assert.equal(pub.status, 200, pub.text);
    assert.equal((await fresh.log.next('message')).data.text, 'still here');
    const metrics = await fetch(`${srv.url}/metrics`);
    assert.equal(metrics.status, 200);
    await metrics.text();
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    assert.ok(!srv.exited, 'the server is still running');
  });
});

// ---------------------------------------------------------------------------------------------

describe('SSE resume with Last-Event-ID', () => {
  let srv;
  let api;
  before(async () => {
    srv = await startServer({ args: ['--api-key', KEY] });
    api = apiClient(srv.url, KEY);
  });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllStreams(); closeAll(); });

  it('an EventSource that reconnects gets exactly the messages it missed, in order, then live ones', { timeout: 15000 }, async () => {
    const r = room('resume');
    const other = room('resume-other');
    const alice = await user(srv.url, 'alice', 'Alice', r);
    await request(alice.s, 'joinRoom', other);
    const sse = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('rita') });

    for (const text of ['live 1', 'live 2']) assert.equal((await api.publish(r, { text })).status, 200);
    const live3 = await request(alice.s, 'sendMessage', { roomId: r, text: 'live 3' });
    await sse.log.count('message', 3);
    assert.equal(sse.log.all('message').at(-1).id, live3.id);

    // the server ends the stream; the EventSource reconnects by itself after its retry delay
    // (3 s: the server sends no `retry:`) with Last-Event-ID = the last id it saw
    assert.deepEqual((await api.disconnect('rita')).json, { disconnected: 1 });
    const missed = [];
    missed.push((await api.publish(r, { text: 'missed 1' })).json.id);
    missed.push((await request(alice.s, 'sendMessage', { roomId: r, text: 'missed 2' })).id);
    await request(alice.s, 'sendMessage', { roomId: other, text: 'other room, not subscribed' });
    missed.push((await api.publish(r, { text: 'missed 3', userId: 'bot', username: 'Bot' })).json.id);

    await sse.log.count('connected', 2, { timeout: 8000 });
    assert.equal(sse.requests.length, 2, 'one reconnect');
    assert.equal(sse.requests[0].headers['Last-Event-ID'], undefined);
    assert.equal(sse.requests[1].headers['Last-Event-ID'], live3.id, 'the reconnect names the last id it saw');

    await sse.log.count('message', 6);
    const after = await request(alice.s, 'sendMessage', { roomId: r, text: 'after' });
    const all = await sse.log.count('message', 7);
    await syncSse(api, sse, r);
    const texts = sse.log.all('message').map((e) => e.data.text);
    assert.deepEqual(texts.slice(0, 7), ['live 1', 'live 2', 'live 3', 'missed 1', 'missed 2', 'missed 3', 'after'],
      'exactly the missed messages, once each, before live ones');
    assert.equal(texts.length, 8, `nothing else arrived: ${JSON.stringify(texts)}`);
    assert.deepEqual(all.slice(3, 6).map((e) => e.id), missed, 'replayed events carry their ids');
    assert.deepEqual(all.slice(3, 6).map((e) => e.data.id), missed);
    assert.equal(all[6].id, after.id);
    assertMessage(all[5].data, { roomId: r, text: 'missed 3', userId: 'bot', username: 'Bot' });
    const ids = all.map((e) => e.id);
    assert.deepEqual([...ids].sort(), ids, 'ids are time-sortable and arrive in order');
    // the connection itself did not fail: the only errors are the one reconnect
    assert.ok(sse.errors.length <= 1, JSON.stringify(sse.errors));
  });

  it('?lastEventId= works like the header, across several rooms, in id order', async () => {
    const a = room('multi-a');
    const b = room('multi-b');
    const before = (await api.publish(a, { text: 'seen' })).json.id;
    const expected = [];
    for (const [r, text] of [[a, 'a1'], [b, 'b1'], [a, 'a2'], [b, 'b2']]) {
      const res = await api.publish(r, { text });
      expected.push([res.json.id, r, text]);
    }
    for (const [how, url, headers] of [
      ['query', eventsUrl(srv.url, { rooms: [a, b], lastEventId: before }), bearer(token('rita'))],
      ['header', eventsUrl(srv.url, { rooms: [a, b] }), { ...bearer(token('rita')), 'Last-Event-ID': before }],
    ]) {
      const s = await rawStream(url, { headers });
      assert.equal(s.status, 200, how);
      await s.waitFor(() => s.events().filter((e) => e.event === 'message').length >= 4);
      await sleep(100); // nothing more should follow
      const evs = s.events();
      assert.equal(evs[0].event, 'connected', how);
      const msgs = evs.filter((e) => e.event === 'message');
      assert.deepEqual(msgs.map((e) => [e.id, e.json.roomId, e.json.text]), expected, how);
      assert.equal(evs.filter((e) => e.event === 'reset').length, 0, how);
      s.close();
    }
    // resuming from the newest id replays nothing; from an id in one room, only later ones
    const newest = expected.at(-1)[0];
    const none = await rawStream(eventsUrl(srv.url, { rooms: [a, b], lastEventId: newest }), { headers: bearer(token('rita')) });
    await none.waitFor(/event: connected/);
    await sleep(150);
    assert.equal(none.events().filter((e) => e.event === 'message').length, 0, JSON.stringify(none.text));
  });

  it('a gap larger than history (1000 per room) gets `event: reset` for that room, then live messages', { timeout: 20000 }, async () => {
    const r = room('gap');
    const small = room('gap-small');
    const last = (await api.publish(r, { text: 'last seen' })).json.id;
    const t0 = Date.now();
    let n = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (n < 1000) {
        const i = n++;
        const res = await api.publish(r, { text: `flood ${i}` });
        assert.equal(res.status, 200, res.text);
      }
    }));
    const floodMs = Date.now() - t0;
    const smallId = (await api.publish(small, { text: 'small gap' })).json.id;

    const s = await rawStream(eventsUrl(srv.url, { rooms: [r, small], lastEventId: last }), { headers: bearer(token('rita')) });
    await s.waitFor(() => s.events().some((e) => e.event === 'message' && e.json.roomId === small));
    await sleep(100);
    const evs = s.events().filter((e) => !e.comment);
    assert.equal(evs[0].event, 'connected');
    const resets = evs.filter((e) => e.event === 'reset');
    assert.equal(resets.length, 1, JSON.stringify(resets));
    assert.equal(resets[0].json.roomId, r);
    assert.equal(resets[0].id, undefined, 'reset carries no id');
    const msgs = evs.filter((e) => e.event === 'message');
    assert.deepEqual(msgs.map((e) => e.id), [smallId], 'the room with the gap replays nothing; the other room replays its missed message');

    // live messages still flow on this stream
    const live = (await api.publish(r, { text: 'live after reset' })).json.id;
    await s.waitFor(() => s.events().some((e) => e.id === live));
    s.close();
    assert.ok(floodMs < 10000, `1000 API publishes took ${floodMs} ms`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('SSE keep-alive (--sse-ping-interval 150)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--api-key', KEY, '--sse-ping-interval', '150'] }); });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllStreams(); closeAll(); });

  it('sends `:ping` comments at the configured interval on an idle stream', async () => {
    const s = await rawStream(eventsUrl(srv.url, { rooms: 'idle' }), { headers: bearer(token('alice')) });
    await s.waitFor(/event: connected/);
    const connectedAt = s.chunks[0].at;
    await s.waitFor(() => (s.text.match(/^:ping$/gm) || []).length >= 4, 3000);
    const pingChunks = s.chunks.filter((c) => c.text.includes(':ping'));
    // each ping is a comment line of its own followed by a blank line
    for (const c of pingChunks) assert.match(c.text, /^(:ping\n\n)+$/, JSON.stringify(c.text));
    // on average one per interval: a late read can only make the average longer, never shorter
    const pings = (s.text.match(/^:ping$/gm) || []).length;
    const average = (pingChunks.at(-1).at - connectedAt) / pings;
    assert.ok(average >= 120, `pings are not faster than the interval: ${pings} in ${pingChunks.at(-1).at - connectedAt} ms`);
    assert.ok(average <= 750, `pings keep coming at about the interval: ${pings} in ${pingChunks.at(-1).at - connectedAt} ms`);
    // the comments are not events
    assert.deepEqual(s.events().filter((e) => !e.comment).map((e) => e.event), ['connected']);
  });

  it('an EventSource stays open across pings and keeps receiving events', async () => {
    const sse = await sseClient(eventsUrl(srv.url), { token: token('pinged') });
    await sleep(600);
    const api = apiClient(srv.url, KEY);
    assert.deepEqual((await api.notify('pinged', { data: 'after pings' })).json, { delivered: 1 });
    assert.equal((await sse.log.next('notification')).data, 'after pings');
    assert.equal(sse.requests.length, 1, 'no reconnect');
    assert.equal(sse.errors.length, 0, JSON.stringify(sse.errors));
    assert.equal(sse.es.readyState, 1);
  });
});

// ---------------------------------------------------------------------------------------------

describe('server HTTP API', () => {
  let srv;
  let api;
  before(async () => {
    srv = await startServer({ args: ['--api-key', KEY] });
    api = apiClient(srv.url, KEY);
  });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllStreams(); closeAll(); });

  const ENDPOINTS = [
    ['GET', '/api/rooms', undefined],
    ['GET', '/api/rooms/lobby/presence', undefined],
    ['POST', '/api/rooms/lobby/messages', { text: 'x' }],
    ['POST', '/api/users/alice/notify', { data: 1 }],
    ['POST', '/api/users/alice/disconnect', undefined],
  ];

  it('refuses a missing or wrong key with 401 UNAUTHORIZED on every endpoint', async () => {
    for (const [method, path, body] of ENDPOINTS) {
      const missing = await api.call(method, path, body, { key: null });
      assertHttpError(missing, 401, 'UNAUTHORIZED', /API key/, `${method} ${path} without a key`);
      for (const [what, key, headers] of [
        ['wrong key', 'not-the-key', {}],
        ['key with a suffix', `${KEY}x`, {}],
        ['key prefix', KEY.slice(0, -1), {}],
        ['a user JWT', token('alice'), {}],
        ['Basic scheme', null, { Authorization: `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}` }],
      ]) {
        const res = await api.call(method, path, body, { key, headers });
        assertHttpError(res, 401, 'UNAUTHORIZED', /API key/, `${method} ${path} with ${what}`);
      }
    }
    const ok = await api.rooms();
    assert.equal(ok.status, 200, ok.text);
  });

  it('a refused request has no effect', async () => {
    const r = room('refused');
    const sse = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('victim') });
    assert.equal((await api.publish(r, { text: 'forged' }, { key: 'wrong' })).status, 401);
    assert.equal((await api.notify('victim', { data: 'forged' }, { key: 'wrong' })).status, 401);
    assert.equal((await api.disconnect('victim', { key: null })).status, 401);
    const res = await api.publish(r, { text: 'genuine' });
    assert.equal(res.status, 200);
    const first = await sse.log.next('message');
    assert.equal(first.data.text, 'genuine');
    assert.equal(sse.log.all('notification').length, 0);
    assert.equal(sse.es.readyState, 1, 'still connected');
    assert.equal(sse.requests.length, 1);
  });

  it('refuses malformed bodies and bad fields with 400 INVALID_MESSAGE', async () => {
    const r = room('bad');
    const cases = [
      ['not JSON', { raw: '{"text":' }, /JSON/],
      ['empty body', { raw: '' }, /JSON/],
      ['plain text', { raw: 'hello', headers: { 'content-type': 'text/plain' } }, /JSON/],
      ['a JSON array', { raw: '["hi"]' }],
      ['a JSON string', { raw: '"hi"' }],
      ['no text', { body: {} }],
      ['text is a number', { body: { text: 5 } }],
      ['text is null', { body: { text: null } }],
      ['text is an object', { body: { text: { a: 1 } } }],
      ['empty text', { body: { text: '' } }],
      ['whitespace text', { body: { text: '   \n' } }],
      ['4001 characters', { body: { text: 'x'.repeat(4001) } }, /4000/],
      ['userId not a string', { body: { text: 'hi', userId: 5 } }],
    ];
    for (const [what, { raw, body, headers }, message] of cases) {
      const res = await api.call('POST', `/api/rooms/${r}/messages`, body, { raw, headers });
      assertHttpError(res, 400, 'INVALID_MESSAGE', message, `publish ${what}`);
    }
    for (const [what, { raw, body }, message] of [
      ['not JSON', { raw: 'nope' }, /JSON/],
      ['empty event', { body: { event: '', data: 1 } }, /event/],
      ['event of 129 characters', { body: { event: 'e'.repeat(129), data: 1 } }, /event/],
      ['event is a number', { body: { event: 5, data: 1 } }],
    ]) {
      const res = await api.call('POST', '/api/users/alice/notify', body, { raw });
      assertHttpError(res, 400, 'INVALID_MESSAGE', message, `notify ${what}`);
    }
    // none of these reached history
    const reader = await user(srv.url, 'reader', 'Reader', r);
    assert.deepEqual((await request(reader.s, 'getHistory', { roomId: r })).messages, []);

    // the limits are in characters: 4000 of them pass, even outside the BMP
    assert.equal((await api.publish(r, { text: 'x'.repeat(4000) })).status, 200);
    const emoji = await api.publish(r, { text: '😀'.repeat(4000) });
    assert.equal(emoji.status, 200, emoji.text);
    assert.equal((await api.call('POST', '/api/users/alice/notify', { event: 'e'.repeat(128), data: 1 })).status, 200);
  });

  it('refuses bad rooms with 400 INVALID_ROOM', async () => {
    for (const [what, r] of [
      ['a personal room', 'user:bob'],
      ['129 characters', 'r'.repeat(129)],
      ['a control character', 'a\u0001b'],
    ]) {
      const res = await api.publish(r, { text: 'hi' });
      assertHttpError(res, 400, 'INVALID_ROOM', undefined, what);
    }
  });

  it('refuses a body over 64 KiB with 413', async () => {
    const res = await api.call('POST', '/api/rooms/lobby/messages', undefined, { raw: JSON.stringify({ text: 'x'.repeat(70 * 1024) }) });
    assert.equal(res.status, 413, res.text);
    assert.ok(res.json && typeof res.json.message === 'string', `a JSON error body: ${res.text}`);
    const notify = await api.call('POST', '/api/users/alice/notify', undefined, { raw: JSON.stringify({ data: 'x'.repeat(65 * 1024) }) });
    assert.equal(notify.status, 413, notify.text);
    // just under the limit is read (and then judged on its fields)
    const under = await api.call('POST', '/api/users/alice/notify', undefined, { raw: JSON.stringify({ data: 'x'.repeat(60 * 1024) }) });
    assert.equal(under.status, 200, under.text);
  });

  it('answers unknown endpoints and wrong methods with 404 NOT_FOUND', async () => {
    for (const [method, path] of [
      ['GET', '/api/nope'],
      ['GET', '/api'],
      ['GET', '/api/'],
      ['POST', '/api/rooms'],
      ['GET', '/api/rooms/lobby'],
      ['GET', '/api/rooms/lobby/messages'],
      ['DELETE', '/api/rooms/lobby/presence'],
      ['GET', '/api/users/alice/notify'],
      ['POST', '/api/users/alice'],
      ['POST', '/api/users/alice/notify/extra'],
    ]) {
      const res = await api.call(method, path, method === 'POST' ? { text: 'x' } : undefined);
      assertHttpError(res, 404, 'NOT_FOUND', undefined, `${method} ${path}`);
    }
  });

  it('publish: stored in history, delivered to Socket.IO members and SSE clients; returns {id, timestamp}', async () => {
    const r = room('publish');
    const alice = await user(srv.url, 'alice', 'Alice', r);
    const bob = await user(srv.url, 'bob', 'Bob', r);
    const outsider = await user(srv.url, 'zed', 'Zed');
    const sse = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('dash') });

    const res = await api.publish(r, { text: 'deploy finished', userId: 'ci', username: 'CI bot' });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    assert.deepEqual(Object.keys(res.json).sort(), ['id', 'timestamp']);
    assert.match(res.json.timestamp, ISO_MS);
    const expected = { id: res.json.id, roomId: r, text: 'deploy finished', userId: 'ci', username: 'CI bot', timestamp: res.json.timestamp };

    for (const u of [alice, bob]) {
      const [m] = await u.rec.next('message');
      assert.deepEqual(m, expected);
    }
    const ev = await sse.log.next('message');
    assert.deepEqual(ev.data, expected);
    assert.equal(ev.id, res.json.id);

    // without userId/username it speaks as "api"
    const anon = await api.publish(r, { text: 'anonymous' });
    const [m2] = await alice.rec.next('message', { filter: (m) => m.id === anon.json.id });
    assertMessage(m2, { roomId: r, text: 'anonymous', userId: 'api', username: 'api' });
    // a username without userId keeps the default id
    const named = await api.publish(r, { text: 'named', username: 'Release' });
    const [m3] = await alice.rec.next('message', { filter: (m) => m.id === named.json.id });
    assert.equal(m3.username, 'Release');

    // one history with the Socket.IO messages, in order
    const sent = await request(bob.s, 'sendMessage', { roomId: r, text: 'thanks' });
    const { messages } = await request(alice.s, 'getHistory', { roomId: r });
    assert.deepEqual(messages.map((m) => m.id), [res.json.id, anon.json.id, named.json.id, sent.id]);
    assert.deepEqual(messages[0], expected);

    // a room with nobody in it: stored for whoever joins later
    const empty = room('empty');
    const later = await api.publish(empty, { text: 'for later' });
    assert.equal(later.status, 200);
    await request(outsider.s, 'joinRoom', empty);
    const hist = await request(outsider.s, 'getHistory', { roomId: empty });
    assert.deepEqual(hist.messages.map((m) => m.text), ['for later']);
    assert.equal(outsider.rec.all('message').length, 0, 'non-members got nothing');
  });

  it('room names are percent-decoded from the path (spaces, slashes, unicode)', async () => {
    for (const name of ['team a', 'a/b', 'café ☕', 'q?x=1#y']) {
      const u = await user(srv.url, 'enc', 'Enc', name);
      const res = await api.publish(name, { text: `to ${name}` });
      assert.equal(res.status, 200, `${name}: ${res.text}`);
      const [m] = await u.rec.next('message');
      assert.equal(m.roomId, name);
      const p = await api.presence(name);
      assert.deepEqual(p.json, { roomId: name, members: [{ userId: 'enc', username: 'Enc' }] }, name);
      u.s.close();
    }
  });

  it('presence and the room list reflect Socket.IO joins and leaves (per user; SSE clients do not count)', async () => {
    const r = room('who');
    assert.deepEqual((await api.presence(r)).json, { roomId: r, members: [] });
    const listed = () => api.rooms().then((res) => {
      assert.equal(res.status, 200, res.text);
      assert.ok(Array.isArray(res.json.rooms), res.text);
      for (const e of res.json.rooms) assert.deepEqual(Object.keys(e).sort(), ['members', 'roomId']);
      return res.json.rooms.find((e) => e.roomId === r);
    });
    assert.equal(await listed(), undefined);

    const a1 = await user(srv.url, 'alice', 'Alice', r);
    const a2 = await user(srv.url, 'alice', 'Alice', r);
    const b = await user(srv.url, 'bob', 'Bob', r);
    await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('dash') });
    assert.deepEqual((await api.presence(r)).json, {
      roomId: r,
      members: [{ userId: 'alice', username: 'Alice' }, { userId: 'bob', username: 'Bob' }],
    });
    assert.deepEqual(await listed(), { roomId: r, members: 2 });

    await request(a1.s, 'leaveRoom', r);
    assert.equal((await api.presence(r)).json.members.length, 2, 'alice is still there in another tab');
    await request(a2.s, 'leaveRoom', r);
    assert.deepEqual((await api.presence(r)).json.members, [{ userId: 'bob', username: 'Bob' }]);
    assert.deepEqual(await listed(), { roomId: r, members: 1 });

    b.s.close();
    const deadline = Date.now() + 2000;
    while ((await api.presence(r)).json.members.length && Date.now() < deadline) await sleep(20);
    assert.deepEqual((await api.presence(r)).json.members, []);
    assert.equal(await listed(), undefined, 'an empty room leaves the list');
  });

  it('disconnect ends every Socket.IO and SSE connection of the user, and only those', async () => {
    const r = room('kick');
    const s1 = await user(srv.url, 'vic', 'Vic', r);
    const s2 = await user(srv.url, 'vic', 'Vic');
    const raw = await rawStream(eventsUrl(srv.url, { rooms: r }), { headers: bearer(token('vic')) });
    await raw.waitFor(/event: connected/);
    const witness = await user(srv.url, 'wit', 'Wit', r);
    const wsse = await sseClient(eventsUrl(srv.url, { rooms: r }), { token: token('wit') });

    const gone1 = once(s1.s, 'disconnect');
    const gone2 = once(s2.s, 'disconnect');
    const res = await api.disconnect('vic');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { disconnected: 3 }, 'two sockets and one SSE stream');
    assert.equal((await gone1)[0], 'io server disconnect');
    assert.equal((await gone2)[0], 'io server disconnect');
    await raw.waitEnd(2000);

    // presence follows; the witness saw vic leave, on both kinds of connection
    const [left] = await witness.rec.next('userLeft');
    assert.deepEqual(left, { roomId: r, userId: 'vic', username: 'Vic' });
    assert.deepEqual((await wsse.log.next('userLeft')).data, { roomId: r, userId: 'vic', username: 'Vic' });
    assert.deepEqual((await api.presence(r)).json.members, [{ userId: 'wit', username: 'Wit' }]);

    // the witness is untouched
    assert.ok(witness.s.connected);
    const after = await api.publish(r, { text: 'after the kick' });
    await witness.rec.next('message', { filter: (m) => m.id === after.json.id });
    assert.equal((await wsse.log.next('message')).data.text, 'after the kick');
    assert.equal(wsse.requests.length, 1);

    assert.deepEqual((await api.disconnect('vic')).json, { disconnected: 0 });
    assert.deepEqual((await api.disconnect('never-connected')).json, { disconnected: 0 });
    // the user may come back (disconnect is not a ban)
    const back = await user(srv.url, 'vic', 'Vic', r);
    assert.ok(back.s.connected);
  });
});

// ---------------------------------------------------------------------------------------------

describe('server HTTP API configuration', () => {
  afterEach(() => { closeAllStreams(); closeAll(); });

  it('without a key the API is off (404 for any request, whatever it presents); SSE still works', async () => {
    const srv = await startServer();
    try {
      for (const key of [null, KEY, '']) {
        const res = await apiClient(srv.url, key).rooms();
        assertHttpError(res, 404, 'NOT_FOUND', undefined, `key ${key}`);
      }
      const pub = await apiClient(srv.url, KEY).publish('lobby', { text: 'hi' });
      assertHttpError(pub, 404, 'NOT_FOUND');
      const sse = await sseClient(eventsUrl(srv.url, { rooms: 'lobby' }), { token: token('alice') });
      assert.equal(typeof sse.connected.data.clientId, 'string');
      sse.close();
    } finally {
      await srv.stop();
    }
  });

  it('SWITCHBOARD_API_KEY sets the key', async () => {
    const srv = await startServer({ env: { SWITCHBOARD_API_KEY: 'from-the-env' } });
    try {
      assert.equal((await apiClient(srv.url, 'from-the-env').rooms()).status, 200);
      assertHttpError(await apiClient(srv.url, KEY).rooms(), 401, 'UNAUTHORIZED');
    } finally {
      await srv.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('SSE room access with --room-policy claims', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--room-policy', 'claims', '--api-key', KEY] }); });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllStreams(); closeAll(); });

  it('subscribes to rooms the token\'s `rooms` claim allows and refuses others with 403 naming the room', async () => {
    const tok = token('cleo', { rooms: ['team-*', 'lobby'] });
    const ok = await sseClient(eventsUrl(srv.url, { rooms: 'team-a,lobby' }), { token: tok });
    assert.equal(typeof ok.connected.data.clientId, 'string');

    const res = await eventsRequest(eventsUrl(srv.url, { rooms: 'team-a,secret,lobby' }), bearer(tok));
    assertHttpError(res, 403, 'ACCESS_DENIED', 'You may not join secret');
    const q = await eventsRequest(eventsUrl(srv.url, { rooms: 'secret', token: tok }));
    assertHttpError(q, 403, 'ACCESS_DENIED', 'You may not join secret');

    // no claim at all: every room is refused under this policy (no rooms is fine)
    const bare = token('dan');
    assertHttpError(await eventsRequest(eventsUrl(srv.url, { rooms: 'lobby' }), bearer(bare)), 403, 'ACCESS_DENIED', 'You may not join lobby');
    const noRooms = await sseClient(eventsUrl(srv.url), { token: bare });
    assert.equal(typeof noRooms.connected.data.clientId, 'string');

    const refused = await refusedEventSource(eventsUrl(srv.url, { rooms: 'secret' }), { token: tok });
    assert.equal(refused.code, 403);
    assert.equal(refused.readyState, 2, 'EventSource gives up on 403');

    // the refused requests left no subscription: only `ok` hears cleo's notifications
    const api = apiClient(srv.url, KEY);
    assert.deepEqual((await api.notify('cleo', { data: 1 })).json, { delivered: 1 });
    const pub = await api.publish('secret', { text: 'classified' });
    assert.equal(pub.status, 200);
    await syncSse(api, ok, 'lobby');
    assert.equal(ok.log.all('message', (m) => m.roomId === 'secret').length, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Known server bugs. Each test states the expected behaviour and is marked `todo` so the run
// stays green while the bug is open: it still runs and prints its failure. Drop the `todo` when
// the bug is fixed in core/.

describe('regressions found by this suite', () => {
  let srv;
  let api;
  before(async () => {
    srv = await startServer({ args: ['--api-key', KEY] });
    api = apiClient(srv.url, KEY);
  });
  after(() => srv && srv.stop());
  afterEach(() => { closeAllStreams(); closeAll(); });

  it('a "+" in the API path is a plus, not a space', async () => {
    const r = `c++-${++roomSeq}`;
    const u = await user(srv.url, 'plus', 'Plus', r);
    const res = await api.call('POST', `/api/rooms/${r}/messages`, { text: 'raw plus' });
    assert.equal(res.status, 200, res.text);
    const [m] = await u.rec.next('message', { timeout: 1000 });
    assert.equal(m.roomId, r);
    const p = await api.call('GET', `/api/rooms/${r}/presence`);
    assert.deepEqual(p.json.members, [{ userId: 'plus', username: 'Plus' }]);
  });

  it('?rooms= naming a room twice replays each missed message once', async () => {
    const r = room('dup');
    const seen = (await api.publish(r, { text: 'seen' })).json.id;
    const missed = (await api.publish(r, { text: 'missed' })).json.id;
    const s = await rawStream(eventsUrl(srv.url, { rooms: `${r},${r}`, lastEventId: seen }), { headers: bearer(token('dup')) });
    await s.waitFor(() => s.events().some((e) => e.id === missed));
    await sleep(150);
    assert.deepEqual(s.events().filter((e) => e.event === 'message').map((e) => e.id), [missed]);
  });

  it('a notify event name with a line break is refused (it would inject SSE fields)', async () => {
    const s = await rawStream(eventsUrl(srv.url), { headers: bearer(token('inj')) });
    await s.waitFor(/event: connected/);
    const res = await api.notify('inj', { event: 'x\ndata: injected\nid: 999', data: { a: 1 } });
    await sleep(150);
    assert.ok(!/^id: 999$/m.test(s.text), `the stream carries an injected id line: ${JSON.stringify(s.text)}`);
    assertHttpError(res, 400, 'INVALID_MESSAGE');
  });

  it('a body over 64 KiB gets a string error code like every other API error', async () => {
    const res = await api.call('POST', '/api/rooms/lobby/messages', undefined, { raw: JSON.stringify({ text: 'x'.repeat(70 * 1024) }) });
    assert.equal(res.status, 413);
    assert.equal(typeof res.json.code, 'string', res.text);
  });
});
