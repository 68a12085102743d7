'use strict';
// Fastify plugin: serves Socket.IO on the app's own server and port through the engine.
//
//   await app.register(require('@switchboard/node/fastify'), { jwtSecret: process.env.JWT_SECRET });
//   app.switchboard.to('lobby').emit('notice', { text: 'hello' });

const { Engine, SwitchboardError } = require('./index.js');

// Options the plugin takes for itself (and those Fastify's `register` passes along), so that
// `new Engine` knows them: a typo of one still gets "did you mean".
const PLUGIN_OPTIONS = ['prefix', 'logSerializers'];

async function switchboard(app, options) {
  const engineOptions = { ...options };
  // The engine logs where the app does, marked as the plugin's.
  if (engineOptions.logger === undefined) engineOptions.logger = app.log.child({ plugin: 'switchboard' });
  const engine = new Engine(engineOptions, { extraOptions: PLUGIN_OPTIONS });
  app.decorate('switchboard', engine);

  // WebSocket upgrades never reach Fastify's router: take them from the server itself.
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
    try {
      engine.handleUpgrade(req, socket, head);
    } catch (error) {
      app.log.warn({ err: error }, 'switchboard: upgrade failed');
      socket.destroy();
    }
  };
  app.server.on('upgrade', onUpgrade);

  // Long-polling routes, in a scope of their own whose content parser leaves the body
  // unread: the engine reads it (with its maxPayload limit) from the raw request.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (request, payload, done) => done(null));
    const handler = (request, reply) => {
      reply.hijack();
      engine.handleRequest(request.raw, reply.raw);
    };
    for (const url of ['/socket.io/', '/socket.io', '/events']) {
      scope.route({ method: ['GET', 'POST', 'OPTIONS'], url, handler });
    }
    scope.route({ method: ['GET', 'POST', 'OPTIONS'], url: '/api/*', handler });
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
