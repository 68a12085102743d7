'use strict';
// @switchboard/node: the Switchboard engine inside a Node process. The engine runs on its own
// Rust threads; this file hands it Node's sockets and requests and adapts JS callbacks.

// Windows is not a target: the engine adopts Node's TCP sockets by file descriptor, and no
// win32 binary is built or published (package.json's `os` lists linux and darwin).
if (process.platform === 'win32') {
  throw new Error('@switchboard/node does not support Windows; run it on Linux or macOS (WSL 2 works).');
}

const native = require('./native.js');
const { NativeEngine } = native;

function messageOf(error) {
  if (error && typeof error.message === 'string' && error.message) return error.message;
  return String(error);
}

/**
 * An error a callback (`authenticate`, `authorizeRoom`, `storeMessage`, an `on()` handler)
 * throws for the client to see: its `code` (`[A-Z][A-Z0-9_]{0,63}`) and `message` reach the
 * client as they are. Anything else thrown is logged with its stack and the client gets
 * `{code: 'INTERNAL', message: 'Internal error'}`.
 */
class SwitchboardError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
  }
}

// A SwitchboardError from another copy of this package counts too.
function isClientError(error) {
  return error instanceof SwitchboardError
    || (error instanceof Error && error.name === 'SwitchboardError' && typeof error.code === 'string');
}

// What Rust gets for a throw: the client's code and message, or the detail for the log.
function errorOf(error) {
  if (isClientError(error)) return { code: error.code, message: String(error.message) };
  const detail = error instanceof Error && typeof error.stack === 'string' ? error.stack : messageOf(error);
  return { detail };
}

// Every callback crosses to Rust as `(value) => Promise<{ok} | {error}>`, so a throw or a
// rejection arrives as data and never as an uncaught exception.
function settle(fn) {
  return async (...args) => {
    try {
      const ok = await fn(...args);
      return { ok: ok === undefined ? null : ok };
    } catch (error) {
      return { error: errorOf(error) };
    }
  };
}

function warnHook(error) {
  process.emitWarning(`onDocumentUpdate threw: ${messageOf(error)}`, 'SwitchboardWarning');
}

// TLS material is PEM contents, as for Node's `https.createServer`; a file name is a mistake
// worth a clear message (the engine would only say there is no PEM block in it).
function pemBuffer(value, name) {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') {
    if (!value.includes('-----BEGIN')) {
      throw new TypeError(`${name} must be PEM contents (e.g. fs.readFileSync(file)), not a file name`);
    }
    return Buffer.from(value);
  }
  throw new TypeError(`${name} must be a PEM string or Buffer`);
}

function warnHandler(what, error) {
  process.emitWarning(`${what} threw: ${messageOf(error)}`, 'SwitchboardWarning');
}

function roomList(rooms, what) {
  const list = Array.isArray(rooms) ? rooms : [rooms];
  for (const room of list) {
    if (typeof room !== 'string' || !room) throw new TypeError(`${what} takes room names (non-empty strings)`);
  }
  return list;
}

/**
 * `engine.to(['a', 'b']).except('c').emit(event, data)`: every socket in any of the rooms but
 * those in any `except` room, each once (Socket.IO's semantics), across the cluster with Redis.
 */
class BroadcastOperator {
  constructor(native, rooms, except = []) {
    this._native = native;
    this._rooms = rooms;
    this._except = except;
  }

  /** Adds rooms. */
  to(rooms) {
    return new BroadcastOperator(this._native, [...this._rooms, ...roomList(rooms, 'to()')], this._except);
  }

  /** Leaves out every socket in these rooms. */
  except(rooms) {
    return new BroadcastOperator(this._native, this._rooms, [...this._except, ...roomList(rooms, 'except()')]);
  }

  /** Encoded once, queued for every recipient off Node's thread. */
  emit(event, data) {
    const value = data === undefined ? null : data;
    // One room and nothing left out: the engine's single-room path (returns the room's size here).
    if (this._rooms.length === 1 && this._except.length === 0) {
      return this._native.emitToRoom(this._rooms[0], event, value);
    }
    this._native.emitToRooms(this._rooms, this._except, event, value);
    return true;
  }
}

function peerOf(socket) {
  return [socket.remoteAddress || '', socket.remotePort || 0];
}

