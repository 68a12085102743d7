'use strict';
// Running an installed program as its user would: spawn it, wait for its listening line,
// talk to it, stop it, and see it exit by itself.

const { spawn } = require('node:child_process');

/**
 * Spawns `bin` and resolves `{ proc, url, lines, exit, stderr() }` once a stdout line matches
 * `/listening on (URL)/`. `exit` resolves with `{ code, signal }`.
 */
function startProgram(bin, args, { env = process.env, cwd, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = [];
    let stderr = '';
    let buf = '';
    let done = false;
    const exit = new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      proc.kill('SIGKILL');
      reject(new Error(`${bin} printed no listening line within ${timeoutMs} ms; stdout:\n${lines.join('\n')}\nstderr:\n${stderr}`));
    }, timeoutMs);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        const m = /listening on (https?:\/\/\S+)/.exec(line);
        if (m && !done) {
          done = true;
          clearTimeout(timer);
          resolve({ proc, url: m[1], lines, exit, stderr: () => stderr });
        }
      }
    });
    proc.once('error', (e) => { if (!done) { done = true; clearTimeout(timer); reject(e); } });
    exit.then(({ code, signal }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${bin} exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr}`));
    });
  });
}

/** Resolves with the exit of `program`, or rejects after `ms` (killing it). */
async function exitWithin(program, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      program.proc.kill('SIGKILL');
      reject(new Error(`did not exit within ${ms} ms; stderr:\n${program.stderr()}`));
    }, ms);
  });
  try {
    return await Promise.race([program.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** PATH without any directory that holds `cargo` or `rustc` (as on a machine without Rust). */
function pathWithoutRust(pathValue = process.env.PATH || '') {
  const fs = require('node:fs');
  const path = require('node:path');
  return pathValue.split(path.delimiter).filter((dir) => dir && !['cargo', 'rustc', 'rustup']
    .some((tool) => fs.existsSync(path.join(dir, tool)))).join(path.delimiter);
}

module.exports = { startProgram, exitWithin, pathWithoutRust };
