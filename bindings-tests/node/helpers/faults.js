'use strict';
// Faults and load against a running server, shared by test/reliability.test.js (short,
// deterministic) and soak/soak.js (`make soak`, longer): connection churn with abrupt
// drops, slowloris clients, floods past --max-connections, and the server's own gauges.

const http = require('node:http');
const net = require('node:net');
const WebSocket = require('ws');
const { metricValue } = require('./raw');
const { rssBytes } = require('./server');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The gauges that must come back to their idle values after connections end. */
async function gauges(url) {
  const { body: text } = await httpRequest(`${url}/metrics`);
  const v = (name, labels) => metricValue(text, name, labels) ?? 0;
  return {
    connections: v('switchboard_connections'),
    sockets: v('switchboard_sockets'),
    yjsConnections: v('switchboard_yjs_connections'),
    tasks: v('switchboard_runtime_tasks'),
    refusedMaxConnections: v('switchboard_refusals_total', { reason: 'max_connections' }),
    slowConsumers: v('switchboard_disconnects_total', { reason: 'slow_consumer' }),
    text,
  };
}

/**
 * Polls the gauges until `done(g)` holds or `ms` pass; returns the last reading and whether
 * it held.
 */
async function settle(url, done, ms) {
  const deadline = Date.now() + ms;
  let g = await gauges(url);
  while (!done(g) && Date.now() < deadline) {
    await sleep(100);
    g = await gauges(url);
  }
  return { g, ok: done(g) };
}

/** Resident set size in MiB, one decimal. */
function rssMiB(pid) {
  return Math.round((rssBytes(pid) / (1024 * 1024)) * 10) / 10;
}

/**
 * One Socket.IO client over a raw WebSocket: Engine.IO open, Socket.IO CONNECT with the
 * token, a `joinRoom`, then a clean close (`41`, close frame) or an abrupt one (the TCP
 * socket destroyed, no close frame). Resolves 'clean', 'abrupt' or 'refused' (HTTP 503).
 */
function churnOne(url, tok, abrupt, room) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/socket.io/?EIO=4&transport=websocket');
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('churn client timed out')); }, 10000);
    const done = (how) => { clearTimeout(timer); resolve(how); };
    ws.on('unexpected-response', (req, res) => {
      res.resume();
      ws.terminate();
      if (res.statusCode === 503) done('refused');
      else { clearTimeout(timer); reject(new Error(`churn client refused with HTTP ${res.statusCode}`)); }
    });
    ws.on('error', () => {});
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('0{')) ws.send('40' + JSON.stringify({ token: tok }));
      else if (text.startsWith('40')) ws.send(`421["joinRoom",${JSON.stringify(room)}]`);
      else if (text.startsWith('431')) {
        if (abrupt) {
          ws._socket.destroy();
          done('abrupt');
        } else {
          ws.send('41');
          ws.close(1000);
          ws.once('close', () => done('clean'));
        }
      } else if (text === '2') ws.send('3');
    });
  });
}

/**
 * Connects and drops `count` clients, `concurrency` at a time, every other one abruptly.
 * Returns counts by outcome.
 */
async function churn(url, tok, { count, concurrency = 20, room = 'churn' }) {
  const counts = { clean: 0, abrupt: 0, refused: 0 };
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      counts[await churnOne(url, tok, i % 2 === 1, room)]++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}

/**
 * A slowloris client: connects, writes `head` and then one more byte of `trickle` every
 * `everyMs` until the server closes. Resolves {closedAfterMs, answer} (answer: the status
 * line, if the server sent one).
 */
function slowloris(port, { head = '', trickle = null, everyMs = 200, giveUpMs = 30000 } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    let answer = '';
    let interval = null;
    const s = net.connect(port, '127.0.0.1', () => {
      if (head) s.write(head);
      if (trickle) interval = setInterval(() => { if (!s.destroyed) s.write(trickle); }, everyMs);
    });
    const giveUp = setTimeout(() => s.destroy(), giveUpMs);
    s.on('data', (d) => { if (!answer) answer = d.toString('latin1').split('\r\n')[0]; });
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(interval);
      clearTimeout(giveUp);
      const closedAfterMs = Date.now() - started;
      resolve({ closedAfterMs, answer, gaveUp: closedAfterMs >= giveUpMs });
    });
  });
}

/**
 * One HTTP request on a connection of its own (`Connection: close`). fetch() would reuse an
 * idle keep-alive connection, which a server with a short --request-timeout may be closing
 * at that moment. Resolves {status, body}.
 */
function httpRequest(url, { method = 'GET', body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A polling handshake answered 503: the body's code, or null when it was let in. */
async function pollingRefusal(url) {
  const { status, body } = await httpRequest(`${url}/socket.io/?EIO=4&transport=polling`);
  const res = { status };
  if (res.status === 200) return { status: 200, code: null, sid: JSON.parse(body.slice(1)).sid };
  let code = null;
  try { code = JSON.parse(body).code; } catch { /* not JSON */ }
  return { status: res.status, code };
}

module.exports = { sleep, gauges, settle, rssMiB, churnOne, churn, slowloris, httpRequest, pollingRefusal };
