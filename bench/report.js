#!/usr/bin/env node
'use strict';
// Turns the raw sb-load reports of one bench run into the table (stdout), a JSON summary and
// an SVG chart. No dependencies.
//
//   node bench/report.js RAW_DIR OUT_DIR [targets...]
// RAW_DIR holds <scenario>-<target>.json; writes OUT_DIR/latest.{json,svg} (a full run) or
// RAW_DIR/quick.{json,svg} (BENCH_MODE=quick, so quick runs never replace the committed ones).

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const [rawDir, outDir, ...targetArgs] = process.argv.slice(2);
if (!rawDir || !outDir) {
  console.error('usage: report.js RAW_DIR OUT_DIR [targets...]');
  process.exit(2);
}
const mode = process.env.BENCH_MODE || 'full';
const SCENARIOS = ['fanout', 'chat', 'idle', 'connect'];
// The idle scenario runs once per size (idle5k, idle15k: bench/run.sh's BENCH_IDLE_CLIENTS).
const isIdle = (s) => /^idle[0-9]*k?$/.test(s);
const ORDER = ['engine', 'fastify', 'socketio'];
const LABEL = { engine: 'engine', fastify: 'engine in Fastify', socketio: 'Node Socket.IO' };
const COLOR = { engine: '#2563eb', fastify: '#0d9488', socketio: '#9ca3af' };

const results = {};
for (const file of fs.readdirSync(rawDir).filter((f) => f.endsWith('.json') && /^[a-z0-9]+-[a-z]+\.json$/.test(f))) {
  const text = fs.readFileSync(path.join(rawDir, file), 'utf8').trim();
  const [scenario, target] = file.replace('.json', '').split('-');
  let r;
  try {
    r = JSON.parse(text.split('\n').pop());
  } catch {
    r = { scenario, target, error: 'no report' };
  }
  (results[scenario] ||= {})[target] = r;
}
const targets = (targetArgs.length ? targetArgs : ORDER).filter((t) =>
  Object.values(results).some((s) => s[t]),
);
targets.sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));

// A message run (fanout, chat) that lost clients or deliveries did not measure the server with
// every client kept: its figures are shown struck (✗) and get no ratio. sb-load says so in
// `valid`; older reports are judged by their lost and disconnects counts.
function invalid(r) {
  if (!r || r.error) return null;
  if (r.valid === false) return r.invalid_reason || 'clients or deliveries lost';
  if (r.valid == null && ((r.lost || 0) > 0 || ((r.disconnects || 0) > 0 && r.deliveries_per_s != null))) {
    return `${r.disconnects || 0} clients disconnected, ${r.lost || 0} deliveries lost`;
  }
  return null;
}
const get = (o, p) => p.split('.').reduce((v, k) => (v == null ? undefined : v[k]), o);
function any(scenario, p) {
  const r = Object.values(results[scenario] || {}).find((x) => x && get(x, p) != null);
  return r ? get(r, p) : '?';
}

// What the table shows: [scenario, label, path, better ('hi' | 'lo' | null), format].
const num = (v, d = 0) =>
  v == null || Number.isNaN(v) ? '-' : Number(v).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const ROWS = [
  ['fanout', 'deliveries/s', 'deliveries_per_s', 'hi', (v) => num(v)],
  ['fanout', 'latency p50 ms', 'latency_ms.p50', 'lo', (v) => num(v, 1)],
  ['fanout', 'latency p99 ms', 'latency_ms.p99', 'lo', (v) => num(v, 1)],
  ['fanout', 'lost deliveries', 'lost', null, (v) => num(v)],
  ['fanout', 'client disconnects', 'disconnects', null, (v) => num(v)],
  ['fanout', 'server deliveries/core-s', 'server.deliveries_per_core_s', 'hi', (v) => num(v)],
  ['fanout', 'server CPU cores used', 'server.cpu_util', null, (v) => num(v, 2)],
  ['fanout', 'server deliveries / write call', 'server.deliveries_per_write', 'hi', (v) => num(v, 1)],
  ['fanout', 'sb-load CPU-s / 1M deliveries', 'generator.cpu_s_per_1m_deliveries', null, (v) => num(v, 2)],
  ['fanout', 'sb-load CPU cores used', 'generator.cpu_util', null, (v) => num(v, 2)],
  ['fanout', 'other cores busy (kernel, rest)', 'generator.other_cpu_util', null, (v) => num(v, 2)],
  ['chat', 'deliveries/s', 'deliveries_per_s', 'hi', (v) => num(v)],
  ['chat', 'latency p50 ms', 'latency_ms.p50', 'lo', (v) => num(v, 2)],
  ['chat', 'latency p99 ms', 'latency_ms.p99', 'lo', (v) => num(v, 2)],
  ['chat', 'latency max ms', 'latency_ms.max', 'lo', (v) => num(v, 2)],
  ['chat', 'ack p99 ms (send → ack)', 'ack_latency_ms.p99', 'lo', (v) => num(v, 2)],
  ['chat', 'lost deliveries', 'lost', null, (v) => num(v)],
  ['chat', 'client disconnects', 'disconnects', null, (v) => num(v)],
  ['chat', 'server CPU cores used', 'server.cpu_util', 'lo', (v) => num(v, 2)],
  ['chat', 'server deliveries / write call', 'server.deliveries_per_write', 'hi', (v) => num(v, 2)],
  ['chat', 'sb-load CPU-s / 1M deliveries', 'generator.cpu_s_per_1m_deliveries', null, (v) => num(v, 2)],
  ['chat', 'other cores busy (kernel, rest)', 'generator.other_cpu_util', null, (v) => num(v, 2)],
  ['idle', 'server RSS KiB / connection', 'rss_per_conn_kb', 'lo', (v) => num(v, 1)],
  ['idle', 'server CPU cores used, held idle', 'server_idle_cpu_util', 'lo', (v) => num(v, 4)],
  ['idle', 'connected clients', 'connected', null, (v) => num(v)],
  ['idle', 'client disconnects', 'disconnects', null, (v) => num(v)],
  ['connect', 'handshakes/s', 'handshakes_per_s', 'hi', (v) => num(v)],
  ['connect', 'handshake p99 ms', 'latency_ms.p99', 'lo', (v) => num(v, 1)],
  ['connect', 'failed handshakes', 'failures', null, (v) => num(v)],
];

