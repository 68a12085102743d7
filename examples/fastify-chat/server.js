'use strict';
// The Switchboard demo: a Fastify 5 app with the @switchboard/node plugin and one page.
//
//   node server.js            # http://127.0.0.1:3000
//   PORT=8080 HOST=0.0.0.0 JWT_SECRET=... DATA_DIR=/var/lib/chat node server.js
//
// The engine runs embedded (no Redis): history and the notes (Yjs documents) are stored under
// DATA_DIR (default .data/ beside this file). POST /login mints a development JWT for a name;
// a real app would sign users in its own way and mint the same kind of token.

const fs = require('node:fs');
const path = require('node:path');
const Fastify = require('fastify');
const jwt = require('jsonwebtoken');
const switchboard = require('@switchboard/node/fastify');
const { importMap, packageDirs, vendorRoutes } = require('./lib/vendor');

const PUBLIC = path.join(__dirname, 'public');
const DEV_SECRET = 'dev-secret-change-me';
/** A room nobody may join, to show how an access refusal looks. */
const LOCKED_ROOM = 'locked';
// How long a signed-in session's token lasts (the page signs in again before it ends).
const TOKEN_TTL = process.env.TOKEN_TTL || '12h';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** A display name: 1 to 32 characters, no control characters, spaces collapsed. */
function cleanName(value) {
  if (typeof value !== 'string') return null;
  const name = value.replace(/\s+/g, ' ').trim();
  if (!name || [...name].length > 32 || /\p{Cc}/u.test(name)) return null;
  return name;
}

/**
 * Builds the app (not listening). Options: jwtSecret, dataDir, logger and engine overrides
 * (`engine`: more @switchboard/node options).
 */
async function buildApp({ jwtSecret = DEV_SECRET, dataDir, logger = false, engine = {} } = {}) {
  const app = Fastify({ logger });
  if (dataDir) fs.mkdirSync(dataDir, { recursive: true });

  await app.register(switchboard, {
    jwtSecret,
    dataDir,
    // Room access for chat rooms and for the notes (the Yjs document `name` is the room
    // `doc:name`): every room is open except one, which shows how a refusal looks.
    authorizeRoom: async (user, roomId) => roomId !== LOCKED_ROOM && roomId !== `doc:${LOCKED_ROOM}`,
    ...engine,
  });

  // Sign in with a name: the user id is the name in lower case, so the same name in two tabs
  // is one user (presence and typing are per user, not per tab).
  app.post('/login', async (request, reply) => {
    const username = cleanName(request.body && request.body.name);
    if (!username) {
      return reply.code(400).send({ code: 'INVALID_NAME', message: 'Choose a name of 1 to 32 characters' });
    }
    const id = username.toLowerCase();
    const token = jwt.sign({ sub: id, username }, jwtSecret, { algorithm: 'HS256', expiresIn: TOKEN_TTL });
    return { token, user: { id, username } };
  });

  // The page's own files, read on each request (edit and reload).
  const dirs = packageDirs(__dirname);
  const map = JSON.stringify(importMap(dirs), null, 2);
  const sendFile = async (reply, file) => {
    let body = await fs.promises.readFile(path.join(PUBLIC, file), 'utf8');
    if (file === 'index.html') body = body.replace('<!--IMPORTMAP-->', `<script type="importmap">\n${map}\n</script>`);
    return reply
      .type(TYPES[path.extname(file)] || 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(body);
  };
  app.get('/', (request, reply) => sendFile(reply, 'index.html'));
  for (const file of fs.readdirSync(PUBLIC)) {
    if (file !== 'index.html' && TYPES[path.extname(file)]) app.get(`/${file}`, (request, reply) => sendFile(reply, file));
  }
  vendorRoutes(app, dirs);
  return app;
}

async function main() {
  const host = process.env.HOST || '127.0.0.1';
  const port = Number(process.env.PORT ?? 3000);
  const jwtSecret = process.env.JWT_SECRET || DEV_SECRET;
  const dataDir = process.env.DATA_DIR || path.join(__dirname, '.data');
  const app = await buildApp({ jwtSecret, dataDir, logger: process.env.LOG === '1' });
  await app.listen({ host, port });
  const { port: bound } = app.server.address();
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  console.log(`Switchboard demo chat: http://${shown.includes(':') ? `[${shown}]` : shown}:${bound}`);
  console.log('Open it in two browser windows and sign in with two names. Ctrl-C stops it.');
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    // Closing stores the notes (Yjs documents) that changed since their last store.
    app.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}

module.exports = { buildApp, cleanName };
