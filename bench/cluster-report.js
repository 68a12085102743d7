#!/usr/bin/env node
'use strict';
// `make bench-cluster`'s summary: reads the sb-load reports bench/cluster.sh left in RAW_DIR
// (cluster-<set-up>.json), prints a table and writes OUT (bench/results/cluster.json).
//
//   node bench/cluster-report.js RAW_DIR OUT CLIENTS WINDOW SECONDS REPLICAS

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const [rawDir, out, clients, window, seconds, replicas] = process.argv.slice(2);
if (!rawDir || !out) {
  console.error('usage: cluster-report.js RAW_DIR OUT CLIENTS WINDOW SECONDS REPLICAS');
  process.exit(2);
}
const SETUPS = [
  ['one-node', 'one node'],
  ['two-nodes-redis', 'two nodes, one Redis'],
  ['two-nodes-cluster', 'two nodes, Redis Cluster (3 masters)'],
];
const round = (x, d) => (x == null ? null : Math.round(x * 10 ** d) / 10 ** d);

function load(label) {
  const file = path.join(rawDir, `cluster-${label}.json`);
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8').trim().split('\n').pop());
  } catch {
    return { error: 'no report' };
  }
}

// One set-up's figures: deliveries, validity, each node's and each Redis process's CPU.
function summarize(r) {
  if (r.error) return { error: r.error };
  const perM = (cpu) => (r.deliveries > 0 && cpu != null ? round((cpu * 1e6) / r.deliveries, 3) : null);
  const watched = r.watched || {};
  const nodes = [{ name: 'node-a', cpu_s: r.server?.cpu_s ?? null, cpu_util: r.server?.cpu_util ?? null }];
  const redis = [];
  for (const [name, w] of Object.entries(watched)) {
    const row = { name, pid: w.pid, cpu_s: w.cpu_s ?? null, cpu_util: w.cpu_util ?? null, error: w.error };
    if (name.startsWith('redis')) redis.push({ ...row, cpu_s_per_1m_deliveries: perM(w.cpu_s) });
    else nodes.push(row);
  }
  const sum = (xs) => (xs.some((x) => x.cpu_s != null) ? round(xs.reduce((a, x) => a + (x.cpu_s || 0), 0), 3) : null);
  return {
    valid: r.valid !== false,
    invalid_reason: r.invalid_reason ?? null,
    deliveries_per_s: r.deliveries_per_s,
    latency_ms: r.latency_ms,
    published: r.published,
    lost: r.lost,
    disconnects: r.disconnects,
    nodes,
    redis,
    redis_cpu_s: sum(redis),
    redis_cpu_util: redis.length ? round(redis.reduce((a, x) => a + (x.cpu_util || 0), 0), 3) : null,
    redis_cpu_s_per_1m_deliveries: perM(sum(redis)),
    generator_cpu_util: r.generator?.cpu_util ?? null,
    other_cpu_util: r.generator?.other_cpu_util ?? null,
  };
}

const runs = {};
for (const [label] of SETUPS) {
  const r = load(label);
  if (r) runs[label.replace(/-/g, '_')] = summarize(r);
}
const dps = (k) => (runs[k] && !runs[k].error && runs[k].valid ? runs[k].deliveries_per_s : null);
const ratio = (a, b) => (dps(a) && dps(b) ? round(dps(a) / dps(b), 3) : null);
let commit = null;
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
} catch {}
const summary = {
  generated_at: new Date().toISOString(),
  commit,
  clients: Number(clients),
  window: Number(window),
  seconds: Number(seconds),
  cluster_replicas_per_master: Number(replicas),
  runs,
  ratios: {
    two_nodes_redis_vs_one_node: ratio('two_nodes_redis', 'one_node'),
    two_nodes_cluster_vs_one_node: ratio('two_nodes_cluster', 'one_node'),
    two_nodes_cluster_vs_two_nodes_redis: ratio('two_nodes_cluster', 'two_nodes_redis'),
  },
};
fs.writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);

const fmt = (v, d = 0) => (v == null ? '-' : Number(v).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const lines = [`fan-out, ${clients} clients in one room (members split over the nodes), window ${window}, ${seconds} s measured`];
for (const [label, title] of SETUPS) {
  const r = runs[label.replace(/-/g, '_')];
  if (!r) continue;
  if (r.error) {
    lines.push(`  ${title}: ERROR: ${r.error}`);
    continue;
  }
  const head = r.valid
    ? `${fmt(r.deliveries_per_s)} deliveries/s`
    : `INVALID (${r.invalid_reason}); ${fmt(r.deliveries_per_s)} deliveries/s is not a measurement`;
  lines.push(`  ${title}: ${head}, p99 ${fmt(r.latency_ms?.p99, 1)} ms`);
  lines.push(`    nodes CPU: ${r.nodes.map((n) => `${n.name} ${fmt(n.cpu_util, 2)} cores`).join(', ')}`);
  if (r.redis.length) {
    lines.push(`    Redis CPU: ${fmt(r.redis_cpu_util, 3)} cores in all, ${fmt(r.redis_cpu_s_per_1m_deliveries, 3)} cpu-s per 1M deliveries`);
    for (const x of r.redis) lines.push(`      ${x.name}: ${x.error ? x.error : `${fmt(x.cpu_util, 3)} cores (${fmt(x.cpu_s, 2)} cpu-s)`}`);
  }
}
const rt = summary.ratios;
lines.push(`  ratios: two nodes/one Redis vs one node ${rt.two_nodes_redis_vs_one_node ?? '-'}, two nodes/cluster vs one node ${rt.two_nodes_cluster_vs_one_node ?? '-'}, cluster vs one Redis ${rt.two_nodes_cluster_vs_two_nodes_redis ?? '-'}`);
console.log(lines.join('\n'));
console.error(`bench-cluster: wrote ${out}`);
