'use strict';
// Issue 16: backpressure on the TLS bridge of @switchboard/node. A TLS socket taken over with
// `engine.handleUpgrade` is bridged (only Node can decrypt it): Node's 'data' events hand the
// bytes to the engine. A client that sends faster than the engine takes them must get its
// socket paused (and resumed once the engine drained them), not grow an unbounded queue.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const https = require('node:https');
const { WebSocket } = require('ws');

const { Engine } = require('@switchboard/node');
const { SECRET } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const { selfSignedCert } = require('../helpers/tls');

/** Resolves the next text message of `ws` that `pred` accepts. */
function nextText(ws, pred, ms = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.off('message', on); reject(new Error(`no matching message within ${ms} ms`)); }, ms);
    function on(data, isBinary) {
      const text = isBinary ? null : data.toString();
      if (text !== null && pred(text)) {
        clearTimeout(timer);
        ws.off('message', on);
        resolve(text);
      }
    }
    ws.on('message', on);
  });
}

describe('@switchboard/node TLS bridge backpressure', { timeout: 120000 }, () => {
  let engine;
  let server;
  let port;
  const counts = { pauses: 0, resumes: 0, bridged: 0 };

  before(async () => {
    const cert = selfSignedCert({ type: 'ec' });
    engine = new Engine({ jwtSecret: SECRET, rateLimitPerSecond: 0 });
    server = https.createServer({ cert: cert.cert, key: cert.key });
    server.on('upgrade', (req, socket, head) => {
      counts.bridged++;
      const pause = socket.pause.bind(socket);
      const resume = socket.resume.bind(socket);
      socket.pause = () => { counts.pauses++; return pause(); };
      socket.resume = () => { counts.resumes++; return resume(); };
      engine.handleUpgrade(req, socket, head);
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    port = server.address().port;
  });

  after(async () => {
    if (engine) await engine.close();
    if (server) await new Promise((r) => server.close(r));
  });

  it('a client pushing 50 MB without reading gets its socket paused and resumed; every byte still arrives in order', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, {
      rejectUnauthorized: false,
      maxPayload: 0,
    });
    await nextText(ws, (t) => t.startsWith('0{'), 5000);
    ws.send(`40${JSON.stringify({ token: token('alice') })}`);
    await nextText(ws, (t) => t.startsWith('40'), 5000);
    assert.equal(counts.bridged, 1, 'the TLS socket was bridged');
    // The client stops reading: whatever the server sends now waits in its buffers.
    ws._socket.pause();
    const big = `42["noop",${JSON.stringify('x'.repeat(900 * 1024))}]`;
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const t0 = Date.now();
    for (let i = 0; i < 56; i++) {
      // The client's own socket's backpressure: what piles up is on the server side.
      await new Promise((resolve, reject) => ws.send(big, (e) => (e ? reject(e) : resolve())));
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    ws.send('421["joinRoom","after-the-flood"]');
    ws._socket.resume();
    await nextText(ws, (t) => t === '431[null]');
    const ms = Date.now() - t0;
    console.log(`# bridge: ${counts.pauses} pauses, ${counts.resumes} resumes, ${ms} ms, RSS +${Math.round((peak - rssBefore) / 1048576)} MB at the peak`);
    assert.ok(counts.pauses >= 1, 'the engine side filled up and the socket was paused');
    assert.ok(counts.resumes >= counts.pauses, `resumed after each pause (${counts.pauses} / ${counts.resumes})`);
    ws.close();
  });
});
