'use strict';
// Issue 3, limits: rate limits and flooding, a reader that never reads (bounded outbound queue),
// history and room-count caps, and malformed input of every kind (never a crash or a stuck
// connection).

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { startServer, rssBytes } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const {
  sleep, userSocket, closeAll, once, request, requestWithin, expectError, recorder, ackOrSilence,
  assertErrorShape, emitAckWithin, AckError, safeJson, ERROR_CODES,
} = require('../helpers/client');
const {
  rawWs, closedWithin, engineOpen, rawSocketIO, pollingHandshake, pollingUrl, getMetrics, metricValue,
} = require('../helpers/raw');

let roomSeq = 0;
const room = (prefix = 'room') => `${prefix}-${++roomSeq}`;

async function user(url, sub, username, roomId, opts = {}) {
  const s = await userSocket(url, sub, { username, ...opts });
  const rec = recorder(s);
  if (roomId) {
    await request(s, 'joinRoom', roomId);
    await rec.next('roomMembers', { filter: (m) => m.roomId === roomId });
  }
  return { s, rec };
}

/** Settles `n` requests made by `make(i)` at once; returns [{ok, value|err}]. */
async function burst(n, make) {
  const settled = await Promise.allSettled(Array.from({ length: n }, (_, i) => make(i)));
  return settled.map((r) => (r.status === 'fulfilled' ? { ok: true, value: r.value } : { ok: false, err: r.reason }));
}

function assertRateLimited(results, what) {
  const ok = results.filter((r) => r.ok).length;
  const failed = results.filter((r) => !r.ok);
  for (const f of failed) {
    assert.ok(f.err instanceof AckError, `${what}: a failure is an error ack, not ${f.err && f.err.message}`);
    assertErrorShape(f.err.raw, `${what}: `);
    assert.equal(f.err.code, 'RATE_LIMITED', `${what}: ${safeJson(f.err.raw)}`);
  }
  assert.ok(results[0].ok, `${what}: the first request is within the burst`);
  assert.ok(ok >= 1 && ok <= 10, `${what}: ${ok} of ${results.length} passed (burst 5, 5/s)`);
  assert.ok(failed.length >= 15, `${what}: ${failed.length} were RATE_LIMITED`);
}

/** The server process is alive and serving: /healthz, and a new client can connect and join. */
async function assertServing(srv, context = '') {
  assert.equal(srv.exited, false, `${context}server process exited\n${srv.stderr}`);
  const res = await fetch(`${srv.url}/healthz`);
  await res.arrayBuffer();
  assert.equal(res.status, 200, `${context}/healthz`);
  const { raw } = await rawSocketIO(srv.url, token('prober'));
  try {
    raw.send('4291["joinRoom","probe-room"]');
    await raw.next((d) => typeof d === 'string' && d.startsWith('4391'), 3000);
  } finally { raw.close(); }
}

// ---------------------------------------------------------------------------------------------

