// Starting and stopping a real `switchboard serve` for the tests (adapted from
// bindings-tests/node/helpers/server.js). SWITCHBOARD_BIN overrides the binary;
// DEBUG_SERVER=1 forwards the server's output to stderr.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SECRET = 'client-test-secret';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = process.env.SWITCHBOARD_BIN || path.join(ROOT, 'target/debug/switchboard');

const LISTENING = /switchboard listening on (http:\/\/[^\s]+)/;
const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const TAIL = 16 * 1024;
// Variables a developer's shell may hold that would change what a test means.
const SCRUBBED_ENV = ['SWITCHBOARD_JWT_SECRET', 'SWITCHBOARD_API_KEY', 'REDIS_URL', 'PORT'];

export interface Server {
  url: string;
  port: number;
  proc: ChildProcess;
  /** SIGTERM, then SIGKILL after a grace period; resolves when the process has exited. */
  stop(): Promise<void>;
  readonly stderr: string;
}

export interface StartOptions {
  /** Extra flags, e.g. ['--recovery-window', '0']. */
  args?: string[];
  /** 0 picks a free port. */
  port?: number;
  secret?: string;
}

const tail = (s: string) => (s.length > TAIL ? '…' + s.slice(-TAIL) : s);

/** Starts `switchboard serve --host 127.0.0.1 --port N --jwt-secret S` and waits for its listening line. */
export function startServer({ args = [], port = 0, secret = SECRET }: StartOptions = {}): Promise<Server> {
  const argv = ['serve', '--host', '127.0.0.1', '--port', String(port), '--jwt-secret', secret, ...args];
  return new Promise((resolve, reject) => {
    if (!fs.existsSync(BIN)) {
      reject(new Error(`${BIN} does not exist: build it with cargo build -p switchboard --bin switchboard (or set SWITCHBOARD_BIN)`));
      return;
    }
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of SCRUBBED_ENV) delete env[k];
    const proc = spawn(BIN, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    let settled = false;
    let exited = false;
    const exit = new Promise<void>((res) =>
      proc.once('exit', () => {
        exited = true;
        res();
      }),
    );
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!exited) proc.kill('SIGKILL');
      reject(new Error(`switchboard ${argv.join(' ')}: ${why}\n--- stderr ---\n${tail(stderr)}\n--- stdout ---\n${tail(stdout)}`));
    };
    const timer = setTimeout(() => fail(`no listening line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    // Always drain both pipes: a full pipe would block the server.
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      stderr = tail(stderr + d);
      if (process.env.DEBUG_SERVER) process.stderr.write(d);
    });
    proc.stdout!.setEncoding('utf8');
    let buf = '';
    proc.stdout!.on('data', (d: string) => {
      if (process.env.DEBUG_SERVER) process.stderr.write(d);
      if (settled) return;
      stdout = tail(stdout + d);
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = LISTENING.exec(line);
        if (!m) continue;
        settled = true;
        clearTimeout(timer);
        const url = m[1]!.replace(/\/+$/, '');
        resolve({
          url,
          port: Number(new URL(url).port),
          proc,
          async stop() {
            if (exited) return exit;
            proc.kill('SIGTERM');
            const killer = setTimeout(() => {
              if (!exited) proc.kill('SIGKILL');
            }, STOP_GRACE_MS);
            await exit;
            clearTimeout(killer);
          },
          get stderr() {
            return stderr;
          },
        });
        return;
      }
    });
    proc.once('error', (e) => fail(`spawn failed: ${e.message}`));
    proc.once('exit', (code, signal) => fail(`exited early (code ${code}, signal ${signal})`));
  });
}
