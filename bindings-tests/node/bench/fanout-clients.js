'use strict';
// The client side of bench/fanout-eventloop.js, in a process of its own so that the app
// process measures the server, not 1000 clients. The same script, forked twice more, is the
// publisher (sendMessage flood) and an idle control process measuring its own event loop. Raw TCP sockets speaking just enough
// WebSocket + Engine.IO + Socket.IO: each writes the upgrade request, its CONNECT and its
// joinRoom in one write, then counts the event frames it receives without decoding them.
//
// Driven over IPC by the parent:  {cmd:'connect', port, n, tokens[], room}  -> {ready, ms}
//                                 {cmd:'publish', rate, seconds, token}      -> {published}
//                                 {cmd:'counts'}                              -> {counts:{min,max,total,closed}}
//                                 {cmd:'exit'}

const net = require('node:net');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { upgradeRequest, textFrames, encodeFrame } = require('../helpers/wsframe');

const clients = [];
let eld = null;

// The flood's events: app emits ('tick') and chat messages ('message').
const COUNTED = { tick: Buffer.from('42["tick"'), message: Buffer.from('42["message"') };

/**
 * A minimal frame counter: counts the TEXT frames of the COUNTED events without decoding
 * them; other text frames that are not events go to `onText`.
 */
function counter(socket, onText) {
  let pending = null;
  let headDone = false;
  const events = { tick: 0, message: 0 };
  socket.on('data', (chunk) => {
    let b = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    if (!headDone) {
      const end = b.indexOf('\r\n\r\n');
      if (end === -1) { pending = b; return; }
      headDone = true;
      b = b.subarray(end + 4);
    }
    let off = 0;
    for (;;) {
      if (b.length - off < 2) break;
      const opcode = b[off] & 0x0f;
      let len = b[off + 1] & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (b.length - off < 4) break;
        len = b.readUInt16BE(off + 2);
        hdr = 4;
      } else if (len === 127) {
        if (b.length - off < 10) break;
        len = Number(b.readBigUInt64BE(off + 2));
        hdr = 10;
      }
      if (b.length - off < hdr + len) break;
      const p = off + hdr;
      if (opcode === 1) {
        if (len >= 2 && b[p] === 0x34 && b[p + 1] === 0x32) { // "42": an event
          for (const name in COUNTED) {
            const prefix = COUNTED[name];
            if (len >= prefix.length && b.compare(prefix, 0, prefix.length, p, p + prefix.length) === 0) events[name]++;
          }
        } else if (onText) onText(b.toString('utf8', p, p + len));
      }
      off = p + len;
    }
    if (off < b.length) pending = Buffer.from(b.subarray(off));
  });
  return events;
}

function connectOne(port, token, room) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    const c = { socket, closed: false, joined: false, count: null };
    socket.on('close', () => { c.closed = true; });
    socket.on('error', reject);
    c.count = counter(socket, (text) => {
      if (text === '2') socket.write(encodeFrame('3')); // answer Engine.IO pings
      else if (text.startsWith('430')) { c.joined = true; resolve(c); }
      else if (text.startsWith('44')) reject(new Error(`refused: ${text}`));
    });
    socket.on('connect', () => {
      socket.write(Buffer.concat([
        upgradeRequest(),
        textFrames('40' + JSON.stringify({ token }), `420${JSON.stringify(['joinRoom', room])}`),
      ]));
    });
  });
}

process.on('message', async (msg) => {
  try {
    if (msg.cmd === 'connect') {
      const t0 = Date.now();
      const batch = 50;
      for (let i = 0; i < msg.n; i += batch) {
        const part = [];
        for (let j = i; j < Math.min(msg.n, i + batch); j++) part.push(connectOne(msg.port, msg.tokens[j], msg.room));
        clients.push(...await Promise.all(part));
      }
      process.send({ ready: clients.length, ms: Date.now() - t0 });
    } else if (msg.cmd === 'publish') {
      // one more client that floods the room with sendMessage (no acks), at `rate` per second
      const pub = await connectOne(msg.port, msg.token, msg.room);
      const total = Math.round(msg.rate * msg.seconds);
      let sent = 0;
      const text = 'x'.repeat(msg.size || 64);
      const start = Date.now();
      await new Promise((resolve) => {
        const timer = setInterval(() => {
          // paced by the clock: `rate` per second however late the timer fires
          const due = Math.min(total, Math.ceil((msg.rate * (Date.now() - start + 10)) / 1000));
          const frames = [];
          for (; sent < due; sent++) {
            frames.push(encodeFrame(`42${JSON.stringify(['sendMessage', { roomId: msg.room, text: `${sent}:${text}` }])}`));
          }
          if (frames.length) pub.socket.write(Buffer.concat(frames));
          if (sent >= total) { clearInterval(timer); resolve(); }
        }, 10);
      });
      process.send({ published: sent });
      pub.socket.destroy();
    } else if (msg.cmd === 'counts') {
      const counts = { closed: clients.filter((c) => c.closed).length };
      for (const name of Object.keys(COUNTED)) {
        let min = Infinity;
        let max = 0;
        let total = 0;
        for (const c of clients) {
          const e = c.count[name];
          min = Math.min(min, e);
          max = Math.max(max, e);
          total += e;
        }
        counts[name] = { min: clients.length ? min : 0, max, total };
      }
      process.send({ counts });
    } else if (msg.cmd === 'eldStart') {
      // the control: this process's own event-loop delay (it does nothing else meanwhile)
      eld = monitorEventLoopDelay({ resolution: 1 });
      eld.enable();
      process.send({ eldStarted: true });
    } else if (msg.cmd === 'eldStop') {
      eld.disable();
      const ms = (ns) => Math.round(ns / 1e4) / 100;
      process.send({ eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), mean: ms(eld.mean), samples: eld.count } });
    } else if (msg.cmd === 'exit') {
      for (const c of clients) c.socket.destroy();
      process.disconnect();
    }
  } catch (e) {
    process.send({ error: e.message });
  }
});
