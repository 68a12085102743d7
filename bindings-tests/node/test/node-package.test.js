'use strict';
// Issue 4: the @switchboard/node package itself: its exports, and the generated index.d.ts
// that is committed and must not be stale (napi build regenerates it from the Rust doc
// comments, so a build after a change to node/src leaves it modified in git).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const PKG_DIR = path.dirname(require.resolve('@switchboard/node/package.json'));
const ROOT = path.resolve(__dirname, '../../..');

function git(...args) {
  return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('@switchboard/node package', () => {
  it('resolves to the repository\'s node/ directory (file: dependency)', () => {
    assert.equal(fs.realpathSync(PKG_DIR), fs.realpathSync(path.join(ROOT, 'node')));
    const pkg = require('@switchboard/node/package.json');
    assert.equal(pkg.name, '@switchboard/node');
    assert.equal(pkg.main, 'index.js');
    assert.equal(pkg.types, 'index.d.ts');
  });

  it('require("@switchboard/node") exports the Engine class', () => {
    const mod = require('@switchboard/node');
    assert.equal(typeof mod.Engine, 'function');
    for (const m of ['serves', 'handleUpgrade', 'handleRequest', 'listen', 'to', 'toUser', 'on', 'presence',
      'disconnectUser', 'stats', 'close']) {
      assert.equal(typeof mod.Engine.prototype[m], 'function', `Engine.prototype.${m}`);
    }
  });

  it('require("@switchboard/node/fastify") is a Fastify plugin function that shares its decorator', () => {
    const plugin = require('@switchboard/node/fastify');
    assert.equal(typeof plugin, 'function');
    assert.equal(plugin.default, plugin, 'default export (for ESM / TypeScript importers)');
    assert.equal(plugin[Symbol.for('skip-override')], true, 'app.switchboard is visible outside the plugin');
  });

  it('the native addon is built and loads', () => {
    const built = fs.readdirSync(PKG_DIR).filter((f) => f.endsWith('.node'));
    assert.ok(built.length > 0, `no .node file in ${PKG_DIR}: run "npm run build:debug" in node/`);
    const native = require(path.join(PKG_DIR, 'native.js'));
    assert.equal(typeof native.NativeEngine, 'function');
  });

  it('index.d.ts is not stale: unchanged in git after the build', { timeout: 20000 }, (t) => {
    let inside;
    try {
      inside = git('rev-parse', '--is-inside-work-tree').trim() === 'true';
    } catch {
      inside = false;
    }
    if (!inside) {
      t.skip('not a git work tree');
      return;
    }
    const status = git('status', '--porcelain', '--', 'node/index.d.ts', 'node/fastify.d.ts');
    assert.equal(status, '', `the generated type declarations differ from the committed ones:\n${status}` +
      git('diff', '--stat', '--', 'node/index.d.ts', 'node/fastify.d.ts'));
  });

  it('index.d.ts declares every method of the built addon, and nothing it lacks', () => {
    const dts = fs.readFileSync(path.join(PKG_DIR, 'index.d.ts'), 'utf8');
    const native = require(path.join(PKG_DIR, 'native.js'));
    for (const [cls, ctor] of [['NativeEngine', native.NativeEngine], ['Bridge', native.Bridge]]) {
      const m = new RegExp(`export declare class ${cls} \\{([\\s\\S]*?)\\n\\}`).exec(dts);
      assert.ok(m, `index.d.ts declares class ${cls}`);
      const declared = new Set([...m[1].matchAll(/^ {2}([a-zA-Z_]\w*)\(/gm)].map((x) => x[1]));
      declared.delete('constructor');
      const actual = new Set(Object.getOwnPropertyNames(ctor.prototype).filter((n) => n !== 'constructor'));
      assert.deepEqual([...declared].sort(), [...actual].sort(), `${cls}: declared vs built methods`);
    }
  });

  it('index.d.ts declares the public API (Engine, EngineOptions, the callbacks) from dts-header.d.ts', () => {
    const dts = fs.readFileSync(path.join(PKG_DIR, 'index.d.ts'), 'utf8');
    const first = dts.split('\n').find((l) => l.trim() !== '');
    assert.match(first, /^\s*(\/\*|\/\/|import |export )/, `first line of index.d.ts: ${JSON.stringify(first)}`);
    // the public Engine class is declared with the methods index.js implements
    const m = /export declare class Engine \{([\s\S]*?)\n\}/.exec(dts);
    assert.ok(m, 'index.d.ts declares class Engine');
    const declared = [...m[1].matchAll(/^ {2}([a-zA-Z_]\w*)\(/gm)].map((x) => x[1]).filter((n) => n !== 'constructor');
    const { Engine } = require('@switchboard/node');
    const publicMethods = Object.getOwnPropertyNames(Engine.prototype).filter((n) => n !== 'constructor' && !n.startsWith('_'));
    assert.deepEqual(declared.sort(), publicMethods.sort());
    // and the options the constructor accepts include every setting of the issue
    for (const opt of ['jwtSecret', 'jwtPublicKey', 'roomPolicy', 'pingInterval', 'pingTimeout', 'maxPayload',
      'corsOrigins', 'rateLimitPerSecond', 'rateLimitBurst', 'outboundQueueFrames', 'outboundQueueBytes',
      'typingTimeout', 'recoveryWindow', 'presenceGrace', 'dataDir', 'redisUrl', 'maxConnections',
      'workerThreads', 'callbackTimeout', 'authenticate', 'authorizeRoom', 'storeMessage']) {
      assert.match(dts, new RegExp(`\\b${opt}\\?:`), `option ${opt} is declared`);
    }
  });
});
