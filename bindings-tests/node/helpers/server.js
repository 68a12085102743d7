'use strict';
// Starting and stopping the `switchboard` binary (and the conformance example) for the tests.
//
// SWITCHBOARD_BIN overrides the server binary, SWITCHBOARD_CONFORMANCE_BIN the conformance one,
// SWITCHBOARD_AXUM_BIN the axum example.
// DEBUG_SERVER=1 forwards the servers' stderr to the test's stderr.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const SECRET = 'test-secret-please-change';
const ROOT = path.resolve(__dirname, '../../..');
const BIN = process.env.SWITCHBOARD_BIN || path.join(ROOT, 'target/debug/switchboard');
const CONFORMANCE_BIN =
  process.env.SWITCHBOARD_CONFORMANCE_BIN || path.join(ROOT, 'target/debug/examples/conformance');
const AXUM_BIN =
  process.env.SWITCHBOARD_AXUM_BIN || path.join(ROOT, 'target/debug/examples/axum');

const LISTENING = /switchboard listening on (https?:\/\/[^\s]+)/;
const START_TIMEOUT_MS = 15000;
const STOP_GRACE_MS = 5000;
const STDERR_TAIL = 16 * 1024;

// Variables a developer's shell may hold that would change what a test means.
const SCRUBBED_ENV = ['SWITCHBOARD_JWT_SECRET', 'SWITCHBOARD_API_KEY', 'REDIS_URL', 'PORT'];

function childEnv(env) {
  const out = { ...process.env };
  for (const k of SCRUBBED_ENV) delete out[k];
  return { ...out, ...env };
}

function tail(s) {
  return s.length > STDERR_TAIL ? '…' + s.slice(-STDERR_TAIL) : s;
}

/**
 * Spawns `bin argv` and resolves when it prints the listening line.
 * Always drains stdout and stderr (a full pipe would block the server).
 */
function launch(bin, argv, env, what) {
  return new Promise((resolve, reject) => {
    if (!fs.existsSync(bin)) {
      reject(new Error(`${what}: ${bin} does not exist (build it with cargo build, or set the env var)`));
      return;
    }
    const proc = spawn(bin, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    let settled = false;
    let exited = false;
    const exitPromise = new Promise((res) => proc.once('exit', (code, signal) => {
      exited = true;
      res({ code, signal });
    }));

    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!exited) proc.kill('SIGKILL');
      reject(new Error(`${what} (${bin} ${argv.join(' ')}): ${why}\n--- stderr ---\n${tail(stderr)}\n--- stdout ---\n${tail(stdout)}`));
    };

    const timer = setTimeout(() => fail(`no "switchboard listening on" line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);

    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      stderr = tail(stderr + d);
      if (process.env.DEBUG_SERVER) process.stderr.write(d);
    });
    proc.stdout.setEncoding('utf8');
    let buf = '';
    proc.stdout.on('data', (d) => {
      if (!settled) stdout = tail(stdout + d);
      if (process.env.DEBUG_SERVER) process.stderr.write(d);
      if (settled) return;
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = LISTENING.exec(line);
        if (m) {
          settled = true;
          clearTimeout(timer);
          const url = m[1].replace(/\/+$/, '');
          const port = Number(new URL(url).port);
          const stop = async () => {
            if (exited) return exitPromise;
            proc.kill('SIGTERM');
            const killer = setTimeout(() => { if (!exited) proc.kill('SIGKILL'); }, STOP_GRACE_MS);
            const r = await exitPromise;
            clearTimeout(killer);
            return r;
          };
          resolve({
            url,
            port,
            proc,
            pid: proc.pid,
            stop,
            get stderr() { return stderr; },
            get exited() { return exited; },
            exitPromise,
          });
          return;
        }
      }
    });
    proc.once('error', (e) => fail(`spawn failed: ${e.message}`));
    proc.once('exit', (code, signal) => fail(`exited early (code ${code}, signal ${signal})`));
  });
}

/**
 * Starts `switchboard serve` on 127.0.0.1.
 * @param {object} o
 * @param {string[]} [o.args]   extra flags
 * @param {object}   [o.env]    extra environment
 * @param {number|null} [o.port] 0 = pick a free port; null = do not pass --port at all
 * @param {string|null} [o.secret] the --jwt-secret; null = do not pass it
 */
function startServer({ args = [], env = {}, port = 0, secret = SECRET } = {}) {
  const argv = ['serve', '--host', '127.0.0.1'];
  if (port !== null && port !== undefined) argv.push('--port', String(port));
  if (secret !== null && secret !== undefined) argv.push('--jwt-secret', secret);
  argv.push(...args);
  return launch(BIN, argv, childEnv(env), 'switchboard serve');
}

/** Starts the conformance example (core/examples/conformance.rs) with PORT set. */
async function startConformance({ port } = {}) {
  if (!port) port = await freePort();
  return launch(CONFORMANCE_BIN, [], childEnv({ PORT: String(port) }), 'conformance server');
}

/**
 * Starts the axum example (core/examples/axum.rs: an axum app with the engine mounted as a
 * tower layer) on 127.0.0.1 with a picked port.
 */
function startAxumExample({ secret = SECRET, env = {} } = {}) {
  const argv = ['--host', '127.0.0.1', '--port', '0', '--jwt-secret', secret];
  return launch(AXUM_BIN, argv, childEnv(env), 'axum example');
}

/** A port that was free a moment ago (bind to 0, read it, close). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs the binary to completion (for `token` and for CLI errors).
 * Resolves {code, signal, stdout, stderr}; kills it after timeoutMs and says so.
 */
function runCli(argv, { env = {}, timeoutMs = 10000, bin = BIN } = {}) {
  return new Promise((resolve, reject) => {
    if (!fs.existsSync(bin)) {
      reject(new Error(`${bin} does not exist (build it with cargo build, or set SWITCHBOARD_BIN)`));
      return;
    }
    const proc = spawn(bin, argv, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => { stdout = tail(stdout + d); });
    proc.stderr.on('data', (d) => { stderr = tail(stderr + d); });
    const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs);
    proc.once('error', (e) => { clearTimeout(timer); reject(e); });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`switchboard ${argv.join(' ')} did not exit within ${timeoutMs} ms\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`));
        return;
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Resident set size of a process in bytes (Linux), or NaN when it is gone. */
function rssBytes(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

module.exports = {
  SECRET, BIN, CONFORMANCE_BIN, AXUM_BIN, startServer, startConformance, startAxumExample, freePort, runCli, rssBytes,
};