class Engine {
  /**
   * @param {import('./index').EngineOptions} [options]
   */
  constructor(options = {}, { extraOptions = [] } = {}) {
    // `extraOptions`: names a wrapper (the Fastify plugin) takes for itself; known, not ours.
    const checked = checkOptions(options, extraOptions);
    const { authenticate, authorizeRoom, storeMessage, onDocumentUpdate, logger, logLevel, ...config } = checked;
    for (const name of extraOptions) delete config[name];
    this._handlers = new Map();
    this._onConnection = [];
    this._onDisconnect = [];
    // socket.data by socket id, only for sockets whose data JS has read or set; removed at
    // their disconnect. Idle sockets JS never touched cost nothing here.
    this._data = new Map();
    this._watching = false;
    this._keepAlive = null;
    this._closed = false;
    this._bridged = new Set();
    this._maxPayload = config.maxPayload ?? 1000000;
    const auth = authenticate && settle((handshake) => authenticate(handshake));
    const rooms = authorizeRoom && settle(({ user, roomId }) => authorizeRoom(user, roomId));
    // The sender (`{id, username, claims}`) comes second: its claims are what `socket.data` starts as.
    const store = storeMessage && settle(({ message, sender }) => storeMessage(message, sender));
    // Called from the engine's threads: a throw here would be an uncaught exception.
    const documentUpdate = onDocumentUpdate && ((docName, update) => {
      try {
        const result = onDocumentUpdate(docName, update);
        if (result && typeof result.catch === 'function') result.catch((error) => this._hookFailed('onDocumentUpdate', error));
      } catch (error) {
        this._hookFailed('onDocumentUpdate', error);
      }
    });
    // Before the engine, so that its start-up events reach the logger too.
    this._logger = loggerOf(logger);
    this._logSink = null;
    try {
      this._logSink = this._logger && new native.LogSink(logLevel ?? defaultFilter(logger), () => this._drainLogs());
      this._native = new NativeEngine(
        config,
        auth,
        rooms,
        store,
        (call) => this._dispatch(call),
        (active) => this._activity(active),
        documentUpdate,
        (call) => this._lifecycle(call),
      );
    } catch (error) {
      this._closeLogs();
      // A setting the engine refused ("invalid `pingInterval`: …") is an option error too.
      if (error instanceof Error && /^invalid `/.test(error.message)) error.code = 'ERR_SWITCHBOARD_OPTION';
      throw error;
    }
    // From now on only this engine's events (a second engine in the process has its own).
    if (this._logSink) this._logSink.bind(this._native.logId());
  }

  // Called on Node's thread when engine events wait: hand them to the logger.
  _drainLogs() {
    if (!this._logSink) return;
    const { records, dropped } = this._logSink.take();
    const logger = this._logger;
    for (const r of records) {
      const method = typeof logger[r.level] === 'function' ? r.level : 'info';
      try {
        logger[method]({ ...r.fields, target: r.target }, r.message);
      } catch {
        // A logger that throws must not take the process down (this is a callback of Node's loop).
      }
    }
    if (dropped > 0) {
      try {
        logger.warn({ dropped, target: 'switchboard' }, 'switchboard: log records dropped (the logger did not keep up)');
      } catch {
        // as above
      }
    }
  }

  // A callback whose outcome no client waits for (onDocumentUpdate) failed: log it as the
  // engine logs the others (error level, `hook`, the stack as `error`).
  _hookFailed(hook, error) {
    const detail = errorOf(error).detail ?? messageOf(error);
    if (!this._logger) return warnHook(error);
    try {
      this._logger.error({ hook, error: detail, target: 'switchboard::host' }, 'host callback failed');
    } catch {
      warnHook(error);
    }
    return undefined;
  }

  _closeLogs() {
    if (!this._logSink) return;
    this._drainLogs();
    this._logSink.close();
    this._logSink = null;
  }

  // Connections and disconnections, called only once JS watches them (see `_watch`).
  async _lifecycle({ kind, socket, reason }) {
    const api = this._socketApi(socket);
    if (kind === 'connect') {
      for (const fn of this._onConnection) {
        try {
          await fn(api);
        } catch (error) {
          warnHandler('onConnection', error);
        }
      }
      return { ok: null };
    }
    try {
      for (const fn of this._onDisconnect) {
        try {
          await fn(api, reason);
        } catch (error) {
          warnHandler('onDisconnect', error);
        }
      }
    } finally {
      this._data.delete(socket.id);
    }
    return { ok: null };
  }

  _watch() {
    if (!this._watching) {
      this._watching = true;
      this._native.watchLifecycle(true);
    }
  }

  // A socket's data: a shallow copy of its user's claims (every claim of its token, or what
  // `authenticate` returned) until JS replaces it.
  _dataOf(id, user) {
    let data = this._data.get(id);
    if (data === undefined) {
      data = { ...((user && user.claims) || {}) };
      this._watch();
      // Kept only for a connected socket: its disconnect (reported after it is gone) removes
      // it. A handler still running after the disconnect gets a copy nobody keeps.
      if (!this._closed && this._native.socketConnected(id)) this._data.set(id, data);
    }
    return data;
  }

  // Rust-owned connections are invisible to Node's event loop: hold a timer while any is
  // open so the process does not exit under its clients, and none when idle.
  _activity(active) {
    if (active && !this._keepAlive && !this._closed) {
      this._keepAlive = setInterval(() => {}, 1 << 30);
    } else if (!active && this._keepAlive) {
      clearInterval(this._keepAlive);
      this._keepAlive = null;
    }
  }

  async _dispatch({ event, args, socket }) {
    const handler = this._handlers.get(event);
    if (!handler) return { error: { detail: `no handler for ${event}` } };
    try {
      const ok = await handler(this._socketApi(socket), ...(args || []));
      return { ok: ok === undefined ? null : ok };
    } catch (error) {
      return { error: errorOf(error) };
    }
  }

  _socketApi({ id, user, rooms }) {
    const native = this._native;
    const engine = this;
    return {
      id,
      user,
      rooms,
      get data() {
        return engine._dataOf(id, user);
      },
      set data(value) {
        engine._watch();
        if (!engine._closed && native.socketConnected(id)) engine._data.set(id, value);
      },
      join: (room) => native.socketJoin(id, room),
      leave: (room) => native.socketLeave(id, room),
      emit: (event, data) => native.socketEmit(id, event, data === undefined ? null : data),
      emitWithAck: (event, data, { timeout = 5000 } = {}) => engine._emitWithAck(id, event, data, timeout),
      disconnect: () => native.socketDisconnect(id),
    };
  }

  _emitWithAck(id, event, data, timeout) {
    if (!(Number.isFinite(timeout) && timeout > 0)) {
      return Promise.reject(new TypeError('emitWithAck: timeout must be a positive number of milliseconds'));
    }
    const ms = Math.min(Math.ceil(timeout), 2 ** 31 - 1);
    return new Promise((resolve, reject) => {
      this._native.socketEmitWithAck(id, event, data === undefined ? null : data, ms, (result) => {
        if (result && result.ok) {
          // Like Socket.IO: the client's one answer, or all of them when it sent several.
          resolve(result.ok.length === 1 ? result.ok[0] : result.ok);
          return;
        }
        const error = new Error((result && result.error && result.error.message) || 'emitWithAck failed');
        error.code = result && result.error && result.error.code;
        reject(error);
      });
    });
  }

  /** Every endpoint's path (with `prefix`): `{socketio, events, api, yjs, metrics, healthz, ws}`, `null` when off. */
  endpoints() {
    return this._native.endpoints();
  }

  /** The `/healthz` answer `{status, headers, body}`: 200, or 503 with a JSON reason. */
  health() {
    return this._native.health();
  }

  /** Whether the engine serves this URL path (`/socket.io/`, `/yjs/…`, `/healthz`, `/metrics`). */
  serves(path) {
    return this._native.serves(path);
  }

  /**
   * Takes over a socket from an HTTP server's `'upgrade'` event. A plain TCP socket moves
   * into the engine (its descriptor is duplicated, Node's handle closed without ending the
   * connection, and every byte Node had read is replayed); a TLS socket is bridged instead.
   */
  handleUpgrade(req, socket, head = Buffer.alloc(0)) {
    const handle = socket._handle;
    const fd = handle && typeof handle.fd === 'number' ? handle.fd : -1;
    // Only a plain TCP socket can move: TLS bytes need Node to decrypt them, and Unix
    // sockets and JS streams are not TCP. Those are bridged.
    const tcp = typeof socket.remotePort === 'number';
    if (socket.encrypted || fd < 0 || !tcp) return this._bridge(req, socket, head);
    // One synchronous block: stop Node reading, collect what it already read, hand over.
    socket.pause();
    if (typeof handle.readStop === 'function') handle.readStop();
    const chunks = [head];
    let chunk;
    while ((chunk = socket.read()) !== null) chunks.push(chunk);
    if (typeof handle.readStop === 'function') handle.readStop();
    const [address, port] = peerOf(socket);
    try {
      this._native.adopt(fd, req.method, req.url, req.rawHeaders, Buffer.concat(chunks), address, port);
    } finally {
      socket.destroy();
    }
  }

  _bridge(req, socket, head) {
    const [address, port] = peerOf(socket);
    let bridge = null;
    // Each chunk is acknowledged once written, so a client that stops reading stops the
    // engine's writer (and gets disconnected as a slow reader) instead of growing Node's buffer.
    bridge = this._native.openBridge(req.method, req.url, req.rawHeaders, head, address, port, (chunk) => {
      if (chunk === null || chunk === undefined) socket.end();
      else if (!socket.destroyed) socket.write(chunk, () => bridge && bridge.ack());
    }, () => {
      if (!socket.destroyed) socket.resume();
    });
    this._bridged.add(socket);
    // The other way too: past a bound of bytes the engine has not taken yet, `write` says
    // stop and the socket pauses until the engine drains them (`onDrain` above), so a client
    // that sends faster than the engine reads cannot grow our memory.
    socket.on('data', (data) => {
      if (!bridge.write(data)) socket.pause();
    });
    // The client is done: end our side too (HTTP servers' sockets allow half-open, and a
    // half-open socket would keep server.close() waiting).
    socket.on('end', () => {
      bridge.end();
      socket.end();
    });
    // Gone (closed or failed): the engine's side ends at once, even while it is not reading.
    socket.on('close', () => {
      bridge.abort();
      this._bridged.delete(socket);
    });
    socket.on('error', () => bridge.abort());
  }

  /** Serves an HTTP request: Socket.IO long-polling, `/healthz`, `/metrics`. */
  handleRequest(req, res) {
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > this._maxPayload) tooLarge = true;
      else if (!tooLarge) chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) {
        res.writeHead(413, { 'content-type': 'application/json' });
        res.end('{"code":3,"message":"Payload too large"}');
        return;
      }
      const [address, port] = peerOf(req.socket);
      let call = null;
      const onAnswer = (answer) => {
        if (res.destroyed || res.writableEnded) return;
        const headers = {};
        for (let i = 0; i + 1 < answer.headers.length; i += 2) headers[answer.headers[i]] = answer.headers[i + 1];
        res.writeHead(answer.status, headers);
        if (answer.streaming) {
          if (answer.body.length) res.write(answer.body);
          if (typeof res.flushHeaders === 'function') res.flushHeaders();
        } else {
          res.end(answer.body);
        }
      };
      const onChunk = (chunk) => {
        if (res.destroyed || res.writableEnded) return;
        if (chunk === null || chunk === undefined) res.end();
        else res.write(chunk, () => call && call.ack());
      };
      call = this._native.handleHttp(req.method, req.url, req.rawHeaders, Buffer.concat(chunks), address, port, onAnswer, onChunk);
      // The client went away first: a pending long poll closes its session, a stream ends.
      res.on('close', () => {
        if (!res.writableFinished) call.cancel();
      });
    });
  }

  /**
   * Listens on its own port: `await engine.listen({host, port})` resolves the bound port.
   * `tls: {cert, key}` (PEM contents, as for `https.createServer`) serves HTTPS and WSS.
   */
  async listen({ host = '127.0.0.1', port = 0, tls } = {}) {
    if (tls == null) return this._native.listen(host, port);
    return this._native.listen(host, port, pemBuffer(tls.cert, 'tls.cert'), pemBuffer(tls.key, 'tls.key'));
  }

  /**
   * `engine.to(room).emit(event, data)`, or several rooms: `engine.to(['a', 'b']).except('c')
   * .emit(...)` reaches each socket in a or b but not in c once. Encoded once.
   */
  to(rooms) {
    return new BroadcastOperator(this._native, roomList(rooms, 'to()'));
  }

  /** Runs `fn(socket)` for every connection (several handlers run in order, awaited). */
  onConnection(fn) {
    if (typeof fn !== 'function') throw new TypeError('onConnection takes a function');
    this._onConnection.push(fn);
    this._watch();
    return this;
  }

  /** Runs `fn(socket, reason)` for every disconnection (Socket.IO's reason names). */
  onDisconnect(fn) {
    if (typeof fn !== 'function') throw new TypeError('onDisconnect takes a function');
    this._onDisconnect.push(fn);
    this._watch();
    return this;
  }

  /** The rooms with sockets on this node: `[{roomId, sockets}]`. */
  rooms() {
    return this._native.rooms();
  }

  /**
   * The sockets in a room across the cluster (Socket.IO's `fetchSockets`): resolves
   * `[{id, user, rooms}]`; other nodes that do not answer within `timeout` (5000 ms) are left out.
   */
  sockets(room, { timeout = 5000 } = {}) {
    if (typeof room !== 'string') return Promise.reject(new TypeError('sockets(room) takes a room name'));
    if (!(Number.isFinite(timeout) && timeout > 0)) {
      return Promise.reject(new TypeError('sockets: timeout must be a positive number of milliseconds'));
    }
    const ms = Math.min(Math.ceil(timeout), 2 ** 31 - 1);
    return new Promise((resolve, reject) => {
      try {
        this._native.fetchSockets(room, ms, resolve);
      } catch (error) {
        reject(error);
      }
    });
  }

  /** `engine.toUser(userId).emit(event, data)`: to every connection of a user. */
  toUser(userId) {
    return { emit: (event, data) => this._native.emitToUser(userId, event, data === undefined ? null : data) };
  }

  /** Stores and delivers a message to a room as a user; resolves `{id, timestamp}`. */
  publish(roomId, { text, userId = 'api', username } = {}) {
    return new Promise((resolve, reject) => {
      this._native.publish(roomId, userId, username ?? null, typeof text === 'string' ? text : '', (result) => {
        if (result && result.ok) resolve(result.ok);
        else {
          const error = new Error((result && result.error && result.error.message) || 'publish failed');
          error.code = result && result.error && result.error.code;
          reject(error);
        }
      });
    });
  }

  /** Sends `event` (default `notification`) to every connection of a user, Socket.IO and SSE. */
  notifyUser(userId, data, event = 'notification') {
    return this._native.notifyUser(userId, event, data === undefined ? null : data);
  }

  /** Handles a client event the engine does not handle itself; the result is the ack. */
  on(event, handler) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    if (typeof event !== 'string') throw new TypeError(`engine.on(event): event must be a string, got ${typeof event}`);
    const refusal = native.appEventRefusal(event);
    if (refusal) throw new Error(`engine.on('${event}'): ${refusal}`);
    if (this._handlers.has(event)) {
      // An ack has one answer: a second handler would either be silently ignored or race.
      throw new Error(`engine.on('${event}'): a handler is already registered; one handler per event (its result is the ack). Call engine.off('${event}') first to replace it`);
    }
    this._handlers.set(event, handler);
    this._native.registerEvent(event);
    return this;
  }

  /** Removes the handler of a client event; the event is then unknown to clients again. */
  off(event) {
    this._handlers.delete(event);
    return this;
  }

  /** The users present in a room: `[{userId, username}]`. */
  presence(roomId) {
    return this._native.presence(roomId);
  }

  /**
   * Disconnects every connection of a user (Socket.IO, SSE, Yjs: close 4410), on every node;
   * returns how many there were on this one. A kick, not a ban: EventSource and y-websocket
   * apps may reconnect; also stop accepting the user's token to keep them out.
   */
  disconnectUser(userId) {
    return this._native.disconnectUser(userId);
  }

  /** Counters: connections, sockets, rooms, messages, packets, Yjs documents and their connections. */
  stats() {
    return this._native.stats();
  }

  /** Closes every connection and stops the engine. */
  async close() {
    if (this._closed) return;
    this._closed = true;
    this._activity(false);
    this._native.close();
    this._closeLogs();
    // Bridged sockets are Node's: with the engine gone nothing will end them.
    for (const socket of this._bridged) socket.destroy();
    this._bridged.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Options: every key checked against the engine's settings table (native `settingNames()`), so
// a typo or a CLI spelling fails `new Engine` / `register` instead of being dropped.

/** Options of `new Engine` that are not engine settings. */
const HOST_OPTIONS = ['authenticate', 'authorizeRoom', 'storeMessage', 'onDocumentUpdate', 'logger', 'logLevel'];
const FUNCTION_OPTIONS = new Set(['authenticate', 'authorizeRoom', 'storeMessage', 'onDocumentUpdate']);
const MAX_U32 = 4294967295;
const UNITS = { millis: 'milliseconds', seconds: 'seconds', bytes: 'bytes', count: 'a count' };

let settingsTable = null;
function settings() {
  if (!settingsTable) {
    settingsTable = new Map();
    for (const s of native.settingNames()) {
      settingsTable.set(s.node, { name: s.node, kind: s.kind });
      for (const alias of s.aliases) settingsTable.set(alias, { name: s.node, kind: s.kind, alias: true });
    }
  }
  return settingsTable;
}

function optionError(message) {
  const error = new TypeError(message);
  error.code = 'ERR_SWITCHBOARD_OPTION';
  return error;
}

function describeValue(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const text = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : String(value);
  return `${text} (${typeof value})`;
}

function checkValue(key, kind, value) {
  if (kind === 'secret') {
    if (value === undefined || value === null || value === '') {
      throw optionError(`\`${key}\` is empty or undefined; set it or remove it`);
    }
    if (typeof value !== 'string') throw optionError(`\`${key}\` must be a string, got ${describeValue(value)}`);
    return value;
  }
  if (value === undefined || value === null) return undefined;
  if (kind in UNITS) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_U32) {
      throw optionError(`\`${key}\` must be a whole number from 0 to ${MAX_U32} (${UNITS[kind]}), got ${describeValue(value)}`);
    }
    return value;
  }
  if (kind === 'flag') {
    if (typeof value !== 'boolean') throw optionError(`\`${key}\` must be true or false, got ${describeValue(value)}`);
    return value;
  }
  if (kind === 'textList') {
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
      throw optionError(`\`${key}\` must be an array of strings, got ${describeValue(value)}`);
    }
    return value;
  }
  if (typeof value !== 'string') throw optionError(`\`${key}\` must be a string, got ${describeValue(value)}`);
  return value;
}

