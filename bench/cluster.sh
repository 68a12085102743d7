#!/usr/bin/env bash
# `make bench-cluster`: the fan-out scenario on one node, then on two nodes sharing one Redis,
# then on two nodes on a three-master Redis Cluster (members split over both nodes; the
# publisher on the first), in one run.
#
#   BENCH_FANOUT_CLIENTS=1000 BENCH_FANOUT_WINDOW=64 BENCH_SECONDS=10 BENCH_WARMUP=2 bench/cluster.sh
#   BENCH_CLUSTER_SETUPS="one redis cluster"   which set-ups run (default: all three)
#   BENCH_CLUSTER_REPLICAS=0                   replicas per master (1: six redis-servers)
#   BENCH_BUILD=0                              skip the cargo build
#
# There is no backpressure from one node to another (pub/sub), so a publisher paced by acks
# alone outruns the second node on a small machine and its clients are dropped as slow readers;
# sb-load paces the publisher by its slowest receiver (--pace receivers, the default), so every
# set-up is measured with every receiver kept, and a run that loses one says INVALID.
#
# Reports deliveries/s for each set-up, each node's CPU and each Redis process's CPU over the
# measured window (/proc/PID/stat, through sb-load --watch), and writes bench/results/cluster.json.
# Every redis-server and node it starts is stopped, and their directories removed, at exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLIENTS=${BENCH_FANOUT_CLIENTS:-1000}
SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
WINDOW=${BENCH_FANOUT_WINDOW:-64}
SETUPS=${BENCH_CLUSTER_SETUPS:-"one redis cluster"}
REPLICAS=${BENCH_CLUSTER_REPLICAS:-0}
SECRET="bench-secret-0123456789-$$"
OUT=${BENCH_OUT:-bench/results}
TMP="$OUT/tmp"
mkdir -p "$TMP"
ulimit -n 20000 2>/dev/null || true
log() { printf 'bench-cluster: %s\n' "$*" >&2; }
for c in redis-server redis-cli node python3; do
  command -v "$c" >/dev/null || { log "$c is required (make deps-redis for Redis)"; exit 1; }
done

if [[ "${BENCH_BUILD:-1}" == 1 ]]; then
  cargo build --release -q -p switchboard --bin switchboard -p switchboard-bench --bin sb-load
