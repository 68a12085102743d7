#!/usr/bin/env bash
# `make bench`: every scenario against every target, one after another, on this machine.
#
#   bench/run.sh                      full run (under 15 minutes on 2 cores)
#   BENCH_QUICK=1 bench/run.sh        everything small (under 2 minutes), for iterating
#
# Targets: engine (the standalone `switchboard serve`), fastify (the engine inside a Fastify
# app through @switchboard/node/fastify; skipped when the addon cannot be built) and socketio
# (the same wire contract on Node Socket.IO 4.8, bench/peers/socketio).
#
# Settings (environment):
#   BENCH_TARGETS="engine fastify socketio"   BENCH_SCENARIOS="fanout chat idle connect"
#   BENCH_SECONDS=10 (measured seconds, fanout and chat)   BENCH_WARMUP=2
#   BENCH_CONNECT_SECONDS=5   BENCH_CONNECT_CONCURRENCY=50
#   BENCH_FANOUT_CLIENTS=1000 BENCH_FANOUT_WINDOW=64 (messages in flight, counted from the
#   first one some receiver has not seen: sb-load paces fan-out by its slowest receiver)
#   BENCH_CHAT_CLIENTS=2000   BENCH_CHAT_ROOMS=200   BENCH_CHAT_RATE=20
#   BENCH_IDLE_CLIENTS="5000 15000" (one idle run per size: idle5k, idle15k)
#   BENCH_IDLE_HOLD=26 (s held after the RSS sample: spans a 25 s ping interval, so the idle CPU
#   figure includes every connection's heartbeat)   BENCH_IDLE_SETTLE=2
#   BENCH_BUILD=1 (cargo build first)   BENCH_WAIT_QUIET=20 (s per run)
#   BENCH_ENGINE_BIN=target/release/switchboard (the engine binary the engine target runs)
#   BENCH_OUT=bench/results   (latest.json, latest.svg; raw runs in $BENCH_OUT/tmp)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START_TIME=$(date +%s)

QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  d_seconds=2 d_warmup=1 d_connect=2 d_fanout=200 d_chat=400 d_rooms=40 d_idle=1000 d_settle=1 d_hold=1 d_quiet=0
else
  d_seconds=10 d_warmup=2 d_connect=5 d_fanout=1000 d_chat=2000 d_rooms=200 d_idle="5000 15000" d_settle=2 d_hold=26 d_quiet=20
fi
SECS=${BENCH_SECONDS:-$d_seconds}
WARMUP=${BENCH_WARMUP:-$d_warmup}
CONNECT_SECONDS=${BENCH_CONNECT_SECONDS:-$d_connect}
CONNECT_CONCURRENCY=${BENCH_CONNECT_CONCURRENCY:-50}
FANOUT_CLIENTS=${BENCH_FANOUT_CLIENTS:-$d_fanout}
FANOUT_WINDOW=${BENCH_FANOUT_WINDOW:-64}
CHAT_CLIENTS=${BENCH_CHAT_CLIENTS:-$d_chat}
CHAT_ROOMS=${BENCH_CHAT_ROOMS:-$d_rooms}
CHAT_RATE=${BENCH_CHAT_RATE:-20}
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-$d_idle}
IDLE_SETTLE=${BENCH_IDLE_SETTLE:-$d_settle}
IDLE_HOLD=${BENCH_IDLE_HOLD:-$d_hold}
WAIT_QUIET=${BENCH_WAIT_QUIET:-$d_quiet}
SCENARIOS=${BENCH_SCENARIOS:-"fanout chat idle connect"}
TARGETS=${BENCH_TARGETS:-"engine fastify socketio"}
OUT=${BENCH_OUT:-bench/results}
TMP="$OUT/tmp"
SECRET="bench-secret-0123456789-$$"

log() { printf '%s\n' "$*" >&2; }
elapsed() { local s=$(( $(date +%s) - START_TIME )); printf '%d:%02d' $((s / 60)) $((s % 60)); }

# One fd per connection in the server and in the generator: 5000 idle clients need >5000.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$CHAT_CLIENTS
for n in $IDLE_CLIENTS; do (( n > need )) && need=$n; done
if (( $(ulimit -n) < need + 200 )); then
  log "bench: open files limit $(ulimit -n) is below the $((need + 200)) needed; lower BENCH_IDLE_CLIENTS / BENCH_CHAT_CLIENTS"
  exit 1
fi
command -v node >/dev/null || { log "bench: node is required (the Socket.IO peer and the report)"; exit 1; }