describe('rate limits (--rate-limit 5 --rate-burst 5)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--rate-limit', '5', '--rate-burst', '5'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('30 rapid sendMessage: the burst passes, the rest get RATE_LIMITED; tokens refill', async () => {
    const r = room();
    const alice = await user(srv.url, 'alice', 'Alice');
    await request(alice.s, 'joinRoom', r);
    await sleep(1100); // let the join's token come back
    const results = await burst(30, (i) => request(alice.s, 'sendMessage', { roomId: r, text: `flood ${i}` }));
    assertRateLimited(results, 'sendMessage');
    await sleep(300);
    assert.equal(alice.s.connected, true, 'a short burst does not disconnect');
    const delivered = alice.rec.all('message').length;
    assert.equal(delivered, results.filter((x) => x.ok).length, 'only accepted messages are delivered');
    await sleep(1000);
    await request(alice.s, 'sendMessage', { roomId: r, text: 'after the refill' });
  });

  it('joinRoom is rate limited too', async () => {
    const alice = await user(srv.url, 'alice', 'Alice');
    const results = await burst(30, (i) => request(alice.s, 'joinRoom', room(`j${i}`)));
    assertRateLimited(results, 'joinRoom');
  });

  it('signal is rate limited too', async () => {
    const r = room();
    const alice = await user(srv.url, 'alice', 'Alice', r);
    await user(srv.url, 'bob', 'Bob', r);
    await sleep(1100);
    const results = await burst(30, (i) => request(alice.s, 'signal', { toUserId: 'bob', data: { i } }));
    assertRateLimited(results, 'signal');
  });

  it('sustained flooding ends with error {code: RATE_LIMITED} and a disconnect', { timeout: 20000 }, async () => {
    const r = room();
    const alice = await user(srv.url, 'alice', 'Alice', r);
    const order = [];
    alice.s.on('error', () => order.push('error'));
    const disconnected = new Promise((resolve) => alice.s.once('disconnect', (reason) => {
      order.push('disconnect');
      resolve(reason);
    }));
    const t0 = Date.now();
    let sent = 0;
    while (alice.s.connected && Date.now() - t0 < 12000) {
      for (let i = 0; i < 10; i++) alice.s.emit('sendMessage', { roomId: r, text: `spam ${sent++}` }, () => {});
      await sleep(50);
    }
    const reason = await Promise.race([disconnected, sleep(1000).then(() => null)]);
    const elapsed = Date.now() - t0;
    assert.ok(reason !== null, `disconnected after flooding for ${elapsed} ms (${sent} messages)`);
    assert.ok(elapsed >= 1000, `not disconnected at the first excess (after ${elapsed} ms)`);
    const errors = alice.rec.all('error');
    assert.ok(errors.length >= 1, 'an `error` event came first');
    const [e] = errors[0];
    assert.equal(e.code, 'RATE_LIMITED');
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0);
    assert.equal(order[0], 'error', `error before disconnect: ${order.join(', ')}`);
    console.log(`# flood: disconnected after ${elapsed} ms, ${sent} messages sent, reason ${reason}`);
    await assertServing(srv);
  });
});

// ---------------------------------------------------------------------------------------------

