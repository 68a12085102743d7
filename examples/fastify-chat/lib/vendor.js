'use strict';
// The browser's libraries, served from node_modules without a bundler or a CDN.
//
// `@switchboard/client` (the typed client SDK, a link to client/) is served from its ES module
// build (dist/esm, `npm run build` in client/); it imports `socket.io-client` by bare name, which
// the import map points at socket.io-client's ES module bundle. `socket.io-client` ships that
// bundle. `yjs`, `y-websocket` and their dependencies
// (`y-protocols`, `lib0`) ship plain ES modules that import each other by bare names
// ('lib0/encoding'), which browsers resolve through an import map. The map is generated here
// from each package's `exports`, with the conditions a bundler would use for the browser, so
// it stays right when the packages update.

const fs = require('node:fs');
const path = require('node:path');

/** Conditions in the order a browser bundler prefers them. */
const CONDITIONS = new Set(['browser', 'module', 'import', 'default']);

/** The packages the page may load, and the URL prefix each is served under. */
const PACKAGES = ['@switchboard/client', 'socket.io-client', 'yjs', 'y-websocket', 'y-protocols', 'lib0'];
const PREFIX = '/vendor/';

/** Resolves an `exports` target for the browser: a './file.js' path or null. */
function resolveTarget(target) {
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) {
    for (const t of target) {
      const r = resolveTarget(t);
      if (r) return r;
    }
    return null;
  }
  if (target && typeof target === 'object') {
    // Node's rule: the first key of the object that is an active condition wins.
    for (const [condition, value] of Object.entries(target)) {
      if (CONDITIONS.has(condition)) {
        const r = resolveTarget(value);
        if (r) return r;
      }
    }
  }
  return null;
}

/** Where each package lives: resolved from the app, as Node would. */
function packageDirs(fromDir) {
  const dirs = new Map();
  for (const name of PACKAGES) {
    const manifest = require.resolve(`${name}/package.json`, { paths: [fromDir] });
    dirs.set(name, path.dirname(manifest));
  }
  return dirs;
}

/**
 * The import map for the page: every export of every package, for the browser.
 * `socket.io-client` maps to its prebuilt ES module bundle (its `exports` point at a build
 * that still imports `engine.io-client` and friends by bare name).
 */
function importMap(dirs) {
  const imports = {};
  for (const [name, dir] of dirs) {
    if (name === 'socket.io-client') {
      imports[name] = `${PREFIX}${name}/dist/socket.io.esm.min.js`;
      continue;
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    if (name === '@switchboard/client' && !fs.existsSync(path.join(dir, 'dist/esm/index.js'))) {
      throw new Error(`${name} is not built: cd client && npm ci && npm run build (make run does it)`);
    }
    const exportsField = manifest.exports || { '.': manifest.module || manifest.main };
    for (const [key, target] of Object.entries(exportsField)) {
      if (key.includes('*') || key.endsWith('.json') || /test/i.test(key)) continue;
      // The SDK's React hooks need React, which the page does not use.
      if (name === '@switchboard/client' && key !== '.') continue;
      const file = resolveTarget(target);
      if (!file || !/\.m?js$/.test(file)) continue;
      const specifier = key === '.' ? name : `${name}/${key.replace(/^\.\//, '')}`;
      imports[specifier] = `${PREFIX}${name}/${file.replace(/^\.\//, '')}`;
    }
  }
  return { imports };
}

/** Fastify routes: GET /vendor/<package>/<file> for .js/.mjs files of the packages above. */
function vendorRoutes(app, dirs) {
  app.get(`${PREFIX}*`, async (request, reply) => {
    const rest = request.params['*'];
    const name = PACKAGES.find((p) => rest.startsWith(`${p}/`));
    if (!name) return reply.code(404).send({ error: 'not found' });
    const root = dirs.get(name);
    const file = path.resolve(root, rest.slice(name.length + 1));
    const inside = path.relative(root, file);
    if (inside.startsWith('..') || path.isAbsolute(inside) || inside.split(path.sep).includes('node_modules') || !/\.m?js$/.test(file)) {
      return reply.code(404).send({ error: 'not found' });
    }
    let body;
    try {
      body = await fs.promises.readFile(file);
    } catch {
      return reply.code(404).send({ error: 'not found' });
    }
    return reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(body);
  });
}

module.exports = { importMap, packageDirs, vendorRoutes, resolveTarget };
