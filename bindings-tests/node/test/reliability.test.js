'use strict';
// Faults a server must survive, in their quick, deterministic form (the long version with
// everything at once is `make soak`, bindings-tests/node/soak/soak.js):
// - slowloris: a silent connection, a trickled request head (also a half-sent WebSocket
//   upgrade) and a trickled body are cut off after --request-timeout;
// - an upgrade from polling that sends `2probe` and stops is closed after --upgrade-timeout
//   while its polling session carries on;
// - past --max-connections, new clients get HTTP 503 TOO_MANY_CONNECTIONS (socket.io-client:
//   connect_error) while connected clients keep working;
// - a churn of 1000 connects and disconnects, half abrupt, leaves the connection and socket
//   gauges at 0 and the runtime's task count at its idle value.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const { connect, closeAll, request, once } = require('../helpers/client');
const { rawWs, pollingUrl } = require('../helpers/raw');
const { sleep, gauges, settle, rssMiB, churn, slowloris, httpRequest, pollingRefusal } = require('../helpers/faults');

const REQUEST_TIMEOUT_MS = 1000;
const UPGRADE_TIMEOUT_MS = 1000;

describe('slow and half-finished requests', () => {
  let srv;
  before(async () => {
    srv = await startServer({
      args: ['--request-timeout', String(REQUEST_TIMEOUT_MS), '--upgrade-timeout', String(UPGRADE_TIMEOUT_MS)],
    });
  });
  after(async () => { closeAll(); await srv?.stop(); });

  it('closes slowloris connections after --request-timeout and keeps serving', { timeout: 30000 }, async () => {
    const { sid } = await pollingRefusal(srv.url);
    const cases = await Promise.all([
      slowloris(srv.port, {}),
      slowloris(srv.port, { head: 'GET /healthz HTTP/1.1\r\nHost: x\r\n', trickle: 'X-Slow: 1\r\n' }),
      slowloris(srv.port, {
        head: 'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n',
        trickle: 'X',
      }),
      slowloris(srv.port, {
        head: `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n` +
          'Content-Type: text/plain\r\nContent-Length: 10000\r\n\r\n4',
        trickle: 'x',
      }),
      // Meanwhile the server answers everyone else.
      (async () => {
        await sleep(REQUEST_TIMEOUT_MS / 2);
        const res = await httpRequest(`${srv.url}/healthz`);
        return { healthz: res.status };
      })(),
    ]);
    const [silent, head, upgrade, body, health] = cases;
    assert.equal(health.healthz, 200);
    for (const [name, c] of Object.entries({ silent, head, upgrade, body })) {
      assert.ok(!c.gaveUp, `${name}: the server closed it (${JSON.stringify(c)})`);
      assert.ok(c.closedAfterMs >= REQUEST_TIMEOUT_MS * 0.9, `${name}: not before the timeout (${c.closedAfterMs} ms)`);
    }
    assert.equal(silent.answer, '', 'no answer to a silent connection');
    assert.equal(head.answer, '', 'no answer to an unfinished head');
    assert.equal(upgrade.answer, '', 'no answer to an unfinished upgrade');
    assert.equal(body.answer, 'HTTP/1.1 408 Request Timeout', 'a trickled body gets 408');
  });

  it('closes an upgrade that stops after 2probe; polling carries on', { timeout: 20000 }, async () => {
    const { sid } = await pollingRefusal(srv.url);
    const raw = rawWs(srv.url, { query: `EIO=4&transport=websocket&sid=${sid}` });
    await raw.opened;
    raw.send('2probe');
    assert.equal(await raw.next((d) => d === '3probe'), '3probe');
    const closed = await Promise.race([raw.closed, sleep(REQUEST_TIMEOUT_MS * 10).then(() => null)]);
    assert.ok(closed, 'the server closed the stalled upgrade');
    // The polling session is alive: a POST is accepted and a GET answers.
    const post = await httpRequest(pollingUrl(srv.url, sid), { method: 'POST', body: '2' });
    assert.equal(post.status, 200);
    const poll = await httpRequest(pollingUrl(srv.url, sid));
    assert.equal(poll.status, 200);
    assert.match(poll.body, /(^|\x1e)3/, 'the ping sent by POST is answered by a pong');
  });
});

describe('past --max-connections', () => {
  const MAX = 5;
  let srv;
  before(async () => { srv = await startServer({ args: ['--max-connections', String(MAX)] }); });
  after(async () => { closeAll(); await srv?.stop(); });

  it('refuses new clients with 503 while connected ones keep working', { timeout: 30000 }, async () => {
    const room = 'full-house';
    const members = [];
    for (let i = 0; i < MAX; i++) {
      const s = connect(srv.url, { auth: { token: token(`u${i}`) } });
      await s.ready;
      await request(s, 'joinRoom', room);
      members.push(s);
    }
    const FLOOD = 30;
    const refusals = await Promise.all(Array.from({ length: FLOOD }, (_, i) =>
      i % 2 ? pollingRefusal(srv.url) : new Promise((resolve) => {
        const raw = rawWs(srv.url);
        raw.opened.then(() => resolve({ status: 101 }), (e) => resolve({ status: e.statusCode }));
      })));
    assert.deepEqual(refusals.map((r) => r.status), Array(FLOOD).fill(503));
    assert.ok(refusals.filter((r) => r.code).every((r) => r.code === 'TOO_MANY_CONNECTIONS'));
    const extra = connect(srv.url, { auth: { token: token('late') } });
    await assert.rejects(extra.ready, 'socket.io-client gets connect_error');

    const got = once(members[MAX - 1], 'message');
    await request(members[0], 'sendMessage', { roomId: room, text: 'still here' });
    assert.equal((await got)[0].text, 'still here');
    const g = await gauges(srv.url);
    assert.equal(g.connections, MAX);
    assert.equal(g.refusedMaxConnections, FLOOD + 1);

    members.pop().disconnect();
    await settle(srv.url, (x) => x.connections === MAX - 1, 5000);
    const next = connect(srv.url, { auth: { token: token('next') } });
    await next.ready;
  });
});

describe('connection churn', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--rate-limit', '0', '--presence-grace', '200', '--recovery-window', '1000'] });
  });
  after(async () => { closeAll(); await srv?.stop(); });

  it('1000 connects and disconnects, half abrupt, leave no connection, socket or task behind', { timeout: 120000 }, async (t) => {
    const idle = await gauges(srv.url);
    const rssBefore = rssMiB(srv.pid);
    const counts = await churn(srv.url, token('churner'), { count: 1000, concurrency: 20 });
    assert.deepEqual(counts, { clean: 500, abrupt: 500, refused: 0 });
    const { g, ok } = await settle(srv.url,
      (x) => x.connections === 0 && x.sockets === 0 && x.tasks <= idle.tasks, 15000);
    t.diagnostic(`churn ${JSON.stringify(counts)}; tasks idle ${idle.tasks}, after ${g.tasks}; ` +
      `RSS ${rssBefore} MiB before, ${rssMiB(srv.pid)} MiB after`);
    assert.ok(ok, `gauges back to idle: connections ${g.connections}, sockets ${g.sockets}, ` +
      `tasks ${g.tasks} (idle ${idle.tasks})`);
  });
});
