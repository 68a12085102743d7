'use strict';
// socket.io-client helpers: connecting, waiting for events with timeouts, negative assertions,
// and the contract's `cb(err, result)` acks as promises.

const assert = require('node:assert/strict');
const { io } = require('socket.io-client');
const { token } = require('./tokens');

const CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_TIMEOUT_MS = 3000;

const ERROR_CODES = [
  'ACCESS_DENIED', 'INVALID_ROOM', 'NOT_IN_ROOM', 'INVALID_MESSAGE', 'RATE_LIMITED', 'NOT_REACHABLE', 'INTERNAL',
];

/** Every socket opened through this module, so `closeAll()` can end them. */
const open = new Set();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Opens a socket.io-client socket. Returns it at once; `socket.ready` is a promise that
 * resolves (with the socket) on 'connect' or rejects with the connect_error.
 */
function connect(url, opts = {}) {
  const socket = io(url, {
    forceNew: true,
    reconnection: false,
    transports: ['websocket'],
    timeout: CONNECT_TIMEOUT_MS,
    ...opts,
  });
  open.add(socket);
  socket.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`connect to ${url} timed out after ${CONNECT_TIMEOUT_MS + 1000} ms`));
    }, CONNECT_TIMEOUT_MS + 1000);
    const onConnect = () => { cleanup(); resolve(socket); };
    const onError = (err) => {
      // with reconnection on, the manager retries: only the first error settles `ready`
      cleanup();
      reject(err);
    };
    function cleanup() {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    }
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
  socket.ready.catch(() => {}); // a test that ignores `ready` must not die of an unhandled rejection
  return socket;
}

/** Connects and waits for 'connect'; throws the connect_error otherwise. */
async function connected(url, opts = {}) {
  const socket = connect(url, opts);
  await socket.ready;
  return socket;
}

/** Connects expecting a refusal; resolves with the connect_error (an Error), fails if it connects. */
async function connectError(url, opts = {}) {
  const socket = connect(url, opts);
  try {
    await socket.ready;
  } catch (err) {
    socket.close();
    return err;
  }
  socket.close();
  throw new assert.AssertionError({ message: `expected the connection to ${url} to be refused, but it connected` });
}

/** Connected socket for user `sub` (token from helpers/tokens), with `tokenOpts` and io `opts`. */
async function userSocket(url, sub, { username, rooms, ...opts } = {}) {
  const tok = token(sub, { username, rooms });
  return connected(url, { auth: { token: tok }, ...opts });
}

/** Closes every socket opened through this module. */
function closeAll() {
  for (const s of open) {
    try { s.close(); } catch { /* already gone */ }
  }
  open.clear();
}

/** Resolves with the args array of the next `event` on `emitter`; rejects after timeoutMs. */
function once(emitter, event, timeoutMs = DEFAULT_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const handler = (...args) => { clearTimeout(timer); resolve(args); };
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    emitter.once(event, handler);
  });
}

/**
 * Negative assertion: resolves after `ms` if `event` (matching `filter(...args)` when given)
 * did not arrive on `socket`; rejects as soon as it does.
 */
function noEvent(socket, event, ms = 400, filter) {
  return new Promise((resolve, reject) => {
    const handler = (...args) => {
      if (filter && !filter(...args)) return;
      clearTimeout(timer);
      socket.off(event, handler);
      reject(new assert.AssertionError({
        message: `"${event}" must not arrive, but it did with ${safeJson(args)}`,
      }));
    };
    const timer = setTimeout(() => { socket.off(event, handler); resolve(); }, ms);
    socket.on(event, handler);
  });
}

/** Error carried by a failed contract request: `code`, `message` and the raw ack value. */
class AckError extends Error {
  constructor(raw, event) {
    super(raw && typeof raw === 'object' && typeof raw.message === 'string'
      ? raw.message : `${event} failed with ${safeJson(raw)}`);
    this.name = 'AckError';
    this.raw = raw;
    this.code = raw && typeof raw === 'object' ? raw.code : undefined;
    this.event = event;
  }
}

/**
 * Emits `event` with `args` and resolves with the raw ack args (`ack(...values)`), failing after
 * timeoutMs. For servers that ack with plain values (the conformance server).
 */
function emitAck(socket, event, ...args) {
  return emitAckWithin(DEFAULT_TIMEOUT_MS, socket, event, ...args);
}

function emitAckWithin(timeoutMs, socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(timeoutMs).emit(event, ...args, (timeoutErr, ...values) => {
      if (timeoutErr) reject(new Error(`no ack for "${event}" within ${timeoutMs} ms: ${timeoutErr.message}`));
      else resolve(values);
    });
  });
}

/**
 * A contract request: the server answers `cb(null, result)` or `cb({code, message})`.
 * Resolves `result`; rejects with an AckError (code/message) or a timeout Error.
 */
function request(socket, event, ...args) {
  return requestWithin(DEFAULT_TIMEOUT_MS, socket, event, ...args);
}

