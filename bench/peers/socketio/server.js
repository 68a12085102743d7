'use strict';
// The Switchboard wire contract (docs: /work/shared/DESIGN.md, "Wire contract") implemented
// the idiomatic way on Node Socket.IO 4.8: a plain http server, a JWT auth middleware,
// rooms via socket.join, broadcasts via io.to(room).emit. This is the benchmark's peer.
//
//   node server.js --port 0 --jwt-secret S      (or PORT / SWITCHBOARD_JWT_SECRET)
// prints "switchboard listening on http://127.0.0.1:PORT" once it accepts connections.

const http = require('http');
const crypto = require('crypto');
const { Server } = require('socket.io');
const jwt = require('jsonwebtoken');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = arg('host', '127.0.0.1');
const port = Number(arg('port', process.env.PORT || 3000));
const secret = arg('jwt-secret', process.env.SWITCHBOARD_JWT_SECRET);
if (!secret) {
  console.error('a JWT secret is required: --jwt-secret S or SWITCHBOARD_JWT_SECRET');
  process.exit(2);
}
const MAX_TEXT = 4000;

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
    return;
  }
  res.writeHead(404);
  res.end();
});
const io = new Server(server, {
  path: '/socket.io/',
  serveClient: false,
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000 },
});

// presence: roomId -> Map(userId -> { username, connections })
const presence = new Map();

function fail(cb, code, message) {
  if (typeof cb === 'function') cb({ code, message });
}

// time-sortable unique id: 48-bit ms timestamp + counter, hex
let lastMs = 0;
let seq = 0;
function newId() {
  const ms = Date.now();
  if (ms === lastMs) seq++;
  else {
    lastMs = ms;
    seq = 0;
  }
  return ms.toString(16).padStart(12, '0') + seq.toString(16).padStart(6, '0') + crypto.randomBytes(3).toString('hex');
}

io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (!token) return next(new Error('Authentication required'));
  jwt.verify(token, secret, { algorithms: ['HS256'] }, (err, claims) => {
    if (err) return next(new Error(err.name === 'TokenExpiredError' ? 'Token expired' : 'Invalid token'));
    if (!claims || typeof claims.sub !== 'string') return next(new Error('Invalid token'));
    socket.data.user = { userId: claims.sub, username: claims.username || claims.sub };
    next();
  });
});

io.on('connection', (socket) => {
  const user = socket.data.user;
  socket.join(`user:${user.userId}`);
  const joined = new Set();

  function leave(roomId, notify) {
    if (!joined.delete(roomId)) return false;
    socket.leave(roomId);
    const members = presence.get(roomId);
    const entry = members && members.get(user.userId);
    if (entry && --entry.connections === 0) {
      members.delete(user.userId);
      if (members.size === 0) presence.delete(roomId);
      if (notify) socket.to(roomId).emit('userLeft', { roomId, userId: user.userId, username: user.username });
    }
    return true;
  }

  socket.on('joinRoom', (roomId, cb) => {
    if (typeof roomId !== 'string') return fail(cb, 'INVALID_ROOM', 'roomId must be a string');
    // eslint-disable-next-line no-control-regex
    if (roomId.length === 0 || [...roomId].length > 128 || /[\x00-\x1f\x7f-\x9f]/.test(roomId)) {
      return fail(cb, 'INVALID_ROOM', 'roomId must be 1 to 128 printable characters');
    }
    if (roomId.startsWith('user:')) return fail(cb, 'ACCESS_DENIED', `You may not join ${roomId}`);
    if (!joined.has(roomId)) {
      joined.add(roomId);
      socket.join(roomId);
      let members = presence.get(roomId);
      if (!members) presence.set(roomId, (members = new Map()));
      let entry = members.get(user.userId);
      if (!entry) {
        members.set(user.userId, (entry = { username: user.username, connections: 0 }));
        socket.to(roomId).emit('userJoined', { roomId, userId: user.userId, username: user.username });
      }
      entry.connections++;
      const list = [];
      for (const [userId, e] of members) list.push({ userId, username: e.username });
      socket.emit('roomMembers', { roomId, members: list });
    }
    if (typeof cb === 'function') cb(null);
  });

  socket.on('leaveRoom', (roomId, cb) => {
    if (!leave(roomId, true)) return fail(cb, 'NOT_IN_ROOM', `Not in room ${roomId}`);
    if (typeof cb === 'function') cb(null);
  });

  socket.on('sendMessage', (payload, cb) => {
    const roomId = payload && payload.roomId;
    const text = payload && payload.text;
    if (typeof roomId !== 'string' || !joined.has(roomId)) return fail(cb, 'NOT_IN_ROOM', `Not in room ${roomId}`);
    if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TEXT) {
      return fail(cb, 'INVALID_MESSAGE', 'Message text must be a non-empty string within the limit');
    }
    const msg = {
      id: newId(),
      roomId,
      text,
      userId: user.userId,
      username: user.username,
      timestamp: new Date().toISOString(),
    };
    io.to(roomId).emit('message', msg);
    if (typeof cb === 'function') cb(null, { id: msg.id, timestamp: msg.timestamp });
  });

  socket.on('disconnect', () => {
    for (const roomId of [...joined]) leave(roomId, true);
  });
});

server.listen(port, host, () => {
  const addr = server.address();
  console.log(`switchboard listening on http://${host}:${addr.port}`);
});

function shutdown() {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
