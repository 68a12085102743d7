'use strict';
// The engine inside a Fastify app through the plugin (@switchboard/node/fastify): the
// benchmark's third target. Same flags and listening line as the other targets:
//
//   node server.js --port 0 --jwt-secret S
//
// The package is required from the repository (../../../node); when it is not built this
// exits with status 3 and says so, and the harness skips the target.

const path = require('path');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function resolvable(id) {
  try {
    require.resolve(id);
    return true;
  } catch {
    return false;
  }
}

const pluginPath = path.join(__dirname, '..', '..', '..', 'node', 'fastify.js');
if (!resolvable(pluginPath) || !resolvable('fastify')) {
  console.error(`fastify target unavailable: needs ${pluginPath} (built addon) and fastify (npm ci here)`);
  process.exit(3);
}

async function main() {
  const host = arg('host', '127.0.0.1');
  const port = Number(arg('port', process.env.PORT || 3000));
  const jwtSecret = arg('jwt-secret', process.env.SWITCHBOARD_JWT_SECRET);
  if (!jwtSecret) {
    console.error('a JWT secret is required: --jwt-secret S or SWITCHBOARD_JWT_SECRET');
    process.exit(2);
  }
  const Fastify = require('fastify');
  const app = Fastify({ logger: false });
  await app.register(require(pluginPath), { jwtSecret, rateLimitPerSecond: 0 });
  await app.listen({ host, port });
  console.log(`switchboard listening on http://${host}:${app.server.address().port}`);

  const shutdown = () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