/**
 * Checks `new Engine` options: unknown keys are refused with the nearest valid name, secrets
 * present but empty or undefined are refused, values of the wrong type or out of range are
 * refused naming the option; older spellings become the current ones. `extra` names options
 * a caller (the Fastify plugin) takes for itself.
 */
function checkOptions(options, extra = []) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw optionError(`options must be an object, got ${describeValue(options)}`);
  }
  const table = settings();
  const out = {};
  for (const key of Object.keys(options)) {
    const value = options[key];
    if (extra.includes(key)) {
      out[key] = value;
      continue;
    }
    if (HOST_OPTIONS.includes(key)) {
      if (FUNCTION_OPTIONS.has(key) && value != null && typeof value !== 'function') {
        throw optionError(`\`${key}\` must be a function, got ${describeValue(value)}`);
      }
      if (key === 'logLevel' && value != null && typeof value !== 'string') {
        throw optionError(`\`logLevel\` must be a string like 'info' or 'switchboard=debug', got ${describeValue(value)}`);
      }
      if (value != null) out[key] = value;
      continue;
    }
    const setting = table.get(key);
    if (!setting) {
      const valid = [...[...table.entries()].filter(([, s]) => !s.alias).map(([k]) => k), ...HOST_OPTIONS, ...extra];
      const near = native.suggestName(String(key), valid);
      throw optionError(near ? `unknown option \`${key}\`; did you mean \`${near}\`?` : `unknown option \`${key}\``);
    }
    const checked = checkValue(key, setting.kind, value);
    if (checked === undefined) continue;
    if (setting.alias && options[setting.name] !== undefined) {
      throw optionError(`\`${key}\` is the old name of \`${setting.name}\`; give only \`${setting.name}\``);
    }
    out[setting.name] = checked;
  }
  return out;
}

