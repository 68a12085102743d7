'use strict';
// `npm pack` of @switchboard/node as it is published: with `optionalDependencies` on every
// platform package (node/npm/*), pinned to this version, so npm installs the one that
// matches the user's os/cpu/libc. The source package.json has none, as in napi-rs projects
// (`napi pre-publish` adds them at release, once every platform's binary exists): the
// packages are not in the registry before the release, and `npm ci` here, the `file:` links
// of bindings-tests/ and examples/ must not look for them.
//
//   node scripts/pack.js DEST_DIR

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const dest = path.resolve(process.argv[2] || '.');
const file = path.join(__dirname, '..', 'package.json');
const original = fs.readFileSync(file, 'utf8');
const pkg = JSON.parse(original);
const platforms = fs.readdirSync(path.join(__dirname, '..', 'npm')).sort();
pkg.optionalDependencies = Object.fromEntries(platforms.map((p) => [`${pkg.name}-${p}`, pkg.version]));
fs.writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
try {
  execFileSync('npm', ['pack', '--silent', '--pack-destination', dest], { cwd: path.dirname(file), stdio: 'inherit' });
} finally {
  fs.writeFileSync(file, original);
}
