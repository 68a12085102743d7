'use strict';
// @switchboard/node: the Switchboard engine inside a Node process. The engine runs on its own
// Rust threads; this file hands it Node's sockets and requests and adapts JS callbacks.

// Windows is not a target: the engine adopts Node's TCP sockets by file descriptor, and no
// win32 binary is built or published (package.json's `os` lists linux and darwin).
if (process.platform === 'win32') {
  throw new Error('@switchboard/node does not support Windows; run it on Linux or macOS (WSL 2 works).');
}

const { NativeEngine } = require('./native.js');

function messageOf(error) {
  if (error && typeof error.message === 'string' && error.message) return error.message;
  return String(error);
}

// Every callback crosses to Rust as `(value) => Promise<{ok} | {error}>`, so a throw or a
// rejection arrives as data and never as an uncaught exception.
function settle(fn) {
  return async (...args) => {
    try {
      const ok = await fn(...args);
      return { ok: ok === undefined ? null : ok };
    } catch (error) {
      return { error: messageOf(error) };
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

function peerOf(socket) {
  return [socket.remoteAddress || '', socket.remotePort || 0];
}

class Engine {
  /**
   * @param {import('./index').EngineOptions} [options]
   */
  constructor(options = {}) {
    const { authenticate, authorizeRoom, storeMessage, onDocumentUpdate, ...config } = options;
    this._handlers = new Map();
    this._keepAlive = null;
    this._closed = false;
    this._bridged = new Set();
    this._maxPayload = config.maxPayload ?? 1000000;
    const auth = authenticate && settle((handshake) => authenticate(handshake));
    const rooms = authorizeRoom && settle(({ user, roomId }) => authorizeRoom(user, roomId));
    const store = storeMessage && settle((message) => storeMessage(message));
    // Called from the engine's threads: a throw here would be an uncaught exception.
    const documentUpdate = onDocumentUpdate && ((docName, update) => {
      try {
        const result = onDocumentUpdate(docName, update);
        if (result && typeof result.catch === 'function') result.catch((error) => warnHook(error));
      } catch (error) {
        warnHook(error);
      }
    });
    this._native = new NativeEngine(
      config,
      auth,
      rooms,
      store,
      (call) => this._dispatch(call),
      (active) => this._activity(active),
      documentUpdate,
    );
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
    if (!handler) return { error: `Unknown event ${event}` };
    try {
      const ok = await handler(this._socketApi(socket), ...(args || []));
      return { ok: ok === undefined ? null : ok };
    } catch (error) {
      return { error: messageOf(error) };
    }
  }

  _socketApi({ id, user, rooms }) {
    const native = this._native;
    return {
      id,
      user,
      rooms,
      join: (room) => native.socketJoin(id, room),
      leave: (room) => native.socketLeave(id, room),
      emit: (event, data) => native.socketEmit(id, event, data === undefined ? null : data),
      disconnect: () => native.socketDisconnect(id),
    };
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

  /** `engine.to(room).emit(event, data)`: encoded once, queued for every member. */
  to(room) {
    return { emit: (event, data) => this._native.emitToRoom(room, event, data === undefined ? null : data) };
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
    this._handlers.set(event, handler);
    this._native.registerEvent(event);
    return this;
  }

  /** The users present in a room: `[{userId, username}]`. */
  presence(roomId) {
    return this._native.presence(roomId);
  }

  /** Disconnects every connection of a user; resolves how many there were. */
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
    // Bridged sockets are Node's: with the engine gone nothing will end them.
    for (const socket of this._bridged) socket.destroy();
    this._bridged.clear();
  }
}

module.exports = { Engine };
