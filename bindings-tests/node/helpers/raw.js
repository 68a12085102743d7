'use strict';
// Raw Engine.IO / Socket.IO over `ws` and fetch, for what socket.io-client cannot express
// (junk frames, clients that never read, Origin headers, oversized payloads), and /metrics parsing.

const WebSocket = require('ws');

const DEFAULT_TIMEOUT_MS = 3000;

function wsUrl(httpUrl, query = 'EIO=4&transport=websocket') {
  return httpUrl.replace(/^http/, 'ws') + '/socket.io/?' + query;
}

/**
 * Opens a raw WebSocket to the Engine.IO endpoint. Returns a wrapper with:
 *   ws, opened (promise), closed (promise of {code, reason, at}), next(pred, timeout),
 *   frames (all received {data: string|Buffer, binary}), send(x), close().
 * Text frames are delivered as strings, binary frames as Buffers.
 */
function rawWs(httpUrl, { query, origin, headers, maxPayload } = {}) {
  const ws = new WebSocket(wsUrl(httpUrl, query), { origin, headers, maxPayload });
  const frames = [];
  const waiters = [];
  let closeInfo = null;
  ws.on('message', (data, isBinary) => {
    const frame = { data: isBinary ? Buffer.from(data) : data.toString('utf8'), binary: isBinary, used: false };
    frames.push(frame);
    for (let i = 0; i < waiters.length; i++) {
      if (waiters[i].pred(frame.data, frame.binary)) {
        frame.used = true;
        const w = waiters.splice(i, 1)[0];
        clearTimeout(w.timer);
        w.resolve(frame.data);
        break;
      }
    }
  });
  ws.on('error', () => { /* reported through `opened`/`closed` */ });
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (req, res) => {
      const e = new Error(`WebSocket refused with HTTP ${res.statusCode}`);
      e.statusCode = res.statusCode;
      res.resume();
      ws.terminate();
      reject(e);
    });
    ws.once('error', reject);
    ws.once('close', () => reject(new Error('closed before open')));
  });
  opened.catch(() => {});
  const closed = new Promise((resolve) => {
    ws.once('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString(), at: Date.now() };
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`connection closed (code ${code}) while waiting for a frame`));
      }
      resolve(closeInfo);
    });
  });
  return {
    ws,
    frames,
    opened,
    closed,
    get isClosed() { return closeInfo !== null; },
    /** Next not yet consumed frame for which pred(data, binary) is true (default: any). */
    next(pred = () => true, timeout = DEFAULT_TIMEOUT_MS) {
      const found = frames.find((f) => !f.used && pred(f.data, f.binary));
      if (found) {
        found.used = true;
        return Promise.resolve(found.data);
      }
      if (closeInfo) return Promise.reject(new Error(`connection closed (code ${closeInfo.code})`));
      return new Promise((resolve, reject) => {
        const w = { pred, resolve, reject };
        w.timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i !== -1) waiters.splice(i, 1);
          reject(new Error(`timed out after ${timeout} ms waiting for a frame; got ${frames.map((f) => preview(f.data)).join(' | ') || 'nothing'}`));
        }, timeout);
        waiters.push(w);
      });
    },
    send(x) { ws.send(x); },
    close() {
      if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.terminate();
      else if (ws._socket) ws._socket.destroy();
    },
  };
}

function preview(d) {
  if (Buffer.isBuffer(d)) return `<binary ${d.length}>`;
  return d.length > 80 ? JSON.stringify(d.slice(0, 80)) + '…' : JSON.stringify(d);
}

/** Resolves with the closeInfo if `raw` closes within ms, or null if it stays open. */
function closedWithin(raw, ms) {
  return Promise.race([raw.closed, new Promise((r) => setTimeout(() => r(null), ms))]);
}

/**
 * Raw Engine.IO open over WebSocket: waits for `0{...}` and returns the parsed handshake.
 */
async function engineOpen(raw, timeout = DEFAULT_TIMEOUT_MS) {
  await raw.opened;
  const open = await raw.next((d, bin) => !bin && d.startsWith('0'), timeout);
  return JSON.parse(open.slice(1));
}

/**
 * Full Socket.IO handshake by hand on namespace "/": Engine.IO open, `40{"token":...}`,
 * `40{...}` back. Rejects with the CONNECT_ERROR payload (`44{...}`) if refused.
 * Returns {raw, open, connect}. Pings are answered only if `answerPings`.
 */
async function rawSocketIO(httpUrl, tok, { answerPings = false, origin, timeout = DEFAULT_TIMEOUT_MS } = {}) {
  const raw = rawWs(httpUrl, { origin });
  if (answerPings) {
    raw.ws.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === '2' && raw.ws.readyState === WebSocket.OPEN) raw.ws.send('3');
    });
  }
  const open = await engineOpen(raw, timeout);
  raw.send(tok === undefined ? '40' : '40' + JSON.stringify({ token: tok }));
  const reply = await raw.next((d, bin) => !bin && (d.startsWith('40') || d.startsWith('44')), timeout);
  if (reply.startsWith('44')) {
    raw.close();
    throw new Error(`Socket.IO CONNECT refused: ${reply}`);
  }
  return { raw, open, connect: JSON.parse(reply.slice(2) || '{}') };
}

/** GET /socket.io/?EIO=4&transport=polling (the Engine.IO handshake over polling). */
async function pollingHandshake(httpUrl, headers = {}) {
  const res = await fetch(`${httpUrl}/socket.io/?EIO=4&transport=polling`, { headers });
  const body = await res.text();
  let open = null;
  if (res.status === 200 && body.startsWith('0')) {
    open = JSON.parse(body.split('\x1e')[0].slice(1));
  }
  return { res, status: res.status, body, open, sid: open && open.sid };
}

function pollingUrl(httpUrl, sid) {
  return `${httpUrl}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
}

async function getMetrics(httpUrl) {
  const res = await fetch(`${httpUrl}/metrics`);
  const text = await res.text();
  return { status: res.status, text, contentType: res.headers.get('content-type') };
}

/**
 * Parses Prometheus text exposition into [{name, labels, value}] (comments skipped).
 */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\d+)?$/.exec(l);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[3]))) labels[lm[1]] = lm[2];
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

/**
 * Sum of the series named exactly `name` whose labels include `labels`; null if none exists.
 */
function metricValue(text, name, labels = {}) {
  const series = parseMetrics(text).filter((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (series.length === 0) return null;
  return series.reduce((a, s) => a + s.value, 0);
}

module.exports = {
  rawWs,
  closedWithin,
  engineOpen,
  rawSocketIO,
  pollingHandshake,
  pollingUrl,
  getMetrics,
  parseMetrics,
  metricValue,
  wsUrl,
};