describe('bulk server (--rate-limit 0 --outbound-queue-frames 256)', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--rate-limit', '0', '--outbound-queue-frames', '256'] });
  });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('a reader that never reads is disconnected; the others get everything; memory stays bounded', { timeout: 90000 }, async () => {
    const r = 'flooded-room';
    const N = 3000;
    const TEXT_LEN = 3900;
    const WINDOW = 16;

    // the slow reader: handshake by hand, join, then stop reading
    const slow = await rawSocketIO(srv.url, token('slowpoke', { username: 'Slowpoke' }));
    slow.raw.send('420["joinRoom","flooded-room"]');
    await slow.raw.next((d) => typeof d === 'string' && d.startsWith('430'));
    slow.raw.ws._socket.pause();

    const member = await user(srv.url, 'member', 'Member', r);
    const pub = await user(srv.url, 'publisher', 'Publisher', r);
    let received = 0;
    let outOfOrder = null;
    member.s.on('message', (m) => {
      if (m.roomId !== r) return;
      const k = Number(m.text.slice(0, m.text.indexOf(':')));
      if (k !== received && !outOfOrder) outOfOrder = `expected #${received}, got #${k}`;
      received++;
    });

    const rssBefore = rssBytes(srv.pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      const v = rssBytes(srv.pid);
      if (v > rssPeak) rssPeak = v;
    }, 100);
    const t0 = Date.now();
    try {
      for (let i = 0; i < N; i += WINDOW) {
        const batch = [];
        for (let k = i; k < Math.min(i + WINDOW, N); k++) {
          const head = `${k}:`;
          batch.push(requestWithin(15000, pub.s, 'sendMessage', { roomId: r, text: head + 'x'.repeat(TEXT_LEN - head.length) }));
        }
        await Promise.all(batch);
      }
      const deadline = Date.now() + 30000;
      while (received < N && Date.now() < deadline && !outOfOrder) await sleep(20);
    } finally {
      clearInterval(sampler);
    }
    const rssAfter = rssBytes(srv.pid);
    const mb = (b) => (b / 1048576).toFixed(1);
    console.log(`# rss before=${mb(rssBefore)} MB peak=${mb(rssPeak)} MB after=${mb(rssAfter)} MB ` +
      `(${N} messages of ${TEXT_LEN} chars in ${Date.now() - t0} ms)`);

    assert.equal(outOfOrder, null, 'the normal member receives messages in order');
    assert.equal(received, N, 'the normal member receives every message');
    assert.ok(rssPeak < 200 * 1048576, `server RSS peak ${mb(rssPeak)} MB < 200 MB`);

    let slowMetric = null;
    const deadline = Date.now() + 5000;
    let m;
    for (;;) {
      m = await getMetrics(srv.url);
      slowMetric = metricValue(m.text, 'switchboard_disconnects_total', { reason: 'slow_consumer' });
      if ((slowMetric !== null && slowMetric >= 1) || Date.now() > deadline) break;
      await sleep(100);
    }
    assert.ok(slowMetric !== null && slowMetric >= 1,
      `switchboard_disconnects_total{reason="slow_consumer"} >= 1:\n${m.text}`);

    // the server really closed it: once we read again, the stream ends
    slow.raw.ws._socket.resume();
    assert.ok(await closedWithin(slow.raw, 15000), 'the slow reader was disconnected');
    slow.raw.close();
    await assertServing(srv);
  });

  it('getHistory caps limit at 100 and returns the newest', { timeout: 20000 }, async () => {
    const r = room('long-history');
    const alice = await user(srv.url, 'alice', 'Alice', r);
    for (let i = 0; i < 105; i += 15) {
      await Promise.all(Array.from({ length: Math.min(15, 105 - i) }, (_, k) =>
        request(alice.s, 'sendMessage', { roomId: r, text: `m${i + k}` })));
    }
    const dflt = await request(alice.s, 'getHistory', { roomId: r });
    assert.ok(dflt.messages.length >= 1 && dflt.messages.length <= 100, `default page size ${dflt.messages.length}`);
    assert.equal(dflt.messages[dflt.messages.length - 1].text, 'm104', 'the default page ends with the newest');
    try {
      const big = await request(alice.s, 'getHistory', { roomId: r, limit: 1000 });
      assert.equal(big.messages.length, 100, 'limit is capped at 100');
      assert.deepEqual(big.messages.map((x) => x.text), Array.from({ length: 100 }, (_, k) => `m${k + 5}`));
    } catch (e) {
      if (!(e instanceof AckError)) throw e;
      assertErrorShape(e.raw, 'limit 1000: ');
    }
  });

  it('at most 100 rooms per connection (besides or including the personal room)', { timeout: 20000 }, async () => {
    const alice = await user(srv.url, 'alice', 'Alice');
    const names = Array.from({ length: 101 }, (_, i) => `cap-${i + 1}`);
    for (let i = 0; i < 99; i++) await request(alice.s, 'joinRoom', names[i]);
    try { await request(alice.s, 'joinRoom', names[99]); } catch (e) {
      if (!(e instanceof AckError)) throw e;
      assertErrorShape(e.raw);
    }
    await expectError(request(alice.s, 'joinRoom', names[100]), ERROR_CODES, 'the 101st room');
    await request(alice.s, 'leaveRoom', names[0]);
    await request(alice.s, 'joinRoom', 'cap-after-leave');
  });

  // ---- malformed input through socket.io-client ---------------------------------------------

  it('wrong argument types for every contract event: an error ack or nothing, never a crash', { timeout: 30000 }, async () => {
    const R = room('malformed');
    const alice = await user(srv.url, 'alice', 'Alice', R);
    const bob = await user(srv.url, 'bob', 'Bob', R);
    const huge = 'x'.repeat(100_000);
    // [event, args, okAllowed]
    const cases = [
      ['joinRoom', [], false], ['joinRoom', [null], false], ['joinRoom', [123], false], ['joinRoom', [true], false],
      ['joinRoom', [[]], false], ['joinRoom', [[R]], false], ['joinRoom', [{ roomId: R }], false], ['joinRoom', [huge], false],
      ['leaveRoom', [], false], ['leaveRoom', [null], false], ['leaveRoom', [123], false], ['leaveRoom', [{}], false],
      ['leaveRoom', [[]], false], ['leaveRoom', [huge], false],
      ['sendMessage', [], false], ['sendMessage', [null], false], ['sendMessage', [123], false],
      ['sendMessage', ['text'], false], ['sendMessage', [[]], false], ['sendMessage', [{}], false],
      ['sendMessage', [{ roomId: R }], false], ['sendMessage', [{ roomId: R, text: null }], false],
      ['sendMessage', [{ roomId: R, text: 123 }], false], ['sendMessage', [{ roomId: 123, text: 'a' }], false],
      ['sendMessage', [{ roomId: R, text: ['a'] }], false], ['sendMessage', [{ roomId: [R], text: 'a' }], false],
      ['sendMessage', [{ roomId: R, text: 'x'.repeat(200_000) }], false],
      ['sendMessage', [{ roomId: R, text: { toString: 'a' } }], false],
      ['startTyping', [], true], ['startTyping', [null], true], ['startTyping', [123], true], ['startTyping', [{}], true],
      ['startTyping', [[]], true], ['startTyping', [huge], true],
      ['stopTyping', [], true], ['stopTyping', [null], true], ['stopTyping', [123], true], ['stopTyping', [{}], true],
      ['stopTyping', [huge], true],
      ['getHistory', [], false], ['getHistory', [null], false], ['getHistory', [R], false], ['getHistory', [123], false],
      ['getHistory', [[]], false], ['getHistory', [{}], false], ['getHistory', [{ roomId: 123 }], false],
      ['getHistory', [{ roomId: R, limit: 'x' }], true], ['getHistory', [{ roomId: R, limit: -1 }], true],
      ['getHistory', [{ roomId: R, limit: 1e12 }], true], ['getHistory', [{ roomId: R, limit: 1.5 }], true],
      ['getHistory', [{ roomId: R, before: 123 }], true], ['getHistory', [{ roomId: R, before: 'not-an-id' }], true],
      ['getHistory', [{ roomId: R, before: { $gt: '' } }], true],
      ['signal', [], false], ['signal', [null], false], ['signal', ['bob'], false], ['signal', [123], false],
      ['signal', [[]], false], ['signal', [{}], false], ['signal', [{ toUserId: 123, data: 1 }], false],
      ['signal', [{ toUserId: null, data: 1 }], false], ['signal', [{ toUserId: huge, data: 1 }], false],
      ['signal', [{ toUserId: ['bob'], data: 1 }], false], ['signal', [{ toUserId: 'bob' }], true],
    ];
    const outcomes = await Promise.all(cases.map(([ev, args]) => ackOrSilence(alice.s, 2000, ev, ...args)));
    cases.forEach(([ev, args, okAllowed], i) => {
      const o = outcomes[i];
      const what = `${ev}(${safeJson(args).slice(0, 60)})`;
      if (!o.acked) return; // ignored: fine
      if (o.err === null || o.err === undefined) {
        assert.ok(okAllowed, `${what} must not succeed, got ${safeJson(o.result)}`);
        if (ev === 'getHistory') assert.ok(o.result && Array.isArray(o.result.messages), `${what}: ${safeJson(o.result)}`);
        return;
      }
      assertErrorShape(o.err, `${what}: `);
    });
    const acked = outcomes.filter((o) => o.acked).length;
    console.log(`# malformed arguments: ${acked} of ${cases.length} answered with an ack, the rest ignored`);

    // still connected and working, and nothing leaked to the room
    assert.equal(alice.s.connected, true, 'the connection survived');
    await request(alice.s, 'joinRoom', room('after-malformed'));
    await request(alice.s, 'sendMessage', { roomId: R, text: 'still here' });
    const [m] = await bob.rec.next('message');
    assert.equal(m.text, 'still here', 'no malformed sendMessage was delivered');
    assert.equal(bob.rec.all('typing').length, 0, 'no typing event from malformed arguments');
    await assertServing(srv);
  });

  it('unknown events are ignored; the connection stays up', async () => {
    const alice = await user(srv.url, 'alice', 'Alice');
    alice.s.emit('nonsense', 1, { a: 2 });
    alice.s.emit('joinroom', 'case-matters');
    alice.s.emit('message', { roomId: 'x', text: 'wrong direction' });
    alice.s.emit('__proto__', {});
    alice.s.emit('x'.repeat(10_000), 1);
    alice.s.emit('roomMembers', Buffer.from([1, 2, 3]));
    const o = await ackOrSilence(alice.s, 500, 'nonsense-with-ack', 1);
    if (o.acked) assert.notEqual(o.err, null, 'an unknown event is not acked as a success');
    await sleep(100);
    assert.equal(alice.s.connected, true);
    const r = room();
    await request(alice.s, 'joinRoom', r);
    await alice.rec.next('roomMembers');
  });

  it('a packet over maxPayload (1 MB default) closes that connection or is refused; the server lives', async () => {
    const r = room();
    const alice = await user(srv.url, 'alice', 'Alice', r);
    const outcome = await Promise.race([
      once(alice.s, 'disconnect', 6000).then(() => ({ closed: true }), () => ({ stuck: true })),
      emitAckWithin(6000, alice.s, 'sendMessage', { roomId: r, text: 'x'.repeat(1_100_000) }).then(
        (values) => ({ acked: values }),
        (e) => (/disconnected/.test(e.message) ? { closed: true } : { stuck: true })),
    ]);
    assert.ok(!outcome.stuck, 'a 1.1 MB packet was neither refused nor did it close the connection');
    if (outcome.acked) assertErrorShape(outcome.acked[0], '1.1 MB sendMessage: ');
    await assertServing(srv);
  });

  // ---- malformed input through raw frames ---------------------------------------------------

  const AFTER_CONNECT = [
    'hello', '4', '42[', '42["joinRoom"', '4{}', '42{}', '42"str"', '42[123]', '42[]', '42[null]',
    '42["disconnect"]', '42["connect",{}]', '42["error",{}]',
    '4299999999999999999999["joinRoom","r"]', '42-1["joinRoom","r"]', '43["x"]', '431', '437[null]',
    '44{"message":"x"}', '45', '451-["sendMessage",{"_placeholder":true,"num":5}]',
    '45999999999-["x"]', '46', '47', '48', '4/', '42/nope,["joinRoom","r"]', '41/nope,', '40/nope,{}',
    '40{"token":"again"}', '42' + '['.repeat(100_000), '42["sendMessage",' + '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000) + ']',
    '42["sendMessage",{"roomId":"r","text":"\\ud800"}]', '42["joinRoom","\\u0000"]',
    '', '\u0000', '0', '0{}', '2', '3', '5', '6', '7', '2probe', '3probe', '1',
    Buffer.from([0xff, 0xfe, 0x00, 0x01]), Buffer.alloc(0),
    { text: Buffer.from([0xc3, 0x28]) }, // invalid UTF-8 in a text frame
  ];
  const BEFORE_CONNECT = [
    '4hello', '40{"token":', '40[1,2]', '40"str"', '40null', '40{"token":null}', '40{"token":{"a":1}}', '41', '42["joinRoom","r"]',
    '43', '4' + 'x'.repeat(50_000), Buffer.from([1, 2, 3]),
  ];
  const label = (j) => (Buffer.isBuffer(j) ? `<binary ${j.length}>` : j && j.text ? '<invalid utf-8 text>'
    : JSON.stringify(j.length > 40 ? j.slice(0, 40) + '…' : j));
  const sendJunk = (raw, j) => {
    if (j && j.text) raw.ws.send(j.text, { binary: false });
    else raw.send(j);
  };

  it('raw junk frames after CONNECT: the connection closes or keeps working; the server lives', { timeout: 60000 }, async () => {
    const log = [];
    for (const j of AFTER_CONNECT) {
      const { raw } = await rawSocketIO(srv.url, token('junker'), { answerPings: true });
      try {
        sendJunk(raw, j);
        let closed = await closedWithin(raw, 150);
        if (!closed) {
          raw.send('4277["joinRoom","junk-room"]');
          const answered = await Promise.race([
            raw.next((d) => typeof d === 'string' && d.startsWith('4377'), 2000).then(() => 'works', () => (raw.isClosed ? 'closed' : null)),
            raw.closed.then(() => 'closed'),
          ]);
          assert.ok(answered, `after ${label(j)}: the connection is neither closed nor answering (stuck)`);
          closed = answered === 'closed';
        }
        log.push(`${label(j)}=${closed ? 'closed' : 'ok'}`);
      } finally { raw.close(); }
      await assertServing(srv, `after ${label(j)}: `);
    }
    console.log(`# junk after CONNECT: ${log.join(' ')}`);
  });

  it('raw junk frames before CONNECT: closes or still accepts a CONNECT; the server lives', { timeout: 30000 }, async () => {
    const log = [];
    for (const j of BEFORE_CONNECT) {
      const raw = rawWs(srv.url);
      raw.ws.on('message', (d, bin) => { if (!bin && d.toString() === '2') raw.send('3'); });
      try {
        await engineOpen(raw);
        sendJunk(raw, j);
        let closed = await closedWithin(raw, 150);
        if (!closed) {
          raw.send('40' + JSON.stringify({ token: token('late') }));
          const answered = await Promise.race([
            raw.next((d) => typeof d === 'string' && /^4[04]/.test(d), 2000).then(() => 'works', () => (raw.isClosed ? 'closed' : null)),
            raw.closed.then(() => 'closed'),
          ]);
          assert.ok(answered, `after ${label(j)}: neither closed nor answering a CONNECT (stuck)`);
          closed = answered === 'closed';
        }
        log.push(`${label(j)}=${closed ? 'closed' : 'ok'}`);
      } finally { raw.close(); }
      await assertServing(srv, `after ${label(j)}: `);
    }
    console.log(`# junk before CONNECT: ${log.join(' ')}`);
  });

  it('junk polling bodies: never a 5xx, the server lives', async () => {
    const bodies = ['hello', '\x1e\x1e', 'bAAAA', 'b!!!', '4\x1e', '9', '42[\x1e2', '', '4' + '\x1e'.repeat(1000)];
    for (const body of bodies) {
      const { sid } = await pollingHandshake(srv.url);
      const ok = await fetch(pollingUrl(srv.url, sid), { method: 'POST', body: '40' + JSON.stringify({ token: token('poller') }) });
      await ok.arrayBuffer();
      const res = await fetch(pollingUrl(srv.url, sid), { method: 'POST', body });
      await res.arrayBuffer();
      assert.ok(res.status < 500, `POST ${JSON.stringify(body.slice(0, 20))} -> ${res.status}`);
      await assertServing(srv, `after polling body ${JSON.stringify(body.slice(0, 20))}: `);
    }
  });
});
