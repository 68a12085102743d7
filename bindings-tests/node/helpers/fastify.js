'use strict';
// Fastify 5 apps with the @switchboard/node plugin, on 127.0.0.1 port 0, and a self-signed
// certificate for the HTTPS ones.

const Fastify = require('fastify');
const switchboard = require('@switchboard/node/fastify');
const { SECRET } = require('./server');
const { selfSignedCert } = require('./tls');

/** Every app started through this module, so `closeApps()` can end the stragglers. */
const apps = new Set();

/**
 * Starts a Fastify app with the plugin. `options` go to the plugin (engine settings and
 * callbacks; jwtSecret defaults to the tests' SECRET unless `authenticate` is given or
 * jwtSecret is set to undefined explicitly). `https` is Fastify's https option.
 * The app also has its own route, GET /hello, to show that the plugin leaves routing alone.
 * Resolves {app, engine, url, port, close()}.
 */
async function startApp(options = {}, { https } = {}) {
  const app = Fastify({ logger: false, ...(https ? { https } : {}) });
  // The test's secret unless it verifies tokens another way.
  const ownKey = ['jwtSecret', 'jwtPublicKey', 'jwksUrl'].some((k) => k in options) || options.authenticate;
  const pluginOptions = ownKey ? options : { jwtSecret: SECRET, ...options };
  await app.register(switchboard, pluginOptions);
  app.get('/hello', async () => ({ hello: 'world' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address();
  const url = `${https ? 'https' : 'http'}://127.0.0.1:${port}`;
  let closing = null;
  const handle = {
    app,
    engine: app.switchboard,
    url,
    port,
    close() {
      apps.delete(handle);
      if (!closing) closing = app.close();
      return closing;
    },
  };
  apps.add(handle);
  return handle;
}

/** Closes every app still open (for `after` hooks). */
async function closeApps() {
  await Promise.all([...apps].map((a) => a.close()));
}

module.exports = { startApp, closeApps, selfSignedCert, SECRET };
