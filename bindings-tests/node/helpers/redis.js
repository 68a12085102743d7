'use strict';
// A real `redis-server` for the cluster tests: on a free loopback port, without persistence,
// in a temporary directory. `stop()` and `restart()` (same port) let tests take Redis away
// from running engines and bring it back.
//
// REDIS_SERVER_BIN overrides the binary (REDIS_CLI_BIN redis-cli, which helpers/redis-cluster
// needs). DEBUG_SERVER=1 forwards its output to stderr.
// A missing redis-server is an error, never a skip: `make test` installs it (make deps-redis).

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { freePort } = require('./server');

const BIN = process.env.REDIS_SERVER_BIN || 'redis-server';
const CLI_BIN = process.env.REDIS_CLI_BIN || 'redis-cli';
const START_TIMEOUT_MS = 10000;
const STOP_GRACE_MS = 5000;
const OUTPUT_TAIL = 8 * 1024;

/** Every instance started here, so `stopAllRedis()` (and process exit) can end them. */
const instances = new Set();

process.once('exit', () => {
  for (const r of instances) {
    if (r.proc && r.proc.exitCode === null && r.proc.signalCode === null) {
      try { r.proc.kill('SIGKILL'); } catch { /* gone */ }
    }
    try { fs.rmSync(r.dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Throws a clear error when redis-server cannot be run. */
function requireRedisServer() {
  const r = spawnSync(BIN, ['--version'], { encoding: 'utf8', timeout: 10000 });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit ${r.status}: ${r.stderr}`;
    throw new Error(`redis-server is required by the cluster tests but cannot be run (${BIN}: ${why}). ` +
      'Install it with `make deps-redis` (apt-get install redis-server) or set REDIS_SERVER_BIN.');
  }
  return r.stdout.trim();
}

/**
 * Throws a clear error when redis-cli cannot be run (the Redis Cluster helper creates the
 * cluster and reads its topology with it). Debian's redis-server depends on redis-tools,
 * which has it, so `make deps-redis` installs both.
 */
function requireRedisCli() {
  const r = spawnSync(CLI_BIN, ['--version'], { encoding: 'utf8', timeout: 10000 });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit ${r.status}: ${r.stderr}`;
    throw new Error(`redis-cli is required by the Redis Cluster tests but cannot be run (${CLI_BIN}: ${why}). ` +
      'Install it with `make deps-redis` (apt-get install redis-server redis-tools) or set REDIS_CLI_BIN.');
  }
  return r.stdout.trim();
}

/**
 * Sends one inline command (e.g. 'PING') on a fresh connection and resolves the first reply
 * line (e.g. '+PONG'); rejects on connection errors or after timeoutMs.
 */
function inlineCommand(port, command, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (err, line) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(line);
    };
    const timer = setTimeout(() => done(new Error(`no answer to ${command} within ${timeoutMs} ms`)), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\r\n');
      if (nl !== -1) done(null, buf.slice(0, nl));
    });
    sock.on('error', (e) => done(e));
    sock.on('close', () => done(new Error(`connection closed before an answer to ${command}`)));
  });
}

/** Resolves true when Redis on `port` answers PING with +PONG, false otherwise. */
async function ping(port) {
  try {
    return (await inlineCommand(port, 'PING')) === '+PONG';
  } catch {
    return false;
  }
}

/**
 * Starts redis-server. Resolves a handle:
 *   port, url ('redis://127.0.0.1:PORT'), pid, running, output (its stdout/stderr tail),
 *   ping(), stop() (SIGTERM, waits for the exit), kill() (SIGKILL, waits),
 *   restart() (starts again on the same port, with the same arguments), close() (stop and
 *   remove its directory).
 * `args` are appended to redis-server's command line (the cluster helper's `--cluster-enabled`).
 */
async function startRedis({ port, args = [] } = {}) {
  requireRedisServer();
  const handle = {
    port: port || await freePort(),
    args,
    dir: fs.mkdtempSync(path.join(os.tmpdir(), 'sb-redis-')),
    proc: null,
    output: '',
    get url() { return `redis://127.0.0.1:${this.port}`; },
    get pid() { return this.proc && this.proc.pid; },
    get running() { return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null; },
    ping() { return ping(this.port); },
    stop() { return terminate(handle, 'SIGTERM'); },
    kill() { return terminate(handle, 'SIGKILL'); },
    async restart() {
      await terminate(handle, 'SIGTERM');
      await launch(handle);
      return handle;
    },
    async close() {
      instances.delete(handle);
      await terminate(handle, 'SIGTERM');
      fs.rmSync(handle.dir, { recursive: true, force: true });
    },
  };
  instances.add(handle);
  try {
    await launch(handle);
  } catch (e) {
    await handle.close();
    throw e;
  }
  return handle;
}

/** Spawns redis-server for `h` and waits until it answers PING. */
async function launch(h) {
  if (h.running) throw new Error(`redis-server on port ${h.port} is already running`);
  const argv = [
    '--port', String(h.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', h.dir, '--daemonize', 'no', '--loglevel', 'warning', ...h.args,
  ];
  const proc = spawn(BIN, argv, { cwd: h.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  h.proc = proc;
  let exit = null;
  proc.exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    exit = { code, signal };
    resolve(exit);
  }));
  const collect = (d) => {
    h.output = (h.output + d).slice(-OUTPUT_TAIL);
    if (process.env.DEBUG_SERVER) process.stderr.write(d);
  };
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  let spawnError = null;
  proc.once('error', (e) => { spawnError = e; });

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError) throw new Error(`redis-server did not start: ${spawnError.message}`);
    if (exit) {
      throw new Error(`redis-server (${BIN} ${argv.join(' ')}) exited early (code ${exit.code}, ` +
        `signal ${exit.signal})\n--- output ---\n${h.output}`);
    }
    if (await ping(h.port)) return;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`redis-server on port ${h.port} did not answer PING within ${START_TIMEOUT_MS} ms` +
        `\n--- output ---\n${h.output}`);
    }
    await sleep(50);
  }
}

/** Sends `signal` and waits for the exit (SIGKILL after a grace period). */
async function terminate(h, signal) {
  const proc = h.proc;
  if (!proc || !h.running) return;
  proc.kill(signal);
  const killer = setTimeout(() => { if (h.running) proc.kill('SIGKILL'); }, STOP_GRACE_MS);
  await proc.exited;
  clearTimeout(killer);
}

/** Stops every instance still running and removes their directories (for `after` hooks). */
async function stopAllRedis() {
  await Promise.all([...instances].map((r) => r.close()));
}

module.exports = { startRedis, stopAllRedis, requireRedisServer, requireRedisCli, ping, inlineCommand, CLI_BIN };