fi
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=${BENCH_ENGINE_BIN:-$TARGET_DIR/release/switchboard}
LOAD=$TARGET_DIR/release/sb-load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A cluster node also listens on its port + 10000 (the cluster bus): both must be free, so
# the port is at most 55535.
cluster_port() {
  python3 -c '
import random, socket
for _ in range(200):
    p = random.randint(20000, 45000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
    except OSError:
        continue
    print(p); break'
}

PIDS=()
DIRS=()
cleanup() {
  local p d
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for d in "${DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Redis --------------------------------------------------------------------------------
# Starts one redis-server on a free port (extra arguments appended); sets REDIS_PORT, REDIS_PID.
start_redis() {
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/sb-bench-redis.XXXXXX")
  DIRS+=("$dir")
  if [[ "${1:-}" == --cluster-enabled ]]; then REDIS_PORT=$(cluster_port); else REDIS_PORT=$(free_port); fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" "$@" \
    >"$TMP/redis-$REDIS_PORT.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  local i
  for i in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "redis-server on $REDIS_PORT did not start:"; tail -5 "$TMP/redis-$REDIS_PORT.log" >&2
  return 1
}

CLUSTER_PIDS=()
# Three masters (and BENCH_CLUSTER_REPLICAS replicas each); sets CLUSTER_URL and
# CLUSTER_WATCH (--watch arguments naming each process by its role once the cluster is up).
start_cluster() {
  local ports=() pids=() i n=$((3 * (1 + REPLICAS)))
  for i in $(seq 1 "$n"); do
    start_redis --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 || return 1
    ports+=("$REDIS_PORT")
    pids+=("$REDIS_PID")
  done
  local addrs=()
  for i in "${ports[@]}"; do addrs+=("127.0.0.1:$i"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$REPLICAS" --cluster-yes \
    >"$TMP/redis-cluster-create.log" 2>&1 || { log "redis-cli --cluster create failed:"; tail -5 "$TMP/redis-cluster-create.log" >&2; return 1; }
  # Every node must agree the cluster is up (slots assigned, gossip converged).
  local p ok
  for i in $(seq 1 300); do
    ok=1
    for p in "${ports[@]}"; do
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || { ok=0; break; }
    done
    ((ok)) && break
    sleep 0.1
  done
  ((ok)) || { log "the Redis Cluster did not reach cluster_state:ok in 30 s"; return 1; }
  # Name every process by its role and shard (its masters' slot range), for the report.
  CLUSTER_WATCH=()
  local role slots
  for i in "${!ports[@]}"; do
    p=${ports[$i]}
    role=$(redis-cli -p "$p" role | head -1)
    if [[ "$role" == master ]]; then
      slots=$(redis-cli -p "$p" cluster nodes | awk '/myself/ { print $9 }')
      CLUSTER_WATCH+=(--watch "redis-master-$p[$slots]=${pids[$i]}")
    else
      CLUSTER_WATCH+=(--watch "redis-replica-$p=${pids[$i]}")
    fi
  done
  CLUSTER_PIDS=("${pids[@]}")
  CLUSTER_URL="redis+cluster://$(IFS=,; echo "${addrs[*]}")"
  log "Redis Cluster up: ${#ports[@]} redis-servers (${REPLICAS} replica(s) per master), $CLUSTER_URL"
}

# ---- engine nodes -------------------------------------------------------------------------
# Starts an engine node; sets NODE_PORT and NODE_PID once it listens (not in a subshell: the
# pid must reach PIDS for the cleanup). Fails when it exits or stays silent for 30 s.
start_node() {
  NODE_PORT=$(free_port)
  local logf="$TMP/node-$NODE_PORT.log" i
  "$BIN" serve --host 127.0.0.1 --port "$NODE_PORT" --jwt-secret "$SECRET" --rate-limit 0 "$@" >"$logf" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  for i in $(seq 1 300); do
    grep -q "listening on" "$logf" 2>/dev/null && return 0
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "the engine did not start (switchboard serve $*):"; tail -5 "$logf" >&2
  return 1
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# One fan-out run: label, addresses, then extra sb-load arguments (--server-pid, --watch).
run() {
  local label=$1 addr=$2
  shift 2
  log "fan-out: $label ($CLIENTS clients, window $WINDOW, ${WARMUP}+${SECS} s)"
  if ! "$LOAD" fanout --addr "$addr" --jwt-secret "$SECRET" --clients "$CLIENTS" --seconds "$SECS" \
      --warmup "$WARMUP" --window "$WINDOW" --target "$label" "$@" \
      >"$TMP/cluster-$label.json" 2>"$TMP/cluster-$label.load.log"; then
    local err
    err=$(tail -1 "$TMP/cluster-$label.load.log" | tr '"\\' "''")
    echo "{\"target\":\"$label\",\"error\":\"$err\"}" >"$TMP/cluster-$label.json"
  fi
  sed 's/^/    /' "$TMP/cluster-$label.load.log" >&2
}
fail() { # label message: a set-up that could not run
  local msg
  msg=$(printf '%s' "$2" | tr '"\\' "''")
  echo "{\"target\":\"$1\",\"error\":\"$msg\"}" >"$TMP/cluster-$1.json"
  log "$1: $2"
}

rm -f "$TMP"/cluster-*.json
for s in $SETUPS; do
  case "$s" in
    one)
      if start_node; then
        run one-node "127.0.0.1:$NODE_PORT" --server-pid "$NODE_PID"
        stop_pid "$NODE_PID"
      else
        fail one-node "the engine did not start"
      fi
      ;;
    redis)
      if start_redis; then
        R=$REDIS_PID RP=$REDIS_PORT
        if start_node --redis "redis://127.0.0.1:$RP" && A=$NODE_PORT APID=$NODE_PID &&
          start_node --redis "redis://127.0.0.1:$RP" && B=$NODE_PORT BPID=$NODE_PID; then
          sleep 1
          run two-nodes-redis "127.0.0.1:$A,127.0.0.1:$B" --server-pid "$APID" \
            --watch "node-b=$BPID" --watch "redis-$RP=$R"
          stop_pid "$APID"; stop_pid "$BPID"
        else
          fail two-nodes-redis "the engine did not start with --redis redis://127.0.0.1:$RP"
        fi
        stop_pid "$R"
      else
        fail two-nodes-redis "redis-server did not start"
      fi
      ;;
    cluster)
      if start_cluster; then
        if start_node --redis "$CLUSTER_URL" && A=$NODE_PORT APID=$NODE_PID &&
          start_node --redis "$CLUSTER_URL" && B=$NODE_PORT BPID=$NODE_PID; then
          sleep 1
          run two-nodes-cluster "127.0.0.1:$A,127.0.0.1:$B" --server-pid "$APID" \
            --watch "node-b=$BPID" "${CLUSTER_WATCH[@]}"
          stop_pid "$APID"; stop_pid "$BPID"
        else
          fail two-nodes-cluster "the engine did not start with --redis $CLUSTER_URL (see $TMP/node-*.log)"
        fi
      else
        fail two-nodes-cluster "the Redis Cluster did not start"
      fi
      for p in "${CLUSTER_PIDS[@]}"; do stop_pid "$p"; done
      ;;
    *) log "unknown set-up $s (one, redis, cluster)"; exit 1 ;;
  esac
done

node bench/cluster-report.js "$TMP" "$OUT/cluster.json" "$CLIENTS" "$WINDOW" "$SECS" "$REPLICAS"