// `logger: undefined`: warnings and errors to the console; `false`/`null`: none; else a
// pino-like object (`app.log`).
function loggerOf(logger) {
  if (logger === false || logger === null) return null;
  if (logger === undefined) return consoleLogger;
  if (typeof logger !== 'object' && typeof logger !== 'function') {
    throw optionError(`\`logger\` must be an object with trace/debug/info/warn/error methods (like pino's), got ${describeValue(logger)}`);
  }
  for (const level of ['info', 'warn', 'error']) {
    if (typeof logger[level] !== 'function') throw optionError(`\`logger\` has no ${level}() method`);
  }
  return logger;
}

// The console fallback says only what needs attention, unless the environment asks for more.
function defaultFilter(logger) {
  if (logger !== undefined || process.env.SWITCHBOARD_LOG || process.env.RUST_LOG) return null;
  return 'switchboard=warn';
}

const consoleLogger = {
  trace: (fields, message) => console.debug(`switchboard TRACE ${message}`, fields),
  debug: (fields, message) => console.debug(`switchboard DEBUG ${message}`, fields),
  info: (fields, message) => console.info(`switchboard INFO ${message}`, fields),
  warn: (fields, message) => console.warn(`switchboard WARN ${message}`, fields),
  error: (fields, message) => console.error(`switchboard ERROR ${message}`, fields),
};

module.exports = { Engine, SwitchboardError, checkOptions };
