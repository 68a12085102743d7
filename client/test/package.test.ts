// The built package as an app sees it: ESM and CJS entry points, the ./react subpath, the
// declarations, and the dependency list. Needs `npm run build` first.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

import { readmeChat } from './helpers/readme.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' }).trim();

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/esm/index.js')) || !fs.existsSync(path.join(ROOT, 'dist/cjs/index.js'))) {
    throw new Error('dist/ is missing: run `npm run build` before `npm test`');
  }
});

describe('package', () => {
  it('depends on socket.io-client only, with React as an optional peer', () => {
    expect(Object.keys(pkg.dependencies)).toEqual(['socket.io-client']);
    expect(pkg.dependencies['socket.io-client']).toMatch(/^\^4\.8/);
    expect(pkg.peerDependencies).toEqual({ react: '^18.0.0 || ^19.0.0' });
    expect(pkg.peerDependenciesMeta.react.optional).toBe(true);
  });

  it('exports ., ./react and ./ws with import, require and types, all present', () => {
    for (const entry of ['.', './react', './ws']) {
      const e = pkg.exports[entry];
      for (const cond of ['import', 'require']) {
        expect(fs.existsSync(path.join(ROOT, e[cond].default)), `${entry} ${cond}`).toBe(true);
        expect(fs.existsSync(path.join(ROOT, e[cond].types)), `${entry} ${cond} types`).toBe(true);
      }
    }
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, 'dist/cjs/package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
  });

  it('require() loads the CommonJS build', () => {
    const out = node([
      '-e',
      `const sb = require('@switchboard/client');
       const r = require('@switchboard/client/react');
       const e = new sb.SwitchboardError('RATE_LIMITED', 'slow down');
       console.log(JSON.stringify({
         file: require.resolve('@switchboard/client'),
         connect: typeof sb.connect, react: Object.keys(r).sort(),
         error: JSON.parse(JSON.stringify(e)), isError: e instanceof Error,
       }));`,
    ]);
    const r = JSON.parse(out);
    expect(r.file).toBe(path.join(ROOT, 'dist/cjs/index.js'));
    expect(r.connect).toBe('function');
    expect(r.react).toEqual(['SwitchboardProvider', 'useConnection', 'useRoom', 'useSwitchboard']);
    expect(r.error).toEqual({ name: 'SwitchboardError', code: 'RATE_LIMITED', message: 'slow down' });
    expect(r.isError).toBe(true);
  });

  it('import loads the ES module build', () => {
    const out = node([
      '--input-type=module',
      '-e',
      `const sb = await import('@switchboard/client');
       const r = await import('@switchboard/client/react');
       const c = sb.connect('http://127.0.0.1:1', { token: 't', autoConnect: false });
       console.log(JSON.stringify({
         file: import.meta.resolve('@switchboard/client'),
         state: c.state.get(), react: Object.keys(r).sort(),
       }));
       c.close();`,
    ]);
    const r = JSON.parse(out);
    expect(r.file).toBe('file://' + path.join(ROOT, 'dist/esm/index.js'));
    expect(r.state).toBe('disconnected');
    expect(r.react).toEqual(['SwitchboardProvider', 'useConnection', 'useRoom', 'useSwitchboard']);
  });

  it('./ws loads in both builds without socket.io-client', () => {
    const out = node([
      '-e',
      `const w = require('@switchboard/client/ws');
       const c = w.connect('http://127.0.0.1:1', { token: 't', autoConnect: false });
       console.log(JSON.stringify({
         file: require.resolve('@switchboard/client/ws'), state: c.state.get(),
         sio: Object.keys(require.cache).some((f) => f.includes('socket.io-client')),
       }));
       c.close();`,
    ]);
    const r = JSON.parse(out);
    expect(r.file).toBe(path.join(ROOT, 'dist/cjs/ws/index.js'));
    expect(r.state).toBe('disconnected');
    expect(r.sio).toBe(false);
    const esm = node(['--input-type=module', '-e', `const w = await import('@switchboard/client/ws'); console.log(typeof w.connect)`]);
    expect(esm).toBe('function');
  });

  it('the declarations type-check ESM and CJS consumers and the README component (moduleResolution node16)', () => {
    // test/consumer/readme-chat.tsx is the README's chat component, written here (not committed).
    fs.writeFileSync(path.join(ROOT, 'test/consumer/readme-chat.tsx'), readmeChat());
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    try {
      execFileSync(process.execPath, [tsc, '-p', 'test/consumer/tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
    } catch (e) {
      throw new Error(`tsc failed:\n${(e as { stdout?: string }).stdout ?? e}`);
    }
  });
});
