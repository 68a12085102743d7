'use strict';
// `make soak`: every fault at once, under load, against one `switchboard serve`.
//
// While LOAD clients in one room exchange messages (each must receive every message), the
// soak churns SOAK_CHURN connections (half dropped abruptly), keeps slowloris clients and
// readers that never read coming, and floods past --max-connections. At the end the
// connection and socket gauges must be back at 0 and the runtime's task count at its idle
// value, every load client must still be connected with every message, slowloris clients
// must have been cut off and slow readers disconnected. RSS before and after is reported,
// not asserted (allocators keep freed memory).
//
// Meanwhile soak/cluster-faults.js kills a node and restarts Redis under load on a cluster of
// three nodes (its members must stay connected and get every message sent after Redis is back).
//
// Environment: SOAK_CHURN (default 5000), SOAK_CONCURRENCY (20), SOAK_LOAD (50 clients),
// SOAK_CLUSTER_MEMBERS (10 per node), SWITCHBOARD_BIN (default target/debug/switchboard).

const assert = require('node:assert/strict');
const { startServer } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const { connect, closeAll, request } = require('../helpers/client');
const { rawSocketIO, pollingUrl } = require('../helpers/raw');
const { sleep, gauges, settle, rssMiB, churn, slowloris, httpRequest, pollingRefusal } = require('../helpers/faults');
const { clusterFaults } = require('./cluster-faults');

const CHURN = Number(process.env.SOAK_CHURN || 5000);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY || 20);
const LOAD = Number(process.env.SOAK_LOAD || 50);
const REQUEST_TIMEOUT_MS = 2000;
const ROOM = 'soak';
// Messages big enough that a reader that never reads fills its socket buffers and its queue.
const FILLER = 'x'.repeat(3900);

async function main() {
  const srv = await startServer({
    args: [
      '--rate-limit', '0',
      '--max-connections', String(LOAD + 3 + CONCURRENCY + 10),
      '--request-timeout', String(REQUEST_TIMEOUT_MS),
      '--outbound-queue-frames', '64',
      '--presence-grace', '200',
      '--recovery-window', '2000',
      '--ping-interval', '3000',
      '--ping-timeout', '3000',
    ],
  });
  const report = {};
  try {
    await sleep(200);
    const idle = await gauges(srv.url);
    report.rssBeforeMiB = rssMiB(srv.pid);

    const load = [];
    for (let i = 0; i < LOAD; i++) {
      const s = connect(srv.url, { auth: { token: token(`load${i}`) } });
      await s.ready;
      await request(s, 'joinRoom', ROOM);
      s.received = 0;
      s.on('message', () => { s.received++; });
      load.push(s);
    }

    let running = true;
    let sent = 0;
    // Four senders, each waiting for its ack (acks mean stored and queued to every member).
    const sender = Promise.all(Array.from({ length: 4 }, async (_, k) => {
      for (let i = k; running; i += 4) {
        await request(load[i % LOAD], 'sendMessage', { roomId: ROOM, text: `m${i} ${FILLER}` });
        sent++;
      }
    }));

    // Readers that never read: their queue fills with the room's messages until the server
    // drops them.
    const SLOW_READERS = 3;
    for (let i = 0; i < SLOW_READERS; i++) {
      const { raw } = await rawSocketIO(srv.url, token(`slow${i}`), { answerPings: false });
      raw.send(`420["joinRoom","${ROOM}"]`);
      raw.ws._socket.pause();
    }

    // Slowloris clients, a few every second.
    const lorises = [];
    const loris = (async () => {
      while (running) {
        lorises.push(slowloris(srv.port, {}));
        lorises.push(slowloris(srv.port, { head: 'GET /healthz HTTP/1.1\r\n', trickle: 'X-A: b\r\n', everyMs: 300 }));
        await sleep(1000);
      }
    })();

    // Floods past --max-connections.
    const flood = { refused: 0, admitted: 0 };
    const flooding = (async () => {
      while (running) {
        const answers = await Promise.all(Array.from({ length: 30 }, () => pollingRefusal(srv.url)));
        for (const a of answers) {
          if (a.status === 503 && a.code === 'TOO_MANY_CONNECTIONS') flood.refused++;
          else if (a.status === 200) {
            // Let in while there was room: leave at once, as most of a flood's clients would.
            flood.admitted++;
            await httpRequest(pollingUrl(srv.url, a.sid), { method: 'POST', body: '1' });
          } else throw new Error(`flood: unexpected answer ${JSON.stringify(a)}`);
        }
        await sleep(2000);
      }
    })();

    // Redis restarts and a node kill, on a cluster of their own, at the same time.
    const cluster = clusterFaults(report);
    const started = Date.now();
    report.churn = await churn(srv.url, token('churner'), { count: CHURN, concurrency: CONCURRENCY });
    report.churnSeconds = Math.round((Date.now() - started) / 100) / 10;
    // Keep the load on until the slow readers' queues overflowed (bounded).
    await settle(srv.url, (x) => x.slowConsumers >= SLOW_READERS, 60000);
    running = false;
    await Promise.all([sender, loris, flooding, cluster]);
    await Promise.all(lorises).then((all) => {
      report.slowloris = { clients: all.length, cutOff: all.filter((c) => !c.gaveUp).length };
    });

    await sleep(500);
    report.messagesSent = sent;
    report.loadClientsConnected = load.filter((s) => s.connected).length;
    report.loadClientsWithEveryMessage = load.filter((s) => s.received === sent).length;
    report.flood = flood;
    report.rssUnderLoadMiB = rssMiB(srv.pid);
    closeAll();

    // The flood's admitted polling sessions end at their ping timeout (3 s + 3 s).
    const { g, ok } = await settle(srv.url,
      (x) => x.connections === 0 && x.sockets === 0 && x.tasks <= idle.tasks, 60000);
    report.after = { connections: g.connections, sockets: g.sockets, tasks: g.tasks, idleTasks: idle.tasks };
    report.slowReadersDisconnected = `${g.slowConsumers} of ${SLOW_READERS}`;
    report.refusedMaxConnections = g.refusedMaxConnections;
    report.rssAfterMiB = rssMiB(srv.pid);
    console.log(JSON.stringify(report, null, 2));

    assert.ok(ok, 'gauges back to idle');
    assert.equal(report.loadClientsConnected, LOAD, 'every load client stayed connected');
    assert.equal(report.loadClientsWithEveryMessage, LOAD, 'every load client got every message');
    assert.equal(report.slowloris.cutOff, report.slowloris.clients, 'every slowloris client was cut off');
    assert.ok(g.slowConsumers >= SLOW_READERS, 'every slow reader was disconnected');
    assert.ok(flood.refused > 0, 'the flood met the connection limit');
    console.log('soak: passed');
  } finally {
    await srv.stop();
  }
}

main().catch((e) => {
  console.error(e);
  console.log('soak: FAILED');
  process.exit(1);
});