# ---- build --------------------------------------------------------------------------------
if [[ "${BENCH_BUILD:-1}" == 1 ]]; then
  log "bench [$(elapsed)] building release binaries"
  cargo build --release -p switchboard -p switchboard-bench --bin switchboard --bin sb-load >&2
fi
# BENCH_ENGINE_BIN: another build of the engine (a before/after comparison in one run).
ENGINE_BIN="${BENCH_ENGINE_BIN:-$ROOT/target/release/switchboard}"
LOAD_BIN="$ROOT/target/release/sb-load"

npm_deps() { # dir
  if [[ ! -d "$1/node_modules" ]]; then
    log "bench [$(elapsed)] npm ci in $1"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

# ---- targets ------------------------------------------------------------------------------
FASTIFY_SERVER=""
# The fastify target loads a release build of the addon made here from the current source
# (node/ may hold a debug build, or none: *.node is not in git), through napi-rs's
# NAPI_RS_NATIVE_LIBRARY_PATH override.
ADDON="$(mkdir -p "$TMP" && cd "$TMP" && pwd)/switchboard-node-release.node"
fastify_ready() {
  if [[ -f bench/peers/fastify/server.js ]]; then
    FASTIFY_SERVER=bench/peers/fastify/server.js
  elif [[ -f examples/fastify-chat/server.js ]]; then
    FASTIFY_SERVER=examples/fastify-chat/server.js
  else
    log "bench: fastify target skipped: no bench/peers/fastify/server.js nor examples/fastify-chat/server.js"
    return 1
  fi
  if [[ ! -f node/fastify.js || ! -f node/Cargo.toml ]]; then
    log "bench: fastify target skipped: node/ has no Fastify plugin (node/fastify.js)"
    return 1
  fi
  if [[ "${BENCH_BUILD:-1}" == 1 ]]; then
    log "bench [$(elapsed)] building the Node addon (release)"
    if ! cargo build --release -p switchboard-node >&2; then
      log "bench: fastify target skipped: the Node addon (switchboard-node) does not build"
      return 1
    fi
  fi
  if [[ ! -f target/release/libswitchboard_node.so ]]; then
    log "bench: fastify target skipped: no release build of the Node addon (cargo build --release -p switchboard-node)"
    return 1
  fi
  mkdir -p "$TMP"
  cp target/release/libswitchboard_node.so "$ADDON"
  [[ "$FASTIFY_SERVER" == bench/* ]] && npm_deps bench/peers/fastify
  return 0
}

ACTIVE=()
for t in $TARGETS; do
  case "$t" in
    engine) ACTIVE+=(engine) ;;
    socketio) npm_deps bench/peers/socketio && ACTIVE+=(socketio) ;;
    fastify) if fastify_ready; then ACTIVE+=(fastify); fi ;;
    *) log "bench: unknown target $t (engine, fastify, socketio)"; exit 1 ;;
  esac
done

# Starts target $1 in the background; sets SERVER_PID and SERVER_PORT.
SERVER_PID=""
SERVER_PORT=""
start_server() {
  local target=$1 logf="$TMP/$2.server.log"
  case "$target" in
    engine) "$ENGINE_BIN" serve --host 127.0.0.1 --port 0 --jwt-secret "$SECRET" --rate-limit 0 >"$logf" 2>&1 & ;;
    socketio) node bench/peers/socketio/server.js --host 127.0.0.1 --port 0 --jwt-secret "$SECRET" >"$logf" 2>&1 & ;;
    fastify) NAPI_RS_NATIVE_LIBRARY_PATH="$ADDON" HOST=127.0.0.1 PORT=0 SWITCHBOARD_JWT_SECRET="$SECRET" JWT_SECRET="$SECRET" \
               node "$FASTIFY_SERVER" --host 127.0.0.1 --port 0 --jwt-secret "$SECRET" >"$logf" 2>&1 & ;;
  esac
  SERVER_PID=$!
  local i
  for i in $(seq 1 300); do
    SERVER_PORT=$(grep -m1 -o 'switchboard listening on http://127\.0\.0\.1:[0-9]*' "$logf" 2>/dev/null | grep -o '[0-9]*$' || true)
    [[ -n "$SERVER_PORT" ]] && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "bench: $target exited before listening:"; tail -5 "$logf" >&2; return 1
    fi
    sleep 0.1
  done
  log "bench: $target did not print its listening line within 30 s"; stop_server; return 1
}

stop_server() {
  [[ -z "$SERVER_PID" ]] && return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap 'stop_server' EXIT
trap 'stop_server; exit 130' INT TERM

# Busy cores over the last second, from /proc/stat (all processes and the kernel).
busy_cores() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f", (y[1] - x[1]) / 100 }'
}

# Before a run: wait (at most BENCH_WAIT_QUIET seconds) until other work leaves the cores alone.
wait_quiet() {
  (( WAIT_QUIET > 0 )) || return 0
  local waited=0 busy
  while :; do
    busy=$(busy_cores)
    awk -v b="$busy" 'BEGIN { exit !(b < 0.3) }' && return 0
    if (( waited == 0 )); then log "    waiting for a quiet machine ($busy cores busy; at most ${WAIT_QUIET}s)"; fi
    waited=$((waited + 1))
    if (( waited >= WAIT_QUIET )); then
      log "    still $busy cores busy: running anyway (see 'other cores busy' in the results)"; return 0
    fi
  done
}

# The idle scenario runs once per size in BENCH_IDLE_CLIENTS, named by size (idle5k, idle15k).
idle_name() { # clients
  if (( $1 % 1000 == 0 )); then echo "idle$(( $1 / 1000 ))k"; else echo "idle$1"; fi
}
idle_clients() { # name
  local n
  for n in $IDLE_CLIENTS; do [[ "$(idle_name "$n")" == "$1" ]] && { echo "$n"; return; }; done
  echo "${IDLE_CLIENTS%% *}"
}

scenario_args() {
  case "$1" in
    fanout) echo "fanout --clients $FANOUT_CLIENTS --window $FANOUT_WINDOW --seconds $SECS --warmup $WARMUP" ;;
    chat) echo "chat --clients $CHAT_CLIENTS --rooms $CHAT_ROOMS --rate $CHAT_RATE --seconds $SECS --warmup $WARMUP" ;;
    idle*) echo "idle --clients $(idle_clients "$1") --settle $IDLE_SETTLE --hold $IDLE_HOLD" ;;
    connect) echo "connect --clients $CONNECT_CONCURRENCY --seconds $CONNECT_SECONDS" ;;
    *) log "bench: unknown scenario $1"; exit 1 ;;
  esac
}

# ---- run ----------------------------------------------------------------------------------
mkdir -p "$TMP"
rm -f "$TMP"/*.json "$TMP"/*.log
scen=()
for s in $SCENARIOS; do
  if [[ "$s" == idle ]]; then
    for n in $IDLE_CLIENTS; do scen+=("$(idle_name "$n")"); done
  else
    scen+=("$s")
  fi
done
total=$(( ${#scen[@]} * ${#ACTIVE[@]} ))
log "bench [$(elapsed)] ${#scen[@]} scenarios × ${#ACTIVE[@]} targets (${ACTIVE[*]}); load average $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{ exit !($1 > 0.7) }' /proc/loadavg; then
  log "bench: warning: the machine is busy (load average $(cut -d' ' -f1 /proc/loadavg)); the server and sb-load share its cores with whatever else runs, see 'other cores busy' per run"
fi
n=0
for s in "${scen[@]}"; do
  for t in "${ACTIVE[@]}"; do
    n=$((n + 1))
    log "bench [$(elapsed)] ($n/$total) $s × $t"
    name="$s-$t"
    wait_quiet
    if ! start_server "$t" "$name"; then
      echo "{\"scenario\":\"$s\",\"target\":\"$t\",\"error\":\"server did not start\"}" >"$TMP/$name.json"
      continue
    fi
    # shellcheck disable=SC2046
    if ! "$LOAD_BIN" $(scenario_args "$s") --addr "127.0.0.1:$SERVER_PORT" --jwt-secret "$SECRET" \
        --server-pid "$SERVER_PID" --target "$t" >"$TMP/$name.json" 2>"$TMP/$name.load.log"; then
      err=$(tail -1 "$TMP/$name.load.log" | tr '"\\' "''")
      echo "{\"scenario\":\"$s\",\"target\":\"$t\",\"error\":\"$err\"}" >"$TMP/$name.json"
    fi
    grep -v '^  \.\.\.' "$TMP/$name.load.log" | sed 's/^/    /' >&2 || true
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "    bench: the $t server died during $s; its log:"; tail -5 "$TMP/$name.server.log" >&2
    fi
    stop_server
  done
done

log "bench [$(elapsed)] done"
BENCH_MODE=$([[ "$QUICK" == 1 ]] && echo quick || echo full) BENCH_ELAPSED=$(( $(date +%s) - START_TIME )) \
  node bench/report.js "$TMP" "$OUT" ${ACTIVE[*]}
