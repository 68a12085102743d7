'use strict';
// Issue 16, chat side: typing floods (rate limited, one auto-stop timer per user and room, not
// a task per frame), SSE streams capped in rooms, and the history cache bounded in rooms and
// backed by --data-dir.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startServer } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const {
  sleep, connect, once, userSocket, closeAll, request, recorder, AckError,
} = require('../helpers/client');
const { getMetrics, metricValue } = require('../helpers/raw');
const { closeAllStreams, sseClient, eventsUrl } = require('../helpers/sse');

let roomSeq = 0;
const room = (prefix = 'room') => `${prefix}-${++roomSeq}`;

async function user(url, sub, roomId) {
  const s = await userSocket(url, sub, { username: sub });
  const rec = recorder(s);
  if (roomId) {
    await request(s, 'joinRoom', roomId);
    await rec.next('roomMembers', { filter: (m) => m.roomId === roomId });
  }
  return { s, rec };
}

async function runtimeTasks(url) {
  const { text } = await getMetrics(url);
  const n = metricValue(text, 'switchboard_runtime_tasks');
  assert.equal(typeof n, 'number', 'switchboard_runtime_tasks is exported');
  return n;
}

// ---------------------------------------------------------------------------------------------

describe('typing without a rate limit (--rate-limit 0 --typing-timeout 1000)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--rate-limit', '0', '--typing-timeout', '1000'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('20,000 startTyping frames keep one timer: runtime tasks stay flat, one start and one stop are announced', { timeout: 30000 }, async () => {
    const r = room('typing');
    const alice = await user(srv.url, 'alice', r);
    const bob = await user(srv.url, 'bob', r);
    const baseline = await runtimeTasks(srv.url);
    let peak = baseline;
    const BATCH = 500;
    for (let sent = 0; sent < 20000; sent += BATCH) {
      for (let i = 0; i < BATCH - 1; i++) alice.s.emit('startTyping', r);
      // The acked last one of each batch: the server handled everything before it.
      await request(alice.s, 'startTyping', r);
      peak = Math.max(peak, await runtimeTasks(srv.url));
    }
    console.log(`# typing flood: runtime tasks ${baseline} before, ${peak} at the peak`);
    // Before the fix each frame spawned a task sleeping for the typing timeout.
    assert.ok(peak - baseline < 50, `runtime tasks grew from ${baseline} to ${peak}`);
    const [stopped] = await bob.rec.next('typing', { filter: (t) => t.isTyping === false, timeout: 4000 });
    assert.equal(stopped.userId, 'alice');
    const starts = bob.rec.all('typing').filter(([t]) => t.isTyping === true);
    assert.equal(starts.length, 1, 'the others hear one start');
    // The timer re-armed: a start after the stop is announced again and stops again.
    await request(alice.s, 'startTyping', r);
    await bob.rec.next('typing', { filter: (t) => t.isTyping === true });
    await request(alice.s, 'stopTyping', r);
    await bob.rec.next('typing', { filter: (t) => t.isTyping === false });
    await sleep(1500);
    assert.ok(await runtimeTasks(srv.url) - baseline < 5, 'the timer ended');
  });
});

describe('typing is rate limited (--rate-limit 5 --rate-burst 5)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--rate-limit', '5', '--rate-burst', '5'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('30 rapid startTyping/stopTyping with callbacks: the burst passes, the rest get RATE_LIMITED', async () => {
    const r = room('typing');
    const alice = await user(srv.url, 'alice', r);
    await sleep(1100);
    const settled = await Promise.allSettled(Array.from({ length: 30 }, (_, i) =>
      request(alice.s, i % 2 ? 'stopTyping' : 'startTyping', r)));
    const ok = settled.filter((x) => x.status === 'fulfilled').length;
    const limited = settled.filter((x) => x.status === 'rejected');
    for (const f of limited) {
      assert.ok(f.reason instanceof AckError, String(f.reason));
      assert.equal(f.reason.code, 'RATE_LIMITED');
    }
    assert.ok(ok >= 1 && ok <= 10, `${ok} of 30 passed`);
    assert.ok(limited.length >= 20, `${limited.length} were RATE_LIMITED`);
  });

  it('getHistory shares the budget: 30 rapid requests, the rest get RATE_LIMITED', async () => {
    const r = room('history');
    const alice = await user(srv.url, 'alice', r);
    await sleep(1100);
    const settled = await Promise.allSettled(Array.from({ length: 30 }, () =>
      request(alice.s, 'getHistory', { roomId: r })));
    const ok = settled.filter((x) => x.status === 'fulfilled').length;
    const limited = settled.filter((x) => x.status === 'rejected' && x.reason.code === 'RATE_LIMITED').length;
    assert.ok(ok >= 1 && ok <= 10, `${ok} of 30 passed`);
    assert.equal(ok + limited, 30, 'the others were RATE_LIMITED');
  });

  it('a sustained startTyping flood without callbacks: error {code: RATE_LIMITED}, then a disconnect', { timeout: 20000 }, async () => {
    const r = room('typing');
    const alice = await user(srv.url, 'alice', r);
    const disconnected = new Promise((resolve) => alice.s.once('disconnect', resolve));
    const t0 = Date.now();
    while (alice.s.connected && Date.now() - t0 < 12000) {
      for (let i = 0; i < 10; i++) alice.s.emit('startTyping', r);
      await sleep(50);
    }
    const reason = await Promise.race([disconnected, sleep(1000).then(() => null)]);
    assert.ok(reason !== null, `disconnected after flooding for ${Date.now() - t0} ms`);
    const errors = alice.rec.all('error');
    assert.ok(errors.length >= 1, 'an `error` event came first');
    assert.equal(errors[0][0].code, 'RATE_LIMITED');
  });
});

