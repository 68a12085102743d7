'use strict';
// Server-sent events and the server HTTP API for the tests: an `eventsource` client with an
// event recorder, a raw `fetch` reader of the stream (for headers, comments and `id:` lines),
// and a small API client. Every stream opened here is closed by `closeAllStreams()`.

const { EventSource } = require('eventsource');

const DEFAULT_TIMEOUT_MS = 3000;
const OPEN_TIMEOUT_MS = 5000;

/** Every EventSource and raw stream opened through this module. */
const streams = new Set();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Closes every EventSource and raw stream opened through this module. */
function closeAllStreams() {
  for (const s of streams) {
    try { s.close(); } catch { /* already closed */ }
  }
  streams.clear();
}

/**
 * Records events of the given names as they arrive and lets a test wait for them in order.
 * `push(name, entry)` adds one; entries are `{event, data, id, at}` (`data` parsed as JSON
 * when it is JSON).
 */
function eventLog() {
  const log = [];
  const waiters = [];
  const matcher = (event, filter) => (e) => e.event === event && (!filter || filter(e.data, e));
  return {
    log,
    push(entry) {
      log.push(entry);
      for (let i = 0; i < waiters.length; i++) {
        const w = waiters[i];
        if (w.match(entry)) {
          entry.used = true;
          waiters.splice(i, 1);
          clearTimeout(w.timer);
          w.resolve(entry);
          break;
        }
      }
    },
    /** Every entry named `event` so far (matching filter). */
    all(event, filter) {
      return log.filter(matcher(event, filter));
    },
    /** The first not yet consumed entry named `event`, waiting up to `timeout` ms. */
    next(event, { filter, timeout = DEFAULT_TIMEOUT_MS } = {}) {
      const m = matcher(event, filter);
      const found = log.find((e) => !e.used && m(e));
      if (found) {
        found.used = true;
        return Promise.resolve(found);
      }
      return new Promise((resolve, reject) => {
        const w = { match: m, resolve };
        w.timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i !== -1) waiters.splice(i, 1);
          const seen = log.map((e) => e.event).join(', ') || 'nothing';
          reject(new Error(`timed out after ${timeout} ms waiting for SSE "${event}" (received: ${seen})`));
        }, timeout);
        waiters.push(w);
      });
    },
    /** Waits until `count` entries named `event` have arrived in total; resolves them. */
    async count(event, count, { filter, timeout = DEFAULT_TIMEOUT_MS } = {}) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const got = log.filter(matcher(event, filter));
        if (got.length >= count) return got;
        if (Date.now() > deadline) {
          throw new Error(`timed out after ${timeout} ms: ${got.length} of ${count} SSE "${event}" events`);
        }
        await sleep(10);
      }
    },
  };
}

function parseData(s) {
  try { return JSON.parse(s); } catch { return s; }
}

/** The events Switchboard sends on /events. */
const EVENT_NAMES = ['connected', 'message', 'userJoined', 'userLeft', 'notification', 'reset'];

/**
 * Opens an `eventsource` EventSource on `url` (a full URL with query).
 * @param {object} o
 * @param {string} [o.token]   sent as `Authorization: Bearer`
 * @param {string[]} [o.events] extra event names to record (EventSource only dispatches
 *                              named events to listeners for that name)
 * @param {Function} [o.fetch]  the fetch to use (default the global one; helpers/tls.js has
 *                              one that trusts a private CA)
 * Returns `{es, log, requests, opened, close()}`: `requests` lists the headers of each request
 * the EventSource made (reconnects included); `opened` resolves on the first 'open' and rejects
 * on an error before it (with `.code` = the HTTP status).
 */
function openEventSource(url, { token, events = [], fetch: fetchImpl = fetch } = {}) {
  const requests = [];
  const es = new EventSource(url, {
    fetch: (input, init) => {
      const headers = { ...(init && init.headers) };
      if (token) headers.Authorization = `Bearer ${token}`;
      requests.push({ at: Date.now(), headers });
      return fetchImpl(input, { ...init, headers });
    },
  });
  const log = eventLog();
  for (const name of new Set([...EVENT_NAMES, ...events])) {
    es.addEventListener(name, (e) => {
      log.push({ event: name, data: parseData(e.data), raw: e.data, id: e.lastEventId, at: Date.now() });
    });
  }
  const errors = [];
  es.addEventListener('error', (e) => errors.push({ code: e.code, message: e.message, at: Date.now() }));
  const handle = {
    es, log, requests, errors,
    close() { es.close(); streams.delete(handle); },
  };
  handle.opened = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`EventSource ${url} did not open within ${OPEN_TIMEOUT_MS} ms`)), OPEN_TIMEOUT_MS);
    es.addEventListener('open', () => { clearTimeout(timer); resolve(handle); }, { once: true });
    es.addEventListener('error', (e) => {
      clearTimeout(timer);
      const err = new Error(`EventSource error before open: ${e.message}`);
      err.code = e.code;
      reject(err);
    }, { once: true });
  });
  handle.opened.catch(() => {});
  streams.add(handle);
  return handle;
}

/** Opens an EventSource and waits for its `connected` event; resolves the handle. */
async function sseClient(url, opts) {
  const h = openEventSource(url, opts);
  await h.opened;
  h.connected = await h.log.next('connected');
  return h;
}

/**
 * Resolves with the error event an EventSource gets when its request is refused, and checks
 * that it gave up (readyState CLOSED: no reconnect loop).
 */
