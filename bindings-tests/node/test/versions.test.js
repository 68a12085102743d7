'use strict';
// Issue 17: one version everywhere a user sees one. The Cargo workspace's version is the
// reference; each npm package, the platform packages and the pins on them, the generated
// loader's version check, the C header's SB_VERSION_* and the CHANGELOG follow it. Bumping
// one without the others fails here.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../../..');
const read = (f) => fs.readFileSync(path.join(ROOT, f), 'utf8');
const json = (f) => JSON.parse(read(f));
const VERSION = /^\[workspace\.package\][^[]*?^version = "([^"]+)"/m.exec(read('Cargo.toml'))[1];

describe(`one version (${VERSION})`, () => {
  it('every crate takes the workspace version, and the engine dependency is pinned to it', () => {
    for (const crate of ['core', 'ffi', 'node', 'bench']) {
      assert.match(read(`${crate}/Cargo.toml`), /^version\.workspace = true$/m, `${crate}/Cargo.toml`);
    }
    const dep = /^switchboard = \{[^}]*version = "([^"]+)"/m.exec(read('Cargo.toml'));
    assert.ok(dep, 'workspace dependency switchboard has a version');
    assert.equal(dep[1], VERSION);
  });

  it('@switchboard/node, its lock file, @switchboard/client', () => {
    assert.equal(json('node/package.json').version, VERSION);
    const lock = json('node/package-lock.json');
    assert.equal(lock.version, VERSION);
    assert.equal(lock.packages[''].version, VERSION);
    assert.equal(json('client/package.json').version, VERSION);
  });

  // node/scripts/pack.js (make package) and `napi pre-publish` (release) pin every one of
  // them in the published package's optionalDependencies; npm-install.test.js checks that.
  it('one platform package per napi target, each at the version', () => {
    const pkg = json('node/package.json');
    const dirs = fs.readdirSync(path.join(ROOT, 'node/npm')).sort();
    assert.equal(dirs.length, pkg.napi.targets.length, `node/npm has ${dirs.join(', ')}`);
    assert.equal(pkg.optionalDependencies, undefined, 'added at pack time, not in the source package.json');
    for (const dir of dirs) {
      const platform = json(`node/npm/${dir}/package.json`);
      assert.equal(platform.name, `@switchboard/node-${dir}`);
      assert.equal(platform.version, VERSION, platform.name);
      assert.equal(platform.main, `switchboard.${dir}.node`);
      assert.ok(platform.os && platform.cpu, `${platform.name} declares os and cpu`);
    }
  });

  it('the generated loader checks for the same version', () => {
    const expected = [...read('node/native.js').matchAll(/expected ([0-9][^ ]*) but got/g)].map((m) => m[1]);
    assert.ok(expected.length > 0);
    assert.deepEqual([...new Set(expected)], [VERSION]);
  });

  it('the C header (SB_VERSION_*) and the CHANGELOG', () => {
    const header = read('include/switchboard.h');
    const [major, minor, patch] = VERSION.split('.');
    assert.match(header, new RegExp(`^#define SB_VERSION_MAJOR ${major}$`, 'm'));
    assert.match(header, new RegExp(`^#define SB_VERSION_MINOR ${minor}$`, 'm'));
    assert.match(header, new RegExp(`^#define SB_VERSION_PATCH ${patch}$`, 'm'));
    assert.match(read('CHANGELOG.md'), new RegExp(`^## \\[${VERSION.replace(/\./g, '\\.')}\\]`, 'm'));
  });
});