function ratio(a, b) {
  if (a == null || b == null || !b) return null;
  return a / b;
}
function fmtRatio(x, better) {
  if (x == null) return '-';
  const s = x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2);
  return `${s}×${better === 'hi' ? ' ↑' : better === 'lo' ? ' ↓' : ''}`;
}

const base = targets.includes('socketio') ? 'socketio' : null;
const cmp = targets.filter((t) => t !== base);
const header = ['scenario', 'metric', ...targets.map((t) => LABEL[t]), ...(base ? cmp.map((t) => `${t}/socketio`) : [])];
const lines = [];
const ratios = {};
const idleRuns = Object.keys(results)
  .filter(isIdle)
  .sort((a, b) => (any(a, 'clients') || 0) - (any(b, 'clients') || 0));
const rows = ROWS.flatMap((r) => (r[0] === 'idle' ? idleRuns.map((s) => [s, ...r.slice(1)]) : [r]));
// Rows of one scenario together, in ROWS' order of scenarios.
rows.sort((a, b) => scenarioRank(a[0]) - scenarioRank(b[0]));
function scenarioRank(s) {
  const i = SCENARIOS.indexOf(isIdle(s) ? 'idle' : s);
  return i * 1000 + (isIdle(s) ? idleRuns.indexOf(s) : 0);
}
for (const [scenario, label, p, better, fmt] of rows) {
  if (!results[scenario]) continue;
  const row = [scenario, label];
  for (const t of targets) {
    const r = results[scenario][t];
    row.push(r ? (r.error ? 'error' : `${better && invalid(r) ? '✗ ' : ''}${fmt(get(r, p))}`) : 'skipped');
  }
  if (base) {
    for (const t of cmp) {
      const [rt, rb] = [results[scenario][t], results[scenario][base]];
      const x = invalid(rt) || invalid(rb) ? null : ratio(get(rt, p), get(rb, p));
      row.push(better ? fmtRatio(x, better) : '');
      if (better && x != null) ((ratios[scenario] ||= {})[`${t}/socketio ${label}`] = Number(x.toFixed(3)));
    }
  }
  lines.push(row);
}
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
const pad = (cells) =>
  cells.map((c, i) => (i < 2 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
let table = `${pad(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`;
let last = null;
for (const l of lines) {
  if (last && l[0] !== last) table += '\n';
  table += `${pad(l[0] === last ? ['', ...l.slice(1)] : l)}\n`;
  last = l[0];
}
table += '(ratios: ↑ higher is better, ↓ lower is better)\n';
for (const s of [...SCENARIOS, ...idleRuns]) {
  for (const t of targets) {
    const r = results[s] && results[s][t];
    if (r && r.error) table += `error: ${s} × ${t}: ${r.error}\n`;
    if (invalid(r)) table += `INVALID: ${s} × ${t}: ${invalid(r)}: its ✗ figures do not measure the server with every client kept\n`;
  }
}
for (const t of ORDER) {
  if (!targets.includes(t)) table += `${t}: skipped\n`;
}
process.stdout.write(`\n${table}`);

// ---- JSON ---------------------------------------------------------------------------------
function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}
const summary = {
  generated_at: new Date().toISOString(),
  mode,
  elapsed_s: Number(process.env.BENCH_ELAPSED || 0),
  commit: sh('git', ['rev-parse', '--short', 'HEAD']),
  machine: {
    cpus: os.cpus().length,
    cpu_model: (os.cpus()[0] || {}).model,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    rustc: sh('rustc', ['--version']),
    loadavg_at_report: os.loadavg().map((x) => Number(x.toFixed(2))),
  },
  targets: Object.fromEntries(targets.map((t) => [t, LABEL[t]])),
  ratios,
  table,
  results,
};
const stem = mode === 'quick' ? path.join(rawDir, 'quick') : path.join(outDir, 'latest');
fs.mkdirSync(path.dirname(stem), { recursive: true });
fs.writeFileSync(`${stem}.json`, `${JSON.stringify(summary, null, 2)}\n`);

// ---- SVG ----------------------------------------------------------------------------------
const PANELS = [
  ['fanout', 'deliveries_per_s', `Fan-out deliveries/s (${any('fanout', 'clients')} clients, 1 room)`, 'higher is better', (v) => num(v)],
  ['fanout', 'latency_ms.p99', 'Fan-out p99 latency, ms (saturated)', 'lower is better', (v) => num(v, 1)],
  ['chat', 'deliveries_per_s', `Chat deliveries/s (${any('chat', 'clients')} clients, ${any('chat', 'rooms')} rooms)`, 'higher is better', (v) => num(v)],
  ['chat', 'latency_ms.p99', 'Chat p99 latency, ms', 'lower is better', (v) => num(v, 2)],
  ...idleRuns.map((s) => [s, 'rss_per_conn_kb', `Idle: server RSS KiB per connection (${num(any(s, 'clients'))} clients)`, 'lower is better', (v) => num(v, 1)]),
  ['connect', 'handshakes_per_s', 'Connect: handshakes/s (WebSocket + JWT)', 'higher is better', (v) => num(v)],
];
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const W = 960;
const PW = 450;
const PH = 190;
const top = 70;
const gap = 20;
const panels = PANELS.filter(([s]) => results[s]);
const rowsN = Math.ceil(panels.length / 2);
const H = top + rowsN * (PH + gap) + 30;
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">\n`;
svg += `<rect width="${W}" height="${H}" fill="#ffffff"/>\n`;
svg += `<text x="20" y="30" font-size="18" font-weight="600" fill="#111827">Switchboard vs Node Socket.IO — make bench (${esc(mode)})</text>\n`;
svg += `<text x="20" y="50" font-size="12" fill="#4b5563">${esc(summary.generated_at.slice(0, 16).replace('T', ' '))} UTC · ${summary.machine.cpus} cores · ${esc(summary.machine.node)} · commit ${esc(summary.commit || '?')} · server and load generator share the machine</text>\n`;
let lx = W - 20;
for (const t of [...targets].reverse()) {
  const label = LABEL[t];
  const w = 18 + label.length * 6.6;
  lx -= w;
  svg += `<rect x="${lx}" y="${22}" width="10" height="10" fill="${COLOR[t]}"/><text x="${lx + 14}" y="${31}" font-size="11" fill="#374151">${esc(label)}</text>\n`;
  lx -= 10;
}
panels.forEach(([scenario, p, title, hint, fmt], i) => {
  const x0 = 20 + (i % 2) * (PW + 30);
  const y0 = top + Math.floor(i / 2) * (PH + gap);
  svg += `<g transform="translate(${x0},${y0})">\n`;
  svg += `<rect width="${PW}" height="${PH}" rx="6" fill="#f9fafb" stroke="#e5e7eb"/>\n`;
  svg += `<text x="12" y="22" font-size="13" font-weight="600" fill="#111827">${esc(title)}</text>\n`;
  svg += `<text x="${PW - 12}" y="22" font-size="11" text-anchor="end" fill="#6b7280">${esc(hint)}</text>\n`;
  const vals = targets.map((t) => {
    const r = results[scenario][t];
    return r && !r.error && !invalid(r) ? get(r, p) : null;
  });
  const max = Math.max(...vals.filter((v) => v != null), 1e-9);
  const barH = 28;
  const left = 130;
  const right = 110;
  targets.forEach((t, j) => {
    const y = 40 + j * (barH + 14);
    const v = vals[j];
    svg += `<text x="${left - 8}" y="${y + barH / 2 + 4}" font-size="12" text-anchor="end" fill="#374151">${esc(LABEL[t])}</text>\n`;
    if (v == null) {
      const r = results[scenario][t];
      const why = !r ? 'skipped' : r.error ? 'error' : 'invalid run: clients or deliveries lost';
      svg += `<text x="${left}" y="${y + barH / 2 + 4}" font-size="12" fill="${r && !r.error ? '#dc2626' : '#9ca3af'}">${why}</text>\n`;
      return;
    }
    const w = Math.max(1, ((PW - left - right) * v) / max);
    svg += `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" rx="3" fill="${COLOR[t]}"/>\n`;
    let note = fmt(v);
    if (base && t !== base && vals[targets.indexOf(base)]) {
      const x = v / vals[targets.indexOf(base)];
      note += `  (${x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2)}×)`;
    }
    svg += `<text x="${left + w + 6}" y="${y + barH / 2 + 4}" font-size="12" fill="#111827">${esc(note)}</text>\n`;
  });
  svg += `</g>\n`;
});
svg += `<text x="20" y="${H - 10}" font-size="11" fill="#6b7280">Ratios in brackets are against Node Socket.IO 4.8. Raw figures: bench/results/latest.json. Rerun: make bench.</text>\n`;
svg += `</svg>\n`;
fs.writeFileSync(`${stem}.svg`, svg);
console.error(`bench: wrote ${stem}.json and ${stem}.svg`);