async function refusedEventSource(url, opts) {
  const h = openEventSource(url, opts);
  try {
    await h.opened;
  } catch (err) {
    const readyState = h.es.readyState;
    h.close();
    return { code: err.code, message: err.message, readyState, requests: h.requests.length };
  }
  h.close();
  throw new Error(`expected EventSource ${url} to be refused, but it opened`);
}

/**
 * Opens `url` with plain fetch and reads the body as it arrives.
 * Resolves (once headers are in) with `{status, headers, text, chunks, events, done,
 * waitFor(pred|regex, timeout), json(), close()}`; `chunks` are `{at, text}`; `events()` parses
 * what arrived so far into `{comment}` or `{id, event, data}` blocks.
 */
async function rawStream(url, { headers = {}, timeout = OPEN_TIMEOUT_MS } = {}) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`no response from ${url} within ${timeout} ms`)), timeout);
  let res;
  try {
    res = await fetch(url, { headers, signal: ac.signal });
  } finally {
    clearTimeout(timer);
  }
  const s = {
    status: res.status,
    headers: res.headers,
    text: '',
    chunks: [],
    ended: false,
    close() {
      try { ac.abort(); } catch { /* closed */ }
      streams.delete(s);
    },
    /** Parses everything received so far into blocks separated by a blank line. */
    events() {
      return parseSse(s.text);
    },
    /** Waits until `pred(s)` holds (or `regex` matches the text so far). */
    async waitFor(pred, waitMs = DEFAULT_TIMEOUT_MS) {
      const test = pred instanceof RegExp ? () => pred.test(s.text) : () => pred(s);
      const deadline = Date.now() + waitMs;
      while (!test()) {
        if (Date.now() > deadline) {
          throw new Error(`timed out after ${waitMs} ms waiting on the stream ${url}; received: ${JSON.stringify(s.text.slice(-600))}`);
        }
        if (s.ended && !test()) {
          throw new Error(`stream ${url} ended before the condition held; received: ${JSON.stringify(s.text.slice(-600))}`);
        }
        await sleep(5);
      }
      return s;
    },
    /** Resolves when the server ends the body (rejects after waitMs). */
    async waitEnd(waitMs = DEFAULT_TIMEOUT_MS) {
      return s.waitFor(() => s.ended, waitMs);
    },
  };
  streams.add(s);
  const decoder = new TextDecoder();
  if (!res.body) {
    s.ended = true;
    return s;
  }
  s.done = (async () => {
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const t = decoder.decode(value, { stream: true });
        s.chunks.push({ at: Date.now(), text: t });
        s.text += t;
      }
    } catch {
      // aborted by close(), or the connection broke
    }
    s.ended = true;
  })();
  return s;
}

/** `text/event-stream` text → `[{comment}]` and `[{id, event, data}]` in order. */
function parseSse(text) {
  const out = [];
  const blocks = text.split('\n\n');
  blocks.pop(); // incomplete (or empty) tail
  for (const block of blocks) {
    const ev = {};
    const comments = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) { comments.push(line.slice(1)); continue; }
      const i = line.indexOf(':');
      const field = i === -1 ? line : line.slice(0, i);
      let value = i === -1 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') ev.data = ev.data === undefined ? value : `${ev.data}\n${value}`;
      else if (field) ev[field] = value;
    }
    for (const c of comments) out.push({ comment: c });
    if (Object.keys(ev).length) {
      if (ev.data !== undefined) ev.json = parseData(ev.data);
      out.push(ev);
    }
  }
  return out;
}

/**
 * The server HTTP API: `api(baseUrl, key)` → `call(method, path, body?, {key, raw, headers})`
 * resolving `{status, headers, json, text}`. `body` is JSON-encoded unless `raw` is given;
 * `key: null` sends no Authorization header.
 */
function apiClient(baseUrl, defaultKey) {
  async function call(method, path, body, { key = defaultKey, raw, headers = {}, timeout = 5000 } = {}) {
    const h = { ...headers };
    if (key !== null && key !== undefined) h.Authorization = `Bearer ${key}`;
    let payload;
    if (raw !== undefined) payload = raw;
    else if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined && !h['content-type']) h['content-type'] = 'application/json';
    const res = await fetch(baseUrl + path, { method, headers: h, body: payload, signal: AbortSignal.timeout(timeout) });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, json, text };
  }
  return {
    call,
    publish: (room, body, opts) => call('POST', `/api/rooms/${encodeURIComponent(room)}/messages`, body, opts),
    notify: (user, body, opts) => call('POST', `/api/users/${encodeURIComponent(user)}/notify`, body, opts),
    presence: (room, opts) => call('GET', `/api/rooms/${encodeURIComponent(room)}/presence`, undefined, opts),
    rooms: (opts) => call('GET', '/api/rooms', undefined, opts),
    disconnect: (user, opts) => call('POST', `/api/users/${encodeURIComponent(user)}/disconnect`, undefined, opts),
  };
}

/** The `/events` URL for `rooms` (and any extra query parameters). */
function eventsUrl(base, { rooms, ...query } = {}) {
  const q = new URLSearchParams();
  if (rooms !== undefined) q.set('rooms', Array.isArray(rooms) ? rooms.join(',') : rooms);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
  const qs = q.toString();
  return `${base}/events${qs ? `?${qs}` : ''}`;
}

module.exports = {
  EVENT_NAMES,
  closeAllStreams,
  eventLog,
  openEventSource,
  sseClient,
  refusedEventSource,
  rawStream,
  parseSse,
  apiClient,
  eventsUrl,
};