function requestWithin(timeoutMs, socket, event, ...args) {
  return emitAckWithin(timeoutMs, socket, event, ...args).then(([err, result]) => {
    if (err === null || err === undefined) return result;
    throw new AckError(err, event);
  });
}

/**
 * For malformed input, where "error ack" and "ignored" are both fine: resolves
 * {acked: true, err, result} or {acked: false} after `ms` without an ack.
 */
function ackOrSilence(socket, ms, event, ...args) {
  return new Promise((resolve) => {
    socket.timeout(ms).emit(event, ...args, (timeoutErr, err, result) => {
      if (timeoutErr) resolve({ acked: false, reason: timeoutErr.message });
      else resolve({ acked: true, err, result });
    });
  });
}

/** Asserts that an ack error value has the contract's shape {code, message}. */
function assertErrorShape(raw, context = '') {
  assert.ok(raw && typeof raw === 'object' && !Array.isArray(raw),
    `${context}error ack must be an object {code, message}, got ${safeJson(raw)}`);
  assert.equal(typeof raw.code, 'string', `${context}error ack code must be a string: ${safeJson(raw)}`);
  assert.ok(ERROR_CODES.includes(raw.code), `${context}unknown error code ${safeJson(raw.code)}`);
  assert.equal(typeof raw.message, 'string', `${context}error ack message must be a string: ${safeJson(raw)}`);
  assert.ok(raw.message.length > 0, `${context}error ack message must not be empty: ${safeJson(raw)}`);
}

/**
 * Awaits a request expected to fail with `code` (a string or a list of acceptable codes);
 * checks the {code, message} shape. Resolves with the AckError.
 */
async function expectError(promise, code, context = '') {
  let result;
  try {
    result = await promise;
  } catch (e) {
    if (!(e instanceof AckError)) throw e;
    assertErrorShape(e.raw, context ? context + ': ' : '');
    const codes = Array.isArray(code) ? code : [code];
    assert.ok(codes.includes(e.code),
      `${context ? context + ': ' : ''}expected error ${codes.join(' or ')}, got ${safeJson(e.raw)}`);
    return e;
  }
  throw new assert.AssertionError({
    message: `${context ? context + ': ' : ''}expected error ${code}, but the request succeeded with ${safeJson(result)}`,
  });
}

/**
 * Records every event a socket receives (socket.onAny) from now on, so that a test can wait
 * for events that may already have arrived and consume them in order.
 */
function recorder(socket) {
  const log = [];
  const waiters = [];
  socket.onAny((event, ...args) => {
    const entry = { event, args, at: Date.now(), used: false };
    log.push(entry);
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i];
      if (w.match(entry)) {
        entry.used = true;
        waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(entry.args);
        break;
      }
    }
  });
  const matcher = (event, filter) => (e) => e.event === event && (!filter || filter(...e.args));
  return {
    log,
    /** Args arrays of every `event` received so far (consumed or not). */
    all(event, filter) {
      return log.filter(matcher(event, filter)).map((e) => e.args);
    },
    /** The first not yet consumed `event` (matching filter), waiting up to timeoutMs. */
    next(event, { filter, timeout = DEFAULT_TIMEOUT_MS } = {}) {
      const m = matcher(event, filter);
      const found = log.find((e) => !e.used && m(e));
      if (found) {
        found.used = true;
        return Promise.resolve(found.args);
      }
      return new Promise((resolve, reject) => {
        const w = { match: m, resolve };
        w.timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i !== -1) waiters.splice(i, 1);
          const seen = log.map((e) => e.event).join(', ') || 'nothing';
          reject(new Error(`timed out after ${timeout} ms waiting for "${event}" (received: ${seen})`));
        }, timeout);
        waiters.push(w);
      });
    },
    /** Waits until `count` events named `event` have been received in total. */
    async count(event, count, { filter, timeout = DEFAULT_TIMEOUT_MS } = {}) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const got = log.filter(matcher(event, filter));
        if (got.length >= count) return got.map((e) => e.args);
        if (Date.now() > deadline) {
          throw new Error(`timed out after ${timeout} ms: ${got.length} of ${count} "${event}" events`);
        }
        await sleep(10);
      }
    },
    clear() { log.length = 0; },
  };
}

function safeJson(v) {
  try {
    const s = JSON.stringify(v, (k, x) => (x && x.type === 'Buffer' && Array.isArray(x.data) ? `<Buffer ${x.data.length}>` : x));
    return s === undefined ? String(v) : (s.length > 300 ? s.slice(0, 300) + '…' : s);
  } catch {
    return String(v);
  }
}

module.exports = {
  ERROR_CODES,
  AckError,
  sleep,
  connect,
  connected,
  connectError,
  userSocket,
  closeAll,
  once,
  noEvent,
  emitAck,
  emitAckWithin,
  request,
  requestWithin,
  ackOrSilence,
  assertErrorShape,
  expectError,
  recorder,
  safeJson,
};
