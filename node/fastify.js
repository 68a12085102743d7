'use strict';
// Fastify plugin: serves Socket.IO, SSE, the server API, Yjs documents, plain WebSocket (/ws),
// /metrics and /healthz
// on the app's own server and port through the engine, every one of them as a Fastify route
// (WebSocket upgrades included), so the app's hooks apply to them all.
//
//   await app.register(require('@switchboard/node/fastify'), { jwtSecret: process.env.JWT_SECRET, prefix: '/rt' });
//   app.switchboard.to('lobby').emit('notice', { text: 'hello' });

const { ServerResponse } = require('node:http');
const { Engine, SwitchboardError } = require('./index.js');

// Options the plugin takes for itself (and those Fastify's `register` passes along), so that
// `new Engine` knows them: a typo of one still gets "did you mean".
const PLUGIN_OPTIONS = ['logSerializers'];

// Marks a request that arrived as an `'upgrade'`: the socket and the bytes read past its head.
const kUpgrade = Symbol('switchboard.upgrade');

async function switchboard(app, options) {
  const engineOptions = { ...options };
  // The engine logs where the app does, marked as the plugin's.
  if (engineOptions.logger === undefined) engineOptions.logger = app.log.child({ plugin: 'switchboard' });
  const engine = new Engine(engineOptions, { extraOptions: PLUGIN_OPTIONS });
  app.decorate('switchboard', engine);
  const paths = engine.endpoints();

  // Fastify does not route upgrades: send them through its router with a response bound to
  // the socket (what @fastify/websocket does), so onRequest/preHandler hooks run first. A hook
  // that replies writes its answer to the socket, which is then closed; otherwise the route's
  // handler hands the socket to the engine.
  const onUpgrade = (req, socket, head) => {
    const path = (req.url || '').split('?')[0];
    if (!engine.serves(path)) {
      // With no other upgrade listener, Node would leave this socket hanging forever.
      if (app.server.listenerCount('upgrade') === 1) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        socket.destroy();
      }
      return;
    }
    req[kUpgrade] = { socket, head };
    const res = new ServerResponse(req);
    res.assignSocket(socket);
    // Answered by a hook (or an error): nothing switches, the connection ends.
    res.on('finish', () => socket.destroy());
    socket.on('error', () => socket.destroy());
    try {
      app.routing(req, res);
    } catch (error) {
      app.log.warn({ err: error }, 'switchboard: upgrade failed');
      socket.destroy();
    }
  };
  app.server.on('upgrade', onUpgrade);

  const handler = (request, reply) => {
    reply.hijack();
    const upgrade = request.raw[kUpgrade];
    if (upgrade) {
      reply.raw.detachSocket(upgrade.socket);
      try {
        engine.handleUpgrade(request.raw, upgrade.socket, upgrade.head);
      } catch (error) {
        app.log.warn({ err: error }, 'switchboard: upgrade failed');
        upgrade.socket.destroy();
      }
      return;
    }
    engine.handleRequest(request.raw, reply.raw);
  };

  // Every route in a scope of its own whose content parser leaves the body unread: the
  // engine reads it (with its maxPayload limit) from the raw request.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (request, payload, done) => done(null));
    const methods = ['GET', 'POST', 'OPTIONS'];
    const socketio = paths.socketio.replace(/\/+$/, '');
    for (const url of [`${socketio}/`, socketio]) scope.route({ method: methods, url, handler });
    if (paths.events) scope.route({ method: methods, url: paths.events, handler });
    if (paths.api) scope.route({ method: methods, url: `${paths.api}*`, handler });
    if (paths.yjs) scope.route({ method: 'GET', url: `${paths.yjs}*`, handler });
    if (paths.metrics) scope.route({ method: 'GET', url: paths.metrics, handler });
    if (paths.ws) scope.route({ method: 'GET', url: paths.ws, handler });
    if (paths.healthz) {
      // Answered from the engine's state without a request to it: it works while it closes.
      scope.route({
        method: 'GET',
        url: paths.healthz,
        handler: (request, reply) => {
          const answer = engine.health();
          reply.code(answer.status).header('content-type', 'application/json').send(answer.body);
        },
      });
    }
  });

  // preClose, not onClose: Fastify waits for in-flight requests before onClose, and a
  // pending long poll or event stream only ends when the engine closes.
  app.addHook('preClose', async () => {
    app.server.off('upgrade', onUpgrade);
    await engine.close();
  });
}

// What fastify-plugin does: share `app.switchboard` with the rest of the app.
switchboard[Symbol.for('skip-override')] = true;
switchboard[Symbol.for('fastify.display-name')] = '@switchboard/node';
switchboard[Symbol.for('plugin-meta')] = { name: '@switchboard/node', fastify: '5.x' };

module.exports = switchboard;
module.exports.default = switchboard;
module.exports.switchboard = switchboard;
module.exports.SwitchboardError = SwitchboardError;