// ---------------------------------------------------------------------------------------------

describe('SSE ?rooms= is capped at max_rooms_per_connection', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());
  afterEach(closeAllStreams);

  async function get(rooms) {
    const url = eventsUrl(srv.url, { rooms, token: token('alice') });
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
      await res.body.cancel();
      return { status: res.status };
    }
    return { status: res.status, json: await res.json() };
  }

  it('101 rooms: 400 {code: TOO_MANY_ROOMS}; 100 rooms and duplicates are fine', async () => {
    const names = Array.from({ length: 101 }, (_, i) => `sse-cap-${i}`);
    const refused = await get(names);
    assert.equal(refused.status, 400);
    assert.deepEqual(refused.json, { code: 'TOO_MANY_ROOMS', message: 'At most 100 rooms per stream' });
    assert.equal((await get(names.slice(0, 100))).status, 200);
    // Duplicates count once (and cost no quadratic check).
    const dup = Array.from({ length: 1200 }, (_, i) => names[i % 100]);
    const t0 = Date.now();
    assert.equal((await get(dup)).status, 200);
    assert.ok(Date.now() - t0 < 2000, `1200 names took ${Date.now() - t0} ms`);
  });

  it('1,500 distinct rooms are refused before any stream opens; 11,000 do not fit a request head', async () => {
    // Short names, so the URL stays within the 16 KiB request head limit.
    const names = Array.from({ length: 1500 }, (_, i) => i.toString(36));
    const res = await get(names);
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'TOO_MANY_ROOMS');
    const huge = await fetch(eventsUrl(srv.url, { rooms: Array.from({ length: 11000 }, (_, i) => i.toString(36)), token: token('alice') }));
    await huge.arrayBuffer();
    assert.equal(huge.status, 431);
  });

  it('a stream with 100 rooms still gets messages', async () => {
    const names = Array.from({ length: 100 }, (_, i) => `sse-live-${i}`);
    const sse = await sseClient(eventsUrl(srv.url, { rooms: names, token: token('bob') }));
    const alice = await user(srv.url, 'alice', names[99]);
    await request(alice.s, 'sendMessage', { roomId: names[99], text: 'hi' });
    const m = await sse.log.next('message');
    assert.equal(m.data.text, 'hi');
  });
});

// ---------------------------------------------------------------------------------------------

describe('history cache bounded in rooms (--history-cache-rooms 2)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-hist-'));
  let disk;
  let memory;
  before(async () => {
    disk = await startServer({ args: ['--history-cache-rooms', '2', '--data-dir', dir] });
    memory = await startServer({ args: ['--history-cache-rooms', '2'] });
  });
  after(() => {
    disk && disk.stop();
    memory && memory.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(closeAll);

  async function fill(url) {
    const rooms = [room('h'), room('h'), room('h')];
    const alice = await user(url, 'alice');
    for (const r of rooms) {
      await request(alice.s, 'joinRoom', r);
      for (let i = 0; i < 3; i++) await request(alice.s, 'sendMessage', { roomId: r, text: `${r} ${i}` });
      await request(alice.s, 'getHistory', { roomId: r });
    }
    return { alice, rooms };
  }

  it('with --data-dir an evicted room reloads its history from the store', async () => {
    const { alice, rooms } = await fill(disk.url);
    for (const r of [rooms[0], rooms[1], rooms[2], rooms[0]]) {
      const { messages } = await request(alice.s, 'getHistory', { roomId: r });
      assert.deepEqual(messages.map((m) => m.text), [`${r} 0`, `${r} 1`, `${r} 2`], r);
    }
  });

  it('without a data directory the evicted room\'s history is gone (documented)', async () => {
    const { alice, rooms } = await fill(memory.url);
    const { messages } = await request(alice.s, 'getHistory', { roomId: rooms[0] });
    assert.deepEqual(messages, [], 'the least recently used room was evicted');
    const last = await request(alice.s, 'getHistory', { roomId: rooms[2] });
    assert.equal(last.messages.length, 3);
  });
});

// ---------------------------------------------------------------------------------------------

describe('signals are not kept for connection state recovery', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('a signal sent while the peer was away is not replayed when it recovers; the room message is', { timeout: 15000 }, async () => {
    const r = room('recover');
    const a = connect(srv.url, {
      reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200,
      auth: { token: token('alice', { username: 'alice' }) },
    });
    const ra = recorder(a);
    await a.ready;
    await request(a, 'joinRoom', r);
    const bob = await user(srv.url, 'bob', r);
    await request(bob.s, 'sendMessage', { roomId: r, text: 'before the drop' });
    await ra.next('message', { filter: (m) => m.text === 'before the drop' });
    await request(bob.s, 'signal', { toUserId: 'alice', data: { n: 'live' } });
    await ra.next('signal');

    const dropped = once(a, 'disconnect', 3000);
    a.io.engine.close();
    await dropped;
    const back = once(a, 'connect', 5000);
    // Whatever bob hears (NOT_REACHABLE while alice has no connection), it must not reach
    // alice later from the log.
    await request(bob.s, 'signal', { toUserId: 'alice', data: { n: 'stale', blob: 'x'.repeat(60000) } }).catch(() => {});
    await request(bob.s, 'sendMessage', { roomId: r, text: 'missed while away' });
    await back;
    assert.equal(a.recovered, true, 'socket.recovered');
    await ra.next('message', { filter: (m) => m.text === 'missed while away' });
    await request(bob.s, 'sendMessage', { roomId: r, text: 'after the return' });
    await ra.next('message', { filter: (m) => m.text === 'after the return' });
    const signals = ra.all('signal').map(([sig]) => sig.data.n);
    assert.deepEqual(signals, ['live'], 'the stale signal was not replayed');
  });
});
