'use strict';
// A tiny WebSocket (RFC 6455) client codec for tests that must control the exact bytes on the
// wire: the HTTP upgrade request, masked client frames written in the same `write()` call, and
// a decoder for the server's response (HTTP head, then unmasked frames).

const crypto = require('node:crypto');
const net = require('node:net');
const tls = require('node:tls');

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };
const DEFAULT_TIMEOUT_MS = 3000;

/** A fresh Sec-WebSocket-Key (16 random bytes, base64). */
function newKey() {
  return crypto.randomBytes(16).toString('base64');
}

/** The Sec-WebSocket-Accept a server must answer for `key`. */
function acceptFor(key) {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** The HTTP/1.1 upgrade request for `path` as a Buffer. */
function upgradeRequest({ path = '/socket.io/?EIO=4&transport=websocket', host = '127.0.0.1', key = newKey(), headers = {} } = {}) {
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Key: ${key}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/**
 * Encodes one frame. Client-to-server frames must be masked (the default); `mask: false`
 * makes a server-style frame.
 */
function encodeFrame(payload, { opcode = OP.TEXT, fin = true, mask = true } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(String(payload), 'utf8');
  const len = data.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([header, data]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const masked = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) masked[i] = data[i] ^ key[i & 3];
  return Buffer.concat([header, key, masked]);
}

/** Masked text frames for each string, concatenated. */
function textFrames(...texts) {
  return Buffer.concat(texts.map((t) => encodeFrame(t)));
}

/**
 * Incremental frame decoder: `push(chunk)` returns the complete frames it now holds as
 * `{fin, opcode, masked, payload}` (payload unmasked). Fragmented messages are reassembled
 * into one TEXT/BINARY frame.
 */
class FrameDecoder {
  constructor() {
    this.buf = Buffer.alloc(0);
    this.fragments = null;
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out = [];
    for (;;) {
      const f = this._one();
      if (!f) break;
      if (f.opcode === OP.CONT || (!f.fin && f.opcode < 0x8)) {
        if (f.opcode !== OP.CONT) this.fragments = { opcode: f.opcode, parts: [] };
        if (!this.fragments) throw new Error('continuation frame without a start');
        this.fragments.parts.push(f.payload);
        if (f.fin) {
          out.push({ fin: true, opcode: this.fragments.opcode, masked: f.masked, payload: Buffer.concat(this.fragments.parts) });
          this.fragments = null;
        }
      } else {
        out.push(f);
      }
    }
    return out;
  }

  _one() {
    const b = this.buf;
    if (b.length < 2) return null;
    const fin = (b[0] & 0x80) !== 0;
    const opcode = b[0] & 0x0f;
    const masked = (b[1] & 0x80) !== 0;
    let len = b[1] & 0x7f;
    let off = 2;
    if (len === 126) {
      if (b.length < 4) return null;
      len = b.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return null;
      len = Number(b.readBigUInt64BE(2));
      off = 10;
    }
    let key = null;
    if (masked) {
      if (b.length < off + 4) return null;
      key = b.subarray(off, off + 4);
      off += 4;
    }
    if (b.length < off + len) return null;
    let payload = Buffer.from(b.subarray(off, off + len));
    if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
    this.buf = b.subarray(off + len);
    return { fin, opcode, masked, payload };
  }
}

/**
 * Splits an HTTP response head off `buf`: null while incomplete, else
 * {statusCode, statusLine, headers (lower-case names), rest}.
 */
function parseHttpHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines[0];
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { statusCode: m ? Number(m[1]) : null, statusLine, headers, rest: buf.subarray(end + 4) };
}

/**
 * Opens a TCP (or Unix socket with `socketPath`, or TLS with `tls: {...tls.connect options}`)
 * connection and writes `payload`
 * (typically the upgrade request followed by frames) in ONE write() call. Collects the server's
 * HTTP head and decodes the frames after it. Returns:
 *   response (promise of the parsed head), frames (decoded so far), texts() (text payloads),
 *   next(pred, timeout) (first unconsumed text frame matching pred), closed (promise),
 *   send(text) (another masked frame), close().
 */
function rawUpgrade({ host = '127.0.0.1', port, socketPath, payload, tls: tlsOptions, answerPings = true }) {
  const where = socketPath ? { path: socketPath } : { host, port };
  const socket = tlsOptions
    ? tls.connect({ ...where, servername: 'localhost', ...tlsOptions })
    : net.connect(where);
  const frames = [];
  const waiters = [];
  const decoder = new FrameDecoder();
  let head = null;
  let pending = Buffer.alloc(0);
  let resolveResponse;
  let rejectResponse;
  let closeInfo = null;
  const response = new Promise((res, rej) => { resolveResponse = res; rejectResponse = rej; });
  response.catch(() => {});

  const deliver = (frame) => {
    frame.used = false;
    frame.text = frame.opcode === OP.TEXT ? frame.payload.toString('utf8') : null;
    frames.push(frame);
    if (frame.opcode === OP.TEXT && answerPings && frame.text === '2') socket.write(encodeFrame('3'));
    for (let i = 0; i < waiters.length; i++) {
      if (frame.text !== null && waiters[i].pred(frame.text)) {
        frame.used = true;
        const w = waiters.splice(i, 1)[0];
        clearTimeout(w.timer);
        w.resolve(frame.text);
        break;
      }
    }
  };

  socket.on(tlsOptions ? 'secureConnect' : 'connect', () => socket.write(payload));
  socket.on('data', (chunk) => {
    if (!head) {
      pending = Buffer.concat([pending, chunk]);
      head = parseHttpHead(pending);
      if (!head) return;
      resolveResponse(head);
      chunk = head.rest;
      pending = null;
    }
    for (const f of decoder.push(chunk)) deliver(f);
  });
  socket.on('error', (e) => rejectResponse(e));
  const closed = new Promise((resolve) => socket.once('close', () => {
    closeInfo = { at: Date.now() };
    rejectResponse(new Error('connection closed before an HTTP response'));
    for (const w of waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error('connection closed while waiting for a frame'));
    }
    resolve(closeInfo);
  }));

  return {
    socket,
    response,
    frames,
    closed,
    texts() { return frames.filter((f) => f.text !== null).map((f) => f.text); },
    next(pred = () => true, timeout = DEFAULT_TIMEOUT_MS) {
      const found = frames.find((f) => !f.used && f.text !== null && pred(f.text));
      if (found) {
        found.used = true;
        return Promise.resolve(found.text);
      }
      if (closeInfo) return Promise.reject(new Error('connection closed'));
      return new Promise((resolve, reject) => {
        const w = { pred, resolve, reject };
        w.timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i !== -1) waiters.splice(i, 1);
          const got = frames.map((f) => (f.text !== null ? JSON.stringify(f.text.slice(0, 60)) : `<op ${f.opcode}>`));
          reject(new Error(`timed out after ${timeout} ms waiting for a frame; got ${got.join(' | ') || 'nothing'}`));
        }, timeout);
        waiters.push(w);
      });
    },
    send(text) { socket.write(encodeFrame(text)); },
    close() { socket.destroy(); },
  };
}

module.exports = {
  OP,
  newKey,
  acceptFor,
  upgradeRequest,
  encodeFrame,
  textFrames,
  FrameDecoder,
  parseHttpHead,
  rawUpgrade,
};
