'use strict';
// The plain-WebSocket endpoint (`/ws`, issue 23) through the `ws` npm client: connecting
// the three ways of authenticating, waiting for frames in order, requests as promises.
// Every connection opened here is closed by `closeAllWs()`.

const WebSocket = require('ws');

const DEFAULT_TIMEOUT_MS = 3000;

/** Every connection opened through this module. */
const open = new Set();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `ws://host:port/ws` for a server's `http://host:port`, with an optional query. */
function wsUrl(base, query = {}) {
  const u = new URL(base.replace(/^http/, 'ws') + '/ws');
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return u.toString();
}

/**
 * Opens `/ws`. Returns a client at once: `frames` (every parsed text frame, in order),
 * `next(filter, timeout)` (the next frame not yet taken that matches), `closed` (resolves
 * `{code, reason}`), `send(obj)`, `request(event, data)` (resolves the reply frame).
 */
function wsClient(url, { headers, ...options } = {}) {
  const socket = new WebSocket(url, { headers, ...options });
  open.add(socket);
  const frames = [];
  const waiters = [];
  let nextId = 1;
  const client = {
    socket,
    frames,
    opened: new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    }),
    closed: new Promise((resolve) => {
      socket.once('close', (code, reason) => {
        open.delete(socket);
        resolve({ code, reason: reason.toString() });
      });
    }),
    send(obj) {
      socket.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    },
    /** The next frame (not taken yet) matching `filter`; taken frames are not returned again. */
    next(filter = () => true, timeout = DEFAULT_TIMEOUT_MS) {
      const f = typeof filter === 'string' ? (m) => m.type === filter : filter;
      const found = frames.find((m) => !m.taken && f(m));
      if (found) {
        found.taken = true;
        return Promise.resolve(found);
      }
      return new Promise((resolve, reject) => {
        const w = { f, resolve };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching frame within ${timeout} ms; frames: ${JSON.stringify(frames).slice(0, 2000)}`));
        }, timeout);
        w.resolve = (m) => { clearTimeout(timer); resolve(m); };
        waiters.push(w);
      });
    },
    /** The next `event` frame named `event` (optionally matching `filter` on its data). */
    event(event, filter = () => true, timeout) {
      return client.next((m) => m.type === 'event' && m.event === event && filter(m.data), timeout);
    },
    /** Sends a request and resolves its reply frame. */
    request(event, data, timeout) {
      const id = nextId++;
      const frame = { type: 'request', id, event };
      if (data !== undefined) frame.data = data;
      client.send(frame);
      return client.next((m) => m.type === 'reply' && m.id === id, timeout);
    },
    close() {
      try { socket.close(); } catch { /* already closed */ }
    },
    terminate() {
      try { socket.terminate(); } catch { /* already closed */ }
    },
  };
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
    let m;
    try { m = JSON.parse(data.toString()); } catch { m = { type: 'unparsable', raw: data.toString() }; }
    frames.push(m);
    const i = waiters.findIndex((w) => w.f(m));
    if (i >= 0) {
      m.taken = true;
      const [w] = waiters.splice(i, 1);
      w.resolve(m);
    }
  });
  socket.on('error', () => {});
  client.opened.catch(() => {}); // a test that ignores `opened` must not die of it
  return client;
}

/** Opens `/ws` with `?token=` and resolves once `ready` arrived. */
async function wsReady(base, token, query = {}) {
  const client = wsClient(wsUrl(base, { token, ...query }));
  client.ready = await client.next('ready');
  return client;
}

/** Closes every connection opened here. */
function closeAllWs() {
  for (const s of open) {
    try { s.terminate(); } catch { /* already closed */ }
  }
  open.clear();
}

module.exports = { wsUrl, wsClient, wsReady, closeAllWs, sleep };
