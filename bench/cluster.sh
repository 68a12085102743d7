#!/usr/bin/env bash
# `make bench-cluster`: the fan-out scenario on one node, then on two nodes of a Redis
# cluster (members split over both; the publisher on the first), in one run.
#
#   BENCH_FANOUT_CLIENTS=1000 BENCH_FANOUT_WINDOW=4 BENCH_SECONDS=10 BENCH_WARMUP=2 bench/cluster.sh
#
# The publisher's window defaults to 4 here (16 in make bench): there is no backpressure
# from one node to another (pub/sub), so on a 2-core machine running both nodes, Redis and
# the generator, a window of 16 outruns the second node and its clients are dropped as slow
# readers (the run shows it as lost deliveries). 4 is the largest window that stays lossless
# here; raise it on bigger machines.
#
# Prints both deliveries per second and their ratio; writes bench/results/cluster.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLIENTS=${BENCH_FANOUT_CLIENTS:-1000}
SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
WINDOW=${BENCH_FANOUT_WINDOW:-4}
SECRET="bench-secret-0123456789-$$"
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT/tmp"
ulimit -n 20000 2>/dev/null || true
command -v redis-server >/dev/null || { echo "bench-cluster: redis-server is required (make deps-redis)" >&2; exit 1; }

cargo build --release -q -p switchboard --bin switchboard -p switchboard-bench --bin sb-load
BIN=target/release/switchboard
LOAD=target/release/sb-load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

REDIS_PORT=$(free_port)
REDIS_DIR=$(mktemp -d)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$REDIS_DIR" >"$OUT/tmp/redis.log" 2>&1 &
PIDS+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

# Starts an engine node and sets NODE_PORT once it listens (not in a subshell: the node's
# pid must reach PIDS for the cleanup).
start_node() {
  NODE_PORT=$(free_port)
  "$BIN" serve --port "$NODE_PORT" --jwt-secret "$SECRET" --rate-limit 0 "$@" >"$OUT/tmp/node-$NODE_PORT.log" 2>&1 &
  PIDS+=($!)
  until grep -q "listening on" "$OUT/tmp/node-$NODE_PORT.log" 2>/dev/null; do sleep 0.1; done
}

run() { # label addr
  "$LOAD" fanout --addr "$2" --jwt-secret "$SECRET" --clients "$CLIENTS" --seconds "$SECS" \
    --warmup "$WARMUP" --window "$WINDOW" --target "$1" > "$OUT/tmp/cluster-$1.json"
  node -e 'const r = require(process.argv[1]);
    console.log(JSON.stringify({ target: process.argv[2], deliveries_per_s: r.deliveries_per_s,
      p99_ms: r.latency_ms.p99, lost: r.lost }))' "$ROOT/$OUT/tmp/cluster-$1.json" "$1"
}

start_node; ONE=$NODE_PORT
run one-node "127.0.0.1:$ONE"
start_node --redis "redis://127.0.0.1:$REDIS_PORT"; A=$NODE_PORT
start_node --redis "redis://127.0.0.1:$REDIS_PORT"; B=$NODE_PORT
sleep 1
run two-nodes "127.0.0.1:$A,127.0.0.1:$B"
node -e 'const fs = require("fs");
  const [one, two] = ["one-node", "two-nodes"].map((t) => require(`${process.argv[1]}/cluster-${t}.json`));
  const out = { clients: one.clients ?? null, one_node: one.deliveries_per_s, two_nodes: two.deliveries_per_s,
    ratio: Math.round((two.deliveries_per_s / one.deliveries_per_s) * 1000) / 1000, lost: [one.lost, two.lost] };
  fs.writeFileSync(process.argv[2], JSON.stringify(out, null, 2) + "\n");
  console.log(`fan-out deliveries/s: one node ${out.one_node}, two nodes ${out.two_nodes} (x${out.ratio})`);' \
  "$ROOT/$OUT/tmp" "$ROOT/$OUT/cluster.json"
